//! Power cuts (issue 20): edged's data dir on the power-cut layer (`powercut-fs`, see
//! `edge_tests::powercut`), which drops every byte not fsynced when the power goes.
//!
//! - The layer itself: synced data kept, unsynced data dropped, creations and renames kept.
//! - Cash sales from four tills through `EDGE_CUTS` cuts (default 20): every acknowledged
//!   sale is there after each cut, unchanged, once.
//! - Card sales and card refunds from two tills, the terminal simulator out of process with
//!   its journal on a normal disk (a terminal keeps its power): the books as in
//!   card_crash.rs — one sale and one unreversed charge per attempt, or neither.
//!
//! A cut: SIGKILL of edged, then the layer drops what edged wrote and did not fsync, then
//! edged starts again on the same dir. `scripts/power-soak` runs 1,000 cuts of each.
//! Needs /dev/fuse and root (or fusermount3).

use edge_tests::support::{CardRun, Daemon, Layer, Rng, Terminal, env_u64, seed};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn read(p: &Path) -> Vec<u8> {
    let mut v = Vec::new();
    std::fs::File::open(p).expect("open").read_to_end(&mut v).expect("read");
    v
}

#[test]
fn the_layer_keeps_synced_data_and_drops_the_rest() {
    let dir = tempfile::tempdir().expect("tmp");
    let backing = dir.path().join("disk");
    let mount = dir.path().join("mnt");
    let mut layer = Layer::mount(&backing, &mount);
    let m = |n: &str| mount.join(n);
    // Written and fsynced.
    let mut a = std::fs::File::create(m("synced")).expect("create");
    a.write_all(b"kept").expect("write");
    a.sync_all().expect("fsync");
    // Then appended without a sync.
    a.write_all(b" and lost").expect("write");
    drop(a);
    // Written, never synced.
    std::fs::write(m("unsynced"), b"lost").expect("write");
    // fdatasync counts as a sync too.
    let d = std::fs::File::create(m("datasynced")).expect("create");
    (&d).write_all(b"kept too").expect("write");
    d.sync_data().expect("fdatasync");
    // A synced file replaced by an unsynced one through a rename: renamed, but empty.
    std::fs::write(m("old"), b"old content").expect("write");
    std::fs::File::open(m("old")).expect("open").sync_all().expect("fsync");
    std::fs::write(m("new.tmp"), b"new content").expect("write");
    std::fs::rename(m("new.tmp"), m("old")).expect("rename");
    // A truncate is data too.
    std::fs::write(m("truncated"), b"0123456789").expect("write");
    std::fs::File::open(m("truncated")).expect("open").sync_all().expect("fsync");
    std::fs::OpenOptions::new().write(true).open(m("truncated")).expect("open").set_len(3).expect("truncate");
    std::fs::create_dir(m("dir")).expect("mkdir");
    // Before the cut, readers see everything written.
    assert_eq!(read(&m("synced")), b"kept and lost");
    assert_eq!(read(&m("unsynced")), b"lost");
    assert_eq!(read(&m("truncated")), b"012");
    assert_eq!(read(&backing.join("synced")), b"kept", "unsynced data is not on the disk yet");

    let (files, bytes) = layer.cut();
    assert!(files >= 4 && bytes >= (" and lost".len() + "lost".len() + "new content".len()) as u64, "{files} {bytes}");
    assert_eq!(read(&m("synced")), b"kept", "the synced part stays, the appended part is gone");
    assert_eq!(read(&m("unsynced")), b"", "created, never synced: there, empty");
    assert_eq!(read(&m("datasynced")), b"kept too");
    assert_eq!(read(&m("old")), b"", "renamed over the old file, its own data never synced");
    assert!(!m("new.tmp").exists(), "the rename reached the disk");
    assert_eq!(read(&m("truncated")), b"0123456789", "the truncate was never synced");
    assert!(m("dir").is_dir(), "directories reach the disk at once");
    // The backing disk holds exactly that.
    assert_eq!(read(&backing.join("synced")), b"kept");
    assert_eq!(read(&backing.join("old")), b"");
    // Writes after the cut work as before.
    let mut f = std::fs::OpenOptions::new().append(true).open(m("synced")).expect("open");
    f.write_all(b"!").expect("append");
    f.sync_all().expect("fsync");
    assert_eq!(read(&backing.join("synced")), b"kept!");
}

/// The data dir on the layer (edged's log and the test's notes on the normal disk).
struct Rig {
    _dir: tempfile::TempDir,
    layer: Layer,
    data: std::path::PathBuf,
    log: std::path::PathBuf,
    root: std::path::PathBuf,
}

impl Rig {
    fn new() -> Rig {
        assert!(Path::new("/dev/fuse").exists(), "the power-cut tests need /dev/fuse");
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path().to_path_buf();
        let layer = Layer::mount(&root.join("disk"), &root.join("mnt"));
        let data = root.join("mnt").join("edged");
        Rig { log: root.join("edged.log"), data, layer, root, _dir: dir }
    }
}

/// Cycles of: start edged, tills sell, SIGKILL at a random instant, cut the power.
fn cut_cycles(rig: &mut Rig, run: &CardRun, extra: &[&str], cuts: u64, seed: u64) {
    let mut rng = Rng(seed);
    let mut dropped = (0u64, 0u64);
    for cycle in 0..cuts {
        let mut d = Daemon::start_env(&rig.data, &rig.log, 100, extra, &[]);
        let stop = Arc::new(AtomicBool::new(false));
        let tills = run.tills(&d, &stop, seed ^ (cycle << 8));
        std::thread::sleep(Duration::from_millis(100 + rng.below(1500)));
        d.kill9();
        let (f, b) = rig.layer.cut();
        dropped = (dropped.0 + f, dropped.1 + b);
        stop.store(true, Ordering::SeqCst);
        for t in tills {
            t.join().expect("till");
        }
    }
    eprintln!("{cuts} cuts dropped {} unsynced files, {} bytes in all", dropped.0, dropped.1);
}

#[test]
fn cash_sales_survive_power_cuts() {
    let cuts = env_u64("EDGE_CUTS", 20);
    let seed = seed("EDGE_CUT_SEED");
    eprintln!("cash power-cut test: {cuts} cuts, EDGE_CUT_SEED={seed}");
    let mut rig = Rig::new();
    let run = CardRun::cash(4, 100);
    let started = Instant::now();
    cut_cycles(&mut rig, &run, &[], cuts, seed);
    let mut d = Daemon::start_env(&rig.data, &rig.log, 100, &[], &[]);
    let books = run.books(&mut d, None, cuts);
    eprintln!("{} in {:.0} s", books.summary("cash power-cut test"), started.elapsed().as_secs_f64());
    assert!(books.acked > 0, "sales were acknowledged: {}", books.summary("run"));
    assert_eq!(books.stored, books.attempts, "every attempt ends as exactly one sale");
    books.assert_clean("cash power-cut test");
    let _ = &rig.root;
}

#[test]
fn card_sales_survive_power_cuts() {
    let cuts = env_u64("EDGE_CUTS", 20);
    let seed = seed("EDGE_CUT_SEED");
    eprintln!("card power-cut test: {cuts} cuts, EDGE_CUT_SEED={seed}");
    let mut rig = Rig::new();
    // The terminal keeps its power: its journal is on the normal disk.
    let term = Terminal::start(&rig.root, 40);
    let device = format!("terminal={}", term.uri);
    let run = CardRun::new(2, 100);
    let started = Instant::now();
    cut_cycles(&mut rig, &run, &["--device", &device], cuts, seed);
    let mut d = Daemon::start_env(&rig.data, &rig.log, 100, &["--device", &device], &[]);
    let books = run.books(&mut d, Some(&term), cuts);
    eprintln!("{} in {:.0} s", books.summary("card power-cut test"), started.elapsed().as_secs_f64());
    assert!(books.sales > 0, "card sales were made: {}", books.summary("run"));
    books.assert_clean("card power-cut test");
}
