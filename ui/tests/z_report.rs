//! The Z report behind a manager and a confirmation, against a real `edged demo`: a
//! cashier's PIN is refused; a manager's PIN shows the day's figures and asks; Cancel
//! closes nothing; "Close the day" makes Z no. 1.

mod support;

use edge_kiosk::{Mode, ReportsAdapter, Screen, Session};
use slint::ComponentHandle;
use support::*;

#[test]
fn z_needs_a_manager_then_a_confirmation_showing_the_days_figures() {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let demo = Demo::start();
    let ui = kiosk(&demo, Mode::Staff);
    let ui2 = ui.clone_strong();
    run_flow(async move {
        let ui = ui2;
        let s = ui.global::<Session>();
        staff_login(&ui, "1111").await;
        let sale: serde_json::Value = reqwest::blocking::Client::new()
            .post(format!("{}/v1/sales", demo.url))
            .bearer_auth(&demo.tokens.cashier)
            .json(&serde_json::json!({"lines": [{"sku": "SKU-0000001", "qty": 2}],
                                      "tenders": [{"type": "cash", "amount_minor": 1_000_000}]}))
            .send()
            .expect("sale")
            .json()
            .expect("json");
        let total = edge_kiosk::cart::format_money(sale["total_minor"].as_i64().expect("total"), "EUR", "en");
        s.invoke_go(Screen::Reports);
        let r = ui.global::<ReportsAdapter>();

        // A cashier's PIN does not close the day.
        click(&ui, "Z report (close the day)");
        enter_pin(&ui, "1111", "OK");
        wait_for("refused", 10, || s.get_message_code() == "not-manager").await;
        assert!(!r.get_z_confirm());

        // A manager's PIN: the figures and the question; Cancel closes nothing.
        click(&ui, "Z report (close the day)");
        enter_pin(&ui, "9999", "OK");
        wait_for("the question", 10, || r.get_z_confirm()).await;
        assert!(exists(&ui, "Close the day with Z report no. 1?"));
        let figures = format!("Sales: 1. Total taken: {total}. Cash expected in the drawer: {total}.");
        assert!(exists(&ui, &figures), "{figures:?} not shown");
        assert_eq!(r.get_title().as_str(), "x", "the figures are an X report until confirmed");
        click(&ui, "Cancel");
        assert!(!r.get_z_confirm());
        let x = demo.get("/v1/reports/x", &demo.tokens.manager);
        assert_eq!(x["number"], 1, "no Z was made: {x}");

        // Again, confirmed: Z no. 1.
        click(&ui, "Z report (close the day)");
        enter_pin(&ui, "9999", "OK");
        wait_for("the question", 10, || r.get_z_confirm()).await;
        click(&ui, "Close the day");
        wait_for("Z no. 1", 20, || r.get_title() == "z").await;
        assert_eq!(r.get_number(), 1);
        assert!(exists(&ui, "Z report no. 1"));
        let x = demo.get("/v1/reports/x", &demo.tokens.manager);
        assert_eq!(x["number"], 2, "{x}");
    });
}
