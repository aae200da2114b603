//! The store: everything edged keeps on disk, behind the [`Store`] trait.
//!
//! # What it holds
//!
//! | tree | key | value |
//! |---|---|---|
//! | `meta` | name (`format_version`, `catalog.*` …) | bytes |
//! | `items` | SKU | [`Item`] (JSON) |
//! | `barcodes` | code | SKU |
//! | `sales` | sale id (16 bytes, UUID v7: time order) | [`Sale`] (JSON) |
//! | `idempotency` | `key:<Idempotency-Key>` or `sale:<uuid>` | [`IdemRecord`] (JSON) |
//! | `outbox` | remote name, `0x00`, entry id (16 bytes) | [`OutboxEntry`] (JSON) |
//! | `stock` | SKU | [`StockLevel`] (JSON) |
//! | `stock_deltas` | SKU, `0x00`, sale id, line no (4 bytes BE) | [`StockDelta`] (JSON) |
//! | `audit` | record id (16 bytes, UUID v7) | [`AuditRecord`] (JSON) |
//! | `adjustments` | adjustment id (16 bytes, UUID v7) | [`StockAdjustment`] (JSON) |
//! | `lanes` | `s`/`a` + record id: another lane's sale / adjustment; `l` + lane + `0x00` + id: per-lane index; `c` + record id + remote: its confirmation; `x` + lane: [`LaneSeen`]; `n` + note id: a note for the bus; `f` + flag id: [`LaneFlag`] | JSON |
//!
//! Beside the trees, `journal/` holds the commit journal ([`journal`]) and `catalog/` the
//! catalog snapshot ([`catalog`]): the last full catalog as read-only files. The `items`,
//! `barcodes` and `stock` trees are the overlay on it (items changed one by one, local stock
//! movements, levels pulled since); a lookup asks the overlay first.
//!
//! Records are JSON so that a field tech (and `edgectl doctor`) can read them and so that
//! later versions can add fields; the format version in `meta` covers the layout.
//!
//! # A sale commit
//!
//! [`Store::commit_sale`] makes the outbox entry ids and the audit record first, then, under
//! the commit lock, applies **one sled transaction** over the trees above (the sale, its
//! idempotency records, one outbox entry per configured remote, its stock deltas, the per-SKU
//! unreflected stock sums and the audit record) and appends the same commit as one record to
//! the commit journal ([`journal`]). Outside the lock it waits until the journal record is
//! durable (group commit, [`durability`]) and only then returns; the local API answers
//! "201 created" only after it returns. An `Idempotency-Key` or a sale id seen before returns
//! the stored sale instead — after a journal sync too, so a replay never acknowledges a sale
//! that is still only in memory.
//!
//! A stock adjustment ([`Store::commit_adjustment`]) is one sled transaction of the same
//! kind (the adjustment, `adjustment:`/`adjustment-key:` idempotency records, its outbox
//! entries, one stock delta keyed by its id, the audit record), made durable by a
//! checkpoint before it returns: adjustments are rare, so they skip the journal.
//!
//! # Durable means: survives power loss
//!
//! sled 0.34's `flush()` writes its log buffers and syncs them with `sync_file_range`
//! (measured on this project's machines: 1,001 `sync_file_range` and 11 `fsync` calls for
//! 1,000 flushes). `sync_file_range` neither writes the file's metadata (its size, after the
//! log grew) nor flushes the drive's volatile write cache, so after a power cut the flushed
//! bytes may be gone: under LazyFS (a FUSE file system that drops unsynced writes) 0 of 200
//! flushed keys survived; with an `fdatasync` of sled's `db` file after each flush, 200 of 200.
//!
//! Two mechanisms use that fact:
//!
//! 1. **Per commit, the journal.** A record is `pwrite`n into a segment file that was filled
//!    with zeros, `fdatasync`ed and its directory `fsync`ed before first use, then the
//!    segment is `fdatasync`ed. The blocks already exist, so `fdatasync` has no metadata to
//!    commit: it writes the data and flushes the drive's cache (Linux sends a cache flush for
//!    `fdatasync` on devices with a volatile cache). Records carry a CRC and a sequence
//!    number; reading stops at the first torn one, which was never acknowledged.
//! 2. **Per checkpoint, sled itself**: `Db::flush()`, `fdatasync` of sled's `db` file, and —
//!    when the set of files changed since the last sync (sled wrote a value over its blob
//!    threshold, a quarter segment, 128 KiB by default, into `blobs/`, which sled never
//!    syncs; or rotated a snapshot) — `fsync` of each new blob file and of the directories.
//!    Only then is the checkpoint (highest journal sequence covered) written, atomically, and
//!    the journal segments below it deleted. [`Store::sync`] is a checkpoint; the store also
//!    makes one every [`journal::CHECKPOINT_EVERY`] commits, when a segment fills, and on
//!    open after a replay. Writes other than sale commits (catalog, stock levels, outbox
//!    transitions, meta) are durable at the next checkpoint.
//!
//! On open, journal records above the checkpoint are applied to sled again. sled's own
//! recovery yields a prefix of its log, and the journal is in commit order (the commit lock
//! covers both the transaction and the append), so re-applying — skipping a sale whose id is
//! already there — rebuilds exactly the acknowledged state, decided key by key as the live
//! commits decided it.
//!
//! Why not sled alone: measured here, a 7-tree sled transaction + flush + fdatasync took a
//! median 0.46 ms against 0.19 ms for a raw 4 KiB fdatasync (two `sync_file_range` per
//! transaction plus file-growth metadata), with much longer tails; through the API that was a
//! ratio of 8 to the raw write. The journal brings a commit down to one data write and one
//! cache flush (figures in the closing note of the durable-core issue and in `edge-bench`).
//!
//! A failed append, sync or checkpoint is fatal: the store refuses every later commit and
//! calls the fatal hook once (edged exits non-zero; systemd restarts it; recovery reads what
//! is on disk). It never reports "done" for data that may not be on disk.
//!
//! # Opening
//!
//! The format version is kept in `meta`. A store written by a newer version is refused with
//! a message naming both versions; a directory that is not a store, a store locked by another
//! process, or one that sled cannot read is reported with a clear message and left as it is
//! (nothing is created, repaired or deleted). sled's page cache size is a setting
//! ([`StoreConfig::cache_capacity_bytes`]): kiosk hardware has little memory.
//!
//! Everything sled-specific stays in [`sled_store`]; the rest of the workspace sees only the
//! trait, so the engine can be swapped if crash or power-loss evidence ever demands it.

pub mod catalog;
pub mod durability;
pub mod journal;
pub mod sled_store;

use crate::domain::{
    AuditRecord, Item, OutboxEntry, OutboxState, OutboxStateKind, Payment, Remote, Sale, StockAdjustment, StockDelta,
    StockLevel,
};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use uuid::Uuid;

pub use catalog::SnapshotRecord;
pub use sled_store::{DEFAULT_LANE, SledStore};

/// The on-disk layout version this build writes. Older ones are migrated on open; newer
/// ones are refused (a downgraded edged never misreads what a newer one wrote).
///
/// * 1: sales, idempotency, outbox, stock, audit, catalog snapshot, commit journal.
/// * 2: card payments (`payments`, `payments_open`, payment journal records) and refunds
///   (sales of kind `refund`, `refunded:` records). Migration from 1 adds nothing but the
///   version: the new trees start empty and old sales read as kind `sale`. A format-1
///   edged must not open a format-2 store: it would read a refund as a sale.
/// * 3: stock adjustments (`adjustments`; outbox entries of kind `adjustment`). Migration
///   from 2 adds nothing but the version. A format-2 edged must not open a format-3 store:
///   it cannot read an adjustment's outbox entry.
pub const FORMAT_VERSION: u32 = 3;

/// Errors of the store. Every variant says what happened in words a field tech can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "store at {path} was written by a newer edged (format {found}; this build reads up to {supported}); upgrade edged or restore a backup — the store was left untouched"
    )]
    NewerFormat { path: PathBuf, found: u32, supported: u32 },
    #[error("{path} is not an edged store ({why}); it was left untouched")]
    NotAStore { path: PathBuf, why: String },
    #[error("store at {path} is in use by another process (is edged already running?): {detail}")]
    Locked { path: PathBuf, detail: String },
    #[error("store at {path} could not be opened: {detail}; it was left untouched")]
    Open { path: PathBuf, detail: String },
    #[error("store is stopped after a failed sync ({0}); restart edged to recover from what is on disk")]
    Fatal(String),
    #[error("store I/O: {0}")]
    Io(String),
    #[error("stored record {what} is unreadable: {detail}")]
    Corrupt { what: String, detail: String },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Called once when a sync fails (edged: log and exit non-zero).
pub type FatalHook = Arc<dyn Fn(&str) + Send + Sync>;

/// How to open a store.
#[derive(Clone)]
pub struct StoreConfig {
    pub path: PathBuf,
    /// sled page cache, bytes.
    pub cache_capacity_bytes: u64,
    pub on_fatal: Option<FatalHook>,
}

impl StoreConfig {
    pub fn new(path: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig { path: path.into(), cache_capacity_bytes: 16 * 1024 * 1024, on_fatal: None }
    }
}

/// What the idempotency tree keeps per key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdemRecord {
    pub sale_id: Uuid,
    /// Digest of the request that made the sale; a replay with other content is a conflict.
    pub fingerprint: String,
}

/// A sale to commit, with everything that goes into the same atomic write.
#[derive(Debug, Clone)]
pub struct SaleCommit {
    pub sale: Sale,
    /// The client's `Idempotency-Key`, if any.
    pub idempotency_key: Option<String>,
    /// Digest of the request (see [`IdemRecord::fingerprint`]).
    pub fingerprint: String,
    /// One outbox entry is made per remote (remotes whose mode is not `off`).
    pub remotes: Vec<Remote>,
}

/// A stock adjustment to commit, with everything that goes into the same atomic write.
#[derive(Debug, Clone)]
pub struct AdjustmentCommit {
    pub adjustment: StockAdjustment,
    pub idempotency_key: Option<String>,
    /// Digest of the request; a replay with other content is a conflict.
    pub fingerprint: String,
    /// One outbox entry per remote that receives adjustments.
    pub remotes: Vec<Remote>,
}

/// What an adjustment commit did.
#[derive(Debug, Clone, PartialEq)]
pub enum AdjustmentOutcome {
    /// Stored now and durable.
    Created(StockAdjustment),
    /// Seen before with the same request: the stored adjustment (durable).
    Replayed(StockAdjustment),
    /// Seen before with a different request: nothing stored.
    Conflict { id: Uuid, what: String },
}

/// What a commit did.
#[derive(Debug, Clone, PartialEq)]
pub enum CommitOutcome {
    /// Stored now and durable.
    Created(Sale),
    /// The key or id was seen before with the same request: the stored sale (durable).
    Replayed(Sale),
    /// The key or id was seen before with a different request: nothing stored.
    Conflict { sale_id: Uuid, what: String },
}

/// Outbox counts of one remote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxCounts {
    pub pending: u64,
    pub in_flight: u64,
    pub unknown: u64,
    pub confirmed: u64,
    pub rejected: u64,
    pub dead: u64,
    /// Oldest entry still waiting to be delivered (pending, in flight or unknown).
    pub oldest_waiting: Option<Timestamp>,
}

/// Filter for outbox listings.
#[derive(Debug, Clone, Default)]
pub struct OutboxQuery {
    pub remote: Option<Remote>,
    pub state: Option<OutboxStateKind>,
    /// Continue after this `(remote, entry id)`.
    pub after: Option<(Remote, Uuid)>,
    pub limit: usize,
}

/// One guarded state move of an outbox entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxMove {
    pub remote: Remote,
    pub id: Uuid,
    pub expected: OutboxState,
    pub next: OutboxState,
}

/// What a stock rebase did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebaseStats {
    pub levels: u64,
    /// Levels older than the one held, ignored.
    pub stale: u64,
    /// Local deltas now part of the source's level, dropped.
    pub deltas_reflected: u64,
}

/// What settling confirmed deltas against the held levels did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettleStats {
    /// Deltas found in their level and dropped.
    pub deltas_reflected: u64,
    /// SKUs with a confirmed delta numbered above their level's marker.
    pub waiting: Vec<String>,
}

/// Catalog item with its stock.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogEntry {
    pub item: Item,
    pub stock: StockLevel,
}

/// What applying a batch of the other lanes' messages did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaneApplied {
    pub applied: u64,
    /// Records applied before (a redelivery, or a re-publish past the stream's window).
    pub duplicates: u64,
    /// Refunds that took more of a sale than it had (flagged, see [`Store::lane_flags`]).
    pub flagged: u64,
}

/// Another lane as this lane's replica knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LaneSeen {
    pub lane: String,
    /// Records of it applied here.
    pub records: u64,
    /// The stream sequence of the last one.
    pub last_seq: u64,
    pub last_at: Option<Timestamp>,
    /// Its last Z report: number, and the last sale it covered.
    #[serde(default)]
    pub z_number: u64,
    #[serde(default)]
    pub z_last_sale: Option<Uuid>,
}

/// Something across lanes staff must see: an over-refund found on the stream, a refund
/// allowed or a unit sold while the store's server could not be reached.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LaneFlag {
    pub id: Uuid,
    pub at: Timestamp,
    /// `over-refund`, `offline-refund`, `oversell`.
    pub kind: String,
    /// The lane the record was made at.
    pub lane: String,
    /// The record (refund or sale) concerned.
    pub record_id: Uuid,
    pub detail: String,
}

/// Figures about the store for metrics and the field tech.
#[derive(Debug, Clone, Default)]
pub struct StoreStats {
    /// sled flush + fdatasync rounds (checkpoints), and the last one's duration.
    pub checkpoints: u64,
    pub last_checkpoint_micros: u64,
    pub items: u64,
    pub sales: u64,
    /// Journal fdatasync rounds, the commits they covered, and the last one's duration.
    pub syncs: u64,
    pub commits_synced: u64,
    pub last_sync_micros: u64,
    pub size_on_disk_bytes: u64,
}

/// Everything edged keeps. Implementations must make [`Store::commit_sale`] atomic and
/// durable before it returns, and every other mutation atomic (durable at the next
/// [`Store::sync`]).
pub trait Store: Send + Sync {
    // --- catalog ---
    /// Replaces the whole catalog (items with their stock levels, as a full import or pull
    /// delivers it) by a new snapshot, durably; items put one by one before are superseded,
    /// local stock movements stay. Returns the number of items.
    fn import_catalog(&self, records: &[SnapshotRecord]) -> Result<u64>;
    /// Inserts or replaces items (and their barcodes). Durable at the next [`Store::sync`].
    fn put_items(&self, items: &[Item]) -> Result<()>;
    fn item(&self, sku: &str) -> Result<Option<Item>>;
    fn item_by_barcode(&self, code: &str) -> Result<Option<Item>>;
    /// A page of the catalog in SKU order after `after`; `q` matches SKU, barcode or a
    /// case-insensitive part of the name. At most `scan_limit` items are examined per call:
    /// the returned cursor continues the search.
    fn items_page(
        &self,
        q: Option<&str>,
        after: Option<&str>,
        limit: usize,
        scan_limit: usize,
    ) -> Result<(Vec<CatalogEntry>, Option<String>)>;
    fn item_count(&self) -> u64;
    fn stock(&self, sku: &str) -> Result<StockLevel>;
    /// Sets the stock source's level for SKUs (a pull). Local deltas stay as they are.
    fn set_remote_stock(&self, levels: &[(String, i64, Timestamp)]) -> Result<()>;

    /// A stock pull from `source` rebases: each level (with the source's time) replaces the
    /// last one and remembers `through`, the source's marker of what it includes; the local
    /// deltas the level already reflects — those of records `source` confirmed under a
    /// remote id that `number` maps to at most `through` — are dropped; the rest stay
    /// unreflected. A level older than the one held is ignored.
    fn rebase_stock(
        &self,
        source: Remote,
        levels: &[(String, i64, Timestamp)],
        through: u64,
        number: &dyn Fn(&str) -> Option<u64>,
    ) -> Result<RebaseStats>;

    /// Settles deltas confirmed by `source` after their SKU's level was read: one whose
    /// remote id numbers at most the level's `through` is in that level and is dropped now.
    /// Without this, a sale confirmed a moment after the pull that already counted it would
    /// stay subtracted until the SKU's level next changed. The SKUs that still hold a
    /// confirmed delta numbered above their level's marker are returned in `waiting`: only
    /// a fresh read of their level can tell whether it includes the record.
    fn settle_stock(&self, source: Remote, number: &dyn Fn(&str) -> Option<u64>) -> Result<SettleStats>;

    // --- sales ---
    /// Atomically stores a sale, outbox entries, stock deltas and an audit record, then
    /// returns only when all of it is durable (journal synced).
    fn commit_sale(&self, commit: SaleCommit) -> Result<CommitOutcome>;
    fn sale(&self, id: &Uuid) -> Result<Option<Sale>>;
    /// Units or grams refunded so far per line of a sale.
    fn refunded(&self, sale_id: &Uuid) -> Result<BTreeMap<u32, u64>>;
    /// The sale (or refund) that has this receipt number (`LANE-SEQUENCE`), if any.
    fn sale_by_receipt(&self, receipt_no: &str) -> Result<Option<Sale>>;
    /// The sale an idempotency key made, if any, with the fingerprint of its request.
    fn sale_for_key(&self, key: &str) -> Result<Option<(Uuid, String)>>;
    /// Sales in id (= time) order after `after`.
    fn sales_page(&self, after: Option<&Uuid>, limit: usize) -> Result<Vec<Sale>>;
    fn stock_deltas_of_sale(&self, sale: &Sale) -> Result<Vec<StockDelta>>;

    // --- stock adjustments ---
    /// Atomically stores a stock adjustment, its outbox entries, its stock delta and an
    /// audit record, and returns only when all of it is durable.
    fn commit_adjustment(&self, commit: AdjustmentCommit) -> Result<AdjustmentOutcome>;
    fn adjustment(&self, id: &Uuid) -> Result<Option<StockAdjustment>>;
    /// Adjustments in id (= time) order after `after`.
    fn adjustments_page(&self, after: Option<&Uuid>, limit: usize) -> Result<Vec<StockAdjustment>>;

    // --- outbox ---
    fn outbox_entry(&self, id: &Uuid) -> Result<Option<OutboxEntry>>;
    fn outbox_page(&self, q: &OutboxQuery) -> Result<Vec<OutboxEntry>>;
    fn outbox_entries_of(&self, record_id: &Uuid) -> Result<Vec<OutboxEntry>>;
    /// Counts per remote, kept in memory (rebuilt on open).
    fn outbox_counts(&self) -> BTreeMap<Remote, OutboxCounts>;
    /// Moves an entry to a new state (durable at the next sync). `expected` guards against a
    /// lost update: the move happens only if the entry is in that state.
    fn transition_outbox(
        &self,
        remote: Remote,
        id: &Uuid,
        expected: &OutboxState,
        next: OutboxState,
        at: Timestamp,
    ) -> Result<OutboxEntry>;

    /// Several moves in one atomic write (durable at the next sync). Each move gets its own
    /// result: an entry that is not in the expected state is left as it is.
    fn transition_outbox_many(&self, moves: &[OutboxMove], at: Timestamp) -> Result<Vec<Result<OutboxEntry, String>>>;
    /// Like [`Store::transition_outbox_many`], durable when it returns (journaled and synced
    /// with the sale commits' group commit). Used before a record is sent.
    fn transition_outbox_durable(
        &self,
        moves: &[OutboxMove],
        at: Timestamp,
    ) -> Result<Vec<Result<OutboxEntry, String>>>;
    /// Entries of `remote` still to be delivered (pending, in flight, unknown) in creation
    /// order after `after`; served from the in-memory index.
    fn outbox_waiting(&self, remote: Remote, after: Option<&Uuid>, limit: usize) -> Result<Vec<OutboxEntry>>;

    // --- card payments ---
    /// Stores a payment's new state; durable when it returns (journaled and synced with the
    /// sale commits' group commit), as the payment state machine needs before its next step.
    /// A record whose `rev` is lower than the stored one is ignored (a replay keeps the newest).
    fn put_payment(&self, p: &Payment) -> Result<()>;
    fn payment(&self, id: &Uuid) -> Result<Option<Payment>>;
    /// Payments not in a final state, and offline ones not yet forwarded: oldest first.
    fn payments_open(&self) -> Result<Vec<Payment>>;
    /// All payments, newest first, at most `limit`.
    fn payments_recent(&self, limit: usize) -> Result<Vec<Payment>>;

    // --- audit and meta ---
    fn append_audit(&self, rec: &AuditRecord) -> Result<()>;
    fn audit_page(&self, after: Option<&Uuid>, limit: usize) -> Result<Vec<AuditRecord>>;
    fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    fn meta_set(&self, key: &str, value: &[u8]) -> Result<()>;
    fn format_version(&self) -> u32;

    // --- the other lanes of the store (see `crate::bus`) ---
    /// Applies messages of other lanes (stream sequence, message) to the replica: each once
    /// (a redelivered record is counted as a duplicate), under the commit lock, and durable
    /// when this returns (the caller acks them only then).
    fn apply_lane_messages(&self, msgs: &[(u64, crate::bus::LaneMessage)]) -> Result<LaneApplied>;
    /// A sale or refund of this lane or, once the bus brought it, of another lane.
    fn lane_sale(&self, id: &Uuid) -> Result<Option<Sale>>;
    /// Another lane's sales in id (= time) order after `after`.
    fn lane_sales_page(&self, lane: &str, after: Option<&Uuid>, limit: usize) -> Result<Vec<Sale>>;
    /// Every other lane the bus brought records of, with its last Z.
    fn lanes_seen(&self) -> Result<Vec<LaneSeen>>;
    /// Refunds of another lane's sale the bus found to exceed what was sold (two lanes
    /// refunded the same line while apart), newest last.
    fn lane_flags(&self) -> Result<Vec<LaneFlag>>;
    /// Records a flag of this lane (an oversell or a refund allowed while the store's
    /// server could not be reached); durable at the next sync.
    fn put_lane_flag(&self, flag: &LaneFlag) -> Result<()>;
    /// Confirmations by `remote` become notes for the bus (in the same write as the
    /// confirmation), made as lane `lane`; `None` stops it.
    fn set_note_feed(&self, feed: Option<(Remote, String)>);
    /// Queues a note for the bus (a Z report); durable when this returns.
    fn queue_lane_note(&self, msg: &crate::bus::LaneMessage) -> Result<Uuid>;
    /// Notes not yet acknowledged by the stream, oldest first.
    fn lane_notes(&self, limit: usize) -> Result<Vec<(Uuid, crate::bus::LaneMessage)>>;
    /// Forgets notes the stream acknowledged.
    fn drop_lane_notes(&self, ids: &[Uuid]) -> Result<()>;

    // --- durability ---
    /// Makes every earlier write durable in the store itself (a checkpoint; fatal on error).
    fn sync(&self) -> Result<()>;
    fn stats(&self) -> StoreStats;
}
