//! The register's favourites key and category chips beside search, against a real
//! `edged demo`: the favourites of `[register] favourites` come first, in the store's
//! order; a category chip lists that category's items; an item is added in one tap.

mod support;

use edge_kiosk::{CartAdapter, CatalogAdapter, Mode};
use slint::{ComponentHandle, Model};
use support::*;

#[test]
fn favourites_and_categories_sit_beside_search() {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let demo = Demo::start();
    let ui = kiosk(&demo, Mode::Staff);
    let ui2 = ui.clone_strong();
    run_flow(async move {
        let ui = ui2;
        staff_login(&ui, "1111").await;
        let c = ui.global::<CatalogAdapter>();
        assert!(exists(&ui, "Favourites"), "the register is made when it is looked at");
        // The demo store's favourites, in its order (as the daemon serves them).
        let fav = demo.get("/v1/catalog/favourites", &demo.tokens.cashier);
        let skus: Vec<String> = fav["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["sku"].as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(skus.len(), 6, "{fav}");
        assert_eq!(skus[3], "SKU-0000001");
        wait_for("the favourites", 10, || c.get_results().row_count() == 6).await;
        assert!(c.get_favourites_shown());
        let shown: Vec<String> = c.get_results().iter().map(|i| i.sku.to_string()).collect();
        assert_eq!(shown, skus);

        // A category chip: only that category, the chip marked.
        wait_for("the categories", 10, || c.get_categories().row_count() > 0).await;
        click(&ui, "Dairy");
        wait_for("dairy", 10, || {
            c.get_category() == "dairy"
                && c.get_results().row_count() > 0
                && c.get_results().iter().all(|i| i.category == "dairy")
        })
        .await;
        assert!(!c.get_favourites_shown());

        // Back to the favourites; the first unit item added in one tap.
        click(&ui, "Favourites");
        wait_for("the favourites again", 10, || {
            c.get_favourites_shown() && c.get_results().iter().map(|i| i.sku.to_string()).eq(skus.iter().cloned())
        })
        .await;
        let unit = c.get_results().iter().find(|i| !i.weighed && !i.age_restricted).expect("a unit item");
        click(&ui, &format!("Add {}", unit.name));
        let cart = ui.global::<CartAdapter>();
        wait_for("in the cart", 10, || cart.get_count() == 1).await;
    });
}
