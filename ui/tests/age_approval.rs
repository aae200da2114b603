//! An age-restricted item at the self-serve screen waits for staff: the request reaches
//! the daemon (as a staff screen would see it), a cashier approves with their PIN and the
//! item joins the cart; a refusal keeps it out.

mod support;

use edge_kiosk::{CartAdapter, Mode, SelfServeAdapter, Session};
use slint::ComponentHandle;
use support::*;

#[test]
fn age_restricted_item_waits_for_staff() {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let mut demo = Demo::start();
    let ui = kiosk(&demo, Mode::SelfServe);
    let i = demo_index(|it| it.age_restricted && it.kind == edge_sync::domain::ItemKind::Unit);
    let name = demo_item(i).name;
    let ui2 = ui.clone_strong();
    run_flow(async move {
        let ui = ui2;
        let s = ui.global::<Session>();
        wait_for("the event stream", 60, || s.get_live()).await;
        demo.scan(&demo_ean(i));
        let ss = ui.global::<SelfServeAdapter>();
        wait_for("the age check", 10, || ss.get_age_check() == "waiting").await;
        assert!(exists(&ui, "Age check"));
        let c = ui.global::<CartAdapter>();
        assert_eq!(c.get_count(), 0, "the item waits outside the cart");
        // The customer cannot pay while waiting, but keeps scanning.
        let pay = find(&ui, "Pay by card");
        assert_eq!(pay.first().and_then(|e| e.accessible_enabled()), Some(false));
        let other = demo_index(|it| !it.age_restricted && it.kind == edge_sync::domain::ItemKind::Unit);
        demo.scan(&demo_ean(other));
        wait_for("the next scan in the cart while waiting", 10, || c.get_count() == 1).await;
        assert_eq!(ss.get_age_check(), "waiting");

        // Staff see the request and approve it.
        let pending = demo.get("/v1/approvals", &demo.tokens.cashier);
        let a = &pending["approvals"][0];
        assert_eq!((a["kind"].as_str(), a["item_name"].as_str()), (Some("age"), Some(name.as_str())), "{pending}");
        let url = format!("{}/v1/approvals/{}/decision", demo.url, a["id"].as_str().expect("id"));
        let status = reqwest::blocking::Client::new()
            .post(&url)
            .bearer_auth(&demo.tokens.cashier)
            .json(&serde_json::json!({"decision": "approve", "pin": "1111"}))
            .send()
            .expect("decide")
            .status();
        assert_eq!(status.as_u16(), 200);
        wait_for("the approval", 10, || ss.get_age_check().is_empty()).await;
        assert_eq!(c.get_count(), 2, "approved: the item is in the cart");
        assert_eq!(s.get_message_code(), "age-approved");

        // Again, refused this time: the cart keeps one.
        demo.scan(&demo_ean(i));
        wait_for("the second age check", 10, || ss.get_age_check() == "waiting").await;
        let pending = demo.get("/v1/approvals", &demo.tokens.manager);
        let id = pending["approvals"][0]["id"].as_str().expect("id").to_string();
        let status = reqwest::blocking::Client::new()
            .post(format!("{}/v1/approvals/{id}/decision", demo.url))
            .bearer_auth(&demo.tokens.manager)
            .json(&serde_json::json!({"decision": "refuse", "pin": "9999"}))
            .send()
            .expect("decide")
            .status();
        assert_eq!(status.as_u16(), 200);
        wait_for("the refusal", 10, || ss.get_age_check().is_empty()).await;
        assert_eq!(c.get_count(), 2);
        assert_eq!(s.get_message_code(), "age-refused");

        // Paid: the approved request is the sale's age check, with who approved it.
        click(&ui, "Pay by card");
        let p = ui.global::<edge_kiosk::PayAdapter>();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !matches!(s.get_screen(), edge_kiosk::Screen::Done | edge_kiosk::Screen::Thanks) {
            assert!(
                std::time::Instant::now() < until,
                "not paid: screen {:?}, error {:?}, message {:?} {:?}",
                s.get_screen(),
                p.get_error(),
                s.get_message_code(),
                s.get_message_arg()
            );
            sleep(std::time::Duration::from_millis(20)).await;
        }
        let id = ui.global::<edge_kiosk::PayAdapter>().get_sale_id().to_string();
        let sale = demo.get(&format!("/v1/sales/{id}"), &demo.tokens.cashier);
        let a = &sale["age_check"];
        assert_eq!((a["method"].as_str(), a["verified_by"].as_str()), (Some("approval"), Some("Anna")), "{sale}");
    });
}
