//! Cash at the register against a real `edged demo`: quick amounts that fit the total,
//! "Take cash" only once enough is tendered, the change shown while typing on the keypad,
//! and a quick amount that pays with the right change.

mod support;

use edge_kiosk::{CartAdapter, Mode, PayAdapter, Screen, Session};
use slint::{ComponentHandle, Model};
use support::*;

#[test]
fn cash_offers_amounts_that_fit_the_total_and_shows_the_change_while_typing() {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let mut demo = Demo::start();
    let ui = kiosk(&demo, Mode::Staff);
    let i = demo_index(|it| {
        it.kind == edge_sync::domain::ItemKind::Unit && !it.age_restricted && it.price_minor % 100 != 0
    });
    let price = demo_item(i).price_minor;
    let ui2 = ui.clone_strong();
    run_flow(async move {
        let ui = ui2;
        let s = ui.global::<Session>();
        staff_login(&ui, "1111").await;
        demo.scan(&demo_ean(i));
        let c = ui.global::<CartAdapter>();
        wait_for("the scan in the cart", 10, || c.get_count() == 1).await;
        click(&ui, "Pay cash");
        let p = ui.global::<PayAdapter>();
        let quick: Vec<i64> = edge_kiosk::cart::quick_amounts(price);
        let shown: Vec<String> = p.get_quick_amounts().iter().map(|q| q.label.to_string()).collect();
        let want: Vec<String> = quick.iter().map(|m| edge_kiosk::cart::format_money(*m, "EUR", "en")).collect();
        assert_eq!(shown, want, "amounts above {price}");
        assert!(quick[0] > price && quick[0] - price < 100, "the next whole unit first: {quick:?}");
        let take = || find(&ui, "Take cash").first().and_then(|e| e.accessible_enabled());
        assert_eq!(take(), Some(false), "nothing tendered yet");
        // Typed on the keypad: one unit is not enough, the whole next unit is.
        click(&ui, "1");
        assert!(!p.get_cash_enough());
        assert_eq!(take(), Some(false));
        assert!(exists(&ui, "Not enough tendered yet"));
        click(&ui, "Delete");
        for d in (quick[0] / 100).to_string().chars() {
            click(&ui, &d.to_string());
        }
        assert!(p.get_cash_enough());
        assert_eq!(take(), Some(true));
        let change = edge_kiosk::cart::format_money(quick[0] - price, "EUR", "en");
        assert_eq!(p.get_cash_change().as_str(), change);
        assert!(exists(&ui, &format!("Change {change}")));
        // The second quick amount pays at once, with its change.
        click(&ui, &want[1]);
        wait_for("the done screen", 20, || s.get_screen() == Screen::Done).await;
        assert_eq!(p.get_change().as_str(), edge_kiosk::cart::format_money(quick[1] - price, "EUR", "en"));
    });
}
