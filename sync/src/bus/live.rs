//! The bus's I/O (async-nats): the connection to the store's `nats-server`, the store
//! stream and the lanes' key-value bucket, the transport the engine's bus worker publishes
//! through, the consumer that feeds the replica, the notes' publisher and the lane's
//! heartbeat. The decisions live in [`super`] and in the store; this only moves bytes.
//!
//! Limits on everything the lanes create on the server: the stream keeps at most
//! [`STREAM_MAX_BYTES`] and [`STREAM_MAX_AGE`] (a lane cut off for longer catches up from
//! the remotes' records, not from the bus), messages of at most
//! [`super::MAX_MESSAGE_BYTES`], a duplicate window of [`DUPLICATE_WINDOW`]; the lanes'
//! bucket keeps one value per key, at most 1 MiB in all.

use super::{LaneMessage, Outgoing, PublishBatch, PublishReply, Published};
use crate::engine::run::Transport;
use crate::store::Store;
use crate::wire::{HttpRequest, HttpResponse, TransportError};
use async_nats::jetstream;
use futures_util::StreamExt;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use uuid::Uuid;

/// Most bytes the store stream keeps (then the oldest go).
pub const STREAM_MAX_BYTES: i64 = 2 * 1024 * 1024 * 1024;
/// Oldest message the store stream keeps.
pub const STREAM_MAX_AGE: Duration = Duration::from_secs(90 * 24 * 3600);
/// The stream drops a repeated `Nats-Msg-Id` seen within this window.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(3600);
/// The lanes' bucket: one status per lane.
pub const LANES_BUCKET: &str = "lanes";
/// The store's bucket for claims across lanes (low-stock units, refunds of another lane's sale).
pub const CLAIMS_BUCKET: &str = "claims";
/// A lane whose heartbeat is older than this is shown as gone.
pub const LANE_STALE: Duration = Duration::from_secs(15);

/// How a lane reaches its store's bus.
#[derive(Debug, Clone)]
pub struct BusSetup {
    /// `nats://HOST:PORT` (or `tls://`).
    pub url: String,
    pub lane: String,
    /// How screens name the lane.
    pub lane_name: String,
    /// A NATS credentials file (`[bus] credentials`), if the server asks for one.
    pub credentials: Option<std::path::PathBuf>,
    /// This box's instance id (kept in the store): two boxes configured with one lane id
    /// are told apart by it.
    pub instance: Uuid,
}

/// A lane's status, as it writes it to the lanes' bucket and reads the others'.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LaneStatus {
    pub lane: String,
    pub name: String,
    pub instance: Uuid,
    pub at: Option<Timestamp>,
    /// Its records not yet on the stream (its bus outbox).
    pub unpublished: u64,
    /// Its notes not yet on the stream.
    pub notes_waiting: u64,
    /// Stream messages its consumer has not applied yet.
    pub lag: u64,
    /// The last stream sequence it applied.
    pub applied_seq: u64,
    /// Messages of other lanes it applied since it started.
    pub applied: u64,
    /// Messages it could not read (skipped, logged).
    pub bad_messages: u64,
}

/// What the bus looks like from this lane, for `/v1/lanes`, `/v1/sync` and `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct BusView {
    pub url: String,
    pub connected: bool,
    /// The stream and the consumer exist (set up once connected).
    pub ready: bool,
    pub last_error: Option<String>,
    pub me: LaneStatus,
    /// Every lane's last status in the bucket (this one included), by lane id.
    pub lanes: BTreeMap<String, LaneStatus>,
    /// Another box claims this lane id.
    pub conflict: Option<String>,
    /// Commit at another lane → applied here, milliseconds, the last 1,024.
    pub apply_ms: std::collections::VecDeque<f64>,
}

impl BusView {
    /// The bus in one line (`/v1/sync`'s `stream` field of the remote `bus`).
    pub fn line(&self) -> String {
        match (self.connected, self.ready, &self.last_error) {
            (true, true, _) => format!("connected, {} applied, lag {}", self.me.applied, self.me.lag),
            (true, false, Some(e)) => format!("connected, not following: {e}"),
            (true, false, None) => "connected, setting up".into(),
            (false, _, Some(e)) => format!("not connected: {e}"),
            (false, _, None) => "not connected".into(),
        }
    }
}

/// The bus of this lane: its connection and what it last saw.
#[derive(Clone)]
pub struct Bus {
    client: async_nats::Client,
    js: jetstream::Context,
    setup: BusSetup,
    view: Arc<Mutex<BusView>>,
    notes: Arc<Notify>,
    claims_kv: Arc<Mutex<Option<jetstream::kv::Store>>>,
}

fn err_text(e: &dyn std::fmt::Display) -> String {
    e.to_string()
}

impl Bus {
    /// Connects (in the background: a lane starts while the LAN is down and keeps selling).
    pub async fn connect(setup: BusSetup) -> Result<Bus, String> {
        let mut opts = async_nats::ConnectOptions::new()
            .name(format!("edged lane {}", setup.lane))
            .retry_on_initial_connect()
            .max_reconnects(None::<usize>)
            .connection_timeout(Duration::from_secs(2))
            .ping_interval(Duration::from_secs(5))
            .reconnect_delay_callback(|attempts| Duration::from_millis((100u64 << attempts.min(5) as u32).min(2_000)));
        if let Some(c) = &setup.credentials {
            opts = opts.credentials_file(c).await.map_err(|e| format!("[bus] credentials {}: {e}", c.display()))?;
        }
        let client = opts.connect(setup.url.as_str()).await.map_err(|e| format!("[bus] url {}: {e}", setup.url))?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(Duration::from_secs(3));
        let view = BusView {
            url: setup.url.clone(),
            me: LaneStatus {
                lane: setup.lane.clone(),
                name: setup.lane_name.clone(),
                instance: setup.instance,
                ..Default::default()
            },
            ..Default::default()
        };
        Ok(Bus {
            client,
            js,
            setup,
            view: Arc::new(Mutex::new(view)),
            notes: Arc::new(Notify::new()),
            claims_kv: Arc::new(Mutex::new(None)),
        })
    }

    pub fn lane(&self) -> &str {
        &self.setup.lane
    }

    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// What the bus looks like now.
    pub fn view(&self) -> BusView {
        let mut v = self.view.lock().unwrap_or_else(|p| p.into_inner()).clone();
        v.connected = self.connected();
        v
    }

    fn note_error(&self, e: String) {
        let mut v = self.view.lock().unwrap_or_else(|p| p.into_inner());
        if v.last_error.as_deref() != Some(e.as_str()) {
            tracing::warn!(error = %e, "store bus");
        }
        v.last_error = Some(e);
    }

    /// Wakes the notes' publisher (a note was queued).
    pub fn notes_queued(&self) {
        self.notes.notify_one();
    }

    /// The store stream, made if it does not exist (with its limits).
    pub async fn stream(&self) -> Result<jetstream::stream::Stream, String> {
        let cfg = jetstream::stream::Config {
            name: super::STREAM.into(),
            subjects: vec![super::SUBJECTS.into()],
            storage: jetstream::stream::StorageType::File,
            max_bytes: STREAM_MAX_BYTES,
            max_age: STREAM_MAX_AGE,
            max_message_size: i32::try_from(super::MAX_MESSAGE_BYTES).unwrap_or(i32::MAX),
            duplicate_window: DUPLICATE_WINDOW,
            discard: jetstream::stream::DiscardPolicy::Old,
            ..Default::default()
        };
        self.js.get_or_create_stream(cfg).await.map_err(|e| format!("store stream {}: {}", super::STREAM, err_text(&e)))
    }

    /// A key-value bucket of the store, made if it does not exist. Its stream is made here
    /// the way the client library makes a bucket's (`KV_<name>`, subjects `$KV.<name>.>`,
    /// one value per key up to `history`, roll-ups, direct gets): the library's own
    /// `create_key_value` first reads the account's info, whose reply from Debian's
    /// nats-server 2.9 it cannot parse.
    pub async fn bucket(&self, name: &str, history: i64, max_bytes: i64) -> Result<jetstream::kv::Store, String> {
        let cfg = jetstream::stream::Config {
            name: format!("KV_{name}"),
            description: Some(format!("edged {name}")),
            subjects: vec![format!("$KV.{name}.>")],
            max_messages_per_subject: history,
            max_bytes,
            max_message_size: 64 * 1024,
            storage: jetstream::stream::StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: jetstream::stream::DiscardPolicy::New,
            num_replicas: 1,
            ..Default::default()
        };
        self.js.get_or_create_stream(cfg).await.map_err(|e| format!("bucket {name}: {}", err_text(&e)))?;
        self.js.get_key_value(name).await.map_err(|e| format!("bucket {name}: {}", err_text(&e)))
    }

    /// Publishes messages, each with its `Nats-Msg-Id`, and waits for every ack.
    pub async fn publish(&self, msgs: &[Outgoing], timeout: Duration) -> Result<Vec<Published>, TransportError> {
        if !self.connected() {
            return Err(TransportError::Connect("the store's NATS server is not connected".into()));
        }
        let mut acks = Vec::with_capacity(msgs.len());
        for m in msgs {
            let payload = match serde_json::to_vec(&m.data) {
                Ok(p) => p,
                Err(e) => {
                    acks.push((m.id.clone(), Err(format!("cannot encode: {e}"))));
                    continue;
                }
            };
            let publish = jetstream::message::PublishMessage::build().payload(payload.into()).message_id(&m.id);
            match self.js.send_publish(m.subject.clone(), publish).await {
                Ok(fut) => acks.push((m.id.clone(), Ok(fut))),
                Err(e) => acks.push((m.id.clone(), Err(format!("publish: {e}")))),
            }
        }
        let mut out = Vec::with_capacity(acks.len());
        let mut unanswered = 0usize;
        for (id, a) in acks {
            let res = match a {
                Ok(fut) => match tokio::time::timeout(timeout, fut).await {
                    Ok(Ok(ack)) => Published { id, seq: Some(ack.sequence), duplicate: ack.duplicate, error: None },
                    Ok(Err(e)) => {
                        unanswered += 1;
                        Published { id, seq: None, duplicate: false, error: Some(format!("no ack: {e}")) }
                    }
                    Err(_) => {
                        unanswered += 1;
                        Published { id, seq: None, duplicate: false, error: Some("no ack in time".into()) }
                    }
                },
                Err(e) => Published { id, seq: None, duplicate: false, error: Some(e) },
            };
            out.push(res);
        }
        if unanswered == out.len() && !out.is_empty() {
            // Sent, and nothing came back: the stream may have them (a re-send is deduplicated).
            return Err(TransportError::NoReply(format!(
                "the store stream acknowledged none of {} messages",
                out.len()
            )));
        }
        Ok(out)
    }

    /// The transport of the engine's bus worker.
    pub fn transport(&self) -> Arc<dyn Transport> {
        Arc::new(BusTransport { bus: self.clone() })
    }

    /// Starts the consumer, the notes' publisher and the heartbeat; they end with `shutdown`.
    pub fn spawn(
        &self,
        store: Arc<dyn Store>,
        on_applied: Arc<dyn Fn(&crate::store::LaneApplied) + Send + Sync>,
        shutdown: watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            tokio::spawn(self.clone().follow(store.clone(), on_applied, shutdown.clone())),
            tokio::spawn(self.clone().publish_notes(store.clone(), shutdown.clone())),
            tokio::spawn(self.clone().heartbeat(store, shutdown)),
        ]
    }

    /// Follows the stream with the lane's durable consumer and applies the other lanes'
    /// messages to the replica; acks each after the replica holds it durably.
    async fn follow(
        self,
        store: Arc<dyn Store>,
        on_applied: Arc<dyn Fn(&crate::store::LaneApplied) + Send + Sync>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut delay = Duration::from_millis(200);
        loop {
            if *shutdown.borrow() {
                return;
            }
            match self.follow_once(&store, &on_applied, &mut shutdown).await {
                Ok(()) => return,
                Err(e) => self.note_error(e),
            }
            self.view.lock().unwrap_or_else(|p| p.into_inner()).ready = false;
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => return,
            }
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    async fn follow_once(
        &self,
        store: &Arc<dyn Store>,
        on_applied: &Arc<dyn Fn(&crate::store::LaneApplied) + Send + Sync>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), String> {
        let stream = self.stream().await?;
        let name = super::consumer_name(&self.setup.lane);
        let consumer: jetstream::consumer::PullConsumer = stream
            .get_or_create_consumer(
                &name,
                jetstream::consumer::pull::Config {
                    durable_name: Some(name.clone()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(30),
                    deliver_policy: jetstream::consumer::DeliverPolicy::All,
                    filter_subject: super::SUBJECTS.into(),
                    max_ack_pending: 20_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| format!("consumer {name}: {}", err_text(&e)))?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(512)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(|e| format!("consumer {name}: {}", err_text(&e)))?;
        {
            let mut v = self.view.lock().unwrap_or_else(|p| p.into_inner());
            v.ready = true;
            v.last_error = None;
        }
        tracing::info!(consumer = %name, "following the store stream");
        let mut chunks = messages.ready_chunks(512);
        loop {
            let batch = tokio::select! {
                b = chunks.next() => b,
                _ = shutdown.changed() => return Ok(()),
            };
            let Some(batch) = batch else { return Err("the store stream's consumer ended".into()) };
            let mut msgs = Vec::new();
            let mut todo = Vec::new();
            let (mut bad, mut last_seq, mut lag) = (0u64, 0u64, 0u64);
            for m in batch {
                let m = m.map_err(|e| format!("consumer {name}: {}", err_text(&e)))?;
                let (seq, pending) = match m.info() {
                    Ok(i) => (i.stream_sequence, i.pending),
                    Err(e) => {
                        bad += 1;
                        tracing::error!(error = %e, "a store stream message without its metadata: skipped");
                        let _ = m.ack().await;
                        continue;
                    }
                };
                last_seq = last_seq.max(seq);
                lag = pending;
                match super::decode(&m.payload) {
                    Ok(msg) if msg.lane() == self.setup.lane => {}
                    Ok(msg) => msgs.push((seq, msg)),
                    Err(e) => {
                        // Never blocks the lanes behind it: logged, counted, and acked.
                        bad += 1;
                        tracing::error!(seq, subject = %m.subject, error = %e, "unreadable store stream message: skipped");
                    }
                }
                todo.push(m);
            }
            let applied = if msgs.is_empty() {
                crate::store::LaneApplied::default()
            } else {
                let st = store.clone();
                let list = msgs.clone();
                tokio::task::spawn_blocking(move || st.apply_lane_messages(&list))
                    .await
                    .map_err(|e| format!("replica task: {e}"))?
                    .map_err(|e| format!("replica: {e}"))?
            };
            // Durable: now the stream may forget them for this lane.
            for m in &todo {
                if let Err(e) = m.ack().await {
                    tracing::warn!(error = %err_text(&*e), "ack to the store stream failed (it will redeliver)");
                }
            }
            let now = Timestamp::now();
            {
                let mut v = self.view.lock().unwrap_or_else(|p| p.into_inner());
                v.me.applied += applied.applied;
                v.me.bad_messages += bad;
                v.me.applied_seq = v.me.applied_seq.max(last_seq);
                v.me.lag = lag;
                for (_, msg) in &msgs {
                    if let LaneMessage::Sale { sale, .. } = msg {
                        let ms = (now.as_millisecond() - sale.created_at.as_millisecond()) as f64;
                        if v.apply_ms.len() >= 1024 {
                            v.apply_ms.pop_front();
                        }
                        v.apply_ms.push_back(ms.max(0.0));
                    }
                }
            }
            if applied.applied > 0 || applied.flagged > 0 {
                on_applied(&applied);
            }
        }
    }

    /// Publishes the store's queued notes (confirmations, Z reports) until acknowledged.
    async fn publish_notes(self, store: Arc<dyn Store>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let st = store.clone();
            let notes = tokio::task::spawn_blocking(move || st.lane_notes(256)).await;
            let notes = match notes {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    self.note_error(format!("bus notes: {e}"));
                    Vec::new()
                }
                Err(e) => {
                    self.note_error(format!("bus notes task: {e}"));
                    Vec::new()
                }
            };
            let mut wait = Duration::from_secs(2);
            if !notes.is_empty() {
                let out: Vec<Outgoing> = notes
                    .iter()
                    .filter_map(|(id, msg)| {
                        let data = super::encode(msg).ok().and_then(|b| serde_json::from_slice(&b).ok())?;
                        Some(Outgoing { subject: super::note_subject(&self.setup.lane), id: format!("n-{id}"), data })
                    })
                    .collect();
                match self.publish(&out, Duration::from_secs(5)).await {
                    Ok(res) => {
                        let done: Vec<Uuid> =
                            notes.iter().zip(&res).filter(|(_, r)| r.seq.is_some()).map(|((id, _), _)| *id).collect();
                        let st = store.clone();
                        let n = done.len();
                        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || st.drop_lane_notes(&done)).await {
                            self.note_error(format!("bus notes: {e}"));
                        }
                        if n == notes.len() && n == 256 {
                            wait = Duration::ZERO;
                        } else if n < notes.len() {
                            wait = Duration::from_millis(500);
                        }
                    }
                    Err(e) => {
                        self.note_error(format!("bus notes: {e}"));
                        wait = Duration::from_secs(1);
                    }
                }
            }
            {
                let mut v = self.view.lock().unwrap_or_else(|p| p.into_inner());
                v.me.notes_waiting = notes.len() as u64;
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.notes.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Every 2 s: writes this lane's status to the lanes' bucket and reads every lane's.
    async fn heartbeat(self, store: Arc<dyn Store>, mut shutdown: watch::Receiver<bool>) {
        let mut kv: Option<jetstream::kv::Store> = None;
        loop {
            let unpublished = store
                .outbox_counts()
                .get(&crate::domain::Remote::Bus)
                .map_or(0, |c| c.pending + c.in_flight + c.unknown);
            let me = {
                let mut v = self.view.lock().unwrap_or_else(|p| p.into_inner());
                v.me.unpublished = unpublished;
                v.me.at = Some(Timestamp::now());
                v.me.clone()
            };
            if self.connected() {
                if kv.is_none() {
                    match self.bucket(LANES_BUCKET, 1, 1024 * 1024).await {
                        Ok(b) => kv = Some(b),
                        Err(e) => self.note_error(e),
                    }
                }
                if let Some(b) = &kv
                    && let Err(e) = self.beat(b, &me).await
                {
                    self.note_error(e);
                }
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn beat(&self, kv: &jetstream::kv::Store, me: &LaneStatus) -> Result<(), String> {
        // Another box with this lane id, alive, is a configuration error staff must hear of.
        if let Ok(Some(v)) = kv.get(me.lane.as_str()).await
            && let Ok(other) = serde_json::from_slice::<LaneStatus>(&v)
            && other.instance != me.instance
            && other
                .at
                .is_some_and(|t| Timestamp::now().as_millisecond() - t.as_millisecond() < LANE_STALE.as_millis() as i64)
        {
            let msg = format!(
                "another box ({}) is lane {} of this store: every lane needs its own [lane] id",
                other.instance, me.lane
            );
            tracing::error!("{msg}");
            self.view.lock().unwrap_or_else(|p| p.into_inner()).conflict = Some(msg);
        } else {
            self.view.lock().unwrap_or_else(|p| p.into_inner()).conflict = None;
        }
        let bytes = serde_json::to_vec(me).map_err(|e| e.to_string())?;
        kv.put(me.lane.as_str(), bytes.into()).await.map_err(|e| format!("lanes bucket: {}", err_text(&e)))?;
        let mut lanes = BTreeMap::new();
        let mut keys = kv.keys().await.map_err(|e| format!("lanes bucket: {}", err_text(&e)))?;
        let mut names = Vec::new();
        while let Some(k) = keys.next().await {
            if let Ok(k) = k {
                names.push(k);
            }
        }
        for k in names {
            if let Ok(Some(v)) = kv.get(k.as_str()).await
                && let Ok(s) = serde_json::from_slice::<LaneStatus>(&v)
            {
                lanes.insert(k, s);
            }
        }
        self.view.lock().unwrap_or_else(|p| p.into_inner()).lanes = lanes;
        Ok(())
    }
}

/// What the store's claims bucket answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Claimed: no other lane can take these units (or refund this much) now.
    Granted,
    /// Taken already; the reason names by whom and how much is left.
    Refused(String),
    /// The store's server did not answer in time: the lane's offline rule decides.
    Unreachable(String),
}

/// One lane's claim on a SKU's last units (in the claims bucket under `stock.<SKU>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockClaim {
    pub sale: Uuid,
    pub lane: String,
    pub qty: i64,
    pub at: Timestamp,
}

/// The claims on a SKU's last units.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockClaims {
    pub claims: Vec<StockClaim>,
}

/// What has been refunded of a sale, across lanes (under `refund.<sale id>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundClaims {
    /// Line number → units (or grams) refunded.
    pub lines: BTreeMap<u32, u64>,
    /// The refunds that claimed (a retried refund claims once).
    pub refunds: Vec<Uuid>,
}

/// A claim older than this is dropped from its SKU's list: by then its sale is on every
/// lane that is following the stream.
pub const CLAIM_KEEP: Duration = Duration::from_secs(600);

/// The decision of a stock claim, as a value: the units this lane may take given what it
/// shows (`available`, which counts every sale it knows of) and the others' claims on sales
/// it does not know yet. `Ok` holds the new list.
///
/// Which claims are known is asked before what is shown: a sale the bus brings in between
/// is then counted twice (a refusal to try again), never not at all (an oversell).
#[allow(clippy::too_many_arguments)]
pub fn decide_stock(
    cur: &StockClaims,
    lane: &str,
    sku: &str,
    sale: Uuid,
    qty: i64,
    available: &dyn Fn() -> i64,
    now: Timestamp,
    known: &dyn Fn(&Uuid) -> bool,
) -> Result<StockClaims, String> {
    if cur.claims.iter().any(|c| c.sale == sale) {
        return Ok(cur.clone());
    }
    let keep_ms = CLAIM_KEEP.as_millis() as i64;
    let mut next: Vec<StockClaim> =
        cur.claims.iter().filter(|c| now.as_millisecond() - c.at.as_millisecond() < keep_ms).cloned().collect();
    let elsewhere: i64 = next.iter().filter(|c| !known(&c.sale)).map(|c| c.qty).sum();
    let available = available();
    let left = available - elsewhere;
    if qty > left {
        return Err(format!(
            "{sku}: {} left in the store ({available} shown here, {elsewhere} being sold at other lanes); {qty} wanted",
            left.max(0)
        ));
    }
    next.push(StockClaim { sale, lane: lane.to_string(), qty, at: now });
    Ok(StockClaims { claims: next })
}

/// The decision of a refund claim: each line's refunded total (the bucket's or this lane's,
/// whichever knows more) plus this refund must stay within what was sold.
pub fn decide_refund(cur: &RefundClaims, refund: Uuid, lines: &[(u32, u64, u64, u64)]) -> Result<RefundClaims, String> {
    if cur.refunds.contains(&refund) {
        return Ok(cur.clone());
    }
    let mut next = cur.clone();
    for (line_no, qty, sold, here) in lines {
        let done = next.lines.get(line_no).copied().unwrap_or(0).max(*here);
        if done + qty > *sold {
            return Err(format!(
                "line {line_no}: {done} of {sold} refunded already (at this or another lane); {qty} more cannot be"
            ));
        }
        next.lines.insert(*line_no, done + qty);
    }
    next.refunds.push(refund);
    Ok(next)
}

impl Bus {
    async fn claims(&self) -> Result<jetstream::kv::Store, String> {
        if let Some(kv) = self.claims_kv.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(kv);
        }
        let kv = self.bucket(CLAIMS_BUCKET, 1, 64 * 1024 * 1024).await?;
        *self.claims_kv.lock().unwrap_or_else(|p| p.into_inner()) = Some(kv.clone());
        Ok(kv)
    }

    /// Compare-and-swap on one key of the claims bucket: `decide` makes the new value from
    /// the current one (default when absent) or refuses; a lost race reads again.
    async fn cas<T, F>(&self, key: &str, decide: F, budget: Duration) -> Claim
    where
        T: Default + Serialize + serde::de::DeserializeOwned,
        F: Fn(&T) -> Result<T, String>,
    {
        if !self.connected() {
            return Claim::Unreachable("the store's NATS server is not connected".into());
        }
        enum Fail {
            Refused(String),
            Failed(String),
        }
        let work = async {
            let kv = self.claims().await.map_err(Fail::Failed)?;
            for _ in 0..16 {
                let entry = kv.entry(key).await.map_err(|e| Fail::Failed(format!("claims {key}: {e}")))?;
                let (cur, rev) = match &entry {
                    Some(e) if e.operation == jetstream::kv::Operation::Put => (
                        serde_json::from_slice::<T>(&e.value)
                            .map_err(|err| Fail::Failed(format!("claims {key}: unreadable value: {err}")))?,
                        Some(e.revision),
                    ),
                    Some(e) => (T::default(), Some(e.revision)),
                    None => (T::default(), None),
                };
                let next = decide(&cur).map_err(Fail::Refused)?;
                let bytes = serde_json::to_vec(&next).map_err(|e| Fail::Failed(e.to_string()))?;
                let res = match rev {
                    Some(r) => kv.update(key, bytes.into(), r).await.map(|_| ()).map_err(|e| e.to_string()),
                    None => kv.create(key, bytes.into()).await.map(|_| ()).map_err(|e| e.to_string()),
                };
                // Another lane wrote first: read again.
                if res.is_ok() {
                    return Ok(());
                }
            }
            Err(Fail::Failed(format!("claims {key}: too many lanes at once")))
        };
        match tokio::time::timeout(budget, work).await {
            Ok(Ok(())) => Claim::Granted,
            Ok(Err(Fail::Refused(why))) => Claim::Refused(why),
            Ok(Err(Fail::Failed(e))) => Claim::Unreachable(e),
            Err(_) => Claim::Unreachable(format!("the store's server did not answer within {} ms", budget.as_millis())),
        }
    }

    /// Claims `qty` of a SKU's last units for `sale`.
    pub async fn claim_stock(
        &self,
        sku: &str,
        qty: i64,
        available: &(dyn Fn() -> i64 + Sync),
        sale: Uuid,
        known: &(dyn Fn(&Uuid) -> bool + Sync),
    ) -> Claim {
        let lane = self.setup.lane.clone();
        let now = Timestamp::now();
        let key = format!("stock.{}", claim_key(sku));
        self.cas::<StockClaims, _>(
            &key,
            |cur| decide_stock(cur, &lane, sku, sale, qty, available, now, known),
            Duration::from_millis(800),
        )
        .await
    }

    /// Claims the lines of `refund` on sale `orig`: (line, qty, sold, refunded here).
    pub async fn claim_refund(&self, orig: Uuid, refund: Uuid, lines: &[(u32, u64, u64, u64)]) -> Claim {
        let key = format!("refund.{orig}");
        self.cas::<RefundClaims, _>(&key, |cur| decide_refund(cur, refund, lines), Duration::from_millis(800)).await
    }

    /// Lanes with a heartbeat in the last day (the escrow divides by them), at least 1.
    pub fn lanes_known(&self) -> u32 {
        let v = self.view.lock().unwrap_or_else(|p| p.into_inner());
        let now = Timestamp::now().as_millisecond();
        let n = v.lanes.values().filter(|l| l.at.is_some_and(|t| now - t.as_millisecond() < 86_400_000)).count();
        u32::try_from(n).unwrap_or(u32::MAX).max(1)
    }
}

/// A SKU as a key token of the claims bucket (NATS keys take `[-/_=.a-zA-Z0-9]`; anything
/// else is written as `=HH`).
pub fn claim_key(sku: &str) -> String {
    let mut out = String::with_capacity(sku.len());
    for b in sku.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    out
}

/// The engine's bus worker publishes through this.
struct BusTransport {
    bus: Bus,
}

impl Transport for BusTransport {
    fn exchange<'a>(
        &'a self,
        req: &'a HttpRequest,
        timeout: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<HttpResponse, TransportError>> + Send + 'a>> {
        Box::pin(async move {
            let batch: PublishBatch = serde_json::from_slice(&req.body)
                .map_err(|e| TransportError::Connect(format!("the bus connector's batch is unreadable: {e}")))?;
            let results = self.bus.publish(&batch.messages, timeout).await?;
            let body = serde_json::to_value(PublishReply { results })
                .map_err(|e| TransportError::NoReply(format!("cannot encode the acks: {e}")))?;
            Ok(HttpResponse::json(200, &body))
        })
    }
}
