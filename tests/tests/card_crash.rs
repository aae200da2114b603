//! Card payments through crashes, with several tills at once (issue 20).
//!
//! The real `edged` drives `edge-lab sim terminal` (its own process, its journal on a
//! normal disk) while two or three tills post card sales and card refunds at once, each
//! with its own Idempotency-Key and retrying what it does not know — also while the first
//! attempt may still run. edged is SIGKILLed at a random instant, or at one of the six
//! stages of a card payment (`EDGED_CRASH_AT`), and restarted on the same data dir.
//!
//! Afterwards, for every attempt: exactly one sale and one unreversed charge at the
//! terminal, or no sale and no net charge; no charge settled as "no charge"; every card
//! tender carries the terminal's data (receipt number, trace, masked PAN, card name, auth
//! code), also when recovery completed the sale; nothing left open.
//!
//! `EDGE_PAY_CYCLES` (default 24) and `EDGE_PAY_SEED` (replay) steer it.

use edge_tests::support::{CardRun, Daemon, Rng, Terminal, env_u64, seed};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const STAGES: [&str; 6] = [
    "payment.intent",
    "payment.prompt",
    "payment.answered",
    "payment.approved",
    "payment.before_commit",
    "payment.after_commit",
];

#[test]
fn card_payments_from_several_tills_survive_sigkill_at_any_instant() {
    let cycles = env_u64("EDGE_PAY_CYCLES", 24);
    let seed = seed("EDGE_PAY_SEED");
    eprintln!("card crash test: {cycles} cycles, EDGE_PAY_SEED={seed}");
    let dir = tempfile::tempdir().expect("tmp");
    // A card read, PIN and host round trip of 40 ms: kills land in every phase.
    let term = Terminal::start(dir.path(), 40);
    let device = format!("terminal={}", term.uri);
    let data = dir.path().join("edged");
    let log = dir.path().join("edged.log");
    let run = CardRun::new(3, 100);
    let mut rng = Rng(seed);
    let started = Instant::now();
    for cycle in 0..cycles {
        // Even cycles: killed at a stage of a payment; odd ones: at a random instant.
        let stage = (cycle % 2 == 0).then(|| STAGES[(cycle / 2) as usize % STAGES.len()]);
        let env: Vec<(&str, &str)> = stage.map(|s| vec![("EDGED_CRASH_AT", s)]).unwrap_or_default();
        let Some(mut d) = Daemon::try_start(&data, &log, 100, &["--device", &device], &env) else {
            // Recovery reached the crash point before READY: that was this cycle's kill.
            continue;
        };
        let stop = Arc::new(AtomicBool::new(false));
        let tills = run.tills(&d, &stop, seed ^ (cycle << 8));
        let t0 = Instant::now();
        let how = match stage {
            Some(s) => {
                let deadline = Instant::now() + Duration::from_secs(20);
                while Instant::now() < deadline && d.child.try_wait().ok().flatten().is_none() {
                    std::thread::sleep(Duration::from_millis(10));
                }
                let died = d.child.try_wait().ok().flatten().is_some();
                d.kill9();
                if died { format!("killed itself at {s}") } else { format!("never reached {s}: SIGKILL") }
            }
            None => {
                std::thread::sleep(Duration::from_millis(50 + rng.below(1500)));
                d.kill9();
                "SIGKILL at a random instant".to_string()
            }
        };
        eprintln!("cycle {cycle}: {how} after {} ms", t0.elapsed().as_millis());
        stop.store(true, Ordering::SeqCst);
        for t in tills {
            t.join().expect("till");
        }
    }
    let mut d = Daemon::start_env(&data, &log, 100, &["--device", &device], &[]);
    let books = run.books(&mut d, Some(&term), cycles);
    eprintln!("{} in {:.0} s", books.summary("card crash test"), started.elapsed().as_secs_f64());
    assert!(books.sales > 0 && books.refunds > 0, "the tills made card sales and refunds: {}", books.summary("run"));
    books.assert_clean("card crash test");
}
