//! How fast the screen answers a touch while the daemon is fine, hung (SIGSTOP, with a
//! sale waiting on it) and gone (SIGKILL). A thread outside the event loop "touches" every
//! 10 ms, as the input driver would; each touch presses "+" on a cart line, and the time
//! from the touch to the cart's new count is recorded. Prints p50 / p99 / max per phase.
//! Target: p99 ≤ 100 ms in every phase. `scripts/bench kiosk` runs it under Xvfb with the
//! software renderer, so each touch also waits for a frame to be drawn.

#[path = "../tests/support/mod.rs"]
mod support;

use edge_kiosk::{CartAdapter, Mode, Session};
use slint::ComponentHandle;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

const TOUCHES: usize = 300;

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill").args([sig, &pid.to_string()]).status().map(|s| s.success());
    assert_eq!(ok.ok(), Some(true), "kill {sig} {pid}");
}

/// Touches from another thread; returns the latencies (ms).
async fn touches(ui: &edge_kiosk::AppWindow, label: &str) -> Vec<f64> {
    let lat: Arc<Mutex<Vec<f64>>> = Arc::new(Mutex::new(Vec::with_capacity(TOUCHES)));
    let label = label.to_string();
    let l2 = lat.clone();
    let weak = ui.as_weak();
    std::thread::spawn(move || {
        for _ in 0..TOUCHES {
            std::thread::sleep(Duration::from_millis(10));
            let at = Instant::now();
            let (l3, label, weak) = (l2.clone(), label.clone(), weak.clone());
            let _ = slint::invoke_from_event_loop(move || {
                let Some(ui) = weak.upgrade() else { return };
                let c = ui.global::<CartAdapter>();
                let before = c.get_count();
                click(&ui, &label);
                // The touch is answered when the model changed and a frame was asked for.
                let after = c.get_count();
                assert_ne!(before, after, "the touch changed nothing");
                // Keep the cart small: every second touch takes one away again.
                if after > 5 {
                    c.invoke_decrease(0);
                }
                ui.window().request_redraw();
                l3.lock().unwrap_or_else(|p| p.into_inner()).push(at.elapsed().as_secs_f64() * 1000.0);
            });
        }
    });
    wait_for("the touches", 120, || lat.lock().map(|l| l.len()).unwrap_or(0) >= TOUCHES).await;
    lat.lock().map(|l| l.clone()).unwrap_or_default()
}

fn stats(name: &str, v: Vec<f64>) {
    stats_of(name, "touches", v)
}

fn stats_of(name: &str, what: &str, mut v: Vec<f64>) {
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{name:<44} {what} {:>4}  p50 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.3} ms",
        v.len(),
        q(0.5),
        q(0.99),
        v.last().copied().unwrap_or(0.0)
    );
}

fn main() {
    if std::env::var_os("SLINT_BACKEND").is_none() {
        i_slint_backend_testing::init_integration_test_with_system_time();
        println!("backend: testing (no pixels drawn); run under Xvfb with SLINT_BACKEND=winit-software to draw");
    } else {
        println!("backend: {}", std::env::var("SLINT_BACKEND").unwrap_or_default());
    }
    let mut demo = Demo::start();
    let ui = kiosk(&demo, Mode::Staff);
    let unit = demo_index(|it| it.kind == edge_sync::domain::ItemKind::Unit && !it.age_restricted);
    let name = demo_item(unit).name;
    let pid = demo.child.id();
    let ui2 = ui.clone_strong();
    run_flow(async move {
        let ui = ui2;
        staff_login(&ui, "1111").await;
        demo.scan(&demo_ean(unit));
        let c = ui.global::<CartAdapter>();
        wait_for("the item", 10, || c.get_count() == 1).await;
        let more = format!("More {name}");
        stats("daemon up", touches(&ui, &more).await);

        // Hung daemon: a search is sent and never answered.
        signal(pid, "-STOP");
        ui.global::<edge_kiosk::CatalogAdapter>().invoke_search("cheese".into());
        stats("daemon hung (SIGSTOP), a request waiting", touches(&ui, &more).await);
        signal(pid, "-CONT");

        // Gone: the screen says "reconnecting" and still answers.
        signal(pid, "-KILL");
        let s = ui.global::<Session>();
        wait_for("reconnecting", 30, || !s.get_connected()).await;
        stats("daemon gone (SIGKILL), reconnecting", touches(&ui, &more).await);
    });
    speech_latency();
}

/// Screen change → first speech sample: the speech tick's wait (at most one tick; a card
/// payment's screen is spoken at once) plus espeak-ng's start to its first sample, for the
/// words of every self-serve screen in English and German. Target ≤ 300 ms.
fn speech_latency() {
    use edge_api::locale::Lang;
    use edge_kiosk::speech::{Snapshot, TICK, first_sample_latency, utterances};
    let screens = [
        Snapshot { screen: "attract".into(), ..Snapshot::default() },
        Snapshot { screen: "shop".into(), ..Snapshot::default() },
        Snapshot {
            screen: "shop".into(),
            count: 1,
            total: "€2.57".into(),
            last_item: Some(("Light Juice".into(), "€2.57".into())),
            ..Snapshot::default()
        },
        Snapshot { screen: "pay".into(), count: 1, total: "€2.57".into(), ..Snapshot::default() },
        Snapshot { screen: "thanks".into(), ..Snapshot::default() },
    ];
    let mut v = Vec::new();
    for _ in 0..10 {
        for lang in [Lang::En, Lang::De] {
            let mut before = Snapshot::default();
            for s in &screens {
                for text in utterances(&before, s, lang) {
                    match first_sample_latency(lang, &text) {
                        Ok(d) => v.push((d + TICK).as_secs_f64() * 1000.0),
                        Err(e) => {
                            println!("speech: {e}");
                            return;
                        }
                    }
                }
                before = s.clone();
            }
        }
    }
    stats_of("screen change -> first speech sample (+50 ms tick)", "utterances", v);
}
