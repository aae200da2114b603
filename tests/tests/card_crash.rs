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
//! The same run drives an Adyen terminal (`edge-lab sim terminal --protocol adyen`, HTTPS
//! on loopback, issue 18): in-doubt payments are settled by TransactionStatus naming their
//! ServiceID instead of the ZVT baseline, and charges are matched by the terminal's
//! transaction reference.
//!
//! `EDGE_PAY_CYCLES` (default 24) and `EDGE_PAY_SEED` (replay) steer it;
//! `EDGE_ADYEN_CYCLES` (default 140) steers the Adyen run, where six cycles in seven are
//! staged kills (20 at each of the six stages) and the seventh a kill at a random instant
//! (the tills get answers and make refunds in those).

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
    let dir = tempfile::tempdir().expect("tmp");
    // A card read, PIN and host round trip of 40 ms: kills land in every phase.
    let term = Terminal::start(dir.path(), 40);
    crash_run(&dir, &term, env_u64("EDGE_PAY_CYCLES", 24), false, "card crash test");
}

#[test]
fn adyen_card_payments_survive_sigkill_at_every_stage() {
    let dir = tempfile::tempdir().expect("tmp");
    let term = Terminal::start_adyen(dir.path(), 40);
    crash_run(&dir, &term, env_u64("EDGE_ADYEN_CYCLES", 140), true, "Adyen card crash test");
}

fn crash_run(dir: &tempfile::TempDir, term: &Terminal, cycles: u64, mostly_staged: bool, what: &str) {
    let seed = seed("EDGE_PAY_SEED");
    eprintln!("{what}: {cycles} cycles, EDGE_PAY_SEED={seed}");
    let args = term.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let data = dir.path().join("edged");
    let log = dir.path().join("edged.log");
    let run = CardRun::new(3, 100);
    let mut rng = Rng(seed);
    let started = Instant::now();
    for cycle in 0..cycles {
        // Even cycles: killed at a stage of a payment; odd ones: at a random instant.
        let stage = if mostly_staged {
            (cycle % 7 != 6).then(|| STAGES[(cycle - cycle / 7) as usize % STAGES.len()])
        } else {
            (cycle % 2 == 0).then(|| STAGES[(cycle / 2) as usize % STAGES.len()])
        };
        let env: Vec<(&str, &str)> = stage.map(|s| vec![("EDGED_CRASH_AT", s)]).unwrap_or_default();
        let Some(mut d) = Daemon::try_start(&data, &log, 100, &args, &env) else {
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
    let mut d = Daemon::start_env(&data, &log, 100, &args, &[]);
    let books = run.books(&mut d, Some(term), cycles);
    eprintln!("{} in {:.0} s", books.summary(what), started.elapsed().as_secs_f64());
    assert!(books.sales > 0 && books.refunds > 0, "the tills made card sales and refunds: {}", books.summary("run"));
    books.assert_clean(what);
}
