//! X and Z reports, today's sales and refunds (a manager's PIN for Z and refunds).

use super::show_error;
use crate::{AppWindow, Kiosk, ReportRow, ReportsAdapter, SaleRow, say};
use edge_api::{LoginIn, LoginOut, RefundIn, Report, SaleOut, SalesPage};
use slint::{ComponentHandle, ModelRc, VecModel};
use std::rc::Rc;
use uuid::Uuid;

pub fn wire(ui: &AppWindow, k: &Rc<Kiosk>) {
    let r = ui.global::<ReportsAdapter>();
    let kk = k.clone();
    r.on_x_report(move || {
        let api = kk.api.clone();
        kk.spawn(async move { api.get::<Report>("/v1/reports/x").await }, |k, ui, r| match r {
            Ok(v) => show_report(k, ui, &v),
            Err(e) => show_error(ui, &e),
        });
    });
    // Z, step 1: the PIN is a manager's; the day's figures (an X report) are shown with
    // the question. Step 2 closes the day with the manager's token kept from step 1.
    let kk = k.clone();
    r.on_z_report(move |pin| {
        let api = kk.api.clone();
        let pin = pin.to_string();
        kk.spawn(
            async move {
                let m = api.post::<_, LoginOut>("/v1/login", &LoginIn { pin }).await?;
                if m.role != "manager" {
                    return Ok(Err(m.name));
                }
                let x = api.get::<Report>("/v1/reports/x").await?;
                Ok(Ok((m.token, x)))
            },
            |k, ui, r: Result<Result<(String, Report), String>, crate::api::ApiError>| match r {
                Ok(Ok((token, x))) => {
                    *k.z_token.borrow_mut() = Some(token);
                    show_report(k, ui, &x);
                    let r = ui.global::<ReportsAdapter>();
                    r.set_z_sales(x.totals.sales.to_string().into());
                    r.set_z_total(k.money(ui, x.totals.total_minor).into());
                    r.set_z_cash(k.money(ui, x.totals.cash_in_drawer_minor).into());
                    r.set_z_confirm(true);
                }
                Ok(Err(name)) => say(ui, "not-manager", &name, true),
                Err(e) => show_error(ui, &e),
            },
        );
    });
    let kk = k.clone();
    r.on_z_cancelled(move || {
        *kk.z_token.borrow_mut() = None;
        crate::with(|_, ui| ui.global::<ReportsAdapter>().set_z_confirm(false));
    });
    let kk = k.clone();
    r.on_z_confirmed(move || {
        let Some(token) = kk.z_token.borrow_mut().take() else { return };
        crate::with(|_, ui| ui.global::<ReportsAdapter>().set_z_confirm(false));
        let api = kk.api.clone();
        kk.spawn(
            async move { api.post_with::<_, Report>("/v1/reports/z", &serde_json::json!({}), Some(&token), &[]).await },
            |k, ui, r| match r {
                Ok(v) => show_report(k, ui, &v),
                Err(e) => show_error(ui, &e),
            },
        );
    });
    let kk = k.clone();
    r.on_load_sales(move || load_sales(&kk));
    let kk = k.clone();
    r.on_shift_day(move |d| {
        {
            let mut f = kk.sales_filter.borrow_mut();
            // Back as far as a year; never past today.
            f.0 = (f.0 + d).clamp(-366, 0);
        }
        load_sales(&kk);
    });
    let kk = k.clone();
    r.on_filter_amount(move |t| {
        let t = t.trim();
        let parsed = if t.is_empty() { Ok(None) } else { crate::cart::parse_money(t).map(Some) };
        match parsed {
            Ok(a) => {
                kk.sales_filter.borrow_mut().1 = a;
                crate::with(|_, ui| ui.global::<ReportsAdapter>().set_sales_amount_bad(false));
                load_sales(&kk);
            }
            Err(_) => {
                crate::with(|_, ui| ui.global::<ReportsAdapter>().set_sales_amount_bad(true));
            }
        }
    });
    let kk = k.clone();
    r.on_find(move |code| find(&kk, code.trim()));
    let kk = k.clone();
    r.on_choose(move |i, d| choose(&kk, i as usize, d));
    let kk = k.clone();
    r.on_close_sale(move || {
        *kk.refund.borrow_mut() = None;
        crate::with(show_draft);
    });
    let kk = k.clone();
    r.on_refund_chosen(move |reason, pin| refund_chosen(&kk, reason.to_string(), pin.to_string()));
}

/// A refund being picked from a sale: the sale as the daemon has it (with what each line
/// has refunded already), the quantities chosen, and the idempotency key made when it was
/// opened (a retry after a lost answer returns the first refund).
#[derive(Debug, Clone)]
pub struct RefundDraft {
    pub sale: SaleOut,
    pub chosen: Vec<u32>,
    pub key: Uuid,
}

impl RefundDraft {
    fn sold(l: &edge_api::SaleLineOut) -> u32 {
        l.qty.or(l.weight_g).unwrap_or(0)
    }

    fn left(l: &edge_api::SaleLineOut) -> u32 {
        Self::sold(l).saturating_sub(u32::try_from(l.refunded).unwrap_or(u32::MAX))
    }

    /// What the chosen quantities give back: each line's amount pro rata, rounded half up
    /// as the daemon rounds it.
    pub fn amount_minor(&self) -> i64 {
        self.sale
            .lines
            .iter()
            .zip(&self.chosen)
            .map(|(l, c)| {
                let sold = i128::from(Self::sold(l).max(1));
                ((i128::from(l.gross_minor) * i128::from(*c) * 2 + sold) / (2 * sold)) as i64
            })
            .sum()
    }
}

/// Opens the sale with this receipt number (or id) for a refund.
pub fn find(k: &Rc<Kiosk>, code: &str) {
    k.touch();
    if code.is_empty() {
        return;
    }
    let api = k.api.clone();
    let path = format!("/v1/sales/{}", super::encode(code));
    k.spawn(async move { api.get::<SaleOut>(&path).await }, |k, ui, r| match r {
        Ok(sale) if sale.kind == "refund" => {
            say(ui, "refund-of-refund", sale.receipt_no.as_deref().unwrap_or(""), true)
        }
        Ok(sale) => {
            let chosen = vec![0; sale.lines.len()];
            *k.refund.borrow_mut() = Some(RefundDraft { sale, chosen, key: Uuid::now_v7() });
            ui.global::<crate::Session>().set_message_code("".into());
            show_draft(k, ui);
        }
        Err(e) => show_error(ui, &e),
    });
}

fn choose(k: &Rc<Kiosk>, i: usize, delta: i32) {
    k.touch();
    if let Some(d) = k.refund.borrow_mut().as_mut()
        && let (Some(l), Some(c)) = (d.sale.lines.get(i), d.chosen.get_mut(i))
    {
        let left = RefundDraft::left(l);
        *c = if l.weight_g.is_some() {
            // A weighed line goes back whole (what is left of it) or not at all.
            if delta > 0 { left } else { 0 }
        } else if delta > 0 {
            (*c + 1).min(left)
        } else {
            c.saturating_sub(1)
        };
    }
    crate::with(show_draft);
}

fn show_draft(k: &Rc<Kiosk>, ui: &AppWindow) {
    let r = ui.global::<ReportsAdapter>();
    let draft = k.refund.borrow();
    let Some(d) = draft.as_ref() else {
        r.set_open_id("".into());
        r.set_open_lines(ModelRc::default());
        return;
    };
    let s = &d.sale;
    let lang = k.lang(ui);
    let card = s.tenders.iter().any(|t| t.kind == "card");
    let when = s
        .created_at
        .parse::<jiff::Timestamp>()
        .map(|t| {
            let z = t.to_zoned(jiff::tz::TimeZone::system());
            format!(
                "{} {}",
                crate::cart::format_date(&z.date().to_string(), &lang),
                edge_api::locale::time(z.hour(), z.minute())
            )
        })
        .unwrap_or_default();
    r.set_open_id(s.id.to_string().into());
    r.set_open_receipt(s.receipt_no.clone().unwrap_or_else(|| s.id.to_string()).into());
    r.set_open_info(format!("{when} · {}", k.money(ui, s.total_minor)).into());
    r.set_open_tender(if card { "card" } else { "cash" }.into());
    let lines: Vec<crate::RefundLine> = s
        .lines
        .iter()
        .zip(&d.chosen)
        .map(|(l, c)| crate::RefundLine {
            line_no: l.line_no as i32,
            name: l.name.clone().into(),
            sold: match l.weight_g {
                Some(g) => crate::cart::format_kg(g, &lang),
                None => l.qty.unwrap_or(0).to_string(),
            }
            .into(),
            left: RefundDraft::left(l) as i32,
            left_text: match l.weight_g {
                Some(_) => crate::cart::format_kg(RefundDraft::left(l), &lang),
                None => RefundDraft::left(l).to_string(),
            }
            .into(),
            chosen: *c as i32,
            weighed: l.weight_g.is_some(),
            amount: k.money(ui, l.gross_minor).into(),
        })
        .collect();
    r.set_open_lines(ModelRc::new(VecModel::from(lines)));
    let amount = d.amount_minor();
    r.set_refund_amount(k.money(ui, amount).into());
    r.set_refund_ready(amount > 0);
}

/// Refunds the chosen lines back the way the sale was paid, with a manager's PIN.
fn refund_chosen(k: &Rc<Kiosk>, reason: String, pin: String) {
    k.touch();
    let Some(d) = k.refund.borrow().clone() else { return };
    let card = d.sale.tenders.iter().any(|t| t.kind == "card");
    let lines: Vec<edge_api::RefundLineIn> = d
        .sale
        .lines
        .iter()
        .zip(&d.chosen)
        .filter(|(_, c)| **c > 0)
        .map(|(l, c)| edge_api::RefundLineIn {
            line_no: l.line_no,
            qty: if l.weight_g.is_some() { None } else { Some(*c) },
        })
        .collect();
    let body = RefundIn {
        lines: Some(lines),
        tender: if card { "card" } else { "cash" }.into(),
        reason,
        cashier: k.staff_id.borrow().clone(),
    };
    let (api, id, key) = (k.api.clone(), d.sale.id, d.key.to_string());
    k.spawn(
        async move {
            let m = api.post::<_, LoginOut>("/v1/login", &LoginIn { pin }).await?;
            if m.role != "manager" {
                return Ok(Err(m.name));
            }
            let headers = [("idempotency-key", key)];
            let r = api
                .post_with::<_, SaleOut>(&format!("/v1/sales/{id}/refunds"), &body, Some(&m.token), &headers)
                .await?;
            Ok(Ok(r))
        },
        |k, ui, r: Result<Result<SaleOut, String>, crate::api::ApiError>| match r {
            Ok(Ok(refund)) => {
                say(ui, "refunded", &k.money(ui, refund.total_minor), false);
                *k.refund.borrow_mut() = None;
                show_draft(k, ui);
                load_sales(k);
            }
            Ok(Err(name)) => say(ui, "not-manager", &name, true),
            Err(e) => show_error(ui, &e),
        },
    );
}

/// Report lines: a code (translated in the .slint files) and the value.
fn show_report(k: &Rc<Kiosk>, ui: &AppWindow, v: &Report) {
    let r = ui.global::<ReportsAdapter>();
    r.set_title(v.kind.as_str().into());
    r.set_number(i32::try_from(v.number).unwrap_or(i32::MAX));
    let t = &v.totals;
    let counts = [("sales", t.sales), ("refunds", t.refunds)];
    let amounts = [
        ("total_minor", t.total_minor),
        ("tax_minor", t.tax_minor),
        ("cash_minor", t.cash_minor),
        ("card_minor", t.card_minor),
        ("card_offline_minor", t.card_offline_minor),
        ("change_minor", t.change_minor),
        ("refunds_minor", t.refunds_minor),
        ("cash_in_drawer_minor", t.cash_in_drawer_minor),
    ];
    let mut rows: Vec<ReportRow> =
        counts.iter().map(|(key, n)| ReportRow { label: (*key).into(), value: n.to_string().into() }).collect();
    rows.extend(amounts.iter().map(|(key, n)| ReportRow { label: (*key).into(), value: k.money(ui, *n).into() }));
    if let Some(term) = &v.terminal {
        rows.push(ReportRow { label: "terminal".into(), value: term.as_str().into() });
    }
    r.set_rows(ModelRc::new(VecModel::from(rows)));
}

/// The sales of the business day chosen on the refunds screen (today unless staff went
/// back), of one total if staff typed one: the daemon searches its journal by date and
/// total (`GET /v1/sales?date=&total_minor=`); the newest 40 are shown.
pub fn load_sales(k: &Rc<Kiosk>) {
    let api = k.api.clone();
    let (offset, amount) = *k.sales_filter.borrow();
    let day =
        jiff::Zoned::now().date().checked_add(jiff::Span::new().days(offset)).unwrap_or(jiff::Zoned::now().date());
    crate::with(|k, ui| {
        let r = ui.global::<ReportsAdapter>();
        r.set_sales_day(crate::cart::format_date(&day.to_string(), &k.lang(ui)).into());
        r.set_sales_today(offset == 0);
    });
    let generation = k.sales_gen.get() + 1;
    k.sales_gen.set(generation);
    let mut base = format!("/v1/sales?limit=500&date={day}");
    if let Some(a) = amount {
        base.push_str(&format!("&total_minor={a}"));
    }
    k.spawn(
        async move {
            let mut sales = Vec::new();
            let mut path = base.clone();
            for _ in 0..10 {
                let p = api.get::<SalesPage>(&path).await?;
                sales.extend(p.sales);
                match p.next_cursor {
                    Some(c) => path = format!("{base}&cursor={c}"),
                    None => break,
                }
            }
            Ok(sales)
        },
        move |k, ui, r: Result<Vec<SaleOut>, crate::api::ApiError>| match r {
            // A newer request (another day or amount) is on its way: this answer is stale.
            _ if k.sales_gen.get() != generation => {}
            Ok(sales) => {
                let rows: Vec<SaleRow> = sales
                    .iter()
                    .rev()
                    .take(40)
                    .map(|s| SaleRow {
                        id: s.id.to_string().into(),
                        // The receipt number people read (older sales: the id's tail).
                        short_id: s
                            .receipt_no
                            .clone()
                            .unwrap_or_else(|| {
                                let id = s.id.to_string();
                                id[id.len() - 8..].to_string()
                            })
                            .into(),
                        time: s
                            .created_at
                            .parse::<jiff::Timestamp>()
                            .map(|t| t.to_zoned(jiff::tz::TimeZone::system()).strftime("%H:%M").to_string())
                            .unwrap_or_default()
                            .into(),
                        total: k.money(ui, s.total_minor).into(),
                        kind: if s.kind.is_empty() { "sale".into() } else { s.kind.clone().into() },
                    })
                    .collect();
                ui.global::<ReportsAdapter>().set_sales(ModelRc::new(VecModel::from(rows)));
            }
            Err(e) => show_error(ui, &e),
        },
    );
}
