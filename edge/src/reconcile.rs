//! `GET /v1/sync/report?date=D` (and `edgectl sync report`): one business day reconciled
//! with each system of record — the store's sales and refunds of the day (at NetSuite also
//! its stock adjustments, counted with no money) against what Lightspeed and NetSuite keep, as counts, totals and Jepsen's lost / duplicated /
//! unexpected lists (`edge_sync::report`).
//!
//! The day is the store's business day: from `business_day_start` in the store's time zone
//! to the same time the next day. Lightspeed is read by `completeTime` over that window
//! (UTC) and our `referenceNumberSource`; NetSuite by SuiteQL over `tranDate` (a plain date,
//! the business date we sent). Shopify by its orders' `processedAt` over the window, those
//! carrying our tag, matched by `sourceIdentifier`: its orders are our sales (a refund is
//! recorded on its sale's order, not as an order of its own, so refunds are left out of
//! Shopify's lines). The cloud has no list endpoint in its contract and is not
//! reconciled here (its per-event idempotency answers duplicates itself).

use crate::app::App;
use crate::config::Mode;
use edge_sync::domain::Remote;
use edge_sync::lightspeed::live::LsPull;
use edge_sync::report::{LocalRecord, RemoteRecord, RemoteReport, reconcile};
use jiff::Timestamp;
use jiff::civil::Date;
use std::sync::Arc;
use std::time::Duration;

/// The day's window in UTC.
pub fn window(app: &App, date: Date) -> Result<(Timestamp, Timestamp), String> {
    let start = date
        .to_datetime(app.cfg.business_day_start)
        .to_zoned(app.cfg.timezone.clone())
        .map_err(|e| format!("the business day {date} has no start in the store's time zone: {e}"))?;
    let end = start.tomorrow().map_err(|e| e.to_string())?;
    Ok((start.timestamp(), end.timestamp()))
}

/// The store's sales and refunds of the business day, with each one's state for `remote`.
pub fn local_day(app: &App, date: Date, remote: Remote) -> Result<Vec<LocalRecord>, String> {
    let (start, _) = window(app, date)?;
    // Sale ids are UUID v7: start a day before the window (a sale's id is its creation time).
    let from = start.as_millisecond().saturating_sub(86_400_000).max(0) as u64;
    let mut after = Some(uuid::Builder::from_unix_timestamp_millis(from, &[0; 10]).into_uuid());
    let mut out = Vec::new();
    loop {
        let page = app.store.sales_page(after.as_ref(), 500).map_err(|e| e.to_string())?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for s in &page {
            if s.business_date != date || s.status != edge_sync::domain::SaleStatus::Completed {
                continue;
            }
            if remote == Remote::Shopify && s.kind == edge_sync::domain::SaleKind::Refund {
                continue;
            }
            let sign = if s.kind == edge_sync::domain::SaleKind::Refund { -1 } else { 1 };
            let state = app
                .store
                .outbox_entries_of(&s.id)
                .map_err(|e| e.to_string())?
                .into_iter()
                .find(|e| e.remote == remote)
                .map_or("none", |e| e.state.name());
            out.push(LocalRecord { sale_id: s.id.to_string(), total_minor: sign * s.total_minor, state: state.into() });
        }
        if page.len() < 500 || last.created_at > Timestamp::now() {
            break;
        }
    }
    // Stock adjustments are records at NetSuite too (`inventoryAdjustment`, no money).
    if remote == Remote::Netsuite {
        let mut after = Some(uuid::Builder::from_unix_timestamp_millis(from, &[0; 10]).into_uuid());
        loop {
            let page = app.store.adjustments_page(after.as_ref(), 500).map_err(|e| e.to_string())?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for a in page.iter().filter(|a| a.business_date == date) {
                let state = app
                    .store
                    .outbox_entries_of(&a.id)
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .find(|e| e.remote == remote)
                    .map_or("none", |e| e.state.name());
                out.push(LocalRecord { sale_id: a.id.to_string(), total_minor: 0, state: state.into() });
            }
            if page.len() < 500 {
                break;
            }
        }
    }
    Ok(out)
}

async fn lightspeed_records(app: &Arc<App>, client: &reqwest::Client, date: Date) -> Result<Vec<RemoteRecord>, String> {
    let auth = app.ls_auth.clone().ok_or("Lightspeed is not configured")?;
    let map = app.cfg.lightspeed.clone().ok_or("mappings.lightspeed is missing")?;
    let rc = app.cfg.remotes.get(&Remote::Lightspeed).ok_or("remotes.lightspeed is missing")?;
    let base = rc.url.clone().ok_or("remotes.lightspeed.url is missing")?;
    let (start, end) = window(app, date)?;
    let (account, source) = (map.account_id, map.reference_source.clone());
    let pull = LsPull::new(client.clone(), &base, auth, map, Duration::from_millis(rc.timeout_ms));
    edge_sync::report::lightspeed_day(&pull, account, &source, start, end).await
}

async fn netsuite_records(app: &Arc<App>, client: &reqwest::Client, date: Date) -> Result<Vec<RemoteRecord>, String> {
    let rc = app.cfg.remotes.get(&Remote::Netsuite).ok_or("remotes.netsuite is missing")?;
    let base = rc.url.clone().ok_or("remotes.netsuite.url is missing")?;
    let mut signer = crate::delivery::netsuite_auth(&app.cfg, rc)?;
    let timeout = Duration::from_millis(rc.timeout_ms);
    edge_sync::report::netsuite_day(client, &base, &mut signer, &date.to_string(), timeout).await
}

async fn shopify_records(app: &Arc<App>, client: &reqwest::Client, date: Date) -> Result<Vec<RemoteRecord>, String> {
    let rc = app.cfg.remotes.get(&Remote::Shopify).ok_or("remotes.shopify is missing")?;
    let map = app.cfg.shopify.clone().ok_or("mappings.shopify is missing")?;
    let base = rc.url.clone().ok_or("remotes.shopify.url is missing")?;
    let token = crate::delivery::shopify_token(rc)?;
    let (start, end) = window(app, date)?;
    let tag = map.tag.clone();
    let pull = edge_sync::shopify::pull::ShopifyPull::new(
        client.clone(),
        &base,
        &token,
        app.shop.clone(),
        map,
        Duration::from_millis(rc.timeout_ms),
    );
    let orders = pull.orders_between(start, end).await?;
    Ok(orders
        .into_iter()
        .filter(|o| o.tags.contains(&tag))
        .map(|o| RemoteRecord {
            reference: o.source_identifier.unwrap_or_default(),
            remote_id: o.id,
            total_minor: o.total_minor.unwrap_or(0),
        })
        .collect())
}

/// The report of `date` for every configured system of record.
pub async fn report(app: &Arc<App>, date: Date) -> Result<Vec<RemoteReport>, String> {
    let client = crate::delivery::http_client()?;
    let mut out = Vec::new();
    for name in [Remote::Lightspeed, Remote::Netsuite, Remote::Shopify] {
        if app.cfg.remotes.get(&name).is_none_or(|r| r.mode == Mode::Off) {
            continue;
        }
        let local = {
            let app = app.clone();
            tokio::task::spawn_blocking(move || local_day(&app, date, name)).await.map_err(|e| e.to_string())??
        };
        let remote = match name {
            Remote::Lightspeed => lightspeed_records(app, &client, date).await,
            Remote::Netsuite => netsuite_records(app, &client, date).await,
            Remote::Shopify => shopify_records(app, &client, date).await,
            // The cloud keeps an event log, not a book of record; the bus is the store's own.
            Remote::Cloud | Remote::Bus => continue,
        };
        out.push(match remote {
            Ok(r) => reconcile(name.as_str(), &local, &r),
            Err(e) => {
                let mut rep = reconcile(name.as_str(), &local, &[]);
                rep.lost.clear();
                rep.error = Some(e);
                rep
            }
        });
    }
    Ok(out)
}
