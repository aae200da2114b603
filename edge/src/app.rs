//! The daemon's shared state: configuration, store, tokens, event bus, metrics, and the
//! gate that lets shutdown wait for commits in progress.

use crate::checkout::Checkout;
use crate::config::{Config, Mode, Remote};
use crate::metrics::Metrics;
use crate::tokens::Tokens;
use edge_api::{Event, Health, RemoteStatus, StoreHealth};
use edge_sync::domain::business_date;
use edge_sync::engine::run::SyncEngine;
use edge_sync::store::Store;
use jiff::Timestamp;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use std::time::Instant;
use tokio::sync::{broadcast, watch};

/// Events buffered per slow client before it is told it lagged.
pub const EVENT_BUFFER: usize = 1024;
/// Lag of the oldest undelivered record that warns, and that is critical (seconds).
pub const LAG_WARNING_S: u64 = 5 * 60;
pub const LAG_CRITICAL_S: u64 = 15 * 60;

/// The item count the categories were counted at, when, and the (name, items) pairs.
type CategoriesCache = (u64, Instant, Vec<(String, u64)>);

pub struct App {
    pub cfg: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub tokens: Tokens,
    pub events: broadcast::Sender<Event>,
    pub metrics: Arc<Metrics>,
    pub engine: Arc<SyncEngine>,
    /// Pulls and push stream of the cloud (when it is live).
    pub cloud_link: Option<edge_sync::cloud::live::CloudLink>,
    /// The store's devices (printer, scanner, scale, pole display).
    pub devices: std::sync::OnceLock<Arc<crate::devices::Devices>>,
    /// Item pictures kept on disk for the screens (set at start).
    pub pictures: std::sync::OnceLock<Arc<crate::pictures::Pictures>>,
    /// Lightspeed's tokens, shared by the delivery worker, the pulls and the report.
    pub ls_auth: Option<Arc<edge_sync::lightspeed::connector::LsAuth>>,
    /// The newest NetSuite internal id confirmed (the NetSuite stock pull rebases by it).
    pub ns_newest: Arc<edge_sync::netsuite::live::NsNewest>,
    /// The Shopify shop's cost pacer, shared by the delivery worker, the pulls and the report.
    pub shop: Arc<edge_sync::shopify::connector::Shop>,
    /// The store's bus (`[bus] url`): the other lanes of the store.
    pub bus: Option<edge_sync::bus::live::Bus>,
    pub ws_clients: AtomicUsize,
    /// Sales, refunds and adjustments: admission, pricing, payments, commit, after-commit.
    pub checkout: Arc<Checkout>,
    /// The machine says its clock is not synchronised (checked every 5 minutes).
    pub clock_unsynced: AtomicBool,
    /// The last wall-clock jump seen: when, and by how many seconds.
    clock_jumped: std::sync::Mutex<Option<(Timestamp, i64)>>,
    /// Staff who log in by PIN, and the wrong-PIN counter.
    pub staff: crate::staff::Staff,
    /// Self-serve screens' requests for staff (age checks, help).
    pub approvals: crate::staff::Approvals,
    /// Catalog categories with their item counts, and the item count they were made at.
    categories: std::sync::Mutex<Option<CategoriesCache>>,
    /// Flips to true when shutdown starts; event streams say goodbye.
    pub stopping: watch::Sender<bool>,
    started: Instant,
}

impl App {
    /// The catalog's categories and item counts: one scan of the catalog, kept until the
    /// item count changes or for 5 minutes (a price or stock pull does not change them).
    pub fn categories(&self) -> Result<Vec<(String, u64)>, edge_sync::store::StoreError> {
        let count = self.store.item_count();
        if let Some((c, at, cats)) = self.categories.lock().unwrap_or_else(|p| p.into_inner()).as_ref()
            && *c == count
            && at.elapsed() < Duration::from_secs(300)
        {
            return Ok(cats.clone());
        }
        let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
        let mut cursor: Option<String> = None;
        loop {
            let (page, next) = self.store.items_page(None, cursor.as_deref(), 1000, 1000)?;
            for e in page {
                *counts.entry(e.item.category).or_default() += 1;
            }
            match next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        let cats: Vec<(String, u64)> = counts.into_iter().filter(|(n, _)| !n.is_empty()).collect();
        *self.categories.lock().unwrap_or_else(|p| p.into_inner()) = Some((count, Instant::now(), cats.clone()));
        Ok(cats)
    }

    pub fn new(
        cfg: Config,
        store: Arc<dyn Store>,
        tokens: Tokens,
        engine: Arc<SyncEngine>,
        cloud_link: Option<edge_sync::cloud::live::CloudLink>,
    ) -> App {
        let cfg = Arc::new(cfg);
        let events = broadcast::channel(EVENT_BUFFER).0;
        let metrics = Arc::new(Metrics::new());
        let data_dir = cfg.data_dir.clone();
        let wake_engine = engine.clone();
        let ports = crate::checkout::ports::Ports {
            clock: Arc::new(crate::checkout::ports::SystemClock),
            events: events.clone(),
            wake: Arc::new(move || wake_engine.wake()),
            disk_free: Arc::new(move || crate::doctor::disk_free(&data_dir).map(|(free, _)| free)),
        };
        let checkout = Arc::new(Checkout::new(cfg.clone(), store.clone(), ports, metrics.clone()));
        App {
            staff: crate::staff::Staff::new(cfg.staff.clone()),
            approvals: crate::staff::Approvals::default(),
            categories: std::sync::Mutex::new(None),
            cfg,
            store,
            tokens,
            events,
            metrics,
            engine,
            cloud_link,
            devices: std::sync::OnceLock::new(),
            pictures: std::sync::OnceLock::new(),
            ls_auth: None,
            ns_newest: Arc::default(),
            shop: edge_sync::shopify::connector::Shop::new(),
            bus: None,
            ws_clients: AtomicUsize::new(0),
            stopping: watch::channel(false).0,
            checkout,
            clock_jumped: std::sync::Mutex::new(None),
            clock_unsynced: AtomicBool::new(false),
            started: Instant::now(),
        }
    }

    /// Plugs the started devices into the daemon and the checkout (which starts its
    /// after-commit worker).
    pub fn attach_devices(&self, d: Arc<crate::devices::Devices>) {
        let _ = self.devices.set(d.clone());
        self.checkout.attach(d);
    }

    /// Stops taking sales and waits until every commit in progress has returned.
    pub async fn drain(&self) {
        let _ = self.stopping.send(true);
        self.checkout.drain().await;
    }

    pub fn note_clock_jump(&self, at: Timestamp, secs: i64) {
        *self.clock_jumped.lock().unwrap_or_else(|p| p.into_inner()) = Some((at, secs));
    }

    pub fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    pub fn accepting(&self) -> bool {
        self.checkout.accepting()
    }

    pub fn health(&self) -> Health {
        let now = Timestamp::now();
        let st = self.store.stats();
        let mut reasons = vec![];
        if !self.accepting() {
            reasons.push("shutting down: no new sales".to_string());
        }
        if self.clock_unsynced.load(Ordering::SeqCst) {
            reasons.push("the clock is not synchronised: business dates and receipts depend on it".to_string());
        }
        if let Some((at, secs)) = *self.clock_jumped.lock().unwrap_or_else(|p| p.into_inner())
            && now.duration_since(at).as_secs() < 3600
        {
            reasons.push(format!(
                "the clock jumped by {secs} s at {at}: check time synchronisation (business dates depend on it)"
            ));
        }
        let free = self.checkout.disk_free();
        if self.cfg.warn_free_bytes > 0 && free < self.cfg.warn_free_bytes {
            reasons.push(format!(
                "disk low: {} MiB free (new sales are refused below {} MiB)",
                free >> 20,
                self.cfg.min_free_bytes >> 20
            ));
        }
        for r in self.remote_statuses(now) {
            if r.state == "down" {
                reasons.push(format!(
                    "{}: down (circuit breaker open); last error: {}",
                    r.name,
                    r.last_error.as_deref().unwrap_or("-")
                ));
            }
            if r.dead + r.rejected > 0 {
                reasons.push(format!("{}: {} dead letters (edgectl queue dead ls)", r.name, r.dead + r.rejected));
            }
            if r.lag == "critical" {
                reasons.push(format!(
                    "{}: oldest undelivered record is {} s old",
                    r.name,
                    r.oldest_pending_age_s.unwrap_or(0)
                ));
            }
        }
        Health {
            status: if reasons.is_empty() { "ok" } else { "degraded" }.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            store_id: self.cfg.store_id.clone(),
            uptime_s: self.started.elapsed().as_secs(),
            business_date: business_date(now, &self.cfg.timezone, self.cfg.business_day_start).to_string(),
            accepting_sales: self.accepting(),
            reasons,
            store: StoreHealth {
                format_version: self.store.format_version(),
                items: st.items,
                sales: st.sales,
                size_on_disk_bytes: st.size_on_disk_bytes,
                syncs: st.syncs,
                commits_synced: st.commits_synced,
                checkpoints: st.checkpoints,
            },
        }
    }

    /// Delivery state per remote: the outbox counts and the worker's health. A remote that is
    /// not `off` but has no connector in this build is `unavailable`: its records wait
    /// durably in the outbox.
    pub fn remote_statuses(&self, now: Timestamp) -> Vec<RemoteStatus> {
        let counts = self.store.outbox_counts();
        let bus = self.bus.as_ref().map(|b| (Remote::Bus, Mode::Live, Some(b.view())));
        self.cfg
            .remotes
            .iter()
            .map(|(name, rc)| (*name, rc.mode, None))
            .chain(bus)
            .map(|(name, mode, bus)| {
                let name = &name;
                let c = counts.get(name).cloned().unwrap_or_default();
                let age = c.oldest_waiting.map(|t| (now - t).get_seconds().max(0) as u64);
                let lag = match age {
                    Some(a) if a >= LAG_CRITICAL_S => "critical",
                    Some(a) if a >= LAG_WARNING_S => "warning",
                    _ => "ok",
                };
                let h = self.engine.health(*name, now);
                let link = if *name == Remote::Cloud { self.cloud_link.as_ref().map(|l| l.health()) } else { None };
                let state = match (&h, mode) {
                    (_, Mode::Off) => "off",
                    (Some(h), _) => h.state,
                    (None, _) => "unavailable",
                };
                RemoteStatus {
                    name: name.to_string(),
                    mode: mode.as_str().into(),
                    state: state.into(),
                    pending: c.pending,
                    in_flight: c.in_flight,
                    unknown: c.unknown,
                    confirmed: c.confirmed,
                    rejected: c.rejected,
                    dead: c.dead,
                    oldest_pending_age_s: age,
                    lag: lag.into(),
                    last_success_at: h.as_ref().and_then(|h| h.last_success_at).map(|t| t.to_string()),
                    errors_last_hour: h.as_ref().map_or(0, |h| h.errors_last_hour),
                    rate_limit: h.as_ref().map(|h| match h.rate_limited_until {
                        Some(t) => format!("limited until {t}"),
                        None => h.rate_limit.to_string(),
                    }),
                    breaker: h.as_ref().map(|h| h.breaker.to_string()),
                    last_error: h.as_ref().and_then(|h| h.last_error.clone()),
                    requests: h.as_ref().map_or(0, |h| h.requests_total),
                    throttled: h.as_ref().map_or(0, |h| h.throttled_total),
                    detail: match (&h, mode) {
                        (None, Mode::Live | Mode::Shadow) => {
                            Some("no connector for this remote in this build; its records wait in the outbox".into())
                        }
                        // The authorisation's 30 unused days: a warning from day 25, then dead.
                        _ if *name == Remote::Lightspeed => {
                            self.ls_auth.as_ref().and_then(|a| match a.tokens().refresh_health(now.as_millisecond()) {
                                Ok(w) => w,
                                Err(e) => Some(e),
                            })
                        }
                        _ => None,
                    },
                    pull_last_success_at: link.as_ref().and_then(|l| l.pull_last_success).map(|t| t.to_string()),
                    pull_error: link.as_ref().and_then(|l| l.pull_last_error.clone()),
                    stream: bus.as_ref().map(edge_sync::bus::live::BusView::line).or_else(|| {
                        link.as_ref().map(|l| {
                            if l.stream_connected {
                                format!("connected (last message {})", l.stream_last_id)
                            } else {
                                format!("not connected: {}", l.stream_last_error.as_deref().unwrap_or("connecting"))
                            }
                        })
                    }),
                }
            })
            .collect()
    }
}
