//! What the screens ask of a real `edged demo` beyond selling: PIN login and its lockout,
//! manager-approved price overrides and discounts, voids, categories, the scale, receipt
//! copies, and customers' requests for staff.

mod common;

use common::Daemon;
use edge_api::{Problem, SaleOut};
use edge_sync::demo::demo_item;
use edge_sync::domain::ItemKind;
use reqwest::blocking::Client;
use serde_json::{Value, json};

fn unit_item() -> edge_sync::domain::Item {
    (0..200).map(demo_item).find(|i| i.kind == ItemKind::Unit && !i.age_restricted).expect("unit item")
}

#[test]
fn staff_pins_overrides_voids_and_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Daemon::start(dir.path(), 200);
    let c = Client::new();
    let login = |pin: &str| c.post(format!("{}/v1/login", d.url)).json(&json!({ "pin": pin })).send().expect("login");

    // A PIN names its member and hands out the role's token.
    let r = login("9999");
    assert_eq!(r.status().as_u16(), 200);
    let who: Value = r.json().expect("json");
    assert_eq!((who["name"].as_str(), who["role"].as_str()), (Some("Max"), Some("manager")));
    assert_eq!(who["token"].as_str(), Some(d.tokens.manager.as_str()));
    let me: Value = c
        .get(format!("{}/v1/whoami", d.url))
        .bearer_auth(who["token"].as_str().unwrap_or_default())
        .send()
        .expect("whoami")
        .json()
        .expect("json");
    assert_eq!(me["role"].as_str(), Some("manager"));
    let p: Problem = login("12").json().expect("problem");
    assert_eq!((p.status, p.field.as_deref()), (422, Some("pin")));

    // A discount without a manager's PIN is refused, naming the line's field; with a
    // cashier's PIN too; a manager's PIN prices it and is recorded.
    let it = unit_item();
    let body = json!({"lines": [{"sku": it.sku, "qty": 2, "discount_minor": 50}],
                      "tenders": [{"type": "cash", "amount_minor": 100_000}]});
    let sale = |pin: Option<&str>| {
        let mut r = c.post(format!("{}/v1/sales", d.url)).bearer_auth(&d.tokens.cashier).json(&body);
        if let Some(p) = pin {
            r = r.header("X-Manager-Pin", p);
        }
        r.send().expect("sale")
    };
    let p: Problem = sale(None).json().expect("problem");
    assert_eq!((p.status, p.field.as_deref()), (403, Some("lines[0].discount_minor")), "{p:?}");
    let p: Problem = sale(Some("1111")).json().expect("problem");
    assert_eq!((p.status, p.field.as_deref()), (403, Some("X-Manager-Pin")), "{p:?}");
    let r = sale(Some("9999"));
    assert_eq!(r.status().as_u16(), 201);
    let s: SaleOut = r.json().expect("sale");
    assert_eq!(s.total_minor, 2 * it.price_minor - 50);
    assert_eq!(s.lines[0].discount_minor, 50);
    assert_eq!(s.approved_by.as_deref(), Some("Max"));
    // An override below zero, and a discount above the line, are refused by name.
    let bad =
        json!({"lines": [{"sku": it.sku, "unit_price_minor": -1}], "tenders": [{"type": "cash", "amount_minor": 100}]});
    let p: Problem = c
        .post(format!("{}/v1/sales", d.url))
        .bearer_auth(&d.tokens.cashier)
        .header("X-Manager-Pin", "9999")
        .json(&bad)
        .send()
        .expect("sale")
        .json()
        .expect("problem");
    assert_eq!((p.status, p.field.as_deref()), (422, Some("lines[0].unit_price_minor")), "{p:?}");

    // A copy of the receipt: staff yes; a self-serve screen not for a cashier's sale.
    let reprint = |tok: &str| {
        c.post(format!("{}/v1/sales/{}/receipt", d.url, s.id))
            .bearer_auth(tok)
            .send()
            .expect("reprint")
            .status()
            .as_u16()
    };
    assert_eq!(reprint(&d.tokens.cashier), 202);
    assert_eq!(reprint(&d.tokens.kiosk), 403);

    // Voids are for managers.
    let void = |tok: &str| {
        c.post(format!("{}/v1/voids", d.url))
            .bearer_auth(tok)
            .json(&json!({"lines": 2, "total_minor": 500, "reason": "customer left"}))
            .send()
            .expect("void")
            .status()
            .as_u16()
    };
    assert_eq!(void(&d.tokens.cashier), 403);
    assert_eq!(void(&d.tokens.manager), 204);

    // Categories and browsing one.
    let cats: Value = c
        .get(format!("{}/v1/catalog/categories", d.url))
        .bearer_auth(&d.tokens.kiosk)
        .send()
        .expect("cats")
        .json()
        .expect("json");
    let dairy = cats["categories"].as_array().expect("list").iter().find(|c| c["name"] == "dairy").expect("dairy");
    assert!(dairy["items"].as_u64().unwrap_or(0) > 0);
    let page: Value = c
        .get(format!("{}/v1/catalog/items?q=category:dairy&limit=500", d.url))
        .bearer_auth(&d.tokens.kiosk)
        .send()
        .expect("browse")
        .json()
        .expect("json");
    let items = page["items"].as_array().expect("items");
    assert!(!items.is_empty() && items.iter().all(|i| i["category"] == "dairy"));

    // The demo scale.
    let w: Value = c
        .get(format!("{}/v1/scale", d.url))
        .bearer_auth(&d.tokens.cashier)
        .send()
        .expect("scale")
        .json()
        .expect("json");
    assert_eq!((w["grams"].as_i64(), w["stable"].as_bool()), (Some(350), Some(true)), "{w}");

    // Requests: an age check only for an age-restricted item; staff answer by PIN, once.
    let ask = |body: Value| c.post(format!("{}/v1/approvals", d.url)).bearer_auth(&d.tokens.kiosk).json(&body).send();
    let p: Problem = ask(json!({"kind": "age", "screen": "k1", "sku": it.sku})).expect("ask").json().expect("problem");
    assert_eq!((p.status, p.field.as_deref()), (422, Some("sku")));
    let wine = (0..200).map(demo_item).find(|i| i.age_restricted).expect("wine");
    let a: Value = ask(json!({"kind": "age", "screen": "k1", "sku": wine.sku})).expect("ask").json().expect("json");
    let id = a["id"].as_str().expect("id");
    let decide = |pin: &str, decision: &str| {
        c.post(format!("{}/v1/approvals/{id}/decision", d.url))
            .bearer_auth(&d.tokens.cashier)
            .json(&json!({"decision": decision, "pin": pin}))
            .send()
            .expect("decide")
            .status()
            .as_u16()
    };
    assert_eq!(decide("1111", "done"), 422, "help's answer does not fit an age check");
    assert_eq!(decide("4242", "approve"), 403, "a technician does not check ages");
    assert_eq!(decide("1111", "approve"), 200);
    assert_eq!(decide("9999", "refuse"), 409, "answered once");

    // The approved request is the self-serve sale's age check: recorded with who and when.
    let sell_wine = |token: &str, check: Value| {
        let body = json!({"lines": [{"sku": wine.sku, "qty": 1}], "tenders": [{"type": "cash", "amount_minor": 100_000}],
                          "age_check": check});
        let r = c.post(format!("{}/v1/sales", d.url)).bearer_auth(token).json(&body).send().expect("sale");
        (r.status().as_u16(), r.json::<Value>().expect("json"))
    };
    let (st, v) = sell_wine(&d.tokens.kiosk, json!({"method": "approval", "approval_id": id}));
    assert_eq!(st, 201, "{v}");
    let a = &v["age_check"];
    assert_eq!(
        (&a["method"], &a["verified_by"], &a["minimum_age"], &a["approval_id"]),
        (&json!("approval"), &json!("Anna"), &json!(18), &json!(id)),
        "{v}"
    );
    assert!(a["at"].as_str().is_some_and(|t| t.ends_with('Z')) && a["born_on_or_before"].as_str().is_some(), "{v}");
    // At the register: "born on or before …?" answered by the cashier.
    let (st, v) = sell_wine(
        &d.tokens.cashier,
        json!({"method": "dob", "born_on_or_before": "2000-01-01", "verified_by": "anna"}),
    );
    assert_eq!(
        (st, &v["age_check"]["born_on_or_before"], &v["age_check"]["verified_by"]),
        (201, &json!("2000-01-01"), &json!("Anna")),
        "{v}"
    );
    // What is wrong in a check is named; nothing is sold.
    for (check, field) in [
        (json!({"method": "dob", "born_on_or_before": "2000-01-01", "verified_by": "nobody"}), "age_check.verified_by"),
        (json!({"method": "dob", "verified_by": "anna"}), "age_check.born_on_or_before"),
        (
            json!({"method": "dob", "born_on_or_before": "2020-01-01", "verified_by": "anna"}),
            "age_check.born_on_or_before",
        ),
        (json!({"method": "glance"}), "age_check.method"),
        (json!({"method": "approval", "approval_id": "01900000-0000-7000-8000-000000000000"}), "age_check.approval_id"),
    ] {
        let (st, v) = sell_wine(&d.tokens.cashier, check.clone());
        assert_eq!((st, v["field"].as_str()), (422, Some(field)), "{check}: {v}");
    }
    // The kiosk cannot list requests (staff only).
    let st = c.get(format!("{}/v1/approvals", d.url)).bearer_auth(&d.tokens.kiosk).send().expect("list").status();
    assert_eq!(st.as_u16(), 403);

    // Five wrong PINs lock every login for a minute, even the right PIN.
    for _ in 0..5 {
        assert_eq!(login("0000").status().as_u16(), 401);
    }
    let r = login("1111");
    assert_eq!(r.status().as_u16(), 429);
    // PINs never reach the log.
    let log = std::fs::read_to_string(&d.log_path).unwrap_or_default();
    assert!(!log.contains("\"9999\"") && !log.contains("\"1111\"") && !log.contains("=9999"), "a PIN in the log");
}
