//! Stock adjustments made at the edge (`POST /v1/stock/adjustments`): a manager's count,
//! write-off or receipt, as a signed delta that the store commits durably with one outbox
//! entry per remote of `routing.adjustments` (NetSuite upserts it as an `inventoryAdjustment`
//! by external id, the cloud keeps it as a `stock.adjusted` event), so a replay never
//! adjusts twice. Local stock moves at once; a pull from the stock source drops the delta
//! once the source has it (the same rebase as sales).

use super::error::{Refusal, RefusalKind};
use super::order::AdjustOrder;
use crate::config::Config;
use edge_sync::domain::{AdjustReason, ItemKind, StockAdjustment, business_date, new_id};
use edge_sync::store::Store;
use jiff::Timestamp;

/// Largest adjustment of a unit item (units) and of a weighed item (grams: 100 t).
pub const MAX_UNITS: i64 = 1_000_000;
pub const MAX_GRAMS: i64 = 100_000_000;
/// Longest note.
pub const MAX_NOTE: usize = 200;

fn bad(field: &str, detail: impl Into<String>) -> Refusal {
    Refusal::unprocessable("bad-adjustment", "Stock adjustment refused", field.into(), detail)
}

/// The reason a request names, or the field's error.
pub fn reason(s: &str) -> Result<AdjustReason, Refusal> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
        bad("reason", format!("{s:?} is not count, damaged, theft, received, returned_to_vendor or correction"))
    })
}

/// Checks a request against the catalog and makes the adjustment (not stored yet).
pub fn build(
    req: &AdjustOrder,
    store: &dyn Store,
    cfg: &Config,
    now: Timestamp,
    request_id: &str,
    actor: &str,
) -> Result<StockAdjustment, Refusal> {
    let reason = reason(&req.reason)?;
    let note = req.note.clone().unwrap_or_default();
    if note.chars().count() > MAX_NOTE || note.chars().any(char::is_control) {
        return Err(bad("note", format!("a note is up to {MAX_NOTE} printable characters")));
    }
    let item = store.item(&req.sku)?.ok_or_else(|| Refusal {
        kind: RefusalKind::NotFound,
        slug: "unknown-item",
        title: "Unknown item",
        detail: format!("no item has SKU {:?}", req.sku),
        field: Some("sku".into()),
    })?;
    let by_weight = item.kind == ItemKind::Weight;
    let max = if by_weight { MAX_GRAMS } else { MAX_UNITS };
    if req.delta == 0 || req.delta.abs() > max {
        let unit = if by_weight { "grams" } else { "units" };
        return Err(bad("delta", format!("a delta of 1 to {max} {unit}, up or down (not 0); got {}", req.delta)));
    }
    Ok(StockAdjustment {
        id: new_id(),
        store_id: cfg.store_id.clone(),
        sku: item.sku,
        delta: req.delta,
        by_weight,
        reason,
        note,
        created_at: now,
        business_date: business_date(now, &cfg.timezone, cfg.business_day_start),
        request_id: request_id.to_string(),
        actor: actor.to_string(),
    })
}
