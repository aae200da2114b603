//! Mappings and routing: how the store's own names (store, tender kinds, tax rates, SKUs)
//! become the ids Lightspeed and NetSuite know, and which remote receives what.
//!
//! Declared in the config (`[mappings.lightspeed]`, `[mappings.netsuite]`, `[routing]`) and
//! checked by `edged check-config`. A record whose mapping is missing is not sent: it
//! becomes a dead letter whose reason names the missing key (e.g.
//! `mappings.lightspeed.tenders.card`), and a replay after the key is added delivers it once.
//!
//! Item identity: Lightspeed needs its `itemID`; it comes from `mappings.lightspeed.items`
//! (SKU → itemID) or, failing that, from what the Item pull learned (the item whose
//! `customSku` is the SKU; kept in the store's meta under [`ls_item_key`]). NetSuite takes
//! a reference by external id, so with `items = "externalId"` (the default) the SKU is the
//! item's external id; a table maps SKUs to internal ids instead.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Tender kinds a mapping names.
pub const TENDER_KINDS: [&str; 2] = ["cash", "card"];

/// `[mappings.lightspeed]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LightspeedMap {
    pub account_id: u64,
    pub shop_id: u64,
    pub register_id: u64,
    pub employee_id: u64,
    /// The walk-in customer; absent = sales without a customer (Lightspeed allows that).
    #[serde(default)]
    pub customer_id: Option<u64>,
    /// `referenceNumberSource` of every sale we post.
    #[serde(default = "default_source")]
    pub reference_source: String,
    /// Tender kind (`cash`, `card`) → `paymentTypeID`.
    #[serde(default)]
    pub tenders: BTreeMap<String, u64>,
    /// SKU → `itemID`, ahead of what the Item pull learned.
    #[serde(default)]
    pub items: BTreeMap<String, u64>,
    /// Cost rules of the account's bucket: `current` (2026-03) or `legacy`.
    #[serde(default = "default_rules")]
    pub rate_rules: String,
    /// Registers on the subscription (the bucket's size and drip grow with them).
    #[serde(default = "one")]
    pub registers: u32,
    /// The OAuth token endpoint (Lightspeed's is `https://cloud.lightspeedapp.com/auth/oauth/token`,
    /// on another host than the API); absent = `/auth/oauth/token` on the remote's URL.
    #[serde(default)]
    pub token_url: Option<String>,
    /// Seconds an entry of unknown outcome waits before it is looked up by referenceNumber
    /// (longer than a request can take to reach Lightspeed and be served).
    #[serde(default = "unknown_wait")]
    pub unknown_wait_s: u64,
    /// With `routing.catalog = "lightspeed"`: the `ItemPrice` use type that is the shelf
    /// price.
    #[serde(default = "default_use_type")]
    pub price_use_type: String,
    /// With `routing.catalog = "lightspeed"`: tax class id → tax rate in basis points, for
    /// items Lightspeed has and the store does not yet.
    #[serde(default)]
    pub tax_classes: BTreeMap<String, u32>,
}

fn unknown_wait() -> u64 {
    90
}

fn default_source() -> String {
    "edge".into()
}
fn default_use_type() -> String {
    "Default".into()
}
fn default_rules() -> String {
    "current".into()
}
fn one() -> u32 {
    1
}

/// `[mappings.netsuite]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetSuiteMap {
    /// Account id as NetSuite spells it (`123456`, `123456_SB1`).
    pub account: String,
    pub subsidiary: String,
    pub location: String,
    /// The generic customer of anonymous cash sales (a cash sale needs one).
    pub walk_in_customer: String,
    /// Tender kind → payment method internal id.
    #[serde(default)]
    pub tenders: BTreeMap<String, String>,
    /// Tax rate in basis points (`"1900"`) → tax code internal id (SuiteTax).
    #[serde(default)]
    pub tax_codes: BTreeMap<String, String>,
    /// `"externalId"` (the SKU is the item's external id) or a table SKU → internal id.
    #[serde(default)]
    pub items: NsItems,
    /// Requests at once the account allots this integration (concurrency governance).
    #[serde(default = "five")]
    pub concurrency: u32,
    /// The account stock adjustments are booked to (`inventoryAdjustment.account`).
    #[serde(default)]
    pub adjustment_account: Option<String>,
    /// The price level whose unit price is the shelf price when NetSuite is the catalog
    /// source (`1` = Base Price).
    #[serde(default = "base_price")]
    pub price_level: String,
    /// Tax schedule internal id → tax rate in basis points, for items NetSuite supplies.
    #[serde(default)]
    pub tax_schedules: BTreeMap<String, u32>,
}

fn base_price() -> String {
    "1".into()
}

fn five() -> u32 {
    5
}

/// `[mappings.shopify]`: the shop's ids at Shopify. Variants and inventory items are
/// learned from the variant pull (the variant whose `sku` is the SKU; kept in the store's
/// meta under [`shopify_variant_key`]); the tables pin them ahead of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopifyMap {
    /// The store's location (`gid://shopify/Location/…`): its stock, its orders' fulfilment.
    pub location_id: String,
    /// Tender kind (`cash`, `card`) → the transaction's `gateway`.
    #[serde(default)]
    pub gateways: BTreeMap<String, String>,
    /// Tax rate in basis points (`"1900"`) → the tax line's title (`"MwSt 19 %"`).
    #[serde(default)]
    pub tax_lines: BTreeMap<String, String>,
    /// SKU → `gid://shopify/ProductVariant/…`, ahead of what the pull learned.
    #[serde(default)]
    pub variants: BTreeMap<String, String>,
    /// SKU → `gid://shopify/InventoryItem/…` (stock adjustments), ahead of the pull.
    #[serde(default)]
    pub inventory_items: BTreeMap<String, String>,
    /// A tag on every order we create (with `sourceIdentifier` = the sale id).
    #[serde(default = "default_source")]
    pub tag: String,
    /// Seconds an order of unknown outcome waits before it is looked up by
    /// `sourceIdentifier` (a request on its way must land, and Shopify's search must see it).
    #[serde(default = "unknown_wait")]
    pub unknown_wait_s: u64,
    /// Our adjustment reason → Shopify's inventory reason, over the defaults.
    #[serde(default)]
    pub reasons: BTreeMap<String, String>,
    /// With `routing.catalog = "shopify"`: the tax rate (basis points) of a variant the
    /// store does not have yet (Shopify's variants carry no rate: it is the region's).
    #[serde(default)]
    pub new_item_tax_bp: Option<u32>,
}

/// Shopify's inventory adjustment reasons we may send.
pub const SHOPIFY_REASONS: [&str; 10] = [
    "correction",
    "cycle_count_available",
    "damaged",
    "movement_created",
    "other",
    "promotion",
    "quality_control",
    "received",
    "restock",
    "shrinkage",
];

impl ShopifyMap {
    /// The demo shop of the fake (CONTRACT): location 1, gateways `cash` and `card`, the
    /// demo's two tax rates; variants learned from the pull.
    pub fn demo() -> ShopifyMap {
        ShopifyMap {
            location_id: "gid://shopify/Location/1".into(),
            gateways: BTreeMap::from([("cash".into(), "cash".into()), ("card".into(), "edge-terminal".into())]),
            tax_lines: BTreeMap::from([("1900".into(), "MwSt 19 %".into()), ("700".into(), "MwSt 7 %".into())]),
            variants: BTreeMap::new(),
            inventory_items: BTreeMap::new(),
            tag: default_source(),
            unknown_wait_s: unknown_wait(),
            reasons: BTreeMap::new(),
            new_item_tax_bp: Some(1900),
        }
    }

    /// Shopify's reason for ours.
    pub fn reason(&self, r: crate::domain::AdjustReason) -> String {
        use crate::domain::AdjustReason as R;
        if let Some(x) = self.reasons.get(r.as_str()) {
            return x.clone();
        }
        match r {
            R::Count => "cycle_count_available",
            R::Damaged => "damaged",
            R::Theft => "shrinkage",
            R::Received => "received",
            R::ReturnedToVendor => "other",
            R::Correction => "correction",
        }
        .into()
    }

    /// Problems: (key, what).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !self.location_id.starts_with("gid://shopify/Location/")
            || crate::shopify::gql::gid_number(&self.location_id).is_none()
        {
            out.push(("mappings.shopify.location_id".into(), "must be a location's gid://shopify/Location/N".into()));
        }
        out.extend(tender_problems("mappings.shopify.gateways", self.gateways.keys()));
        for (k, v) in &self.tax_lines {
            if k.parse::<u32>().map_or(true, |bp| bp > 10_000) {
                out.push((
                    format!("mappings.shopify.tax_lines.{k}"),
                    "keys are tax rates in basis points (\"1900\")".into(),
                ));
            }
            if v.trim().is_empty() {
                out.push((format!("mappings.shopify.tax_lines.{k}"), "the tax line's title must not be empty".into()));
            }
        }
        for (sku, v) in &self.variants {
            if !v.starts_with("gid://shopify/ProductVariant/") {
                out.push((
                    format!("mappings.shopify.variants.\"{sku}\""),
                    "must be gid://shopify/ProductVariant/N".into(),
                ));
            }
        }
        for (sku, v) in &self.inventory_items {
            if !v.starts_with("gid://shopify/InventoryItem/") {
                out.push((
                    format!("mappings.shopify.inventory_items.\"{sku}\""),
                    "must be gid://shopify/InventoryItem/N".into(),
                ));
            }
        }
        for (k, v) in &self.reasons {
            if !["count", "damaged", "theft", "received", "returned_to_vendor", "correction"].contains(&k.as_str()) {
                out.push((format!("mappings.shopify.reasons.{k}"), "not one of our adjustment reasons".into()));
            }
            if !SHOPIFY_REASONS.contains(&v.as_str()) {
                out.push((
                    format!("mappings.shopify.reasons.{k}"),
                    format!("{v:?} is not a Shopify inventory reason; known: {}", SHOPIFY_REASONS.join(", ")),
                ));
            }
        }
        if self.tag.is_empty() || self.tag.len() > 40 || self.tag.contains(',') {
            out.push(("mappings.shopify.tag".into(), "must be 1–40 characters without a comma".into()));
        }
        if !(1..=3600).contains(&self.unknown_wait_s) {
            out.push(("mappings.shopify.unknown_wait_s".into(), "must be 1–3600 seconds".into()));
        }
        if self.new_item_tax_bp.is_some_and(|bp| bp > 10_000) {
            out.push(("mappings.shopify.new_item_tax_bp".into(), "a rate in basis points, 0–10000".into()));
        }
        out
    }
}

/// Store meta key of a learned Shopify variant: `VARIANT_GID INVENTORY_ITEM_GID`.
pub fn shopify_variant_key(sku: &str) -> String {
    format!("shopify.variant.{sku}")
}

/// How NetSuite items are named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NsItems {
    /// `"externalId"`.
    Rule(String),
    Table(BTreeMap<String, String>),
}

impl Default for NsItems {
    fn default() -> Self {
        NsItems::Rule("externalId".into())
    }
}

/// `[routing]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Routing {
    /// Remotes that receive sales (default: every remote that is not off).
    #[serde(default)]
    pub sales: Option<Vec<String>>,
    /// Remotes that receive refunds (default: as `sales`).
    #[serde(default)]
    pub refunds: Option<Vec<String>>,
    /// The source of catalog, prices and stock: `cloud`, `lightspeed`, `netsuite`, `shopify`
    /// or `none`.
    #[serde(default = "default_catalog")]
    pub catalog: String,
    /// Integrations outside this daemon that forward records between remotes, as
    /// `"lightspeed->netsuite"` or `"shopify->netsuite"` (a Shopify–NetSuite connector):
    /// used to warn of sales counted twice.
    #[serde(default)]
    pub forwarders: Vec<String>,
    /// Remotes that receive stock adjustments (default: every remote of `sales` that takes
    /// them: the cloud, NetSuite and Shopify; Lightspeed does not).
    #[serde(default)]
    pub adjustments: Option<Vec<String>>,
}

/// Remotes that take stock adjustments from the edge.
pub const TAKES_ADJUSTMENTS: [&str; 3] = ["cloud", "netsuite", "shopify"];

fn default_catalog() -> String {
    "cloud".into()
}

impl Default for Routing {
    fn default() -> Self {
        Routing { sales: None, refunds: None, catalog: default_catalog(), forwarders: Vec::new(), adjustments: None }
    }
}

impl Routing {
    /// Warnings of a route that would count a sale twice: the edge sends it to A and B
    /// while a forwarder also carries A's records to B.
    pub fn double_counts(&self, sale_remotes: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for f in &self.forwarders {
            let Some((from, to)) = f.split_once("->") else { continue };
            let (from, to) = (from.trim(), to.trim());
            if sale_remotes.iter().any(|r| r == from) && sale_remotes.iter().any(|r| r == to) {
                out.push(format!(
                    "routing: sales go to {from} and to {to}, and the forwarder \"{f}\" also carries {from}'s sales to {to}: \
                     every sale would be counted twice at {to}; drop {to} from routing.sales or the forwarder"
                ));
            }
        }
        out
    }

    /// Problems with names (unknown remotes, a malformed forwarder).
    pub fn problems(&self, known: &[&str]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for r in self.adjustments.iter().flatten() {
            if known.contains(&r.as_str()) && !TAKES_ADJUSTMENTS.contains(&r.as_str()) {
                out.push((
                    "routing.adjustments".into(),
                    format!("{r} takes no stock adjustments from the edge; only {}", TAKES_ADJUSTMENTS.join(", ")),
                ));
            }
        }
        for (key, list) in [
            ("routing.sales", &self.sales),
            ("routing.refunds", &self.refunds),
            ("routing.adjustments", &self.adjustments),
        ] {
            for r in list.iter().flatten() {
                if !known.contains(&r.as_str()) {
                    out.push((key.to_string(), format!("unknown remote {r:?}; known: {}", known.join(", "))));
                }
            }
        }
        if self.catalog != "none" && !known.contains(&self.catalog.as_str()) {
            out.push(("routing.catalog".into(), format!("{:?} is not a remote (or \"none\")", self.catalog)));
        }
        for f in &self.forwarders {
            match f.split_once("->") {
                Some((a, b)) if known.contains(&a.trim()) && known.contains(&b.trim()) && a.trim() != b.trim() => {}
                _ => out.push((
                    "routing.forwarders".into(),
                    format!("{f:?} is not \"REMOTE->REMOTE\" with two different known remotes"),
                )),
            }
        }
        out
    }
}

impl LightspeedMap {
    /// The demo account of the fake (CONTRACT), with the first `items` demo SKUs pinned to
    /// the fake's item ids (`SKU-000000n` → n).
    pub fn demo(items: u64) -> LightspeedMap {
        LightspeedMap {
            account_id: 12345,
            shop_id: 1,
            register_id: 1,
            employee_id: 1,
            customer_id: None,
            reference_source: default_source(),
            tenders: BTreeMap::from([("cash".into(), 1), ("card".into(), 2)]),
            items: (0..items).map(|i| (crate::demo::demo_item(i).sku, i + 1)).collect(),
            rate_rules: default_rules(),
            registers: 1,
            token_url: None,
            unknown_wait_s: unknown_wait(),
            price_use_type: default_use_type(),
            tax_classes: BTreeMap::from([("1".into(), 1900), ("2".into(), 700)]),
        }
    }
}

impl NetSuiteMap {
    /// The demo account of the fake (CONTRACT).
    pub fn demo() -> NetSuiteMap {
        NetSuiteMap {
            account: "123456".into(),
            subsidiary: "1".into(),
            location: "1".into(),
            walk_in_customer: "107".into(),
            tenders: BTreeMap::from([("cash".into(), "1".into()), ("card".into(), "5".into())]),
            tax_codes: BTreeMap::new(),
            items: NsItems::default(),
            concurrency: five(),
            adjustment_account: Some("140".into()),
            price_level: base_price(),
            tax_schedules: BTreeMap::from([("1".into(), 1900), ("2".into(), 700)]),
        }
    }
}

/// Store meta key of a learned Lightspeed itemID.
pub fn ls_item_key(sku: &str) -> String {
    format!("lightspeed.item.{sku}")
}

/// The tender kind a mapping names.
pub fn tender_kind(t: &crate::domain::Tender) -> &'static str {
    match t {
        crate::domain::Tender::Cash { .. } => "cash",
        crate::domain::Tender::Card { .. } => "card",
    }
}

/// Problems of a table keyed by tender kind (`PREFIX.KIND`): a kind we do not have, and a
/// kind missing (its sales would wait as dead letters: a warning).
fn tender_problems<'a>(prefix: &str, kinds: impl Iterator<Item = &'a String>) -> Vec<(String, String)> {
    let kinds: Vec<&String> = kinds.collect();
    let mut out = Vec::new();
    for k in &kinds {
        if !TENDER_KINDS.contains(&k.as_str()) {
            out.push((format!("{prefix}.{k}"), "unknown tender kind; known: cash, card".into()));
        }
    }
    for k in TENDER_KINDS {
        if !kinds.iter().any(|x| x.as_str() == k) {
            out.push((format!("{prefix}.{k}"), "missing: sales paid this way will wait as dead letters".into()));
        }
    }
    out
}

/// The reason of a record that cannot go because a mapping key is missing.
pub fn missing(key: &str, what: &str) -> String {
    format!("mapping missing: {key} ({what}); add it to the config, then replay the dead letter")
}

impl LightspeedMap {
    /// Problems: (key, what).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (k, v) in [("account_id", self.account_id), ("shop_id", self.shop_id), ("register_id", self.register_id)] {
            if v == 0 {
                out.push((format!("mappings.lightspeed.{k}"), "must be a Lightspeed id (> 0)".into()));
            }
        }
        if !(1..=3600).contains(&self.unknown_wait_s) {
            out.push(("mappings.lightspeed.unknown_wait_s".into(), "must be 1–3600 seconds".into()));
        }
        if !matches!(self.rate_rules.as_str(), "current" | "legacy") {
            out.push(("mappings.lightspeed.rate_rules".into(), "must be \"current\" or \"legacy\"".into()));
        }
        if self.reference_source.is_empty() || self.reference_source.len() > 255 {
            out.push(("mappings.lightspeed.reference_source".into(), "must be 1–255 characters".into()));
        }
        out.extend(tender_problems("mappings.lightspeed.tenders", self.tenders.keys()));
        out
    }
}

impl NetSuiteMap {
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if crate::netsuite::tba::host_account(&self.account).is_empty()
            || !self.account.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            out.push((
                "mappings.netsuite.account".into(),
                "must be a NetSuite account id like 123456 or 123456_SB1".into(),
            ));
        }
        for (k, v) in [
            ("subsidiary", &self.subsidiary),
            ("location", &self.location),
            ("walk_in_customer", &self.walk_in_customer),
        ] {
            if v.is_empty() {
                out.push((format!("mappings.netsuite.{k}"), "must be an internal id".into()));
            }
        }
        if let NsItems::Rule(r) = &self.items
            && r != "externalId"
        {
            out.push(("mappings.netsuite.items".into(), "must be \"externalId\" or a table SKU → internal id".into()));
        }
        if !(1..=1000).contains(&self.concurrency) {
            out.push(("mappings.netsuite.concurrency".into(), "must be 1–1000".into()));
        }
        out.extend(tender_problems("mappings.netsuite.tenders", self.tenders.keys()));
        if self.adjustment_account.as_deref().is_some_and(str::is_empty) {
            out.push(("mappings.netsuite.adjustment_account".into(), "must be an internal id".into()));
        }
        if self.price_level.is_empty() || !self.price_level.bytes().all(|b| b.is_ascii_digit()) {
            out.push(("mappings.netsuite.price_level".into(), "must be a price level's internal id".into()));
        }
        for (k, bp) in &self.tax_schedules {
            if *bp > 10_000 {
                out.push((format!("mappings.netsuite.tax_schedules.{k}"), "a rate in basis points, 0–10000".into()));
            }
        }
        for k in self.tax_codes.keys() {
            if k.parse::<u32>().is_err() {
                out.push((
                    format!("mappings.netsuite.tax_codes.{k}"),
                    "keys are tax rates in basis points (\"1900\")".into(),
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_through_a_forwarder_is_a_double_count() {
        let r = Routing { forwarders: vec!["lightspeed->netsuite".into()], ..Routing::default() };
        let all = vec!["cloud".to_string(), "lightspeed".into(), "netsuite".into()];
        let w = r.double_counts(&all);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("counted twice at netsuite"), "{w:?}");
        assert!(r.double_counts(&["cloud".into(), "lightspeed".into()]).is_empty());
        let bad = Routing { forwarders: vec!["lightspeed=>x".into()], catalog: "square".into(), ..Routing::default() };
        let p = bad.problems(&["cloud", "lightspeed", "netsuite"]);
        assert_eq!(p.len(), 2, "{p:?}");
    }

    #[test]
    fn missing_tender_mappings_are_named() {
        let m = LightspeedMap { account_id: 1, shop_id: 1, register_id: 1, ..LightspeedMap::default() };
        let keys: Vec<String> = m.problems().into_iter().map(|p| p.0).collect();
        assert!(keys.contains(&"mappings.lightspeed.tenders.card".to_string()), "{keys:?}");
        let n: NetSuiteMap = toml::from_str(
            "account = \"123456_sb1\"\nsubsidiary = \"1\"\nlocation = \"2\"\nwalk_in_customer = \"3\"\n\
             items = { \"SKU-1\" = \"501\" }\n[tenders]\ncash = \"1\"\ncard = \"2\"\n",
        )
        .expect("parses");
        assert!(n.problems().is_empty(), "{:?}", n.problems());
        assert!(matches!(n.items, NsItems::Table(_)));
    }
}
