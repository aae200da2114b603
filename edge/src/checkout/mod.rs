//! Checkout: what happens to a sale, a refund or a stock adjustment once it is durable.
//!
//! The path of a record is admit (disk guard, shutdown gate) → price → tender (cash, or
//! card through the payment state machine in payments.rs) → commit (one journaled,
//! fdatasynced store transaction) → **after the commit** (this module). The request is
//! answered as soon as the commit is durable; everything after it is here, the same for
//! every way a record is committed — a sale or refund from the API, a card sale finished by
//! the recovery loop after a restart, a payment settled by a manager, a stock adjustment:
//!
//! - the sync engine is woken (records reach the remotes without waiting for its idle
//!   timer), metrics count it, `sale.completed` goes to the screens;
//! - the peripherals — drawer kick, receipt, pole display — are queued on [`after`]'s own
//!   thread, which never waits for a device; their outcomes come back as events and as the
//!   sale's receipt state.
//!
//! Nothing here can fail a commit that has happened: every outcome is reported, none is
//! returned to the request.

pub mod after;

use crate::app::App;
use edge_api::Event;
use edge_sync::domain::{Sale, SaleKind, Tender};
use jiff::Timestamp;

/// How a sale was committed (for the log and the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Answered to the request that made it.
    Request,
    /// Finished by the payment recovery loop after a restart, or settled by a manager.
    Recovery,
}

/// After a sale or refund is durable: engine, metrics, events, then the peripherals.
pub fn after_sale(app: &App, sale: &Sale, print: bool, origin: Origin) {
    app.engine.wake();
    let refund = sale.kind == SaleKind::Refund;
    if refund {
        tracing::info!(refund_id = %sale.id, sale_id = ?sale.refund_of, total = %sale.total(), ?origin, "refund committed");
    } else {
        app.metrics.sales_committed.inc();
        tracing::info!(sale_id = %sale.id, total = %sale.total(), lines = sale.lines.len(), ?origin, "sale committed");
    }
    let _ = app.events.send(Event::SaleCompleted {
        at: Timestamp::now().to_string(),
        sale_id: sale.id,
        total_minor: sale.total_minor,
        currency: sale.currency.to_string(),
        business_date: sale.business_date.to_string(),
    });
    let cash = sale.change_minor > 0 || sale.tenders.iter().any(|t| matches!(t, Tender::Cash { .. }));
    app.after.submit(after::Job {
        sale: sale.clone(),
        drawer: cash,
        // A refund's receipt is asked for by staff (a copy), not printed by itself.
        print: print && !refund,
        copy: false,
        display: !refund,
    });
}

/// After a stock adjustment is durable: the engine delivers it without waiting.
pub fn after_adjustment(app: &App) {
    app.engine.wake();
}

/// A copy of a sale's receipt, asked for by staff (or the customer's own, once, at a kiosk).
pub fn reprint(app: &App, sale: &Sale, copy: bool) {
    app.after.submit(after::Job { sale: sale.clone(), drawer: false, print: true, copy, display: false });
}

/// The printed receipt of a sale (its copy marked so).
pub fn receipt(store_name: &str, sale: &Sale, copy: bool) -> edge_drivers::escpos::Receipt {
    let lines: Vec<(String, String)> = sale
        .lines
        .iter()
        .map(|l| (l.name.clone(), edge_sync::Money::new(l.gross_minor, sale.currency).to_string()))
        .collect();
    let card: Vec<String> = sale
        .tenders
        .iter()
        .filter_map(|t| match t {
            Tender::Card { card: Some(c), .. } => Some(c.receipt.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    let head = if copy { format!("{store_name} - COPY") } else { store_name.to_string() };
    crate::devices::receipt_of(&head, &lines, &sale.total().to_string(), &sale.id.to_string(), &card)
}

/// Starts the after-commit worker with the daemon's devices and event bus.
pub fn spawn(app: &std::sync::Arc<App>) {
    let weak = std::sync::Arc::downgrade(app);
    let store_name = app.cfg.store_name.clone();
    app.after.spawn(after::Ports {
        devices: std::sync::Arc::new(move || weak.upgrade().and_then(|a| a.devices.get().cloned())),
        events: app.events.clone(),
        receipt: std::sync::Arc::new(move |s, copy| receipt(&store_name, s, copy)),
    });
}
