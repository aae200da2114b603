//! `edge-kiosk --api URL --token T --mode staff`: the screen opens logged in with the
//! token's role (the contract's form), without a PIN.

mod support;

use edge_kiosk::Screen;
use edge_kiosk::{Mode, Session};
use slint::ComponentHandle;
use std::time::Duration;
use support::*;

#[test]
fn a_given_token_logs_the_staff_screen_in() {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let demo = Demo::start();
    let ui = edge_kiosk::start(edge_kiosk::Options {
        endpoint: edge_kiosk::api::Endpoint::Fixed { url: demo.url.clone(), token: Some(demo.tokens.manager.clone()) },
        mode: Mode::Staff,
        screen_name: "register-2".into(),
        language: "en".into(),
        high_contrast: false,
        font_scale: 1.0,
        idle_timeout: Duration::from_secs(90),
        speech_aloud: false,
    })
    .expect("kiosk");
    ui.show().expect("show");
    let ui2 = ui.clone_strong();
    run_flow(async move {
        let ui = ui2;
        let s = ui.global::<Session>();
        wait_for("the register", 30, || s.get_screen() == Screen::Register).await;
        assert_eq!(s.get_role(), "manager");
        wait_for("the event stream", 10, || s.get_live()).await;
    });
}
