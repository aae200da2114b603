//! Speech output at the self-serve screen against a real `edged demo`: turned on without
//! sight (F2; a long press on the corner button turns it off), then each screen of a sale
//! yields the words it should — the welcome, the cart, the item added with its price and
//! the total, the card payment with where the reader is and the terminal's prompts, the
//! thanks. And espeak-ng really synthesises them, in English and German (WAV files whose
//! length is checked).

mod support;

use edge_api::locale::Lang;
use edge_kiosk::{CartAdapter, Mode, Screen, SelfServeAdapter, Session};
use slint::ComponentHandle;
use slint::platform::{Key, WindowEvent};
use support::*;

fn spoken() -> Vec<String> {
    edge_kiosk::with(|k, _| k.speech.borrow().spoken().to_vec()).unwrap_or_default()
}

async fn heard(what: &str, part: &str) -> Vec<String> {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !spoken().iter().any(|s| s.contains(part)) {
        assert!(std::time::Instant::now() < until, "{what}: {part:?} not said; said {:?}", spoken());
        sleep(std::time::Duration::from_millis(20)).await;
    }
    spoken()
}

#[test]
fn each_self_serve_screen_is_spoken_and_espeak_synthesises_it() {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let mut demo = Demo::start();
    let ui = kiosk(&demo, Mode::SelfServe);
    let i = demo_index(|it| it.kind == edge_sync::domain::ItemKind::Unit && !it.age_restricted);
    let item = demo_item(i);
    let ui2 = ui.clone_strong();
    let said = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let said2 = said.clone();
    run_flow(async move {
        let ui = ui2;
        let s = ui.global::<Session>();
        wait_for("the event stream", 60, || s.get_live()).await;
        assert!(spoken().is_empty(), "silent until turned on");
        // F2: on, saying so and where the customer is.
        ui.window().dispatch_event(WindowEvent::KeyPressed { text: Key::F2.into() });
        ui.window().dispatch_event(WindowEvent::KeyReleased { text: Key::F2.into() });
        assert!(s.get_speech_on());
        let words = heard("speech on", "Speech on").await;
        assert!(words.iter().any(|w| w.starts_with("Welcome to self-service checkout")), "{words:?}");

        ui.global::<SelfServeAdapter>().invoke_start();
        heard("the shop screen", "Shopping. Your cart is empty").await;
        demo.scan(&demo_ean(i));
        let c = ui.global::<CartAdapter>();
        wait_for("the item", 10, || c.get_count() == 1).await;
        let price = edge_kiosk::cart::format_money(item.price_minor, "EUR", "en");
        heard("the item added", &format!("Added {}, {price}. Total {price}.", item.name)).await;

        ui.global::<SelfServeAdapter>().invoke_pay();
        heard("the payment", &format!("Pay by card. Total {price}. Tap, insert or swipe your card")).await;
        wait_for("thanks", 30, || s.get_screen() == Screen::Thanks).await;
        let words = heard("the thanks", "Thank you").await;
        // The terminal's prompts came in between.
        let pay_at = words.iter().position(|w| w.starts_with("Pay by card")).expect("pay");
        let thanks_at = words.iter().position(|w| w.starts_with("Thank you")).expect("thanks");
        assert!(thanks_at > pay_at, "{words:?}");

        // A long press on the corner turns it off.
        s.invoke_corner_pressed(true);
        sleep(std::time::Duration::from_millis(1600)).await;
        s.invoke_corner_pressed(false);
        assert!(!s.get_speech_on());
        *said2.borrow_mut() = words;
    });
    // espeak-ng synthesises what was said, and the same screens in German.
    let dir = tempfile::tempdir().expect("tmp");
    let mut german = vec![];
    let (de_before, de_after) = (
        edge_kiosk::speech::Snapshot { screen: "shop".into(), ..Default::default() },
        edge_kiosk::speech::Snapshot {
            screen: "shop".into(),
            count: 1,
            total: "2,57 €".into(),
            last_item: Some(("Saft".into(), "2,57 €".into())),
            ..Default::default()
        },
    );
    german.extend(edge_kiosk::speech::utterances(&Default::default(), &de_before, Lang::De));
    german.extend(edge_kiosk::speech::utterances(&de_before, &de_after, Lang::De));
    let english = said.borrow().clone();
    assert!(english.len() >= 5, "{english:?}");
    for (lang, text) in english.iter().map(|t| (Lang::En, t)).chain(german.iter().map(|t| (Lang::De, t))) {
        let wav = dir.path().join("u.wav");
        edge_kiosk::speech::synthesize(lang, text, &wav)
            .unwrap_or_else(|e| panic!("{e} (scripts/setup installs espeak-ng)"));
        let bytes = std::fs::read(&wav).expect("wav");
        assert_eq!(&bytes[..4], b"RIFF");
        // 22,050 samples/s of 16 bits: at least a third of a second of speech.
        let seconds = (bytes.len() - 44) as f64 / 44_100.0;
        assert!(seconds > 0.3, "{text:?} ({lang:?}) synthesised to {seconds:.2} s");
    }
}
