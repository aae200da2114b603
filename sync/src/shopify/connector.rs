//! The Shopify connector edged ships: sales, refunds and stock adjustments exactly once
//! under the shop's cost bucket. Sans-I/O (see `engine`): it builds requests and reads
//! replies.
//!
//! - **Sales** are `orderCreate` with `sourceIdentifier` = the edge sale id and the
//!   mapping's tag, lines by variant with their tax lines, the transactions with gateway,
//!   amount and auth code, fulfilled at the mapped location. `inventoryBehaviour` is
//!   `DECREMENT_IGNORING_POLICY` when Shopify keeps the stock (`routing.catalog =
//!   "shopify"`: the sale happened, whatever the shop's oversell policy) and `BYPASS`
//!   otherwise. **orderCreate takes no idempotency key**: an entry whose outcome is unknown
//!   waits `unknown_wait_s`, is looked up by `source_identifier`, and is posted again only
//!   if absent.
//! - **Refunds** are `refundCreate @idempotent(key: <refund id>)` against the order of the
//!   sale they refund, read first (its line items by SKU); a retry with the same key
//!   returns the first result.
//! - **Stock adjustments** are `inventoryAdjustQuantities @idempotent(key: <adjustment
//!   id>)` on `available` at the location, `changeFromQuantity` explicitly `null`: the edge
//!   sends deltas, which commute with the sales around them, so no compare is meant. A
//!   compare ([`adjust_body`] with `Some`) that went stale comes back as a dead letter
//!   naming `changeFromQuantity`.
//! - **Pacing**: every request's requested cost is reckoned by Shopify's rules and held
//!   until the shop's [`Shop`] pacer (shared with the pulls) has room; "Throttled", with
//!   HTTP 200 or 429, puts the record back untouched and the pacer believes the answer's
//!   `throttleStatus`.
//! - **userErrors** become dead letters whose reason names the field
//!   (`order.lineItems.0.variantId: …`); a missing mapping (variant, gateway, tax line)
//!   names its config key, and a replay after it is added delivers once.

use super::gql::{self, Answer};
use super::throttle::Pacer;
use crate::domain::{OutboxEntry, OutboxState, Quantity, Record, Sale, SaleKind, StockAdjustment, TaxMode, Tender};
use crate::engine::{Connector, RecordResult, Verdict};
use crate::mapping::{ShopifyMap, missing, tender_kind};
use crate::wire::{HttpRequest, HttpResponse, Method};
use jiff::Timestamp;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

pub const ORDER_CREATE: &str = "mutation OrderCreate($order: OrderCreateOrderInput!, $options: OrderCreateOptionsInput) { \
orderCreate(order: $order, options: $options) { order { id name sourceIdentifier processedAt } userErrors { field message code } } }";

pub const ORDER_LOOKUP: &str = "query OrderBySource($q: String!) { \
orders(first: 5, query: $q) { nodes { id name sourceIdentifier } } }";

pub const ORDER_FOR_REFUND: &str = "query OrderForRefund($q: String!) { \
orders(first: 1, query: $q) { nodes { id sourceIdentifier lineItems(first: 100) { nodes { id sku quantity } } } } }";

pub const REFUND_CREATE: &str = "mutation RefundCreate($input: RefundInput!, $key: String!) { \
refundCreate(input: $input) @idempotent(key: $key) { refund { id } userErrors { field message code } } }";

pub const INVENTORY_ADJUST: &str = "mutation InventoryAdjust($input: InventoryAdjustQuantitiesInput!, $key: String!) { \
inventoryAdjustQuantities(input: $input) @idempotent(key: $key) { inventoryAdjustmentGroup { id } userErrors { field message code } } }";

/// The `orders` search that finds our order for a sale.
pub fn source_query(sale: &Uuid) -> String {
    format!("source_identifier:'{sale}'")
}

/// A shop's shared state: its cost pacer (delivery and pulls), whether the variant pull
/// has read every variant once.
#[derive(Default)]
pub struct Shop {
    state: Mutex<ShopState>,
}

#[derive(Default)]
struct ShopState {
    pacer: Pacer,
    variants_known: bool,
    costs: BTreeMap<String, u32>,
    throttled: u64,
}

impl Shop {
    pub fn new() -> Arc<Shop> {
        Arc::new(Shop::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ShopState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The requested cost of a request body by Shopify's rules (cached per document).
    pub fn cost_of(&self, body: &[u8]) -> u32 {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let Some(q) = v.get("query").and_then(Value::as_str) else { return 0 };
        if let Some(c) = self.lock().costs.get(q) {
            return *c;
        }
        let vars = v.get("variables").and_then(Value::as_object).cloned().unwrap_or_default();
        let c = gql::parse(q, &vars).map(|op| gql::requested_cost(&op)).unwrap_or(0);
        self.lock().costs.insert(q.to_string(), c);
        c
    }

    /// Spends `cost` now, or says when the bucket will have room.
    pub fn reserve(&self, cost: u32, now_ms: i64) -> Result<(), i64> {
        self.lock().pacer.reserve(f64::from(cost), now_ms)
    }

    /// An answer's body: its `extensions.cost`, or a throttle without one.
    pub fn observe(&self, body: &[u8], now_ms: i64) {
        let Ok(a) = Answer::read(body) else { return };
        let mut s = self.lock();
        if let Some(c) = &a.cost {
            s.pacer.observe(c, now_ms);
        }
        if a.throttled() {
            s.pacer.throttled(now_ms, a.cost.is_some());
            s.throttled += 1;
        }
    }

    /// Throttled answers seen (should stay 0: the pacer's job).
    pub fn throttled(&self) -> u64 {
        self.lock().throttled
    }

    pub fn variants_learned(&self) {
        self.lock().variants_known = true;
    }

    pub fn variants_known(&self) -> bool {
        self.lock().variants_known
    }

    /// (available, maximum, restore rate) as reckoned now.
    pub fn bucket(&self, now_ms: i64) -> (f64, f64, f64) {
        self.lock().pacer.status(now_ms)
    }
}

/// Resolves a SKU to (variant gid, inventory item gid) as the pull learned them.
pub type VariantResolver = Arc<dyn Fn(&str) -> Option<(String, String)> + Send + Sync>;

/// An order's line items as `refundCreate` needs them.
#[derive(Debug, Clone)]
struct OrderLines {
    id: String,
    /// (line item gid, SKU, quantity).
    lines: Vec<(String, String, i64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Lookup,
    Create,
    /// The order of the sale a refund refunds.
    Original(Uuid),
    Refund,
    Adjust,
}

/// The Shopify delivery connector.
pub struct ShopifyConnector {
    map: ShopifyMap,
    shop: Arc<Shop>,
    token: String,
    variants: VariantResolver,
    /// Shopify keeps the stock (`routing.catalog = "shopify"`): sales decrement it, refunds
    /// restock it.
    keeps_stock: bool,
    quarantine_ms: i64,
    sent: BTreeMap<Uuid, Sent>,
    originals: BTreeMap<Uuid, OrderLines>,
    learn_variants: bool,
}

impl ShopifyConnector {
    pub fn new(map: ShopifyMap, shop: Arc<Shop>, token: &str, variants: VariantResolver, keeps_stock: bool) -> Self {
        ShopifyConnector {
            quarantine_ms: i64::try_from(map.unknown_wait_s.saturating_mul(1000)).unwrap_or(i64::MAX),
            map,
            shop,
            token: token.to_string(),
            variants,
            keeps_stock,
            sent: BTreeMap::new(),
            originals: BTreeMap::new(),
            learn_variants: false,
        }
    }

    /// Variants come from the pull: hold records until it has read every variant once.
    pub fn learning_variants(mut self) -> Self {
        self.learn_variants = true;
        self
    }

    fn variant(&self, sku: &str) -> Option<(Option<String>, Option<String>)> {
        let learned = (self.variants)(sku);
        let v = self.map.variants.get(sku).cloned().or_else(|| learned.as_ref().map(|l| l.0.clone()));
        let i = self.map.inventory_items.get(sku).cloned().or_else(|| learned.map(|l| l.1));
        (v.is_some() || i.is_some()).then_some((v, i))
    }

    fn request(&self, query: &str, variables: Value) -> HttpRequest {
        HttpRequest {
            method: Method::Post,
            path: super::graphql_path(),
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("Accept".into(), "application/json".into()),
                ("X-Shopify-Access-Token".into(), self.token.clone()),
            ],
            body: gql::body(query, variables),
        }
    }

    fn money(&self, minor: i64, s: &Sale) -> Value {
        json!({"shopMoney": {"amount": super::decimal(minor, s.currency), "currencyCode": s.currency.as_str()}})
    }

    /// The `orderCreate` variables of a sale, or the missing mapping's reason.
    pub fn order_body(&self, s: &Sale) -> Result<Value, String> {
        let mut lines = Vec::new();
        for l in &s.lines {
            let Some((Some(variant), _)) = self.variant(&l.sku) else {
                return Err(missing(
                    &format!("mappings.shopify.variants.\"{}\"", l.sku),
                    "no Shopify variant for this SKU, neither in the config nor learned from the variant pull",
                ));
            };
            let tax_lines = if l.tax_rate_bp == 0 || l.tax_minor == 0 {
                Vec::new()
            } else {
                let Some(title) = self.map.tax_lines.get(&l.tax_rate_bp.to_string()) else {
                    return Err(missing(
                        &format!("mappings.shopify.tax_lines.\"{}\"", l.tax_rate_bp),
                        "no tax line title for this rate",
                    ));
                };
                vec![(title.clone(), l.tax_rate_bp)]
            };
            // Units keep their count; a weighed line is one unit of its price. The line's
            // price is what was charged (tax included when the store's prices include it);
            // a total that does not divide by the count is split over two lines.
            let q: i64 = match l.quantity {
                Quantity::Units(u) if u > 0 => i64::from(u),
                _ => 1,
            };
            let charged = if s.tax_mode == TaxMode::Inclusive { l.gross_minor } else { l.net_minor };
            let (base, rem) = (charged.div_euclid(q), charged.rem_euclid(q));
            let parts: Vec<(i64, i64)> =
                [(rem, base + 1), (q - rem, base)].into_iter().filter(|(n, _)| *n > 0).collect();
            let mut tax_left = l.tax_minor;
            for (i, (n, price)) in parts.iter().enumerate() {
                let tax = if i + 1 == parts.len() { tax_left } else { l.tax_minor * n / q };
                tax_left -= tax;
                let taxes: Vec<Value> = tax_lines
                    .iter()
                    .map(|(title, bp)| {
                        json!({"title": title, "rate": f64::from(*bp) / 10_000.0, "priceSet": self.money(tax, s)})
                    })
                    .collect();
                lines.push(json!({"variantId": variant, "quantity": n, "priceSet": self.money(*price, s),
                                  "taxLines": taxes, "requiresShipping": false}));
            }
        }
        let mut transactions = Vec::new();
        let mut change_left = s.change_minor;
        for t in &s.tenders {
            let kind = tender_kind(t);
            let Some(gateway) = self.map.gateways.get(kind) else {
                return Err(missing(&format!("mappings.shopify.gateways.{kind}"), "no gateway for this tender"));
            };
            // The money kept: cash handed over less the change given back.
            let mut amount = t.amount_minor();
            if matches!(t, Tender::Cash { .. }) {
                let c = change_left.min(amount);
                amount -= c;
                change_left -= c;
            }
            let mut tx = json!({"kind": "SALE", "status": "SUCCESS", "gateway": gateway, "amountSet": self.money(amount, s),
                                "processedAt": s.created_at.to_string(), "locationId": self.map.location_id});
            if let Tender::Card { card: Some(c), .. } = t
                && let Some(code) = &c.auth_code
            {
                tx["authorizationCode"] = json!(code);
            }
            transactions.push(tx);
        }
        let mut tags = vec![json!(self.map.tag)];
        if let Some(lane) = &s.lane {
            tags.push(json!(format!("lane-{lane}")));
        }
        let mut note = format!("edge sale {}", s.id);
        if let Some(r) = &s.receipt_no {
            note = format!("receipt {r} ({note})");
        }
        Ok(json!({
            "order": {
                "sourceIdentifier": s.id.to_string(),
                "sourceName": self.map.tag,
                "tags": tags,
                "note": note,
                "processedAt": s.created_at.to_string(),
                "currency": s.currency.as_str(),
                "taxesIncluded": s.tax_mode == TaxMode::Inclusive,
                "financialStatus": "PAID",
                "fulfillmentStatus": "FULFILLED",
                "fulfillment": {"locationId": self.map.location_id, "notifyCustomer": false},
                "lineItems": lines,
                "transactions": transactions,
            },
            "options": {
                "inventoryBehaviour": if self.keeps_stock { "DECREMENT_IGNORING_POLICY" } else { "BYPASS" },
                "sendReceipt": false,
                "sendFulfillmentReceipt": false,
            }
        }))
    }

    /// The `refundCreate` variables of a refund against its sale's order.
    fn refund_body(&self, r: &Sale, order: &OrderLines) -> Result<Value, String> {
        let mut taken: BTreeMap<String, i64> = BTreeMap::new();
        let mut items = Vec::new();
        for l in &r.lines {
            let want: i64 = match l.quantity {
                Quantity::Units(u) if u > 0 => i64::from(u),
                _ => 1,
            };
            let mut left = want;
            for (id, _, qty) in order.lines.iter().filter(|x| x.1 == l.sku) {
                let used = taken.entry(id.clone()).or_default();
                let n = left.min(qty - *used);
                if n > 0 {
                    *used += n;
                    left -= n;
                    let mut item = json!({"lineItemId": id, "quantity": n,
                        "restockType": if self.keeps_stock { "RETURN" } else { "NO_RESTOCK" }});
                    if self.keeps_stock {
                        item["locationId"] = json!(self.map.location_id);
                    }
                    items.push(item);
                }
            }
            if left > 0 {
                return Err(format!(
                    "refundLineItems: the order {} has no {left} more of {} to refund",
                    order.id, l.sku
                ));
            }
        }
        let mut transactions = Vec::new();
        for t in &r.tenders {
            let kind = tender_kind(t);
            let Some(gateway) = self.map.gateways.get(kind) else {
                return Err(missing(&format!("mappings.shopify.gateways.{kind}"), "no gateway for this tender"));
            };
            transactions.push(json!({"orderId": order.id, "gateway": gateway, "kind": "REFUND",
                                     "amount": super::decimal(t.amount_minor() , r.currency)}));
        }
        let note = match &r.reason {
            Some(why) => format!("edge refund {}: {why}", r.id),
            None => format!("edge refund {}", r.id),
        };
        Ok(json!({"input": {"orderId": order.id, "note": note, "notify": false,
                            "refundLineItems": items, "transactions": transactions},
                  "key": r.id.to_string()}))
    }

    /// The `inventoryAdjustQuantities` variables of an adjustment; `compare` is the
    /// quantity the change is made against (`None`: no compare, sent as explicit null).
    pub fn adjust_body(&self, a: &StockAdjustment, compare: Option<i64>) -> Result<Value, String> {
        if a.by_weight {
            return Err(format!(
                "{}: a weighed item's stock is kept in grams, and Shopify counts whole units; adjust it in Shopify",
                a.sku
            ));
        }
        let Some((_, Some(item))) = self.variant(&a.sku) else {
            return Err(missing(
                &format!("mappings.shopify.inventory_items.\"{}\"", a.sku),
                "no Shopify inventory item for this SKU, neither in the config nor learned from the variant pull",
            ));
        };
        let reason = self.map.reason(a.reason);
        Ok(json!({"input": {
            "reason": reason,
            "name": "available",
            "referenceDocumentUri": format!("gid://edge/StockAdjustment/{}", a.id),
            "changes": [{"delta": a.delta, "inventoryItemId": item, "locationId": self.map.location_id,
                         "changeFromQuantity": compare}],
        }, "key": a.id.to_string()}))
    }

    /// The request for one record.
    fn request_for(&mut self, e: &OutboxEntry, r: &Record) -> Result<(HttpRequest, Sent), String> {
        let unknown = matches!(e.state, OutboxState::Unknown | OutboxState::InFlight { .. });
        match r {
            Record::Sale(s) if s.kind == SaleKind::Sale => {
                if unknown {
                    Ok((self.request(ORDER_LOOKUP, json!({"q": source_query(&s.id)})), Sent::Lookup))
                } else {
                    Ok((self.request(ORDER_CREATE, self.order_body(s)?), Sent::Create))
                }
            }
            Record::Sale(s) => {
                let Some(orig) = s.refund_of else {
                    return Err("refundCreate needs the order refunded: a refund without its sale cannot be \
                                recorded at Shopify"
                        .into());
                };
                match self.originals.get(&orig) {
                    Some(order) => Ok((self.request(REFUND_CREATE, self.refund_body(s, order)?), Sent::Refund)),
                    None => {
                        Ok((self.request(ORDER_FOR_REFUND, json!({"q": source_query(&orig)})), Sent::Original(orig)))
                    }
                }
            }
            Record::Adjustment(a) => Ok((self.request(INVENTORY_ADJUST, self.adjust_body(a, None)?), Sent::Adjust)),
        }
    }

    /// What a GraphQL answer says of one record.
    fn judge(&mut self, sent: Sent, a: &Answer, now: Timestamp) -> RecordResult {
        let confirmed = |gid: &str| RecordResult::Confirmed(super::remote_id(gid, now.as_millisecond()));
        // A mutation's payload: its userErrors (a refusal naming the field), or the id of
        // what it made.
        let made = |field: &str, id: &str, what: &str| {
            let p = a.data.get(field).unwrap_or(&Value::Null);
            let errs = gql::user_errors(p);
            if !errs.is_empty() {
                return RecordResult::Refused(format!("Shopify refused the {what}: {}", errs.join("; ")));
            }
            match p.pointer(id).and_then(Value::as_str) {
                Some(gid) => confirmed(gid),
                None => RecordResult::Retry(format!("Shopify's {field} answer has neither {id} nor userErrors")),
            }
        };
        let nodes = || a.data.pointer("/orders/nodes").and_then(Value::as_array).cloned().unwrap_or_default();
        match sent {
            Sent::Create => made("orderCreate", "/order/id", "order"),
            Sent::Refund => made("refundCreate", "/refund/id", "refund"),
            Sent::Adjust => made("inventoryAdjustQuantities", "/inventoryAdjustmentGroup/id", "stock adjustment"),
            Sent::Lookup => {
                // The oldest of ours (a second copy would be a duplicate the report shows).
                match nodes()
                    .iter()
                    .filter_map(|n| n.get("id").and_then(Value::as_str))
                    .min_by_key(|g| gql::gid_number(g).unwrap_or(u64::MAX))
                {
                    Some(gid) => confirmed(gid),
                    None => RecordResult::Absent("not at Shopify after an unknown outcome: posting it".into()),
                }
            }
            Sent::Original(orig) => {
                let Some(n) = nodes().into_iter().next() else {
                    return RecordResult::Retry(format!("the sale it refunds ({orig}) is not at Shopify yet"));
                };
                let Some(id) = n.get("id").and_then(Value::as_str).map(str::to_string) else {
                    return RecordResult::Retry("Shopify's order has no id".into());
                };
                let lines = n
                    .pointer("/lineItems/nodes")
                    .and_then(Value::as_array)
                    .map(|l| {
                        l.iter()
                            .filter_map(|x| {
                                Some((
                                    x.get("id")?.as_str()?.to_string(),
                                    x.get("sku").and_then(Value::as_str).unwrap_or_default().to_string(),
                                    x.get("quantity")?.as_i64()?,
                                ))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                self.originals.insert(orig, OrderLines { id, lines });
                RecordResult::NotSent(format!("read the order of {orig}"))
            }
        }
    }
}

impl Connector for ShopifyConnector {
    fn max_batch(&self) -> usize {
        1
    }

    fn build(
        &mut self,
        records: &[(OutboxEntry, Record)],
        _now: Timestamp,
    ) -> (Option<HttpRequest>, Vec<(Uuid, String)>) {
        let Some((e, r)) = records.first() else { return (None, Vec::new()) };
        match self.request_for(e, r) {
            Ok((req, sent)) => {
                self.sent.insert(e.id, sent);
                (Some(req), Vec::new())
            }
            Err(why) => (None, vec![(e.id, why)]),
        }
    }

    fn parse(&mut self, ids: &[Uuid], reply: &HttpResponse) -> Result<BTreeMap<Uuid, RecordResult>, String> {
        // Only what `intercept` could not read reaches here: a 2xx that is not GraphQL.
        if let Some(id) = ids.first() {
            self.sent.remove(id);
        }
        Err(format!("Shopify's answer is not GraphQL: {}", reply.body_excerpt(200)))
    }

    fn intercept(&mut self, ids: &[Uuid], reply: &HttpResponse, now: Timestamp) -> Option<Verdict> {
        let id = *ids.first()?;
        let all = |r: RecordResult| Verdict::Results(ids.iter().map(|i| (*i, r.clone())).collect());
        let answer = Answer::read(&reply.body);
        if let Ok(a) = &answer
            && a.throttled()
            && matches!(reply.status, 200 | 429)
        {
            // Nothing was done: back as it was; the pacer read the answer's bucket.
            self.sent.remove(&id);
            return Some(all(RecordResult::NotSent("Shopify throttled the request: waiting for the bucket".into())));
        }
        if reply.status != 200 {
            self.sent.remove(&id);
            return None;
        }
        let a = answer.ok()?;
        let sent = self.sent.remove(&id)?;
        if !a.errors.is_empty() {
            let codes: Vec<&str> = a.errors.iter().filter_map(|e| e.code.as_deref()).collect();
            if codes.contains(&"ACCESS_DENIED") {
                return Some(Verdict::RemoteFailed(format!("Shopify denied access: {}", a.error_text())));
            }
            if codes.contains(&"INTERNAL_SERVER_ERROR") {
                // Shopify failed inside: whether it acted is unknown (the engine keeps the
                // entry unknown: looked up before any re-post).
                return None;
            }
            return Some(all(RecordResult::Refused(format!("Shopify refused the request: {}", a.error_text()))));
        }
        Some(all(self.judge(sent, &a, now)))
    }

    fn not_before(&self, e: &OutboxEntry) -> Option<Timestamp> {
        crate::engine::quarantined_until(e, self.quarantine_ms)
    }

    fn observe(&mut self, reply: &HttpResponse, now: Timestamp) {
        self.shop.observe(&reply.body, now.as_millisecond());
    }

    fn ready_at(&mut self, now: Timestamp) -> Option<Timestamp> {
        if self.learn_variants && !self.shop.variants_known() {
            return Timestamp::from_millisecond(now.as_millisecond() + 1000).ok();
        }
        None
    }

    fn pace(&mut self, request: &HttpRequest, now: Timestamp) -> Option<Timestamp> {
        let cost = self.shop.cost_of(&request.body);
        match self.shop.reserve(cost, now.as_millisecond()) {
            Ok(()) => None,
            Err(at) => Timestamp::from_millisecond(at).ok(),
        }
    }

    fn refusal(&self, reply: &HttpResponse) -> String {
        match Answer::read(&reply.body) {
            Ok(a) if !a.errors.is_empty() => format!("Shopify refused ({}): {}", reply.status, a.error_text()),
            _ => format!("Shopify refused ({}): {}", reply.status, reply.body_excerpt(300)),
        }
    }
}
