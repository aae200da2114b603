//! Login by PIN (the role comes from the daemon), logout, language, navigation.

use crate::Screen;
use crate::{AppWindow, cart::Cart};
use crate::{Kiosk, Mode, Session, StatusAdapter, say};
use edge_api::{LoginIn, LoginOut};
use slint::ComponentHandle;
use std::rc::Rc;

pub fn wire(ui: &AppWindow, k: &Rc<Kiosk>) {
    if k.opts.mode == Mode::Staff && k.api.has_token() {
        // Started with a token (`--api URL --token T`): logged in with its role.
        let api = k.api.clone();
        k.spawn(async move { api.get::<edge_api::WhoAmI>("/v1/whoami").await }, |k, ui, r| match r {
            Ok(w) if w.role != "kiosk" => {
                k.token_changed.notify_one();
                let s = ui.global::<Session>();
                s.set_staff_name(w.role.clone().into());
                s.set_role(w.role.into());
                s.set_screen(Screen::Register);
            }
            Ok(_) => say(ui, "kiosk-token", "", true),
            Err(e) => super::show_error(ui, &e),
        });
    }
    let s = ui.global::<Session>();
    let kk = k.clone();
    s.on_login(move |pin| {
        crate::with(|_, ui| ui.global::<Session>().set_busy(true));
        let api = kk.api.clone();
        let pin = pin.to_string();
        kk.spawn(async move { api.post::<_, LoginOut>("/v1/login", &LoginIn { pin }).await }, |k, ui, r| {
            ui.global::<Session>().set_busy(false);
            match r {
                Ok(who) if who.role == "kiosk" => say(ui, "not-staff", "", true),
                Ok(who) => {
                    k.api.set_token(Some(who.token));
                    *k.staff_id.borrow_mut() = Some(who.staff_id.clone());
                    k.token_changed.notify_one();
                    let s = ui.global::<Session>();
                    s.set_staff_name(who.name.into());
                    s.set_role(who.role.into());
                    s.set_screen(Screen::Register);
                    s.set_message_code("".into());
                }
                Err(e) => super::show_error(ui, &e),
            }
        });
    });
    let kk = k.clone();
    s.on_logout(move || {
        crate::with(|_, ui| logout(&kk, ui));
    });
    let kk = k.clone();
    s.on_select_language(move |lang| {
        crate::with(|_, ui| select_language(ui, &kk, &lang));
    });
    s.on_dismiss_message(|| {
        crate::with(|_, ui| ui.global::<Session>().set_message_code("".into()));
    });
    let kk = k.clone();
    s.on_touched(move || kk.touch());
    let kk = k.clone();
    s.on_go(move |screen| {
        kk.touch();
        crate::with(|_, ui| {
            let s = ui.global::<Session>();
            s.set_message_code("".into());
            s.set_screen(screen);
        });
    });
}

/// Back to the PIN pad: the token is forgotten, the cart kept for the next login only if
/// it is empty (a half-made sale is not handed to another member of staff).
pub fn logout(k: &Rc<Kiosk>, ui: &AppWindow) {
    k.api.set_token(None);
    k.token_changed.notify_one();
    *k.cart.borrow_mut() = Cart::default();
    *k.checkout.borrow_mut() = None;
    *k.manager_pin.borrow_mut() = None;
    *k.staff_id.borrow_mut() = None;
    super::sell::refresh_cart(k, ui);
    let s = ui.global::<Session>();
    s.set_staff_name("".into());
    s.set_role("".into());
    s.set_screen(if k.opts.mode == Mode::Staff { Screen::Login } else { Screen::Attract });
    say(ui, "logged-out", "", false);
    ui.global::<StatusAdapter>().set_approvals(slint::ModelRc::default());
}

/// Switches the language of every string (the bundled translations) and of money.
pub fn select_language(ui: &AppWindow, k: &Rc<Kiosk>, lang: &str) {
    let lang = if lang == "de" { "de" } else { "en" };
    if let Err(e) = slint::select_bundled_translation(lang) {
        tracing::warn!(lang, error = ?e, "no translation bundled");
    }
    ui.global::<Session>().set_language(lang.into());
    super::sell::refresh_cart(k, ui);
}

/// Switches the language from outside a callback (the screenshot run, tests).
pub fn select_language_now(ui: &AppWindow, lang: &str) {
    if let Some(k) = crate::with(|k, _| k.clone()) {
        select_language(ui, &k, lang);
    }
}
