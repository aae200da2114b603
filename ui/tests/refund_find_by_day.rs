//! A sale without its receipt, found on the refunds screen by its day and the amount paid,
//! against a real `edged demo`; and a refusal of the daemon said in the screen's language.
//! (One test per file: the testing backend is set up once per process.)

mod support;

use edge_kiosk::{Mode, ReportsAdapter, Screen, Session};
use slint::{ComponentHandle, Model};
use support::*;

#[test]
/// No receipt: the sale is found by its day and what was paid. Going back a day shows
/// that day's sales (none in a fresh store); an amount that is not one is named.
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

        // A receipt number no sale has: the daemon's refusal (unknown-sale), said in German.
        edge_kiosk::controllers::session::select_language_now(&ui, "de");
        r.invoke_find("1-999999".into());
        wait_for("the refusal", 10, || s.get_message_code() == "refused").await;
        assert_eq!(s.get_refusal().as_str(), "unknown-sale");
        assert_eq!(ui.get_message_shown().as_str(), "Kein Verkauf hat diese Belegnummer.");
    });
}
