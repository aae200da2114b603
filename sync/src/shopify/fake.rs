//! The fake Shopify shop: the Admin GraphQL API as a state machine without I/O, served
//! over HTTP by `edge-lab fakes` and called directly by the simulation.
//!
//! True to shared/reference/shopify.md:
//! - `POST /admin/api/2026-04/graphql.json` with `X-Shopify-Access-Token`; a wrong token is
//!   a 401 with `{"errors": "[API] Invalid API key or access token …"}`.
//! - The document is parsed (graphql-parser) and answered through its selection set: a
//!   field the fake does not know is an error naming it, as is a root field it does not
//!   serve, a fragment or a missing variable. Nothing unknown is answered quietly.
//! - Calculated query cost (see `gql`), at most 1,000 a query; a leaky bucket per shop
//!   (Standard plan: 2,000 points, 100 a second; `speed` multiplies the restore rate so
//!   drains are measured in seconds). Every answer carries `extensions.cost` with
//!   `throttleStatus`. An empty bucket answers `{"errors":[{"message":"Throttled",
//!   "extensions":{"code":"THROTTLED"}}]}` with HTTP 200, or 429 when told so.
//! - `orderCreate` (no idempotency: the same input twice makes two orders),
//!   `inventoryBehaviour` decrementing the location's `available`, the development-store
//!   limit of 5 orders a minute as a switch.
//! - `refundCreate` and `inventoryAdjustQuantities` require `@idempotent(key:)`: the same
//!   key with the same input returns the first result and does nothing more; the same key
//!   with another input is an error. `changeFromQuantity` must be given (null to opt out);
//!   a value that is not the current quantity fails with `CHANGE_FROM_QUANTITY_STALE`.
//! - `userErrors` with `field` paths for what is wrong with a record.
//! - `orders(query:)` by `source_identifier:'…'` or `processed_at:>='…' processed_at:<'…'`,
//!   `productVariants` by cursor (optionally `updated_at:>'…'`), `location { inventoryLevels }`
//!   by cursor, `bulkOperationRunQuery` over `productVariants` with its JSONL result at the
//!   operation's `url`, `currentBulkOperation`.
//!
//! Departures (see docs/ARCHITECTURE.md): one shop, one location per store; Shopify's
//! search index is immediate here (the real one lags, which `unknown_wait_s` covers); the
//! codes of an idempotency-key mismatch and of a missing directive are our wording; taxes
//! are taken as sent, never recomputed; ids are one sequence for all resources.

use super::gql::{self, Operation, Sel};
use super::throttle::Bucket;
use crate::cloud::fake::{Disposition, Faults};
use crate::engine::Jitter;
use crate::money::Currency;
use crate::wire::{HttpRequest, HttpResponse, Method};
use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, VecDeque};

/// Set-up of the fake shop.
#[derive(Debug, Clone)]
pub struct ShopifyFakeConfig {
    /// Where the fake is served (bulk result URLs, images).
    pub base_url: String,
    pub token: String,
    pub currency: Currency,
    /// The store's location number (`gid://shopify/Location/N`).
    pub location: u64,
    pub catalog_size: u64,
    /// Bucket size and restore rate (points, points a second).
    pub max: f64,
    pub restore: f64,
    /// Restore-rate multiplier (1 = real time).
    pub speed: u32,
    /// A development store: at most 5 orders a minute.
    pub dev_store: bool,
    /// Answer "Throttled" with HTTP 429 instead of 200.
    pub throttle_429: bool,
}

/// The demo shop's access token (CONTRACT: `fakes.json` key `shopify`).
pub const DEMO_TOKEN: &str = "shpat_demo_edge_store";

impl ShopifyFakeConfig {
    /// The demo shop: Standard plan limits, EUR, location 1.
    pub fn demo(base_url: &str) -> ShopifyFakeConfig {
        ShopifyFakeConfig {
            base_url: base_url.trim_end_matches('/').to_string(),
            token: DEMO_TOKEN.into(),
            currency: Currency::EUR,
            location: 1,
            catalog_size: 2000,
            max: 2000.0,
            restore: 100.0,
            speed: 1,
            dev_store: false,
            throttle_429: false,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FakeLine {
    pub id: String,
    pub variant_id: String,
    pub sku: String,
    pub quantity: i64,
    pub price_minor: i64,
    pub tax_minor: i64,
    pub refunded: i64,
}

/// One kept order (`GET /_fake/records`).
#[derive(Debug, Clone, Serialize)]
pub struct FakeOrder {
    pub id: String,
    pub name: String,
    /// The edge sale id (CONTRACT: records show `sourceIdentifier`).
    #[serde(rename = "sourceIdentifier")]
    pub source_identifier: String,
    pub tags: Vec<String>,
    #[serde(rename = "processedAt")]
    pub processed_at: Timestamp,
    pub total_minor: i64,
    pub paid_minor: i64,
    pub refunded_minor: i64,
    pub taxes_included: bool,
    pub inventory_behaviour: String,
    pub lines: Vec<FakeLine>,
    /// (gateway, kind, amount, authorization code).
    pub transactions: Vec<(String, String, i64, Option<String>)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FakeRefund {
    pub id: String,
    #[serde(rename = "orderId")]
    pub order_id: String,
    #[serde(rename = "idempotencyKey")]
    pub idempotency_key: String,
    pub amount_minor: i64,
    /// (line item, quantity, restock type).
    pub lines: Vec<(String, i64, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FakeAdjustment {
    pub id: String,
    #[serde(rename = "idempotencyKey")]
    pub idempotency_key: String,
    pub reason: String,
    #[serde(rename = "referenceDocumentUri")]
    pub reference: Option<String>,
    /// (inventory item, delta).
    pub changes: Vec<(String, i64)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ShopifyStats {
    pub requests: u64,
    pub throttled: u64,
    pub served_cost: u64,
    pub lost_replies: u64,
    pub idempotent_replays: u64,
    pub stale_compares: u64,
    pub dev_store_limited: u64,
    pub user_errors: u64,
    pub bulk_operations: u64,
}

struct Variant {
    sku: String,
    title: String,
    price: i64,
    barcode: Option<String>,
    image: Option<String>,
    updated: Timestamp,
}

struct Bulk {
    id: u64,
    lines: Vec<String>,
    created: Timestamp,
}

/// How long a bulk read runs in the fake (its status is `RUNNING` until then).
const BULK_MS: i64 = 300;

impl Bulk {
    fn done(&self, now: Timestamp) -> bool {
        now.as_millisecond() - self.created.as_millisecond() >= BULK_MS
    }
}

pub struct FakeShopify {
    cfg: ShopifyFakeConfig,
    faults: Faults,
    rng: Jitter,
    bucket: Bucket,
    variants: BTreeMap<u64, Variant>,
    available: BTreeMap<u64, i64>,
    orders: BTreeMap<u64, FakeOrder>,
    refunds: Vec<FakeRefund>,
    adjustments: Vec<FakeAdjustment>,
    /// (mutation, key) → (its input, the first answer's payload).
    idempotent: BTreeMap<(String, String), (Value, Value)>,
    order_times: VecDeque<i64>,
    bulk: Option<Bulk>,
    stats: ShopifyStats,
    next_id: u64,
    next_name: u64,
}

fn gid(kind: &str, n: u64) -> String {
    format!("gid://shopify/{kind}/{n}")
}

fn gql_error(message: &str, code: &str) -> Value {
    json!({"message": message, "extensions": {"code": code}})
}

impl FakeShopify {
    pub fn new(cfg: ShopifyFakeConfig, seed: u64) -> FakeShopify {
        let mut variants = BTreeMap::new();
        let mut available = BTreeMap::new();
        for i in 0..cfg.catalog_size {
            let it = crate::demo::demo_item(i);
            variants.insert(
                i + 1,
                Variant {
                    sku: it.sku.clone(),
                    title: it.name,
                    price: it.price_minor,
                    barcode: it.barcodes.first().cloned(),
                    image: Some(format!("{}/_fake/images/variant-{}.svg", cfg.base_url, i + 1)),
                    updated: Timestamp::UNIX_EPOCH,
                },
            );
            available.insert(i + 1, crate::demo::demo_stock(i));
        }
        FakeShopify {
            bucket: Bucket::new(cfg.max, cfg.restore * f64::from(cfg.speed.max(1))),
            next_id: cfg.catalog_size + 1000,
            cfg,
            faults: Faults::healed(),
            rng: Jitter::new(seed),
            variants,
            available,
            orders: BTreeMap::new(),
            refunds: Vec::new(),
            adjustments: Vec::new(),
            idempotent: BTreeMap::new(),
            order_times: VecDeque::new(),
            bulk: None,
            stats: ShopifyStats::default(),
            next_name: 1001,
        }
    }

    pub fn config(&self) -> &ShopifyFakeConfig {
        &self.cfg
    }
    pub fn faults(&self) -> &Faults {
        &self.faults
    }
    pub fn set_faults(&mut self, f: Faults) {
        self.faults = f;
    }
    pub fn stats(&self) -> &ShopifyStats {
        &self.stats
    }
    pub fn orders(&self) -> &BTreeMap<u64, FakeOrder> {
        &self.orders
    }
    pub fn refunds(&self) -> &[FakeRefund] {
        &self.refunds
    }
    pub fn adjustments(&self) -> &[FakeAdjustment] {
        &self.adjustments
    }
    /// Orders per `sourceIdentifier`.
    pub fn by_source(&self) -> BTreeMap<String, Vec<String>> {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for o in self.orders.values() {
            m.entry(o.source_identifier.clone()).or_default().push(o.id.clone());
        }
        m
    }
    /// The location's `available` of a variant (its inventory item has the same number).
    pub fn available(&self, variant: u64) -> Option<i64> {
        self.available.get(&variant).copied()
    }
    /// Points available now and the bucket's size.
    pub fn bucket(&mut self, now: Timestamp) -> (f64, f64) {
        (self.bucket.available(now.as_millisecond()), self.bucket.max)
    }
    pub fn set_dev_store(&mut self, on: bool) {
        self.cfg.dev_store = on;
    }
    pub fn set_throttle_429(&mut self, on: bool) {
        self.cfg.throttle_429 = on;
    }
    /// Empties the bucket now.
    pub fn drain_bucket(&mut self, now: Timestamp) {
        self.bucket.drain(now.as_millisecond());
    }
    /// A stock level changed in Shopify's admin.
    pub fn set_available(&mut self, variant: u64, qty: i64) {
        self.available.insert(variant, qty);
    }
    /// A price changed in Shopify's admin.
    pub fn set_price(&mut self, variant: u64, price: i64, now: Timestamp) -> bool {
        match self.variants.get_mut(&variant) {
            Some(v) => {
                v.price = price;
                v.updated = now;
                true
            }
            None => false,
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Handles one request.
    pub fn handle(&mut self, now: Timestamp, req: &HttpRequest) -> Disposition {
        let path = req.path.split('?').next().unwrap_or("");
        if path.starts_with("/_fake/") {
            return Disposition::Reply(self.fake_surface(req, path, now));
        }
        self.stats.requests += 1;
        if self.faults.down {
            return Disposition::Refuse;
        }
        if crate::cloud::fake::strikes(&mut self.rng, self.faults.error_rate) {
            return Disposition::Reply(HttpResponse::json(
                self.faults.error_status,
                &json!({"errors": [gql_error("injected failure", "INTERNAL_SERVER_ERROR")]}),
            ));
        }
        if !path.starts_with("/admin/api/") || !path.ends_with("/graphql.json") {
            return Disposition::Reply(HttpResponse::json(404, &json!({"errors": "Not Found"})));
        }
        if path != super::graphql_path() {
            return Disposition::Reply(HttpResponse::json(
                404,
                &json!({"errors": format!("Not Found: the fake serves API version {} only", super::API_VERSION)}),
            ));
        }
        if req.method != Method::Post {
            return Disposition::Reply(HttpResponse::json(405, &json!({"errors": "GraphQL takes POST"})));
        }
        if self.faults.credentials_expired || req.header("x-shopify-access-token") != Some(self.cfg.token.as_str()) {
            return Disposition::Reply(HttpResponse::json(
                401,
                &json!({"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}),
            ));
        }
        let body: Value = match serde_json::from_slice(&req.body) {
            Ok(v) => v,
            Err(e) => {
                return Disposition::Reply(HttpResponse::json(
                    400,
                    &json!({"errors": [gql_error(&format!("the body is not JSON: {e}"), "BAD_REQUEST")]}),
                ));
            }
        };
        let Some(text) = body.get("query").and_then(Value::as_str) else {
            return Disposition::Reply(HttpResponse::json(
                400,
                &json!({"errors": [gql_error("the body has no \"query\"", "BAD_REQUEST")]}),
            ));
        };
        let vars = body.get("variables").and_then(Value::as_object).cloned().unwrap_or_default();
        let op = match gql::parse(text, &vars) {
            Ok(op) => op,
            Err(e) => {
                return Disposition::Reply(HttpResponse::json(
                    200,
                    &json!({"errors": [gql_error(&e, "GRAPHQL_PARSE_FAILED")]}),
                ));
            }
        };
        let now_ms = now.as_millisecond();
        let requested = gql::requested_cost(&op);
        if requested > gql::MAX_QUERY_COST {
            return Disposition::Reply(HttpResponse::json(
                200,
                &json!({"errors": [gql_error(&format!("Query cost is {requested}, which exceeds the single query max cost limit ({}).", gql::MAX_QUERY_COST), "MAX_COST_EXCEEDED")]}),
            ));
        }
        if self.faults.rate_limit_storm {
            // A storm: something else keeps the app's bucket empty.
            self.bucket.drain(now_ms);
        }
        if !self.bucket.take(f64::from(requested), now_ms) {
            self.stats.throttled += 1;
            let body = json!({
                "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED",
                    "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
                "extensions": {"cost": self.cost_json(requested, None, now_ms)},
            });
            return Disposition::Reply(HttpResponse::json(if self.cfg.throttle_429 { 429 } else { 200 }, &body));
        }
        if op.mutation && op.fields.iter().any(|f| f.name == "orderCreate") && self.cfg.dev_store {
            while self.order_times.front().is_some_and(|t| *t <= now_ms - 60_000) {
                self.order_times.pop_front();
            }
            if self.order_times.len() >= 5 {
                self.stats.dev_store_limited += 1;
                self.bucket.refund(f64::from(requested), now_ms);
                let mut r = HttpResponse::json(
                    429,
                    &json!({"errors": [{"message":
                    "Exceeded order API rate limit, please try again in a minute. Upgrade to a paid account to remove this limit."}]}),
                );
                r.headers.push(("Retry-After".into(), "60".into()));
                return Disposition::Reply(r);
            }
        }
        let (data, errors, acted) = self.execute(&op, now);
        let actual = if errors.is_empty() { gql::actual_cost(&op, &data) } else { requested.min(1) };
        self.bucket.refund(f64::from(requested.saturating_sub(actual)), now_ms);
        self.stats.served_cost += u64::from(actual);
        let mut out = Map::new();
        if !errors.is_empty() {
            out.insert("errors".into(), Value::Array(errors));
        }
        if !data.as_object().is_none_or(Map::is_empty) {
            out.insert("data".into(), data);
        }
        out.insert("extensions".into(), json!({"cost": self.cost_json(requested, Some(actual), now_ms)}));
        if acted && crate::cloud::fake::strikes(&mut self.rng, self.faults.lose_reply_after_commit_rate) {
            self.stats.lost_replies += 1;
            return Disposition::LoseReply;
        }
        Disposition::Reply(HttpResponse::json(200, &Value::Object(out)))
    }

    fn cost_json(&mut self, requested: u32, actual: Option<u32>, now_ms: i64) -> Value {
        json!({"requestedQueryCost": requested, "actualQueryCost": actual,
               "throttleStatus": {"maximumAvailable": self.bucket.max,
                                  "currentlyAvailable": self.bucket.available(now_ms).floor(),
                                  "restoreRate": self.bucket.restore}})
    }

    /// Runs the operation's root fields: (data, errors, whether anything was changed).
    fn execute(&mut self, op: &Operation, now: Timestamp) -> (Value, Vec<Value>, bool) {
        let mut data = Map::new();
        let mut errors = Vec::new();
        let mut acted = false;
        for f in &op.fields {
            let r = if op.mutation { self.mutation(f, now) } else { self.query(f, now) };
            match r {
                Ok((full, changed)) => {
                    acted |= changed;
                    let typename = if op.mutation { "Mutation" } else { "QueryRoot" };
                    match if full.is_null() { Ok(Value::Null) } else { gql::project(&full, &f.selection, typename) } {
                        Ok(v) => {
                            data.insert(f.key.clone(), v);
                        }
                        Err(e) => errors.push(json!({"message": e, "path": [f.key],
                                                     "extensions": {"code": "undefinedField"}})),
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        (Value::Object(data), errors, acted)
    }

    fn query(&mut self, f: &Sel, now: Timestamp) -> Result<(Value, bool), Value> {
        let full = match f.name.as_str() {
            "orders" => {
                let q = f.arg("query").and_then(Value::as_str).unwrap_or("");
                let filter = order_filter(q).map_err(|e| gql_error(&e, "argumentLiteralsIncompatible"))?;
                let list: Vec<(u64, Value)> = self
                    .orders
                    .iter()
                    .filter(|(_, o)| filter.matches(o))
                    .map(|(n, o)| (*n, self.order_json(o)))
                    .collect();
                connection(f, list)?
            }
            "productVariants" => {
                let since = match f.arg("query").and_then(Value::as_str) {
                    None | Some("") => None,
                    Some(q) => Some(updated_filter(q).map_err(|e| gql_error(&e, "argumentLiteralsIncompatible"))?),
                };
                let list: Vec<(u64, Value)> = self
                    .variants
                    .iter()
                    .filter(|(_, v)| since.is_none_or(|s| v.updated > s))
                    .map(|(n, _)| (*n, self.variant_json(*n)))
                    .collect();
                connection(f, list)?
            }
            "location" => {
                let want = gid("Location", self.cfg.location);
                if f.arg("id").and_then(Value::as_str) != Some(want.as_str()) {
                    return Ok((Value::Null, false));
                }
                let mut loc = json!({"id": want, "name": "Store"});
                if let Some(levels) = f.selection.iter().find(|s| s.name == "inventoryLevels") {
                    let list: Vec<(u64, Value)> = self
                        .available
                        .iter()
                        .map(|(n, q)| {
                            let sku = self.variants.get(n).map(|v| v.sku.clone()).unwrap_or_default();
                            (*n, json!({"id": format!("gid://shopify/InventoryLevel/{n}?inventory_item_id={n}"),
                                        "item": {"id": gid("InventoryItem", *n), "sku": sku},
                                        "quantities": [{"name": "available", "quantity": q}, {"name": "on_hand", "quantity": q}],
                                        "updatedAt": now.to_string()}))
                        })
                        .collect();
                    loc["inventoryLevels"] = connection(levels, list)?;
                }
                loc
            }
            "currentBulkOperation" | "bulkOperation" => match self.bulk.as_ref() {
                None => Value::Null,
                Some(b) => {
                    let done = b.done(now);
                    json!({"id": gid("BulkOperation", b.id), "status": if done { "COMPLETED" } else { "RUNNING" },
                           "errorCode": null, "createdAt": b.created.to_string(),
                           "completedAt": if done { json!(now.to_string()) } else { Value::Null },
                           "objectCount": if done { b.lines.len().to_string() } else { "0".into() },
                           "url": if done { json!(format!("{}/_fake/bulk/{}.jsonl", self.cfg.base_url, b.id)) } else { Value::Null },
                           "partialDataUrl": null})
                }
            },
            "shop" => json!({"name": "Demo store", "currencyCode": self.cfg.currency.as_str(),
                             "ianaTimezone": "Europe/Berlin", "plan": {"displayName": "Shopify"}}),
            other => {
                return Err(
                    json!({"message": format!("Field '{other}' doesn't exist on type 'QueryRoot' (or the fake does not serve it)"),
                                  "extensions": {"code": "undefinedField"}}),
                );
            }
        };
        Ok((full, false))
    }

    fn mutation(&mut self, f: &Sel, now: Timestamp) -> Result<(Value, bool), Value> {
        match f.name.as_str() {
            "orderCreate" => Ok(self.order_create(f, now)),
            "refundCreate" | "inventoryAdjustQuantities" => {
                let Some(key) = f.directive("idempotent").and_then(|d| d.get("key")).and_then(Value::as_str) else {
                    return Err(gql_error(
                        &format!(
                            "The @idempotent directive is required for {} (API version {})",
                            f.name,
                            super::API_VERSION
                        ),
                        "BAD_REQUEST",
                    ));
                };
                if key.is_empty() || key.len() > 255 {
                    return Err(gql_error("@idempotent(key:) must be 1–255 characters", "BAD_REQUEST"));
                }
                let input = f.arg("input").cloned().unwrap_or(Value::Null);
                let slot = (f.name.clone(), key.to_string());
                if let Some((first_input, first_answer)) = self.idempotent.get(&slot) {
                    if *first_input != input {
                        return Err(gql_error(
                            &format!("The idempotency key {key} was already used with different input for {}", f.name),
                            "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
                        ));
                    }
                    self.stats.idempotent_replays += 1;
                    return Ok((first_answer.clone(), false));
                }
                let (answer, acted) = if f.name == "refundCreate" {
                    self.refund_create(&input, key)
                } else {
                    self.inventory_adjust(&input, key)
                };
                // Only an answer that did something is remembered: one refused by
                // userErrors may be sent again, fixed, under the same key.
                if acted {
                    self.idempotent.insert(slot, (input, answer.clone()));
                }
                Ok((answer, acted))
            }
            "bulkOperationRunQuery" => Ok(self.bulk_run(f, now)),
            other => Err(
                json!({"message": format!("Field '{other}' doesn't exist on type 'Mutation' (or the fake does not serve it)"),
                                "extensions": {"code": "undefinedField"}}),
            ),
        }
    }

    fn user_error(&mut self, field: &[&str], message: &str, code: &str) -> Value {
        self.stats.user_errors += 1;
        json!({"field": field, "message": message, "code": code})
    }

    fn money_of(&self, v: Option<&Value>) -> Option<i64> {
        let m = v?.get("shopMoney")?;
        if m.get("currencyCode").and_then(Value::as_str) != Some(self.cfg.currency.as_str()) {
            return None;
        }
        super::parse_decimal(m.get("amount")?.as_str()?, self.cfg.currency)
    }

    fn order_create(&mut self, f: &Sel, now: Timestamp) -> (Value, bool) {
        let empty = Value::Null;
        let o = f.arg("order").unwrap_or(&empty);
        let opts = f.arg("options").unwrap_or(&empty);
        let mut errs = Vec::new();
        let source = o.get("sourceIdentifier").and_then(Value::as_str).unwrap_or("").to_string();
        if o.get("currency").and_then(Value::as_str).is_some_and(|c| c != self.cfg.currency.as_str()) {
            errs.push(self.user_error(&["order", "currency"], "Currency must be the shop's currency", "INVALID"));
        }
        if let Ok(id) = source.parse::<uuid::Uuid>()
            && self.faults.reject_records.contains(&id)
        {
            errs.push(self.user_error(&["order", "sourceIdentifier"], "refused by the fake's fault switch", "INVALID"));
        }
        let behaviour = opts.get("inventoryBehaviour").and_then(Value::as_str).unwrap_or("BYPASS").to_string();
        if !["BYPASS", "DECREMENT_IGNORING_POLICY", "DECREMENT_OBEYING_POLICY"].contains(&behaviour.as_str()) {
            errs.push(self.user_error(
                &["options", "inventoryBehaviour"],
                "is not a valid inventory behaviour",
                "INVALID",
            ));
        }
        let mut lines = Vec::new();
        let items = o.get("lineItems").and_then(Value::as_array).cloned().unwrap_or_default();
        if items.is_empty() || items.len() > 250 {
            errs.push(self.user_error(&["order", "lineItems"], "must have 1 to 250 line items", "INVALID"));
        }
        for (i, l) in items.iter().enumerate() {
            let idx = i.to_string();
            let variant = l.get("variantId").and_then(Value::as_str).and_then(gql::gid_number);
            let Some(v) = variant.filter(|n| self.variants.contains_key(n)) else {
                errs.push(self.user_error(
                    &["order", "lineItems", &idx, "variantId"],
                    "Variant not found",
                    "NOT_FOUND",
                ));
                continue;
            };
            let qty = l.get("quantity").and_then(Value::as_i64).unwrap_or(0);
            if qty <= 0 {
                errs.push(self.user_error(
                    &["order", "lineItems", &idx, "quantity"],
                    "must be greater than 0",
                    "INVALID",
                ));
            }
            let price = match l.get("priceSet") {
                None => self.variants.get(&v).map_or(0, |x| x.price),
                Some(p) => match self.money_of(Some(p)) {
                    Some(p) => p,
                    None => {
                        errs.push(self.user_error(
                            &["order", "lineItems", &idx, "priceSet"],
                            "is not an amount in the shop's currency",
                            "INVALID",
                        ));
                        continue;
                    }
                },
            };
            let tax: i64 = l
                .get("taxLines")
                .and_then(Value::as_array)
                .map(|t| t.iter().filter_map(|x| self.money_of(x.get("priceSet"))).sum())
                .unwrap_or(0);
            let sku = self.variants.get(&v).map(|x| x.sku.clone()).unwrap_or_default();
            lines.push(FakeLine {
                id: String::new(),
                variant_id: gid("ProductVariant", v),
                sku,
                quantity: qty,
                price_minor: price,
                tax_minor: tax,
                refunded: 0,
            });
        }
        let included = o.get("taxesIncluded").and_then(Value::as_bool).unwrap_or(false);
        let total: i64 =
            lines.iter().map(|l| l.price_minor * l.quantity + if included { 0 } else { l.tax_minor }).sum();
        let mut transactions = Vec::new();
        for (i, t) in o.get("transactions").and_then(Value::as_array).cloned().unwrap_or_default().iter().enumerate() {
            let idx = i.to_string();
            let Some(amount) = self.money_of(t.get("amountSet")) else {
                errs.push(self.user_error(
                    &["order", "transactions", &idx, "amountSet"],
                    "is not an amount in the shop's currency",
                    "INVALID",
                ));
                continue;
            };
            let gateway = t.get("gateway").and_then(Value::as_str).unwrap_or("manual").to_string();
            let kind = t.get("kind").and_then(Value::as_str).unwrap_or("SALE").to_string();
            let auth = t.get("authorizationCode").and_then(Value::as_str).map(str::to_string);
            transactions.push((gateway, kind, amount, auth));
        }
        if !errs.is_empty() {
            return (json!({"order": null, "userErrors": errs}), false);
        }
        let oid = self.id();
        for l in &mut lines {
            l.id = gid("LineItem", self.next_id + 1);
            self.next_id += 1;
            if behaviour != "BYPASS"
                && let Some(n) = gql::gid_number(&l.variant_id)
            {
                *self.available.entry(n).or_default() -= l.quantity;
            }
        }
        let processed = o.get("processedAt").and_then(Value::as_str).and_then(|t| t.parse().ok()).unwrap_or(now);
        let name = format!("#{}", self.next_name);
        self.next_name += 1;
        if self.cfg.dev_store {
            self.order_times.push_back(now.as_millisecond());
        }
        let order = FakeOrder {
            id: gid("Order", oid),
            name,
            source_identifier: source,
            tags: o
                .get("tags")
                .and_then(Value::as_array)
                .map(|t| t.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                .unwrap_or_default(),
            processed_at: processed,
            total_minor: total,
            paid_minor: transactions.iter().map(|t| t.2).sum(),
            refunded_minor: 0,
            taxes_included: included,
            inventory_behaviour: behaviour,
            lines,
            transactions,
        };
        let answer = json!({"order": self.order_json(&order), "userErrors": []});
        self.orders.insert(oid, order);
        (answer, true)
    }

    fn refund_create(&mut self, input: &Value, key: &str) -> (Value, bool) {
        let mut errs = Vec::new();
        if key.parse::<uuid::Uuid>().is_ok_and(|id| self.faults.reject_records.contains(&id)) {
            errs.push(self.user_error(&["input", "note"], "refused by the fake's fault switch", "INVALID"));
        }
        let order_no = input.get("orderId").and_then(Value::as_str).and_then(gql::gid_number);
        let Some(on) = order_no.filter(|n| self.orders.contains_key(n)) else {
            let e = self.user_error(&["input", "orderId"], "Order does not exist", "NOT_FOUND");
            return (json!({"refund": null, "userErrors": [e]}), false);
        };
        let mut lines = Vec::new();
        for (i, l) in
            input.get("refundLineItems").and_then(Value::as_array).cloned().unwrap_or_default().iter().enumerate()
        {
            let idx = i.to_string();
            let id = l.get("lineItemId").and_then(Value::as_str).unwrap_or("").to_string();
            let qty = l.get("quantity").and_then(Value::as_i64).unwrap_or(0);
            let restock = l.get("restockType").and_then(Value::as_str).unwrap_or("NO_RESTOCK").to_string();
            let Some(line) = self.orders.get(&on).and_then(|o| o.lines.iter().find(|x| x.id == id)) else {
                errs.push(self.user_error(
                    &["input", "refundLineItems", &idx, "lineItemId"],
                    "Line item does not belong to the order",
                    "INVALID",
                ));
                continue;
            };
            if qty <= 0 || qty > line.quantity - line.refunded {
                errs.push(self.user_error(
                    &["input", "refundLineItems", &idx, "quantity"],
                    "Quantity cannot refund more items than were purchased",
                    "INVALID",
                ));
                continue;
            }
            lines.push((id, qty, restock));
        }
        let mut amount = 0;
        for (i, t) in
            input.get("transactions").and_then(Value::as_array).cloned().unwrap_or_default().iter().enumerate()
        {
            let idx = i.to_string();
            match t.get("amount").and_then(Value::as_str).and_then(|a| super::parse_decimal(a, self.cfg.currency)) {
                Some(a) if a > 0 => amount += a,
                _ => errs.push(self.user_error(
                    &["input", "transactions", &idx, "amount"],
                    "must be a positive amount",
                    "INVALID",
                )),
            }
        }
        if let Some(o) = self.orders.get(&on)
            && amount > o.paid_minor - o.refunded_minor
        {
            errs.push(self.user_error(
                &["input", "transactions", "0", "amount"],
                "Amount cannot be greater than the refundable amount",
                "INVALID",
            ));
        }
        if !errs.is_empty() {
            return (json!({"refund": null, "userErrors": errs}), false);
        }
        let rid = self.id();
        if let Some(o) = self.orders.get_mut(&on) {
            o.refunded_minor += amount;
            for (id, q, restock) in &lines {
                if let Some(l) = o.lines.iter_mut().find(|x| x.id == *id) {
                    l.refunded += q;
                    if restock == "RETURN"
                        && let Some(n) = gql::gid_number(&l.variant_id)
                    {
                        *self.available.entry(n).or_default() += q;
                    }
                }
            }
        }
        let r = FakeRefund {
            id: gid("Refund", rid),
            order_id: gid("Order", on),
            idempotency_key: key.into(),
            amount_minor: amount,
            lines,
        };
        let answer = json!({"refund": {"id": r.id, "totalRefundedSet": {"shopMoney": {"amount": super::decimal(amount, self.cfg.currency), "currencyCode": self.cfg.currency.as_str()}}}, "userErrors": []});
        self.refunds.push(r);
        (answer, true)
    }

    fn inventory_adjust(&mut self, input: &Value, key: &str) -> (Value, bool) {
        let mut errs = Vec::new();
        if key.parse::<uuid::Uuid>().is_ok_and(|id| self.faults.reject_records.contains(&id)) {
            errs.push(self.user_error(
                &["input", "referenceDocumentUri"],
                "refused by the fake's fault switch",
                "INVALID",
            ));
        }
        let reason = input.get("reason").and_then(Value::as_str).unwrap_or("").to_string();
        if !crate::mapping::SHOPIFY_REASONS.contains(&reason.as_str()) {
            errs.push(self.user_error(&["input", "reason"], "is not a valid reason", "INVALID_REASON"));
        }
        if input.get("name").and_then(Value::as_str) != Some("available") {
            errs.push(self.user_error(
                &["input", "name"],
                "only the available quantity can be adjusted",
                "INVALID_QUANTITY_NAME",
            ));
        }
        let mut changes = Vec::new();
        for (i, c) in input.get("changes").and_then(Value::as_array).cloned().unwrap_or_default().iter().enumerate() {
            let idx = i.to_string();
            let item = c.get("inventoryItemId").and_then(Value::as_str).and_then(gql::gid_number);
            let Some(n) = item.filter(|n| self.available.contains_key(n)) else {
                errs.push(self.user_error(
                    &["input", "changes", &idx, "inventoryItemId"],
                    "The specified inventory item could not be found",
                    "ITEM_NOT_STOCKED_AT_LOCATION",
                ));
                continue;
            };
            if c.get("locationId").and_then(Value::as_str) != Some(gid("Location", self.cfg.location).as_str()) {
                errs.push(self.user_error(
                    &["input", "changes", &idx, "locationId"],
                    "The specified location could not be found",
                    "INVALID_LOCATION",
                ));
                continue;
            }
            let Some(delta) = c.get("delta").and_then(Value::as_i64) else {
                errs.push(self.user_error(&["input", "changes", &idx, "delta"], "must be an integer", "INVALID"));
                continue;
            };
            match c.get("changeFromQuantity") {
                None => {
                    errs.push(self.user_error(
                        &["input", "changes", &idx, "changeFromQuantity"],
                        "is required from API version 2026-04 (pass null to opt out of the compare)",
                        "INVALID",
                    ));
                    continue;
                }
                Some(Value::Null) => {}
                Some(v) => {
                    let cur = self.available.get(&n).copied().unwrap_or(0);
                    if v.as_i64() != Some(cur) {
                        self.stats.stale_compares += 1;
                        errs.push(self.user_error(
                            &["input", "changes", &idx, "changeFromQuantity"],
                            "The quantity has changed since it was read",
                            "CHANGE_FROM_QUANTITY_STALE",
                        ));
                        continue;
                    }
                }
            }
            changes.push((n, delta));
        }
        if changes.is_empty() && errs.is_empty() {
            errs.push(self.user_error(&["input", "changes"], "must have at least one change", "INVALID"));
        }
        if !errs.is_empty() {
            return (json!({"inventoryAdjustmentGroup": null, "userErrors": errs}), false);
        }
        for (n, d) in &changes {
            *self.available.entry(*n).or_default() += d;
        }
        let gid_ = gid("InventoryAdjustmentGroup", self.id());
        self.adjustments.push(FakeAdjustment {
            id: gid_.clone(),
            idempotency_key: key.into(),
            reason: reason.clone(),
            reference: input.get("referenceDocumentUri").and_then(Value::as_str).map(str::to_string),
            changes: changes.iter().map(|(n, d)| (gid("InventoryItem", *n), *d)).collect(),
        });
        (
            json!({"inventoryAdjustmentGroup": {"id": gid_, "reason": reason,
                 "changes": changes.iter().map(|(n, d)| json!({"name": "available", "delta": d, "item": {"id": gid("InventoryItem", *n)}})).collect::<Vec<_>>()},
                "userErrors": []}),
            true,
        )
    }

    fn bulk_run(&mut self, f: &Sel, now: Timestamp) -> (Value, bool) {
        if self.bulk.as_ref().is_some_and(|b| !b.done(now)) {
            let e = self.user_error(
                &["query"],
                "A bulk query operation for this app and shop is already in progress",
                "OPERATION_IN_PROGRESS",
            );
            return (json!({"bulkOperation": null, "userErrors": [e]}), false);
        }
        let text = f.arg("query").and_then(Value::as_str).unwrap_or("");
        let op = match gql::parse(text, &Map::new()) {
            Ok(op) => op,
            Err(e) => {
                let e = self.user_error(&["query"], &format!("Invalid bulk query: {e}"), "INVALID");
                return (json!({"bulkOperation": null, "userErrors": [e]}), false);
            }
        };
        let root = op.fields.first().filter(|r| op.fields.len() == 1 && r.name == "productVariants");
        let node_sel = root.and_then(|r| {
            r.selection
                .iter()
                .find(|s| s.name == "edges")?
                .selection
                .iter()
                .find(|s| s.name == "node")
                .map(|n| n.selection.clone())
        });
        let Some(node_sel) = node_sel else {
            let e = self.user_error(
                &["query"],
                "the fake's bulk reads are `{ productVariants { edges { node { … } } } }`",
                "INVALID",
            );
            return (json!({"bulkOperation": null, "userErrors": [e]}), false);
        };
        let mut lines = Vec::new();
        for n in self.variants.keys().copied().collect::<Vec<_>>() {
            match gql::project(&self.variant_json(n), &node_sel, "ProductVariant") {
                Ok(v) => lines.push(v.to_string()),
                Err(e) => {
                    let e = self.user_error(&["query"], &e, "INVALID");
                    return (json!({"bulkOperation": null, "userErrors": [e]}), false);
                }
            }
        }
        let id = self.id();
        self.stats.bulk_operations += 1;
        self.bulk = Some(Bulk { id, lines, created: now });
        (json!({"bulkOperation": {"id": gid("BulkOperation", id), "status": "CREATED"}, "userErrors": []}), false)
    }

    fn order_json(&self, o: &FakeOrder) -> Value {
        let money = |m: i64| json!({"shopMoney": {"amount": super::decimal(m, self.cfg.currency), "currencyCode": self.cfg.currency.as_str()}});
        json!({
            "id": o.id, "name": o.name, "sourceIdentifier": o.source_identifier, "tags": o.tags,
            "processedAt": o.processed_at.to_string(), "createdAt": o.processed_at.to_string(),
            "currencyCode": self.cfg.currency.as_str(), "taxesIncluded": o.taxes_included,
            "totalPriceSet": money(o.total_minor), "totalRefundedSet": money(o.refunded_minor),
            "displayFinancialStatus": if o.refunded_minor == 0 { "PAID" } else if o.refunded_minor < o.paid_minor { "PARTIALLY_REFUNDED" } else { "REFUNDED" },
            "lineItems": {"nodes": o.lines.iter().map(|l| json!({"id": l.id, "sku": l.sku, "quantity": l.quantity,
                "variant": {"id": l.variant_id}, "originalUnitPriceSet": money(l.price_minor)})).collect::<Vec<_>>()},
            "transactions": o.transactions.iter().map(|t| json!({"gateway": t.0, "kind": t.1, "amountSet": money(t.2), "authorizationCode": t.3})).collect::<Vec<_>>(),
        })
    }

    fn variant_json(&self, n: u64) -> Value {
        let Some(v) = self.variants.get(&n) else { return Value::Null };
        json!({
            "id": gid("ProductVariant", n), "sku": v.sku, "barcode": v.barcode, "title": "Default Title",
            "displayName": v.title, "price": super::decimal(v.price, self.cfg.currency), "updatedAt": v.updated.to_string(),
            "taxable": true,
            "product": {"id": gid("Product", n), "title": v.title, "status": "ACTIVE"},
            "image": v.image.as_ref().map(|u| json!({"url": u})),
            "inventoryItem": {"id": gid("InventoryItem", n), "tracked": true},
        })
    }

    fn fake_surface(&mut self, req: &HttpRequest, path: &str, now: Timestamp) -> HttpResponse {
        if req.method == Method::Get
            && let Some(id) = path.strip_prefix("/_fake/bulk/").and_then(|p| p.strip_suffix(".jsonl"))
        {
            // The bulk result file (a signed storage URL at Shopify).
            return match self.bulk.as_ref().filter(|b| b.id.to_string() == id && b.done(now)) {
                Some(b) => HttpResponse {
                    status: 200,
                    headers: vec![("content-type".into(), "application/jsonl".into())],
                    body: b.lines.iter().map(|l| format!("{l}\n")).collect::<String>().into_bytes(),
                },
                None => HttpResponse::json(404, &json!({"error": "no such bulk result"})),
            };
        }
        if req.method == Method::Get
            && let Some(n) = path.strip_prefix("/_fake/images/variant-").and_then(|p| p.strip_suffix(".svg"))
        {
            let pic = n
                .parse::<u64>()
                .ok()
                .and_then(|n| self.variants.get(&n))
                .and_then(|v| crate::demo::demo_picture_svg(&v.sku));
            return match pic {
                Some(svg) => HttpResponse {
                    status: 200,
                    headers: vec![("content-type".into(), "image/svg+xml".into())],
                    body: svg.into_bytes(),
                },
                None => HttpResponse::json(404, &json!({"error": "no such image"})),
            };
        }
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        match (req.method, path) {
            (Method::Post, "/_fake/shop") => {
                // Switches: {"dev_store": bool, "throttle_429": bool, "drain_bucket": true}.
                if let Some(b) = body.get("dev_store").and_then(Value::as_bool) {
                    self.cfg.dev_store = b;
                }
                if let Some(b) = body.get("throttle_429").and_then(Value::as_bool) {
                    self.cfg.throttle_429 = b;
                }
                if body.get("drain_bucket").and_then(Value::as_bool) == Some(true) {
                    self.drain_bucket(now);
                }
                let (avail, max) = self.bucket(now);
                return HttpResponse::json(
                    200,
                    &json!({"dev_store": self.cfg.dev_store, "throttle_429": self.cfg.throttle_429,
                                                        "available": avail, "maximum": max, "restore_rate": self.bucket.restore}),
                );
            }
            (Method::Post, "/_fake/stock") => {
                // A level set in Shopify's admin: {"sku": "…", "available": n}.
                let sku = body.get("sku").and_then(Value::as_str);
                let n = sku.and_then(|s| self.variants.iter().find(|(_, v)| v.sku == s).map(|(n, _)| *n));
                return match (n, body.get("available").and_then(Value::as_i64)) {
                    (Some(n), Some(q)) => {
                        self.set_available(n, q);
                        HttpResponse::json(200, &body)
                    }
                    _ => HttpResponse::json(400, &json!({"error": "give the sku of a variant and available"})),
                };
            }
            (Method::Post, "/_fake/price") => {
                let sku = body.get("sku").and_then(Value::as_str);
                let n = sku.and_then(|s| self.variants.iter().find(|(_, v)| v.sku == s).map(|(n, _)| *n));
                let price =
                    body.get("price").and_then(Value::as_str).and_then(|p| super::parse_decimal(p, self.cfg.currency));
                return match (n, price) {
                    (Some(n), Some(p)) if p >= 0 => {
                        self.set_price(n, p, now);
                        HttpResponse::json(200, &body)
                    }
                    _ => HttpResponse::json(
                        400,
                        &json!({"error": "give the sku of a variant and a price like \"2.50\""}),
                    ),
                };
            }
            _ => {}
        }
        let (orders, refunds, adjustments, stats) = (&self.orders, &self.refunds, &self.adjustments, &self.stats);
        crate::cloud::fake::fake_surface(&mut self.faults, req, path, || {
            json!({"orders": orders.values().collect::<Vec<_>>(), "refunds": refunds,
                   "adjustments": adjustments, "stats": stats})
        })
        .unwrap_or_else(|| HttpResponse::json(404, &json!({"error": "no such fake endpoint"})))
    }
}

/// A connection over `(number, node)` pairs in order: `first` / `after` (cursor = the
/// number), `pageInfo`, `nodes` and `edges`.
fn connection(f: &Sel, list: Vec<(u64, Value)>) -> Result<Value, Value> {
    let first = f.arg("first").and_then(Value::as_u64);
    let Some(first) = first.filter(|n| (1..=250).contains(n)) else {
        return Err(gql_error(&format!("{}: give first between 1 and 250", f.name), "argumentLiteralsIncompatible"));
    };
    let after = match f.arg("after").and_then(Value::as_str) {
        None => 0,
        Some(c) => c
            .strip_prefix("c")
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| gql_error(&format!("Invalid cursor for {}: {c}", f.name), "BAD_REQUEST"))?,
    };
    let rest: Vec<(u64, Value)> = list.into_iter().filter(|(n, _)| *n > after).collect();
    let more = rest.len() > first as usize;
    let page: Vec<(u64, Value)> = rest.into_iter().take(first as usize).collect();
    let end = page.last().map(|(n, _)| format!("c{n}"));
    Ok(json!({
        "nodes": page.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(),
        "edges": page.iter().map(|(n, v)| json!({"cursor": format!("c{n}"), "node": v})).collect::<Vec<_>>(),
        "pageInfo": {"hasNextPage": more, "endCursor": end, "hasPreviousPage": after > 0, "startCursor": page.first().map(|(n, _)| format!("c{n}"))},
    }))
}

/// The `orders` searches the fake understands.
struct OrderFilter {
    source: Option<String>,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
}

impl OrderFilter {
    fn matches(&self, o: &FakeOrder) -> bool {
        self.source.as_ref().is_none_or(|s| o.source_identifier == *s)
            && self.from.is_none_or(|t| o.processed_at >= t)
            && self.to.is_none_or(|t| o.processed_at < t)
    }
}

fn unquote(v: &str) -> &str {
    v.trim_matches('\'').trim_matches('"')
}

fn order_filter(q: &str) -> Result<OrderFilter, String> {
    let mut f = OrderFilter { source: None, from: None, to: None };
    for term in q.split_whitespace() {
        let time = |v: &str| unquote(v).parse::<Timestamp>().map_err(|e| format!("{term}: not a time: {e}"));
        if let Some(v) = term.strip_prefix("source_identifier:") {
            f.source = Some(unquote(v).to_string());
        } else if let Some(v) = term.strip_prefix("processed_at:>=") {
            f.from = Some(time(v)?);
        } else if let Some(v) = term.strip_prefix("processed_at:<") {
            f.to = Some(time(v)?);
        } else if term != "AND" {
            return Err(format!(
                "the fake does not understand the search term {term:?} (it knows source_identifier:, processed_at:>= and processed_at:<)"
            ));
        }
    }
    Ok(f)
}

fn updated_filter(q: &str) -> Result<Timestamp, String> {
    let v = q
        .trim()
        .strip_prefix("updated_at:>")
        .ok_or_else(|| format!("the fake does not understand the search {q:?} (it knows updated_at:>'…')"))?;
    unquote(v).parse::<Timestamp>().map_err(|e| format!("{q}: not a time: {e}"))
}
