//! The sled implementation of [`Store`]. The only module of the workspace that opens sled.
//! Layout, atomicity and the durability argument are in the parent module's doc.

use super::catalog::{Snapshot, SnapshotRecord};
use super::journal::{CHECKPOINT_EVERY, Journal};
use super::{
    AdjustmentCommit, AdjustmentOutcome, CatalogEntry, CommitOutcome, FORMAT_VERSION, FatalHook, IdemRecord,
    OutboxCounts, OutboxMove, OutboxQuery, RebaseStats, Result, SaleCommit, SettleStats, Store, StoreConfig,
    StoreError, StoreStats,
};
use crate::domain::{
    AuditRecord, Item, OutboxEntry, OutboxState, Payment, PaymentState, RecordKind, Remote, Sale, StockAdjustment,
    StockDelta, StockLevel, id_time, new_id,
};
use jiff::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::{Transactional, Tree};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use uuid::Uuid;

const META_FORMAT: &str = "format_version";
const META_ITEM_COUNT: &str = "catalog.item_count";
const META_SNAPSHOT: &str = "catalog.snapshot_generation";
/// Items per transaction when importing a catalog.
const IMPORT_CHUNK: usize = 2_000;
/// Receipt numbers, in the idempotency tree: `receipt:NO` → the sale's id, and the last
/// sequence given.
const RECEIPT_PREFIX: &str = "receipt:";
const RECEIPT_SEQ_KEY: &[u8] = b"seq:receipt";
/// The lane of a sale that names none (a store with one lane).
pub const DEFAULT_LANE: &str = "1";

fn be_u64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}

#[derive(Debug, Default, Clone)]
struct RemoteIndex {
    counts: OutboxCounts,
    /// Entries not yet settled (pending, in flight, unknown), by id (= creation order).
    waiting: BTreeSet<Uuid>,
}

impl RemoteIndex {
    fn add(&mut self, id: Uuid, state: &OutboxState) {
        let c = &mut self.counts;
        match state {
            OutboxState::Pending => c.pending += 1,
            OutboxState::InFlight { .. } => c.in_flight += 1,
            OutboxState::Unknown => c.unknown += 1,
            OutboxState::Confirmed { .. } => c.confirmed += 1,
            OutboxState::Rejected { .. } => c.rejected += 1,
            OutboxState::Dead { .. } => c.dead += 1,
        }
        if matches!(state, OutboxState::Pending | OutboxState::InFlight { .. } | OutboxState::Unknown) {
            self.waiting.insert(id);
        }
    }

    fn remove(&mut self, id: Uuid, state: &OutboxState) {
        let c = &mut self.counts;
        let slot = match state {
            OutboxState::Pending => &mut c.pending,
            OutboxState::InFlight { .. } => &mut c.in_flight,
            OutboxState::Unknown => &mut c.unknown,
            OutboxState::Confirmed { .. } => &mut c.confirmed,
            OutboxState::Rejected { .. } => &mut c.rejected,
            OutboxState::Dead { .. } => &mut c.dead,
        };
        *slot = slot.saturating_sub(1);
        self.waiting.remove(&id);
    }
}

/// The sled-backed store.
pub struct SledStore {
    path: PathBuf,
    db: sled::Db,
    meta: Tree,
    items: Tree,
    barcodes: Tree,
    sales: Tree,
    idem: Tree,
    outbox: Tree,
    outbox_by_record: Tree,
    stock: Tree,
    deltas: Tree,
    audit: Tree,
    payments: Tree,
    payments_open: Tree,
    adjustments: Tree,
    /// The other lanes' records and the bus's notes (see `Store::apply_lane_messages`).
    lanes: Tree,
    /// Confirmations by this remote become bus notes of this lane.
    note_feed: std::sync::RwLock<Option<(Remote, String)>>,
    db_file: File,
    journal: Journal,
    /// The last full catalog (read-only files); the items, barcodes and stock trees overlay it.
    snapshot: std::sync::RwLock<Option<Snapshot>>,
    catalog_dir: PathBuf,
    /// Held across a commit's sled transaction and its journal append: journal order is
    /// commit order, so a replay decides every key exactly as the live commit did.
    commit_lock: Mutex<()>,
    /// One checkpoint (sled flush + fdatasync) at a time.
    checkpoint_lock: Mutex<CheckpointStats>,
    on_fatal: Option<FatalHook>,
    fatal_called: AtomicBool,
    files_seen: Mutex<BTreeSet<String>>,
    index: Mutex<BTreeMap<Remote, RemoteIndex>>,
    item_count: AtomicU64,
    sale_count: AtomicU64,
    format_version: u32,
}

/// One pending outbox entry per remote (each named once) for a new record.
fn new_entries(
    mut remotes: Vec<Remote>,
    kind: RecordKind,
    record_id: Uuid,
    at: Timestamp,
    request_id: &str,
) -> Vec<OutboxEntry> {
    remotes.sort();
    remotes.dedup();
    remotes
        .into_iter()
        .map(|remote| OutboxEntry {
            id: new_id(),
            remote,
            kind,
            record_id,
            state: OutboxState::Pending,
            attempts: 0,
            created_at: at,
            updated_at: at,
            request_id: request_id.to_string(),
        })
        .collect()
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| StoreError::Invalid(format!("cannot encode record: {e}")))
}

fn from_json<T: DeserializeOwned>(what: impl FnOnce() -> String, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt { what: what(), detail: e.to_string() })
}

/// What the journal keeps of a commit: everything needed to apply it again, ids included.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct CommitRecord {
    sale: Sale,
    idempotency_key: Option<String>,
    fingerprint: String,
    entries: Vec<OutboxEntry>,
    audit: AuditRecord,
}

/// Outbox moves that must be durable (an entry going InFlight before its first byte is
/// sent, a dead letter handed back): journaled like a commit.
#[derive(Debug, Serialize, serde::Deserialize)]
struct MovesRecord {
    outbox_moves: Vec<OutboxMove>,
    at: Timestamp,
}

/// A payment's move, journaled before the state machine's next step.
#[derive(Debug, Serialize, serde::Deserialize)]
struct PaymentRecord {
    payment: Payment,
}

/// Another lane's message applied to the replica, journaled like a commit (so the replica
/// is durable by the group commit's fdatasync, not by a checkpoint per batch).
#[derive(Debug, Serialize, serde::Deserialize)]
struct LaneRecord {
    lane_message: crate::bus::LaneMessage,
    stream_seq: u64,
}

/// One commit-journal record.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
enum JournalRecord {
    Lane(Box<LaneRecord>),
    Payment(Box<PaymentRecord>),
    Moves(MovesRecord),
    Commit(Box<CommitRecord>),
}

/// What applying a commit to sled found.
enum TxOut {
    New,
    Seen(IdemRecord),
    /// A refund that would give back more than its sale sold: nothing stored.
    OverRefund(Uuid, String),
}

/// Units or grams refunded so far per line of a sale (`refunded:<sale id>` in the
/// idempotency tree), checked and raised in the refund's own transaction.
type Refunded = BTreeMap<u32, u64>;

#[derive(Debug, Default, Clone, Copy)]
struct CheckpointStats {
    count: u64,
    last_micros: u64,
}

fn outbox_key(remote: Remote, id: &Uuid) -> Vec<u8> {
    let remote = remote.as_str();
    let mut k = Vec::with_capacity(remote.len() + 17);
    k.extend_from_slice(remote.as_bytes());
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

fn by_record_key(record: &Uuid, remote: Remote) -> Vec<u8> {
    let remote = remote.as_str();
    let mut k = Vec::with_capacity(remote.len() + 16);
    k.extend_from_slice(record.as_bytes());
    k.extend_from_slice(remote.as_bytes());
    k
}

fn delta_key(sku: &str, sale: &Uuid, line_no: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(sku.len() + 21);
    k.extend_from_slice(sku.as_bytes());
    k.push(0);
    k.extend_from_slice(sale.as_bytes());
    k.extend_from_slice(&line_no.to_be_bytes());
    k
}

/// A key of the `lanes` tree: one tag byte, then the rest.
fn lane_key(tag: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(rest.len() + 1);
    k.push(tag);
    k.extend_from_slice(rest);
    k
}

/// The per-lane index key of another lane's sale.
fn lane_index_key(lane: &str, id: &Uuid) -> Vec<u8> {
    let mut k = Vec::with_capacity(lane.len() + 18);
    k.push(b'l');
    k.extend_from_slice(lane.as_bytes());
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

/// What one message of another lane writes: its key and value in `lanes`, its per-lane
/// index key, its stock deltas, and (a refund) the sale and the lines it refunds.
type LaneWrite = (Vec<u8>, Vec<u8>, Option<Vec<u8>>, Vec<StockDelta>, Option<(Uuid, Vec<(u32, String, u64)>)>);

/// Another lane's sale in the replica, with where it came from.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct LaneSaleRec {
    lane: String,
    seq: u64,
    sale: Box<Sale>,
}

/// Another lane's stock adjustment in the replica.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct LaneAdjustmentRec {
    lane: String,
    seq: u64,
    adjustment: StockAdjustment,
}

fn uuid_of(bytes: &[u8]) -> Option<Uuid> {
    Uuid::from_slice(bytes).ok()
}

fn fsync_dir(path: &Path) -> std::io::Result<()> {
    File::open(path)?.sync_all()
}

/// Aborts a transaction with a message (a record inside it was unreadable).
type TxAbort = ConflictableTransactionError<String>;

fn tx_json<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> std::result::Result<T, TxAbort> {
    serde_json::from_slice(bytes).map_err(|e| ConflictableTransactionError::Abort(format!("{what}: {e}")))
}

fn tx_err(e: TransactionError<String>) -> StoreError {
    match e {
        TransactionError::Abort(m) => StoreError::Corrupt { what: "record".into(), detail: m },
        TransactionError::Storage(e) => io(e),
    }
}

fn tx_enc<T: Serialize>(v: &T) -> std::result::Result<Vec<u8>, TxAbort> {
    serde_json::to_vec(v).map_err(|e| ConflictableTransactionError::Abort(format!("encode: {e}")))
}

impl SledStore {
    /// Opens (or creates, in an empty or missing directory) a store. Never repairs, replaces
    /// or deletes anything it cannot read: see the module doc of [`super`].
    pub fn open(cfg: StoreConfig) -> Result<SledStore> {
        let path = cfg.path.clone();
        let fresh_dir = Self::check_dir(&path)?;
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(cfg.cache_capacity_bytes)
            // No timer flushes: commits are durable through the journal and the store
            // checkpoints sled itself; an idle daemon should not wake up twice a second.
            .flush_every_ms(None)
            .open()
            .map_err(|e| classify_open_error(&path, e))?;
        let tree =
            |name: &str| db.open_tree(name).map_err(|e| StoreError::Open { path: path.clone(), detail: e.to_string() });
        let meta = tree("meta")?;
        let items = tree("items")?;
        let barcodes = tree("barcodes")?;
        let sales = tree("sales")?;
        let idem = tree("idempotency")?;
        let outbox = tree("outbox")?;
        let outbox_by_record = tree("outbox_by_record")?;
        let stock = tree("stock")?;
        let deltas = tree("stock_deltas")?;
        let audit = tree("audit")?;
        let payments = tree("payments")?;
        let payments_open = tree("payments_open")?;
        let adjustments = tree("adjustments")?;
        let lanes = tree("lanes")?;

        let found = match meta.get(META_FORMAT).map_err(io)? {
            Some(v) => {
                let b: [u8; 4] = v.as_ref().try_into().map_err(|_| StoreError::NotAStore {
                    path: path.clone(),
                    why: "its format version record is damaged".into(),
                })?;
                Some(u32::from_be_bytes(b))
            }
            None => None,
        };
        let data_trees = [&items, &barcodes, &sales, &idem, &outbox, &stock, &deltas, &audit, &payments, &adjustments];
        let format_version = match found {
            Some(v) if v > FORMAT_VERSION => {
                return Err(StoreError::NewerFormat { path, found: v, supported: FORMAT_VERSION });
            }
            Some(v) if v < FORMAT_VERSION => {
                // 1 → 2: the payment trees are new (empty) and sales gain a kind that
                // defaults to `sale`; 2 → 3: the adjustments tree is new (empty). Only the
                // version changes. Journal records of earlier formats are read as they are.
                meta.insert(META_FORMAT, &FORMAT_VERSION.to_be_bytes()).map_err(io)?;
                tracing::info!(path = %path.display(), from = v, to = FORMAT_VERSION, "store format migrated");
                FORMAT_VERSION
            }
            Some(v) => v,
            None if data_trees.iter().all(|t| t.is_empty()) => {
                meta.insert(META_FORMAT, &FORMAT_VERSION.to_be_bytes()).map_err(io)?;
                FORMAT_VERSION
            }
            None => {
                return Err(StoreError::NotAStore { path, why: "it holds data but no format version".into() });
            }
        };
        db.flush().map_err(io)?;
        let db_file = File::open(path.join("db")).map_err(|e| StoreError::Open {
            path: path.clone(),
            detail: format!("cannot open its db file for syncing: {e}"),
        })?;
        db_file.sync_data().map_err(io)?;
        fsync_dir(&path).map_err(io)?;
        if fresh_dir && let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fsync_dir(parent).map_err(io)?;
        }
        let (journal, recovered) = Journal::open(&path.join("journal")).map_err(|e| StoreError::Open {
            path: path.clone(),
            detail: format!("its commit journal cannot be read: {e}"),
        })?;
        for note in &recovered.notes {
            tracing::warn!(note = %note, "commit journal");
        }
        let catalog_dir = path.join("catalog");
        let generation = match meta.get(META_SNAPSHOT).map_err(io)? {
            Some(v) => Some(u64::from_be_bytes(v.as_ref().try_into().map_err(|_| StoreError::NotAStore {
                path: path.clone(),
                why: "its catalog snapshot record is damaged".into(),
            })?)),
            None => None,
        };
        // Files of a generation that never took effect (a crash mid-import) go.
        Snapshot::remove_others(&catalog_dir, generation).map_err(io)?;
        let snapshot = match generation {
            Some(g) => Some(Snapshot::open(&catalog_dir, g).map_err(|e| StoreError::Open {
                path: path.clone(),
                detail: format!("its catalog snapshot {g} cannot be read: {e}"),
            })?),
            None => None,
        };
        let item_count = match meta.get(META_ITEM_COUNT).map_err(io)? {
            Some(v) => u64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8])),
            None => 0,
        };
        let store = SledStore {
            path,
            meta,
            items,
            barcodes,
            sales,
            idem,
            outbox,
            outbox_by_record,
            stock,
            deltas,
            audit,
            payments,
            payments_open,
            adjustments,
            lanes,
            note_feed: std::sync::RwLock::new(None),
            db_file,
            journal,
            snapshot: std::sync::RwLock::new(snapshot),
            catalog_dir,
            commit_lock: Mutex::new(()),
            checkpoint_lock: Mutex::new(CheckpointStats::default()),
            on_fatal: cfg.on_fatal,
            fatal_called: AtomicBool::new(false),
            files_seen: Mutex::new(BTreeSet::new()),
            index: Mutex::new(BTreeMap::new()),
            item_count: AtomicU64::new(item_count),
            sale_count: AtomicU64::new(0),
            format_version,
            db,
        };
        store.replay(recovered.records)?;
        store.rebuild_index()?;
        store.sale_count.store(store.sales.len() as u64, Ordering::Relaxed);
        let names = store.list_files().map_err(io)?;
        *store.files_seen.lock().unwrap_or_else(|p| p.into_inner()) = names;
        Ok(store)
    }

    /// Applies journal records that sled may not have (those above the checkpoint), then
    /// checkpoints so the journal starts short.
    fn replay(&self, records: Vec<(u64, Vec<u8>)>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let (mut applied, mut present) = (0u64, 0u64);
        for (seq, payload) in &records {
            let rec: JournalRecord = serde_json::from_slice(payload).map_err(|e| StoreError::Open {
                path: self.path.clone(),
                detail: format!("commit journal record {seq} is unreadable ({e}); was it written by a newer edged?"),
            })?;
            match rec {
                JournalRecord::Commit(rec) => match self.apply_commit(&rec)? {
                    TxOut::New => applied += 1,
                    TxOut::Seen(_) | TxOut::OverRefund(..) => present += 1,
                },
                // A move whose entry is no longer in the expected state was applied before
                // (or overtaken by a later write that sled kept): skipped by its guard.
                JournalRecord::Moves(m) => {
                    self.apply_moves(&m.outbox_moves, m.at)?;
                    applied += 1;
                }
                JournalRecord::Payment(p) => {
                    self.apply_payment(&p.payment)?;
                    applied += 1;
                }
                // Applied once by id: a message already in sled is skipped.
                JournalRecord::Lane(l) => match self.apply_lane_message(l.stream_seq, &l.lane_message)? {
                    (true, _) => applied += 1,
                    (false, _) => present += 1,
                },
            }
        }
        tracing::info!(applied, already_present = present, "commit journal replayed");
        let last = records.last().map(|r| r.0).unwrap_or(0);
        self.checkpoint_upto(last.max(self.journal.last_seq()))
    }

    /// sled flush + fdatasync, then the journal forgets what that covered.
    fn checkpoint_upto(&self, seq: u64) -> Result<()> {
        let mut st = self.checkpoint_lock.lock().unwrap_or_else(|p| p.into_inner());
        let started = std::time::Instant::now();
        let res = self.sync_now().and_then(|()| self.journal.set_checkpoint(seq));
        if let Err(e) = res {
            let msg = format!("store checkpoint failed: {e}");
            self.fatal(&msg);
            return Err(StoreError::Fatal(msg));
        }
        st.count += 1;
        st.last_micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        Ok(())
    }

    /// Guarded outbox moves in one sled transaction, and the in-memory index after them.
    /// Appends a journal record under the commit lock; a failed append is fatal (sled has the
    /// change in memory, the journal does not). Returns whether the journal rotated.
    fn append_or_die(&self, payload: &[u8]) -> Result<bool> {
        match self.journal.append(payload) {
            Ok((_, rotated)) => Ok(rotated),
            Err(e) => {
                let msg = format!("commit journal append failed: {e}");
                self.fatal(&msg);
                Err(StoreError::Fatal(msg))
            }
        }
    }

    /// After an append: the group-commit sync, then a checkpoint when one is due.
    fn sync_appended(&self, rotated: bool) -> Result<()> {
        self.journal_sync()?;
        if rotated || self.journal.records_since_checkpoint() >= CHECKPOINT_EVERY {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// A sled write that failed for I/O is as fatal as a failed sync.
    fn fatal_io(&self, e: StoreError) -> StoreError {
        match e {
            StoreError::Io(e) => {
                let msg = format!("store write failed: {e}");
                self.fatal(&msg);
                StoreError::Fatal(msg)
            }
            other => other,
        }
    }

    /// Writes a payment unless a newer revision is stored; keeps the open index.
    fn apply_payment(&self, p: &Payment) -> Result<()> {
        let key = p.id.as_bytes().to_vec();
        let json = to_json(p)?;
        let open = !p.state.is_final() || (p.offline && !p.forwarded && p.state == PaymentState::Recorded);
        // Open payments are keyed by time-ordered id, so they come oldest first.
        (&self.payments, &self.payments_open)
            .transaction(|(all, open_t)| {
                if let Some(v) = all.get(&key)? {
                    let old: Payment = tx_json("payment", &v)?;
                    if old.rev > p.rev {
                        return Ok(());
                    }
                }
                all.insert(key.as_slice(), json.as_slice())?;
                if open {
                    open_t.insert(key.as_slice(), &[])?;
                } else {
                    open_t.remove(key.as_slice())?;
                }
                Ok(())
            })
            .map_err(tx_err)
    }

    fn apply_moves(&self, moves: &[OutboxMove], at: Timestamp) -> Result<Vec<Result<OutboxEntry, String>>> {
        if moves.is_empty() {
            return Ok(Vec::new());
        }
        let feed = self.note_feed.read().unwrap_or_else(|p| p.into_inner()).clone();
        let res = (&self.outbox, &self.lanes)
            .transaction(|(t, lanes)| {
                let mut out = Vec::with_capacity(moves.len());
                for m in moves {
                    let key = outbox_key(m.remote, &m.id);
                    let Some(v) = t.get(&key)? else {
                        out.push(Err(format!("outbox entry {} of {} does not exist", m.id, m.remote)));
                        continue;
                    };
                    let mut e: OutboxEntry = tx_json("outbox entry", &v)?;
                    if e.state != m.expected {
                        out.push(Err(format!("outbox entry {} is {} not {}", m.id, e.state.name(), m.expected.name())));
                        continue;
                    }
                    if let OutboxState::InFlight { attempt } = &m.next {
                        e.attempts = e.attempts.max(*attempt);
                    }
                    e.state = m.next.clone();
                    e.updated_at = at;
                    t.insert(key.as_slice(), tx_enc(&e)?)?;
                    // The stock source's confirmation, for the other lanes' stock (keyed by
                    // the entry: a replay of this move writes the same note).
                    if let (Some((remote, lane)), OutboxState::Confirmed { remote_id }) = (&feed, &e.state)
                        && *remote == m.remote
                    {
                        let note = crate::bus::LaneMessage::Confirmed {
                            lane: lane.clone(),
                            record_id: e.record_id,
                            remote: *remote,
                            remote_id: remote_id.clone(),
                        };
                        lanes.insert(lane_key(b'n', e.id.as_bytes()), tx_enc(&note)?)?;
                    }
                    out.push(Ok(e));
                }
                Ok(out)
            })
            .map_err(tx_err)?;
        let mut idx = self.lock_index();
        for (m, r) in moves.iter().zip(&res) {
            if let Ok(e) = r {
                let ri = idx.entry(m.remote).or_default();
                ri.remove(m.id, &m.expected);
                ri.add(m.id, &e.state);
            }
        }
        Ok(res)
    }

    /// Every record of the replica under one tag.
    fn lane_records<T: DeserializeOwned>(&self, tag: u8, what: &str) -> Result<Vec<T>> {
        let mut out = Vec::new();
        for kv in self.lanes.scan_prefix([tag]) {
            let (_, v) = kv.map_err(io)?;
            out.push(from_json(|| what.to_string(), &v)?);
        }
        Ok(out)
    }

    /// A record of the replica by tag and id.
    fn lane_record<T: DeserializeOwned>(&self, tag: u8, id: &Uuid) -> Result<Option<T>> {
        self.get_json(&self.lanes, &lane_key(tag, id.as_bytes()), || format!("replica record {id}"))
    }

    /// One message of another lane, in one sled transaction. The caller holds the commit
    /// lock. Returns (applied, flagged): false when it was applied before.
    fn apply_lane_message(&self, seq: u64, msg: &crate::bus::LaneMessage) -> Result<(bool, bool)> {
        use crate::bus::LaneMessage;
        let lane = msg.lane().to_string();
        let at = match msg {
            LaneMessage::Sale { sale, .. } => sale.created_at,
            LaneMessage::Adjustment { adjustment, .. } => adjustment.created_at,
            LaneMessage::Z { at, .. } => *at,
            LaneMessage::Confirmed { .. } => Timestamp::now(),
        };
        // What the message adds: (key, value) in `lanes`, stock deltas, per-SKU sums.
        let (rec_key, rec_val, index_key, deltas, refund): LaneWrite = match msg {
            LaneMessage::Sale { sale, .. } => {
                let rec = LaneSaleRec { lane: lane.clone(), seq, sale: sale.clone() };
                let deltas = sale
                    .lines
                    .iter()
                    .map(|l| StockDelta {
                        sku: l.sku.clone(),
                        sale_id: sale.id,
                        line_no: l.line_no,
                        delta: sale.stock_delta(l),
                        at: sale.created_at,
                    })
                    .collect();
                let refund = match (sale.kind, sale.refund_of) {
                    (crate::domain::SaleKind::Refund, Some(o)) => Some((
                        o,
                        sale.lines.iter().map(|l| (l.line_no, l.sku.clone(), u64::from(l.quantity.amount()))).collect(),
                    )),
                    _ => None,
                };
                (
                    lane_key(b's', sale.id.as_bytes()),
                    to_json(&rec)?,
                    Some(lane_index_key(&lane, &sale.id)),
                    deltas,
                    refund,
                )
            }
            LaneMessage::Adjustment { adjustment: a, .. } => {
                let rec = LaneAdjustmentRec { lane: lane.clone(), seq, adjustment: a.clone() };
                let d = StockDelta { sku: a.sku.clone(), sale_id: a.id, line_no: 0, delta: a.delta, at: a.created_at };
                (lane_key(b'a', a.id.as_bytes()), to_json(&rec)?, None, vec![d], None)
            }
            LaneMessage::Confirmed { record_id, remote, remote_id, .. } => {
                (lane_key(b'c', &by_record_key(record_id, *remote)), remote_id.as_bytes().to_vec(), None, vec![], None)
            }
            LaneMessage::Z { .. } => (lane_key(b'z', lane.as_bytes()), to_json(msg)?, None, vec![], None),
        };
        let receipt = match msg {
            LaneMessage::Sale { sale, .. } => sale.receipt_no.clone().map(|no| (no, sale.id)),
            _ => None,
        };
        // The original of a refund, read before the transaction (own sales or the replica).
        let orig: Option<Sale> = match &refund {
            Some((o, _)) => match self.sale(o)? {
                Some(s) => Some(s),
                None => self.lane_record::<LaneSaleRec>(b's', o)?.map(|r| *r.sale),
            },
            None => None,
        };
        let mut per_sku: BTreeMap<&str, i64> = BTreeMap::new();
        for d in &deltas {
            *per_sku.entry(d.sku.as_str()).or_default() += d.delta;
        }
        let deltas_json: Vec<(Vec<u8>, Vec<u8>)> = deltas
            .iter()
            .map(|d| Ok((delta_key(&d.sku, &d.sale_id, d.line_no), to_json(d)?)))
            .collect::<Result<_>>()?;
        // Shown stock before this message (the snapshot's level where the overlay has none).
        let shown_before: BTreeMap<&str, Option<i64>> =
            per_sku.keys().map(|sku| Ok((*sku, self.stock(sku)?.available()))).collect::<Result<_>>()?;
        let is_z = matches!(msg, LaneMessage::Z { .. });
        let is_confirm = matches!(msg, LaneMessage::Confirmed { .. });
        let flag_id = new_id();
        let out = (&self.lanes, &self.idem, &self.deltas, &self.stock)
            .transaction(|(lanes, idem, deltas_t, stock)| {
                let seen_key = lane_key(b'x', lane.as_bytes());
                let mut seen: crate::store::LaneSeen = match lanes.get(&seen_key)? {
                    Some(v) => tx_json("lane seen", &v)?,
                    None => crate::store::LaneSeen { lane: lane.clone(), ..Default::default() },
                };
                if is_z {
                    // A Z is kept only if newer than the one held.
                    let LaneMessage::Z { number, last_sale, .. } = msg else { return Ok((false, false)) };
                    if *number <= seen.z_number {
                        return Ok((false, false));
                    }
                    seen.z_number = *number;
                    seen.z_last_sale = *last_sale;
                } else if !is_confirm && lanes.get(&rec_key)?.is_some() {
                    return Ok((false, false));
                }
                lanes.insert(rec_key.as_slice(), rec_val.as_slice())?;
                if let Some(k) = &index_key {
                    lanes.insert(k.as_slice(), &[] as &[u8])?;
                }
                if let Some((no, id)) = &receipt {
                    idem.insert(format!("{RECEIPT_PREFIX}{no}").as_bytes(), id.as_bytes())?;
                }
                for (k, v) in &deltas_json {
                    deltas_t.insert(k.as_slice(), v.as_slice())?;
                }
                let mut flagged = false;
                for (sku, d) in &per_sku {
                    let mut cur: StockLevel = match stock.get(sku.as_bytes())? {
                        Some(v) => tx_json("stock", &v)?,
                        None => StockLevel::default(),
                    };
                    cur.unreflected = cur.unreflected.saturating_add(*d);
                    stock.insert(sku.as_bytes(), tx_enc(&cur)?)?;
                    // Sold below zero: two lanes sold the same last units while apart.
                    if *d < 0
                        && let (Some(Some(before)), LaneMessage::Sale { sale, .. }) = (shown_before.get(sku), msg)
                        && before + d < 0
                    {
                        let avail = before + d;
                        let id = new_id();
                        let flag = crate::store::LaneFlag {
                            id,
                            at: sale.created_at,
                            kind: "oversell".into(),
                            lane: lane.clone(),
                            record_id: sale.id,
                            detail: format!(
                                "{sku}: sale {} at lane {lane} leaves {avail} in stock: sold at more than one lane while apart",
                                sale.id
                            ),
                        };
                        lanes.insert(lane_key(b'f', id.as_bytes()), tx_enc(&flag)?)?;
                        flagged = true;
                    }
                }
                if let Some((orig_id, lines)) = &refund {
                    let rkey = format!("refunded:{orig_id}");
                    let mut done: Refunded = match idem.get(rkey.as_bytes())? {
                        Some(v) => tx_json("refunded quantities", &v)?,
                        None => Refunded::new(),
                    };
                    let mut over = Vec::new();
                    for (line_no, sku, qty) in lines {
                        let so_far = done.entry(*line_no).or_default();
                        *so_far += qty;
                        let sold = orig
                            .as_ref()
                            .and_then(|o| o.lines.iter().find(|l| l.line_no == *line_no && l.sku == *sku))
                            .map(|l| u64::from(l.quantity.amount()));
                        if let Some(sold) = sold
                            && *so_far > sold
                        {
                            over.push(format!("line {line_no} ({sku}): {so_far} refunded of {sold} sold"));
                        }
                    }
                    idem.insert(rkey.as_bytes(), tx_enc(&done)?)?;
                    if !over.is_empty() {
                        let LaneMessage::Sale { sale, .. } = msg else { return Ok((false, false)) };
                        let flag = crate::store::LaneFlag {
                            id: flag_id,
                            at: sale.created_at,
                            kind: "over-refund".into(),
                            lane: lane.clone(),
                            record_id: sale.id,
                            detail: format!("refund of sale {orig_id} at lane {lane}: {}", over.join("; ")),
                        };
                        lanes.insert(lane_key(b'f', flag_id.as_bytes()), tx_enc(&flag)?)?;
                        flagged = true;
                    }
                }
                seen.records += u64::from(!is_z);
                seen.last_seq = seen.last_seq.max(seq);
                if seen.last_at.is_none_or(|t| t < at) {
                    seen.last_at = Some(at);
                }
                lanes.insert(seen_key.as_slice(), tx_enc(&seen)?)?;
                Ok((true, flagged))
            })
            .map_err(tx_err)?;
        Ok(out)
    }

    /// Everything applied to sled so far becomes durable in sled itself.
    fn checkpoint(&self) -> Result<()> {
        // Every record up to `last_seq` was applied to sled before it was appended.
        let seq = self.journal.last_seq();
        self.checkpoint_upto(seq)
    }

    /// Waits for the journal to hold every earlier commit durably.
    fn journal_sync(&self) -> Result<()> {
        self.journal.sync().map_err(|e| {
            self.fatal(&e);
            StoreError::Fatal(e)
        })
    }

    /// The sled side of a commit: one transaction, or nothing if the sale (by id or key) is
    /// already there.
    /// The last receipt number's sequence given here (0: none yet).
    fn receipt_seq(&self) -> Result<u64> {
        Ok(self.idem.get(RECEIPT_SEQ_KEY).map_err(io)?.and_then(|v| be_u64(&v)).unwrap_or(0))
    }

    fn apply_commit(&self, rec: &CommitRecord) -> Result<TxOut> {
        let sale = &rec.sale;
        let now = sale.created_at;
        let sale_json = to_json(sale)?;
        let mut idem_keys = vec![format!("sale:{}", sale.id)];
        if let Some(k) = &rec.idempotency_key {
            idem_keys.push(format!("key:{k}"));
        }
        let idem_json = to_json(&IdemRecord { sale_id: sale.id, fingerprint: rec.fingerprint.clone() })?;
        let entries_json: Vec<Vec<u8>> = rec.entries.iter().map(to_json).collect::<Result<_>>()?;
        let deltas: Vec<(Vec<u8>, Vec<u8>)> = sale
            .lines
            .iter()
            .map(|l| {
                let d = StockDelta {
                    sku: l.sku.clone(),
                    sale_id: sale.id,
                    line_no: l.line_no,
                    delta: sale.stock_delta(l),
                    at: now,
                };
                Ok((delta_key(&l.sku, &sale.id, l.line_no), to_json(&d)?))
            })
            .collect::<Result<_>>()?;
        let mut per_sku: BTreeMap<&str, i64> = BTreeMap::new();
        for l in &sale.lines {
            *per_sku.entry(l.sku.as_str()).or_default() += sale.stock_delta(l);
        }
        let audit_json = to_json(&rec.audit)?;
        // A refund of another lane's sale: its original is in the replica. Read here, under
        // the commit lock that replica writes also take, so the decision is the same on replay.
        let lane_orig: Option<Sale> = match (sale.kind, sale.refund_of) {
            (crate::domain::SaleKind::Refund, Some(o)) if !self.sales.contains_key(o.as_bytes()).map_err(io)? => {
                self.lane_record::<LaneSaleRec>(b's', &o)?.map(|r| *r.sale)
            }
            _ => None,
        };
        let trees =
            (&self.sales, &self.idem, &self.outbox, &self.outbox_by_record, &self.stock, &self.deltas, &self.audit);
        trees
            .transaction(
                |(sales, idem, outbox, by_rec, stock, deltas_t, audit_t): &(
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                )| {
                    for k in &idem_keys {
                        if let Some(v) = idem.get(k.as_bytes())? {
                            return Ok(TxOut::Seen(tx_json("idempotency record", &v)?));
                        }
                    }
                    if sale.kind == crate::domain::SaleKind::Refund {
                        let Some(orig_id) = sale.refund_of else {
                            return Ok(TxOut::OverRefund(sale.id, "a refund without the sale it refunds".into()));
                        };
                        let orig: Sale = match (sales.get(orig_id.as_bytes())?, &lane_orig) {
                            (Some(v), _) => tx_json("sale", &v)?,
                            (None, Some(o)) => o.clone(),
                            (None, None) => {
                                return Ok(TxOut::OverRefund(orig_id, format!("sale {orig_id} does not exist")));
                            }
                        };
                        let rkey = format!("refunded:{orig_id}");
                        let mut done: Refunded = match idem.get(rkey.as_bytes())? {
                            Some(v) => tx_json("refunded quantities", &v)?,
                            None => Refunded::new(),
                        };
                        for l in &sale.lines {
                            let Some(o) = orig.lines.iter().find(|o| o.line_no == l.line_no && o.sku == l.sku) else {
                                return Ok(TxOut::OverRefund(
                                    orig_id,
                                    format!("sale {orig_id} has no line {} of {}", l.line_no, l.sku),
                                ));
                            };
                            let so_far = done.entry(l.line_no).or_default();
                            let want = *so_far + u64::from(l.quantity.amount());
                            if want > u64::from(o.quantity.amount()) {
                                return Ok(TxOut::OverRefund(
                                    orig_id,
                                    format!(
                                        "line {} sold {}, {} refunded already: {} more cannot be refunded",
                                        l.line_no,
                                        o.quantity.amount(),
                                        so_far,
                                        l.quantity.amount()
                                    ),
                                ));
                            }
                            *so_far = want;
                        }
                        idem.insert(rkey.as_bytes(), tx_enc(&done)?)?;
                    }
                    sales.insert(sale.id.as_bytes(), sale_json.as_slice())?;
                    for k in &idem_keys {
                        idem.insert(k.as_bytes(), idem_json.as_slice())?;
                    }
                    for (e, j) in rec.entries.iter().zip(&entries_json) {
                        outbox.insert(outbox_key(e.remote, &e.id), j.as_slice())?;
                        by_rec.insert(by_record_key(&sale.id, e.remote), e.id.as_bytes())?;
                    }
                    for (k, v) in &deltas {
                        deltas_t.insert(k.as_slice(), v.as_slice())?;
                    }
                    for (sku, d) in &per_sku {
                        let mut cur: StockLevel = match stock.get(sku.as_bytes())? {
                            Some(v) => tx_json("stock", &v)?,
                            None => StockLevel::default(),
                        };
                        cur.unreflected = cur.unreflected.saturating_add(*d);
                        stock.insert(sku.as_bytes(), tx_enc(&cur)?)?;
                    }
                    audit_t.insert(rec.audit.id.as_bytes(), audit_json.as_slice())?;
                    if let Some(no) = &sale.receipt_no {
                        idem.insert(format!("{RECEIPT_PREFIX}{no}").as_bytes(), sale.id.as_bytes())?;
                        if let Some(seq) = crate::domain::receipt_seq(no) {
                            let stored = idem.get(RECEIPT_SEQ_KEY)?.and_then(|v| be_u64(&v)).unwrap_or(0);
                            if seq > stored {
                                idem.insert(RECEIPT_SEQ_KEY, &seq.to_be_bytes())?;
                            }
                        }
                    }
                    Ok(TxOut::New)
                },
            )
            .map_err(tx_err)
    }

    fn snap(&self) -> std::sync::RwLockReadGuard<'_, Option<Snapshot>> {
        self.snapshot.read().unwrap_or_else(|p| p.into_inner())
    }

    fn snap_by_sku(&self, sku: &str) -> Result<Option<SnapshotRecord>> {
        match self.snap().as_ref() {
            Some(s) => s.by_sku(sku).map_err(|e| StoreError::Corrupt {
                what: format!("catalog snapshot item {sku}"),
                detail: e.to_string(),
            }),
            None => Ok(None),
        }
    }

    /// The number `source` gave the record of a stock delta, if `source` confirmed it.
    /// The SKU's local deltas (keys under `prefix`) as the stock decisions see them.
    fn delta_views(
        &self,
        prefix: &[u8],
        sku: &str,
        source: Remote,
        number: &dyn Fn(&str) -> Option<u64>,
    ) -> Result<(Vec<sled::IVec>, Vec<crate::stock::DeltaView>)> {
        let (mut keys, mut views) = (Vec::new(), Vec::new());
        for kv in self.deltas.scan_prefix(prefix) {
            let (k, v) = kv.map_err(io)?;
            let d: StockDelta = from_json(|| format!("stock delta of {sku}"), &v)?;
            views.push(crate::stock::DeltaView {
                delta: d.delta,
                confirmed: self.confirmed_number(source, &d, number)?,
            });
            keys.push(k);
        }
        Ok((keys, views))
    }

    fn confirmed_number(
        &self,
        source: Remote,
        d: &StockDelta,
        number: &dyn Fn(&str) -> Option<u64>,
    ) -> Result<Option<u64>> {
        let Some(id) = self.outbox_by_record.get(by_record_key(&d.sale_id, source)).map_err(io)? else {
            // Another lane's record: its lane published the confirmation on the bus.
            let key = lane_key(b'c', &by_record_key(&d.sale_id, source));
            return Ok(self.lanes.get(key).map_err(io)?.and_then(|v| number(&String::from_utf8_lossy(&v))));
        };
        let Some(id) = uuid_of(&id) else { return Ok(None) };
        let entry: Option<OutboxEntry> =
            self.get_json(&self.outbox, &outbox_key(source, &id), || format!("outbox entry {id}"))?;
        Ok(match entry.map(|e| e.state) {
            Some(OutboxState::Confirmed { remote_id }) => number(&remote_id),
            _ => None,
        })
    }

    /// Writes a SKU's level and removes the deltas it now includes, in one transaction.
    /// The caller holds the commit lock.
    fn write_level(&self, sku: &str, level: &StockLevel, drop_keys: &[sled::IVec]) -> Result<()> {
        (&self.stock, &self.deltas)
            .transaction(|(st, dt)| {
                st.insert(sku.as_bytes(), tx_enc(level)?)?;
                for k in drop_keys {
                    dt.remove(k.as_ref())?;
                }
                Ok(())
            })
            .map_err(tx_err)
    }

    /// Overlay stock of a SKU, with the snapshot record's level where the overlay has none.
    /// Takes no lock: the caller looked the record up.
    fn stock_from(&self, sku: &str, snap: Option<&SnapshotRecord>) -> Result<StockLevel> {
        let mut st: StockLevel =
            self.get_json(&self.stock, sku.as_bytes(), || format!("stock of {sku}"))?.unwrap_or_default();
        if st.remote_level.is_none()
            && let Some(r) = snap
        {
            st.remote_level = r.stock_level;
            st.remote_at = r.stock_at;
        }
        Ok(st)
    }

    /// Refuses a path that exists but is not (or not yet) a store; creates a missing one.
    /// Returns whether the directory was created now.
    fn check_dir(path: &Path) -> Result<bool> {
        match std::fs::metadata(path) {
            Ok(m) if !m.is_dir() => {
                Err(StoreError::NotAStore { path: path.into(), why: "it is not a directory".into() })
            }
            Ok(_) => {
                if path.join("db").exists() {
                    return Ok(false);
                }
                // No `db`: either a directory that is not ours, or a store whose creation was
                // cut off (sled makes `blobs/`, then `conf`, then `db`). Only the latter, with
                // nothing but those names and no journal or catalog data, is carried on.
                let open_err = |e: std::io::Error| StoreError::Open { path: path.into(), detail: e.to_string() };
                let mut stray_conf = false;
                for e in std::fs::read_dir(path).map_err(open_err)? {
                    let name = e.map_err(open_err)?.file_name().to_string_lossy().into_owned();
                    let has_files =
                        |sub: &str| std::fs::read_dir(path.join(sub)).map(|mut d| d.next().is_some()).unwrap_or(true);
                    match name.as_str() {
                        "blobs" if !has_files("blobs") => {}
                        "journal" | "catalog" if !has_files(&name) => {}
                        "conf" => stray_conf = true,
                        _ => {
                            return Err(StoreError::NotAStore {
                                path: path.into(),
                                why: format!("it holds {name:?} and no sled `db` file"),
                            });
                        }
                    }
                }
                if stray_conf {
                    // Written just before `db` by an interrupted creation; it may be torn.
                    std::fs::remove_file(path.join("conf")).map_err(open_err)?;
                }
                Ok(false)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(path)
                    .map_err(|e| StoreError::Open { path: path.into(), detail: e.to_string() })?;
                Ok(true)
            }
            Err(e) => Err(StoreError::Open { path: path.into(), detail: e.to_string() }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock_index(&self) -> MutexGuard<'_, BTreeMap<Remote, RemoteIndex>> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn rebuild_index(&self) -> Result<()> {
        #[derive(serde::Deserialize)]
        struct StateOnly {
            #[serde(flatten)]
            state: OutboxState,
        }
        let mut idx: BTreeMap<Remote, RemoteIndex> = BTreeMap::new();
        for kv in self.outbox.iter() {
            let (k, v) = kv.map_err(io)?;
            let split = k.iter().position(|b| *b == 0).unwrap_or(k.len());
            let name = String::from_utf8_lossy(&k[..split]).into_owned();
            let remote = Remote::parse(&name).ok_or_else(|| StoreError::Corrupt {
                what: format!("outbox key of {name:?}"),
                detail: "a remote this version of edged does not deliver to: the store was written by a newer \
                         edged; upgrade edged or restore a backup"
                    .into(),
            })?;
            let id = uuid_of(k.get(split + 1..).unwrap_or_default()).ok_or_else(|| StoreError::Corrupt {
                what: format!("outbox key of {remote}"),
                detail: "bad id".into(),
            })?;
            let s: StateOnly = from_json(|| format!("outbox entry {id}"), &v)?;
            idx.entry(remote).or_default().add(id, &s.state);
        }
        *self.lock_index() = idx;
        Ok(())
    }

    /// Names of the files in the store directory and in `blobs/`.
    fn list_files(&self) -> std::io::Result<BTreeSet<String>> {
        let mut names = BTreeSet::new();
        for e in std::fs::read_dir(&self.path)? {
            names.insert(e?.file_name().to_string_lossy().into_owned());
        }
        let blobs = self.path.join("blobs");
        if blobs.is_dir() {
            for e in std::fs::read_dir(&blobs)? {
                names.insert(format!("blobs/{}", e?.file_name().to_string_lossy()));
            }
        }
        Ok(names)
    }

    /// flush + fdatasync + (when files came or went) fsync of new files and directories.
    fn sync_now(&self) -> std::io::Result<()> {
        self.db.flush().map_err(std::io::Error::other)?;
        self.db_file.sync_data()?;
        let now = self.list_files()?;
        let mut seen = self.files_seen.lock().unwrap_or_else(|p| p.into_inner());
        if *seen != now {
            for name in now.difference(&seen) {
                if name.starts_with("blobs/") {
                    match File::open(self.path.join(name)) {
                        Ok(f) => f.sync_all()?,
                        // sled may have collected it meanwhile.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            let blobs = self.path.join("blobs");
            if blobs.is_dir() {
                fsync_dir(&blobs)?;
            }
            fsync_dir(&self.path)?;
            *seen = now;
        }
        Ok(())
    }

    fn fatal(&self, msg: &str) {
        if !self.fatal_called.swap(true, Ordering::SeqCst) {
            tracing::error!(error = msg, "store sync failed: no further commits are accepted");
            if let Some(h) = &self.on_fatal {
                h(msg);
            }
        }
    }

    fn get_json<T: DeserializeOwned>(
        &self,
        tree: &Tree,
        key: &[u8],
        what: impl FnOnce() -> String,
    ) -> Result<Option<T>> {
        match tree.get(key).map_err(io)? {
            Some(v) => Ok(Some(from_json(what, &v)?)),
            None => Ok(None),
        }
    }

    fn item_matches(item: &Item, q: &str) -> bool {
        if let Some(cat) = q.strip_prefix("category:") {
            return item.category.eq_ignore_ascii_case(cat.trim());
        }
        item.sku.eq_ignore_ascii_case(q) || item.barcodes.iter().any(|b| b == q) || item.name.to_lowercase().contains(q)
    }

    fn store_item_count(&self, n: u64) -> Result<()> {
        self.item_count.store(n, Ordering::Relaxed);
        self.meta.insert(META_ITEM_COUNT, &n.to_be_bytes()).map_err(io)?;
        Ok(())
    }
}

fn classify_open_error(path: &Path, e: sled::Error) -> StoreError {
    let detail = e.to_string();
    let locked =
        matches!(&e, sled::Error::Io(ioe) if ioe.kind() == std::io::ErrorKind::WouldBlock) || detail.contains("lock");
    if locked {
        StoreError::Locked { path: path.into(), detail }
    } else {
        StoreError::Open { path: path.into(), detail }
    }
}

fn validate_item(item: &Item) -> Result<()> {
    let bad = |why: String| Err(StoreError::Invalid(format!("item {:?}: {why}", item.sku)));
    if item.sku.is_empty() || item.sku.len() > 64 || item.sku.contains('\0') {
        return bad("sku must be 1 to 64 bytes without NUL".into());
    }
    if item.name.len() > 256 {
        return bad("name is longer than 256 bytes".into());
    }
    if item.barcodes.len() > 16 || item.barcodes.iter().any(|b| b.is_empty() || b.len() > 64) {
        return bad("at most 16 barcodes of 1 to 64 bytes".into());
    }
    if item.price_minor < 0 {
        return bad("price must not be negative".into());
    }
    Ok(())
}

impl Store for SledStore {
    fn import_catalog(&self, records: &[SnapshotRecord]) -> Result<u64> {
        for r in records {
            validate_item(&r.item)?;
        }
        // Lookups wait while the catalog switches over.
        let mut guard = self.snapshot.write().unwrap_or_else(|p| p.into_inner());
        let generation = guard.as_ref().map(|s| s.generation + 1).unwrap_or(1);
        let n = Snapshot::build(&self.catalog_dir, generation, records).map_err(io)?;
        let fresh = Snapshot::open(&self.catalog_dir, generation).map_err(io)?;
        // The new snapshot supersedes items put one by one, and the levels pulled before.
        self.items.clear().map_err(io)?;
        self.barcodes.clear().map_err(io)?;
        for kv in self.stock.iter() {
            let (k, v) = kv.map_err(io)?;
            let mut st: StockLevel = from_json(|| "stock".to_string(), &v)?;
            if st.remote_level.is_some() && fresh.contains_sku(&String::from_utf8_lossy(&k)) {
                st.remote_level = None;
                st.remote_at = None;
                self.stock.insert(k, to_json(&st)?).map_err(io)?;
            }
        }
        self.meta.insert(META_SNAPSHOT, &generation.to_be_bytes()).map_err(io)?;
        self.store_item_count(n)?;
        *guard = Some(fresh);
        drop(guard);
        // Durable before the old generation goes.
        self.checkpoint()?;
        Snapshot::remove_others(&self.catalog_dir, Some(generation)).map_err(io)?;
        Ok(n)
    }

    fn put_items(&self, items: &[Item]) -> Result<()> {
        for it in items {
            validate_item(it)?;
        }
        let mut added = 0u64;
        for chunk in items.chunks(IMPORT_CHUNK) {
            let encoded: Vec<Vec<u8>> = chunk.iter().map(to_json).collect::<Result<_>>()?;
            let snapshot_skus: std::collections::BTreeSet<&str> = match self.snap().as_ref() {
                Some(s) => chunk.iter().filter(|it| s.contains_sku(&it.sku)).map(|it| it.sku.as_str()).collect(),
                None => Default::default(),
            };
            let new_in_chunk = (&self.items, &self.barcodes)
                .transaction(|(items_t, barcodes_t)| {
                    let mut new = 0u64;
                    for (it, enc) in chunk.iter().zip(&encoded) {
                        if let Some(old) = items_t.insert(it.sku.as_bytes(), enc.as_slice())? {
                            let old: Item = tx_json("item", &old)?;
                            for b in old.barcodes.iter().filter(|b| !it.barcodes.contains(b)) {
                                if barcodes_t.get(b.as_bytes())?.as_deref() == Some(it.sku.as_bytes()) {
                                    barcodes_t.remove(b.as_bytes())?;
                                }
                            }
                        } else if !snapshot_skus.contains(it.sku.as_str()) {
                            new += 1;
                        }
                        for b in &it.barcodes {
                            barcodes_t.insert(b.as_bytes(), it.sku.as_bytes())?;
                        }
                    }
                    Ok(new)
                })
                .map_err(tx_err)?;
            added += new_in_chunk;
        }
        self.store_item_count(self.item_count.load(Ordering::Relaxed) + added)
    }

    fn item(&self, sku: &str) -> Result<Option<Item>> {
        match self.get_json(&self.items, sku.as_bytes(), || format!("item {sku}"))? {
            Some(it) => Ok(Some(it)),
            None => Ok(self.snap_by_sku(sku)?.map(|r| r.item)),
        }
    }

    fn item_by_barcode(&self, code: &str) -> Result<Option<Item>> {
        if let Some(sku) = self.barcodes.get(code.as_bytes()).map_err(io)? {
            let sku = String::from_utf8_lossy(&sku).into_owned();
            return self.item(&sku);
        }
        let rec = match self.snap().as_ref() {
            Some(s) => s.by_code(code).map_err(|e| StoreError::Corrupt {
                what: format!("catalog snapshot barcode {code}"),
                detail: e.to_string(),
            })?,
            None => None,
        };
        let Some(rec) = rec else { return Ok(None) };
        // An item changed since the snapshot may have dropped this barcode.
        match self.get_json::<Item>(&self.items, rec.item.sku.as_bytes(), || format!("item {}", rec.item.sku))? {
            Some(newer) if newer.barcodes.iter().any(|b| b == code) => Ok(Some(newer)),
            Some(_) => Ok(None),
            None => Ok(Some(rec.item)),
        }
    }

    fn items_page(
        &self,
        q: Option<&str>,
        after: Option<&str>,
        limit: usize,
        scan_limit: usize,
    ) -> Result<(Vec<CatalogEntry>, Option<String>)> {
        let q = q.map(str::trim).filter(|q| !q.is_empty()).map(str::to_lowercase);
        let mut out = Vec::new();
        if let (Some(q), None) = (&q, after) {
            // An exact barcode or SKU answers at once, without a scan.
            let exact = match self.item_by_barcode(q)? {
                Some(i) => Some(i),
                None => self.item(&q.to_uppercase())?,
            };
            if let Some(item) = exact {
                let stock = self.stock(&item.sku)?;
                out.push(CatalogEntry { item, stock });
                return Ok((out, None));
            }
        }
        let start = match after {
            Some(a) => Bound::Excluded(a.as_bytes().to_vec()),
            None => Bound::Unbounded,
        };
        // Merge the overlay (sled) and the snapshot, both in SKU order; the overlay wins.
        let snap_guard = self.snap();
        let snap = snap_guard.as_ref();
        let mut overlay = self.items.range::<Vec<u8>, _>((start, Bound::Unbounded)).peekable();
        let mut from_snap: std::collections::VecDeque<(String, u64)> = Default::default();
        let mut snap_after: Option<String> = after.map(str::to_string);
        let mut snap_done = snap.is_none();
        let mut last_key: Option<String> = None;
        let mut scanned = 0usize;
        loop {
            if from_snap.is_empty() && !snap_done {
                let batch = snap.map(|s| s.skus_after(snap_after.as_deref(), 256)).unwrap_or_default();
                snap_done = batch.len() < 256;
                snap_after = batch.last().map(|b| b.0.clone()).or(snap_after);
                from_snap.extend(batch);
            }
            let ov_key: Option<Vec<u8>> = match overlay.peek() {
                Some(Ok((k, _))) => Some(k.to_vec()),
                Some(Err(e)) => return Err(io(e)),
                None => None,
            };
            let sn_key = from_snap.front().map(|(k, _)| k.as_bytes().to_vec());
            let take_overlay = match (&ov_key, &sn_key) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(o), Some(n)) => o <= n,
            };
            if out.len() == limit || scanned == scan_limit {
                // There is more: continue after the last item examined.
                return Ok((out, last_key));
            }
            scanned += 1;
            let (item, snap_rec) = if take_overlay {
                if ov_key == sn_key {
                    from_snap.pop_front();
                }
                let Some(Ok((k, v))) = overlay.next() else { break };
                let item: Item = from_json(|| format!("item {}", String::from_utf8_lossy(&k)), &v)?;
                let rec = match snap {
                    Some(s) => s.by_sku(&item.sku).map_err(|e| StoreError::Corrupt {
                        what: format!("catalog snapshot item {}", item.sku),
                        detail: e.to_string(),
                    })?,
                    None => None,
                };
                (item, rec)
            } else {
                let Some((k, loc)) = from_snap.pop_front() else { break };
                let rec = snap.map(|s| s.at(loc)).transpose().map_err(|e| StoreError::Corrupt {
                    what: format!("catalog snapshot item {k}"),
                    detail: e.to_string(),
                })?;
                let Some(rec) = rec else { break };
                (rec.item.clone(), Some(rec))
            };
            last_key = Some(item.sku.clone());
            if q.as_deref().is_none_or(|q| Self::item_matches(&item, q)) {
                let stock = self.stock_from(&item.sku, snap_rec.as_ref())?;
                out.push(CatalogEntry { item, stock });
            }
        }
        Ok((out, None))
    }

    fn item_count(&self) -> u64 {
        self.item_count.load(Ordering::Relaxed)
    }

    fn stock(&self, sku: &str) -> Result<StockLevel> {
        let rec = self.snap_by_sku(sku)?;
        self.stock_from(sku, rec.as_ref())
    }

    fn set_remote_stock(&self, levels: &[(String, i64, Timestamp)]) -> Result<()> {
        for chunk in levels.chunks(IMPORT_CHUNK) {
            self.stock
                .transaction(|t| {
                    for (sku, level, at) in chunk {
                        let mut cur: StockLevel = match t.get(sku.as_bytes())? {
                            Some(v) => tx_json("stock", &v)?,
                            None => StockLevel::default(),
                        };
                        cur.remote_level = Some(*level);
                        cur.remote_at = Some(*at);
                        cur.through = None;
                        t.insert(sku.as_bytes(), tx_enc(&cur)?)?;
                    }
                    Ok(())
                })
                .map_err(tx_err)?;
        }
        Ok(())
    }

    fn rebase_stock(
        &self,
        source: Remote,
        levels: &[(String, i64, Timestamp)],
        through: u64,
        number: &dyn Fn(&str) -> Option<u64>,
    ) -> Result<RebaseStats> {
        let mut stats = RebaseStats::default();
        for (sku, level, at) in levels {
            // Commits add deltas and raise `unreflected`: none may slip between the scan and
            // the write.
            let _order = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
            let cur = self.stock(sku)?;
            // An older level changes nothing: its deltas are not even read.
            if cur.remote_at.is_some_and(|t| t > *at) {
                stats.stale += 1;
                continue;
            }
            let mut prefix = sku.as_bytes().to_vec();
            prefix.push(0);
            let (keys, views) = self.delta_views(&prefix, sku, source, number)?;
            let (next, drop) = match crate::stock::rebase(&cur, source, *level, *at, through, &views) {
                crate::stock::Rebase::Stale => {
                    stats.stale += 1;
                    continue;
                }
                crate::stock::Rebase::Level { next, drop } => (next, drop),
            };
            let drop_keys: Vec<sled::IVec> = drop.into_iter().filter_map(|i| keys.get(i).cloned()).collect();
            self.write_level(sku, &next, &drop_keys)?;
            stats.levels += 1;
            stats.deltas_reflected += drop_keys.len() as u64;
        }
        Ok(stats)
    }

    fn settle_stock(&self, source: Remote, number: &dyn Fn(&str) -> Option<u64>) -> Result<SettleStats> {
        let mut stats = SettleStats::default();
        // Deltas are keyed by SKU first: one SKU at a time, under the commit lock as in a
        // rebase, so that no commit's delta slips between the scan and the write.
        let mut after: Option<Vec<u8>> = None;
        loop {
            let next = match &after {
                Some(k) => self.deltas.range::<&[u8], _>((Bound::Included(k.as_slice()), Bound::Unbounded)).next(),
                None => self.deltas.iter().next(),
            };
            let Some(kv) = next else { break };
            let (k, _) = kv.map_err(io)?;
            let Some(end) = k.iter().position(|b| *b == 0) else {
                return Err(StoreError::Corrupt { what: "stock delta key".into(), detail: "no SKU separator".into() });
            };
            let sku = String::from_utf8_lossy(&k[..end]).into_owned();
            let mut prefix = k[..=end].to_vec();
            let _order = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
            let cur = self.stock(&sku)?;
            // Only a level of this source: another source numbers its records otherwise.
            // Only a level of this source settles (read nothing for the others).
            let ours = cur.through.as_ref().is_some_and(|m| m.source == source.as_str());
            let (keys, views) =
                if ours { self.delta_views(&prefix, &sku, source, number)? } else { Default::default() };
            let settled = crate::stock::settle(&cur, source, &views);
            if let Some(next) = &settled.next {
                let drop_keys: Vec<sled::IVec> = settled.drop.iter().filter_map(|i| keys.get(*i).cloned()).collect();
                self.write_level(&sku, next, &drop_keys)?;
                stats.deltas_reflected += drop_keys.len() as u64;
            }
            if settled.waits {
                stats.waiting.push(sku);
            }
            // Past every key of this SKU: its prefix with the separator raised by one.
            if let Some(last) = prefix.last_mut() {
                *last = 1;
            }
            after = Some(prefix);
        }
        Ok(stats)
    }

    fn commit_sale(&self, c: SaleCommit) -> Result<CommitOutcome> {
        if let Some(e) = self.journal.failure() {
            return Err(StoreError::Fatal(e));
        }
        let sale = c.sale;
        let now = sale.created_at;
        // Ids are made once, here, and travel in the journal record: a replay reuses them.
        let entries = new_entries(c.remotes, RecordKind::Sale, sale.id, now, &sale.request_id);
        let audit = AuditRecord {
            id: new_id(),
            at: now,
            actor: sale.actor.clone(),
            action: "sale.completed".into(),
            subject: sale.id.to_string(),
            request_id: sale.request_id.clone(),
            detail: format!("total {} in {} lines", sale.total(), sale.lines.len()),
        };
        let mut rec =
            CommitRecord { sale, idempotency_key: c.idempotency_key, fingerprint: c.fingerprint, entries, audit };

        let (out, rotated) = {
            let _order = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
            // The receipt number is the next of the lane's sequence, taken under the commit
            // lock and written in the same transaction as the sale: a replayed or refused
            // commit takes none (no gaps), and the journal record carries it, so a replay
            // after a crash gives the sale the number it was acknowledged with.
            let lane = rec.sale.lane.clone().unwrap_or_else(|| DEFAULT_LANE.to_string());
            rec.sale.receipt_no = Some(crate::domain::receipt_no(&lane, self.receipt_seq()? + 1));
            let payload = to_json(&rec)?;
            // sled failed to write (its background flush hit a full disk or a dying drive):
            // as fatal as a failed sync.
            let applied = self.apply_commit(&rec).map_err(|e| self.fatal_io(e))?;
            match applied {
                TxOut::New => {
                    // sled has it in memory; if the journal does not, nothing may be
                    // acknowledged from here on (append_or_die).
                    let rotated = self.append_or_die(&payload)?;
                    let mut idx = self.lock_index();
                    for e in &rec.entries {
                        idx.entry(e.remote).or_default().add(e.id, &e.state);
                    }
                    self.sale_count.fetch_add(1, Ordering::Relaxed);
                    (TxOut::New, rotated)
                }
                seen => (seen, false),
            }
        };

        match out {
            TxOut::New => {
                self.sync_appended(rotated)?;
                Ok(CommitOutcome::Created(rec.sale))
            }
            TxOut::OverRefund(sale_id, what) => Ok(CommitOutcome::Conflict { sale_id, what }),
            TxOut::Seen(found) => {
                if found.fingerprint != rec.fingerprint {
                    let what = if rec.idempotency_key.is_some() && found.sale_id != rec.sale.id {
                        "this Idempotency-Key was used for a different sale".to_string()
                    } else {
                        "a sale with this id or Idempotency-Key exists with different content".to_string()
                    };
                    return Ok(CommitOutcome::Conflict { sale_id: found.sale_id, what });
                }
                let stored = self.sale(&found.sale_id)?.ok_or_else(|| StoreError::Corrupt {
                    what: format!("sale {}", found.sale_id),
                    detail: "its idempotency record exists but the sale does not".into(),
                })?;
                // The first request may still be waiting for its sync: never acknowledge a
                // replay before the sale is durable. Its record was appended before the
                // commit lock let this request see the sale.
                self.journal_sync()?;
                Ok(CommitOutcome::Replayed(stored))
            }
        }
    }

    fn sale(&self, id: &Uuid) -> Result<Option<Sale>> {
        self.get_json(&self.sales, id.as_bytes(), || format!("sale {id}"))
    }

    fn commit_adjustment(&self, c: AdjustmentCommit) -> Result<AdjustmentOutcome> {
        if let Some(e) = self.journal.failure() {
            return Err(StoreError::Fatal(e));
        }
        let adj = c.adjustment;
        let now = adj.created_at;
        let entries = new_entries(c.remotes, RecordKind::Adjustment, adj.id, now, &adj.request_id);
        let audit = AuditRecord {
            id: new_id(),
            at: now,
            actor: adj.actor.clone(),
            action: "stock.adjusted".into(),
            subject: adj.sku.clone(),
            request_id: adj.request_id.clone(),
            detail: format!(
                "{:+} {} ({}) {}",
                adj.delta,
                if adj.by_weight { "g" } else { "units" },
                adj.reason.as_str(),
                adj.id
            ),
        };
        let mut idem_keys = vec![format!("adjustment:{}", adj.id)];
        if let Some(k) = &c.idempotency_key {
            idem_keys.push(format!("adjustment-key:{k}"));
        }
        let adj_json = to_json(&adj)?;
        let idem_json = to_json(&IdemRecord { sale_id: adj.id, fingerprint: c.fingerprint.clone() })?;
        let entries_json: Vec<Vec<u8>> = entries.iter().map(to_json).collect::<Result<_>>()?;
        let delta = StockDelta { sku: adj.sku.clone(), sale_id: adj.id, line_no: 0, delta: adj.delta, at: now };
        let delta_k = delta_key(&adj.sku, &adj.id, 0);
        let delta_json = to_json(&delta)?;
        let audit_json = to_json(&audit)?;
        let seen = {
            let _order = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
            let trees = (
                &self.adjustments,
                &self.idem,
                &self.outbox,
                &self.outbox_by_record,
                &self.stock,
                &self.deltas,
                &self.audit,
            );
            let out = trees
                .transaction(
                    |(adjs, idem, outbox, by_rec, stock, deltas_t, audit_t): &(
                        TransactionalTree,
                        TransactionalTree,
                        TransactionalTree,
                        TransactionalTree,
                        TransactionalTree,
                        TransactionalTree,
                        TransactionalTree,
                    )| {
                        for k in &idem_keys {
                            if let Some(v) = idem.get(k.as_bytes())? {
                                return Ok(Some(tx_json::<IdemRecord>("idempotency record", &v)?));
                            }
                        }
                        adjs.insert(adj.id.as_bytes(), adj_json.as_slice())?;
                        for k in &idem_keys {
                            idem.insert(k.as_bytes(), idem_json.as_slice())?;
                        }
                        for (e, j) in entries.iter().zip(&entries_json) {
                            outbox.insert(outbox_key(e.remote, &e.id), j.as_slice())?;
                            by_rec.insert(by_record_key(&adj.id, e.remote), e.id.as_bytes())?;
                        }
                        deltas_t.insert(delta_k.as_slice(), delta_json.as_slice())?;
                        let mut cur: StockLevel = match stock.get(adj.sku.as_bytes())? {
                            Some(v) => tx_json("stock", &v)?,
                            None => StockLevel::default(),
                        };
                        cur.unreflected = cur.unreflected.saturating_add(adj.delta);
                        stock.insert(adj.sku.as_bytes(), tx_enc(&cur)?)?;
                        audit_t.insert(audit.id.as_bytes(), audit_json.as_slice())?;
                        Ok(None)
                    },
                )
                .map_err(tx_err)
                .map_err(|e| self.fatal_io(e))?;
            if out.is_none() {
                let mut idx = self.lock_index();
                for e in &entries {
                    idx.entry(e.remote).or_default().add(e.id, &e.state);
                }
            }
            out
        };
        // Durable before it is acknowledged: adjustments are rare, so a checkpoint (sled
        // flushed and fdatasynced) rather than a journal record. A replayed request waits
        // for the same, so it never acknowledges what the first one has not made durable.
        self.checkpoint()?;
        match seen {
            None => Ok(AdjustmentOutcome::Created(adj)),
            Some(found) if found.fingerprint != c.fingerprint => Ok(AdjustmentOutcome::Conflict {
                id: found.sale_id,
                what: "an adjustment with this id or Idempotency-Key exists with different content".into(),
            }),
            Some(found) => match self.adjustment(&found.sale_id)? {
                Some(a) => Ok(AdjustmentOutcome::Replayed(a)),
                None => Err(StoreError::Corrupt {
                    what: format!("adjustment {}", found.sale_id),
                    detail: "its idempotency record exists but the adjustment does not".into(),
                }),
            },
        }
    }

    fn adjustment(&self, id: &Uuid) -> Result<Option<StockAdjustment>> {
        self.get_json(&self.adjustments, id.as_bytes(), || format!("adjustment {id}"))
    }

    fn adjustments_page(&self, after: Option<&Uuid>, limit: usize) -> Result<Vec<StockAdjustment>> {
        let start = match after {
            Some(a) => Bound::Excluded(a.as_bytes().to_vec()),
            None => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for kv in self.adjustments.range::<Vec<u8>, _>((start, Bound::Unbounded)).take(limit) {
            let (k, v) = kv.map_err(io)?;
            out.push(from_json(|| format!("adjustment {:?}", uuid_of(&k)), &v)?);
        }
        Ok(out)
    }

    fn sales_page(&self, after: Option<&Uuid>, limit: usize) -> Result<Vec<Sale>> {
        let start = match after {
            Some(a) => Bound::Excluded(a.as_bytes().to_vec()),
            None => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for kv in self.sales.range::<Vec<u8>, _>((start, Bound::Unbounded)).take(limit) {
            let (k, v) = kv.map_err(io)?;
            out.push(from_json(|| format!("sale {:?}", uuid_of(&k)), &v)?);
        }
        Ok(out)
    }

    fn stock_deltas_of_sale(&self, sale: &Sale) -> Result<Vec<StockDelta>> {
        let mut out = Vec::new();
        for l in &sale.lines {
            let k = delta_key(&l.sku, &sale.id, l.line_no);
            if let Some(d) =
                self.get_json(&self.deltas, &k, || format!("stock delta of sale {} line {}", sale.id, l.line_no))?
            {
                out.push(d);
            }
        }
        Ok(out)
    }

    fn outbox_entry(&self, id: &Uuid) -> Result<Option<OutboxEntry>> {
        let remotes: Vec<Remote> = self.lock_index().keys().copied().collect();
        for r in remotes {
            if let Some(e) = self.get_json(&self.outbox, &outbox_key(r, id), || format!("outbox entry {id}"))? {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    fn outbox_page(&self, q: &OutboxQuery) -> Result<Vec<OutboxEntry>> {
        let lower = match (&q.after, &q.remote) {
            (Some((r, id)), _) => Bound::Excluded(outbox_key(*r, id)),
            (None, Some(r)) => Bound::Included(outbox_key(*r, &Uuid::nil())),
            (None, None) => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for kv in self.outbox.range::<Vec<u8>, _>((lower, Bound::Unbounded)) {
            if out.len() >= q.limit {
                break;
            }
            let (k, v) = kv.map_err(io)?;
            if let Some(r) = &q.remote {
                let r = r.as_str();
                let prefix_ok = k.len() > r.len() && k.starts_with(r.as_bytes()) && k[r.len()] == 0;
                if !prefix_ok {
                    break;
                }
            }
            let e: OutboxEntry = from_json(|| "outbox entry".to_string(), &v)?;
            if q.state.is_none_or(|s| s == e.state.kind()) {
                out.push(e);
            }
        }
        Ok(out)
    }

    fn outbox_entries_of(&self, record_id: &Uuid) -> Result<Vec<OutboxEntry>> {
        let mut out = Vec::new();
        for kv in self.outbox_by_record.scan_prefix(record_id.as_bytes()) {
            let (k, v) = kv.map_err(io)?;
            let name = String::from_utf8_lossy(&k[16..]).into_owned();
            let remote = Remote::parse(&name).ok_or_else(|| StoreError::Corrupt {
                what: "outbox index".into(),
                detail: format!("{name:?} is not a remote this version knows"),
            })?;
            let id = uuid_of(&v)
                .ok_or_else(|| StoreError::Corrupt { what: "outbox index".into(), detail: "bad id".into() })?;
            if let Some(e) = self.get_json(&self.outbox, &outbox_key(remote, &id), || format!("outbox entry {id}"))? {
                out.push(e);
            }
        }
        Ok(out)
    }

    fn outbox_counts(&self) -> BTreeMap<Remote, OutboxCounts> {
        self.lock_index()
            .iter()
            .map(|(r, i)| {
                let mut c = i.counts.clone();
                c.oldest_waiting = i.waiting.first().and_then(id_time);
                (*r, c)
            })
            .collect()
    }

    fn transition_outbox(
        &self,
        remote: Remote,
        id: &Uuid,
        expected: &OutboxState,
        next: OutboxState,
        at: Timestamp,
    ) -> Result<OutboxEntry> {
        let m = OutboxMove { remote, id: *id, expected: expected.clone(), next };
        let mut res = self.transition_outbox_many(std::slice::from_ref(&m), at)?;
        res.pop().unwrap_or_else(|| Err("no result".into())).map_err(StoreError::Invalid)
    }

    fn transition_outbox_many(&self, moves: &[OutboxMove], at: Timestamp) -> Result<Vec<Result<OutboxEntry, String>>> {
        self.apply_moves(moves, at)
    }

    fn transition_outbox_durable(
        &self,
        moves: &[OutboxMove],
        at: Timestamp,
    ) -> Result<Vec<Result<OutboxEntry, String>>> {
        if let Some(e) = self.journal.failure() {
            return Err(StoreError::Fatal(e));
        }
        let (res, rotated) = {
            let _order = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
            let res = self.apply_moves(moves, at).map_err(|e| self.fatal_io(e))?;
            let applied: Vec<OutboxMove> =
                moves.iter().zip(&res).filter(|(_, r)| r.is_ok()).map(|(m, _)| m.clone()).collect();
            if applied.is_empty() {
                return Ok(res);
            }
            let rotated = self.append_or_die(&to_json(&MovesRecord { outbox_moves: applied, at })?)?;
            (res, rotated)
        };
        self.sync_appended(rotated)?;
        Ok(res)
    }

    fn put_payment(&self, p: &Payment) -> Result<()> {
        if let Some(e) = self.journal.failure() {
            return Err(StoreError::Fatal(e));
        }
        let rotated = {
            let _order = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
            self.apply_payment(p).map_err(|e| self.fatal_io(e))?;
            self.append_or_die(&to_json(&PaymentRecord { payment: p.clone() })?)?
        };
        self.sync_appended(rotated)
    }

    fn refunded(&self, sale_id: &Uuid) -> Result<BTreeMap<u32, u64>> {
        let r: Option<Refunded> = self
            .get_json(&self.idem, format!("refunded:{sale_id}").as_bytes(), || format!("refunds of sale {sale_id}"))?;
        Ok(r.unwrap_or_default())
    }

    fn sale_by_receipt(&self, receipt_no: &str) -> Result<Option<Sale>> {
        let key = format!("{RECEIPT_PREFIX}{receipt_no}");
        let Some(v) = self.idem.get(key.as_bytes()).map_err(io)? else { return Ok(None) };
        let id = Uuid::from_slice(&v).map_err(|e| StoreError::Corrupt {
            what: format!("receipt number {receipt_no}"),
            detail: format!("its sale id is not a UUID: {e}"),
        })?;
        self.lane_sale(&id)
    }

    fn sale_for_key(&self, key: &str) -> Result<Option<(Uuid, String)>> {
        let rec: Option<IdemRecord> =
            self.get_json(&self.idem, format!("key:{key}").as_bytes(), || format!("idempotency key {key}"))?;
        Ok(rec.map(|r| (r.sale_id, r.fingerprint)))
    }

    fn payment(&self, id: &Uuid) -> Result<Option<Payment>> {
        self.get_json(&self.payments, id.as_bytes(), || format!("payment {id}"))
    }

    fn payments_open(&self) -> Result<Vec<Payment>> {
        let mut out = Vec::new();
        for k in self.payments_open.iter() {
            let (k, _) = k.map_err(io)?;
            let Ok(id) = Uuid::from_slice(&k) else { continue };
            if let Some(p) = self.payment(&id)? {
                out.push(p);
            }
        }
        Ok(out)
    }

    fn payments_recent(&self, limit: usize) -> Result<Vec<Payment>> {
        let mut out = Vec::new();
        for kv in self.payments.iter().rev().take(limit) {
            let (_, v) = kv.map_err(io)?;
            out.push(
                serde_json::from_slice(&v)
                    .map_err(|e| StoreError::Corrupt { what: "payment".into(), detail: e.to_string() })?,
            );
        }
        Ok(out)
    }

    fn outbox_waiting(&self, remote: Remote, after: Option<&Uuid>, limit: usize) -> Result<Vec<OutboxEntry>> {
        let ids: Vec<Uuid> = {
            let idx = self.lock_index();
            let Some(ri) = idx.get(&remote) else { return Ok(Vec::new()) };
            let lower = match after {
                Some(a) => Bound::Excluded(*a),
                None => Bound::Unbounded,
            };
            ri.waiting.range((lower, Bound::Unbounded)).take(limit).copied().collect()
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(e) = self.get_json(&self.outbox, &outbox_key(remote, &id), || format!("outbox entry {id}"))? {
                out.push(e);
            }
        }
        Ok(out)
    }

    fn append_audit(&self, rec: &AuditRecord) -> Result<()> {
        self.audit.insert(rec.id.as_bytes(), to_json(rec)?).map_err(io)?;
        Ok(())
    }

    fn audit_page(&self, after: Option<&Uuid>, limit: usize) -> Result<Vec<AuditRecord>> {
        let start = match after {
            Some(a) => Bound::Excluded(a.as_bytes().to_vec()),
            None => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for kv in self.audit.range::<Vec<u8>, _>((start, Bound::Unbounded)).take(limit) {
            let (_, v) = kv.map_err(io)?;
            out.push(from_json(|| "audit record".to_string(), &v)?);
        }
        Ok(out)
    }

    fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.meta.get(key.as_bytes()).map_err(io)?.map(|v| v.to_vec()))
    }

    fn meta_set(&self, key: &str, value: &[u8]) -> Result<()> {
        if key == META_FORMAT {
            return Err(StoreError::Invalid("the format version is not set through meta_set".into()));
        }
        self.meta.insert(key.as_bytes(), value).map_err(io)?;
        Ok(())
    }

    fn format_version(&self) -> u32 {
        self.format_version
    }

    fn apply_lane_messages(&self, msgs: &[(u64, crate::bus::LaneMessage)]) -> Result<crate::store::LaneApplied> {
        if let Some(e) = self.journal.failure() {
            return Err(StoreError::Fatal(e));
        }
        let mut out = crate::store::LaneApplied::default();
        // Under the commit lock, each applied message is also appended to the commit journal:
        // a refund of one of these sales, committed here, is journaled after it, so a
        // replay decides it as the live commit did.
        let mut rotated = false;
        {
            let _order = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
            for (seq, m) in msgs {
                let (applied, flagged) = self.apply_lane_message(*seq, m).map_err(|e| self.fatal_io(e))?;
                if applied {
                    out.applied += 1;
                    let rec = to_json(&LaneRecord { lane_message: m.clone(), stream_seq: *seq })?;
                    rotated |= self.append_or_die(&rec)?;
                } else {
                    out.duplicates += 1;
                }
                out.flagged += u64::from(flagged);
            }
        }
        if out.applied > 0 {
            // The group commit's fdatasync covers them (with the sales committed meanwhile).
            self.sync_appended(rotated)?;
        }
        Ok(out)
    }

    fn lane_sale(&self, id: &Uuid) -> Result<Option<Sale>> {
        match self.sale(id)? {
            Some(s) => Ok(Some(s)),
            None => Ok(self.lane_record::<LaneSaleRec>(b's', id)?.map(|r| *r.sale)),
        }
    }

    fn lane_sales_page(&self, lane: &str, after: Option<&Uuid>, limit: usize) -> Result<Vec<Sale>> {
        let start = match after {
            Some(a) => {
                let mut k = lane_index_key(lane, a);
                k.push(0);
                k
            }
            None => lane_index_key(lane, &Uuid::nil()),
        };
        let mut prefix = vec![b'l'];
        prefix.extend_from_slice(lane.as_bytes());
        prefix.push(0);
        let mut out = Vec::new();
        for kv in self.lanes.range(start..) {
            let (k, _) = kv.map_err(io)?;
            if !k.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            let Some(id) = uuid_of(&k[prefix.len()..]) else { continue };
            if let Some(r) = self.lane_record::<LaneSaleRec>(b's', &id)? {
                out.push(*r.sale);
            }
        }
        Ok(out)
    }

    fn lanes_seen(&self) -> Result<Vec<crate::store::LaneSeen>> {
        self.lane_records(b'x', "a lane seen")
    }

    fn lane_flags(&self) -> Result<Vec<crate::store::LaneFlag>> {
        self.lane_records(b'f', "a lane flag")
    }

    fn put_lane_flag(&self, flag: &crate::store::LaneFlag) -> Result<()> {
        self.lanes.insert(lane_key(b'f', flag.id.as_bytes()), to_json(flag)?).map_err(io)?;
        Ok(())
    }

    fn set_note_feed(&self, feed: Option<(Remote, String)>) {
        *self.note_feed.write().unwrap_or_else(|p| p.into_inner()) = feed;
    }

    fn queue_lane_note(&self, msg: &crate::bus::LaneMessage) -> Result<Uuid> {
        let id = new_id();
        self.lanes.insert(lane_key(b'n', id.as_bytes()), to_json(msg)?).map_err(io)?;
        self.sync()?;
        Ok(id)
    }

    fn lane_notes(&self, limit: usize) -> Result<Vec<(Uuid, crate::bus::LaneMessage)>> {
        let mut out = Vec::new();
        for kv in self.lanes.scan_prefix([b'n']).take(limit) {
            let (k, v) = kv.map_err(io)?;
            let Some(id) = uuid_of(&k[1..]) else { continue };
            out.push((id, from_json(|| format!("bus note {id}"), &v)?));
        }
        Ok(out)
    }

    fn drop_lane_notes(&self, ids: &[Uuid]) -> Result<()> {
        let mut b = sled::Batch::default();
        for id in ids {
            b.remove(lane_key(b'n', id.as_bytes()));
        }
        self.lanes.apply_batch(b).map_err(io)
    }

    fn sync(&self) -> Result<()> {
        if let Some(e) = self.journal.failure() {
            return Err(StoreError::Fatal(e));
        }
        self.checkpoint()
    }

    fn stats(&self) -> StoreStats {
        let g = self.journal.stats();
        let ck = *self.checkpoint_lock.lock().unwrap_or_else(|p| p.into_inner());
        StoreStats {
            checkpoints: ck.count,
            last_checkpoint_micros: ck.last_micros,
            items: self.item_count(),
            sales: self.sale_count.load(Ordering::Relaxed),
            syncs: g.syncs,
            commits_synced: g.tickets_synced,
            last_sync_micros: u64::try_from(g.last_sync.as_micros()).unwrap_or(u64::MAX),
            size_on_disk_bytes: self.db.size_on_disk().unwrap_or(0),
        }
    }
}
