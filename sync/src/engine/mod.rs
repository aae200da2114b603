//! The sync engine: delivers the outbox to each remote exactly once.
//!
//! # Design
//!
//! One [`Worker`] per remote walks that remote's outbox entries (see `store`): every sale
//! made one entry per configured remote in the same atomic write as the sale, with a UUID v7
//! born at the edge. That id is the remote's idempotency handle and never changes, so an
//! entry can be sent any number of times and the remote keeps it once.
//!
//! The worker is sans-I/O: [`Worker::poll`] decides what to send and when, and
//! [`Worker::on_reply`] decides what a reply (or its absence) means. Both take the time and
//! the store as parameters; jitter comes from a seeded generator the caller hands in. The
//! async runner ([`run`]) drives them over reqwest in edged; the simulation ([`sim`]) drives
//! the very same code over a seeded virtual network with a fake remote, outages, lost
//! replies and crashes, thousands of times per CI run.
//!
//! # Entry states (every move is a guarded store transition)
//!
//! ```text
//! Pending ──poll──▶ InFlight(attempt) ──reply──▶ Confirmed(remote id)
//!    ▲                  │  │  │                   
//!    │  not sent /      │  │  └─ refused for good ─▶ Rejected(reason)   (dead letter)
//!    └─ retry later ────┘  └─ no reply / 5xx ──────▶ Unknown ──poll──▶ InFlight(attempt+1)
//!                            record failed N times ▶ Dead(reason)       (dead letter)
//! ```
//!
//! * **InFlight is durable before the first byte leaves**: `poll` moves the batch to
//!   InFlight with [`OutboxStore::transition_outbox_durable`] (journaled and fdatasynced
//!   with the sale commits' group commit) before it returns the request. After a crash,
//!   an entry found InFlight (or Unknown) is an entry whose outcome is unknown; it is settled
//!   by sending it again with the same id, which the remote answers as a duplicate. Other
//!   moves are durable at the next sync; losing one only causes such a re-send. Where a
//!   blind re-send can never duplicate ([`Connector::resend_is_safe`]: the cloud's event
//!   ids, NetSuite's upsert by external id) the InFlight move is not flushed first either;
//!   only a remote that must be asked before a re-post (Lightspeed) pays the flush.
//! * **Errors are classified**: a failure of the remote as a whole (cannot connect, timeout,
//!   5xx, 401/403, garbled answer) does not count against the records — it feeds the
//!   circuit breaker and the remote's backoff, so a week-long outage never kills a sale. A
//!   failure of one record (the remote's per-record answer says retry, or no answer for it)
//!   counts against that record; after `max_record_attempts` it becomes Dead. A permanent
//!   refusal of one record makes it Rejected with the remote's reason. A whole-batch 4xx
//!   makes every record of the batch go alone, so one bad record never blocks the others.
//! * **Backoff** is exponential with equal jitter and a ceiling, per remote (remote
//!   failures) and per record (record failures).
//! * **Circuit breaker** per remote: `breaker_threshold` consecutive remote failures open
//!   it for `breaker_open_ms` (doubling up to `backoff_max_ms` while probes fail); then one
//!   half-open probe of a single record decides.
//! * **Rate limits follow the remote's signals**: `Retry-After` on a 429 or 503 blocks the
//!   remote until then; a remote that announces a token bucket (capacity, remaining, refill
//!   rate) is paced so that a batch goes only when the bucket can take it. At most
//!   `max_in_flight` requests are outstanding per remote.
//! * **Shadow mode** builds and validates each payload once, logs it and sends nothing that
//!   mutates; entries stay pending so switching to live delivers them.

pub mod run;
pub mod sim;
pub mod sim_lanes;

use crate::domain::{OutboxEntry, OutboxState, Record, RecordKind, Remote, id_time};
use crate::store::{OutboxMove, Store, StoreError};
use crate::wire::{HttpRequest, HttpResponse, TransportError};
use jiff::Timestamp;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use uuid::Uuid;

/// What the engine needs of the store.
pub trait OutboxStore: Send + Sync {
    fn outbox_waiting(
        &self,
        remote: Remote,
        after: Option<&Uuid>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError>;
    fn transition_outbox_many(
        &self,
        moves: &[OutboxMove],
        at: Timestamp,
    ) -> Result<Vec<Result<OutboxEntry, String>>, StoreError>;
    /// Moves that are durable when this returns.
    fn transition_outbox_durable(
        &self,
        moves: &[OutboxMove],
        at: Timestamp,
    ) -> Result<Vec<Result<OutboxEntry, String>>, StoreError>;
    /// The record an entry delivers (a sale or a stock adjustment), if the store has it.
    fn record(&self, entry: &OutboxEntry) -> Result<Option<Record>, StoreError>;
}

impl<T: Store + ?Sized> OutboxStore for T {
    fn outbox_waiting(
        &self,
        remote: Remote,
        after: Option<&Uuid>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        Store::outbox_waiting(self, remote, after, limit)
    }
    fn transition_outbox_many(
        &self,
        moves: &[OutboxMove],
        at: Timestamp,
    ) -> Result<Vec<Result<OutboxEntry, String>>, StoreError> {
        Store::transition_outbox_many(self, moves, at)
    }
    fn transition_outbox_durable(
        &self,
        moves: &[OutboxMove],
        at: Timestamp,
    ) -> Result<Vec<Result<OutboxEntry, String>>, StoreError> {
        Store::transition_outbox_durable(self, moves, at)
    }
    fn record(&self, entry: &OutboxEntry) -> Result<Option<Record>, StoreError> {
        Ok(match entry.kind {
            RecordKind::Sale => Store::sale(self, &entry.record_id)?.map(|s| Record::Sale(Box::new(s))),
            RecordKind::Adjustment => Store::adjustment(self, &entry.record_id)?.map(Record::Adjustment),
        })
    }
}

/// The remote's verdict on one record of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordResult {
    /// Kept (now or before: a duplicate is a success) under this remote id.
    Confirmed(String),
    /// Not kept this time; may succeed later.
    Retry(String),
    /// Refused for good; the reason names the field where the remote does.
    Refused(String),
    /// Not sent: the request was a step before it (a token refresh). Back to the state it
    /// had before this attempt (pending, or unknown if its outcome was unknown), no
    /// failure counted.
    NotSent(String),
    /// Looked up after an unknown outcome and not at the remote: pending, to be sent.
    Absent(String),
}

/// When an entry of unknown outcome may be looked up at a remote without idempotency keys
/// (Lightspeed, Shopify's orders): `quarantine_ms` after it became unknown, so a request
/// still on its way lands first. `None` for an entry whose outcome is known.
pub fn quarantined_until(e: &OutboxEntry, quarantine_ms: i64) -> Option<Timestamp> {
    match e.state {
        OutboxState::Unknown | OutboxState::InFlight { .. } => {
            Timestamp::from_millisecond(e.updated_at.as_millisecond().saturating_add(quarantine_ms)).ok()
        }
        _ => None,
    }
}

/// A connector's own reading of a reply the engine would otherwise judge by its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// One result per record.
    Results(BTreeMap<Uuid, RecordResult>),
    /// The remote as a whole failed (e.g. its token endpoint refused us): the records go
    /// back to pending and the breaker hears of it.
    RemoteFailed(String),
}

/// A remote's protocol: how a batch of records becomes a request and what a 2xx reply says.
/// No I/O.
pub trait Connector: Send {
    /// Largest number of records in one request.
    fn max_batch(&self) -> usize;
    /// Builds the request for `records` (at least one). A record that cannot be sent at all
    /// (e.g. a mapping is missing) is returned in the second part with the reason; it is
    /// not in the request.
    fn build(
        &mut self,
        records: &[(OutboxEntry, Record)],
        now: Timestamp,
    ) -> (Option<HttpRequest>, Vec<(Uuid, String)>);
    /// Reads a 2xx reply: one result per entry id, or an error saying why the reply makes no
    /// sense (then the outcome of every record in the batch is unknown).
    fn parse(&mut self, ids: &[Uuid], reply: &HttpResponse) -> Result<BTreeMap<Uuid, RecordResult>, String>;
    /// The remote refused our credentials (401/403): refresh them if the protocol can.
    fn on_auth_refused(&mut self, _now: Timestamp) {}
    /// An entry may not be picked before this time. A remote without idempotency keys looks
    /// an entry of unknown outcome up before posting it again, and must first let any
    /// request still on its way land, or the look-up could miss it.
    fn not_before(&self, _entry: &OutboxEntry) -> Option<Timestamp> {
        None
    }
    /// Sees every reply (any status) before the engine judges it: rate-limit headers.
    fn observe(&mut self, _reply: &HttpResponse, _now: Timestamp) {}
    /// Nothing may be sent before this time (a refresh under way, a bucket to drain).
    fn ready_at(&mut self, _now: Timestamp) -> Option<Timestamp> {
        None
    }
    /// The earliest time this request may go (the remote's bucket must have room for it).
    /// `None`: it goes now (and the connector counts it as spent).
    fn pace(&mut self, _request: &HttpRequest, _now: Timestamp) -> Option<Timestamp> {
        None
    }
    /// Reads a reply to a request that was not the records' own (a token refresh), or a
    /// status the protocol gives its own meaning. `None`: the engine judges by status.
    fn intercept(&mut self, _ids: &[Uuid], _reply: &HttpResponse, _now: Timestamp) -> Option<Verdict> {
        None
    }
    /// The dead-letter reason of a 4xx refusal of one record, naming the field where the
    /// remote's answer does.
    fn refusal(&self, reply: &HttpResponse) -> String {
        format!("refused ({}): {}", reply.status, reply.body_excerpt(300))
    }
    /// Whether sending a record again, blind, can never make a second copy at the remote
    /// (an idempotent event id, an upsert by external id). Then InFlight need not be durable
    /// before the send: a crash that loses the move leaves the entry pending, and sending it
    /// again is harmless. A remote that needs a look-up first (Lightspeed) says no.
    fn resend_is_safe(&self) -> bool {
        false
    }
}

/// Bounds and timings of a worker.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Cap on records per request (the connector's own cap also applies).
    pub max_batch: usize,
    /// Requests outstanding at once.
    pub max_in_flight: usize,
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// Failures of one record before it becomes a dead letter.
    pub max_record_attempts: u32,
    pub breaker_threshold: u32,
    pub breaker_open_ms: u64,
    /// Waiting entries looked at per poll.
    pub scan_limit: usize,
    /// Log payloads and send nothing that mutates.
    pub shadow: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_batch: 100,
            max_in_flight: 2,
            backoff_base_ms: 500,
            backoff_max_ms: 300_000,
            max_record_attempts: 10,
            breaker_threshold: 5,
            breaker_open_ms: 30_000,
            scan_limit: 4096,
            shadow: false,
        }
    }
}

/// A request the driver must send, with what the worker needs to read its reply.
#[derive(Debug, Clone)]
pub struct Batch {
    pub seq: u64,
    pub ids: Vec<Uuid>,
    pub request: HttpRequest,
}

/// What the driver should do next.
#[derive(Debug)]
pub enum Poll {
    Send(Batch),
    /// Nothing to send before this time (or before a reply or a new record arrives).
    WaitUntil(Timestamp),
    /// Nothing to send until a reply or a new record arrives.
    Idle,
}

/// Errors of the engine itself (not of the remote).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Small deterministic generator for jitter (SplitMix64); seeded by the caller.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Jitter {
        Jitter(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..=max`.
    pub fn below(&mut self, max: u64) -> u64 {
        if max == u64::MAX { self.next_u64() } else { self.next_u64() % (max + 1) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Breaker {
    Closed,
    Open { until_ms: i64, period_ms: u64 },
    HalfOpen { probing: bool, period_ms: u64 },
}

/// A token bucket the remote announced, as last seen.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    capacity: f64,
    remaining: f64,
    refill_per_s: f64,
    at_ms: i64,
}

impl Bucket {
    fn level(&self, now_ms: i64) -> f64 {
        let dt = (now_ms - self.at_ms).max(0) as f64 / 1000.0;
        (self.remaining + dt * self.refill_per_s).min(self.capacity)
    }
}

#[derive(Debug, Clone, Copy)]
struct Deferred {
    until_ms: i64,
    failures: u32,
}

/// Health of one remote, for `/v1/sync`, events, metrics and the CLI.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// `idle` (no exchange yet), `connected`, `degraded`, `down` or `shadow`.
    pub state: &'static str,
    pub breaker: &'static str,
    pub last_success_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub errors_last_hour: u64,
    /// `ok`, or `limited` while the remote's rate limit holds us back.
    pub rate_limit: &'static str,
    pub rate_limited_until: Option<Timestamp>,
    /// 429 answers received since start.
    pub throttled_total: u64,
    pub requests_total: u64,
    pub in_flight_requests: usize,
}

const HOUR_MS: i64 = 3_600_000;
const MAX_ERROR_MARKS: usize = 10_000;

/// The delivery state machine of one remote.
pub struct Worker {
    remote: Remote,
    connector: Box<dyn Connector>,
    policy: Policy,
    jitter: Jitter,
    next_seq: u64,
    /// Requests outstanding: seq → entry ids with the state they were moved to.
    outstanding: BTreeMap<u64, Vec<(Uuid, u32)>>,
    busy: BTreeSet<Uuid>,
    deferred: BTreeMap<Uuid, Deferred>,
    /// Entries that must be sent alone (their batch was refused as a whole).
    solo: BTreeSet<Uuid>,
    /// Shadow mode: entries already validated.
    shadowed: BTreeSet<Uuid>,
    /// Entries in flight whose outcome was unknown before this attempt.
    was_unknown: BTreeSet<Uuid>,
    breaker: Breaker,
    remote_failures: u32,
    blocked_until_ms: i64,
    rate_limited_until_ms: i64,
    bucket: Option<Bucket>,
    last_success: Option<Timestamp>,
    last_error: Option<String>,
    error_marks: VecDeque<i64>,
    throttled_total: u64,
    requests_total: u64,
    ever_tried: bool,
}

fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::MAX)
}

impl Worker {
    pub fn new(remote: Remote, connector: Box<dyn Connector>, policy: Policy, seed: u64) -> Worker {
        Worker {
            remote,
            connector,
            policy,
            jitter: Jitter::new(seed),
            next_seq: 1,
            outstanding: BTreeMap::new(),
            busy: BTreeSet::new(),
            deferred: BTreeMap::new(),
            solo: BTreeSet::new(),
            shadowed: BTreeSet::new(),
            was_unknown: BTreeSet::new(),
            breaker: Breaker::Closed,
            remote_failures: 0,
            blocked_until_ms: i64::MIN,
            rate_limited_until_ms: i64::MIN,
            bucket: None,
            last_success: None,
            last_error: None,
            error_marks: VecDeque::new(),
            throttled_total: 0,
            requests_total: 0,
            ever_tried: false,
        }
    }

    pub fn remote(&self) -> Remote {
        self.remote
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Forgets per-record backoff (a manual "sync now" or a dead-letter replay).
    pub fn nudge(&mut self, now: Timestamp) {
        self.deferred.clear();
        if matches!(self.breaker, Breaker::Open { .. }) {
            self.breaker = Breaker::HalfOpen { probing: false, period_ms: self.policy.breaker_open_ms };
        }
        self.blocked_until_ms = self.blocked_until_ms.min(ms(now).max(self.rate_limited_until_ms));
    }

    fn backoff_ms(&mut self, failures: u32) -> u64 {
        let exp = self.policy.backoff_base_ms.saturating_mul(1u64 << failures.saturating_sub(1).min(30));
        let cap = exp.min(self.policy.backoff_max_ms).max(1);
        cap / 2 + self.jitter.below(cap - cap / 2)
    }

    /// Decides what to send now. A returned batch is durably InFlight.
    pub fn poll<S: OutboxStore + ?Sized>(&mut self, now: Timestamp, store: &S) -> Result<Poll, EngineError> {
        let now_ms = ms(now);
        if self.outstanding.len() >= self.policy.max_in_flight.max(1) {
            return Ok(Poll::Idle);
        }
        if now_ms < self.blocked_until_ms {
            return Ok(Poll::WaitUntil(ts(self.blocked_until_ms)));
        }
        if let Some(t) = self.connector.ready_at(now).filter(|t| *t > now) {
            return Ok(Poll::WaitUntil(t));
        }
        let mut max = self.policy.max_batch.min(self.connector.max_batch()).max(1);
        match self.breaker {
            Breaker::Open { until_ms, period_ms } => {
                if now_ms < until_ms {
                    return Ok(Poll::WaitUntil(ts(until_ms)));
                }
                self.breaker = Breaker::HalfOpen { probing: false, period_ms };
                max = 1;
            }
            Breaker::HalfOpen { probing: true, .. } => return Ok(Poll::Idle),
            Breaker::HalfOpen { probing: false, .. } => max = 1,
            Breaker::Closed => {}
        }
        if let Some(b) = self.bucket {
            let level = b.level(now_ms).floor();
            // Wait for room for a worthwhile batch rather than trickle single records.
            let want = (max as f64).min((b.capacity / 4.0).max(1.0)).floor();
            if level < want {
                if b.refill_per_s <= 0.0 {
                    return Ok(Poll::WaitUntil(ts(now_ms + 1000)));
                }
                let wait = ((want - b.level(now_ms)) / b.refill_per_s * 1000.0).ceil() as i64;
                return Ok(Poll::WaitUntil(ts(now_ms + wait.max(1))));
            }
            max = max.min(level as usize).max(1);
        }

        // Pick the due entries in creation order.
        let mut picked: Vec<OutboxEntry> = Vec::new();
        let mut earliest_deferred: Option<i64> = None;
        let mut after: Option<Uuid> = None;
        let mut scanned = 0usize;
        // The first page is sized for what this poll can take (a batch, past the entries
        // already in flight or waiting out a backoff): each entry read is a store lookup, and
        // reading 256 to send one cost milliseconds per request.
        let mut page_size = (max + self.busy.len() + self.deferred.len()).clamp(16, 256);
        'scan: while scanned < self.policy.scan_limit {
            let page = store.outbox_waiting(self.remote, after.as_ref(), page_size)?;
            page_size = 256;
            if page.is_empty() {
                break;
            }
            for e in page {
                scanned += 1;
                after = Some(e.id);
                if self.busy.contains(&e.id) || (self.policy.shadow && self.shadowed.contains(&e.id)) {
                    continue;
                }
                if let Some(d) = self.deferred.get(&e.id)
                    && d.until_ms > now_ms
                {
                    earliest_deferred = Some(earliest_deferred.map_or(d.until_ms, |x| x.min(d.until_ms)));
                    continue;
                }
                if let Some(t) = self.connector.not_before(&e).map(ms)
                    && t > now_ms
                {
                    earliest_deferred = Some(earliest_deferred.map_or(t, |x| x.min(t)));
                    continue;
                }
                if self.solo.contains(&e.id) {
                    if picked.is_empty() {
                        picked.push(e);
                    }
                    break 'scan;
                }
                picked.push(e);
                if picked.len() >= max {
                    break 'scan;
                }
            }
        }
        if picked.is_empty() {
            return Ok(match earliest_deferred {
                Some(t) => Poll::WaitUntil(ts(t)),
                None => Poll::Idle,
            });
        }

        // Records and payload.
        let mut records = Vec::with_capacity(picked.len());
        let mut refused: Vec<(Uuid, OutboxState, String)> = Vec::new();
        for e in picked {
            match store.record(&e)? {
                Some(r) => records.push((e, r)),
                None => {
                    let why = format!("the {:?} {} of this entry is not in the store", e.kind, e.record_id);
                    refused.push((e.id, e.state.clone(), why));
                }
            }
        }
        let (request, bad) = if records.is_empty() { (None, Vec::new()) } else { self.connector.build(&records, now) };
        for (id, why) in bad {
            if let Some((e, _)) = records.iter().find(|(e, _)| e.id == id) {
                refused.push((id, e.state.clone(), why));
            }
        }
        let refused_ids: BTreeSet<Uuid> = refused.iter().map(|r| r.0).collect();
        records.retain(|(e, _)| !refused_ids.contains(&e.id));
        if self.policy.shadow {
            for (id, _, why) in &refused {
                tracing::warn!(remote = %self.remote, entry = %id, reason = %why, "shadow: this record would be rejected");
                self.shadowed.insert(*id);
            }
            if let Some(req) = &request {
                tracing::info!(
                    remote = %self.remote, method = %req.method, path = %req.path, records = records.len(),
                    body = %String::from_utf8_lossy(&req.body), "shadow: built a request and did not send it"
                );
            }
            for (e, _) in &records {
                self.shadowed.insert(e.id);
            }
            return Ok(Poll::Idle);
        }
        if !refused.is_empty() {
            let moves: Vec<OutboxMove> = refused
                .iter()
                .map(|(id, st, why)| OutboxMove {
                    remote: self.remote,
                    id: *id,
                    expected: st.clone(),
                    next: OutboxState::Rejected { reason: why.clone() },
                })
                .collect();
            store.transition_outbox_many(&moves, now)?;
            for (id, _, why) in &refused {
                tracing::warn!(remote = %self.remote, entry = %id, reason = %why, "record cannot be sent: dead letter");
            }
        }
        let Some(request) = request.filter(|_| !records.is_empty()) else {
            return Ok(Poll::WaitUntil(now));
        };
        if let Some(t) = self.connector.pace(&request, now).filter(|t| *t > now) {
            return Ok(Poll::WaitUntil(t));
        }

        // InFlight, durably before anything is sent — unless a blind re-send is harmless
        // at this remote (then the move rides on the next checkpoint and a request does not
        // wait for a disk flush).
        let moves: Vec<OutboxMove> = records
            .iter()
            .map(|(e, _)| OutboxMove {
                remote: self.remote,
                id: e.id,
                expected: e.state.clone(),
                next: OutboxState::InFlight { attempt: e.attempts.saturating_add(1) },
            })
            .collect();
        let results = if self.connector.resend_is_safe() {
            store.transition_outbox_many(&moves, now)?
        } else {
            store.transition_outbox_durable(&moves, now)?
        };
        let mut sent = Vec::with_capacity(records.len());
        for ((e, _), r) in records.iter().zip(&results) {
            match r {
                Ok(_) => {
                    sent.push((e.id, e.attempts.saturating_add(1)));
                    let was_unknown = matches!(e.state, OutboxState::Unknown | OutboxState::InFlight { .. });
                    if was_unknown {
                        self.was_unknown.insert(e.id);
                    } else {
                        self.was_unknown.remove(&e.id);
                    }
                }
                // Moved by someone else (a dead-letter replay racing us): leave it.
                Err(why) => tracing::debug!(entry = %e.id, %why, "entry changed under the worker"),
            }
        }
        if sent.len() != records.len() {
            // The request must carry exactly the entries now InFlight: rebuild it.
            let keep: BTreeSet<Uuid> = sent.iter().map(|s| s.0).collect();
            records.retain(|(e, _)| keep.contains(&e.id));
            if records.is_empty() {
                return Ok(Poll::WaitUntil(now));
            }
            let (req, _) = self.connector.build(&records, now);
            let Some(req) = req else { return Ok(Poll::WaitUntil(now)) };
            return Ok(self.dispatch(now_ms, sent, req));
        }
        Ok(self.dispatch(now_ms, sent, request))
    }

    fn dispatch(&mut self, now_ms: i64, sent: Vec<(Uuid, u32)>, request: HttpRequest) -> Poll {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Breaker::HalfOpen { period_ms, .. } = self.breaker {
            self.breaker = Breaker::HalfOpen { probing: true, period_ms };
        }
        let ids: Vec<Uuid> = sent.iter().map(|s| s.0).collect();
        for id in &ids {
            self.busy.insert(*id);
        }
        self.outstanding.insert(seq, sent);
        self.requests_total += 1;
        self.ever_tried = true;
        if let Some(b) = &mut self.bucket {
            // Spend the tokens now so a second request does not count them again.
            b.remaining = (b.level(now_ms) - ids.len() as f64).max(0.0);
            b.at_ms = now_ms;
        }
        Poll::Send(Batch { seq, ids, request })
    }

    /// Reads the outcome of a batch sent earlier and stores what it means.
    pub fn on_reply<S: OutboxStore + ?Sized>(
        &mut self,
        now: Timestamp,
        store: &S,
        seq: u64,
        reply: Result<HttpResponse, TransportError>,
    ) -> Result<(), EngineError> {
        let now_ms = ms(now);
        let Some(sent) = self.outstanding.remove(&seq) else {
            return Ok(());
        };
        for (id, _) in &sent {
            self.busy.remove(id);
        }
        let was_unknown: BTreeSet<Uuid> =
            sent.iter().filter(|(id, _)| self.was_unknown.remove(id)).map(|s| s.0).collect();
        // Not acted on: back to where it was. An entry whose outcome was unknown stays so
        // (a remote without idempotency keys must look it up before posting it again).
        let back = |id: &Uuid| if was_unknown.contains(id) { OutboxState::Unknown } else { OutboxState::Pending };
        let probing = matches!(self.breaker, Breaker::HalfOpen { probing: true, .. });
        if let Breaker::HalfOpen { period_ms, .. } = self.breaker {
            self.breaker = Breaker::HalfOpen { probing: false, period_ms };
        }
        let remote = self.remote;
        let to = |next: &dyn Fn(&Uuid) -> OutboxState| -> Vec<OutboxMove> {
            sent.iter()
                .map(|(id, attempt)| OutboxMove {
                    remote,
                    id: *id,
                    expected: OutboxState::InFlight { attempt: *attempt },
                    next: next(id),
                })
                .collect()
        };
        let resp = match reply {
            Err(TransportError::Connect(why)) => {
                store.transition_outbox_many(&to(&back), now)?;
                self.remote_failed(now_ms, format!("cannot connect: {why}"), probing, None);
                return Ok(());
            }
            Err(TransportError::NoReply(why)) => {
                store.transition_outbox_many(&to(&|_| OutboxState::Unknown), now)?;
                self.remote_failed(now_ms, format!("no reply: {why}"), probing, None);
                return Ok(());
            }
            Ok(r) => r,
        };
        self.connector.observe(&resp, now);
        let ids: Vec<Uuid> = sent.iter().map(|s| s.0).collect();
        match self.connector.intercept(&ids, &resp, now) {
            Some(Verdict::Results(results)) => {
                self.remote_ok(now);
                return self.apply_results(now, store, &sent, &results, &was_unknown);
            }
            Some(Verdict::RemoteFailed(why)) => {
                store.transition_outbox_many(&to(&back), now)?;
                self.remote_failed(now_ms, why, probing, None);
                return Ok(());
            }
            None => {}
        }
        self.read_rate_headers(now_ms, &resp);
        let retry_after = retry_after_ms(&resp, now);
        match resp.status {
            429 => {
                self.throttled_total += 1;
                let wait = retry_after.unwrap_or_else(|| self.backoff_ms(self.throttled_total.min(16) as u32));
                self.rate_limited_until_ms = now_ms.saturating_add(i64::try_from(wait).unwrap_or(i64::MAX));
                self.blocked_until_ms = self.blocked_until_ms.max(self.rate_limited_until_ms);
                if let Some(b) = &mut self.bucket {
                    b.remaining = 0.0;
                    b.at_ms = now_ms;
                }
                if let Breaker::HalfOpen { period_ms, .. } = self.breaker {
                    self.breaker = Breaker::HalfOpen { probing: false, period_ms };
                }
                store.transition_outbox_many(&to(&back), now)?;
                Ok(())
            }
            401 | 403 => {
                store.transition_outbox_many(&to(&back), now)?;
                self.connector.on_auth_refused(now);
                let why = format!("credentials refused ({}): {}", resp.status, resp.body_excerpt(200));
                self.remote_failed(now_ms, why, probing, retry_after);
                Ok(())
            }
            408 | 500..=599 => {
                store.transition_outbox_many(&to(&|_| OutboxState::Unknown), now)?;
                let why = format!("remote error {}: {}", resp.status, resp.body_excerpt(200));
                self.remote_failed(now_ms, why, probing, retry_after);
                Ok(())
            }
            200..=299 => match self.connector.parse(&ids, &resp) {
                Err(why) => {
                    store.transition_outbox_many(&to(&|_| OutboxState::Unknown), now)?;
                    self.remote_failed(now_ms, format!("answer makes no sense: {why}"), probing, None);
                    Ok(())
                }
                Ok(results) => {
                    self.remote_ok(now);
                    self.apply_results(now, store, &sent, &results, &was_unknown)
                }
            },
            _ => {
                // A refusal of the request as a whole (400, 404, 409, 413, 422 …).
                let why = self.connector.refusal(&resp);
                if sent.len() > 1 {
                    for (id, _) in &sent {
                        self.solo.insert(*id);
                    }
                    store.transition_outbox_many(&to(&back), now)?;
                    tracing::warn!(remote = %self.remote, records = sent.len(), reason = %why,
                        "batch refused as a whole: its records go one by one");
                } else {
                    store.transition_outbox_many(&to(&|_| OutboxState::Rejected { reason: why.clone() }), now)?;
                    for (id, _) in &sent {
                        self.solo.remove(id);
                    }
                    tracing::warn!(remote = %self.remote, reason = %why, "record refused: dead letter");
                }
                self.remote_ok(now);
                Ok(())
            }
        }
    }

    fn apply_results<S: OutboxStore + ?Sized>(
        &mut self,
        now: Timestamp,
        store: &S,
        sent: &[(Uuid, u32)],
        results: &BTreeMap<Uuid, RecordResult>,
        was_unknown: &BTreeSet<Uuid>,
    ) -> Result<(), EngineError> {
        let now_ms = ms(now);
        let mut moves = Vec::with_capacity(sent.len());
        for (id, attempt) in sent {
            let expected = OutboxState::InFlight { attempt: *attempt };
            let next = match results.get(id) {
                Some(RecordResult::Confirmed(rid)) => {
                    self.deferred.remove(id);
                    self.solo.remove(id);
                    OutboxState::Confirmed { remote_id: rid.clone() }
                }
                Some(RecordResult::NotSent(why)) => {
                    tracing::debug!(remote = %self.remote, entry = %id, %why, "not sent yet");
                    if was_unknown.contains(id) { OutboxState::Unknown } else { OutboxState::Pending }
                }
                Some(RecordResult::Absent(why)) => {
                    tracing::info!(remote = %self.remote, entry = %id, %why, "looked up: not at the remote");
                    OutboxState::Pending
                }
                Some(RecordResult::Refused(why)) => {
                    self.deferred.remove(id);
                    self.solo.remove(id);
                    tracing::warn!(remote = %self.remote, entry = %id, reason = %why, "record refused: dead letter");
                    OutboxState::Rejected { reason: why.clone() }
                }
                other => {
                    let (why, next) = match other {
                        Some(RecordResult::Retry(w)) => (w.clone(), OutboxState::Pending),
                        _ => ("the remote's answer does not mention this record".to_string(), OutboxState::Unknown),
                    };
                    let failures = self.deferred.get(id).map_or(0, |d| d.failures) + 1;
                    if failures >= self.policy.max_record_attempts {
                        self.deferred.remove(id);
                        let reason = format!("gave up after {failures} failed attempts; last: {why}");
                        tracing::warn!(remote = %self.remote, entry = %id, %reason, "dead letter");
                        OutboxState::Dead { reason }
                    } else {
                        let wait = self.backoff_ms(failures);
                        let until_ms = now_ms.saturating_add(i64::try_from(wait).unwrap_or(i64::MAX));
                        self.deferred.insert(*id, Deferred { until_ms, failures });
                        self.mark_error(now_ms, format!("record {id}: {why}"));
                        next
                    }
                }
            };
            moves.push(OutboxMove { remote: self.remote, id: *id, expected, next });
        }
        store.transition_outbox_many(&moves, now)?;
        Ok(())
    }

    fn remote_ok(&mut self, now: Timestamp) {
        self.remote_failures = 0;
        self.breaker = Breaker::Closed;
        self.last_success = Some(now);
    }

    fn remote_failed(&mut self, now_ms: i64, why: String, probing: bool, retry_after: Option<u64>) {
        self.remote_failures = self.remote_failures.saturating_add(1);
        tracing::warn!(remote = %self.remote, failures = self.remote_failures, error = %why, "delivery failed");
        self.mark_error(now_ms, why);
        let open_for = |period: u64| now_ms.saturating_add(i64::try_from(period).unwrap_or(i64::MAX));
        match self.breaker {
            Breaker::HalfOpen { period_ms, .. } if probing => {
                let period =
                    period_ms.saturating_mul(2).min(self.policy.backoff_max_ms.max(self.policy.breaker_open_ms));
                self.breaker = Breaker::Open { until_ms: open_for(period), period_ms: period };
            }
            _ if self.remote_failures >= self.policy.breaker_threshold => {
                let period = self.policy.breaker_open_ms;
                tracing::warn!(remote = %self.remote, open_ms = period, "circuit breaker open");
                self.breaker = Breaker::Open { until_ms: open_for(period), period_ms: period };
            }
            _ => {
                let wait = self.backoff_ms(self.remote_failures);
                self.blocked_until_ms = self.blocked_until_ms.max(open_for(wait));
            }
        }
        if let Some(ra) = retry_after {
            self.blocked_until_ms = self.blocked_until_ms.max(open_for(ra));
        }
    }

    fn mark_error(&mut self, now_ms: i64, why: String) {
        self.last_error = Some(why);
        self.error_marks.push_back(now_ms);
        while self.error_marks.len() > MAX_ERROR_MARKS {
            self.error_marks.pop_front();
        }
    }

    fn read_rate_headers(&mut self, now_ms: i64, r: &HttpResponse) {
        let num =
            |h: &str| r.header(h).and_then(|v| v.trim().parse::<f64>().ok()).filter(|v| v.is_finite() && *v >= 0.0);
        if let (Some(capacity), Some(remaining), Some(refill)) =
            (num("x-ratelimit-capacity"), num("x-ratelimit-remaining"), num("x-ratelimit-refill-per-second"))
            && capacity >= 1.0
        {
            // Tokens spent by requests still outstanding are not in `remaining` yet.
            let pending: usize = self.outstanding.values().map(Vec::len).sum();
            let remaining = (remaining.min(capacity) - pending as f64).max(0.0);
            self.bucket = Some(Bucket { capacity, remaining, refill_per_s: refill, at_ms: now_ms });
        }
    }

    /// Health as of `now`.
    pub fn health(&self, now: Timestamp) -> Health {
        let now_ms = ms(now);
        let errors_last_hour = self.error_marks.iter().filter(|t| **t > now_ms - HOUR_MS).count() as u64;
        let recent_errors = self.error_marks.back().is_some_and(|t| *t > now_ms - 300_000);
        let limited = self.rate_limited_until_ms > now_ms;
        let breaker = match self.breaker {
            Breaker::Closed => "closed",
            Breaker::Open { .. } => "open",
            Breaker::HalfOpen { .. } => "half_open",
        };
        let state = if self.policy.shadow {
            "shadow"
        } else if !self.ever_tried {
            "idle"
        } else if !matches!(self.breaker, Breaker::Closed) {
            "down"
        } else if recent_errors || limited || self.remote_failures > 0 {
            "degraded"
        } else {
            "connected"
        };
        Health {
            state,
            breaker,
            last_success_at: self.last_success,
            last_error: self.last_error.clone(),
            errors_last_hour,
            rate_limit: if limited { "limited" } else { "ok" },
            rate_limited_until: limited.then(|| ts(self.rate_limited_until_ms)),
            throttled_total: self.throttled_total,
            requests_total: self.requests_total,
            in_flight_requests: self.outstanding.len(),
        }
    }
}

/// `Retry-After` in seconds or as an HTTP date, in milliseconds from `now` (bounded to a day).
fn retry_after_ms(r: &HttpResponse, now: Timestamp) -> Option<u64> {
    let v = r.header("retry-after")?.trim();
    let ms = if let Ok(s) = v.parse::<f64>() {
        if !s.is_finite() || s < 0.0 {
            return None;
        }
        (s * 1000.0) as u64
    } else {
        let at = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
        u64::try_from(at.as_millisecond() - now.as_millisecond()).unwrap_or(0)
    };
    Some(ms.min(86_400_000))
}

/// Age of the oldest waiting entry, from its id's time.
pub fn entry_age_s(e: &OutboxEntry, now: Timestamp) -> Option<i64> {
    id_time(&e.id).map(|t| (now.as_second() - t.as_second()).max(0))
}
