//! Selling: codes scanned or typed, search and browse, the cart's lines, the scale, a
//! manager's price override, discount and void.

use super::{encode, show_error};
use crate::cart::{CartItem, parse_money};
use crate::{
    AppWindow, CartAdapter, CartLine, CatalogAdapter, CategoryCard, ItemCard, Kiosk, Mode, SelfServeAdapter, Session,
    say,
};
use edge_api::{ApprovalIn, ApprovalOut, CatalogItem, CategoriesOut, ItemsPage, LoginOut, ScaleOut, VoidIn};
use slint::{ComponentHandle, Model, ModelRc, VecModel};
use std::rc::Rc;

pub fn wire(ui: &AppWindow, k: &Rc<Kiosk>) {
    let c = ui.global::<CartAdapter>();
    let kk = k.clone();
    c.on_add_code(move |code| add_code(&kk, code.trim(), None));
    let kk = k.clone();
    c.on_add_sku(move |sku| add_code(&kk, sku.trim(), None));
    let kk = k.clone();
    c.on_increase(move |i| edit(&kk, |c| c.increase(i as usize)));
    let kk = k.clone();
    c.on_decrease(move |i| edit(&kk, |c| c.decrease(i as usize)));
    let kk = k.clone();
    c.on_remove(move |i| {
        edit(&kk, |c| {
            c.remove(i as usize);
        })
    });
    let kk = k.clone();
    c.on_weigh(move |i| weigh(&kk, i as usize));
    let kk = k.clone();
    c.on_override_price(move |i, price, pin| {
        adjust(&kk, i as usize, Adjust::Price, price.to_string(), pin.to_string())
    });
    let kk = k.clone();
    c.on_discount(move |i, amount, pin| adjust(&kk, i as usize, Adjust::Discount, amount.to_string(), pin.to_string()));
    let kk = k.clone();
    c.on_void_cart(move |pin, reason| void_cart(&kk, pin.to_string(), reason.to_string()));
    let kk = k.clone();
    c.on_age_answer(move |yes| answer_age(&kk, yes));

    let cat = ui.global::<CatalogAdapter>();
    let kk = k.clone();
    cat.on_search(move |q| search(&kk, q.trim().to_string()));
    let kk = k.clone();
    cat.on_browse(move |c| browse(&kk, c.to_string()));
    let kk = k.clone();
    cat.on_load_categories(move || load_categories(&kk));
    let kk = k.clone();
    cat.on_favourites(move || favourites(&kk));
}

fn edit(k: &Rc<Kiosk>, f: impl FnOnce(&mut crate::cart::Cart)) {
    k.touch();
    f(&mut k.cart.borrow_mut());
    crate::with(|k, ui| {
        ui.global::<Session>().set_message_code("".into());
        refresh_cart(k, ui)
    });
}

/// Puts the cart on the screen.
pub fn refresh_cart(k: &Rc<Kiosk>, ui: &AppWindow) {
    let cart = k.cart.borrow();
    let lang = k.lang(ui);
    let cur = k.currency.borrow().clone();
    let money = |m: i64| crate::cart::format_money(m, &cur, &lang);
    let lines: Vec<CartLine> = cart
        .items
        .iter()
        .enumerate()
        .map(|(i, it)| {
            // Quantity × unit price (the price in force after an override), or weight ×
            // price per kg; the lot below it.
            let unit = money(it.price_override.unwrap_or(it.unit_price_minor));
            let quantity = if it.weighed {
                match it.grams {
                    Some(g) => format!("{} × {unit} / kg", crate::cart::format_kg(g, &lang)),
                    None => format!("? kg × {unit} / kg"),
                }
            } else {
                format!("{} × {unit}", it.qty)
            };
            let mut note = Vec::new();
            if let Some((lot, expiry)) = &it.lot {
                note.push(format!("{lot} · {}", crate::cart::format_date(expiry, &lang)));
            }
            if it.price_override.is_some() {
                note.push(format!("{} → {}", money(it.unit_price_minor), money(it.price_override.unwrap_or(0))));
            }
            if it.discount_minor != 0 {
                note.push(format!("−{}", money(it.discount_minor)));
            }
            CartLine {
                index: i as i32,
                sku: it.sku.clone().into(),
                name: it.name.clone().into(),
                quantity: quantity.into(),
                amount: if it.weighed && it.grams.is_none() { "…".into() } else { money(it.amount_minor()).into() },
                note: note.join("  ").into(),
                weighed: it.weighed,
                age_restricted: it.age_restricted,
            }
        })
        .collect();
    let c = ui.global::<CartAdapter>();
    if c.get_selected() >= cart.items.len() as i32 {
        c.set_selected(cart.items.len() as i32 - 1);
    }
    c.set_total(money(cart.total_minor()).into());
    c.set_count(cart.count() as i32);
    let quick: Vec<crate::QuickAmount> = crate::cart::quick_amounts(cart.total_minor())
        .into_iter()
        .map(|m| crate::QuickAmount { label: money(m).into(), value: crate::cart::plain_amount(m).into() })
        .collect();
    ui.global::<crate::PayAdapter>().set_quick_amounts(ModelRc::new(VecModel::from(quick)));
    let restricted = cart.items.iter().find(|i| i.age_restricted);
    c.set_has_age_restricted(restricted.is_some());
    c.set_lines(ModelRc::new(VecModel::from(lines)));
    // The age check belongs to the cart: gone with its last age-restricted item. At the
    // register an unanswered one stops the sale until staff answer it.
    if restricted.is_none() {
        *k.age_answer.borrow_mut() = None;
    }
    let question = match restricted {
        Some(it) if k.opts.mode == Mode::Staff && k.age_answer.borrow().is_none() => {
            let date = it.born_on_or_before.as_deref().map(|d| crate::cart::format_date(d, &lang));
            Some((it.name.clone(), date.unwrap_or_default()))
        }
        _ => None,
    };
    let (item, date) = question.unwrap_or_default();
    c.set_age_item(item.into());
    c.set_age_question(date.into());
}

/// Staff answered the register's age check: yes records the date asked; no takes the
/// age-restricted items out of the cart.
fn answer_age(k: &Rc<Kiosk>, yes: bool) {
    k.touch();
    let date = k.cart.borrow().items.iter().find(|i| i.age_restricted).and_then(|i| i.born_on_or_before.clone());
    if yes {
        *k.age_answer.borrow_mut() = date.map(crate::AgeAnswer::BornOnOrBefore);
        // Without a date from the daemon (an older edged) the answer still unblocks the sale.
        if k.age_answer.borrow().is_none() {
            *k.age_answer.borrow_mut() = Some(crate::AgeAnswer::BornOnOrBefore(String::new()));
        }
    } else {
        k.cart.borrow_mut().items.retain(|i| !i.age_restricted);
    }
    crate::with(|k, ui| {
        say(ui, if yes { "age-confirmed" } else { "age-removed" }, "", false);
        refresh_cart(k, ui)
    });
}

/// Finds a code (barcode first, then SKU) and adds the item; `lot` = (lot, expiry) from a
/// GS1 scan, for lot-tracked items.
pub fn add_code(k: &Rc<Kiosk>, code: &str, lot: Option<(String, String)>) {
    k.touch();
    if code.is_empty() {
        return;
    }
    let api = k.api.clone();
    let code = code.to_string();
    k.spawn(
        async move {
            match api.get::<CatalogItem>(&format!("/v1/catalog/barcode/{}", encode(&code))).await {
                Ok(it) => Ok(Some(it)),
                Err(e) if e.status() == Some(404) => {
                    let page = api.get::<ItemsPage>(&format!("/v1/catalog/items?q={}&limit=1", encode(&code))).await?;
                    Ok(page.items.into_iter().find(|i| i.sku.eq_ignore_ascii_case(&code)))
                }
                Err(e) => Err(e),
            }
            .map(|it| (it, code))
        },
        move |k, ui, r| match r {
            Ok((Some(it), _)) => add_item(k, ui, &it, lot),
            Ok((None, code)) => say(ui, "unknown-code", &code, true),
            Err(e) => show_error(ui, &e),
        },
    );
}

/// Adds a found item: weighed ones are weighed at once (staff), age-restricted ones wait
/// for staff at a self-serve screen.
pub fn add_item(k: &Rc<Kiosk>, ui: &AppWindow, it: &CatalogItem, lot: Option<(String, String)>) {
    *k.currency.borrow_mut() = it.currency.clone();
    let mut item = CartItem::from_catalog(it);
    if it.kind == "lot" {
        item.lot = lot;
    }
    if k.opts.mode == Mode::SelfServe {
        if item.weighed {
            super::selfserve::start_weighing(k, ui, item);
            return;
        }
        if item.age_restricted {
            ask_age(k, ui, item);
            return;
        }
    }
    // At the register an age-restricted item brings up the age check (refresh_cart).
    ui.global::<Session>().set_message_code("".into());
    let weighed = item.weighed;
    let i = k.cart.borrow_mut().add(item);
    ui.global::<CartAdapter>().set_selected(i as i32);
    refresh_cart(k, ui);
    if weighed {
        weigh(k, i);
    }
}

fn ask_age(k: &Rc<Kiosk>, ui: &AppWindow, item: CartItem) {
    let ss = ui.global::<SelfServeAdapter>();
    ss.set_age_check("waiting".into());
    ss.set_age_item(item.name.clone().into());
    let api = k.api.clone();
    let req = ApprovalIn { kind: "age".into(), screen: k.opts.screen_name.clone(), sku: Some(item.sku.clone()) };
    k.spawn(async move { api.post::<_, ApprovalOut>("/v1/approvals", &req).await }, move |k, ui, r| match r {
        Ok(a) => *k.age_check.borrow_mut() = Some(crate::AgeCheck { approval: a.id, item }),
        Err(e) => {
            ui.global::<SelfServeAdapter>().set_age_check("".into());
            show_error(ui, &e);
        }
    });
}

/// Reads the scale into a weighed line.
pub fn weigh(k: &Rc<Kiosk>, i: usize) {
    k.touch();
    let api = k.api.clone();
    k.spawn(async move { api.get::<ScaleOut>("/v1/scale").await }, move |k, ui, r| match r {
        Ok(s) if s.stable && s.grams > 0 => {
            if let Some(it) = k.cart.borrow_mut().items.get_mut(i) {
                it.grams = u32::try_from(s.grams).ok();
            }
            refresh_cart(k, ui);
        }
        Ok(s) if s.stable => say(ui, "scale-empty", "", true),
        Ok(s) => say(ui, "scale-unsteady", &s.status, true),
        Err(e) => show_error(ui, &e),
    });
}

#[derive(Clone, Copy)]
enum Adjust {
    Price,
    Discount,
}

/// Checks a manager's PIN with the daemon (a login that returns the role).
async fn manager(api: &crate::api::Api, pin: String) -> Result<Result<LoginOut, String>, crate::api::ApiError> {
    let who = api.post::<_, LoginOut>("/v1/login", &edge_api::LoginIn { pin }).await?;
    Ok(if who.role == "manager" { Ok(who) } else { Err(who.name) })
}

fn adjust(k: &Rc<Kiosk>, i: usize, what: Adjust, amount: String, pin: String) {
    k.touch();
    let minor = match parse_money(&amount) {
        Ok(m) => m,
        Err(e) => {
            crate::with(|_, ui| say(ui, "bad-amount", &e, true));
            return;
        }
    };
    let api = k.api.clone();
    let pin2 = pin.clone();
    k.spawn(async move { manager(&api, pin2).await }, move |k, ui, r| match r {
        Ok(Ok(_)) => {
            let mut cart = k.cart.borrow_mut();
            let Some(it) = cart.items.get_mut(i) else { return };
            match what {
                Adjust::Price => it.price_override = Some(minor),
                Adjust::Discount => it.discount_minor = minor,
            }
            drop(cart);
            *k.manager_pin.borrow_mut() = Some(pin);
            refresh_cart(k, ui);
            ui.global::<Session>().set_message_code("".into());
        }
        Ok(Err(name)) => say(ui, "not-manager", &name, true),
        Err(e) => show_error(ui, &e),
    });
}

fn void_cart(k: &Rc<Kiosk>, pin: String, reason: String) {
    k.touch();
    let (lines, total) = {
        let c = k.cart.borrow();
        (c.items.len() as u32, c.total_minor())
    };
    let reason = if reason.trim().is_empty() { "voided at the register".to_string() } else { reason };
    let api = k.api.clone();
    k.spawn(
        async move {
            match manager(&api, pin).await? {
                Ok(m) => {
                    let body = VoidIn { lines, total_minor: total, reason };
                    api.post_with::<_, serde_json::Value>("/v1/voids", &body, Some(&m.token), &[]).await?;
                    Ok(Ok(()))
                }
                Err(name) => Ok(Err(name)),
            }
        },
        |k, ui, r: Result<Result<(), String>, crate::api::ApiError>| match r {
            Ok(Ok(())) => {
                k.cart.borrow_mut().clear();
                *k.checkout.borrow_mut() = None;
                *k.manager_pin.borrow_mut() = None;
                refresh_cart(k, ui);
                say(ui, "voided", "", false);
            }
            Ok(Err(name)) => say(ui, "not-manager", &name, true),
            Err(e) => show_error(ui, &e),
        },
    );
}

fn cards(items: Vec<CatalogItem>, k: &Kiosk, lang: &str) -> ModelRc<ItemCard> {
    let mut wanted: Vec<(String, String)> = Vec::new();
    let v: Vec<ItemCard> = items
        .into_iter()
        .map(|i| {
            let picture = i.image.as_ref().and_then(|path| {
                let have = k.pictures.borrow().get(path).cloned();
                if have.is_none() {
                    wanted.push((i.sku.clone(), path.clone()));
                }
                have
            });
            ItemCard {
                has_picture: picture.is_some(),
                picture: picture.unwrap_or_default(),
                price: if i.kind == "weight" {
                    format!("{} / kg", crate::cart::format_money(i.price_minor, &i.currency, lang))
                } else {
                    crate::cart::format_money(i.price_minor, &i.currency, lang)
                }
                .into(),
                in_stock: i.stock.is_none_or(|s| s > 0),
                sku: i.sku.into(),
                name: i.name.into(),
                category: i.category.into(),
                weighed: i.kind == "weight",
                age_restricted: i.age_restricted,
            }
        })
        .collect();
    for (sku, path) in wanted {
        fetch_picture(k, sku, path);
    }
    ModelRc::new(VecModel::from(v))
}

/// Fetches an item's picture from the daemon once, keeps it for the session, and puts it
/// on the cards shown with that SKU. A picture that cannot be had leaves the category's
/// drawing in its place.
fn fetch_picture(k: &Kiosk, sku: String, path: String) {
    let api = k.api.clone();
    let p = path.clone();
    k.spawn(async move { api.get_bytes(&p).await }, move |k, ui, r| {
        let Ok((bytes, kind)) = r else { return };
        let Some(img) = crate::pictures::decode(&bytes, &kind) else { return };
        k.pictures.borrow_mut().insert(path, img.clone());
        let results = ui.global::<CatalogAdapter>().get_results();
        for row in 0..results.row_count() {
            if let Some(mut c) = results.row_data(row)
                && c.sku == sku.as_str()
            {
                c.picture = img.clone();
                c.has_picture = true;
                results.set_row_data(row, c);
            }
        }
    });
}

/// A new request for the item results; answers to older ones are dropped (a slow
/// category read must not replace the search typed after it).
fn next_results(k: &Kiosk) -> u64 {
    let g = k.results_gen.get() + 1;
    k.results_gen.set(g);
    g
}

/// The register's favourites, in the store's order.
fn favourites(k: &Rc<Kiosk>) {
    k.touch();
    crate::with(|_, ui| {
        let c = ui.global::<CatalogAdapter>();
        c.set_category("".into());
        c.set_favourites_shown(true);
        c.set_loading(true);
    });
    let generation = next_results(k);
    let api = k.api.clone();
    k.spawn(async move { api.get::<ItemsPage>("/v1/catalog/favourites").await }, move |k, ui, r| {
        if k.results_gen.get() != generation {
            return;
        }
        ui.global::<CatalogAdapter>().set_loading(false);
        match r {
            Ok(p) => {
                let lang = k.lang(ui);
                ui.global::<CatalogAdapter>().set_results(cards(p.items, k, &lang));
            }
            Err(e) => show_error(ui, &e),
        }
    });
}

fn search(k: &Rc<Kiosk>, q: String) {
    k.touch();
    if q.is_empty() {
        return;
    }
    crate::with(|_, ui| {
        let c = ui.global::<CatalogAdapter>();
        c.set_loading(true);
        c.set_category("".into());
        c.set_favourites_shown(false);
    });
    let generation = next_results(k);
    let api = k.api.clone();
    k.spawn(
        async move { api.get::<ItemsPage>(&format!("/v1/catalog/items?q={}&limit=50", encode(&q))).await },
        move |k, ui, r| {
            if k.results_gen.get() != generation {
                return;
            }
            ui.global::<CatalogAdapter>().set_loading(false);
            match r {
                Ok(p) => {
                    if p.items.is_empty() {
                        say(ui, "no-results", "", false);
                    }
                    let lang = k.lang(ui);
                    ui.global::<CatalogAdapter>().set_results(cards(p.items, k, &lang));
                }
                Err(e) => show_error(ui, &e),
            }
        },
    );
}

/// The items of a category (a few pages of the catalog; 40 at most on screen).
fn browse(k: &Rc<Kiosk>, category: String) {
    k.touch();
    crate::with(|_, ui| {
        let c = ui.global::<CatalogAdapter>();
        c.set_category(category.clone().into());
        c.set_favourites_shown(false);
        c.set_loading(true);
    });
    let generation = next_results(k);
    let api = k.api.clone();
    k.spawn(
        async move {
            let mut items = Vec::new();
            let mut cursor: Option<String> = None;
            for _ in 0..20 {
                let mut path = format!("/v1/catalog/items?q={}&limit=40", encode(&format!("category:{category}")));
                if let Some(c) = &cursor {
                    path.push_str(&format!("&cursor={}", encode(c)));
                }
                let p = api.get::<ItemsPage>(&path).await?;
                items.extend(p.items);
                cursor = p.next_cursor;
                if items.len() >= 40 || cursor.is_none() {
                    break;
                }
            }
            items.truncate(40);
            Ok(items)
        },
        move |k, ui, r: Result<Vec<CatalogItem>, crate::api::ApiError>| {
            if k.results_gen.get() != generation {
                return;
            }
            ui.global::<CatalogAdapter>().set_loading(false);
            match r {
                Ok(items) => {
                    let lang = k.lang(ui);
                    ui.global::<CatalogAdapter>().set_results(cards(items, k, &lang));
                }
                Err(e) => show_error(ui, &e),
            }
        },
    );
}

pub fn load_categories(k: &Rc<Kiosk>) {
    let api = k.api.clone();
    k.spawn(async move { api.get::<CategoriesOut>("/v1/catalog/categories").await }, |_, ui, r| match r {
        Ok(c) => {
            let v: Vec<CategoryCard> = c
                .categories
                .into_iter()
                .map(|c| CategoryCard { name: c.name.into(), items: i32::try_from(c.items).unwrap_or(i32::MAX) })
                .collect();
            ui.global::<CatalogAdapter>().set_categories(ModelRc::new(VecModel::from(v)));
        }
        Err(e) => show_error(ui, &e),
    });
}
