//! The fake Lightspeed R-Series account: the remote side as a state machine without I/O,
//! served over HTTP by `edge-lab fakes` and called directly by the simulation.
//!
//! True to shared/reference/lightspeed-netsuite.md §A (and its checklist §E):
//! - OAuth 2: `POST /auth/oauth/token` (form or JSON) rotates both tokens; the old refresh
//!   token stays good until the new access token is first used, then it is revoked; a
//!   refresh revokes the access token issued with the refresh token it spends; a 401 says
//!   `{"error":"access_denied","error_description":…,"hint":…}`; `invalid_grant`,
//!   `invalid_client` on the token endpoint.
//! - The leaky bucket per account + client under either cost rule set (`bucket.rs`): the
//!   one allowed overflow, then 429 with `Retry-After` (seconds) and
//!   `X-LS-API-RateLimit-Type`; the 1-second burst limiter; `X-LS-API-Bucket-Level` with a
//!   fractional level, `-Drip-Rate`, `-Request-Cost`, `-Burst-Level` on every answer.
//! - JSON as XML turned into JSON: every scalar a string, a relation of one an object,
//!   `@attributes` with `count`, and `next` / `previous` full URLs with a base64 JSON
//!   cursor; 100 a page at most.
//! - `POST Sale.json`: ids must exist, `completed` sales must balance (cash may overpay:
//!   the rest is `change`), SalePayment is read-only; stock moves on the shop's ItemShop row
//!   and the `shopID 0` summary row, and `Item.timeStamp` does not change with stock.
//! - `GET Sale.json` by `referenceNumber` (the look-up before a re-post), by
//!   `referenceNumberSource` and by `completeTime` between two instants (the report).
//! - Errors as `{httpCode, httpMessage, message, errorClass}`, served as text/html.
//!
//! Departures (see docs/ARCHITECTURE.md): one account; a sale's tax is not recomputed
//! (line prices are taken as tax-inclusive, as in the demo store); query operators other
//! than `=`, `><`, `>=` on `timeStamp` and `IN` on ItemShop's `itemID` are refused with a
//! 400 naming them; `speed` scales the drip rate so
//! drains can be measured in seconds.

use super::bucket::{self, Bucket, Milli, RequestShape, Rules};
use super::json::{int, money_minor, money_str};
use crate::cloud::fake::{Disposition, Faults};
use crate::domain::ItemKind;
use crate::engine::Jitter;
use crate::wire::{HttpRequest, HttpResponse, Method};
use base64::Engine as _;
use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub const PAGE_MAX: usize = 100;

/// Set-up of the fake account.
#[derive(Debug, Clone)]
pub struct LsFakeConfig {
    pub account_id: u64,
    pub client_id: String,
    pub client_secret: String,
    /// The refresh token the store was authorised with.
    pub refresh_token: String,
    pub access_lifetime_s: i64,
    pub rules: Rules,
    pub registers: u32,
    /// Drip-rate multiplier (1 = real time).
    pub speed: u32,
    /// Requests per 1-second burst window.
    pub burst_max: u32,
    /// Where the fake is served (for `next` URLs).
    pub base_url: String,
    pub shops: Vec<u64>,
    pub registers_ids: Vec<u64>,
    pub employees: Vec<u64>,
    /// paymentTypeID → type (`cash`, `credit card` …).
    pub payment_types: BTreeMap<u64, String>,
    pub catalog_size: u64,
}

impl LsFakeConfig {
    /// The demo account (CONTRACT: client `demo-client` / `demo-secret`).
    pub fn demo(base_url: &str) -> LsFakeConfig {
        LsFakeConfig {
            account_id: 12345,
            client_id: "demo-client".into(),
            client_secret: "demo-secret".into(),
            refresh_token: "demo-refresh-token".into(),
            access_lifetime_s: 1800,
            rules: Rules::Current,
            registers: 1,
            speed: 1,
            burst_max: 20,
            base_url: base_url.trim_end_matches('/').to_string(),
            shops: vec![1],
            registers_ids: vec![1],
            employees: vec![1],
            payment_types: BTreeMap::from([(1, "cash".to_string()), (2, "credit card".to_string())]),
            catalog_size: 2000,
        }
    }
}

/// One kept sale (`GET /_fake/records`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LsSale {
    #[serde(rename = "saleID")]
    pub sale_id: u64,
    /// The edge sale id (CONTRACT: records show `referenceNumber`).
    #[serde(rename = "referenceNumber")]
    pub reference_number: String,
    #[serde(rename = "referenceNumberSource")]
    pub reference_source: String,
    pub total_minor: i64,
    pub change_minor: i64,
    pub completed: bool,
    pub shop_id: u64,
    pub complete_time: Timestamp,
    pub lines: Vec<(u64, i64, i64)>,
    pub payments: Vec<(u64, i64, String)>,
    #[serde(skip)]
    pub body: Value,
}

#[derive(Debug, Clone)]
struct Access {
    expires_ms: i64,
    /// The refresh token spent to get this one: revoked at its first use.
    predecessor: Option<String>,
    /// The refresh token issued with it.
    sibling: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LsStats {
    pub requests: u64,
    pub throttled: u64,
    /// 429s that came while the client had no warning: level below the size before it.
    pub burst_throttled: u64,
    pub unauthorized: u64,
    pub refreshes: u64,
    pub served_cost_milli: i64,
    pub lost_replies: u64,
}

struct ItemShopRow {
    id: u64,
    item: u64,
    shop: u64,
    qoh: i64,
    ts: Timestamp,
}

pub struct FakeLightspeed {
    cfg: LsFakeConfig,
    faults: Faults,
    rng: Jitter,
    refresh: BTreeMap<String, ()>,
    access: BTreeMap<String, Access>,
    bucket: Bucket,
    burst_window: i64,
    burst_count: u32,
    sales: BTreeMap<u64, LsSale>,
    by_reference: BTreeMap<String, Vec<u64>>,
    item_shops: BTreeMap<(u64, u64), ItemShopRow>,
    /// Items edited in Lightspeed (`/_fake/items`): default price and the edit's time, which
    /// is the item's `timeStamp` (stock changes leave it alone).
    item_edits: BTreeMap<u64, (i64, Timestamp)>,
    stats: LsStats,
    next_sale: u64,
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::STANDARD.encode(v.to_string())
}

fn unb64(s: &str) -> Option<Vec<Value>> {
    let raw = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    serde_json::from_slice(&raw).ok()
}

/// Query string → pairs, percent-decoded.
pub fn query_pairs(path: &str) -> Vec<(String, String)> {
    let Some((_, q)) = path.split_once('?') else { return Vec::new() };
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (pct_decode(k), pct_decode(v))
        })
        .collect()
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(x) = u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(x);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn ls_error(status: u16, message: &str) -> HttpResponse {
    let http = match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        _ => "Service Unavailable",
    };
    let body =
        json!({"httpCode": status.to_string(), "httpMessage": http, "message": message, "errorClass": "Exception"});
    // Real answers came as text/html (the reference's recording).
    HttpResponse {
        status,
        headers: vec![("content-type".into(), "text/html; charset=UTF-8".into())],
        body: body.to_string().into_bytes(),
    }
}

fn denied(hint: &str) -> HttpResponse {
    HttpResponse::json(
        401,
        &json!({"error": "access_denied", "error_description": "The resource owner or authorization server denied the request.", "hint": hint}),
    )
}

fn ts_str(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

/// One relation as Lightspeed spells it: an object for one child, an array for several.
fn relation(children: Vec<Value>) -> Value {
    if children.len() == 1 { children.into_iter().next().unwrap_or(Value::Null) } else { Value::Array(children) }
}

impl FakeLightspeed {
    pub fn new(cfg: LsFakeConfig, seed: u64) -> FakeLightspeed {
        let (size, drip) = bucket::limits(cfg.rules, cfg.registers);
        let mut f = FakeLightspeed {
            refresh: BTreeMap::from([(cfg.refresh_token.clone(), ())]),
            bucket: Bucket::new(size, drip * i64::from(cfg.speed.max(1))),
            cfg,
            faults: Faults::healed(),
            rng: Jitter::new(seed),
            access: BTreeMap::new(),
            burst_window: i64::MIN,
            burst_count: 0,
            sales: BTreeMap::new(),
            by_reference: BTreeMap::new(),
            item_shops: BTreeMap::new(),
            item_edits: BTreeMap::new(),
            stats: LsStats::default(),
            next_sale: 1,
        };
        let t0 = Timestamp::UNIX_EPOCH;
        let mut id = 1;
        for i in 0..f.cfg.catalog_size {
            let qoh = crate::demo::demo_stock(i);
            for shop in f.cfg.shops.clone().into_iter().chain([0]) {
                f.item_shops.insert((i + 1, shop), ItemShopRow { id, item: i + 1, shop, qoh, ts: t0 });
                id += 1;
            }
        }
        f
    }

    pub fn config(&self) -> &LsFakeConfig {
        &self.cfg
    }
    /// Another bucket (size and drip per second, thousandths), e.g. the legacy 60 / 1.
    pub fn set_bucket(&mut self, size: Milli, drip: Milli) {
        self.bucket = Bucket::new(size, drip * i64::from(self.cfg.speed.max(1)));
    }
    pub fn faults(&self) -> &Faults {
        &self.faults
    }
    pub fn set_faults(&mut self, f: Faults) {
        self.faults = f;
    }
    pub fn stats(&self) -> &LsStats {
        &self.stats
    }
    pub fn sales(&self) -> &BTreeMap<u64, LsSale> {
        &self.sales
    }
    /// Sales kept per referenceNumber.
    pub fn by_reference(&self) -> &BTreeMap<String, Vec<u64>> {
        &self.by_reference
    }
    /// Current bucket level and size (thousandths of a drip).
    pub fn bucket_level(&mut self, now: Timestamp) -> (Milli, Milli) {
        (self.bucket.level(now.as_millisecond()), self.bucket.size)
    }
    pub fn qoh(&self, item: u64, shop: u64) -> Option<i64> {
        self.item_shops.get(&(item, shop)).map(|r| r.qoh)
    }

    fn token(&mut self, prefix: &str) -> String {
        format!("{prefix}{:016x}{:016x}", self.rng.next_u64(), self.rng.next_u64())
    }

    /// Handles one request.
    pub fn handle(&mut self, now: Timestamp, req: &HttpRequest) -> Disposition {
        let path = req.path.split('?').next().unwrap_or("");
        if let Some(r) = self.fake_surface(req, path) {
            return Disposition::Reply(r);
        }
        self.stats.requests += 1;
        if self.faults.down {
            return Disposition::Refuse;
        }
        if crate::cloud::fake::strikes(&mut self.rng, self.faults.error_rate) {
            return Disposition::Reply(ls_error(self.faults.error_status, "injected failure"));
        }
        let now_ms = now.as_millisecond();
        if path == "/auth/oauth/token" {
            return Disposition::Reply(self.token_endpoint(req, now_ms));
        }
        let prefix = format!("/API/V3/Account/{}/", self.cfg.account_id);
        let Some(resource) = path.strip_prefix(&prefix) else {
            return Disposition::Reply(ls_error(404, &format!("no such resource: {path}")));
        };
        // Authentication before metering.
        let bearer = req.header("authorization").and_then(|h| h.strip_prefix("Bearer ")).unwrap_or("").to_string();
        if self.faults.credentials_expired {
            self.stats.unauthorized += 1;
            return Disposition::Reply(denied("Access token has been revoked"));
        }
        match self.access.get_mut(&bearer) {
            Some(a) if a.expires_ms > now_ms => {
                if let Some(old) = a.predecessor.take() {
                    self.refresh.remove(&old);
                }
            }
            _ => {
                self.stats.unauthorized += 1;
                return Disposition::Reply(denied("Access token could not be verified"));
            }
        }
        // Burst limiter, then the bucket.
        let window = now_ms / 1000;
        if window != self.burst_window {
            self.burst_window = window;
            self.burst_count = 0;
        }
        self.burst_count += 1;
        let body: Value =
            if req.body.is_empty() { Value::Null } else { serde_json::from_slice(&req.body).unwrap_or(Value::Null) };
        let query = query_pairs(&req.path);
        let nested = nested_count(&body);
        let shape = RequestShape {
            method: req.method.as_str(),
            resource,
            completes_sale: body.get("completed").and_then(super::json::boolean) == Some(true),
            nested,
            count: query.iter().any(|(k, v)| k == "count" && v == "1"),
        };
        let cost = bucket::cost(self.cfg.rules, &shape);
        let mut headers = vec![
            ("X-LS-Acct-Id".to_string(), self.cfg.account_id.to_string()),
            ("X-LS-OAuth-Client-Id".to_string(), self.cfg.client_id.clone()),
            ("X-LS-API-Drip-Rate".to_string(), format!("{}", self.bucket.drip as f64 / 1000.0)),
            ("X-LS-API-Request-Cost".to_string(), format!("{}", cost as f64 / 1000.0)),
            ("X-LS-API-Burst-Level".to_string(), format!("{}/{}", self.burst_count, self.cfg.burst_max)),
        ];
        if self.faults.rate_limit_storm || self.burst_count > self.cfg.burst_max {
            self.stats.throttled += 1;
            self.stats.burst_throttled += 1;
            let level = self.bucket.level(now_ms);
            headers.push(("X-LS-API-Bucket-Level".into(), bucket::level_header(level, self.bucket.size)));
            headers.push(("X-LS-API-RateLimit-Type".into(), "api-burst-limiter".into()));
            headers.push(("Retry-After".into(), "1".into()));
            let mut r = ls_error(429, "burst rate limit exceeded");
            r.headers.extend(headers);
            return Disposition::Reply(r);
        }
        match self.bucket.take(cost, now_ms) {
            Err(t) => {
                self.stats.throttled += 1;
                headers.push(("X-LS-API-Bucket-Level".into(), bucket::level_header(t.level, t.size)));
                headers.push(("X-LS-API-RateLimit-Type".into(), "api-leaky-bucket".into()));
                headers.push(("Retry-After".into(), t.retry_after_s.to_string()));
                let mut r = ls_error(429, "Rate Limit Exceeded");
                r.headers.extend(headers);
                return Disposition::Reply(r);
            }
            Ok(level) => {
                self.stats.served_cost_milli += cost;
                headers.push(("X-LS-API-Bucket-Level".into(), bucket::level_header(level, self.bucket.size)));
            }
        }
        let (mut resp, commit) = self.route(now, req.method, resource, &query, &body);
        resp.headers.extend(headers);
        if commit && crate::cloud::fake::strikes(&mut self.rng, self.faults.lose_reply_after_commit_rate) {
            self.stats.lost_replies += 1;
            return Disposition::LoseReply;
        }
        Disposition::Reply(resp)
    }

    fn fake_surface(&mut self, req: &HttpRequest, path: &str) -> Option<HttpResponse> {
        if req.method == Method::Get
            && let Some(id) = path.strip_prefix("/_fake/images/item-").and_then(|p| p.strip_suffix(".jpg"))
        {
            // Lightspeed's image host (Cloudinary) serves a JPEG; the fake serves the demo
            // item's drawing (SVG) under that name — the daemon goes by the bytes, not the name.
            let pic = id
                .parse::<u64>()
                .ok()
                .filter(|i| *i >= 1 && *i <= self.cfg.catalog_size)
                .and_then(|i| crate::demo::demo_picture_svg(&crate::demo::demo_item(i - 1).sku));
            return Some(match pic {
                Some(svg) => HttpResponse {
                    status: 200,
                    headers: vec![("content-type".into(), "image/svg+xml".into())],
                    body: svg.into_bytes(),
                },
                None => HttpResponse::json(404, &json!({"error": "no such image"})),
            });
        }
        if (req.method, path) == (Method::Post, "/_fake/items") {
            // A price changed in Lightspeed itself: {"itemID": n, "price": "2.50"}; the
            // item's timeStamp moves.
            let v: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            let item = v.get("itemID").and_then(int).filter(|i| *i > 0 && (*i as u64) <= self.cfg.catalog_size);
            let price = v.get("price").and_then(super::json::money_minor).filter(|p| *p >= 0);
            let (Some(item), Some(price)) = (item, price) else {
                return Some(HttpResponse::json(400, &json!({"error": "give the itemID of an item and a price"})));
            };
            self.item_edits.insert(item as u64, (price, Timestamp::now()));
            return Some(HttpResponse::json(200, &v));
        }
        if (req.method, path) == (Method::Post, "/_fake/stock") {
            // A stock change made in Lightspeed itself (a delivery received at the POS):
            // {"itemID": n, "shopID": s, "qoh": q}. The shopID 0 summary row follows.
            let v: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            let (item, shop, qoh) =
                (v.get("itemID").and_then(int), v.get("shopID").and_then(int), v.get("qoh").and_then(int));
            let (Some(item), Some(shop), Some(qoh)) = (item, shop, qoh) else {
                return Some(HttpResponse::json(400, &json!({"error": "give itemID, shopID and qoh"})));
            };
            let now = Timestamp::now();
            let Some(old) = self.item_shops.get(&(item as u64, shop as u64)).map(|r| r.qoh) else {
                return Some(HttpResponse::json(404, &json!({"error": "no such ItemShop row"})));
            };
            for s in [shop as u64, 0] {
                if let Some(row) = self.item_shops.get_mut(&(item as u64, s)) {
                    row.qoh += qoh - old;
                    row.ts = now;
                }
            }
            return Some(HttpResponse::json(200, &json!({"itemID": item, "shopID": shop, "qoh": qoh})));
        }
        let (list, stats) = (&self.sales, &self.stats);
        crate::cloud::fake::fake_surface(&mut self.faults, req, path, || {
            let kept: Vec<&LsSale> = list.values().collect();
            json!({"sales": kept, "stats": stats})
        })
    }

    fn token_endpoint(&mut self, req: &HttpRequest, now_ms: i64) -> HttpResponse {
        let token_err =
            |status: u16, e: &str, d: &str| HttpResponse::json(status, &json!({"error": e, "error_description": d}));
        if req.method != Method::Post {
            return token_err(405, "invalid_request", "the token endpoint takes POST");
        }
        let ct = req.header("content-type").unwrap_or("");
        let fields: BTreeMap<String, String> = if ct.starts_with("application/json") {
            match serde_json::from_slice::<BTreeMap<String, Value>>(&req.body) {
                Ok(m) => m
                    .into_iter()
                    .map(|(k, v)| (k, v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
                    .collect(),
                Err(_) => return token_err(400, "invalid_request", "the body is not JSON"),
            }
        } else {
            query_pairs(&format!("?{}", String::from_utf8_lossy(&req.body))).into_iter().collect()
        };
        if fields.get("client_id") != Some(&self.cfg.client_id)
            || fields.get("client_secret") != Some(&self.cfg.client_secret)
        {
            return token_err(401, "invalid_client", "Client authentication failed");
        }
        if fields.get("grant_type").map(String::as_str) != Some("refresh_token") {
            return token_err(400, "invalid_request", "grant_type must be refresh_token here");
        }
        let Some(rt) = fields.get("refresh_token") else {
            return token_err(400, "invalid_request", "refresh_token is missing");
        };
        if !self.refresh.contains_key(rt) {
            return token_err(400, "invalid_grant", "The refresh token is invalid.");
        }
        self.stats.refreshes += 1;
        // The access token issued with this refresh token is revoked now.
        self.access.retain(|_, a| a.sibling != *rt);
        let (access, refresh) = (self.token("at-"), self.token("rt-"));
        self.access.insert(
            access.clone(),
            Access {
                expires_ms: now_ms + self.cfg.access_lifetime_s * 1000,
                predecessor: Some(rt.clone()),
                sibling: refresh.clone(),
            },
        );
        self.refresh.insert(refresh.clone(), ());
        HttpResponse::json(
            200,
            &json!({"token_type": "Bearer", "expires_in": self.cfg.access_lifetime_s, "access_token": access, "refresh_token": refresh}),
        )
    }

    fn route(
        &mut self,
        now: Timestamp,
        m: Method,
        resource: &str,
        q: &[(String, String)],
        body: &Value,
    ) -> (HttpResponse, bool) {
        match (m, resource) {
            (Method::Post, "Sale.json") => self.post_sale(now, body),
            (Method::Get, "Sale.json") => (self.list_sales(q), false),
            (Method::Get, "Item.json") => (self.list_items(q), false),
            (Method::Get, "ItemShop.json") => (self.list_item_shops(q), false),
            (_, r) if r.starts_with("SalePayment") => {
                (ls_error(405, "SalePayment is read-only; payments are created inside the Sale"), false)
            }
            (Method::Get, r) if r.starts_with("Sale/") => {
                let id = r.trim_start_matches("Sale/").trim_end_matches(".json").parse::<u64>().ok();
                match id.and_then(|i| self.sales.get(&i)) {
                    Some(s) => {
                        (HttpResponse::json(200, &json!({"@attributes": {"count": "1"}, "Sale": sale_json(s)})), false)
                    }
                    None => (ls_error(404, "Sale not found"), false),
                }
            }
            _ => (ls_error(404, &format!("{} {resource} is not served by the fake", m.as_str())), false),
        }
    }

    fn post_sale(&mut self, now: Timestamp, b: &Value) -> (HttpResponse, bool) {
        let bad = |m: String| (ls_error(422, &m), false);
        let field = |k: &str| b.get(k).and_then(int);
        let Some(shop) = field("shopID").filter(|s| self.cfg.shops.contains(&(*s as u64))) else {
            return bad("shopID is missing or not a shop of this account".into());
        };
        if field("registerID").is_none_or(|r| !self.cfg.registers_ids.contains(&(r as u64))) {
            return bad("registerID is missing or not a register of this account".into());
        }
        if field("employeeID").is_none_or(|r| !self.cfg.employees.contains(&(r as u64))) {
            return bad("employeeID is missing or not an employee of this account".into());
        }
        let completed = b.get("completed").and_then(super::json::boolean).unwrap_or(false);
        let reference = b.get("referenceNumber").and_then(Value::as_str).unwrap_or("").to_string();
        if let Ok(id) = uuid::Uuid::parse_str(&reference)
            && self.faults.reject_records.contains(&id)
        {
            return bad(format!("Sale {reference} is not valid (injected)"));
        }
        let lines: Vec<Value> = match super::json::relation(b, "SaleLines", "SaleLine") {
            Ok(l) => l,
            Err(e) => return bad(e),
        };
        let pays: Vec<Value> = match super::json::relation(b, "SalePayments", "SalePayment") {
            Ok(l) => l,
            Err(e) => return bad(e),
        };
        let mut total = 0i64;
        let mut kept_lines = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            let Some(item) = l.get("itemID").and_then(int).filter(|x| *x > 0 && (*x as u64) <= self.cfg.catalog_size)
            else {
                return bad(format!("SaleLine {i}: itemID is missing or not an item of this account"));
            };
            let (Some(q), Some(p)) = (l.get("unitQuantity").and_then(int), l.get("unitPrice").and_then(money_minor))
            else {
                return bad(format!("SaleLine {i}: unitQuantity and unitPrice are required"));
            };
            let d = l.get("discountAmount").map(money_minor).unwrap_or(Some(0));
            let Some(d) = d.filter(|d| *d >= 0) else {
                return bad(format!("SaleLine {i}: discountAmount is not an amount"));
            };
            let Some(gross) = q.checked_mul(p) else { return bad(format!("SaleLine {i}: amount overflows")) };
            let line = gross - q.signum() * d;
            total += line;
            kept_lines.push((item as u64, q, line));
        }
        let mut paid = 0i64;
        let mut cash_paid = 0i64;
        let mut kept_pays = Vec::new();
        for (i, p) in pays.iter().enumerate() {
            let Some(pt) =
                p.get("paymentTypeID").and_then(int).filter(|t| self.cfg.payment_types.contains_key(&(*t as u64)))
            else {
                return bad(format!("SalePayment {i}: paymentTypeID is missing or unknown"));
            };
            let Some(a) = p.get("amount").and_then(money_minor) else {
                return bad(format!("SalePayment {i}: amount is required"));
            };
            paid += a;
            if self.cfg.payment_types.get(&(pt as u64)).map(String::as_str) == Some("cash") {
                cash_paid += a;
            }
            let rr = p.get("remoteReference").and_then(Value::as_str).unwrap_or("").to_string();
            kept_pays.push((pt as u64, a, rr));
        }
        let mut change = 0;
        if completed {
            // The balance rule: payments must cover the total; cash may overpay (change).
            let over = paid - total;
            let balanced = if total >= 0 { over == 0 || (over > 0 && cash_paid >= over) } else { over == 0 };
            if !balanced {
                return bad(format!(
                    "Sale cannot be completed: payments {} do not balance the total {}",
                    money_str(paid),
                    money_str(total)
                ));
            }
            change = over.max(0);
        }
        let id = self.next_sale;
        self.next_sale += 1;
        for (item, q, _) in &kept_lines {
            for s in [shop as u64, 0] {
                if let Some(row) = self.item_shops.get_mut(&(*item, s)) {
                    row.qoh -= q;
                    row.ts = now;
                }
            }
        }
        let sale = LsSale {
            sale_id: id,
            reference_number: reference.clone(),
            reference_source: b.get("referenceNumberSource").and_then(Value::as_str).unwrap_or("").to_string(),
            total_minor: total,
            change_minor: change,
            completed,
            shop_id: shop as u64,
            complete_time: b
                .get("completeTime")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<Timestamp>().ok())
                .unwrap_or(now),
            lines: kept_lines,
            payments: kept_pays,
            body: b.clone(),
        };
        let out = json!({"@attributes": {"count": "1"}, "Sale": sale_json(&sale)});
        self.by_reference.entry(reference).or_default().push(id);
        self.sales.insert(id, sale);
        (HttpResponse::json(200, &out), true)
    }

    fn page<T>(
        &self,
        rows: Vec<(Vec<Value>, T)>,
        q: &[(String, String)],
        resource: &str,
        key: &str,
        to_json: impl Fn(&T) -> Value,
    ) -> HttpResponse {
        let limit = q.iter().find(|(k, _)| k == "limit").and_then(|(_, v)| v.parse::<usize>().ok()).unwrap_or(PAGE_MAX);
        if limit > PAGE_MAX {
            return ls_error(400, "limit must be 100 or less");
        }
        let after = match q.iter().find(|(k, _)| k == "after") {
            Some((_, a)) => match unb64(a) {
                Some(v) => Some(v),
                None => return ls_error(400, "after is not a cursor this API gave out"),
            },
            None => None,
        };
        let start = match &after {
            Some(a) => rows.iter().position(|(k, _)| key_gt(k, a)).unwrap_or(rows.len()),
            None => 0,
        };
        let slice: Vec<&(Vec<Value>, T)> = rows.iter().skip(start).take(limit).collect();
        let more = start + slice.len() < rows.len();
        let base_q: Vec<String> = q
            .iter()
            .filter(|(k, _)| k != "after" && k != "before")
            .map(|(k, v)| format!("{}={}", crate::netsuite::tba::pct(k), crate::netsuite::tba::pct(v)))
            .collect();
        let mut qs = base_q.join("&");
        if !q.iter().any(|(k, _)| k == "limit") {
            qs.push_str(&format!("{}limit={limit}", if qs.is_empty() { "" } else { "&" }));
        }
        let url = |dir: &str, k: &Vec<Value>| {
            format!(
                "{}/API/V3/Account/{}/{resource}?{qs}&{dir}={}",
                self.cfg.base_url,
                self.cfg.account_id,
                crate::netsuite::tba::pct(&b64(&Value::Array(k.clone())))
            )
        };
        let next = if more { slice.last().map(|(k, _)| url("after", k)).unwrap_or_default() } else { String::new() };
        let previous =
            if start > 0 { slice.first().map(|(k, _)| url("before", k)).unwrap_or_default() } else { String::new() };
        let items: Vec<Value> = slice.iter().map(|(_, t)| to_json(t)).collect();
        let mut out = json!({"@attributes": {"next": next, "previous": previous}});
        if !items.is_empty()
            && let Some(o) = out.as_object_mut()
        {
            o.insert(key.to_string(), relation(items));
        }
        HttpResponse::json(200, &out)
    }

    fn list_sales(&self, q: &[(String, String)]) -> HttpResponse {
        let mut reference: Option<&str> = None;
        let mut source: Option<&str> = None;
        let mut between: Option<(Timestamp, Timestamp)> = None;
        for (k, v) in q {
            match k.as_str() {
                "referenceNumber" => reference = Some(v),
                "referenceNumberSource" => source = Some(v),
                "completeTime" => {
                    let parts: Vec<&str> = v.splitn(3, ',').collect();
                    match parts.as_slice() {
                        ["><", a, b] => match (a.parse::<Timestamp>(), b.parse::<Timestamp>()) {
                            (Ok(a), Ok(b)) => between = Some((a, b)),
                            _ => return ls_error(400, "completeTime: the instants are not ISO-8601"),
                        },
                        _ => return ls_error(400, "completeTime: the fake takes only the >< (between) operator"),
                    }
                }
                "limit" | "after" | "before" | "sort" | "load_relations" => {}
                other => return ls_error(400, &format!("{other} is not a field the fake filters Sale by")),
            }
        }
        let rows: Vec<(Vec<Value>, &LsSale)> = self
            .sales
            .values()
            .filter(|s| reference.is_none_or(|r| s.reference_number == r))
            .filter(|s| source.is_none_or(|r| s.reference_source == r))
            .filter(|s| between.is_none_or(|(a, b)| s.complete_time >= a && s.complete_time <= b))
            .map(|s| (vec![json!(s.sale_id)], s))
            .collect();
        self.page(rows, q, "Sale.json", "Sale", |s| sale_json(s))
    }

    fn list_items(&self, q: &[(String, String)]) -> HttpResponse {
        let mut since: Option<Timestamp> = None;
        for (k, v) in q {
            match k.as_str() {
                "timeStamp" => match since_filter(v) {
                    Ok(t) => since = Some(t),
                    Err(r) => return r,
                },
                "sort" if v == "timeStamp" || v == "itemID" => {}
                "sort" => return ls_error(400, "Item sorts by itemID or timeStamp"),
                "limit" | "after" | "before" | "load_relations" => {}
                other => return ls_error(400, &format!("{other} is not a field the fake filters Item by")),
            }
        }
        let edits = &self.item_edits;
        let ts = |id: u64| edits.get(&id).map_or(Timestamp::UNIX_EPOCH, |e| e.1);
        let rows: Vec<(Vec<Value>, u64)> = match since {
            None => (1..=self.cfg.catalog_size).map(|id| (vec![json!(id)], id)).collect(),
            Some(s) => {
                let mut r: Vec<(Vec<Value>, u64)> = (1..=self.cfg.catalog_size)
                    .filter(|id| ts(*id) >= s)
                    .map(|id| (vec![json!(ts(id).as_millisecond()), json!(id)], id))
                    .collect();
                r.sort_by_key(|(_, id)| (ts(*id), *id));
                r
            }
        };
        // The Images relation when asked for (`load_relations=["Images"]`), as Lightspeed
        // gives it: a baseImageURL and a publicID per picture.
        let images = q.iter().any(|(k, v)| k == "load_relations" && v.contains("\"Images\""));
        let base = format!("{}/_fake/images/", self.cfg.base_url);
        self.page(rows, q, "Item.json", "Item", |id| {
            let mut it = item_json(*id, edits.get(id).copied());
            if images && let Some(o) = it.as_object_mut() {
                o.insert(
                    "Images".into(),
                    json!({"Image": {"imageID": id.to_string(), "ordering": "0", "publicID": format!("item-{id}"),
                                      "baseImageURL": base, "itemID": id.to_string()}}),
                );
            }
            it
        })
    }

    fn list_item_shops(&self, q: &[(String, String)]) -> HttpResponse {
        let mut since: Option<Timestamp> = None;
        let (mut items, mut shop): (Option<Vec<u64>>, Option<u64>) = (None, None);
        for (k, v) in q {
            match k.as_str() {
                "timeStamp" => match since_filter(v) {
                    Ok(t) => since = Some(t),
                    Err(r) => return r,
                },
                "itemID" => match in_filter(v) {
                    Ok(ids) => items = Some(ids),
                    Err(r) => return r,
                },
                "shopID" => match v.parse::<u64>() {
                    Ok(id) => shop = Some(id),
                    Err(_) => return ls_error(400, "shopID: the fake takes one shopID"),
                },
                "sort" if v == "timeStamp" => {}
                "sort" => return ls_error(400, "ItemShop sorts by itemShopID or timeStamp"),
                "limit" | "after" | "before" => {}
                other => return ls_error(400, &format!("{other} is not a field the fake filters ItemShop by")),
            }
        }
        let mut rows: Vec<(Vec<Value>, &ItemShopRow)> = self
            .item_shops
            .values()
            .filter(|r| since.is_none_or(|s| r.ts >= s))
            .filter(|r| items.as_ref().is_none_or(|ids| ids.contains(&r.item)))
            .filter(|r| shop.is_none_or(|s| r.shop == s))
            .map(|r| (vec![json!(r.ts.as_millisecond()), json!(r.id)], r))
            .collect();
        rows.sort_by_key(|(_, r)| (r.ts, r.id));
        self.page(rows, q, "ItemShop.json", "ItemShop", |r| {
            json!({"itemShopID": r.id.to_string(), "qoh": r.qoh.to_string(), "sellable": r.qoh.max(0).to_string(),
                   "itemID": r.item.to_string(), "shopID": r.shop.to_string(), "timeStamp": ts_str(r.ts)})
        })
    }
}

/// An `IN,[1,2,3]` filter: at most 100 ids, as Lightspeed allows.
fn in_filter(v: &str) -> Result<Vec<u64>, HttpResponse> {
    let bad = || ls_error(400, "itemID: the fake takes IN,[id,id,...] or one id");
    let list = match v.strip_prefix("IN,[").and_then(|r| r.strip_suffix(']')) {
        Some(l) => l,
        None => return v.parse::<u64>().map(|id| vec![id]).map_err(|_| bad()),
    };
    let ids: Vec<u64> =
        list.split(',').map(|x| x.trim().parse::<u64>()).collect::<Result<_, _>>().map_err(|_| bad())?;
    if ids.len() > 100 {
        return Err(ls_error(400, "IN takes at most 100 values"));
    }
    Ok(ids)
}

/// A `timeStamp` filter the fake takes: `>=,<instant>`.
fn since_filter(v: &str) -> Result<Timestamp, HttpResponse> {
    match v.split_once(',') {
        Some((">=", t)) => t.parse::<Timestamp>().map_err(|_| ls_error(400, "timeStamp: not an ISO-8601 instant")),
        _ => Err(ls_error(400, "timeStamp: the fake takes only >=,<instant>")),
    }
}

/// Whether cursor key `k` sorts after `after` (numbers compared as numbers).
fn key_gt(k: &[Value], after: &[Value]) -> bool {
    for (a, b) in k.iter().zip(after) {
        let (x, y) = (a.as_i64().unwrap_or(0), b.as_i64().unwrap_or(0));
        if x != y {
            return x > y;
        }
    }
    false
}

fn nested_count(b: &Value) -> u32 {
    let mut n = 0;
    for (o, i) in [("SaleLines", "SaleLine"), ("SalePayments", "SalePayment")] {
        n += match b.get(o).and_then(|x| x.get(i)) {
            Some(Value::Array(a)) => a.len() as u32,
            Some(Value::Object(_)) => 1,
            _ => 0,
        };
    }
    n
}

fn sale_json(s: &LsSale) -> Value {
    let lines: Vec<Value> = s
        .lines
        .iter()
        .enumerate()
        .map(|(i, (item, q, total))| {
            json!({"saleLineID": (s.sale_id * 100 + i as u64).to_string(), "itemID": item.to_string(),
                   "unitQuantity": q.to_string(), "calcTotal": money_str(*total), "saleID": s.sale_id.to_string()})
        })
        .collect();
    let pays: Vec<Value> = s
        .payments
        .iter()
        .enumerate()
        .map(|(i, (t, a, rr))| {
            json!({"salePaymentID": (s.sale_id * 100 + i as u64).to_string(), "paymentTypeID": t.to_string(),
                   "amount": money_str(*a), "remoteReference": rr, "saleID": s.sale_id.to_string()})
        })
        .collect();
    json!({
        "saleID": s.sale_id.to_string(),
        "completed": s.completed.to_string(),
        "voided": "false",
        "archived": "false",
        "referenceNumber": s.reference_number,
        "referenceNumberSource": s.reference_source,
        "shopID": s.shop_id.to_string(),
        "completeTime": ts_str(s.complete_time),
        "calcTotal": money_str(s.total_minor),
        "total": money_str(s.total_minor),
        "change": money_str(s.change_minor),
        "balance": "0.00",
        "SaleLines": {"SaleLine": relation(lines)},
        "SalePayments": {"SalePayment": relation(pays)},
    })
}

fn item_json(id: u64, edit: Option<(i64, Timestamp)>) -> Value {
    let mut it = crate::demo::demo_item(id - 1);
    if let Some((p, _)) = edit {
        it.price_minor = p;
    }
    let stamp = edit.map_or(Timestamp::UNIX_EPOCH, |e| e.1);
    json!({
        "itemID": id.to_string(),
        "systemSku": format!("21{:011}", id),
        "customSku": it.sku,
        "ean": it.barcodes.first().cloned().unwrap_or_default(),
        "description": it.name,
        "tax": "true",
        "archived": "false",
        "itemType": if it.kind == ItemKind::Weight { "non_inventory" } else { "default" },
        "taxClassID": if it.tax_rate_bp == 1900 { "1" } else { "2" },
        "timeStamp": ts_str(stamp),
        "Prices": {"ItemPrice": [
            {"amount": money_str(it.price_minor), "useTypeID": "1", "useType": "Default"},
            {"amount": money_str(it.price_minor), "useTypeID": "2", "useType": "MSRP"}
        ]},
    })
}
