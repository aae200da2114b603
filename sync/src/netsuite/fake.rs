//! The fake NetSuite account: SuiteTalk REST as a state machine without I/O, served over
//! HTTP by `edge-lab fakes` and called directly by the simulation.
//!
//! True to shared/reference/lightspeed-netsuite.md §B (and its checklist §E):
//! - TBA verified exactly (`tba::verify`: realm upper case with `_`, query parameters
//!   signed, the body not, HMAC-SHA256 only); OAuth 2.0 client credentials with an ES256
//!   assertion (`m2m`), tokens valid 3600 s and no refresh token. Every failure is the same
//!   401 `INVALID_LOGIN` NetSuite gives (the reason goes to the fake's log only).
//! - Records: `POST` creates (204 + `Location`), a POST whose `externalId` exists is refused;
//!   `PUT …/eid:{x}` upserts (create or update, same internal id); `GET` by id or `eid:`;
//!   record types matched case-insensitively; references by `{"id"}` or `{"externalId"}`
//!   must exist, else a 400 whose `o:errorPath` names the field; `tranDate` a plain date.
//! - The concurrency limit: more requests at once than the account allows get 429.
//! - SuiteQL: `limit` ≤ 1000, `offset`, `hasMore`, `totalResults`, `links`; results capped
//!   at 100,000.
//!
//! Departures (docs/ARCHITECTURE.md): SuiteQL understands the few query shapes the
//! connector sends (transactions of a day; items), not SQL; async (`Prefer:
//! respond-async`) is not served; tax is not computed (amounts are kept as sent).

use super::errors;
use super::m2m;
use super::tba::{self, Credentials};
use crate::cloud::fake::{Disposition, Faults};
use crate::engine::Jitter;
use crate::wire::{HttpRequest, HttpResponse, Method};
use jiff::Timestamp;
use jiff::civil::Date;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub const SUITEQL_MAX_LIMIT: usize = 1000;
pub const SUITEQL_MAX_RESULTS: usize = 100_000;
const ITEM_ID_BASE: u64 = 500;

/// Oracle's published example TBA values (CONTRACT: the demo's NetSuite credentials).
pub fn demo_tba() -> Credentials {
    tba::oracle_example()
}

#[derive(Debug, Clone)]
pub struct NsFakeConfig {
    pub tba: Credentials,
    /// M2M: client id, certificate id, public key.
    pub m2m: Option<(String, String, Vec<u8>)>,
    pub concurrency: usize,
    /// Where the fake is served: signatures and `Location` headers use it.
    pub base_url: String,
    pub subsidiaries: Vec<String>,
    pub locations: Vec<String>,
    pub customers: Vec<String>,
    pub payment_methods: Vec<String>,
    pub tax_codes: Vec<String>,
    /// Accounts stock adjustments may be booked to.
    pub adjustment_accounts: Vec<String>,
    pub catalog_size: u64,
}

impl NsFakeConfig {
    pub fn demo(base_url: &str) -> NsFakeConfig {
        NsFakeConfig {
            tba: demo_tba(),
            m2m: None,
            concurrency: 5,
            base_url: base_url.trim_end_matches('/').to_string(),
            subsidiaries: vec!["1".into()],
            locations: vec!["1".into()],
            customers: vec!["107".into()],
            payment_methods: vec!["1".into(), "5".into()],
            tax_codes: vec!["7".into(), "19".into(), "0".into()],
            adjustment_accounts: vec!["140".into()],
            catalog_size: 2000,
        }
    }
}

/// One kept transaction (`GET /_fake/records`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NsRecord {
    pub record_type: String,
    pub id: u64,
    /// The edge sale id (CONTRACT: records show `externalId`).
    #[serde(rename = "externalId")]
    pub external_id: Option<String>,
    pub tran_date: String,
    pub total_minor: i64,
    /// Times it was written (an upsert of an existing record counts).
    pub writes: u32,
    #[serde(skip)]
    pub body: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NsStats {
    pub requests: u64,
    pub unauthorized: u64,
    pub concurrency_refused: u64,
    pub max_concurrent: usize,
    pub lost_replies: u64,
    pub upserts_of_existing: u64,
}

pub struct FakeNetSuite {
    cfg: NsFakeConfig,
    faults: Faults,
    rng: Jitter,
    records: BTreeMap<u64, NsRecord>,
    by_eid: BTreeMap<(String, String), u64>,
    bearer: BTreeMap<String, i64>,
    next_id: u64,
    stats: NsStats,
    /// Quantity on hand in thousandths (units, or kilograms of weighed items) per item
    /// internal id and location; cash sales take, cash refunds and adjustments give.
    stock: BTreeMap<(u64, String), i64>,
    /// Unit price (minor units) of each item at the base price level (`1`).
    prices: BTreeMap<u64, i64>,
}

/// One error detail: code, text, and where (`o:errorPath` … and its value).
type Detail<'a> = (&'a str, &'a str, Option<(&'a str, &'a str)>);

fn envelope(status: u16, title: &str, details: &[Detail<'_>]) -> HttpResponse {
    let list: Vec<Value> = details
        .iter()
        .map(|(code, detail, at)| {
            let mut d = json!({"detail": detail, "o:errorCode": code});
            if let Some((k, v)) = at {
                d[*k] = json!(v);
            }
            d
        })
        .collect();
    HttpResponse::json(
        status,
        &json!({"type": "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html", "title": title, "status": status,
                "o:errorDetails": list}),
    )
}

fn bad(code: &str, detail: &str, path: &str) -> HttpResponse {
    envelope(400, "Bad Request", &[(code, detail, Some(("o:errorPath", path)))])
}

fn invalid_login() -> HttpResponse {
    envelope(
        401,
        "Unauthorized",
        &[(
            "INVALID_LOGIN",
            "Invalid login attempt. For more details, see the Login Audit Trail in the NetSuite UI at Setup > Users/Roles > User Management > View Login Audit Trail.",
            None,
        )],
    )
}

/// Thousandths of a NetSuite quantity.
fn milli(v: &Value) -> Option<i64> {
    crate::lightspeed::json::thousandths(v)
}

/// A quantity in thousandths as NetSuite prints it (`12`, `0.35`, `-1.5`).
fn thousandths(q: i64) -> String {
    let (sign, a) = if q < 0 { ("-", q.unsigned_abs()) } else { ("", q as u64) };
    let frac = format!("{:03}", a % 1000);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() { format!("{sign}{}", a / 1000) } else { format!("{sign}{}.{frac}", a / 1000) }
}

/// Minor units of a NetSuite amount (a JSON number or a numeric string).
fn minor(v: &Value) -> Option<i64> {
    crate::lightspeed::json::money_minor(v)
}

impl FakeNetSuite {
    pub fn new(cfg: NsFakeConfig, seed: u64) -> FakeNetSuite {
        FakeNetSuite {
            cfg,
            faults: Faults::healed(),
            rng: Jitter::new(seed),
            records: BTreeMap::new(),
            by_eid: BTreeMap::new(),
            bearer: BTreeMap::new(),
            next_id: 1001,
            stats: NsStats::default(),
            stock: BTreeMap::new(),
            prices: BTreeMap::new(),
        }
        .with_catalog()
    }

    fn with_catalog(mut self) -> FakeNetSuite {
        let loc = self.cfg.locations.first().cloned().unwrap_or_else(|| "1".into());
        for i in 0..self.cfg.catalog_size {
            let it = crate::demo::demo_item(i);
            let s = crate::demo::demo_stock(i);
            let milli = if it.kind == crate::domain::ItemKind::Weight { s } else { s * 1000 };
            self.stock.insert((ITEM_ID_BASE + i + 1, loc.clone()), milli);
            self.prices.insert(ITEM_ID_BASE + i + 1, it.price_minor);
        }
        self
    }

    /// The internal id an item reference names, if the item exists.
    fn item_id(&self, r: &Value) -> Option<u64> {
        let n = self.cfg.catalog_size;
        match (r.get("id").and_then(Value::as_str), r.get("externalId").and_then(Value::as_str)) {
            (Some(id), _) => id.parse::<u64>().ok().filter(|i| *i > ITEM_ID_BASE && *i <= ITEM_ID_BASE + n),
            (None, Some(e)) => e
                .strip_prefix("SKU-")
                .and_then(|d| d.parse::<u64>().ok())
                .filter(|i| *i >= 1 && *i <= n)
                .map(|i| ITEM_ID_BASE + i),
            _ => None,
        }
    }

    /// The stock effect of a record body: (item, location, thousandths).
    fn stock_effect(&self, ty: &str, b: &Value) -> Vec<(u64, String, i64)> {
        let (sublist, field, sign) = match ty {
            "cashsale" => ("item", "quantity", -1),
            "cashrefund" => ("item", "quantity", 1),
            _ => (super::connector::ADJUSTMENT_SUBLIST, "adjustQtyBy", 1),
        };
        let header_loc =
            b.get("location").or_else(|| b.get("adjLocation")).and_then(|l| l.get("id")).and_then(Value::as_str);
        let lines = b.get(sublist).and_then(|i| i.get("items")).and_then(Value::as_array).cloned().unwrap_or_default();
        lines
            .iter()
            .filter_map(|l| {
                let item = self.item_id(l.get("item")?)?;
                let loc = l.get("location").and_then(|x| x.get("id")).and_then(Value::as_str).or(header_loc)?;
                Some((item, loc.to_string(), sign * milli(l.get(field)?)?))
            })
            .collect()
    }

    fn apply_stock(&mut self, effect: &[(u64, String, i64)], sign: i64) {
        for (item, loc, q) in effect {
            *self.stock.entry((*item, loc.clone())).or_default() += sign * q;
        }
    }

    /// Quantity on hand of an item (by external id) at a location, as NetSuite shows it.
    pub fn quantity_on_hand(&self, external_id: &str, location: &str) -> Option<String> {
        let id = self.item_id(&json!({"externalId": external_id}))?;
        Some(thousandths(self.stock.get(&(id, location.to_string())).copied().unwrap_or(0)))
    }

    pub fn config(&self) -> &NsFakeConfig {
        &self.cfg
    }
    pub fn set_base_url(&mut self, u: &str) {
        self.cfg.base_url = u.trim_end_matches('/').to_string();
    }
    pub fn faults(&self) -> &Faults {
        &self.faults
    }
    pub fn set_faults(&mut self, f: Faults) {
        self.faults = f;
    }
    pub fn stats(&self) -> &NsStats {
        &self.stats
    }
    pub fn records(&self) -> &BTreeMap<u64, NsRecord> {
        &self.records
    }

    /// Handles one request; `concurrent` is how many requests the account is serving now,
    /// this one included (the HTTP layer counts them; the simulation passes 1).
    pub fn handle(&mut self, now: Timestamp, req: &HttpRequest, concurrent: usize) -> Disposition {
        let path = req.path.split('?').next().unwrap_or("").to_string();
        if let Some(r) = self.fake_surface(req, &path) {
            return Disposition::Reply(r);
        }
        self.stats.requests += 1;
        self.stats.max_concurrent = self.stats.max_concurrent.max(concurrent);
        if self.faults.down {
            return Disposition::Refuse;
        }
        if concurrent > self.cfg.concurrency {
            self.stats.concurrency_refused += 1;
            return Disposition::Reply(envelope(
                429,
                "Too Many Requests",
                &[("CONCURRENCY_LIMIT_EXCEEDED", "Concurrent request limit exceeded. Request blocked.", None)],
            ));
        }
        if self.faults.rate_limit_storm {
            return Disposition::Reply(envelope(
                429,
                "Too Many Requests",
                &[("CONCURRENCY_LIMIT_EXCEEDED", "Request blocked.", None)],
            ));
        }
        if crate::cloud::fake::strikes(&mut self.rng, self.faults.error_rate) {
            return Disposition::Reply(envelope(
                self.faults.error_status,
                "Service Unavailable",
                &[("UNEXPECTED_ERROR", "injected failure", None)],
            ));
        }
        if path == m2m::TOKEN_PATH {
            return Disposition::Reply(self.token(req, now));
        }
        if let Err(why) = self.authenticate(req, now) {
            tracing::debug!(%why, "fake NetSuite: login refused");
            self.stats.unauthorized += 1;
            return Disposition::Reply(invalid_login());
        }
        let (resp, commit) = self.route(req, &path);
        if commit && crate::cloud::fake::strikes(&mut self.rng, self.faults.lose_reply_after_commit_rate) {
            self.stats.lost_replies += 1;
            return Disposition::LoseReply;
        }
        Disposition::Reply(resp)
    }

    fn fake_surface(&mut self, req: &HttpRequest, path: &str) -> Option<HttpResponse> {
        // Files "Available Without Login" (the items' pictures), served without a token as
        // NetSuite serves them; the demo item's drawing (SVG).
        if req.method == Method::Get && path == "/core/media/media.nl" {
            let id = req.path.split_once('?').and_then(|(_, q)| {
                q.split('&').find_map(|kv| kv.strip_prefix("id=")).and_then(|v| v.parse::<u64>().ok())
            });
            let item = id.and_then(|f| f.checked_sub(FILE_ID_BASE)).filter(|i| *i >= 1 && *i <= self.cfg.catalog_size);
            return Some(match item.and_then(|i| crate::demo::demo_picture_svg(&crate::demo::demo_item(i - 1).sku)) {
                Some(svg) => HttpResponse {
                    status: 200,
                    headers: vec![("content-type".into(), "image/svg+xml".into())],
                    body: svg.into_bytes(),
                },
                None => HttpResponse::json(404, &json!({"error": "no such file"})),
            });
        }
        // Changes made in NetSuite itself: a count or receipt sets a quantity on hand
        // ({"externalId", "location", "quantityonhand"}); a price list change sets the base
        // price ({"externalId", "price"}). GET /_fake/stock?location=L lists the levels.
        let refuse = |e: &str| Some(HttpResponse::json(400, &json!({"error": e})));
        match (req.method, path) {
            (Method::Post, "/_fake/stock" | "/_fake/prices") => {
                let v: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
                let Some(id) = v.get("externalId").and_then(|e| self.item_id(&json!({"externalId": e}))) else {
                    return refuse("give the externalId of an item the fake has");
                };
                if path == "/_fake/stock" {
                    let loc = v.get("location").and_then(Value::as_str).unwrap_or("1").to_string();
                    let Some(q) = v.get("quantityonhand").and_then(milli) else {
                        return refuse("give quantityonhand as a number");
                    };
                    self.stock.insert((id, loc), q);
                } else {
                    let Some(p) = v.get("price").and_then(minor).filter(|p| *p >= 0) else {
                        return refuse("give price as a decimal amount");
                    };
                    self.prices.insert(id, p);
                }
                return Some(HttpResponse::json(200, &v));
            }
            (Method::Get, "/_fake/stock") => {
                let q = crate::lightspeed::fake::query_pairs(&req.path);
                let loc = q.iter().find(|(k, _)| k == "location").map(|(_, v)| v.clone());
                let levels: Vec<Value> = self
                    .stock
                    .iter()
                    .filter(|((_, l), _)| loc.as_ref().is_none_or(|x| x == l))
                    .map(|((id, l), q)| {
                        json!({"externalId": format!("SKU-{:07}", id - ITEM_ID_BASE), "location": l,
                               "quantityonhand": thousandths(*q)})
                    })
                    .collect();
                return Some(HttpResponse::json(200, &json!({"levels": levels})));
            }
            _ => {}
        }
        let (list, stats) = (&self.records, &self.stats);
        crate::cloud::fake::fake_surface(&mut self.faults, req, path, || {
            let kept: Vec<&NsRecord> = list.values().collect();
            json!({"records": kept, "stats": stats})
        })
    }

    fn authenticate(&mut self, req: &HttpRequest, now: Timestamp) -> Result<(), String> {
        if self.faults.credentials_expired {
            return Err("credentials revoked (fault)".into());
        }
        let h = req.header("authorization").ok_or("no Authorization header")?;
        if let Some(t) = h.strip_prefix("Bearer ") {
            return match self.bearer.get(t) {
                Some(exp) if *exp > now.as_millisecond() => Ok(()),
                Some(_) => Err("the bearer token expired".into()),
                None => Err("unknown bearer token".into()),
            };
        }
        let url = format!("{}{}", self.cfg.base_url, req.path);
        tba::verify(&self.cfg.tba, req.method.as_str(), &url, h)
    }

    fn token(&mut self, req: &HttpRequest, now: Timestamp) -> HttpResponse {
        let form: BTreeMap<String, String> =
            crate::lightspeed::fake::query_pairs(&format!("?{}", String::from_utf8_lossy(&req.body)))
                .into_iter()
                .collect();
        let refuse = |d: &str| HttpResponse::json(400, &json!({"error": "invalid_request", "error_description": d}));
        if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
            return refuse("grant_type must be client_credentials");
        }
        if form.get("client_assertion_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        {
            return refuse("client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
        }
        let Some((client, cert, pk)) = &self.cfg.m2m else {
            return refuse("no client-credentials mapping on this account");
        };
        let jwt = form.get("client_assertion").map(String::as_str).unwrap_or("");
        let url = format!("{}{}", self.cfg.base_url, m2m::TOKEN_PATH);
        if let Err(why) = m2m::verify_assertion(jwt, pk, client, cert, &url, now.as_second()) {
            return HttpResponse::json(400, &json!({"error": "invalid_grant", "error_description": why}));
        }
        let t = format!("ns-{:016x}{:016x}", self.rng.next_u64(), self.rng.next_u64());
        self.bearer.insert(t.clone(), now.as_millisecond() + m2m::TOKEN_LIFETIME_S * 1000);
        HttpResponse::json(
            200,
            &json!({"access_token": t, "expires_in": m2m::TOKEN_LIFETIME_S.to_string(), "token_type": "bearer"}),
        )
    }

    fn route(&mut self, req: &HttpRequest, path: &str) -> (HttpResponse, bool) {
        if path == "/services/rest/query/v1/suiteql" && req.method == Method::Post {
            return (self.suiteql(req), false);
        }
        if path == "/services/rest/system/v1/serverTime" && req.method == Method::Get {
            return (HttpResponse::json(200, &json!({"serverTime": Timestamp::now().to_string()})), false);
        }
        let Some(rest) = path.strip_prefix("/services/rest/record/v1/") else {
            return (
                envelope(404, "Not Found", &[("NONEXISTENT_ID", "No such resource.", Some(("o:urlPath", path)))]),
                false,
            );
        };
        let (ty, key) = match rest.split_once('/') {
            Some((t, k)) => (t.to_lowercase(), Some(k.to_string())),
            None => (rest.to_lowercase(), None),
        };
        if !matches!(ty.as_str(), "cashsale" | "cashrefund" | "inventoryadjustment") {
            return (
                envelope(
                    404,
                    "Not Found",
                    &[("INVALID_RCRD_TYPE", "The record type is not served by the fake.", Some(("o:urlPath", path)))],
                ),
                false,
            );
        }
        let body = || serde_json::from_slice::<Value>(&req.body);
        match (req.method, key) {
            (Method::Put, Some(k)) if k.starts_with("eid:") => {
                let eid = k.trim_start_matches("eid:").to_string();
                if eid.is_empty() || !eid.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                    return (
                        envelope(
                            400,
                            "Bad Request",
                            &[("INVALID_ID", "External ids take letters, digits, _ and -.", Some(("o:urlPath", path)))],
                        ),
                        false,
                    );
                }
                match body() {
                    Ok(b) => self.write(&ty, Some(eid), b, true),
                    Err(e) => (bad("INVALID_CONTENT", &format!("The body is not JSON: {e}"), ""), false),
                }
            }
            (Method::Put, Some(_)) => (
                envelope(
                    405,
                    "Method Not Allowed",
                    &[(
                        "INVALID_REQUEST",
                        "PUT upserts by eid: only; use PATCH to update by id.",
                        Some(("o:urlPath", path)),
                    )],
                ),
                false,
            ),
            (Method::Post, None) => match body() {
                Ok(b) => {
                    let eid = b.get("externalId").and_then(Value::as_str).map(str::to_string);
                    self.write(&ty, eid, b, false)
                }
                Err(e) => (bad("INVALID_CONTENT", &format!("The body is not JSON: {e}"), ""), false),
            },
            (Method::Get, Some(k)) => {
                let id = match k.strip_prefix("eid:") {
                    Some(e) => self.by_eid.get(&(ty.clone(), e.to_string())).copied(),
                    None => k.parse::<u64>().ok().filter(|i| self.records.get(i).is_some_and(|r| r.record_type == ty)),
                };
                match id.and_then(|i| self.records.get(&i)) {
                    Some(r) => {
                        let mut b = r.body.clone();
                        b["id"] = json!(r.id.to_string());
                        (HttpResponse::json(200, &b), false)
                    }
                    None => (
                        envelope(
                            404,
                            "Not Found",
                            &[("NONEXISTENT_ID", "The record does not exist.", Some(("o:urlPath", path)))],
                        ),
                        false,
                    ),
                }
            }
            _ => (
                envelope(
                    405,
                    "Method Not Allowed",
                    &[("INVALID_REQUEST", "Not served by the fake.", Some(("o:urlPath", path)))],
                ),
                false,
            ),
        }
    }

    fn reference_ok(&self, v: Option<&Value>, pool: &[String]) -> bool {
        v.and_then(|r| r.get("id")).and_then(Value::as_str).is_some_and(|id| pool.iter().any(|p| p == id))
    }

    fn item_ok(&self, v: Option<&Value>) -> bool {
        v.and_then(|r| self.item_id(r)).is_some()
    }

    fn write(&mut self, ty: &str, eid: Option<String>, b: Value, upsert: bool) -> (HttpResponse, bool) {
        if let (Some(e), Some(inbody)) = (&eid, b.get("externalId").and_then(Value::as_str))
            && upsert
            && e != inbody
        {
            return (
                bad("INVALID_FIELD_VALUE", "externalId in the body differs from the one in the URL.", "externalId"),
                false,
            );
        }
        if let Some(id) = eid.as_deref().and_then(|e| uuid::Uuid::parse_str(e).ok())
            && self.faults.reject_records.contains(&id)
        {
            return (bad("INVALID_FIELD_VALUE", "Invalid record (injected).", "memo"), false);
        }
        let existing = eid.as_ref().and_then(|e| self.by_eid.get(&(ty.to_string(), e.clone())).copied());
        if existing.is_some() && !upsert {
            return (
                bad(
                    "DUP_RCRD",
                    "A record with this external id already exists; upsert with PUT …/eid:{externalId}.",
                    "externalId",
                ),
                false,
            );
        }
        // Validation, field by field.
        let tran_date = b.get("tranDate").and_then(Value::as_str).unwrap_or("");
        if tran_date.len() != 10 || tran_date.parse::<Date>().is_err() {
            return (bad("INVALID_FIELD_VALUE", "tranDate must be a date, YYYY-MM-DD.", "tranDate"), false);
        }
        if ty != "inventoryadjustment" {
            if !self.reference_ok(b.get("entity"), &self.cfg.customers) {
                return (bad("INVALID_KEY_OR_REF", "Invalid entity reference key.", "entity"), false);
            }
            if let Some(pm) = b.get("paymentMethod")
                && !self.reference_ok(Some(pm), &self.cfg.payment_methods)
            {
                return (bad("INVALID_KEY_OR_REF", "Invalid paymentMethod reference key.", "paymentMethod"), false);
            }
        }
        if !self.reference_ok(b.get("subsidiary"), &self.cfg.subsidiaries) {
            return (bad("INVALID_KEY_OR_REF", "Invalid subsidiary reference key.", "subsidiary"), false);
        }
        let sublist = if ty == "inventoryadjustment" {
            if !self.reference_ok(b.get("account"), &self.cfg.adjustment_accounts) {
                return (bad("INVALID_KEY_OR_REF", "Invalid account reference key.", "account"), false);
            }
            if !self.reference_ok(b.get("adjLocation"), &self.cfg.locations) {
                return (bad("INVALID_KEY_OR_REF", "Invalid adjLocation reference key.", "adjLocation"), false);
            }
            super::connector::ADJUSTMENT_SUBLIST
        } else {
            "item"
        };
        let lines = b.get(sublist).and_then(|i| i.get("items")).and_then(Value::as_array).cloned().unwrap_or_default();
        if lines.is_empty() {
            return (
                bad(
                    "USER_ERROR",
                    "You must enter at least one line item for this transaction.",
                    &format!("{sublist}.items"),
                ),
                false,
            );
        }
        let mut total = 0i64;
        for (i, l) in lines.iter().enumerate() {
            if !self.item_ok(l.get("item")) {
                return (
                    bad("INVALID_KEY_OR_REF", "Invalid item reference key.", &format!("{sublist}.items[{i}].item")),
                    false,
                );
            }
            if let Some(loc) = l.get("location")
                && !self.reference_ok(Some(loc), &self.cfg.locations)
            {
                return (
                    bad(
                        "INVALID_KEY_OR_REF",
                        "Invalid location reference key.",
                        &format!("{sublist}.items[{i}].location"),
                    ),
                    false,
                );
            }
            if let Some(tc) = l.get("taxCode")
                && !self.reference_ok(Some(tc), &self.cfg.tax_codes)
            {
                return (
                    bad("INVALID_KEY_OR_REF", "Invalid taxCode reference key.", &format!("item.items[{i}].taxCode")),
                    false,
                );
            }
            if ty == "inventoryadjustment" {
                if l.get("adjustQtyBy").and_then(milli).is_none_or(|q| q == 0) {
                    return (
                        bad(
                            "INVALID_FIELD_VALUE",
                            "adjustQtyBy must be a non-zero number.",
                            &format!("{sublist}.items[{i}].adjustQtyBy"),
                        ),
                        false,
                    );
                }
                continue;
            }
            let Some(a) = l.get("amount").and_then(minor) else {
                return (
                    bad("INVALID_FIELD_VALUE", "amount must be a number.", &format!("item.items[{i}].amount")),
                    false,
                );
            };
            total += a;
        }
        // Stock follows the record: an upsert replaces the old record's effect.
        let new_effect = self.stock_effect(ty, &b);
        if let Some(old) = existing.and_then(|id| self.records.get(&id)).map(|r| self.stock_effect(ty, &r.body)) {
            self.apply_stock(&old, -1);
        }
        self.apply_stock(&new_effect, 1);
        let id = match existing {
            Some(id) => {
                self.stats.upserts_of_existing += 1;
                id
            }
            None => {
                let id = self.next_id;
                self.next_id += 1;
                id
            }
        };
        let writes = self.records.get(&id).map_or(0, |r| r.writes) + 1;
        self.records.insert(
            id,
            NsRecord {
                record_type: ty.to_string(),
                id,
                external_id: eid.clone(),
                tran_date: tran_date.into(),
                total_minor: total,
                writes,
                body: b,
            },
        );
        if let Some(e) = eid {
            self.by_eid.insert((ty.to_string(), e), id);
        }
        let canonical = match ty {
            "cashsale" => "cashSale",
            "cashrefund" => "cashRefund",
            _ => "inventoryAdjustment",
        };
        let loc = format!("{}/services/rest/record/v1/{canonical}/{id}", self.cfg.base_url);
        (HttpResponse { status: 204, headers: vec![("Location".into(), loc)], body: Vec::new() }, true)
    }

    fn suiteql(&mut self, req: &HttpRequest) -> HttpResponse {
        let q = crate::lightspeed::fake::query_pairs(&req.path);
        let num = |k: &str, d: usize| {
            q.iter().find(|(n, _)| n == k).map(|(_, v)| v.parse::<usize>().map_err(|_| k.to_string())).unwrap_or(Ok(d))
        };
        let (limit, offset) = match (num("limit", SUITEQL_MAX_LIMIT), num("offset", 0)) {
            (Ok(l), Ok(o)) => (l, o),
            (Err(k), _) | (_, Err(k)) => {
                return envelope(
                    400,
                    "Bad Request",
                    &[("INVALID_PARAMETER", "Must be a whole number.", Some(("o:errorQueryParam", &k)))],
                );
            }
        };
        if limit == 0 || limit > SUITEQL_MAX_LIMIT {
            return envelope(
                400,
                "Bad Request",
                &[("INVALID_PARAMETER", "The limit must be 1 to 1000.", Some(("o:errorQueryParam", "limit")))],
            );
        }
        if req.header("prefer").is_none_or(|p| !p.contains("transient")) {
            tracing::debug!("fake NetSuite: SuiteQL without Prefer: transient");
        }
        let text = serde_json::from_slice::<Value>(&req.body)
            .ok()
            .and_then(|v| v.get("q").and_then(Value::as_str).map(str::to_lowercase))
            .unwrap_or_default();
        if !text.trim_start().starts_with("select") {
            return bad("INVALID_PARAMETER", "Only SELECT queries are supported.", "q");
        }
        let rows: Vec<Value> = if text.contains(" from transaction") {
            let day = text.split("trandate = to_date('").nth(1).and_then(|r| r.split('\'').next()).map(str::to_string);
            self.records
                .values()
                .filter(|r| day.as_deref().is_none_or(|d| r.tran_date == d))
                .map(|r| {
                    let ty = match r.record_type.as_str() {
                        "cashsale" => "CashSale",
                        "cashrefund" => "CashRfnd",
                        _ => "InvAdjst",
                    };
                    json!({"links": [], "id": r.id.to_string(), "externalid": r.external_id, "trandate": r.tran_date,
                           "type": ty,
                           "foreigntotal": crate::lightspeed::json::money_str(if r.record_type == "cashrefund" { -r.total_minor } else { r.total_minor })})
                })
                .collect()
        } else if text.contains(" from itemprice") {
            // Only the base price level is kept.
            let level = number_after(&text, "pricelevel =").unwrap_or(1);
            self.prices
                .iter()
                .filter(|_| level == 1)
                .map(|(id, p)| {
                    json!({"links": [], "item": id.to_string(), "pricelevel": "1",
                           "price": crate::lightspeed::json::money_str(*p)})
                })
                .collect()
        } else if text.contains(" from inventoryitemlocations") {
            let loc = number_after(&text, "location =").map(|l| l.to_string());
            self.stock
                .iter()
                .filter(|((_, l), _)| loc.as_ref().is_none_or(|x| x == l))
                .map(|((id, l), q)| {
                    json!({"links": [], "item": id.to_string(), "location": l, "quantityonhand": thousandths(*q)})
                })
                .collect()
        } else if text.contains(" from item ") || text.ends_with(" from item") {
            // The store display image's File, when the query joins it: a URL relative to the
            // account's domain, available without login.
            let files = text.contains("join file on file.id = item.storedisplayimage");
            (1..=self.cfg.catalog_size)
                .map(|i| {
                    let it = crate::demo::demo_item(i - 1);
                    let mut row = json!({"links": [], "id": (ITEM_ID_BASE + i).to_string(), "externalid": it.sku, "itemid": it.sku,
                           "displayname": it.name, "upccode": it.barcodes.first(), "isinactive": "F",
                           "taxschedule": if it.tax_rate_bp == 1900 { "1" } else { "2" }});
                    if files && let Some(o) = row.as_object_mut() {
                        o.insert("imageurl".into(), json!(format!("/core/media/media.nl?id={}&c=FAKE&h=demo", FILE_ID_BASE + i)));
                        o.insert("imageonline".into(), json!("T"));
                    }
                    row
                })
                .collect()
        } else {
            return bad(
                "INVALID_PARAMETER",
                "The fake answers SELECTs from transaction, item, itemprice or inventoryitemlocations only.",
                "q",
            );
        };
        let total = rows.len().min(SUITEQL_MAX_RESULTS);
        let page: Vec<Value> = rows.into_iter().take(total).skip(offset).take(limit).collect();
        let has_more = offset + page.len() < total;
        let base = format!("{}/services/rest/query/v1/suiteql", self.cfg.base_url);
        let mut links = vec![json!({"rel": "self", "href": format!("{base}?limit={limit}&offset={offset}")})];
        if has_more {
            links.push(json!({"rel": "next", "href": format!("{base}?limit={limit}&offset={}", offset + limit)}));
        }
        HttpResponse::json(
            200,
            &json!({"links": links, "count": page.len(), "hasMore": has_more, "items": page, "offset": offset, "totalResults": total}),
        )
    }
}

/// The fake's File internal ids: the picture of item `i` (1-based) is File `FILE_ID_BASE + i`.
const FILE_ID_BASE: u64 = 500_000;

/// The whole number after `key` in a query text (`location = 2`, `location = '2'`).
fn number_after(text: &str, key: &str) -> Option<u64> {
    let rest = text.split(key).nth(1)?.trim_start().trim_start_matches('\'');
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The reason a fake refusal gives, for tests.
pub fn reason_of(r: &HttpResponse) -> String {
    errors::reason(r.status, &r.body)
}
