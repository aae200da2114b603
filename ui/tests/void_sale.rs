//! Voiding a sale at the register against a real `edged demo`: a preset reason in one
//! touch, the manager's PIN, the cart emptied.

mod support;

use edge_kiosk::{CartAdapter, Mode, Session};
use slint::ComponentHandle;
use support::*;

#[test]
fn a_void_takes_a_preset_reason_and_a_managers_pin() {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let mut demo = Demo::start();
    let ui = kiosk(&demo, Mode::Staff);
    let i = demo_index(|it| it.kind == edge_sync::domain::ItemKind::Unit && !it.age_restricted);
    let ui2 = ui.clone_strong();
    run_flow(async move {
        let ui = ui2;
        let s = ui.global::<Session>();
        staff_login(&ui, "1111").await;
        wait_for("the event stream", 60, || s.get_live()).await;
        demo.scan(&demo_ean(i));
        let c = ui.global::<CartAdapter>();
        wait_for("the item in the cart", 10, || c.get_count() == 1).await;
        click(&ui, "Void sale");
        for r in ["Customer changed their mind", "Payment failed", "Wrong items scanned", "Test sale"] {
            assert!(exists(&ui, r), "preset {r:?} offered");
        }
        click(&ui, "Wrong items scanned");
        let field = find(&ui, "Reason")
            .into_iter()
            .find_map(|e| e.accessible_value())
            .map(|v| v.to_string())
            .unwrap_or_default();
        assert_eq!(field, "Wrong items scanned", "the preset fills the reason");
        enter_pin(&ui, "9999", "OK");
        wait_for("voided", 10, || s.get_message_code() == "voided").await;
        assert_eq!(c.get_count(), 0);
    });
}
