//! Item pictures on the self-serve screen against a real `edged demo`: the daemon keeps the
//! catalog's pictures (from the fake cloud) and the product tiles show each item's own
//! picture in place of its category's drawing.

mod support;

use edge_kiosk::{CatalogAdapter, Mode, SelfServeAdapter, Session};
use slint::{ComponentHandle, Model};
use support::*;

#[test]
fn product_tiles_show_the_items_own_pictures() {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let demo = Demo::start();
    let ui = kiosk(&demo, Mode::SelfServe);
    let ui2 = ui.clone_strong();
    run_flow(async move {
        let ui = ui2;
        let s = ui.global::<Session>();
        wait_for("the event stream", 60, || s.get_live()).await;
        // The daemon has the pictures before the customer browses (it fetches in the
        // background from start).
        wait_for("pictures kept by the daemon", 60, || {
            let page = demo.get("/v1/catalog/items?q=category:bakery&limit=40", &demo.tokens.cashier);
            page["items"].as_array().is_some_and(|a| !a.is_empty() && a.iter().all(|i| i["image"].is_string()))
        })
        .await;
        ui.global::<SelfServeAdapter>().invoke_start();
        let c = ui.global::<CatalogAdapter>();
        wait_for("the categories", 10, || exists(&ui, "Bakery")).await;
        c.invoke_browse("bakery".into());
        wait_for("bakery items with their pictures", 10, || {
            c.get_category() == "bakery"
                && c.get_results().row_count() > 0
                && c.get_results().iter().filter(|i| i.has_picture).count() >= 1
        })
        .await;
        let shown = c.get_results().iter().find(|i| i.has_picture).expect("a picture");
        let size = shown.picture.size();
        assert_eq!((size.width, size.height), (256, 256), "the drawing as the cloud served it");
        // Every tile of the page gets its picture.
        wait_for("all pictures", 10, || c.get_results().iter().all(|i| i.has_picture)).await;
    });
}
