//! The fake cloud: the remote side of the cloud contract as a state machine without I/O.
//!
//! `edge-lab fakes` serves it over HTTP; the simulation (`engine::sim`) calls it directly.
//! It enforces what the real cloud promises and demands — signatures, per-event idempotency,
//! the token bucket, body and batch limits, validation with the field named — and it keeps
//! everything it received for inspection (`GET /_fake/records`). Faults are set with
//! `POST /_fake/faults` and healed with `DELETE /_fake/faults`.

use super::pull::{CatalogPage, ConfigDoc, ItemDoc, LevelDoc, PriceDoc, PricesPage, StockPage};
use super::{
    BatchResult, EventBatch, EventError, EventResult, MAX_BODY_BYTES, MAX_EVENTS, MAX_SKEW_S, PushMessage, events_path,
    message_signature, verify,
};
use crate::engine::Jitter;
use crate::wire::{HttpRequest, HttpResponse, Method};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// Faults, as `POST /_fake/faults` takes them (every field optional; absent = unchanged).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Connections are refused / dropped.
    #[serde(default)]
    pub down: bool,
    /// Added to every answer.
    #[serde(default)]
    pub latency_ms: u64,
    /// Share of requests answered with `error_status` before anything is kept.
    #[serde(default)]
    pub error_rate: f64,
    #[serde(default = "default_error_status")]
    pub error_status: u16,
    /// Share of event batches kept and then answered by a dropped connection.
    #[serde(default)]
    pub lose_reply_after_commit_rate: f64,
    /// Every request is answered 429.
    #[serde(default)]
    pub rate_limit_storm: bool,
    /// Every signature is refused (expired or revoked credentials).
    #[serde(default)]
    pub credentials_expired: bool,
    /// Share of events answered `retry` (kept nothing) in an otherwise fine batch.
    #[serde(default)]
    pub event_retry_rate: f64,
    /// Sale ids whose events are refused as invalid.
    #[serde(default)]
    pub reject_records: BTreeSet<Uuid>,
}

fn default_error_status() -> u16 {
    503
}

impl Faults {
    pub fn healed() -> Faults {
        Faults { error_status: 503, ..Faults::default() }
    }
}

/// The `/_fake/` surface of the Lightspeed and NetSuite fakes: `GET /_fake/records` (what
/// `records` says), `GET|POST|DELETE /_fake/faults`. `None`: not a `/_fake/` path.
pub fn fake_surface(
    faults: &mut Faults,
    req: &HttpRequest,
    path: &str,
    records: impl FnOnce() -> serde_json::Value,
) -> Option<HttpResponse> {
    match (req.method, path) {
        (Method::Get, "/_fake/records") => Some(HttpResponse::json(200, &records())),
        (Method::Get, "/_fake/faults") => Some(HttpResponse::json(200, &json!(faults))),
        (Method::Post, "/_fake/faults") => Some(match serde_json::from_slice::<Faults>(&req.body) {
            Ok(f) => {
                *faults = f;
                HttpResponse::json(200, &json!(faults))
            }
            Err(e) => HttpResponse::json(400, &json!({"error": format!("faults: {e}")})),
        }),
        (Method::Delete, "/_fake/faults") => {
            *faults = Faults::healed();
            Some(HttpResponse::json(200, &json!(faults)))
        }
        _ if path.starts_with("/_fake/") => Some(HttpResponse::json(404, &json!({"error": "no such fake endpoint"}))),
        _ => None,
    }
}

/// Whether a fault of probability `p` strikes now.
pub fn strikes(rng: &mut Jitter, p: f64) -> bool {
    p > 0.0 && (rng.next_u64() as f64 / u64::MAX as f64) < p
}

/// Limits of the fake (defaults: what the contract promises).
#[derive(Debug, Clone)]
pub struct FakeConfig {
    pub store_id: String,
    pub secret: Vec<u8>,
    /// Token bucket in events.
    pub bucket_capacity: f64,
    pub refill_per_s: f64,
}

impl FakeConfig {
    pub fn new(store_id: &str, secret: &[u8]) -> FakeConfig {
        FakeConfig { store_id: store_id.into(), secret: secret.into(), bucket_capacity: 1000.0, refill_per_s: 200.0 }
    }
}

/// One kept event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptEvent {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub record_id: Uuid,
    pub remote_id: String,
    pub received_at: Timestamp,
    pub total_minor: i64,
    /// How many times this id was posted and answered.
    pub deliveries: u32,
    #[serde(skip)]
    digest: [u8; 32],
}

/// Counters of the fake.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeStats {
    pub requests: u64,
    pub throttled: u64,
    pub unauthorized: u64,
    pub bad_requests: u64,
    pub injected_errors: u64,
    pub lost_replies: u64,
    pub refused_connections: u64,
}

/// What the transport should do with a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Disposition {
    Reply(HttpResponse),
    /// The request was acted on; drop the connection instead of answering.
    LoseReply,
    /// Refuse / drop the connection; nothing was acted on.
    Refuse,
}

/// Most push messages kept for resuming streams.
pub const MAX_PUSHES: usize = 10_000;

/// The fake cloud's state.
pub struct FakeCloud {
    cfg: FakeConfig,
    faults: Faults,
    events: BTreeMap<Uuid, KeptEvent>,
    items: BTreeMap<String, ItemDoc>,
    item_changes: BTreeMap<u64, String>,
    price_changes: BTreeMap<u64, String>,
    price_seq: BTreeMap<String, u64>,
    stock: BTreeMap<String, (i64, u64)>,
    stock_changes: BTreeMap<u64, String>,
    next_seq: u64,
    events_through: u64,
    config: ConfigDoc,
    pushes: std::collections::VecDeque<PushMessage>,
    next_push: u64,
    tokens: f64,
    tokens_at: Option<Timestamp>,
    next_remote: u64,
    rng: Jitter,
    stats: FakeStats,
}

fn problem(status: u16, title: &str, detail: &str) -> HttpResponse {
    let mut r =
        HttpResponse::json(status, &json!({"type": "about:blank", "title": title, "status": status, "detail": detail}));
    r.headers[0].1 = "application/problem+json".into();
    r
}

impl FakeCloud {
    pub fn new(cfg: FakeConfig, seed: u64) -> FakeCloud {
        let tokens = cfg.bucket_capacity;
        FakeCloud {
            cfg,
            faults: Faults::healed(),
            events: BTreeMap::new(),
            tokens,
            tokens_at: None,
            items: BTreeMap::new(),
            item_changes: BTreeMap::new(),
            price_changes: BTreeMap::new(),
            price_seq: BTreeMap::new(),
            stock: BTreeMap::new(),
            stock_changes: BTreeMap::new(),
            next_seq: 1,
            events_through: 0,
            config: ConfigDoc { version: 1, settings: json!({"receipt_footer": "Thank you for shopping with us"}) },
            pushes: std::collections::VecDeque::new(),
            next_push: 1,
            next_remote: 1,
            rng: Jitter::new(seed),
            stats: FakeStats::default(),
        }
    }

    /// The baseline catalog both sides start from (the demo catalog), at sequence 0.
    pub fn seed_catalog(&mut self, size: u64) {
        for i in 0..size {
            let it = crate::demo::demo_item(i);
            self.stock.insert(it.sku.clone(), (crate::demo::demo_stock(i), 0));
            // The cloud's pictures: a path on the cloud itself (its CDN, in a real one).
            let mut doc = ItemDoc::of(&it, 0);
            doc.image_url = Some(crate::demo::demo_picture_path(&it.sku));
            self.items.insert(it.sku.clone(), doc);
        }
    }

    /// Messages on the push stream after `after` (oldest first).
    pub fn pushes_after(&self, after: u64) -> Vec<PushMessage> {
        self.pushes.iter().filter(|m| m.id > after).cloned().collect()
    }

    /// The id of the last push message.
    pub fn last_push(&self) -> u64 {
        self.next_push - 1
    }

    fn push(&mut self, now: Timestamp, kind: &str, data: serde_json::Value) {
        let id = self.next_push;
        self.next_push += 1;
        let sig = message_signature(&self.cfg.secret, id, kind, &data);
        self.pushes.push_back(PushMessage { id, kind: kind.into(), at: now, data, sig });
        while self.pushes.len() > MAX_PUSHES {
            self.pushes.pop_front();
        }
    }

    fn bump(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    fn upsert_item(&mut self, mut doc: ItemDoc, price_changed: bool) {
        let seq = self.bump();
        if let Some(old) = self.items.get(&doc.sku) {
            self.item_changes.remove(&old.seq);
        }
        if price_changed {
            if let Some(old) = self.price_seq.insert(doc.sku.clone(), seq) {
                self.price_changes.remove(&old);
            }
            self.price_changes.insert(seq, doc.sku.clone());
        }
        doc.seq = seq;
        self.item_changes.insert(seq, doc.sku.clone());
        self.items.insert(doc.sku.clone(), doc);
    }

    fn set_level(&mut self, sku: &str, level: i64) {
        let seq = self.bump();
        if let Some((_, old)) = self.stock.insert(sku.to_string(), (level, seq)) {
            self.stock_changes.remove(&old);
        }
        self.stock_changes.insert(seq, sku.to_string());
    }

    /// The cloud's stock level of a SKU (what its stock feed says).
    pub fn level(&self, sku: &str) -> Option<i64> {
        self.stock.get(sku).map(|x| x.0)
    }

    pub fn store_id(&self) -> &str {
        &self.cfg.store_id
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    pub fn set_faults(&mut self, f: Faults) {
        self.faults = f;
    }

    pub fn set_rate(&mut self, capacity: f64, refill_per_s: f64) {
        self.cfg.bucket_capacity = capacity;
        self.cfg.refill_per_s = refill_per_s;
        self.tokens = self.tokens.min(capacity);
    }

    pub fn events(&self) -> &BTreeMap<Uuid, KeptEvent> {
        &self.events
    }

    pub fn stats(&self) -> &FakeStats {
        &self.stats
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.rng.next_u64() as f64 / u64::MAX as f64) < p
    }

    fn refill(&mut self, now: Timestamp) {
        if let Some(at) = self.tokens_at {
            let dt = (now.as_millisecond() - at.as_millisecond()).max(0) as f64 / 1000.0;
            self.tokens = (self.tokens + dt * self.cfg.refill_per_s).min(self.cfg.bucket_capacity);
        }
        self.tokens_at = Some(now);
    }

    fn rate_headers(&self, r: &mut HttpResponse) {
        r.headers.push(("x-ratelimit-capacity".into(), format!("{}", self.cfg.bucket_capacity.floor())));
        r.headers.push(("x-ratelimit-remaining".into(), format!("{}", self.tokens.floor().max(0.0))));
        r.headers.push(("x-ratelimit-refill-per-second".into(), format!("{}", self.cfg.refill_per_s)));
    }

    /// Handles one request at `now` (the fake's clock).
    pub fn handle(&mut self, now: Timestamp, req: &HttpRequest) -> Disposition {
        let path = req.path.split('?').next().unwrap_or("");
        match (req.method, path) {
            (Method::Get, "/_fake/records") => {
                let events: Vec<&KeptEvent> = self.events.values().collect();
                return Disposition::Reply(HttpResponse::json(
                    200,
                    &json!({"events": events, "stats": self.stats, "faults": self.faults}),
                ));
            }
            (Method::Get, "/_fake/faults") => {
                return Disposition::Reply(HttpResponse::json(200, &json!(self.faults)));
            }
            (Method::Post, "/_fake/faults") => {
                return Disposition::Reply(match self.merge_faults(&req.body) {
                    Ok(()) => HttpResponse::json(200, &json!(self.faults)),
                    Err(e) => problem(400, "bad faults", &e),
                });
            }
            (Method::Delete, "/_fake/faults") => {
                self.faults = Faults::healed();
                return Disposition::Reply(HttpResponse::json(200, &json!(self.faults)));
            }
            (Method::Post, "/_fake/catalog" | "/_fake/prices" | "/_fake/stock" | "/_fake/config" | "/_fake/push") => {
                return Disposition::Reply(match self.admin(now, path, &req.body) {
                    Ok(v) => HttpResponse::json(200, &v),
                    Err(e) => problem(400, "bad fake change", &e),
                });
            }
            (Method::Get, "/_fake/stock") => {
                let levels: BTreeMap<&String, i64> = self.stock.iter().map(|(k, v)| (k, v.0)).collect();
                return Disposition::Reply(HttpResponse::json(
                    200,
                    &json!({"levels": levels, "events_through": self.events_through}),
                ));
            }
            _ => {}
        }
        self.stats.requests += 1;
        if self.faults.down {
            self.stats.refused_connections += 1;
            return Disposition::Refuse;
        }
        if self.faults.rate_limit_storm {
            self.stats.throttled += 1;
            let mut r = problem(429, "rate limited", "rate limit storm");
            r.headers.push(("retry-after".into(), "1".into()));
            return Disposition::Reply(r);
        }
        let p = self.faults.error_rate;
        if self.chance(p) {
            self.stats.injected_errors += 1;
            let st = self.faults.error_status;
            return Disposition::Reply(problem(st, "injected error", "the fake was told to fail this request"));
        }
        if req.method == Method::Post && path == events_path(&self.cfg.store_id) {
            return self.ingest(now, req);
        }
        // Item pictures, public as a CDN's are: the demo items' drawings.
        if req.method == Method::Get
            && let Some(sku) = path.strip_prefix("/pictures/").and_then(|p| p.strip_suffix(".svg"))
        {
            return Disposition::Reply(match self.items.get(sku).and_then(|_| crate::demo::demo_picture_svg(sku)) {
                Some(svg) => {
                    let mut r = HttpResponse { status: 200, headers: vec![], body: svg.into_bytes() };
                    r.headers.push(("content-type".into(), "image/svg+xml".into()));
                    r.headers.push(("cache-control".into(), "public, max-age=86400".into()));
                    r
                }
                None => problem(404, "no picture", &format!("no picture at {path}")),
            });
        }
        let store_base = format!("/v1/stores/{}/", self.cfg.store_id);
        if req.method == Method::Get
            && let Some(feed) = path.strip_prefix(&store_base)
            && matches!(feed, "catalog" | "prices" | "stock" | "config")
        {
            if let Err(r) = self.authenticate(now, req) {
                return Disposition::Reply(r);
            }
            return Disposition::Reply(self.feed(now, feed, req.path.split_once('?').map(|x| x.1).unwrap_or("")));
        }
        if path.starts_with("/v1/stores/") && path.ends_with("/events") {
            return Disposition::Reply(problem(404, "unknown store", &format!("no store at {path}")));
        }
        Disposition::Reply(problem(
            404,
            "not found",
            &format!("{} {path} is not part of the cloud contract", req.method),
        ))
    }

    fn merge_faults(&mut self, body: &[u8]) -> Result<(), String> {
        let mut cur = serde_json::to_value(&self.faults).map_err(|e| e.to_string())?;
        let patch: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("faults body: {e}"))?;
        let (Some(c), Some(p)) = (cur.as_object_mut(), patch.as_object()) else {
            return Err("faults body must be a JSON object".into());
        };
        for (k, v) in p {
            c.insert(k.clone(), v.clone());
        }
        let f: Faults = serde_json::from_value(cur).map_err(|e| format!("faults body: {e}"))?;
        for (name, r) in [
            ("error_rate", f.error_rate),
            ("lose_reply_after_commit_rate", f.lose_reply_after_commit_rate),
            ("event_retry_rate", f.event_retry_rate),
        ] {
            if !(0.0..=1.0).contains(&r) {
                return Err(format!("{name} must be between 0 and 1"));
            }
        }
        if !(100..=599).contains(&f.error_status) {
            return Err("error_status must be an HTTP status".into());
        }
        self.faults = f;
        Ok(())
    }

    /// Checks the signature headers; the refusal is a 401 naming what is wrong.
    pub fn authenticate(&mut self, now: Timestamp, req: &HttpRequest) -> Result<(), HttpResponse> {
        let mut unauthorized = |why: &str| {
            self.stats.unauthorized += 1;
            Err(problem(401, "unauthorized", why))
        };
        if self.faults.credentials_expired {
            return unauthorized("the store's credentials have expired");
        }
        if req.header("x-edge-store") != Some(self.cfg.store_id.as_str()) {
            return unauthorized("X-Edge-Store is missing or names another store");
        }
        let Some(ts) = req.header("x-edge-timestamp").and_then(|t| t.parse::<i64>().ok()) else {
            return unauthorized("X-Edge-Timestamp is missing or not a number");
        };
        if (ts - now.as_second()).abs() > MAX_SKEW_S {
            return unauthorized("X-Edge-Timestamp is more than 300 s away from the cloud's clock");
        }
        let sig = req.header("x-edge-signature").unwrap_or("");
        if !verify(&self.cfg.secret, ts, req.method, &req.path, &req.body, sig) {
            return unauthorized("X-Edge-Signature does not verify");
        }
        Ok(())
    }

    fn feed(&mut self, now: Timestamp, feed: &str, query: &str) -> HttpResponse {
        let mut cursor = 0u64;
        let mut limit = 500usize;
        for kv in query.split('&').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            match (k, v.parse::<u64>()) {
                ("cursor", Ok(n)) => cursor = n,
                ("limit", Ok(n)) if (1..=1000).contains(&n) => limit = n as usize,
                _ => return problem(400, "bad query", &format!("{kv:?}: cursor is a number, limit 1 to 1000")),
            }
        }
        let page = |changes: &BTreeMap<u64, String>| -> (Vec<(u64, String)>, bool) {
            let mut v: Vec<(u64, String)> =
                changes.range(cursor + 1..).take(limit + 1).map(|(s, k)| (*s, k.clone())).collect();
            let more = v.len() > limit;
            v.truncate(limit);
            (v, more)
        };
        let next = |v: &[(u64, String)]| v.last().map_or(cursor, |x| x.0);
        let body = match feed {
            "catalog" => {
                let (v, has_more) = page(&self.item_changes);
                let items = v.iter().filter_map(|(_, k)| self.items.get(k).cloned()).collect();
                json!(CatalogPage { items, next_cursor: next(&v), has_more })
            }
            "prices" => {
                let (v, has_more) = page(&self.price_changes);
                let prices = v
                    .iter()
                    .filter_map(|(seq, k)| {
                        self.items.get(k).map(|i| PriceDoc {
                            sku: k.clone(),
                            price_minor: i.price_minor,
                            currency: i.currency.clone(),
                            seq: *seq,
                        })
                    })
                    .collect();
                json!(PricesPage { prices, next_cursor: next(&v), has_more })
            }
            "stock" => {
                let (v, has_more) = page(&self.stock_changes);
                let levels = v
                    .iter()
                    .filter_map(|(seq, k)| {
                        self.stock.get(k).map(|(l, _)| LevelDoc { sku: k.clone(), level: *l, seq: *seq })
                    })
                    .collect();
                json!(StockPage {
                    levels,
                    as_of: now,
                    events_through: self.events_through,
                    next_cursor: next(&v),
                    has_more
                })
            }
            _ => json!(self.config),
        };
        HttpResponse::json(200, &body)
    }

    /// `/_fake/catalog|prices|stock|config|push`: changes made "in the cloud".
    fn admin(&mut self, now: Timestamp, path: &str, body: &[u8]) -> Result<serde_json::Value, String> {
        let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("body: {e}"))?;
        match path {
            "/_fake/catalog" => {
                let items: Vec<ItemDoc> =
                    serde_json::from_value(v["items"].clone()).map_err(|e| format!("items: {e}"))?;
                let mut skus = Vec::new();
                for d in items {
                    d.to_item()?;
                    let price_changed = self.items.get(&d.sku).is_none_or(|o| o.price_minor != d.price_minor);
                    skus.push(d.sku.clone());
                    self.upsert_item(d, price_changed);
                }
                self.push(now, "item.changed", json!({"skus": skus}));
                Ok(json!({"changed": skus.len()}))
            }
            "/_fake/prices" => {
                let list = v["prices"].as_array().ok_or("prices: a list of {sku, price_minor}")?;
                let mut skus = Vec::new();
                for p in list {
                    let sku = p["sku"].as_str().ok_or("prices[].sku")?.to_string();
                    let price = p["price_minor"].as_i64().filter(|x| *x >= 0).ok_or("prices[].price_minor")?;
                    let mut d = self.items.get(&sku).cloned().ok_or(format!("no item {sku}"))?;
                    d.price_minor = price;
                    self.upsert_item(d, true);
                    skus.push(sku);
                }
                self.push(now, "price.changed", json!({"skus": skus}));
                Ok(json!({"changed": skus.len()}))
            }
            "/_fake/stock" => {
                let list = v["levels"].as_array().ok_or("levels: a list of {sku, level}")?;
                for l in list {
                    let sku = l["sku"].as_str().ok_or("levels[].sku")?;
                    let level = l["level"].as_i64().ok_or("levels[].level")?;
                    self.set_level(sku, level);
                }
                Ok(json!({"changed": list.len()}))
            }
            "/_fake/config" => {
                if !v["settings"].is_object() {
                    return Err("settings: an object".into());
                }
                self.config = ConfigDoc { version: self.config.version + 1, settings: v["settings"].clone() };
                self.push(now, "config.changed", json!({"version": self.config.version}));
                Ok(json!({"version": self.config.version}))
            }
            _ => {
                let kind = v["type"].as_str().ok_or("type")?.to_string();
                self.push(now, &kind, v["data"].clone());
                Ok(json!({"id": self.last_push()}))
            }
        }
    }

    fn ingest(&mut self, now: Timestamp, req: &HttpRequest) -> Disposition {
        if let Err(r) = self.authenticate(now, req) {
            return Disposition::Reply(r);
        }
        if req.body.len() > MAX_BODY_BYTES {
            self.stats.bad_requests += 1;
            return Disposition::Reply(problem(413, "too large", "the body is over 2 MiB"));
        }
        let mut de = serde_json::Deserializer::from_slice(&req.body);
        let batch: EventBatch = match serde_path_to_error::deserialize(&mut de) {
            Ok(b) => b,
            Err(e) => {
                self.stats.bad_requests += 1;
                let detail = format!("{}: {}", e.path(), e.inner());
                return Disposition::Reply(problem(400, "malformed batch", &detail));
            }
        };
        if batch.events.is_empty() || batch.events.len() > MAX_EVENTS {
            self.stats.bad_requests += 1;
            return Disposition::Reply(problem(413, "batch size", "a batch holds 1 to 500 events"));
        }
        self.refill(now);
        let cost = batch.events.len() as f64;
        if self.tokens < cost {
            self.stats.throttled += 1;
            let wait =
                if self.cfg.refill_per_s > 0.0 { ((cost - self.tokens) / self.cfg.refill_per_s).ceil() } else { 60.0 };
            let mut r = problem(429, "rate limited", "the event bucket cannot take this batch yet");
            r.headers.push(("retry-after".into(), format!("{}", wait.max(1.0))));
            self.rate_headers(&mut r);
            return Disposition::Reply(r);
        }
        self.tokens -= cost;

        let mut results = Vec::with_capacity(batch.events.len());
        for ev in batch.events {
            let digest: [u8; 32] = Sha256::digest(serde_json::to_vec(&ev).unwrap_or_default()).into();
            if let Some(k) = self.events.get_mut(&ev.id) {
                k.deliveries += 1;
                if k.digest == digest {
                    results.push(EventResult {
                        id: ev.id,
                        status: "duplicate".into(),
                        remote_id: Some(k.remote_id.clone()),
                        error: None,
                    });
                } else {
                    results.push(EventResult {
                        id: ev.id,
                        status: "conflict".into(),
                        remote_id: Some(k.remote_id.clone()),
                        error: Some(EventError {
                            code: "id_reused".into(),
                            message: "this event id was used before with other content".into(),
                            field: Some("id".into()),
                        }),
                    });
                }
                continue;
            }
            let data = match self.validate(&ev) {
                Ok(d) => d,
                Err(err) => {
                    results.push(EventResult {
                        id: ev.id,
                        status: "rejected".into(),
                        remote_id: None,
                        error: Some(err),
                    });
                    continue;
                }
            };
            let p = self.faults.event_retry_rate;
            if self.chance(p) {
                results.push(EventResult {
                    id: ev.id,
                    status: "retry".into(),
                    remote_id: None,
                    error: Some(EventError {
                        code: "busy".into(),
                        message: "try this event again later".into(),
                        field: None,
                    }),
                });
                continue;
            }
            let number = self.next_remote;
            let remote_id = format!("evt_{number:08}");
            self.next_remote += 1;
            // The cloud's stock follows the sales, refunds and adjustments it keeps.
            let total_minor = match &data {
                super::EventData::Sale(d) => {
                    let sign = if d.kind.as_deref() == Some("refund") { 1 } else { -1 };
                    for l in &d.lines {
                        let qty = i64::from(l.units.or(l.grams).unwrap_or(0));
                        let cur = self.stock.get(&l.sku).map_or(0, |x| x.0);
                        self.set_level(&l.sku, cur + sign * qty);
                    }
                    d.total_minor
                }
                super::EventData::Adjustment(a) => {
                    let cur = self.stock.get(&a.sku).map_or(0, |x| x.0);
                    self.set_level(&a.sku, cur.saturating_add(a.delta));
                    0
                }
            };
            self.events_through = number;
            self.events.insert(
                ev.id,
                KeptEvent {
                    id: ev.id,
                    kind: ev.kind.clone(),
                    record_id: ev.record_id,
                    remote_id: remote_id.clone(),
                    received_at: now,
                    total_minor,
                    deliveries: 1,
                    digest,
                },
            );
            results.push(EventResult { id: ev.id, status: "accepted".into(), remote_id: Some(remote_id), error: None });
        }
        let p = self.faults.lose_reply_after_commit_rate;
        if self.chance(p) {
            self.stats.lost_replies += 1;
            return Disposition::LoseReply;
        }
        let mut r = HttpResponse::json(200, &json!(BatchResult { results }));
        self.rate_headers(&mut r);
        Disposition::Reply(r)
    }

    fn validate(&self, ev: &super::Event) -> Result<super::EventData, EventError> {
        let bad =
            |field: &str, message: String| EventError { code: "invalid".into(), message, field: Some(field.into()) };
        if self.faults.reject_records.contains(&ev.record_id) {
            return Err(bad("data.lines[0].sku", "the cloud does not know this SKU".into()));
        }
        let data = ev.parse_data().map_err(|(field, why)| bad(&field, why))?;
        match &data {
            super::EventData::Sale(d) => {
                if d.id != ev.record_id {
                    return Err(bad("data.id", "data.id differs from record_id".into()));
                }
                if d.store_id != self.cfg.store_id {
                    return Err(bad("data.store_id", format!("store {:?} is not this store", d.store_id)));
                }
                if d.lines.is_empty() {
                    return Err(bad("data.lines", "a sale needs at least one line".into()));
                }
                let gross: i64 = d.lines.iter().map(|l| l.gross_minor).sum();
                if gross != d.total_minor {
                    return Err(bad(
                        "data.total_minor",
                        format!("lines add up to {gross}, total says {}", d.total_minor),
                    ));
                }
                let tendered: i64 = d.tenders.iter().map(|t| t.amount_minor).sum();
                if tendered - d.change_minor != d.total_minor {
                    return Err(bad("data.tenders", "tenders minus change do not equal the total".into()));
                }
            }
            super::EventData::Adjustment(a) => {
                if a.id != ev.record_id {
                    return Err(bad("data.id", "data.id differs from record_id".into()));
                }
                if a.store_id != self.cfg.store_id {
                    return Err(bad("data.store_id", format!("store {:?} is not this store", a.store_id)));
                }
                if !self.stock.contains_key(&a.sku) && !self.items.contains_key(&a.sku) {
                    return Err(bad("data.sku", format!("the cloud does not know SKU {:?}", a.sku)));
                }
                if a.delta == 0 {
                    return Err(bad("data.delta", "an adjustment of 0 changes nothing".into()));
                }
            }
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::{CloudConnector, events_path};
    use crate::engine::{Connector, RecordResult};

    const DOC: &str = include_str!("../../cloud-openapi.yaml");

    fn sale_entry(n: u8) -> (crate::domain::OutboxEntry, crate::domain::Sale) {
        let at = Timestamp::from_second(1_767_225_600).expect("ts");
        let item = crate::demo::demo_item(0);
        let bd = at.to_zoned(jiff::tz::TimeZone::UTC).date();
        let line = crate::domain::price_line(
            1,
            &item,
            &crate::domain::LineRequest::Units(2),
            None,
            crate::domain::TaxMode::Inclusive,
            item.currency,
            bd,
        )
        .expect("line");
        let total = line.gross_minor;
        let sale = crate::domain::Sale {
            id: Uuid::from_u128(0x0100 + u128::from(n)),
            status: crate::domain::SaleStatus::Completed,
            kind: crate::domain::SaleKind::Sale,
            refund_of: None,
            reason: None,
            created_at: at,
            business_date: bd,
            store_id: "store-001".into(),
            currency: item.currency,
            tax_mode: crate::domain::TaxMode::Inclusive,
            net_minor: line.net_minor,
            tax_minor: line.tax_minor,
            total_minor: total,
            tendered_minor: total,
            change_minor: 0,
            lines: vec![line],
            tenders: vec![crate::domain::Tender::Cash { amount_minor: total }],
            request_id: "r".into(),
            actor: "cashier".into(),
            approved_by: None,
            receipt_no: None,
            lane: None,
            cashier: None,
            age_check: None,
        };
        let entry = crate::domain::OutboxEntry {
            id: Uuid::from_u128(0x0200 + u128::from(n)),
            remote: crate::domain::Remote::Cloud,
            kind: crate::domain::RecordKind::Sale,
            record_id: sale.id,
            state: crate::domain::OutboxState::Pending,
            attempts: 0,
            created_at: at,
            updated_at: at,
            request_id: "r".into(),
        };
        (entry, sale)
    }

    fn as_records(
        v: &[(crate::domain::OutboxEntry, crate::domain::Sale)],
    ) -> Vec<(crate::domain::OutboxEntry, crate::domain::Record)> {
        v.iter().map(|(e, s)| (e.clone(), crate::domain::Record::Sale(Box::new(s.clone())))).collect()
    }

    fn reply(d: Disposition) -> HttpResponse {
        match d {
            Disposition::Reply(r) => r,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn the_contract_document_names_every_path_the_fake_serves() {
        for p in ["/events:", "/catalog:", "/prices:", "/stock:", "/config:", "/stream:"] {
            assert!(DOC.contains(&format!("/v1/stores/{{store}}{p}")), "cloud-openapi.yaml lacks {p}");
        }
        for h in ["X-RateLimit-Capacity", "X-RateLimit-Remaining", "X-RateLimit-Refill-Per-Second", "Retry-After"] {
            assert!(DOC.contains(h), "cloud-openapi.yaml lacks {h}");
        }
    }

    /// The cloud's stock follows what it keeps: a sale takes, a refund gives back, an
    /// adjustment adds its delta; an adjustment of an unknown SKU is refused naming the field.
    #[test]
    fn stock_follows_sales_refunds_and_adjustments() {
        let now = Timestamp::from_second(1_767_225_600).expect("ts");
        let mut fake = FakeCloud::new(FakeConfig::new("store-001", b"s"), 1);
        fake.seed_catalog(5);
        let mut conn = CloudConnector::new("store-001", b"s".to_vec());
        let sku = crate::demo::demo_item(0).sku;
        let level = |f: &FakeCloud| f.stock.get(&sku).map(|x| x.0);
        let start = level(&fake).expect("seeded");
        let (e1, sale) = sale_entry(1);
        let (e2, mut refund) = sale_entry(2);
        let template = e1.clone();
        refund.kind = crate::domain::SaleKind::Refund;
        refund.refund_of = Some(sale.id);
        let adj = |n: u8, sku: &str, delta: i64| {
            let a = crate::domain::StockAdjustment {
                id: Uuid::from_u128(0x0300 + u128::from(n)),
                store_id: "store-001".into(),
                sku: sku.into(),
                delta,
                by_weight: false,
                reason: crate::domain::AdjustReason::Received,
                note: String::new(),
                created_at: now,
                business_date: now.to_zoned(jiff::tz::TimeZone::UTC).date(),
                request_id: "r".into(),
                actor: "manager".into(),
            };
            let mut e = template.clone();
            e.id = Uuid::from_u128(0x0400 + u128::from(n));
            e.kind = crate::domain::RecordKind::Adjustment;
            e.record_id = a.id;
            (e, crate::domain::Record::Adjustment(a))
        };
        let recs = vec![
            (e1, crate::domain::Record::Sale(Box::new(sale))),
            (e2, crate::domain::Record::Sale(Box::new(refund))),
            adj(1, &sku, 10),
            adj(2, "NO-SUCH-SKU", 1),
        ];
        let ids: Vec<Uuid> = recs.iter().map(|r| r.0.id).collect();
        let (req, bad) = conn.build(&recs, now);
        assert!(bad.is_empty());
        let r = conn.parse(&ids, &reply(fake.handle(now, &req.expect("request")))).expect("parse");
        assert!(ids[..3].iter().all(|i| matches!(r[i], RecordResult::Confirmed(_))), "{r:?}");
        assert!(matches!(&r[&ids[3]], RecordResult::Refused(w) if w.contains("field data.sku")), "{r:?}");
        // Sold 2, refunded 2, received 10.
        assert_eq!(level(&fake), Some(start + 10));
    }

    #[test]
    fn events_are_kept_once_and_refusals_name_the_field() {
        let now = Timestamp::from_second(1_767_225_600).expect("ts");
        let mut fake = FakeCloud::new(FakeConfig::new("store-001", b"s"), 1);
        let mut conn = CloudConnector::new("store-001", b"s".to_vec());
        let recs = vec![sale_entry(1), sale_entry(2)];
        let ids: Vec<Uuid> = recs.iter().map(|r| r.0.id).collect();
        let (req, bad) = conn.build(&as_records(&recs), now);
        assert!(bad.is_empty());
        let req = req.expect("request");
        let first = conn.parse(&ids, &reply(fake.handle(now, &req))).expect("parse");
        let again = conn.parse(&ids, &reply(fake.handle(now, &req))).expect("parse");
        assert_eq!(first, again, "a repeat is answered with the first remote ids");
        assert!(first.values().all(|r| matches!(r, RecordResult::Confirmed(_))));
        assert_eq!(fake.events().len(), 2);
        assert!(fake.events().values().all(|e| e.deliveries == 2));

        // Same id, other content: conflict, nothing new kept.
        let mut changed = vec![sale_entry(1)];
        changed[0].1.change_minor = 0;
        changed[0].1.lines[0].gross_minor += 1;
        changed[0].1.total_minor += 1;
        changed[0].1.tendered_minor += 1;
        changed[0].1.tenders = vec![crate::domain::Tender::Cash { amount_minor: changed[0].1.total_minor }];
        let (req, _) = conn.build(&as_records(&changed), now);
        let r = conn.parse(&[ids[0]], &reply(fake.handle(now, &req.expect("req")))).expect("parse");
        assert!(matches!(&r[&ids[0]], RecordResult::Refused(w) if w.contains("conflict")), "{r:?}");

        // An invalid sale: refused with the field named.
        let mut broken = vec![sale_entry(3)];
        broken[0].1.total_minor += 5;
        let (req, _) = conn.build(&as_records(&broken), now);
        let r = conn.parse(&[broken[0].0.id], &reply(fake.handle(now, &req.expect("req")))).expect("parse");
        assert!(
            matches!(&r[&broken[0].0.id], RecordResult::Refused(w) if w.contains("field data.total_minor")),
            "{r:?}"
        );
        assert_eq!(fake.events().len(), 2);
    }

    #[test]
    fn signatures_buckets_and_garbage_are_refused_cleanly() {
        let now = Timestamp::from_second(1_767_225_600).expect("ts");
        let mut cfg = FakeConfig::new("store-001", b"s");
        cfg.bucket_capacity = 1.0;
        cfg.refill_per_s = 0.5;
        let mut fake = FakeCloud::new(cfg, 1);
        let mut conn = CloudConnector::new("store-001", b"s".to_vec());
        let (req, _) = conn.build(&as_records(&[sale_entry(1), sale_entry(2)]), now);
        let r = reply(fake.handle(now, &req.expect("req")));
        assert_eq!(r.status, 429, "two events do not fit a bucket of one");
        assert_eq!(r.header("retry-after"), Some("2"));
        assert!(fake.events().is_empty(), "a refused batch keeps nothing");

        let mut other = CloudConnector::new("store-001", b"wrong".to_vec());
        let (req, _) = other.build(&as_records(&[sale_entry(1)]), now);
        assert_eq!(reply(fake.handle(now, &req.expect("req"))).status, 401);
        let (req, _) = conn.build(&as_records(&[sale_entry(1)]), now);
        let late = Timestamp::from_second(1_767_225_600 + 301).expect("ts");
        assert_eq!(reply(fake.handle(late, &req.expect("req"))).status, 401, "timestamp too far away");

        let mut garbage = HttpRequest {
            method: Method::Post,
            path: events_path("store-001"),
            headers: vec![],
            body: b"{\"events\": 7}".to_vec(),
        };
        crate::cloud::sign(&mut garbage, "store-001", b"s", now);
        let r = reply(fake.handle(now, &garbage));
        assert_eq!(r.status, 400);
        assert!(r.body_excerpt(500).contains("events"), "{}", r.body_excerpt(500));
    }
}
