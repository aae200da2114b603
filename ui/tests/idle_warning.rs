//! The idle warning at the self-serve screen against a real `edged demo`: before an idle
//! basket is dropped, a warning shows with a countdown and "I need more time", and is said
//! aloud even with speech off; more time keeps the basket, no answer drops it.

mod support;

use edge_kiosk::{CartAdapter, Mode, Screen, SelfServeAdapter, Session};
use slint::ComponentHandle;
use std::time::{Duration, Instant};
use support::*;

#[test]
fn an_idle_basket_is_warned_of_by_sight_and_sound_and_more_time_keeps_it() {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let mut demo = Demo::start();
    let ui = edge_kiosk::start(edge_kiosk::Options {
        endpoint: edge_kiosk::api::Endpoint::DataDir { dir: demo.data_dir(), kiosk_token: true },
        mode: Mode::SelfServe,
        screen_name: "kiosk-1".into(),
        language: "en".into(),
        high_contrast: false,
        font_scale: 1.0,
        // The warning shows for the last 10 s.
        idle_timeout: Duration::from_secs(12),
        speech_aloud: false,
    })
    .expect("kiosk");
    ui.show().expect("show");
    let unit = demo_index(|it| it.kind == edge_sync::domain::ItemKind::Unit && !it.age_restricted);
    let ui2 = ui.clone_strong();
    run_flow(async move {
        let ui = ui2;
        let s = ui.global::<Session>();
        wait_for("the event stream", 60, || s.get_live()).await;
        demo.scan(&demo_ean(unit));
        let c = ui.global::<CartAdapter>();
        wait_for("the item", 10, || c.get_count() == 1).await;
        let ss = ui.global::<SelfServeAdapter>();
        let started = Instant::now();
        wait_for("the idle warning", 10, || ss.get_idle_warning()).await;
        assert!(started.elapsed() >= Duration::from_millis(1000), "warned after {:?}", started.elapsed());
        assert!(exists(&ui, "Are you still there?"));
        assert!(ss.get_idle_seconds_left() <= 10 && ss.get_idle_seconds_left() > 0);
        let said = edge_kiosk::with(|k, _| k.speech.borrow().spoken().to_vec()).unwrap_or_default();
        assert!(said.iter().any(|w| w.starts_with("Are you still there?")), "said aloud with speech off: {said:?}");
        // More time: the warning goes, the basket stays.
        click(&ui, "I need more time");
        wait_for("the warning gone", 3, || !ss.get_idle_warning()).await;
        assert_eq!((s.get_screen(), c.get_count()), (Screen::Shop, 1));
        // No answer this time: the basket is dropped when the countdown ends.
        wait_for("the warning again", 10, || ss.get_idle_warning()).await;
        wait_for("the attract screen", 15, || s.get_screen() == Screen::Attract).await;
        assert_eq!(c.get_count(), 0);
        assert!(!ss.get_idle_warning());
    });
}
