//! Card payments through an Adyen terminal end to end (issue 18): the real `edged` drives
//! `edge-lab sim terminal --protocol adyen` (its own process, HTTPS on loopback with its
//! own CA, the demo's Adyen key) through the same payment state machine as ZVT: approved
//! with the terminal's card data and receipt lines, declined with the refusal reason, an
//! answer lost after approval settled by TransactionStatus (charged once), offline within
//! the caps and forwarded by the end of day, a referenced card refund, a payment whose sale
//! cannot be committed reversed, and `edgectl terminal status|diagnosis`. The six-stage
//! SIGKILL tier is in tests/tests/card_crash.rs.

mod common;

use common::Daemon;
use edge_tests::support::Terminal;
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;

fn card_sale(d: &Daemon, key: &str, qty: u32) -> reqwest::blocking::Response {
    d.http()
        .post(format!("{}/v1/sales", d.url))
        .bearer_auth(&d.tokens.cashier)
        .header("Idempotency-Key", key)
        .json(&json!({"lines": [{"sku": "SKU-0000001", "qty": qty}], "tenders": [{"type": "card"}]}))
        .timeout(Duration::from_secs(60))
        .send()
        .expect("post")
}

fn journal(t: &Terminal) -> Vec<edge_drivers::adyen::sim::Entry> {
    serde_json::from_str(&std::fs::read_to_string(&t.journal).expect("journal")).expect("journal json")
}

#[test]
fn adyen_card_sales_refunds_and_lost_answers_through_the_daemon() {
    use edge_drivers::adyen::sim::State;
    let dir = tempfile::tempdir().expect("tmp");
    let mut term = Terminal::start_adyen(dir.path(), 20);
    let args = term.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let d = Daemon::start_with(&dir.path().join("edged"), 100, &args);
    let data = d.dir.clone();
    let edgectl = |a: &[&str]| {
        let out = Command::new(common::edgectl()).arg("--data-dir").arg(&data).args(a).output().expect("edgectl");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string())
    };

    // Approved: the card tender carries the terminal's data; its receipt lines are ours.
    let r = card_sale(&d, "a-1", 2);
    assert_eq!(r.status(), 201);
    let sale: Value = r.json().expect("sale");
    let t = &sale["tenders"][0];
    assert_eq!((t["type"].as_str(), t["amount_minor"].as_i64()), (Some("card"), Some(5140)), "{sale}");
    assert_eq!(t["pan_masked"], "541333 **** 0010", "{sale}");
    assert!(t["terminal_reference"].as_str().is_some_and(|r| r.starts_with("SIM")), "{sale}");
    assert!(t["auth_code"].as_str().is_some_and(|a| a.len() == 6), "{sale}");
    let id = sale["id"].as_str().expect("id").to_string();
    let receipt = d
        .http()
        .get(format!("{}/v1/sales/{id}/receipt", d.url))
        .bearer_auth(&d.tokens.cashier)
        .send()
        .expect("receipt")
        .text()
        .expect("text");
    assert!(receipt.contains("CARDHOLDER COPY") && receipt.contains("APPROVED"), "{receipt}");
    assert!(!receipt.contains("MERCHANT COPY"), "the customer's receipt, not the cashier's: {receipt}");

    // Declined, with the issuer's reason: 402, nothing charged.
    term.say("next decline:NOT_ENOUGH_BALANCE");
    let r = card_sale(&d, "a-2", 1);
    assert_eq!(r.status(), 402);
    let p: Value = r.json().expect("problem");
    assert!(p["detail"].as_str().unwrap_or("").contains("NOT_ENOUGH_BALANCE"), "{p}");

    // Approved, then the answer lost: settled by TransactionStatus, the sale made, once.
    term.say("next approve-then-drop");
    let r = card_sale(&d, "a-3", 1);
    assert_eq!(r.status(), 201, "settled as charged");
    let lost: Value = r.json().expect("sale");
    assert_eq!(lost["tenders"][0]["amount_minor"], 2570);
    let again = card_sale(&d, "a-3", 1);
    assert_eq!(again.json::<Value>().expect("replay")["id"], lost["id"], "the same sale, never charged twice");

    // A referenced refund of one unit of the first sale, back to its card.
    let r = d
        .http()
        .post(format!("{}/v1/sales/{id}/refunds", d.url))
        .bearer_auth(&d.tokens.manager)
        .header("Idempotency-Key", "rf-1")
        .json(&json!({"lines": [{"line_no": 1, "qty": 1}], "tender": "card", "reason": "damaged"}))
        .send()
        .expect("refund");
    assert_eq!(r.status(), 201);
    let j = journal(&term);
    let first = j.iter().find(|e| e.kind == "payment" && e.amount_minor == 5140).expect("the first payment");
    let refund = j.iter().find(|e| e.kind == "refund").expect("the refund");
    assert_eq!(refund.category, "Reversal", "referenced, not a card presented: {refund:?}");
    assert_eq!(refund.original.as_deref(), Some(format!("{} {}", first.transaction_id, first.timestamp).as_str()));
    assert_eq!(first.refunded_minor, 2570);

    // Offline: within the caps, then forwarded by the Z report's end of day.
    term.say("offline on");
    let (code, text) = edgectl(&["terminal", "status"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("OFFLINE"), "{text}");
    let r = card_sale(&d, "off-1", 9);
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().expect("sale")["tenders"][0]["offline"], true);
    let r = card_sale(&d, "off-2", 10);
    assert_eq!(r.status(), 402, "over the per-transaction cap");
    term.say("offline off");
    let (code, text) = edgectl(&["report", "z", "--json"]);
    assert_eq!(code, Some(0), "{text}");
    let z: Value = serde_json::from_str(&text).expect("z");
    assert!(z["terminal_receipt"].to_string().contains("1 FORWARDED"), "{z}");
    assert!(journal(&term).iter().filter(|e| e.offline).all(|e| e.forwarded));

    // The field tech's verbs.
    let (code, text) = edgectl(&["terminal", "status"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("ready"), "{text}");
    let (code, text) = edgectl(&["terminal", "diagnosis"]);
    assert_eq!(code, Some(0), "{text}");

    // The books: every approved, unreversed charge is one sale.
    let j = journal(&term);
    let charges = j.iter().filter(|e| e.kind == "payment" && e.state == State::Approved && !e.reversed).count();
    assert_eq!(charges, 3, "{j:?}");
    assert_eq!(j.iter().filter(|e| e.state == State::Declined).count(), 1);
    let ids: std::collections::BTreeSet<_> = j.iter().map(|e| e.service_id.clone()).collect();
    assert_eq!(ids.len(), j.len(), "one ServiceID per transaction");
}

#[test]
fn an_adyen_payment_that_cannot_become_a_sale_is_reversed() {
    let dir = tempfile::tempdir().expect("tmp");
    let term = Terminal::start_adyen(dir.path(), 0);
    let args = term.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let data = dir.path().join("edged");
    let d =
        Daemon::start_env(&data, &data.with_extension("log"), 100, &args, &[("EDGED_FAULT", "payment.commit_refused")]);
    let r = card_sale(&d, "rv-1", 1);
    assert_eq!(r.status(), 409);
    assert!(r.text().expect("text").contains("reversed"));
    let j = journal(&term);
    assert!(j.iter().any(|e| e.kind == "payment" && e.reversed), "{j:?}");
    assert!(j.iter().any(|e| e.kind == "reversal"), "{j:?}");
}

#[test]
fn a_wrong_adyen_root_is_refused_before_any_payment() {
    let dir = tempfile::tempdir().expect("tmp");
    let term = Terminal::start_adyen(dir.path(), 0);
    let other = tempfile::tempdir().expect("tmp");
    let ca = edge_drivers::adyen::tls::SimCa::load_or_make(other.path()).expect("another CA");
    let data = dir.path().join("edged");
    let device = format!("terminal={}", term.uri);
    let root = ca.ca_path.display().to_string();
    let d = Daemon::start_with(&data, 100, &["--device", &device, "--terminal-root", &root]);
    let r = card_sale(&d, "x-1", 1);
    assert_eq!(r.status(), 503, "the terminal is not trusted: nothing sent");
    let devices: Value = d
        .http()
        .get(format!("{}/v1/devices", d.url))
        .bearer_auth(&d.tokens.tech)
        .send()
        .expect("devices")
        .json()
        .expect("json");
    assert!(devices.to_string().contains("TLS handshake failed"), "{devices}");
    assert!(journal(&term).is_empty());
}

/// A payment sent to an Adyen terminal is settled only by that terminal: with a ZVT
/// terminal in its place after a crash it stays in doubt (a ZVT journal knows nothing of
/// it), and once the Adyen terminal is back it is settled by its ServiceID.
#[test]
fn a_payment_is_settled_only_by_the_terminal_it_went_to() {
    let dir = tempfile::tempdir().expect("tmp");
    let adyen_dir = dir.path().join("adyen");
    let zvt_dir = dir.path().join("zvt");
    std::fs::create_dir_all(&adyen_dir).expect("dir");
    std::fs::create_dir_all(&zvt_dir).expect("dir");
    let adyen = Terminal::start_adyen(&adyen_dir, 0);
    let zvt = Terminal::start(&zvt_dir, 0);
    let args = adyen.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let data = dir.path().join("edged");
    let log = dir.path().join("edged.log");
    // Killed once the intent is stored, before a byte reaches the terminal.
    let mut d = Daemon::try_start(&data, &log, 100, &args, &[("EDGED_CRASH_AT", "payment.intent")]).expect("edged");
    let _ = d
        .http()
        .post(format!("{}/v1/sales", d.url))
        .bearer_auth(&d.tokens.cashier)
        .header("Idempotency-Key", "moved-1")
        .json(&json!({"lines": [{"sku": "SKU-0000001", "qty": 1}], "tenders": [{"type": "card"}]}))
        .timeout(Duration::from_secs(10))
        .send();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while d.child.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    d.kill9();
    // A ZVT terminal in its place: the payment is not settled by it.
    let zvt_device = format!("terminal={}", zvt.uri);
    let mut d = Daemon::start_env(&data, &log, 100, &["--device", &zvt_device], &[]);
    std::thread::sleep(Duration::from_secs(2));
    let open = d.unsettled_payments();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["state"], "in_doubt", "{open:?}");
    assert!(open[0]["reason"].as_str().unwrap_or("").contains("adyen V400m-324688179"), "{open:?}");
    assert_eq!(d.term(), Some(0));
    // The Adyen terminal back: it never saw the payment, so it was not charged.
    let mut d = Daemon::start_env(&data, &log, 100, &args, &[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !d.unsettled_payments().is_empty() {
        assert!(std::time::Instant::now() < deadline, "settled once the Adyen terminal is back");
        std::thread::sleep(Duration::from_millis(200));
    }
    let list: Value = d
        .http()
        .get(format!("{}/v1/payments?limit=10", d.url))
        .bearer_auth(&d.tokens.manager)
        .send()
        .expect("payments")
        .json()
        .expect("json");
    assert_eq!(list["payments"][0]["state"], "failed", "{list}");
    assert!(journal(&adyen).is_empty());
    assert_eq!(d.term(), Some(0));
}
