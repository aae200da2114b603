//! Produce by weight at the self-serve screen against a real `edged demo` and its scale
//! simulator (350 g, steady): the item opens the weighing panel with its price per kg, the
//! steady weight is shown and priced, Zero takes a bag's weight off (nothing to add then),
//! and the weighed item is added and paid; the daemon's sale has the weight.

mod support;

use edge_kiosk::{CartAdapter, Mode, Screen, SelfServeAdapter, Session};
use slint::ComponentHandle;
use support::*;

#[test]
fn a_weighed_item_is_sold_from_the_kiosks_scale() {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let demo = Demo::start();
    let ui = kiosk(&demo, Mode::SelfServe);
    let i = demo_index(|it| it.kind == edge_sync::domain::ItemKind::Weight);
    let item = demo_item(i);
    let ui2 = ui.clone_strong();
    run_flow(async move {
        let ui = ui2;
        let s = ui.global::<Session>();
        wait_for("the event stream", 60, || s.get_live()).await;
        ui.global::<SelfServeAdapter>().invoke_start();
        ui.global::<CartAdapter>().invoke_add_sku(item.sku.clone().into());
        let ss = ui.global::<SelfServeAdapter>();
        wait_for("the weighing panel", 10, || ss.get_weigh_item() == item.name.as_str()).await;
        assert_eq!(ss.get_weigh_per_kg().as_str(), edge_kiosk::cart::format_money(item.price_minor, "EUR", "en"));
        wait_for("a steady weight", 10, || ss.get_weigh_stable()).await;
        assert_eq!(ss.get_weigh_weight().as_str(), "0.350 kg");
        let amount = (item.price_minor * 350 * 2 + 1000) / 2000;
        assert_eq!(ss.get_weigh_amount().as_str(), edge_kiosk::cart::format_money(amount, "EUR", "en"));
        // Zero with the 350 g on it (as if it were a bag): nothing left to add.
        click(&ui, "Zero the scale");
        wait_for("zeroed", 5, || !ss.get_weigh_stable()).await;
        assert_eq!(ss.get_weigh_weight().as_str(), "0.000 kg");
        assert_eq!(find(&ui, "Add the weighed item").first().and_then(|e| e.accessible_enabled()), Some(false));
        click(&ui, "Cancel");
        assert!(ss.get_weigh_item().is_empty());
        // Again, weighed as it is, and added.
        ui.global::<CartAdapter>().invoke_add_sku(item.sku.clone().into());
        wait_for("the weighing panel again", 10, || !ss.get_weigh_item().is_empty()).await;
        wait_for("a steady weight", 10, || ss.get_weigh_stable()).await;
        click(&ui, "Add the weighed item");
        let c = ui.global::<CartAdapter>();
        wait_for("in the cart", 5, || c.get_count() == 1).await;
        ui.global::<SelfServeAdapter>().invoke_pay();
        wait_for("paid", 30, || s.get_screen() == Screen::Thanks).await;
        let id = ui.global::<edge_kiosk::PayAdapter>().get_sale_id().to_string();
        let sale = demo.get(&format!("/v1/sales/{id}"), &demo.tokens.cashier);
        assert_eq!(sale["lines"][0]["weight_g"].as_i64(), Some(350), "{sale}");
        assert_eq!(sale["total_minor"].as_i64(), Some(amount), "{sale}");
    });
}
