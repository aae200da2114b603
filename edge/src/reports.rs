//! X and Z reports. An X report is the running totals since the last Z (sales, tax, cash,
//! card, card taken offline, change); a Z report is the same, closed: the terminal runs its
//! end-of-day (which forwards offline payments and settles its batch), the totals are kept
//! in the store with a sequence number, and the next X starts after the last sale it
//! covered.

use crate::checkout::Checkout;
use edge_sync::domain::{Sale, Tender};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const META_LAST_Z: &str = "reports.last_z";

pub use edge_api::{Report, Totals};

/// Adds a sale to the totals (a refund counts against them: money going back).
fn add(t: &mut Totals, s: &Sale) {
    {
        // A refund counts against the totals: money going back.
        let sign = match s.kind {
            edge_sync::domain::SaleKind::Sale => {
                t.sales += 1;
                1
            }
            edge_sync::domain::SaleKind::Refund => {
                t.refunds += 1;
                t.refunds_minor += s.total_minor;
                -1
            }
        };
        t.total_minor += sign * s.total_minor;
        t.tax_minor += sign * s.tax_minor;
        t.change_minor += s.change_minor;
        for tender in &s.tenders {
            match tender {
                Tender::Cash { amount_minor } => t.cash_minor += sign * amount_minor,
                Tender::Card { amount_minor, card, .. } => {
                    t.card_minor += sign * amount_minor;
                    if card.as_ref().is_some_and(|c| c.offline) {
                        t.card_offline_minor += sign * amount_minor;
                    }
                }
            }
        }
        t.cash_in_drawer_minor = t.cash_minor - t.change_minor;
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct LastZ {
    number: u64,
    last_sale: Option<Uuid>,
}

fn last_z(app: &Checkout) -> Result<LastZ, String> {
    match app.store.meta_get(META_LAST_Z).map_err(|e| e.to_string())? {
        Some(v) => serde_json::from_slice(&v).map_err(|e| format!("the last Z record is unreadable: {e}")),
        None => Ok(LastZ::default()),
    }
}

/// The running totals since the last Z.
pub fn x_report(app: &Checkout) -> Result<Report, String> {
    let z = last_z(app)?;
    let mut r = Report {
        kind: "x".into(),
        number: z.number + 1,
        currency: app.cfg.currency.to_string(),
        from_sale: None,
        to_sale: None,
        first_at: None,
        last_at: None,
        totals: Totals::default(),
        terminal: None,
        terminal_receipt: Vec::new(),
        made_at: Timestamp::now().to_string(),
        lanes: Vec::new(),
        store_totals: None,
    };
    let mut after = z.last_sale;
    loop {
        let page = app.store.sales_page(after.as_ref(), 1000).map_err(|e| e.to_string())?;
        for s in &page {
            if r.from_sale.is_none() {
                r.from_sale = Some(s.id);
                r.first_at = Some(s.created_at.to_string());
            }
            r.to_sale = Some(s.id);
            r.last_at = Some(s.created_at.to_string());
            add(&mut r.totals, s);
        }
        match page.last() {
            Some(s) if page.len() == 1000 => after = Some(s.id),
            _ => break,
        }
    }
    Ok(r)
}

/// Closes the totals: terminal end-of-day (offline payments forwarded), Z kept, next X after it.
pub fn z_report(app: &Checkout) -> Result<Report, String> {
    let mut r = x_report(app)?;
    r.kind = "z".into();
    if app.peripherals().is_some_and(|d| d.terminal_id().is_some()) {
        let (o, _) = crate::checkout::payments::end_of_day(app)
            .map_err(|f| format!("the terminal's end-of-day failed, the Z report is not closed: {f}"))?;
        if !o.approved {
            return Err(format!("the terminal's end-of-day was refused ({}); the Z report is not closed", o.text));
        }
        r.terminal = o.info.as_ref().and_then(|i| i.text.clone());
        r.terminal_receipt = o.receipt.clone();
    }
    let z = LastZ { number: r.number, last_sale: r.to_sale.or(last_z(app)?.last_sale) };
    let v = serde_json::to_vec(&z).map_err(|e| e.to_string())?;
    app.store.meta_set(META_LAST_Z, &v).map_err(|e| e.to_string())?;
    app.store.sync().map_err(|e| e.to_string())?;
    if app.cfg.bus.is_some() {
        // The other lanes' store-wide X starts this lane's part after this Z.
        let note = edge_sync::bus::LaneMessage::Z {
            lane: app.cfg.lane_id.clone(),
            number: z.number,
            last_sale: z.last_sale,
            at: Timestamp::now(),
        };
        app.store.queue_lane_note(&note).map_err(|e| e.to_string())?;
    }
    Ok(r)
}

fn sum(into: &mut Totals, t: &Totals) {
    into.sales += t.sales;
    into.refunds += t.refunds;
    into.refunds_minor += t.refunds_minor;
    into.total_minor += t.total_minor;
    into.tax_minor += t.tax_minor;
    into.cash_minor += t.cash_minor;
    into.card_minor += t.card_minor;
    into.card_offline_minor += t.card_offline_minor;
    into.change_minor += t.change_minor;
    into.cash_in_drawer_minor += t.cash_in_drawer_minor;
}

/// The X report of the whole store: this lane's, then every other lane's since its own
/// last Z (as far as the bus has brought its sales here), and the store's total.
pub fn store_x_report(app: &Checkout) -> Result<Report, String> {
    let mut r = x_report(app)?;
    let mut total = r.totals.clone();
    r.lanes.push(edge_api::LaneTotals { lane: app.cfg.lane_id.clone(), number: r.number, totals: r.totals.clone() });
    for seen in app.store.lanes_seen().map_err(|e| e.to_string())? {
        let mut t = Totals::default();
        let mut after = seen.z_last_sale;
        loop {
            let page = app.store.lane_sales_page(&seen.lane, after.as_ref(), 1000).map_err(|e| e.to_string())?;
            for s in &page {
                add(&mut t, s);
            }
            match page.last() {
                Some(s) if page.len() == 1000 => after = Some(s.id),
                _ => break,
            }
        }
        sum(&mut total, &t);
        r.lanes.push(edge_api::LaneTotals { lane: seen.lane, number: seen.z_number + 1, totals: t });
    }
    r.store_totals = Some(total);
    Ok(r)
}
