//! System tests of delivery to Lightspeed and NetSuite: `edge-lab fakes` as its own
//! process (real HTTP on loopback), the real `edged`, SIGKILL, faults at both fakes
//! (replies lost after commit, outages, 5xx, revoked credentials, 429 storms), and at the
//! end the fakes' records and `edgectl sync report` agree: every acknowledged sale and
//! refund kept exactly once at each, nothing lost, duplicated or unexpected.

mod common;

use common::{Daemon, Rng};
use edge_api::{SaleOut, SyncStatus};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn edge_lab() -> std::path::PathBuf {
    edge_tests::support::bin("edge-lab")
}

struct Fakes {
    child: Child,
    file: PathBuf,
    urls: BTreeMap<String, String>,
}

impl Drop for Fakes {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_fakes(dir: &Path, extra: &[&str]) -> Fakes {
    // 100 items unless the test asks for another size.
    let size: &[&str] = if extra.contains(&"--catalog-size") { &[] } else { &["--catalog-size", "100"] };
    let mut child = Command::new(edge_lab())
        .arg("fakes")
        .args(size)
        .arg("--data-dir")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn edge-lab");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read");
    let file = PathBuf::from(line.trim().strip_prefix("READY ").expect("READY line"));
    let urls: BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(&file).expect("fakes.json")).expect("json");
    assert!(urls.contains_key("lightspeed") && urls.contains_key("netsuite"), "{urls:?}");
    Fakes { child, file, urls }
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn status(http: &reqwest::blocking::Client, url: &str, token: &str, remote: &str) -> edge_api::RemoteStatus {
    let s: SyncStatus =
        http.get(format!("{url}/v1/sync")).bearer_auth(token).send().expect("sync").json().expect("json");
    s.remotes.into_iter().find(|r| r.name == remote).expect("remote")
}

fn settled(s: &edge_api::RemoteStatus) -> bool {
    s.pending + s.in_flight + s.unknown == 0
}

fn sell(http: &reqwest::blocking::Client, d: &Daemon, key: &str, rng: &mut Rng) -> Option<SaleOut> {
    let body = json!({"lines": [{"sku": format!("SKU-{:07}", 1 + rng.below(6) * 10), "qty": 1 + rng.below(3)},
                                {"sku": "SKU-0000002", "qty": 1}],
                      "tenders": [{"type": "cash", "amount_minor": 1_000_000}]});
    let r = http
        .post(format!("{}/v1/sales", d.url))
        .bearer_auth(&d.tokens.cashier)
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .ok()?;
    (r.status().as_u16() == 201).then(|| r.json().ok()).flatten()
}

fn refund(http: &reqwest::blocking::Client, d: &Daemon, sale: &SaleOut, key: &str) -> Option<SaleOut> {
    let r = http
        .post(format!("{}/v1/sales/{}/refunds", d.url, sale.id))
        .bearer_auth(&d.tokens.manager)
        .header("Idempotency-Key", key)
        .json(&json!({"tender": "cash", "reason": "customer changed their mind"}))
        .send()
        .ok()?;
    (r.status().as_u16() == 201).then(|| r.json().ok()).flatten()
}

fn adjust(http: &reqwest::blocking::Client, d: &Daemon, key: &str, rng: &mut Rng) -> Option<edge_api::AdjustmentOut> {
    let delta = if rng.below(2) == 0 { -1 } else { 5 };
    let body = json!({"sku": format!("SKU-{:07}", 1 + rng.below(6) * 10), "delta": delta, "reason": "count"});
    let r = http
        .post(format!("{}/v1/stock/adjustments", d.url))
        .bearer_auth(&d.tokens.manager)
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .ok()?;
    (r.status().as_u16() == 201).then(|| r.json().ok()).flatten()
}

/// NetSuite's quantity on hand per SKU at location 1 (whole units).
fn ns_levels(http: &reqwest::blocking::Client, f: &Fakes) -> BTreeMap<String, i64> {
    let v: Value =
        http.get(format!("{}/_fake/stock?location=1", f.urls["netsuite"])).send().expect("stock").json().expect("json");
    v["levels"]
        .as_array()
        .expect("levels")
        .iter()
        .filter_map(|r| Some((r["externalId"].as_str()?.to_string(), r["quantityonhand"].as_str()?.parse().ok()?)))
        .collect()
}

/// Every stock movement the store holds, per SKU: sales take, refunds give back,
/// adjustments add their delta (all of them, also those whose answer a kill cut off).
fn store_movements(http: &reqwest::blocking::Client, d: &Daemon) -> BTreeMap<String, i64> {
    let mut out: BTreeMap<String, i64> = BTreeMap::new();
    let mut cursor = String::new();
    loop {
        let p: edge_api::SalesPage = http
            .get(format!("{}/v1/sales?limit=500{cursor}", d.url))
            .bearer_auth(&d.tokens.tech)
            .send()
            .expect("sales")
            .json()
            .expect("json");
        for s in &p.sales {
            let sign = if s.kind == "refund" { 1 } else { -1 };
            for l in &s.lines {
                *out.entry(l.sku.clone()).or_default() += sign * i64::from(l.qty.unwrap_or(0));
            }
        }
        match p.next_cursor {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    let p: edge_api::AdjustmentsPage = http
        .get(format!("{}/v1/stock/adjustments?limit=500", d.url))
        .bearer_auth(&d.tokens.tech)
        .send()
        .expect("adjustments")
        .json()
        .expect("json");
    for a in &p.adjustments {
        *out.entry(a.sku.clone()).or_default() += a.delta;
    }
    out
}

fn edgectl(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(common::edgectl()).arg("--data-dir").arg(dir).args(args).output().expect("edgectl");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

/// Per edge record id, how many records the fake Shopify keeps: orders by
/// `sourceIdentifier`, refunds and stock adjustments by their idempotency key.
fn shopify_kept(http: &reqwest::blocking::Client, f: &Fakes) -> BTreeMap<String, u32> {
    let v: Value = http.get(format!("{}/_fake/records", f.urls["shopify"])).send().expect("sh").json().expect("json");
    let mut m = BTreeMap::new();
    for (list, key) in
        [("orders", "sourceIdentifier"), ("refunds", "idempotencyKey"), ("adjustments", "idempotencyKey")]
    {
        for r in v[list].as_array().expect("list") {
            *m.entry(r[key].as_str().unwrap_or("").to_string()).or_default() += 1;
        }
    }
    m
}

/// Per edge sale id, how many records each fake keeps.
fn kept(http: &reqwest::blocking::Client, f: &Fakes) -> (BTreeMap<String, u32>, BTreeMap<String, u32>) {
    let ls: Value =
        http.get(format!("{}/_fake/records", f.urls["lightspeed"])).send().expect("ls").json().expect("json");
    let ns: Value = http.get(format!("{}/_fake/records", f.urls["netsuite"])).send().expect("ns").json().expect("json");
    let mut a = BTreeMap::new();
    for s in ls["sales"].as_array().expect("sales") {
        *a.entry(s["referenceNumber"].as_str().unwrap_or("").to_string()).or_default() += 1;
    }
    let mut b = BTreeMap::new();
    for r in ns["records"].as_array().expect("records") {
        *b.entry(r["externalId"].as_str().unwrap_or("").to_string()).or_default() += 1;
    }
    (a, b)
}

#[test]
fn sales_and_refunds_reach_lightspeed_netsuite_and_shopify_once_through_kills_and_faults() {
    let seed: u64 = std::env::var("EDGE_SYNC_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(7)
    });
    let cycles: u64 = std::env::var("EDGE_SYNC_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    eprintln!("remotes system test: {cycles} cycles, EDGE_SYNC_SEED={seed}");
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().expect("tmp");
    // Lightspeed's drip sped up 20x, so a test-sized run drains in seconds.
    let fakes = start_fakes(&tmp.path().join("fakes"), &["--lightspeed-speed", "20"]);
    let dir = tmp.path().join("edge");
    let fakes_arg = fakes.file.to_string_lossy().into_owned();
    let mut d = Daemon::start_with(&dir, 100, &["--fakes", &fakes_arg]);
    let http = d.http();
    let ns_start = ns_levels(&http, &fakes);
    let mut acked: Vec<SaleOut> = Vec::new();
    let mut adjusted: Vec<edge_api::AdjustmentOut> = Vec::new();
    let mut n = 0u64;
    for cycle in 0..cycles {
        for name in ["lightspeed", "netsuite", "shopify"] {
            let url = &fakes.urls[name];
            let f = match rng.below(7) {
                0 => json!({"down": true}),
                1 => json!({"error_rate": 0.5, "error_status": 503}),
                2 | 3 => json!({"lose_reply_after_commit_rate": 0.6}),
                4 => json!({"credentials_expired": true}),
                5 => json!({"rate_limit_storm": true}),
                _ => json!({}),
            };
            let r = http.post(format!("{url}/_fake/faults")).json(&f).send().expect("faults");
            assert!(r.status().is_success(), "{name} refused faults {f}");
        }
        for _ in 0..(4 + rng.below(6)) {
            n += 1;
            if let Some(s) = sell(&http, &d, &format!("k{n}"), &mut rng) {
                acked.push(s);
            }
        }
        if let Some(s) = acked.get(rng.below(acked.len().max(1) as u64) as usize).cloned()
            && s.kind != "refund"
            && rng.below(2) == 0
        {
            n += 1;
            if let Some(r) = refund(&http, &d, &s, &format!("r{n}")) {
                acked.push(r);
            }
        }
        if rng.below(2) == 0 {
            n += 1;
            if let Some(a) = adjust(&http, &d, &format!("a{n}"), &mut rng) {
                adjusted.push(a);
            }
        }
        std::thread::sleep(Duration::from_millis(200 + rng.below(800)));
        d.kill9();
        d = Daemon::start_with(&dir, 100, &["--fakes", &fakes_arg]);
        eprintln!("cycle {cycle}: {} acknowledged", acked.len());
    }
    for url in fakes.urls.values() {
        http.delete(format!("{url}/_fake/faults")).send().expect("heal");
    }
    let (code, out) = edgectl(&dir, &["sync", "run"]);
    assert_eq!(code, Some(0), "{out}");
    // Entries of unknown outcome wait unknown_wait_s (15 s in the demo) before the look-up.
    for remote in ["lightspeed", "netsuite", "shopify"] {
        wait_for(&format!("{remote} settled"), 120, || settled(&status(&http, &d.url, &d.tokens.tech, remote)));
        let s = status(&http, &d.url, &d.tokens.tech, remote);
        assert_eq!((s.rejected, s.dead), (0, 0), "{remote}: dead letters after healing: {s:?}");
    }
    let (ls, ns) = kept(&http, &fakes);
    let sh = shopify_kept(&http, &fakes);
    let ids: BTreeSet<String> = acked.iter().map(|s| s.id.to_string()).collect();
    let adj_ids: BTreeSet<String> = adjusted.iter().map(|a| a.id.clone()).collect();
    for id in &adj_ids {
        assert_eq!(ns.get(id).copied().unwrap_or(0), 1, "netsuite keeps adjustment {id} {:?} times", ns.get(id));
        assert!(!ls.contains_key(id), "an adjustment went to Lightspeed");
        assert_eq!(sh.get(id).copied().unwrap_or(0), 1, "shopify keeps adjustment {id} {:?} times", sh.get(id));
    }
    for (name, m) in [("lightspeed", &ls), ("netsuite", &ns), ("shopify", &sh)] {
        for id in &ids {
            assert_eq!(m.get(id).copied().unwrap_or(0), 1, "{name} keeps sale {id} {:?} times", m.get(id));
        }
        for (id, k) in m.iter() {
            assert_eq!(*k, 1, "{name} keeps {id} {k} times");
            if !ids.contains(id) && !adj_ids.contains(id) {
                // A record committed just before a kill lost its 201 but is real.
                let sale = http.get(format!("{}/v1/sales/{id}", d.url)).bearer_auth(&d.tokens.tech).send();
                let adj = http.get(format!("{}/v1/stock/adjustments/{id}", d.url)).bearer_auth(&d.tokens.tech).send();
                let found = [sale, adj].into_iter().any(|r| r.expect("get").status().as_u16() == 200);
                assert!(found, "{name} keeps {id} that the store does not have");
            }
        }
    }
    // NetSuite's stock moved exactly once per sale, refund and adjustment the store holds.
    let moved = store_movements(&http, &d);
    let ns_end = ns_levels(&http, &fakes);
    for (sku, m) in &moved {
        assert_eq!(ns_end[sku], ns_start[sku] + m, "NetSuite's level of {sku}");
    }
    eprintln!("remotes system test: {} adjustments acknowledged", adjusted.len());
    // The reconciliation report agrees: clean, counts equal, nothing lost or duplicated.
    let (code, out) = edgectl(&dir, &["--json", "sync", "report"]);
    assert_eq!(code, Some(0), "{out}");
    let rep: Value = serde_json::from_str(&out).expect("json");
    for r in rep["remotes"].as_array().expect("remotes") {
        assert_eq!(r["clean"], true, "{r}");
        assert_eq!(r["local_count"], r["remote_count"], "{r}");
        assert_eq!(r["local_total_minor"], r["remote_total_minor"], "{r}");
    }
    let ls_stats: Value =
        http.get(format!("{}/_fake/records", fakes.urls["lightspeed"])).send().expect("g").json().expect("j");
    let ns_stats: Value =
        http.get(format!("{}/_fake/records", fakes.urls["netsuite"])).send().expect("g").json().expect("j");
    let sh_stats: Value =
        http.get(format!("{}/_fake/records", fakes.urls["shopify"])).send().expect("g").json().expect("j");
    eprintln!(
        "remotes system test: {} acknowledged (incl. refunds); lightspeed {}; netsuite {}; shopify {}",
        acked.len(),
        ls_stats["stats"],
        ns_stats["stats"],
        sh_stats["stats"]
    );
}

/// A missing mapping holds the record as a dead letter naming the key; after the mapping is
/// added, a replay delivers it once. The report shows the lost sale meanwhile.
#[test]
fn a_missing_mapping_waits_as_a_dead_letter_and_a_replay_delivers_it_once() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fakes = start_fakes(&tmp.path().join("fakes"), &[]);
    let dir = tmp.path().join("edge");
    let fakes_arg = fakes.file.to_string_lossy().into_owned();
    // The demo writes its config; stop it and run the same store by that config, without the
    // cash tender's Lightspeed mapping.
    let mut d = Daemon::start_with(&dir, 100, &["--fakes", &fakes_arg]);
    assert_eq!(d.term(), Some(0));
    let cfg_path = dir.join("config.toml");
    let full = std::fs::read_to_string(&cfg_path).expect("config");
    let broken = full.replace("tenders = { cash = 1, card = 2 }", "tenders = { card = 2 }");
    assert_ne!(full, broken, "the demo config names the tenders");
    std::fs::write(&cfg_path, &broken).expect("write");
    let out = Command::new(common::edged()).args(["check-config"]).arg(&cfg_path).output().expect("check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("warning: mappings.lightspeed.tenders.cash"), "{text}");

    let run = run_config;
    let tokens: edge_api::TokensFile =
        serde_json::from_slice(&std::fs::read(dir.join("tokens.json")).expect("t")).expect("json");
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let (mut child, url) = run(&cfg_path);
    let body =
        json!({"lines": [{"sku": "SKU-0000001", "qty": 1}], "tenders": [{"type": "cash", "amount_minor": 10_000}]});
    let r = http.post(format!("{url}/v1/sales")).bearer_auth(&tokens.cashier).json(&body).send().expect("sale");
    assert_eq!(r.status().as_u16(), 201);
    let sale: SaleOut = r.json().expect("sale");
    wait_for("dead letter at lightspeed", 30, || status(&http, &url, &tokens.tech, "lightspeed").rejected == 1);
    wait_for("netsuite has it", 30, || status(&http, &url, &tokens.tech, "netsuite").confirmed == 1);
    let dead: Value = http
        .get(format!("{url}/v1/outbox?remote=lightspeed&state=rejected"))
        .bearer_auth(&tokens.tech)
        .send()
        .expect("outbox")
        .json()
        .expect("json");
    let detail = dead["entries"][0]["detail"].as_str().unwrap_or("").to_string();
    assert!(detail.contains("mapping missing: mappings.lightspeed.tenders.cash"), "{dead}");
    // The report shows it as lost (rejected, not merely waiting) at Lightspeed.
    let rep: Value =
        http.get(format!("{url}/v1/sync/report")).bearer_auth(&tokens.tech).send().expect("r").json().expect("j");
    let ls = rep["remotes"].as_array().expect("r").iter().find(|r| r["remote"] == "lightspeed").expect("ls").clone();
    assert_eq!(ls["clean"], false, "{ls}");
    assert_eq!(ls["lost"][0]["sale_id"], sale.id.to_string());
    assert_eq!(ls["lost"][0]["state"], "rejected");
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    child.wait().expect("wait");

    // The mapping is added; the replay delivers it, once.
    std::fs::write(&cfg_path, &full).expect("write");
    let (mut child, url) = run(&cfg_path);
    let (code, out) = edgectl(&dir, &["queue", "dead", "retry-all"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("1 dead letters"), "{out}");
    wait_for("replayed", 30, || status(&http, &url, &tokens.tech, "lightspeed").confirmed == 1);
    let (ls, _) = kept(&http, &fakes);
    assert_eq!(ls.get(&sale.id.to_string()), Some(&1));
    let rep: Value =
        http.get(format!("{url}/v1/sync/report")).bearer_auth(&tokens.tech).send().expect("r").json().expect("j");
    assert!(rep["remotes"].as_array().expect("r").iter().all(|r| r["clean"] == true), "{rep}");
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    child.wait().expect("wait");
}

/// `edged run --config CFG` as a child; its URL from the READY line.
fn run_config(cfg: &Path) -> (Child, String) {
    let mut child = Command::new(common::edged())
        .args(["run", "--config"])
        .arg(cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read");
    (child, line.trim().strip_prefix("READY ").expect("READY").to_string())
}

/// A demo store in DIR made against the fakes, then run by its own config after `edit`:
/// the child, its URL and the role tokens.
fn run_edited(dir: &Path, fakes: &Fakes, edit: impl FnOnce(String) -> String) -> (Child, String, edge_api::TokensFile) {
    let mut d = Daemon::start_with(dir, 100, &["--fakes", &fakes.file.to_string_lossy()]);
    assert_eq!(d.term(), Some(0));
    let cfg_path = dir.join("config.toml");
    let text = edit(std::fs::read_to_string(&cfg_path).expect("config"));
    std::fs::write(&cfg_path, &text).expect("write");
    let (child, url) = run_config(&cfg_path);
    let tokens = serde_json::from_slice(&std::fs::read(dir.join("tokens.json")).expect("t")).expect("json");
    (child, url, tokens)
}

fn stock_of(http: &reqwest::blocking::Client, url: &str, token: &str, sku: &str) -> i64 {
    item_field(http, url, token, sku, "stock")
}

/// A number of the catalog's item `sku` (`stock`, `price_minor`).
fn item_field(http: &reqwest::blocking::Client, url: &str, token: &str, sku: &str, field: &str) -> i64 {
    let v: Value = http
        .get(format!("{url}/v1/catalog/items?q={sku}"))
        .bearer_auth(token)
        .send()
        .expect("items")
        .json()
        .expect("json");
    v["items"][0][field].as_i64().unwrap_or_else(|| panic!("{field} of {sku}: {v}"))
}

/// The item's picture path on edged once it is kept (`image` in the catalog).
fn picture_of(http: &reqwest::blocking::Client, url: &str, token: &str, sku: &str) -> Option<String> {
    let v: Value = http.get(format!("{url}/v1/catalog/items?q={sku}")).bearer_auth(token).send().ok()?.json().ok()?;
    v["items"][0]["image"].as_str().map(str::to_string)
}

/// Lightspeed as the source of stock: ItemShop levels by `timeStamp` rebase the local
/// stock, a sale Lightspeed has is subtracted once (not again on top of its level), and a
/// sale made while Lightspeed is away stays subtracted until it arrives.
#[test]
fn lightspeed_as_the_stock_source_rebases_without_counting_a_sale_twice() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fakes = start_fakes(&tmp.path().join("fakes"), &["--lightspeed-speed", "20"]);
    let dir = tmp.path().join("edge");
    let (mut child, url, tokens) = run_edited(&dir, &fakes, |text| {
        let text = text.replace("[routing]\ncatalog = \"cloud\"", "[routing]\ncatalog = \"lightspeed\"").replace(
            "secret_file = \"secrets/lightspeed.json\"\ntimeout_ms = 5000\npull_interval_s = 30",
            "secret_file = \"secrets/lightspeed.json\"\ntimeout_ms = 5000\npull_interval_s = 1",
        );
        assert!(text.contains("catalog = \"lightspeed\"") && text.contains("pull_interval_s = 1"), "{text}");
        text
    });
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let sku = "SKU-0000001";
    let start = stock_of(&http, &url, &tokens.kiosk, sku);
    let sell = |qty: u64| {
        let body = json!({"lines": [{"sku": sku, "qty": qty}], "tenders": [{"type": "cash", "amount_minor": 100_000}]});
        let r = http.post(format!("{url}/v1/sales")).bearer_auth(&tokens.cashier).json(&body).send().expect("sale");
        assert_eq!(r.status().as_u16(), 201);
    };
    sell(3);
    assert_eq!(stock_of(&http, &url, &tokens.kiosk, sku), start - 3);
    wait_for("lightspeed has the sale", 30, || status(&http, &url, &tokens.tech, "lightspeed").confirmed == 1);
    // Pulls every second: the level now includes the sale; shown stock stays start - 3.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(stock_of(&http, &url, &tokens.kiosk, sku), start - 3, "the sale counted twice?");
    // A delivery received in Lightspeed itself: the pulled level shows at the register.
    let r = http
        .post(format!("{}/_fake/stock", fakes.urls["lightspeed"]))
        .json(&json!({"itemID": 1, "shopID": 1, "qoh": 500}))
        .send()
        .expect("stock");
    assert!(r.status().is_success());
    wait_for("the new level", 10, || stock_of(&http, &url, &tokens.kiosk, sku) == 500);
    // A price edited in Lightspeed (the item's timeStamp moves): the register follows.
    let r = http.post(format!("{}/_fake/items", fakes.urls["lightspeed"])).json(&json!({"itemID": 1, "price": "9.99"}));
    assert!(r.send().expect("price").status().is_success());
    wait_for("Lightspeed's price", 10, || price_of(&http, &url, &tokens.kiosk, sku) == 999);
    // The item's picture from Lightspeed's Images relation, kept by edged and served.
    wait_for("Lightspeed's picture kept", 30, || picture_of(&http, &url, &tokens.kiosk, sku).is_some());
    let r = http
        .get(format!("{url}{}", picture_of(&http, &url, &tokens.kiosk, sku).unwrap_or_default()))
        .bearer_auth(&tokens.kiosk)
        .send()
        .expect("pic");
    assert_eq!(r.status().as_u16(), 200);
    // Stock is Lightspeed's to adjust: the edge refuses and says where.
    let r = http
        .post(format!("{url}/v1/stock/adjustments"))
        .bearer_auth(&tokens.manager)
        .json(&json!({"sku": sku, "delta": 1, "reason": "count"}))
        .send()
        .expect("adjustment");
    assert_eq!(r.status().as_u16(), 409);
    assert!(r.text().expect("body").contains("adjust it in Lightspeed"));
    let start = 503;
    // Lightspeed away: a sale stays subtracted from the last level; when it arrives and the
    // next pull reads it, still once.
    let r = http.post(format!("{}/_fake/faults", fakes.urls["lightspeed"])).json(&json!({"down": true})).send();
    assert!(r.expect("faults").status().is_success());
    sell(2);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(stock_of(&http, &url, &tokens.kiosk, sku), start - 5);
    http.delete(format!("{}/_fake/faults", fakes.urls["lightspeed"])).send().expect("heal");
    let (code, out) = edgectl(&dir, &["sync", "run"]);
    assert_eq!(code, Some(0), "{out}");
    wait_for("lightspeed has both", 60, || status(&http, &url, &tokens.tech, "lightspeed").confirmed == 2);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(stock_of(&http, &url, &tokens.kiosk, sku), start - 5, "after the second pull");
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    child.wait().expect("wait");
}

/// Shopify as the source of catalog, prices and stock: the variants are read whole by a
/// bulk operation (JSONL), then by cursor since the newest `updatedAt` (pages of 100); the
/// location's levels by cursor rebase the local stock; a sale Shopify decremented is
/// subtracted once; a stock adjustment reaches it once by its idempotency key.
#[test]
fn shopify_as_the_catalog_source_reads_by_bulk_and_cursor_and_rebases_without_counting_twice() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fakes = start_fakes(&tmp.path().join("fakes"), &["--shopify-speed", "10", "--catalog-size", "250"]);
    let dir = tmp.path().join("edge");
    let (mut child, url, tokens) = run_edited(&dir, &fakes, |text| {
        let text = text.replace("[routing]\ncatalog = \"cloud\"", "[routing]\ncatalog = \"shopify\"").replace(
            "secret_file = \"secrets/shopify.token\"\ntimeout_ms = 5000\npull_interval_s = 30",
            "secret_file = \"secrets/shopify.token\"\ntimeout_ms = 5000\npull_interval_s = 1",
        );
        assert!(
            text.contains("catalog = \"shopify\"")
                && text.contains("shopify.token\"\ntimeout_ms = 5000\npull_interval_s = 1"),
            "{text}"
        );
        text
    });
    let sh = fakes.urls["shopify"].clone();
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let records =
        || -> Value { http.get(format!("{sh}/_fake/records")).send().expect("records").json().expect("json") };
    let sku = "SKU-0000001";
    // The first read is a bulk operation.
    wait_for("the bulk read", 30, || records()["stats"]["bulk_operations"].as_u64().unwrap_or(0) >= 1);
    let r = http.post(format!("{sh}/_fake/stock")).json(&json!({"sku": sku, "available": 40})).send().expect("stock");
    assert!(r.status().is_success());
    wait_for("Shopify's level", 15, || stock_of(&http, &url, &tokens.kiosk, sku) == 40);
    // One bulk read per start (the demo's, then this run's); after it, the cursor.
    let bulks = records()["stats"]["bulk_operations"].clone();
    let sell = |qty: u64| {
        let body = json!({"lines": [{"sku": sku, "qty": qty}], "tenders": [{"type": "cash", "amount_minor": 100_000}]});
        let r = http.post(format!("{url}/v1/sales")).bearer_auth(&tokens.cashier).json(&body).send().expect("sale");
        assert_eq!(r.status().as_u16(), 201);
    };
    sell(3);
    assert_eq!(stock_of(&http, &url, &tokens.kiosk, sku), 37);
    wait_for("shopify has the sale", 30, || status(&http, &url, &tokens.tech, "shopify").confirmed == 1);
    let order = records()["orders"][0].clone();
    assert_eq!(order["inventory_behaviour"], json!("DECREMENT_IGNORING_POLICY"), "{order}");
    // Pulls every second: the level now includes the sale; shown stock stays 37.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(stock_of(&http, &url, &tokens.kiosk, sku), 37, "the sale counted twice?");
    // Prices edited in Shopify: 150 variants, read by cursor (two pages of 100).
    for i in 1..=150 {
        let r = http
            .post(format!("{sh}/_fake/price"))
            .json(&json!({"sku": format!("SKU-{i:07}"), "price": format!("{}.99", 10 + i % 7)}))
            .send()
            .expect("price");
        assert!(r.status().is_success());
    }
    wait_for("the 150th price", 20, || {
        price_of(&http, &url, &tokens.kiosk, "SKU-0000150") == (10 + 150 % 7) * 100 + 99
    });
    assert_eq!(price_of(&http, &url, &tokens.kiosk, sku), 1199);
    assert_eq!(records()["stats"]["bulk_operations"], bulks, "no bulk read since: the cursor");
    // A stock adjustment goes to Shopify once, and its level then includes it once.
    let r = http
        .post(format!("{url}/v1/stock/adjustments"))
        .bearer_auth(&tokens.manager)
        .json(&json!({"sku": sku, "delta": 5, "reason": "received"}))
        .send()
        .expect("adjustment");
    assert_eq!(r.status().as_u16(), 201, "{:?}", r.text());
    assert_eq!(stock_of(&http, &url, &tokens.kiosk, sku), 42);
    wait_for("shopify has the adjustment", 30, || status(&http, &url, &tokens.tech, "shopify").confirmed == 2);
    let adj = records()["adjustments"][0].clone();
    assert_eq!((adj["reason"].as_str(), adj["changes"][0][1].as_i64()), (Some("received"), Some(5)), "{adj}");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(stock_of(&http, &url, &tokens.kiosk, sku), 42, "the adjustment counted twice?");
    // Shopify away: a sale stays subtracted from the last level; when it arrives and the
    // next pull reads it, still once.
    let r = http.post(format!("{sh}/_fake/faults")).json(&json!({"down": true})).send();
    assert!(r.expect("faults").status().is_success());
    sell(2);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(stock_of(&http, &url, &tokens.kiosk, sku), 40);
    http.delete(format!("{sh}/_fake/faults")).send().expect("heal");
    let (code, out) = edgectl(&dir, &["sync", "run"]);
    assert_eq!(code, Some(0), "{out}");
    wait_for("shopify has both sales", 60, || status(&http, &url, &tokens.tech, "shopify").confirmed == 3);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(stock_of(&http, &url, &tokens.kiosk, sku), 40, "after the next pull");
    assert_eq!(records()["stats"]["throttled"], json!(0));
    // The day's report: Shopify's orders by sourceIdentifier, clean.
    let (code, out) = edgectl(&dir, &["--json", "sync", "report"]);
    assert_eq!(code, Some(0), "{out}");
    let rep: Value = serde_json::from_str(&out).expect("json");
    let r = rep["remotes"]
        .as_array()
        .expect("remotes")
        .iter()
        .find(|r| r["remote"] == "shopify")
        .cloned()
        .expect("shopify");
    assert_eq!(
        (r["clean"].as_bool(), r["local_count"].as_u64(), r["remote_count"].as_u64()),
        (Some(true), Some(2), Some(2)),
        "{r}"
    );
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    child.wait().expect("wait");
}

fn price_of(http: &reqwest::blocking::Client, url: &str, token: &str, sku: &str) -> i64 {
    item_field(http, url, token, sku, "price_minor")
}

/// NetSuite as the source of catalog, prices and stock (SuiteQL pages), and stock
/// adjustments: a price changed in NetSuite shows at the register; a sale and an adjustment
/// NetSuite has are in its level once (not again on top of it); the adjustment reaches
/// NetSuite as one `inventoryAdjustment` and the cloud as one `stock.adjusted` event; a
/// retried request with the same Idempotency-Key adjusts nothing more.
#[test]
fn netsuite_as_the_catalog_source_and_stock_adjustments_reach_it_once() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fakes = start_fakes(&tmp.path().join("fakes"), &[]);
    let dir = tmp.path().join("edge");
    let (mut child, url, tokens) = run_edited(&dir, &fakes, |text| {
        let text = text
            .replace("[routing]\ncatalog = \"cloud\"", "[routing]\ncatalog = \"netsuite\"")
            .replace("max_in_flight = 5\n", "max_in_flight = 5\npull_interval_s = 1\n");
        assert!(text.contains("catalog = \"netsuite\"") && text.contains("pull_interval_s = 1\n"), "{text}");
        text
    });
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let ns = fakes.urls["netsuite"].clone();
    let sku = "SKU-0000001";
    let ns_level = |http: &reqwest::blocking::Client| -> i64 {
        let v: Value = http.get(format!("{ns}/_fake/stock?location=1")).send().expect("stock").json().expect("json");
        let row = v["levels"].as_array().expect("levels").iter().find(|r| r["externalId"] == sku).cloned();
        row.and_then(|r| r["quantityonhand"].as_str().and_then(|q| q.parse().ok())).expect("level")
    };

    // A count in NetSuite sets the level, a price list change the price: both show here.
    let r = http.post(format!("{ns}/_fake/stock")).json(&json!({"externalId": sku, "quantityonhand": 40})).send();
    assert!(r.expect("stock").status().is_success());
    let r = http.post(format!("{ns}/_fake/prices")).json(&json!({"externalId": sku, "price": "12.34"})).send();
    assert!(r.expect("price").status().is_success());
    wait_for("NetSuite's level and price", 20, || {
        stock_of(&http, &url, &tokens.kiosk, sku) == 40 && price_of(&http, &url, &tokens.kiosk, sku) == 1234
    });
    // The item's picture: NetSuite's store display image (a File available without login),
    // kept by edged and served from its disk.
    wait_for("NetSuite's picture kept", 30, || picture_of(&http, &url, &tokens.kiosk, sku).is_some());
    let r = http
        .get(format!("{url}{}", picture_of(&http, &url, &tokens.kiosk, sku).unwrap_or_default()))
        .bearer_auth(&tokens.kiosk)
        .send()
        .expect("pic");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "image/svg+xml");

    // A sale: subtracted once, also after NetSuite has it and the next pulls read its level.
    let body = json!({"lines": [{"sku": sku, "qty": 3}], "tenders": [{"type": "cash", "amount_minor": 100_000}]});
    let r = http.post(format!("{url}/v1/sales")).bearer_auth(&tokens.cashier).json(&body).send().expect("sale");
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(stock_of(&http, &url, &tokens.kiosk, sku), 37);

    // An adjustment: managers only; bad input named; then applied at once.
    let adj = json!({"sku": sku, "delta": -2, "reason": "damaged", "note": "dropped"});
    let post = |token: &str, body: &Value, key: &str| {
        http.post(format!("{url}/v1/stock/adjustments"))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .expect("adjustment")
    };
    assert_eq!(post(&tokens.cashier, &adj, "a1").status().as_u16(), 403);
    let r = post(&tokens.manager, &json!({"sku": sku, "delta": 0, "reason": "damaged"}), "a0");
    assert_eq!(r.status().as_u16(), 422);
    assert_eq!(r.json::<Value>().expect("problem")["field"], "delta");
    let r = post(&tokens.manager, &json!({"sku": sku, "delta": 1, "reason": "lost"}), "a0");
    assert_eq!(r.json::<Value>().expect("problem")["field"], "reason");
    let r = post(&tokens.manager, &json!({"sku": "NOPE", "delta": 1, "reason": "count"}), "a0");
    assert_eq!(r.status().as_u16(), 404);
    let r = post(&tokens.manager, &adj, "a1");
    assert_eq!(r.status().as_u16(), 201);
    let made: edge_api::AdjustmentOut = r.json().expect("adjustment");
    assert_eq!((made.delta, made.unit.as_str(), made.stock), (-2, "units", Some(35)));
    // The same request again (a lost answer): the stored one, nothing more.
    let r = post(&tokens.manager, &adj, "a1");
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(r.headers().get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));
    assert_eq!(r.json::<edge_api::AdjustmentOut>().expect("again").id, made.id);
    assert_eq!(stock_of(&http, &url, &tokens.kiosk, sku), 35);
    let page: edge_api::AdjustmentsPage = http
        .get(format!("{url}/v1/stock/adjustments"))
        .bearer_auth(&tokens.tech)
        .send()
        .expect("list")
        .json()
        .expect("json");
    assert_eq!(page.adjustments.len(), 1);

    wait_for("NetSuite has the sale and the adjustment", 30, || {
        status(&http, &url, &tokens.tech, "netsuite").confirmed == 2
    });
    wait_for("the cloud has both", 30, || status(&http, &url, &tokens.tech, "cloud").confirmed == 2);
    assert_eq!(ns_level(&http), 35, "NetSuite's own level: 40 - 3 - 2");
    // Pulls every second: the level now includes both; shown stock stays 35.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(stock_of(&http, &url, &tokens.kiosk, sku), 35, "counted twice?");
    let v: Value = http.get(format!("{ns}/_fake/records")).send().expect("records").json().expect("json");
    let adjs: Vec<&Value> = v["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["record_type"] == "inventoryadjustment")
        .collect();
    assert_eq!(adjs.len(), 1, "{adjs:?}");
    assert_eq!(adjs[0]["externalId"], made.id.as_str());
    let v: Value =
        http.get(format!("{}/_fake/records", fakes.urls["cloud"])).send().expect("records").json().expect("json");
    let text = v.to_string();
    assert_eq!(text.matches("stock.adjusted").count(), 1, "{text}");
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    child.wait().expect("wait");
}

/// A sale Lightspeed applied before its reply reached us is in the ItemShop level a pull read
/// meanwhile, so for a moment the register subtracts it twice. Once the sale is confirmed,
/// the pull settles it: the row is read again by `itemID=IN,[…]` (the `timeStamp` feed will
/// not bring it back while a newer row leads it), and the SKU ends at Lightspeed's level.
/// In-process fakes and pull over loopback HTTP; the worker is driven by hand so that the
/// replies can be held back past the read.
#[test]
fn a_lightspeed_sale_confirmed_after_the_stock_read_is_read_again_not_subtracted_twice() {
    use edge_sync::engine::{Policy, Poll, Worker};
    use edge_sync::lightspeed::connector::{LightspeedConnector, LsAuth};
    use edge_sync::lightspeed::live::LsPull;
    use edge_sync::lightspeed::oauth::TokenSet;
    use edge_sync::mapping::LightspeedMap;
    use edge_sync::store::{SaleCommit, SledStore, Store, StoreConfig};
    use jiff::Timestamp;
    use std::sync::Arc;

    edge_sync::tls::install_provider();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let opts = edge::fakes::FakesOptions { catalog_size: 40, ..Default::default() };
        let fakes = edge::fakes::start(&opts).await.expect("fakes");
        let ls_url = fakes.file.lightspeed.clone().expect("Lightspeed url");
        let tmp = tempfile::tempdir().expect("tmp");
        let store: Arc<dyn Store> = Arc::new(SledStore::open(StoreConfig::new(tmp.path())).expect("store"));
        let items: Vec<_> = (0..40).map(edge_sync::demo::demo_item).collect();
        store.put_items(&items).expect("seed");
        let tokens = TokenSet {
            access: String::new(),
            refresh: "demo-refresh-token".into(),
            access_expires_at_ms: 0,
            refresh_used_at_ms: Timestamp::now().as_millisecond(),
            previous_refresh: None,
        };
        let auth = LsAuth::new("demo-client", "demo-secret", tokens, Box::new(|_| Ok(())));
        let map = LightspeedMap::demo(40);
        let pull = LsPull::new(reqwest::Client::new(), &ls_url, auth.clone(), map.clone(), Duration::from_secs(5));
        pull.round(&store, true, true).await.expect("first round");

        // Two unit items, X then Y, each sold once.
        let units: Vec<_> = items.iter().filter(|i| i.kind == edge_sync::domain::ItemKind::Unit).collect();
        let (x, y) = (units[0], units[1]);
        let id_of = |sku: &str| map.items[sku];
        let qoh = |sku: &str| fakes.lightspeed.lock().expect("fake").qoh(id_of(sku), map.shop_id).expect("row");
        let available = |sku: &str| store.stock(sku).expect("stock").available().expect("level");
        assert_eq!(available(&x.sku), qoh(&x.sku), "the first read sets the level");
        // Priced and settled as the API does it, under the demo store's config.
        let cfg =
            edge::config::parse(&edge::config::demo_toml(tmp.path(), "127.0.0.1:0", &Default::default()), tmp.path())
                .expect("demo config");
        let sell = |item: &edge_sync::domain::Item, units: u64| {
            let req = edge::wire::sale_order(
                serde_json::from_value(json!({
                    "lines": [{"sku": item.sku, "qty": units}],
                    "tenders": [{"type": "cash", "amount_minor": 1_000_000}],
                }))
                .expect("request"),
            );
            let sale =
                edge::checkout::price::build_sale(&req, store.as_ref(), &cfg, Timestamp::now(), "t", "cashier", None)
                    .expect("priced");
            let commit = SaleCommit {
                sale,
                idempotency_key: None,
                fingerprint: "t".into(),
                remotes: vec![edge_sync::domain::Remote::Lightspeed],
            };
            store.commit_sale(commit).expect("commit");
        };
        sell(x, 2);
        sell(y, 1);

        // The worker sends both sales; Lightspeed applies them, their replies are held back.
        let s2 = store.clone();
        let resolver: edge_sync::lightspeed::connector::ItemResolver = Arc::new(move |sku: &str| {
            let b = s2.meta_get(&edge_sync::mapping::ls_item_key(sku)).ok().flatten()?;
            String::from_utf8_lossy(&b).parse().ok()
        });
        let connector = LightspeedConnector::new(map.clone(), auth.clone(), resolver, None);
        let policy = Policy { max_in_flight: 2, ..Policy::default() };
        let mut w = Worker::new(edge_sync::domain::Remote::Lightspeed, Box::new(connector), policy, 1);
        let mut held = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while held.len() < 2 {
            assert!(std::time::Instant::now() < deadline, "the worker did not send both sales");
            match w.poll(Timestamp::now(), store.as_ref()).expect("poll") {
                Poll::Send(b) => {
                    let reply = match fakes.lightspeed.lock().expect("fake").handle(Timestamp::now(), &b.request) {
                        edge_sync::cloud::fake::Disposition::Reply(r) => r,
                        _ => panic!("the fake did not answer"),
                    };
                    if b.request.path.contains("/Sale.json") {
                        held.push((b.seq, reply));
                        // Y's row must be newer than X's (Lightspeed's timeStamp has seconds).
                        tokio::time::sleep(Duration::from_millis(1100)).await;
                    } else {
                        w.on_reply(Timestamp::now(), store.as_ref(), b.seq, Ok(reply)).expect("reply");
                    }
                }
                Poll::WaitUntil(t) => {
                    let ms = (t.as_millisecond() - Timestamp::now().as_millisecond()).clamp(1, 1000);
                    tokio::time::sleep(Duration::from_millis(ms as u64)).await;
                }
                Poll::Idle => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        // The pull reads both rows while neither sale is confirmed: each is subtracted twice.
        pull.round(&store, false, true).await.expect("second round");
        assert_eq!(available(&x.sku), qoh(&x.sku) - 2, "X before its confirmation");
        assert_eq!(available(&y.sku), qoh(&y.sku) - 1, "Y before its confirmation");

        // The replies arrive. The next round's feed brings back only Y's row (the newest);
        // X is settled by reading its row again.
        for (seq, reply) in held {
            w.on_reply(Timestamp::now(), store.as_ref(), seq, Ok(reply)).expect("reply");
        }
        pull.round(&store, false, true).await.expect("third round");
        for sku in [&x.sku, &y.sku] {
            let st = store.stock(sku).expect("stock");
            assert_eq!((st.available(), st.unreflected), (Some(qoh(sku)), 0), "{sku} counted once");
        }
    });
}
