//! The Lightspeed and NetSuite connectors against their fakes, one quirk per test. The
//! engine's real worker drives each connector; the fake answers in-process (the HTTP path
//! is covered by edged's system tests, edge/tests/remotes.rs).

use edge_sync::cloud::fake::{Disposition, Faults};
use edge_sync::domain::Remote;
use edge_sync::domain::{
    ItemKind, LineRequest, OutboxEntry, OutboxState, RecordKind, Sale, SaleKind, SaleStatus, TaxMode, Tender,
    price_line, settle,
};
use edge_sync::engine::sim::SimStore;
use edge_sync::engine::{OutboxStore, Policy, Poll, Worker};
use edge_sync::lightspeed::bucket::{self, Rules};
use edge_sync::lightspeed::connector::{LightspeedConnector, LsAuth};
use edge_sync::lightspeed::fake::{FakeLightspeed, LsFakeConfig};
use edge_sync::lightspeed::oauth::TokenSet;
use edge_sync::mapping::{LightspeedMap, NetSuiteMap};
use edge_sync::money::Currency;
use edge_sync::netsuite::connector::{NetSuiteConnector, NsAuth};
use edge_sync::netsuite::fake::{FakeNetSuite, NsFakeConfig, demo_tba, reason_of};
use edge_sync::netsuite::m2m;
use edge_sync::wire::{HttpRequest, HttpResponse, Method, TransportError};
use jiff::Timestamp;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

const BASE: &str = "http://fake.test";
const T0: i64 = 1_790_000_000_000;

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).expect("time")
}

/// A cash sale of `n` unit lines from the demo catalog (items 0..40), or a refund of it.
fn sale(at_ms: i64, n: u64, refund_of: Option<&Sale>) -> Sale {
    let at = ts(at_ms);
    let bd = at.to_zoned(jiff::tz::TimeZone::get("Europe/Berlin").expect("tz")).date();
    let mut lines = Vec::new();
    let mut i = n;
    while lines.len() < 2 {
        let mut it = edge_sync::demo::demo_item(i % 40);
        i += 1;
        if it.kind != ItemKind::Unit {
            it.kind = ItemKind::Unit;
        }
        let l = price_line(
            lines.len() as u32 + 1,
            &it,
            &LineRequest::Units(1 + i % 3),
            None,
            TaxMode::Inclusive,
            Currency::EUR,
            bd,
        )
        .expect("line");
        lines.push(l);
    }
    let total: i64 = lines.iter().map(|l| l.gross_minor).sum();
    let tenders = vec![Tender::Cash { amount_minor: total + 500 }];
    let (net, tax, total, tendered, change) = settle(&lines, &tenders, Currency::EUR).expect("settle");
    let (kind, tenders, tendered, change) = match refund_of {
        Some(_) => (SaleKind::Refund, vec![Tender::Cash { amount_minor: total }], total, 0),
        None => (SaleKind::Sale, tenders, tendered, change),
    };
    Sale {
        id: {
            let mut r = [0u8; 10];
            r[2..].copy_from_slice(&n.to_be_bytes());
            uuid::Builder::from_unix_timestamp_millis(at_ms as u64, &r).into_uuid()
        },
        status: SaleStatus::Completed,
        kind,
        refund_of: refund_of.map(|s| s.id),
        reason: None,
        created_at: at,
        business_date: bd,
        store_id: "store-001".into(),
        currency: Currency::EUR,
        tax_mode: TaxMode::Inclusive,
        lines,
        tenders,
        net_minor: net,
        tax_minor: tax,
        total_minor: total,
        tendered_minor: tendered,
        change_minor: change,
        request_id: "t".into(),
        actor: "cashier".into(),
        approved_by: None,
        receipt_no: None,
        lane: None,
        cashier: None,
        age_check: None,
    }
}

fn commit(store: &SimStore, remote: Remote, s: Sale) -> OutboxEntry {
    let e = OutboxEntry {
        id: edge_sync::domain::new_id(),
        remote,
        kind: RecordKind::Sale,
        record_id: s.id,
        state: OutboxState::Pending,
        attempts: 0,
        created_at: s.created_at,
        updated_at: s.created_at,
        request_id: "t".into(),
    };
    store.commit(s, vec![e.clone()]);
    e
}

fn ls_map() -> LightspeedMap {
    LightspeedMap { unknown_wait_s: 10, ..LightspeedMap::demo(40) }
}

fn ns_map() -> NetSuiteMap {
    NetSuiteMap {
        tax_codes: BTreeMap::from([("700".into(), "7".into()), ("1900".into(), "19".into())]),
        ..NetSuiteMap::demo()
    }
}

type Vault = Arc<Mutex<Vec<TokenSet>>>;

fn ls_auth(vault: &Vault) -> Arc<LsAuth> {
    let v = vault.clone();
    let start = TokenSet {
        access: String::new(),
        refresh: "demo-refresh-token".into(),
        access_expires_at_ms: 0,
        refresh_used_at_ms: T0,
        previous_refresh: None,
    };
    LsAuth::new(
        "demo-client",
        "demo-secret",
        start,
        Box::new(move |t| {
            v.lock().map_err(|e| e.to_string())?.push(t.clone());
            Ok(())
        }),
    )
}

fn ls_fake(f: impl FnOnce(&mut LsFakeConfig)) -> FakeLightspeed {
    let mut c = LsFakeConfig::demo(BASE);
    c.catalog_size = 250;
    f(&mut c);
    FakeLightspeed::new(c, 7)
}

fn policy() -> Policy {
    Policy {
        max_in_flight: 1,
        backoff_base_ms: 200,
        backoff_max_ms: 5_000,
        breaker_open_ms: 2_000,
        ..Policy::default()
    }
}

/// Drives a worker against `serve` until nothing is left to send or `until_ms` passes; each
/// request takes 20 ms. Returns the time reached and every request sent.
fn drive<S: OutboxStore + ?Sized>(
    w: &mut Worker,
    store: &S,
    mut now_ms: i64,
    until_ms: i64,
    mut serve: impl FnMut(Timestamp, &HttpRequest) -> Disposition,
) -> (i64, Vec<(HttpRequest, u16)>) {
    let mut sent = Vec::new();
    while now_ms < until_ms {
        match w.poll(ts(now_ms), store).expect("poll") {
            Poll::Send(b) => {
                now_ms += 20;
                let reply = match serve(ts(now_ms), &b.request) {
                    Disposition::Reply(r) => Ok(r),
                    Disposition::LoseReply => Err(TransportError::NoReply("lost after commit".into())),
                    Disposition::Refuse => Err(TransportError::Connect("refused".into())),
                };
                sent.push((b.request.clone(), reply.as_ref().map_or(0, |r| r.status)));
                w.on_reply(ts(now_ms), store, b.seq, reply).expect("reply");
            }
            Poll::WaitUntil(t) => now_ms = t.as_millisecond().max(now_ms + 1),
            Poll::Idle => break,
        }
    }
    (now_ms, sent)
}

fn states(store: &SimStore) -> Vec<OutboxState> {
    store.entries().into_iter().map(|e| e.state).collect()
}

fn confirmed(store: &SimStore) -> usize {
    states(store).iter().filter(|s| matches!(s, OutboxState::Confirmed { .. })).count()
}

#[test]
fn lightspeed_sale_is_completed_balanced_string_typed_and_referenced() {
    let vault = Vault::default();
    let mut fake = ls_fake(|_| {});
    let store = SimStore::default();
    let s = sale(T0, 1, None);
    commit(&store, Remote::Lightspeed, s.clone());
    let mut w = Worker::new(
        Remote::Lightspeed,
        Box::new(LightspeedConnector::new(ls_map(), ls_auth(&vault), Arc::new(|_| None), None)),
        policy(),
        1,
    );
    let (_, sent) = drive(&mut w, &store, T0, T0 + 60_000, |t, r| fake.handle(t, r));
    assert_eq!(confirmed(&store), 1, "{:?}", states(&store));
    // First the token (form-encoded), then the sale.
    assert_eq!(sent[0].0.path, "/auth/oauth/token");
    assert_eq!(sent[0].0.header("content-type"), Some("application/x-www-form-urlencoded"));
    let body: Value = serde_json::from_slice(&sent[1].0.body).expect("json");
    assert_eq!(body["completed"], true);
    assert_eq!(body["referenceNumber"], s.id.to_string());
    assert_eq!(body["referenceNumberSource"], "edge");
    assert_eq!(body["SalePayments"]["SalePayment"][0]["remoteReference"], format!("{}-1", s.id));
    let kept = fake.sales().values().next().expect("kept");
    assert_eq!(kept.total_minor, s.total_minor);
    assert_eq!(kept.change_minor, 500, "cash overpaid: the rest is change");
    // The tokens were saved before use.
    assert_eq!(vault.lock().expect("vault").len(), 1);
    // The answer is string-typed and a relation of one is an object.
    let one = fake.handle(
        ts(T0 + 61_000),
        &HttpRequest {
            method: Method::Get,
            path: format!("/API/V3/Account/12345/Sale/{}.json", kept.sale_id),
            headers: vec![("Authorization".into(), format!("Bearer {}", vault.lock().expect("v")[0].access))],
            body: vec![],
        },
    );
    let Disposition::Reply(r) = one else { panic!("no reply") };
    let v: Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(v["@attributes"]["count"], "1");
    assert!(v["Sale"]["saleID"].is_string() && v["Sale"]["completed"] == "true", "{v}");
    assert!(v["Sale"]["SalePayments"]["SalePayment"].is_object(), "one payment is an object: {v}");
    assert!(v["Sale"]["SaleLines"]["SaleLine"].is_array(), "two lines are an array: {v}");
}

fn auth_header(fake_token: &str) -> Vec<(String, String)> {
    vec![("Authorization".into(), format!("Bearer {fake_token}"))]
}

fn refresh(fake: &mut FakeLightspeed, rt: &str, json_body: bool, at: i64) -> HttpResponse {
    let (ct, body) = if json_body {
        ("application/json", json!({"grant_type": "refresh_token", "refresh_token": rt, "client_id": "demo-client", "client_secret": "demo-secret"}).to_string())
    } else {
        (
            "application/x-www-form-urlencoded",
            edge_sync::lightspeed::oauth::refresh_form("demo-client", "demo-secret", rt),
        )
    };
    let req = HttpRequest {
        method: Method::Post,
        path: "/auth/oauth/token".into(),
        headers: vec![("Content-Type".into(), ct.into())],
        body: body.into_bytes(),
    };
    match fake.handle(ts(at), &req) {
        Disposition::Reply(r) => r,
        other => panic!("{other:?}"),
    }
}

fn get(fake: &mut FakeLightspeed, path: &str, token: &str, at: i64) -> HttpResponse {
    match fake.handle(
        ts(at),
        &HttpRequest { method: Method::Get, path: path.into(), headers: auth_header(token), body: vec![] },
    ) {
        Disposition::Reply(r) => r,
        other => panic!("{other:?}"),
    }
}

#[test]
fn lightspeed_refresh_tokens_rotate_and_die_at_first_use_of_the_new_access_token() {
    let mut fake = ls_fake(|_| {});
    let r1 = refresh(&mut fake, "demo-refresh-token", false, T0);
    assert_eq!(r1.status, 200);
    let t1: Value = serde_json::from_slice(&r1.body).expect("json");
    // The same refresh token still works until the new access token is used (a lost answer).
    let r2 = refresh(&mut fake, "demo-refresh-token", true, T0 + 10);
    assert_eq!(r2.status, 200, "JSON refreshes are accepted too");
    let t2: Value = serde_json::from_slice(&r2.body).expect("json");
    let a2 = t2["access_token"].as_str().expect("access");
    assert_ne!(t1["refresh_token"], t2["refresh_token"], "a new refresh token every time");
    assert_eq!(get(&mut fake, "/API/V3/Account/12345/Sale.json", a2, T0 + 20).status, 200);
    // Used: the old refresh token is revoked.
    let dead = refresh(&mut fake, "demo-refresh-token", false, T0 + 30);
    assert_eq!(dead.status, 400);
    assert!(String::from_utf8_lossy(&dead.body).contains("invalid_grant"));
    // An unknown access token: 401 with the documented body.
    let r = get(&mut fake, "/API/V3/Account/12345/Sale.json", "nope", T0 + 40);
    assert_eq!(r.status, 401);
    let v: Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(
        (v["error"].as_str(), v["hint"].as_str()),
        (Some("access_denied"), Some("Access token could not be verified"))
    );
    // A wrong client secret: invalid_client.
    let bad = HttpRequest {
        method: Method::Post,
        path: "/auth/oauth/token".into(),
        headers: vec![],
        body: edge_sync::lightspeed::oauth::refresh_form(
            "demo-client",
            "wrong",
            t2["refresh_token"].as_str().expect("rt"),
        )
        .into_bytes(),
    };
    let Disposition::Reply(r) = fake.handle(ts(T0 + 50), &bad) else { panic!() };
    assert_eq!(r.status, 401);
    assert!(String::from_utf8_lossy(&r.body).contains("invalid_client"));
}

#[test]
fn lightspeed_expired_access_token_is_refreshed_once_and_the_sale_goes() {
    let vault = Vault::default();
    let mut fake = ls_fake(|c| c.access_lifetime_s = 120);
    let store = SimStore::default();
    let mut w = Worker::new(
        Remote::Lightspeed,
        Box::new(LightspeedConnector::new(ls_map(), ls_auth(&vault), Arc::new(|_| None), None)),
        policy(),
        1,
    );
    commit(&store, Remote::Lightspeed, sale(T0, 1, None));
    let (t, _) = drive(&mut w, &store, T0, T0 + 10_000, |t, r| fake.handle(t, r));
    // Ten minutes on: the access token expired; the next sale refreshes first.
    commit(&store, Remote::Lightspeed, sale(t + 600_000, 2, None));
    let (_, sent) = drive(&mut w, &store, t + 600_000, t + 700_000, |t, r| fake.handle(t, r));
    assert_eq!(confirmed(&store), 2);
    assert_eq!(sent.iter().filter(|(r, _)| r.path == "/auth/oauth/token").count(), 1, "{sent:?}");
    assert_eq!(fake.stats().refreshes, 2);
    assert_eq!(vault.lock().expect("v").len(), 2, "each new pair saved");
    // Credentials revoked: 401, the token is dropped, a refresh follows, nothing is lost.
    fake.set_faults(Faults { credentials_expired: true, ..Faults::healed() });
    commit(&store, Remote::Lightspeed, sale(t + 800_000, 3, None));
    let (t2, _) = drive(&mut w, &store, t + 800_000, t + 801_000, |t, r| fake.handle(t, r));
    fake.set_faults(Faults::healed());
    w.nudge(ts(t2));
    drive(&mut w, &store, t2, t2 + 120_000, |t, r| fake.handle(t, r));
    assert_eq!(confirmed(&store), 3, "{:?}", states(&store));
    assert_eq!(fake.sales().len(), 3);
}

#[test]
fn lightspeed_unknown_outcome_is_looked_up_before_any_repost() {
    let vault = Vault::default();
    let mut fake = ls_fake(|_| {});
    let store = SimStore::default();
    let mut w = Worker::new(
        Remote::Lightspeed,
        Box::new(LightspeedConnector::new(ls_map(), ls_auth(&vault), Arc::new(|_| None), None)),
        policy(),
        1,
    );
    fake.set_faults(Faults { lose_reply_after_commit_rate: 1.0, ..Faults::healed() });
    let s = sale(T0, 1, None);
    commit(&store, Remote::Lightspeed, s.clone());
    // The token answer comes through (only sales are "committed"), the sale's is lost.
    let (t, _) = drive(&mut w, &store, T0, T0 + 1_000, |t, r| fake.handle(t, r));
    assert_eq!(states(&store), vec![OutboxState::Unknown]);
    fake.set_faults(Faults::healed());
    let (_, sent) = drive(&mut w, &store, t, t + 60_000, |t, r| fake.handle(t, r));
    assert_eq!(confirmed(&store), 1);
    assert_eq!(fake.by_reference()[&s.id.to_string()].len(), 1, "kept once");
    let (first, _) = &sent[0];
    assert_eq!(first.method, Method::Get, "a look-up, not a second POST: {sent:?}");
    assert!(first.path.contains(&format!("referenceNumber={}", s.id)));
    // The look-up waited for a late request to land (unknown_wait_s = 10).
    assert!(sent.iter().all(|(r, _)| r.method != Method::Post));

    // Not there after an unknown outcome (a 503 before anything was kept): posted once.
    let s2 = sale(T0 + 100_000, 2, None);
    commit(&store, Remote::Lightspeed, s2.clone());
    fake.set_faults(Faults { error_rate: 1.0, error_status: 503, ..Faults::healed() });
    let (t, _) = drive(&mut w, &store, T0 + 100_000, T0 + 100_100, |t, r| fake.handle(t, r));
    fake.set_faults(Faults::healed());
    w.nudge(ts(t));
    let (_, sent) = drive(&mut w, &store, t, t + 60_000, |t, r| fake.handle(t, r));
    let kinds: Vec<Method> = sent.iter().map(|(r, _)| r.method).collect();
    assert_eq!(kinds, vec![Method::Get, Method::Post], "{sent:?}");
    assert_eq!(fake.by_reference()[&s2.id.to_string()].len(), 1);
}

#[test]
fn lightspeed_refuses_an_unbalanced_sale_and_a_refund_goes_as_negative_lines() {
    let mut fake = ls_fake(|_| {});
    let r = refresh(&mut fake, "demo-refresh-token", false, T0);
    let token =
        serde_json::from_slice::<Value>(&r.body).expect("json")["access_token"].as_str().expect("a").to_string();
    let post = |fake: &mut FakeLightspeed, body: Value, at: i64| match fake.handle(
        ts(at),
        &HttpRequest {
            method: Method::Post,
            path: "/API/V3/Account/12345/Sale.json".into(),
            headers: auth_header(&token),
            body: body.to_string().into_bytes(),
        },
    ) {
        Disposition::Reply(r) => r,
        other => panic!("{other:?}"),
    };
    let short = json!({"shopID": "1", "registerID": "1", "employeeID": "1", "completed": true,
        "SaleLines": {"SaleLine": {"itemID": "1", "unitQuantity": "2", "unitPrice": "5.00"}},
        "SalePayments": {"SalePayment": {"paymentTypeID": "2", "amount": "9.99"}}});
    let r = post(&mut fake, short, T0 + 10);
    assert_eq!(r.status, 422);
    assert!(r.header("content-type").unwrap_or("").starts_with("text/html"), "errors come as text/html");
    let msg = edge_sync::lightspeed::json::error_message(r.status, &r.body);
    assert!(msg.contains("do not balance"), "{msg}");
    // A card may not overpay (no change from a card).
    let card_over = json!({"shopID": 1, "registerID": 1, "employeeID": 1, "completed": true,
        "SaleLines": {"SaleLine": [{"itemID": 1, "unitQuantity": 1, "unitPrice": "5.00"}]},
        "SalePayments": {"SalePayment": [{"paymentTypeID": 2, "amount": "6.00"}]}});
    assert_eq!(post(&mut fake, card_over, T0 + 20).status, 422);
    // SalePayment is read-only.
    let Disposition::Reply(r) = fake.handle(
        ts(T0 + 30),
        &HttpRequest {
            method: Method::Post,
            path: "/API/V3/Account/12345/SalePayment.json".into(),
            headers: auth_header(&token),
            body: b"{}".to_vec(),
        },
    ) else {
        panic!()
    };
    assert_eq!(r.status, 405);

    // Through the connector: a sale and its refund, the refund with negative quantities.
    let vault = Vault::default();
    let store = SimStore::default();
    let s = sale(T0, 5, None);
    let refund = sale(T0 + 1000, 5, Some(&s));
    commit(&store, Remote::Lightspeed, s.clone());
    commit(&store, Remote::Lightspeed, refund.clone());
    let mut w = Worker::new(
        Remote::Lightspeed,
        Box::new(LightspeedConnector::new(ls_map(), ls_auth(&vault), Arc::new(|_| None), None)),
        policy(),
        2,
    );
    // A fresh account: the token above spent the demo refresh token.
    let mut fake = ls_fake(|_| {});
    drive(&mut w, &store, T0 + 2000, T0 + 60_000, |t, r| fake.handle(t, r));
    assert_eq!(confirmed(&store), 2, "{:?}", states(&store));
    let kept = fake.sales().values().find(|k| k.reference_number == refund.id.to_string()).expect("refund kept");
    assert_eq!(kept.total_minor, -refund.total_minor);
    assert!(kept.lines.iter().all(|(_, q, _)| *q < 0), "{:?}", kept.lines);
}

#[test]
fn lightspeed_bucket_one_overflow_then_429_and_the_paced_connector_gets_none() {
    // The fake's bucket: 90 under the 2026 rules; a completed 2-line, 1-payment sale costs
    // 2 + 3 + 1.5 = 6.5; thirteen fit (84.5), the fourteenth is the one overflow, then 429.
    let mut fake = ls_fake(|_| {});
    let r = refresh(&mut fake, "demo-refresh-token", false, T0);
    let token =
        serde_json::from_slice::<Value>(&r.body).expect("json")["access_token"].as_str().expect("a").to_string();
    let body = json!({"shopID": 1, "registerID": 1, "employeeID": 1, "completed": true,
        "SaleLines": {"SaleLine": [{"itemID": 1, "unitQuantity": 1, "unitPrice": "5.00"}, {"itemID": 2, "unitQuantity": 1, "unitPrice": "1.00"}]},
        "SalePayments": {"SalePayment": [{"paymentTypeID": 1, "amount": "6.00"}]}});
    let mut statuses = Vec::new();
    let mut last = None;
    for i in 0..20 {
        let Disposition::Reply(r) = fake.handle(
            ts(T0 + 100 + i * 60),
            &HttpRequest {
                method: Method::Post,
                path: "/API/V3/Account/12345/Sale.json".into(),
                headers: auth_header(&token),
                body: body.to_string().into_bytes(),
            },
        ) else {
            panic!()
        };
        statuses.push(r.status);
        last = Some(r);
    }
    let first_429 = statuses.iter().position(|s| *s == 429).expect("a 429");
    assert_eq!(first_429, 14, "the first one over 90 is served, then 429: {statuses:?}");
    let last = last.expect("reply");
    assert!(last.header("retry-after").is_some() && last.header("x-ls-api-ratelimit-type") == Some("api-leaky-bucket"));
    let (level, size) = bucket::parse_level(last.header("x-ls-api-bucket-level").expect("level")).expect("parse");
    assert!(level > size && size == 90_000, "{level}/{size}");

    // The connector reads the headers and waits: 60 sales, not one 429, under both rule sets.
    for rules in [Rules::Current, Rules::Legacy] {
        let vault = Vault::default();
        let mut fake = ls_fake(|c| c.rules = rules);
        let store = SimStore::default();
        for n in 0..60 {
            commit(&store, Remote::Lightspeed, sale(T0 + n as i64, n, None));
        }
        let mut map = ls_map();
        map.rate_rules = if rules == Rules::Legacy { "legacy".into() } else { "current".into() };
        let mut w = Worker::new(
            Remote::Lightspeed,
            Box::new(LightspeedConnector::new(map, ls_auth(&vault), Arc::new(|_| None), None)),
            policy(),
            3,
        );
        let (end, _) = drive(&mut w, &store, T0 + 100, T0 + 3_600_000, |t, r| fake.handle(t, r));
        assert_eq!(confirmed(&store), 60, "{rules:?}");
        assert_eq!(fake.stats().throttled, 0, "{rules:?}: 429s beyond the overflow");
        // And it went about as fast as the drip allows: achieved / ceiling.
        let (size, drip) = bucket::limits(rules, 1);
        let secs = (end - T0 - 100) as f64 / 1000.0;
        let ceiling = size as f64 + drip as f64 * secs;
        let ratio = fake.stats().served_cost_milli as f64 / ceiling;
        assert!(ratio > 0.8, "{rules:?}: drained at {ratio:.3} of the ceiling");
    }
}

#[test]
fn lightspeed_item_and_itemshop_cursors() {
    let mut fake = ls_fake(|_| {});
    let r = refresh(&mut fake, "demo-refresh-token", false, T0);
    let token =
        serde_json::from_slice::<Value>(&r.body).expect("json")["access_token"].as_str().expect("a").to_string();
    let mut path = "/API/V3/Account/12345/Item.json?limit=100".to_string();
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let r = get(&mut fake, &path, &token, T0 + pages * 1000);
        assert_eq!(r.status, 200);
        let v: Value = serde_json::from_slice(&r.body).expect("json");
        for it in v["Item"].as_array().expect("items") {
            ids.push(it["itemID"].as_str().expect("string id").parse::<u64>().expect("n"));
            assert!(it["customSku"].as_str().expect("sku").starts_with("SKU-"));
        }
        if pages == 0 {
            assert_eq!(v["@attributes"]["previous"], "", "no previous on page 1");
        }
        pages += 1;
        match edge_sync::lightspeed::json::next_page(&v) {
            Some(n) => path = n.trim_start_matches(BASE).to_string(),
            None => break,
        }
    }
    assert_eq!(ids, (1..=250).collect::<Vec<u64>>(), "every item once, in order");
    assert_eq!(pages, 3);
    assert_eq!(get(&mut fake, "/API/V3/Account/12345/Item.json?limit=101", &token, T0 + 9000).status, 400);
    assert_eq!(get(&mut fake, "/API/V3/Account/12345/Item.json?after=garbage", &token, T0 + 9100).status, 400);
    // ItemShop by timeStamp: a sale moves the shop's row and the shopID 0 summary row.
    let vault = Vault::default();
    let store = SimStore::default();
    let s = sale(T0 + 20_000, 1, None);
    commit(&store, Remote::Lightspeed, s.clone());
    let mut w = Worker::new(
        Remote::Lightspeed,
        Box::new(LightspeedConnector::new(ls_map(), ls_auth(&vault), Arc::new(|_| None), None)),
        policy(),
        1,
    );
    // The connector's refresh spends the refresh token this test's first token came from.
    let mut fresh = ls_fake(|_| {});
    let before = fresh.qoh(2, 1).expect("row");
    drive(&mut w, &store, T0 + 30_000, T0 + 90_000, |t, r| fresh.handle(t, r));
    let mut fake = fresh;
    let token = vault.lock().expect("v")[0].access.clone();
    let since = edge_sync::netsuite::tba::pct(">=,2020-01-01T00:00:00+00:00");
    let r = get(
        &mut fake,
        &format!("/API/V3/Account/12345/ItemShop.json?sort=timeStamp&timeStamp={since}"),
        &token,
        T0 + 100_000,
    );
    let v: Value = serde_json::from_slice(&r.body).expect("json");
    let rows = v["ItemShop"].as_array().expect("rows");
    assert!(rows.iter().any(|r| r["shopID"] == "0") && rows.iter().any(|r| r["shopID"] == "1"), "{v}");
    let sold: i64 = match s.lines[0].quantity {
        edge_sync::domain::Quantity::Units(u) => i64::from(u),
        _ => 0,
    };
    assert_eq!(fake.qoh(2, 1), Some(before - sold));
    assert_eq!(fake.qoh(2, 0), Some(before - sold), "the summary row moves too");
    // Rows of named items in one shop (the pull's second look at a settled sale's SKU).
    let ins = edge_sync::netsuite::tba::pct("IN,[2,3]");
    let r = get(&mut fake, &format!("/API/V3/Account/12345/ItemShop.json?shopID=1&itemID={ins}"), &token, T0 + 110_000);
    assert_eq!(r.status, 200);
    let v: Value = serde_json::from_slice(&r.body).expect("json");
    let mut got: Vec<(String, String)> = v["ItemShop"]
        .as_array()
        .expect("two rows")
        .iter()
        .map(|r| (r["itemID"].as_str().unwrap_or("").to_string(), r["shopID"].as_str().unwrap_or("").to_string()))
        .collect();
    got.sort();
    assert_eq!(got, vec![("2".into(), "1".into()), ("3".into(), "1".into())], "{v}");
    let many: Vec<String> = (1..=101).map(|i: u32| i.to_string()).collect();
    let ins = edge_sync::netsuite::tba::pct(&format!("IN,[{}]", many.join(",")));
    let r = get(&mut fake, &format!("/API/V3/Account/12345/ItemShop.json?itemID={ins}"), &token, T0 + 111_000);
    assert_eq!(r.status, 400, "IN takes at most 100 values");
}

#[test]
fn a_missing_mapping_is_a_dead_letter_naming_the_key() {
    let vault = Vault::default();
    let mut fake = ls_fake(|_| {});
    let store = SimStore::default();
    let mut map = ls_map();
    map.tenders.remove("cash");
    let mut w = Worker::new(
        Remote::Lightspeed,
        Box::new(LightspeedConnector::new(map, ls_auth(&vault), Arc::new(|_| None), None)),
        policy(),
        1,
    );
    commit(&store, Remote::Lightspeed, sale(T0, 1, None));
    drive(&mut w, &store, T0, T0 + 10_000, |t, r| fake.handle(t, r));
    match &states(&store)[0] {
        OutboxState::Rejected { reason } => assert!(reason.contains("mappings.lightspeed.tenders.cash"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let mut nmap = ns_map();
    nmap.tax_codes.remove("1900");
    nmap.tax_codes.remove("700");
    nmap.tax_codes.insert("1".into(), "1".into());
    let mut nfake = FakeNetSuite::new(NsFakeConfig::demo(BASE), 1);
    let nstore = SimStore::default();
    let mut nw = Worker::new(
        Remote::Netsuite,
        Box::new(NetSuiteConnector::new(nmap, NsAuth::Tba(demo_tba()), BASE, 1)),
        policy(),
        1,
    );
    commit(&nstore, Remote::Netsuite, sale(T0, 1, None));
    drive(&mut nw, &nstore, T0, T0 + 10_000, |t, r| nfake.handle(t, r, 1));
    match &states(&nstore)[0] {
        OutboxState::Rejected { reason } => assert!(reason.contains("mappings.netsuite.tax_codes."), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(nfake.stats().requests, 0, "nothing sent for it");
}

#[test]
fn netsuite_upserts_by_external_id_with_tba_and_the_business_date() {
    let mut fake = FakeNetSuite::new(NsFakeConfig::demo(BASE), 1);
    let store = SimStore::default();
    // 23:30 in Berlin on the 1st is 22:30 UTC: the business date is the 1st either way,
    // but 00:30 on the 2nd in Berlin is the 1st in UTC — tranDate must say the 2nd.
    let at = jiff::civil::date(2026, 12, 1)
        .at(23, 30, 0, 0)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .expect("z")
        .timestamp()
        .as_millisecond();
    let s = sale(at, 3, None);
    assert_eq!(s.business_date.to_string(), "2026-12-02");
    commit(&store, Remote::Netsuite, s.clone());
    let mut w = Worker::new(
        Remote::Netsuite,
        Box::new(NetSuiteConnector::new(ns_map(), NsAuth::Tba(demo_tba()), BASE, 9)),
        policy(),
        1,
    );
    fake.set_faults(Faults { lose_reply_after_commit_rate: 1.0, ..Faults::healed() });
    let (t, _) = drive(&mut w, &store, at, at + 100, |t, r| fake.handle(t, r, 1));
    fake.set_faults(Faults::healed());
    let (_, sent) = drive(&mut w, &store, t, t + 60_000, |t, r| fake.handle(t, r, 1));
    assert_eq!(confirmed(&store), 1);
    assert_eq!(sent[0].0.method, Method::Put);
    assert_eq!(sent[0].0.path, format!("/services/rest/record/v1/cashSale/eid:{}", s.id));
    assert_eq!(sent[0].1, 204);
    assert_eq!(fake.records().len(), 1, "a repeat upserts the same record");
    let rec = fake.records().values().next().expect("record");
    assert_eq!((rec.writes, rec.tran_date.as_str(), rec.total_minor), (2, "2026-12-02", s.total_minor));
    // The Location's id is the confirmed remote id.
    assert!(matches!(&states(&store)[0], OutboxState::Confirmed { remote_id } if *remote_id == rec.id.to_string()));
    // A POST with an existing external id is refused; a wrong realm is INVALID_LOGIN.
    let body = serde_json::to_vec(&json!({"externalId": s.id.to_string()})).expect("json");
    let url = format!("{BASE}/services/rest/record/v1/cashSale");
    let mut c = demo_tba();
    let h = edge_sync::netsuite::tba::authorization(&c, "POST", &url, "n0nce", 1).expect("sign");
    let req = HttpRequest {
        method: Method::Post,
        path: "/services/rest/record/v1/cashSale".into(),
        headers: vec![("Authorization".into(), h)],
        body,
    };
    let Disposition::Reply(r) = fake.handle(ts(at), &req, 1) else { panic!() };
    assert_eq!(r.status, 400);
    assert!(reason_of(&r).contains("DUP_RCRD at field externalId"), "{}", reason_of(&r));
    c.account = "123456_sb1".into();
    let h = edge_sync::netsuite::tba::authorization(
        &c,
        "GET",
        &format!("{BASE}/services/rest/record/v1/cashSale/eid:{}", s.id),
        "n",
        1,
    )
    .expect("sign");
    let h = h.replace("123456_SB1", "123456_sb1");
    let req = HttpRequest {
        method: Method::Get,
        path: format!("/services/rest/record/v1/cashSale/eid:{}", s.id),
        headers: vec![("Authorization".into(), h)],
        body: vec![],
    };
    let Disposition::Reply(r) = fake.handle(ts(at), &req, 1) else { panic!() };
    assert_eq!(r.status, 401);
    assert!(reason_of(&r).contains("INVALID_LOGIN"));
}

#[test]
fn netsuite_refusals_name_the_field_and_the_concurrency_cap_gives_429() {
    let mut cfg = NsFakeConfig::demo(BASE);
    cfg.catalog_size = 10;
    let mut fake = FakeNetSuite::new(cfg, 1);
    let store = SimStore::default();
    // Item 30 is beyond this account's ten items.
    let s = sale(T0, 30, None);
    commit(&store, Remote::Netsuite, s);
    let mut w = Worker::new(
        Remote::Netsuite,
        Box::new(NetSuiteConnector::new(ns_map(), NsAuth::Tba(demo_tba()), BASE, 9)),
        policy(),
        1,
    );
    drive(&mut w, &store, T0, T0 + 10_000, |t, r| fake.handle(t, r, 1));
    match &states(&store)[0] {
        OutboxState::Rejected { reason } => {
            assert!(reason.contains("INVALID_KEY_OR_REF at field item.items[0].item"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // Six at once where five are allowed: 429, retried later, nothing lost.
    let store = SimStore::default();
    commit(&store, Remote::Netsuite, sale(T0, 1, None));
    let mut w = Worker::new(
        Remote::Netsuite,
        Box::new(NetSuiteConnector::new(ns_map(), NsAuth::Tba(demo_tba()), BASE, 9)),
        policy(),
        1,
    );
    let mut busy = 6;
    let (_, sent) = drive(&mut w, &store, T0, T0 + 60_000, |t, r| {
        let d = fake.handle(t, r, busy);
        busy = 1;
        d
    });
    assert_eq!(sent[0].1, 429);
    assert_eq!(confirmed(&store), 1);
    assert_eq!(fake.stats().concurrency_refused, 1);
}

#[test]
fn netsuite_client_credentials_buy_a_token_with_a_signed_assertion() {
    let key = m2m::generate_pkcs8().expect("key");
    let m = m2m::M2m::new("client-1", "cert-1", &key).expect("m2m");
    let mut cfg = NsFakeConfig::demo(BASE);
    cfg.m2m = Some(("client-1".into(), "cert-1".into(), m.public_key()));
    let mut fake = FakeNetSuite::new(cfg, 1);
    let store = SimStore::default();
    commit(&store, Remote::Netsuite, sale(T0, 1, None));
    commit(&store, Remote::Netsuite, sale(T0 + 1, 2, None));
    let mut w =
        Worker::new(Remote::Netsuite, Box::new(NetSuiteConnector::new(ns_map(), NsAuth::M2m(m), BASE, 9)), policy(), 1);
    let (_, sent) = drive(&mut w, &store, T0, T0 + 60_000, |t, r| fake.handle(t, r, 1));
    assert_eq!(confirmed(&store), 2, "{:?}", states(&store));
    let tokens: Vec<&str> = sent.iter().map(|(r, _)| r.path.as_str()).filter(|p| p.ends_with("/token")).collect();
    assert_eq!(tokens.len(), 1, "one token for both: {sent:?}");
    assert!(sent.iter().skip(1).all(|(r, _)| r.header("authorization").is_some_and(|h| h.starts_with("Bearer "))));
    // A wrong key is refused, and the worker says why.
    let other = m2m::M2m::new("client-1", "cert-1", &m2m::generate_pkcs8().expect("key")).expect("m2m");
    let store = SimStore::default();
    commit(&store, Remote::Netsuite, sale(T0, 3, None));
    let mut w = Worker::new(
        Remote::Netsuite,
        Box::new(NetSuiteConnector::new(ns_map(), NsAuth::M2m(other), BASE, 9)),
        policy(),
        1,
    );
    drive(&mut w, &store, T0, T0 + 1_000, |t, r| fake.handle(t, r, 1));
    assert_eq!(states(&store), vec![OutboxState::Pending]);
    let h = w.health(ts(T0 + 1_000));
    assert!(h.last_error.clone().unwrap_or_default().contains("assertion"), "{h:?}");
}

#[test]
fn netsuite_suiteql_pages_by_limit_and_offset_with_has_more() {
    let mut fake = FakeNetSuite::new(NsFakeConfig::demo(BASE), 1);
    let q = |limit: usize, offset: usize| {
        let path = format!("/services/rest/query/v1/suiteql?limit={limit}&offset={offset}");
        let h = edge_sync::netsuite::tba::authorization(&demo_tba(), "POST", &format!("{BASE}{path}"), "abc", 1)
            .expect("sign");
        HttpRequest {
            method: Method::Post,
            path,
            headers: vec![("Authorization".into(), h), ("Prefer".into(), "transient".into())],
            body: br#"{"q": "SELECT id, externalid, itemid FROM item ORDER BY id"}"#.to_vec(),
        }
    };
    let mut seen = Vec::new();
    let mut offset = 0;
    loop {
        let Disposition::Reply(r) = fake.handle(ts(T0), &q(1000, offset), 1) else { panic!() };
        assert_eq!(r.status, 200);
        let v: Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(v["totalResults"], 2000);
        for it in v["items"].as_array().expect("items") {
            seen.push(it["externalid"].as_str().expect("eid").to_string());
        }
        if v["hasMore"] != true {
            break;
        }
        offset += 1000;
    }
    assert_eq!(seen.len(), 2000);
    seen.dedup();
    assert_eq!(seen.len(), 2000, "no duplicates across pages");
    let Disposition::Reply(r) = fake.handle(ts(T0), &q(1001, 0), 1) else { panic!() };
    assert_eq!(r.status, 400);
    assert!(reason_of(&r).contains("query parameter limit"), "{}", reason_of(&r));
}

/// A stock adjustment at NetSuite: an `inventoryAdjustment` upserted by `eid:` (its
/// `adjustQtyBy` is a delta, so a repeat after a lost reply must update, never add), booked
/// to the mapped account at the store's location; NetSuite's quantity on hand moves once.
/// Without an adjustment account it waits as a dead letter naming the key.
#[test]
fn netsuite_inventory_adjustment_is_upserted_by_external_id_and_moves_stock_once() {
    use edge_sync::domain::{AdjustReason, StockAdjustment};
    use edge_sync::store::{AdjustmentCommit, SledStore, Store, StoreConfig};
    let dir = tempfile::tempdir().expect("tmp");
    let store = SledStore::open(StoreConfig::new(dir.path())).expect("store");
    store.put_items(&[edge_sync::demo::demo_item(4), edge_sync::demo::demo_item(7)]).expect("items");
    let mut fake = FakeNetSuite::new(NsFakeConfig::demo(BASE), 3);
    let before = fake.quantity_on_hand("SKU-0000005", "1").expect("level");
    let at = T0;
    let adj = |sku: &str, delta: i64, by_weight: bool| StockAdjustment {
        id: edge_sync::domain::new_id(),
        store_id: "store-001".into(),
        sku: sku.into(),
        delta,
        by_weight,
        reason: AdjustReason::Count,
        note: "shelf count".into(),
        created_at: ts(at),
        business_date: jiff::civil::date(2026, 12, 2),
        request_id: "t".into(),
        actor: "manager".into(),
    };
    let commit = |a: &StockAdjustment| {
        store
            .commit_adjustment(AdjustmentCommit {
                adjustment: a.clone(),
                idempotency_key: None,
                fingerprint: a.id.to_string(),
                remotes: vec![Remote::Netsuite],
            })
            .expect("commit")
    };
    let a = adj("SKU-0000005", -3, false);
    commit(&a);
    let mut w = Worker::new(
        Remote::Netsuite,
        Box::new(NetSuiteConnector::new(ns_map(), NsAuth::Tba(demo_tba()), BASE, 9)),
        policy(),
        1,
    );
    fake.set_faults(Faults { lose_reply_after_commit_rate: 1.0, ..Faults::healed() });
    let (t, _) = drive(&mut w, &store, at, at + 100, |t, r| fake.handle(t, r, 1));
    fake.set_faults(Faults::healed());
    let (t, sent) = drive(&mut w, &store, t, t + 60_000, |t, r| fake.handle(t, r, 1));
    assert_eq!(sent[0].0.method, Method::Put);
    assert_eq!(sent[0].0.path, format!("/services/rest/record/v1/inventoryAdjustment/eid:{}", a.id));
    assert_eq!(sent[0].1, 204);
    let body: Value = serde_json::from_slice(&sent[0].0.body).expect("json");
    assert_eq!(body["inventory"]["items"][0]["adjustQtyBy"], json!(-3));
    assert_eq!(body["account"]["id"], json!("140"));
    assert_eq!((body["adjLocation"]["id"].as_str(), body["tranDate"].as_str()), (Some("1"), Some("2026-12-02")));
    assert_eq!(fake.records().len(), 1, "the repeat upserted the same record");
    let rec = fake.records().values().next().expect("record");
    assert_eq!((rec.record_type.as_str(), rec.writes), ("inventoryadjustment", 2));
    assert_eq!(rec.external_id.as_deref(), Some(a.id.to_string().as_str()));
    let after = fake.quantity_on_hand("SKU-0000005", "1").expect("level");
    let n = |s: &str| s.parse::<i64>().expect("whole units");
    assert_eq!(n(&after), n(&before) - 3, "adjusted once, not twice");
    let entries = store.outbox_entries_of(&a.id).expect("entries");
    assert!(matches!(&entries[0].state, OutboxState::Confirmed { remote_id } if *remote_id == rec.id.to_string()));

    // A weighed item goes in kilograms.
    let kg = adj("SKU-0000008", 1250, true);
    commit(&kg);
    let (t, sent) = drive(&mut w, &store, t, t + 60_000, |t, r| fake.handle(t, r, 1));
    let body: Value = serde_json::from_slice(&sent[0].0.body).expect("json");
    assert_eq!(body["inventory"]["items"][0]["adjustQtyBy"].to_string(), "1.25");

    // No account to book to: a dead letter that names the key; nothing sent.
    let mut w = Worker::new(
        Remote::Netsuite,
        Box::new(NetSuiteConnector::new(
            NetSuiteMap { adjustment_account: None, ..ns_map() },
            NsAuth::Tba(demo_tba()),
            BASE,
            9,
        )),
        policy(),
        1,
    );
    let b = adj("SKU-0000005", 5, false);
    commit(&b);
    let (_, sent) = drive(&mut w, &store, t, t + 10_000, |t, r| fake.handle(t, r, 1));
    assert!(sent.is_empty(), "{sent:?}");
    let e = &store.outbox_entries_of(&b.id).expect("entries")[0];
    assert!(
        matches!(&e.state, OutboxState::Dead { reason } | OutboxState::Rejected { reason }
            if reason.contains("mappings.netsuite.adjustment_account")),
        "{:?}",
        e.state
    );
}

// ---------------------------------------------------------------------------------------
// Shopify (Admin GraphQL 2026-04) against its fake.

use edge_sync::mapping::ShopifyMap;
use edge_sync::shopify::connector::{Shop, ShopifyConnector};
use edge_sync::shopify::fake::{DEMO_TOKEN, FakeShopify, ShopifyFakeConfig};

/// The demo shop with the first 40 demo SKUs pinned to the fake's variants.
fn shopify_map() -> ShopifyMap {
    let mut m = ShopifyMap { unknown_wait_s: 10, ..ShopifyMap::demo() };
    for i in 0..40 {
        let sku = edge_sync::demo::demo_item(i).sku;
        m.variants.insert(sku.clone(), format!("gid://shopify/ProductVariant/{}", i + 1));
        m.inventory_items.insert(sku, format!("gid://shopify/InventoryItem/{}", i + 1));
    }
    m
}

fn shopify_fake(f: impl FnOnce(&mut ShopifyFakeConfig)) -> FakeShopify {
    let mut c = ShopifyFakeConfig::demo(BASE);
    c.catalog_size = 250;
    f(&mut c);
    FakeShopify::new(c, 11)
}

fn shopify_worker(map: ShopifyMap, shop: &Arc<Shop>, keeps_stock: bool) -> Worker {
    Worker::new(
        Remote::Shopify,
        Box::new(ShopifyConnector::new(map, shop.clone(), DEMO_TOKEN, Arc::new(|_| None), keeps_stock)),
        policy(),
        3,
    )
}

fn gql_of(r: &HttpRequest) -> (String, Value) {
    let v: Value = serde_json::from_slice(&r.body).expect("json body");
    (v["query"].as_str().expect("query").to_string(), v["variables"].clone())
}

fn shopify_post(fake: &mut FakeShopify, at: i64, query: &str, variables: Value) -> Value {
    let req = HttpRequest {
        method: Method::Post,
        path: edge_sync::shopify::graphql_path(),
        headers: vec![("X-Shopify-Access-Token".into(), DEMO_TOKEN.into())],
        body: edge_sync::shopify::gql::body(query, variables),
    };
    match fake.handle(ts(at), &req) {
        Disposition::Reply(r) => serde_json::from_slice(&r.body).expect("json answer"),
        _ => panic!("no answer"),
    }
}

#[test]
fn shopify_order_carries_our_id_and_an_unknown_outcome_is_looked_up_before_any_repost() {
    let mut fake = shopify_fake(|_| {});
    let store = SimStore::default();
    let shop = Shop::new();
    let mut w = shopify_worker(shopify_map(), &shop, true);
    let mut s = sale(T0, 1, None);
    s.lane = Some("2".into());
    let level_before = fake.available(2).expect("variant 2");
    commit(&store, Remote::Shopify, s.clone());
    fake.set_faults(Faults { lose_reply_after_commit_rate: 1.0, ..Faults::healed() });
    let (t, sent) = drive(&mut w, &store, T0, T0 + 1_000, |t, r| fake.handle(t, r));
    assert_eq!(states(&store), vec![OutboxState::Unknown]);
    // What went: orderCreate at the pinned version with the token, our id, tag, lines by
    // variant with tax lines, the cash kept (handed over less change), the location.
    let (q, vars) = gql_of(&sent[0].0);
    assert_eq!(sent[0].0.path, "/admin/api/2026-04/graphql.json");
    assert!(sent[0].0.headers.iter().any(|(k, v)| k == "X-Shopify-Access-Token" && v == DEMO_TOKEN));
    assert!(q.starts_with("mutation OrderCreate"), "{q}");
    let o = &vars["order"];
    assert_eq!(o["sourceIdentifier"], json!(s.id.to_string()));
    assert_eq!(o["tags"], json!(["edge", "lane-2"]));
    assert_eq!(
        o["lineItems"][0]["variantId"].as_str().map(|v| v.starts_with("gid://shopify/ProductVariant/")),
        Some(true)
    );
    assert_eq!(o["lineItems"][0]["taxLines"][0]["title"].as_str().map(|t| t.starts_with("MwSt")), Some(true));
    assert_eq!(o["transactions"][0]["gateway"], json!("cash"));
    assert_eq!(
        o["transactions"][0]["amountSet"]["shopMoney"]["amount"],
        json!(edge_sync::shopify::decimal(s.total_minor, Currency::EUR))
    );
    assert_eq!(o["fulfillment"]["locationId"], json!("gid://shopify/Location/1"));
    assert_eq!(vars["options"]["inventoryBehaviour"], json!("DECREMENT_IGNORING_POLICY"));
    assert_eq!(fake.by_source()[&s.id.to_string()].len(), 1, "kept though the answer was lost");
    // Shopify keeps the stock here: variant 2 (demo item 1) went down by what was sold.
    let sold: i64 = s
        .lines
        .iter()
        .filter(|l| l.sku == edge_sync::demo::demo_item(1).sku)
        .map(|l| i64::from(l.quantity.amount()))
        .sum();
    assert!(sold > 0, "the sale has a line of demo item 1");
    assert_eq!(fake.available(2), Some(level_before - sold), "decremented once");

    fake.set_faults(Faults::healed());
    let (t, sent) = drive(&mut w, &store, t, t + 60_000, |t, r| fake.handle(t, r));
    assert_eq!(confirmed(&store), 1);
    assert_eq!(fake.by_source()[&s.id.to_string()].len(), 1, "kept once");
    let (q, vars) = gql_of(&sent[0].0);
    assert!(q.starts_with("query OrderBySource"), "a look-up, not a second orderCreate: {q}");
    assert_eq!(vars["q"], json!(format!("source_identifier:'{}'", s.id)));
    assert_eq!(sent.len(), 1);
    assert!(t > T0 + 10_000, "the look-up waited unknown_wait_s");
    let OutboxState::Confirmed { remote_id } = &states(&store)[0] else { panic!("confirmed") };
    assert!(remote_id.starts_with(&fake.by_source()[&s.id.to_string()][0]), "{remote_id}");

    // Not there after an unknown outcome (a 503 before anything was kept): posted once.
    let s2 = sale(T0 + 100_000, 2, None);
    commit(&store, Remote::Shopify, s2.clone());
    fake.set_faults(Faults { error_rate: 1.0, error_status: 503, ..Faults::healed() });
    let (t, _) = drive(&mut w, &store, T0 + 100_000, T0 + 100_100, |t, r| fake.handle(t, r));
    fake.set_faults(Faults::healed());
    w.nudge(ts(t));
    let (_, sent) = drive(&mut w, &store, t, t + 60_000, |t, r| fake.handle(t, r));
    let ops: Vec<String> =
        sent.iter().map(|(r, _)| gql_of(r).0.split_whitespace().take(2).collect::<Vec<_>>().join(" ")).collect();
    assert_eq!(ops, vec!["query OrderBySource($q:", "mutation OrderCreate($order:"], "{ops:?}");
    assert_eq!(fake.by_source()[&s2.id.to_string()].len(), 1);
}

#[test]
fn shopify_refund_is_idempotent_by_its_key_and_a_reused_key_with_other_input_is_refused() {
    let mut fake = shopify_fake(|_| {});
    let store = SimStore::default();
    let shop = Shop::new();
    let mut w = shopify_worker(shopify_map(), &shop, false);
    let s = sale(T0, 3, None);
    commit(&store, Remote::Shopify, s.clone());
    let (t, _) = drive(&mut w, &store, T0, T0 + 5_000, |t, r| fake.handle(t, r));
    assert_eq!(confirmed(&store), 1);
    let r = sale(T0 + 10_000, 3, Some(&s));
    commit(&store, Remote::Shopify, r.clone());
    // The order is read (its line items), then the refund's answer is lost after commit.
    fake.set_faults(Faults { lose_reply_after_commit_rate: 1.0, ..Faults::healed() });
    let (t, sent) = drive(&mut w, &store, t.max(T0 + 10_000), T0 + 11_000, |t, r| fake.handle(t, r));
    let ops: Vec<String> =
        sent.iter().map(|(r, _)| gql_of(r).0.split_whitespace().nth(1).unwrap_or("").to_string()).collect();
    assert_eq!(ops, vec!["OrderForRefund($q:", "RefundCreate($input:"], "{ops:?}");
    let (q, vars) = gql_of(&sent[1].0);
    assert!(q.contains("@idempotent(key: $key)"), "{q}");
    assert_eq!(vars["key"], json!(r.id.to_string()));
    assert_eq!(vars["input"]["refundLineItems"][0]["restockType"], json!("NO_RESTOCK"));
    assert_eq!(fake.refunds().len(), 1);
    fake.set_faults(Faults::healed());
    let (_, sent) = drive(&mut w, &store, t, t + 60_000, |t, r| fake.handle(t, r));
    assert!(
        sent.iter().all(|(r, _)| gql_of(r).0.contains("RefundCreate")),
        "sent again with its key, no look-up needed"
    );
    assert_eq!(confirmed(&store), 2);
    assert_eq!(fake.refunds().len(), 1, "one refund for two requests");
    assert_eq!(fake.stats().idempotent_replays, 1);
    assert_eq!(fake.refunds()[0].idempotency_key, r.id.to_string());
    // The same key with another input is an error, not a second refund.
    let (q, mut vars) = gql_of(&sent[0].0);
    vars["input"]["note"] = json!("something else");
    let a = shopify_post(&mut fake, T0 + 200_000, &q, vars);
    assert_eq!(a["errors"][0]["extensions"]["code"], json!("IDEMPOTENCY_KEY_PARAMETER_MISMATCH"), "{a}");
    assert_eq!(fake.refunds().len(), 1);
    // Without the directive (required from 2026-04): refused by name.
    let bare = q.replace(" @idempotent(key: $key)", "");
    let a = shopify_post(&mut fake, T0 + 200_000, &bare, gql_of(&sent[0].0).1);
    assert!(a["errors"][0]["message"].as_str().is_some_and(|m| m.contains("@idempotent")), "{a}");
}

#[test]
fn shopify_stock_adjustment_sends_an_explicit_null_compare_and_a_stale_compare_is_named() {
    use edge_sync::domain::{AdjustReason, StockAdjustment};
    let mut fake = shopify_fake(|_| {});
    let store = SimStore::default();
    let shop = Shop::new();
    let mut w = shopify_worker(shopify_map(), &shop, true);
    let sku = edge_sync::demo::demo_item(4).sku;
    let before = fake.available(5).expect("level");
    let a = StockAdjustment {
        id: edge_sync::domain::new_id(),
        store_id: "store-001".into(),
        sku: sku.clone(),
        delta: -2,
        by_weight: false,
        reason: AdjustReason::Damaged,
        note: String::new(),
        created_at: ts(T0),
        business_date: jiff::civil::date(2026, 12, 2),
        request_id: "t".into(),
        actor: "manager".into(),
    };
    let e = OutboxEntry {
        id: edge_sync::domain::new_id(),
        remote: Remote::Shopify,
        kind: RecordKind::Adjustment,
        record_id: a.id,
        state: OutboxState::Pending,
        attempts: 0,
        created_at: ts(T0),
        updated_at: ts(T0),
        request_id: "t".into(),
    };
    store.commit_adjustment(a.clone(), vec![e]);
    fake.set_faults(Faults { lose_reply_after_commit_rate: 1.0, ..Faults::healed() });
    let (t, sent) = drive(&mut w, &store, T0, T0 + 1_000, |t, r| fake.handle(t, r));
    let (q, vars) = gql_of(&sent[0].0);
    assert!(q.contains("inventoryAdjustQuantities(input: $input) @idempotent(key: $key)"), "{q}");
    let change = &vars["input"]["changes"][0];
    assert!(change.get("changeFromQuantity").is_some_and(Value::is_null), "explicitly null: {change}");
    assert_eq!(vars["input"]["reason"], json!("damaged"));
    assert_eq!(vars["input"]["name"], json!("available"));
    fake.set_faults(Faults::healed());
    drive(&mut w, &store, t, t + 60_000, |t, r| fake.handle(t, r));
    assert_eq!(confirmed(&store), 1);
    assert_eq!(fake.adjustments().len(), 1);
    assert_eq!(fake.available(5), Some(before - 2), "adjusted once for two requests");

    // A compare that went stale: refused with the field named (the reason a dead letter gets).
    let conn = ShopifyConnector::new(shopify_map(), shop.clone(), DEMO_TOKEN, Arc::new(|_| None), true);
    let b = StockAdjustment { id: edge_sync::domain::new_id(), delta: 5, ..a.clone() };
    let vars = conn.adjust_body(&b, Some(before)).expect("body");
    let ans = shopify_post(&mut fake, T0 + 100_000, edge_sync::shopify::connector::INVENTORY_ADJUST, vars);
    let errs = edge_sync::shopify::gql::user_errors(&ans["data"]["inventoryAdjustQuantities"]);
    assert_eq!(errs.len(), 1, "{ans}");
    assert!(
        errs[0].starts_with("input.changes.0.changeFromQuantity:") && errs[0].contains("CHANGE_FROM_QUANTITY_STALE"),
        "{errs:?}"
    );
    assert_eq!(fake.stats().stale_compares, 1);
    // The current quantity compares true.
    let vars = conn.adjust_body(&b, Some(before - 2)).expect("body");
    let ans = shopify_post(&mut fake, T0 + 100_000, edge_sync::shopify::connector::INVENTORY_ADJUST, vars);
    assert!(ans["data"]["inventoryAdjustQuantities"]["inventoryAdjustmentGroup"]["id"].is_string(), "{ans}");
    assert_eq!(fake.available(5), Some(before + 3));
    // Without changeFromQuantity at all (required from 2026-04): a userError naming it.
    let mut vars = conn.adjust_body(&StockAdjustment { id: edge_sync::domain::new_id(), ..b }, None).expect("body");
    vars["input"]["changes"][0].as_object_mut().expect("change").remove("changeFromQuantity");
    let ans = shopify_post(&mut fake, T0 + 100_000, edge_sync::shopify::connector::INVENTORY_ADJUST, vars);
    let errs = edge_sync::shopify::gql::user_errors(&ans["data"]["inventoryAdjustQuantities"]);
    assert!(errs.first().is_some_and(|e| e.contains("changeFromQuantity") && e.contains("2026-04")), "{errs:?}");
}

#[test]
fn shopify_throttling_at_an_empty_bucket_is_waited_out_and_the_paced_burst_is_never_throttled() {
    for status_429 in [false, true] {
        let mut fake = shopify_fake(|c| c.throttle_429 = status_429);
        let store = SimStore::default();
        let shop = Shop::new();
        let mut w = shopify_worker(shopify_map(), &shop, false);
        for i in 0..5 {
            commit(&store, Remote::Shopify, sale(T0 + i, 10 + i as u64, None));
        }
        // The bucket at zero when the first request comes (the pacer cannot know it).
        fake.drain_bucket(ts(T0));
        let (_, sent) = drive(&mut w, &store, T0, T0 + 60_000, |t, r| fake.handle(t, r));
        assert_eq!(confirmed(&store), 5, "429: {status_429}");
        assert_eq!(fake.stats().throttled, 1, "one throttle, then the pacer waited (429: {status_429}): {sent:?}");
        assert_eq!(fake.orders().len(), 5, "nothing done twice");
        assert!(sent.iter().any(|(_, st)| *st == if status_429 { 429 } else { 200 }));
    }
    // A burst of 250 orders from a full bucket: 2,000 points at 10 each, then 100/s.
    let mut fake = shopify_fake(|_| {});
    let store = SimStore::default();
    let shop = Shop::new();
    let mut w = shopify_worker(shopify_map(), &shop, false);
    for i in 0..250 {
        commit(&store, Remote::Shopify, sale(T0 + i, 100 + i as u64, None));
    }
    let (t, _) = drive(&mut w, &store, T0, T0 + 600_000, |t, r| fake.handle(t, r));
    assert_eq!(confirmed(&store), 250);
    assert_eq!(fake.stats().throttled, 0, "the pacer kept every request inside the bucket");
    // 2,500 points: 2,000 at once, 500 more at 100/s: about 5 s, not much more.
    assert!(t - T0 < 12_000, "took {} ms", t - T0);
}

#[test]
fn shopify_user_errors_and_a_missing_mapping_become_dead_letters_naming_the_field_then_replay_once() {
    let mut fake = shopify_fake(|_| {});
    let store = SimStore::default();
    let shop = Shop::new();
    // A SKU without a variant: not sent, the reason names the key.
    let s = sale(T0, 5, None);
    let sku = s.lines[0].sku.clone();
    let mut map = shopify_map();
    map.variants.remove(&sku);
    let mut w = shopify_worker(map, &shop, false);
    commit(&store, Remote::Shopify, s.clone());
    drive(&mut w, &store, T0, T0 + 10_000, |t, r| fake.handle(t, r));
    match &states(&store)[0] {
        OutboxState::Rejected { reason } => {
            assert!(reason.contains(&format!("mappings.shopify.variants.\"{sku}\"")), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.stats().requests, 0, "nothing sent for it");
    // The mapping added, the dead letter replayed: delivered once.
    let mut w = shopify_worker(shopify_map(), &shop, false);
    assert_eq!(store.replay_rejected(ts(T0 + 20_000)), 1);
    drive(&mut w, &store, T0 + 20_000, T0 + 40_000, |t, r| fake.handle(t, r));
    assert_eq!(confirmed(&store), 1);
    assert_eq!(fake.by_source()[&s.id.to_string()].len(), 1);

    // Shopify's userErrors: the field path is in the dead letter.
    let mut map = shopify_map();
    map.variants.insert(sku.clone(), "gid://shopify/ProductVariant/999999".into());
    let store = SimStore::default();
    let mut w = shopify_worker(map, &shop, false);
    let s = sale(T0 + 50_000, 5, None);
    commit(&store, Remote::Shopify, s.clone());
    drive(&mut w, &store, T0 + 50_000, T0 + 60_000, |t, r| fake.handle(t, r));
    match &states(&store)[0] {
        OutboxState::Rejected { reason } => {
            assert!(reason.contains("order.lineItems.0.variantId: Variant not found (NOT_FOUND)"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(!fake.by_source().contains_key(&s.id.to_string()));
    // An unknown field or root is refused loudly by the fake, naming it.
    let a = shopify_post(&mut fake, T0, "query { orders(first: 1) { nodes { id price } } }", json!({}));
    assert!(a["errors"][0]["message"].as_str().is_some_and(|m| m.contains("Field 'price' doesn't exist")), "{a}");
    let a = shopify_post(&mut fake, T0, "query { draftOrders(first: 1) { nodes { id } } }", json!({}));
    assert!(a["errors"][0]["message"].as_str().is_some_and(|m| m.contains("draftOrders")), "{a}");
    assert!(a["extensions"]["cost"]["throttleStatus"]["maximumAvailable"].as_f64() == Some(2000.0), "{a}");
}

#[test]
fn shopify_development_store_takes_five_orders_a_minute() {
    let mut fake = shopify_fake(|c| c.dev_store = true);
    let store = SimStore::default();
    let shop = Shop::new();
    let mut w = shopify_worker(shopify_map(), &shop, false);
    for i in 0..7 {
        commit(&store, Remote::Shopify, sale(T0 + i, 200 + i as u64, None));
    }
    let (_, sent) = drive(&mut w, &store, T0, T0 + 10_000, |t, r| fake.handle(t, r));
    assert_eq!(confirmed(&store), 5, "five in the first minute");
    assert!(sent.iter().any(|(_, st)| *st == 429));
    let (_, _) = drive(&mut w, &store, T0 + 10_000, T0 + 180_000, |t, r| fake.handle(t, r));
    assert_eq!(confirmed(&store), 7, "the rest after the minute (Retry-After)");
    assert_eq!(fake.orders().len(), 7);
    assert_eq!(fake.stats().dev_store_limited, 1);
}
