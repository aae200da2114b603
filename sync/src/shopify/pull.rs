//! Reads from Shopify outside the delivery worker, through the shop's shared pacer:
//!
//! - **Variants** (always: the SKU ↔ variant and inventory item identity the connector
//!   needs): a full read by a bulk operation (`bulkOperationRunQuery` over
//!   `productVariants`, polled with `currentBulkOperation`, its JSONL read from the
//!   operation's `url`), as large catalogs must be (pagination stops at 25,000 objects);
//!   between full reads, the variants changed since the newest `updatedAt` seen, by cursor.
//!   When Shopify is the catalog's source, prices, names, barcodes and images go into the
//!   catalog too.
//! - **Levels** (when Shopify is the catalog's source): the location's `available`
//!   quantities by cursor, rebased by the same rule as the other sources (`crate::stock`):
//!   a record Shopify confirmed before the read began is in the level. Shopify's ids are
//!   not one sequence, so the marker is the time the read began and a record's number is
//!   the time its confirmation reached us (see [`super::remote_id`]).
//!
//! The orders of a business day for the reconciliation report are read here too.

use super::connector::Shop;
use super::gql::{self, Answer};
use crate::domain::{Item, ItemKind, Remote};
use crate::mapping::ShopifyMap;
use crate::store::Store;
use crate::wire::{HttpRequest, Method};
use jiff::Timestamp;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub const VARIANTS_PAGE: &str = "query Variants($after: String, $q: String) { \
productVariants(first: 100, after: $after, query: $q) { nodes { id sku barcode price displayName updatedAt image { url } inventoryItem { id } } \
pageInfo { hasNextPage endCursor } } }";

pub const BULK_VARIANTS: &str = "{ productVariants { edges { node { id sku barcode price displayName updatedAt image { url } inventoryItem { id } } } } }";

pub const BULK_RUN: &str = "mutation BulkRun($q: String!) { bulkOperationRunQuery(query: $q) { \
bulkOperation { id status } userErrors { field message code } } }";

pub const BULK_POLL: &str = "query { currentBulkOperation { id status errorCode objectCount url } }";

pub const LEVELS_PAGE: &str = "query Levels($loc: ID!, $after: String) { location(id: $loc) { \
inventoryLevels(first: 100, after: $after) { nodes { item { id sku } quantities(names: [\"available\"]) { name quantity } } \
pageInfo { hasNextPage endCursor } } } }";

pub const ORDERS_PAGE: &str = "query Orders($q: String!, $after: String) { orders(first: 100, after: $after, query: $q) { \
nodes { id name sourceIdentifier processedAt tags totalPriceSet { shopMoney { amount currencyCode } } } \
pageInfo { hasNextPage endCursor } } }";

/// Store meta: the newest variant `updatedAt` read.
const META_UPDATED: &str = "shopify.variants.updated_at";

/// What a round read.
#[derive(Debug, Default, Clone, Copy)]
pub struct Round {
    pub variants: usize,
    pub items_changed: usize,
    pub skipped: usize,
    pub levels: usize,
    pub bulk: bool,
}

/// One of the shop's orders, as the report reads it.
#[derive(Debug, Clone)]
pub struct ShopOrder {
    pub id: String,
    pub name: String,
    pub source_identifier: Option<String>,
    pub processed_at: Option<Timestamp>,
    pub total_minor: Option<i64>,
    pub tags: Vec<String>,
}

pub struct ShopifyPull {
    client: reqwest::Client,
    base: String,
    token: String,
    shop: Arc<Shop>,
    map: ShopifyMap,
    timeout: Duration,
    /// Shopify is the catalog's source: items and levels too, in this currency.
    catalog: Option<crate::money::Currency>,
}

impl ShopifyPull {
    pub fn new(
        client: reqwest::Client,
        base: &str,
        token: &str,
        shop: Arc<Shop>,
        map: ShopifyMap,
        timeout: Duration,
    ) -> ShopifyPull {
        ShopifyPull {
            client,
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            shop,
            map,
            timeout,
            catalog: None,
        }
    }

    pub fn with_catalog(mut self, currency: crate::money::Currency) -> ShopifyPull {
        self.catalog = Some(currency);
        self
    }

    /// One GraphQL request, paced by the shop's bucket; a throttle waits and tries again.
    pub async fn post(&self, query: &str, variables: Value) -> Result<Value, String> {
        let body = gql::body(query, variables);
        let cost = self.shop.cost_of(&body);
        for _ in 0..20 {
            loop {
                let now = Timestamp::now().as_millisecond();
                match self.shop.reserve(cost, now) {
                    Ok(()) => break,
                    Err(at) => tokio::time::sleep(Duration::from_millis((at - now).clamp(1, 60_000) as u64)).await,
                }
            }
            let req = HttpRequest {
                method: Method::Post,
                path: super::graphql_path(),
                headers: vec![
                    ("Content-Type".into(), "application/json".into()),
                    ("X-Shopify-Access-Token".into(), self.token.clone()),
                ],
                body: body.clone(),
            };
            let r = crate::engine::run::exchange(&self.client, &self.base, &req, self.timeout)
                .await
                .map_err(|e| format!("Shopify: {e}"))?;
            self.shop.observe(&r.body, Timestamp::now().as_millisecond());
            let a = Answer::read(&r.body).map_err(|e| format!("{e} (HTTP {})", r.status))?;
            if a.throttled() {
                continue;
            }
            if r.status != 200 || !a.errors.is_empty() {
                return Err(format!("Shopify answered {}: {}", r.status, a.error_text()));
            }
            return Ok(a.data);
        }
        Err("Shopify throttled the pull twenty times in a row".into())
    }

    /// Pages of a connection at `pointer` in the answer (`/productVariants`).
    async fn pages(&self, query: &str, mut vars: Value, pointer: &str) -> Result<Vec<Value>, String> {
        let mut out = Vec::new();
        loop {
            let data = self.post(query, vars.clone()).await?;
            let conn = data.pointer(pointer).ok_or_else(|| format!("Shopify's answer has no {pointer}"))?;
            out.extend(conn.get("nodes").and_then(Value::as_array).cloned().unwrap_or_default());
            let more = conn.pointer("/pageInfo/hasNextPage").and_then(Value::as_bool) == Some(true);
            match conn.pointer("/pageInfo/endCursor").and_then(Value::as_str) {
                Some(c) if more => vars["after"] = json!(c),
                _ => return Ok(out),
            }
        }
    }

    /// Every variant, by a bulk operation.
    pub async fn bulk_variants(&self) -> Result<Vec<Value>, String> {
        let mut tries = 0;
        loop {
            let data = self.post(BULK_RUN, json!({"q": BULK_VARIANTS})).await?;
            let errs = gql::user_errors(data.get("bulkOperationRunQuery").unwrap_or(&Value::Null));
            if errs.is_empty() {
                break;
            }
            // One bulk query at a time per app and shop: one we started before a restart
            // may still run. Wait for it to end, then start ours.
            tries += 1;
            if tries > 60 || !errs.iter().any(|e| e.contains("already in progress")) {
                return Err(format!("Shopify refused the bulk read: {}", errs.join("; ")));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let started = std::time::Instant::now();
        let url = loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let d = self.post(BULK_POLL, json!({})).await?;
            let op = d.get("currentBulkOperation").cloned().unwrap_or(Value::Null);
            match op.get("status").and_then(Value::as_str) {
                Some("COMPLETED") => match op.get("url").and_then(Value::as_str) {
                    Some(u) => break u.to_string(),
                    // An empty result has no file.
                    None => return Ok(Vec::new()),
                },
                Some("CREATED" | "RUNNING") if started.elapsed() < Duration::from_secs(1800) => {}
                Some(s) => {
                    return Err(format!(
                        "Shopify's bulk read ended {s} ({})",
                        op.get("errorCode").and_then(Value::as_str).unwrap_or("no error code")
                    ));
                }
                None => return Err("Shopify has no current bulk operation".into()),
            }
        };
        // The result file is on storage of its own (a signed URL): no token goes there.
        let resp = self
            .client
            .get(&url)
            .timeout(self.timeout.max(Duration::from_secs(60)))
            .send()
            .await
            .map_err(|e| format!("bulk result: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("bulk result: HTTP {}", resp.status()));
        }
        let text = resp.text().await.map_err(|e| format!("bulk result: {e}"))?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("bulk result line {}: {e}", i + 1)))
            .collect()
    }

    /// The local item a variant makes when Shopify is the catalog's source.
    fn item_of(&self, v: &Value, sku: &str, local: Option<&Item>) -> Result<Item, String> {
        let currency = self.catalog.ok_or("not the catalog's source")?;
        let price = v
            .get("price")
            .and_then(Value::as_str)
            .and_then(|p| super::parse_decimal(p, currency))
            .ok_or_else(|| format!("variant {sku} has no price in {}", currency.as_str()))?;
        let Some(rate) = local.map(|l| l.tax_rate_bp).or(self.map.new_item_tax_bp) else {
            return Err(crate::mapping::missing(
                "mappings.shopify.new_item_tax_bp",
                "Shopify has a variant the store does not, and no tax rate for it",
            ));
        };
        let name = v.get("displayName").and_then(Value::as_str).unwrap_or(sku);
        let mut barcodes: Vec<String> = local.map(|l| l.barcodes.clone()).unwrap_or_default();
        if let Some(b) = v
            .get("barcode")
            .and_then(Value::as_str)
            .filter(|b| !b.is_empty() && b.len() <= 64 && b.chars().all(|c| c.is_ascii_alphanumeric()))
            && !barcodes.iter().any(|x| x == b)
        {
            barcodes.insert(0, b.to_string());
        }
        let image = v
            .pointer("/image/url")
            .and_then(Value::as_str)
            .filter(|u| crate::domain::valid_image_url(u))
            .map(str::to_string)
            .or_else(|| local.and_then(|l| l.image.clone()));
        Ok(Item {
            sku: sku.to_string(),
            name: name.chars().take(200).collect(),
            price_minor: price,
            currency,
            tax_rate_bp: rate,
            kind: local.map_or(ItemKind::Unit, |l| l.kind),
            barcodes,
            category: local.map(|l| l.category.clone()).unwrap_or_default(),
            age_restricted: local.is_some_and(|l| l.age_restricted),
            image,
        })
    }

    /// One round: variants (`full`: every one, by a bulk read), then, when Shopify is the
    /// catalog's source, the location's levels.
    pub async fn round(&self, store: &Arc<dyn Store>, full: bool) -> Result<Round, String> {
        let mut out = Round { bulk: full, ..Round::default() };
        let since =
            store.meta_get(META_UPDATED).map_err(|e| e.to_string())?.map(|b| String::from_utf8_lossy(&b).into_owned());
        let variants = if full || since.is_none() {
            out.bulk = true;
            self.bulk_variants().await?
        } else {
            let q = since.as_ref().map(|s| format!("updated_at:>'{s}'"));
            self.pages(VARIANTS_PAGE, json!({"after": null, "q": q}), "/productVariants").await?
        };
        let mut newest: Option<Timestamp> = since.as_deref().and_then(|s| s.parse().ok());
        let mut changed = Vec::new();
        for v in &variants {
            let Some(sku) = v.get("sku").and_then(Value::as_str).filter(|s| !s.is_empty()) else { continue };
            let (Some(vid), Some(iid)) =
                (v.get("id").and_then(Value::as_str), v.pointer("/inventoryItem/id").and_then(Value::as_str))
            else {
                continue;
            };
            out.variants += 1;
            let learned = format!("{vid} {iid}");
            let key = crate::mapping::shopify_variant_key(sku);
            if store.meta_get(&key).map_err(|e| e.to_string())?.as_deref() != Some(learned.as_bytes()) {
                store.meta_set(&key, learned.as_bytes()).map_err(|e| e.to_string())?;
            }
            if let Some(t) = v.get("updatedAt").and_then(Value::as_str).and_then(|t| t.parse::<Timestamp>().ok()) {
                newest = Some(newest.map_or(t, |n| n.max(t)));
            }
            if self.catalog.is_some() {
                let local = store.item(sku).map_err(|e| e.to_string())?;
                match self.item_of(v, sku, local.as_ref()) {
                    Ok(item) if local.as_ref() != Some(&item) => changed.push(item),
                    Ok(_) => {}
                    Err(why) => {
                        tracing::warn!(remote = "shopify", %sku, %why, "pulled variant skipped");
                        out.skipped += 1;
                    }
                }
            }
        }
        out.items_changed = changed.len();
        for chunk in changed.chunks(500) {
            store.put_items(chunk).map_err(|e| e.to_string())?;
        }
        if let Some(n) = newest {
            store.meta_set(META_UPDATED, n.to_string().as_bytes()).map_err(|e| e.to_string())?;
        }
        if out.bulk {
            self.shop.variants_learned();
        }
        if self.catalog.is_some() {
            // Records confirmed before this instant are in the levels read after it.
            let through = u64::try_from(Timestamp::now().as_millisecond()).unwrap_or(0);
            let read_at = Timestamp::now();
            let rows = self
                .pages(LEVELS_PAGE, json!({"loc": self.map.location_id, "after": null}), "/location/inventoryLevels")
                .await?;
            let levels = levels_in(&rows, read_at);
            out.levels = levels.len();
            let number = |rid: &str| super::confirmation_number(rid);
            for chunk in levels.chunks(500) {
                store.rebase_stock(Remote::Shopify, chunk, through, &number).map_err(|e| e.to_string())?;
            }
            store.settle_stock(Remote::Shopify, &number).map_err(|e| e.to_string())?;
        }
        Ok(out)
    }

    /// The shop's orders processed in `[from, to)` (the report's business day).
    pub async fn orders_between(&self, from: Timestamp, to: Timestamp) -> Result<Vec<ShopOrder>, String> {
        let q = format!("processed_at:>='{from}' processed_at:<'{to}'");
        let rows = self.pages(ORDERS_PAGE, json!({"q": q, "after": null}), "/orders").await?;
        Ok(rows
            .iter()
            .filter_map(|o| {
                Some(ShopOrder {
                    id: o.get("id")?.as_str()?.to_string(),
                    name: o.get("name").and_then(Value::as_str).unwrap_or_default().to_string(),
                    source_identifier: o.get("sourceIdentifier").and_then(Value::as_str).map(str::to_string),
                    processed_at: o.get("processedAt").and_then(Value::as_str).and_then(|t| t.parse().ok()),
                    // In the currency the answer names (the shop's).
                    total_minor: o
                        .pointer("/totalPriceSet/shopMoney/amount")
                        .and_then(Value::as_str)
                        .zip(
                            o.pointer("/totalPriceSet/shopMoney/currencyCode")
                                .and_then(Value::as_str)
                                .and_then(|c| crate::money::Currency::parse(c).ok()),
                        )
                        .and_then(|(a, c)| super::parse_decimal(a, c)),
                    tags: o
                        .get("tags")
                        .and_then(Value::as_array)
                        .map(|t| t.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                        .unwrap_or_default(),
                })
            })
            .collect())
    }
}

/// (SKU, available, read at) of inventory level rows.
pub fn levels_in(rows: &[Value], at: Timestamp) -> Vec<(String, i64, Timestamp)> {
    let mut by_sku: BTreeMap<String, i64> = BTreeMap::new();
    for r in rows {
        let Some(sku) = r.pointer("/item/sku").and_then(Value::as_str).filter(|s| !s.is_empty()) else { continue };
        let q = r
            .get("quantities")
            .and_then(Value::as_array)
            .and_then(|qs| qs.iter().find(|q| q.get("name").and_then(Value::as_str) == Some("available")))
            .and_then(|q| q.get("quantity").and_then(Value::as_i64));
        if let Some(q) = q {
            by_sku.insert(sku.to_string(), q);
        }
    }
    by_sku.into_iter().map(|(s, q)| (s, q, at)).collect()
}
