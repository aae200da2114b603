//! Our own cloud: the connector edged ships and the fake that tests and the demo run.
//!
//! The contract is `sync/cloud-openapi.yaml`. In short:
//!
//! * `POST /v1/stores/{store}/events` takes a batch of at most [`MAX_EVENTS`] events, each
//!   with the outbox entry id as its `id`. The id is the idempotency key: the cloud keeps an
//!   event once, answers a repeat with `duplicate` and the first remote id, and refuses a
//!   repeat whose content differs (`conflict`). The answer has one result per event
//!   (`accepted`, `duplicate`, `rejected` with the field, `retry`).
//! * Every request is signed: `X-Edge-Store`, `X-Edge-Timestamp` (Unix seconds) and
//!   `X-Edge-Signature: v1=<hex HMAC-SHA256(secret, "{ts}.{METHOD}.{path}.{body}")>`. A
//!   signature that does not verify, or a timestamp more than 300 s away, is a 401.
//! * The cloud meters events with a token bucket and says so on every answer:
//!   `X-RateLimit-Capacity`, `X-RateLimit-Remaining`, `X-RateLimit-Refill-Per-Second`; a
//!   batch the bucket cannot take is a 429 with `Retry-After`.
//!
//! [`CloudConnector`] is the host side (no I/O; see `engine`); [`fake::FakeCloud`] is the
//! remote side as a state machine that the HTTP fake (`edge-lab fakes`) and the simulation
//! share.

pub mod fake;
pub mod live;
pub mod pull;

use crate::domain::{OutboxEntry, Quantity, Record, Sale, Tender};
use crate::engine::{Connector, RecordResult};
use crate::wire::{HttpRequest, HttpResponse, Method};
use hmac::{Hmac, Mac};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Most events in one batch.
pub const MAX_EVENTS: usize = 500;
/// Largest request body the cloud takes.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Accepted clock difference of a signature.
pub const MAX_SKEW_S: i64 = 300;

/// One event as the cloud receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub record_id: Uuid,
    pub occurred_at: Timestamp,
    /// A [`SaleDoc`] for `sale.completed`, an [`AdjustmentDoc`] for `stock.adjusted`
    /// ([`Event::parse_data`] reads it by type and names the wrong field).
    pub data: serde_json::Value,
}

/// The event type of a sale or refund.
pub const SALE_COMPLETED: &str = "sale.completed";
/// The event type of a stock adjustment.
pub const STOCK_ADJUSTED: &str = "stock.adjusted";

/// A stock adjustment as the cloud contract spells it: a signed delta, never a level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentDoc {
    pub id: Uuid,
    pub store_id: String,
    pub business_date: String,
    pub sku: String,
    /// Units, or grams for weighed items; positive adds stock.
    pub delta: i64,
    /// `count`, `damaged`, `theft`, `received`, `returned_to_vendor` or `correction`.
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

impl AdjustmentDoc {
    pub fn of(a: &crate::domain::StockAdjustment) -> AdjustmentDoc {
        AdjustmentDoc {
            id: a.id,
            store_id: a.store_id.clone(),
            business_date: a.business_date.to_string(),
            sku: a.sku.clone(),
            delta: a.delta,
            reason: a.reason.as_str().into(),
            note: a.note.clone(),
        }
    }
}

/// An event's data, read by its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventData {
    Sale(Box<SaleDoc>),
    Adjustment(AdjustmentDoc),
}

impl Event {
    /// The data by the event's type, or the field that is wrong and why.
    pub fn parse_data(&self) -> Result<EventData, (String, String)> {
        fn read<T: serde::de::DeserializeOwned>(v: &serde_json::Value) -> Result<T, (String, String)> {
            serde_path_to_error::deserialize::<_, T>(v).map_err(|e| {
                let path = e.path().to_string();
                let field = if path == "." { "data".to_string() } else { format!("data.{path}") };
                (field, e.inner().to_string())
            })
        }
        match self.kind.as_str() {
            SALE_COMPLETED => read(&self.data).map(|d| EventData::Sale(Box::new(d))),
            STOCK_ADJUSTED => read(&self.data).map(EventData::Adjustment),
            other => Err(("type".into(), format!("unknown event type {other:?}"))),
        }
    }
}

/// A sale as the cloud contract spells it (a wire type, apart from the domain's `Sale`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaleDoc {
    pub id: Uuid,
    pub store_id: String,
    pub business_date: String,
    pub currency: String,
    pub net_minor: i64,
    pub tax_minor: i64,
    pub total_minor: i64,
    pub change_minor: i64,
    pub lines: Vec<LineDoc>,
    pub tenders: Vec<TenderDoc>,
    /// `refund` for money and goods going back (amounts are what is paid back); absent for
    /// a sale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_of: Option<Uuid>,
    /// The receipt number printed for people (`LANE-SEQUENCE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_no: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<String>,
    /// The member of staff at the register (their config id and name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cashier: Option<crate::domain::StaffRef>,
    /// The age check its age-restricted items passed: method, date asked, who, when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_check: Option<crate::domain::AgeCheck>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineDoc {
    pub line_no: u32,
    pub sku: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grams: Option<u32>,
    pub unit_price_minor: i64,
    pub tax_minor: i64,
    pub gross_minor: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lot: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenderDoc {
    #[serde(rename = "type")]
    pub kind: String,
    pub amount_minor: i64,
    /// Card tenders: the payment's id at the edge, the masked card number, approval code
    /// and whether the terminal approved it offline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pan_masked: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_code: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub offline: bool,
}

impl SaleDoc {
    pub fn of(s: &Sale) -> SaleDoc {
        SaleDoc {
            id: s.id,
            store_id: s.store_id.clone(),
            business_date: s.business_date.to_string(),
            currency: s.currency.as_str().to_string(),
            net_minor: s.net_minor,
            tax_minor: s.tax_minor,
            total_minor: s.total_minor,
            change_minor: s.change_minor,
            kind: (s.kind == crate::domain::SaleKind::Refund).then(|| "refund".to_string()),
            refund_of: s.refund_of,
            receipt_no: s.receipt_no.clone(),
            lane: s.lane.clone(),
            cashier: s.cashier.clone(),
            age_check: s.age_check.clone(),
            lines: s
                .lines
                .iter()
                .map(|l| LineDoc {
                    line_no: l.line_no,
                    sku: l.sku.clone(),
                    units: match l.quantity {
                        Quantity::Units(u) => Some(u),
                        Quantity::Grams(_) => None,
                    },
                    grams: match l.quantity {
                        Quantity::Grams(g) => Some(g),
                        Quantity::Units(_) => None,
                    },
                    unit_price_minor: l.unit_price_minor,
                    tax_minor: l.tax_minor,
                    gross_minor: l.gross_minor,
                    lot: l.lot.as_ref().map(|x| x.number.clone()),
                })
                .collect(),
            tenders: s
                .tenders
                .iter()
                .map(|t| match t {
                    Tender::Cash { amount_minor } => TenderDoc {
                        kind: "cash".into(),
                        amount_minor: *amount_minor,
                        payment_id: None,
                        pan_masked: None,
                        auth_code: None,
                        offline: false,
                    },
                    Tender::Card { amount_minor, payment_id, card, .. } => TenderDoc {
                        kind: "card".into(),
                        amount_minor: *amount_minor,
                        payment_id: Some(*payment_id),
                        pan_masked: card.as_ref().and_then(|c| c.pan_masked.clone()),
                        auth_code: card.as_ref().and_then(|c| c.auth_code.clone()),
                        offline: card.as_ref().is_some_and(|c| c.offline),
                    },
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    pub events: Vec<Event>,
}

/// The cloud's answer for one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventResult {
    pub id: Uuid,
    /// `accepted`, `duplicate`, `rejected`, `conflict` or `retry`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<EventError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventError {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResult {
    pub results: Vec<EventResult>,
}

/// The path events are posted to.
pub fn events_path(store_id: &str) -> String {
    format!("/v1/stores/{store_id}/events")
}

type HmacSha256 = Hmac<Sha256>;

/// The HMAC over `parts`, or None for a key HMAC refuses (it takes keys of any length).
fn mac_over(secret: &[u8], parts: &[&[u8]]) -> Option<HmacSha256> {
    let mut mac = HmacSha256::new_from_slice(secret).ok()?;
    for p in parts {
        mac.update(p);
    }
    Some(mac)
}

/// `v1=<hex tag>`.
fn v1(mac: Option<HmacSha256>) -> String {
    let Some(mac) = mac else { return String::new() };
    let tag = mac.finalize().into_bytes();
    let mut s = String::with_capacity(3 + tag.len() * 2);
    s.push_str("v1=");
    for b in tag {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Whether `given` (`v1=<hex>`) is the tag of `mac`, compared in constant time.
fn v1_matches(mac: Option<HmacSha256>, given: &str) -> bool {
    let (Some(mac), Some(tag)) = (mac, given.strip_prefix("v1=").and_then(decode_hex)) else { return false };
    mac.verify_slice(&tag).is_ok()
}

fn request_mac(secret: &[u8], ts: i64, method: Method, path: &str, body: &[u8]) -> Option<HmacSha256> {
    let ts = ts.to_string();
    mac_over(secret, &[ts.as_bytes(), b".", method.as_str().as_bytes(), b".", path.as_bytes(), b".", body])
}

/// `v1=<hex>` over `{ts}.{METHOD}.{path}.{body}`.
pub fn signature(secret: &[u8], ts: i64, method: Method, path: &str, body: &[u8]) -> String {
    v1(request_mac(secret, ts, method, path, body))
}

/// Checks a signature in constant time.
pub fn verify(secret: &[u8], ts: i64, method: Method, path: &str, body: &[u8], given: &str) -> bool {
    v1_matches(request_mac(secret, ts, method, path, body), given)
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// A message on the push stream (`GET /v1/stores/{store}/stream`, WebSocket).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushMessage {
    /// Increasing; a reconnect asks for messages after the last one seen.
    pub id: u64,
    /// `price.changed`, `item.changed`, `config.changed` or `command`.
    #[serde(rename = "type")]
    pub kind: String,
    pub at: Timestamp,
    pub data: serde_json::Value,
    /// `v1=<hex HMAC-SHA256(secret, "{id}.{type}.{data as JSON}")>`.
    pub sig: String,
}

fn message_mac(secret: &[u8], id: u64, kind: &str, data: &serde_json::Value) -> Option<HmacSha256> {
    mac_over(secret, &[format!("{id}.{kind}.").as_bytes(), data.to_string().as_bytes()])
}

/// The signature of a push message.
pub fn message_signature(secret: &[u8], id: u64, kind: &str, data: &serde_json::Value) -> String {
    v1(message_mac(secret, id, kind, data))
}

impl PushMessage {
    /// Whether the signature is the cloud's (constant time).
    pub fn verify(&self, secret: &[u8]) -> bool {
        v1_matches(message_mac(secret, self.id, &self.kind, &self.data), &self.sig)
    }
}

/// Signs a request in place.
pub fn sign(req: &mut HttpRequest, store_id: &str, secret: &[u8], now: Timestamp) {
    let ts = now.as_second();
    let sig = signature(secret, ts, req.method, &req.path, &req.body);
    req.headers.push(("x-edge-store".into(), store_id.to_string()));
    req.headers.push(("x-edge-timestamp".into(), ts.to_string()));
    req.headers.push(("x-edge-signature".into(), sig));
}

/// The host side of the cloud contract.
pub struct CloudConnector {
    store_id: String,
    secret: Vec<u8>,
}

impl CloudConnector {
    pub fn new(store_id: impl Into<String>, secret: impl Into<Vec<u8>>) -> CloudConnector {
        CloudConnector { store_id: store_id.into(), secret: secret.into() }
    }

    /// The request body for these records.
    pub fn batch_of(records: &[(OutboxEntry, Record)]) -> EventBatch {
        EventBatch {
            events: records
                .iter()
                .map(|(e, r)| {
                    // Plain structs of strings and numbers: encoding cannot fail.
                    let (kind, at, data) = match r {
                        Record::Sale(s) => {
                            (SALE_COMPLETED, s.created_at, serde_json::to_value(SaleDoc::of(s)).unwrap_or_default())
                        }
                        Record::Adjustment(a) => (
                            STOCK_ADJUSTED,
                            a.created_at,
                            serde_json::to_value(AdjustmentDoc::of(a)).unwrap_or_default(),
                        ),
                    };
                    Event { id: e.id, kind: kind.into(), record_id: r.id(), occurred_at: at, data }
                })
                .collect(),
        }
    }
}

impl Connector for CloudConnector {
    fn max_batch(&self) -> usize {
        MAX_EVENTS
    }

    /// Event ids are idempotency keys: a repeat is answered `duplicate`.
    fn resend_is_safe(&self) -> bool {
        true
    }

    fn build(
        &mut self,
        records: &[(OutboxEntry, Record)],
        now: Timestamp,
    ) -> (Option<HttpRequest>, Vec<(Uuid, String)>) {
        let batch = Self::batch_of(records);
        let body = match serde_json::to_vec(&batch) {
            Ok(b) => b,
            Err(e) => {
                let why = format!("cannot encode the event: {e}");
                return (None, records.iter().map(|(e, _)| (e.id, why.clone())).collect());
            }
        };
        let mut req = HttpRequest {
            method: Method::Post,
            path: events_path(&self.store_id),
            headers: vec![("content-type".into(), "application/json".into())],
            body,
        };
        sign(&mut req, &self.store_id, &self.secret, now);
        (Some(req), Vec::new())
    }

    fn parse(&mut self, ids: &[Uuid], reply: &HttpResponse) -> Result<BTreeMap<Uuid, RecordResult>, String> {
        let r: BatchResult = serde_json::from_slice(&reply.body)
            .map_err(|e| format!("the events answer is not a result list ({e}): {}", reply.body_excerpt(200)))?;
        let mut out = BTreeMap::new();
        for x in r.results {
            if !ids.contains(&x.id) {
                return Err(format!("the answer names event {} that was not sent", x.id));
            }
            let why = || {
                x.error
                    .as_ref()
                    .map(|e| match &e.field {
                        Some(f) => format!("{} ({}): field {f}", e.message, e.code),
                        None => format!("{} ({})", e.message, e.code),
                    })
                    .unwrap_or_else(|| format!("status {}", x.status))
            };
            let res = match x.status.as_str() {
                "accepted" | "duplicate" => match &x.remote_id {
                    Some(rid) if !rid.is_empty() => RecordResult::Confirmed(rid.clone()),
                    _ => return Err(format!("event {} is {} without a remote id", x.id, x.status)),
                },
                "rejected" | "conflict" => RecordResult::Refused(format!("cloud {}: {}", x.status, why())),
                "retry" => RecordResult::Retry(format!("cloud asked to retry: {}", why())),
                other => return Err(format!("event {} has the unknown status {other:?}", x.id)),
            };
            out.insert(x.id, res);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_round_trip_and_tamper() {
        let s = signature(b"k", 1_700_000_000, Method::Post, "/v1/x", b"{}");
        assert!(verify(b"k", 1_700_000_000, Method::Post, "/v1/x", b"{}", &s));
        assert!(!verify(b"k", 1_700_000_000, Method::Post, "/v1/x", b"{ }", &s));
        assert!(!verify(b"other", 1_700_000_000, Method::Post, "/v1/x", b"{}", &s));
        assert!(!verify(b"k", 1_700_000_001, Method::Post, "/v1/x", b"{}", &s));
        assert!(!verify(b"k", 1_700_000_000, Method::Post, "/v1/x", b"{}", "v1=zz"));
        assert!(!verify(b"k", 1_700_000_000, Method::Post, "/v1/x", b"{}", "garbage"));
    }

    #[test]
    fn push_messages_verify_only_untouched() {
        let data = serde_json::json!({"skus": ["A", "B"]});
        let sig = message_signature(b"k", 7, "price.changed", &data);
        let m = PushMessage { id: 7, kind: "price.changed".into(), at: Timestamp::UNIX_EPOCH, data, sig };
        assert!(m.verify(b"k"));
        // Through JSON and back, as the stream carries it.
        let back: PushMessage = serde_json::from_str(&serde_json::to_string(&m).expect("json")).expect("parse");
        assert!(back.verify(b"k"));
        assert!(!m.verify(b"other"));
        let mut t = m.clone();
        t.id = 8;
        assert!(!t.verify(b"k"));
        let mut t = m.clone();
        t.data = serde_json::json!({"skus": ["A"]});
        assert!(!t.verify(b"k"));
        let mut t = m;
        t.kind = "command".into();
        assert!(!t.verify(b"k"));
    }
}
