//! Deterministic simulation of the sync engine (wall 6 of the architecture).
//!
//! One seed decides everything: when sales are made, when the edge crashes, which faults
//! the network and the fake cloud inject (outage, partition, slow replies, replies lost
//! after the remote kept the batch, 429 storms, expired credentials, per-event retries,
//! invalid records), and the jitter of the engine. Time is virtual, so hours of outages run
//! in milliseconds and a failing seed replays exactly.
//!
//! What runs is the production code: [`Worker`] with the real [`CloudConnector`], against
//! the real [`FakeCloud`] state machine. Only two things are simulated: the network (a
//! queue of messages with delivery times) and the store's durability — [`SimStore`] keeps
//! a durable copy that changes only by a durable outbox move and a sale commit (both durable
//! by contract), and a crash throws away everything else, as a SIGKILL would.
//!
//! Every sale goes to three remotes — the cloud, Lightspeed and NetSuite, each with its
//! real connector, its own fake, faults and worker — so one remote's trouble must not hold
//! the others back. Lightspeed runs with short-lived access tokens (refreshes race crashes
//! and lost replies; the tokens survive a crash only if saved before use) and its real
//! bucket; NetSuite with TBA and its upsert by external id. About one sale in eight is
//! followed by a stock adjustment, which goes to the cloud (a `stock.adjusted` event) and
//! NetSuite (an `inventoryAdjustment` by `eid:`), never to Lightspeed. Checked after every
//! step: no record at a remote without a local origin, no record kept twice, every
//! Confirmed entry matches what the remote kept. Checked after the healed phase: every
//! acknowledged sale and adjustment confirmed exactly once at every remote it goes to (or
//! rejected there, if that fake was told to refuse it), nothing pending, in flight or
//! unknown.
//!
//! Stock: one remote per seed is the stock source (the cloud, NetSuite or Lightspeed, by
//! `seed % 3`), and the edge pulls it as edged does — the cloud's stock feed by cursor
//! (`cloud::pull`), NetSuite's SuiteQL round (`netsuite::live::SuiteqlRead`), Lightspeed's
//! ItemShop feed by `timeStamp` with the re-read of waiting SKUs, its tokens and pacer
//! shared with the delivery worker (`lightspeed::live`) — through the same faults and
//! crashes, applying the rule of `stock` to [`SimStore`]'s levels and deltas (durable with
//! their records; a pull's writes only at a checkpoint, like the cursor). Checked at every
//! 16th step: no record outside a level has left the shown stock. Checked at the end, after
//! a complete read begun once every record settled: each SKU shows the source's level plus
//! the deltas the source has not counted.

use super::{OutboxStore, Policy, Poll, Worker};
use crate::cloud::CloudConnector;
use crate::cloud::fake::{Disposition, FakeCloud, FakeConfig, Faults};
use crate::domain::{
    AdjustReason, Item, ItemKind, LineRequest, OutboxEntry, OutboxState, Record, RecordKind, Remote, Sale, SaleStatus,
    StockAdjustment, StockLevel, TaxMode, Tender, price_line, settle,
};
use crate::lightspeed::connector::{LightspeedConnector, LsAuth};
use crate::lightspeed::fake::{FakeLightspeed, LsFakeConfig};
use crate::lightspeed::oauth::TokenSet;
use crate::mapping::{LightspeedMap, NetSuiteMap};
use crate::money::Currency;
use crate::netsuite::connector::{NetSuiteConnector, NsAuth};
use crate::netsuite::fake::{FakeNetSuite, NsFakeConfig};
use crate::store::{OutboxMove, StoreError};
use crate::wire::{HttpRequest, HttpResponse, TransportError};
use jiff::Timestamp;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use uuid::Uuid;

use super::Jitter;

/// Three remotes with their own fakes, faults and workers: every sale goes to all.
const REMOTES: [Remote; 4] = Remote::ALL;
/// The remotes that take stock adjustments (Lightspeed keeps absolute levels: none).
const TAKES_ADJUSTMENTS: [Remote; 3] = [Remote::Cloud, Remote::Netsuite, Remote::Shopify];
const CLOUD_SECRET: &[u8] = b"demo-cloud-secret";
const SIM_BASE: &str = "http://sim.invalid";
/// Items the simulated sales draw from (`sim_item`).
const SIM_ITEMS: u64 = 40;
const STORE_ID: &str = "store-001";
const START_MS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const REQUEST_TIMEOUT_MS: i64 = 5_000;

#[derive(Debug, Clone, Default)]
struct StoreState {
    entries: BTreeMap<Uuid, OutboxEntry>,
    sales: BTreeMap<Uuid, Sale>,
    adjustments: BTreeMap<Uuid, StockAdjustment>,
    /// Local stock: each SKU's level from the cloud (the stock source) …
    levels: BTreeMap<String, StockLevel>,
    /// … and the deltas it does not reflect yet: (SKU, record, line) → delta.
    deltas: BTreeMap<(String, Uuid, u32), i64>,
    /// The cloud stock feed's cursor.
    stock_cursor: u64,
    /// Lightspeed's ItemShop feed cursor (the newest `timeStamp` read; empty: none yet).
    ls_cursor: String,
    /// The stores' meta `lightspeed.newest_sale` / `netsuite.newest_record`: the newest
    /// number the source had confirmed when a read began, kept across restarts.
    ls_newest: u64,
    ns_newest: u64,
}

impl StoreState {
    /// A committed record's stock deltas (durable with it, as in the real store).
    fn add_delta(&mut self, sku: &str, record: Uuid, line: u32, delta: i64) {
        self.deltas.insert((sku.to_string(), record, line), delta);
        let l = self.levels.entry(sku.to_string()).or_default();
        l.unreflected = l.unreflected.saturating_add(delta);
    }

    /// The number `source` confirmed a record under (locally known), if it did: the
    /// cloud's event number, NetSuite's internal id — as edged reads them.
    fn confirmed_number(&self, source: Remote, record: &Uuid) -> Option<u64> {
        self.entries.values().find_map(|e| match &e.state {
            OutboxState::Confirmed { remote_id } if e.remote == source && e.record_id == *record => {
                source_number(source, remote_id)
            }
            _ => None,
        })
    }

    /// A SKU's deltas as the stock decisions see them, with their keys.
    fn views(&self, source: Remote, sku: &str) -> (Vec<(String, Uuid, u32)>, Vec<crate::stock::DeltaView>) {
        let from = (sku.to_string(), Uuid::nil(), 0);
        let mut keys = Vec::new();
        let mut views = Vec::new();
        for (k, d) in self.deltas.range(from..).take_while(|(k, _)| k.0 == sku) {
            keys.push(k.clone());
            views.push(crate::stock::DeltaView { delta: *d, confirmed: self.confirmed_number(source, &k.1) });
        }
        (keys, views)
    }

    /// Levels from the stock source, applied as the real store applies them: each level
    /// rebased; once the whole feed is read, confirmed deltas settled against their marker.
    fn apply_levels(
        &mut self,
        source: Remote,
        levels: &[(String, i64, Timestamp)],
        through: u64,
        read_all: bool,
    ) -> Vec<String> {
        let mut waiting = Vec::new();
        for (sku, level, at) in levels {
            let cur = self.levels.get(sku).cloned().unwrap_or_default();
            let (keys, views) = self.views(source, sku);
            if let crate::stock::Rebase::Level { next, drop } =
                crate::stock::rebase(&cur, source, *level, *at, through, &views)
            {
                for i in drop {
                    self.deltas.remove(&keys[i]);
                }
                self.levels.insert(sku.clone(), next);
            }
        }
        if read_all {
            let skus: Vec<String> = self.levels.keys().cloned().collect();
            for sku in skus {
                let cur = self.levels.get(&sku).cloned().unwrap_or_default();
                let (keys, views) = self.views(source, &sku);
                let s = crate::stock::settle(&cur, source, &views);
                if s.waits {
                    waiting.push(sku.clone());
                }
                if let Some(next) = s.next {
                    for i in s.drop {
                        self.deltas.remove(&keys[i]);
                    }
                    self.levels.insert(sku, next);
                }
            }
        }
        waiting
    }
}

/// An outbox store whose unsynced writes a crash loses.
#[derive(Default)]
pub struct SimStore {
    live: Mutex<StoreState>,
    durable: Mutex<StoreState>,
}

impl SimStore {
    fn live(&self) -> std::sync::MutexGuard<'_, StoreState> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn durable(&self) -> std::sync::MutexGuard<'_, StoreState> {
        self.durable.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A sale commit with its outbox entries: durable at once (the real store syncs before
    /// answering).
    pub fn commit(&self, sale: Sale, entries: Vec<OutboxEntry>) {
        for st in [&mut *self.live(), &mut *self.durable()] {
            for l in &sale.lines {
                st.add_delta(&l.sku, sale.id, l.line_no, l.quantity.sold_delta());
            }
            st.sales.insert(sale.id, sale.clone());
            for e in &entries {
                st.entries.insert(e.id, e.clone());
            }
        }
    }

    /// A stock adjustment with its outbox entries: durable at once (the real store makes a
    /// checkpoint before answering).
    pub fn commit_adjustment(&self, a: StockAdjustment, entries: Vec<OutboxEntry>) {
        for st in [&mut *self.live(), &mut *self.durable()] {
            st.add_delta(&a.sku, a.id, 0, a.delta);
            st.adjustments.insert(a.id, a.clone());
            for e in &entries {
                st.entries.insert(e.id, e.clone());
            }
        }
    }

    /// A checkpoint of the real store: everything so far becomes durable.
    pub fn checkpoint(&self) {
        let live = self.live().clone();
        *self.durable() = live;
    }

    /// SIGKILL: what was not synced is gone.
    pub fn crash(&self) {
        let d = self.durable().clone();
        *self.live() = d;
    }

    pub fn entries(&self) -> Vec<OutboxEntry> {
        self.live().entries.values().cloned().collect()
    }

    /// An operator's replay of refused records (after a mapping was added).
    pub fn replay_rejected(&self, at: Timestamp) -> usize {
        let mut st = self.live();
        let mut n = 0;
        for e in st.entries.values_mut() {
            if matches!(e.state, OutboxState::Rejected { .. }) {
                e.state = OutboxState::Pending;
                e.updated_at = at;
                n += 1;
            }
        }
        n
    }

    /// An operator's dead-letter replay (`edgectl queue dead retry`).
    pub fn replay_dead(&self, at: Timestamp) -> usize {
        let mut st = self.live();
        let mut n = 0;
        for e in st.entries.values_mut() {
            if matches!(e.state, OutboxState::Dead { .. }) {
                e.state = OutboxState::Pending;
                e.updated_at = at;
                n += 1;
            }
        }
        n
    }
}

impl OutboxStore for SimStore {
    fn outbox_waiting(
        &self,
        remote: Remote,
        after: Option<&Uuid>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let st = self.live();
        let lower = match after {
            Some(a) => std::ops::Bound::Excluded(*a),
            None => std::ops::Bound::Unbounded,
        };
        Ok(st
            .entries
            .range((lower, std::ops::Bound::Unbounded))
            .map(|(_, e)| e)
            .filter(|e| {
                e.remote == remote
                    && matches!(e.state, OutboxState::Pending | OutboxState::InFlight { .. } | OutboxState::Unknown)
            })
            .take(limit)
            .cloned()
            .collect())
    }

    fn transition_outbox_many(
        &self,
        moves: &[OutboxMove],
        at: Timestamp,
    ) -> Result<Vec<Result<OutboxEntry, String>>, StoreError> {
        let mut st = self.live();
        Ok(moves
            .iter()
            .map(|m| {
                let e = st.entries.get_mut(&m.id).ok_or_else(|| format!("no entry {}", m.id))?;
                if e.state != m.expected {
                    return Err(format!("entry {} is {} not {}", m.id, e.state.name(), m.expected.name()));
                }
                if let OutboxState::InFlight { attempt } = m.next {
                    e.attempts = e.attempts.max(attempt);
                }
                e.state = m.next.clone();
                e.updated_at = at;
                Ok(e.clone())
            })
            .collect())
    }

    fn transition_outbox_durable(
        &self,
        moves: &[OutboxMove],
        at: Timestamp,
    ) -> Result<Vec<Result<OutboxEntry, String>>, StoreError> {
        // The real store journals exactly the applied moves; the rest of the live state
        // stays as durable (or not) as it was.
        let res = self.transition_outbox_many(moves, at)?;
        let mut d = self.durable();
        for e in res.iter().flatten() {
            d.entries.insert(e.id, e.clone());
        }
        Ok(res)
    }

    fn record(&self, entry: &OutboxEntry) -> Result<Option<crate::domain::Record>, StoreError> {
        let st = self.live();
        Ok(match entry.kind {
            RecordKind::Adjustment => st.adjustments.get(&entry.record_id).cloned().map(Record::Adjustment),
            _ => st.sales.get(&entry.record_id).cloned().map(|s| Record::Sale(Box::new(s))),
        })
    }
}

/// What a simulation run is asked to do.
#[derive(Debug, Clone)]
pub struct SimParams {
    pub seed: u64,
    /// Sales made during the chaos phase.
    pub sales: usize,
    /// Virtual length of the chaos phase.
    pub chaos_ms: i64,
    /// The healed phase must settle everything within this virtual time.
    pub heal_limit_ms: i64,
}

impl SimParams {
    pub fn new(seed: u64) -> SimParams {
        SimParams { seed, sales: 60, chaos_ms: 600_000, heal_limit_ms: 3_600_000 }
    }
}

/// Figures of one run.
#[derive(Debug, Clone, Default)]
pub struct SimReport {
    pub seed: u64,
    pub steps: u64,
    pub sales: usize,
    /// Stock adjustments made (to the cloud and NetSuite).
    pub adjustments: usize,
    pub rejected_on_purpose: usize,
    pub crashes: u32,
    pub requests: u64,
    pub lost_replies: u64,
    pub timeouts: u64,
    pub partitions: u64,
    pub throttled: u64,
    pub dead_replayed: usize,
    /// Stock pages asked of the cloud, and levels applied.
    pub pulls: u64,
    pub stock_levels: u64,
    pub virtual_ms: i64,
}

/// A broken promise, with the seed that shows it and the last things that happened.
#[derive(Debug, Clone)]
pub struct SimFailure {
    pub seed: u64,
    pub step: u64,
    pub what: String,
    pub trace: Vec<String>,
}

impl std::fmt::Display for SimFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "seed {} failed at step {}: {}", self.seed, self.step, self.what)?;
        writeln!(f, "replay: SIM_SEED={} cargo test -p edge-sync --test sim", self.seed)?;
        writeln!(f, "last events:")?;
        for t in &self.trace {
            writeln!(f, "  {t}")?;
        }
        Ok(())
    }
}

enum Net {
    /// A request reaches remote `r`.
    Arrive { r: usize, epoch: u32, seq: u64, req: HttpRequest, reply_latency_ms: i64, deadline_ms: i64 },
    /// A reply (or its absence) from remote `r` reaches the edge.
    Reply { r: usize, epoch: u32, seq: u64, reply: Result<HttpResponse, TransportError> },
}

/// One remote: its fake, the edge's worker for it, and the faults of the path to it.
struct Peer {
    name: Remote,
    fake: SimFake,
    worker: Worker,
    /// What its worker shares with the stock pull (as in edged).
    shared: Shared,
    /// Requests whose reply the edge is still waiting for: seq → (epoch, deadline).
    waiting: BTreeMap<u64, (u32, i64)>,
    partition: bool,
    slow: bool,
    lose_reply_net: bool,
    rejects: BTreeSet<Uuid>,
}

/// Sequence numbers of the stock pull's requests (apart from the workers').
const PULL_SEQ_BASE: u64 = 1 << 62;

/// The number in a remote id of the stock source, as edged reads it.
fn source_number(source: Remote, remote_id: &str) -> Option<u64> {
    match source {
        Remote::Cloud => crate::cloud::pull::event_number(remote_id),
        Remote::Netsuite | Remote::Lightspeed => remote_id.parse().ok(),
        Remote::Shopify => crate::shopify::confirmation_number(remote_id),
        // The bus is never a stock source.
        Remote::Bus => None,
    }
}

/// Where a NetSuite pull round stands: its items query, then its stock query.
enum NsStep {
    Items(crate::netsuite::live::SuiteqlRead),
    Stock { skus: BTreeMap<String, (String, ItemKind)>, read: crate::netsuite::live::SuiteqlRead },
}

/// Where a Lightspeed pull round stands: the ItemShop feed by `timeStamp`, then the rows of
/// the SKUs whose confirmed sale is newer than their level's marker, read again by itemID.
enum LsStep {
    Feed { path: String, newest: String },
    Reread { chunks: std::collections::VecDeque<Vec<u64>>, path: Option<String>, seen: u64 },
}

/// A Lightspeed round under way: the marker taken when it began.
struct LsRoundState {
    seen: u64,
    step: LsStep,
}

/// A NetSuite round under way: the marker taken when it began, the read's time.
struct NsRoundState {
    seen: u64,
    read_at: Timestamp,
    step: NsStep,
}

/// The cloud's stock feed, pulled as edged pulls it (request and page check from
/// `cloud::pull`, the rebase and settle rule from `stock`).
struct StockPull {
    /// The stock source of this run (the cloud or NetSuite, by seed).
    source: Remote,
    puller: crate::cloud::pull::Puller,
    /// NetSuite's round under way.
    ns: Option<NsRoundState>,
    /// Lightspeed's round under way, and whether the request in flight is a token refresh.
    ls: Option<LsRoundState>,
    refreshing: bool,
    /// The request in flight, if any.
    inflight: Option<u64>,
    next_seq: u64,
    /// When the next page is asked for.
    at_ms: i64,
    /// When the round under way asked for its first page.
    round_from_ms: i64,
    /// When the last complete round (the feed read to its end) asked for its first page.
    last_round_from_ms: Option<i64>,
}

struct Sim {
    pull: StockPull,
    rng: Jitter,
    vault: TokenVault,
    now_ms: i64,
    epoch: u32,
    store: SimStore,
    remotes: Vec<Peer>,
    net: BTreeMap<(i64, u64), Net>,
    net_seq: u64,
    trace: Vec<String>,
    report: SimReport,
    step: u64,
}

pub(crate) fn now_ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn policy() -> Policy {
    // Few attempts per record, so records do become dead letters and the replay path runs.
    Policy {
        max_batch: 20,
        max_in_flight: 2,
        breaker_open_ms: 20_000,
        backoff_max_ms: 120_000,
        max_record_attempts: 3,
        ..Policy::default()
    }
}

/// A remote's fake, whichever protocol it speaks.
enum SimFake {
    Cloud(Box<FakeCloud>),
    Lightspeed(Box<FakeLightspeed>),
    NetSuite(Box<FakeNetSuite>),
    Shopify(Box<crate::shopify::fake::FakeShopify>),
}

/// One record a remote keeps: the entry id when the remote keys by it (the cloud), the
/// sale, the remote's id.
struct Kept {
    entry: Option<Uuid>,
    record: Uuid,
    remote_id: String,
}

impl SimFake {
    fn handle(&mut self, now: Timestamp, req: &HttpRequest) -> Disposition {
        match self {
            SimFake::Cloud(f) => f.handle(now, req),
            SimFake::Lightspeed(f) => f.handle(now, req),
            SimFake::NetSuite(f) => f.handle(now, req, 1),
            SimFake::Shopify(f) => f.handle(now, req),
        }
    }
    fn faults(&self) -> &Faults {
        match self {
            SimFake::Cloud(f) => f.faults(),
            SimFake::Lightspeed(f) => f.faults(),
            SimFake::NetSuite(f) => f.faults(),
            SimFake::Shopify(f) => f.faults(),
        }
    }
    fn set_faults(&mut self, x: Faults) {
        match self {
            SimFake::Cloud(f) => f.set_faults(x),
            SimFake::Lightspeed(f) => f.set_faults(x),
            SimFake::NetSuite(f) => f.set_faults(x),
            SimFake::Shopify(f) => f.set_faults(x),
        }
    }
    fn kept(&self) -> Vec<Kept> {
        match self {
            SimFake::Cloud(f) => f
                .events()
                .iter()
                .map(|(id, k)| Kept { entry: Some(*id), record: k.record_id, remote_id: k.remote_id.clone() })
                .collect(),
            SimFake::Lightspeed(f) => f
                .sales()
                .values()
                .map(|s| Kept {
                    entry: None,
                    record: Uuid::parse_str(&s.reference_number).unwrap_or_default(),
                    remote_id: s.sale_id.to_string(),
                })
                .collect(),
            SimFake::NetSuite(f) => f
                .records()
                .values()
                .map(|r| Kept {
                    entry: None,
                    record: r.external_id.as_deref().and_then(|e| Uuid::parse_str(e).ok()).unwrap_or_default(),
                    remote_id: r.id.to_string(),
                })
                .collect(),
            // Orders by sourceIdentifier, adjustments by their idempotency key.
            SimFake::Shopify(f) => f
                .orders()
                .values()
                .map(|o| (o.source_identifier.as_str(), o.id.clone()))
                .chain(f.adjustments().iter().map(|a| (a.idempotency_key.as_str(), a.id.clone())))
                .chain(f.refunds().iter().map(|r| (r.idempotency_key.as_str(), r.id.clone())))
                .map(|(rec, id)| Kept { entry: None, record: Uuid::parse_str(rec).unwrap_or_default(), remote_id: id })
                .collect(),
        }
    }
}

fn ls_map() -> LightspeedMap {
    // unknown_wait_s (20 s) is longer than the slowest simulated request takes to land (7 s).
    LightspeedMap { unknown_wait_s: 20, ..LightspeedMap::demo(SIM_ITEMS) }
}

/// The demo shop with the simulation's items pinned to the fake's variants
/// (`demo_item(i)` is variant and inventory item i + 1). unknown_wait_s as Lightspeed's.
fn shopify_map() -> crate::mapping::ShopifyMap {
    let mut m = crate::mapping::ShopifyMap { unknown_wait_s: 20, ..crate::mapping::ShopifyMap::demo() };
    for i in 0..SIM_ITEMS {
        let sku = crate::demo::demo_item(i).sku;
        m.variants.insert(sku.clone(), format!("gid://shopify/ProductVariant/{}", i + 1));
        m.inventory_items.insert(sku, format!("gid://shopify/InventoryItem/{}", i + 1));
    }
    m
}

fn ns_map() -> NetSuiteMap {
    NetSuiteMap::demo()
}

/// Lightspeed's tokens as the store keeps them: what a crash leaves.
type TokenVault = std::sync::Arc<Mutex<TokenSet>>;

/// What a worker shares with the stock pull, as in edged: Lightspeed's tokens and pacer
/// (with the newest saleID confirmed), NetSuite's newest internal id confirmed.
#[derive(Default, Clone)]
struct Shared {
    ls: Option<std::sync::Arc<LsAuth>>,
    ns: Option<std::sync::Arc<crate::netsuite::live::NsNewest>>,
}

/// The worker of a remote, and what it shares with the stock pull.
fn worker(name: Remote, seed: u64, vault: &TokenVault) -> (Worker, Shared) {
    let mut shared = Shared::default();
    let connector: Box<dyn super::Connector> = match name {
        Remote::Lightspeed => {
            let tokens = vault.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let v = vault.clone();
            let auth = LsAuth::new(
                "demo-client",
                "demo-secret",
                tokens,
                Box::new(move |t| {
                    *v.lock().unwrap_or_else(|p| p.into_inner()) = t.clone();
                    Ok(())
                }),
            );
            shared.ls = Some(auth.clone());
            Box::new(LightspeedConnector::new(ls_map(), auth, std::sync::Arc::new(|_| None), None))
        }
        Remote::Netsuite => {
            let newest = std::sync::Arc::new(crate::netsuite::live::NsNewest::default());
            shared.ns = Some(newest.clone());
            Box::new(
                NetSuiteConnector::new(
                    ns_map(),
                    NsAuth::Tba(crate::netsuite::fake::demo_tba()),
                    SIM_BASE,
                    seed ^ 0x4e53,
                )
                .with_newest(newest),
            )
        }
        Remote::Shopify => {
            let map = shopify_map();
            Box::new(crate::shopify::connector::ShopifyConnector::new(
                map,
                crate::shopify::connector::Shop::new(),
                crate::shopify::fake::DEMO_TOKEN,
                std::sync::Arc::new(|_| None),
                false,
            ))
        }
        Remote::Cloud | Remote::Bus => Box::new(CloudConnector::new(STORE_ID, CLOUD_SECRET)),
    };
    (Worker::new(name, connector, policy(), seed), shared)
}

pub(crate) fn sim_item(n: u64) -> Item {
    let mut it = crate::demo::demo_item(n % 40);
    it.kind = ItemKind::Unit;
    it
}

pub(crate) fn new_uuid(rng: &mut Jitter, ms: i64) -> Uuid {
    let mut rand = [0u8; 10];
    for b in rand.iter_mut() {
        *b = rng.next_u64() as u8;
    }
    uuid::Builder::from_unix_timestamp_millis(ms as u64, &rand).into_uuid()
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = Jitter::new(seed);
        let vault: TokenVault = std::sync::Arc::new(Mutex::new(TokenSet {
            access: String::new(),
            refresh: "demo-refresh-token".into(),
            access_expires_at_ms: 0,
            refresh_used_at_ms: START_MS,
            previous_refresh: None,
        }));
        let remotes = REMOTES
            .iter()
            .map(|name| {
                let fake_seed = rng.next_u64();
                let worker_seed = rng.next_u64();
                let fake = match *name {
                    Remote::Lightspeed => {
                        let mut cfg = LsFakeConfig::demo(SIM_BASE);
                        cfg.catalog_size = SIM_ITEMS;
                        // Short-lived access tokens: many refreshes per run.
                        cfg.access_lifetime_s = 240;
                        // Five registers' bucket, sped up 4x: a run's sales fit its drip.
                        cfg.registers = 5;
                        cfg.speed = 4;
                        SimFake::Lightspeed(Box::new(FakeLightspeed::new(cfg, fake_seed)))
                    }
                    Remote::Netsuite => {
                        let mut cfg = NsFakeConfig::demo(SIM_BASE);
                        cfg.catalog_size = SIM_ITEMS;
                        SimFake::NetSuite(Box::new(FakeNetSuite::new(cfg, fake_seed)))
                    }
                    Remote::Shopify => {
                        let mut cfg = crate::shopify::fake::ShopifyFakeConfig::demo(SIM_BASE);
                        cfg.catalog_size = SIM_ITEMS;
                        // A Standard plan's bucket, restored at real speed: bursts of sales
                        // after an outage meet it, and the pacer must keep them out of
                        // "Throttled".
                        SimFake::Shopify(Box::new(crate::shopify::fake::FakeShopify::new(cfg, fake_seed)))
                    }
                    Remote::Cloud | Remote::Bus => {
                        let mut cfg = FakeConfig::new(STORE_ID, CLOUD_SECRET);
                        cfg.bucket_capacity = 50.0;
                        cfg.refill_per_s = 5.0;
                        let mut f = FakeCloud::new(cfg, fake_seed);
                        // Adjustments name SKUs the cloud must know.
                        f.seed_catalog(SIM_ITEMS);
                        SimFake::Cloud(Box::new(f))
                    }
                };
                let (w, shared) = worker(*name, worker_seed, &vault);
                Peer {
                    name: *name,
                    fake,
                    worker: w,
                    shared,
                    waiting: BTreeMap::new(),
                    partition: false,
                    slow: false,
                    lose_reply_net: false,
                    rejects: BTreeSet::new(),
                }
            })
            .collect();
        Sim {
            pull: StockPull {
                source: [Remote::Cloud, Remote::Netsuite, Remote::Lightspeed][(seed % 3) as usize],
                puller: crate::cloud::pull::Puller::new(STORE_ID, CLOUD_SECRET),
                ns: None,
                ls: None,
                refreshing: false,
                inflight: None,
                next_seq: PULL_SEQ_BASE,
                at_ms: START_MS,
                round_from_ms: START_MS,
                last_round_from_ms: None,
            },
            rng,
            vault,
            now_ms: START_MS,
            epoch: 0,
            store: SimStore::default(),
            remotes,
            net: BTreeMap::new(),
            net_seq: 0,
            trace: Vec::new(),
            report: SimReport { seed, ..SimReport::default() },
            step: 0,
        }
    }

    fn log(&mut self, s: String) {
        if self.trace.len() >= 200 {
            self.trace.remove(0);
        }
        self.trace.push(format!("t+{}ms {s}", self.now_ms - START_MS));
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.rng.next_u64() as f64 / u64::MAX as f64) < p
    }

    fn push_net(&mut self, at: i64, n: Net) {
        self.net_seq += 1;
        self.net.insert((at, self.net_seq), n);
    }

    fn make_sale(&mut self) -> Result<(), String> {
        let at = now_ts(self.now_ms);
        let bd = at.to_zoned(jiff::tz::TimeZone::UTC).date();
        let n_lines = 1 + self.rng.below(3) as u32;
        let mut lines = Vec::new();
        for i in 0..n_lines {
            let item = sim_item(self.rng.below(1000));
            let q = LineRequest::Units(1 + self.rng.below(3));
            let l = price_line(i + 1, &item, &q, None, TaxMode::Inclusive, Currency::EUR, bd)
                .map_err(|e| format!("sim sale line: {e}"))?;
            lines.push(l);
        }
        let total: i64 = lines.iter().map(|l| l.gross_minor).sum();
        let tenders = vec![Tender::Cash { amount_minor: total + self.rng.below(500) as i64 }];
        let (net, tax, total, tendered, change) =
            settle(&lines, &tenders, Currency::EUR).map_err(|e| format!("sim sale settle: {e}"))?;
        let id = new_uuid(&mut self.rng, self.now_ms);
        let sale = Sale {
            id,
            status: SaleStatus::Completed,
            kind: crate::domain::SaleKind::Sale,
            refund_of: None,
            reason: None,
            created_at: at,
            business_date: bd,
            store_id: STORE_ID.into(),
            currency: Currency::EUR,
            tax_mode: TaxMode::Inclusive,
            lines,
            tenders,
            net_minor: net,
            tax_minor: tax,
            total_minor: total,
            tendered_minor: tendered,
            change_minor: change,
            request_id: format!("sim-{}", self.report.sales),
            actor: "cashier".into(),
            approved_by: None,
            receipt_no: None,
            lane: None,
            cashier: None,
            age_check: None,
        };
        let entries = self.entries_for(RecordKind::Sale, id, &sale.request_id, &REMOTES);
        self.store.commit(sale, entries);
        self.report.sales += 1;
        self.log(format!("sale {id} acknowledged"));
        Ok(())
    }

    /// One outbox entry per remote in `to` for a record made now. Now and then one remote
    /// is told to refuse the record as invalid; the others keep it.
    fn entries_for(&mut self, kind: RecordKind, id: Uuid, request_id: &str, to: &[Remote]) -> Vec<OutboxEntry> {
        let at = now_ts(self.now_ms);
        let mut entries = Vec::new();
        for r in 0..self.remotes.len() {
            if !to.contains(&self.remotes[r].name) {
                continue;
            }
            entries.push(OutboxEntry {
                id: new_uuid(&mut self.rng, self.now_ms),
                remote: self.remotes[r].name,
                kind,
                record_id: id,
                state: OutboxState::Pending,
                attempts: 0,
                created_at: at,
                updated_at: at,
                request_id: request_id.to_string(),
            });
            if self.chance(0.02) {
                let rm = &mut self.remotes[r];
                rm.rejects.insert(id);
                let mut f = rm.fake.faults().clone();
                f.reject_records.insert(id);
                rm.fake.set_faults(f);
                self.report.rejected_on_purpose += 1;
            }
        }
        entries
    }

    /// A manager's stock adjustment, to the remotes that take them.
    fn make_adjustment(&mut self) {
        let at = now_ts(self.now_ms);
        let reasons = [
            AdjustReason::Count,
            AdjustReason::Damaged,
            AdjustReason::Theft,
            AdjustReason::Received,
            AdjustReason::ReturnedToVendor,
            AdjustReason::Correction,
        ];
        let reason = reasons[self.rng.below(reasons.len() as u64 - 1) as usize];
        let size = 1 + self.rng.below(9) as i64;
        let delta = if reason == AdjustReason::Received || (reason == AdjustReason::Count && self.chance(0.5)) {
            size
        } else {
            -size
        };
        let id = new_uuid(&mut self.rng, self.now_ms);
        let a = StockAdjustment {
            id,
            store_id: STORE_ID.into(),
            sku: sim_item(self.rng.below(1000)).sku,
            delta,
            by_weight: false,
            reason,
            note: String::new(),
            created_at: at,
            business_date: at.to_zoned(jiff::tz::TimeZone::UTC).date(),
            request_id: format!("sim-adj-{}", self.report.adjustments),
            actor: "manager".into(),
        };
        let entries = self.entries_for(RecordKind::Adjustment, id, &a.request_id, &TAKES_ADJUSTMENTS);
        self.store.commit_adjustment(a, entries);
        self.report.adjustments += 1;
        self.log(format!("adjustment {id} ({delta:+}) acknowledged"));
    }

    fn crash(&mut self) {
        self.store.crash();
        self.epoch += 1;
        for r in 0..self.remotes.len() {
            let seed = self.rng.next_u64();
            let rm = &mut self.remotes[r];
            rm.waiting.clear();
            (rm.worker, rm.shared) = worker(rm.name, seed, &self.vault);
        }
        self.pull.inflight = None;
        self.pull.ns = None;
        self.pull.ls = None;
        self.pull.refreshing = false;
        self.pull.at_ms = self.now_ms + 500;
        self.pull.round_from_ms = self.pull.at_ms;
        self.report.crashes += 1;
        self.log("edge crashed and restarted".into());
    }

    fn chaos(&mut self) {
        let r = self.rng.below(self.remotes.len() as u64 - 1) as usize;
        let roll = self.rng.below(99);
        let status = [500, 502, 503, 504, 408][self.rng.below(4) as usize];
        let rm = &mut self.remotes[r];
        let mut f = rm.fake.faults().clone();
        let what = match roll {
            0..=7 => {
                f.down = !f.down;
                format!("down={}", f.down)
            }
            8..=13 => {
                f.error_rate = if f.error_rate > 0.0 { 0.0 } else { 0.5 };
                f.error_status = status;
                format!("error_rate={} status={}", f.error_rate, f.error_status)
            }
            14..=21 => {
                f.lose_reply_after_commit_rate = if f.lose_reply_after_commit_rate > 0.0 { 0.0 } else { 0.4 };
                format!("lose_reply_after_commit_rate={}", f.lose_reply_after_commit_rate)
            }
            22..=26 => {
                f.rate_limit_storm = !f.rate_limit_storm;
                format!("rate_limit_storm={}", f.rate_limit_storm)
            }
            27..=30 => {
                f.credentials_expired = !f.credentials_expired;
                format!("credentials_expired={}", f.credentials_expired)
            }
            31..=36 => {
                f.event_retry_rate = if f.event_retry_rate > 0.0 { 0.0 } else { 0.3 };
                format!("event_retry_rate={}", f.event_retry_rate)
            }
            37..=44 => {
                rm.partition = !rm.partition;
                format!("partition={}", rm.partition)
            }
            45..=52 => {
                rm.slow = !rm.slow;
                format!("slow replies={}", rm.slow)
            }
            53..=58 => {
                rm.lose_reply_net = !rm.lose_reply_net;
                format!("network loses replies={}", rm.lose_reply_net)
            }
            _ => return,
        };
        rm.fake.set_faults(f);
        let name = rm.name;
        self.log(format!("{name}: {what}"));
    }

    fn heal(&mut self) {
        for rm in &mut self.remotes {
            let mut f = Faults::healed();
            f.reject_records = rm.rejects.clone();
            rm.fake.set_faults(f);
            rm.partition = false;
            rm.slow = false;
            rm.lose_reply_net = false;
        }
        self.log("all faults healed".into());
    }

    /// Polls every worker until none has more to send now; returns the earliest wake-up.
    fn pump(&mut self) -> Result<Option<i64>, String> {
        let mut wake: Option<i64> = None;
        for r in 0..self.remotes.len() {
            loop {
                let now = now_ts(self.now_ms);
                let p = self.remotes[r].worker.poll(now, &self.store).map_err(|e| format!("poll: {e}"))?;
                match p {
                    Poll::Send(b) => {
                        self.report.requests += 1;
                        let name = self.remotes[r].name;
                        let what: String =
                            format!("{} {}", b.request.method, b.request.path).chars().take(90).collect();
                        self.log(format!("{name}: send #{} with {} records: {what}", b.seq, b.ids.len()));
                        if self.send(r, b.seq, b.request) {
                            self.report.partitions += 1;
                        }
                    }
                    Poll::WaitUntil(t) => {
                        let t = t.as_millisecond().max(self.now_ms + 1);
                        wake = Some(wake.map_or(t, |w| w.min(t)));
                        break;
                    }
                    Poll::Idle => break,
                }
            }
        }
        let p = self.pump_pull();
        Ok(match (wake, p) {
            (Some(w), Some(p)) => Some(w.min(p)),
            (w, p) => w.or(p),
        })
    }

    /// Asks for the next stock page when it is time; returns when that is, if later.
    fn pump_pull(&mut self) -> Option<i64> {
        if self.pull.inflight.is_some() {
            return None;
        }
        if self.now_ms < self.pull.at_ms {
            return Some(self.pull.at_ms);
        }
        let source = self.pull.source;
        let r = self.remotes.iter().position(|p| p.name == source)?;
        let now = now_ts(self.now_ms);
        let req = match source {
            Remote::Netsuite => {
                let noted = self.remotes[r].shared.ns.as_ref().map_or(0, |n| n.get());
                let round = self.pull.ns.get_or_insert_with(|| NsRoundState {
                    // As edged: the newest internal id the worker noted, or the stored one
                    // after a restart; the higher is stored before the read begins.
                    seen: {
                        let mut st = self.store.live();
                        st.ns_newest = st.ns_newest.max(noted);
                        st.ns_newest
                    },
                    read_at: now,
                    step: NsStep::Items(crate::netsuite::live::SuiteqlRead::new(
                        &crate::netsuite::live::NsPull::items_query(),
                    )),
                });
                let next = match &round.step {
                    NsStep::Items(read) | NsStep::Stock { read, .. } => read.request(),
                };
                let mut req = next?;
                let nonce = format!("{:020}", self.rng.next_u64());
                let url = format!("{SIM_BASE}{}", req.path);
                match crate::netsuite::tba::authorization(
                    &crate::netsuite::fake::demo_tba(),
                    req.method.as_str(),
                    &url,
                    &nonce,
                    now.as_second().max(0) as u64,
                ) {
                    Ok(h) => req.headers.push(("Authorization".into(), h)),
                    Err(e) => {
                        self.log(format!("netsuite: cannot sign the pull: {e}"));
                        return None;
                    }
                }
                req
            }
            Remote::Lightspeed => match self.ls_request(r, now) {
                Ok(req) => req,
                Err(wait) => {
                    self.pull.at_ms = wait;
                    return Some(wait);
                }
            },
            Remote::Cloud | Remote::Bus | Remote::Shopify => {
                let cursor = self.store.live().stock_cursor;
                self.pull.puller.request_from(crate::cloud::pull::Feed::Stock, cursor, now)
            }
        };
        self.pull.next_seq += 1;
        let seq = self.pull.next_seq;
        self.pull.inflight = Some(seq);
        if self.pull.round_from_ms > self.now_ms {
            self.pull.round_from_ms = self.now_ms;
        }
        self.report.pulls += 1;
        self.log(format!("{source}: stock pull #{seq}"));
        self.send(r, seq, req);
        None
    }

    /// Puts a request to remote `r` on the virtual network: it waits for its reply (or the
    /// transport's timeout); a partition refuses it at once. Says whether it was partitioned.
    fn send(&mut self, r: usize, seq: u64, req: HttpRequest) -> bool {
        let (epoch, deadline) = (self.epoch, self.now_ms + REQUEST_TIMEOUT_MS);
        self.remotes[r].waiting.insert(seq, (epoch, deadline));
        if self.remotes[r].partition {
            let at = self.now_ms + 1 + self.rng.below(50) as i64;
            self.push_net(at, Net::Reply { r, epoch, seq, reply: Err(TransportError::Connect("partition".into())) });
            return true;
        }
        let slow = self.remotes[r].slow;
        let mut lat = || if slow { 1_000 + self.rng.below(6_000) as i64 } else { 5 + self.rng.below(60) as i64 };
        let (one_way, back) = (lat(), lat());
        self.push_net(
            self.now_ms + one_way,
            Net::Arrive { r, epoch, seq, req, reply_latency_ms: back, deadline_ms: deadline },
        );
        // The transport's timeout fires unless a reply comes first.
        self.push_net(deadline, Net::Reply { r, epoch, seq, reply: Err(TransportError::NoReply("timed out".into())) });
        false
    }

    /// A stock page (or its failure) reached the edge.
    fn on_pull_reply(&mut self, reply: Result<HttpResponse, TransportError>) -> Result<(), String> {
        self.pull.inflight = None;
        let source = self.pull.source;
        let outcome = match source {
            Remote::Netsuite => self.on_ns_reply(reply),
            Remote::Lightspeed => self.on_ls_reply(reply),
            // Shopify is not a stock source of the simulation (its pull is tested over HTTP).
            Remote::Cloud | Remote::Bus | Remote::Shopify => self.on_cloud_reply(reply),
        };
        match outcome {
            Ok(Some(levels)) => {
                // The feed is read to its end: the next round begins a little later.
                self.report.stock_levels += levels;
                self.pull.last_round_from_ms = Some(self.pull.round_from_ms);
                self.pull.at_ms = self.now_ms + 1_000 + self.rng.below(4_000) as i64;
                self.pull.round_from_ms = self.pull.at_ms;
            }
            Ok(None) => self.pull.at_ms = self.now_ms,
            Err(why) => {
                // As edged: the round fails and the next one starts afresh (new marker).
                self.pull.ns = None;
                self.pull.ls = None;
                self.pull.at_ms = self.now_ms + 1_000;
                self.log(format!("{source}: stock pull failed: {why}"));
            }
        }
        // What a page did is checked at once: a wrongly dropped delta must not hide behind
        // a crash or a later level before the periodic check.
        self.check_stock_window()
    }

    /// Lightspeed's next pull request, as edged's pull makes it with the tokens and pacer it
    /// shares with the delivery worker: a token refresh when this caller must refresh, else
    /// the next ItemShop page. `Err(t)`: nothing can go before `t`.
    fn ls_request(&mut self, r: usize, now: Timestamp) -> Result<HttpRequest, i64> {
        use crate::lightspeed::connector::Access;
        let now_ms = now.as_millisecond();
        let Some(auth) = self.remotes[r].shared.ls.clone() else { return Err(now_ms + 10_000) };
        let token = match auth.access(now_ms) {
            Access::Bearer(t) => t,
            Access::Refresh(form) => {
                self.pull.refreshing = true;
                return Ok(HttpRequest {
                    method: crate::wire::Method::Post,
                    path: crate::lightspeed::connector::TOKEN_PATH.into(),
                    headers: vec![("Content-Type".into(), "application/x-www-form-urlencoded".into())],
                    body: form.into_bytes(),
                });
            }
            Access::Wait(_) => return Err(now_ms + 250),
            Access::Dead(e) => {
                self.log(format!("lightspeed: pull cannot authenticate: {e}"));
                return Err(now_ms + 10_000);
            }
        };
        if let Err(at) = auth.reserve(1000, now_ms) {
            return Err(at.max(now_ms + 1));
        }
        let map = ls_map();
        let cursor = {
            let c = self.store.live().ls_cursor.clone();
            if c.is_empty() { crate::lightspeed::live::ITEMSHOP_EPOCH.to_string() } else { c }
        };
        // As edged: the newest saleID the worker noted, or the stored one after a restart;
        // the higher is stored before the read begins.
        let seen = {
            let mut st = self.store.live();
            let seen = auth.newest_sale().max(st.ls_newest);
            st.ls_newest = seen;
            seen
        };
        let round = self.pull.ls.get_or_insert_with(|| LsRoundState {
            seen,
            step: LsStep::Feed {
                path: crate::lightspeed::live::itemshop_path(map.account_id, &cursor),
                newest: cursor,
            },
        });
        let path = match &mut round.step {
            LsStep::Feed { path, .. } => path.clone(),
            LsStep::Reread { chunks, path, seen: chunk_seen } => match path {
                Some(p) => p.clone(),
                None => {
                    let chunk = chunks.front().cloned().unwrap_or_default();
                    *chunk_seen = seen;
                    let p = crate::lightspeed::live::itemshop_reread_path(map.account_id, map.shop_id, &chunk);
                    *path = Some(p.clone());
                    p
                }
            },
        };
        self.pull.refreshing = false;
        Ok(HttpRequest {
            method: crate::wire::Method::Get,
            path: path.strip_prefix(SIM_BASE).unwrap_or(&path).to_string(),
            headers: vec![
                ("Authorization".into(), format!("Bearer {token}")),
                ("Accept".into(), "application/json".into()),
            ],
            body: Vec::new(),
        })
    }

    /// Lightspeed's answer to the pull: a token refresh, or an ItemShop page (the feed's
    /// levels rebased page by page; at its end the cursor moves, deltas settle, and the SKUs
    /// still waiting are read again by itemID). `Some(levels)` once the round is done.
    fn on_ls_reply(&mut self, reply: Result<HttpResponse, TransportError>) -> Result<Option<u64>, String> {
        let now_ms = self.now_ms;
        let Some(auth) = self.remotes.iter().find(|p| p.name == Remote::Lightspeed).and_then(|p| p.shared.ls.clone())
        else {
            return Err("no Lightspeed tokens".into());
        };
        if std::mem::take(&mut self.pull.refreshing) {
            return match reply {
                Ok(r) if r.status == 200 => auth.refreshed(&r.body, now_ms).map(|()| None),
                Ok(r) => {
                    auth.refresh_failed();
                    Err(format!("token refresh refused: {}", r.status))
                }
                Err(e) => {
                    auth.refresh_failed();
                    Err(format!("token refresh: {e}"))
                }
            };
        }
        let resp = reply.map_err(|e| e.to_string())?;
        auth.observe(
            resp.header("x-ls-api-bucket-level"),
            resp.header("x-ls-api-drip-rate"),
            resp.header("x-ls-api-burst-level"),
            now_ms,
        );
        match resp.status {
            200 => {}
            401 => {
                auth.refused();
                return Err("401: the access token was refused".into());
            }
            s => return Err(crate::lightspeed::json::error_message(s, &resp.body)),
        }
        let page: serde_json::Value = serde_json::from_slice(&resp.body)
            .map_err(|e| format!("Lightspeed answered something else than JSON: {e}"))?;
        let map = ls_map();
        let by_id: BTreeMap<u64, String> = map.items.iter().map(|(sku, id)| (*id, sku.clone())).collect();
        let sku_of = |item: u64| by_id.get(&item).cloned();
        let Some(round) = self.pull.ls.as_mut() else { return Ok(None) };
        let seen = round.seen;
        match &mut round.step {
            LsStep::Feed { path, newest } => {
                let levels = crate::lightspeed::live::levels_in(&page, map.shop_id, newest, &sku_of);
                let n = levels.len() as u64;
                self.report.stock_levels += n;
                let next = crate::lightspeed::json::next_page(&page);
                let newest = newest.clone();
                match next {
                    Some(n) => {
                        *path = n;
                        self.store.live().apply_levels(Remote::Lightspeed, &levels, seen, false);
                        Ok(None)
                    }
                    None => {
                        let waiting = {
                            let mut st = self.store.live();
                            st.apply_levels(Remote::Lightspeed, &levels, seen, false);
                            st.ls_cursor = newest;
                            st.apply_levels(Remote::Lightspeed, &[], 0, true)
                        };
                        let ids: Vec<u64> = waiting.iter().filter_map(|s| map.items.get(s).copied()).collect();
                        if ids.is_empty() {
                            self.pull.ls = None;
                            return Ok(Some(0));
                        }
                        let chunks = ids.chunks(100).map(<[u64]>::to_vec).collect();
                        round.step = LsStep::Reread { chunks, path: None, seen };
                        Ok(None)
                    }
                }
            }
            LsStep::Reread { chunks, path, seen: chunk_seen } => {
                let mut unused = String::new();
                let levels = crate::lightspeed::live::levels_in(&page, map.shop_id, &mut unused, &sku_of);
                self.report.stock_levels += levels.len() as u64;
                let chunk_seen = *chunk_seen;
                match crate::lightspeed::json::next_page(&page) {
                    Some(n) => *path = Some(n),
                    None => {
                        chunks.pop_front();
                        *path = None;
                    }
                }
                let finished = chunks.is_empty();
                self.store.live().apply_levels(Remote::Lightspeed, &levels, chunk_seen, false);
                if finished {
                    self.pull.ls = None;
                    return Ok(Some(0));
                }
                Ok(None)
            }
        }
    }

    /// A page of the cloud's stock feed: `Some(levels)` once the feed is read to its end.
    fn on_cloud_reply(&mut self, reply: Result<HttpResponse, TransportError>) -> Result<Option<u64>, String> {
        let cursor = self.store.live().stock_cursor;
        let resp = reply.map_err(|e| e.to_string())?;
        let page = crate::cloud::pull::stock_page(cursor, &resp).map_err(|e| e.to_string())?;
        let levels: Vec<(String, i64, Timestamp)> =
            page.levels.iter().map(|l| (l.sku.clone(), l.level, page.as_of)).collect();
        {
            let mut st = self.store.live();
            st.apply_levels(Remote::Cloud, &levels, page.events_through, !page.has_more);
            st.stock_cursor = page.next_cursor;
        }
        self.log(format!("cloud: stock page of {} levels, through event {}", levels.len(), page.events_through));
        Ok((!page.has_more).then_some(levels.len() as u64))
    }

    /// A SuiteQL page of NetSuite's round: items, then stock; `Some(levels)` once applied.
    /// A failed page is asked again (the round keeps its marker and its time).
    fn on_ns_reply(&mut self, reply: Result<HttpResponse, TransportError>) -> Result<Option<u64>, String> {
        let resp = reply.map_err(|e| e.to_string())?;
        let Some(round) = self.pull.ns.as_mut() else { return Ok(None) };
        match &mut round.step {
            NsStep::Items(read) => {
                read.on_reply(&resp)?;
                if read.done() {
                    let rows = std::mem::replace(read, crate::netsuite::live::SuiteqlRead::new("")).rows();
                    let skus = crate::netsuite::live::skus_of(&ns_map(), &rows, &|_| ItemKind::Unit);
                    let q = crate::netsuite::live::NsPull::stock_query_at(&ns_map());
                    round.step = NsStep::Stock { skus, read: crate::netsuite::live::SuiteqlRead::new(&q) };
                }
                Ok(None)
            }
            NsStep::Stock { skus, read } => {
                read.on_reply(&resp)?;
                if !read.done() {
                    return Ok(None);
                }
                let rows = std::mem::replace(read, crate::netsuite::live::SuiteqlRead::new("")).rows();
                let levels = crate::netsuite::live::levels_of(&rows, skus, round.read_at);
                let seen = round.seen;
                self.pull.ns = None;
                self.store.live().apply_levels(Remote::Netsuite, &levels, seen, true);
                self.log(format!("netsuite: {} stock levels, through internal id {seen}", levels.len()));
                Ok(Some(levels.len() as u64))
            }
        }
    }

    fn deliver(&mut self, n: Net) -> Result<(), String> {
        match n {
            Net::Arrive { r, epoch, seq, req, reply_latency_ms, deadline_ms } => {
                let d = self.remotes[r].fake.handle(now_ts(self.now_ms), &req);
                let reply = match d {
                    Disposition::Refuse => Some(Err(TransportError::Connect("connection refused".into()))),
                    Disposition::LoseReply => {
                        self.report.lost_replies += 1;
                        Some(Err(TransportError::NoReply("connection reset after the remote kept the batch".into())))
                    }
                    Disposition::Reply(resp) => {
                        if resp.status == 429 {
                            self.report.throttled += 1;
                        }
                        if self.remotes[r].lose_reply_net && self.chance(0.5) {
                            self.report.lost_replies += 1;
                            None
                        } else {
                            Some(Ok(resp))
                        }
                    }
                };
                let name = self.remotes[r].name;
                self.log(format!("{name}: #{seq} arrived"));
                if let Some(reply) = reply {
                    let at = self.now_ms + reply_latency_ms;
                    if at < deadline_ms {
                        self.push_net(at, Net::Reply { r, epoch, seq, reply });
                    }
                }
                Ok(())
            }
            Net::Reply { r, epoch, seq, reply } => {
                if epoch != self.epoch || self.remotes[r].waiting.remove(&seq).is_none() {
                    return Ok(());
                }
                if matches!(reply, Err(TransportError::NoReply(_))) {
                    self.report.timeouts += 1;
                }
                let name = self.remotes[r].name;
                let what = match &reply {
                    Ok(resp) => format!("{name}: reply #{seq}: {}", resp.status),
                    Err(e) => format!("{name}: reply #{seq}: {e}"),
                };
                self.log(what);
                if seq > PULL_SEQ_BASE {
                    return self.on_pull_reply(reply);
                }
                let now = now_ts(self.now_ms);
                self.remotes[r].worker.on_reply(now, &self.store, seq, reply).map_err(|e| format!("on_reply: {e}"))
            }
        }
    }

    /// What the stock source has counted, by local record: the number it kept it under.
    fn counted(&self) -> BTreeMap<Uuid, u64> {
        let source = self.pull.source;
        self.remotes
            .iter()
            .filter(|p| p.name == source)
            .flat_map(|p| p.fake.kept())
            .filter_map(|k| source_number(source, &k.remote_id).map(|n| (k.record, n)))
            .collect()
    }

    /// The stock source's own level of a SKU.
    fn source_level(&self, sku: &str) -> Option<i64> {
        let p = self.remotes.iter().find(|p| p.name == self.pull.source)?;
        match &p.fake {
            SimFake::Cloud(f) => f.level(sku),
            SimFake::NetSuite(f) => {
                let q = f.quantity_on_hand(sku, &ns_map().location.to_string())?;
                crate::lightspeed::json::thousandths(&serde_json::Value::String(q)).map(|m| m.div_euclid(1000))
            }
            SimFake::Lightspeed(f) => {
                let map = ls_map();
                f.qoh(*map.items.get(sku)?, map.shop_id)
            }
            SimFake::Shopify(f) => {
                let v = shopify_map().variants.get(sku).and_then(|g| crate::shopify::gql::gid_number(g))?;
                f.available(v)
            }
        }
    }

    /// At any time: the stock shown never leaves out a record its level does not include.
    /// For each SKU whose level came from the source with marker `through`, every local
    /// record the source has not kept under a number at most `through` — so possibly not in
    /// that level — is still subtracted, and the SKU's unreflected sum is its deltas' sum.
    /// (A record the level holds may stay subtracted a while, until its confirmation comes:
    /// that errs on the safe side and is settled later.)
    fn check_stock_window(&self) -> Result<(), String> {
        let counted = self.counted();
        let st = self.store.live();
        let mut records: Vec<(String, Uuid, u32)> = Vec::new();
        for s in st.sales.values() {
            records.extend(s.lines.iter().map(|l| (l.sku.clone(), s.id, l.line_no)));
        }
        records.extend(st.adjustments.values().map(|a| (a.sku.clone(), a.id, 0)));
        for key in records {
            let Some(level) = st.levels.get(&key.0) else { continue };
            let Some(through) = level.through.as_ref().map(|m| m.through) else { continue };
            let in_level = counted.get(&key.1).is_some_and(|n| *n <= through);
            if !in_level && !st.deltas.contains_key(&key) {
                return Err(format!(
                    "{}: record {} is not in the {} level (through {through}) but is no longer subtracted",
                    key.0, key.1, self.pull.source
                ));
            }
        }
        let mut sums: BTreeMap<&str, i64> = BTreeMap::new();
        for ((sku, _, _), d) in &st.deltas {
            *sums.entry(sku.as_str()).or_default() += d;
        }
        for (sku, level) in &st.levels {
            let sum = sums.get(sku.as_str()).copied().unwrap_or(0);
            if sum != level.unreflected {
                return Err(format!("{sku}: unreflected {} but its deltas sum to {sum}", level.unreflected));
            }
        }
        Ok(())
    }

    /// After healing, and a complete read of the stock source begun once every record was
    /// settled: the stock shown for every SKU is the source's level plus the local deltas
    /// of the records it has not counted (those it refused), and no delta of a record the
    /// source kept is still subtracted.
    fn check_stock(&self) -> Result<(), String> {
        let source = self.pull.source;
        let st = self.store.live();
        for ((sku, record, _), d) in &st.deltas {
            if let Some(n) = st.confirmed_number(source, record) {
                return Err(format!(
                    "{sku}: the delta {d} of {record}, counted by {source} ({n}), is still subtracted"
                ));
            }
        }
        for (sku, level) in &st.levels {
            let Some(shown) = level.available() else { continue };
            let uncounted: i64 = st.deltas.iter().filter(|(k, _)| k.0 == *sku).map(|(_, d)| *d).sum();
            let Some(at_source) = self.source_level(sku) else {
                return Err(format!("{sku} has a level {source} does not know"));
            };
            if shown != at_source + uncounted {
                return Err(format!(
                    "{sku}: {shown} shown, but {source} has {at_source} and {uncounted} is not counted there ({level:?})"
                ));
            }
        }
        Ok(())
    }

    fn check(&self, final_phase: bool) -> Result<(), String> {
        self.check_stock_window()?;
        let entries = self.store.entries();
        let by_id: BTreeMap<Uuid, &OutboxEntry> = entries.iter().map(|e| (e.id, e)).collect();
        for rm in &self.remotes {
            let mut per_record: BTreeMap<Uuid, u32> = BTreeMap::new();
            let mut remote_ids: BTreeMap<Uuid, String> = BTreeMap::new();
            let origins: BTreeSet<Uuid> = entries.iter().filter(|e| e.remote == rm.name).map(|e| e.record_id).collect();
            for k in rm.fake.kept() {
                match k.entry {
                    Some(id) => {
                        let Some(e) = by_id.get(&id).filter(|e| e.remote == rm.name) else {
                            return Err(format!("{} keeps event {id} that has no local origin", rm.name));
                        };
                        if e.record_id != k.record {
                            return Err(format!(
                                "event {id} names sale {} but the entry is for {}",
                                k.record, e.record_id
                            ));
                        }
                    }
                    None if !origins.contains(&k.record) => {
                        return Err(format!("{} keeps record {} that has no local origin", rm.name, k.record));
                    }
                    None => {}
                }
                *per_record.entry(k.record).or_default() += 1;
                remote_ids.insert(k.record, k.remote_id);
            }
            if let Some((rec, n)) = per_record.iter().find(|(_, n)| **n > 1) {
                return Err(format!("record {rec} is kept {n} times by {}", rm.name));
            }
            let mine: Vec<&OutboxEntry> = entries.iter().filter(|e| e.remote == rm.name).collect();
            for e in &mine {
                match &e.state {
                    OutboxState::Confirmed { remote_id } => match remote_ids.get(&e.record_id) {
                        Some(k) if k == crate::shopify::gid_of(remote_id) => {}
                        Some(k) => {
                            return Err(format!("entry {} confirmed as {remote_id}, {} says {k}", e.id, rm.name));
                        }
                        None => {
                            return Err(format!(
                                "entry {} confirmed as {remote_id} but {} has no such event",
                                e.id, rm.name
                            ));
                        }
                    },
                    OutboxState::Rejected { reason } if !rm.rejects.contains(&e.record_id) => {
                        return Err(format!(
                            "entry {} rejected by {} though the sale is valid: {reason}",
                            e.id, rm.name
                        ));
                    }
                    _ => {}
                }
                if final_phase {
                    let refused = rm.rejects.contains(&e.record_id);
                    let ok = match &e.state {
                        OutboxState::Confirmed { .. } => !refused,
                        OutboxState::Rejected { .. } => refused,
                        _ => false,
                    };
                    if !ok {
                        return Err(format!(
                            "after healing, {} entry {} of record {} is {:?}",
                            rm.name, e.id, e.record_id, e.state
                        ));
                    }
                    let kept = per_record.get(&e.record_id).copied().unwrap_or(0);
                    if kept != u32::from(!refused) {
                        return Err(format!(
                            "after healing, record {} is kept {kept} times by {}",
                            e.record_id, rm.name
                        ));
                    }
                }
            }
            let adjustments = if TAKES_ADJUSTMENTS.contains(&rm.name) { self.report.adjustments } else { 0 };
            if final_phase && mine.len() != self.report.sales + adjustments {
                return Err(format!(
                    "{} sales and {adjustments} adjustments acknowledged, {} outbox entries for {}",
                    self.report.sales,
                    mine.len(),
                    rm.name
                ));
            }
        }
        Ok(())
    }

    fn next_event_ms(&self) -> Option<i64> {
        self.net.keys().next().map(|k| k.0)
    }

    /// Nothing of the delivery workers on the way (the stock pull runs on regardless).
    fn quiet(&self) -> bool {
        let pull = |n: &Net| match n {
            Net::Arrive { seq, .. } | Net::Reply { seq, .. } => *seq > PULL_SEQ_BASE,
        };
        self.net.values().all(pull) && self.remotes.iter().all(|r| r.worker.outstanding() == 0)
    }

    fn run(mut self, p: &SimParams) -> Result<SimReport, SimFailure> {
        let end_chaos = START_MS + p.chaos_ms;
        let mut wake: Option<i64> = Some(self.now_ms);
        let mut next_tick = self.now_ms;
        let mut healed_at: Option<i64> = None;
        let mut settled_at: Option<i64> = None;
        loop {
            self.step += 1;
            if self.step > 5_000_000 {
                return Err(self.fail("the simulation does not settle (step limit)".into()));
            }
            // Advance to the next thing that happens.
            let chaos = healed_at.is_none();
            let mut t = i64::MAX;
            if let Some(w) = wake {
                t = t.min(w);
            }
            if let Some(n) = self.next_event_ms() {
                t = t.min(n);
            }
            if chaos {
                t = t.min(next_tick);
            }
            if t == i64::MAX {
                break; // quiescent
            }
            self.now_ms = self.now_ms.max(t);

            while let Some((&k, _)) = self.net.iter().next() {
                if k.0 > self.now_ms {
                    break;
                }
                if let Some(n) = self.net.remove(&k) {
                    self.deliver(n).map_err(|e| self.fail(e))?;
                }
            }
            if chaos && self.now_ms >= next_tick {
                next_tick = self.now_ms + 1 + self.rng.below(2_000) as i64;
                if self.now_ms >= end_chaos {
                    self.heal();
                    healed_at = Some(self.now_ms);
                } else {
                    let sale_p = p.sales as f64 / (p.chaos_ms as f64 / 1000.0);
                    if self.report.sales < p.sales && self.chance(sale_p.min(0.9)) {
                        self.make_sale().map_err(|e| self.fail(e))?;
                        // About one adjustment to every eight sales.
                        // (None while Lightspeed keeps the stock: edged refuses them then.)
                        if self.chance(0.12) && self.pull.source != Remote::Lightspeed {
                            self.make_adjustment();
                        }
                    }
                    if self.chance(0.15) {
                        self.chaos();
                    }
                    if self.chance(0.01) {
                        self.crash();
                    }
                    if self.chance(0.05) {
                        self.store.checkpoint();
                    }
                }
            }
            wake = self.pump().map_err(|e| self.fail(e))?;
            // Every violation the checks look for persists once it happens (a second record,
            // a confirmation without a record), so checking every 16th step finds each one
            // within 16 steps of its cause, at a sixteenth of the cost.
            if self.step.is_multiple_of(16) {
                self.check(false).map_err(|e| self.fail(e))?;
            }
            if let Some(h) = healed_at {
                let has_dead = self.store.entries().iter().any(|e| matches!(e.state, OutboxState::Dead { .. }));
                if has_dead && self.quiet() {
                    let n = self.store.replay_dead(now_ts(self.now_ms));
                    self.report.dead_replayed += n;
                    self.log(format!("operator replays {n} dead letters"));
                    let now = now_ts(self.now_ms);
                    for rm in &mut self.remotes {
                        rm.worker.nudge(now);
                    }
                    wake = Some(self.now_ms + 1);
                }
                if self.now_ms - h > p.heal_limit_ms {
                    return Err(self.fail(format!("not settled {} ms after healing", p.heal_limit_ms)));
                }
                let settled = self
                    .store
                    .entries()
                    .iter()
                    .all(|e| matches!(e.state, OutboxState::Confirmed { .. } | OutboxState::Rejected { .. }));
                if settled && self.quiet() {
                    // The stock source has every record: one more complete read of its
                    // feed, begun after this, and the shelves must agree with it.
                    let from = *settled_at.get_or_insert(self.now_ms);
                    if self.pull.last_round_from_ms.is_some_and(|t| t >= from) {
                        break;
                    }
                } else {
                    settled_at = None;
                }
            }
        }
        self.check(true).map_err(|e| self.fail(e))?;
        self.check_stock().map_err(|e| self.fail(e))?;
        self.report.steps = self.step;
        self.report.virtual_ms = self.now_ms - START_MS;
        Ok(self.report)
    }

    fn fail(&self, what: String) -> SimFailure {
        SimFailure { seed: self.report.seed, step: self.step, what, trace: self.trace.clone() }
    }
}

/// Runs one seeded simulation.
pub fn run(p: &SimParams) -> Result<SimReport, SimFailure> {
    Sim::new(p.seed).run(p)
}
