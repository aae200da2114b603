//! The commit journal: where a sale commit becomes durable.
//!
//! # Why a journal in front of sled
//!
//! Making sled itself durable per commit costs `Db::flush()` (sled writes its log buffers and
//! calls `sync_file_range` once per buffer — twice per transaction, measured) plus an
//! `fdatasync` of a file that keeps growing, so the file system must also commit metadata.
//! Measured on the project's machines: 0.46 ms median for a 7-tree transaction + flush +
//! fdatasync against 0.19 ms for a raw 4 KiB overwrite + fdatasync, and far worse tails.
//! A database's answer is a write-ahead journal whose files are preallocated: a commit then
//! costs one `pwrite` into blocks that already exist and one `fdatasync` that has no
//! metadata to write — the cost of the raw write it is compared against.
//!
//! # Format
//!
//! `journal/seg-<16 hex digits>.wal`, each exactly [`SEGMENT_BYTES`] long, created full of
//! zeros, `fdatasync`ed, renamed into place and its directory `fsync`ed **before** the
//! first record goes in. Records follow each other from offset 0:
//!
//! | bytes | field |
//! |---|---|
//! | 4 | payload length, little-endian, never 0 |
//! | 4 | CRC-32 (IEEE) of the sequence number's 8 bytes and the payload |
//! | 8 | sequence number, little-endian, +1 per record across segments |
//! | n | payload (a JSON commit record, see the store) |
//!
//! A zero length marks the end. Reading stops at the first record that is short, fails
//! its CRC or does not carry the next sequence number: a torn tail from a crash. Nothing after
//! it was acknowledged, because an acknowledgement waits for a sync that covers every earlier
//! record (group commit, [`super::durability`]).
//!
//! # Checkpoints
//!
//! Every record is applied to sled before it is appended (under the store's commit lock, so
//! journal order is commit order). A checkpoint flushes sled and `fdatasync`s it, then writes
//! the highest sequence number it covers to `journal/checkpoint` (temp file, fsync, rename,
//! fsync of the directory) and deletes the segments wholly below it. On open, records above
//! the checkpoint are re-applied to sled idempotently (a sale already there is skipped).
//! The store checkpoints every [`CHECKPOINT_EVERY`] records, when a segment fills, on
//! `Store::sync` and at shutdown, so replay after a crash is short.

use super::durability::{GroupCommit, GroupCommitStats};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Size of every segment file.
pub const SEGMENT_BYTES: u64 = 4 * 1024 * 1024;
/// Bytes before each payload.
pub const HEADER_BYTES: u64 = 16;
/// Largest payload a record may carry.
pub const MAX_PAYLOAD: u64 = SEGMENT_BYTES - HEADER_BYTES;
/// Records between automatic checkpoints.
pub const CHECKPOINT_EVERY: u64 = 1024;

struct Segment {
    no: u64,
    path: PathBuf,
    file: Arc<File>,
    /// Highest sequence number in it (0: none).
    last_seq: u64,
    dirty: Arc<AtomicBool>,
}

struct Inner {
    /// Oldest first; the last one takes appends once `writable` is set.
    segments: Vec<Segment>,
    /// Whether the last segment was made by this process (old ones are only read).
    writable: bool,
    offset: u64,
    next_seq: u64,
    checkpoint: u64,
}

/// What a reopened journal holds beyond its checkpoint.
#[derive(Debug, Default)]
pub struct Recovered {
    pub checkpoint: u64,
    /// (sequence number, payload), in order.
    pub records: Vec<(u64, Vec<u8>)>,
    /// Oddities found while reading (a torn tail is normal after a crash).
    pub notes: Vec<String>,
}

pub struct Journal {
    dir: PathBuf,
    inner: Mutex<Inner>,
    group: GroupCommit,
}

fn seg_name(no: u64) -> String {
    format!("seg-{no:016x}.wal")
}

fn crc(seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(payload);
    h.finalize()
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Journal {
    /// Opens `dir` (made if missing) and reads every record above the checkpoint.
    pub fn open(dir: &Path) -> std::io::Result<(Journal, Recovered)> {
        let fresh = !dir.exists();
        std::fs::create_dir_all(dir)?;
        if fresh && let Some(parent) = dir.parent() {
            fsync_dir(parent)?;
        }
        let checkpoint = match std::fs::read_to_string(dir.join("checkpoint")) {
            Ok(s) => s.trim().parse::<u64>().map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}/checkpoint is damaged: {s:?}", dir.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let mut nos: Vec<u64> = vec![];
        for e in std::fs::read_dir(dir)? {
            let name = e?.file_name().to_string_lossy().into_owned();
            if let Some(hex) = name.strip_prefix("seg-").and_then(|n| n.strip_suffix(".wal"))
                && let Ok(no) = u64::from_str_radix(hex, 16)
            {
                nos.push(no);
            } else if name.ends_with(".wal.tmp") {
                // A segment whose preallocation never finished holds no record.
                std::fs::remove_file(dir.join(&name))?;
            }
        }
        nos.sort_unstable();
        let mut rec = Recovered { checkpoint, ..Recovered::default() };
        let mut segments = vec![];
        let mut expected: Option<u64> = None;
        let mut stopped = false;
        for no in nos {
            let path = dir.join(seg_name(no));
            let file = OpenOptions::new().read(true).write(true).open(&path)?;
            let bytes = std::fs::read(&path)?;
            let mut off = 0usize;
            let mut last_seq = 0;
            while !stopped && off + HEADER_BYTES as usize <= bytes.len() {
                let h = &bytes[off..off + HEADER_BYTES as usize];
                let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
                if len == 0 {
                    break;
                }
                let sum = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
                let seq = u64::from_le_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
                let start = off + HEADER_BYTES as usize;
                let Some(payload) = bytes.get(start..start + len) else {
                    rec.notes.push(format!("{}: record at {off} is cut short (torn tail)", seg_name(no)));
                    stopped = true;
                    break;
                };
                if crc(seq, payload) != sum || expected.is_some_and(|e| e != seq) {
                    rec.notes.push(format!(
                        "{}: record at {off} (seq {seq}) is torn or out of order; reading stops",
                        seg_name(no)
                    ));
                    stopped = true;
                    break;
                }
                expected = Some(seq + 1);
                last_seq = seq;
                if seq > checkpoint {
                    rec.records.push((seq, payload.to_vec()));
                }
                off = start + len;
            }
            segments.push(Segment {
                no,
                path,
                file: Arc::new(file),
                last_seq,
                dirty: Arc::new(AtomicBool::new(false)),
            });
        }
        let next_seq = expected.unwrap_or(checkpoint + 1).max(checkpoint + 1);
        let inner = Inner { segments, writable: false, offset: 0, next_seq, checkpoint };
        Ok((Journal { dir: dir.to_path_buf(), inner: Mutex::new(inner), group: GroupCommit::new() }, rec))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes a new zero-filled segment, durable before it is used.
    fn create_segment(&self, no: u64) -> std::io::Result<Segment> {
        let path = self.dir.join(seg_name(no));
        let tmp = self.dir.join(format!("{}.tmp", seg_name(no)));
        let mut f = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&tmp)?;
        let zeros = vec![0u8; 256 * 1024];
        let mut left = SEGMENT_BYTES;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            f.write_all(&zeros[..n])?;
            left -= n as u64;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        fsync_dir(&self.dir)?;
        Ok(Segment { no, path, file: Arc::new(f), last_seq: 0, dirty: Arc::new(AtomicBool::new(false)) })
    }

    /// Appends one record (not yet durable: see [`Journal::sync`]). Returns its sequence
    /// number and whether a segment filled up (a good moment to checkpoint).
    pub fn append(&self, payload: &[u8]) -> std::io::Result<(u64, bool)> {
        let len = payload.len() as u64;
        if len == 0 || len > MAX_PAYLOAD {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("journal record of {len} bytes; 1 to {MAX_PAYLOAD} allowed"),
            ));
        }
        let mut g = self.lock();
        let mut rotated = false;
        if !g.writable || g.offset + HEADER_BYTES + len > SEGMENT_BYTES {
            let no = g.segments.last().map(|s| s.no + 1).unwrap_or(1);
            let seg = self.create_segment(no)?;
            rotated = g.writable;
            g.segments.push(seg);
            g.writable = true;
            g.offset = 0;
        }
        let seq = g.next_seq;
        let mut buf = Vec::with_capacity((HEADER_BYTES + len) as usize);
        buf.extend_from_slice(&(len as u32).to_le_bytes());
        buf.extend_from_slice(&crc(seq, payload).to_le_bytes());
        buf.extend_from_slice(&seq.to_le_bytes());
        buf.extend_from_slice(payload);
        let off = g.offset;
        let seg = g.segments.last_mut().ok_or_else(|| std::io::Error::other("journal has no segment"))?;
        seg.file.write_all_at(&buf, off)?;
        seg.dirty.store(true, Ordering::SeqCst);
        seg.last_seq = seq;
        g.offset += buf.len() as u64;
        g.next_seq += 1;
        Ok((seq, rotated))
    }

    /// Waits until every record appended before this call is on disk (group commit).
    pub fn sync(&self) -> Result<(), String> {
        self.group.wait_durable(|| {
            let dirty: Vec<(Arc<File>, Arc<AtomicBool>)> = {
                let g = self.lock();
                g.segments
                    .iter()
                    .filter(|s| s.dirty.load(Ordering::SeqCst))
                    .map(|s| (s.file.clone(), s.dirty.clone()))
                    .collect()
            };
            for (f, d) in dirty {
                // Cleared before syncing: an append during the sync sets it again.
                d.store(false, Ordering::SeqCst);
                f.sync_data()?;
            }
            Ok(())
        })
    }

    /// The highest sequence number appended so far (0: none).
    pub fn last_seq(&self) -> u64 {
        self.lock().next_seq - 1
    }

    pub fn checkpoint(&self) -> u64 {
        self.lock().checkpoint
    }

    pub fn records_since_checkpoint(&self) -> u64 {
        let g = self.lock();
        (g.next_seq - 1).saturating_sub(g.checkpoint)
    }

    /// Records that everything up to `seq` is durable elsewhere, and deletes the segments
    /// that hold nothing newer. The caller made sure of the "durable elsewhere" part.
    pub fn set_checkpoint(&self, seq: u64) -> std::io::Result<()> {
        let tmp = self.dir.join("checkpoint.tmp");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(format!("{seq}\n").as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, self.dir.join("checkpoint"))?;
        fsync_dir(&self.dir)?;
        let mut g = self.lock();
        g.checkpoint = g.checkpoint.max(seq);
        let n = g.segments.len();
        let writable = g.writable;
        let mut removed = false;
        let mut keep = Vec::with_capacity(n);
        for (i, s) in std::mem::take(&mut g.segments).into_iter().enumerate() {
            let current = writable && i + 1 == n;
            if !current && s.last_seq <= seq && !s.dirty.load(Ordering::SeqCst) {
                std::fs::remove_file(&s.path)?;
                removed = true;
            } else {
                keep.push(s);
            }
        }
        g.segments = keep;
        drop(g);
        if removed {
            fsync_dir(&self.dir)?;
        }
        Ok(())
    }

    pub fn stats(&self) -> GroupCommitStats {
        self.group.stats()
    }

    pub fn failure(&self) -> Option<String> {
        self.group.failure()
    }

    /// Segment files present (for tests and the field tech).
    pub fn segment_count(&self) -> usize {
        self.lock().segments.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_in_order_above_the_checkpoint() {
        let dir = tempfile::tempdir().expect("tmp");
        {
            let (j, rec) = Journal::open(dir.path()).expect("open");
            assert!(rec.records.is_empty());
            for i in 0..10u8 {
                j.append(&[i; 100]).expect("append");
            }
            j.sync().expect("sync");
            j.set_checkpoint(4).expect("checkpoint");
        }
        let (j, rec) = Journal::open(dir.path()).expect("reopen");
        assert_eq!(rec.checkpoint, 4);
        let seqs: Vec<u64> = rec.records.iter().map(|r| r.0).collect();
        assert_eq!(seqs, vec![5, 6, 7, 8, 9, 10]);
        assert_eq!(rec.records[0].1, vec![4u8; 100]);
        // New records continue the sequence in a new segment.
        let (seq, _) = j.append(b"next").expect("append");
        assert_eq!(seq, 11);
        assert_eq!(j.segment_count(), 2);
    }

    #[test]
    fn a_torn_tail_ends_the_journal_where_the_damage_starts() {
        let dir = tempfile::tempdir().expect("tmp");
        {
            let (j, _) = Journal::open(dir.path()).expect("open");
            for i in 0..5u8 {
                j.append(&[i; 1000]).expect("append");
            }
            j.sync().expect("sync");
        }
        // Damage the third record's payload.
        let seg = dir.path().join(seg_name(1));
        let f = OpenOptions::new().write(true).open(&seg).expect("seg");
        let third = 2 * (HEADER_BYTES + 1000) + HEADER_BYTES + 10;
        f.write_all_at(&[0xff, 0xee], third).expect("damage");
        let (_, rec) = Journal::open(dir.path()).expect("reopen");
        assert_eq!(rec.records.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(rec.notes.len(), 1, "{:?}", rec.notes);
    }

    #[test]
    fn segments_fill_rotate_and_are_deleted_after_a_checkpoint() {
        let dir = tempfile::tempdir().expect("tmp");
        let (j, _) = Journal::open(dir.path()).expect("open");
        let big = vec![7u8; 1024 * 1024];
        let mut rotations = 0;
        for _ in 0..9 {
            let (_, rotated) = j.append(&big).expect("append");
            rotations += rotated as u32;
        }
        assert!(rotations >= 2, "{rotations}");
        j.sync().expect("sync");
        let before = j.segment_count();
        j.set_checkpoint(j.last_seq()).expect("checkpoint");
        assert!(j.segment_count() < before);
        assert_eq!(j.segment_count(), 1, "only the current segment stays");
        for e in std::fs::read_dir(dir.path()).expect("ls") {
            let name = e.expect("e").file_name().to_string_lossy().into_owned();
            if name.ends_with(".wal") {
                assert_eq!(std::fs::metadata(dir.path().join(&name)).expect("meta").len(), SEGMENT_BYTES);
            }
        }
        let e = j.append(&vec![0u8; (MAX_PAYLOAD + 1) as usize]).expect_err("too big");
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    }
}
