#![allow(dead_code)]
//! Helpers shared by the store tests.

use edge_sync::demo::demo_item;
use edge_sync::domain::Remote;
use edge_sync::domain::{LineRequest, Sale, SaleStatus, TaxMode, Tender, business_date, new_id, price_line, settle};
use edge_sync::money::Currency;
use edge_sync::store::{SaleCommit, SledStore, Store, StoreConfig, StoreError};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::path::Path;

pub const REMOTES: [Remote; 4] = Remote::ALL;

pub fn open(dir: &Path) -> SledStore {
    let mut cfg = StoreConfig::new(dir);
    cfg.cache_capacity_bytes = 8 * 1024 * 1024;
    open_cfg(cfg).expect("open store")
}

/// Opens a store; sled's background threads release the file lock a moment after the last
/// handle in this process is dropped, so a reopen in the same process waits for it.
pub fn open_cfg(cfg: StoreConfig) -> Result<SledStore, StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match SledStore::open(cfg.clone()) {
            Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Seeds `n` demo items of unit kind (skipping weight and lot items for simple sales).
pub fn seed(store: &dyn Store, n: u64) {
    let items: Vec<_> = (0..n).map(demo_item).collect();
    store.put_items(&items).expect("seed");
    store.sync().expect("sync");
}

/// A sale of `lines` unit lines from the demo catalog, chosen by `pick`.
pub fn make_sale(store: &dyn Store, pick: u64, lines: usize) -> Sale {
    let now = Timestamp::now();
    let tz = TimeZone::get("Europe/Berlin").expect("tz");
    let bd = business_date(now, &tz, jiff::civil::Time::midnight());
    let mut priced = vec![];
    let mut i = pick;
    while priced.len() < lines {
        let item = store.item(&demo_item(i % 40).sku).expect("get").expect("seeded");
        i += 1;
        if item.kind != edge_sync::domain::ItemKind::Unit {
            continue;
        }
        let n = priced.len() as u32 + 1;
        priced.push(
            price_line(n, &item, &LineRequest::Units(1 + i % 3), None, TaxMode::Inclusive, Currency::EUR, bd)
                .expect("price"),
        );
    }
    let total: i64 = priced.iter().map(|l| l.gross_minor).sum();
    let tenders = vec![Tender::Cash { amount_minor: total + 100 }];
    let (net, tax, total, tendered, change) = settle(&priced, &tenders, Currency::EUR).expect("settle");
    Sale {
        kind: edge_sync::domain::SaleKind::Sale,
        refund_of: None,
        reason: None,
        id: new_id(),
        status: SaleStatus::Completed,
        created_at: now,
        business_date: bd,
        store_id: "store-001".into(),
        currency: Currency::EUR,
        tax_mode: TaxMode::Inclusive,
        lines: priced,
        tenders,
        net_minor: net,
        tax_minor: tax,
        total_minor: total,
        tendered_minor: tendered,
        change_minor: change,
        request_id: "test".into(),
        actor: "cashier".into(),
        approved_by: None,
        receipt_no: None,
        lane: None,
        cashier: None,
        age_check: None,
    }
}

pub fn commit_of(sale: Sale, key: Option<&str>, fingerprint: &str) -> SaleCommit {
    SaleCommit {
        sale,
        idempotency_key: key.map(str::to_string),
        fingerprint: fingerprint.to_string(),
        remotes: REMOTES.to_vec(),
    }
}
