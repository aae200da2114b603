//! Card payments: the state machine that no crash can confuse.
//!
//! A card sale goes: the priced sale and a payment **intent** (sale id, amount, terminal,
//! and the **baseline**: the terminal's last receipt number, read from the terminal itself)
//! are stored durably — journaled and fdatasynced — before the first byte of the payment
//! goes to the terminal. Every later move is stored the same way before the next step:
//! `Intent → Approved → Recorded` (the sale committed with the card tender and the
//! terminal's data), or `Declined` / `Failed` (nothing charged), or `InDoubt` when the
//! terminal's answer was lost.
//!
//! ## One payment at a time per terminal, and evidence that proves
//! A ZVT terminal's repeat receipt answers only its **last** transaction. That answers
//! "did it charge payment P?" only if nothing else ran on the terminal since P's baseline
//! was read. So:
//! - a payment holds the terminal's [`Lease`] from reading its baseline until its outcome is
//!   stored (and its sale committed or the charge reversed): a second screen's payment, a
//!   reversal, the end-of-day and the recovery loop wait for the lease;
//! - the baseline is read while the lease is held, never taken from an earlier note;
//! - no payment, reversal or end-of-day starts on a terminal while one of its payments is
//!   `Intent` or `InDoubt` (after a crash, before anything else, those are settled first).
//!   What the terminal cannot prove stays `InDoubt`: new card payments on that terminal are
//!   refused with the reason, staff get a `staff.alert`, and a manager settles it by hand
//!   (`POST /v1/payments/{id}/settle`, audited) after reading the terminal's own journal.
//!
//! [`judge`] is the rule, a pure function: the last transaction is the baseline → not
//! charged; another receipt, approved, for this amount → charged (its card data completes
//! the sale); declined → not charged; a reversal, another amount, anything else → not
//! provable. Every failure once the intent is stored — even one the driver calls "nothing
//! sent" (a lost acknowledgement looks the same) — and a "declined" that follows an
//! approval are settled by this evidence, never trusted as "not charged".
//!
//! Refunds of a sale are made one at a time with card payments (a cash refund holds the
//! lease too), and a card refund checks what is left of its sale once the terminal is
//! held, so two refunds can never pay out the same goods. A card refund is never sent a
//! reversal (ZVT reverses payments only). The end-of-day waits while a payment is in doubt,
//! approved but not recorded, or waiting for its reversal (it closes the batch).
//!
//! An approved payment whose sale cannot be committed is **reversed** (06 30) and the staff
//! are told; if the reversal fails too the payment stays `ReversalFailed`, retried, and staff
//! see a `staff.alert`. A card payment becomes part of a sale only when the terminal
//! approved it, and the approval (with the terminal's receipt number, trace, masked PAN,
//! card name and auth code in the sale's card tender) is stored before the sale is
//! committed from it, so a sale completed after a restart carries the same card data.
//!
//! [`recover`] runs at start and then every [`RECOVER_EVERY`]: it settles intents and
//! in-doubt payments, commits approved ones (the stored sale, exactly as priced), and
//! retries failed reversals — holding the lease, so never beside a live payment.
//!
//! The offline policy ([`OfflinePolicy`]) decides whether a card may be taken while the
//! terminal cannot reach its host (store-and-forward): caps per transaction, in total
//! outstanding, in count, and on the age of the oldest; forcing offline needs a manager and
//! is audited. Offline payments stay listed until the terminal's end-of-day forwards them.

use super::error::{Refusal, RefusalKind};
use super::{Checkout, Origin};
pub use crate::config::OfflinePolicy;
use crate::devices::TerminalOp;
use edge_api::Event;
use edge_drivers::payment::{Family, Lookup, Outcome};
use edge_sync::domain::{CardResult, Payment, PaymentKind, PaymentState, Sale, Tender, new_id};
use edge_sync::store::{CommitOutcome, SaleCommit};
use jiff::Timestamp;
use std::sync::{Condvar, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// How often open payments are looked at again.
pub const RECOVER_EVERY: Duration = Duration::from_secs(15);

/// The terminal, held by one payment (or recovery, a reversal, the end-of-day) at a time.
///
/// Held from reading a payment's baseline until its outcome is stored, so the terminal's
/// last transaction can only be that payment's. Waiting is bounded: a request that cannot
/// get the terminal in time is refused (nothing charged), never queued without end.
#[derive(Default)]
pub struct Lease {
    held: Mutex<bool>,
    freed: Condvar,
}

/// Proof that the terminal's lease is held; the terminal is released when it is dropped.
pub struct Held<'a>(&'a Lease);

impl Lease {
    /// Takes the lease, waiting at most `wait` for the holder to finish.
    pub fn take(&self, wait: Duration) -> Option<Held<'_>> {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let (mut held, _) = self.freed.wait_timeout_while(held, wait, |h| *h).unwrap_or_else(|p| p.into_inner());
        if *held {
            return None;
        }
        *held = true;
        Some(Held(self))
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        *self.0.held.lock().unwrap_or_else(|p| p.into_inner()) = false;
        self.0.freed.notify_one();
    }
}

/// Offline payments waiting to be forwarded: count, total, oldest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OfflineBook {
    pub count: u32,
    pub total_minor: i64,
    pub oldest: Option<Timestamp>,
}

pub fn offline_book(co: &Checkout) -> Result<OfflineBook, String> {
    let mut b = OfflineBook::default();
    for p in co.store.payments_open().map_err(|e| e.to_string())? {
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

/// What the terminal's repeat receipt showed of its last transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LastTransaction {
    /// The terminal has no transaction to repeat (ZVT `83`, function not possible).
    Nothing,
    /// Its last transaction: receipt number, result (0 = approved), amount, and whether it
    /// was a reversal (it names an original trace).
    Receipt { receipt_no: Option<u32>, result: Option<u8>, amount_minor: Option<i64>, reversal: bool },
}

/// What the evidence proves about a payment that was (maybe) sent to the terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Charged,
    NotCharged(String),
    /// The evidence cannot decide; the reason says why, for staff.
    Unprovable(String),
}

/// Did the terminal charge `p`? Decided from its last transaction alone, which proves
/// something only because `p` held the terminal from its baseline on (see the module doc).
pub fn judge(p: &Payment, last: &LastTransaction) -> Verdict {
    if !p.baseline_from_terminal {
        return Verdict::Unprovable(
            "its baseline receipt number was not read from the terminal (stored by an earlier version); \
             check the terminal's journal and settle it by hand"
                .into(),
        );
    }
    let before = p.receipt_before;
    match last {
        LastTransaction::Nothing if before.is_none() => {
            Verdict::NotCharged("the terminal still has no transaction at all".into())
        }
        LastTransaction::Nothing => Verdict::Unprovable(format!(
            "the terminal now shows no transaction, though its last receipt was {} before this payment",
            before.unwrap_or_default()
        )),
        LastTransaction::Receipt { receipt_no: None, .. } => {
            Verdict::Unprovable("the terminal's repeat receipt carries no receipt number".into())
        }
        LastTransaction::Receipt { receipt_no: Some(r), .. } if Some(*r) == before => Verdict::NotCharged(format!(
            "the terminal's last transaction is still receipt {r}, the one before this payment"
        )),
        LastTransaction::Receipt { receipt_no: Some(r), reversal: true, .. } => Verdict::Unprovable(format!(
            "the terminal's last transaction (receipt {r}) is a reversal, not this payment: something else ran on \
             the terminal"
        )),
        LastTransaction::Receipt { receipt_no: Some(r), result: Some(0), amount_minor, .. } => {
            if *amount_minor == Some(p.amount_minor) {
                Verdict::Charged
            } else {
                Verdict::Unprovable(format!(
                    "the terminal's last transaction (receipt {r}, amount {}) is not this payment of {}: something \
                     else ran on the terminal",
                    amount_minor.map_or("unknown".to_string(), |a| a.to_string()),
                    p.amount_minor
                ))
            }
        }
        LastTransaction::Receipt { receipt_no: Some(r), result: Some(code), .. } => {
            Verdict::NotCharged(format!("the terminal declined it (receipt {r}, code {code:02X})"))
        }
        LastTransaction::Receipt { receipt_no: Some(r), result: None, .. } => {
            Verdict::Unprovable(format!("the terminal's receipt {r} carries no result"))
        }
    }
}

/// The terminal's last transaction, asked for with a repeat receipt, and the answer itself
/// (its card data completes a sale that recovery finds charged). `Err`: cannot tell now.
fn read_last(co: &Checkout, _held: &Held) -> Result<(LastTransaction, Option<Outcome>), String> {
    let devices = co.peripherals().ok_or("the devices are not started")?;
    let o = devices
        .terminal(TerminalOp::RepeatReceipt, Box::new(|_| {}), Duration::from_secs(30))
        .map_err(|f| f.to_string())?;
    match o.info.clone() {
        Some(i) => Ok((
            LastTransaction::Receipt {
                receipt_no: i.receipt_no,
                result: i.result,
                amount_minor: i.amount_minor,
                reversal: i.original_trace.is_some(),
            },
            Some(o),
        )),
        // "Function not possible": the terminal has no transaction at all.
        None if o.code == 0x83 => Ok((LastTransaction::Nothing, None)),
        None => Err(format!("the repeat receipt said: {}", o.text)),
    }
}

/// Did the terminal charge `p`? Decided from its answer to a TransactionStatus naming
/// `p`'s own ServiceID (the Adyen family): no baseline is needed, the lookup is by
/// reference. `asked_after` is how long after the intent the terminal was asked: a
/// "not found" within [`NOT_FOUND_GRACE`] of the intent may be a request still on its way
/// (a crash just after sending), so it is asked again later.
pub fn judge_status(p: &Payment, o: &Outcome, asked_after: Duration) -> Verdict {
    // The terminal charged something for this payment (approved, or approved in part).
    let charged = o.info.as_ref().is_some_and(|i| i.result == Some(0));
    match o.lookup {
        Lookup::Found if charged => {
            let amount = o.info.as_ref().and_then(|i| i.amount_minor);
            if o.approved && amount == Some(p.amount_minor) {
                Verdict::Charged
            } else {
                Verdict::Unprovable(format!(
                    "the terminal charged {} for this payment of {} ({})",
                    amount.map_or("an unknown amount".to_string(), |a| a.to_string()),
                    p.amount_minor,
                    o.text
                ))
            }
        }
        Lookup::Found => Verdict::NotCharged(format!("the terminal's answer for this payment: {}", o.text)),
        Lookup::NotFound if asked_after < NOT_FOUND_GRACE => {
            Verdict::Unprovable(format!("the terminal has no such payment yet ({}); asked again shortly", o.text))
        }
        Lookup::NotFound => Verdict::NotCharged(o.text.clone()),
        Lookup::InProgress => Verdict::Unprovable(o.text.clone()),
        Lookup::NotAsked => Verdict::Unprovable("the terminal did not answer the status lookup".into()),
    }
}

/// How long after a payment's intent a terminal's "no such payment" is believed.
/// A request written just before a crash can still be on its way (a LAN retransmits a lost
/// segment after 200 ms, then 400, 800 …): three seconds cover four retransmissions.
pub const NOT_FOUND_GRACE: Duration = Duration::from_secs(3);

/// The evidence of one payment, by its family: the verdict and the terminal's answer
/// (whose card data completes a sale found charged). `Err`: the terminal cannot be asked.
fn evidence(co: &Checkout, p: &Payment, held: &Held) -> Result<(Verdict, Option<Outcome>), String> {
    let devices = co.peripherals().ok_or("the devices are not started")?;
    // Only the terminal the intent went to can prove anything about it: a terminal of
    // another family, or another Adyen terminal or sale system, would answer "not found".
    let now_is = devices.terminal_identity();
    if p.terminal_identity != now_is {
        return Ok((
            Verdict::Unprovable(format!(
                "it was sent to {}, and the terminal configured now is {}; check that terminal's journal and settle \
                 it by hand",
                p.terminal_identity.as_deref().unwrap_or("a ZVT terminal"),
                now_is.as_deref().unwrap_or("a ZVT terminal")
            )),
            None,
        ));
    }
    if devices.terminal_family() == Family::Adyen {
        // Up to four status lookups, an abort and ten seconds of waiting for it to end.
        let ask = || {
            devices
                .terminal(TerminalOp::TransactionStatus(p.id), Box::new(|_| {}), Duration::from_secs(120))
                .map_err(|f| f.to_string())
        };
        let since = || {
            let ms = co.now().as_millisecond().saturating_sub(p.created_at.as_millisecond());
            Duration::from_millis(u64::try_from(ms).unwrap_or(0))
        };
        let mut o = ask()?;
        // "Not found" so soon after the intent: wait out the grace, then ask once more.
        if o.lookup == Lookup::NotFound && since() < NOT_FOUND_GRACE {
            std::thread::sleep(NOT_FOUND_GRACE.saturating_sub(since()) + Duration::from_millis(50));
            o = ask()?;
        }
        return Ok((judge_status(p, &o, since()), Some(o)));
    }
    let (last, answer) = read_last(co, held)?;
    Ok((judge(p, &last), answer))
}

/// The terminal's reference of the card payment a refund refunds (a referenced refund),
/// where the family refunds by reference.
fn original_reference(co: &Checkout, refund: &Sale) -> Option<String> {
    let orig = refund.refund_of?;
    let sale = co.store.sale(&orig).ok().flatten().or_else(|| co.store.lane_sale(&orig).ok().flatten())?;
    sale.tenders.iter().find_map(|t| match t {
        Tender::Card { card: Some(c), .. } => c.reference.clone(),
        _ => None,
    })
}

fn card_of(o: &Outcome) -> CardResult {
    let i = o.info.clone().unwrap_or_default();
    let offline = i.offline || i.text.as_deref().is_some_and(|t| t.to_ascii_uppercase().contains("OFFLINE"));
    CardResult {
        pan_masked: i.pan_masked,
        card_name: i.card_name,
        auth_code: i.auth_code,
        receipt_no: i.receipt_no,
        trace: i.trace,
        terminal_id: i.terminal_id,
        offline,
        receipt: o.receipt.iter().filter(|l| l.as_str() != "** COPY **").cloned().collect(),
        reference: i.reference,
    }
}

/// Whether a payment may move from `from` to `to` — the state machine's edges, and the
/// only ones [`advance`] stores:
///
/// | from | to |
/// |---|---|
/// | Intent | Approved, Declined, Failed, InDoubt |
/// | InDoubt | Approved, Failed, InDoubt (a new reason) |
/// | Approved | Recorded, Reversed, ReversalFailed |
/// | ReversalFailed | Reversed, ReversalFailed (a new reason) |
/// | Recorded, Declined, Failed, Reversed | — (final) |
pub fn may_move(from: PaymentState, to: PaymentState) -> bool {
    use PaymentState::*;
    matches!(
        (from, to),
        (Intent, Approved | Declined | Failed | InDoubt)
            | (InDoubt, Approved | Failed | InDoubt)
            | (Approved, Recorded | Reversed | ReversalFailed)
            | (ReversalFailed, Reversed | ReversalFailed)
    )
}

/// Stores a payment's next state (durable before it returns) and tells the staff screens.
/// A move the state machine does not have is refused and nothing is stored.
fn advance(co: &Checkout, p: &mut Payment, state: PaymentState, reason: Option<String>) -> Result<(), Refusal> {
    // The intent's first store (rev 0) creates the payment.
    let creating = p.rev == 0 && p.state == PaymentState::Intent && state == PaymentState::Intent;
    if !creating && !may_move(p.state, state) {
        tracing::error!(payment_id = %p.id, from = ?p.state, to = ?state, "payment move refused: not in the state machine");
        return Err(Refusal::conflict(
            "payment-state",
            "Payment cannot move so",
            format!("payment {} is {:?}; it cannot become {state:?}", p.id, p.state),
        ));
    }
    p.state = state;
    p.reason = reason;
    p.rev += 1;
    p.updated_at = co.now();
    co.store.put_payment(p).map_err(|e| Refusal::unavailable(format!("the payment could not be stored: {e}")))?;
    tracing::info!(payment_id = %p.id, sale_id = %p.sale_id, state = ?state, reason = p.reason.as_deref().unwrap_or(""), "payment");
    let _ = co.ports.events.send(Event::PaymentStatus {
        at: co.now().to_string(),
        payment_id: p.id,
        sale_id: p.sale_id,
        state: format!("{state:?}").to_lowercase(),
        amount_minor: p.amount_minor,
        reason: p.reason.clone(),
        offline: p.offline,
    });
    Ok(())
}

/// The terminal approved `p`: its card data goes into the stored sale's card tender, and
/// the approval is durable before any commit is made from it.
fn approve(co: &Checkout, p: &mut Payment, card: CardResult) -> Result<(), Refusal> {
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
    advance(co, p, PaymentState::Approved, None)
}

fn alert(co: &Checkout, text: String) {
    tracing::error!(%text, "staff alert");
    let _ = co.ports.events.send(Event::StaffAlert { at: co.now().to_string(), text });
}

/// Settles an `Intent` or `InDoubt` payment with the terminal's evidence (the lease held):
/// charged → approved and its sale committed; not charged → failed; not provable → left in
/// doubt (staff told when it first becomes so). Returns the verdict.
fn settle(co: &Checkout, p: &mut Payment, held: &Held, origin: Origin) -> Result<Verdict, Refusal> {
    let (verdict, answer) = match evidence(co, p, held) {
        Ok(x) => x,
        Err(why) => {
            tracing::info!(payment_id = %p.id, %why, "in-doubt payment not settled yet: the terminal cannot be asked");
            return Ok(Verdict::Unprovable(format!("the terminal cannot be asked now ({why})")));
        }
    };
    match &verdict {
        Verdict::Charged => {
            let card = answer.as_ref().map(card_of).unwrap_or_default();
            approve(co, p, card)?;
            let sale = commit_approved(co, p, held)?;
            if origin == Origin::Recovery {
                co.after_sale(&sale, false, origin);
            }
        }
        Verdict::NotCharged(why) => {
            advance(co, p, PaymentState::Failed, Some(format!("settled with the terminal: not charged ({why})")))?
        }
        Verdict::Unprovable(why) => {
            let reason = format!("in doubt: {why}");
            if p.state != PaymentState::InDoubt || p.reason.as_deref() != Some(reason.as_str()) {
                advance(co, p, PaymentState::InDoubt, Some(reason))?;
                alert(
                    co,
                    format!(
                        "Card payment {} of {} on terminal {} cannot be settled: {why}. No card payment is taken on \
                         this terminal until a manager settles it (edgectl payments settle)",
                        p.id, p.amount_minor, p.terminal
                    ),
                );
            }
        }
    }
    Ok(verdict)
}

/// The terminal's payments that are neither settled nor approved (the lease held).
fn unsettled_on(co: &Checkout, terminal: &str) -> Result<Vec<Payment>, Refusal> {
    Ok(co
        .store
        .payments_open()
        .map_err(|e| Refusal::unavailable(e.to_string()))?
        .into_iter()
        .filter(|p| p.terminal == terminal && matches!(p.state, PaymentState::Intent | PaymentState::InDoubt))
        .collect())
}

/// Settles what is open on the terminal before anything new runs on it; refuses while
/// a payment stays in doubt (its evidence would be lost under a new transaction).
fn clear_terminal(co: &Checkout, terminal: &str, held: &Held) -> Result<(), Refusal> {
    for mut p in unsettled_on(co, terminal)? {
        if let Verdict::Unprovable(why) = settle(co, &mut p, held, Origin::Recovery)? {
            return Err(Refusal::conflict(
                "terminal-in-doubt",
                "Terminal blocked by a payment in doubt",
                format!(
                    "card payment {} of {} on this terminal is in doubt ({why}); no card payment is taken on it until \
                     that one is settled — take cash, or a manager settles it (edgectl payments settle)",
                    p.id, p.amount_minor
                ),
            ));
        }
    }
    Ok(())
}

fn terminal_busy() -> Refusal {
    Refusal {
        kind: RefusalKind::Unavailable,
        slug: "terminal-busy",
        title: "Terminal busy",
        detail: "the payment terminal is busy with another payment; nothing was charged, try again".into(),
        field: None,
    }
}

/// The terminal's lease for a cash refund: refunds of a sale are made one at a time with
/// card payments, so a cash refund cannot take what a card refund is paying out.
pub fn hold_for_refund(co: &Checkout) -> Result<Held<'_>, Refusal> {
    co.lease.take(p_timeout(co)).ok_or_else(terminal_busy)
}

/// A card refund still fits what is left of its sale (checked with the terminal held, so
/// no other refund of the sale can commit in between).
fn refund_still_fits(co: &Checkout, refund: &Sale) -> Result<(), Refusal> {
    let Some(orig_id) = refund.refund_of else { return Ok(()) };
    let orig = co.store.lane_sale(&orig_id)?.ok_or_else(|| Refusal::unavailable(format!("sale {orig_id} is gone")))?;
    let done = co.store.refunded(&orig_id)?;
    for l in &refund.lines {
        let sold = orig.lines.iter().find(|o| o.line_no == l.line_no).map_or(0, |o| u64::from(o.quantity.amount()));
        let so_far = done.get(&l.line_no).copied().unwrap_or(0);
        if so_far + u64::from(l.quantity.amount()) > sold {
            return Err(Refusal::conflict(
                "refund-refused",
                "Refunded meanwhile",
                format!(
                    "line {} of sale {orig_id} sold {sold}, {so_far} refunded already (another refund meanwhile): {} \
                     more cannot be refunded; nothing was paid out",
                    l.line_no,
                    l.quantity.amount()
                ),
            ));
        }
    }
    Ok(())
}

/// A card sale or refund: lease, baseline, intent, terminal, approval, commit. Blocking
/// (run it off the async runtime).
pub fn card_sale(co: &Checkout, sale: Sale, key: Option<String>, fp: String) -> Result<CommitOutcome, Refusal> {
    let Some(Tender::Card { amount_minor, payment_id, terminal, .. }) =
        sale.tenders.iter().find(|t| matches!(t, Tender::Card { .. })).cloned()
    else {
        return Err(Refusal::unprocessable("bad-tender", "Bad tender", "tenders".into(), "no card tender"));
    };
    let devices = co.peripherals().ok_or_else(|| Refusal::unavailable("the devices are not started"))?;
    let refund = sale.kind == edge_sync::domain::SaleKind::Refund;
    let remotes = if refund { co.cfg.refund_remotes() } else { co.cfg.sale_remotes() };
    // A repeated request: the sale it made, or the payment still being settled. Asked
    // again once the terminal is held: a retry may have waited for the first attempt.
    let replay = |co: &Checkout| -> Result<Option<CommitOutcome>, Refusal> {
        let Some(k) = &key else { return Ok(None) };
        if co.store.sale_for_key(k).map_err(|e| Refusal::unavailable(e.to_string()))?.is_some() {
            let commit = SaleCommit {
                sale: sale.clone(),
                idempotency_key: key.clone(),
                fingerprint: fp.clone(),
                remotes: remotes.clone(),
            };
            return co.store.commit_sale(commit).map(Some).map_err(|e| Refusal::unavailable(e.to_string()));
        }
        let open = co.store.payments_open().map_err(|e| Refusal::unavailable(e.to_string()))?;
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
        Ok(None)
    };
    if let Some(done) = replay(co)? {
        return Ok(done);
    }
    let held = co.lease.take(p_timeout(co)).ok_or_else(terminal_busy)?;
    if let Some(done) = replay(co)? {
        return Ok(done);
    }
    if refund {
        refund_still_fits(co, &sale)?;
    }
    clear_terminal(co, &terminal, &held)?;
    // Is the terminal ready, and can it reach its host? (A status enquiry: one round trip.)
    if let Err(f) = devices.terminal(TerminalOp::Status, Box::new(|_| {}), Duration::from_secs(10)) {
        return Err(Refusal::unavailable(format!("the payment terminal does not answer; take cash ({f})")));
    }
    // The offline policy, when the terminal cannot reach its host (or a manager forced it).
    let offline = devices.terminal_offline() || co.forced_offline();
    if offline && refund {
        return Err(Refusal::payment(
            "offline-refused",
            "No card refunds offline",
            "the terminal cannot reach its host: card refunds need it; refund in cash",
        ));
    }
    if offline {
        let book = offline_book(co).map_err(Refusal::unavailable)?;
        check_offline(&co.cfg.offline, &book, amount_minor, co.now())
            .map_err(|why| Refusal::payment("offline-refused", "Card not accepted offline", why))?;
    }
    // The baseline: the terminal's own last receipt, read while this payment holds it
    // (ZVT). A terminal asked by reference (Adyen) needs none.
    let family = devices.terminal_family();
    let terminal_identity = devices.terminal_identity();
    let receipt_before =
        match if family == Family::Adyen { Ok((LastTransaction::Nothing, None)) } else { read_last(co, &held) } {
            Ok((LastTransaction::Nothing, _)) => None,
            Ok((LastTransaction::Receipt { receipt_no: Some(r), .. }, _)) => Some(r),
            Ok((LastTransaction::Receipt { receipt_no: None, .. }, _)) => {
                return Err(Refusal::unavailable(
                    "the payment terminal's last receipt carries no number, so a lost answer could not be settled; \
                 nothing was charged — take cash",
                ));
            }
            Err(why) => {
                return Err(Refusal::unavailable(format!(
                    "the payment terminal cannot tell its last receipt ({why}); nothing was charged — take cash"
                )));
            }
        };
    let now = co.now();
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
        receipt_before,
        // Adyen asks by reference: no baseline, so a ZVT terminal could never "prove" it.
        baseline_from_terminal: family == Family::Zvt,
        fingerprint: Some(fp.clone()),
        card: None,
        reason: None,
        idempotency_key: key.clone(),
        sale: Some(Box::new(sale.clone())),
        offline,
        forwarded: false,
        terminal_identity,
        request_id: sale.request_id.clone(),
        actor: sale.actor.clone(),
    };
    advance(co, &mut p, PaymentState::Intent, None)?;
    crash_point("payment.intent");
    let bus = co.ports.events.clone();
    let pid = p.id;
    let mut prompted = false;
    let op = if refund {
        TerminalOp::Refund { amount: amount_minor, payment: p.id, original: original_reference(co, &sale) }
    } else {
        TerminalOp::Authorise { amount: amount_minor, payment: p.id }
    };
    let r = devices.terminal(
        op,
        Box::new(move |e| {
            if let edge_drivers::payment::Event::Prompt { text, .. } = e {
                if !prompted {
                    prompted = true;
                    crash_point("payment.prompt");
                }
                let _ = bus.send(Event::TerminalPrompt { at: Timestamp::now().to_string(), payment_id: pid, text });
            }
        }),
        p_timeout(co),
    );
    crash_point("payment.answered");
    // An answer that says "declined" after the terminal reported an approval (an abort
    // pressed after the decision), and every failure once the intent is stored, are
    // settled by the terminal's evidence: a driver's "nothing was sent" can be wrong when
    // only the acknowledgement was lost.
    let contradicts = |o: &Outcome| !o.approved && o.info.as_ref().and_then(|i| i.result) == Some(0);
    match r {
        Ok(o) if o.approved => approve(co, &mut p, card_of(&o))?,
        Ok(o) if !contradicts(&o) => {
            advance(co, &mut p, PaymentState::Declined, Some(o.text.clone()))?;
            return Err(Refusal::payment("card-declined", "Card declined", o.text));
        }
        r => {
            let what = match &r {
                Ok(o) => format!("the terminal reported an approval, then {}", o.text),
                Err(f) => f.to_string(),
            };
            advance(co, &mut p, PaymentState::InDoubt, Some(what.clone()))?;
            match settle(co, &mut p, &held, Origin::Request)? {
                Verdict::Charged => {}
                Verdict::NotCharged(why) => {
                    return Err(Refusal::unavailable(format!("the card was not charged ({what}; {why})")));
                }
                Verdict::Unprovable(why) => {
                    return Err(Refusal::gateway(
                        "payment-in-doubt",
                        "Card payment outcome unknown",
                        format!(
                            "the terminal's answer was lost ({what}) and its outcome cannot be proven yet ({why}); \
                             payment {} is settled with the terminal or by a manager, never charged twice",
                            p.id
                        ),
                    ));
                }
            }
        }
    }
    crash_point("payment.approved");
    let committed = if p.state == PaymentState::Approved {
        commit_approved(co, &mut p, &held)?
    } else {
        // Settled as charged above: its sale is committed already.
        co.store
            .sale(&p.sale_id)
            .map_err(|e| Refusal::unavailable(e.to_string()))?
            .ok_or_else(|| Refusal::unavailable(format!("payment {} is settled but its sale is missing", p.id)))?
    };
    Ok(CommitOutcome::Created(committed))
}

fn p_timeout(co: &Checkout) -> Duration {
    co.cfg
        .devices
        .iter()
        .find(|d| d.kind == crate::devices::Kind::Terminal)
        .map_or(Duration::from_secs(180), |d| d.reply_timeout)
        + Duration::from_secs(30)
}

/// Commits the sale an approved payment pays (as it was priced, with the card data), under
/// the request's key and fingerprint; reverses the payment if it cannot be committed.
fn commit_approved(co: &Checkout, p: &mut Payment, held: &Held) -> Result<Sale, Refusal> {
    let Some(sale) = p.sale.clone() else {
        reverse(co, p, "the approved payment has no sale stored with it".into(), held)?;
        return Err(Refusal::unavailable("the payment was reversed: its sale was not stored"));
    };
    crash_point("payment.before_commit");
    let remotes = if p.kind == PaymentKind::Refund { co.cfg.refund_remotes() } else { co.cfg.sale_remotes() };
    let commit = SaleCommit {
        sale: *sale,
        idempotency_key: p.idempotency_key.clone(),
        fingerprint: p.fingerprint.clone().unwrap_or_else(|| "recovered".into()),
        remotes,
    };
    let committed = if fault("payment.commit_refused") {
        Ok(CommitOutcome::Conflict { sale_id: p.sale_id, what: "refused by EDGED_FAULT".into() })
    } else {
        co.store.commit_sale(commit)
    };
    match committed {
        Ok(CommitOutcome::Created(s)) | Ok(CommitOutcome::Replayed(s)) if s.id == p.sale_id => {
            crash_point("payment.after_commit");
            advance(co, p, PaymentState::Recorded, None)?;
            Ok(s)
        }
        Ok(other) => {
            let why = match &other {
                CommitOutcome::Conflict { what, .. } => what.clone(),
                _ => "another sale holds its key".into(),
            };
            reverse(co, p, format!("the sale could not be committed: {why}"), held)?;
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

/// Reverses an approved payment (the lease held); tells staff whatever happens. Never while
/// another payment of the terminal is in doubt (a reversal would become the terminal's last
/// transaction, the evidence that payment is settled by); never for a card refund (ZVT
/// reverses payments only: the refund was paid out and staff must settle it).
fn reverse(co: &Checkout, p: &mut Payment, why: String, _held: &Held) -> Result<(), Refusal> {
    if p.kind == PaymentKind::Refund {
        if p.state != PaymentState::ReversalFailed {
            advance(
                co,
                p,
                PaymentState::ReversalFailed,
                Some(format!("{why}; a card refund cannot be taken back at the terminal")),
            )?;
            alert(
                co,
                format!(
                    "Card refund {} of {} was paid out at the terminal but could not be recorded ({why}): settle it \
                     with the customer",
                    p.id, p.amount_minor
                ),
            );
        }
        return Ok(());
    }
    if let Some(other) = unsettled_on(co, &p.terminal)?.into_iter().find(|o| o.id != p.id) {
        let reason = format!("{why}; the reversal waits until payment {} on this terminal is settled", other.id);
        if p.state != PaymentState::ReversalFailed || p.reason.as_deref() != Some(reason.as_str()) {
            advance(co, p, PaymentState::ReversalFailed, Some(reason))?;
        }
        return Ok(());
    }
    let receipt = p.card.as_ref().and_then(|c| c.receipt_no);
    let reference = p.card.as_ref().and_then(|c| c.reference.clone());
    if receipt.is_none() && reference.is_none() {
        advance(co, p, PaymentState::ReversalFailed, Some(format!("{why}; no receipt number to reverse")))?;
        alert(
            co,
            format!(
                "Card payment {} of {} could not be reversed (no receipt number): refund it by hand",
                p.id, p.amount_minor
            ),
        );
        return Ok(());
    }
    let devices = co.peripherals();
    let r = devices.ok_or_else(|| "no devices".to_string()).and_then(|d| {
        d.terminal(
            TerminalOp::Reverse { receipt_no: receipt, reference, payment: p.id },
            Box::new(|_| {}),
            Duration::from_secs(60),
        )
        .map_err(|f| f.to_string())
    });
    match r {
        Ok(o) if o.approved || o.code == 0xB4 => {
            advance(co, p, PaymentState::Reversed, Some(why.clone()))?;
            alert(co, format!("Card payment {} was reversed: {why}", p.id));
        }
        Ok(o) => {
            advance(co, p, PaymentState::ReversalFailed, Some(format!("{why}; reversal refused: {}", o.text)))?;
            alert(
                co,
                format!(
                    "Card payment {} could not be reversed ({}): it is retried; refund by hand if it stays",
                    p.id, o.text
                ),
            );
        }
        Err(e) => {
            advance(co, p, PaymentState::ReversalFailed, Some(format!("{why}; reversal failed: {e}")))?;
            alert(co, format!("Card payment {} could not be reversed ({e}): it is retried", p.id));
        }
    }
    Ok(())
}

/// Settles what a crash or a lost answer left open, holding the terminal (a round is
/// skipped while a payment runs). In-doubt payments first: nothing else touches the
/// terminal while one cannot be proven. Returns how many payments moved.
pub fn recover(co: &Checkout) -> usize {
    let Some(held) = co.lease.take(Duration::from_secs(1)) else { return 0 };
    let open = match co.store.payments_open() {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(error = %e, "open payments not readable");
            return 0;
        }
    };
    let mut moved = 0;
    let mut blocked = std::collections::BTreeSet::new();
    let (unsettled, rest): (Vec<Payment>, Vec<Payment>) =
        open.into_iter().partition(|p| matches!(p.state, PaymentState::Intent | PaymentState::InDoubt));
    for mut p in unsettled.into_iter().chain(rest) {
        let before = (p.state, p.rev);
        let r = match p.state {
            PaymentState::Intent | PaymentState::InDoubt if blocked.contains(&p.terminal) => Ok(()),
            PaymentState::Intent | PaymentState::InDoubt => {
                let v = settle(co, &mut p, &held, Origin::Recovery);
                if !matches!(v, Ok(Verdict::Charged | Verdict::NotCharged(_))) {
                    blocked.insert(p.terminal.clone());
                }
                v.map(|_| ())
            }
            // A commit that fails reverses: not while the terminal's evidence is needed.
            PaymentState::Approved if !blocked.contains(&p.terminal) => commit_after_restart(co, &mut p, &held),
            PaymentState::ReversalFailed if !blocked.contains(&p.terminal) && p.kind == PaymentKind::Sale => {
                let why = p.reason.clone().unwrap_or_default();
                reverse(co, &mut p, why, &held)
            }
            _ => Ok(()),
        };
        if let Err(e) = r {
            tracing::warn!(payment_id = %p.id, error = %e.detail, "payment not settled");
        }
        if (p.state, p.rev) != before && p.state != before.0 {
            moved += 1;
        }
    }
    moved
}

/// An approved payment found after a restart: its sale is committed as it was priced (the
/// customer paid for it), or found committed already.
fn commit_after_restart(co: &Checkout, p: &mut Payment, held: &Held) -> Result<(), Refusal> {
    if co.store.sale(&p.sale_id).map_err(|e| Refusal::unavailable(e.to_string()))?.is_some() {
        return advance(co, p, PaymentState::Recorded, None);
    }
    let sale = commit_approved(co, p, held)?;
    co.after_sale(&sale, false, Origin::Recovery);
    alert(co, format!("Sale {} was completed after a restart: its card payment had been approved", p.sale_id));
    Ok(())
}

/// Settles the outcome by hand: a manager read the terminal's own journal (or its
/// printout) for a payment the evidence could not prove. `charged` carries the receipt
/// number the terminal printed for it; the sale is then committed as priced.
pub fn settle_by_hand(co: &Checkout, id: Uuid, charged: Option<u32>, who: &str) -> Result<Payment, Refusal> {
    let held = co.lease.take(p_timeout(co)).ok_or_else(terminal_busy)?;
    let mut p = co.store.payment(&id).map_err(|e| Refusal::unavailable(e.to_string()))?.ok_or_else(|| Refusal {
        kind: RefusalKind::NotFound,
        slug: "unknown-payment",
        title: "Unknown payment",
        detail: format!("no payment {id}"),
        field: Some("id".into()),
    })?;
    if !matches!(p.state, PaymentState::Intent | PaymentState::InDoubt) {
        return Err(Refusal::conflict(
            "payment-not-in-doubt",
            "Payment not in doubt",
            format!("payment {id} is {:?}: only a payment in doubt is settled by hand", p.state),
        ));
    }
    match charged {
        Some(receipt_no) => {
            let card = CardResult { receipt_no: Some(receipt_no), terminal_id: None, ..CardResult::default() };
            approve(co, &mut p, card)?;
            tracing::warn!(payment_id = %p.id, %who, receipt_no, "payment settled by hand: charged");
            let sale = commit_approved(co, &mut p, &held)?;
            co.after_sale(&sale, false, Origin::Recovery);
        }
        None => advance(co, &mut p, PaymentState::Failed, Some(format!("settled by hand by {who}: not charged")))?,
    }
    Ok(p)
}

/// The terminal's end-of-day (forwards its offline payments), holding the terminal and
/// refused while one of its payments is in doubt (its evidence would be lost).
///
/// Also refused while an approved card payment waits for its sale or its reversal: the
/// end-of-day closes the batch, after which the terminal reverses nothing. Returns the
/// terminal's answer and how many offline payments it forwarded (marked so while the
/// terminal is still held, so a payment taken after it is not marked).
pub fn end_of_day(co: &Checkout) -> Result<(Outcome, u32), String> {
    let devices = co.peripherals().ok_or("the devices are not started")?;
    let held = co.lease.take(p_timeout(co)).ok_or("the payment terminal is busy with a payment")?;
    if let Some(t) = devices.terminal_id() {
        clear_terminal(co, &t, &held).map_err(|r| r.detail)?;
        let open = co.store.payments_open().map_err(|e| e.to_string())?;
        if let Some(p) = open.iter().find(|p| {
            p.terminal == t
                && p.kind == PaymentKind::Sale
                && matches!(p.state, PaymentState::Approved | PaymentState::ReversalFailed)
        }) {
            return Err(format!(
                "card payment {} is {:?}: the end-of-day waits until it is recorded or reversed ({})",
                p.id,
                p.state,
                p.reason.as_deref().unwrap_or("retried every 15 s")
            ));
        }
    }
    let o = devices
        .terminal(TerminalOp::EndOfDay, Box::new(|_| {}), Duration::from_secs(120))
        .map_err(|f| f.to_string())?;
    let forwarded = if o.approved { mark_forwarded(co)? } else { 0 };
    Ok((o, forwarded))
}

/// Marks the offline payments the terminal's end-of-day forwarded; how many.
fn mark_forwarded(co: &Checkout) -> Result<u32, String> {
    let mut n = 0;
    for mut p in co.store.payments_open().map_err(|e| e.to_string())? {
        if p.offline && !p.forwarded && p.state == PaymentState::Recorded {
            p.forwarded = true;
            p.rev += 1;
            p.updated_at = co.now();
            co.store.put_payment(&p).map_err(|e| e.to_string())?;
            n += 1;
        }
    }
    Ok(n)
}

/// Starts the recovery loop (at once, then every [`RECOVER_EVERY`]).
pub fn spawn_recovery(co: std::sync::Arc<Checkout>) {
    let spawned = std::thread::Builder::new().name("payments-recovery".into()).spawn(move || {
        // Give the terminal a moment to connect and register.
        std::thread::sleep(Duration::from_millis(500));
        loop {
            if !co.accepting() {
                return;
            }
            let n = recover(&co);
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

    fn payment(before: Option<u32>, amount: i64) -> Payment {
        let now = Timestamp::now();
        Payment {
            id: new_id(),
            kind: PaymentKind::Sale,
            sale_id: new_id(),
            amount_minor: amount,
            currency: edge_sync::money::Currency::EUR,
            terminal: "terminal".into(),
            state: PaymentState::Intent,
            created_at: now,
            updated_at: now,
            rev: 1,
            receipt_before: before,
            baseline_from_terminal: true,
            fingerprint: None,
            card: None,
            reason: None,
            idempotency_key: None,
            sale: None,
            offline: false,
            forwarded: false,
            terminal_identity: None,
            request_id: String::new(),
            actor: String::new(),
        }
    }

    #[test]
    fn an_adyen_status_answer_settles_only_what_it_proves() {
        use edge_drivers::payment::{Lookup, Outcome, StatusInfo};
        let p = payment(None, 2570);
        let found = |approved: bool, result: u8, amount: i64| Outcome {
            approved,
            lookup: Lookup::Found,
            text: "t".into(),
            info: Some(StatusInfo { result: Some(result), amount_minor: Some(amount), ..StatusInfo::default() }),
            ..Outcome::default()
        };
        let late = NOT_FOUND_GRACE + Duration::from_secs(1);
        assert_eq!(judge_status(&p, &found(true, 0, 2570), late), Verdict::Charged);
        // A partial approval, or another amount: charged, but not as this payment.
        assert!(matches!(judge_status(&p, &found(false, 0, 1000), late), Verdict::Unprovable(_)));
        assert!(matches!(judge_status(&p, &found(true, 0, 9999), late), Verdict::Unprovable(_)));
        assert!(matches!(judge_status(&p, &found(false, 0xFF, 2570), late), Verdict::NotCharged(_)));
        let none = Outcome { lookup: Lookup::NotFound, text: "no such".into(), ..Outcome::default() };
        assert!(matches!(judge_status(&p, &none, late), Verdict::NotCharged(_)));
        assert!(matches!(judge_status(&p, &none, Duration::from_millis(500)), Verdict::Unprovable(_)), "too soon");
        let running = Outcome { lookup: Lookup::InProgress, ..Outcome::default() };
        assert!(matches!(judge_status(&p, &running, late), Verdict::Unprovable(_)));
        assert!(matches!(judge_status(&p, &Outcome::default(), late), Verdict::Unprovable(_)));
    }

    fn last(receipt: u32, result: u8, amount: i64) -> LastTransaction {
        LastTransaction::Receipt {
            receipt_no: Some(receipt),
            result: Some(result),
            amount_minor: Some(amount),
            reversal: false,
        }
    }

    /// The evidence rule, case by case: only what the last transaction proves is decided.
    #[test]
    fn judge_decides_only_what_the_last_transaction_proves() {
        let p = payment(Some(41), 2570);
        let charged = |v: &Verdict| matches!(v, Verdict::Charged);
        let not = |v: &Verdict| matches!(v, Verdict::NotCharged(_));
        let doubt = |v: &Verdict| matches!(v, Verdict::Unprovable(_));
        // Nothing ran since the baseline: not charged (the payment never reached it, or
        // was aborted before a receipt).
        assert!(not(&judge(&p, &last(41, 0, 999))), "the baseline itself");
        // The next receipt, approved, this amount: charged.
        assert!(charged(&judge(&p, &last(42, 0, 2570))));
        // The next receipt, declined: not charged.
        assert!(not(&judge(&p, &last(42, 0x05, 2570))));
        // Approved, another amount: something else ran on the terminal — never "no charge".
        let v = judge(&p, &last(42, 0, 1000));
        assert!(doubt(&v), "{v:?}");
        // No receipt number, no result: cannot tell.
        let no_number =
            LastTransaction::Receipt { receipt_no: None, result: Some(0), amount_minor: Some(2570), reversal: false };
        assert!(doubt(&judge(&p, &no_number)));
        let no_result =
            LastTransaction::Receipt { receipt_no: Some(42), result: None, amount_minor: Some(2570), reversal: false };
        assert!(doubt(&judge(&p, &no_result)));
        // A reversal of the same amount is not this payment's charge.
        let reversal = LastTransaction::Receipt {
            receipt_no: Some(42),
            result: Some(0),
            amount_minor: Some(2570),
            reversal: true,
        };
        assert!(doubt(&judge(&p, &reversal)), "a reversal is never read as a charge");
        assert!(doubt(&judge(&p, &no_result)));
        // The terminal had receipts before and now has none: cannot tell.
        assert!(doubt(&judge(&p, &LastTransaction::Nothing)));
        // A terminal with no transaction at all before and after: not charged.
        let fresh = payment(None, 2570);
        assert!(not(&judge(&fresh, &LastTransaction::Nothing)));
        assert!(charged(&judge(&fresh, &last(1, 0, 2570))));
        // A baseline taken from our own notes (an earlier version) proves nothing.
        let legacy = Payment { baseline_from_terminal: false, ..payment(Some(41), 2570) };
        assert!(doubt(&judge(&legacy, &last(42, 0, 2570))));
        assert!(doubt(&judge(&legacy, &last(41, 0, 2570))));
    }

    /// One holder at a time; a waiter gets the lease when it is released, and gives up
    /// after its wait.
    /// Every pair of states, case by case: only the state machine's edges are allowed.
    #[test]
    fn only_the_state_machines_moves_are_allowed() {
        use PaymentState::*;
        let all = [Intent, InDoubt, Approved, Recorded, Declined, Failed, Reversed, ReversalFailed];
        let allowed: &[(PaymentState, &[PaymentState])] = &[
            (Intent, &[Approved, Declined, Failed, InDoubt]),
            (InDoubt, &[Approved, Failed, InDoubt]),
            (Approved, &[Recorded, Reversed, ReversalFailed]),
            (ReversalFailed, &[Reversed, ReversalFailed]),
            (Recorded, &[]),
            (Declined, &[]),
            (Failed, &[]),
            (Reversed, &[]),
        ];
        for (from, tos) in allowed {
            for to in all {
                assert_eq!(may_move(*from, to), tos.contains(&to), "{from:?} -> {to:?}");
            }
            // A final state has no way out; every other has one.
            assert_eq!(from.is_final(), tos.is_empty(), "{from:?}");
        }
    }

    #[test]
    fn the_lease_has_one_holder_and_bounded_waits() {
        let lease = std::sync::Arc::new(Lease::default());
        let held = lease.take(Duration::ZERO).expect("free");
        assert!(lease.take(Duration::from_millis(20)).is_none(), "held elsewhere");
        let l2 = lease.clone();
        let waiter = std::thread::spawn(move || l2.take(Duration::from_secs(5)).is_some());
        std::thread::sleep(Duration::from_millis(50));
        drop(held);
        assert!(waiter.join().expect("join"), "the waiter gets it once released");
        assert!(lease.take(Duration::ZERO).is_some(), "free again after the waiter dropped it");
    }

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
