//! edge-kiosk: the staff register and the customer self-serve screen, one program in two
//! modes. It is only a client of edged's local API (HTTP + the WS event stream): a crash
//! or hang here never risks a sale, a payment or a queue entry.
//!
//! Structure (after Slint's energy-monitor and printer demos):
//! - `ui/*.slint`: the screens; `globals.slint` holds one adapter global per feature.
//! - one controller per feature in `controllers/`, wired to its adapter's callbacks;
//! - every network call runs on a tokio runtime of its own ([`Kiosk::spawn`]); results come
//!   back to the UI thread through Slint's event loop, so a touch is answered at once
//!   whatever the network or the daemon does;
//! - [`connection`] keeps the event stream up and says "reconnecting" while edged is away.

/// The code Slint generates from ui/*.slint (not ours to lint).
#[allow(clippy::all, clippy::unwrap_used)]
mod generated {
    slint::include_modules!();
}
pub use generated::*;

pub mod api;
pub mod cart;
pub mod connection;
pub mod controllers;
pub mod pictures;
pub mod speech;

use api::{Api, Endpoint};
use cart::Cart;
use slint::ComponentHandle;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use uuid::Uuid;

/// Staff register or customer self-serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Staff,
    SelfServe,
}

impl Mode {
    pub fn parse(s: &str) -> Result<Mode, String> {
        match s {
            "staff" => Ok(Mode::Staff),
            "self-serve" => Ok(Mode::SelfServe),
            other => Err(format!("--mode {other:?}: use staff or self-serve")),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Mode::Staff => "staff",
            Mode::SelfServe => "self-serve",
        }
    }
}

/// How a screen starts.
#[derive(Debug, Clone)]
pub struct Options {
    pub endpoint: Endpoint,
    pub mode: Mode,
    /// This screen's name, as staff see it on a request (`kiosk-1`).
    pub screen_name: String,
    /// `en` or `de`.
    pub language: String,
    pub high_contrast: bool,
    pub font_scale: f32,
    /// Self-serve: back to the attract screen after this long without a touch.
    pub idle_timeout: Duration,
    /// Speak aloud through espeak-ng (false: speech is recorded, not played; tests).
    pub speech_aloud: bool,
}

/// A request for staff the self-serve screen waits on.
/// How this cart's age check was answered (sent with the sale as `age_check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgeAnswer {
    /// Staff at the register: the customer was born on or before this date (`YYYY-MM-DD`).
    BornOnOrBefore(String),
    /// Staff approved this self-serve screen's request.
    Approval(Uuid),
}

#[derive(Debug, Clone)]
pub struct AgeCheck {
    pub approval: Uuid,
    pub item: cart::CartItem,
}

/// The screen's state on the UI thread. Network work gets clones of `api` and reports
/// back through [`Kiosk::spawn`].
pub struct Kiosk {
    pub opts: Options,
    pub api: Api,
    rt: tokio::runtime::Runtime,
    pub cart: RefCell<Cart>,
    pub currency: RefCell<String>,
    /// The id of the sale being paid: made once per cart, reused on every retry, so a
    /// retry after a lost answer can only ever return the first sale.
    pub checkout: RefCell<Option<Uuid>>,
    /// A manager's PIN that approved a price override or discount in this cart.
    pub manager_pin: RefCell<Option<String>>,
    pub last_sale: RefCell<Option<Uuid>>,
    /// The member of staff logged in (their config id): the cashier of the sales made.
    pub staff_id: RefCell<Option<String>>,
    /// The age check answered for this cart: the register's "born on or before" date
    /// (staff said yes), or the self-serve screen's request that staff approved.
    pub age_answer: RefCell<Option<AgeAnswer>>,
    /// Speech output (self-serve), and when the speech corner was pressed.
    pub speech: RefCell<speech::Speech>,
    pub corner_down: RefCell<Option<std::time::Instant>>,
    /// Self-serve: the item being weighed on the kiosk's scale, and the poll of the scale.
    pub weighing: RefCell<Option<controllers::selfserve::Weighing>>,
    pub weigh_timer: RefCell<Option<slint::Timer>>,
    /// The sale a refund is being picked from (refunds screen).
    pub refund: RefCell<Option<controllers::reports::RefundDraft>>,
    /// The refunds screen's list: the business day shown (0 = today, -1 = yesterday …)
    /// and the total looked for, if staff typed one.
    pub sales_filter: RefCell<(i32, Option<i64>)>,
    /// Counts the refunds screen's list requests: an answer to an older one (a slower
    /// search overtaken by a newer filter) is dropped.
    pub sales_gen: std::cell::Cell<u64>,
    /// The same for the item results (favourites, a category, a search).
    pub results_gen: std::cell::Cell<u64>,
    /// A manager's token between the Z report's PIN and its confirmation (dropped on
    /// cancel or once used).
    pub z_token: RefCell<Option<String>>,
    /// Item pictures fetched this session, by their path on the daemon.
    pub pictures: RefCell<std::collections::HashMap<String, slint::Image>>,
    pub age_check: RefCell<Option<AgeCheck>>,
    pub idle_since: RefCell<std::time::Instant>,
    /// Wakes the connection loop when the token changes (login, logout).
    pub token_changed: std::sync::Arc<tokio::sync::Notify>,
    timers: RefCell<Vec<slint::Timer>>,
}

thread_local! {
    static KIOSK: RefCell<Option<(Rc<Kiosk>, slint::Weak<AppWindow>)>> = const { RefCell::new(None) };
}

/// Runs `f` with the kiosk and its window (on the UI thread; None before start / after close).
pub fn with<R>(f: impl FnOnce(&Rc<Kiosk>, &AppWindow) -> R) -> Option<R> {
    let (k, w) = KIOSK.with(|c| c.borrow().as_ref().map(|(k, w)| (k.clone(), w.clone())))?;
    let ui = w.upgrade()?;
    Some(f(&k, &ui))
}

impl Kiosk {
    /// Runs `fut` on the network runtime, then `done` with its result on the UI thread.
    pub fn spawn<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = T> + Send + 'static,
        done: impl FnOnce(&Rc<Kiosk>, &AppWindow, T) + Send + 'static,
    ) {
        self.rt.spawn(async move {
            let r = fut.await;
            let _ = slint::invoke_from_event_loop(move || {
                with(|k, ui| done(k, ui, r));
            });
        });
    }

    /// A customer or staff member touched something: the idle clock starts again.
    pub fn touch(&self) {
        *self.idle_since.borrow_mut() = std::time::Instant::now();
    }

    pub fn lang(&self, ui: &AppWindow) -> String {
        ui.global::<Session>().get_language().to_string()
    }

    pub fn money(&self, ui: &AppWindow, minor: i64) -> String {
        cart::format_money(minor, &self.currency.borrow(), &self.lang(ui))
    }

    fn keep(&self, t: slint::Timer) {
        self.timers.borrow_mut().push(t);
    }
}

/// Shows a message (a code the .slint files translate, and its argument).
pub fn say(ui: &AppWindow, code: &str, arg: &str, error: bool) {
    let s = ui.global::<Session>();
    s.set_message_code(code.into());
    s.set_message_arg(arg.into());
    s.set_message_is_error(error);
}

/// Makes the window and wires every controller. The caller runs the event loop.
pub fn start(opts: Options) -> Result<AppWindow, String> {
    let ui = AppWindow::new().map_err(|e| format!("cannot make the window: {e}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("kiosk-net")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the network runtime: {e}"))?;
    let api = Api::new(opts.endpoint.clone())?;
    let session = ui.global::<Session>();
    session.set_mode(opts.mode.as_str().into());
    session.set_screen(if opts.mode == Mode::Staff { Screen::Login } else { Screen::Attract });
    ui.global::<Theme>().set_high_contrast(opts.high_contrast);
    ui.global::<Theme>().set_font_scale(opts.font_scale);
    let kiosk = Rc::new(Kiosk {
        api,
        rt,
        cart: RefCell::new(Cart::default()),
        currency: RefCell::new("EUR".into()),
        checkout: RefCell::new(None),
        manager_pin: RefCell::new(None),
        last_sale: RefCell::new(None),
        staff_id: RefCell::new(None),
        age_answer: RefCell::new(None),
        speech: RefCell::new(speech::Speech::new(if opts.speech_aloud && speech::espeak_available() {
            Box::new(speech::Espeak::default())
        } else {
            if opts.speech_aloud {
                tracing::warn!("espeak-ng is not installed: speech output is silent");
            }
            Box::new(speech::Silent)
        })),
        corner_down: RefCell::new(None),
        refund: RefCell::new(None),
        sales_filter: RefCell::new((0, None)),
        sales_gen: std::cell::Cell::new(0),
        results_gen: std::cell::Cell::new(0),
        z_token: RefCell::new(None),
        pictures: RefCell::new(std::collections::HashMap::new()),
        weighing: RefCell::new(None),
        weigh_timer: RefCell::new(None),
        age_check: RefCell::new(None),
        idle_since: RefCell::new(std::time::Instant::now()),
        token_changed: std::sync::Arc::new(tokio::sync::Notify::new()),
        timers: RefCell::new(Vec::new()),
        opts,
    });
    KIOSK.with(|c| *c.borrow_mut() = Some((kiosk.clone(), ui.as_weak())));
    controllers::session::wire(&ui, &kiosk);
    controllers::sell::wire(&ui, &kiosk);
    controllers::pay::wire(&ui, &kiosk);
    controllers::status::wire(&ui, &kiosk);
    controllers::reports::wire(&ui, &kiosk);
    controllers::selfserve::wire(&ui, &kiosk);
    let lang = kiosk.opts.language.clone();
    controllers::session::select_language(&ui, &kiosk, &lang);
    connection::start(&kiosk);
    Ok(ui)
}

/// The tracing subscriber for the binary: `RUST_LOG`, default info, to stderr.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
