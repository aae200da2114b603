//! The sled store on a real disk: commits, idempotency, reopening, refusals.

mod common;

use common::{REMOTES, commit_of, make_sale, open, seed};
use edge_sync::demo::{demo_ean, demo_item};
use edge_sync::domain::Remote;
use edge_sync::domain::{AdjustReason, OutboxState, Quantity, RecordKind, StockAdjustment, new_id};
use edge_sync::store::{
    AdjustmentCommit, AdjustmentOutcome, CommitOutcome, FORMAT_VERSION, OutboxQuery, SledStore, Store, StoreConfig,
    StoreError,
};
use jiff::Timestamp;

#[test]
fn a_committed_sale_is_stored_with_outbox_entries_deltas_and_stock() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = open(dir.path());
    seed(&store, 40);
    let sale = make_sale(&store, 0, 3);
    let out = store.commit_sale(commit_of(sale.clone(), Some("k1"), "fp1")).expect("commit");
    // The store gives it the lane's next receipt number.
    let sale = edge_sync::domain::Sale { receipt_no: Some("1-000001".into()), ..sale };
    assert_eq!(out, CommitOutcome::Created(sale.clone()));
    assert_eq!(store.sale(&sale.id).expect("get"), Some(sale.clone()));

    let entries = store.outbox_entries_of(&sale.id).expect("entries");
    let mut remotes: Vec<_> = entries.iter().map(|e| e.remote).collect();
    remotes.sort();
    assert_eq!(remotes, REMOTES);
    assert!(entries.iter().all(|e| e.state == OutboxState::Pending && e.record_id == sale.id));

    let deltas = store.stock_deltas_of_sale(&sale).expect("deltas");
    assert_eq!(deltas.len(), sale.lines.len());
    for (d, l) in deltas.iter().zip(&sale.lines) {
        let Quantity::Units(n) = l.quantity else { panic!("unit line") };
        assert_eq!(d.delta, -i64::from(n));
        assert_eq!(store.stock(&l.sku).expect("stock").unreflected, d.delta);
    }
    let counts = store.outbox_counts();
    assert_eq!(counts[&Remote::Cloud].pending, 1);
    assert!(counts[&Remote::Cloud].oldest_waiting.is_some());
    assert!(store.stats().syncs >= 1);
}

#[test]
fn a_repeated_key_returns_the_first_sale_and_never_stores_a_second() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = open(dir.path());
    seed(&store, 40);
    let first = make_sale(&store, 0, 2);
    let CommitOutcome::Created(first) =
        store.commit_sale(commit_of(first.clone(), Some("key-A"), "fp")).expect("commit")
    else {
        panic!("created")
    };
    // A retry makes a new sale object (new id) with the same request: the key wins.
    let retry = make_sale(&store, 0, 2);
    let out = store.commit_sale(commit_of(retry, Some("key-A"), "fp")).expect("replay");
    assert_eq!(out, CommitOutcome::Replayed(first.clone()));
    // Same key, other content: a conflict, nothing stored.
    let other = make_sale(&store, 5, 1);
    let out = store.commit_sale(commit_of(other.clone(), Some("key-A"), "other-fp")).expect("conflict");
    assert!(matches!(out, CommitOutcome::Conflict { sale_id, .. } if sale_id == first.id));
    assert_eq!(store.sale(&other.id).expect("get"), None);
    // A repeated sale id without a key is a replay too.
    let out = store.commit_sale(commit_of(first.clone(), None, "fp")).expect("replay by id");
    assert_eq!(out, CommitOutcome::Replayed(first.clone()));
    assert_eq!(store.sales_page(None, 100).expect("page").len(), 1);
    assert_eq!(store.outbox_counts()[&Remote::Netsuite].pending, 1);
}

#[test]
fn sales_outbox_and_counts_survive_reopening() {
    let dir = tempfile::tempdir().expect("tmp");
    let ids: Vec<_> = {
        let store = open(dir.path());
        seed(&store, 40);
        (0..5)
            .map(|i| {
                let s = make_sale(&store, i, 2);
                store.commit_sale(commit_of(s.clone(), Some(&format!("k{i}")), "fp")).expect("commit");
                s.id
            })
            .collect()
    };
    let store = open(dir.path());
    for id in &ids {
        assert!(store.sale(id).expect("get").is_some());
        assert_eq!(store.outbox_entries_of(id).expect("entries").len(), REMOTES.len());
    }
    assert_eq!(store.outbox_counts()[&Remote::Lightspeed].pending, 5);
    assert_eq!(store.stats().sales, 5);
    assert_eq!(store.item_count(), 40);
    assert_eq!(store.format_version(), FORMAT_VERSION);
}

#[test]
fn outbox_transitions_are_guarded_and_counted() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = open(dir.path());
    seed(&store, 40);
    let s = make_sale(&store, 1, 1);
    store.commit_sale(commit_of(s.clone(), None, "fp")).expect("commit");
    let e = store
        .outbox_page(&OutboxQuery { remote: Some(Remote::Cloud), limit: 10, ..Default::default() })
        .expect("page")
        .remove(0);
    let now = Timestamp::now();
    let moved = store
        .transition_outbox(Remote::Cloud, &e.id, &OutboxState::Pending, OutboxState::InFlight { attempt: 1 }, now)
        .expect("move");
    assert_eq!(moved.attempts, 1);
    // A stale expectation is refused: no lost update.
    let stale = store.transition_outbox(Remote::Cloud, &e.id, &OutboxState::Pending, OutboxState::Unknown, now);
    assert!(matches!(stale, Err(StoreError::Invalid(_))));
    store
        .transition_outbox(
            Remote::Cloud,
            &e.id,
            &OutboxState::InFlight { attempt: 1 },
            OutboxState::Confirmed { remote_id: "r-1".into() },
            now,
        )
        .expect("confirm");
    let c = &store.outbox_counts()[&Remote::Cloud];
    assert_eq!((c.pending, c.in_flight, c.confirmed), (0, 0, 1));
    assert_eq!(c.oldest_waiting, None);
    let only_pending = store
        .outbox_page(&OutboxQuery {
            state: Some(edge_sync::domain::OutboxStateKind::Pending),
            limit: 10,
            ..Default::default()
        })
        .expect("page");
    assert_eq!(only_pending.len(), REMOTES.len() - 1);
}

#[test]
fn catalog_lookups_by_barcode_sku_and_name_with_bounded_scans() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = open(dir.path());
    seed(&store, 300);
    let it = demo_item(17);
    assert_eq!(store.item_by_barcode(&demo_ean(17)).expect("get"), Some(it.clone()));
    assert_eq!(store.item_by_barcode("0000000000000").expect("get"), None);
    let (page, next) = store.items_page(Some(&demo_ean(17)), None, 10, 1000).expect("page");
    assert_eq!(page.len(), 1);
    assert_eq!(next, None);
    // Paging through everything yields every item once, in SKU order.
    let mut seen = vec![];
    let mut after: Option<String> = None;
    loop {
        let (page, next) = store.items_page(None, after.as_deref(), 64, 10_000).expect("page");
        seen.extend(page.into_iter().map(|e| e.item.sku));
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen.len(), 300);
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    // A name search that scans at most 50 items per call still finds all matches via cursors.
    let word = it.name.split(' ').nth(1).expect("noun").to_lowercase();
    let expected = (0..300).filter(|i| demo_item(*i).name.to_lowercase().contains(&word)).count();
    let (mut found, mut after) = (0, None::<String>);
    loop {
        let (page, next) = store.items_page(Some(&word), after.as_deref(), 1000, 50).expect("page");
        found += page.len();
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(found, expected);
}

#[test]
fn replacing_an_item_moves_its_barcodes() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = open(dir.path());
    let mut it = demo_item(3);
    store.put_items(std::slice::from_ref(&it)).expect("put");
    it.barcodes = vec!["4006381333931".into()];
    store.put_items(std::slice::from_ref(&it)).expect("put");
    assert_eq!(store.item_by_barcode(&demo_ean(3)).expect("get"), None);
    assert_eq!(store.item_by_barcode("4006381333931").expect("get").map(|i| i.sku), Some(it.sku));
    assert_eq!(store.item_count(), 1);
}

/// sled directly; its background threads release the file lock a moment after the last
/// handle is dropped, so a reopen right after may briefly find it locked.
fn open_raw(path: &std::path::Path) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match sled::open(path) {
            Ok(db) => return db,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("sled open: {e}"),
        }
    }
}

#[test]
fn a_store_from_a_newer_version_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let _s = open(dir.path());
    }
    // Write a future format version with sled directly, as a newer edged would.
    {
        let db = open_raw(dir.path());
        db.open_tree("meta").expect("meta").insert("format_version", &(FORMAT_VERSION + 1).to_be_bytes()).expect("ins");
        db.flush().expect("flush");
    }
    let err = common::open_cfg(StoreConfig::new(dir.path())).err().expect("must refuse");
    let msg = err.to_string();
    assert!(matches!(err, StoreError::NewerFormat { found, .. } if found == FORMAT_VERSION + 1), "{msg}");
    assert!(msg.contains("newer") && msg.contains("untouched"), "{msg}");
    let db = open_raw(dir.path());
    let v = db.open_tree("meta").expect("meta").get("format_version").expect("get").expect("present");
    assert_eq!(v.as_ref(), &(FORMAT_VERSION + 1).to_be_bytes());
}

/// An upgrade: a format-1 store (sales made by the previous release) opens, is migrated to
/// the current format, and keeps its sales; refunds and payments work on it.
#[test]
fn a_store_of_the_previous_format_is_migrated_and_keeps_its_sales() {
    let dir = tempfile::tempdir().expect("tmp");
    let sale = {
        let s = open(dir.path());
        seed(&s, 10);
        let sale = make_sale(&s, 0, 2);
        s.commit_sale(commit_of(sale.clone(), Some("old"), "fp")).expect("commit");
        s.sync().expect("sync");
        sale
    };
    {
        let db = open_raw(dir.path());
        db.open_tree("meta").expect("meta").insert("format_version", &1u32.to_be_bytes()).expect("ins");
        db.flush().expect("flush");
    }
    let s = open(dir.path());
    assert_eq!(s.format_version(), FORMAT_VERSION);
    assert_eq!(FORMAT_VERSION, 3);
    assert_eq!(s.sale(&sale.id).expect("get").map(|x| x.id), Some(sale.id));
    assert!(s.payments_open().expect("payments").is_empty());
    assert!(s.refunded(&sale.id).expect("refunded").is_empty());
    drop(s);
    // Format 2 (the release before adjustments) migrates too, and takes adjustments after.
    {
        let db = open_raw(dir.path());
        db.open_tree("meta").expect("meta").insert("format_version", &2u32.to_be_bytes()).expect("ins");
        db.flush().expect("flush");
    }
    let s = open(dir.path());
    assert_eq!(s.format_version(), 3);
    let a = adjustment(&s, 1, -2);
    assert!(matches!(s.commit_adjustment(adj_commit(a, None, "fp")).expect("commit"), AdjustmentOutcome::Created(_)));
}

fn adjustment(s: &SledStore, item: u64, delta: i64) -> StockAdjustment {
    let now = Timestamp::now();
    let sku = demo_item(item).sku;
    assert!(s.item(&sku).expect("item").is_some());
    StockAdjustment {
        id: new_id(),
        store_id: "store-001".into(),
        sku,
        delta,
        by_weight: false,
        reason: AdjustReason::Damaged,
        note: "dropped a crate".into(),
        created_at: now,
        business_date: now.to_zoned(jiff::tz::TimeZone::UTC).date(),
        request_id: "t".into(),
        actor: "manager".into(),
    }
}

fn adj_commit(a: StockAdjustment, key: Option<&str>, fp: &str) -> AdjustmentCommit {
    AdjustmentCommit {
        adjustment: a,
        idempotency_key: key.map(str::to_string),
        fingerprint: fp.into(),
        remotes: vec![Remote::Cloud, Remote::Netsuite],
    }
}

/// An adjustment is one atomic write (record, outbox entries of its kind, stock delta,
/// audit) that a reopened store reads back, and a retry with the same key never adjusts
/// twice.
#[test]
fn a_stock_adjustment_moves_stock_once_and_survives_reopening() {
    let dir = tempfile::tempdir().expect("tmp");
    let (first, sku) = {
        let s = open(dir.path());
        seed(&s, 10);
        let a = adjustment(&s, 3, -4);
        let sku = a.sku.clone();
        let out = s.commit_adjustment(adj_commit(a.clone(), Some("adj-1"), "fp")).expect("commit");
        assert_eq!(out, AdjustmentOutcome::Created(a.clone()));
        assert_eq!(s.stock(&sku).expect("stock").unreflected, -4);
        // A retry makes a new object (new id) from the same request: the key answers it.
        let retry = adjustment(&s, 3, -4);
        let out = s.commit_adjustment(adj_commit(retry.clone(), Some("adj-1"), "fp")).expect("replay");
        assert_eq!(out, AdjustmentOutcome::Replayed(a.clone()));
        // Same key, other request: refused, nothing stored.
        let other = adjustment(&s, 3, 7);
        let out = s.commit_adjustment(adj_commit(other.clone(), Some("adj-1"), "fp2")).expect("conflict");
        assert!(matches!(out, AdjustmentOutcome::Conflict { id, .. } if id == a.id), "{out:?}");
        assert_eq!(s.adjustment(&other.id).expect("get"), None);
        assert_eq!(s.adjustment(&retry.id).expect("get"), None);
        assert_eq!(s.stock(&sku).expect("stock").unreflected, -4);
        // No sync here: what the commit wrote is what the reopened store reads. (Against
        // power loss it rests on the checkpoint inside the commit; a reopen in one process
        // cannot show that.)
        (a, sku)
    };
    let s = open(dir.path());
    assert_eq!(s.adjustment(&first.id).expect("get"), Some(first.clone()));
    assert_eq!(s.adjustments_page(None, 10).expect("page"), vec![first.clone()]);
    assert_eq!(s.stock(&sku).expect("stock").unreflected, -4);
    let entries = s.outbox_entries_of(&first.id).expect("entries");
    assert_eq!(entries.len(), 2);
    assert!(entries.iter().all(|e| e.kind == RecordKind::Adjustment && e.state == OutboxState::Pending));
    assert_eq!(s.outbox_counts()[&Remote::Netsuite].pending, 1);
    let audit = s.audit_page(None, 100).expect("audit");
    assert!(audit.iter().any(|r| r.action == "stock.adjusted" && r.subject == sku), "{audit:?}");
    // The stock source confirms it and its next level includes it: the delta is dropped.
    let e = entries.iter().find(|e| e.remote == Remote::Netsuite).expect("netsuite entry");
    s.transition_outbox(
        Remote::Netsuite,
        &e.id,
        &OutboxState::Pending,
        OutboxState::Confirmed { remote_id: "1001".into() },
        Timestamp::now(),
    )
    .expect("confirm");
    s.rebase_stock(Remote::Netsuite, &[(sku.clone(), 96, Timestamp::now())], 1001, &|rid| rid.parse().ok())
        .expect("rebase");
    let st = s.stock(&sku).expect("stock");
    assert_eq!((st.remote_level, st.unreflected, st.available()), (Some(96), 0, Some(96)));
}

/// A sale the stock source confirms only after a pull read a level that already held it:
/// settling drops its delta by the level's marker, so it is not subtracted twice; one
/// confirmed above the marker waits for a fresh read; an unconfirmed one stays.
#[test]
fn a_sale_confirmed_after_the_pull_that_counted_it_is_settled_by_the_levels_marker() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = open(dir.path());
    seed(&s, 40);
    let number = |rid: &str| rid.strip_prefix("evt_").and_then(|n| n.parse::<u64>().ok());
    let sales: Vec<_> = (0..3)
        .map(|_| {
            let sale = make_sale(&s, 0, 1);
            s.commit_sale(commit_of(sale.clone(), None, "fp")).expect("commit");
            sale
        })
        .collect();
    let sku = sales[0].lines[0].sku.clone();
    assert!(sales.iter().all(|x| x.lines[0].sku == sku));
    let qty = |x: &edge_sync::domain::Sale| -s.stock_deltas_of_sale(x).expect("deltas")[0].delta;
    let sold: Vec<i64> = sales.iter().map(qty).collect();
    let confirm = |i: usize, rid: &str| {
        let e = s.outbox_entries_of(&sales[i].id).expect("entries").into_iter().find(|e| e.remote == Remote::Cloud);
        let e = e.expect("cloud entry");
        s.transition_outbox(
            Remote::Cloud,
            &e.id,
            &e.state,
            OutboxState::Confirmed { remote_id: rid.into() },
            Timestamp::now(),
        )
        .expect("confirm");
    };
    // The cloud applied sales 0 and 1 (events 7 and 8) and reported the level through
    // event 8, but only sale 0's confirmation had come back when the level was read.
    confirm(0, "evt_7");
    s.rebase_stock(Remote::Cloud, &[(sku.clone(), 100, Timestamp::now())], 8, &number).expect("rebase");
    let st = s.stock(&sku).expect("stock");
    assert_eq!(st.through.as_ref().map(|m| (m.source.as_str(), m.through)), Some(("cloud", 8)));
    assert_eq!(st.unreflected, -(sold[1] + sold[2]));
    // Sale 1's confirmation arrives (event 8, in the level); sale 2 is confirmed as event 9.
    confirm(1, "evt_8");
    confirm(2, "evt_9");
    let settled = s.settle_stock(Remote::Cloud, &number).expect("settle");
    assert_eq!(settled.deltas_reflected, 1);
    assert_eq!(settled.waiting, vec![sku.clone()], "event 9 is above the level's marker");
    let st = s.stock(&sku).expect("stock");
    assert_eq!((st.remote_level, st.unreflected), (Some(100), -sold[2]), "sale 1 counted once");
    // Settling again changes nothing; a level through event 9 takes sale 2 in.
    assert_eq!(s.settle_stock(Remote::Cloud, &number).expect("settle").deltas_reflected, 0);
    s.rebase_stock(Remote::Cloud, &[(sku.clone(), 100 - sold[2], Timestamp::now())], 9, &number).expect("rebase");
    let st = s.stock(&sku).expect("stock");
    assert_eq!((st.unreflected, st.available()), (0, Some(100 - sold[2])));
    let settled = s.settle_stock(Remote::Cloud, &number).expect("settle");
    assert!(settled.waiting.is_empty() && settled.deltas_reflected == 0, "{settled:?}");
    // Another source's settle leaves the cloud's level alone, even where its numbers would
    // fall under the cloud's marker.
    let sale = make_sale(&s, 0, 1);
    s.commit_sale(commit_of(sale.clone(), None, "fp")).expect("commit");
    let e = s.outbox_entries_of(&sale.id).expect("entries").into_iter().find(|e| e.remote == Remote::Netsuite);
    let e = e.expect("netsuite entry");
    s.transition_outbox(
        Remote::Netsuite,
        &e.id,
        &e.state,
        OutboxState::Confirmed { remote_id: "3".into() },
        Timestamp::now(),
    )
    .expect("confirm");
    let before = s.stock(&sku).expect("stock");
    assert_eq!(s.settle_stock(Remote::Netsuite, &|r: &str| r.parse().ok()).expect("settle"), Default::default());
    assert_eq!(s.stock(&sku).expect("stock"), before);
    // An imported level knows no marker: nothing is settled against it.
    s.set_remote_stock(&[(sku.clone(), 50, Timestamp::now())]).expect("import");
    assert_eq!(s.stock(&sku).expect("stock").through, None);
}

#[test]
fn a_directory_that_is_not_a_store_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("notes.txt"), "keep me").expect("write");
    let err = SledStore::open(StoreConfig::new(dir.path())).err().expect("must refuse");
    assert!(matches!(err, StoreError::NotAStore { .. }), "{err}");
    let names: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").map(|e| e.expect("e").file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("notes.txt")]);

    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").expect("write");
    let err = SledStore::open(StoreConfig::new(&file)).err().expect("must refuse");
    assert!(err.to_string().contains("not a directory"), "{err}");
}

#[test]
fn a_store_in_use_is_reported_as_locked() {
    let dir = tempfile::tempdir().expect("tmp");
    let _first = open(dir.path());
    // sled locks per process with an flock-style lock; a second open in the same process
    // may or may not be refused, so ask a child process (the real case: two daemons).
    let out = std::process::Command::new("flock")
        .args(["--nonblock", "--exclusive"])
        .arg(dir.path().join("db"))
        .arg("true")
        .output()
        .expect("flock(1) from util-linux");
    assert!(!out.status.success(), "the db file must be locked while the store is open");
}

#[test]
fn invalid_items_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = open(dir.path());
    let mut it = demo_item(1);
    it.sku = String::new();
    let e = store.put_items(&[it]).expect_err("refused");
    assert!(e.to_string().contains("sku"), "{e}");
    let mut it = demo_item(1);
    it.price_minor = -1;
    assert!(store.put_items(&[it]).is_err());
    assert_eq!(store.item_count(), 0);
}

#[test]
fn a_value_over_the_blob_threshold_is_synced_and_reads_back_after_reopen() {
    // sled writes values over a quarter segment (128 KiB) to files under blobs/, which it
    // never fsyncs itself; the store's sync must pick them up (and the directories).
    let dir = tempfile::tempdir().expect("tmp");
    let big: Vec<u8> = (0..300 * 1024).map(|i| (i % 251) as u8).collect();
    {
        let store = open(dir.path());
        store.meta_set("big", &big).expect("set");
        store.sync().expect("sync");
        let blobs: Vec<_> = std::fs::read_dir(dir.path().join("blobs")).expect("blobs dir").collect();
        assert!(!blobs.is_empty(), "expected sled to write a blob file");
    }
    let store = open(dir.path());
    assert_eq!(store.meta_get("big").expect("get"), Some(big));
}

fn snapshot_of(n: u64) -> Vec<edge_sync::store::SnapshotRecord> {
    (0..n)
        .map(|i| edge_sync::store::SnapshotRecord {
            item: demo_item(i),
            stock_level: Some(100 + i as i64),
            stock_at: Some(Timestamp::now()),
        })
        .collect()
}

#[test]
fn an_imported_catalog_answers_lookups_pages_and_stock_and_survives_reopen() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let store = open(dir.path());
        assert_eq!(store.import_catalog(&snapshot_of(300)).expect("import"), 300);
        assert_eq!(store.item_count(), 300);
        assert_eq!(store.item_by_barcode(&demo_ean(17)).expect("get"), Some(demo_item(17)));
        assert_eq!(store.item(&demo_item(5).sku).expect("get"), Some(demo_item(5)));
        assert_eq!(store.stock(&demo_item(5).sku).expect("stock").available(), Some(105));
    }
    let store = open(dir.path());
    assert_eq!(store.item_count(), 300);
    assert_eq!(store.item_by_barcode(&demo_ean(299)).expect("get"), Some(demo_item(299)));
    let (mut seen, mut after) = (vec![], None::<String>);
    loop {
        let (page, next) = store.items_page(None, after.as_deref(), 70, 10_000).expect("page");
        seen.extend(page.into_iter().map(|e| (e.item.sku, e.stock.available())));
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen.len(), 300);
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(seen.iter().all(|(_, s)| s.is_some()));
}

#[test]
fn items_put_after_an_import_overlay_the_snapshot() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = open(dir.path());
    store.import_catalog(&snapshot_of(50)).expect("import");
    // A changed item: new price and a new barcode in place of the old one.
    let mut changed = demo_item(3);
    changed.price_minor += 100;
    changed.barcodes = vec!["4006381333931".into()];
    // A new item beyond the snapshot.
    let new_item = demo_item(50);
    store.put_items(&[changed.clone(), new_item.clone()]).expect("put");
    assert_eq!(store.item_count(), 51, "a changed item is not a new one");
    assert_eq!(store.item(&changed.sku).expect("get"), Some(changed.clone()));
    assert_eq!(store.item_by_barcode("4006381333931").expect("get"), Some(changed.clone()));
    assert_eq!(store.item_by_barcode(&demo_ean(3)).expect("get"), None, "the old barcode left with the change");
    // Pages show the overlay version once, in order, with the snapshot's stock level.
    let (page, _) = store.items_page(None, None, 100, 10_000).expect("page");
    assert_eq!(page.len(), 51);
    let e = page.iter().find(|e| e.item.sku == changed.sku).expect("listed");
    assert_eq!((e.item.price_minor, e.stock.available()), (changed.price_minor, Some(103)));
    assert!(page.windows(2).all(|w| w[0].item.sku < w[1].item.sku));
    // A sale moves stock below the snapshot level.
    let sale = make_sale(&store, 0, 1);
    let sku = sale.lines[0].sku.clone();
    let before = store.stock(&sku).expect("stock").available().expect("level");
    store.commit_sale(commit_of(sale.clone(), None, "fp")).expect("commit");
    let Quantity::Units(n) = sale.lines[0].quantity else { panic!("unit line") };
    assert_eq!(store.stock(&sku).expect("stock").available(), Some(before - i64::from(n)));
    // A new import supersedes the overlay items but keeps local movements.
    store.import_catalog(&snapshot_of(50)).expect("import again");
    assert_eq!(store.item(&changed.sku).expect("get"), Some(demo_item(3)));
    assert_eq!(store.item(&new_item.sku).expect("get"), None);
    assert_eq!(store.item_count(), 50);
    assert_eq!(store.stock(&sku).expect("stock").available(), Some(before - i64::from(n)));
}

#[test]
fn a_store_whose_creation_was_cut_off_is_carried_on() {
    // sled creates blobs/, then conf, then db: a kill in between leaves only those.
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir(dir.path().join("blobs")).expect("blobs");
    std::fs::write(dir.path().join("conf"), "segment_size: 52").expect("torn conf");
    let store = open(dir.path());
    seed(&store, 40);
    assert_eq!(store.item_count(), 40);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

/// A durable outbox move is in the commit journal. The image opened here is what a power
/// cut can leave: sled's files as they were before the moves (its later writes lost with
/// the page cache) and the journal as fdatasynced after them. Replay must apply the moves
/// and the later commit. `outbox_waiting` serves the entries still to deliver, in order.
#[test]
fn durable_outbox_moves_survive_a_crash_image_and_waiting_entries_come_in_order() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = open(&dir.path().join("a"));
    seed(&store, 40);
    let mut sales = vec![];
    for i in 0..3 {
        let s = make_sale(&store, i, 1);
        store.commit_sale(commit_of(s.clone(), None, &format!("fp{i}"))).expect("commit");
        sales.push(s);
    }
    let waiting = store.outbox_waiting(Remote::Cloud, None, 10).expect("waiting");
    assert_eq!(waiting.iter().map(|e| e.record_id).collect::<Vec<_>>(), sales.iter().map(|s| s.id).collect::<Vec<_>>());
    let after_first = store.outbox_waiting(Remote::Cloud, Some(&waiting[0].id), 10).expect("waiting");
    assert_eq!(after_first.len(), 2);

    store.sync().expect("checkpoint");
    copy_dir(&dir.path().join("a"), &dir.path().join("b"));
    let now = Timestamp::now();
    let moves: Vec<edge_sync::store::OutboxMove> = waiting[..2]
        .iter()
        .map(|e| edge_sync::store::OutboxMove {
            remote: Remote::Cloud,
            id: e.id,
            expected: OutboxState::Pending,
            next: OutboxState::InFlight { attempt: 1 },
        })
        .collect();
    let res = store.transition_outbox_durable(&moves, now).expect("durable");
    assert!(res.iter().all(Result::is_ok));
    // A guarded move whose expectation is stale changes nothing and says why.
    let again = store.transition_outbox_durable(&moves[..1], now).expect("durable");
    assert!(again[0].as_ref().is_err_and(|e| e.contains("in_flight")), "{again:?}");
    let s4 = make_sale(&store, 9, 1);
    store.commit_sale(commit_of(s4.clone(), None, "fp9")).expect("commit");

    // The journal as synced now, over sled's files from before the moves.
    std::fs::remove_dir_all(dir.path().join("b/journal")).expect("rm");
    copy_dir(&dir.path().join("a/journal"), &dir.path().join("b/journal"));
    drop(store);
    let image = open(&dir.path().join("b"));
    for e in &waiting[..2] {
        let got = image.outbox_entry(&e.id).expect("read").expect("entry");
        assert_eq!((got.state, got.attempts), (OutboxState::InFlight { attempt: 1 }, 1));
    }
    assert!(image.sale(&s4.id).expect("read").is_some());
    let c = &image.outbox_counts()[&Remote::Cloud];
    assert_eq!((c.pending, c.in_flight), (2, 2));
}

/// The store refuses, in the refund's own transaction, to give back more than was sold
/// (two refunds racing past the API's check), and a refund returns stock.
#[test]
fn refunds_never_exceed_the_sale_and_return_stock() {
    use edge_sync::domain::{SaleKind, Tender};
    let dir = tempfile::tempdir().expect("tmp");
    let store = open(dir.path());
    seed(&store, 10);
    let sale = make_sale(&store, 0, 2);
    store.commit_sale(commit_of(sale.clone(), None, "fp")).expect("commit");
    let line = sale.lines[0].clone();
    let Quantity::Units(sold) = line.quantity else { panic!("units") };
    let refund_of = |n: u32, id: u128| {
        let mut r = sale.clone();
        r.id = uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + id);
        r.kind = SaleKind::Refund;
        r.refund_of = Some(sale.id);
        r.lines = vec![edge_sync::domain::SaleLine { quantity: Quantity::Units(n), ..line.clone() }];
        r.tenders = vec![Tender::Cash { amount_minor: r.lines[0].gross_minor }];
        r
    };
    let before = store.stock(&line.sku).expect("stock").unreflected;
    let first = store.commit_sale(commit_of(refund_of(sold, 1), None, "r1")).expect("refund");
    assert!(matches!(first, CommitOutcome::Created(_)));
    assert_eq!(store.stock(&line.sku).expect("stock").unreflected, before + i64::from(sold), "stock back");
    assert_eq!(store.refunded(&sale.id).expect("refunded").get(&line.line_no), Some(&u64::from(sold)));
    match store.commit_sale(commit_of(refund_of(1, 2), None, "r2")).expect("second") {
        CommitOutcome::Conflict { what, .. } => assert!(what.contains("refunded already"), "{what}"),
        other => panic!("a second refund of a fully refunded line was stored: {other:?}"),
    }
    drop(store);
    let store = open(dir.path());
    assert_eq!(
        store.refunded(&sale.id).expect("refunded").get(&line.line_no),
        Some(&u64::from(sold)),
        "after reopening"
    );
}

/// Receipt numbers: the lane's prefix and a sequence with no gaps (a replay or a refused
/// refund takes none), found again by number, and the same after a crash image whose
/// sled files predate the commits (the journal carries the numbers).
#[test]
fn receipt_numbers_are_sequential_findable_and_survive_a_crash_image() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = open(&dir.path().join("a"));
    seed(&store, 40);
    store.sync().expect("checkpoint");
    copy_dir(&dir.path().join("a"), &dir.path().join("b"));
    let mut made = vec![];
    for i in 0..3u64 {
        let mut s = make_sale(&store, i, 1);
        s.lane = Some("K2".into());
        let CommitOutcome::Created(c) =
            store.commit_sale(commit_of(s.clone(), Some(&format!("k{i}")), "fp")).expect("c")
        else {
            panic!("created")
        };
        // A retry of the same request answers the first number and takes none.
        let CommitOutcome::Replayed(r) = store.commit_sale(commit_of(s, Some(&format!("k{i}")), "fp")).expect("r")
        else {
            panic!("replayed")
        };
        assert_eq!(r.receipt_no, c.receipt_no);
        made.push(c);
    }
    let numbers: Vec<_> = made.iter().map(|s| s.receipt_no.clone().expect("numbered")).collect();
    assert_eq!(numbers, ["K2-000001", "K2-000002", "K2-000003"]);
    for s in &made {
        let found = store.sale_by_receipt(s.receipt_no.as_deref().expect("no")).expect("read").expect("found");
        assert_eq!(found.id, s.id);
    }
    assert_eq!(store.sale_by_receipt("K2-000004").expect("read"), None);
    // The crash image: sled's files from before the sales, the journal as synced after them.
    std::fs::remove_dir_all(dir.path().join("b/journal")).expect("rm");
    copy_dir(&dir.path().join("a/journal"), &dir.path().join("b/journal"));
    drop(store);
    let image = open(&dir.path().join("b"));
    for s in &made {
        let got = image.sale(&s.id).expect("read").expect("replayed");
        assert_eq!(got.receipt_no, s.receipt_no, "the number it was acknowledged with");
        assert_eq!(
            image.sale_by_receipt(s.receipt_no.as_deref().expect("no")).expect("read").map(|x| x.id),
            Some(s.id)
        );
    }
    let mut next = make_sale(&image, 7, 1);
    next.lane = Some("K2".into());
    let CommitOutcome::Created(n) = image.commit_sale(commit_of(next, None, "fp-next")).expect("commit") else {
        panic!("created")
    };
    assert_eq!(n.receipt_no.as_deref(), Some("K2-000004"), "the sequence goes on after the replay");
}

/// Another lane's records in the replica: applied once (a redelivery is a duplicate), found
/// by id and receipt number but not in this lane's own sales or outbox, their stock
/// subtracted, refundable here (the refund's over-refund check reads the replica), still
/// there after a reopen; another lane's refund of a sale of ours raises what is refunded.
#[test]
fn other_lanes_records_are_applied_once_and_refundable_here() {
    use edge_sync::bus::LaneMessage;
    let dir = tempfile::tempdir().expect("tmp");
    {
        let store = open(dir.path());
        seed(&store, 40);
        let mut theirs = make_sale(&store, 1, 1);
        theirs.lane = Some("2".into());
        theirs.receipt_no = Some("2-000007".into());
        let sku = theirs.lines[0].sku.clone();
        let qty = i64::from(theirs.lines[0].quantity.amount());
        let before = store.stock(&sku).expect("stock").unreflected;
        let msg = LaneMessage::Sale { lane: "2".into(), sale: Box::new(theirs.clone()) };
        let a = store.apply_lane_messages(&[(5, msg.clone())]).expect("apply");
        assert_eq!((a.applied, a.duplicates), (1, 0));
        let a = store.apply_lane_messages(&[(5, msg)]).expect("again");
        assert_eq!((a.applied, a.duplicates), (0, 1), "a redelivery is applied once");
        assert_eq!(store.stock(&sku).expect("stock").unreflected, before - qty);
        assert!(store.sale(&theirs.id).expect("own").is_none(), "not this lane's sale");
        assert_eq!(store.lane_sale(&theirs.id).expect("replica").map(|s| s.id), Some(theirs.id));
        assert_eq!(store.sale_by_receipt("2-000007").expect("receipt").map(|s| s.id), Some(theirs.id));
        assert!(store.sales_page(None, 100).expect("page").is_empty(), "not in this lane's X");
        assert!(store.outbox_entries_of(&theirs.id).expect("outbox").is_empty());
        let seen = store.lanes_seen().expect("seen");
        assert_eq!((seen.len(), seen[0].lane.as_str(), seen[0].records, seen[0].last_seq), (1, "2", 1, 5));
        // Refunded here: the store checks it against the replica's sale.
        let mut refund = make_sale(&store, 1, 1);
        refund.kind = edge_sync::domain::SaleKind::Refund;
        refund.refund_of = Some(theirs.id);
        refund.lines = theirs.lines.clone();
        let out = store.commit_sale(commit_of(refund.clone(), None, "r1")).expect("refund");
        assert!(matches!(out, CommitOutcome::Created(_)), "{out:?}");
        let mut again = refund.clone();
        again.id = new_id();
        let out = store.commit_sale(commit_of(again, None, "r2")).expect("over");
        assert!(matches!(out, CommitOutcome::Conflict { .. }), "an over-refund: {out:?}");
        // Our own sale, refunded at lane 3: what is left shrinks here too.
        let ours = make_sale(&store, 2, 1);
        store.commit_sale(commit_of(ours.clone(), None, "o")).expect("ours");
        let mut r3 = refund.clone();
        r3.id = new_id();
        r3.refund_of = Some(ours.id);
        r3.lines = ours.lines.clone();
        r3.lane = Some("3".into());
        store.apply_lane_messages(&[(9, LaneMessage::Sale { lane: "3".into(), sale: Box::new(r3) })]).expect("r3");
        let done = store.refunded(&ours.id).expect("refunded");
        assert_eq!(done.get(&1).copied(), Some(u64::from(ours.lines[0].quantity.amount())));
    }
    let store = open(dir.path());
    assert_eq!(store.lanes_seen().expect("seen").len(), 2, "the replica survives a reopen");
}
