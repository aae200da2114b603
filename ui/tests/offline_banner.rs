//! The staff screen's offline banner: with the fake cloud down, a sale made at the screen
//! waits in the queue and the banner says how many records and how old the oldest is.

mod support;

use edge_kiosk::Screen;
use edge_kiosk::{CartAdapter, Mode, Session, StatusAdapter};
use slint::ComponentHandle;
use support::*;

#[test]
fn offline_banner_when_the_remotes_are_down() {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let demo = Demo::start();
    let ui = kiosk(&demo, Mode::Staff);
    let i = demo_index(|it| it.kind == edge_sync::domain::ItemKind::Unit && !it.age_restricted);
    let sku = demo_item(i).sku;
    let cloud = demo.fake_url("cloud");
    let ui2 = ui.clone_strong();
    run_flow(async move {
        let ui = ui2;
        staff_login(&ui, "1111").await;
        let st = ui.global::<StatusAdapter>();
        assert!(!st.get_offline());
        assert!(!exists(&ui, "Offline banner"));
        assert_eq!(demo.post(&format!("{cloud}/_fake/faults"), &serde_json::json!({"down": true})), 200);

        // A sale at the screen (typed SKU, cash): the daemon keeps it for the cloud.
        ui.global::<CartAdapter>().invoke_add_code(sku.clone().into());
        wait_for("the item in the cart", 10, || ui.global::<CartAdapter>().get_count() == 1).await;
        click(&ui, "Pay cash");
        click(&ui, "Exact");
        let s = ui.global::<Session>();
        wait_for("the sale done", 20, || s.get_screen() == Screen::Done).await;

        wait_for("the offline banner", 60, || st.get_offline() && exists(&ui, "Offline banner")).await;
        assert!(st.get_unsynced() >= 1, "unsynced {}", st.get_unsynced());
        let banner = find(&ui, "Offline banner");
        let text = banner[0].accessible_description().unwrap_or_default().to_string();
        // Plain words: since when (local time), that sales are safe, how many wait.
        let since = st.get_offline_since().to_string();
        assert!(since.len() == 5 && &since[2..3] == ":", "{since:?}");
        assert!(text.starts_with(&format!("No internet since {since}")), "{text}");
        assert!(text.contains("kept safe") && text.contains(&format!("{} waiting", st.get_unsynced())), "{text}");

        // Healed: the banner goes once the queue drains.
        let healed = reqwest::blocking::Client::new().delete(format!("{cloud}/_fake/faults")).send().expect("heal");
        assert!(healed.status().is_success());
        let _ = reqwest::blocking::Client::new()
            .post(format!("{}/v1/sync/run", demo.url))
            .bearer_auth(&demo.tokens.manager)
            .send();
        wait_for("the banner gone", 60, || !st.get_offline()).await;
    });
}
