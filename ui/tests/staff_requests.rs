//! A staff screen hears customers' requests (an age check, a call for help) and answers
//! them with the staff member's PIN.

mod support;

use edge_kiosk::{Mode, StatusAdapter};
use slint::{ComponentHandle, Model};
use support::*;

#[test]
fn staff_screen_answers_requests() {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let demo = Demo::start();
    let ui = kiosk(&demo, Mode::Staff);
    let wine = demo_index(|it| it.age_restricted);
    let sku = demo_item(wine).sku;
    let ui2 = ui.clone_strong();
    run_flow(async move {
        let ui = ui2;
        staff_login(&ui, "1111").await;
        let ask = |body: serde_json::Value| -> String {
            let r: serde_json::Value = reqwest::blocking::Client::new()
                .post(format!("{}/v1/approvals", demo.url))
                .bearer_auth(&demo.tokens.kiosk)
                .json(&body)
                .send()
                .expect("ask")
                .json()
                .expect("json");
            r["id"].as_str().expect("id").to_string()
        };
        let st = ui.global::<StatusAdapter>();
        let help = ask(serde_json::json!({"kind": "help", "screen": "kiosk-7"}));
        wait_for("the call for help on the staff screen", 10, || st.get_approvals().row_count() == 1).await;
        assert!(exists(&ui, "kiosk-7: a customer asks for help (waiting 0 s)"), "the request is worded");
        click(&ui, "On my way");
        enter_pin(&ui, "1111", "OK");
        wait_for("the answered request gone", 10, || st.get_approvals().row_count() == 0).await;
        let a = demo.get(&format!("/v1/approvals/{help}"), &demo.tokens.cashier);
        assert_eq!((a["state"].as_str(), a["decided_by"].as_str()), (Some("done"), Some("Anna")), "{a}");

        let age = ask(serde_json::json!({"kind": "age", "screen": "kiosk-7", "sku": sku}));
        wait_for("the age check on the staff screen", 10, || st.get_approvals().row_count() == 1).await;
        click(&ui, "Approve age");
        // A wrong PIN: refused, the request stays.
        enter_pin(&ui, "0000", "OK");
        wait_for("the refusal", 10, || ui.global::<edge_kiosk::Session>().get_message_code() == "refused").await;
        assert_eq!(st.get_approvals().row_count(), 1);
        click(&ui, "Approve age");
        enter_pin(&ui, "9999", "OK");
        wait_for("the approved request gone", 10, || st.get_approvals().row_count() == 0).await;
        let a = demo.get(&format!("/v1/approvals/{age}"), &demo.tokens.cashier);
        assert_eq!((a["state"].as_str(), a["decided_by"].as_str()), (Some("approved"), Some("Max")), "{a}");
    });
}
