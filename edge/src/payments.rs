//! Card payments: the state machine that no crash can confuse.
//!
//! A card sale goes: the priced sale and a payment **intent** (sale id, amount, terminal,
//! the terminal's last receipt number) are stored durably — journaled and fdatasynced —
//! before the first byte goes to the terminal. Every later move is stored the same way
//! before the next step: `Intent → Approved → Recorded` (the sale committed with the card
//! tender), or `Declined` / `Failed` (nothing charged), or `InDoubt` when the terminal's
//! answer was lost.
//!
//! An in-doubt payment is settled by **asking the terminal** (repeat receipt: a receipt
//! number other than the one stored with the intent, for this amount and approved, means
//! it charged), never by charging again. An approved payment whose sale cannot be committed
//! is **reversed** (06 30) and the staff are told; if the reversal fails too the payment
//! stays `ReversalFailed`, retried, and staff see a `staff.alert`. A card payment becomes
//! part of a sale only when the terminal approved it.
//!
//! [`recover`] runs at start and then every [`RECOVER_EVERY`]: it settles intents and
//! in-doubt payments, commits approved ones (the stored sale, exactly as priced), and
//! retries failed reversals. Payments being worked on by a request are skipped.
//!
//! The offline policy ([`OfflinePolicy`]) decides whether a card may be taken while the
//! terminal cannot reach its host (store-and-forward): caps per transaction, in total
//! outstanding, in count, and on the age of the oldest; forcing offline needs a manager and
//! is audited. Offline payments stay listed until the terminal's end-of-day forwards them.

use crate::app::App;
use crate::devices::TerminalOp;
use crate::sale::Refusal;
use edge_api::Event;
use edge_sync::domain::{CardResult, Payment, PaymentKind, PaymentState, Sale, Tender, new_id};
use edge_sync::store::{CommitOutcome, SaleCommit};
use jiff::Timestamp;
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;
use uuid::Uuid;

/// How often open payments are looked at again.
pub const RECOVER_EVERY: Duration = Duration::from_secs(15);

/// Payments a request in this process is working on (recovery leaves them alone).
#[derive(Default)]
pub struct Busy(Mutex<BTreeSet<Uuid>>);

impl Busy {
    fn take(&self, id: Uuid) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(id)
    }
    fn give(&self, id: &Uuid) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
    fn has(&self, id: &Uuid) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).contains(id)
    }
}

/// The store's offline card policy (`[payments.offline]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflinePolicy {
    pub enabled: bool,
    /// Largest single offline payment.
    pub max_per_tx_minor: i64,
    /// Largest total of offline payments not yet forwarded.
    pub max_total_minor: i64,
    /// Most offline payments not yet forwarded.
    pub max_count: u32,
    /// Oldest an unforwarded offline payment may be before no more are taken.
    pub max_age: Duration,
}

impl Default for OfflinePolicy {
    fn default() -> Self {
        // Off by default: the merchant carries the risk of every offline decline.
        OfflinePolicy {
            enabled: false,
            max_per_tx_minor: 10_000,
            max_total_minor: 100_000,
            max_count: 50,
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

/// Offline payments waiting to be forwarded: count, total, oldest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OfflineBook {
    pub count: u32,
    pub total_minor: i64,
    pub oldest: Option<Timestamp>,
}

pub fn offline_book(app: &App) -> Result<OfflineBook, String> {
    let mut b = OfflineBook::default();
    for p in app.store.payments_open().map_err(|e| e.to_string())? {
        if p.offline && !p.forwarded && p.state == PaymentState::Recorded && p.kind == PaymentKind::Sale {
            b.count += 1;
            b.total_minor += p.amount_minor;
            b.oldest = Some(b.oldest.map_or(p.created_at, |o| o.min(p.created_at)));
        }
    }
    Ok(b)
}

/// Whether an offline card payment of `amount` may be taken now; the refusal names the cap.
pub fn check_offline(policy: &OfflinePolicy, book: &OfflineBook, amount: i64, now: Timestamp) -> Result<(), String> {
    if !policy.enabled {
        return Err("the terminal cannot reach its host and offline card payments are off; take cash".into());
    }
    if amount > policy.max_per_tx_minor {
        return Err(format!(
            "offline card payments are capped at {} per transaction; this one is {amount}",
            policy.max_per_tx_minor
        ));
    }
    if book.total_minor + amount > policy.max_total_minor {
        return Err(format!(
            "offline card payments waiting to be forwarded would total {} over the cap of {}",
            book.total_minor + amount,
            policy.max_total_minor
        ));
    }
    if book.count + 1 > policy.max_count {
        return Err(format!(
            "{} offline card payments are waiting to be forwarded, the cap is {}",
            book.count, policy.max_count
        ));
    }
    if let Some(oldest) = book.oldest {
        let age = now.duration_since(oldest).unsigned_abs();
        if age > policy.max_age {
            return Err(format!(
                "the oldest offline card payment is {} h old, over the {} h limit: forward them (terminal end-of-day) first",
                age.as_secs() / 3600,
                policy.max_age.as_secs() / 3600
            ));
        }
    }
    Ok(())
}

/// Crash points for the crash tests: `EDGED_CRASH_AT=payment.intent` (debug builds only)
/// kills this process with SIGKILL when the payment reaches that stage.
fn crash_point(stage: &str) {
    #[cfg(debug_assertions)]
    if std::env::var("EDGED_CRASH_AT").is_ok_and(|s| s == stage) {
        tracing::warn!(stage, "EDGED_CRASH_AT: killing this process");
        let pid = std::process::id().to_string();
        let _ = std::process::Command::new("kill").args(["-KILL", &pid]).status();
        std::thread::sleep(Duration::from_secs(10));
    }
    #[cfg(not(debug_assertions))]
    let _ = stage;
}

/// Fault injection for tests: `EDGED_FAULT=payment.commit_refused` (debug builds only)
/// makes the commit of an approved payment's sale fail, so the reversal path runs.
fn fault(name: &str) -> bool {
    #[cfg(debug_assertions)]
    {
        std::env::var("EDGED_FAULT").is_ok_and(|s| s == name)
    }
    #[cfg(not(debug_assertions))]
    {
        let _ = name;
        false
    }
}

fn meta_key(terminal: &str) -> String {
    format!("terminal.{terminal}.last_receipt")
}

fn last_receipt(app: &App, terminal: &str) -> Option<u32> {
    let v = app.store.meta_get(&meta_key(terminal)).ok()??;
    std::str::from_utf8(&v).ok()?.parse().ok()
}

fn note_receipt(app: &App, terminal: &str, o: &edge_drivers::zvt::host::Outcome) {
    if let Some(r) = o.info.as_ref().and_then(|i| i.receipt_no)
        && let Err(e) = app.store.meta_set(&meta_key(terminal), r.to_string().as_bytes())
    {
        tracing::warn!(error = %e, "terminal receipt number not kept");
    }
}

fn card_of(o: &edge_drivers::zvt::host::Outcome) -> CardResult {
    let i = o.info.clone().unwrap_or_default();
    let offline = i.text.as_deref().is_some_and(|t| t.to_ascii_uppercase().contains("OFFLINE"));
    CardResult {
        pan_masked: i.pan_masked,
        card_name: i.card_name,
        auth_code: i.auth_code,
        receipt_no: i.receipt_no,
        trace: i.trace,
        terminal_id: i.terminal_id,
        offline,
        receipt: o.receipt.clone(),
    }
}

/// Stores a payment's next state (durable before it returns) and tells the staff screens.
fn advance(app: &App, p: &mut Payment, state: PaymentState, reason: Option<String>) -> Result<(), Refusal> {
    p.state = state;
    p.reason = reason;
    p.rev += 1;
    p.updated_at = Timestamp::now();
    app.store.put_payment(p).map_err(|e| Refusal::unavailable(format!("the payment could not be stored: {e}")))?;
    tracing::info!(payment_id = %p.id, sale_id = %p.sale_id, state = ?state, reason = p.reason.as_deref().unwrap_or(""), "payment");
    let _ = app.events.send(Event::PaymentStatus {
        at: Timestamp::now().to_string(),
        payment_id: p.id,
        sale_id: p.sale_id,
        state: format!("{state:?}").to_lowercase(),
        amount_minor: p.amount_minor,
        reason: p.reason.clone(),
        offline: p.offline,
    });
    Ok(())
}

fn alert(app: &App, text: String) {
    tracing::error!(%text, "staff alert");
    let _ = app.events.send(Event::StaffAlert { at: Timestamp::now().to_string(), text });
}

/// The terminal's last transaction, asked for with a repeat receipt: did it charge `p`?
/// `Ok(Some(outcome))` charged, `Ok(None)` not charged, `Err` cannot tell yet.
fn ask_terminal(app: &App, p: &Payment) -> Result<Option<edge_drivers::zvt::host::Outcome>, String> {
    let devices = app.devices.get().ok_or("no devices")?;
    let o = devices
        .terminal(TerminalOp::RepeatReceipt, Box::new(|_| {}), Duration::from_secs(30))
        .map_err(|f| f.to_string())?;
    let Some(info) = o.info.clone() else {
        // "function not possible": the terminal has no transaction at all.
        return if o.code == 0x83 { Ok(None) } else { Err(format!("the repeat receipt said: {}", o.text)) };
    };
    let charged = info.result == Some(0)
        && info.receipt_no.is_some()
        && info.receipt_no != p.receipt_before
        && info.amount_minor == Some(p.amount_minor)
        && info.pan_masked.is_some();
    Ok(charged.then_some(o))
}

/// A card sale: intent, terminal, commit. Blocking (run it off the async runtime).
pub fn card_sale(app: &App, mut sale: Sale, key: Option<String>, fp: String) -> Result<CommitOutcome, Refusal> {
    let Some(Tender::Card { amount_minor, payment_id, terminal, .. }) =
        sale.tenders.iter().find(|t| matches!(t, Tender::Card { .. })).cloned()
    else {
        return Err(Refusal::unprocessable("bad-tender", "Bad tender", "tenders".into(), "no card tender"));
    };
    let devices = app.devices.get().ok_or_else(|| Refusal::unavailable("the devices are not started"))?.clone();
    // A repeated request: the sale it made, or the payment still being settled.
    if let Some(k) = &key {
        if app.store.sale_for_key(k).map_err(|e| Refusal::unavailable(e.to_string()))?.is_some() {
            let commit = SaleCommit { sale, idempotency_key: key, fingerprint: fp, remotes: app.cfg.sale_remotes() };
            return app.store.commit_sale(commit).map_err(|e| Refusal::unavailable(e.to_string()));
        }
        let open = app.store.payments_open().map_err(|e| Refusal::unavailable(e.to_string()))?;
        if let Some(p) = open.iter().find(|p| p.idempotency_key.as_deref() == Some(k) && !p.state.is_final()) {
            return Err(Refusal::conflict(
                "payment-in-progress",
                "Card payment being settled",
                format!(
                    "payment {} for this Idempotency-Key is {:?}; it is settled with the terminal, never charged twice",
                    p.id, p.state
                ),
            ));
        }
    }
    // Is the terminal ready, and can it reach its host? (A status enquiry: one round trip.)
    if let Err(f) = devices.terminal(TerminalOp::Status, Box::new(|_| {}), Duration::from_secs(10)) {
        return Err(Refusal::unavailable(format!("the payment terminal does not answer; take cash ({f})")));
    }
    let refund = sale.kind == edge_sync::domain::SaleKind::Refund;
    // The offline policy, when the terminal cannot reach its host (or a manager forced it).
    let offline = devices.terminal_offline() || app.forced_offline();
    if offline && refund {
        return Err(Refusal::payment(
            "offline-refused",
            "No card refunds offline",
            "the terminal cannot reach its host: card refunds need it; refund in cash",
        ));
    }
    if offline {
        let book = offline_book(app).map_err(Refusal::unavailable)?;
        check_offline(&app.cfg.offline, &book, amount_minor, Timestamp::now())
            .map_err(|why| Refusal::payment("offline-refused", "Card not accepted offline", why))?;
    }
    let now = Timestamp::now();
    let mut p = Payment {
        id: payment_id,
        kind: if refund { PaymentKind::Refund } else { PaymentKind::Sale },
        sale_id: sale.id,
        amount_minor,
        currency: sale.currency,
        terminal: terminal.clone(),
        state: PaymentState::Intent,
        created_at: now,
        updated_at: now,
        rev: 0,
        receipt_before: last_receipt(app, &terminal),
        card: None,
        reason: None,
        idempotency_key: key.clone(),
        sale: Some(Box::new(sale.clone())),
        offline,
        forwarded: false,
        request_id: sale.request_id.clone(),
        actor: sale.actor.clone(),
    };
    app.payments_busy.take(p.id);
    let res = (|| {
        advance(app, &mut p, PaymentState::Intent, None)?;
        crash_point("payment.intent");
        let bus = app.events.clone();
        let pid = p.id;
        let mut prompted = false;
        let r = devices.terminal(
            if refund { TerminalOp::Refund(amount_minor) } else { TerminalOp::Authorise(amount_minor) },
            Box::new(move |e| {
                if let edge_drivers::zvt::host::Event::Prompt { text, .. } = e {
                    if !prompted {
                        prompted = true;
                        crash_point("payment.prompt");
                    }
                    let _ = bus.send(Event::TerminalPrompt { at: Timestamp::now().to_string(), payment_id: pid, text });
                }
            }),
            p_timeout(app),
        );
        crash_point("payment.answered");
        let approved = match r {
            Ok(o) => {
                note_receipt(app, &terminal, &o);
                if !o.approved {
                    advance(app, &mut p, PaymentState::Declined, Some(o.text.clone()))?;
                    return Err(Refusal::payment("card-declined", "Card declined", o.text));
                }
                o
            }
            Err(f) if !f.in_doubt => {
                advance(app, &mut p, PaymentState::Failed, Some(f.to_string()))?;
                return Err(Refusal::unavailable(format!("the card was not charged: {f}")));
            }
            Err(f) => {
                advance(app, &mut p, PaymentState::InDoubt, Some(f.to_string()))?;
                match ask_terminal(app, &p) {
                    Ok(Some(o)) => {
                        note_receipt(app, &terminal, &o);
                        o
                    }
                    Ok(None) => {
                        advance(app, &mut p, PaymentState::Failed, Some("the terminal shows no charge for it".into()))?;
                        return Err(Refusal::unavailable(format!("the card was not charged ({f})")));
                    }
                    Err(why) => {
                        return Err(Refusal::gateway(
                            "payment-in-doubt",
                            "Card payment outcome unknown",
                            format!(
                                "the terminal's answer was lost ({f}) and it cannot be asked now ({why}); payment {} is \
                                 settled with the terminal when it answers, never charged twice",
                                p.id
                            ),
                        ));
                    }
                }
            }
        };
        let card = card_of(&approved);
        p.offline = card.offline || p.offline;
        p.card = Some(card.clone());
        advance(app, &mut p, PaymentState::Approved, None)?;
        crash_point("payment.approved");
        for t in sale.tenders.iter_mut() {
            if let Tender::Card { payment_id, card: c, .. } = t
                && *payment_id == p.id
            {
                *c = Some(card.clone());
            }
        }
        p.sale = Some(Box::new(sale.clone()));
        commit_paid(app, &mut p, key.clone(), fp.clone())
    })();
    app.payments_busy.give(&p.id);
    res
}

fn p_timeout(app: &App) -> Duration {
    app.cfg
        .devices
        .iter()
        .find(|d| d.kind == crate::devices::Kind::Terminal)
        .map_or(Duration::from_secs(180), |d| d.reply_timeout)
        + Duration::from_secs(30)
}

/// Commits the sale an approved payment pays; reverses the payment if it cannot be.
fn commit_paid(app: &App, p: &mut Payment, key: Option<String>, fp: String) -> Result<CommitOutcome, Refusal> {
    let Some(sale) = p.sale.clone() else {
        return reverse(app, p, "the approved payment has no sale stored with it".into())
            .and(Err(Refusal::unavailable("the payment was reversed: its sale was not stored")));
    };
    crash_point("payment.before_commit");
    let commit = SaleCommit { sale: *sale, idempotency_key: key, fingerprint: fp, remotes: app.cfg.sale_remotes() };
    let committed = if fault("payment.commit_refused") {
        Ok(CommitOutcome::Conflict { sale_id: p.sale_id, what: "refused by EDGED_FAULT".into() })
    } else {
        app.store.commit_sale(commit)
    };
    match committed {
        Ok(CommitOutcome::Created(s)) | Ok(CommitOutcome::Replayed(s)) if s.id == p.sale_id => {
            crash_point("payment.after_commit");
            advance(app, p, PaymentState::Recorded, None)?;
            Ok(CommitOutcome::Created(s))
        }
        Ok(other) => {
            let why = match &other {
                CommitOutcome::Conflict { what, .. } => what.clone(),
                _ => "another sale holds its key".into(),
            };
            reverse(app, p, format!("the sale could not be committed: {why}"))?;
            Err(Refusal::conflict(
                "payment-reversed",
                "Card payment reversed",
                format!("the sale could not be committed ({why}); the card payment was reversed"),
            ))
        }
        Err(e) => {
            // A store that cannot commit is fatal for the daemon; the payment stays
            // Approved and is finished (or reversed) after the restart.
            Err(Refusal::unavailable(format!("the sale could not be stored: {e}")))
        }
    }
}

/// Reverses an approved payment; tells staff whatever happens.
fn reverse(app: &App, p: &mut Payment, why: String) -> Result<(), Refusal> {
    let Some(receipt) = p.card.as_ref().and_then(|c| c.receipt_no) else {
        advance(app, p, PaymentState::ReversalFailed, Some(format!("{why}; no receipt number to reverse")))?;
        alert(
            app,
            format!(
                "Card payment {} of {} could not be reversed (no receipt number): refund it by hand",
                p.id, p.amount_minor
            ),
        );
        return Ok(());
    };
    let devices = app.devices.get().cloned();
    let r = devices.ok_or_else(|| "no devices".to_string()).and_then(|d| {
        d.terminal(TerminalOp::Reverse(receipt), Box::new(|_| {}), Duration::from_secs(60)).map_err(|f| f.to_string())
    });
    match r {
        Ok(o) if o.approved || o.code == 0xB4 => {
            advance(app, p, PaymentState::Reversed, Some(why.clone()))?;
            alert(app, format!("Card payment {} was reversed: {why}", p.id));
        }
        Ok(o) => {
            advance(app, p, PaymentState::ReversalFailed, Some(format!("{why}; reversal refused: {}", o.text)))?;
            alert(
                app,
                format!(
                    "Card payment {} could not be reversed ({}): it is retried; refund by hand if it stays",
                    p.id, o.text
                ),
            );
        }
        Err(e) => {
            advance(app, p, PaymentState::ReversalFailed, Some(format!("{why}; reversal failed: {e}")))?;
            alert(app, format!("Card payment {} could not be reversed ({e}): it is retried", p.id));
        }
    }
    Ok(())
}

/// Settles what a crash or a lost answer left open. Returns how many payments moved.
pub fn recover(app: &App) -> usize {
    let open = match app.store.payments_open() {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(error = %e, "open payments not readable");
            return 0;
        }
    };
    let mut moved = 0;
    for mut p in open {
        if app.payments_busy.has(&p.id) || !app.payments_busy.take(p.id) {
            continue;
        }
        let before = p.state;
        let r = (|| -> Result<(), Refusal> {
            match p.state {
                PaymentState::Intent | PaymentState::InDoubt => match ask_terminal(app, &p) {
                    Ok(Some(o)) => {
                        note_receipt(app, &p.terminal, &o);
                        let card = card_of(&o);
                        p.offline = p.offline || card.offline;
                        if let Some(s) = p.sale.as_mut() {
                            for t in s.tenders.iter_mut() {
                                if let Tender::Card { payment_id, card: c, .. } = t
                                    && *payment_id == p.id
                                {
                                    *c = Some(card.clone());
                                }
                            }
                        }
                        p.card = Some(card);
                        advance(app, &mut p, PaymentState::Approved, None)?;
                        commit_after_restart(app, &mut p)
                    }
                    Ok(None) => advance(
                        app,
                        &mut p,
                        PaymentState::Failed,
                        Some("settled after a lost answer: the terminal shows no charge for it".into()),
                    ),
                    Err(why) => {
                        tracing::info!(payment_id = %p.id, %why, "in-doubt payment not settled yet");
                        Ok(())
                    }
                },
                PaymentState::Approved => commit_after_restart(app, &mut p),
                PaymentState::ReversalFailed => {
                    let why = p.reason.clone().unwrap_or_default();
                    reverse(app, &mut p, why)
                }
                _ => Ok(()),
            }
        })();
        if let Err(e) = r {
            tracing::warn!(payment_id = %p.id, error = %e.detail, "payment not settled");
        }
        if p.state != before {
            moved += 1;
        }
        app.payments_busy.give(&p.id);
    }
    moved
}

/// An approved payment found after a restart: its sale is committed as it was priced (the
/// customer paid for it), or found committed already.
fn commit_after_restart(app: &App, p: &mut Payment) -> Result<(), Refusal> {
    if app.store.sale(&p.sale_id).map_err(|e| Refusal::unavailable(e.to_string()))?.is_some() {
        return advance(app, p, PaymentState::Recorded, None);
    }
    let key = p.idempotency_key.clone();
    match commit_paid(app, p, key, "recovered".into()) {
        Ok(_) => {
            let _ = app.events.send(Event::SaleCompleted {
                at: Timestamp::now().to_string(),
                sale_id: p.sale_id,
                total_minor: p.sale.as_ref().map_or(0, |s| s.total_minor),
                currency: p.currency.to_string(),
                business_date: p.sale.as_ref().map(|s| s.business_date.to_string()).unwrap_or_default(),
            });
            alert(app, format!("Sale {} was completed after a restart: its card payment had been approved", p.sale_id));
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Starts the recovery loop (at once, then every [`RECOVER_EVERY`]).
pub fn spawn_recovery(app: std::sync::Arc<App>) {
    let spawned = std::thread::Builder::new().name("payments-recovery".into()).spawn(move || {
        // Give the terminal a moment to connect and register.
        std::thread::sleep(Duration::from_millis(500));
        loop {
            if app.is_stopping() {
                return;
            }
            let n = recover(&app);
            if n > 0 {
                tracing::info!(payments = n, "open payments settled");
            }
            std::thread::sleep(RECOVER_EVERY);
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "payments recovery not started");
    }
}

/// A new payment id (UUID v7), made at the edge.
pub fn new_payment_id() -> Uuid {
    new_id()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each cap refuses exactly at its boundary, and says which cap.
    #[test]
    fn each_offline_cap_refuses_exactly_past_its_boundary() {
        let p = OfflinePolicy {
            enabled: true,
            max_per_tx_minor: 5000,
            max_total_minor: 12_000,
            max_count: 3,
            max_age: Duration::from_secs(3600),
        };
        let now = Timestamp::now();
        let empty = OfflineBook::default();
        assert_eq!(check_offline(&p, &empty, 5000, now), Ok(()));
        let e = check_offline(&p, &empty, 5001, now).expect_err("per transaction");
        assert!(e.contains("capped at 5000 per transaction"), "{e}");
        let book = OfflineBook { count: 2, total_minor: 7000, oldest: Some(now) };
        assert_eq!(check_offline(&p, &book, 5000, now), Ok(()), "7000 + 5000 = 12000 is at the cap");
        let over = OfflineBook { total_minor: 7001, ..book.clone() };
        let e = check_offline(&p, &over, 5000, now).expect_err("total");
        assert!(e.contains("would total 12001 over the cap of 12000"), "{e}");
        let full = OfflineBook { count: 3, total_minor: 3000, oldest: Some(now) };
        let e = check_offline(&p, &full, 100, now).expect_err("count");
        assert!(e.contains("3 offline card payments are waiting") && e.contains("cap is 3"), "{e}");
        let hour = jiff::SignedDuration::from_secs(3600);
        let at_limit = OfflineBook { count: 1, total_minor: 100, oldest: now.checked_sub(hour).ok() };
        assert_eq!(check_offline(&p, &at_limit, 100, now), Ok(()), "exactly the age limit is still in");
        let old = OfflineBook {
            count: 1,
            total_minor: 100,
            oldest: now.checked_sub(hour + jiff::SignedDuration::from_secs(1)).ok(),
        };
        let e = check_offline(&p, &old, 100, now).expect_err("age");
        assert!(e.contains("over the 1 h limit"), "{e}");
        let off = OfflinePolicy { enabled: false, ..p };
        assert!(check_offline(&off, &empty, 1, now).expect_err("disabled").contains("offline card payments are off"));
    }
}
