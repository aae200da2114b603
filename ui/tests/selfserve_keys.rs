//! The whole self-serve flow by keys alone (EN 301 549: operable without the touch
//! screen), against a real `edged demo`: Enter starts, the arrows move between categories
//! and products (the focus shown and spoken), Enter adds, Down past the last product is
//! "Pay by card", Enter pays, Enter on the thanks screen starts again. Not one touch.

mod support;

use edge_kiosk::{CartAdapter, CatalogAdapter, Mode, Screen, SelfServeAdapter, Session};
use slint::platform::{Key, WindowEvent};
use slint::{ComponentHandle, Model, SharedString};
use support::*;

fn press(ui: &edge_kiosk::AppWindow, key: impl Into<SharedString> + Clone) {
    ui.window().dispatch_event(WindowEvent::KeyPressed { text: key.clone().into() });
    ui.window().dispatch_event(WindowEvent::KeyReleased { text: key.into() });
}

#[test]
fn the_whole_self_serve_flow_is_operable_by_keys_alone() {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let demo = Demo::start();
    let ui = kiosk(&demo, Mode::SelfServe);
    let ui2 = ui.clone_strong();
    run_flow(async move {
        let ui = ui2;
        let s = ui.global::<Session>();
        wait_for("the event stream", 60, || s.get_live()).await;
        press(&ui, Key::F2); // speech on, to hear what the keys are on
        press(&ui, Key::Return);
        assert_eq!(s.get_screen(), Screen::Shop);
        let cat = ui.global::<CatalogAdapter>();
        wait_for("the categories", 10, || cat.get_categories().row_count() > 0).await;
        // Right: the first category; its products come.
        press(&ui, Key::RightArrow);
        wait_for("a category's products", 10, || cat.get_results().row_count() > 0).await;
        let first_cat = cat.get_category().to_string();
        press(&ui, Key::RightArrow);
        wait_for("the next category", 10, || cat.get_category().as_str() != first_cat).await;
        press(&ui, Key::LeftArrow);
        wait_for("back to the first", 10, || cat.get_category().as_str() == first_cat).await;
        wait_for("its products", 10, || cat.get_results().row_count() > 0).await;
        // Find a product sold by the piece (weighed ones open the scale).
        let ss = ui.global::<SelfServeAdapter>();
        let results = cat.get_results();
        let at =
            (0..results.row_count()).find(|i| results.row_data(*i).is_some_and(|r| !r.weighed && !r.age_restricted));
        let at = at.expect("a product sold by the piece");
        assert_eq!(ss.get_focus(), 0, "a new category puts the keys on its first product");
        for _ in 0..at {
            press(&ui, Key::DownArrow);
        }
        assert_eq!(ss.get_focus(), at as i32);
        let item = results.row_data(at).expect("item");
        let said = edge_kiosk::with(|k, _| k.speech.borrow().spoken().to_vec()).unwrap_or_default();
        assert!(
            said.iter().any(|w| w.starts_with(&format!("{}, {}", item.name, item.price))),
            "the focus is spoken: {said:?}"
        );
        press(&ui, Key::Return);
        let c = ui.global::<CartAdapter>();
        wait_for("the product in the cart", 10, || c.get_count() == 1).await;
        // Down past the last product: "Pay by card"; Enter pays.
        for _ in 0..results.row_count() + 1 {
            press(&ui, Key::DownArrow);
        }
        assert_eq!(ss.get_focus(), results.row_count() as i32);
        press(&ui, Key::Return);
        wait_for("paid", 30, || s.get_screen() == Screen::Thanks).await;
        press(&ui, Key::Return);
        assert_eq!(s.get_screen(), Screen::Attract, "Enter on the thanks screen starts again");
    });
}
