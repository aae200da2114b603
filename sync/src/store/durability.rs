//! Group commit: many writers, one flush-and-sync.
//!
//! A writer first applies its (atomic) write to the engine, then calls
//! [`GroupCommit::wait_durable`]. That takes a ticket — a number larger than every ticket of
//! a write that finished before — and waits until a sync has covered it. The first waiter that
//! finds no sync running becomes the leader: it reads the highest ticket handed out so far,
//! runs one flush + fdatasync, and marks every ticket up to that number durable. Writers that
//! arrive while a sync runs wait for the next one, which the first of them leads. So under
//! load one sync covers many commits, and a lone writer pays for exactly one sync.
//!
//! Correctness: a ticket is taken only after the write returned, and the leader reads the
//! highest ticket before starting the flush, so every write with a ticket ≤ that number
//! happened before the flush began and is covered by it.
//!
//! A failed sync is sticky: the store may hold writes that are not on disk and never will be,
//! so every waiter (now and later) gets the error, and the fatal hook runs once. The daemon
//! exits and recovers from what is on disk.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
struct State {
    issued: u64,
    durable: u64,
    syncing: bool,
    failed: Option<String>,
    syncs: u64,
    tickets_synced: u64,
    last_sync: Duration,
}

/// Figures for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Syncs run.
    pub syncs: u64,
    /// Durable waits covered by those syncs.
    pub tickets_synced: u64,
    /// Wall time of the last sync.
    pub last_sync: Duration,
}

/// Shares one sync among concurrent writers.
#[derive(Debug, Default)]
pub struct GroupCommit {
    state: Mutex<State>,
    done: Condvar,
}

impl GroupCommit {
    pub fn new() -> GroupCommit {
        GroupCommit::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the counters half-updated in a way
        // that would make a write look durable: `durable` only moves after a sync returned Ok.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until every write that returned before this call is durable.
    /// `sync` runs at most once per group, on the thread that leads it.
    pub fn wait_durable<F>(&self, sync: F) -> Result<(), String>
    where
        F: Fn() -> std::io::Result<()>,
    {
        let mut st = self.lock();
        if let Some(e) = &st.failed {
            return Err(e.clone());
        }
        st.issued += 1;
        let ticket = st.issued;
        loop {
            if let Some(e) = &st.failed {
                return Err(e.clone());
            }
            if st.durable >= ticket {
                return Ok(());
            }
            if !st.syncing {
                st.syncing = true;
                let target = st.issued;
                let covered = target - st.durable;
                drop(st);
                let started = Instant::now();
                let res = sync();
                let took = started.elapsed();
                st = self.lock();
                st.syncing = false;
                match res {
                    Ok(()) => {
                        st.durable = target;
                        st.syncs += 1;
                        st.tickets_synced += covered;
                        st.last_sync = took;
                    }
                    Err(e) => {
                        st.failed = Some(format!("store sync failed: {e}"));
                    }
                }
                self.done.notify_all();
                continue;
            }
            st = self.done.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The sticky failure, if a sync ever failed.
    pub fn failure(&self) -> Option<String> {
        self.lock().failed.clone()
    }

    pub fn stats(&self) -> GroupCommitStats {
        let st = self.lock();
        GroupCommitStats { syncs: st.syncs, tickets_synced: st.tickets_synced, last_sync: st.last_sync }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn a_lone_writer_pays_for_one_sync_per_commit() {
        let gc = GroupCommit::new();
        let n = AtomicU64::new(0);
        for _ in 0..5 {
            gc.wait_durable(|| {
                n.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
            .expect("sync");
        }
        assert_eq!(n.load(Ordering::SeqCst), 5);
        assert_eq!(gc.stats().syncs, 5);
    }

    #[test]
    fn concurrent_writers_share_syncs_and_each_write_precedes_its_sync() {
        let gc = Arc::new(GroupCommit::new());
        // `written` counts writes done; each sync records how many it saw; each writer checks
        // that the sync that released it saw its write.
        let written = Arc::new(AtomicU64::new(0));
        let synced_upto = Arc::new(AtomicU64::new(0));
        let mut hs = vec![];
        for _ in 0..16 {
            let (gc, written, synced_upto) = (gc.clone(), written.clone(), synced_upto.clone());
            hs.push(std::thread::spawn(move || {
                for _ in 0..50 {
                    let mine = written.fetch_add(1, Ordering::SeqCst) + 1;
                    gc.wait_durable(|| {
                        let seen = written.load(Ordering::SeqCst);
                        std::thread::sleep(Duration::from_micros(300));
                        synced_upto.fetch_max(seen, Ordering::SeqCst);
                        Ok(())
                    })
                    .expect("sync");
                    assert!(synced_upto.load(Ordering::SeqCst) >= mine);
                }
            }));
        }
        for h in hs {
            h.join().expect("writer");
        }
        let st = gc.stats();
        assert_eq!(st.tickets_synced, 800);
        assert!(st.syncs < 800, "syncs were not shared: {}", st.syncs);
    }

    #[test]
    fn a_failed_sync_fails_every_waiter_from_then_on() {
        let gc = GroupCommit::new();
        let e = gc.wait_durable(|| Err(std::io::Error::other("disk gone")));
        assert!(e.expect_err("must fail").contains("disk gone"));
        // Even a sync that would now succeed is not attempted: earlier writes may be lost.
        let e = gc.wait_durable(|| Ok(()));
        assert!(e.is_err());
        assert!(gc.failure().is_some());
    }
}
