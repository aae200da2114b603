//! Checkout: the path of a sale, a refund and a stock adjustment, from the request to what
//! happens after the commit. No HTTP, no wire types: the API (http.rs) maps its bodies to
//! [`order`]s, calls [`Checkout`], and maps a [`Refusal`] to its status.
//!
//! ```text
//! admit ─→ price ─→ tender ─────────────→ commit ─→ after the commit
//! disk guard  price.rs   cash, or card:       one journaled,    engine woken, metrics,
//! shutdown    adjust.rs  payments.rs (lease,   fdatasynced store  events; drawer, receipt,
//! gate                   intent, terminal,     transaction        display on after.rs's
//!                        approval)                                 thread (never waited for)
//! ```
//!
//! - **admit**: refused below the disk guard (`data.min_free_mb`, kind `StorageLow`) or once
//!   shutdown began (`Unavailable`); the permit keeps shutdown from finishing under a commit.
//! - **idempotency**: a key (or a client-made id) answers what the first request stored —
//!   before a device is asked anything — once that commit is durable; another order under
//!   the same key is refused (`Conflict`). Each order has one [`order::Fingerprint`].
//! - **price** ([`price`], [`adjust`]): pure functions of the order, the catalog and the
//!   clock; a refusal names the field at fault and leaves no trace.
//! - **tender**: cash is settled in the price step; a card goes through the payment state
//!   machine ([`payments`]), whose intent is durable before the terminal hears of it.
//! - **commit**: the store's one transaction (sale, stock, outbox entries per remote).
//! - **after the commit** ([`Checkout::after_sale`]): the same for every way a record is
//!   committed — a sale or refund from the API, a card sale finished by recovery after a
//!   restart, a payment settled by a manager, an adjustment: the engine is woken, metrics
//!   count it, `sale.completed` goes out, and the peripherals' jobs are queued on
//!   [`after`]'s thread. Nothing there can fail or delay a commit that has happened.
//!
//! What the checkout drives comes in through typed [`ports`] (peripherals, clock, event
//! bus, the engine's wake, the disk's free space), so it runs in-process over a temporary
//! store, fake peripherals and a fixed clock (edge/tests/checkout_ports.rs).

pub mod adjust;
pub mod after;
pub mod error;
pub mod lanes;
pub mod order;
pub mod payments;
pub mod ports;
pub mod price;
pub mod receipt;

pub use error::{Refusal, RefusalKind};

use crate::config::Config;
use crate::metrics::Metrics;
use edge_api::Event;
use edge_sync::domain::{AuditRecord, Sale, SaleKind, StockAdjustment, Tender, new_id};
use edge_sync::store::{AdjustmentCommit, AdjustmentOutcome, CommitOutcome, SaleCommit, Store};
use jiff::Timestamp;
use order::{Actor, AdjustOrder, Fingerprint, RefundOrder, SaleOrder};
use ports::{Peripherals, Ports};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedRwLockReadGuard, RwLock};
use uuid::Uuid;

/// How a sale was committed (for the log and the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Answered to the request that made it.
    Request,
    /// Finished by the payment recovery loop after a restart, or settled by a manager.
    Recovery,
}

/// A committed record: made by this call, or the one a repeated request made first.
#[derive(Debug, Clone, PartialEq)]
pub enum Committed<T> {
    Created(T),
    Replayed(T),
}

impl<T> Committed<T> {
    pub fn record(&self) -> &T {
        match self {
            Committed::Created(t) | Committed::Replayed(t) => t,
        }
    }
    pub fn replayed(&self) -> bool {
        matches!(self, Committed::Replayed(_))
    }
}

/// The checkout: what it drives, and the state of its admission and its terminal.
pub struct Checkout {
    pub cfg: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub ports: Ports,
    pub metrics: Arc<Metrics>,
    /// Drawer kicks, receipts and pole display after a commit, off the request path.
    pub after: after::AfterCommit,
    /// The payment terminal, held by one payment (or recovery, reversal, end-of-day) at a time.
    pub(crate) lease: payments::Lease,
    peripherals: OnceLock<Arc<dyn Peripherals>>,
    /// A manager forced card acceptance offline (audited).
    force_offline: AtomicBool,
    accepting: AtomicBool,
    gate: Arc<RwLock<()>>,
    /// Free bytes on the data disk as last measured (u64::MAX until measured), and when.
    disk_free: AtomicU64,
    disk_at: Mutex<Option<Instant>>,
    /// Claims across the store's lanes (set when `[bus]` is configured).
    pub lanes: OnceLock<Arc<dyn ports::LaneClaims>>,
}

/// A permit to commit: shutdown waits until every permit is dropped.
pub type Permit = OwnedRwLockReadGuard<()>;

impl Checkout {
    pub fn new(cfg: Arc<Config>, store: Arc<dyn Store>, ports: Ports, metrics: Arc<Metrics>) -> Checkout {
        Checkout {
            cfg,
            store,
            ports,
            metrics,
            after: after::AfterCommit::default(),
            lease: payments::Lease::default(),
            peripherals: OnceLock::new(),
            force_offline: AtomicBool::new(false),
            accepting: AtomicBool::new(true),
            gate: Arc::new(RwLock::new(())),
            disk_free: AtomicU64::new(u64::MAX),
            disk_at: Mutex::new(None),
            lanes: OnceLock::new(),
        }
    }

    /// Plugs in the peripherals once they are started, and starts the after-commit worker.
    pub fn attach(self: &Arc<Self>, p: Arc<dyn Peripherals>) {
        let _ = self.peripherals.set(p);
        let weak = Arc::downgrade(self);
        let for_receipts = weak.clone();
        self.after.spawn(after::Ports {
            devices: Arc::new(move || weak.upgrade().and_then(|c| c.peripherals())),
            events: self.ports.events.clone(),
            receipt: Arc::new(move |s, copy| match for_receipts.upgrade() {
                Some(c) => c.receipt(s, copy).escpos(),
                // Shutting down: the job is dropped with the checkout.
                None => edge_drivers::escpos::Receipt::default(),
            }),
            lang: self.cfg.receipt.language,
        });
    }

    /// The peripherals, once started.
    pub fn peripherals(&self) -> Option<Arc<dyn Peripherals>> {
        self.peripherals.get().cloned()
    }

    pub fn now(&self) -> Timestamp {
        self.ports.clock.now()
    }

    fn emit(&self, e: Event) {
        let _ = self.ports.events.send(e);
    }

    // ---- admission -------------------------------------------------------------------

    /// Measures the data disk's free space now.
    pub fn measure_disk(&self) -> u64 {
        match (self.ports.disk_free)() {
            Ok(free) => {
                self.disk_free.store(free, Ordering::SeqCst);
                *self.disk_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                free
            }
            Err(e) => {
                tracing::warn!(error = %e, "free disk not measured");
                u64::MAX
            }
        }
    }

    /// The free space last measured.
    pub fn disk_free(&self) -> u64 {
        self.disk_free.load(Ordering::SeqCst)
    }

    /// Whether a new record may be taken: refused below `data.min_free_mb`, before the
    /// store can fill. A reading older than a second, or a low one, is taken again — at
    /// most one measurement a second however fast sales come, and freed space counts at once.
    pub fn disk_guard(&self) -> Result<(), String> {
        let min = self.cfg.min_free_bytes;
        if min == 0 {
            return Ok(());
        }
        let fresh = self
            .disk_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1));
        let mut free = self.disk_free();
        if !fresh || free < min {
            free = self.measure_disk();
        }
        if free < min {
            return Err(format!(
                "only {} MiB free on the data disk ({}); new sales are refused below {} MiB so the store cannot fill: free space, then retry",
                free >> 20,
                self.cfg.data_dir.display(),
                min >> 20
            ));
        }
        Ok(())
    }

    /// Admits a commit of `what` (sale, refund, adjustment): the disk guard, then the
    /// shutdown gate. Blocking (the disk may be measured).
    pub fn admit(&self, what: &str) -> Result<Permit, Refusal> {
        if let Err(why) = self.disk_guard() {
            tracing::warn!(%why, "{what} refused: disk low");
            return Err(Refusal {
                kind: RefusalKind::StorageLow,
                slug: "disk-low",
                title: "Disk nearly full",
                detail: why,
                field: None,
            });
        }
        let permit = self.accepting().then(|| self.gate.clone().try_read_owned().ok()).flatten();
        permit.ok_or_else(|| Refusal {
            kind: RefusalKind::Unavailable,
            slug: "shutting-down",
            title: "Daemon stopping",
            detail: format!(
                "edged is shutting down and takes no new {what}s; retry with the same Idempotency-Key when it is back"
            ),
            field: None,
        })
    }

    pub fn accepting(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
    }

    /// Stops admitting and waits until every commit in progress has returned.
    pub async fn drain(&self) {
        self.accepting.store(false, Ordering::SeqCst);
        let _all = self.gate.write().await;
    }

    pub fn forced_offline(&self) -> bool {
        self.force_offline.load(Ordering::SeqCst)
    }

    pub fn force_offline(&self, on: bool) {
        self.force_offline.store(on, Ordering::SeqCst);
    }

    // ---- the paths -------------------------------------------------------------------

    /// A sale: admitted, replayed or priced, paid (cash, or card through the terminal),
    /// committed; the peripherals follow after the commit. Blocking.
    pub fn sell(&self, order: SaleOrder, key: Option<String>, by: &Actor) -> Result<Committed<Sale>, Refusal> {
        let print = order.receipt != Some(false);
        let r = self.sell_inner(order, key, by).map(|(c, admitted)| {
            if let Committed::Created(_) = &c {
                // From admission to the durable commit (pricing, weighing, card, store).
                self.metrics.commit_duration.observe(admitted.elapsed().as_secs_f64());
            }
            c
        });
        match &r {
            Ok(Committed::Created(sale)) => {
                self.after_sale(sale, print, Origin::Request);
            }
            Ok(Committed::Replayed(sale)) => {
                tracing::info!(sale_id = %sale.id, "sale replayed for a repeated key or id")
            }
            Err(refusal) => {
                let reason = if refusal.slug == "idempotency-conflict" { "conflict" } else { refusal.slug };
                self.metrics.sales_refused.get_or_create(&crate::metrics::ReasonLabel { reason: reason.into() }).inc();
            }
        }
        r
    }

    fn sell_inner(
        &self,
        order: SaleOrder,
        key: Option<String>,
        by: &Actor,
    ) -> Result<(Committed<Sale>, Instant), Refusal> {
        let _permit = self.admit("sale")?;
        let admitted = Instant::now();
        let fp = order.fingerprint();
        let conflict_field = if key.is_some() { "Idempotency-Key" } else { "id" };
        // A repeated request answers from what the first one stored, before anything else
        // is asked of a device (a scale in motion must not turn a replay into a refusal).
        // It still goes through the store's commit: a replay is answered only once the
        // first commit is durable, and another order under the same key is a conflict.
        if let Some(k) = &key
            && let Some((id, _)) = self.store.sale_for_key(k)?
            && let Some(stored) = self.store.sale(&id)?
        {
            let commit =
                SaleCommit { sale: stored, idempotency_key: key, fingerprint: fp, remotes: self.cfg.sale_remotes() };
            return Ok((committed(self.store.commit_sale(commit)?, conflict_field, Conflict::Sale)?, admitted));
        }
        let mut order = order;
        let devices = self.peripherals();
        price::weigh_lines(&mut order, &|| match &devices {
            Some(d) => d.weigh(Duration::from_secs(3)),
            None => Err("no scale configured".into()),
        })?;
        let mut sale = price::build_sale(
            &order,
            self.store.as_ref(),
            &self.cfg,
            self.now(),
            &by.request_id,
            &by.role,
            by.approver.as_deref(),
        )?;
        sale.cashier = by.cashier.clone();
        if let Some(who) = &sale.approved_by {
            let detail = sale
                .lines
                .iter()
                .filter(|l| l.list_price_minor.is_some() || l.discount_minor != 0)
                .map(|l| {
                    format!(
                        "line {}: list {:?} charged {} discount {}",
                        l.line_no, l.list_price_minor, l.unit_price_minor, l.discount_minor
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            self.audit(who, "sale.price_approved", &sale.id.to_string(), &by.request_id, detail)?;
        }
        lanes::claim_low_stock(self, &sale)?;
        let outcome = if sale.tenders.iter().any(|t| matches!(t, Tender::Card { .. })) {
            // The terminal is asked only after the payment intent is stored (payments.rs).
            payments::card_sale(self, sale, key, fp)?
        } else {
            let commit = SaleCommit { sale, idempotency_key: key, fingerprint: fp, remotes: self.cfg.sale_remotes() };
            self.store.commit_sale(commit)?
        };
        Ok((committed(outcome, conflict_field, Conflict::Sale)?, admitted))
    }

    /// A refund of (part of) a sale, in cash or to the card; audited. Blocking.
    pub fn refund(
        &self,
        sale_id: Uuid,
        order: RefundOrder,
        key: Option<String>,
        by: &Actor,
    ) -> Result<Committed<Sale>, Refusal> {
        let _permit = self.admit("refund")?;
        let orig = self
            .store
            .lane_sale(&sale_id)?
            .ok_or_else(|| Refusal::not_found("unknown-sale", "Unknown sale", "id", format!("no sale {sale_id}")))?;
        let fp = (sale_id, &order).fingerprint();
        // A repeated request answers from what the first one stored: the refund it made
        // (perhaps completed by recovery after a restart) is not refused as "refunded
        // already". Another order under the same key is a conflict.
        if let Some(k) = &key
            && let Some((rid, _)) = self.store.sale_for_key(k)?
            && let Some(stored) = self.store.sale(&rid)?
        {
            let commit =
                SaleCommit { sale: stored, idempotency_key: key, fingerprint: fp, remotes: self.cfg.refund_remotes() };
            return committed(self.store.commit_sale(commit)?, "Idempotency-Key", Conflict::Refund);
        }
        let now = self.now();
        let done = self.store.refunded(&orig.id)?;
        let mut refund = price::build_refund(&orig, &order, &done, &self.cfg, now, &by.request_id, &by.role)?;
        refund.cashier = by.cashier.clone();
        // Another lane may be refunding the same sale: the amount is claimed store-wide.
        let offline_flag = lanes::claim_refund(self, &orig, &refund, &done)?;
        let outcome = if refund.tenders.iter().any(|t| matches!(t, Tender::Card { .. })) {
            // What is left to refund is checked again once the terminal is held.
            payments::card_sale(self, refund, key, fp)?
        } else {
            // Refunds are made one at a time with card payments: a cash refund cannot take
            // what a card refund at the terminal is paying out meanwhile.
            let _held = payments::hold_for_refund(self)?;
            let done = self.store.refunded(&orig.id)?;
            let refund = edge_sync::domain::Sale {
                cashier: by.cashier.clone(),
                ..price::build_refund(&orig, &order, &done, &self.cfg, now, &by.request_id, &by.role)?
            };
            let commit =
                SaleCommit { sale: refund, idempotency_key: key, fingerprint: fp, remotes: self.cfg.refund_remotes() };
            self.store.commit_sale(commit)?
        };
        let c = committed(outcome, "Idempotency-Key", Conflict::Refund)?;
        if let (Committed::Created(r), Some(why)) = (&c, offline_flag) {
            lanes::flag_offline_refund(self, r, &orig, &why);
        }
        if let Committed::Created(r) = &c {
            // The refund is durable: nothing after this may turn it into an error.
            self.after_sale(r, true, Origin::Request);
            let detail = format!("{} {}: {}", r.id, r.total(), r.reason.clone().unwrap_or_default());
            if let Err(e) = self.audit(&by.role, "sale.refund", &sale_id.to_string(), &by.request_id, detail) {
                tracing::error!(refund_id = %r.id, error = %e.detail, "refund committed, its audit line not written");
                self.emit(Event::StaffAlert {
                    at: self.now().to_string(),
                    text: format!("Refund {} is done, but its audit line could not be written: {}", r.id, e.detail),
                });
            }
        }
        Ok(c)
    }

    /// A stock adjustment, with the stock it leaves for the SKU. Blocking.
    pub fn adjust(
        &self,
        order: AdjustOrder,
        key: Option<String>,
        by: &Actor,
    ) -> Result<(Committed<StockAdjustment>, Option<i64>), Refusal> {
        if let Some(why) = self.cfg.adjustments_refused() {
            return Err(Refusal::conflict("adjustments-refused", "Adjust stock at the source", why));
        }
        let _permit = self.admit("adjustment")?;
        let adj = adjust::build(&order, self.store.as_ref(), &self.cfg, self.now(), &by.request_id, &by.role)?;
        let commit = AdjustmentCommit {
            adjustment: adj,
            idempotency_key: key,
            fingerprint: order.fingerprint(),
            remotes: self.cfg.adjustment_remotes(),
        };
        let c = match self.store.commit_adjustment(commit)? {
            AdjustmentOutcome::Created(a) => {
                tracing::info!(adjustment_id = %a.id, sku = %a.sku, delta = a.delta, reason = a.reason.as_str(), "stock adjusted");
                self.after_adjustment();
                Committed::Created(a)
            }
            AdjustmentOutcome::Replayed(a) => Committed::Replayed(a),
            AdjustmentOutcome::Conflict { id, what } => {
                return Err(Refusal::conflict("adjustment-conflict", "Adjustment refused", format!("{what} ({id})")));
            }
        };
        let stock = self.store.stock(&c.record().sku)?.available();
        Ok((c, stock))
    }

    /// Appends an audit line, made now.
    pub fn audit(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
        request_id: &str,
        detail: String,
    ) -> Result<(), Refusal> {
        self.store.append_audit(&AuditRecord {
            id: new_id(),
            at: self.now(),
            actor: actor.into(),
            action: action.into(),
            subject: subject.into(),
            request_id: request_id.into(),
            detail,
        })?;
        Ok(())
    }

    // ---- after the commit ------------------------------------------------------------

    /// After a sale or refund is durable: engine, metrics, events, then the peripherals.
    pub fn after_sale(&self, sale: &Sale, print: bool, origin: Origin) {
        (self.ports.wake)();
        let refund = sale.kind == SaleKind::Refund;
        if refund {
            tracing::info!(refund_id = %sale.id, sale_id = ?sale.refund_of, total = %sale.total(), ?origin, "refund committed");
        } else {
            self.metrics.sales_committed.inc();
            tracing::info!(sale_id = %sale.id, total = %sale.total(), lines = sale.lines.len(), ?origin, "sale committed");
        }
        self.emit(Event::SaleCompleted {
            at: self.now().to_string(),
            sale_id: sale.id,
            total_minor: sale.total_minor,
            currency: sale.currency.to_string(),
            business_date: sale.business_date.to_string(),
        });
        let cash = sale.change_minor > 0 || sale.tenders.iter().any(|t| matches!(t, Tender::Cash { .. }));
        self.after.submit(after::Job {
            sale: sale.clone(),
            drawer: cash,
            // A refund prints its own receipt too: the customer takes it, the store may
            // keep a copy (`POST /v1/sales/{id}/receipt`).
            print,
            copy: false,
            display: !refund,
        });
    }

    /// After a stock adjustment is durable: the engine delivers it without waiting.
    pub fn after_adjustment(&self) {
        (self.ports.wake)();
    }

    /// The receipt of a sale or refund (a copy when `copy`), as printed. A refund's names
    /// the receipt it refunds, read from the store (its id if that cannot be read).
    pub fn receipt(&self, sale: &Sale, copy: bool) -> receipt::Doc {
        let original = sale.refund_of.map(|id| match self.store.lane_sale(&id) {
            Ok(Some(o)) => (o.receipt_no.unwrap_or_else(|| id.to_string()), o.created_at),
            _ => (id.to_string(), sale.created_at),
        });
        let cx = receipt::Context {
            store_name: &self.cfg.store_name,
            setup: &self.cfg.receipt,
            lane_name: &self.cfg.lane_name,
            tz: &self.cfg.timezone,
            original,
            copy,
            fiscal: vec![],
        };
        receipt::compose(sale, &cx)
    }

    /// A copy of a sale's receipt, asked for by staff (or the customer's own, once, at a kiosk).
    pub fn reprint(&self, sale: &Sale, copy: bool) {
        self.after.submit(after::Job { sale: sale.clone(), drawer: false, print: true, copy, display: false });
    }
}

/// An audit record made at `at` by `actor` (a role, or the staff member who gave a PIN).
pub fn audit_record(
    at: Timestamp,
    actor: &str,
    action: &str,
    subject: &str,
    request_id: &str,
    detail: String,
) -> AuditRecord {
    AuditRecord {
        id: new_id(),
        at,
        actor: actor.into(),
        action: action.into(),
        subject: subject.into(),
        request_id: request_id.into(),
        detail,
    }
}

/// Which record a conflicting replay was for (its refusal's words).
enum Conflict {
    Sale,
    Refund,
}

fn committed(o: CommitOutcome, field: &str, what: Conflict) -> Result<Committed<Sale>, Refusal> {
    match o {
        CommitOutcome::Created(s) => Ok(Committed::Created(s)),
        CommitOutcome::Replayed(s) => Ok(Committed::Replayed(s)),
        CommitOutcome::Conflict { sale_id, what: why } => {
            let detail = format!("{why} (sale {sale_id})");
            Err(match what {
                Conflict::Sale => Refusal {
                    field: Some(field.into()),
                    ..Refusal::conflict("idempotency-conflict", "Different request for the same key", detail)
                },
                Conflict::Refund => Refusal::conflict("refund-refused", "Refund refused", detail),
            })
        }
    }
}
