//! The self-serve screen against a real `edged demo`: a scan wakes the attract screen, the
//! card pays through the terminal simulator with its prompts on screen, the customer asks
//! for the receipt, and the screen goes back to attract.

mod support;

use edge_kiosk::Screen;
use edge_kiosk::{CartAdapter, Mode, PayAdapter, Session};
use slint::ComponentHandle;
use support::*;

#[test]
fn scan_card_done() {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let mut demo = Demo::start();
    let ui = kiosk(&demo, Mode::SelfServe);
    let i = demo_index(|it| it.kind == edge_sync::domain::ItemKind::Unit && !it.age_restricted);
    let price = demo_item(i).price_minor;
    let ui2 = ui.clone_strong();
    run_flow(async move {
        let ui = ui2;
        let s = ui.global::<Session>();
        assert_eq!(s.get_screen(), Screen::Attract);
        wait_for("the event stream", 60, || s.get_live()).await;
        // A scan on the attract screen starts the shopping.
        demo.scan(&demo_ean(i));
        let c = ui.global::<CartAdapter>();
        wait_for("the scanned item in the cart", 10, || c.get_count() == 1).await;
        assert_eq!(s.get_screen(), Screen::Shop);
        // Categories with pictures are there to browse.
        wait_for("the categories", 10, || exists(&ui, "Bakery")).await;
        assert!(exists(&ui, "Picture: bakery"));
        // Touch targets: every button at least 48 × 48 px.
        let small = small_buttons(&ui);
        assert!(small.is_empty(), "small buttons: {small:?}");
        // Customers see nothing of the store's internals.
        assert!(!exists(&ui, "Offline banner"));

        click(&ui, "Pay by card");
        assert_eq!(s.get_screen(), Screen::Pay);
        let p = ui.global::<PayAdapter>();
        let mut prompts = Vec::new();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while s.get_screen() == Screen::Pay {
            assert!(std::time::Instant::now() < until, "the card payment did not finish; prompts {prompts:?}");
            let now = p.get_prompt().to_string();
            if !now.is_empty() && prompts.last() != Some(&now) {
                prompts.push(now);
            }
            sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(s.get_screen(), Screen::Thanks, "{}", p.get_error());
        // The last prompt stays until the next customer (a fast payment may show only it).
        let last = p.get_prompt().to_string();
        if !last.is_empty() && prompts.last() != Some(&last) {
            prompts.push(last);
        }
        assert!(!prompts.is_empty(), "the terminal's prompts were shown");
        assert_eq!(p.get_total().as_str(), edge_kiosk::cart::format_money(price, "EUR", "en"));
        let sale = demo.get(&format!("/v1/sales/{}", p.get_sale_id()), &demo.tokens.cashier);
        assert_eq!(sale["tenders"][0]["type"].as_str(), Some("card"), "{sale}");
        assert_eq!(sale["total_minor"].as_i64(), Some(price));

        // The receipt, on request.
        assert!(!p.get_receipt_printed());
        click(&ui, "Print receipt");
        wait_for("the receipt printed", 10, || p.get_receipt_printed()).await;
        click(&ui, "Done");
        assert_eq!(s.get_screen(), Screen::Attract);
        assert_eq!(c.get_count(), 0);
    });
}
