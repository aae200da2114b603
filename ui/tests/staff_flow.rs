//! The staff register against a real `edged demo`: PIN login, a scan at the store's
//! scanner (a pty), the cart, cash with change, the sale stored by the daemon.

mod support;

use edge_kiosk::Screen;
use edge_kiosk::{CartAdapter, Mode, PayAdapter, Session};
use slint::ComponentHandle;
use support::*;

#[test]
fn login_scan_cart_cash_done() {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let mut demo = Demo::start();
    let ui = kiosk(&demo, Mode::Staff);
    // A plain item sold by the piece, not age-restricted.
    let i = (0..300).find(|i| {
        let it = demo_item(*i);
        it.kind == edge_sync::domain::ItemKind::Unit && !it.age_restricted
    });
    let i = i.expect("a unit item");
    let item = demo_item(i);
    let ui2 = ui.clone_strong();
    let finished = std::rc::Rc::new(std::cell::Cell::new(false));
    let fin = finished.clone();
    slint::spawn_local(async move {
        let ui = ui2;
        let s = ui.global::<Session>();
        wait_for("the daemon is reachable", 60, || s.get_connected()).await;
        assert_eq!(s.get_screen(), Screen::Login);
        // A wrong PIN is refused and says so.
        enter_pin(&ui, "1234", "Log in");
        wait_for("the refusal", 10, || s.get_message_code() == "refused").await;
        assert_eq!(s.get_screen(), Screen::Login);
        enter_pin(&ui, "1111", "Log in");
        wait_for("the register", 10, || s.get_screen() == Screen::Register).await;
        assert_eq!((s.get_staff_name().as_str(), s.get_role().as_str()), ("Anna", "cashier"));
        wait_for("the event stream", 10, || s.get_live()).await;

        // Two scans of the same item: one line, quantity 2.
        demo.scan(&demo_ean(i));
        let c = ui.global::<CartAdapter>();
        wait_for("the first scan in the cart", 10, || c.get_count() == 1).await;
        demo.scan(&demo_ean(i));
        wait_for("the second scan in the cart", 10, || c.get_count() == 2).await;
        use slint::Model;
        assert_eq!(c.get_lines().row_count(), 1);
        let line = c.get_lines().row_data(0).expect("line");
        assert_eq!(line.name.as_str(), item.name);
        let unit = edge_kiosk::cart::format_money(item.price_minor, "EUR", "en");
        assert_eq!(line.quantity.as_str(), format!("2 × {unit}"), "quantity × unit price");
        // More and fewer.
        click(&ui, &format!("More {}", item.name));
        assert_eq!(c.get_count(), 3);
        click(&ui, &format!("Fewer {}", item.name));
        assert_eq!(c.get_count(), 2);

        // Cash: exact.
        click(&ui, "Pay cash");
        click(&ui, "Exact");
        wait_for("the done screen", 20, || s.get_screen() == Screen::Done).await;
        let p = ui.global::<PayAdapter>();
        let total = 2 * item.price_minor;
        assert_eq!(p.get_total().as_str(), edge_kiosk::cart::format_money(total, "EUR", "en"));
        assert_eq!(p.get_change().as_str(), "€0.00");
        assert_eq!(c.get_count(), 0, "the cart is empty after the sale");

        // The daemon has the sale, with this screen's id.
        let id = p.get_sale_id().to_string();
        let sale = demo.get(&format!("/v1/sales/{id}"), &demo.tokens.cashier);
        assert_eq!(sale["total_minor"].as_i64(), Some(total), "{sale}");
        assert_eq!(sale["tenders"][0]["type"].as_str(), Some("cash"));

        click(&ui, "Next customer");
        assert_eq!(s.get_screen(), Screen::Register);
        // Log out: back at the PIN pad.
        click(&ui, "Log out");
        assert_eq!(s.get_screen(), Screen::Login);
        fin.set(true);
        slint::quit_event_loop().expect("quit");
    })
    .expect("spawn");
    slint::run_event_loop().expect("event loop");
    assert!(finished.get(), "the flow did not run to its end");
}
