//! After a commit, off the request path: the drawer kick, the receipt and the pole display
//! of a sale or refund, and what became of them.
//!
//! The API answers a sale as soon as it is durable. What the peripherals do afterwards is
//! queued here and runs on this module's own thread, which hands each job to the device's
//! own queue (devices.rs) and never waits for a device: a slow, hung or absent printer can
//! delay neither an acknowledgement nor the next sale's receipt job.
//!
//! Outcomes arrive as events — `receipt.printed`, `receipt.failed` (with the reason, so a
//! screen can offer a reprint), `drawer.opened`, `drawer.failed` — and in the sale's
//! [`ReceiptState`] (`GET /v1/sales/{id}`). A receipt not printed within
//! [`PRINT_DEADLINE`] is reported failed ("the printer has not printed it"); if it prints
//! later, `receipt.printed` follows. The receipt states are kept in memory for the last
//! [`KEEP`] sales: after a restart a sale's receipt state is `unknown`, never guessed.

use edge_api::Event;
use edge_sync::domain::Sale;
use jiff::Timestamp;
use std::collections::{BTreeMap, VecDeque};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long a receipt may wait for the printer before it is reported failed.
pub const PRINT_DEADLINE: Duration = Duration::from_secs(15);
/// Receipt states kept (the newest sales).
pub const KEEP: usize = 10_000;
/// Jobs waiting for this module's thread before new ones are refused (and logged).
pub const QUEUE: usize = 1_000;

/// What a job asks of the peripherals.
pub struct Job {
    pub sale: Sale,
    /// Kick the drawer (cash in or out).
    pub drawer: bool,
    /// Print the receipt (or a copy).
    pub print: bool,
    /// A copy (reprint) rather than the receipt itself.
    pub copy: bool,
    /// Show the last line and the total on the pole display.
    pub display: bool,
}

/// Where a sale's receipt stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptState {
    NotRequested,
    NoPrinter,
    Queued { since: Timestamp },
    Printed { at: Timestamp },
    Failed { at: Timestamp, reason: String },
}

impl ReceiptState {
    pub fn name(&self) -> &'static str {
        match self {
            ReceiptState::NotRequested => "not_requested",
            ReceiptState::NoPrinter => "no_printer",
            ReceiptState::Queued { .. } => "queued",
            ReceiptState::Printed { .. } => "printed",
            ReceiptState::Failed { .. } => "failed",
        }
    }
}

/// The receipts of the newest sales, and copies asked for.
#[derive(Default)]
struct Book {
    states: BTreeMap<Uuid, (ReceiptState, u32, Option<Instant>)>,
    order: VecDeque<Uuid>,
}

impl Book {
    fn set(&mut self, id: Uuid, state: ReceiptState, copy: bool) {
        let queued_at = matches!(state, ReceiptState::Queued { .. }).then(Instant::now);
        match self.states.get_mut(&id) {
            Some(e) => {
                if copy {
                    e.1 += 1;
                }
                e.0 = state;
                e.2 = queued_at;
            }
            None => {
                self.states.insert(id, (state, u32::from(copy), queued_at));
                self.order.push_back(id);
                while self.order.len() > KEEP {
                    if let Some(old) = self.order.pop_front() {
                        self.states.remove(&old);
                    }
                }
            }
        }
    }

    /// Receipts queued longer than the deadline: reported failed once.
    fn overdue(&mut self) -> Vec<Uuid> {
        let mut out = Vec::new();
        for (id, (state, _, queued_at)) in self.states.iter_mut() {
            if queued_at.is_some_and(|t| t.elapsed() > PRINT_DEADLINE) {
                *state = ReceiptState::Failed {
                    at: Timestamp::now(),
                    reason: format!("the printer has not printed it in {} s", PRINT_DEADLINE.as_secs()),
                };
                *queued_at = None;
                out.push(*id);
            }
        }
        out
    }
}

/// The after-commit queue and what became of the receipts.
pub struct AfterCommit {
    tx: Mutex<Sender<Job>>,
    rx: Mutex<Option<Receiver<Job>>>,
    book: Arc<Mutex<Book>>,
    queued: Arc<std::sync::atomic::AtomicUsize>,
}

impl Default for AfterCommit {
    fn default() -> Self {
        let (tx, rx) = channel();
        AfterCommit { tx: Mutex::new(tx), rx: Mutex::new(Some(rx)), book: Arc::default(), queued: Arc::default() }
    }
}

/// The devices, once they are started.
pub type DevicesPort = Arc<dyn Fn() -> Option<Arc<dyn super::ports::Peripherals>> + Send + Sync>;
/// Makes the printed receipt of a sale (a copy when `true`).
pub type ReceiptPort = Arc<dyn Fn(&Sale, bool) -> edge_drivers::escpos::Receipt + Send + Sync>;

/// What the worker needs: the devices (once started), the event bus and the receipt maker.
pub struct Ports {
    pub devices: DevicesPort,
    pub events: tokio::sync::broadcast::Sender<Event>,
    pub receipt: ReceiptPort,
    /// The language of what customers read (the pole display's words and numbers).
    pub lang: edge_api::locale::Lang,
}

impl AfterCommit {
    /// Queues a job; never blocks. A full queue drops the job (logged, receipt failed).
    pub fn submit(&self, job: Job) {
        let id = job.sale.id;
        let (print, copy) = (job.print, job.copy);
        if self.queued.load(std::sync::atomic::Ordering::SeqCst) >= QUEUE {
            tracing::error!(sale_id = %id, "after-commit queue full: drawer, receipt and display skipped");
            if print {
                self.lock_book().set(
                    id,
                    ReceiptState::Failed { at: Timestamp::now(), reason: "too many receipts waiting".into() },
                    copy,
                );
            }
            return;
        }
        if print {
            self.lock_book().set(id, ReceiptState::Queued { since: Timestamp::now() }, copy);
        } else if !copy {
            self.lock_book().set(id, ReceiptState::NotRequested, false);
        }
        self.queued.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.tx.lock().unwrap_or_else(|p| p.into_inner()).send(job).is_err() {
            tracing::warn!(sale_id = %id, "after-commit worker stopped");
        }
    }

    /// The receipt of a sale as far as this run of edged knows (`None`: not seen), with
    /// the copies asked for.
    pub fn receipt(&self, id: &Uuid) -> Option<(ReceiptState, u32)> {
        self.lock_book().states.get(id).map(|(s, copies, _)| (s.clone(), *copies))
    }

    fn lock_book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the worker thread (once).
    pub fn spawn(&self, ports: Ports) {
        let Some(rx) = self.rx.lock().unwrap_or_else(|p| p.into_inner()).take() else { return };
        let book = self.book.clone();
        let queued = self.queued.clone();
        let spawned = std::thread::Builder::new().name("after-commit".into()).spawn(move || {
            loop {
                match rx.recv_timeout(Duration::from_millis(500)) {
                    Ok(job) => {
                        queued.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                        run(&ports, &book, job);
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                let overdue = book.lock().unwrap_or_else(|p| p.into_inner()).overdue();
                for sale_id in overdue {
                    let reason = format!("the printer has not printed it in {} s", PRINT_DEADLINE.as_secs());
                    tracing::warn!(%sale_id, %reason, "receipt failed");
                    let _ = ports.events.send(Event::ReceiptFailed { at: now(), sale_id, copy: false, reason });
                }
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "after-commit worker not started: no receipts, drawer kicks or display");
        }
    }
}

fn now() -> String {
    Timestamp::now().to_string()
}

/// Hands one job to the devices' queues; outcomes come back from the devices' threads.
fn run(ports: &Ports, book: &Arc<Mutex<Book>>, job: Job) {
    let sale_id = job.sale.id;
    let Some(d) = (ports.devices)() else {
        if job.print {
            book.lock().unwrap_or_else(|p| p.into_inner()).set(sale_id, ReceiptState::NoPrinter, job.copy);
        }
        return;
    };
    if job.drawer {
        let events = ports.events.clone();
        let queued = d.kick_drawer(Box::new(move |r| {
            let _ = events.send(match r {
                Ok(_) => Event::DrawerOpened { at: now(), sale_id },
                Err(reason) => Event::DrawerFailed { at: now(), sale_id, reason },
            });
        }));
        if let Err(reason) = queued {
            tracing::debug!(%sale_id, %reason, "drawer not kicked");
            let _ = ports.events.send(Event::DrawerFailed { at: now(), sale_id, reason });
        }
    }
    if job.print {
        let (events, book2, copy) = (ports.events.clone(), book.clone(), job.copy);
        let done: crate::devices::PrintDone = Box::new(move |r| {
            let mut b = book2.lock().unwrap_or_else(|p| p.into_inner());
            let event = match r {
                Ok(()) => {
                    b.set(sale_id, ReceiptState::Printed { at: Timestamp::now() }, false);
                    Event::ReceiptPrinted { at: now(), sale_id, copy }
                }
                Err(reason) => {
                    b.set(sale_id, ReceiptState::Failed { at: Timestamp::now(), reason: reason.clone() }, false);
                    Event::ReceiptFailed { at: now(), sale_id, copy, reason }
                }
            };
            drop(b);
            let _ = events.send(event);
        });
        let receipt = (ports.receipt)(&job.sale, job.copy);
        let job_id =
            if job.copy { format!("{sale_id}-copy-{}", edge_sync::domain::new_id()) } else { sale_id.to_string() };
        if let Err(reason) = d.print(&job_id, receipt, Some(done)) {
            let state = if !d.has_printer() {
                ReceiptState::NoPrinter
            } else {
                ReceiptState::Failed { at: Timestamp::now(), reason: reason.clone() }
            };
            book.lock().unwrap_or_else(|p| p.into_inner()).set(sale_id, state, false);
            let _ = ports.events.send(Event::ReceiptFailed { at: now(), sale_id, copy: job.copy, reason });
        }
    }
    if job.display
        && let Some(l) = job.sale.lines.last()
    {
        // The currency by its code: pole displays' character sets rarely have `€`.
        let (cur, exp) = (job.sale.currency.as_str(), job.sale.currency.exponent());
        let money = |m: i64| format!("{} {cur}", edge_api::locale::amount(m, exp, ports.lang));
        let total_word = match ports.lang {
            edge_api::locale::Lang::En => "TOTAL",
            edge_api::locale::Lang::De => "SUMME",
        };
        let (upper, lower) =
            crate::devices::display_lines(&l.name, &money(l.gross_minor), total_word, &money(job.sale.total_minor));
        let _ = d.show(&upper, &lower);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_book_keeps_the_newest_and_reports_overdue_once() {
        let mut b = Book::default();
        let ids: Vec<Uuid> = (0..KEEP + 5).map(|_| edge_sync::domain::new_id()).collect();
        for id in &ids {
            b.set(*id, ReceiptState::NotRequested, false);
        }
        assert_eq!(b.states.len(), KEEP, "bounded");
        assert!(!b.states.contains_key(&ids[0]) && b.states.contains_key(&ids[KEEP + 4]), "the oldest go first");
        let id = ids[KEEP + 4];
        b.set(id, ReceiptState::Queued { since: Timestamp::now() }, false);
        assert!(b.overdue().is_empty(), "not yet");
        if let Some(e) = b.states.get_mut(&id) {
            e.2 = Instant::now().checked_sub(PRINT_DEADLINE + Duration::from_secs(1));
        }
        assert_eq!(b.overdue(), vec![id]);
        assert!(b.overdue().is_empty(), "reported once");
        assert_eq!(b.states[&id].0.name(), "failed");
        b.set(id, ReceiptState::Queued { since: Timestamp::now() }, true);
        assert_eq!(b.states[&id].1, 1, "a copy counted");
    }
}
