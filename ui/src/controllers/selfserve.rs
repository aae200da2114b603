//! The self-serve flow: attract, shop, the age check and the call for help, card payment,
//! and the idle timeout back to attract.

use super::show_error;
use crate::{AppWindow, CatalogAdapter, Kiosk, Mode, PayAdapter, SelfServeAdapter, Session, say};
use crate::{PayState, Screen};
use edge_api::locale::Lang;
use edge_api::{ApprovalIn, ApprovalOut, TenderIn};
use slint::{ComponentHandle, ModelRc};
use std::rc::Rc;
use std::time::Duration;

pub fn wire(ui: &AppWindow, k: &Rc<Kiosk>) {
    let s = ui.global::<SelfServeAdapter>();
    let kk = k.clone();
    s.on_start(move || {
        crate::with(|_, ui| start_shopping(&kk, ui));
    });
    let kk = k.clone();
    s.on_key(move |name| crate::with(|_, ui| key(&kk, ui, name.as_str())).unwrap_or(false));
    let kk = k.clone();
    s.on_accessible_start(move || {
        crate::with(|_, ui| {
            ui.global::<crate::Theme>().set_font_scale(1.6);
            if !kk.speech.borrow().on {
                toggle_speech(&kk, ui);
            }
            start_shopping(&kk, ui);
        });
    });
    let kk = k.clone();
    s.on_call_help(move || {
        kk.touch();
        crate::with(|_, ui| ui.global::<SelfServeAdapter>().set_help_called(true));
        let api = kk.api.clone();
        let req = ApprovalIn { kind: "help".into(), screen: kk.opts.screen_name.clone(), sku: None };
        kk.spawn(async move { api.post::<_, ApprovalOut>("/v1/approvals", &req).await }, |_, ui, r| match r {
            Ok(_) => say(ui, "help-called", "", false),
            Err(e) => {
                ui.global::<SelfServeAdapter>().set_help_called(false);
                show_error(ui, &e);
            }
        });
    });
    let kk = k.clone();
    s.on_pay(move || super::pay::pay(&kk, TenderIn { kind: "card".into(), amount_minor: None }));
    let kk = k.clone();
    s.on_cancel(move || {
        crate::with(|_, ui| {
            reset(&kk, ui);
            ui.global::<Session>().set_screen(Screen::Attract);
        });
    });
    let kk = k.clone();
    s.on_weigh_tare(move || {
        kk.touch();
        if let Some(w) = kk.weighing.borrow_mut().as_mut() {
            w.tare = Some(w.gross);
        }
        crate::with(show_weighing);
    });
    let kk = k.clone();
    s.on_weigh_cancel(move || {
        kk.touch();
        crate::with(stop_weighing);
    });
    let kk = k.clone();
    s.on_weigh_add(move || {
        kk.touch();
        let w = kk.weighing.borrow().clone();
        let Some((w, net)) = w.and_then(|w| w.net().filter(|_| w.stable).map(|n| (w, n))) else { return };
        let mut item = w.item;
        item.grams = Some(net);
        crate::with(|k, ui| {
            let i = k.cart.borrow_mut().add(item);
            ui.global::<crate::CartAdapter>().set_selected(i as i32);
            stop_weighing(k, ui);
            super::sell::refresh_cart(k, ui);
        });
    });
    let session = ui.global::<Session>();
    let kk = k.clone();
    session.on_toggle_speech(move || {
        crate::with(|_, ui| toggle_speech(&kk, ui));
    });
    let kk = k.clone();
    session.on_corner_pressed(move |down| {
        if down {
            *kk.corner_down.borrow_mut() = Some(std::time::Instant::now());
            return;
        }
        let held = kk.corner_down.borrow_mut().take().map(|t| t.elapsed());
        crate::with(|_, ui| match held {
            Some(h) if h >= crate::speech::LONG_PRESS => toggle_speech(&kk, ui),
            // A tap: say how (on screen; a blind customer holds or presses F2).
            Some(_) if !kk.speech.borrow().on => say(ui, "hold-speech", "", false),
            _ => {}
        });
    });
    if k.opts.mode == Mode::SelfServe {
        // The idle clock: checked every second.
        let kk = k.clone();
        let t = slint::Timer::default();
        t.start(slint::TimerMode::Repeated, Duration::from_secs(1), move || {
            crate::with(|_, ui| idle_tick(&kk, ui));
        });
        k.keep(t);
        // Speech: the screen compared with what was last said.
        let kk = k.clone();
        let t = slint::Timer::default();
        t.start(slint::TimerMode::Repeated, crate::speech::TICK, move || {
            crate::with(|_, ui| {
                let lang = Lang::parse(&kk.lang(ui)).unwrap_or_default();
                kk.speech.borrow_mut().update(lang, snapshot(ui));
            });
        });
        k.keep(t);
    }
}

/// Speaks what changed on the screen now, not at the next tick (a screen that may last
/// less than a tick, such as the card payment's with a fast terminal).
pub fn speak_now(k: &Rc<Kiosk>, ui: &AppWindow) {
    if k.opts.mode == Mode::SelfServe {
        let lang = Lang::parse(&k.lang(ui)).unwrap_or_default();
        k.speech.borrow_mut().update(lang, snapshot(ui));
    }
}

/// Turns speech on or off (F2, or a long press on the corner button).
pub fn toggle_speech(k: &Rc<Kiosk>, ui: &AppWindow) {
    k.touch();
    let lang = Lang::parse(&k.lang(ui)).unwrap_or_default();
    let mut sp = k.speech.borrow_mut();
    sp.toggle(lang, &snapshot(ui));
    ui.global::<Session>().set_speech_on(sp.on);
}

/// What the screen shows now, as speech sees it.
pub fn snapshot(ui: &AppWindow) -> crate::speech::Snapshot {
    use slint::Model;
    let s = ui.global::<Session>();
    let c = ui.global::<crate::CartAdapter>();
    let p = ui.global::<PayAdapter>();
    let ss = ui.global::<SelfServeAdapter>();
    let lines = c.get_lines();
    let last = lines.row_count().checked_sub(1).and_then(|i| lines.row_data(i));
    crate::speech::Snapshot {
        screen: match s.get_screen() {
            Screen::Attract => "attract",
            Screen::Shop => "shop",
            Screen::Pay => "pay",
            Screen::Thanks => "thanks",
            _ => "staff",
        }
        .into(),
        count: c.get_count(),
        total: c.get_total().to_string(),
        last_item: last.map(|l| (l.name.to_string(), l.amount.to_string())),
        prompt: p.get_prompt().to_string(),
        pay_error: crate::speech::failure(
            p.get_error_kind().as_str(),
            Lang::parse(ui.global::<Session>().get_language().as_str()).unwrap_or_default(),
        ),
        message: ui.get_message_shown().to_string(),
        age_waiting: (ss.get_age_check() == "waiting").then(|| ss.get_age_item().to_string()),
        idle_warning: ss.get_idle_warning().then(|| ss.get_idle_seconds_left()),
        focused: focused_text(ui),
        category: {
            let c = ui.global::<CatalogAdapter>().get_category();
            if c.is_empty() { String::new() } else { ui.global::<crate::CategoryNames>().invoke_of(c).to_string() }
        },
    }
}

/// A key from a customer who does not use the touch screen (arrows, enter, back, help):
/// the whole flow works with them. True when the key did something here.
pub fn key(k: &Rc<Kiosk>, ui: &AppWindow, key: &str) -> bool {
    use slint::Model;
    k.touch();
    let screen = ui.global::<Session>().get_screen();
    let ss = ui.global::<SelfServeAdapter>();
    let pay = ui.global::<PayAdapter>();
    let done = match (screen, key) {
        (_, "help") if screen != Screen::Attract => {
            ss.invoke_call_help();
            true
        }
        (Screen::Attract, "enter") => {
            start_shopping(k, ui);
            true
        }
        (Screen::Shop, _) if k.weighing.borrow().is_some() => match key {
            "enter" => {
                ss.invoke_weigh_add();
                true
            }
            "back" => {
                ss.invoke_weigh_cancel();
                true
            }
            _ => false,
        },
        (Screen::Shop, "up" | "down") => {
            // The products, then "Pay by card" after the last.
            let n = ui.global::<CatalogAdapter>().get_results().row_count() as i32;
            let f = ss.get_focus();
            ss.set_focus(if key == "down" { (f + 1).min(n) } else { (f - 1).max(0) });
            true
        }
        (Screen::Shop, "left" | "right") => {
            let cat = ui.global::<CatalogAdapter>();
            let cats = cat.get_categories();
            let names: Vec<String> = cats.iter().map(|c| c.name.to_string()).collect();
            if names.is_empty() {
                return false;
            }
            let at = names.iter().position(|n| n.as_str() == cat.get_category().as_str());
            let next = match (at, key) {
                (None, _) => 0,
                (Some(i), "right") => (i + 1) % names.len(),
                (Some(i), _) => (i + names.len() - 1) % names.len(),
            };
            cat.invoke_browse(names[next].clone().into());
            ss.set_focus(0);
            true
        }
        (Screen::Shop, "enter") => {
            let results = ui.global::<CatalogAdapter>().get_results();
            let f = ss.get_focus();
            if f >= 0 && (f as usize) < results.row_count() {
                if let Some(item) = results.row_data(f as usize) {
                    ui.global::<crate::CartAdapter>().invoke_add_sku(item.sku);
                }
                true
            } else if f >= 0 && f as usize == results.row_count() {
                ss.invoke_pay();
                true
            } else {
                false
            }
        }
        (Screen::Pay, "enter") if pay.get_state() == PayState::Failed => {
            ss.invoke_pay();
            true
        }
        (Screen::Pay, "back") if pay.get_state() == PayState::Failed => {
            ui.global::<Session>().invoke_go(Screen::Shop);
            true
        }
        (Screen::Thanks, "enter") => {
            pay.invoke_next_customer();
            true
        }
        _ => false,
    };
    speak_now(k, ui);
    done
}

/// What the keys are on, in words (for speech): a product with its price, or "Pay by card".
fn focused_text(ui: &AppWindow) -> String {
    use slint::Model;
    let f = ui.global::<SelfServeAdapter>().get_focus();
    let results = ui.global::<CatalogAdapter>().get_results();
    if f < 0 {
        return String::new();
    }
    match results.row_data(f as usize) {
        Some(item) => format!("{}, {}", item.name, item.price),
        None if f as usize == results.row_count() => "Pay by card".into(),
        None => String::new(),
    }
}

/// An item being weighed at the self-serve screen: the scale's last reading (gross) and the
/// tare taken when the customer touched Zero.
#[derive(Debug, Clone)]
pub struct Weighing {
    pub item: crate::cart::CartItem,
    pub tare: Option<i64>,
    pub gross: i64,
    pub stable: bool,
}

impl Weighing {
    /// The item's own weight (gross less tare), once tared.
    pub fn net(&self) -> Option<u32> {
        let t = self.tare?;
        u32::try_from(self.gross - t).ok().filter(|g| *g > 0)
    }
}

/// Opens the weighing panel for a weighed item and reads the scale every 300 ms.
pub fn start_weighing(k: &Rc<Kiosk>, ui: &AppWindow, item: crate::cart::CartItem) {
    k.touch();
    let ss = ui.global::<SelfServeAdapter>();
    ss.set_weigh_item(item.name.clone().into());
    ss.set_weigh_per_kg(k.money(ui, item.unit_price_minor).into());
    // The scale is zero when nothing is on it; Zero takes a bag's weight off.
    *k.weighing.borrow_mut() = Some(Weighing { item, tare: Some(0), gross: 0, stable: false });
    show_weighing(k, ui);
    let kk = k.clone();
    let t = slint::Timer::default();
    t.start(slint::TimerMode::Repeated, Duration::from_millis(300), move || read_scale(&kk));
    *k.weigh_timer.borrow_mut() = Some(t);
}

fn read_scale(k: &Rc<Kiosk>) {
    if k.weighing.borrow().is_none() {
        return;
    }
    let api = k.api.clone();
    k.spawn(async move { api.get::<edge_api::ScaleOut>("/v1/scale").await }, |k, ui, r| {
        if let Some(w) = k.weighing.borrow_mut().as_mut() {
            match r {
                Ok(s) => {
                    w.gross = s.grams;
                    w.stable = s.stable;
                }
                Err(_) => w.stable = false,
            }
        }
        show_weighing(k, ui);
    });
}

fn show_weighing(k: &Rc<Kiosk>, ui: &AppWindow) {
    let ss = ui.global::<SelfServeAdapter>();
    let w = k.weighing.borrow();
    let Some(w) = w.as_ref() else {
        ss.set_weigh_item("".into());
        return;
    };
    let lang = k.lang(ui);
    let shown = w.net().unwrap_or(0);
    ss.set_weigh_tared(w.tare.is_some());
    ss.set_weigh_stable(w.stable && w.net().is_some());
    ss.set_weigh_weight(crate::cart::format_kg(shown, &lang).into());
    let mut priced = w.item.clone();
    priced.grams = Some(shown);
    ss.set_weigh_amount(k.money(ui, priced.amount_minor()).into());
}

fn stop_weighing(k: &Rc<Kiosk>, ui: &AppWindow) {
    *k.weighing.borrow_mut() = None;
    *k.weigh_timer.borrow_mut() = None;
    show_weighing(k, ui);
}

pub fn start_shopping(k: &Rc<Kiosk>, ui: &AppWindow) {
    k.touch();
    ui.global::<Session>().set_screen(Screen::Shop);
    super::sell::load_categories(k);
}

/// Forgets the customer: cart, requests, payment screen.
pub fn reset(k: &Rc<Kiosk>, ui: &AppWindow) {
    k.cart.borrow_mut().clear();
    *k.checkout.borrow_mut() = None;
    *k.age_check.borrow_mut() = None;
    super::sell::refresh_cart(k, ui);
    let s = ui.global::<SelfServeAdapter>();
    s.set_age_check("".into());
    s.set_age_item("".into());
    s.set_help_called(false);
    s.set_idle_warning(false);
    s.set_focus(-1);
    *k.weighing.borrow_mut() = None;
    *k.weigh_timer.borrow_mut() = None;
    s.set_weigh_item("".into());
    let c = ui.global::<CatalogAdapter>();
    c.set_category("".into());
    c.set_results(ModelRc::default());
    let p = ui.global::<PayAdapter>();
    p.set_state(PayState::Idle);
    p.set_prompt("".into());
    ui.global::<Session>().set_message_code("".into());
}

fn idle_tick(k: &Rc<Kiosk>, ui: &AppWindow) {
    let screen = ui.global::<Session>().get_screen();
    // Never while a payment runs or a customer waits for staff.
    let waiting = ui.global::<SelfServeAdapter>().get_age_check() == "waiting"
        || ui.global::<PayAdapter>().get_state() == PayState::Working;
    let idle = k.idle_since.borrow().elapsed();
    let left = k.opts.idle_timeout.saturating_sub(idle);
    let ss = ui.global::<SelfServeAdapter>();
    ss.set_idle_seconds_left(left.as_secs() as i32);
    // The warning: the last fifth of the idle time (at least 10 s, at most 30 s), with
    // "I need more time"; said aloud even with speech off (by sight and by sound).
    let warn_from = (k.opts.idle_timeout / 5).clamp(Duration::from_secs(10), Duration::from_secs(30));
    let warn = screen != Screen::Attract && screen != Screen::Thanks && !waiting && left <= warn_from;
    if warn && !ss.get_idle_warning() && !k.speech.borrow().on {
        let lang = Lang::parse(&k.lang(ui)).unwrap_or_default();
        k.speech.borrow_mut().announce(lang, &crate::speech::idle_phrase(lang, left.as_secs() as i32));
    }
    ss.set_idle_warning(warn);
    if screen != Screen::Attract && !waiting && left.is_zero() {
        tracing::info!(?screen, "idle: back to the attract screen");
        reset(k, ui);
        ui.global::<Session>().set_screen(Screen::Attract);
    }
}

/// Staff answered this screen's age check or call for help.
pub fn decided(k: &Rc<Kiosk>, ui: &AppWindow, a: &ApprovalOut) {
    if a.screen != k.opts.screen_name {
        return;
    }
    match a.kind.as_str() {
        "age" => {
            let pending = k.age_check.borrow().clone();
            let Some(check) = pending.filter(|c| c.approval == a.id) else { return };
            *k.age_check.borrow_mut() = None;
            ui.global::<SelfServeAdapter>().set_age_check("".into());
            if a.state == "approved" {
                *k.age_answer.borrow_mut() = Some(crate::AgeAnswer::Approval(a.id));
                k.cart.borrow_mut().add(check.item);
                super::sell::refresh_cart(k, ui);
                say(ui, "age-approved", &a.item_name.clone().unwrap_or_default(), false);
            } else {
                say(ui, "age-refused", &a.item_name.clone().unwrap_or_default(), true);
            }
            k.touch();
        }
        "help" => {
            ui.global::<SelfServeAdapter>().set_help_called(false);
            say(ui, "help-coming", a.decided_by.as_deref().unwrap_or(""), false);
        }
        _ => {}
    }
}
