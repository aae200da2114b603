//! The checkout's middle tier, in-process: requests priced and settled against a real
//! store on a temporary disk, under a fixed clock, as data-driven tables (what the API
//! does between parsing a body and committing). Refunds against what is left of a sale.
//! No HTTP, no daemon, no devices.

use edge::checkout::RefusalKind;
use edge::checkout::price::{build_refund, build_sale};
use edge_sync::domain::{Item, ItemKind, Sale};
use edge_sync::money::Currency;
use edge_sync::store::{SaleCommit, SledStore, SnapshotRecord, Store, StoreConfig};
use jiff::Timestamp;
use serde_json::{Value, json};

fn item(sku: &str, price: i64, rate_bp: u32, kind: ItemKind) -> SnapshotRecord {
    SnapshotRecord {
        item: Item {
            sku: sku.into(),
            name: format!("Item {sku}"),
            price_minor: price,
            currency: Currency::EUR,
            tax_rate_bp: rate_bp,
            kind,
            barcodes: vec![],
            category: "test".into(),
            age_restricted: false,
            image: None,
        },
        stock_level: Some(100),
        stock_at: None,
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    store: SledStore,
    inclusive: edge::config::Config,
    exclusive: edge::config::Config,
    now: Timestamp,
}

fn rig() -> Rig {
    let dir = tempfile::tempdir().expect("tmp");
    let store = SledStore::open(StoreConfig::new(dir.path().join("store"))).expect("store");
    store
        .import_catalog(&[
            item("SKU-A", 119, 1900, ItemKind::Unit),
            item("SKU-B", 200, 725, ItemKind::Unit),
            item("SKU-W", 1299, 700, ItemKind::Weight),
            item("SKU-L", 450, 1900, ItemKind::Lot),
        ])
        .expect("catalog");
    // The demo store's config, with a card terminal (never asked here: pricing only).
    let text = edge::config::demo_toml(dir.path(), "127.0.0.1:0", &Default::default())
        + "\n[devices.terminal]\nkind = \"terminal\"\nuri = \"tcp://127.0.0.1:9\"\n";
    let inclusive = edge::config::parse(&text, dir.path()).expect("config");
    let exclusive =
        edge::config::parse(&text.replace("tax_mode = \"inclusive\"", "tax_mode = \"exclusive\""), dir.path())
            .expect("config");
    Rig { now: "2026-12-06T10:00:00Z".parse().expect("time"), store, inclusive, exclusive, _dir: dir }
}

fn price(r: &Rig, exclusive: bool, body: Value, approver: Option<&str>) -> Result<Sale, edge::checkout::Refusal> {
    let req = edge::wire::sale_order(serde_json::from_value(body).expect("request"));
    let cfg = if exclusive { &r.exclusive } else { &r.inclusive };
    build_sale(&req, &r.store, cfg, r.now, "t", "cashier", approver)
}

/// A priced row: name, exclusive tax, request, approving manager, (total, tax, change).
type PriceRow = (&'static str, bool, Value, Option<&'static str>, (i64, i64, i64));
/// A refused row: name, request, approving manager, kind, the field named.
type RefusalRow = (&'static str, Value, Option<&'static str>, RefusalKind, &'static str);

fn cash(amount: i64) -> Value {
    json!([{"type": "cash", "amount_minor": amount}])
}

/// Each row: a request and what it must price to (total, tax, change), under inclusive or
/// exclusive tax.
#[test]
fn sales_price_as_the_tables_say() {
    let r = rig();
    #[rustfmt::skip]
    let rows: Vec<PriceRow> = vec![
        ("2 x 1.19 at 19 % inclusive", false,
            json!({"lines": [{"sku": "SKU-A", "qty": 2}], "tenders": cash(500)}), None, (238, 38, 262)),
        ("350 g at 12.99/kg, 7 % inclusive: 454.65 rounds to 4.55", false,
            json!({"lines": [{"sku": "SKU-W", "weight_g": 350}], "tenders": cash(455)}), None, (455, 30, 0)),
        ("a lot with its expiry", false,
            json!({"lines": [{"sku": "SKU-L", "qty": 1, "lot": "L-7", "expiry": "2027-01-31"}], "tenders": cash(500)}),
            None, (450, 72, 50)),
        ("price override by a manager", false,
            json!({"lines": [{"sku": "SKU-A", "qty": 1, "unit_price_minor": 100}], "tenders": cash(100)}),
            Some("Max"), (100, 16, 0)),
        ("discount by a manager", false,
            json!({"lines": [{"sku": "SKU-A", "qty": 3, "discount_minor": 57}], "tenders": cash(300)}),
            Some("Max"), (300, 48, 0)),
        ("2.00 at 7.25 % exclusive: tax 14.5 rounds half away to 15", true,
            json!({"lines": [{"sku": "SKU-B", "qty": 1}], "tenders": cash(215)}), None, (215, 15, 0)),
        ("two lines, tax per line, exclusive", true,
            json!({"lines": [{"sku": "SKU-B", "qty": 1}, {"sku": "SKU-A", "qty": 1}], "tenders": cash(400)}),
            None, (215 + 142, 15 + 23, 400 - 357)),
        ("card pays the rest of a partly cash sale", false,
            json!({"lines": [{"sku": "SKU-A", "qty": 2}], "tenders": [{"type": "cash", "amount_minor": 100}, {"type": "card"}]}),
            None, (238, 38, 0)),
    ];
    for (name, exclusive, body, approver, (total, tax, change)) in rows {
        let s = price(&r, exclusive, body, approver).unwrap_or_else(|e| panic!("{name}: refused: {e:?}"));
        assert_eq!((s.total_minor, s.tax_minor, s.change_minor), (total, tax, change), "{name}");
        assert_eq!(s.business_date.to_string(), "2026-12-06", "{name}: the store's business day");
        if approver.is_some() {
            assert_eq!(s.approved_by.as_deref(), approver, "{name}: who approved it is on the sale");
        }
    }
}

/// Each row: a request the checkout refuses, the kind of refusal and the field it names;
/// nothing is stored for it.
#[test]
fn refusals_name_their_field() {
    let r = rig();
    #[rustfmt::skip]
    let rows: Vec<RefusalRow> = vec![
        ("unknown SKU", json!({"lines": [{"sku": "SKU-X", "qty": 1}], "tenders": cash(500)}), None,
            RefusalKind::Invalid, "lines[0].sku"),
        ("no lines", json!({"lines": [], "tenders": cash(500)}), None, RefusalKind::Invalid, "lines"),
        ("zero pieces", json!({"lines": [{"sku": "SKU-A", "qty": 0}], "tenders": cash(500)}), None,
            RefusalKind::Invalid, "lines[0].qty"),
        ("a weighed item without a weight", json!({"lines": [{"sku": "SKU-W", "qty": 1}], "tenders": cash(500)}), None,
            RefusalKind::Invalid, "lines[0]"),
        ("short cash", json!({"lines": [{"sku": "SKU-A", "qty": 2}], "tenders": cash(100)}), None,
            RefusalKind::Invalid, "tenders"),
        ("an override without a manager", json!({"lines": [{"sku": "SKU-A", "qty": 1, "unit_price_minor": 1}], "tenders": cash(100)}),
            None, RefusalKind::NeedsApproval, "lines[0].unit_price_minor"),
        ("a discount over the line", json!({"lines": [{"sku": "SKU-A", "qty": 1, "discount_minor": 500}], "tenders": cash(100)}),
            Some("Max"), RefusalKind::Invalid, "lines[0].discount_minor"),
    ];
    for (name, body, approver, kind, field) in rows {
        let e = price(&r, false, body, approver).err().unwrap_or_else(|| panic!("{name}: not refused"));
        assert_eq!(e.kind, kind, "{name}: {e:?}");
        assert!(e.field.as_deref().is_some_and(|f| f.starts_with(field)), "{name}: names {:?}, not {field}", e.field);
        assert!(!e.detail.is_empty(), "{name}: says why");
    }
    assert_eq!(r.store.sales_page(None, 10).expect("sales").len(), 0, "nothing stored for a refusal");
}

/// Refunds take back at most what is left of each line, and a full refund leaves nothing.
#[test]
fn refunds_never_exceed_what_is_left() {
    let r = rig();
    let sale = price(
        &r,
        false,
        json!({"lines": [{"sku": "SKU-A", "qty": 3}, {"sku": "SKU-W", "weight_g": 350}], "tenders": cash(1000)}),
        None,
    )
    .expect("sale");
    let commit = SaleCommit { sale: sale.clone(), idempotency_key: None, fingerprint: "t".into(), remotes: vec![] };
    r.store.commit_sale(commit).expect("commit");
    let refund = |body: Value| -> Result<Sale, edge::checkout::Refusal> {
        let req = edge::wire::refund_order(serde_json::from_value(body).expect("refund request"));
        let done = r.store.refunded(&sale.id).expect("refunded");
        build_refund(&sale, &req, &done, &r.inclusive, r.now, "t", "manager")
    };
    let commit_refund = |s: Sale| {
        let c = SaleCommit { sale: s, idempotency_key: None, fingerprint: "t".into(), remotes: vec![] };
        r.store.commit_sale(c).expect("commit refund");
    };
    let one = refund(json!({"lines": [{"line_no": 1, "qty": 1}], "tender": "cash", "reason": "damaged"})).expect("one");
    assert_eq!(one.total_minor, 119);
    commit_refund(one);
    let e =
        refund(json!({"lines": [{"line_no": 1, "qty": 3}], "tender": "cash", "reason": "x"})).expect_err("too many");
    assert_eq!(e.kind, RefusalKind::Invalid, "{e:?}");
    assert!(e.detail.contains("1 refunded already"), "{e:?}");
    let rest = refund(json!({"tender": "cash", "reason": "changed mind"})).expect("the rest");
    assert_eq!(rest.total_minor, 2 * 119 + 455, "two pieces and the weighed line");
    commit_refund(rest);
    let e = refund(json!({"tender": "cash", "reason": "again"})).expect_err("nothing left");
    assert_eq!(e.kind, RefusalKind::Conflict, "{e:?}");
}
