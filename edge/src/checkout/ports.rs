//! What the checkout drives, as typed ports: the peripherals (scale, payment terminal,
//! printer with its drawer, pole display), the clock, the event bus and the sync engine's
//! wake. The daemon plugs in its real devices (devices.rs), the system clock, its
//! broadcast bus and the engine; the in-process tests plug in fake peripherals, a fixed
//! clock and a counter — the checkout cannot tell them apart.

use crate::devices::{Devices, DrawerDone, PrintDone, TerminalEvents, TerminalOp};
use edge_drivers::escpos::Receipt;
use edge_drivers::payment::{Failure, Family, Outcome};
use jiff::Timestamp;
use std::sync::Arc;
use std::time::Duration;

/// The store's peripherals as the checkout uses them. Every method returns at once or
/// within its `wait`; queued work (print, drawer, display) reports through its callback.
pub trait Peripherals: Send + Sync {
    /// A stable weight from the scale, in grams, or why there is none.
    fn weigh(&self, wait: Duration) -> Result<i64, String>;
    /// The payment terminal's id, if one is configured.
    fn terminal_id(&self) -> Option<String>;
    /// Whether the terminal last said it cannot reach its host.
    fn terminal_offline(&self) -> bool;
    /// How the terminal settles a payment whose answer was lost (ZVT unless told).
    fn terminal_family(&self) -> Family {
        Family::Zvt
    }
    /// Who the terminal is, where its family settles by reference (None for ZVT).
    fn terminal_identity(&self) -> Option<String> {
        None
    }
    /// Runs a command on the payment terminal, waiting at most `wait` for its end.
    fn terminal(&self, op: TerminalOp, events: TerminalEvents, wait: Duration) -> Result<Outcome, Failure>;
    /// Whether a receipt printer is configured.
    fn has_printer(&self) -> bool;
    /// Queues a receipt (printed once per job id); `done` is told how it ended.
    fn print(&self, job_id: &str, receipt: Receipt, done: Option<PrintDone>) -> Result<(), String>;
    /// Queues a drawer kick; `done` is told how it ended.
    fn kick_drawer(&self, done: DrawerDone) -> Result<(), String>;
    /// Shows two lines on the pole display.
    fn show(&self, upper: &str, lower: &str) -> Result<(), String>;
}

impl Peripherals for Devices {
    fn weigh(&self, wait: Duration) -> Result<i64, String> {
        Devices::weigh(self, wait).map(|w| w.grams)
    }
    fn terminal_id(&self) -> Option<String> {
        Devices::terminal_id(self)
    }
    fn terminal_offline(&self) -> bool {
        Devices::terminal_offline(self)
    }
    fn terminal_family(&self) -> Family {
        Devices::terminal_family(self)
    }
    fn terminal_identity(&self) -> Option<String> {
        Devices::terminal_identity(self)
    }
    fn terminal(&self, op: TerminalOp, events: TerminalEvents, wait: Duration) -> Result<Outcome, Failure> {
        Devices::terminal(self, op, events, wait)
    }
    fn has_printer(&self) -> bool {
        self.has(crate::devices::Kind::Printer)
    }
    fn print(&self, job_id: &str, receipt: Receipt, done: Option<PrintDone>) -> Result<(), String> {
        Devices::print(self, job_id, receipt, done)
    }
    fn kick_drawer(&self, done: DrawerDone) -> Result<(), String> {
        Devices::kick_drawer(self, done)
    }
    fn show(&self, upper: &str, lower: &str) -> Result<(), String> {
        Devices::show(self, upper, lower)
    }
}

/// The time of day, UTC: the sync engine's clock port, shared.
pub use edge_sync::engine::run::{Clock, SystemClock};

/// A clock that says what it is told (tests).
pub struct FixedClock(pub std::sync::Mutex<Timestamp>);

impl FixedClock {
    pub fn at(t: Timestamp) -> FixedClock {
        FixedClock(std::sync::Mutex::new(t))
    }
    pub fn set(&self, t: Timestamp) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = t;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Wakes the sync engine: a committed record goes out without waiting for its idle timer.
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// Measures the data disk's free bytes (the disk guard's reading).
pub type DiskFree = Arc<dyn Fn() -> Result<u64, String> + Send + Sync>;

/// Everything the checkout drives.
#[derive(Clone)]
pub struct Ports {
    pub clock: Arc<dyn Clock>,
    pub events: tokio::sync::broadcast::Sender<edge_api::Event>,
    pub wake: Wake,
    pub disk_free: DiskFree,
}

/// What the other lanes of the store may hold against a sale or a refund (`[bus]`): claims
/// through the store's server before the commit. Blocking.
pub trait LaneClaims: Send + Sync {
    /// Claims `qty` of a SKU's last units for `sale`; `available` is what this lane shows.
    fn claim_stock(&self, sku: &str, qty: i64, available: i64, sale: uuid::Uuid) -> ClaimOutcome;
    /// Claims the lines of `refund` of sale `orig`: (line, qty, sold, refunded here).
    fn claim_refund(&self, orig: uuid::Uuid, refund: uuid::Uuid, lines: &[(u32, u64, u64, u64)]) -> ClaimOutcome;
    /// Lanes that share the store's stock (at least 1): the offline escrow divides by them.
    fn lanes(&self) -> u32;
}

/// A claim's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    Granted,
    /// Taken already; the reason says by whom and what is left.
    Refused(String),
    /// The store's server cannot be reached: the offline rules decide.
    Unreachable(String),
}
