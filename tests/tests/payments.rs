//! Card payments end to end: the real `edged` drives `edge-lab sim terminal` (its own
//! process, journal on disk) over loopback TCP: approved, declined, aborted and refused
//! payments, offline acceptance within the caps, card refunds, reversal of a payment whose
//! sale cannot be committed, and a payment in doubt settled by a manager. The crash and
//! power-cut tiers of card payments (several tills, kills at every stage and at random
//! instants) are in tests/tests/card_crash.rs and tests/tests/power_cut.rs.

mod common;

use common::Daemon;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

fn edge_lab() -> std::path::PathBuf {
    edge_tests::support::bin("edge-lab")
}

/// The terminal simulator as its own process.
struct Sim {
    child: Child,
    stdin: ChildStdin,
    out: std::sync::mpsc::Receiver<String>,
    uri: String,
    journal: std::path::PathBuf,
}

impl Sim {
    fn start(dir: &Path) -> Sim {
        let journal = dir.join("terminal-journal.tsv");
        let mut child = Command::new(edge_lab())
            .args(["sim", "terminal", "--tcp", "127.0.0.1:0", "--journal"])
            .arg(&journal)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("edge-lab sim terminal");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, out) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let ready = out.recv_timeout(Duration::from_secs(10)).expect("READY");
        let uri = ready.strip_prefix("READY ").expect("READY line").to_string();
        Sim { child, stdin, out, uri, journal }
    }

    fn say(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("sim stdin");
        let answer = self.out.recv_timeout(Duration::from_secs(5)).expect("sim answers");
        assert_eq!(answer, "ok", "{line}");
    }

    /// (kind, receipt, amount, result, reversed) per journal line.
    fn journal(&self) -> Vec<(String, u32, i64, u8, bool)> {
        std::fs::read_to_string(&self.journal)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (
                    f[0].to_string(),
                    f[1].parse().expect("receipt"),
                    f[3].parse().expect("amount"),
                    f[4].parse().expect("result"),
                    f[5] == "1",
                )
            })
            .collect()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

/// One piece of SKU-0000001 (25.70) paid with 50.00 in cash.
fn cash_sale(d: &Daemon) -> reqwest::blocking::Response {
    d.http()
        .post(format!("{}/v1/sales", d.url))
        .bearer_auth(&d.tokens.cashier)
        .json(
            &json!({"lines": [{"sku": "SKU-0000001", "qty": 1}], "tenders": [{"type": "cash", "amount_minor": 5000}]}),
        )
        .send()
        .expect("cash sale")
}

/// A card sale whose request may find edged gone.
fn try_card_sale(d: &Daemon, key: &str, qty: u32) -> reqwest::Result<reqwest::blocking::Response> {
    d.http()
        .post(format!("{}/v1/sales", d.url))
        .bearer_auth(&d.tokens.cashier)
        .header("Idempotency-Key", key)
        .json(&json!({"lines": [{"sku": "SKU-0000001", "qty": qty}], "tenders": [{"type": "card"}]}))
        .timeout(Duration::from_secs(30))
        .send()
}

fn payments(d: &Daemon) -> Value {
    d.http()
        .get(format!("{}/v1/payments?limit=1000", d.url))
        .bearer_auth(&d.tokens.manager)
        .send()
        .expect("payments")
        .json()
        .expect("json")
}

#[test]
fn approved_declined_aborted_and_refused_card_sales() {
    use futures_util::StreamExt;
    let dir = tempfile::tempdir().expect("tmp");
    let mut sim = Sim::start(dir.path());
    let term = format!("terminal={}", sim.uri);
    let d = Daemon::start_with(&dir.path().join("edged"), 100, &["--device", &term]);

    // Prompts reach the event stream while the terminal works; the sale carries the card.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    let (prompts, sale) = rt.block_on(async {
        let ws_url = format!("{}/v1/events?access_token={}", d.url.replace("http://", "ws://"), d.tokens.kiosk);
        let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.expect("ws");
        let _ = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("hello");
        let d2_url = d.url.clone();
        let tok = d.tokens.cashier.clone();
        let post = tokio::task::spawn_blocking(move || {
            reqwest::blocking::Client::new()
                .post(format!("{d2_url}/v1/sales"))
                .bearer_auth(tok)
                .header("Idempotency-Key", "approved-1")
                .json(&json!({"lines": [{"sku": "SKU-0000001", "qty": 2}], "tenders": [{"type": "card"}]}))
                .send()
                .expect("post")
                .json::<Value>()
                .expect("sale")
        });
        let mut prompts = Vec::new();
        let mut staff_events = 0;
        while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(3), ws.next()).await {
            let v: Value = serde_json::from_str(m.to_text().unwrap_or("{}")).unwrap_or_default();
            if v["type"] == "terminal.prompt" {
                prompts.push(v["text"].as_str().unwrap_or("").to_string());
            }
            if v["type"] == "payment.status" {
                staff_events += 1;
            }
            if v["type"] == "sale.completed" {
                break;
            }
        }
        assert_eq!(staff_events, 0, "the kiosk (customer) stream never gets payment states");
        (prompts, post.await.expect("join"))
    });
    assert!(prompts.contains(&"Insert card".to_string()), "{prompts:?}");
    assert_eq!(sale["tenders"][0]["type"], "card", "{sale}");
    assert_eq!(sale["tenders"][0]["pan_masked"], "679999*********0019");
    assert!(!sale.to_string().contains("6799998900000000019"), "never a full card number");

    // Declined: 402 with the reason, no sale.
    sim.say("next decline:05");
    let r = card_sale(&d, "declined-1", 1);
    assert_eq!(r.status(), 402);
    let p: Value = r.json().expect("problem");
    assert!(p["detail"].as_str().unwrap_or("").contains("declined by the card issuer"), "{p}");
    // Aborted at the terminal.
    sim.say("next abort");
    let r = card_sale(&d, "aborted-1", 1);
    assert_eq!(r.status(), 402);
    // The terminal refuses the command: nothing charged.
    sim.say("next refuse:83");
    let r = card_sale(&d, "refused-1", 1);
    assert_eq!(r.status(), 503);
    // The same key again after approval: the same sale, charged once.
    let again = card_sale(&d, "approved-1", 2);
    assert_eq!(again.status(), 201);
    assert_eq!(again.json::<Value>().expect("sale")["id"], sale["id"]);

    let list = payments(&d);
    let states: Vec<&str> =
        list["payments"].as_array().expect("list").iter().map(|p| p["state"].as_str().unwrap_or("")).collect();
    assert_eq!(states.iter().filter(|s| **s == "recorded").count(), 1, "{list}");
    assert_eq!(states.iter().filter(|s| **s == "declined").count(), 2, "{list}");
    assert_eq!(states.iter().filter(|s| **s == "failed").count(), 1, "{list}");
    let charged: Vec<_> = sim.journal().into_iter().filter(|e| e.0 == "payment" && e.3 == 0 && !e.4).collect();
    assert_eq!(charged.len(), 1, "one charge at the terminal: {:?}", sim.journal());
}

/// The terminal loses its host: card payments go offline within the caps (staff see them
/// waiting, with their age; customers never do), over the cap they are refused with the
/// reason, forcing offline is a manager's call (audited), the Z report's end-of-day forwards
/// them, and edgectl shows it all.
#[test]
fn offline_card_payments_within_caps_and_forwarded_at_end_of_day() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut sim = Sim::start(dir.path());
    let term = format!("terminal={}", sim.uri);
    let d = Daemon::start_with(&dir.path().join("edged"), 100, &["--device", &term]);
    let data = d.dir.clone();
    let edgectl = |args: &[&str]| {
        let out = Command::new(common::edgectl()).arg("--data-dir").arg(&data).args(args).output().expect("edgectl");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string())
    };
    sim.say("offline on");
    // 9 x 25.70 = 231.30: under the demo's 250.00 per-transaction cap.
    let r = card_sale(&d, "off-1", 9);
    assert_eq!(r.status(), 201);
    let sale: Value = r.json().expect("sale");
    assert_eq!(sale["tenders"][0]["offline"], true, "{sale}");
    // 10 x 25.70 = 257.00: over it, refused with the reason; nothing charged.
    let r = card_sale(&d, "off-2", 10);
    assert_eq!(r.status(), 402);
    let p: Value = r.json().expect("problem");
    assert!(p["detail"].as_str().unwrap_or("").contains("capped at 25000 per transaction"), "{p}");
    let list = payments(&d);
    assert_eq!(
        (list["offline_pending"].as_u64(), list["offline_pending_minor"].as_i64()),
        (Some(1), Some(23130)),
        "{list}"
    );
    assert_eq!(list["terminal_offline"], true);
    let metrics = d.http().get(format!("{}/metrics", d.url)).send().expect("metrics").text().expect("text");
    assert!(metrics.contains("edged_offline_payments_pending 1"), "{metrics}");
    assert!(metrics.contains("edged_offline_payments_pending_minor 23130"));
    let (code, text) = edgectl(&["payments", "--open"]);
    assert_eq!(code, Some(0));
    assert!(text.contains("WAITING") && text.contains("waiting to be forwarded: 1"), "{text}");
    // Customers cannot read payments.
    let r = d.http().get(format!("{}/v1/payments", d.url)).bearer_auth(&d.tokens.kiosk).send().expect("get");
    assert_eq!(r.status(), 403);

    // Forcing offline: not for cashiers; a manager's call, audited.
    let r = d
        .http()
        .post(format!("{}/v1/terminal/offline", d.url))
        .bearer_auth(&d.tokens.cashier)
        .json(&json!({"force": true}))
        .send()
        .expect("post");
    assert_eq!(r.status(), 403);
    let (code, text) = edgectl(&["terminal", "offline", "on"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(payments(&d)["forced_offline"], true);
    let (code, _) = edgectl(&["terminal", "offline", "off"]);
    assert_eq!(code, Some(0));

    // X report: the running totals; Z closes them and the terminal's end-of-day forwards.
    sim.say("offline off");
    assert_eq!(cash_sale(&d).status(), 201);
    let (code, text) = edgectl(&["report", "x", "--json"]);
    assert_eq!(code, Some(0), "{text}");
    let x: Value = serde_json::from_str(&text).expect("x json");
    assert_eq!(x["totals"]["sales"], 2);
    assert_eq!(x["totals"]["card_offline_minor"], 23130);
    assert_eq!(x["totals"]["cash_in_drawer_minor"], 2570, "5000 in, 2430 change out");
    let (code, text) = edgectl(&["report", "z", "--json"]);
    assert_eq!(code, Some(0), "{text}");
    let z: Value = serde_json::from_str(&text).expect("z json");
    assert_eq!((z["kind"].as_str(), z["number"].as_u64()), (Some("z"), Some(1)));
    assert!(z["terminal_receipt"].as_array().is_some_and(|l| l.iter().any(|x| x == "END OF DAY")), "{z}");
    let list = payments(&d);
    assert_eq!(list["offline_pending"], 0, "forwarded by the end-of-day: {list}");
    let (_, text) = edgectl(&["report", "x", "--json"]);
    let x2: Value = serde_json::from_str(&text).expect("x json");
    assert_eq!((x2["totals"]["sales"].as_u64(), x2["number"].as_u64()), (Some(0), Some(2)), "a new period after the Z");

    // The field tech's terminal verbs.
    let (code, text) = edgectl(&["terminal", "status"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("READY"), "{text}");
    let (code, text) = edgectl(&["terminal", "diagnosis"]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = edgectl(&["terminal", "eod"]);
    assert_eq!(code, Some(0), "{text}");
}

/// Refunds (manager): part of a card sale back to the card, the rest in cash; never more
/// than was sold; stock comes back; the X report takes them off.
#[test]
fn refunds_by_card_and_cash_never_exceed_the_sale() {
    let dir = tempfile::tempdir().expect("tmp");
    let sim = Sim::start(dir.path());
    let term = format!("terminal={}", sim.uri);
    let d = Daemon::start_with(&dir.path().join("edged"), 100, &["--device", &term]);
    let r = card_sale(&d, "to-refund", 3);
    assert_eq!(r.status(), 201);
    let sale: Value = r.json().expect("sale");
    let id = sale["id"].as_str().expect("id").to_string();
    let refund = |role: &str, key: &str, body: Value| {
        d.http()
            .post(format!("{}/v1/sales/{id}/refunds", d.url))
            .bearer_auth(role)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .expect("refund")
    };
    // Cashiers cannot refund.
    let r = refund(
        &d.tokens.cashier,
        "r0",
        json!({"lines": [{"line_no": 1, "qty": 1}], "tender": "cash", "reason": "damaged"}),
    );
    assert_eq!(r.status(), 403);
    // One unit back to the card.
    let r = refund(
        &d.tokens.manager,
        "r1",
        json!({"lines": [{"line_no": 1, "qty": 1}], "tender": "card", "reason": "damaged"}),
    );
    assert_eq!(r.status(), 201);
    let card_refund: Value = r.json().expect("refund");
    assert_eq!((card_refund["kind"].as_str(), card_refund["total_minor"].as_i64()), (Some("refund"), Some(2570)));
    assert_eq!(card_refund["tenders"][0]["type"], "card");
    // The same key again: the same refund, not a second one.
    let r = refund(
        &d.tokens.manager,
        "r1",
        json!({"lines": [{"line_no": 1, "qty": 1}], "tender": "card", "reason": "damaged"}),
    );
    assert_eq!(r.json::<Value>().expect("replay")["id"], card_refund["id"]);
    // Three more than is left: refused, naming the line.
    let r =
        refund(&d.tokens.manager, "r2", json!({"lines": [{"line_no": 1, "qty": 3}], "tender": "cash", "reason": "x"}));
    assert_eq!(r.status(), 422);
    assert!(r.text().expect("text").contains("1 refunded already"));
    // The rest in cash.
    let r = refund(&d.tokens.manager, "r3", json!({"tender": "cash", "reason": "changed mind"}));
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().expect("refund")["total_minor"], 5140);
    let r = refund(&d.tokens.manager, "r4", json!({"tender": "cash", "reason": "again"}));
    assert_eq!(r.status(), 409, "nothing left to refund");
    let charged = sim.journal();
    assert!(charged.iter().any(|e| e.0 == "refund" && e.2 == 2570 && e.3 == 0), "{charged:?}");
    let x: Value = d
        .http()
        .get(format!("{}/v1/reports/x", d.url))
        .bearer_auth(&d.tokens.manager)
        .send()
        .expect("x")
        .json()
        .expect("json");
    assert_eq!((x["totals"]["sales"].as_u64(), x["totals"]["refunds"].as_u64()), (Some(1), Some(2)), "{x}");
    assert_eq!(x["totals"]["total_minor"], 0, "all of it refunded: {x}");
    assert_eq!(x["totals"]["card_minor"], 7710 - 2570);
}

/// An approved payment whose sale cannot be committed is reversed at the terminal, the
/// request says so, and staff get an alert; nothing stays charged.
#[test]
fn an_approved_payment_that_cannot_become_a_sale_is_reversed() {
    use futures_util::StreamExt;
    let dir = tempfile::tempdir().expect("tmp");
    let sim = Sim::start(dir.path());
    let term = format!("terminal={}", sim.uri);
    let data = dir.path().join("edged");
    let d = Daemon::start_env(
        &data,
        &data.with_extension("log"),
        100,
        &["--device", &term],
        &[("EDGED_FAULT", "payment.commit_refused")],
    );
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    let alert = rt.block_on(async {
        let ws_url = format!("{}/v1/events?access_token={}", d.url.replace("http://", "ws://"), d.tokens.manager);
        let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.expect("ws");
        let _ = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("hello");
        let (url, tok) = (d.url.clone(), d.tokens.cashier.clone());
        let post = tokio::task::spawn_blocking(move || {
            reqwest::blocking::Client::new()
                .post(format!("{url}/v1/sales"))
                .bearer_auth(tok)
                .json(&json!({"lines": [{"sku": "SKU-0000001", "qty": 1}], "tenders": [{"type": "card"}]}))
                .send()
                .map(|r| (r.status().as_u16(), r.text().unwrap_or_default()))
                .expect("post")
        });
        let mut alert = String::new();
        while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            let v: Value = serde_json::from_str(m.to_text().unwrap_or("{}")).unwrap_or_default();
            if v["type"] == "staff.alert" {
                alert = v["text"].as_str().unwrap_or("").to_string();
                break;
            }
        }
        let (status, text) = post.await.expect("join");
        assert_eq!(status, 409, "{text}");
        assert!(text.contains("reversed"), "{text}");
        alert
    });
    assert!(alert.contains("was reversed"), "{alert}");
    let j = sim.journal();
    assert!(j.iter().any(|e| e.0 == "payment" && e.3 == 0 && e.4), "the charge is reversed: {j:?}");
    assert!(j.iter().any(|e| e.0 == "reversal"), "{j:?}");
    let list = payments(&d);
    assert_eq!(list["payments"][0]["state"], "reversed", "{list}");
}

/// A payment whose outcome the terminal cannot prove (its answer was lost in a crash, and
/// a payment keyed at the terminal itself ran before edged came back): it stays in doubt,
/// no card payment is taken on that terminal, staff are told; a manager settles it from the
/// terminal's journal — charged (the sale is committed with that receipt) or not charged.
#[test]
fn a_payment_the_terminal_cannot_prove_waits_for_a_manager() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut sim = Sim::start(dir.path());
    let term = format!("terminal={}", sim.uri);
    let data = dir.path().join("edged");
    let log = dir.path().join("edged.log");
    let edgectl = |args: &[&str]| {
        let out = Command::new(common::edgectl()).arg("--data-dir").arg(&data).args(args).output().expect("edgectl");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
    };
    let in_doubt = |d: &Daemon| -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let open = d
                .http()
                .get(format!("{}/v1/payments?open=true", d.url))
                .bearer_auth(&d.tokens.manager)
                .send()
                .expect("open")
                .json::<Value>()
                .expect("json");
            if let Some(p) = open["payments"].as_array().and_then(|a| a.iter().find(|p| p["state"] == "in_doubt")) {
                return p.clone();
            }
            assert!(Instant::now() < deadline, "no payment in doubt: {open}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // The terminal charges 25.70; edged dies before it stores the answer.
    let d = Daemon::start_env(&data, &log, 100, &["--device", &term], &[("EDGED_CRASH_AT", "payment.answered")]);
    assert!(try_card_sale(&d, "lost-1", 1).is_err(), "edged dies before it answers");
    let mut d = d;
    d.kill9();
    let charged = sim.journal().into_iter().find(|e| e.0 == "payment" && e.2 == 2570 && e.3 == 0).expect("charged");
    // A clerk keys 9.99 at the terminal itself before edged is back.
    sim.say("keyed 999");
    let d = Daemon::start_env(&data, &log, 100, &["--device", &term], &[]);
    let p = in_doubt(&d);
    assert!(p["reason"].as_str().unwrap_or("").contains("something else ran on the terminal"), "{p}");
    // No card payment on this terminal meanwhile: the refusal says why and what to do.
    let r = card_sale(&d, "after-1", 1);
    assert_eq!(r.status(), 409);
    let problem: Value = r.json().expect("problem");
    assert!(problem["detail"].as_str().unwrap_or("").contains("edgectl payments settle"), "{problem}");
    // Cash still sells.
    assert_eq!(cash_sale(&d).status(), 201);
    // "Charged" needs the receipt number; a cashier cannot settle.
    let id = p["id"].as_str().expect("id").to_string();
    let r = d
        .http()
        .post(format!("{}/v1/payments/{id}/settle", d.url))
        .bearer_auth(&d.tokens.cashier)
        .json(&json!({"charged": true, "receipt_no": charged.1}))
        .send()
        .expect("settle");
    assert_eq!(r.status(), 403);
    let (code, text) = edgectl(&["payments", "settle", &id, "--charged", &charged.1.to_string()]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("recorded"), "{text}");
    let sale: Value = d
        .http()
        .get(format!("{}/v1/sales/{}", d.url, p["sale_id"].as_str().expect("sale id")))
        .bearer_auth(&d.tokens.manager)
        .send()
        .expect("sale")
        .json()
        .expect("json");
    assert_eq!(sale["tenders"][0]["receipt_no"], charged.1, "{sale}");
    // The retry of the first request answers that sale; the terminal takes cards again.
    let r = card_sale(&d, "lost-1", 1);
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().expect("sale")["id"], sale["id"]);
    assert_eq!(card_sale(&d, "after-1", 1).status(), 201);
    let (code, text) = edgectl(&["payments", "settle", &id, "--not-charged"]);
    assert_ne!(code, Some(0), "only a payment in doubt is settled by hand: {text}");

    // Not charged: edged dies once the intent is stored, nothing reaches the terminal, and
    // a keyed payment runs before it is back.
    let mut d = d;
    d.kill9();
    let d = Daemon::start_env(&data, &log, 100, &["--device", &term], &[("EDGED_CRASH_AT", "payment.intent")]);
    assert!(try_card_sale(&d, "lost-2", 2).is_err(), "edged dies before it answers");
    let mut d = d;
    d.kill9();
    sim.say("keyed 1234");
    let d = Daemon::start_env(&data, &log, 100, &["--device", &term], &[]);
    let p = in_doubt(&d);
    let id = p["id"].as_str().expect("id").to_string();
    let (code, text) = edgectl(&["payments", "settle", &id, "--not-charged"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("failed") && text.contains("not charged"), "{text}");
    let r = d
        .http()
        .get(format!("{}/v1/sales/{}", d.url, p["sale_id"].as_str().expect("sale id")))
        .bearer_auth(&d.tokens.manager)
        .send()
        .expect("sale");
    assert_eq!(r.status(), 404, "no sale for a payment settled as not charged");
    assert_eq!(card_sale(&d, "lost-2", 2).status(), 201, "the retry pays anew");
}

/// Refunds of one sale are made one at a time with card payments: while a card refund is
/// at the terminal, a cash refund of the same goods waits for it, then finds nothing left.
#[test]
fn a_cash_refund_cannot_take_what_a_card_refund_is_paying_out() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut sim = Sim::start(dir.path());
    let term = format!("terminal={}", sim.uri);
    let d = Daemon::start_with(&dir.path().join("edged"), 100, &["--device", &term]);
    let r = card_sale(&d, "sold", 2);
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().expect("sale")["id"].as_str().expect("id").to_string();
    sim.say("processing 1500");
    let refund = |key: &str, tender: &str| {
        d.http()
            .post(format!("{}/v1/sales/{id}/refunds", d.url))
            .bearer_auth(&d.tokens.manager)
            .header("Idempotency-Key", key)
            .json(&json!({"tender": tender, "reason": "damaged"}))
            .send()
            .expect("refund")
    };
    let (card, cash) = std::thread::scope(|s| {
        let card = s.spawn(|| refund("r-card", "card").status().as_u16());
        std::thread::sleep(Duration::from_millis(400));
        let cash = refund("r-cash", "cash");
        (card.join().expect("card refund"), (cash.status().as_u16(), cash.text().unwrap_or_default()))
    });
    assert_eq!(card, 201, "the card refund pays out");
    assert_eq!(cash.0, 409, "the cash refund finds nothing left: {}", cash.1);
    let refunds: Vec<_> = sim.journal().into_iter().filter(|e| e.0 == "refund" && e.3 == 0).collect();
    assert_eq!(refunds.len(), 1, "one refund paid out: {refunds:?}");
}
