//! What is asked of the checkout, in its own terms: a sale, a refund, a stock adjustment.
//!
//! The API's bodies (edge-api's `SaleIn`, `RefundIn`, `AdjustmentIn`) are mapped to these
//! at the boundary (http.rs) and go no further. Each order has one idempotency
//! [`fingerprint`]: the SHA-256 of its canonical JSON, so a retry under the same key is told
//! apart from another request reusing the key. The JSON has the field names and omissions
//! the API's bodies have, so the fingerprints stored by earlier versions still match.

use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A whole sale: lines to price and tenders to settle it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SaleOrder {
    /// A client-made id; repeating it answers the first result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    pub lines: Vec<OrderLine>,
    pub tenders: Vec<OrderTender>,
    /// `Some(false)`: no receipt now (the customer may ask for one afterwards).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<bool>,
    /// The age check answered for its age-restricted items.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_check: Option<AgeCheckOrder>,
}

/// An age check as answered at a screen, its member of staff already known (the boundary
/// resolves an id or a self-serve screen's approved request to them).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgeCheckOrder {
    pub method: edge_sync::domain::AgeCheckMethod,
    /// The date the customer's birth date was checked against (None: the store's own
    /// limit, for a check approved by staff at a self-serve screen).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub born_on_or_before: Option<jiff::civil::Date>,
    pub verified_by: edge_sync::domain::StaffRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<Uuid>,
}

/// One line of a sale order, as asked (checked and priced by [`super::price`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderLine {
    pub sku: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qty: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_g: Option<i64>,
    /// Weigh it on the store's scale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_scale: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lot: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry: Option<String>,
    /// A price override (needs a manager).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_price_minor: Option<i64>,
    /// A discount off the line (needs a manager).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discount_minor: Option<i64>,
}

/// One tender of a sale order: its kind as asked (`cash`, `card`; anything else is refused
/// naming the field) and its amount.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderTender {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount_minor: Option<i64>,
}

/// A refund of (part of) a sale.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RefundOrder {
    /// The lines and quantities; `None` = everything not refunded yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines: Option<Vec<RefundLine>>,
    /// `cash` or `card`.
    pub tender: String,
    pub reason: String,
}

/// A line to refund and how much of it (`None` = what is left).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RefundLine {
    pub line_no: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qty: Option<u32>,
}

/// A stock change that is not a sale.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdjustOrder {
    pub sku: String,
    pub delta: i64,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Who asks: the role acting, the manager who approved (price overrides, discounts), and
/// the request's id (kept with the record and its audit lines).
#[derive(Debug, Clone)]
pub struct Actor {
    pub role: String,
    pub approver: Option<String>,
    pub request_id: String,
    /// The member of staff logged in at the register (printed on the receipt as cashier).
    pub cashier: Option<edge_sync::domain::StaffRef>,
}

/// The idempotency fingerprint of an order (see the module doc).
pub trait Fingerprint {
    fn fingerprint(&self) -> String;
}

fn digest<T: Serialize + ?Sized>(v: &T) -> String {
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl Fingerprint for SaleOrder {
    fn fingerprint(&self) -> String {
        digest(self)
    }
}

impl Fingerprint for (Uuid, &RefundOrder) {
    fn fingerprint(&self) -> String {
        digest(self)
    }
}

impl Fingerprint for AdjustOrder {
    fn fingerprint(&self) -> String {
        digest(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fingerprints match the ones stored by versions that digested the API's bodies.
    #[test]
    fn fingerprints_match_the_api_bodies_digests() {
        let wire: edge_api::SaleIn = serde_json::from_value(serde_json::json!({
            "lines": [{"sku": "A", "qty": 2}, {"sku": "B", "from_scale": true, "discount_minor": 5}],
            "tenders": [{"type": "cash", "amount_minor": 900}],
            "receipt": false
        }))
        .expect("body");
        let order = SaleOrder {
            id: None,
            lines: vec![
                OrderLine {
                    sku: "A".into(),
                    qty: Some(2),
                    weight_g: None,
                    from_scale: None,
                    lot: None,
                    expiry: None,
                    unit_price_minor: None,
                    discount_minor: None,
                },
                OrderLine {
                    sku: "B".into(),
                    qty: None,
                    weight_g: None,
                    from_scale: Some(true),
                    lot: None,
                    expiry: None,
                    unit_price_minor: None,
                    discount_minor: Some(5),
                },
            ],
            tenders: vec![OrderTender { kind: "cash".into(), amount_minor: Some(900) }],
            receipt: Some(false),
            age_check: None,
        };
        assert_eq!(order.fingerprint(), digest(&wire));
        let id = Uuid::nil();
        let rw: edge_api::RefundIn = serde_json::from_value(
            serde_json::json!({"tender": "card", "reason": "broken", "lines": [{"line_no": 1}]}),
        )
        .expect("refund");
        let ro = RefundOrder {
            lines: Some(vec![RefundLine { line_no: 1, qty: None }]),
            tender: "card".into(),
            reason: "broken".into(),
        };
        assert_eq!((id, &ro).fingerprint(), digest(&(id, &rw)));
        let mut other = order.clone();
        other.tenders[0].amount_minor = Some(901);
        assert_ne!(order.fingerprint(), other.fingerprint());
    }
}
