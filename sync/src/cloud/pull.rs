//! Pulls from the cloud: catalog, prices, stock and config, each a change feed read by
//! cursor (see `sync/cloud-openapi.yaml`).
//!
//! [`Puller`] is sans-I/O like the push worker: [`Puller::next_request`] says which page to
//! fetch, [`Puller::apply`] checks the page, applies it to the store and moves the feed's
//! cursor (kept in the store's meta, so a restart continues where it stopped). One request
//! at a time, in its own task: pulls never hold back the push worker, and the cloud does not
//! meter GETs against the event bucket.
//!
//! Stock pulls rebase (never overwrite local sales): a level comes with `events_through`,
//! the number of the last event the cloud had applied to stock. A local sale whose cloud
//! entry is confirmed as `evt_<n>` with n ≤ `events_through` is in the level; every other
//! local sale stays subtracted from it. The level keeps its `events_through`, so a sale whose
//! confirmation arrives after the pull that counted it is settled by the next round
//! ([`crate::store::Store::settle_stock`]) rather than subtracted until the SKU next changes.

use super::sign;
use crate::domain::Remote;
use crate::domain::{Item, ItemKind};
use crate::money::Currency;
use crate::store::{Store, StoreError};
use crate::wire::{HttpRequest, HttpResponse, Method};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A picture's path on the cloud: `/` then at most 500 printable ASCII characters.
fn valid_cloud_path(u: &str) -> bool {
    u.starts_with('/') && !u.starts_with("//") && u.len() <= 500 && u.bytes().all(|b| b.is_ascii_graphic())
}

/// Largest page a pull asks for.
pub const PAGE_LIMIT: usize = 500;

/// One item as the cloud sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemDoc {
    pub sku: String,
    pub name: String,
    pub price_minor: i64,
    pub currency: String,
    pub tax_rate_bp: u32,
    /// `unit`, `weight` or `lot`.
    pub kind: String,
    #[serde(default)]
    pub barcodes: Vec<String>,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub age_restricted: bool,
    /// The item's picture: an `http(s)` URL, or a path on the cloud (`/pictures/…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(default)]
    pub seq: u64,
}

impl ItemDoc {
    pub fn of(i: &Item, seq: u64) -> ItemDoc {
        ItemDoc {
            sku: i.sku.clone(),
            name: i.name.clone(),
            price_minor: i.price_minor,
            currency: i.currency.as_str().to_string(),
            tax_rate_bp: i.tax_rate_bp,
            kind: match i.kind {
                ItemKind::Unit => "unit",
                ItemKind::Weight => "weight",
                ItemKind::Lot => "lot",
            }
            .into(),
            barcodes: i.barcodes.clone(),
            category: i.category.clone(),
            age_restricted: i.age_restricted,
            image_url: i.image.clone(),
            seq,
        }
    }

    /// The domain item, or the field that is wrong.
    pub fn to_item(&self) -> Result<Item, String> {
        if self.sku.is_empty() || self.sku.len() > 64 || self.sku.chars().any(char::is_control) {
            return Err(format!("sku {:?}: 1 to 64 printable characters", self.sku));
        }
        if self.name.is_empty() || self.name.len() > 200 {
            return Err(format!("{}: name must have 1 to 200 bytes", self.sku));
        }
        if self.price_minor < 0 {
            return Err(format!("{}: price_minor {} is negative", self.sku, self.price_minor));
        }
        if self.tax_rate_bp > 10_000 {
            return Err(format!("{}: tax_rate_bp {} is over 100 %", self.sku, self.tax_rate_bp));
        }
        let currency = Currency::parse(&self.currency).map_err(|e| format!("{}: currency: {e}", self.sku))?;
        let kind = match self.kind.as_str() {
            "unit" => ItemKind::Unit,
            "weight" => ItemKind::Weight,
            "lot" => ItemKind::Lot,
            other => return Err(format!("{}: kind {other:?} is not unit, weight or lot", self.sku)),
        };
        if let Some(b) =
            self.barcodes.iter().find(|b| b.is_empty() || b.len() > 64 || !b.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return Err(format!("{}: barcode {b:?} is not 1 to 64 letters or digits", self.sku));
        }
        if let Some(u) =
            self.image_url.as_deref().filter(|u| !crate::domain::valid_image_url(u) && !valid_cloud_path(u))
        {
            return Err(format!(
                "{}: image_url {:?} is not an http(s) URL",
                self.sku,
                u.chars().take(80).collect::<String>()
            ));
        }
        Ok(Item {
            sku: self.sku.clone(),
            name: self.name.clone(),
            price_minor: self.price_minor,
            currency,
            tax_rate_bp: self.tax_rate_bp,
            kind,
            barcodes: self.barcodes.clone(),
            category: self.category.clone(),
            age_restricted: self.age_restricted,
            image: self.image_url.clone(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogPage {
    pub items: Vec<ItemDoc>,
    pub next_cursor: u64,
    pub has_more: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceDoc {
    pub sku: String,
    pub price_minor: i64,
    pub currency: String,
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricesPage {
    pub prices: Vec<PriceDoc>,
    pub next_cursor: u64,
    pub has_more: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelDoc {
    pub sku: String,
    /// Units, or grams for weighed items.
    pub level: i64,
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockPage {
    pub levels: Vec<LevelDoc>,
    /// The cloud's time of these levels.
    pub as_of: Timestamp,
    /// The last event (`evt_<n>`) the levels include.
    pub events_through: u64,
    pub next_cursor: u64,
    pub has_more: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigDoc {
    pub version: u64,
    pub settings: serde_json::Value,
}

/// The sequence number in a cloud remote id (`evt_00000042` → 42).
pub fn event_number(remote_id: &str) -> Option<u64> {
    remote_id.strip_prefix("evt_")?.parse().ok()
}

/// The feeds, in the order one round reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Feed {
    Catalog,
    Prices,
    Stock,
    Config,
}

impl Feed {
    pub const ALL: [Feed; 4] = [Feed::Catalog, Feed::Prices, Feed::Stock, Feed::Config];

    pub fn name(self) -> &'static str {
        match self {
            Feed::Catalog => "catalog",
            Feed::Prices => "prices",
            Feed::Stock => "stock",
            Feed::Config => "config",
        }
    }

    fn meta_key(self) -> String {
        format!("cloud.pull.{}", self.name())
    }
}

/// What one page did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub records: u64,
    /// Records refused (named in the log); the rest of the page was applied.
    pub refused: u64,
    pub has_more: bool,
}

/// Errors of a pull. The page was not applied.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("cloud answered {status} to the {feed} pull: {body}")]
    Status { feed: &'static str, status: u16, body: String },
    #[error("the {feed} page makes no sense: {why}")]
    Garbled { feed: &'static str, why: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The pull side of the cloud connector.
pub struct Puller {
    store_id: String,
    secret: Vec<u8>,
}

impl Puller {
    pub fn new(store_id: impl Into<String>, secret: impl Into<Vec<u8>>) -> Puller {
        Puller { store_id: store_id.into(), secret: secret.into() }
    }

    /// The feed's cursor (0 = from the baseline both sides started with).
    pub fn cursor(&self, store: &dyn Store, feed: Feed) -> Result<u64, StoreError> {
        Ok(match store.meta_get(&feed.meta_key())? {
            Some(v) => std::str::from_utf8(&v).ok().and_then(|s| s.parse().ok()).unwrap_or(0),
            None => 0,
        })
    }

    /// The signed request for the next page of `feed`.
    pub fn request(&self, store: &dyn Store, feed: Feed, now: Timestamp) -> Result<HttpRequest, StoreError> {
        Ok(self.request_from(feed, self.cursor(store, feed)?, now))
    }

    /// The signed request for the page of `feed` after `cursor` (a value: no store).
    pub fn request_from(&self, feed: Feed, cursor: u64, now: Timestamp) -> HttpRequest {
        let base = format!("/v1/stores/{}/{}", self.store_id, feed.name());
        let path = match feed {
            Feed::Config => base,
            _ => format!("{base}?cursor={cursor}&limit={PAGE_LIMIT}"),
        };
        let mut req = HttpRequest { method: Method::Get, path, headers: Vec::new(), body: Vec::new() };
        sign(&mut req, &self.store_id, &self.secret, now);
        req
    }

    /// Checks and applies a page; the cursor moves only when the page was applied.
    pub fn apply(&self, store: &dyn Store, feed: Feed, reply: &HttpResponse) -> Result<Applied, PullError> {
        if reply.status != 200 {
            return Err(PullError::Status { feed: feed.name(), status: reply.status, body: reply.body_excerpt(200) });
        }
        let garbled = |why: String| PullError::Garbled { feed: feed.name(), why };
        let cursor = self.cursor(store, feed)?;
        let mut out = Applied::default();
        let next = match feed {
            Feed::Catalog => {
                let page: CatalogPage = serde_json::from_slice(&reply.body).map_err(|e| garbled(e.to_string()))?;
                check_cursor(cursor, page.next_cursor, page.items.iter().map(|i| i.seq)).map_err(garbled)?;
                let mut items = Vec::with_capacity(page.items.len());
                for d in &page.items {
                    match d.to_item() {
                        Ok(i) => items.push(i),
                        Err(why) => {
                            tracing::warn!(feed = "catalog", %why, "pulled item refused");
                            out.refused += 1;
                        }
                    }
                }
                store.put_items(&items)?;
                out.records = items.len() as u64;
                out.has_more = page.has_more;
                page.next_cursor
            }
            Feed::Prices => {
                let page: PricesPage = serde_json::from_slice(&reply.body).map_err(|e| garbled(e.to_string()))?;
                check_cursor(cursor, page.next_cursor, page.prices.iter().map(|p| p.seq)).map_err(garbled)?;
                let mut items = Vec::with_capacity(page.prices.len());
                for p in &page.prices {
                    let item = store.item(&p.sku)?;
                    let ok = match (&item, Currency::parse(&p.currency)) {
                        (Some(i), Ok(c)) if c == i.currency && p.price_minor >= 0 => true,
                        (None, _) => {
                            tracing::warn!(feed = "prices", sku = %p.sku, "price for an item this store does not have");
                            false
                        }
                        _ => {
                            tracing::warn!(feed = "prices", sku = %p.sku, price = p.price_minor, currency = %p.currency,
                                "price refused: negative or in another currency than the item");
                            false
                        }
                    };
                    match item {
                        Some(mut i) if ok => {
                            i.price_minor = p.price_minor;
                            items.push(i);
                        }
                        _ => out.refused += 1,
                    }
                }
                store.put_items(&items)?;
                out.records = items.len() as u64;
                out.has_more = page.has_more;
                page.next_cursor
            }
            Feed::Stock => {
                let page = stock_page(cursor, reply)?;
                let levels: Vec<(String, i64, Timestamp)> =
                    page.levels.iter().map(|l| (l.sku.clone(), l.level, page.as_of)).collect();
                let through = page.events_through;
                let st = store.rebase_stock(Remote::Cloud, &levels, through, &event_number)?;
                // Once the feed is read: sales the cloud confirmed after their SKU's level was
                // read, and in that level.
                let settled =
                    if page.has_more { 0 } else { store.settle_stock(Remote::Cloud, &event_number)?.deltas_reflected };
                tracing::debug!(
                    levels = st.levels,
                    stale = st.stale,
                    reflected = st.deltas_reflected,
                    settled,
                    "stock rebased"
                );
                out.records = st.levels;
                out.has_more = page.has_more;
                page.next_cursor
            }
            Feed::Config => {
                let doc: ConfigDoc = serde_json::from_slice(&reply.body).map_err(|e| garbled(e.to_string()))?;
                if !doc.settings.is_object() {
                    return Err(garbled("settings must be an object".into()));
                }
                if doc.version < cursor {
                    return Err(garbled(format!("config version went back from {cursor} to {}", doc.version)));
                }
                if doc.version > cursor {
                    let bytes = serde_json::to_vec(&doc).map_err(|e| garbled(e.to_string()))?;
                    store.meta_set("cloud.config", &bytes)?;
                    tracing::info!(version = doc.version, "cloud config changed");
                    out.records = 1;
                }
                doc.version
            }
        };
        store.meta_set(&feed.meta_key(), next.to_string().as_bytes())?;
        Ok(out)
    }
}

/// A stock page read after `cursor`, checked: a 200 whose cursor moves forward over levels
/// past it, or the error that names what is wrong (nothing is applied then).
pub fn stock_page(cursor: u64, reply: &HttpResponse) -> Result<StockPage, PullError> {
    let feed = Feed::Stock.name();
    if reply.status != 200 {
        return Err(PullError::Status { feed, status: reply.status, body: reply.body_excerpt(200) });
    }
    let garbled = |why: String| PullError::Garbled { feed, why };
    let page: StockPage = serde_json::from_slice(&reply.body).map_err(|e| garbled(e.to_string()))?;
    check_cursor(cursor, page.next_cursor, page.levels.iter().map(|l| l.seq)).map_err(garbled)?;
    Ok(page)
}

/// A page must move the cursor forward (or leave it) and hold only records past it.
fn check_cursor(cursor: u64, next: u64, seqs: impl Iterator<Item = u64>) -> Result<(), String> {
    if next < cursor {
        return Err(format!("next_cursor {next} is behind the cursor {cursor}"));
    }
    for s in seqs {
        if s <= cursor || s > next {
            return Err(format!("record seq {s} is outside ({cursor}, {next}]"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_only_move_forward_over_the_page() {
        assert!(check_cursor(5, 9, [6, 9].into_iter()).is_ok());
        assert!(check_cursor(5, 4, std::iter::empty()).is_err());
        assert!(check_cursor(5, 9, [5].into_iter()).is_err());
        assert!(check_cursor(5, 9, [10].into_iter()).is_err());
        assert_eq!(event_number("evt_00000042"), Some(42));
        assert_eq!(event_number("x_1"), None);
    }

    #[test]
    fn bad_items_name_the_field() {
        let ok = ItemDoc::of(&crate::demo::demo_item(0), 1);
        assert!(ok.to_item().is_ok());
        let mut bad = ok.clone();
        bad.kind = "liquid".into();
        assert!(bad.to_item().expect_err("invalid").contains("kind"));
        let mut bad = ok.clone();
        bad.price_minor = -1;
        assert!(bad.to_item().expect_err("invalid").contains("price_minor"));
        let mut bad = ok.clone();
        bad.barcodes = vec!["12 34".into()];
        assert!(bad.to_item().expect_err("invalid").contains("barcode"));
        // A picture: an http(s) URL or a path on the cloud; nothing else.
        for good in ["https://cdn.example/a.png", "/pictures/SKU-0000001.svg"] {
            let mut it = ok.clone();
            it.image_url = Some(good.into());
            assert_eq!(it.to_item().expect("valid").image.as_deref(), Some(good));
        }
        for wrong in ["javascript:alert(1)", "//evil.example/x.png", "pictures/x.png", "/with space.png"] {
            let mut it = ok.clone();
            it.image_url = Some(wrong.into());
            assert!(it.to_item().expect_err(wrong).contains("image_url"), "{wrong}");
        }
    }
}
