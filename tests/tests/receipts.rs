//! Receipts end to end: the real `edged demo` (a German store, 48 columns) prints to a
//! printer simulator on loopback TCP. What the simulator rendered from the bytes equals
//! `GET /v1/sales/{id}/receipt` and holds every field a store hands out, for a cash sale
//! with a weighed item, a card sale, and a refund found by its receipt number; a reprint
//! is marked as a copy. (Both languages and both widths are covered in-process by
//! `checkout::receipt`'s tests, through the same simulator.)

mod common;

use common::Daemon;
use edge_drivers::escpos::sim::PrinterSim;
use edge_drivers::transport::{TcpLink, serve_peer};
use serde_json::{Value, json};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn has(text: &str, parts: &[&str]) {
    for p in parts {
        assert!(text.contains(p), "{p:?} missing from the receipt:\n{text}");
    }
}

#[test]
fn printed_receipts_hold_every_field_and_match_the_api_text() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let printer = Arc::new(Mutex::new(PrinterSim::new()));
    let p2 = printer.clone();
    let stop: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let mut link = TcpLink::from_stream(s);
            let _ = serve_peer(&mut link, p2.as_ref(), stop);
        }
    });
    let dir = tempfile::tempdir().expect("tmp");
    let d = Daemon::start_with(dir.path(), 100, &["--device", &format!("printer=tcp://127.0.0.1:{port}")]);
    let http = d.http();
    let job = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let jobs = printer.lock().expect("sim").jobs().to_vec();
            if jobs.len() >= n {
                return jobs[n - 1].text.clone();
            }
            assert!(Instant::now() < deadline, "receipt {n} not printed; edged log:\n{}", d.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let text_of = |id: &str| {
        let r =
            http.get(format!("{}/v1/sales/{id}/receipt", d.url)).bearer_auth(&d.tokens.cashier).send().expect("get");
        assert_eq!(r.status().as_u16(), 200);
        assert!(r.headers()["content-type"].to_str().unwrap_or("").starts_with("text/plain"), "{:?}", r.headers());
        let no = r.headers().get("receipt-number").map(|v| v.to_str().unwrap_or("").to_string());
        (no, r.text().expect("text"))
    };
    let post = |path: &str, token: &str, body: Value| {
        let r = http.post(format!("{}{path}", d.url)).bearer_auth(token).json(&body).send().expect("post");
        (r.status().as_u16(), r.json::<Value>().expect("json"))
    };
    let weighed = (0..100)
        .map(edge_sync::demo::demo_item)
        .find(|i| i.kind == edge_sync::domain::ItemKind::Weight)
        .expect("a weighed item");

    // A cash sale by Anna: two pieces and 0,350 kg.
    let (st, sale) = post(
        "/v1/sales",
        &d.tokens.cashier,
        json!({"lines": [{"sku": "SKU-0000001", "qty": 2}, {"sku": weighed.sku, "weight_g": 350}],
               "tenders": [{"type": "cash", "amount_minor": 100_000}], "cashier": "anna"}),
    );
    assert_eq!(st, 201, "{sale}");
    assert_eq!(
        (&sale["receipt_no"], &sale["lane"], &sale["cashier"]),
        (&json!("1-000001"), &json!("1"), &json!("Anna"))
    );
    let printed = job(1);
    let (no, text) = text_of(sale["id"].as_str().expect("id"));
    assert_eq!(no.as_deref(), Some("1-000001"));
    assert_eq!(text, printed, "the API's text is what the printer printed");
    assert_eq!(text_of("1-000001").1, printed, "found by its receipt number too");
    has(
        &printed,
        &[
            "Demo Store",
            "Hauptstraße 1",
            "10115 Berlin",
            "USt-IdNr. DE123456789",
            "Beleg 1-000001",
            "Kasse 1",
            "Bediener: Anna",
            "  2 x ",
            "  0,350 kg x ",
            " €/kg",
            "Zwischensumme",
            "SUMME",
            "Bar ",
            "Rückgeld",
            "MwSt",
            "Netto",
            "Steuer",
            "Brutto",
            "[BARCODE CODE128 1-000001]",
            "Umtausch binnen 30 Tagen mit Beleg",
        ],
    );
    // Date and time in the store's zone, German style: `Beleg 1-000001   DD.MM.YYYY HH:MM`.
    let head = printed.lines().find(|l| l.starts_with("Beleg 1-000001")).expect("head");
    let when: Vec<&str> = head.split_whitespace().skip(2).collect();
    assert!(
        when.len() == 2 && when[0].len() == 10 && &when[0][2..3] == "." && &when[0][5..6] == "." && when[1].len() == 5,
        "{head}"
    );
    for l in printed.lines().filter(|l| !l.starts_with("[BARCODE")) {
        assert!(l.chars().count() <= 48, "{l:?} is wider than the paper");
    }

    // A card sale: the slip's masked card number, auth code and terminal id.
    let (st, card) = post(
        "/v1/sales",
        &d.tokens.cashier,
        json!({"lines": [{"sku": "SKU-0000001", "qty": 1}], "tenders": [{"type": "card"}], "cashier": "anna"}),
    );
    assert_eq!(st, 201, "{card}");
    assert_eq!(card["receipt_no"], "1-000002");
    let printed = job(2);
    assert_eq!(text_of("1-000002").1, printed);
    has(&printed, &["Beleg 1-000002", "Karte", "******", "Genehmigung ", "Terminal 52500038"]);
    assert!(!printed.contains("Rückgeld"), "{printed}");

    // A refund of one of the two pieces, found by the receipt number on the paper.
    let (st, refund) = post(
        "/v1/sales/1-000001/refunds",
        &d.tokens.manager,
        json!({"lines": [{"line_no": 1, "qty": 1}], "tender": "cash", "reason": "defekt", "cashier": "max"}),
    );
    assert_eq!(st, 201, "{refund}");
    assert_eq!(
        (&refund["kind"], &refund["refund_of"], &refund["receipt_no"]),
        (&json!("refund"), &sale["id"], &json!("1-000003"))
    );
    let printed = job(3);
    assert_eq!(text_of("1-000003").1, printed);
    has(
        &printed,
        &[
            "Beleg 1-000003",
            "RÜCKGABE",
            "zu Beleg 1-000001 (",
            "Grund: defekt",
            "Bediener: Max",
            "ERSTATTET",
            "Bar zurück",
            "-",
        ],
    );

    // A reprint is a copy, marked at its top and bottom.
    let r = http
        .post(format!("{}/v1/sales/1-000001/receipt", d.url))
        .bearer_auth(&d.tokens.cashier)
        .send()
        .expect("reprint");
    assert_eq!(r.status().as_u16(), 202);
    let copy = job(4);
    assert_eq!(copy.matches("*** KOPIE ***").count(), 2, "{copy}");
    has(&copy, &["Beleg 1-000001", "Bediener: Anna"]);

    // What cannot be found or read is named.
    let r =
        http.get(format!("{}/v1/sales/1-000999/receipt", d.url)).bearer_auth(&d.tokens.cashier).send().expect("get");
    assert_eq!(r.status().as_u16(), 404);
    let r = http.get(format!("{}/v1/sales/not-a-number", d.url)).bearer_auth(&d.tokens.cashier).send().expect("get");
    assert_eq!(r.status().as_u16(), 422);
    assert_eq!(r.json::<Value>().expect("json")["field"], "id");
    let (st, v) = post(
        "/v1/sales",
        &d.tokens.cashier,
        json!({"lines": [{"sku": "SKU-0000001", "qty": 1}], "tenders": [{"type": "cash", "amount_minor": 100_000}], "cashier": "nobody"}),
    );
    assert_eq!((st, &v["field"]), (422, &json!("cashier")), "{v}");
}
