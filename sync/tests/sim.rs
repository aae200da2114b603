//! The sync engine's deterministic simulation (see `edge_sync::engine::sim`).
//!
//! `SIM_SEEDS` (default 1000; each seed runs four remotes) seeds from `SIM_SEED_BASE`
//! (default 0) run in CI, split over four tests (the seed's place in the list modulo 4) so
//! that the test runner can spread them over the cores: together they run every seed once.
//! `SIM_SEED=n` replays one seed; `scripts/sim-soak` runs many more.

use edge_sync::engine::sim::{SimParams, run};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// How many tests share the seeds.
const PARTS: usize = 4;

#[test]
fn every_acknowledged_sale_reaches_every_remote_exactly_once_part_1_of_4() {
    seeds_reach_every_remote_exactly_once(0);
}

#[test]
fn every_acknowledged_sale_reaches_every_remote_exactly_once_part_2_of_4() {
    seeds_reach_every_remote_exactly_once(1);
}

#[test]
fn every_acknowledged_sale_reaches_every_remote_exactly_once_part_3_of_4() {
    seeds_reach_every_remote_exactly_once(2);
}

#[test]
fn every_acknowledged_sale_reaches_every_remote_exactly_once_part_4_of_4() {
    seeds_reach_every_remote_exactly_once(3);
}

/// The seeds at places `part`, `part + PARTS`, … of the list: each seed in exactly one part.
fn seeds_reach_every_remote_exactly_once(part: usize) {
    let all: Vec<u64> = match env_u64("SIM_SEED") {
        Some(s) => vec![s],
        None => {
            let base = env_u64("SIM_SEED_BASE").unwrap_or(0);
            let n = env_u64("SIM_SEEDS").unwrap_or(1000);
            (base..base + n).collect()
        }
    };
    let seeds: Vec<u64> = all.into_iter().skip(part).step_by(PARTS).collect();
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
        "part {} of {PARTS}: {} seeds in {:.1} s: {sales} sales, {adjustments} adjustments, {requests} requests, {crashes} crashes, {lost} lost replies, \
         {throttled} 429s, {replayed} dead letters replayed, {pulls} stock pages pulled ({levels} levels rebased), \
         {:.1} virtual hours",
        part + 1,
        seeds.len(),
        started.elapsed().as_secs_f64(),
        virt as f64 / 3_600_000.0
    );
}

/// The store's lanes on a modelled bus (`edge_sync::engine::sim_lanes`): the real worker
/// and bus connector per lane, cuts, lane and server crashes, lost acks; every record at
/// every other lane after healing. `SIM_LANE_SEEDS` (default 40).
#[test]
fn every_record_of_a_lane_reaches_every_other_lane() {
    let n = env_u64("SIM_LANE_SEEDS").unwrap_or(40);
    let started = std::time::Instant::now();
    let mut total = edge_sync::engine::sim_lanes::LanesReport::default();
    for seed in 0..n {
        match edge_sync::engine::sim_lanes::run_lanes(seed, 3, 1200) {
            Ok(r) => {
                total.sales += r.sales;
                total.published += r.published;
                total.deduplicated += r.deduplicated;
                total.redelivered += r.redelivered;
                total.lane_crashes += r.lane_crashes;
                total.server_crashes += r.server_crashes;
                total.cuts += r.cuts;
            }
            Err(e) => panic!("lanes seed {seed}: {e}"),
        }
    }
    eprintln!(
        "lanes simulation: {n} seeds, {} sales, {} published, {} deduplicated by the stream, {} redeliveries, \
         {} lane crashes, {} server crashes, {} cuts, in {:.1} s",
        total.sales,
        total.published,
        total.deduplicated,
        total.redelivered,
        total.lane_crashes,
        total.server_crashes,
        total.cuts,
        started.elapsed().as_secs_f64()
    );
}
