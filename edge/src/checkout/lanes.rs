//! The checkout's part of a store with several lanes (`[bus]`): before a commit, the last
//! units of an item and the amount of a refund are claimed store-wide through the store's
//! server (compare-and-swap in its claims bucket), so two lanes cannot sell the last unit
//! or refund the same line twice. When the server cannot be reached:
//!
//! * a low-stock item is sold from this lane's **share**: the units it showed when it first
//!   sold the item offline (kept in the store's meta, `escrow.<SKU>`), divided by the lanes
//!   of the store, rounded down; beyond it the sale is refused by name;
//! * a refund follows `[bus] offline_refunds`: `allow-and-flag` refunds up to what this lane
//!   knows is left and flags it for staff and the lanes' report; `refuse` refuses it.
//!
//! Claims are made only for items shown at or below `[bus] low_stock` units (weighed items
//! are counted in grams and never claimed), so a normal sale costs no round trip.

use super::Checkout;
use super::error::Refusal;
use super::ports::ClaimOutcome;
use edge_sync::domain::Sale;
use std::collections::BTreeMap;

fn escrow_key(sku: &str) -> String {
    format!("escrow.{sku}")
}

/// Units of `sku` sold here since the store's server was last reachable, and the units
/// shown when the first of them was sold (the share's base).
fn escrow(co: &Checkout, sku: &str) -> Result<Option<(i64, i64)>, Refusal> {
    let Some(v) = co.store.meta_get(&escrow_key(sku))? else { return Ok(None) };
    Ok(serde_json::from_slice::<(i64, i64)>(&v).ok())
}

/// Claims the last units of every low-stock line of `sale`, or refuses it.
pub fn claim_low_stock(co: &Checkout, sale: &Sale) -> Result<(), Refusal> {
    let (Some(bus), Some(claims)) = (&co.cfg.bus, co.lanes.get()) else { return Ok(()) };
    if bus.low_stock == 0 || sale.kind != edge_sync::domain::SaleKind::Sale {
        return Ok(());
    }
    let mut per_sku: BTreeMap<&str, i64> = BTreeMap::new();
    for l in &sale.lines {
        if matches!(l.quantity, edge_sync::domain::Quantity::Grams(_)) {
            continue;
        }
        *per_sku.entry(l.sku.as_str()).or_default() += i64::from(l.quantity.amount());
    }
    for (sku, qty) in per_sku {
        let Some(available) = co.store.stock(sku)?.available() else { continue };
        if available > bus.low_stock {
            continue;
        }
        match claims.claim_stock(sku, qty, available, sale.id) {
            ClaimOutcome::Granted => {
                // The server answers again: the offline share starts afresh next time.
                if escrow(co, sku)?.is_some() {
                    co.store.meta_set(&escrow_key(sku), b"null")?;
                }
            }
            ClaimOutcome::Refused(why) => {
                co.metrics.lanes_refused.inc();
                return Err(Refusal::conflict("out-of-stock", "Out of stock", why));
            }
            ClaimOutcome::Unreachable(why) => {
                let (sold, base) = escrow(co, sku)?.unwrap_or((0, available));
                let lanes = i64::from(claims.lanes().max(bus.lanes));
                let share = base.max(0) / lanes;
                if sold + qty > share {
                    co.metrics.lanes_refused.inc();
                    return Err(Refusal::conflict(
                        "out-of-stock",
                        "Out of stock",
                        format!(
                            "{sku}: the store's server cannot be reached ({why}); this lane's share of the last \
                             {base} units is {share} ({lanes} lanes), {sold} sold here meanwhile, {qty} wanted"
                        ),
                    ));
                }
                let v = serde_json::to_vec(&(sold + qty, base)).map_err(|e| Refusal::unavailable(e.to_string()))?;
                co.store.meta_set(&escrow_key(sku), &v)?;
                tracing::info!(%sku, qty, share, sold, "sold from this lane's offline share");
            }
        }
    }
    Ok(())
}

/// Claims a refund's lines store-wide. `Ok(Some(why))`: allowed while the store's server
/// could not be reached, to be flagged once committed.
pub fn claim_refund(
    co: &Checkout,
    orig: &Sale,
    refund: &Sale,
    done: &BTreeMap<u32, u64>,
) -> Result<Option<String>, Refusal> {
    let (Some(bus), Some(claims)) = (&co.cfg.bus, co.lanes.get()) else { return Ok(None) };
    let lines: Vec<(u32, u64, u64, u64)> = refund
        .lines
        .iter()
        .map(|l| {
            let sold = orig.lines.iter().find(|o| o.line_no == l.line_no).map_or(0, |o| u64::from(o.quantity.amount()));
            (l.line_no, u64::from(l.quantity.amount()), sold, done.get(&l.line_no).copied().unwrap_or(0))
        })
        .collect();
    match claims.claim_refund(orig.id, refund.id, &lines) {
        ClaimOutcome::Granted => Ok(None),
        ClaimOutcome::Refused(why) => {
            co.metrics.lanes_refused.inc();
            Err(Refusal::conflict("refunded-elsewhere", "Refunded already", why))
        }
        ClaimOutcome::Unreachable(why) => match bus.offline_refunds {
            edge_sync::bus::OfflineRefunds::AllowAndFlag => Ok(Some(why)),
            edge_sync::bus::OfflineRefunds::Refuse => {
                co.metrics.lanes_refused.inc();
                Err(Refusal::conflict(
                    "refund-needs-bus",
                    "Refund needs the store's server",
                    format!(
                        "the store's server cannot be reached ({why}), and [bus] offline_refunds = \"refuse\": \
                         refund it at lane {} or once the server is back",
                        orig.lane.as_deref().unwrap_or("?")
                    ),
                ))
            }
        },
    }
}

/// A refund allowed while the store's server could not be reached: flagged for staff.
pub fn flag_offline_refund(co: &Checkout, refund: &Sale, orig: &Sale, why: &str) {
    let flag = edge_sync::store::LaneFlag {
        id: uuid::Uuid::now_v7(),
        at: refund.created_at,
        kind: "offline-refund".into(),
        lane: co.cfg.lane_id.clone(),
        record_id: refund.id,
        detail: format!(
            "refund {} of sale {} (lane {}) for {} made while the store's server could not be reached ({why}); \
             another lane may have refunded it too",
            refund.id,
            orig.id,
            orig.lane.as_deref().unwrap_or("?"),
            refund.total()
        ),
    };
    co.metrics.lanes_flagged.inc();
    match co.store.put_lane_flag(&flag) {
        Ok(()) => {
            let _ = co.ports.events.send(edge_api::Event::StaffAlert {
                at: refund.created_at.to_string(),
                text: format!("Refund made without the store's server: {}", flag.detail),
            });
        }
        Err(e) => tracing::error!(error = %e, refund = %refund.id, "flag of an offline refund not written"),
    }
}
