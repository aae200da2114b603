//! While the terminal takes a card, the rest of the register is locked: the header's
//! screens and Log out cannot be reached; the payment screen's Stop can.

mod support;

use edge_kiosk::{Mode, Screen, Session};
use slint::ComponentHandle;
use support::*;

#[test]
fn the_register_is_locked_while_the_terminal_works() {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let demo = Demo::start();
    let ui = kiosk(&demo, Mode::Staff);
    let ui2 = ui.clone_strong();
    run_flow(async move {
        let ui = ui2;
        let s = ui.global::<Session>();
        staff_login(&ui, "1111").await;
        let enabled = |label: &str| {
            find(&ui, label)
                .into_iter()
                .find(|e| e.accessible_role() == Some(i_slint_backend_testing::AccessibleRole::Button))
                .map(|e| e.accessible_enabled() != Some(false))
                .unwrap_or_else(|| panic!("no {label:?} button"))
        };
        assert!(enabled("Refunds") && enabled("Log out"));
        // A card payment under way.
        s.set_screen(Screen::PayCard);
        for b in ["Sell", "Refunds", "Reports", "Devices", "Log out"] {
            assert!(!enabled(b), "{b} must be locked during a card payment");
        }
        assert!(enabled("Stop payment"), "the way out stays");
        // Done: unlocked again.
        s.set_screen(Screen::Register);
        assert!(enabled("Refunds") && enabled("Log out"));
    });
}
