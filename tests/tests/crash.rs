//! Crash test: the real `edged` process takes sales from concurrent clients with
//! Idempotency-Keys and is SIGKILLed at random instants, then restarted on the same data dir.
//!
//! Checked after every restart and at the end (the store opened directly once the daemon is
//! gone):
//! - every sale that got a 201 is present exactly once with identical content;
//! - a retried key never makes a second sale (each key has exactly one sale at the end);
//! - outbox entries match sales one to one per remote;
//! - stock deltas match the lines (a sale the cloud confirmed may have had its deltas
//!   folded into a pulled level), and the per-SKU unreflected sums match the deltas.
//!
//! `EDGE_CRASH_CYCLES` (default 50) sets the cycles; `EDGE_CRASH_SEED` replays a run.
//! `scripts/crash-soak` runs 1,000.

mod common;

use common::{Daemon, Rng};
use edge_api::SaleOut;
use edge_sync::demo::demo_item;
use edge_sync::domain::ItemKind;
use edge_sync::domain::Remote;
use edge_sync::store::{SledStore, Store, StoreConfig};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CLIENTS: usize = 4;
const CATALOG: u64 = 200;

#[derive(Default)]
struct Ledger {
    /// key → request body
    bodies: BTreeMap<String, Value>,
    /// key → the sale answered with 201
    acked: BTreeMap<String, SaleOut>,
    next_key: u64,
}

fn body_for(rng: &mut Rng, skus: &[(String, ItemKind)]) -> Value {
    let n = 1 + rng.below(4) as usize;
    let lines: Vec<Value> = (0..n)
        .map(|_| {
            let (sku, kind) = &skus[rng.below(skus.len() as u64) as usize];
            match kind {
                ItemKind::Weight => json!({"sku": sku, "weight_g": 50 + rng.below(2000)}),
                _ => json!({"sku": sku, "qty": 1 + rng.below(5)}),
            }
        })
        .collect();
    json!({"lines": lines, "tenders": [{"type": "cash", "amount_minor": 10_000_000}]})
}

/// One client: posts new keys and retries keys whose outcome it does not know, until stopped.
fn client(
    url: String,
    token: String,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
    seed: u64,
    skus: Vec<(String, ItemKind)>,
) {
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let mut rng = Rng(seed);
    while !stop.load(Ordering::SeqCst) {
        let (key, body) = {
            let mut l = ledger.lock().expect("ledger");
            // Retry an unsettled key now and then, else a new one.
            let unsettled: Vec<String> = l.bodies.keys().filter(|k| !l.acked.contains_key(*k)).cloned().collect();
            if !unsettled.is_empty() && rng.below(3) == 0 {
                let k = unsettled[rng.below(unsettled.len() as u64) as usize].clone();
                let b = l.bodies[&k].clone();
                (k, b)
            } else {
                l.next_key += 1;
                let k = format!("key-{seed:x}-{}", l.next_key);
                let b = body_for(&mut rng, &skus);
                l.bodies.insert(k.clone(), b.clone());
                (k, b)
            }
        };
        let resp =
            http.post(format!("{url}/v1/sales")).bearer_auth(&token).header("Idempotency-Key", &key).json(&body).send();
        let Ok(resp) = resp else { continue }; // killed: outcome unknown
        let status = resp.status().as_u16();
        let Ok(text) = resp.text() else { continue };
        match status {
            201 => {
                let sale: SaleOut = serde_json::from_str(&text).expect("201 body is a sale");
                let mut l = ledger.lock().expect("ledger");
                if let Some(prev) = l.acked.get(&key) {
                    assert_eq!(prev, &sale, "key {key} answered two different sales");
                }
                l.acked.insert(key, sale);
            }
            503 => {} // stopping or store failure: unknown, retried later
            other => panic!("unexpected {other} for key {key}: {text}"),
        }
    }
}

/// Checks that acknowledged sales are there, unchanged: a sample (about 100) after each
/// restart (`sample`), all of them in the final phase (`None`).
fn check_acked_present(d: &Daemon, ledger: &Ledger, mut sample: Option<&mut Rng>) {
    let http = d.http();
    let n = ledger.acked.len() as u64;
    let picked = |rng: &mut Option<&mut Rng>| match rng {
        Some(r) => n <= 200 || r.below(n / 100) == 0,
        None => true,
    };
    for (key, sale) in ledger.acked.iter().filter(|_| picked(&mut sample)) {
        let mut got: SaleOut = http
            .get(format!("{}/v1/sales/{}", d.url, sale.id))
            .bearer_auth(&d.tokens.tech)
            .send()
            .expect("get")
            .json()
            .unwrap_or_else(|e| panic!("acknowledged sale {} of key {key} is missing after restart: {e}", sale.id));
        assert!(got.receipt.take().is_some(), "GET tells the receipt's state");
        assert_eq!(&got, sale, "sale of key {key} changed after restart");
    }
}

#[test]
fn acknowledged_sales_survive_sigkill_exactly_once() {
    let cycles: u64 = std::env::var("EDGE_CRASH_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let seed: u64 = std::env::var("EDGE_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
    });
    eprintln!("crash test: {cycles} cycles, EDGE_CRASH_SEED={seed}");
    let dir = tempfile::tempdir().expect("tmp");
    let skus: Vec<(String, ItemKind)> =
        (0..CATALOG).map(demo_item).filter(|i| i.kind != ItemKind::Lot).map(|i| (i.sku, i.kind)).take(40).collect();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut rng = Rng(seed);
    for cycle in 0..cycles {
        let mut d = Daemon::start(dir.path(), CATALOG);
        check_acked_present(&d, &ledger.lock().expect("ledger"), Some(&mut rng));
        let stop = Arc::new(AtomicBool::new(false));
        let hs: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (url, token, l, s, sk) =
                    (d.url.clone(), d.tokens.cashier.clone(), ledger.clone(), stop.clone(), skus.clone());
                let cseed = seed ^ (cycle << 8) ^ (c as u64 + 1);
                std::thread::spawn(move || client(url, token, l, s, cseed, sk))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(10 + rng.below(300)));
        d.kill9();
        stop.store(true, Ordering::SeqCst);
        for h in hs {
            h.join().expect("client thread");
        }
    }

    // Final phase: settle every unknown key by retrying it; each must come back 201.
    let mut d = Daemon::start(dir.path(), CATALOG);
    check_acked_present(&d, &ledger.lock().expect("ledger"), None);
    {
        let http = d.http();
        let mut l = ledger.lock().expect("ledger");
        let unsettled: Vec<(String, Value)> =
            l.bodies.iter().filter(|(k, _)| !l.acked.contains_key(*k)).map(|(k, b)| (k.clone(), b.clone())).collect();
        for (key, body) in unsettled {
            let r = http
                .post(format!("{}/v1/sales", d.url))
                .bearer_auth(&d.tokens.cashier)
                .header("Idempotency-Key", &key)
                .json(&body)
                .send()
                .expect("post");
            assert_eq!(r.status().as_u16(), 201, "retry of {key}");
            l.acked.insert(key, r.json().expect("sale"));
        }
        // Retrying an acknowledged key returns the same sale.
        for (key, sale) in l.acked.iter().take(20) {
            let body = l.bodies[key].clone();
            let again: SaleOut = http
                .post(format!("{}/v1/sales", d.url))
                .bearer_auth(&d.tokens.cashier)
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .expect("post")
                .json()
                .expect("sale");
            assert_eq!(&again, sale);
        }
    }
    assert_eq!(d.term(), Some(0), "{}", d.log());
    drop(d);

    // The store itself, opened directly now that the daemon is gone.
    let l = ledger.lock().expect("ledger");
    let store = SledStore::open(StoreConfig::new(dir.path().join("store"))).expect("open store");
    let sales = store.sales_page(None, usize::MAX).expect("sales");
    assert_eq!(sales.len(), l.bodies.len(), "each key must have exactly one sale");
    let by_id: BTreeMap<_, _> = sales.iter().map(|s| (s.id, s)).collect();
    for (key, acked) in &l.acked {
        let s = by_id.get(&acked.id).unwrap_or_else(|| panic!("sale of {key} missing"));
        assert_eq!(&edge::wire::sale_out(s), acked);
    }
    let mut per_sku: BTreeMap<String, i64> = BTreeMap::new();
    for s in &sales {
        let entries = store.outbox_entries_of(&s.id).expect("entries");
        let mut remotes: Vec<_> = entries.iter().map(|e| e.remote).collect();
        remotes.sort();
        assert_eq!(remotes, Remote::ALL, "outbox of sale {}", s.id);
        // A stock pull drops the deltas the cloud's level already includes: only those of
        // sales the cloud confirmed.
        let deltas = store.stock_deltas_of_sale(s).expect("deltas");
        let cloud_confirmed = entries
            .iter()
            .any(|e| e.remote == Remote::Cloud && matches!(e.state, edge_sync::domain::OutboxState::Confirmed { .. }));
        if !cloud_confirmed {
            assert_eq!(deltas.len(), s.lines.len(), "deltas of sale {} (not confirmed by the cloud)", s.id);
        }
        for d in &deltas {
            let line = s.lines.iter().find(|l| l.line_no == d.line_no).expect("delta of a line of the sale");
            assert_eq!((d.sku.as_str(), d.delta), (line.sku.as_str(), line.quantity.sold_delta()));
            *per_sku.entry(d.sku.clone()).or_default() += d.delta;
        }
    }
    let counts = store.outbox_counts();
    for r in Remote::ALL {
        let c = &counts[&r];
        assert_eq!((c.pending + c.in_flight + c.unknown + c.confirmed) as usize, sales.len(), "outbox of {r}: {c:?}");
        assert_eq!(c.rejected + c.dead, 0, "dead letters at {r}: {c:?}");
    }
    for (sku, sum) in per_sku {
        assert_eq!(store.stock(&sku).expect("stock").unreflected, sum, "unreflected stock of {sku}");
    }
    eprintln!(
        "crash test: {cycles} cycles, {} sales, {} acknowledged before a kill or at the end",
        sales.len(),
        l.acked.len()
    );
}
