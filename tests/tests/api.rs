//! The local API of a real `edged demo` process over loopback HTTP.

mod common;

use common::{Daemon, edgectl, edged};
use edge_api::{Problem, SaleOut, SalesPage, SyncStatus};
use edge_sync::demo::{demo_ean, demo_item};
use edge_sync::domain::ItemKind;
use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};

fn post(c: &Client, d: &Daemon, token: &str, body: &Value, key: Option<&str>) -> Response {
    let mut r = c.post(format!("{}/v1/sales", d.url)).bearer_auth(token).json(body);
    if let Some(k) = key {
        r = r.header("Idempotency-Key", k);
    }
    r.send().expect("send")
}

fn problem(r: Response) -> (StatusCode, Problem) {
    let status = r.status();
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert_eq!(ct, "application/problem+json", "status {status}");
    (status, r.json().expect("problem body"))
}

/// First demo item of a kind.
fn sku_of(kind: ItemKind) -> String {
    (0..200).map(demo_item).find(|i| i.kind == kind).expect("kind in catalog").sku
}

fn assert_nothing_stored(c: &Client, d: &Daemon) {
    let sales: SalesPage =
        c.get(format!("{}/v1/sales", d.url)).bearer_auth(&d.tokens.tech).send().expect("get").json().expect("json");
    assert!(sales.sales.is_empty(), "a refused sale left {} sales", sales.sales.len());
    let sync: SyncStatus =
        c.get(format!("{}/v1/sync", d.url)).bearer_auth(&d.tokens.tech).send().expect("get").json().expect("json");
    assert!(sync.remotes.iter().all(|r| r.pending == 0), "a refused sale left outbox entries");
}

#[test]
fn every_refusal_is_a_clear_4xx_naming_the_field_and_stores_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = Daemon::start(dir.path(), 200);
    let c = d.http();
    let cashier = d.tokens.cashier.clone();
    let unit = sku_of(ItemKind::Unit);
    let weight = sku_of(ItemKind::Weight);
    let lot = sku_of(ItemKind::Lot);
    let cash = json!([{"type": "cash", "amount_minor": 1_000_000}]);
    let cases: Vec<(&str, Value, u16, Option<&str>)> = vec![
        ("unknown sku", json!({"lines": [{"sku": "NOPE-1", "qty": 1}], "tenders": cash}), 422, Some("lines[0].sku")),
        ("zero qty", json!({"lines": [{"sku": unit, "qty": 0}], "tenders": cash}), 422, Some("lines[0].qty")),
        ("negative qty", json!({"lines": [{"sku": unit, "qty": -3}], "tenders": cash}), 422, Some("lines[0].qty")),
        ("huge qty", json!({"lines": [{"sku": unit, "qty": 10_000_000}], "tenders": cash}), 422, Some("lines[0].qty")),
        ("fractional qty", json!({"lines": [{"sku": unit, "qty": 1.5}], "tenders": cash}), 422, Some("lines[0].qty")),
        ("weight missing", json!({"lines": [{"sku": weight}], "tenders": cash}), 422, Some("lines[0].weight_g")),
        ("lot missing", json!({"lines": [{"sku": lot, "qty": 1}], "tenders": cash}), 422, Some("lines[0].lot")),
        (
            "lot expired",
            json!({"lines": [{"sku": lot, "qty": 1, "lot": "L1", "expiry": "2020-01-01"}], "tenders": cash}),
            422,
            Some("lines[0].expiry"),
        ),
        ("no lines", json!({"lines": [], "tenders": cash}), 422, Some("lines")),
        ("no tenders", json!({"lines": [{"sku": unit}], "tenders": []}), 422, Some("tenders")),
        (
            "short tender",
            json!({"lines": [{"sku": unit, "qty": 1}], "tenders": [{"type": "cash", "amount_minor": 1}]}),
            422,
            Some("tenders"),
        ),
        (
            "negative cash",
            json!({"lines": [{"sku": unit}], "tenders": [{"type": "cash", "amount_minor": -5}]}),
            422,
            Some("tenders[0].amount_minor"),
        ),
        (
            "negative card amount",
            json!({"lines": [{"sku": unit}], "tenders": [{"type": "card", "amount_minor": -5}]}),
            422,
            Some("tenders[0].amount_minor"),
        ),
        (
            "two card tenders",
            json!({"lines": [{"sku": unit}], "tenders": [{"type": "card", "amount_minor": 1}, {"type": "card"}]}),
            422,
            Some("tenders[1].type"),
        ),
        (
            "unknown tender",
            json!({"lines": [{"sku": unit}], "tenders": [{"type": "iou", "amount_minor": 5}]}),
            422,
            Some("tenders[0].type"),
        ),
        ("unknown field", json!({"lines": [{"sku": unit, "colour": "red"}], "tenders": cash}), 422, Some("lines[0]")),
        ("bad id", json!({"id": "not-a-uuid", "lines": [{"sku": unit}], "tenders": cash}), 422, Some("id")),
        ("missing lines", json!({"tenders": cash}), 422, Some("(body)")),
    ];
    for (name, body, status, field) in cases {
        let (st, p) = problem(post(&c, &d, &cashier, &body, None));
        assert_eq!(st.as_u16(), status, "{name}: {p:?}");
        assert_eq!(p.status, status, "{name}");
        if let Some(f) = field {
            let got = p.field.clone().unwrap_or_default();
            assert!(got.starts_with(f), "{name}: field {got:?}, expected {f:?} ({p:?})");
        }
        assert!(!p.detail.is_empty() && p.request_id.is_some(), "{name}: {p:?}");
    }

    // Malformed JSON: 400.
    let r = c
        .post(format!("{}/v1/sales", d.url))
        .bearer_auth(&cashier)
        .header("content-type", "application/json")
        .body("{\"lines\": [")
        .send()
        .expect("send");
    assert_eq!(problem(r).0, StatusCode::BAD_REQUEST);
    // Not JSON at all: 415.
    let r = c
        .post(format!("{}/v1/sales", d.url))
        .bearer_auth(&cashier)
        .header("content-type", "text/plain")
        .body("hi")
        .send()
        .expect("send");
    let (st, p) = problem(r);
    assert_eq!((st, p.field.as_deref()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("Content-Type")));
    // A huge body: 413, before any parsing.
    let big = "x".repeat(2 * 1024 * 1024);
    let body = json!({"lines": [{"sku": big}], "tenders": cash});
    let (st, p) = problem(post(&c, &d, &cashier, &body, None));
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{p:?}");
    // Too many lines: 422.
    let lines: Vec<Value> = (0..201).map(|_| json!({"sku": unit})).collect();
    let (st, p) = problem(post(&c, &d, &cashier, &json!({"lines": lines, "tenders": cash}), None));
    assert_eq!((st, p.field.as_deref()), (StatusCode::UNPROCESSABLE_ENTITY, Some("lines")));
    // A bad Idempotency-Key: 422 naming the header.
    let ok_body = json!({"lines": [{"sku": unit}], "tenders": cash});
    let (st, p) = problem(post(&c, &d, &cashier, &ok_body, Some(&"k".repeat(300))));
    assert_eq!((st, p.field.as_deref()), (StatusCode::UNPROCESSABLE_ENTITY, Some("Idempotency-Key")));

    // Missing token 401; unknown token 401; wrong role 403.
    let r = c.post(format!("{}/v1/sales", d.url)).json(&ok_body).send().expect("send");
    let (st, p) = problem(r);
    assert_eq!((st, p.field.as_deref()), (StatusCode::UNAUTHORIZED, Some("Authorization")));
    let (st, _) = problem(post(&c, &d, "not-a-token", &ok_body, None));
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    for wrong in [&d.tokens.tech, &d.tokens.manager] {
        let (st, p) = problem(post(&c, &d, wrong, &ok_body, None));
        assert_eq!(st, StatusCode::FORBIDDEN, "{p:?}");
    }
    let r = c.get(format!("{}/v1/sales", d.url)).bearer_auth(&d.tokens.kiosk).send().expect("send");
    assert_eq!(problem(r).0, StatusCode::FORBIDDEN);
    // Unknown paths and methods are problems too.
    let r = c.get(format!("{}/v1/nothing", d.url)).send().expect("send");
    assert_eq!(problem(r).0, StatusCode::NOT_FOUND);
    let r = c.delete(format!("{}/v1/sales", d.url)).send().expect("send");
    assert_eq!(problem(r).0, StatusCode::METHOD_NOT_ALLOWED);

    assert_nothing_stored(&c, &d);
}

#[test]
fn a_cash_sale_is_priced_durable_replayable_and_visible_everywhere() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = Daemon::start(dir.path(), 200);
    let c = d.http();
    let unit = sku_of(ItemKind::Unit);
    let weight = demo_item(7);
    assert_eq!(weight.kind, ItemKind::Weight);
    let body = json!({
        "lines": [{"sku": unit, "qty": 2}, {"sku": demo_ean(7), "weight_g": 350}],
        "tenders": [{"type": "cash", "amount_minor": 100_000}]
    });
    let r = post(&c, &d, &d.tokens.cashier, &body, Some("sale-1"));
    assert_eq!(r.status(), StatusCode::CREATED);
    let loc = r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let sale: SaleOut = r.json().expect("sale");
    assert_eq!(loc, format!("/v1/sales/{}", sale.id));
    assert_eq!(sale.id.get_version_num(), 7);
    assert_eq!(sale.status, "completed");
    assert_eq!(sale.currency, "EUR");
    assert_eq!(sale.lines.len(), 2);
    assert_eq!(sale.lines[1].weight_g, Some(350));
    assert_eq!(sale.lines[1].sku, weight.sku);
    let sum: i64 = sale.lines.iter().map(|l| l.gross_minor).sum();
    assert_eq!(sale.total_minor, sum);
    assert_eq!(sale.net_minor + sale.tax_minor, sale.total_minor);
    assert_eq!(sale.change_minor, 100_000 - sale.total_minor);

    // The same key: the same sale, no second one.
    let r = post(&c, &d, &d.tokens.cashier, &body, Some("sale-1"));
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers().get("idempotent-replayed").map(|v| v.as_bytes()), Some(&b"true"[..]));
    assert_eq!(r.json::<SaleOut>().expect("sale"), sale);
    // The same key with another body: 409.
    let other = json!({"lines": [{"sku": unit, "qty": 1}], "tenders": [{"type": "cash", "amount_minor": 100_000}]});
    let (st, p) = problem(post(&c, &d, &d.tokens.cashier, &other, Some("sale-1")));
    assert_eq!((st, p.field.as_deref()), (StatusCode::CONFLICT, Some("Idempotency-Key")));
    // A client-made id repeated: the same sale.
    let id = uuid::Uuid::now_v7();
    let with_id = json!({"id": id, "lines": [{"sku": unit}], "tenders": [{"type": "cash", "amount_minor": 100_000}]});
    let a: SaleOut = post(&c, &d, &d.tokens.kiosk, &with_id, None).json().expect("sale");
    let b: SaleOut = post(&c, &d, &d.tokens.kiosk, &with_id, None).json().expect("sale");
    assert_eq!((a.id, &a), (id, &b));

    let mut got: SaleOut = c
        .get(format!("{}/v1/sales/{}", d.url, sale.id))
        .bearer_auth(&d.tokens.cashier)
        .send()
        .expect("get")
        .json()
        .expect("sale");
    assert!(got.receipt.take().is_some(), "GET tells the receipt's state");
    assert_eq!(got, sale);
    let r =
        c.get(format!("{}/v1/sales/{}", d.url, uuid::Uuid::now_v7())).bearer_auth(&d.tokens.tech).send().expect("get");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // The demo's fakes take both sales: the cloud, Lightspeed, NetSuite and Shopify.
    let mut tries = 0;
    let sync = loop {
        let sync: SyncStatus =
            c.get(format!("{}/v1/sync", d.url)).bearer_auth(&d.tokens.kiosk).send().expect("get").json().expect("sync");
        if sync.remotes.iter().all(|r| r.confirmed == 2) || tries > 200 {
            break sync;
        }
        tries += 1;
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(sync.remotes.len(), 4);
    for r in &sync.remotes {
        assert_eq!((r.mode.as_str(), r.state.as_str(), r.pending, r.confirmed), ("live", "connected", 0, 2), "{r:?}");
        assert!(r.last_success_at.is_some());
    }
    // Outbox entries carry the request id of the sale's request.
    let entries: Value = c
        .get(format!("{}/v1/outbox?record={}", d.url, sale.id))
        .bearer_auth(&d.tokens.tech)
        .send()
        .expect("get")
        .json()
        .expect("json");
    let entries = entries["entries"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), 4);
    assert!(entries.iter().all(|e| !e["request_id"].as_str().unwrap_or("").is_empty()), "{entries:?}");
    for e in &entries {
        assert_eq!(e["state"], "confirmed", "{e:?}");
    }

    // Stock shown for selling went down by the sale.
    let item: Value = c
        .get(format!("{}/v1/catalog/barcode/{}", d.url, demo_ean(7)))
        .bearer_auth(&d.tokens.kiosk)
        .send()
        .expect("get")
        .json()
        .expect("json");
    assert_eq!(item["stock"].as_i64(), Some(edge_sync::demo::demo_stock(7) - 350));
    let r =
        c.get(format!("{}/v1/catalog/barcode/0000000000000", d.url)).bearer_auth(&d.tokens.kiosk).send().expect("get");
    assert_eq!(problem(r).0, StatusCode::NOT_FOUND);

    let metrics = c.get(format!("{}/metrics", d.url)).send().expect("get").text().expect("text");
    assert!(metrics.contains("edged_sales_committed_total 2"), "{metrics}");
    assert!(metrics.contains("edged_outbox_entries{remote=\"lightspeed\",state=\"confirmed\"} 2"), "{metrics}");
    assert!(metrics.contains("edged_outbox_entries{remote=\"cloud\",state=\"confirmed\"} 2"), "{metrics}");
    assert!(metrics.contains("edged_sync_state{remote=\"cloud\",state=\"connected\"} 1"), "{metrics}");
    let doc: Value = c.get(format!("{}/v1/openapi.json", d.url)).send().expect("get").json().expect("json");
    for p in ["/v1/sales", "/v1/catalog/items", "/v1/sync", "/v1/events", "/v1/health"] {
        assert!(doc["paths"][p].is_object(), "openapi lacks {p}");
    }
    assert!(doc["components"]["schemas"]["SaleIn"].is_object());
}

#[test]
fn one_idempotency_key_from_many_concurrent_clients_makes_one_sale() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = Daemon::start(dir.path(), 200);
    let unit = sku_of(ItemKind::Unit);
    let body = json!({"lines": [{"sku": unit, "qty": 3}], "tenders": [{"type": "cash", "amount_minor": 100_000}]});
    let ids: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let r = post(&d.http(), &d, &d.tokens.cashier, &body, Some("same-key"));
                    assert_eq!(r.status(), StatusCode::CREATED);
                    r.json::<SaleOut>().expect("sale").id
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("client")).collect()
    });
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    let sales: SalesPage = d
        .http()
        .get(format!("{}/v1/sales", d.url))
        .bearer_auth(&d.tokens.tech)
        .send()
        .expect("get")
        .json()
        .expect("json");
    assert_eq!(sales.sales.len(), 1);
}

#[test]
fn catalog_pages_and_search_over_the_api() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = Daemon::start(dir.path(), 300);
    let c = d.http();
    let mut cursor: Option<String> = None;
    let mut n = 0;
    loop {
        let mut url = format!("{}/v1/catalog/items?limit=100", d.url);
        if let Some(cur) = &cursor {
            url.push_str(&format!("&cursor={cur}"));
        }
        let page: Value = c.get(url).bearer_auth(&d.tokens.kiosk).send().expect("get").json().expect("json");
        let items = page["items"].as_array().cloned().unwrap_or_default();
        n += items.len();
        for it in &items {
            assert!(
                it["price_minor"].is_i64()
                    && it["currency"] == "EUR"
                    && it["barcodes"][0].as_str().map(str::len) == Some(13)
            );
        }
        match page["next_cursor"].as_str() {
            Some(cur) => cursor = Some(cur.to_string()),
            None => break,
        }
    }
    assert_eq!(n, 300);
    let page: Value = c
        .get(format!("{}/v1/catalog/items?q={}", d.url, demo_ean(41)))
        .bearer_auth(&d.tokens.kiosk)
        .send()
        .expect("get")
        .json()
        .expect("json");
    assert_eq!(page["items"][0]["sku"], demo_item(41).sku);
    let r = c.get(format!("{}/v1/catalog/items?limit=0", d.url)).bearer_auth(&d.tokens.kiosk).send().expect("get");
    let (st, p) = problem(r);
    assert_eq!((st, p.field.as_deref()), (StatusCode::UNPROCESSABLE_ENTITY, Some("limit")));
    let r = c.get(format!("{}/v1/catalog/items?colour=red", d.url)).bearer_auth(&d.tokens.kiosk).send().expect("get");
    assert_eq!(problem(r).0, StatusCode::UNPROCESSABLE_ENTITY);
}

#[test]
fn sale_completed_events_reach_websocket_clients() {
    use futures_util::{SinkExt, StreamExt};
    let dir = tempfile::tempdir().expect("tmp");
    let d = Daemon::start(dir.path(), 100);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    rt.block_on(async {
        let ws_url = format!("{}/v1/events?access_token={}", d.url.replace("http://", "ws://"), d.tokens.kiosk);
        let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.expect("ws connect");
        let first = ws.next().await.expect("msg").expect("ok");
        let v: Value = serde_json::from_str(first.to_text().expect("text")).expect("json");
        assert_eq!(v["type"], "sync.status");
        let unit = sku_of(ItemKind::Unit);
        let body = json!({"lines": [{"sku": unit}], "tenders": [{"type": "cash", "amount_minor": 100_000}]});
        let (url, token) = (d.url.clone(), d.tokens.cashier.clone());
        let sale: SaleOut = tokio::task::spawn_blocking(move || {
            reqwest::blocking::Client::new()
                .post(format!("{url}/v1/sales"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .expect("post")
                .json()
                .expect("sale")
        })
        .await
        .expect("join");
        let mut next_of = async |kind: &str| -> Value {
            loop {
                let msg = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
                    .await
                    .expect("event in time")
                    .expect("msg")
                    .expect("ok");
                let v: Value = serde_json::from_str(msg.to_text().expect("text")).expect("json");
                if v["type"] == kind {
                    return v;
                }
            }
        };
        let v = next_of("sale.completed").await;
        assert_eq!(v["sale_id"], sale.id.to_string());
        assert_eq!(v["total_minor"], sale.total_minor);
        // The delivery to the demo's fake cloud is announced as a sync.status change.
        loop {
            let v = next_of("sync.status").await;
            let cloud = v["remotes"].as_array().and_then(|a| a.iter().find(|r| r["name"] == "cloud").cloned());
            if cloud.is_some_and(|c| c["confirmed"] == 1 && c["pending"] == 0) {
                break;
            }
        }
        ws.close(None).await.expect("close");
        let _ = ws.send(tokio_tungstenite::tungstenite::Message::Close(None)).await;
    });
    // Without a token the stream is refused.
    let r = d.http().get(format!("{}/v1/events", d.url)).send().expect("get");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn sigterm_drains_exits_zero_and_a_restart_keeps_sales_and_tokens() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut d = Daemon::start(dir.path(), 100);
    let unit = sku_of(ItemKind::Unit);
    let body = json!({"lines": [{"sku": unit}], "tenders": [{"type": "cash", "amount_minor": 100_000}]});
    let sale: SaleOut = post(&d.http(), &d, &d.tokens.cashier, &body, Some("k")).json().expect("sale");
    let tokens = d.tokens.clone();
    assert_eq!(d.term(), Some(0), "{}", d.log());
    drop(d);
    let d = Daemon::start(dir.path(), 100);
    assert_eq!((d.tokens.cashier.as_str(), d.tokens.tech.as_str()), (tokens.cashier.as_str(), tokens.tech.as_str()));
    let mut got: SaleOut = d
        .http()
        .get(format!("{}/v1/sales/{}", d.url, sale.id))
        .bearer_auth(&d.tokens.tech)
        .send()
        .expect("get")
        .json()
        .expect("sale");
    assert_eq!(got.receipt.take().map(|r| r.state).as_deref(), Some("unknown"), "edged restarted since");
    assert_eq!(got, sale);
    let health: Value = d.http().get(format!("{}/v1/health", d.url)).send().expect("get").json().expect("json");
    assert_eq!((health["status"].as_str(), health["store"]["items"].as_u64()), (Some("ok"), Some(100)));
    let api: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("api.json")).expect("api.json")).expect("json");
    assert_eq!(api["url"], d.url);
}

#[test]
fn check_config_names_every_bad_key_and_exits_2() {
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[store]\nid = \"s1\"\ntimezone = \"Mars/Olympus\"\ncurrency = \"eur\"\n[api]\nlisten = \"nope\"\n[data]\ndir = \"d\"\n[remotes.cloud]\nmode = \"sometimes\"\n").expect("write");
    let out = std::process::Command::new(edged()).arg("check-config").arg(&bad).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    let keys: Vec<&str> = text.lines().filter_map(|l| l.split(':').next()).collect();
    assert_eq!(keys, vec!["store.timezone", "store.currency", "api.listen", "remotes.cloud.mode"], "{text}");

    let good = dir.path().join("good.toml");
    edge::demo::write_demo_secret(dir.path()).expect("secret");
    let urls = std::collections::BTreeMap::from([("cloud".to_string(), "http://127.0.0.1:9".to_string())]);
    std::fs::write(&good, edge::config::demo_toml(dir.path(), "127.0.0.1:7420", &urls)).expect("write");
    let out = std::process::Command::new(edged()).arg("check-config").arg(&good).output().expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let out =
        std::process::Command::new(edgectl()).args(["config", "check", "--json"]).arg(&bad).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(4));
    let out = std::process::Command::new(edged())
        .arg("check-config")
        .arg(dir.path().join("missing.toml"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn edgectl_reports_status_queue_and_sales_from_the_data_dir() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = Daemon::start(dir.path(), 100);
    let unit = sku_of(ItemKind::Unit);
    let body = json!({"lines": [{"sku": unit}], "tenders": [{"type": "cash", "amount_minor": 100_000}]});
    let sale: SaleOut = post(&d.http(), &d, &d.tokens.cashier, &body, None).json().expect("sale");
    let ctl = |args: &[&str]| {
        let out = std::process::Command::new(edgectl())
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .output()
            .expect("edgectl");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = ctl(&["status", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["health"]["store"]["sales"], 1);
    assert_eq!(v["sync"]["remotes"][1]["name"], "lightspeed");
    let lightspeed = &v["sync"]["remotes"][1];
    assert_eq!(
        lightspeed["pending"].as_u64().unwrap_or(9)
            + lightspeed["in_flight"].as_u64().unwrap_or(9)
            + lightspeed["confirmed"].as_u64().unwrap_or(9),
        1,
        "{lightspeed}"
    );
    let (code, out, _) = ctl(&["status"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("lightspeed") && out.contains("pending"), "{out}");
    let (code, out, _) = ctl(&["queue", "ls", "--remote", "netsuite", "--json"]);
    assert_eq!(code, Some(0));
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["entries"][0]["record_id"], sale.id.to_string());
    let entry = v["entries"][0]["id"].as_str().unwrap_or_default().to_string();
    let (code, out, _) = ctl(&["queue", "show", &entry]);
    assert_eq!(code, Some(0));
    assert!(out.contains("netsuite"), "{out}");
    let (code, out, _) = ctl(&["sales", "show", &sale.id.to_string()]);
    assert_eq!(code, Some(0));
    assert!(out.contains(&unit) && out.contains("EUR"), "{out}");
    let (code, _, err) = ctl(&["sales", "show", &uuid::Uuid::now_v7().to_string()]);
    assert_eq!(code, Some(1));
    assert!(err.contains("404"), "{err}");
    // With --api and --token instead of a data dir.
    let out = std::process::Command::new(edgectl())
        .args(["--api", &d.url, "--token", &d.tokens.tech, "status", "--json"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    // A daemon that is not there is reported as such.
    let out = std::process::Command::new(edgectl())
        .args(["--api", "http://127.0.0.1:9", "--token", "x", "status"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach edged"));
}

#[test]
fn a_store_from_a_newer_version_stops_the_daemon_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let mut d = Daemon::start(dir.path(), 10);
        assert_eq!(d.term(), Some(0));
    }
    {
        let db = sled::open(dir.path().join("store")).expect("sled");
        db.open_tree("meta").expect("meta").insert("format_version", &99u32.to_be_bytes()).expect("insert");
        db.flush().expect("flush");
    }
    let out = std::process::Command::new(edged())
        .args(["demo", "--no-ui", "--catalog-size", "10", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("newer") && err.contains("format 99"), "{err}");
}

#[test]
fn edged_run_serves_from_a_config_file_and_stops_on_sigterm() {
    use std::io::BufRead;
    edge_sync::tls::install_provider();
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let cfg = dir.path().join("edged.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\nid = \"s-9\"\ntimezone = \"America/New_York\"\ncurrency = \"USD\"\ntax_mode = \"exclusive\"\n\
             [data]\ndir = {:?}\n[api]\nlisten = \"127.0.0.1:0\"\n[remotes.cloud]\nmode = \"shadow\"\n\
             secret_file = \"cloud.key\"\n",
            data.display().to_string()
        ),
    )
    .expect("write config");
    std::fs::write(dir.path().join("cloud.key"), "k\n").expect("write secret");
    let mut child = std::process::Command::new(edged())
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read");
    let url = line.trim().strip_prefix("READY ").expect("READY line").to_string();
    let health: Value = reqwest::blocking::get(format!("{url}/v1/health")).expect("get").json().expect("json");
    assert_eq!(health["store_id"], "s-9");
    assert!(data.join("api.json").exists() && data.join("tokens.json").exists() && data.join("store").is_dir());
    let tokens: edge_api::TokensFile =
        serde_json::from_slice(&std::fs::read(data.join("tokens.json")).expect("tokens")).expect("json");
    let sync: SyncStatus = reqwest::blocking::Client::new()
        .get(format!("{url}/v1/sync"))
        .bearer_auth(&tokens.tech)
        .send()
        .expect("get")
        .json()
        .expect("json");
    let modes: Vec<(String, String)> = sync.remotes.iter().map(|r| (r.name.clone(), r.mode.clone())).collect();
    assert_eq!(
        modes,
        vec![
            ("cloud".into(), "shadow".into()),
            ("lightspeed".into(), "off".into()),
            ("netsuite".into(), "off".into()),
            ("shopify".into(), "off".into())
        ]
    );
    assert_eq!(sync.remotes[0].state, "shadow");
    std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert_eq!(child.wait().expect("wait").code(), Some(0));
}
