//! Finding a sale without its receipt: `GET /v1/sales?date=&total_minor=` against the real
//! `edged demo`, as the refunds screen asks it (the customer remembers the day and what
//! they paid).

mod common;

use common::Daemon;
use serde_json::{Value, json};

#[test]
fn sales_are_found_by_business_date_and_total() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = Daemon::start(dir.path(), 100);
    let http = d.http();
    let sell = |qty: u32| {
        let r = http
            .post(format!("{}/v1/sales", d.url))
            .bearer_auth(&d.tokens.cashier)
            .json(&json!({"lines": [{"sku": "SKU-0000001", "qty": qty}], "tenders": [{"type": "cash", "amount_minor": 1_000_000}]}))
            .send()
            .expect("post");
        assert_eq!(r.status().as_u16(), 201);
        r.json::<Value>().expect("json")
    };
    let a = sell(1);
    let b = sell(2);
    let c = sell(1);
    let get = |q: &str| {
        let r = http.get(format!("{}/v1/sales?{q}", d.url)).bearer_auth(&d.tokens.cashier).send().expect("get");
        (r.status().as_u16(), r.json::<Value>().expect("json"))
    };
    let ids = |v: &Value| -> Vec<String> {
        v["sales"].as_array().expect("sales").iter().map(|s| s["id"].as_str().unwrap_or("").to_string()).collect()
    };
    let today = a["business_date"].as_str().expect("business date").to_string();

    // By date: all three, in order; by date and total: the two single ones.
    let (st, all) = get(&format!("date={today}"));
    assert_eq!(st, 200, "{all}");
    assert_eq!(ids(&all), [&a["id"], &b["id"], &c["id"]].map(|v| v.as_str().unwrap_or("").to_string()));
    let (_, one) = get(&format!("date={today}&total_minor={}", a["total_minor"]));
    assert_eq!(ids(&one), [&a["id"], &c["id"]].map(|v| v.as_str().unwrap_or("").to_string()));
    // Paged: a limit of one gives a cursor that goes on to the next match.
    let (_, p1) = get(&format!("date={today}&total_minor={}&limit=1", a["total_minor"]));
    assert_eq!(ids(&p1), [a["id"].as_str().unwrap_or("")]);
    let cur = p1["next_cursor"].as_str().expect("cursor").to_string();
    let (_, p2) = get(&format!("date={today}&total_minor={}&limit=1&cursor={cur}", a["total_minor"]));
    assert_eq!(ids(&p2), [c["id"].as_str().unwrap_or("")]);
    // By total alone, and a day with no sales.
    let (_, two) = get(&format!("total_minor={}", b["total_minor"]));
    assert_eq!(ids(&two), [b["id"].as_str().unwrap_or("")]);
    let (_, none) = get("date=2020-01-01");
    assert_eq!(ids(&none), Vec::<String>::new());
    assert!(none["next_cursor"].is_null());
    // A bad date is named.
    let (st, bad) = get("date=yesterday");
    assert_eq!(st, 422);
    assert_eq!(bad["field"], json!("date"), "{bad}");
}
