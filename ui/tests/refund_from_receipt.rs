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

/// No receipt: the sale is found by its day and what was paid. Going back a day shows
/// that day's sales (none in a fresh store); an amount that is not one is named.
#[test]
fn a_sale_without_its_receipt_is_found_by_day_and_amount() {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let demo = Demo::start();
    let ui = kiosk(&demo, Mode::Staff);
    let ui2 = ui.clone_strong();
    run_flow(async move {
        let ui = ui2;
        let s = ui.global::<Session>();
        staff_login(&ui, "1111").await;
        let sell = |qty: u32| -> serde_json::Value {
            reqwest::blocking::Client::new()
                .post(format!("{}/v1/sales", demo.url))
                .bearer_auth(&demo.tokens.cashier)
                .json(&serde_json::json!({"lines": [{"sku": "SKU-0000001", "qty": qty}],
                                          "tenders": [{"type": "cash", "amount_minor": 1_000_000}]}))
                .send()
                .expect("sale")
                .json()
                .expect("json")
        };
        let _one = sell(1);
        let three = sell(3);
        let _two = sell(2);
        s.invoke_go(Screen::Refunds);
        let r = ui.global::<ReportsAdapter>();
        // (The screen is made when it is first looked at, as a render would.)
        assert!(exists(&ui, "The day before"));
        wait_for("today's three sales", 10, || r.get_sales().row_count() == 3).await;
        assert!(r.get_sales_today());
        assert!(exists(&ui, &format!("Today, {}", r.get_sales_day())));

        // What the customer paid, as staff type it (German comma too).
        let paid = three["total_minor"].as_i64().expect("total");
        let typed = format!("{},{:02}", paid / 100, paid % 100);
        r.invoke_filter_amount(typed.as_str().into());
        wait_for("one sale of that amount", 10, || r.get_sales().row_count() == 1).await;
        let row = r.get_sales().row_data(0).expect("row");
        assert_eq!(row.short_id.as_str(), three["receipt_no"].as_str().expect("receipt no"));
        click(&ui, &format!("Open receipt {}", row.short_id));
        wait_for("the sale opened", 10, || !r.get_open_id().is_empty()).await;
        assert_eq!(r.get_open_id().as_str(), three["id"].as_str().expect("id"));
        r.invoke_close_sale();

        // Yesterday: nothing in a fresh store; the day after is today again.
        r.invoke_filter_amount("".into());
        click(&ui, "The day before");
        wait_for("yesterday, empty", 10, || !r.get_sales_today() && r.get_sales().row_count() == 0).await;
        assert!(exists(&ui, "No sales found."));
        click(&ui, "The day after");
        wait_for("today again", 10, || r.get_sales_today() && r.get_sales().row_count() == 3).await;
        // Not an amount: said so, the list kept.
        r.invoke_filter_amount("12,5x".into());
        assert!(r.get_sales_amount_bad());
        assert_eq!(r.get_sales().row_count(), 3);
    });
}
