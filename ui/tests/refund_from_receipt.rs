//! A refund started from the receipt against a real `edged demo`: the receipt's barcode is
//! scanned on the refunds screen, two of its three lines are picked (one piece each), the
//! amount is shown before the manager confirms, and the money goes back the way it was paid
//! (cash). The daemon records a refund of exactly those lines.

mod support;

use edge_kiosk::{Mode, ReportsAdapter, Screen, Session};
use slint::{ComponentHandle, Model};
use support::*;

#[test]
fn a_refund_starts_from_the_scanned_receipt_and_gives_back_two_of_three_lines_in_cash() {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let mut demo = Demo::start();
    let ui = kiosk(&demo, Mode::Staff);
    let units: Vec<_> = (0..300)
        .map(demo_item)
        .filter(|it| it.kind == edge_sync::domain::ItemKind::Unit && !it.age_restricted)
        .take(3)
        .collect();
    let ui2 = ui.clone_strong();
    run_flow(async move {
        let ui = ui2;
        let s = ui.global::<Session>();
        staff_login(&ui, "1111").await;
        // A sale of three lines, two pieces each, paid in cash.
        let body = serde_json::json!({
            "lines": units.iter().map(|u| serde_json::json!({"sku": u.sku, "qty": 2})).collect::<Vec<_>>(),
            "tenders": [{"type": "cash", "amount_minor": 1_000_000}]
        });
        let sale: serde_json::Value = reqwest::blocking::Client::new()
            .post(format!("{}/v1/sales", demo.url))
            .bearer_auth(&demo.tokens.cashier)
            .json(&body)
            .send()
            .expect("sale")
            .json()
            .expect("json");
        let receipt_no = sale["receipt_no"].as_str().expect("receipt number").to_string();

        s.invoke_go(Screen::Refunds);
        let r = ui.global::<ReportsAdapter>();
        // The receipt's barcode, scanned.
        demo.scan(&receipt_no);
        wait_for("the sale opened", 10, || !r.get_open_id().is_empty()).await;
        assert_eq!(r.get_open_receipt().as_str(), receipt_no);
        assert_eq!(r.get_open_tender().as_str(), "cash", "back the way it was paid");
        assert_eq!(r.get_open_lines().row_count(), 3);
        assert!(!r.get_refund_ready(), "nothing chosen yet");
        // One piece of the first and of the second line.
        r.invoke_choose(0, 1);
        r.invoke_choose(1, 1);
        let gross = |i: usize| sale["lines"][i]["gross_minor"].as_i64().expect("gross");
        // One of two pieces: half the line, rounded half up as the daemon rounds it.
        let half = |g: i64| (2 * g + 2) / 4;
        let expected = half(gross(0)) + half(gross(1));
        let shown = edge_kiosk::cart::format_money(expected, "EUR", "en");
        assert_eq!(r.get_refund_amount().as_str(), shown, "the amount before confirming");
        click(&ui, "Damaged");
        click(&ui, &format!("Refund {shown} in cash"));
        assert!(exists(&ui, &format!("Receipt {receipt_no}. Reason: Damaged")), "the manager sees what is approved");
        enter_pin(&ui, "9999", "OK");
        wait_for("refunded", 10, || s.get_message_code() == "refunded").await;
        assert!(r.get_open_id().is_empty());

        // The daemon's record: one of each of the two lines, in cash.
        let after = demo.get(&format!("/v1/sales/{receipt_no}"), &demo.tokens.cashier);
        let refunded: Vec<i64> = (0..3).map(|i| after["lines"][i]["refunded"].as_i64().unwrap_or(0)).collect();
        assert_eq!(refunded, [1, 1, 0], "{after}");
        let sales = demo.get("/v1/sales?limit=10", &demo.tokens.cashier);
        let refund =
            sales["sales"].as_array().expect("sales").iter().find(|x| x["kind"] == "refund").expect("refund").clone();
        assert_eq!(refund["total_minor"].as_i64(), Some(expected), "{refund}");
        assert_eq!(refund["tenders"][0]["type"], "cash");
        assert_eq!(refund["reason"], "Damaged");
    });
}
