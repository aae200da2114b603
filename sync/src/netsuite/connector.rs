//! The NetSuite connector edged ships: each sale a `cashSale`, each refund a `cashRefund`,
//! upserted by external id (`PUT …/record/v1/cashSale/eid:{sale id}`), so a repeat after a
//! lost reply updates the same record instead of making a second one (NetSuite's
//! idempotency key works only on async requests, §B5). Sans-I/O (see `engine`).
//!
//! - `tranDate` is the sale's business date in the store's time zone (a plain date that
//!   NetSuite does not convert).
//! - Authentication: TBA (signed per request; query parameters signed, the body not) or
//!   OAuth 2.0 client credentials (a token bought with a signed assertion; bought again,
//!   as an ordinary request of the worker, when it is due or refused).
//! - One record per request (REST has no bulk create); the account's concurrency limit is
//!   respected by the worker's `max_in_flight`, and its 429 backs off.
//! - Refusals are read from `o:errorDetails` and name the field (`o:errorPath`).
//! - Mappings: subsidiary, location, walk-in customer, tender → payment method, tax rate →
//!   tax code, SKU → item (by external id or a table).

use super::errors;
use super::m2m::{self, M2m};
use super::tba::{self, Credentials};
use crate::domain::{OutboxEntry, Record, Sale, SaleKind, StockAdjustment, Tender};
use crate::engine::{Connector, Jitter, RecordResult, Verdict};
use crate::mapping::{NetSuiteMap, NsItems, missing, tender_kind};
use crate::wire::{HttpRequest, HttpResponse, Method};
use jiff::Timestamp;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use uuid::Uuid;

pub const RECORD_BASE: &str = "/services/rest/record/v1";

/// The `inventoryAdjustment` line sublist. SOAP and SuiteScript name it `inventory`, and REST
/// record fields carry the SuiteScript ids; one third-party page shows `item` instead
/// (reference §B5: confirm it in the account's metadata catalog). The fake takes this one.
pub const ADJUSTMENT_SUBLIST: &str = "inventory";

/// How the connector proves who it is.
pub enum NsAuth {
    Tba(Credentials),
    M2m(M2m),
}

pub struct NetSuiteConnector {
    map: NetSuiteMap,
    auth: NsAuth,
    /// The URL the requests go to (signatures cover it).
    base_url: String,
    rng: Jitter,
    bearer: Option<(String, i64)>,
    buying_token: BTreeMap<Uuid, ()>,
    /// Where confirmed internal ids are noted for the stock pull.
    newest: Option<std::sync::Arc<super::live::NsNewest>>,
}

/// A decimal amount as NetSuite takes it (a JSON number), from minor units through its
/// exact decimal text.
pub fn amount(minor: i64) -> Value {
    serde_json::from_str(&crate::lightspeed::json::money_str(minor)).unwrap_or(Value::Null)
}

impl NetSuiteConnector {
    pub fn new(map: NetSuiteMap, auth: NsAuth, base_url: &str, seed: u64) -> NetSuiteConnector {
        NetSuiteConnector {
            map,
            auth,
            base_url: base_url.trim_end_matches('/').to_string(),
            rng: Jitter::new(seed),
            bearer: None,
            buying_token: BTreeMap::new(),
            newest: None,
        }
    }

    /// Notes every confirmed internal id in `newest` (the stock pull's rebase reads it).
    pub fn with_newest(mut self, newest: std::sync::Arc<super::live::NsNewest>) -> NetSuiteConnector {
        self.newest = Some(newest);
        self
    }

    /// `cashSale` or `cashRefund`.
    pub fn record_type(s: &Sale) -> &'static str {
        if s.kind == SaleKind::Refund { "cashRefund" } else { "cashSale" }
    }

    /// The NetSuite item reference of a SKU, or the missing mapping's reason.
    fn item_ref(&self, sku: &str) -> Result<Value, String> {
        match &self.map.items {
            NsItems::Rule(_) => Ok(json!({"externalId": sku})),
            NsItems::Table(t) => match t.get(sku) {
                Some(id) => Ok(json!({"id": id})),
                None => Err(missing(&format!("mappings.netsuite.items.\"{sku}\""), "no NetSuite item for this SKU")),
            },
        }
    }

    /// The `inventoryAdjustment` body of a stock adjustment: one line, `adjustQtyBy` the
    /// signed delta (kilograms for weighed items), at the store's location, booked to the
    /// adjustment account; or the missing mapping's reason.
    pub fn adjustment_body(&self, a: &StockAdjustment) -> Result<Value, String> {
        let Some(account) = &self.map.adjustment_account else {
            return Err(missing("mappings.netsuite.adjustment_account", "no account to book stock adjustments to"));
        };
        let qty = if a.by_weight {
            let kg = amount_kg(a.delta.unsigned_abs());
            if a.delta < 0 { serde_json::from_str(&format!("-{kg}")).unwrap_or(Value::Null) } else { kg }
        } else {
            json!(a.delta)
        };
        let line = json!({"item": self.item_ref(&a.sku)?, "location": {"id": self.map.location}, "adjustQtyBy": qty});
        let mut memo = format!("edge adjustment {}: {}", a.id, a.reason.as_str());
        if !a.note.is_empty() {
            memo.push_str("; ");
            memo.push_str(&a.note);
        }
        Ok(json!({
            "externalId": a.id.to_string(),
            "subsidiary": {"id": self.map.subsidiary},
            "account": {"id": account},
            "adjLocation": {"id": self.map.location},
            "tranDate": a.business_date.to_string(),
            "memo": memo,
            ADJUSTMENT_SUBLIST: {"items": [line]},
        }))
    }

    /// The record type and body of a record.
    pub fn record_body(&self, r: &Record) -> Result<(&'static str, Value), String> {
        match r {
            Record::Sale(s) => Ok((Self::record_type(s), self.body(s)?)),
            Record::Adjustment(a) => Ok(("inventoryAdjustment", self.adjustment_body(a)?)),
        }
    }

    /// The record body, or the missing mapping's reason.
    pub fn body(&self, s: &Sale) -> Result<Value, String> {
        let mut lines = Vec::new();
        for l in &s.lines {
            let item = self.item_ref(&l.sku)?;
            let qty: Value = match l.quantity {
                crate::domain::Quantity::Units(u) => json!(u),
                crate::domain::Quantity::Grams(g) => amount_kg(u64::from(g)),
            };
            let mut line = json!({"item": item, "quantity": qty, "amount": amount(l.gross_minor),
                                  "location": {"id": self.map.location}});
            if !self.map.tax_codes.is_empty() {
                let key = l.tax_rate_bp.to_string();
                let Some(code) = self.map.tax_codes.get(&key) else {
                    return Err(missing(
                        &format!("mappings.netsuite.tax_codes.\"{key}\""),
                        "no tax code for this rate",
                    ));
                };
                line["taxCode"] = json!({"id": code});
            }
            lines.push(line);
        }
        // A cash sale has one payment method: the largest tender's (the memo lists all).
        let main: Option<&Tender> = s.tenders.iter().max_by_key(|t| t.amount_minor());
        let mut b = json!({
            "externalId": s.id.to_string(),
            "entity": {"id": self.map.walk_in_customer},
            "subsidiary": {"id": self.map.subsidiary},
            "location": {"id": self.map.location},
            "tranDate": s.business_date.to_string(),
            "memo": memo(s),
            "item": {"items": lines},
        });
        if let Some(t) = main {
            let kind = tender_kind(t);
            let Some(pm) = self.map.tenders.get(kind) else {
                return Err(missing(&format!("mappings.netsuite.tenders.{kind}"), "no payment method for this tender"));
            };
            b["paymentMethod"] = json!({"id": pm});
        }
        Ok(b)
    }

    fn nonce(&mut self) -> String {
        const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..20).map(|_| ALNUM[(self.rng.next_u64() % ALNUM.len() as u64) as usize] as char).collect()
    }

    /// Adds the credentials to a request; `Err` is the token request to send first.
    fn authorise(&mut self, req: &mut HttpRequest, now: Timestamp) -> Result<(), HttpRequest> {
        let url = format!("{}{}", self.base_url, req.path);
        let nonce = self.nonce();
        match &self.auth {
            NsAuth::Tba(c) => {
                // The URL is ours and well formed; a failure here is a bug, sent unsigned (401).
                if let Ok(h) = tba::authorization(c, req.method.as_str(), &url, &nonce, now.as_second().max(0) as u64) {
                    req.headers.push(("Authorization".into(), h));
                }
                Ok(())
            }
            NsAuth::M2m(m) => match &self.bearer {
                Some((t, exp)) if *exp > now.as_millisecond() + 60_000 => {
                    req.headers.push(("Authorization".into(), format!("Bearer {t}")));
                    Ok(())
                }
                _ => {
                    let token_url = format!("{}{}", self.base_url, m2m::TOKEN_PATH);
                    let form = m.token_form(&token_url, now.as_second()).unwrap_or_default();
                    Err(HttpRequest {
                        method: Method::Post,
                        path: m2m::TOKEN_PATH.into(),
                        headers: vec![("Content-Type".into(), "application/x-www-form-urlencoded".into())],
                        body: form.into_bytes(),
                    })
                }
            },
        }
    }
}

fn amount_kg(grams: u64) -> Value {
    let s = format!("{}.{:03}", grams / 1000, grams % 1000);
    serde_json::from_str(&s).unwrap_or(Value::Null)
}

fn memo(s: &Sale) -> String {
    let tenders: Vec<String> = s
        .tenders
        .iter()
        .map(|t| format!("{} {}", tender_kind(t), crate::lightspeed::json::money_str(t.amount_minor())))
        .collect();
    match (s.kind, s.refund_of) {
        (SaleKind::Refund, Some(of)) => format!("edge refund {} of sale {of}; {}", s.id, tenders.join(", ")),
        _ => format!("edge sale {}; {}", s.id, tenders.join(", ")),
    }
}

impl Connector for NetSuiteConnector {
    fn max_batch(&self) -> usize {
        1
    }

    fn build(
        &mut self,
        records: &[(OutboxEntry, Record)],
        now: Timestamp,
    ) -> (Option<HttpRequest>, Vec<(Uuid, String)>) {
        let Some((e, r)) = records.first() else { return (None, Vec::new()) };
        let (ty, body) = match self.record_body(r) {
            Ok(b) => b,
            Err(why) => return (None, vec![(e.id, why)]),
        };
        let mut req = HttpRequest {
            method: Method::Put,
            path: format!("{RECORD_BASE}/{ty}/eid:{}", r.id()),
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("Prefer".into(), "return-minimal".into()),
            ],
            body: body.to_string().into_bytes(),
        };
        match self.authorise(&mut req, now) {
            Ok(()) => (Some(req), Vec::new()),
            Err(token) => {
                self.buying_token.insert(e.id, ());
                (Some(token), Vec::new())
            }
        }
    }

    fn parse(&mut self, ids: &[Uuid], reply: &HttpResponse) -> Result<BTreeMap<Uuid, RecordResult>, String> {
        let id = ids.first().ok_or("no record in the batch")?;
        let loc = reply.header("location").ok_or("NetSuite's answer has no Location header")?;
        let internal = loc.rsplit('/').next().filter(|x| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()));
        let internal = internal.ok_or_else(|| format!("NetSuite's Location {loc:?} does not end in an internal id"))?;
        if let (Some(n), Ok(x)) = (&self.newest, internal.parse::<u64>()) {
            n.note(x);
        }
        Ok(BTreeMap::from([(*id, RecordResult::Confirmed(internal.to_string()))]))
    }

    fn intercept(&mut self, ids: &[Uuid], reply: &HttpResponse, now: Timestamp) -> Option<Verdict> {
        let id = *ids.first()?;
        self.buying_token.remove(&id)?;
        if reply.status != 200 {
            return Some(Verdict::RemoteFailed(format!(
                "NetSuite refused the client-credentials assertion: {}",
                errors::reason(reply.status, &reply.body)
            )));
        }
        let v: Value = match serde_json::from_slice(&reply.body) {
            Ok(v) => v,
            Err(e) => return Some(Verdict::RemoteFailed(format!("NetSuite's token answer is not JSON: {e}"))),
        };
        let token = v.get("access_token").and_then(Value::as_str).filter(|t| !t.is_empty());
        let expires = v.get("expires_in").and_then(crate::lightspeed::json::int).unwrap_or(m2m::TOKEN_LIFETIME_S);
        match token {
            Some(t) => {
                self.bearer = Some((t.to_string(), now.as_millisecond() + expires * 1000));
                Some(Verdict::Results(
                    ids.iter().map(|i| (*i, RecordResult::NotSent("NetSuite token bought".into()))).collect(),
                ))
            }
            None => Some(Verdict::RemoteFailed("NetSuite's token answer has no access_token".into())),
        }
    }

    fn on_auth_refused(&mut self, _now: Timestamp) {
        self.bearer = None;
    }

    fn refusal(&self, reply: &HttpResponse) -> String {
        errors::reason(reply.status, &reply.body)
    }

    /// `PUT …/eid:{id}` upserts: a repeat updates the same record.
    fn resend_is_safe(&self) -> bool {
        true
    }
}
