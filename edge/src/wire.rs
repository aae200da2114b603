//! The boundary between the API's wire types (edge-api) and the checkout's own: request
//! bodies → [`crate::checkout::order`]s, records → the API's bodies.

use crate::checkout::after::ReceiptState;
use crate::checkout::order::{AdjustOrder, OrderLine, OrderTender, RefundLine, RefundOrder, SaleOrder};
use edge_api::{AdjustmentIn, AdjustmentOut, ReceiptOut, RefundIn, SaleIn, SaleLineOut, SaleOut, TenderOut};
use edge_sync::domain::{ItemKind, Quantity, Sale, StockAdjustment, Tender};

/// The wire form of a stored sale.
pub fn sale_out(s: &Sale) -> SaleOut {
    SaleOut {
        kind: match s.kind {
            edge_sync::domain::SaleKind::Sale => "sale".into(),
            edge_sync::domain::SaleKind::Refund => "refund".into(),
        },
        refund_of: s.refund_of,
        reason: s.reason.clone(),
        approved_by: s.approved_by.clone(),
        receipt_no: s.receipt_no.clone(),
        lane: s.lane.clone(),
        cashier: s.cashier.as_ref().map(|c| c.name.clone()),
        age_check: s.age_check.as_ref().map(|a| edge_api::AgeCheckOut {
            method: a.method.as_str().into(),
            born_on_or_before: a.born_on_or_before.to_string(),
            minimum_age: a.minimum_age,
            verified_by: a.verified_by.name.clone(),
            at: a.at.to_string(),
            approval_id: a.approval,
        }),
        receipt: None,
        id: s.id,
        status: "completed".into(),
        total_minor: s.total_minor,
        net_minor: s.net_minor,
        tax_minor: s.tax_minor,
        currency: s.currency.to_string(),
        business_date: s.business_date.to_string(),
        created_at: s.created_at.to_string(),
        lines: s
            .lines
            .iter()
            .map(|l| SaleLineOut {
                line_no: l.line_no,
                sku: l.sku.clone(),
                name: l.name.clone(),
                kind: kind_str(l.kind).into(),
                qty: match l.quantity {
                    Quantity::Units(n) => Some(n),
                    Quantity::Grams(_) => None,
                },
                weight_g: match l.quantity {
                    Quantity::Grams(g) => Some(g),
                    Quantity::Units(_) => None,
                },
                unit_price_minor: l.unit_price_minor,
                tax_rate_bp: l.tax_rate_bp,
                net_minor: l.net_minor,
                tax_minor: l.tax_minor,
                gross_minor: l.gross_minor,
                list_price_minor: l.list_price_minor,
                discount_minor: l.discount_minor,
                refunded: 0,
                lot: l.lot.as_ref().map(|x| x.number.clone()),
                expiry: l.lot.as_ref().map(|x| x.expiry.to_string()),
            })
            .collect(),
        tenders: s
            .tenders
            .iter()
            .map(|t| match t {
                Tender::Cash { amount_minor } => TenderOut {
                    kind: "cash".into(),
                    amount_minor: *amount_minor,
                    pan_masked: None,
                    card_name: None,
                    auth_code: None,
                    receipt_no: None,
                    payment_id: None,
                    offline: false,
                    card_receipt: Vec::new(),
                    terminal_reference: None,
                },
                Tender::Card { amount_minor, payment_id, card, .. } => {
                    let c = card.clone().unwrap_or_default();
                    TenderOut {
                        kind: "card".into(),
                        amount_minor: *amount_minor,
                        pan_masked: c.pan_masked,
                        card_name: c.card_name,
                        auth_code: c.auth_code,
                        receipt_no: c.receipt_no,
                        payment_id: Some(payment_id.to_string()),
                        offline: c.offline,
                        card_receipt: c.receipt,
                        terminal_reference: c.reference,
                    }
                }
            })
            .collect(),
        tendered_minor: s.tendered_minor,
        change_minor: s.change_minor,
    }
}

pub fn kind_str(k: ItemKind) -> &'static str {
    match k {
        ItemKind::Unit => "unit",
        ItemKind::Weight => "weight",
        ItemKind::Lot => "lot",
    }
}

/// The wire form of a sale's receipt state (`copies` reprints asked for); `None`: this
/// run of edged has not seen the sale's receipt.
pub fn receipt_out(state: Option<(ReceiptState, u32)>) -> ReceiptOut {
    match state {
        None => ReceiptOut { state: "unknown".into(), reason: None, copies: 0, at: None },
        Some((s, copies)) => {
            let (reason, at) = match &s {
                ReceiptState::Queued { since } => (None, Some(since.to_string())),
                ReceiptState::Printed { at } => (None, Some(at.to_string())),
                ReceiptState::Failed { at, reason } => (Some(reason.clone()), Some(at.to_string())),
                _ => (None, None),
            };
            ReceiptOut { state: s.name().into(), reason, copies, at }
        }
    }
}

/// The wire form of an adjustment.
pub fn adjustment_out(a: &StockAdjustment, stock: Option<i64>) -> AdjustmentOut {
    AdjustmentOut {
        id: a.id.to_string(),
        sku: a.sku.clone(),
        delta: a.delta,
        unit: if a.by_weight { "grams" } else { "units" }.into(),
        reason: a.reason.as_str().into(),
        note: a.note.clone(),
        created_at: a.created_at.to_string(),
        business_date: a.business_date.to_string(),
        actor: a.actor.clone(),
        stock,
    }
}

/// The checkout's order for a `POST /v1/sales` body.
pub fn sale_order(req: SaleIn) -> SaleOrder {
    SaleOrder {
        id: req.id,
        lines: req
            .lines
            .into_iter()
            .map(|l| OrderLine {
                sku: l.sku,
                qty: l.qty,
                weight_g: l.weight_g,
                from_scale: l.from_scale,
                lot: l.lot,
                expiry: l.expiry,
                unit_price_minor: l.unit_price_minor,
                discount_minor: l.discount_minor,
            })
            .collect(),
        tenders: req.tenders.into_iter().map(|t| OrderTender { kind: t.kind, amount_minor: t.amount_minor }).collect(),
        receipt: req.receipt,
        // Resolved to a member of staff by the HTTP layer (it knows the staff and requests).
        age_check: None,
    }
}

/// The checkout's order for a `POST /v1/sales/{id}/refunds` body.
pub fn refund_order(req: RefundIn) -> RefundOrder {
    RefundOrder {
        lines: req.lines.map(|ls| ls.into_iter().map(|l| RefundLine { line_no: l.line_no, qty: l.qty }).collect()),
        tender: req.tender,
        reason: req.reason,
    }
}

/// The checkout's order for a `POST /v1/stock/adjustments` body.
pub fn adjust_order(req: AdjustmentIn) -> AdjustOrder {
    AdjustOrder { sku: req.sku, delta: req.delta, reason: req.reason, note: req.note }
}

/// The wire form of a request for staff.
pub fn approval_out(a: &crate::staff::Approval) -> edge_api::ApprovalOut {
    edge_api::ApprovalOut {
        id: a.id,
        kind: a.kind.as_str().into(),
        screen: a.screen.clone(),
        sku: a.sku.clone(),
        item_name: a.item_name.clone(),
        state: a.state.as_str().into(),
        created_at: a.created_at.to_string(),
        decided_at: a.decided_at.map(|t| t.to_string()),
        decided_by: a.decided_by.clone(),
    }
}
