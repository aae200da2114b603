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
                let v =
                    api.post_with::<_, Report>("/v1/reports/z", &serde_json::json!({}), Some(&m.token), &[]).await?;
                Ok(Ok(v))
            },
            |k, ui, r: Result<Result<Report, String>, crate::api::ApiError>| match r {
                Ok(Ok(v)) => show_report(k, ui, &v),
                Ok(Err(name)) => say(ui, "not-manager", &name, true),
                Err(e) => show_error(ui, &e),
            },
        );
    });
    let kk = k.clone();
    r.on_load_sales(move || load_sales(&kk));
    let kk = k.clone();
    r.on_refund(move |id, tender, reason, pin| {
        let api = kk.api.clone();
        let (id, tender, reason, pin) = (id.to_string(), tender.to_string(), reason.to_string(), pin.to_string());
        // The key is derived from the sale, never made anew on a retry: asking again after a
        // lost answer returns the first refund (another tender under it is a 409).
        let key = format!("refund-all-{id}");
        kk.spawn(
            async move {
                let m = api.post::<_, LoginOut>("/v1/login", &LoginIn { pin }).await?;
                if m.role != "manager" {
                    return Ok(Err(m.name));
                }
                let body = RefundIn { lines: None, tender, reason, cashier: None };
                let headers = [("idempotency-key", key)];
                let r = api
                    .post_with::<_, SaleOut>(&format!("/v1/sales/{id}/refunds"), &body, Some(&m.token), &headers)
                    .await?;
                Ok(Ok(r))
            },
            |k, ui, r: Result<Result<SaleOut, String>, crate::api::ApiError>| match r {
                Ok(Ok(refund)) => {
                    say(ui, "refunded", &k.money(ui, refund.total_minor), false);
                    load_sales(k);
                }
                Ok(Err(name)) => say(ui, "not-manager", &name, true),
                Err(e) => show_error(ui, &e),
            },
        );
    });
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

/// Today's sales: UUID v7 ids are time-ordered, so the page after the smallest id of
/// 24 hours ago holds them (at most 10 pages of 100; the newest 40 are shown).
pub fn load_sales(k: &Rc<Kiosk>) {
    let api = k.api.clone();
    let since_ms = jiff::Timestamp::now().as_millisecond() - 24 * 3600 * 1000;
    let floor = Uuid::from_u128(((since_ms.max(0) as u128) << 80) | (0x7u128 << 76) | (0x2u128 << 62));
    k.spawn(
        async move {
            let mut sales = Vec::new();
            let mut cursor = Some(floor.to_string());
            for _ in 0..10 {
                let Some(c) = cursor.take() else { break };
                let p = api.get::<SalesPage>(&format!("/v1/sales?limit=100&cursor={c}")).await?;
                sales.extend(p.sales);
                cursor = p.next_cursor;
            }
            Ok(sales)
        },
        |k, ui, r: Result<Vec<SaleOut>, crate::api::ApiError>| match r {
            Ok(sales) => {
                let rows: Vec<SaleRow> = sales
                    .iter()
                    .rev()
                    .take(40)
                    .map(|s| SaleRow {
                        id: s.id.to_string().into(),
                        short_id: s
                            .id
                            .to_string()
                            .chars()
                            .rev()
                            .take(8)
                            .collect::<String>()
                            .chars()
                            .rev()
                            .collect::<String>()
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
