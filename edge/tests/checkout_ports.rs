//! The checkout in-process, through its ports: a real store on a temporary disk, a fixed
//! clock, an event bus, a counted engine wake and fake peripherals — a terminal that keeps
//! a journal the way a ZVT terminal does (its repeat receipt answers its last transaction
//! only), a printer that remembers its jobs, a drawer, a display. No HTTP, no daemon.
//!
//! Every card-payment transition is driven here: approved, declined, an answer lost after
//! a charge, an answer lost with nothing charged, a terminal that cannot be asked (in
//! doubt, the terminal blocked, settled by a manager), refunds to the card; and the
//! admission refusals (disk low, shutting down), replays and conflicts.

use edge::checkout::order::{Actor, AdjustOrder, OrderLine, OrderTender, RefundOrder, SaleOrder};
use edge::checkout::ports::{Clock, FixedClock, Peripherals, Ports};
use edge::checkout::{Checkout, Committed, RefusalKind};
use edge::devices::{DrawerDone, PrintDone, TerminalEvents, TerminalOp};
use edge_api::Event;
use edge_drivers::escpos::Receipt;
use edge_drivers::payment::{Failure, Outcome};
use edge_drivers::zvt::{StatusInfo, ZvtError};
use edge_sync::domain::{Item, ItemKind, PaymentState, SaleKind, Tender};
use edge_sync::money::Currency;
use edge_sync::store::{SledStore, SnapshotRecord, Store, StoreConfig};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the fake terminal does with the next payment.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Next {
    Approve,
    Decline,
    /// Charges, then the answer is lost on the way back.
    ChargeThenLose,
    /// Charges nothing, and the answer is lost.
    LoseBeforeCharging,
    /// Charges, the answer is lost, and the terminal cannot be asked afterwards.
    ChargeThenGoSilent,
}

#[derive(Debug, Clone)]
struct Entry {
    receipt_no: u32,
    result: u8,
    amount: i64,
    reversal: bool,
}

#[derive(Default)]
struct FakeTerminal {
    journal: Vec<Entry>,
    next: VecDeque<Next>,
    /// The repeat receipt fails (the terminal cannot be asked).
    mute: bool,
    ops: Vec<String>,
}

#[derive(Default)]
struct Fakes {
    terminal: Mutex<FakeTerminal>,
    printed: Mutex<Vec<(String, Vec<String>)>>,
    drawer_kicks: AtomicUsize,
    shown: Mutex<Vec<(String, String)>>,
}

fn info(e: &Entry) -> StatusInfo {
    StatusInfo {
        result: Some(e.result),
        amount_minor: Some(e.amount),
        receipt_no: Some(e.receipt_no),
        trace: Some(e.receipt_no),
        original_trace: e.reversal.then_some(e.receipt_no - 1),
        pan_masked: Some("679999*********0019".into()),
        card_name: Some("girocard".into()),
        auth_code: Some(format!("A{:05}", e.receipt_no)),
        terminal_id: Some("52000001".into()),
        ..StatusInfo::default()
    }
}

fn outcome(approved: bool, code: u8, text: &str, info: Option<StatusInfo>) -> Outcome {
    Outcome { approved, code, text: text.into(), info, receipt: vec!["CARD RECEIPT".into()], ..Outcome::default() }
}

fn lost(in_doubt: bool) -> Failure {
    Failure { error: ZvtError::Timeout(1000).into(), in_doubt, partial: Box::default() }
}

impl FakeTerminal {
    fn book(&mut self, result: u8, amount: i64, reversal: bool) -> Entry {
        let receipt_no = self.journal.last().map_or(1, |e| e.receipt_no + 1);
        let e = Entry { receipt_no, result, amount, reversal };
        self.journal.push(e.clone());
        e
    }
}

impl Peripherals for Fakes {
    fn weigh(&self, _wait: Duration) -> Result<i64, String> {
        Ok(1250)
    }
    fn terminal_id(&self) -> Option<String> {
        Some("terminal".into())
    }
    fn terminal_offline(&self) -> bool {
        false
    }
    fn terminal(&self, op: TerminalOp, _events: TerminalEvents, _wait: Duration) -> Result<Outcome, Failure> {
        let mut t = self.terminal.lock().expect("terminal");
        t.ops.push(format!("{op:?}"));
        match op {
            TerminalOp::Status | TerminalOp::Diagnosis | TerminalOp::EndOfDay => Ok(outcome(true, 0, "OK", None)),
            TerminalOp::RepeatReceipt if t.mute => Err(lost(false)),
            TerminalOp::RepeatReceipt => match t.journal.last() {
                Some(e) => Ok(outcome(true, 0, "repeat", Some(info(e)))),
                None => Ok(outcome(false, 0x83, "function not possible", None)),
            },
            TerminalOp::TransactionStatus(_) => Err(lost(false)),
            TerminalOp::Authorise { amount, .. } | TerminalOp::Refund { amount, .. } => {
                match t.next.pop_front().unwrap_or(Next::Approve) {
                    Next::Approve => {
                        let e = t.book(0, amount, false);
                        Ok(outcome(true, 0, "approved", Some(info(&e))))
                    }
                    Next::Decline => {
                        let e = t.book(0x05, amount, false);
                        Ok(outcome(false, 0x05, "declined", Some(info(&e))))
                    }
                    Next::ChargeThenLose => {
                        t.book(0, amount, false);
                        Err(lost(true))
                    }
                    Next::LoseBeforeCharging => Err(lost(true)),
                    Next::ChargeThenGoSilent => {
                        t.book(0, amount, false);
                        t.mute = true;
                        Err(lost(true))
                    }
                }
            }
            TerminalOp::Reverse { .. } => {
                let amount = t.journal.last().map_or(0, |e| e.amount);
                let e = t.book(0, amount, true);
                Ok(outcome(true, 0, "reversed", Some(info(&e))))
            }
        }
    }
    fn has_printer(&self) -> bool {
        true
    }
    fn print(&self, job_id: &str, receipt: Receipt, done: Option<PrintDone>) -> Result<(), String> {
        let text = format!("{receipt:?}");
        self.printed.lock().expect("printed").push((job_id.to_string(), vec![text]));
        if let Some(d) = done {
            d(Ok(()));
        }
        Ok(())
    }
    fn kick_drawer(&self, done: DrawerDone) -> Result<(), String> {
        self.drawer_kicks.fetch_add(1, Ordering::SeqCst);
        done(Ok(true));
        Ok(())
    }
    fn show(&self, upper: &str, lower: &str) -> Result<(), String> {
        self.shown.lock().expect("shown").push((upper.into(), lower.into()));
        Ok(())
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    co: Arc<Checkout>,
    fakes: Arc<Fakes>,
    wakes: Arc<AtomicUsize>,
    disk_free: Arc<AtomicU64>,
    clock: Arc<FixedClock>,
    events: tokio::sync::broadcast::Receiver<Event>,
}

fn item(sku: &str, price: i64) -> SnapshotRecord {
    SnapshotRecord {
        item: Item {
            sku: sku.into(),
            name: format!("Item {sku}"),
            price_minor: price,
            currency: Currency::EUR,
            tax_rate_bp: 1900,
            kind: ItemKind::Unit,
            barcodes: vec![],
            category: "test".into(),
            age_restricted: false,
            image: None,
        },
        stock_level: Some(100),
        stock_at: None,
    }
}

fn rig() -> Rig {
    let dir = tempfile::tempdir().expect("tmp");
    let store = SledStore::open(StoreConfig::new(dir.path().join("store"))).expect("store");
    let mut wine = item("SKU-W", 899);
    wine.item.age_restricted = true;
    store.import_catalog(&[item("SKU-A", 250), item("SKU-B", 1000), wine]).expect("catalog");
    let text = edge::config::demo_toml(dir.path(), "127.0.0.1:0", &Default::default())
        + "\n[devices.terminal]\nkind = \"terminal\"\nuri = \"tcp://127.0.0.1:9\"\n";
    // The demo turns the disk guard off (a demo on a full laptop still sells): on here.
    let text = text.replace("min_free_mb = 0\nwarn_free_mb = 0", "min_free_mb = 64\nwarn_free_mb = 512");
    // A store's default: the daemon refuses an age-restricted sale without an age check.
    let text = text.replace("age_check = \"recorded\"", "age_check = \"required\"");
    let cfg = edge::config::parse(&text, dir.path()).expect("config");
    assert_eq!(cfg.min_free_bytes, 64 << 20, "the disk guard is on");
    let (tx, events) = tokio::sync::broadcast::channel(1024);
    let wakes = Arc::new(AtomicUsize::new(0));
    let disk_free = Arc::new(AtomicU64::new(u64::MAX));
    let clock = Arc::new(FixedClock::at("2026-12-06T22:30:00Z".parse().expect("time")));
    let (w, d) = (wakes.clone(), disk_free.clone());
    let ports = Ports {
        clock: clock.clone(),
        events: tx,
        wake: Arc::new(move || {
            w.fetch_add(1, Ordering::SeqCst);
        }),
        disk_free: Arc::new(move || Ok(d.load(Ordering::SeqCst))),
    };
    let co = Arc::new(Checkout::new(Arc::new(cfg), Arc::new(store), ports, Arc::new(edge::metrics::Metrics::new())));
    let fakes = Arc::new(Fakes::default());
    co.attach(fakes.clone());
    Rig { _dir: dir, co, fakes, wakes, disk_free, clock, events }
}

fn line(sku: &str, qty: i64) -> OrderLine {
    OrderLine {
        sku: sku.into(),
        qty: Some(qty),
        weight_g: None,
        from_scale: None,
        lot: None,
        expiry: None,
        unit_price_minor: None,
        discount_minor: None,
    }
}

fn order(lines: Vec<OrderLine>, tender: &str, amount: Option<i64>) -> SaleOrder {
    SaleOrder {
        id: None,
        lines,
        tenders: vec![OrderTender { kind: tender.into(), amount_minor: amount }],
        receipt: None,
        age_check: None,
    }
}

fn cashier() -> Actor {
    Actor { role: "cashier".into(), approver: None, request_id: edge_sync::domain::new_id().to_string(), cashier: None }
}

fn manager() -> Actor {
    Actor { role: "manager".into(), approver: None, request_id: edge_sync::domain::new_id().to_string(), cashier: None }
}

/// Waits (bounded) for the after-commit thread to have done `what`.
fn eventually(what: &str, f: impl Fn() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("never: {what}");
}

fn drain_events(rx: &mut tokio::sync::broadcast::Receiver<Event>) -> Vec<Event> {
    let mut out = vec![];
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

#[test]
fn a_cash_sale_commits_under_the_clock_wakes_the_engine_and_runs_the_peripherals_after() {
    let mut r = rig();
    let key = Some("key-1".to_string());
    let c = r.co.sell(order(vec![line("SKU-A", 2), line("SKU-B", 1)], "cash", Some(2000)), key.clone(), &cashier());
    let Ok(Committed::Created(sale)) = c else { panic!("created: {c:?}") };
    assert_eq!(sale.total_minor, 1500);
    assert_eq!(sale.change_minor, 500);
    assert_eq!(sale.created_at, r.clock.now(), "the clock port's time");
    assert_eq!(sale.business_date.to_string(), "2026-12-06");
    assert_eq!(r.wakes.load(Ordering::SeqCst), 1, "the engine woken once");
    let stored = r.co.store.sale(&sale.id).expect("read").expect("durable");
    assert_eq!(stored, sale);
    assert_eq!(r.co.store.stock("SKU-A").expect("stock").available(), Some(98));
    eventually("receipt printed and drawer kicked", || {
        r.fakes.drawer_kicks.load(Ordering::SeqCst) == 1 && r.fakes.printed.lock().expect("p").len() == 1
    });
    assert_eq!(r.fakes.printed.lock().expect("p")[0].0, sale.id.to_string(), "job id = sale id");
    eventually("shown on the display", || !r.fakes.shown.lock().expect("s").is_empty());
    let events = drain_events(&mut r.events);
    assert!(events.iter().any(|e| matches!(e, Event::SaleCompleted { sale_id, .. } if *sale_id == sale.id)));
    eventually("the receipt's state", || {
        matches!(r.co.after.receipt(&sale.id), Some((edge::checkout::after::ReceiptState::Printed { .. }, 0)))
    });

    // The same order under the same key: the first sale, and nothing else happens.
    r.clock.set("2026-12-06T22:31:00Z".parse().expect("time"));
    let again = r.co.sell(order(vec![line("SKU-A", 2), line("SKU-B", 1)], "cash", Some(2000)), key.clone(), &cashier());
    assert_eq!(again, Ok(Committed::Replayed(sale.clone())));
    assert_eq!(r.wakes.load(Ordering::SeqCst), 1, "a replay wakes nothing");
    // Another order under it: refused, naming the key.
    let other = r.co.sell(order(vec![line("SKU-A", 3)], "cash", Some(2000)), key, &cashier()).expect_err("conflict");
    assert_eq!(
        (other.kind, other.slug, other.field.as_deref()),
        (RefusalKind::Conflict, "idempotency-conflict", Some("Idempotency-Key"))
    );
    assert_eq!(r.co.store.stock("SKU-A").expect("stock").available(), Some(98), "nothing more taken");

    // `receipt: false`: nothing printed, the drawer still opens for the cash.
    let mut quiet = order(vec![line("SKU-A", 1)], "cash", Some(250));
    quiet.receipt = Some(false);
    let Ok(Committed::Created(s2)) = r.co.sell(quiet, None, &cashier()) else { panic!("second sale") };
    eventually("drawer kicked again", || r.fakes.drawer_kicks.load(Ordering::SeqCst) == 2);
    assert_eq!(r.co.after.receipt(&s2.id).map(|(s, _)| s), Some(edge::checkout::after::ReceiptState::NotRequested));
}

#[test]
fn admission_refuses_below_the_disk_guard_and_once_shutdown_began_and_stores_nothing() {
    let r = rig();
    r.disk_free.store(1 << 20, Ordering::SeqCst);
    let e = r.co.sell(order(vec![line("SKU-A", 1)], "cash", Some(250)), None, &cashier()).expect_err("disk low");
    assert_eq!((e.kind, e.slug), (RefusalKind::StorageLow, "disk-low"));
    assert!(e.detail.contains("MiB free"), "{}", e.detail);
    let adj = AdjustOrder { sku: "SKU-A".into(), delta: 5, reason: "received".into(), note: None };
    let e = r.co.adjust(adj.clone(), None, &manager()).expect_err("disk low");
    assert_eq!(e.kind, RefusalKind::StorageLow);
    // Space freed: taken at once (a low reading is measured again).
    r.disk_free.store(u64::MAX, Ordering::SeqCst);
    assert!(r.co.adjust(adj, None, &manager()).is_ok());
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("rt");
    rt.block_on(r.co.drain());
    let e = r.co.sell(order(vec![line("SKU-A", 1)], "cash", Some(250)), None, &cashier()).expect_err("stopping");
    assert_eq!((e.kind, e.slug), (RefusalKind::Unavailable, "shutting-down"));
    assert_eq!(r.co.store.stats().sales, 0, "no sale stored");
    assert_eq!(r.wakes.load(Ordering::SeqCst), 1, "only the adjustment woke the engine");
}

fn card_sale(r: &Rig, qty: i64) -> Result<Committed<edge_sync::domain::Sale>, edge::checkout::Refusal> {
    r.co.sell(order(vec![line("SKU-B", qty)], "card", None), Some(edge_sync::domain::new_id().to_string()), &cashier())
}

fn payment_states(r: &Rig) -> Vec<PaymentState> {
    let mut all: Vec<_> = r.co.store.payments_open().expect("payments").into_iter().collect();
    all.sort_by_key(|p| p.created_at);
    all.iter().map(|p| p.state).collect()
}

#[test]
fn every_card_payment_transition_ends_where_the_evidence_says() {
    let r = rig();
    // Approved → Recorded: the sale carries the terminal's card data.
    let Ok(Committed::Created(s)) = card_sale(&r, 1) else { panic!("approved") };
    let Some(Tender::Card { card: Some(c), payment_id, .. }) = s.tenders.first().cloned() else { panic!("card") };
    assert_eq!((c.receipt_no, c.auth_code.as_deref()), (Some(1), Some("A00001")));
    let p = r.co.store.payment(&payment_id).expect("read").expect("payment");
    assert_eq!((p.state, p.receipt_before, p.sale_id), (PaymentState::Recorded, None, s.id));

    // Declined: refused, no sale, the payment final.
    r.fakes.terminal.lock().expect("t").next.push_back(Next::Decline);
    let e = card_sale(&r, 1).expect_err("declined");
    assert_eq!((e.kind, e.slug), (RefusalKind::Declined, "card-declined"));

    // Charged, answer lost: settled from the terminal's journal as charged — one sale.
    r.fakes.terminal.lock().expect("t").next.push_back(Next::ChargeThenLose);
    let Ok(Committed::Created(s3)) = card_sale(&r, 2) else { panic!("settled as charged") };
    assert_eq!(s3.total_minor, 2000);

    // Nothing charged, answer lost: the journal's last is the baseline → not charged.
    r.fakes.terminal.lock().expect("t").next.push_back(Next::LoseBeforeCharging);
    let e = card_sale(&r, 3).expect_err("not charged");
    assert_eq!(e.kind, RefusalKind::Unavailable);
    assert!(e.detail.contains("not charged"), "{}", e.detail);

    // Answer lost and the terminal cannot be asked: in doubt, the terminal blocked.
    r.fakes.terminal.lock().expect("t").next.push_back(Next::ChargeThenGoSilent);
    let e = card_sale(&r, 4).expect_err("in doubt");
    assert_eq!((e.kind, e.slug), (RefusalKind::InDoubt, "payment-in-doubt"), "{}", e.detail);
    let doubt = r.co.store.payments_open().expect("open").into_iter().find(|p| p.state == PaymentState::InDoubt);
    let doubt = doubt.expect("a payment in doubt");
    // While it is in doubt, no card payment is taken on the terminal.
    let e = card_sale(&r, 1).expect_err("blocked");
    assert_eq!((e.kind, e.slug), (RefusalKind::Conflict, "terminal-in-doubt"));
    // A manager reads the terminal's journal and settles it as charged: the sale is made.
    let receipt_no = r.fakes.terminal.lock().expect("t").journal.last().map(|e| e.receipt_no).expect("journal");
    let wakes = r.wakes.load(Ordering::SeqCst);
    let settled = edge::checkout::payments::settle_by_hand(&r.co, doubt.id, Some(receipt_no), "max").expect("settled");
    assert_eq!(settled.state, PaymentState::Recorded);
    assert!(r.co.store.sale(&doubt.sale_id).expect("read").is_some(), "its sale committed");
    assert_eq!(r.wakes.load(Ordering::SeqCst), wakes + 1, "a settled sale wakes the engine too");
    // Settled twice: refused.
    let e = edge::checkout::payments::settle_by_hand(&r.co, doubt.id, None, "max").expect_err("twice");
    assert_eq!(e.slug, "payment-not-in-doubt");
    // The terminal answers again: card payments are taken.
    r.fakes.terminal.lock().expect("t").mute = false;
    assert!(matches!(card_sale(&r, 1), Ok(Committed::Created(_))));
    assert!(payment_states(&r).is_empty(), "nothing left open: {:?}", payment_states(&r));
}

#[test]
fn refunds_go_back_to_the_card_or_the_drawer_and_never_exceed_the_sale() {
    let r = rig();
    let Ok(Committed::Created(s)) = card_sale(&r, 3) else { panic!("sale") };
    let to_card = RefundOrder {
        lines: Some(vec![edge::checkout::order::RefundLine { line_no: 1, qty: Some(2) }]),
        tender: "card".into(),
        reason: "broken".into(),
    };
    let Ok(Committed::Created(back)) = r.co.refund(s.id, to_card.clone(), Some("r1".into()), &manager()) else {
        panic!("card refund")
    };
    assert_eq!((back.kind, back.total_minor, back.refund_of), (SaleKind::Refund, 2000, Some(s.id)));
    assert!(r.fakes.terminal.lock().expect("t").ops.iter().any(|o| o.starts_with("Refund { amount: 2000,")));
    // Its retry replays; a refund of more than is left is refused.
    assert!(matches!(r.co.refund(s.id, to_card.clone(), Some("r1".into()), &manager()), Ok(Committed::Replayed(_))));
    let e = r.co.refund(s.id, to_card, Some("r2".into()), &manager()).expect_err("too much");
    assert_eq!(e.kind, RefusalKind::Invalid, "{}", e.detail);
    let rest = RefundOrder { lines: None, tender: "cash".into(), reason: "rest".into() };
    let Ok(Committed::Created(cash)) = r.co.refund(s.id, rest.clone(), None, &manager()) else { panic!("cash refund") };
    assert_eq!(cash.total_minor, 1000);
    eventually("the drawer opens for a cash refund", || r.fakes.drawer_kicks.load(Ordering::SeqCst) == 1);
    let e = r.co.refund(s.id, rest, None, &manager()).expect_err("nothing left");
    assert!(matches!(e.kind, RefusalKind::Conflict | RefusalKind::Invalid), "{e:?}");
    assert_eq!(r.co.store.stock("SKU-B").expect("stock").available(), Some(100), "all stock back");
}

#[test]
fn recovery_settles_an_in_doubt_payment_once_the_terminal_answers() {
    let r = rig();
    r.fakes.terminal.lock().expect("t").next.push_back(Next::ChargeThenGoSilent);
    let e = card_sale(&r, 2).expect_err("in doubt");
    assert_eq!(e.kind, RefusalKind::InDoubt);
    // Still silent: recovery leaves it in doubt and makes no sale.
    assert_eq!(edge::checkout::payments::recover(&r.co), 0);
    assert_eq!(payment_states(&r), [PaymentState::InDoubt]);
    let id = r.co.store.payments_open().expect("open")[0].id;
    assert_eq!(r.co.store.stats().sales, 0);
    // The terminal answers: its last transaction is this payment, approved, for this
    // amount → charged; the stored sale is committed exactly as priced, once.
    r.fakes.terminal.lock().expect("t").mute = false;
    let wakes = r.wakes.load(Ordering::SeqCst);
    assert_eq!(edge::checkout::payments::recover(&r.co), 1);
    assert_eq!(r.co.store.payment(&id).expect("read").map(|p| p.state), Some(PaymentState::Recorded));
    assert!(payment_states(&r).is_empty(), "nothing open");
    assert_eq!(r.co.store.stats().sales, 1);
    assert_eq!(r.wakes.load(Ordering::SeqCst), wakes + 1, "the recovered sale wakes the engine");
    assert_eq!(edge::checkout::payments::recover(&r.co), 0, "nothing left to do");
    assert_eq!(r.co.store.stats().sales, 1, "never twice");
}

/// An age-restricted line stops the sale until an age check is answered; the check is
/// recorded on the sale with who and when; a check that asks about too late a birth date
/// (a customer under the minimum age) is refused. Nothing is stored for a refused sale.
#[test]
fn an_age_restricted_sale_needs_an_answered_age_check_recorded_with_who_and_when() {
    use edge::checkout::order::AgeCheckOrder;
    use edge_sync::domain::{AgeCheckMethod, StaffRef};
    let r = rig();
    let wine = || order(vec![line("SKU-A", 1), line("SKU-W", 1)], "cash", Some(2000));
    let sales_before = r.co.store.sales_page(None, 100).expect("page").len();
    let refused = r.co.sell(wine(), None, &cashier()).expect_err("no age check");
    assert_eq!((refused.slug, refused.field.as_deref()), ("age-check-required", Some("age_check")));
    assert!(refused.detail.contains("lines[1]") && refused.detail.contains("2008-12-06"), "{}", refused.detail);
    let anna = StaffRef { id: "anna".into(), name: "Anna".into() };
    let check = |d: &str| AgeCheckOrder {
        method: AgeCheckMethod::Dob,
        born_on_or_before: Some(d.parse().expect("date")),
        verified_by: anna.clone(),
        approval: None,
    };
    // 2026-12-06 less 17 years: a customer born then is 17.
    let mut young = wine();
    young.age_check = Some(check("2009-12-06"));
    let refused = r.co.sell(young, None, &cashier()).expect_err("too young");
    assert_eq!((refused.slug, refused.field.as_deref()), ("age-check-too-young", Some("age_check.born_on_or_before")));
    assert_eq!(r.co.store.sales_page(None, 100).expect("page").len(), sales_before, "nothing stored");

    let mut ok = wine();
    ok.age_check = Some(check("2008-12-06"));
    let Ok(Committed::Created(sale)) = r.co.sell(ok, None, &cashier()) else { panic!("sold") };
    let a = sale.age_check.clone().expect("recorded");
    assert_eq!((a.method, a.minimum_age, a.verified_by, a.at), (AgeCheckMethod::Dob, 18, anna, r.clock.now()));
    assert_eq!(a.born_on_or_before.to_string(), "2008-12-06");
    let stored = r.co.store.sale(&sale.id).expect("read").expect("stored");
    assert_eq!(stored.age_check, sale.age_check, "durable with the sale");
    // The cloud's record carries it too.
    let doc = serde_json::to_value(edge_sync::cloud::SaleDoc::of(&stored)).expect("json");
    assert_eq!(doc["age_check"]["verified_by"]["name"], "Anna", "{doc}");
    // A sale without age-restricted lines records none.
    let Ok(Committed::Created(plain)) = r.co.sell(order(vec![line("SKU-A", 1)], "cash", Some(500)), None, &cashier())
    else {
        panic!("sold")
    };
    assert_eq!(plain.age_check, None);
}
