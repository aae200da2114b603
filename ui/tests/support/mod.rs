#![allow(dead_code)]
//! For the kiosk's tests and its screenshot run: a real `edged demo` (the binary built
//! beside this one), a pty for a scanner the test types into, and helpers that drive the
//! screens from a future on Slint's event loop (find by accessible label, click, wait).

use edge_api::TokensFile;
use edge_kiosk::Screen;
use i_slint_backend_testing::{ElementHandle, ElementRoot};
use serialport::SerialPort;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `edged` beside this test or example (target/debug/edged).
pub fn edged_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("EDGED_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") || dir.ends_with("examples") {
        dir.pop();
    }
    let p = dir.join("edged");
    assert!(p.exists(), "{} is missing: build it first (cargo build -p edge)", p.display());
    p
}

pub struct Demo {
    pub child: Child,
    pub url: String,
    pub dir: tempfile::TempDir,
    pub tokens: TokensFile,
    /// The test's end of the scanner's pty (write a code and a CR to scan it).
    pub scanner: serialport::TTYPort,
    _scanner_dev: serialport::TTYPort,
}

impl Demo {
    /// `edged demo` with a small catalog, its scanner on a pty this test holds.
    pub fn start() -> Demo {
        let dir = tempfile::Builder::new().prefix("kiosk-test-").tempdir().expect("tempdir");
        let (scanner, dev) = serialport::TTYPort::pair().expect("pty pair");
        let dev_path = dev.name().expect("pty name");
        let log = std::fs::File::create(dir.path().join("edged.log")).expect("log");
        let mut child = Command::new(edged_bin())
            .args(["demo", "--no-ui", "--listen", "127.0.0.1:0", "--catalog-size", "300", "--data-dir"])
            .arg(dir.path())
            .arg("--device")
            .arg(format!("scanner=serial://{dev_path}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn edged");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("READY ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let Ok(url) = rx.recv_timeout(Duration::from_secs(90)) else {
            let _ = child.kill();
            let log = std::fs::read_to_string(dir.path().join("edged.log")).unwrap_or_default();
            panic!("edged demo did not get ready; its log:\n{log}");
        };
        let tokens: TokensFile =
            serde_json::from_slice(&std::fs::read(dir.path().join("tokens.json")).expect("tokens.json"))
                .expect("tokens");
        Demo { child, url, dir, tokens, scanner, _scanner_dev: dev }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Scans a code at the store's scanner.
    pub fn scan(&mut self, code: &str) {
        self.scanner.write_all(format!("{code}\r").as_bytes()).expect("scan");
        self.scanner.flush().expect("flush");
    }

    /// A URL of the demo's own fakes (from its config.toml): `cloud`, `lightspeed`, `netsuite`.
    pub fn fake_url(&self, remote: &str) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("config.toml")).expect("config");
        let t: toml::Table = text.parse().expect("demo config is TOML");
        t.get("remotes")
            .and_then(|r| r.get(remote))
            .and_then(|r| r.get("url"))
            .and_then(|u| u.as_str())
            .unwrap_or_else(|| panic!("no url for {remote}"))
            .to_string()
    }

    /// Logs the demo's events of the moment, for a failing test.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("edged.log")).unwrap_or_default()
    }

    pub fn get(&self, path: &str, token: &str) -> serde_json::Value {
        reqwest::blocking::Client::new()
            .get(format!("{}{path}", self.url))
            .bearer_auth(token)
            .send()
            .expect("GET")
            .json()
            .expect("json")
    }

    pub fn post(&self, url: &str, body: &serde_json::Value) -> u16 {
        reqwest::blocking::Client::new().post(url).json(body).send().map(|r| r.status().as_u16()).unwrap_or(0)
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The demo's item `i` and its barcode (the catalog is deterministic).
#[allow(unused_imports)]
pub use edge_sync::demo::{demo_ean, demo_item};

/// Sleeps on Slint's event loop (the UI keeps running).
pub async fn sleep(d: Duration) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    slint::Timer::single_shot(d, move || {
        let _ = tx.send(());
    });
    let _ = rx.await;
}

/// Waits until `cond` holds, or panics naming `what`.
pub async fn wait_for(what: &str, secs: u64, cond: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < until, "timed out after {secs} s waiting for: {what}");
        sleep(Duration::from_millis(50)).await;
    }
}

/// Elements with this accessible label that are shown.
pub fn find(ui: &impl ElementRoot, label: &str) -> Vec<ElementHandle> {
    ui.root_element()
        .query_descendants()
        .match_predicate({
            let label = label.to_string();
            move |e| e.accessible_label().is_some_and(|l| l == label.as_str()) && e.is_valid()
        })
        .find_all()
}

pub fn exists(ui: &impl ElementRoot, label: &str) -> bool {
    !find(ui, label).is_empty()
}

/// Clicks the (first) button with this accessible label.
pub fn click(ui: &impl ElementRoot, label: &str) {
    let all: Vec<ElementHandle> = find(ui, label)
        .into_iter()
        .filter(|e| e.accessible_role() == Some(i_slint_backend_testing::AccessibleRole::Button))
        .collect();
    let Some(e) = all.first() else { panic!("nothing labelled {label:?} on the screen") };
    assert_ne!(e.accessible_enabled(), Some(false), "{label:?} is disabled");
    e.invoke_accessible_default_action();
}

/// Types a PIN on the PIN pad shown and presses its OK button (`ok`).
pub fn enter_pin(ui: &impl ElementRoot, pin: &str, ok: &str) {
    for d in pin.chars() {
        click(ui, &d.to_string());
    }
    click(ui, ok);
}

/// The first of `labels` that is on the screen (e.g. the English and German words).
pub fn first_label(ui: &impl ElementRoot, labels: &[&str]) -> String {
    labels.iter().find(|l| exists(ui, l)).map(|l| l.to_string()).unwrap_or_else(|| labels[0].to_string())
}

/// Texts on the screen that do not fit their space (the Label and Para widgets say so).
pub fn cut_off(ui: &impl ElementRoot) -> Vec<String> {
    ui.root_element()
        .query_descendants()
        .match_predicate(|e| e.accessible_description().is_some_and(|d| d == "cut-off"))
        .find_all()
        .iter()
        .map(|e| e.accessible_label().map(|s| s.to_string()).unwrap_or_default())
        .collect()
}

/// Starts a kiosk screen on the testing backend against `demo`.
pub fn kiosk(demo: &Demo, mode: edge_kiosk::Mode) -> edge_kiosk::AppWindow {
    use slint::ComponentHandle;
    let ui = edge_kiosk::start(edge_kiosk::Options {
        endpoint: edge_kiosk::api::Endpoint::DataDir {
            dir: demo.data_dir(),
            kiosk_token: mode == edge_kiosk::Mode::SelfServe,
        },
        mode,
        screen_name: "kiosk-1".into(),
        language: "en".into(),
        high_contrast: false,
        font_scale: 1.0,
        idle_timeout: Duration::from_secs(90),
        speech_aloud: false,
    })
    .expect("kiosk starts");
    ui.show().expect("show");
    ui
}

/// Runs `flow` on the event loop to its end (a panic in it fails the test).
pub fn run_flow(flow: impl std::future::Future<Output = ()> + 'static) {
    let finished = std::rc::Rc::new(std::cell::Cell::new(false));
    let fin = finished.clone();
    slint::spawn_local(async move {
        flow.await;
        fin.set(true);
        let _ = slint::quit_event_loop();
    })
    .expect("spawn the flow");
    slint::run_event_loop().expect("event loop");
    assert!(finished.get(), "the flow did not run to its end");
}

/// The first demo item matching `f` (by index).
pub fn demo_index(f: impl Fn(&edge_sync::domain::Item) -> bool) -> u64 {
    (0..300).find(|i| f(&demo_item(*i))).expect("a demo item of that kind")
}

/// Logs in at the staff screen with `pin` and waits for the event stream.
pub async fn staff_login(ui: &edge_kiosk::AppWindow, pin: &str) {
    use slint::ComponentHandle;
    let s = ui.global::<edge_kiosk::Session>();
    wait_for("the daemon is reachable", 60, || s.get_connected()).await;
    enter_pin(ui, pin, &first_label(ui, &["Log in", "Anmelden"]));
    wait_for("the register", 10, || s.get_screen() == Screen::Register).await;
    wait_for("the event stream", 10, || s.get_live()).await;
}

/// Buttons on the screen smaller than a 48 × 48 px touch target (label and size).
pub fn small_buttons(ui: &impl ElementRoot) -> Vec<String> {
    ui.root_element()
        .query_descendants()
        .match_accessible_role(i_slint_backend_testing::AccessibleRole::Button)
        .find_all()
        .iter()
        .filter(|e| e.is_valid() && e.computed_opacity() > 0.0)
        .filter(|e| {
            let s = e.size();
            s.width < 48.0 || s.height < 48.0
        })
        .map(|e| format!("{:?} {}x{}", e.accessible_label().unwrap_or_default(), e.size().width, e.size().height))
        .collect()
}

/// Where an element is: x, y, width, height (logical px).
fn rect(e: &ElementHandle) -> (f32, f32, f32, f32) {
    let (p, s) = (e.absolute_position(), e.size());
    (p.x, p.y, s.width, s.height)
}

fn key(e: &ElementHandle) -> (i64, i64, i64, i64, String) {
    let (x, y, w, h) = rect(e);
    let r = |v: f32| (v * 4.0).round() as i64;
    (r(x), r(y), r(w), r(h), e.accessible_label().map(|l| l.to_string()).unwrap_or_default())
}

fn inherits(e: &ElementHandle, name: &str) -> bool {
    e.type_name().is_some_and(|t| t == name) || e.bases().is_some_and(|mut b| b.any(|x| x == name))
}

fn controls_in(e: &ElementHandle) -> Vec<ElementHandle> {
    use i_slint_backend_testing::AccessibleRole;
    e.query_descendants()
        .match_predicate(|c| {
            matches!(c.accessible_role(), Some(AccessibleRole::Button | AccessibleRole::Text))
                && c.is_valid()
                && c.computed_opacity() > 0.0
                && c.size().width > 0.0
                && c.size().height > 0.0
        })
        .find_all()
}

/// The screen's geometry, checked as a person would see it (WCAG 1.4.4/1.4.10 in spirit):
/// every control and text inside the window; inside its panel or dialog; no two buttons of
/// the same layer overlapping (a dialog's buttons are one layer, the screen's under its veil
/// another). Content of a scrolling list is exempt from the containment checks (it is
/// clipped by its list and reached by scrolling) but its list is not.
pub fn geometry_violations(ui: &impl ElementRoot) -> Vec<String> {
    let root = ui.root_element();
    let win = root.size();
    let eps = 1.0;
    let inside = |inner: (f32, f32, f32, f32), outer: (f32, f32, f32, f32)| {
        inner.0 >= outer.0 - eps
            && inner.1 >= outer.1 - eps
            && inner.0 + inner.2 <= outer.0 + outer.2 + eps
            && inner.1 + inner.3 <= outer.1 + outer.3 + eps
    };
    let name = |e: &ElementHandle| {
        format!(
            "{} {:?} at {:?}",
            e.type_name().map(|t| t.to_string()).unwrap_or_default(),
            e.accessible_label().map(|l| l.to_string()).unwrap_or_default(),
            rect(e)
        )
    };
    let scrollers: Vec<ElementHandle> = root
        .query_descendants()
        .match_predicate(|e| inherits(e, "Flickable") || inherits(e, "ListView") || inherits(e, "ScrollView"))
        .find_all();
    let scrolled: std::collections::HashSet<_> = scrollers.iter().flat_map(controls_in).map(|e| key(&e)).collect();
    let all: Vec<ElementHandle> = controls_in(&root);
    let fixed: Vec<&ElementHandle> = all.iter().filter(|e| !scrolled.contains(&key(e))).collect();
    let mut out = Vec::new();
    for e in &fixed {
        if !inside(rect(e), (0.0, 0.0, win.width, win.height)) {
            out.push(format!("{} is outside the window {}x{}", name(e), win.width, win.height));
        }
    }
    // A list inside a scrolling screen is reached by scrolling that screen: only the
    // outermost scrollers must lie inside the window.
    let nested: std::collections::HashSet<_> = scrollers
        .iter()
        .flat_map(|s| {
            // (A ListView's own Flickable has the ListView's place: it is not nested.)
            let own = key(s);
            s.query_descendants()
                .match_predicate(|e| inherits(e, "Flickable") || inherits(e, "ListView") || inherits(e, "ScrollView"))
                .find_all()
                .into_iter()
                .map(|e| key(&e))
                .filter(move |k| *k != own)
        })
        .collect();
    for s in scrollers.iter().filter(|s| !nested.contains(&key(s))) {
        if !inside(rect(s), (0.0, 0.0, win.width, win.height)) {
            out.push(format!("the list {} is outside the window", name(s)));
        }
    }
    // Inside their panel (dialogs' panels included).
    let panels: Vec<ElementHandle> = root.query_descendants().match_predicate(|e| inherits(e, "Panel")).find_all();
    for p in &panels {
        for e in controls_in(p).iter().filter(|e| !scrolled.contains(&key(e))) {
            if !inside(rect(e), rect(p)) {
                out.push(format!("{} is outside its panel {}", name(e), name(p)));
            }
        }
    }
    // No overlapping buttons within a layer: the top dialog's, or the screen's.
    let modals: Vec<ElementHandle> = root.query_descendants().match_predicate(|e| inherits(e, "Modal")).find_all();
    let layer: Vec<ElementHandle> = match modals.last() {
        Some(m) => controls_in(m),
        None => all.clone(),
    };
    let buttons: Vec<&ElementHandle> = layer
        .iter()
        .filter(|e| e.accessible_role() == Some(i_slint_backend_testing::AccessibleRole::Button))
        .filter(|e| !scrolled.contains(&key(e)))
        .collect();
    for (i, a) in buttons.iter().enumerate() {
        for b in &buttons[i + 1..] {
            let (ra, rb) = (rect(a), rect(b));
            let w = (ra.0 + ra.2).min(rb.0 + rb.2) - ra.0.max(rb.0);
            let h = (ra.1 + ra.3).min(rb.1 + rb.3) - ra.1.max(rb.1);
            // A button inside another (a touch area over a labelled button) is one control.
            if w > eps && h > eps && !inside(ra, rb) && !inside(rb, ra) {
                out.push(format!("{} overlaps {}", name(a), name(b)));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}
