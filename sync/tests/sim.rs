//! The sync engine's deterministic simulation (see `edge_sync::engine::sim`).
//!
//! `SIM_SEEDS` (default 1000; each seed runs three remotes) seeds from `SIM_SEED_BASE`
//! (default 0) run in CI;
//! `SIM_SEED=n` replays one seed; `scripts/sim-soak` runs many more.

use edge_sync::engine::sim::{SimParams, run};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[test]
fn every_acknowledged_sale_reaches_every_remote_exactly_once() {
    let seeds: Vec<u64> = match env_u64("SIM_SEED") {
        Some(s) => vec![s],
        None => {
            let base = env_u64("SIM_SEED_BASE").unwrap_or(0);
            let n = env_u64("SIM_SEEDS").unwrap_or(1000);
            (base..base + n).collect()
        }
    };
    let started = std::time::Instant::now();
    let (mut pulls, mut levels) = (0u64, 0u64);
    let (mut sales, mut adjustments, mut crashes, mut lost, mut throttled, mut requests, mut replayed, mut virt) =
        (0usize, 0usize, 0u32, 0u64, 0u64, 0u64, 0usize, 0i64);
    for seed in &seeds {
        match run(&SimParams::new(*seed)) {
            Ok(r) => {
                sales += r.sales;
                adjustments += r.adjustments;
                crashes += r.crashes;
                lost += r.lost_replies;
                throttled += r.throttled;
                requests += r.requests;
                replayed += r.dead_replayed;
                virt += r.virtual_ms;
                pulls += r.pulls;
                levels += r.stock_levels;
            }
            Err(f) => panic!("{f}"),
        }
    }
    println!(
        "{} seeds in {:.1} s: {sales} sales, {adjustments} adjustments, {requests} requests, {crashes} crashes, {lost} lost replies, \
         {throttled} 429s, {replayed} dead letters replayed, {pulls} stock pages pulled ({levels} levels rebased), \
         {:.1} virtual hours",
        seeds.len(),
        started.elapsed().as_secs_f64(),
        virt as f64 / 3_600_000.0
    );
}
