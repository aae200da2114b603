//! A self-serve screen left alone goes back to the attract screen and forgets the cart;
//! never while the customer waits for staff.

mod support;

use edge_kiosk::Screen;
use edge_kiosk::{CartAdapter, Mode, SelfServeAdapter, Session};
use slint::ComponentHandle;
use std::time::{Duration, Instant};
use support::*;

#[test]
fn idle_screen_returns_to_attract() {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let mut demo = Demo::start();
    let ui = edge_kiosk::start(edge_kiosk::Options {
        endpoint: edge_kiosk::api::Endpoint::DataDir { dir: demo.data_dir(), kiosk_token: true },
        mode: Mode::SelfServe,
        screen_name: "kiosk-1".into(),
        language: "en".into(),
        high_contrast: false,
        font_scale: 1.0,
        idle_timeout: Duration::from_secs(2),
        speech_aloud: false,
    })
    .expect("kiosk");
    ui.show().expect("show");
    let unit = demo_index(|it| it.kind == edge_sync::domain::ItemKind::Unit && !it.age_restricted);
    let wine = demo_index(|it| it.age_restricted && it.kind == edge_sync::domain::ItemKind::Unit);
    let ui2 = ui.clone_strong();
    run_flow(async move {
        let ui = ui2;
        let s = ui.global::<Session>();
        wait_for("the event stream", 60, || s.get_live()).await;
        demo.scan(&demo_ean(unit));
        let c = ui.global::<CartAdapter>();
        wait_for("the item", 10, || c.get_count() == 1).await;
        let left_at = Instant::now();
        wait_for("the attract screen", 10, || s.get_screen() == Screen::Attract).await;
        assert!(left_at.elapsed() >= Duration::from_millis(1500), "left after {:?}", left_at.elapsed());
        assert_eq!(c.get_count(), 0, "the cart is forgotten");

        // Waiting for an age check: the screen stays.
        demo.scan(&demo_ean(wine));
        let ss = ui.global::<SelfServeAdapter>();
        wait_for("the age check", 10, || ss.get_age_check() == "waiting").await;
        sleep(Duration::from_secs(4)).await;
        assert_eq!(s.get_screen(), Screen::Shop, "a customer waiting for staff is not sent away");
    });
}
