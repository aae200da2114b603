//! The Lightspeed connector edged ships: sales and refunds as completed `Sale`s, exactly
//! once, under the account's leaky bucket and its rotating OAuth tokens. Sans-I/O (see
//! `engine`): it builds requests and reads replies.
//!
//! - **No idempotency key at Lightspeed** (§0.3): every Sale carries `referenceNumber` = the
//!   edge sale id and `referenceNumberSource`, every payment a `remoteReference`. An entry
//!   whose last outcome is unknown (no reply, 5xx, a crash while in flight) is first looked
//!   up by `referenceNumber`; only a look-up that finds nothing lets it be posted again.
//! - **Tokens** ([`LsAuth`]): one refresher at a time (a flag under a mutex, shared with the
//!   pulls); the new pair is saved to the store before it is used; a 401 marks the access
//!   token spent; the refresh is form-encoded and sent as an ordinary request of the
//!   worker, so it is paced, timed out and retried like any other.
//! - **Bucket**: the connector reads `X-LS-API-Bucket-Level` / `-Drip-Rate` /
//!   `-Burst-Level` and holds a request until the bucket has room for its cost (by the
//!   account's cost rules), so the one overflow is never spent and a 429 is rare.
//! - **Refunds** are Sales with negative quantities and payments (an unlinked return; the
//!   edge does not hold Lightspeed's line ids for `parentSaleLineID`).
//! - Mappings (`crate::mapping`): shop, register, employee, walk-in customer, tender →
//!   paymentTypeID, SKU → itemID. A missing one makes the record a dead letter naming it.

use super::bucket::{self, Milli, Pacer, RequestShape, Rules};
use super::json::{self, int, money_str};
use super::oauth::{self, TokenSet};
use crate::domain::{OutboxEntry, OutboxState, Quantity, Record, Sale, SaleKind};
use crate::engine::{Connector, RecordResult, Verdict};
use crate::mapping::{LightspeedMap, missing, tender_kind};
use crate::wire::{HttpRequest, HttpResponse, Method};
use jiff::Timestamp;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// The token endpoint's path on the fake (the real one is on another host: give
/// `mappings.lightspeed.token_url`).
pub const TOKEN_PATH: &str = "/auth/oauth/token";

type SaveFn = Box<dyn Fn(&TokenSet) -> Result<(), String> + Send + Sync>;

/// What a caller may do for a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Bearer(String),
    /// This caller refreshes: send this form to the token endpoint.
    Refresh(String),
    /// Someone else is refreshing; ask again after this time (ms).
    Wait(i64),
    /// The refresh token is dead: the store must re-authorise.
    Dead(String),
}

struct AuthState {
    tokens: TokenSet,
    refreshing_until_ms: i64,
    warned_at_ms: i64,
    /// The account's bucket as we reckon it: the server's last word, plus what we sent since.
    pacer: Option<Pacer>,
    /// Requests a second the burst limiter allows (from `X-LS-API-Burst-Level`).
    burst_max: u32,
    /// When our last requests went (the burst window).
    sent_ms: std::collections::VecDeque<i64>,
    /// The newest saleID Lightspeed confirmed to us (its stock pulls rebase by it).
    newest_sale: u64,
    /// The Item pull has read every page once since the start: from then on a SKU without
    /// an itemID is a missing mapping, before it only not learned yet.
    items_known: bool,
}

/// The account's tokens, shared by every user of the account in the daemon.
pub struct LsAuth {
    client_id: String,
    client_secret: String,
    state: Mutex<AuthState>,
    save: SaveFn,
}

/// A refresh not answered within this long may be tried again (by anyone).
const REFRESH_TIMEOUT_MS: i64 = 30_000;

impl LsAuth {
    pub fn new(client_id: &str, client_secret: &str, tokens: TokenSet, save: SaveFn) -> Arc<LsAuth> {
        Arc::new(LsAuth {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            state: Mutex::new(AuthState {
                tokens,
                refreshing_until_ms: i64::MIN,
                warned_at_ms: i64::MIN,
                pacer: None,
                burst_max: 20,
                sent_ms: std::collections::VecDeque::new(),
                newest_sale: 0,
                items_known: false,
            }),
            save,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AuthState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn access(&self, now_ms: i64) -> Access {
        let mut s = self.lock();
        match s.tokens.refresh_health(now_ms) {
            Err(e) => return Access::Dead(e),
            Ok(Some(w)) if now_ms - s.warned_at_ms > 3_600_000 => {
                s.warned_at_ms = now_ms;
                tracing::warn!(warning = %w, "Lightspeed authorisation");
            }
            Ok(_) => {}
        }
        if !s.tokens.needs_refresh(now_ms) {
            s.tokens.mark_used();
            return Access::Bearer(s.tokens.access.clone());
        }
        if now_ms < s.refreshing_until_ms {
            return Access::Wait(s.refreshing_until_ms.min(now_ms + 250));
        }
        s.refreshing_until_ms = now_ms + REFRESH_TIMEOUT_MS;
        // A refresh whose answer was lost is repeated with the same refresh token: the
        // server revokes it only when the access token it bought is first used.
        Access::Refresh(oauth::refresh_form(&self.client_id, &self.client_secret, &s.tokens.refresh))
    }

    /// The token endpoint's 200 answer: saved before anyone uses it.
    pub fn refreshed(&self, body: &[u8], now_ms: i64) -> Result<(), String> {
        let mut s = self.lock();
        s.refreshing_until_ms = i64::MIN;
        let new = oauth::apply_response(Some(&s.tokens), body, now_ms)?;
        (self.save)(&new).map_err(|e| format!("cannot save the new Lightspeed tokens: {e}"))?;
        s.tokens = new;
        Ok(())
    }

    pub fn refresh_failed(&self) {
        self.lock().refreshing_until_ms = i64::MIN;
    }

    /// The remote said 401: this access token is spent.
    pub fn refused(&self) {
        let mut s = self.lock();
        s.tokens.access_expires_at_ms = 0;
    }

    pub fn tokens(&self) -> TokenSet {
        self.lock().tokens.clone()
    }

    /// The Item pull read every page (SKU → itemID is complete as of now).
    pub fn items_learned(&self) {
        self.lock().items_known = true;
    }

    pub fn items_known(&self) -> bool {
        self.lock().items_known
    }

    /// A sale Lightspeed confirmed (kept or found).
    pub fn note_sale(&self, id: u64) {
        let mut s = self.lock();
        s.newest_sale = s.newest_sale.max(id);
    }

    /// The newest saleID confirmed so far (0 after a start, until the first).
    pub fn newest_sale(&self) -> u64 {
        self.lock().newest_sale
    }

    /// A reply's rate headers. The level we keep is the higher of the server's and ours
    /// (ours counts requests still on their way, the server's counts other users of the
    /// account's bucket).
    pub fn observe(&self, level: Option<&str>, drip: Option<&str>, burst: Option<&str>, now_ms: i64) {
        let mut s = self.lock();
        if let Some(p) = level.and_then(|l| Pacer::from_headers(l, drip, now_ms)) {
            let ours = s.pacer.map(|o| (o.level - (now_ms - o.at_ms).max(0) * o.drip / 1000).max(0)).unwrap_or(0);
            s.pacer = Some(Pacer { level: p.level.max(ours), ..p });
        }
        if let Some((_, max)) = burst.and_then(|b| b.split_once('/'))
            && let Ok(max) = max.trim().parse::<u32>()
            && max >= 2
        {
            s.burst_max = max;
        }
    }

    /// Spends `cost` on the bucket and a place in the burst window now, or says when
    /// there will be room (`Err(ms)`) without spending anything.
    pub fn reserve(&self, cost: Milli, now_ms: i64) -> Result<(), i64> {
        let mut s = self.lock();
        while s.sent_ms.front().is_some_and(|t| *t <= now_ms - 1000) {
            s.sent_ms.pop_front();
        }
        // At most burst_max − 2 in any second: no fixed one-second window can see more.
        let room = s.burst_max.saturating_sub(2).max(1) as usize;
        if s.sent_ms.len() >= room
            && let Some(first) = s.sent_ms.front()
        {
            return Err(first + 1000);
        }
        if let Some(p) = s.pacer {
            let wait = p.wait_ms(cost, now_ms);
            if wait > 0 {
                return Err(now_ms + wait);
            }
            let level = (p.level - (now_ms - p.at_ms).max(0) * p.drip / 1000).max(0);
            s.pacer = Some(Pacer { level: level + cost, at_ms: now_ms, ..p });
        }
        s.sent_ms.push_back(now_ms);
        Ok(())
    }
}

/// Resolves a SKU to the itemID the Item pull learned.
pub type ItemResolver = Arc<dyn Fn(&str) -> Option<u64> + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Token,
    Lookup,
    Post,
}

/// The Lightspeed delivery connector. With [`LightspeedConnector::learning_items`] (edged),
/// sales wait until the Item pull has read every page once, rather than become dead letters
/// for want of an itemID not learned yet.
pub struct LightspeedConnector {
    map: LightspeedMap,
    quarantine_ms: i64,
    rules: Rules,
    auth: Arc<LsAuth>,
    items: ItemResolver,
    token_url: String,
    sent: BTreeMap<Uuid, Sent>,
    /// Item ids come from the Item pull (wait for its first round).
    learn_items: bool,
}

impl LightspeedConnector {
    pub fn new(
        map: LightspeedMap,
        auth: Arc<LsAuth>,
        items: ItemResolver,
        token_url: Option<String>,
    ) -> LightspeedConnector {
        let rules = if map.rate_rules == "legacy" { Rules::Legacy } else { Rules::Current };
        LightspeedConnector {
            // How long an entry of unknown outcome waits before its look-up: longer than a
            // request can take to reach Lightspeed and be served.
            quarantine_ms: i64::try_from(map.unknown_wait_s.saturating_mul(1000)).unwrap_or(i64::MAX),
            rules,
            auth,
            items,
            token_url: token_url.unwrap_or_else(|| TOKEN_PATH.to_string()),
            learn_items: false,
            map,
            sent: BTreeMap::new(),
        }
    }

    fn base(&self) -> String {
        format!("/API/V3/Account/{}", self.map.account_id)
    }

    /// Item ids come from the Item pull: hold sales until it has read every page once.
    pub fn learning_items(mut self) -> LightspeedConnector {
        self.learn_items = true;
        self
    }

    /// The Sale body of an edge sale or refund, or the missing mapping's reason.
    pub fn sale_body(&self, s: &Sale) -> Result<Value, String> {
        let sign: i64 = if s.kind == SaleKind::Refund { -1 } else { 1 };
        let mut lines = Vec::new();
        for l in &s.lines {
            let item = match self.map.items.get(&l.sku).copied().or_else(|| (self.items)(&l.sku)) {
                Some(i) => i,
                None => {
                    return Err(missing(
                        &format!("mappings.lightspeed.items.\"{}\"", l.sku),
                        "no Lightspeed itemID for this SKU, neither in the config nor learned from the Item pull",
                    ));
                }
            };
            // Whole units keep their count; a weighed line is one unit of its price.
            let q: i64 = match l.quantity {
                Quantity::Units(u) if u > 0 => i64::from(u),
                _ => 1,
            };
            let unit = (l.gross_minor + q - 1) / q;
            let discount = unit * q - l.gross_minor;
            let mut line = json!({"itemID": item.to_string(), "unitQuantity": (sign * q).to_string(),
                                  "unitPrice": money_str(unit), "tax": "false"});
            if discount != 0 {
                line["discountAmount"] = json!(money_str(discount));
            }
            lines.push(line);
        }
        let mut pays = Vec::new();
        for (i, t) in s.tenders.iter().enumerate() {
            let kind = tender_kind(t);
            let Some(pt) = self.map.tenders.get(kind) else {
                return Err(missing(
                    &format!("mappings.lightspeed.tenders.{kind}"),
                    "no paymentTypeID for this tender",
                ));
            };
            // The sale records what was handed over; cash change comes back out of it.
            pays.push(json!({"paymentTypeID": pt.to_string(), "amount": money_str(sign * t.amount_minor()),
                             "remoteReference": format!("{}-{}", s.id, i + 1)}));
        }
        let mut b = json!({
            "employeeID": self.map.employee_id.to_string(),
            "registerID": self.map.register_id.to_string(),
            "shopID": self.map.shop_id.to_string(),
            "completed": true,
            "enablePromotions": false,
            "referenceNumber": s.id.to_string(),
            "referenceNumberSource": self.map.reference_source,
            "completeTime": s.created_at.strftime("%Y-%m-%dT%H:%M:%S+00:00").to_string(),
            "SaleLines": {"SaleLine": lines},
            "SalePayments": {"SalePayment": pays},
        });
        if let Some(c) = self.map.customer_id {
            b["customerID"] = json!(c.to_string());
        }
        Ok(b)
    }

    fn lookup_path(&self, id: &Uuid) -> String {
        format!(
            "{}/Sale.json?referenceNumber={}&referenceNumberSource={}",
            self.base(),
            id,
            crate::netsuite::tba::pct(&self.map.reference_source)
        )
    }

    /// What a request costs by the account's rules.
    pub fn cost_of(&self, r: &HttpRequest) -> Milli {
        let path = r.path.split('?').next().unwrap_or("");
        let resource = path.strip_prefix(&format!("{}/", self.base())).unwrap_or(path);
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        let nested = ["SaleLines", "SalePayments"]
            .iter()
            .zip(["SaleLine", "SalePayment"])
            .map(|(o, i)| body.get(o).and_then(|x| x.get(i)).map_or(0, |v| v.as_array().map_or(1, Vec::len)))
            .sum::<usize>();
        let shape = RequestShape {
            method: r.method.as_str(),
            resource,
            completes_sale: body.get("completed") == Some(&Value::Bool(true)),
            nested: nested as u32,
            count: false,
        };
        bucket::cost(self.rules, &shape)
    }
}

fn bearer(req: &mut HttpRequest, token: &str) {
    req.headers.push(("Authorization".into(), format!("Bearer {token}")));
    req.headers.push(("Accept".into(), "application/json".into()));
}

impl Connector for LightspeedConnector {
    fn max_batch(&self) -> usize {
        1
    }

    fn build(
        &mut self,
        records: &[(OutboxEntry, Record)],
        now: Timestamp,
    ) -> (Option<HttpRequest>, Vec<(Uuid, String)>) {
        let Some((e, r)) = records.first() else { return (None, Vec::new()) };
        let s = match r {
            Record::Sale(s) => s,
            Record::Adjustment(_) => {
                let why = "Lightspeed takes no stock adjustments from the edge (its ItemShop qoh is an absolute \
                           level that a sale in between would overwrite): route adjustments elsewhere (routing.adjustments)";
                return (None, vec![(e.id, why.into())]);
            }
        };
        let token = match self.auth.access(now.as_millisecond()) {
            Access::Bearer(t) => t,
            Access::Refresh(form) => {
                self.sent.insert(e.id, Sent::Token);
                let req = HttpRequest {
                    method: Method::Post,
                    path: self.token_url.clone(),
                    headers: vec![("Content-Type".into(), "application/x-www-form-urlencoded".into())],
                    body: form.into_bytes(),
                };
                return (Some(req), Vec::new());
            }
            Access::Wait(_) | Access::Dead(_) => return (None, Vec::new()),
        };
        let unknown = matches!(e.state, OutboxState::Unknown | OutboxState::InFlight { .. });
        let mut req = if unknown {
            self.sent.insert(e.id, Sent::Lookup);
            HttpRequest { method: Method::Get, path: self.lookup_path(&s.id), headers: Vec::new(), body: Vec::new() }
        } else {
            match self.sale_body(s) {
                Ok(b) => {
                    self.sent.insert(e.id, Sent::Post);
                    HttpRequest {
                        method: Method::Post,
                        path: format!("{}/Sale.json", self.base()),
                        headers: vec![("Content-Type".into(), "application/json".into())],
                        body: b.to_string().into_bytes(),
                    }
                }
                Err(why) => return (None, vec![(e.id, why)]),
            }
        };
        bearer(&mut req, &token);
        (Some(req), Vec::new())
    }

    fn parse(&mut self, ids: &[Uuid], reply: &HttpResponse) -> Result<BTreeMap<Uuid, RecordResult>, String> {
        let id = ids.first().ok_or("no record in the batch")?;
        self.sent.remove(id);
        let v: Value =
            serde_json::from_slice(&reply.body).map_err(|e| format!("Lightspeed's Sale answer is not JSON: {e}"))?;
        let sale = v.get("Sale").ok_or("Lightspeed's answer has no Sale")?;
        let sale_id = sale.get("saleID").and_then(int).ok_or("Lightspeed's Sale has no saleID")?;
        if sale.get("completed").and_then(json::boolean) != Some(true) {
            return Err(format!("Lightspeed kept sale {sale_id} but not as completed"));
        }
        self.auth.note_sale(u64::try_from(sale_id).unwrap_or(0));
        Ok(BTreeMap::from([(*id, RecordResult::Confirmed(sale_id.to_string()))]))
    }

    fn intercept(&mut self, ids: &[Uuid], reply: &HttpResponse, now: Timestamp) -> Option<Verdict> {
        let id = *ids.first()?;
        let all = |r: RecordResult| Verdict::Results(ids.iter().map(|i| (*i, r.clone())).collect());
        match self.sent.get(&id).copied() {
            Some(Sent::Token) => {
                self.sent.remove(&id);
                if reply.status == 200 {
                    match self.auth.refreshed(&reply.body, now.as_millisecond()) {
                        Ok(()) => Some(all(RecordResult::NotSent("Lightspeed tokens refreshed".into()))),
                        Err(e) => Some(Verdict::RemoteFailed(e)),
                    }
                } else {
                    self.auth.refresh_failed();
                    let err = serde_json::from_slice::<Value>(&reply.body)
                        .ok()
                        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
                        .unwrap_or_else(|| reply.body_excerpt(100));
                    Some(Verdict::RemoteFailed(format!(
                        "Lightspeed refused the token refresh ({}: {err}); if it lasts, re-authorise the store",
                        reply.status
                    )))
                }
            }
            Some(Sent::Lookup) if reply.status == 200 => {
                self.sent.remove(&id);
                let v: Value = match serde_json::from_slice(&reply.body) {
                    Ok(v) => v,
                    Err(e) => return Some(Verdict::RemoteFailed(format!("Lightspeed's Sale list is not JSON: {e}"))),
                };
                let found: Result<Vec<Value>, String> = match v.get("Sale") {
                    None => Ok(Vec::new()),
                    Some(Value::Array(a)) => Ok(a.clone()),
                    Some(o @ Value::Object(_)) => Ok(vec![o.clone()]),
                    Some(other) => Err(format!("Lightspeed's Sale list holds {other}")),
                };
                match found {
                    Err(e) => Some(Verdict::RemoteFailed(e)),
                    Ok(list) => match list.iter().filter_map(|s| s.get("saleID").and_then(int)).min() {
                        Some(sid) => {
                            self.auth.note_sale(u64::try_from(sid).unwrap_or(0));
                            Some(all(RecordResult::Confirmed(sid.to_string())))
                        }
                        None => Some(all(RecordResult::Absent(
                            "not at Lightspeed after an unknown outcome: posting it".into(),
                        ))),
                    },
                }
            }
            Some(_) => {
                if reply.status != 200 {
                    self.sent.remove(&id);
                }
                None
            }
            None => None,
        }
    }

    fn not_before(&self, e: &OutboxEntry) -> Option<Timestamp> {
        crate::engine::quarantined_until(e, self.quarantine_ms)
    }

    fn on_auth_refused(&mut self, _now: Timestamp) {
        self.auth.refused();
    }

    fn observe(&mut self, reply: &HttpResponse, now: Timestamp) {
        self.auth.observe(
            reply.header("x-ls-api-bucket-level"),
            reply.header("x-ls-api-drip-rate"),
            reply.header("x-ls-api-burst-level"),
            now.as_millisecond(),
        );
    }

    fn ready_at(&mut self, now: Timestamp) -> Option<Timestamp> {
        let now_ms = now.as_millisecond();
        if self.learn_items && !self.auth.items_known() {
            return Timestamp::from_millisecond(now_ms + 1000).ok();
        }
        let at = match self.auth.access_state(now_ms) {
            AuthWait::Ready => now_ms,
            AuthWait::Until(t) => t,
            AuthWait::Dead => now_ms + 60_000,
        };
        Timestamp::from_millisecond(at).ok()
    }

    fn pace(&mut self, request: &HttpRequest, now: Timestamp) -> Option<Timestamp> {
        if !request.path.starts_with(&self.base()) {
            return None;
        }
        match self.auth.reserve(self.cost_of(request), now.as_millisecond()) {
            Ok(()) => None,
            Err(at) => Timestamp::from_millisecond(at).ok(),
        }
    }

    fn refusal(&self, reply: &HttpResponse) -> String {
        json::error_message(reply.status, &reply.body)
    }
}

/// Whether a caller can go now.
pub enum AuthWait {
    Ready,
    Until(i64),
    Dead,
}

impl LsAuth {
    /// Like [`LsAuth::access`] without taking the refresh: for pacing.
    pub fn access_state(&self, now_ms: i64) -> AuthWait {
        let s = self.lock();
        if s.tokens.refresh_health(now_ms).is_err() {
            AuthWait::Dead
        } else if s.tokens.needs_refresh(now_ms) && now_ms < s.refreshing_until_ms {
            AuthWait::Until(s.refreshing_until_ms.min(now_ms + 250))
        } else {
            AuthWait::Ready
        }
    }
}
