//! NetSuite reads outside the delivery worker: credentials added to a request (a
//! client-credentials token bought when due), SuiteQL read page by page ([`suiteql_all`]),
//! and the catalog pull ([`NsPull`]) when NetSuite is the source of catalog, prices and
//! stock.
//!
//! # The catalog pull
//!
//! Three SuiteQL queries, each with a unique `ORDER BY` so that offset pages neither skip
//! nor repeat (reference §B8), every page at most 1,000 rows:
//!
//! 1. `item` (active items): external id (= SKU, or the SKU of `mappings.netsuite.items`),
//!    display name, UPC code (the barcode) and tax schedule (a rate through
//!    `mappings.netsuite.tax_schedules`);
//! 2. `itemprice` at `mappings.netsuite.price_level`: the shelf price;
//! 3. `inventoryitemlocations` at `mappings.netsuite.location`: quantity on hand (kilograms
//!    of weighed items become grams).
//!
//! Items and prices go into the catalog overlay (only those that changed). Stock levels
//! rebase local stock: a local sale, refund or adjustment is in NetSuite's level when
//! NetSuite had confirmed it before the read began — its internal id is at most the newest
//! one confirmed then (NetSuite numbers transactions in the order it creates them; kept in
//! meta `netsuite.newest_record`); later ones stay subtracted until the next pull.
//!
//! An item whose tax schedule has no mapping, or that has no price at the level and none
//! locally, is skipped and named in the log with the missing key; the rest apply.

use super::connector::NsAuth;
use crate::domain::Remote;
use crate::domain::{Item, ItemKind};
use crate::mapping::{NetSuiteMap, NsItems};
use crate::money::Currency;
use crate::store::Store;
use jiff::Timestamp;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Rows SuiteQL gives at most per page.
pub const SUITEQL_PAGE: usize = 1000;
/// Most rows read for one query (SuiteQL's own cap without SuiteAnalytics Connect).
pub const SUITEQL_MAX_ROWS: usize = 100_000;
/// Store meta key of the newest NetSuite internal id confirmed (see the module doc).
pub const META_NS_NEWEST: &str = "netsuite.newest_record";

/// One SuiteQL query read page by page, as values: the next request to send (without
/// credentials) and what each answer adds. No I/O: [`suiteql_all`] drives it over HTTP, the
/// sync simulation over its network.
#[derive(Debug, Clone)]
pub struct SuiteqlRead {
    body: String,
    offset: usize,
    rows: Vec<Value>,
    done: bool,
}

impl SuiteqlRead {
    pub fn new(query: &str) -> SuiteqlRead {
        SuiteqlRead { body: serde_json::json!({ "q": query }).to_string(), offset: 0, rows: Vec::new(), done: false }
    }

    /// The request for the next page (credentials to be added), or `None` once read.
    pub fn request(&self) -> Option<crate::wire::HttpRequest> {
        (!self.done).then(|| crate::wire::HttpRequest {
            method: crate::wire::Method::Post,
            path: format!("/services/rest/query/v1/suiteql?limit={SUITEQL_PAGE}&offset={}", self.offset),
            headers: vec![("Content-Type".into(), "application/json".into()), ("Prefer".into(), "transient".into())],
            body: self.body.clone().into_bytes(),
        })
    }

    /// Takes a page's answer; an error names what is wrong and the read can be retried
    /// from the same page.
    pub fn on_reply(&mut self, r: &crate::wire::HttpResponse) -> Result<(), String> {
        if r.status != 200 {
            return Err(crate::netsuite::errors::reason(r.status, &r.body));
        }
        let v: Value =
            serde_json::from_slice(&r.body).map_err(|e| format!("NetSuite's SuiteQL answer is not JSON: {e}"))?;
        let items = v.get("items").and_then(Value::as_array).ok_or("NetSuite's SuiteQL answer has no items")?;
        let n = items.len();
        if self.rows.len() + n > SUITEQL_MAX_ROWS {
            return Err(format!("NetSuite answers more than {SUITEQL_MAX_ROWS} rows to one query"));
        }
        self.rows.extend(items.iter().cloned());
        let more = v.get("hasMore").and_then(Value::as_bool).unwrap_or(false);
        if !more || n == 0 {
            self.done = true;
        } else {
            self.offset += SUITEQL_PAGE;
        }
        Ok(())
    }

    pub fn done(&self) -> bool {
        self.done
    }

    pub fn rows(self) -> Vec<Value> {
        self.rows
    }
}

/// Every row of a SuiteQL query, page by page (`limit` 1000, `offset`, until `hasMore` is
/// false), with the credentials added to each request.
pub async fn suiteql_all(
    client: &reqwest::Client,
    base: &str,
    signer: &mut NsSigner,
    query: &str,
    timeout: Duration,
) -> Result<Vec<Value>, String> {
    let mut read = SuiteqlRead::new(query);
    while let Some(mut req) = read.request() {
        signer.sign(client, base, &mut req, timeout).await?;
        let r = crate::engine::run::exchange(client, base, &req, timeout).await.map_err(|e| e.to_string())?;
        read.on_reply(&r)?;
    }
    Ok(read.rows())
}

/// The SKU (and kind) of each NetSuite item id in the items query's rows: by
/// `mappings.netsuite.items` when it is a table, else the row's external id. `kind` gives a
/// SKU's local kind (weighed items are read in kilograms).
pub fn skus_of(
    map: &NetSuiteMap,
    rows: &[Value],
    kind: &dyn Fn(&str) -> ItemKind,
) -> BTreeMap<String, (String, ItemKind)> {
    let by_id: BTreeMap<String, String> = match &map.items {
        NsItems::Table(t) => t.iter().map(|(sku, id)| (id.clone(), sku.clone())).collect(),
        NsItems::Rule(_) => BTreeMap::new(),
    };
    rows.iter()
        .filter_map(|row| {
            let id = text(row, "id")?;
            let sku = match &map.items {
                NsItems::Table(_) => by_id.get(&id).cloned(),
                NsItems::Rule(_) => text(row, "externalid"),
            }?;
            let k = kind(&sku);
            Some((id, (sku, k)))
        })
        .collect()
}

/// The stock levels in the stock query's rows, for the SKUs known (units, or grams of
/// weighed items — NetSuite counts them in kilograms), as read at `read_at`.
pub fn levels_of(
    rows: &[Value],
    sku_of: &BTreeMap<String, (String, ItemKind)>,
    read_at: Timestamp,
) -> Vec<(String, i64, Timestamp)> {
    rows.iter()
        .filter_map(|r| {
            let id = text(r, "item")?;
            let q = r.get("quantityonhand").and_then(crate::lightspeed::json::thousandths)?;
            let (sku, kind) = sku_of.get(&id)?;
            let level = if *kind == ItemKind::Weight { q } else { q.div_euclid(1000) };
            Some((sku.clone(), level, read_at))
        })
        .collect()
}

/// The newest NetSuite internal id confirmed, shared by the delivery worker (which notes
/// each confirmation) and the stock pull.
#[derive(Debug, Default)]
pub struct NsNewest(AtomicU64);

impl NsNewest {
    pub fn note(&self, internal_id: u64) {
        self.0.fetch_max(internal_id, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What one pull round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NsRound {
    pub items: usize,
    pub items_changed: usize,
    pub skipped: usize,
    pub levels: usize,
}

/// The catalog, price and stock pull from NetSuite.
pub struct NsPull {
    client: reqwest::Client,
    base: String,
    signer: NsSigner,
    map: NetSuiteMap,
    currency: Currency,
    newest: Arc<NsNewest>,
    timeout: Duration,
}

fn text(row: &Value, key: &str) -> Option<String> {
    match row.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl NsPull {
    pub fn new(
        client: reqwest::Client,
        base: &str,
        signer: NsSigner,
        map: NetSuiteMap,
        currency: Currency,
        newest: Arc<NsNewest>,
        timeout: Duration,
    ) -> NsPull {
        NsPull { client, base: base.trim_end_matches('/').to_string(), signer, map, currency, newest, timeout }
    }

    /// The items, with the File of each one's store display image (`storedisplayimage`):
    /// its URL (relative to the account's domain) and whether it is "Available Without
    /// Login" (`isonline`); a picture that needs a login is not taken.
    pub fn items_query() -> String {
        "SELECT item.id, item.externalid, item.itemid, item.displayname, item.upccode, item.taxschedule, \
         file.url AS imageurl, file.isonline AS imageonline \
         FROM item LEFT OUTER JOIN file ON file.id = item.storedisplayimage \
         WHERE item.isinactive = 'F' ORDER BY item.id"
            .into()
    }

    /// The item's picture from its row: the File's URL made absolute against the account's
    /// domain (`ACCOUNT.suitetalk.api.netsuite.com` → `ACCOUNT.app.netsuite.com`; any other
    /// base, as a fake's, is taken as is), when the file is available without login.
    pub fn image_of(base: &str, row: &Value) -> Option<String> {
        let url = text(row, "imageurl")?;
        if text(row, "imageonline").as_deref() != Some("T") {
            return None;
        }
        let abs = if url.starts_with("https://") || url.starts_with("http://") {
            url
        } else if url.starts_with('/') {
            let domain = base.replacen(".suitetalk.api.netsuite.com", ".app.netsuite.com", 1);
            format!("{}{url}", domain.trim_end_matches('/'))
        } else {
            return None;
        };
        crate::domain::valid_image_url(&abs).then_some(abs)
    }

    pub fn prices_query(&self) -> String {
        format!(
            "SELECT itemprice.item, itemprice.price FROM itemprice WHERE itemprice.pricelevel = {} \
             ORDER BY itemprice.item",
            self.map.price_level
        )
    }

    pub fn stock_query(&self) -> String {
        Self::stock_query_at(&self.map)
    }

    /// The stock query for `mappings.netsuite.location`.
    pub fn stock_query_at(map: &NetSuiteMap) -> String {
        format!(
            "SELECT inventoryitemlocations.item, inventoryitemlocations.quantityonhand FROM inventoryitemlocations \
             WHERE inventoryitemlocations.location = {} ORDER BY inventoryitemlocations.item",
            map.location
        )
    }

    async fn all(&mut self, q: &str) -> Result<Vec<Value>, String> {
        suiteql_all(&self.client, &self.base, &mut self.signer, q, self.timeout).await
    }

    /// One round: items, prices, then stock.
    pub async fn round(&mut self, store: &Arc<dyn Store>) -> Result<NsRound, String> {
        let mut out = NsRound::default();
        // The newest confirmed internal id before the stock read begins, kept across
        // restarts.
        let stored: u64 = store
            .meta_get(META_NS_NEWEST)
            .ok()
            .flatten()
            .and_then(|b| String::from_utf8_lossy(&b).parse().ok())
            .unwrap_or(0);
        let seen = self.newest.get().max(stored);
        if seen > stored {
            store.meta_set(META_NS_NEWEST, seen.to_string().as_bytes()).map_err(|e| e.to_string())?;
        }
        let read_at = Timestamp::now();

        let items = self.all(&Self::items_query()).await?;
        let q = self.prices_query();
        let prices: BTreeMap<String, i64> = self
            .all(&q)
            .await?
            .iter()
            .filter_map(|r| Some((text(r, "item")?, crate::lightspeed::json::money_minor(r.get("price")?)?)))
            .collect();
        // Which SKU each NetSuite item is (the kind is the local item's, below).
        let mapped = skus_of(&self.map, &items, &|_| ItemKind::Unit);
        let mut sku_of: BTreeMap<String, (String, ItemKind)> = BTreeMap::new();
        let mut changed = Vec::new();
        for row in &items {
            let Some(id) = text(row, "id") else { continue };
            let Some((sku, _)) = mapped.get(&id) else { continue };
            let sku = sku.clone();
            out.items += 1;
            let local = store.item(&sku).map_err(|e| e.to_string())?;
            match self.item_of(row, &id, &sku, local.as_ref(), prices.get(&id).copied()) {
                Ok(item) => {
                    sku_of.insert(id, (sku, item.kind));
                    if local.as_ref() != Some(&item) {
                        changed.push(item);
                    }
                }
                Err(why) => {
                    if let Some(l) = &local {
                        sku_of.insert(id, (sku.clone(), l.kind));
                    }
                    tracing::warn!(remote = "netsuite", %sku, %why, "pulled item skipped");
                    out.skipped += 1;
                }
            }
        }
        out.items_changed = changed.len();
        for chunk in changed.chunks(500) {
            store.put_items(chunk).map_err(|e| e.to_string())?;
        }

        let q = self.stock_query();
        let rows = self.all(&q).await?;
        let levels = levels_of(&rows, &sku_of, read_at);
        out.levels = levels.len();
        let number = |rid: &str| rid.parse::<u64>().ok();
        for chunk in levels.chunks(500) {
            store.rebase_stock(Remote::Netsuite, chunk, seen, &number).map_err(|e| e.to_string())?;
        }
        // Records confirmed during the read, numbered at most `seen`, are in those levels.
        store.settle_stock(Remote::Netsuite, &number).map_err(|e| e.to_string())?;
        Ok(out)
    }

    /// The local item of a NetSuite item row, or why it cannot be one.
    fn item_of(
        &self,
        row: &Value,
        id: &str,
        sku: &str,
        local: Option<&Item>,
        price: Option<i64>,
    ) -> Result<Item, String> {
        let schedule = text(row, "taxschedule").unwrap_or_default();
        let Some(rate) = self.map.tax_schedules.get(&schedule).copied() else {
            return Err(crate::mapping::missing(
                &format!("mappings.netsuite.tax_schedules.\"{schedule}\""),
                &format!("no tax rate for NetSuite item {id}'s tax schedule"),
            ));
        };
        let Some(price_minor) = price.or(local.map(|l| l.price_minor)) else {
            return Err(format!("NetSuite item {id} has no price at price level {}", self.map.price_level));
        };
        let name = text(row, "displayname").or_else(|| text(row, "itemid")).unwrap_or_else(|| sku.to_string());
        let mut barcodes: Vec<String> = local.map(|l| l.barcodes.clone()).unwrap_or_default();
        if let Some(upc) =
            text(row, "upccode").filter(|u| u.len() <= 64 && u.chars().all(|c| c.is_ascii_alphanumeric()))
            && !barcodes.contains(&upc)
        {
            barcodes.insert(0, upc);
        }
        Ok(Item {
            sku: sku.to_string(),
            name: name.chars().take(200).collect(),
            price_minor,
            currency: self.currency,
            tax_rate_bp: rate,
            kind: local.map_or(ItemKind::Unit, |l| l.kind),
            barcodes,
            category: local.map(|l| l.category.clone()).unwrap_or_default(),
            age_restricted: local.is_some_and(|l| l.age_restricted),
            image: Self::image_of(&self.base, row).or_else(|| local.and_then(|l| l.image.clone())),
        })
    }
}

/// NetSuite credentials outside the delivery worker (the report's SuiteQL).
pub struct NsSigner {
    pub auth: NsAuth,
    bearer: Option<(String, i64)>,
}

impl NsSigner {
    pub fn new(auth: NsAuth) -> NsSigner {
        NsSigner { auth, bearer: None }
    }

    /// Adds the credentials to a request (buying a client-credentials token first if due).
    pub async fn sign(
        &mut self,
        client: &reqwest::Client,
        base: &str,
        req: &mut crate::wire::HttpRequest,
        timeout: Duration,
    ) -> Result<(), String> {
        use crate::netsuite::connector::NsAuth;
        let now = Timestamp::now();
        let base = base.trim_end_matches('/');
        match &self.auth {
            NsAuth::Tba(c) => {
                let nonce: String = (0..20)
                    .map(|_| {
                        let mut b = [0u8; 1];
                        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
                        let n = u64::from(b[0]) % 62;
                        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"[n as usize] as char
                    })
                    .collect();
                let h = crate::netsuite::tba::authorization(
                    c,
                    req.method.as_str(),
                    &format!("{base}{}", req.path),
                    &nonce,
                    now.as_second().max(0) as u64,
                )?;
                req.headers.push(("Authorization".into(), h));
                Ok(())
            }
            NsAuth::M2m(m) => {
                let fresh =
                    self.bearer.as_ref().filter(|(_, exp)| *exp > now.as_millisecond() + 60_000).map(|b| b.0.clone());
                let token = match fresh {
                    Some(t) => t,
                    None => {
                        let url = format!("{base}{}", crate::netsuite::m2m::TOKEN_PATH);
                        let treq = crate::wire::HttpRequest {
                            method: crate::wire::Method::Post,
                            path: crate::netsuite::m2m::TOKEN_PATH.into(),
                            headers: vec![("Content-Type".into(), "application/x-www-form-urlencoded".into())],
                            body: m.token_form(&url, now.as_second())?.into_bytes(),
                        };
                        let r = crate::engine::run::exchange(client, base, &treq, timeout)
                            .await
                            .map_err(|e| e.to_string())?;
                        if r.status != 200 {
                            return Err(format!(
                                "NetSuite refused the assertion: {}",
                                crate::netsuite::errors::reason(r.status, &r.body)
                            ));
                        }
                        let v: serde_json::Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
                        let t = v
                            .get("access_token")
                            .and_then(|x| x.as_str())
                            .ok_or("NetSuite's token answer has no access_token")?;
                        self.bearer = Some((t.to_string(), now.as_millisecond() + 3_000_000));
                        t.to_string()
                    }
                };
                req.headers.push(("Authorization".into(), format!("Bearer {token}")));
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::NsPull;
    use serde_json::json;

    #[test]
    fn an_items_picture_is_its_public_display_image_on_the_accounts_domain() {
        let base = "https://1234567.suitetalk.api.netsuite.com";
        let row = json!({"imageurl": "/core/media/media.nl?id=9&c=1234567&h=ab", "imageonline": "T"});
        assert_eq!(
            NsPull::image_of(base, &row).as_deref(),
            Some("https://1234567.app.netsuite.com/core/media/media.nl?id=9&c=1234567&h=ab")
        );
        // A file that needs a login, none, or not a URL: no picture.
        assert_eq!(NsPull::image_of(base, &json!({"imageurl": "/core/media/x", "imageonline": "F"})), None);
        assert_eq!(NsPull::image_of(base, &json!({"imageurl": null})), None);
        assert_eq!(NsPull::image_of(base, &json!({"imageurl": "media.nl", "imageonline": "T"})), None);
        // Another base (a fake on loopback) is taken as is.
        let row = json!({"imageurl": "/core/media/media.nl?id=9", "imageonline": "T"});
        assert_eq!(
            NsPull::image_of("http://127.0.0.1:9000", &row).as_deref(),
            Some("http://127.0.0.1:9000/core/media/media.nl?id=9")
        );
    }
}
