//! The devices panel in German against a real `edged demo`: device kinds and the phrases of
//! their health (written by the daemon in English) are shown in the screen's language.

mod support;

use edge_kiosk::{Mode, Screen, Session, StatusAdapter};
use slint::{ComponentHandle, Model};
use support::*;

#[test]
fn the_devices_panel_speaks_the_screens_language() {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let demo = Demo::start();
    let ui = kiosk(&demo, Mode::Staff);
    let ui2 = ui.clone_strong();
    run_flow(async move {
        let ui = ui2;
        staff_login(&ui, "1111").await;
        edge_kiosk::controllers::session::select_language_now(&ui, "de");
        let s = ui.global::<Session>();
        s.invoke_go(Screen::Devices);
        let st = ui.global::<StatusAdapter>();
        st.invoke_refresh_devices();
        wait_for("the devices", 10, || st.get_devices().row_count() >= 4).await;
        assert!(exists(&ui, "Bondrucker") && exists(&ui, "Waage") && exists(&ui, "Kartenterminal"));
        // Re-read in German (rows made before the switch keep their words until refreshed).
        st.invoke_refresh_devices();
        let printer = || st.get_devices().iter().find(|d| d.kind == "printer").map(|d| d.health.to_string());
        wait_for("the printer's health in German", 10, || printer().is_some_and(|h| h.contains("Lade"))).await;
        let h = printer().unwrap_or_default();
        assert!(!h.contains("drawer"), "{h}");
        // A drawer left open: the phrase with its time, in German, in the store's clock.
        let out: edge_api::DeviceOut = serde_json::from_value(serde_json::json!({
            "id": "printer", "kind": "printer", "state": "online",
            "health": "online, drawer open; drawer left open (since 2026-12-07T04:13:07.99Z)"
        }))
        .expect("device");
        let at = "2026-12-07T04:13:07.99Z"
            .parse::<jiff::Timestamp>()
            .expect("time")
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%H:%M")
            .to_string();
        let r = edge_kiosk::controllers::status::row(&ui, out);
        assert_eq!(r.health.as_str(), format!("online, Lade offen; Lade offen gelassen seit {at}"));
        // A terminal ready without words of its own (our word, not the terminal's) in German too.
        let out: edge_api::DeviceOut = serde_json::from_value(serde_json::json!({
            "id": "terminal", "kind": "terminal", "state": "online", "health": "ready"
        }))
        .expect("device");
        assert_eq!(edge_kiosk::controllers::status::row(&ui, out).health.as_str(), "bereit");
    });
}
