//! The sale workflow's first step: turning a `POST /v1/sales` body into a priced, settled
//! domain [`Sale`], or a refusal that names the field at fault. Nothing here writes: a
//! refused sale leaves no trace in the store.

use super::error::{Refusal, RefusalKind};
use super::order::{RefundOrder, SaleOrder};
use crate::config::Config;
use edge_sync::domain::{
    AdjustError, ItemKind, LineError, LineRequest, Lot, Sale, SaleStatus, Tender, TenderError, adjust_line,
    business_date, new_id, price_line, settle,
};
use edge_sync::store::Store;
use jiff::Timestamp;

/// Most tenders on one sale.
pub const MAX_TENDERS: usize = 20;

/// Fills `weight_g` of the lines that ask for the scale (`from_scale: true`) with a stable
/// weight, or refuses naming the line. `weigh` asks the scale.
pub fn weigh_lines(req: &mut SaleOrder, weigh: &dyn Fn() -> Result<i64, String>) -> Result<(), Refusal> {
    for (i, l) in req.lines.iter_mut().enumerate() {
        if l.from_scale != Some(true) {
            continue;
        }
        let field = format!("lines[{i}].from_scale");
        if l.weight_g.is_some() || l.qty.is_some() {
            return Err(Refusal::unprocessable(
                "bad-line",
                "Weight given twice",
                field,
                "give weight_g or from_scale, not both (and no qty)",
            ));
        }
        match weigh() {
            Ok(g) => l.weight_g = Some(g),
            Err(why) => return Err(Refusal::unprocessable("scale-refused", "No usable weight", field, why)),
        }
    }
    Ok(())
}

/// Prices and settles a sale request against the catalog. `now` is UTC.
pub fn build_sale(
    req: &SaleOrder,
    store: &dyn Store,
    cfg: &Config,
    now: Timestamp,
    request_id: &str,
    actor: &str,
    approver: Option<&str>,
) -> Result<Sale, Refusal> {
    let bd = business_date(now, &cfg.timezone, cfg.business_day_start);
    if req.lines.is_empty() {
        return Err(Refusal::unprocessable("no-lines", "Empty sale", "lines".into(), "a sale needs at least one line"));
    }
    if req.lines.len() > cfg.max_lines_per_sale {
        return Err(Refusal::unprocessable(
            "too-many-lines",
            "Too many lines",
            "lines".into(),
            format!("{} lines; at most {} per sale", req.lines.len(), cfg.max_lines_per_sale),
        ));
    }
    if req.tenders.is_empty() {
        return Err(Refusal::unprocessable(
            "no-tenders",
            "No tender",
            "tenders".into(),
            "a sale needs at least one tender",
        ));
    }
    if req.tenders.len() > MAX_TENDERS {
        return Err(Refusal::unprocessable(
            "too-many-tenders",
            "Too many tenders",
            "tenders".into(),
            format!("{} tenders; at most {MAX_TENDERS}", req.tenders.len()),
        ));
    }
    if req.id.is_some_and(|id| id.is_nil()) {
        return Err(Refusal::unprocessable("bad-id", "Bad sale id", "id".into(), "the nil UUID is not a sale id"));
    }

    let mut lines = Vec::with_capacity(req.lines.len());
    // The first age-restricted line (its index and name), if any.
    let mut restricted: Option<(usize, String)> = None;
    for (i, l) in req.lines.iter().enumerate() {
        let f = |name: &str| format!("lines[{i}].{name}");
        if l.sku.is_empty() || l.sku.len() > 64 {
            return Err(Refusal::unprocessable("bad-sku", "Bad SKU", f("sku"), "a SKU is 1 to 64 characters"));
        }
        let item = match store.item(&l.sku)? {
            Some(it) => it,
            None => store.item_by_barcode(&l.sku)?.ok_or_else(|| {
                Refusal::unprocessable(
                    "unknown-sku",
                    "Unknown SKU",
                    f("sku"),
                    format!("no item with SKU or barcode {:?}", l.sku),
                )
            })?,
        };
        if item.age_restricted && restricted.is_none() {
            restricted = Some((i, item.name.clone()));
        }
        let req_qty = match (item.kind, l.qty, l.weight_g) {
            (ItemKind::Weight, None | Some(1), Some(g)) if g > 0 => LineRequest::Grams(g as u64),
            (ItemKind::Weight, _, Some(g)) if g <= 0 => {
                return Err(Refusal::unprocessable(
                    "bad-quantity",
                    "Bad weight",
                    f("weight_g"),
                    format!("weight {g} g must be positive"),
                ));
            }
            (ItemKind::Weight, Some(_), Some(_)) => {
                return Err(Refusal::unprocessable(
                    "bad-quantity",
                    "Bad quantity",
                    f("qty"),
                    "give weight_g alone for a weighed item",
                ));
            }
            (ItemKind::Weight, _, None) => {
                return Err(Refusal::unprocessable(
                    "weight-required",
                    "Weight required",
                    f("weight_g"),
                    format!("{} ({}) is sold by weight: give weight_g", item.name, item.sku),
                ));
            }
            (_, _, Some(_)) => {
                return Err(Refusal::unprocessable(
                    "bad-quantity",
                    "Not sold by weight",
                    f("weight_g"),
                    format!("{} ({}) is not sold by weight: give qty", item.name, item.sku),
                ));
            }
            (_, None, None) => LineRequest::Units(1),
            (_, Some(q), None) if q > 0 => LineRequest::Units(q as u64),
            (_, Some(q), None) => {
                return Err(Refusal::unprocessable(
                    "bad-quantity",
                    "Bad quantity",
                    f("qty"),
                    format!("quantity {q} must be at least 1"),
                ));
            }
        };
        let lot = match (&l.lot, &l.expiry) {
            (None, None) => None,
            (Some(n), Some(e)) => {
                if n.is_empty() || n.len() > 20 {
                    return Err(Refusal::unprocessable(
                        "bad-lot",
                        "Bad lot",
                        f("lot"),
                        "a lot number is 1 to 20 characters (GS1 AI 10)",
                    ));
                }
                let expiry = e.parse().map_err(|_| {
                    Refusal::unprocessable(
                        "bad-lot",
                        "Bad expiry",
                        f("expiry"),
                        format!("{e:?} is not a date YYYY-MM-DD"),
                    )
                })?;
                Some(Lot { number: n.clone(), expiry })
            }
            (Some(_), None) => {
                return Err(Refusal::unprocessable(
                    "bad-lot",
                    "Expiry missing",
                    f("expiry"),
                    "a lot needs its expiry date",
                ));
            }
            (None, Some(_)) => {
                return Err(Refusal::unprocessable(
                    "bad-lot",
                    "Lot missing",
                    f("lot"),
                    "an expiry needs its lot number",
                ));
            }
        };
        let line = price_line(i as u32 + 1, &item, &req_qty, lot, cfg.tax_mode, cfg.currency, bd).map_err(|e| {
            let field = match &e {
                LineError::ZeroQuantity | LineError::QuantityTooLarge(..) => match req_qty {
                    LineRequest::Grams(_) => f("weight_g"),
                    LineRequest::Units(_) => f("qty"),
                },
                LineError::WeightRequired(_) | LineError::NotByWeight(_) => f("weight_g"),
                LineError::LotRequired(_) => f("lot"),
                LineError::LotExpired { .. } => f("expiry"),
                LineError::CurrencyMismatch { .. } | LineError::Overflow => f("sku"),
            };
            let (slug, title) = match e {
                LineError::LotRequired(_) | LineError::LotExpired { .. } => ("bad-lot", "Lot refused"),
                LineError::CurrencyMismatch { .. } | LineError::Overflow => ("bad-line", "Line refused"),
                _ => ("bad-quantity", "Bad quantity"),
            };
            Refusal::unprocessable(slug, title, field, e.to_string())
        })?;
        let line = match (l.unit_price_minor, l.discount_minor) {
            (None, None) => line,
            (price, discount) => {
                if approver.is_none() {
                    let what = if price.is_some() { "unit_price_minor" } else { "discount_minor" };
                    return Err(Refusal {
                        kind: RefusalKind::NeedsApproval,
                        slug: "approval-required",
                        title: "Manager approval required",
                        detail: format!(
                            "a price override or discount needs a manager's PIN in the X-Manager-Pin header ({})",
                            f(what)
                        ),
                        field: Some(f(what)),
                    });
                }
                adjust_line(line, price, discount.unwrap_or(0), cfg.tax_mode).map_err(|e| {
                    let field = match e {
                        AdjustError::NegativePrice(_) => f("unit_price_minor"),
                        AdjustError::Overflow if price.is_some() => f("unit_price_minor"),
                        _ => f("discount_minor"),
                    };
                    Refusal::unprocessable("bad-adjustment", "Price override or discount refused", field, e.to_string())
                })?
            }
        };
        lines.push(line);
    }

    let mut tenders = Vec::with_capacity(req.tenders.len());
    let mut card_at: Option<usize> = None;
    for (i, t) in req.tenders.iter().enumerate() {
        match t.kind.as_str() {
            "cash" => match t.amount_minor {
                Some(a) if a > 0 => tenders.push(Tender::Cash { amount_minor: a }),
                Some(a) => {
                    return Err(Refusal::unprocessable(
                        "bad-tender",
                        "Bad tender",
                        format!("tenders[{i}].amount_minor"),
                        format!("cash amount {a} must be positive"),
                    ));
                }
                None => {
                    return Err(Refusal::unprocessable(
                        "bad-tender",
                        "Bad tender",
                        format!("tenders[{i}].amount_minor"),
                        "a cash tender needs amount_minor",
                    ));
                }
            },
            "card" => {
                let Some(terminal) = cfg.devices.iter().find(|d| d.kind == crate::devices::Kind::Terminal) else {
                    return Err(Refusal::unprocessable(
                        "no-terminal",
                        "No payment terminal",
                        format!("tenders[{i}].type"),
                        "no card terminal is configured on this daemon; take cash or configure a terminal",
                    ));
                };
                if card_at.is_some() {
                    return Err(Refusal::unprocessable(
                        "bad-tender",
                        "Bad tender",
                        format!("tenders[{i}].type"),
                        "one card tender per sale",
                    ));
                }
                if let Some(a) = t.amount_minor.filter(|a| *a <= 0) {
                    return Err(Refusal::unprocessable(
                        "bad-tender",
                        "Bad tender",
                        format!("tenders[{i}].amount_minor"),
                        format!("card amount {a} must be positive"),
                    ));
                }
                card_at = Some(tenders.len());
                // The amount is settled below (absent = what the cash leaves to pay); the
                // payment id is made here, at the edge, before the terminal is asked.
                tenders.push(Tender::Card {
                    amount_minor: t.amount_minor.unwrap_or(0),
                    payment_id: new_id(),
                    terminal: terminal.id.clone(),
                    card: None,
                });
            }
            other => {
                return Err(Refusal::unprocessable(
                    "bad-tender",
                    "Unknown tender type",
                    format!("tenders[{i}].type"),
                    format!("{other:?} is not a tender type; use \"cash\" or \"card\""),
                ));
            }
        }
    }
    if let Some(at) = card_at
        && let Some(Tender::Card { amount_minor, .. }) = tenders.get_mut(at)
        && *amount_minor == 0
    {
        let total: i64 = lines.iter().map(|l| l.gross_minor).sum();
        let cash: i64 = req.tenders.iter().filter(|t| t.kind == "cash").filter_map(|t| t.amount_minor).sum();
        *amount_minor = total - cash;
        if *amount_minor <= 0 {
            return Err(Refusal::unprocessable(
                "bad-tender",
                "Nothing left for the card",
                format!("tenders[{at}]"),
                "the cash tendered already pays the total",
            ));
        }
    }
    let age_check = age_check(req, restricted, cfg, bd, now)?;
    let (net, tax, total, tendered, change) = settle(&lines, &tenders, cfg.currency).map_err(|e| match e {
        TenderError::CardOverpays { .. } => {
            Refusal::unprocessable("card-overpays", "Card over the amount due", "tenders".into(), e.to_string())
        }
        TenderError::Short { .. } => {
            Refusal::unprocessable("short-tender", "Short tender", "tenders".into(), e.to_string())
        }
        TenderError::NotPositive => Refusal::unprocessable("bad-tender", "Bad tender", "tenders".into(), e.to_string()),
        TenderError::Overflow => {
            Refusal::unprocessable("bad-tender", "Amounts overflow", "tenders".into(), e.to_string())
        }
    })?;
    Ok(Sale {
        id: req.id.unwrap_or_else(new_id),
        status: SaleStatus::Completed,
        kind: edge_sync::domain::SaleKind::Sale,
        refund_of: None,
        reason: None,
        created_at: now,
        business_date: bd,
        store_id: cfg.store_id.clone(),
        currency: cfg.currency,
        tax_mode: cfg.tax_mode,
        lines,
        tenders,
        net_minor: net,
        tax_minor: tax,
        total_minor: total,
        tendered_minor: tendered,
        change_minor: change,
        request_id: request_id.to_string(),
        actor: actor.to_string(),
        approved_by: approver.map(str::to_string),
        receipt_no: None,
        lane: Some(cfg.lane_id.clone()),
        cashier: None,
        age_check,
    })
}

/// The age check a sale with an age-restricted line must carry (recorded on the sale), or
/// the refusal that stops it until one is answered. A sale without such a line records none.
fn age_check(
    req: &SaleOrder,
    restricted: Option<(usize, String)>,
    cfg: &Config,
    bd: jiff::civil::Date,
    now: Timestamp,
) -> Result<Option<edge_sync::domain::AgeCheck>, Refusal> {
    let Some((line, name)) = restricted else { return Ok(None) };
    let cutoff = edge_sync::domain::born_on_or_before(bd, cfg.minimum_age);
    let Some(a) = &req.age_check else {
        if !cfg.age_check_required {
            return Ok(None);
        }
        return Err(Refusal::unprocessable(
            "age-check-required",
            "Age check required",
            "age_check".into(),
            format!(
                "{name} (lines[{line}]) is sold only to customers of {} or older: ask whether they were born on or \
                 before {cutoff} (or scan their ID) and send the answer as age_check",
                cfg.minimum_age
            ),
        ));
    };
    let asked = a.born_on_or_before.unwrap_or(cutoff);
    if asked > cutoff {
        return Err(Refusal::unprocessable(
            "age-check-too-young",
            "Age check does not cover the minimum age",
            "age_check.born_on_or_before".into(),
            format!(
                "a customer born on {asked} is under {}: the check must ask for {cutoff} or earlier",
                cfg.minimum_age
            ),
        ));
    }
    Ok(Some(edge_sync::domain::AgeCheck {
        method: a.method,
        born_on_or_before: asked,
        minimum_age: cfg.minimum_age,
        verified_by: a.verified_by.clone(),
        at: now,
        approval: a.approval,
    }))
}

/// `a * num / den`, rounded half up, for non-negative `a` (pro-rata refunds of a line).
fn pro_rata(a: i64, num: u32, den: u32) -> i64 {
    if den == 0 {
        return 0;
    }
    let (a, num, den) = (i128::from(a), i128::from(num), i128::from(den));
    ((a * num * 2 + den) / (2 * den)) as i64
}

/// A refund of (part of) `orig`: the lines asked for (or everything left), priced pro rata
/// from what the sale charged, paid back in cash or to a card. The store checks again, in
/// the refund's own transaction, that nothing is refunded twice.
pub fn build_refund(
    orig: &Sale,
    req: &RefundOrder,
    refunded: &std::collections::BTreeMap<u32, u64>,
    cfg: &Config,
    now: Timestamp,
    request_id: &str,
    actor: &str,
) -> Result<Sale, Refusal> {
    use edge_sync::domain::{Quantity, SaleKind, SaleLine};
    if orig.kind != SaleKind::Sale {
        return Err(Refusal::conflict("not-a-sale", "Not a sale", format!("{} is itself a refund", orig.id)));
    }
    let reason = req.reason.trim();
    if reason.is_empty() || reason.chars().count() > 200 {
        return Err(Refusal::unprocessable(
            "bad-reason",
            "Reason required",
            "reason".into(),
            "give the reason in 1 to 200 characters",
        ));
    }
    let left =
        |l: &SaleLine| u64::from(l.quantity.amount()).saturating_sub(refunded.get(&l.line_no).copied().unwrap_or(0));
    let wanted: Vec<(&SaleLine, u32)> = match &req.lines {
        None => orig.lines.iter().filter(|l| left(l) > 0).map(|l| (l, left(l) as u32)).collect(),
        Some(ls) => {
            let mut v = Vec::new();
            for (i, r) in ls.iter().enumerate() {
                let Some(l) = orig.lines.iter().find(|l| l.line_no == r.line_no) else {
                    return Err(Refusal::unprocessable(
                        "bad-line",
                        "No such line",
                        format!("lines[{i}].line_no"),
                        format!("sale {} has no line {}", orig.id, r.line_no),
                    ));
                };
                let q = r.qty.unwrap_or(left(l) as u32);
                if q == 0 || u64::from(q) > left(l) {
                    return Err(Refusal::unprocessable(
                        "over-refund",
                        "More than is left to refund",
                        format!("lines[{i}].qty"),
                        format!(
                            "line {} sold {}, {} refunded already: {q} cannot be refunded",
                            l.line_no,
                            l.quantity.amount(),
                            l.quantity.amount() as u64 - left(l)
                        ),
                    ));
                }
                v.push((l, q));
            }
            v
        }
    };
    if wanted.is_empty() {
        return Err(Refusal::conflict(
            "nothing-to-refund",
            "Nothing left to refund",
            format!("sale {} is refunded in full already", orig.id),
        ));
    }
    let lines: Vec<SaleLine> = wanted
        .iter()
        .map(|(l, q)| {
            let of = l.quantity.amount();
            let gross = pro_rata(l.gross_minor, *q, of);
            let tax = pro_rata(l.tax_minor, *q, of);
            SaleLine {
                quantity: match l.quantity {
                    Quantity::Units(_) => Quantity::Units(*q),
                    Quantity::Grams(_) => Quantity::Grams(*q),
                },
                gross_minor: gross,
                tax_minor: tax,
                net_minor: gross - tax,
                discount_minor: pro_rata(l.discount_minor, *q, of),
                ..(*l).clone()
            }
        })
        .collect();
    let total: i64 = lines.iter().map(|l| l.gross_minor).sum();
    let tender = match req.tender.as_str() {
        "cash" => Tender::Cash { amount_minor: total },
        "card" => {
            let Some(t) = cfg.devices.iter().find(|d| d.kind == crate::devices::Kind::Terminal) else {
                return Err(Refusal::unprocessable(
                    "no-terminal",
                    "No payment terminal",
                    "tender".into(),
                    "no card terminal is configured; refund in cash",
                ));
            };
            Tender::Card { amount_minor: total, payment_id: new_id(), terminal: t.id.clone(), card: None }
        }
        other => {
            return Err(Refusal::unprocessable(
                "bad-tender",
                "Unknown tender type",
                "tender".into(),
                format!("{other:?}: cash or card"),
            ));
        }
    };
    let tenders = vec![tender];
    let (net, tax, total, tendered, change) = settle(&lines, &tenders, orig.currency)
        .map_err(|e| Refusal::unprocessable("bad-tender", "Bad tender", "tender".into(), e.to_string()))?;
    Ok(Sale {
        id: new_id(),
        status: SaleStatus::Completed,
        kind: SaleKind::Refund,
        refund_of: Some(orig.id),
        reason: Some(reason.to_string()),
        created_at: now,
        business_date: business_date(now, &cfg.timezone, cfg.business_day_start),
        store_id: cfg.store_id.clone(),
        currency: orig.currency,
        tax_mode: orig.tax_mode,
        lines,
        tenders,
        net_minor: net,
        tax_minor: tax,
        total_minor: total,
        tendered_minor: tendered,
        change_minor: change,
        request_id: request_id.to_string(),
        actor: actor.to_string(),
        approved_by: None,
        receipt_no: None,
        lane: Some(cfg.lane_id.clone()),
        cashier: None,
        age_check: None,
    })
}
