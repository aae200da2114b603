//! The store's devices in edged: one thread per device runs its driver from `edge-drivers`
//! (blocking serial / TCP I/O stays off the async runtime), reconnects with backoff when the
//! link drops, and is declared `gone` only after several missed checks. The daemon talks to
//! a device through commands (print a receipt, show two lines, weigh) and hears from it
//! through `device.status` and `scan` events.

use edge_api::{DeviceOut, Event};
use edge_drivers::adyen::host::Terminal as AdyenTerminal;
use edge_drivers::display::{Dialect, PoleDisplay, two_sided};
use edge_drivers::escpos::{JobOutcome, Printer, Receipt};
use edge_drivers::model::HealthLevel;
use edge_drivers::payment::{Event as TerminalEvent, Failure, Family, Outcome, TerminalError};
use edge_drivers::scanner::{HidScanner, ScanSource, SerialScanner};
use edge_drivers::toledo::{Scale, WeighError, Weight};
use edge_drivers::transport;
use edge_drivers::uri::DeviceUri;
use edge_drivers::zvt::host::{Framing, Terminal};
use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Missed checks after which a device is declared gone.
pub const GONE_AFTER: u32 = 3;
/// Commands queued per device before the caller is told it is busy.
const QUEUE: usize = 64;
/// A cash drawer open longer than this is reported as left open.
pub const DRAWER_LEFT_OPEN: Duration = Duration::from_secs(30);
/// How long an interactive scanner check waits for a code.
pub const SCAN_CHECK_WAIT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Printer,
    Scanner,
    Scale,
    Display,
    Terminal,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "printer" => Kind::Printer,
            "scanner" => Kind::Scanner,
            "scale" => Kind::Scale,
            "display" => Kind::Display,
            "terminal" => Kind::Terminal,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Printer => "printer",
            Kind::Scanner => "scanner",
            Kind::Scale => "scale",
            Kind::Display => "display",
            Kind::Terminal => "terminal",
        }
    }
}

/// One configured device.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    pub id: String,
    pub kind: Kind,
    pub uri: DeviceUri,
    /// Pole displays: the command set.
    pub dialect: Dialect,
    /// Scanners: HID POS scanned-data reports rather than CR / LF terminated codes (always
    /// so over USB).
    pub hid: bool,
    /// Terminals: the ZVT password (6 digits), the currency (ISO 4217 numeric) and how long
    /// the terminal may stay silent during a payment (a customer at the PIN pad).
    pub password: u32,
    pub currency: u16,
    pub reply_timeout: Duration,
    /// Adyen terminals (`adyen://`): who the terminal is and the shared key.
    pub adyen: Option<AdyenSpec>,
}

/// What the POS needs to speak to an Adyen terminal (from the config and its secret file).
#[derive(Debug, Clone)]
pub struct AdyenSpec {
    /// The terminal's POIID (its certificate names it).
    pub poi_id: String,
    /// This POS's SaleID.
    pub sale_id: String,
    /// ISO 4217 alphabetic code of the store's currency.
    pub currency: String,
    /// The derived key (identifier and version shown, never the passphrase).
    pub key: edge_drivers::adyen::crypto::Key,
    /// PEM of the root the terminal's certificate must chain to.
    pub root_pem: Vec<u8>,
}

impl DeviceSpec {
    /// The terminal family this spec drives.
    pub fn family(&self) -> Family {
        if matches!(self.uri, DeviceUri::Adyen { .. }) { Family::Adyen } else { Family::Zvt }
    }

    /// A device with the usual framing for its link: CD5220 displays, HID POS over USB.
    pub fn new(id: &str, kind: Kind, uri: DeviceUri) -> DeviceSpec {
        let hid = kind == Kind::Scanner && matches!(uri, DeviceUri::Usb { .. });
        DeviceSpec {
            id: id.to_string(),
            kind,
            uri,
            dialect: Dialect::Cd5220,
            hid,
            password: 0,
            currency: 978,
            reply_timeout: Duration::from_secs(180),
            adyen: None,
        }
    }
}

/// Told once a print job ends: printed, or why not.
pub type PrintDone = Box<dyn FnOnce(Result<(), String>) + Send>;
/// Told once the drawer kick ends: whether the drawer's sensor reads open, or why not.
pub type DrawerDone = Box<dyn FnOnce(Result<bool, String>) + Send>;

enum Command {
    Print { job_id: String, receipt: Box<Receipt>, done: Option<PrintDone> },
    Show { upper: String, lower: String },
    Weigh { reply: Sender<Result<Weight, String>> },
    Health { level: HealthLevel, reply: Sender<Result<String, String>> },
    OpenDrawer { done: DrawerDone },
    Terminal { op: TerminalOp, events: TerminalEvents, reply: Sender<Result<Outcome, Failure>> },
}

/// What to ask the payment terminal. The payment's id names it to a terminal that is asked
/// about payments by reference (Adyen: its ServiceID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminalOp {
    Authorise {
        amount: i64,
        payment: uuid::Uuid,
    },
    /// `original`: the terminal's reference of the payment refunded (a referenced refund
    /// where the family has one; ZVT refunds the card presented).
    Refund {
        amount: i64,
        payment: uuid::Uuid,
        original: Option<String>,
    },
    /// A payment taken back: ZVT by its receipt number, Adyen by its reference (and the
    /// payment's id, which names the reversal).
    Reverse {
        receipt_no: Option<u32>,
        reference: Option<String>,
        payment: uuid::Uuid,
    },
    /// ZVT: the last transaction, repeated.
    RepeatReceipt,
    /// Adyen: what became of this payment (TransactionStatus by its ServiceID).
    TransactionStatus(uuid::Uuid),
    Status,
    Diagnosis,
    EndOfDay,
}

/// Where the terminal's prompts and status go while it works.
pub type TerminalEvents = Box<dyn FnMut(TerminalEvent) + Send>;

/// The ISO 4217 number of a currency, as ZVT sends it.
pub fn iso_numeric(c: edge_sync::money::Currency) -> Option<u16> {
    Some(match c.to_string().as_str() {
        "EUR" => 978,
        "USD" => 840,
        "GBP" => 826,
        "CHF" => 756,
        "CAD" => 124,
        "AUD" => 36,
        "SEK" => 752,
        "NOK" => 578,
        "DKK" => 208,
        "PLN" => 985,
        "CZK" => 203,
        "HUF" => 348,
        _ => return None,
    })
}

/// How a terminal command failed before it could run.
pub fn not_run(why: String) -> Failure {
    Failure { error: TerminalError::Link(why), in_doubt: false, partial: Box::default() }
}

/// Where a device stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    /// Started, not connected yet.
    Connecting,
    Online,
    /// The link failed; reconnecting with backoff.
    Offline,
    /// Several missed checks in a row.
    Gone,
}

impl DeviceState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Connecting => "connecting",
            DeviceState::Online => "online",
            DeviceState::Offline => "offline",
            DeviceState::Gone => "gone",
        }
    }
}

/// A device as the daemon last saw it.
#[derive(Debug, Clone)]
pub struct DeviceStatus {
    pub id: String,
    pub kind: Kind,
    pub state: DeviceState,
    /// The device's own words (`online, paper near end, drawer closed`), or the last error.
    pub health: String,
    pub uri: String,
    pub last_seen_at: Option<jiff::Timestamp>,
    /// UPOS statistics.
    pub stats: BTreeMap<String, String>,
}

impl DeviceStatus {
    /// The API's wire form (the event bus and `/v1/devices`).
    pub fn out(&self) -> DeviceOut {
        DeviceOut {
            id: self.id.clone(),
            kind: self.kind.name().into(),
            state: self.state.as_str().into(),
            health: self.health.clone(),
            uri: self.uri.clone(),
            last_seen_at: self.last_seen_at.map(|t| t.to_string()),
            stats: self.stats.clone(),
        }
    }
}

struct Slot {
    /// Terminals: set to ask the terminal to abort the payment under way.
    abort: Arc<std::sync::atomic::AtomicBool>,
    /// Terminals: the terminal said it cannot reach its host (store-and-forward only).
    offline: std::sync::atomic::AtomicBool,
    spec: DeviceSpec,
    out: Mutex<DeviceStatus>,
    tx: Mutex<Sender<Command>>,
    queued: std::sync::atomic::AtomicUsize,
}

/// Emits events to the daemon's bus.
pub type Emit = Arc<dyn Fn(Event) + Send + Sync>;

/// All devices of the daemon.
#[derive(Default)]
pub struct Devices {
    slots: BTreeMap<String, Arc<Slot>>,
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

impl Devices {
    /// Starts one thread per device.
    pub fn start(specs: Vec<DeviceSpec>, emit: Emit) -> Devices {
        let mut slots = BTreeMap::new();
        for spec in specs {
            let (tx, rx) = channel();
            let slot = Arc::new(Slot {
                out: Mutex::new(DeviceStatus {
                    id: spec.id.clone(),
                    kind: spec.kind,
                    state: DeviceState::Connecting,
                    health: "not checked yet".into(),
                    uri: spec.uri.to_string(),
                    last_seen_at: None,
                    stats: BTreeMap::new(),
                }),
                abort: Arc::new(std::sync::atomic::AtomicBool::new(false)),
                offline: std::sync::atomic::AtomicBool::new(false),
                spec: spec.clone(),
                tx: Mutex::new(tx),
                queued: std::sync::atomic::AtomicUsize::new(0),
            });
            let (s2, e2) = (slot.clone(), emit.clone());
            let spawned =
                std::thread::Builder::new().name(format!("device-{}", spec.id)).spawn(move || run(s2, rx, e2));
            if let Err(e) = spawned {
                tracing::error!(device = %spec.id, error = %e, "cannot start the device thread");
            }
            slots.insert(spec.id.clone(), slot);
        }
        Devices { slots }
    }

    pub fn list(&self) -> Vec<DeviceOut> {
        self.slots.values().map(|s| s.out.lock().unwrap_or_else(|p| p.into_inner()).out()).collect()
    }

    fn first(&self, kind: Kind) -> Option<&Arc<Slot>> {
        self.slots.values().find(|s| s.spec.kind == kind)
    }

    fn send(&self, slot: &Slot, c: Command) -> Result<(), String> {
        if slot.queued.load(std::sync::atomic::Ordering::SeqCst) >= QUEUE {
            return Err(format!("{} has {QUEUE} commands waiting", slot.spec.id));
        }
        slot.queued.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        slot.tx.lock().unwrap_or_else(|p| p.into_inner()).send(c).map_err(|_| format!("{} is stopped", slot.spec.id))
    }

    /// Whether a device of this kind is configured.
    pub fn has(&self, kind: Kind) -> bool {
        self.first(kind).is_some()
    }

    /// Queues a receipt on the first printer (job id = the sale id: printed once); `done`
    /// is told how it ended, from the printer's thread.
    pub fn print(&self, job_id: &str, receipt: Receipt, done: Option<PrintDone>) -> Result<(), String> {
        let slot = self.first(Kind::Printer).ok_or("no printer configured")?;
        self.send(slot, Command::Print { job_id: job_id.to_string(), receipt: Box::new(receipt), done })
    }

    /// Queues a drawer kick on the first printer; `done` is told how it ended.
    pub fn kick_drawer(&self, done: DrawerDone) -> Result<(), String> {
        let slot = self.first(Kind::Printer).ok_or("no printer (and so no cash drawer) configured")?;
        self.send(slot, Command::OpenDrawer { done })
    }

    /// Shows two lines on the first pole display.
    pub fn show(&self, upper: &str, lower: &str) -> Result<(), String> {
        let slot = self.first(Kind::Display).ok_or("no pole display configured")?;
        self.send(slot, Command::Show { upper: upper.into(), lower: lower.into() })
    }

    /// A stable weight from the first scale, or why there is none.
    pub fn weigh(&self, wait: Duration) -> Result<Weight, String> {
        let slot = self.first(Kind::Scale).ok_or("no scale configured")?;
        let (tx, rx) = channel();
        self.send(slot, Command::Weigh { reply: tx })?;
        rx.recv_timeout(wait).map_err(|_| "the scale did not answer in time".to_string())?
    }
}

impl Devices {
    fn by_id(&self, id: &str) -> Result<&Arc<Slot>, String> {
        self.slots.get(id).ok_or_else(|| format!("no device {id:?} is configured"))
    }

    /// One device's state, health and statistics.
    pub fn get(&self, id: &str) -> Option<DeviceOut> {
        self.slots.get(id).map(|s| s.out.lock().unwrap_or_else(|p| p.into_inner()).out())
    }

    /// UPOS checkHealth on one device, at a level; waits at most `wait` for the answer.
    pub fn check_health(&self, id: &str, level: HealthLevel, wait: Duration) -> Result<String, String> {
        let slot = self.by_id(id)?;
        let (tx, rx) = channel();
        self.send(slot, Command::Health { level, reply: tx })?;
        rx.recv_timeout(wait).map_err(|_| format!("{id} did not finish its health check in time"))?
    }

    /// The first payment terminal's id, if one is configured.
    pub fn terminal_id(&self) -> Option<String> {
        self.first(Kind::Terminal).map(|s| s.spec.id.clone())
    }

    /// The first payment terminal's family (ZVT when none is configured).
    pub fn terminal_family(&self) -> Family {
        self.first(Kind::Terminal).map_or(Family::Zvt, |s| s.spec.family())
    }

    /// Who the first payment terminal is, where its family asks by reference (Adyen).
    pub fn terminal_identity(&self) -> Option<String> {
        let s = self.first(Kind::Terminal)?;
        s.spec.adyen.as_ref().map(|a| format!("adyen {} {}", a.poi_id, a.sale_id))
    }

    /// Whether the terminal last said it cannot reach its host.
    pub fn terminal_offline(&self) -> bool {
        self.first(Kind::Terminal).is_some_and(|s| s.offline.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// Runs a command on the first payment terminal and waits for its end (at most `wait`
    /// beyond the queue). Prompts and status go to `events` as they come.
    pub fn terminal(&self, op: TerminalOp, events: TerminalEvents, wait: Duration) -> Result<Outcome, Failure> {
        let slot = self.first(Kind::Terminal).ok_or_else(|| not_run("no payment terminal configured".into()))?;
        let (tx, rx) = channel();
        self.send(slot, Command::Terminal { op, events, reply: tx }).map_err(not_run)?;
        match rx.recv_timeout(wait) {
            Ok(r) => r,
            // The command may be running: the caller must treat it as in doubt.
            Err(_) => Err(Failure {
                error: TerminalError::Timeout(wait.as_millis() as u64),
                in_doubt: true,
                partial: Box::default(),
            }),
        }
    }

    /// Asks the terminal to abort the payment under way (the customer or staff pressed stop).
    pub fn abort_terminal(&self) -> bool {
        match self.first(Kind::Terminal) {
            Some(s) => {
                s.abort.store(true, std::sync::atomic::Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    /// Kicks the cash drawer behind the first printer; says whether its sensor reads open.
    pub fn open_drawer(&self, wait: Duration) -> Result<bool, String> {
        let slot = self.first(Kind::Printer).ok_or("no printer (and so no cash drawer) configured")?;
        let (tx, rx) = channel();
        self.send(
            slot,
            Command::OpenDrawer {
                done: Box::new(move |r| {
                    let _ = tx.send(r);
                }),
            },
        )?;
        rx.recv_timeout(wait).map_err(|_| "the printer did not answer the drawer kick in time".to_string())?
    }
}

fn set(slot: &Slot, emit: &Emit, state: DeviceState, health: String, stats: BTreeMap<String, String>) {
    let changed;
    let out = {
        let mut o = slot.out.lock().unwrap_or_else(|p| p.into_inner());
        changed = o.state != state || o.health != health;
        o.state = state;
        o.health = health;
        o.stats = stats;
        if state == DeviceState::Online {
            o.last_seen_at = Some(jiff::Timestamp::now());
        }
        o.out()
    };
    if changed {
        tracing::info!(device = %out.id, state = %out.state, health = %out.health, "device status");
        emit(Event::DeviceStatus { at: now(), device: out });
    }
}

enum Driver {
    Printer(Printer),
    Scanner(Box<dyn ScanSource>),
    Scale(Scale),
    Display(PoleDisplay),
    Terminal(Box<Terminal>),
    Adyen(Box<AdyenTerminal>),
}

fn connect(spec: &DeviceSpec) -> Result<Driver, String> {
    if let (Kind::Terminal, DeviceUri::Adyen { host, port }) = (spec.kind, &spec.uri) {
        let a = spec.adyen.as_ref().ok_or("an adyen:// terminal needs its POIID, key and root certificate")?;
        let host = if host.contains(':') { format!("[{host}]") } else { host.clone() };
        let settings = edge_drivers::adyen::host::Settings {
            addr: format!("{host}:{port}"),
            poi_id: a.poi_id.clone(),
            sale_id: a.sale_id.clone(),
            currency: a.currency.clone(),
            connect_timeout: Duration::from_secs(3),
            reply_timeout: spec.reply_timeout,
            admin_timeout: Duration::from_secs(15),
        };
        let mut t = AdyenTerminal::new(&spec.id, settings, a.key.clone(), &a.root_pem).map_err(|e| e.to_string())?;
        t.lifecycle.open().map_err(|e| e.to_string())?;
        t.lifecycle.claim("edged").map_err(|e| e.to_string())?;
        t.lifecycle.enable().map_err(|e| e.to_string())?;
        // Login: the terminal learns who the sale system is; it proves the key and the TLS.
        let o = t.login().map_err(|e| format!("login: {e}"))?;
        if !o.approved {
            return Err(format!("login refused: {}", o.text));
        }
        return Ok(Driver::Adyen(Box::new(t)));
    }
    let want = if spec.hid { edge_drivers::usb::Want::InterruptIn } else { edge_drivers::usb::Want::Bulk };
    let link = transport::open_for(&spec.uri, Duration::from_secs(2), want).map_err(|e| e.to_string())?;
    let ready = |l: &mut edge_drivers::model::Lifecycle| -> Result<(), String> {
        l.open().map_err(|e| e.to_string())?;
        l.claim("edged").map_err(|e| e.to_string())?;
        l.enable().map_err(|e| e.to_string())
    };
    Ok(match spec.kind {
        Kind::Printer => {
            let mut p = Printer::new(&spec.id, link);
            ready(&mut p.lifecycle)?;
            Driver::Printer(p)
        }
        Kind::Scale => {
            let mut s = Scale::new(&spec.id, link);
            ready(&mut s.lifecycle)?;
            Driver::Scale(s)
        }
        Kind::Display => {
            let mut d = PoleDisplay::new(&spec.id, spec.dialect, link);
            ready(&mut d.lifecycle)?;
            Driver::Display(d)
        }
        Kind::Terminal => {
            let framing = match spec.uri {
                DeviceUri::Serial { .. } => Framing::Serial,
                DeviceUri::Tcp { .. } => Framing::Plain,
                DeviceUri::Usb { .. } | DeviceUri::Adyen { .. } => {
                    return Err("ZVT terminals are driven over serial or TCP".into());
                }
            };
            let mut t = Terminal::new(&spec.id, link, framing, spec.password, spec.currency);
            t.timeouts.idle = spec.reply_timeout;
            ready(&mut t.lifecycle)?;
            // Registration: the terminal learns who prints and who sets amounts.
            let o = t.register(&mut |_| {}).map_err(|e| format!("registration: {e}"))?;
            if !o.approved {
                return Err(format!("registration refused: {}", o.text));
            }
            Driver::Terminal(Box::new(t))
        }
        Kind::Scanner if spec.hid => Driver::Scanner(Box::new(HidScanner::new(link))),
        Kind::Scanner => Driver::Scanner(Box::new(SerialScanner::new(link))),
    })
}

fn run(slot: Arc<Slot>, rx: Receiver<Command>, emit: Emit) {
    let mut missed = 0u32;
    let mut backoff = Duration::from_millis(500);
    loop {
        let mut driver = match connect(&slot.spec) {
            Ok(d) => {
                missed = 0;
                backoff = Duration::from_millis(500);
                d
            }
            Err(e) => {
                missed += 1;
                let state = if missed >= GONE_AFTER { DeviceState::Gone } else { DeviceState::Offline };
                set(&slot, &emit, state, e, BTreeMap::new());
                // Commands that come meanwhile fail at once, saying why.
                let until = Instant::now() + backoff;
                while let Some(left) = until.checked_duration_since(Instant::now()) {
                    match rx.recv_timeout(left) {
                        Ok(c) => {
                            slot.queued.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                            fail(c, &slot.spec.id, state.as_str());
                        }
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        // Serve until the link fails.
        let err = serve(&slot, &rx, &emit, &mut driver);
        match err {
            None => return,
            Some(e) => {
                missed += 1;
                set(&slot, &emit, DeviceState::Offline, e, BTreeMap::new());
            }
        }
    }
}

fn fail(c: Command, id: &str, state: &str) {
    match c {
        Command::Weigh { reply } => {
            let _ = reply.send(Err(format!("{id} is {state}")));
        }
        Command::Print { job_id, done, .. } => {
            tracing::warn!(device = id, job = %job_id, "receipt not printed: the printer is {state}");
            if let Some(done) = done {
                done(Err(format!("the printer {id} is {state}")));
            }
        }
        Command::Show { .. } => {}
        Command::Health { reply, .. } => {
            let _ = reply.send(Err(format!("{id} is {state}")));
        }
        Command::OpenDrawer { done } => done(Err(format!("{id} is {state}"))),
        Command::Terminal { reply, .. } => {
            let _ = reply.send(Err(not_run(format!("{id} is {state}"))));
        }
    }
}

impl Driver {
    /// Runs a terminal command on either family (None: not a terminal). Each family does
    /// what the op means for it; what it cannot do is refused, nothing sent.
    fn terminal_op(&mut self, op: &TerminalOp, on: &mut dyn FnMut(TerminalEvent)) -> Option<Result<Outcome, Failure>> {
        let no = |why: &str| Err(not_run(why.to_string()));
        Some(match self {
            Driver::Terminal(t) => match op {
                TerminalOp::Authorise { amount, .. } => t.authorise(*amount, on),
                TerminalOp::Refund { amount, .. } => t.refund(*amount, on),
                TerminalOp::Reverse { receipt_no: Some(n), .. } => t.reverse(*n, on),
                TerminalOp::Reverse { receipt_no: None, .. } => no("a ZVT reversal needs the receipt number"),
                TerminalOp::RepeatReceipt => t.repeat_receipt(on),
                TerminalOp::TransactionStatus(_) => no("ZVT has no transaction status by reference"),
                TerminalOp::Status => t.status_enquiry(on),
                TerminalOp::Diagnosis => t.diagnosis(on),
                TerminalOp::EndOfDay => t.end_of_day(on),
            },
            Driver::Adyen(t) => match op {
                TerminalOp::Authorise { amount, payment } => t.authorise(*amount, payment.as_u128(), on),
                TerminalOp::Refund { amount, payment, original } => {
                    t.refund(*amount, payment.as_u128(), original.as_deref(), on)
                }
                TerminalOp::Reverse { reference: Some(r), payment, .. } => t.reverse(r, payment.as_u128()),
                TerminalOp::Reverse { reference: None, .. } => no("an Adyen reversal needs the terminal's reference"),
                TerminalOp::RepeatReceipt => no("the Adyen Terminal API has no repeat receipt; ask by reference"),
                TerminalOp::TransactionStatus(p) => t.transaction_status(p.as_u128()),
                TerminalOp::Status => t.status(),
                TerminalOp::Diagnosis => t.diagnosis(),
                TerminalOp::EndOfDay => t.end_of_day(),
            },
            _ => return None,
        })
    }

    fn set_abort(&mut self, flag: Arc<std::sync::atomic::AtomicBool>) {
        match self {
            Driver::Terminal(t) => t.abort = flag,
            Driver::Adyen(t) => t.abort = flag,
            _ => {}
        }
    }

    fn terminal_stats(&self) -> BTreeMap<String, String> {
        match self {
            Driver::Terminal(t) => t.lifecycle.stats.report(),
            Driver::Adyen(t) => t.lifecycle.stats.report(),
            _ => BTreeMap::new(),
        }
    }
}

/// The terminal's state in words from a status information text, and whether it is offline.
fn terminal_health(o: &Outcome) -> (String, bool) {
    let text = o.info.as_ref().and_then(|i| i.text.clone()).unwrap_or_else(|| "ready".into());
    let offline = text.to_ascii_uppercase().contains("OFFLINE");
    (text.to_lowercase(), offline)
}

fn scanner_stats(s: &dyn ScanSource) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("DeviceCategory".to_string(), "Scanner".to_string()),
        ("Interface".to_string(), s.describe()),
        ("CommunicationErrorCount".to_string(), s.communication_errors().to_string()),
    ])
}

/// The printer's health in words, with "drawer left open" once the drawer has been open
/// longer than [`DRAWER_LEFT_OPEN`].
fn printer_health(p: &mut Printer, open_since: &mut Option<(Instant, String)>) -> Result<String, String> {
    printer_health_after(p, open_since, DRAWER_LEFT_OPEN)
}

fn printer_health_after(
    p: &mut Printer,
    open_since: &mut Option<(Instant, String)>,
    left_open: Duration,
) -> Result<String, String> {
    let s = p.status().map_err(|e| e.to_string())?;
    let mut words = s.describe();
    if s.drawer_open {
        let (since, at) = open_since.get_or_insert_with(|| (Instant::now(), now()));
        if since.elapsed() >= left_open {
            words.push_str(&format!("; drawer left open (since {at})"));
        }
    } else {
        *open_since = None;
    }
    Ok(words)
}

/// Runs a connected driver; returns the error that broke the link, or None when the daemon
/// stops.
fn serve(slot: &Slot, rx: &Receiver<Command>, emit: &Emit, driver: &mut Driver) -> Option<String> {
    let id = slot.spec.id.clone();
    // Printers are polled for their status (paper, cover, drawer); scales and displays only
    // answer when asked.
    // A scanner's thread waits in its read (200 ms at a time), so commands are only checked
    // in passing: a code arriving is handled at once, never behind a command wait.
    let poll = match driver {
        Driver::Scanner(_) => Duration::ZERO,
        // ZVT: a status enquiry about once a minute lets the terminal run its timed jobs.
        Driver::Terminal(_) | Driver::Adyen(_) => Duration::from_secs(60),
        _ => Duration::from_secs(5),
    };
    let mut drawer_open_since = None;
    let mut first = true;
    loop {
        match driver {
            Driver::Printer(p) if first => match printer_health(p, &mut drawer_open_since) {
                Ok(h) => set(slot, emit, DeviceState::Online, h, p.lifecycle.stats.report()),
                Err(e) => return Some(e),
            },
            Driver::Scanner(s) => match s.next_scan(Duration::from_millis(200)) {
                Ok(Some(Ok(scan))) => {
                    set(slot, emit, DeviceState::Online, "ok".into(), scanner_stats(s.as_ref()));
                    emit(Event::Scan {
                        at: now(),
                        device: id.clone(),
                        data: scan.data,
                        aim: scan.aim,
                        gtin: scan.gtin,
                        lot: scan.lot,
                        expiry: scan.expiry,
                        net_weight_g: scan.net_weight_g,
                    });
                }
                Ok(Some(Err(e))) => {
                    tracing::warn!(device = %id, error = %e, "scan refused");
                    set(slot, emit, DeviceState::Online, format!("last scan refused: {e}"), scanner_stats(s.as_ref()));
                }
                Ok(None) => {
                    if first {
                        set(slot, emit, DeviceState::Online, "ok".into(), scanner_stats(s.as_ref()));
                    }
                }
                Err(e) => return Some(e.to_string()),
            },
            Driver::Display(d) if first => {
                set(slot, emit, DeviceState::Online, "ok".into(), d.lifecycle.stats.report())
            }
            Driver::Scale(s) if first => set(slot, emit, DeviceState::Online, "ok".into(), s.lifecycle.stats.report()),
            Driver::Terminal(t) if first => {
                set(slot, emit, DeviceState::Online, "registered".into(), t.lifecycle.stats.report())
            }
            Driver::Adyen(t) if first => {
                set(slot, emit, DeviceState::Online, "logged in".into(), t.lifecycle.stats.report())
            }
            _ => {}
        }
        first = false;
        let c = match rx.recv_timeout(poll) {
            Ok(c) => c,
            Err(RecvTimeoutError::Timeout) => {
                if let Driver::Printer(p) = driver {
                    match printer_health(p, &mut drawer_open_since) {
                        Ok(h) => set(slot, emit, DeviceState::Online, h, p.lifecycle.stats.report()),
                        Err(e) => return Some(e),
                    }
                }
                if let Some(r) = driver.terminal_op(&TerminalOp::Status, &mut |_| {}) {
                    match r {
                        Ok(o) => {
                            let (h, off) = terminal_health(&o);
                            slot.offline.store(off, std::sync::atomic::Ordering::SeqCst);
                            set(slot, emit, DeviceState::Online, h, driver.terminal_stats());
                        }
                        Err(e) => return Some(e.to_string()),
                    }
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return None,
        };
        slot.queued.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        match (c, &mut *driver) {
            (Command::Print { job_id, receipt, done }, Driver::Printer(p)) => {
                let result = match p.print(&job_id, &receipt) {
                    Ok((outcome, events)) => {
                        for e in events {
                            tracing::debug!(device = %id, event = ?e, "printer event");
                        }
                        let health = printer_health(p, &mut drawer_open_since).unwrap_or_else(|e| e);
                        set(slot, emit, DeviceState::Online, health, p.lifecycle.stats.report());
                        match outcome {
                            JobOutcome::Printed => {
                                tracing::info!(device = %id, job = %job_id, "receipt printed");
                                Ok(())
                            }
                            JobOutcome::NotPrinted(why) => Err(why),
                            JobOutcome::InDoubt(why) => Err(format!("{why} (part of it may have printed)")),
                        }
                    }
                    Err(e) => Err(e.to_string()),
                };
                if let Err(why) = &result {
                    tracing::warn!(device = %id, job = %job_id, %why, "receipt not printed");
                }
                if let Some(done) = done {
                    done(result);
                }
            }
            (Command::OpenDrawer { done }, Driver::Printer(p)) => {
                let r = p.open_drawer().map_err(|e| e.to_string());
                if r.is_ok() {
                    drawer_open_since = None;
                    tracing::info!(device = %id, "cash drawer kicked");
                }
                done(r);
            }
            (Command::Show { upper, lower }, Driver::Display(d)) => {
                if let Err(e) = d.show(&upper, &lower) {
                    return Some(e.to_string());
                }
            }
            (Command::Weigh { reply }, Driver::Scale(s)) => {
                let r = s.weigh();
                let broken = matches!(&r, Err(WeighError::Device(_)));
                let _ = reply.send(r.map_err(|e| e.to_string()));
                if broken {
                    return Some("the scale stopped answering".into());
                }
            }
            (Command::Terminal { op, mut events, reply }, d @ (Driver::Terminal(_) | Driver::Adyen(_))) => {
                d.set_abort(slot.abort.clone());
                let on = &mut *events;
                let r = d.terminal_op(&op, on).unwrap_or_else(|| Err(not_run("not a payment terminal".into())));
                slot.abort.store(false, std::sync::atomic::Ordering::SeqCst);
                let broken = matches!(&r, Err(f) if f.error.is_link());
                if let Ok(o) = &r {
                    let (h, off) = terminal_health(o);
                    if op == TerminalOp::Status || off {
                        slot.offline.store(off, std::sync::atomic::Ordering::SeqCst);
                    }
                    if op == TerminalOp::Status {
                        set(slot, emit, DeviceState::Online, h, d.terminal_stats());
                    }
                }
                let _ = reply.send(r);
                if broken {
                    return Some("the terminal link broke".into());
                }
            }
            (Command::Health { level, reply }, d) => {
                let r = match d {
                    Driver::Printer(p) => p.check_health(level).map_err(|e| e.to_string()),
                    Driver::Scale(s) => s.check_health(level).map_err(|e| e.to_string()),
                    Driver::Display(d) => d.check_health(level).map_err(|e| e.to_string()),
                    Driver::Scanner(s) => scanner_health(s.as_mut(), level, &id),
                    t @ (Driver::Terminal(_) | Driver::Adyen(_)) => match level {
                        HealthLevel::Internal => t
                            .terminal_op(&TerminalOp::Status, &mut |_| {})
                            .unwrap_or_else(|| Err(not_run("not a terminal".into())))
                            .map(|o| format!("Internal HCheck: {}", terminal_health(&o).0)),
                        _ => t
                            .terminal_op(&TerminalOp::Diagnosis, &mut |_| {})
                            .unwrap_or_else(|| Err(not_run("not a terminal".into())))
                            .map(|o| {
                                format!("External HCheck: diagnosis {}", if o.approved { "passed" } else { &o.text })
                            }),
                    }
                    .map_err(|e| e.to_string()),
                };
                tracing::info!(device = %id, level = ?level, result = ?r, "health check");
                let _ = reply.send(r);
            }
            (c, _) => fail(c, &id, "not that kind of device"),
        }
    }
}

/// A scanner only sends: internal and external checks report the link and its garbled-code
/// count; the interactive check waits for the operator to scan a code and reports it (the
/// scan is not sent to the screens).
fn scanner_health(s: &mut dyn ScanSource, level: HealthLevel, id: &str) -> Result<String, String> {
    let errors = s.communication_errors();
    match level {
        HealthLevel::Internal | HealthLevel::External => Ok(format!(
            "{:?} HCheck: link {} open; {errors} garbled codes so far (a scanner cannot be asked; use the \
             interactive check to scan a code)",
            level,
            s.describe()
        )),
        HealthLevel::Interactive => {
            let deadline = Instant::now() + SCAN_CHECK_WAIT;
            while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                match s.next_scan(left).map_err(|e| format!("{id}: {e}"))? {
                    Some(Ok(scan)) => {
                        return Ok(format!(
                            "Interactive HCheck: read {:?} (symbology {}){}",
                            scan.data,
                            scan.aim.as_deref().unwrap_or("not sent"),
                            scan.gtin.map(|g| format!(", GTIN {g} check digit right")).unwrap_or_default()
                        ));
                    }
                    Some(Err(e)) => return Ok(format!("Interactive HCheck: a code came but was refused: {e}")),
                    None => {}
                }
            }
            Err(format!("{id}: no code was scanned within {} s", SCAN_CHECK_WAIT.as_secs()))
        }
    }
}

/// Lines for the pole display during a sale.
pub fn display_lines(last_item: &str, price: &str, total_word: &str, total: &str) -> (String, String) {
    (two_sided(last_item, price), two_sided(total_word, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_drivers::escpos::sim::PrinterSim;
    use edge_drivers::transport::{TcpLink, serve_peer};

    /// The printer's health names a drawer left open, and forgets it once the drawer closes.
    #[test]
    fn a_drawer_open_too_long_is_reported_left_open() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let sim = Arc::new(Mutex::new(PrinterSim::new()));
        let s2 = sim.clone();
        let stop: &'static std::sync::atomic::AtomicBool =
            Box::leak(Box::new(std::sync::atomic::AtomicBool::new(false)));
        std::thread::spawn(move || {
            if let Some(s) = l.incoming().flatten().next() {
                let _ = serve_peer(&mut TcpLink::from_stream(s), s2.as_ref(), stop);
            }
        });
        let link = TcpLink::connect("127.0.0.1", port, Duration::from_secs(2)).expect("connect");
        let mut p = Printer::new("printer", Box::new(link));
        p.lifecycle.open().expect("open");
        p.lifecycle.claim("test").expect("claim");
        p.lifecycle.enable().expect("enable");
        let mut since = None;
        let left = Duration::from_millis(200);
        assert!(p.open_drawer().expect("kick"), "the sensor reads open after the kick");
        let h = printer_health_after(&mut p, &mut since, left).expect("health");
        assert!(h.contains("drawer open") && !h.contains("left open"), "{h}");
        std::thread::sleep(left);
        let h = printer_health_after(&mut p, &mut since, left).expect("health");
        assert!(h.contains("drawer left open (since"), "{h}");
        sim.lock().expect("sim").condition.drawer_open = false;
        let h = printer_health_after(&mut p, &mut since, left).expect("health");
        assert!(h.contains("drawer closed") && !h.contains("left open") && since.is_none(), "{h}");
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
