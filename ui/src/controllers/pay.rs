//! Paying: cash (with change and the drawer, which edged opens), card (the terminal's
//! prompts arrive as `terminal.prompt` events), the receipt, and the next customer.
//!
//! A sale's id is made here once per cart (UUID v7) and sent as `id` and Idempotency-Key
//! on every attempt: when an answer is lost, paying again returns the first sale and
//! never makes a second one.

use super::show_error;
use crate::cart::parse_money;
use crate::{AppWindow, Kiosk, Mode, PayAdapter, Session, say};
use crate::{PayState, Screen};
use edge_api::{AgeCheckIn, SaleIn, SaleOut, TenderIn};
use slint::ComponentHandle;
use std::rc::Rc;
use uuid::Uuid;

pub fn wire(ui: &AppWindow, k: &Rc<Kiosk>) {
    let p = ui.global::<PayAdapter>();
    let kk = k.clone();
    p.on_cash(move |tendered| {
        let t = tendered.trim().to_string();
        let amount = if t.is_empty() {
            kk.cart.borrow().total_minor()
        } else {
            match parse_money(&t) {
                Ok(m) => m,
                Err(e) => {
                    crate::with(|_, ui| say(ui, "bad-amount", &e, true));
                    return;
                }
            }
        };
        pay(&kk, TenderIn { kind: "cash".into(), amount_minor: Some(amount) });
    });
    let kk = k.clone();
    p.on_cash_typed(move |typed| {
        let total = kk.cart.borrow().total_minor();
        crate::with(|k, ui| {
            let p = ui.global::<PayAdapter>();
            match parse_money(typed.trim()) {
                Ok(m) if m >= total => {
                    p.set_cash_enough(true);
                    p.set_cash_change(k.money(ui, m - total).into());
                }
                _ => {
                    p.set_cash_enough(false);
                    p.set_cash_change("".into());
                }
            }
        });
    });
    let kk = k.clone();
    p.on_card(move || pay(&kk, TenderIn { kind: "card".into(), amount_minor: None }));
    let kk = k.clone();
    p.on_abort_card(move || {
        let api = kk.api.clone();
        kk.spawn(
            async move { api.post::<_, serde_json::Value>("/v1/terminal/abort", &serde_json::json!({})).await },
            |_, ui, r| {
                if let Err(e) = r {
                    show_error(ui, &e);
                }
            },
        );
    });
    let kk = k.clone();
    p.on_reprint(move || print(&kk));
    let kk = k.clone();
    p.on_print_receipt(move || print(&kk));
    let kk = k.clone();
    p.on_next_customer(move || {
        crate::with(|_, ui| next_customer(&kk, ui));
    });
}

fn print(k: &Rc<Kiosk>) {
    k.touch();
    let Some(id) = *k.last_sale.borrow() else { return };
    let api = k.api.clone();
    k.spawn(
        async move { api.post::<_, serde_json::Value>(&format!("/v1/sales/{id}/receipt"), &serde_json::json!({})).await },
        |k, ui, r| match r {
            Ok(_) => {
                ui.global::<PayAdapter>().set_receipt_printed(true);
                if k.opts.mode == Mode::Staff {
                    say(ui, "reprinted", "", false);
                }
            }
            Err(e) => show_error(ui, &e),
        },
    );
}

/// Clears the done screen and starts again.
pub fn next_customer(k: &Rc<Kiosk>, ui: &AppWindow) {
    k.touch();
    let p = ui.global::<PayAdapter>();
    p.set_state(PayState::Idle);
    p.set_prompt("".into());
    p.set_error("".into());
    p.set_receipt_printed(false);
    ui.global::<Session>().set_message_code("".into());
    ui.global::<Session>().set_screen(if k.opts.mode == Mode::Staff { Screen::Register } else { Screen::Attract });
    if k.opts.mode == Mode::SelfServe {
        super::selfserve::reset(k, ui);
    }
}

/// The cart's answered age check as the sale sends it (None: no age-restricted item, or
/// not answered by a known member of staff).
fn age_check(k: &Rc<Kiosk>, cart: &crate::cart::Cart) -> Option<AgeCheckIn> {
    if !cart.items.iter().any(|i| i.age_restricted) {
        return None;
    }
    match k.age_answer.borrow().clone()? {
        crate::AgeAnswer::Approval(id) => Some(AgeCheckIn {
            method: "approval".into(),
            born_on_or_before: None,
            verified_by: None,
            approval_id: Some(id),
        }),
        crate::AgeAnswer::BornOnOrBefore(date) => Some(AgeCheckIn {
            method: "dob".into(),
            born_on_or_before: Some(date).filter(|d| !d.is_empty()),
            verified_by: Some(k.staff_id.borrow().clone()?),
            approval_id: None,
        }),
    }
}

/// Posts the cart as a sale with one tender.
pub fn pay(k: &Rc<Kiosk>, tender: TenderIn) {
    k.touch();
    let Some(ui) = crate::with(|_, ui| ui.as_weak()) else { return };
    let Some(ui) = ui.upgrade() else { return };
    let cart = k.cart.borrow().clone();
    if cart.is_empty() {
        return;
    }
    if let Some(it) = cart.unweighed() {
        say(&ui, "weigh-first", &it.name, true);
        return;
    }
    let id = *k.checkout.borrow_mut().get_or_insert_with(Uuid::now_v7);
    let card = tender.kind == "card";
    let self_serve = k.opts.mode == Mode::SelfServe;
    let req = SaleIn {
        id: Some(id),
        lines: cart.sale_lines(),
        tenders: vec![tender],
        // At a self-serve screen the customer chooses afterwards.
        receipt: self_serve.then_some(false),
        cashier: k.staff_id.borrow().clone(),
        age_check: age_check(k, &cart),
    };
    let total = k.money(&ui, cart.total_minor());
    let p = ui.global::<PayAdapter>();
    p.set_total(total.into());
    p.set_prompt("".into());
    p.set_error("".into());
    p.set_error_kind("".into());
    p.set_state(PayState::Working);
    ui.global::<Session>().set_busy(true);
    ui.global::<Session>().set_message_code("".into());
    if card {
        ui.global::<Session>().set_screen(if self_serve { Screen::Pay } else { Screen::PayCard });
        // Said before the terminal answers: where to present the card.
        super::selfserve::speak_now(k, &ui);
    }
    let mut headers = vec![("idempotency-key", id.to_string())];
    if cart.has_adjustments()
        && let Some(pin) = k.manager_pin.borrow().clone()
    {
        headers.push(("x-manager-pin", pin));
    }
    let api = k.api.clone();
    k.spawn(async move { api.post_with::<_, SaleOut>("/v1/sales", &req, None, &headers).await }, move |k, ui, r| {
        ui.global::<Session>().set_busy(false);
        let p = ui.global::<PayAdapter>();
        match r {
            Ok(sale) => {
                k.cart.borrow_mut().clear();
                *k.checkout.borrow_mut() = None;
                *k.manager_pin.borrow_mut() = None;
                *k.last_sale.borrow_mut() = Some(sale.id);
                *k.currency.borrow_mut() = sale.currency.clone();
                super::sell::refresh_cart(k, ui);
                p.set_state(PayState::Done);
                p.set_sale_id(sale.id.to_string().into());
                p.set_total(k.money(ui, sale.total_minor).into());
                p.set_paid(k.money(ui, sale.tendered_minor).into());
                p.set_change(k.money(ui, sale.change_minor).into());
                p.set_receipt_printed(!self_serve);
                ui.global::<Session>().set_screen(if self_serve { Screen::Thanks } else { Screen::Done });
                super::selfserve::speak_now(k, ui);
            }
            Err(e) => {
                p.set_state(PayState::Failed);
                p.set_error(e.to_string().into());
                // What a customer is told: plain words and the next step, never a code.
                p.set_error_kind(
                    match e.status() {
                        Some(402) => "declined",
                        None | Some(504) => "unknown",
                        Some(_) => "failed",
                    }
                    .into(),
                );
                match e.status() {
                    // The outcome is not known (no answer, or the terminal's answer is in
                    // doubt): the same id is kept, so paying again can only return this sale.
                    None | Some(504) => say(ui, if card { "payment-unknown" } else { "unreachable" }, "", true),
                    Some(_) => {
                        // Refused: nothing was stored under this id; it is kept all the same.
                        show_error(ui, &e);
                    }
                }
                if !self_serve {
                    ui.global::<Session>().set_screen(Screen::Register);
                }
            }
        }
    });
}
