//! The register's age check against a real `edged demo`: an age-restricted scan stops the
//! sale (no payment) until staff answer "born on or before …?". No takes the item out; yes
//! lets the sale through, and the daemon records the check with who and when.

mod support;

use edge_kiosk::{CartAdapter, Mode, PayAdapter, Screen, Session};
use slint::ComponentHandle;
use support::*;

#[test]
fn the_register_stops_an_age_restricted_sale_until_the_age_check_is_answered() {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let mut demo = Demo::start();
    let ui = kiosk(&demo, Mode::Staff);
    let i = demo_index(|it| it.age_restricted && it.kind == edge_sync::domain::ItemKind::Unit);
    let ui2 = ui.clone_strong();
    run_flow(async move {
        let ui = ui2;
        let s = ui.global::<Session>();
        staff_login(&ui, "1111").await;
        wait_for("the event stream", 10, || s.get_live()).await;
        let c = ui.global::<CartAdapter>();

        // Scanned: the age check comes up, amber, and payment waits for it.
        demo.scan(&demo_ean(i));
        wait_for("the age check", 10, || !c.get_age_question().is_empty()).await;
        assert!(exists(&ui, "Age check"));
        let cutoff =
            demo.get(&format!("/v1/catalog/barcode/{}", demo_ean(i)), &demo.tokens.cashier)["born_on_or_before"]
                .as_str()
                .expect("the daemon's date")
                .to_string();
        assert_eq!(c.get_age_question().as_str(), edge_kiosk::cart::format_date(&cutoff, "en"));
        assert!(exists(&ui, &format!("Born on or before {}?", c.get_age_question())));
        for pay in ["Pay cash", "Pay by card"] {
            assert_eq!(find(&ui, pay).first().and_then(|e| e.accessible_enabled()), Some(false), "{pay} waits");
        }
        // No: the item leaves the cart, the sale goes on without it.
        click(&ui, "No: remove the item");
        assert_eq!(c.get_count(), 0);
        assert!(c.get_age_question().is_empty());
        assert_eq!(s.get_message_code(), "age-removed");

        // Again, and yes: the sale goes through with the check on it.
        demo.scan(&demo_ean(i));
        wait_for("the second age check", 10, || !c.get_age_question().is_empty()).await;
        click(&ui, "Yes");
        assert!(c.get_age_question().is_empty());
        assert_eq!(c.get_count(), 1);
        click(&ui, "Pay cash");
        click(&ui, "Exact");
        wait_for("the done screen", 20, || s.get_screen() == Screen::Done).await;
        let id = ui.global::<PayAdapter>().get_sale_id().to_string();
        let sale = demo.get(&format!("/v1/sales/{id}"), &demo.tokens.cashier);
        let a = &sale["age_check"];
        assert_eq!((a["method"].as_str(), a["verified_by"].as_str()), (Some("dob"), Some("Anna")), "{sale}");
        assert_eq!(a["born_on_or_before"].as_str(), Some(cutoff.as_str()), "{sale}");
        assert!(a["at"].as_str().is_some(), "{sale}");
        assert_eq!(sale["cashier"].as_str(), Some("Anna"), "{sale}");
        assert!(sale["receipt_no"].as_str().is_some_and(|n| n.starts_with("1-")), "{sale}");

        // The next cart asks again.
        click(&ui, "Next customer");
        demo.scan(&demo_ean(i));
        wait_for("the next cart's age check", 10, || !c.get_age_question().is_empty()).await;
    });
}
