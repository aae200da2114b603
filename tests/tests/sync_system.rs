//! System test of delivery: `edge-lab fakes` as its own process, the real `edged demo
//! --fakes`, concurrent clients making sales, the fake cloud's faults switched on and off,
//! and edged SIGKILLed at random instants and restarted on the same data dir.
//!
//! At the end, with the faults healed: every sale that got a 201 is in the fake cloud's
//! records exactly once, the cloud keeps nothing without a local origin, and `/v1/sync`
//! shows nothing pending, in flight, unknown or dead for the cloud.
//!
//! `EDGE_SYNC_CYCLES` (default 30) sets the kill cycles; `EDGE_SYNC_SEED` replays a run.

mod common;

use common::{Daemon, Rng};
use edge_api::{SaleOut, SyncStatus};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn edge_lab() -> std::path::PathBuf {
    edge_tests::support::bin("edge-lab")
}
const CLIENTS: usize = 3;

struct Fakes {
    child: Child,
    file: PathBuf,
    cloud: String,
}

impl Drop for Fakes {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_fakes(dir: &Path) -> Fakes {
    let mut child = Command::new(edge_lab())
        .args(["fakes", "--data-dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn edge-lab");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read");
    let file = PathBuf::from(line.trim().strip_prefix("READY ").expect("READY line"));
    let v: Value = serde_json::from_slice(&std::fs::read(&file).expect("fakes.json")).expect("json");
    let cloud = v["cloud"].as_str().expect("cloud url").to_string();
    Fakes { child, file, cloud }
}

#[derive(Default)]
struct Ledger {
    acked: BTreeMap<String, SaleOut>,
    next: u64,
}

fn client(url: Arc<Mutex<String>>, token: String, ledger: Arc<Mutex<Ledger>>, stop: Arc<AtomicBool>, seed: u64) {
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let mut rng = Rng(seed);
    while !stop.load(Ordering::SeqCst) {
        let key = {
            let mut l = ledger.lock().expect("ledger");
            l.next += 1;
            format!("k-{seed:x}-{}", l.next)
        };
        let body = json!({"lines": [{"sku": format!("SKU-{:07}", 1 + rng.below(5) * 10), "qty": 1 + rng.below(3)}],
                          "tenders": [{"type": "cash", "amount_minor": 1_000_000}]});
        let u = url.lock().expect("url").clone();
        let Ok(resp) =
            http.post(format!("{u}/v1/sales")).bearer_auth(&token).header("Idempotency-Key", &key).json(&body).send()
        else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        if resp.status().as_u16() == 201
            && let Ok(sale) = resp.json::<SaleOut>()
        {
            ledger.lock().expect("ledger").acked.insert(key, sale);
        }
        std::thread::sleep(Duration::from_millis(rng.below(15)));
    }
}

fn faults(http: &reqwest::blocking::Client, cloud: &str, rng: &mut Rng) -> String {
    let f = match rng.below(8) {
        0 => json!({"down": true}),
        1 => json!({"error_rate": 0.4, "error_status": 503}),
        2 => json!({"lose_reply_after_commit_rate": 0.4}),
        3 => json!({"rate_limit_storm": true}),
        4 => json!({"latency_ms": 400}),
        5 => json!({"credentials_expired": true}),
        6 => json!({"event_retry_rate": 0.3, "lose_reply_after_commit_rate": 0.2}),
        _ => {
            http.delete(format!("{cloud}/_fake/faults")).send().expect("heal");
            return "healed".into();
        }
    };
    let r = http.post(format!("{cloud}/_fake/faults")).json(&f).send().expect("faults");
    assert!(r.status().is_success(), "fake refused faults {f}");
    f.to_string()
}

#[test]
fn every_acknowledged_sale_reaches_the_fake_cloud_exactly_once() {
    let cycles: u64 = std::env::var("EDGE_SYNC_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    let seed: u64 = std::env::var("EDGE_SYNC_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(7)
    });
    eprintln!("sync system test: {cycles} cycles, EDGE_SYNC_SEED={seed}");
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().expect("tmp");
    let fakes = start_fakes(&tmp.path().join("fakes"));
    let dir = tmp.path().join("edge");
    let fakes_arg = fakes.file.to_string_lossy().into_owned();
    let start = || Daemon::start_with(&dir, 100, &["--fakes", &fakes_arg]);
    let mut d = start();
    let http = d.http();
    let url = Arc::new(Mutex::new(d.url.clone()));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (u, t, l, s) = (url.clone(), d.tokens.cashier.clone(), ledger.clone(), stop.clone());
            let seed = rng.next_u64() ^ i as u64;
            std::thread::spawn(move || client(u, t, l, s, seed))
        })
        .collect();

    for cycle in 0..cycles {
        let what = faults(&http, &fakes.cloud, &mut rng);
        std::thread::sleep(Duration::from_millis(150 + rng.below(600)));
        d.kill9();
        if cycle % 10 == 0 {
            eprintln!("cycle {cycle}: faults {what}; {} sales acknowledged", ledger.lock().expect("l").acked.len());
        }
        d = start();
        *url.lock().expect("url") = d.url.clone();
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().expect("client");
    }

    // Healed: everything must settle.
    http.delete(format!("{}/_fake/faults", fakes.cloud)).send().expect("heal");
    let run = http.post(format!("{}/v1/sync/run", d.url)).bearer_auth(&d.tokens.tech).send().expect("sync run");
    assert_eq!(run.status().as_u16(), 202);
    let deadline = Instant::now() + Duration::from_secs(90);
    let cloud = loop {
        let s: SyncStatus = http
            .get(format!("{}/v1/sync", d.url))
            .bearer_auth(&d.tokens.tech)
            .send()
            .expect("sync")
            .json()
            .expect("json");
        let c = s.remotes.into_iter().find(|r| r.name == "cloud").expect("cloud");
        if c.pending + c.in_flight + c.unknown == 0 {
            break c;
        }
        assert!(Instant::now() < deadline, "cloud did not settle after healing: {c:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!((cloud.rejected, cloud.dead), (0, 0), "dead letters after healing: {cloud:?}");

    let l = ledger.lock().expect("ledger");
    assert!(l.acked.len() > cycles as usize, "too few sales to mean anything: {}", l.acked.len());
    let records: Value =
        http.get(format!("{}/_fake/records", fakes.cloud)).send().expect("records").json().expect("json");
    let events = records["events"].as_array().cloned().unwrap_or_default();
    let mut per_sale: BTreeMap<String, u32> = BTreeMap::new();
    for e in &events {
        *per_sale.entry(e["record_id"].as_str().unwrap_or("").to_string()).or_default() += 1;
    }
    for (key, sale) in &l.acked {
        let n = per_sale.get(&sale.id.to_string()).copied().unwrap_or(0);
        assert_eq!(n, 1, "sale {} of key {key} is kept {n} times by the cloud", sale.id);
    }
    // No record without a local origin: every sale the cloud keeps exists in the store (a
    // sale committed just before a kill may have lost its 201 but is a real sale).
    let acked_ids: BTreeSet<String> = l.acked.values().map(|s| s.id.to_string()).collect();
    for (sale_id, n) in &per_sale {
        assert_eq!(*n, 1, "sale {sale_id} is kept {n} times");
        if !acked_ids.contains(sale_id) {
            let r = http.get(format!("{}/v1/sales/{sale_id}", d.url)).bearer_auth(&d.tokens.tech).send().expect("get");
            assert_eq!(r.status().as_u16(), 200, "the cloud keeps sale {sale_id} that the store does not have");
        }
    }
    assert_eq!(cloud.confirmed as usize, per_sale.len(), "confirmed entries vs records kept: {cloud:?}");
    eprintln!(
        "sync system test: {} sales acknowledged, {} kept by the cloud (deliveries incl. duplicates answered: {}), stats {}",
        l.acked.len(),
        per_sale.len(),
        events.iter().map(|e| e["deliveries"].as_u64().unwrap_or(0)).sum::<u64>(),
        records["stats"]
    );
}

fn cloud_status(http: &reqwest::blocking::Client, d: &Daemon) -> edge_api::RemoteStatus {
    let s: SyncStatus =
        http.get(format!("{}/v1/sync", d.url)).bearer_auth(&d.tokens.tech).send().expect("sync").json().expect("json");
    s.remotes.into_iter().find(|r| r.name == "cloud").expect("cloud")
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sale(http: &reqwest::blocking::Client, d: &Daemon) -> SaleOut {
    let body =
        json!({"lines": [{"sku": "SKU-0000001", "qty": 1}], "tenders": [{"type": "cash", "amount_minor": 100_000}]});
    let r = http.post(format!("{}/v1/sales", d.url)).bearer_auth(&d.tokens.cashier).json(&body).send().expect("post");
    assert_eq!(r.status().as_u16(), 201);
    r.json().expect("sale")
}

fn edgectl(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(common::edgectl()).arg("--data-dir").arg(dir).args(args).output().expect("edgectl");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Lost replies, an outage and a refused record, one after the other, each settled.
#[test]
fn lost_replies_outages_and_dead_letters_settle_without_duplicates() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fakes = start_fakes(&tmp.path().join("fakes"));
    let dir = tmp.path().join("edge");
    let d = Daemon::start_with(&dir, 50, &["--fakes", &fakes.file.to_string_lossy()]);
    let http = d.http();
    let fault = |f: Value| {
        let r = http.post(format!("{}/_fake/faults", fakes.cloud)).json(&f).send().expect("faults");
        assert!(r.status().is_success());
    };
    let records =
        || -> Value { http.get(format!("{}/_fake/records", fakes.cloud)).send().expect("get").json().expect("json") };

    // 1. Every reply lost after the cloud kept the batch: the outcome is unknown until a
    //    re-send with the same ids is answered as duplicates.
    fault(json!({"lose_reply_after_commit_rate": 1.0}));
    let first: Vec<SaleOut> = (0..5).map(|_| sale(&http, &d)).collect();
    wait_for("a lost reply", 20, || records()["stats"]["lost_replies"].as_u64().unwrap_or(0) >= 1);
    wait_for("entries in doubt", 20, || cloud_status(&http, &d).unknown > 0);
    let doubt: Value = http
        .get(format!("{}/v1/outbox?remote=cloud&state=unknown", d.url))
        .bearer_auth(&d.tokens.tech)
        .send()
        .expect("outbox")
        .json()
        .expect("json");
    let doubt: Vec<String> = doubt["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["record_id"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(!doubt.is_empty());
    http.delete(format!("{}/_fake/faults", fakes.cloud)).send().expect("heal");
    http.post(format!("{}/v1/sync/run", d.url)).bearer_auth(&d.tokens.tech).send().expect("run");
    wait_for("settled after lost replies", 30, || cloud_status(&http, &d).confirmed == 5);
    let r = records();
    let events = r["events"].as_array().cloned().unwrap_or_default();
    assert_eq!(events.len(), 5, "{r}");
    for s in &first {
        let e = events.iter().find(|e| e["record_id"] == s.id.to_string()).expect("kept");
        if doubt.contains(&s.id.to_string()) {
            assert!(e["deliveries"].as_u64().unwrap_or(0) >= 2, "the in-doubt event was not re-sent: {e}");
        }
    }

    // 2. An outage: the remote shows as failing with errors, then recovers.
    fault(json!({"down": true}));
    let during = sale(&http, &d);
    wait_for("errors seen", 20, || cloud_status(&http, &d).errors_last_hour > 0);
    let st = cloud_status(&http, &d);
    assert!(matches!(st.state.as_str(), "degraded" | "down"), "{st:?}");
    assert!(st.last_error.is_some(), "{st:?}");
    http.delete(format!("{}/_fake/faults", fakes.cloud)).send().expect("heal");
    let (code, out) = edgectl(&dir, &["sync", "run"]);
    assert_eq!(code, Some(0), "{out}");
    wait_for("settled after the outage", 60, || cloud_status(&http, &d).confirmed == 6);
    assert!(records()["events"].as_array().expect("events").iter().any(|e| e["record_id"] == during.id.to_string()));

    // 3. A record the cloud refuses becomes a dead letter with the reason; the others pass;
    //    after the fix a replay delivers it once.
    fault(json!({"down": true}));
    let bad = sale(&http, &d);
    let good = sale(&http, &d);
    fault(json!({"down": false, "reject_records": [bad.id]}));
    http.post(format!("{}/v1/sync/run", d.url)).bearer_auth(&d.tokens.tech).send().expect("run");
    wait_for("dead letter", 60, || {
        let c = cloud_status(&http, &d);
        c.rejected == 1 && c.confirmed == 7
    });
    let health: Value = http.get(format!("{}/v1/health", d.url)).send().expect("health").json().expect("json");
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(health["reasons"].to_string().contains("1 dead letters"), "{health}");
    let (code, out) = edgectl(&dir, &["queue", "dead", "ls", "--json"]);
    assert_eq!(code, Some(0), "{out}");
    let v: Value = serde_json::from_str(&out).expect("json");
    let dead = v["entries"].as_array().expect("entries");
    assert_eq!(dead.len(), 1, "{out}");
    assert_eq!(dead[0]["record_id"], bad.id.to_string());
    assert!(dead[0]["detail"].as_str().unwrap_or("").contains("field data.lines[0].sku"), "{out}");
    assert!(records()["events"].as_array().expect("events").iter().any(|e| e["record_id"] == good.id.to_string()));
    http.delete(format!("{}/_fake/faults", fakes.cloud)).send().expect("heal");
    let (code, out) = edgectl(&dir, &["queue", "dead", "retry-all"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("1 dead letters"), "{out}");
    wait_for("replayed", 30, || cloud_status(&http, &d).confirmed == 8);
    let (code, out) = edgectl(&dir, &["queue", "dead", "retry-all", "--json"]);
    assert_eq!(code, Some(0), "{out}");
    let r = records();
    let kept: Vec<&Value> =
        r["events"].as_array().expect("events").iter().filter(|e| e["record_id"] == bad.id.to_string()).collect();
    assert_eq!(kept.len(), 1, "{r}");
    let c = cloud_status(&http, &d);
    assert_eq!((c.pending, c.in_flight, c.unknown, c.rejected, c.dead), (0, 0, 0, 0, 0), "{c:?}");
    // The replays are in the audit log.
    let (code, out) = edgectl(&dir, &["sync", "--json"]);
    assert_eq!(code, Some(0), "{out}");
}

fn item_of(http: &reqwest::blocking::Client, d: &Daemon, sku: &str) -> Value {
    let v: Value = http
        .get(format!("{}/v1/catalog/items?q={sku}", d.url))
        .bearer_auth(&d.tokens.kiosk)
        .send()
        .expect("items")
        .json()
        .expect("json");
    v["items"][0].clone()
}

/// Prices and stock come from the cloud by cursor, pushed changes arrive at once, stock
/// rebases without counting a sale twice, and the stream carries remote commands.
#[test]
fn pulls_and_the_push_stream_keep_the_catalog_and_stock_true() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fakes = start_fakes(&tmp.path().join("fakes"));
    let dir = tmp.path().join("edge");
    let fakes_arg = fakes.file.to_string_lossy().into_owned();
    let mut d = Daemon::start_with(&dir, 100, &["--fakes", &fakes_arg]);
    let http = d.http();
    let post = |path: &str, body: Value| {
        let r = http.post(format!("{}{path}", fakes.cloud)).json(&body).send().expect("post");
        assert!(r.status().is_success(), "{path}: {}", r.text().unwrap_or_default());
    };
    wait_for("stream connected", 20, || cloud_status(&http, &d).stream.unwrap_or_default().starts_with("connected"));

    // A price change pushed by the cloud shows at once (the periodic pull is 5 s in the demo).
    post("/_fake/prices", json!({"prices": [{"sku": "SKU-0000001", "price_minor": 777}]}));
    wait_for("new price", 4, || item_of(&http, &d, "SKU-0000001")["price_minor"] == 777);

    // Sell 3; once the cloud has the sale and the stock pull ran, the level shown equals the
    // cloud's: the sale is subtracted once, not twice.
    let start_level = item_of(&http, &d, "SKU-0000001")["stock"].as_i64().expect("stock");
    let body =
        json!({"lines": [{"sku": "SKU-0000001", "qty": 3}], "tenders": [{"type": "cash", "amount_minor": 100_000}]});
    let r = http.post(format!("{}/v1/sales", d.url)).bearer_auth(&d.tokens.cashier).json(&body).send().expect("sale");
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(item_of(&http, &d, "SKU-0000001")["stock"].as_i64(), Some(start_level - 3));
    let cloud_level = || -> i64 {
        let v: Value = http.get(format!("{}/_fake/stock", fakes.cloud)).send().expect("get").json().expect("json");
        v["levels"]["SKU-0000001"].as_i64().expect("level")
    };
    wait_for("cloud applied the sale", 20, || cloud_level() == start_level - 3);
    let (code, _) = edgectl(&dir, &["sync", "run"]);
    assert_eq!(code, Some(0));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(item_of(&http, &d, "SKU-0000001")["stock"].as_i64(), Some(start_level - 3), "sale counted twice?");

    // A delivery arrives in the cloud: the new level minus nothing unreflected.
    post("/_fake/stock", json!({"levels": [{"sku": "SKU-0000001", "level": 500}]}));
    http.post(format!("{}/v1/sync/run", d.url)).bearer_auth(&d.tokens.tech).send().expect("run");
    wait_for("rebased level", 10, || item_of(&http, &d, "SKU-0000001")["stock"].as_i64() == Some(500));

    // A sale made while the cloud is down stays subtracted from the pulled level.
    post("/_fake/faults", json!({"down": true}));
    let r = http.post(format!("{}/v1/sales", d.url)).bearer_auth(&d.tokens.cashier).json(&body).send().expect("sale");
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(item_of(&http, &d, "SKU-0000001")["stock"].as_i64(), Some(497));
    // Meanwhile a delivery of 100 arrives in the cloud's books.
    post("/_fake/stock", json!({"levels": [{"sku": "SKU-0000001", "level": 600}]}));
    http.delete(format!("{}/_fake/faults", fakes.cloud)).send().expect("heal");
    http.post(format!("{}/v1/sync/run", d.url)).bearer_auth(&d.tokens.tech).send().expect("run");
    wait_for("delivered", 30, || cloud_status(&http, &d).confirmed == 2);
    // Whichever came first, the pull or the delivery of the sale, the level ends at 597.
    wait_for("level after delivery", 20, || {
        let shown = item_of(&http, &d, "SKU-0000001")["stock"].as_i64();
        shown == Some(597) && cloud_level() == 597
    });

    // A remote command on the stream: a support bundle, with no secret in it.
    post("/_fake/push", json!({"type": "command", "data": {"name": "collect_bundle"}}));
    wait_for("bundle", 10, || std::fs::read_dir(dir.join("support")).map(|r| r.count() > 0).unwrap_or(false));
    let bundle = std::fs::read_dir(dir.join("support")).expect("dir").next().expect("file").expect("entry").path();
    let text = std::fs::read_to_string(&bundle).expect("read");
    assert!(!text.contains("demo-cloud-secret"), "secret in the bundle");
    let v: Value = serde_json::from_str(&text).expect("bundle is JSON");
    assert_eq!(v["store_id"], "store-001");

    // After a restart the stream resumes after the last message it saw.
    let before = cloud_status(&http, &d).stream.unwrap_or_default();
    d.kill9();
    post("/_fake/prices", json!({"prices": [{"sku": "SKU-0000002", "price_minor": 4242}]}));
    d = Daemon::start_with(&dir, 100, &["--fakes", &fakes_arg]);
    wait_for("price after restart", 20, || item_of(&http, &d, "SKU-0000002")["price_minor"] == 4242);
    wait_for("stream resumed", 20, || {
        let s = cloud_status(&http, &d).stream.unwrap_or_default();
        s.starts_with("connected") && s != before
    });
}

/// Shadow mode builds and validates, logs, and sends nothing that mutates.
#[test]
fn shadow_mode_builds_and_logs_but_sends_nothing() {
    edge_sync::tls::install_provider();
    let tmp = tempfile::tempdir().expect("tmp");
    let fakes = start_fakes(&tmp.path().join("fakes"));
    // Two sales made by the demo while its cloud is unreachable: they wait in the outbox.
    let data = tmp.path().join("data");
    let nowhere = tmp.path().join("nowhere.json");
    std::fs::write(&nowhere, r#"{"cloud": "http://127.0.0.1:9"}"#).expect("write");
    let mut d = Daemon::start_with(&data, 50, &["--fakes", &nowhere.to_string_lossy()]);
    let http = d.http();
    sale(&http, &d);
    sale(&http, &d);
    assert_eq!(d.term(), Some(0));

    // The same store under `edged run` with the cloud in shadow mode.
    let cfg = tmp.path().join("edged.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\nid = \"store-001\"\ntimezone = \"Europe/Berlin\"\ncurrency = \"EUR\"\n[data]\ndir = {:?}\n\
             [api]\nlisten = \"127.0.0.1:0\"\n[remotes.cloud]\nmode = \"shadow\"\nurl = {:?}\n\
             secret_file = \"secrets/cloud.key\"\n",
            data.display().to_string(),
            fakes.cloud
        ),
    )
    .expect("config");
    std::fs::create_dir_all(tmp.path().join("secrets")).expect("dir");
    std::fs::copy(data.join("secrets/cloud.key"), tmp.path().join("secrets/cloud.key")).expect("secret");
    let log_path = tmp.path().join("run.log");
    let mut child = Command::new(common::edged())
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&log_path).expect("log")))
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read");
    let url = line.trim().strip_prefix("READY ").expect("READY").to_string();
    let tokens: edge_api::TokensFile =
        serde_json::from_slice(&std::fs::read(data.join("tokens.json")).expect("tokens")).expect("json");
    wait_for("shadow log", 10, || {
        std::fs::read_to_string(&log_path).unwrap_or_default().contains("shadow: built a request")
    });
    let s: SyncStatus =
        http.get(format!("{url}/v1/sync")).bearer_auth(&tokens.tech).send().expect("get").json().expect("json");
    let c = s.remotes.iter().find(|r| r.name == "cloud").expect("cloud");
    assert_eq!((c.state.as_str(), c.pending, c.confirmed), ("shadow", 2, 0), "{c:?}");
    let r: Value = http.get(format!("{}/_fake/records", fakes.cloud)).send().expect("get").json().expect("json");
    assert_eq!(r["stats"]["requests"], 0, "shadow mode sent something: {r}");
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert_eq!(child.wait().expect("wait").code(), Some(0));
}
