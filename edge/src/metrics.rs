//! Prometheus metrics of edged (`GET /metrics`, OpenMetrics text). Names and labels:
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `edged_http_requests_total` | counter | `method`, `route`, `status` | API requests answered |
//! | `edged_http_request_duration_seconds` | histogram | `route` | time to answer |
//! | `edged_sales_committed_total` | counter | | sales made durable |
//! | `edged_sales_refused_total` | counter | `reason` | sales refused (nothing stored) |
//! | `edged_sale_commit_duration_seconds` | histogram | | commit incl. flush + fdatasync |
//! | `edged_store_syncs_total` | counter | | commit journal fdatasync rounds (group commits) |
//! | `edged_store_commits_synced_total` | counter | | commits covered by those rounds |
//! | `edged_store_last_sync_seconds` | gauge | | duration of the last round |
//! | `edged_store_checkpoints_total` | counter | | sled flush + fdatasync checkpoints |
//! | `edged_store_last_checkpoint_seconds` | gauge | | duration of the last checkpoint |
//! | `edged_store_size_bytes` | gauge | | sled's size on disk |
//! | `edged_catalog_items` | gauge | | items in the catalog |
//! | `edged_outbox_entries` | gauge | `remote`, `state` | outbox entries by state |
//! | `edged_outbox_oldest_waiting_seconds` | gauge | `remote` | age of the oldest undelivered entry |
//! | `edged_sync_requests_total` | counter | `remote` | requests the sync worker sent |
//! | `edged_sync_throttled_total` | counter | `remote` | 429 answers received |
//! | `edged_sync_errors_last_hour` | gauge | `remote` | delivery errors in the last hour |
//! | `edged_sync_state` | gauge | `remote`, `state` | 1 for the worker's state (`idle`, `connected`, `degraded`, `down`, `shadow`) |
//! | `edged_sync_breaker_open` | gauge | `remote` | 1 while the circuit breaker is open or half-open |
//! | `edged_sync_rate_limited` | gauge | `remote` | 1 while the remote's rate limit holds deliveries back |
//! | `edged_sync_last_success_timestamp_seconds` | gauge | `remote` | Unix time of the last answered request |
//! | `edged_payments_open` | gauge | `state` | card payments not settled (`intent`, `in_doubt`, `approved`, `reversal_failed`) |
//! | `edged_offline_payments_pending` | gauge | | offline card payments waiting to be forwarded |
//! | `edged_offline_payments_pending_minor` | gauge | | their total, minor units |
//! | `edged_ws_clients` | gauge | | open `/v1/events` connections |
//! | `edged_bus_connected` | gauge | | 1 while the store's bus (`[bus]`) is connected and followed |
//! | `edged_bus_lag_messages` | gauge | | store stream messages this lane has not applied yet |
//! | `edged_bus_applied_total` | counter | | other lanes' messages applied to the replica |
//! | `edged_bus_bad_messages_total` | counter | | store stream messages that could not be read (skipped) |
//! | `edged_bus_lanes_up` | gauge | | lanes with a heartbeat in the last 15 s (this one included) |
//! | `edged_lanes_refused_total` | counter | | sales and refunds refused by a claim across lanes (or the offline share) |
//! | `edged_lanes_flags_total` | counter | | refunds allowed while the store's server could not be reached |
//! | `edged_uptime_seconds` | gauge | | since start |

use edge_sync::store::Store;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutboxLabels {
    pub remote: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RemoteLabel {
    pub remote: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

fn latency_histogram() -> Histogram {
    // 50 µs … ~1.6 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Family<RouteLabel, Histogram>,
    pub sales_committed: Counter,
    pub sales_refused: Family<ReasonLabel, Counter>,
    pub commit_duration: Histogram,
    store_syncs: Counter,
    store_commits_synced: Counter,
    store_last_sync: Gauge<f64, AtomicU64>,
    store_checkpoints: Counter,
    store_last_checkpoint: Gauge<f64, AtomicU64>,
    store_size: Gauge,
    catalog_items: Gauge,
    outbox: Family<OutboxLabels, Gauge>,
    outbox_oldest: Family<RemoteLabel, Gauge>,
    sync_requests: Family<RemoteLabel, Counter>,
    sync_throttled: Family<RemoteLabel, Counter>,
    sync_errors: Family<RemoteLabel, Gauge>,
    sync_state: Family<OutboxLabels, Gauge>,
    sync_breaker_open: Family<RemoteLabel, Gauge>,
    sync_rate_limited: Family<RemoteLabel, Gauge>,
    sync_last_success: Family<RemoteLabel, Gauge>,
    pub ws_clients: Gauge,
    payments_open: Family<StateLabel, Gauge>,
    offline_pending: Gauge,
    offline_pending_minor: Gauge,
    uptime: Gauge,
    bus_connected: Gauge,
    bus_lag: Gauge,
    bus_applied: Counter,
    bus_bad: Counter,
    bus_lanes_up: Gauge,
    pub lanes_refused: Counter,
    pub lanes_flagged: Counter,
    started: Instant,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("edged");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register("http_requests", "API requests answered", http_requests.clone());
        let http_duration = Family::<RouteLabel, Histogram>::new_with_constructor(latency_histogram);
        registry.register("http_request_duration_seconds", "Time to answer an API request", http_duration.clone());
        let sales_committed = Counter::default();
        registry.register("sales_committed", "Sales made durable", sales_committed.clone());
        let sales_refused = Family::<ReasonLabel, Counter>::default();
        registry.register("sales_refused", "Sales refused, nothing stored", sales_refused.clone());
        let commit_duration = latency_histogram();
        registry.register(
            "sale_commit_duration_seconds",
            "Sale commit incl. flush and fdatasync",
            commit_duration.clone(),
        );
        let store_syncs = Counter::default();
        registry.register("store_syncs", "Commit journal fdatasync rounds", store_syncs.clone());
        let store_commits_synced = Counter::default();
        registry.register("store_commits_synced", "Commits covered by sync rounds", store_commits_synced.clone());
        let store_last_sync = Gauge::<f64, AtomicU64>::default();
        registry.register("store_last_sync_seconds", "Duration of the last sync round", store_last_sync.clone());
        let store_checkpoints = Counter::default();
        registry.register("store_checkpoints", "sled flush + fdatasync checkpoints", store_checkpoints.clone());
        let store_last_checkpoint = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "store_last_checkpoint_seconds",
            "Duration of the last checkpoint",
            store_last_checkpoint.clone(),
        );
        let store_size = Gauge::default();
        registry.register("store_size_bytes", "Store size on disk", store_size.clone());
        let catalog_items = Gauge::default();
        registry.register("catalog_items", "Items in the catalog", catalog_items.clone());
        let outbox = Family::<OutboxLabels, Gauge>::default();
        registry.register("outbox_entries", "Outbox entries by remote and state", outbox.clone());
        let outbox_oldest = Family::<RemoteLabel, Gauge>::default();
        registry.register(
            "outbox_oldest_waiting_seconds",
            "Age of the oldest undelivered entry",
            outbox_oldest.clone(),
        );
        let sync_requests = Family::<RemoteLabel, Counter>::default();
        registry.register("sync_requests", "Requests the sync worker sent", sync_requests.clone());
        let sync_throttled = Family::<RemoteLabel, Counter>::default();
        registry.register("sync_throttled", "429 answers received", sync_throttled.clone());
        let sync_errors = Family::<RemoteLabel, Gauge>::default();
        registry.register("sync_errors_last_hour", "Delivery errors in the last hour", sync_errors.clone());
        let sync_state = Family::<OutboxLabels, Gauge>::default();
        registry.register("sync_state", "1 for the sync worker's state", sync_state.clone());
        let sync_breaker_open = Family::<RemoteLabel, Gauge>::default();
        registry.register("sync_breaker_open", "1 while the circuit breaker is not closed", sync_breaker_open.clone());
        let sync_rate_limited = Family::<RemoteLabel, Gauge>::default();
        registry.register("sync_rate_limited", "1 while rate limited", sync_rate_limited.clone());
        let sync_last_success = Family::<RemoteLabel, Gauge>::default();
        registry.register(
            "sync_last_success_timestamp_seconds",
            "Unix time of the last answered request",
            sync_last_success.clone(),
        );
        let ws_clients = Gauge::default();
        registry.register("ws_clients", "Open event streams", ws_clients.clone());
        let payments_open = Family::<StateLabel, Gauge>::default();
        registry.register("payments_open", "Card payments not settled, by state", payments_open.clone());
        let offline_pending = Gauge::default();
        registry.register(
            "offline_payments_pending",
            "Offline card payments waiting to be forwarded",
            offline_pending.clone(),
        );
        let offline_pending_minor = Gauge::default();
        registry.register(
            "offline_payments_pending_minor",
            "Their total in minor units",
            offline_pending_minor.clone(),
        );
        let uptime = Gauge::default();
        registry.register("uptime_seconds", "Seconds since start", uptime.clone());
        let bus_connected = Gauge::default();
        registry.register("bus_connected", "1 while the store's bus is connected and followed", bus_connected.clone());
        let bus_lag = Gauge::default();
        registry.register("bus_lag_messages", "Store stream messages not applied yet", bus_lag.clone());
        let bus_applied = Counter::default();
        registry.register("bus_applied", "Other lanes' messages applied to the replica", bus_applied.clone());
        let bus_bad = Counter::default();
        registry.register("bus_bad_messages", "Store stream messages that could not be read", bus_bad.clone());
        let bus_lanes_up = Gauge::default();
        registry.register("bus_lanes_up", "Lanes with a heartbeat in the last 15 s", bus_lanes_up.clone());
        let lanes_refused = Counter::default();
        registry.register("lanes_refused", "Sales and refunds refused by a claim across lanes", lanes_refused.clone());
        let lanes_flagged = Counter::default();
        registry.register("lanes_flags", "Refunds allowed without the store's server", lanes_flagged.clone());
        Metrics {
            registry,
            http_requests,
            http_duration,
            sales_committed,
            sales_refused,
            commit_duration,
            store_syncs,
            store_commits_synced,
            store_last_sync,
            store_checkpoints,
            store_last_checkpoint,
            store_size,
            catalog_items,
            outbox,
            outbox_oldest,
            sync_requests,
            sync_throttled,
            sync_errors,
            sync_state,
            sync_breaker_open,
            sync_rate_limited,
            sync_last_success,
            ws_clients,
            payments_open,
            offline_pending,
            offline_pending_minor,
            uptime,
            bus_connected,
            bus_lag,
            bus_applied,
            bus_bad,
            bus_lanes_up,
            lanes_refused,
            lanes_flagged,
            started: Instant::now(),
        }
    }

    /// The store bus as this lane sees it (before [`Metrics::render`]).
    pub fn set_bus(&self, v: &edge_sync::bus::live::BusView) {
        let add = |c: &Counter, total: u64| {
            let cur = c.get();
            if total > cur {
                c.inc_by(total - cur);
            }
        };
        self.bus_connected.set(i64::from(v.connected && v.ready));
        self.bus_lag.set(i64::try_from(v.me.lag).unwrap_or(i64::MAX));
        add(&self.bus_applied, v.me.applied);
        add(&self.bus_bad, v.me.bad_messages);
        let now = jiff::Timestamp::now().as_millisecond();
        let stale = edge_sync::bus::live::LANE_STALE.as_millis() as i64;
        let up = v.lanes.values().filter(|l| l.at.is_some_and(|t| now - t.as_millisecond() < stale)).count();
        self.bus_lanes_up.set(i64::try_from(up).unwrap_or(i64::MAX));
    }

    /// Reads the store's figures and renders everything.
    pub fn render(
        &self,
        store: &dyn Store,
        sync: &[(String, edge_sync::engine::Health)],
        now: jiff::Timestamp,
    ) -> String {
        let st = store.stats();
        // Counters only move forward: add what happened since the last scrape.
        let add = |c: &Counter, total: u64| {
            let cur = c.get();
            if total > cur {
                c.inc_by(total - cur);
            }
        };
        add(&self.store_syncs, st.syncs);
        add(&self.store_commits_synced, st.commits_synced);
        self.store_last_sync.set(st.last_sync_micros as f64 / 1e6);
        add(&self.store_checkpoints, st.checkpoints);
        self.store_last_checkpoint.set(st.last_checkpoint_micros as f64 / 1e6);
        self.store_size.set(i64::try_from(st.size_on_disk_bytes).unwrap_or(i64::MAX));
        self.catalog_items.set(i64::try_from(st.items).unwrap_or(i64::MAX));
        for (remote, c) in store.outbox_counts() {
            for (state, n) in [
                ("pending", c.pending),
                ("in_flight", c.in_flight),
                ("unknown", c.unknown),
                ("confirmed", c.confirmed),
                ("rejected", c.rejected),
                ("dead", c.dead),
            ] {
                self.outbox
                    .get_or_create(&OutboxLabels { remote: remote.to_string(), state: state.into() })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            let age = c.oldest_waiting.map(|t| (now - t).get_seconds().max(0)).unwrap_or(0);
            self.outbox_oldest.get_or_create(&RemoteLabel { remote: remote.to_string() }).set(age);
        }
        if let Ok(open) = store.payments_open() {
            let mut by: std::collections::BTreeMap<&str, i64> =
                ["intent", "in_doubt", "approved", "reversal_failed"].into_iter().map(|s| (s, 0)).collect();
            let (mut n, mut minor) = (0i64, 0i64);
            for p in &open {
                use edge_sync::domain::PaymentState as S;
                let key = match p.state {
                    S::Intent => "intent",
                    S::InDoubt => "in_doubt",
                    S::Approved => "approved",
                    S::ReversalFailed => "reversal_failed",
                    _ => {
                        if p.offline && !p.forwarded {
                            n += 1;
                            minor += p.amount_minor;
                        }
                        continue;
                    }
                };
                *by.entry(key).or_default() += 1;
            }
            for (state, count) in by {
                self.payments_open.get_or_create(&StateLabel { state: state.into() }).set(count);
            }
            self.offline_pending.set(n);
            self.offline_pending_minor.set(minor);
        }
        for (remote, h) in sync {
            let l = RemoteLabel { remote: remote.clone() };
            add(&self.sync_requests.get_or_create(&l), h.requests_total);
            add(&self.sync_throttled.get_or_create(&l), h.throttled_total);
            self.sync_errors.get_or_create(&l).set(i64::try_from(h.errors_last_hour).unwrap_or(i64::MAX));
            for st in ["idle", "connected", "degraded", "down", "shadow"] {
                self.sync_state
                    .get_or_create(&OutboxLabels { remote: remote.clone(), state: st.into() })
                    .set(i64::from(h.state == st));
            }
            self.sync_breaker_open.get_or_create(&l).set(i64::from(h.breaker != "closed"));
            self.sync_rate_limited.get_or_create(&l).set(i64::from(h.rate_limit != "ok"));
            self.sync_last_success.get_or_create(&l).set(h.last_success_at.map_or(0, |t| t.as_second()));
        }
        self.uptime.set(i64::try_from(self.started.elapsed().as_secs()).unwrap_or(i64::MAX));
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
