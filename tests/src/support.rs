//! The harness of the end-to-end tiers: the real binaries (`edged`, `edge-lab`,
//! `powercut-fs`) as child processes, found beside the test binary (target/debug), or in
//! `EDGE_BIN_DIR` when set; `EDGED_BIN` names another build of edged alone (e.g. to show a
//! test failing on an earlier commit).
//!
//! [`CardRun`] is the card workload of the crash and power-cut tests: tills posting card
//! sales and card refunds at once (each with its own Idempotency-Key, retrying what they
//! do not know), the daemon killed or its power cut at random instants, and at the end the
//! books — the store's sales and payments against the terminal's own journal.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use edge_api::TokensFile;
use edge_sync::domain::{ItemKind, Payment, PaymentKind, PaymentState, Sale, Tender};
use edge_sync::store::{SledStore, Store, StoreConfig};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A binary of the workspace: `EDGE_BIN_DIR/NAME`, else beside this test (target/debug).
pub fn bin(name: &str) -> PathBuf {
    if name == "edged"
        && let Some(p) = std::env::var_os("EDGED_BIN")
    {
        return PathBuf::from(p);
    }
    if let Some(dir) = std::env::var_os("EDGE_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let p = dir.join(name);
    assert!(p.exists(), "{} is not built (cargo build --workspace --bins)", p.display());
    p
}

/// A small deterministic generator (xorshift64*), so a failing run can be replayed by seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// A seed from `var`, or from the clock (printed by the caller so a run can be replayed).
pub fn seed(var: &str) -> u64 {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
    })
}

pub fn env_u64(var: &str, default: u64) -> u64 {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A line-oriented child process steered on stdin (the simulators, the power-cut layer).
pub struct Steered {
    pub child: Child,
    stdin: ChildStdin,
    out: Receiver<String>,
}

impl Steered {
    fn spawn(mut cmd: Command, what: &str) -> (Steered, String) {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, out) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let ready = out.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| panic!("{what}: no READY line"));
        let rest = ready.strip_prefix("READY ").unwrap_or_else(|| panic!("{what}: {ready}")).to_string();
        (Steered { child, stdin, out }, rest)
    }

    /// Sends a line that gets no answer.
    pub fn tell(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("stdin");
    }

    /// Sends a line; returns the answer line.
    pub fn say(&mut self, line: &str) -> String {
        writeln!(self.stdin, "{line}").expect("stdin");
        self.out.recv_timeout(Duration::from_secs(30)).expect("an answer")
    }

    fn sigterm(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The ZVT terminal simulator as its own process (`edge-lab sim terminal --tcp`), its
/// journal on a normal disk: a real terminal keeps its power when the till loses its.
pub struct Terminal {
    proc: Steered,
    pub uri: String,
    pub journal: PathBuf,
    /// Adyen: the simulator's CA (the daemon's `--terminal-root`).
    pub root: Option<PathBuf>,
}

/// One line of the terminal's journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub kind: String,
    pub receipt: u32,
    pub amount: i64,
    pub result: u8,
    pub reversed: bool,
    /// Adyen: the terminal's transaction reference (what a card tender stores).
    pub reference: Option<String>,
}

impl Terminal {
    /// The Adyen simulator (`edge-lab sim terminal --protocol adyen`), HTTPS on loopback.
    pub fn start_adyen(dir: &Path, processing_ms: u64) -> Terminal {
        let journal = dir.join("adyen-journal.json");
        let mut cmd = Command::new(bin("edge-lab"));
        cmd.args(["sim", "terminal", "--protocol", "adyen", "--tcp", "127.0.0.1:0"])
            .args(["--processing-ms", &processing_ms.to_string()])
            .arg("--journal")
            .arg(&journal);
        let (proc, uri) = Steered::spawn(cmd, "edge-lab sim terminal --protocol adyen");
        Terminal { proc, uri, journal, root: Some(dir.join("adyen-ca.pem")) }
    }

    /// The daemon's arguments for this terminal.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec!["--device".to_string(), format!("terminal={}", self.uri)];
        if let Some(r) = &self.root {
            a.push("--terminal-root".into());
            a.push(r.display().to_string());
        }
        a
    }

    pub fn start(dir: &Path, processing_ms: u64) -> Terminal {
        let journal = dir.join("terminal-journal.tsv");
        let mut cmd = Command::new(bin("edge-lab"));
        cmd.args(["sim", "terminal", "--tcp", "127.0.0.1:0", "--processing-ms", &processing_ms.to_string()])
            .arg("--journal")
            .arg(&journal);
        let (proc, uri) = Steered::spawn(cmd, "edge-lab sim terminal");
        Terminal { proc, uri, journal, root: None }
    }

    pub fn say(&mut self, line: &str) {
        let a = self.proc.say(line);
        assert_eq!(a, "ok", "terminal simulator: {line}");
    }

    pub fn journal(&self) -> Vec<Charge> {
        if self.root.is_some() {
            let text = std::fs::read_to_string(&self.journal).unwrap_or_default();
            let entries: Vec<edge_drivers::adyen::sim::Entry> = serde_json::from_str(&text).unwrap_or_default();
            return entries
                .into_iter()
                .map(|e| Charge {
                    kind: e.kind.clone(),
                    receipt: 0,
                    amount: e.amount_minor,
                    result: match e.state {
                        edge_drivers::adyen::sim::State::Approved => 0,
                        _ => 1,
                    },
                    reversed: e.reversed,
                    reference: Some(format!("{} {}", e.transaction_id, e.timestamp)),
                })
                .collect();
        }
        std::fs::read_to_string(&self.journal)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                Charge {
                    kind: f[0].to_string(),
                    receipt: f[1].parse().expect("receipt"),
                    amount: f[3].parse().expect("amount"),
                    result: f[4].parse().expect("result"),
                    reversed: f[5] == "1",
                    reference: None,
                }
            })
            .collect()
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.proc.child.kill();
        let _ = self.proc.child.wait();
    }
}

/// A simulated device of `edge-lab sim KIND --tcp` as its own process (printer, display …).
pub struct Device {
    pub proc: Steered,
    pub uri: String,
}

impl Device {
    pub fn start(kind: &str) -> Device {
        let mut cmd = Command::new(bin("edge-lab"));
        cmd.args(["sim", kind, "--tcp", "127.0.0.1:0"]);
        let (proc, uri) = Steered::spawn(cmd, &format!("edge-lab sim {kind}"));
        Device { proc, uri }
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let _ = self.proc.child.kill();
        let _ = self.proc.child.wait();
    }
}

/// `edge-lab fakes` as its own process: the remotes outlive edged.
pub struct Fakes {
    proc: Steered,
    pub file: PathBuf,
}

impl Fakes {
    pub fn start(dir: &Path, catalog: u64) -> Fakes {
        let mut cmd = Command::new(bin("edge-lab"));
        cmd.args(["fakes", "--catalog-size", &catalog.to_string(), "--data-dir"]).arg(dir);
        let (proc, file) = Steered::spawn(cmd, "edge-lab fakes");
        Fakes { proc, file: PathBuf::from(file) }
    }

    /// A remote's base URL from fakes.json (`cloud`, `lightspeed`, `netsuite`).
    pub fn url(&self, remote: &str) -> String {
        let v: Value = serde_json::from_slice(&std::fs::read(&self.file).expect("fakes.json")).expect("json");
        v[remote].as_str().expect("url").to_string()
    }
}

impl Drop for Fakes {
    fn drop(&mut self) {
        let _ = self.proc.child.kill();
        let _ = self.proc.child.wait();
    }
}

/// `edged run --config FILE`: the child and its URL (the tokens are the data dir's).
pub fn run_config(cfg: &Path, log: &Path) -> (Child, String) {
    let logf = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("log file");
    let mut child = Command::new(bin("edged"))
        .args(["run", "--config"])
        .arg(cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(logf))
        .spawn()
        .expect("spawn edged run");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read");
    let url = line.trim().strip_prefix("READY ").unwrap_or_else(|| panic!("edged run: {line:?}")).to_string();
    (child, url)
}

/// The power-cut layer (`powercut-fs`) of `backing`, mounted at `mount`.
pub struct Layer {
    proc: Steered,
    pub mount: PathBuf,
}

impl Layer {
    pub fn mount(backing: &Path, mount: &Path) -> Layer {
        std::fs::create_dir_all(backing).expect("backing dir");
        std::fs::create_dir_all(mount).expect("mount point");
        let mut cmd = Command::new(bin("powercut-fs"));
        cmd.arg(backing).arg(mount);
        let (proc, _) = Steered::spawn(cmd, "powercut-fs");
        Layer { proc, mount: mount.to_path_buf() }
    }

    /// The power goes: every byte not fsynced is dropped. Returns (files, bytes).
    pub fn cut(&mut self) -> (u64, u64) {
        let a = self.proc.say("cut");
        let f: Vec<&str> = a.split_whitespace().collect();
        assert_eq!(f.first(), Some(&"ok"), "powercut-fs: {a}");
        (f[1].parse().expect("files"), f[2].parse().expect("bytes"))
    }
}

impl Drop for Layer {
    fn drop(&mut self) {
        self.proc.sigterm();
        // A layer that died without unmounting leaves a dead mount behind.
        let _ = Command::new("umount").arg("-l").arg(&self.mount).stderr(Stdio::null()).status();
    }
}

/// The real `edged demo` on a data dir, READY parsed from stdout, stderr to a log file.
pub struct Daemon {
    pub child: Child,
    pub url: String,
    pub dir: PathBuf,
    pub tokens: TokensFile,
    pub log_path: PathBuf,
}

impl Daemon {
    /// `edged demo` on `dir` (log in `DIR/edged.stderr.log`), once READY.
    pub fn start(dir: &Path, catalog: u64) -> Daemon {
        Daemon::start_with(dir, catalog, &[])
    }

    pub fn start_with(dir: &Path, catalog: u64, extra: &[&str]) -> Daemon {
        Daemon::start_logging_to(dir, &dir.join("edged.stderr.log"), catalog, extra)
    }

    /// Like [`Daemon::start_with`], with the log kept at `log`.
    pub fn start_logging_to(dir: &Path, log: &Path, catalog: u64, extra: &[&str]) -> Daemon {
        Daemon::start_env(dir, log, catalog, extra, &[])
    }

    /// Like [`Daemon::start_logging_to`], with environment variables for edged.
    pub fn start_env(dir: &Path, log: &Path, catalog: u64, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::try_start(dir, log, catalog, extra, env).unwrap_or_else(|| {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            panic!(
                "edged did not get ready; the end of its log:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        })
    }

    /// Like [`Daemon::start_env`]; None when edged exits (or is killed) before its READY line.
    pub fn try_start(dir: &Path, log: &Path, catalog: u64, extra: &[&str], env: &[(&str, &str)]) -> Option<Daemon> {
        edge_sync::tls::install_provider();
        std::fs::create_dir_all(dir).expect("data dir");
        let logf = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("log file");
        let mut child = Command::new(bin("edged"))
            .args(["demo", "--no-ui", "--listen", "127.0.0.1:0", "--catalog-size", &catalog.to_string(), "--data-dir"])
            .arg(dir)
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(logf))
            .spawn()
            .expect("spawn edged");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("READY ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let Ok(url) = rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        };
        let tokens: TokensFile =
            serde_json::from_slice(&std::fs::read(dir.join("tokens.json")).expect("tokens.json")).expect("tokens json");
        Some(Daemon { child, url, dir: dir.to_path_buf(), tokens, log_path: log.to_path_buf() })
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM; returns the exit code.
    pub fn term(&mut self) -> Option<i32> {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                return st.code();
            }
            assert!(Instant::now() < deadline, "edged did not stop within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn http(&self) -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().expect("client")
    }

    /// Open payments that still need the terminal or a commit (offline ones waiting to be
    /// forwarded are settled).
    pub fn unsettled_payments(&self) -> Vec<Value> {
        let v: Value = self
            .http()
            .get(format!("{}/v1/payments?open=true&limit=1000", self.url))
            .bearer_auth(&self.tokens.manager)
            .send()
            .expect("payments")
            .json()
            .expect("json");
        v["payments"].as_array().cloned().unwrap_or_default().into_iter().filter(|p| p["state"] != "recorded").collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a cycle ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// SIGKILL of edged.
    Kill,
    /// SIGKILL, then every byte edged wrote and did not fsync is dropped.
    Power,
}

/// One attempt the tills made: a card sale or a card refund of an earlier sale.
#[derive(Debug, Clone)]
struct Attempt {
    refund_of: Option<String>,
    body: Value,
}

#[derive(Default)]
struct Ledger {
    attempts: BTreeMap<String, Attempt>,
    /// key → the 201 body.
    acked: BTreeMap<String, Value>,
    /// Keys refused for good (declined): not retried.
    closed: BTreeSet<String>,
    /// Sale ids a refund was started for.
    refunding: BTreeSet<String>,
    statuses: BTreeMap<u16, u64>,
    next: u64,
}

/// The card workload and its books.
pub struct CardRun {
    pub tills: usize,
    pub catalog: u64,
    /// Cash sales instead of card sales and refunds.
    pub cash: bool,
    skus: Vec<String>,
    ledger: Arc<Mutex<Ledger>>,
}

/// What a run ends with: figures, and every mismatch between the store and the terminal.
#[derive(Debug, Default)]
pub struct Books {
    pub cycles: u64,
    pub attempts: usize,
    pub acked: usize,
    /// Sales and refunds in the store.
    pub stored: usize,
    pub sales: usize,
    pub refunds: usize,
    pub charges: usize,
    pub statuses: BTreeMap<u16, u64>,
    /// An unreversed charge at the terminal with no recorded payment and sale.
    pub charged_without_sale: Vec<String>,
    /// A sale (or refund) whose card payment is not an unreversed charge at the terminal.
    pub sale_without_charge: Vec<String>,
    /// A payment settled as not charged whose charge the terminal holds.
    pub charge_settled_as_none: Vec<String>,
    /// A sale whose card tender lacks the terminal's data.
    pub card_data_missing: Vec<String>,
    /// A payment left open after recovery.
    pub left_open: Vec<String>,
    /// More than one sale for a key, or a changed acknowledged sale.
    pub duplicates: Vec<String>,
}

impl Books {
    pub fn mismatches(&self) -> usize {
        self.charged_without_sale.len()
            + self.sale_without_charge.len()
            + self.charge_settled_as_none.len()
            + self.card_data_missing.len()
            + self.left_open.len()
            + self.duplicates.len()
    }

    pub fn summary(&self, what: &str) -> String {
        format!(
            "{what}: {} cycles, {} attempts ({} answered 201; statuses {:?}), {} sales and refunds stored, {} card \
             sales and {} card refunds recorded, {} unreversed charges at the terminal; mismatches: {} charged \
             without a sale, {} sales without a charge, {} charges settled as \"no charge\", {} without card data, \
             {} left open, {} duplicates",
            self.cycles,
            self.attempts,
            self.acked,
            self.statuses,
            self.stored,
            self.sales,
            self.refunds,
            self.charges,
            self.charged_without_sale.len(),
            self.sale_without_charge.len(),
            self.charge_settled_as_none.len(),
            self.card_data_missing.len(),
            self.left_open.len(),
            self.duplicates.len()
        )
    }

    pub fn assert_clean(&self, what: &str) {
        assert_eq!(
            self.mismatches(),
            0,
            "{}\ncharged without sale: {:?}\nsale without charge: {:?}\nsettled as no charge: {:?}\ncard data \
             missing: {:?}\nleft open: {:?}\nduplicates: {:?}",
            self.summary(what),
            self.charged_without_sale,
            self.sale_without_charge,
            self.charge_settled_as_none,
            self.card_data_missing,
            self.left_open,
            self.duplicates
        );
    }
}

impl CardRun {
    pub fn new(tills: usize, catalog: u64) -> CardRun {
        let skus = (0..catalog)
            .map(edge_sync::demo::demo_item)
            .filter(|i| i.kind == ItemKind::Unit)
            .map(|i| i.sku)
            .take(6)
            .collect();
        CardRun { tills, catalog, cash: false, skus, ledger: Arc::default() }
    }

    /// The same tills paying cash (no terminal involved).
    pub fn cash(tills: usize, catalog: u64) -> CardRun {
        CardRun { cash: true, ..CardRun::new(tills, catalog) }
    }

    /// The tills sell against `d` until `stop`; each till is a thread.
    pub fn tills(&self, d: &Daemon, stop: &Arc<AtomicBool>, seed: u64) -> Vec<std::thread::JoinHandle<()>> {
        (0..self.tills)
            .map(|t| {
                let till = Till {
                    url: d.url.clone(),
                    cashier: d.tokens.cashier.clone(),
                    manager: d.tokens.manager.clone(),
                    skus: self.skus.clone(),
                    cash: self.cash,
                };
                let (ledger, stop) = (self.ledger.clone(), stop.clone());
                let seed = seed ^ ((t as u64 + 1) << 32);
                std::thread::spawn(move || till.run(&ledger, &stop, seed))
            })
            .collect()
    }

    /// After the last cut: the daemon restarted clean settles what is open, every attempt
    /// whose outcome a till never learned is retried until it answers, acknowledged sales
    /// are read back unchanged; then the daemon stops and the store is read directly and
    /// checked against the terminal's journal.
    pub fn books(&self, d: &mut Daemon, term: Option<&Terminal>, cycles: u64) -> Books {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let open = d.unsettled_payments();
            if open.is_empty() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let http = d.http();
        let mut l = self.ledger.lock().expect("ledger");
        let mut b = Books { cycles, ..Books::default() };
        let retry: Vec<(String, Attempt)> = l
            .attempts
            .iter()
            .filter(|(k, _)| !l.acked.contains_key(*k) && !l.closed.contains(*k))
            .map(|(k, a)| (k.clone(), a.clone()))
            .collect();
        for (key, a) in retry {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let (status, text) = post(&http, &d.url, &d.tokens.cashier, &d.tokens.manager, &key, &a);
                match status {
                    Some(201) => {
                        l.acked.insert(key.clone(), serde_json::from_str(&text).expect("sale"));
                        break;
                    }
                    Some(402) => break,
                    _ if Instant::now() > deadline => {
                        b.left_open.push(format!("retry of {key} never settled: {status:?} {text}"));
                        break;
                    }
                    _ => std::thread::sleep(Duration::from_millis(300)),
                }
            }
        }
        for (key, sale) in &l.acked {
            let id = sale["id"].as_str().expect("id");
            let mut got: Value = http
                .get(format!("{}/v1/sales/{id}", d.url))
                .bearer_auth(&d.tokens.tech)
                .send()
                .expect("get")
                .json()
                .unwrap_or(Value::Null);
            // The receipt's state is GET's own (the 201 answers before anything prints), and
            // so is what each line has refunded since (the refunds are checked on their own).
            if let Some(o) = got.as_object_mut() {
                o.remove("receipt");
                if let Some(lines) = o.get_mut("lines").and_then(Value::as_array_mut) {
                    for l in lines {
                        if let Some(l) = l.as_object_mut() {
                            l.remove("refunded");
                        }
                    }
                }
            }
            if &got != sale {
                b.duplicates.push(format!("acknowledged sale of {key} reads back as {got}, was {sale}"));
            }
        }
        assert_eq!(d.term(), Some(0), "edged stops cleanly");
        b.attempts = l.attempts.len();
        b.acked = l.acked.len();
        b.statuses = l.statuses.clone();
        let store = SledStore::open(StoreConfig::new(d.dir.join("store"))).expect("open store");
        let payments: Vec<Payment> = store.payments_recent(usize::MAX).expect("payments");
        let sales: BTreeMap<uuid::Uuid, Sale> =
            store.sales_page(None, usize::MAX).expect("sales").into_iter().map(|s| (s.id, s)).collect();
        let journal = term.map(Terminal::journal).unwrap_or_default();
        b.stored = sales.len();
        let mut matched: BTreeSet<usize> = BTreeSet::new();
        let charge_of = |p: &Payment| {
            let kind = if p.kind == PaymentKind::Refund { "refund" } else { "payment" };
            let card = p.card.as_ref()?;
            match &card.reference {
                // Adyen: by the terminal's transaction reference.
                Some(r) => journal
                    .iter()
                    .position(|c| c.kind == kind && c.reference.as_ref() == Some(r) && c.result == 0 && !c.reversed),
                None => journal
                    .iter()
                    .position(|c| Some(c.receipt) == card.receipt_no && c.kind == kind && c.result == 0 && !c.reversed),
            }
        };
        let mut recorded = BTreeSet::new();
        for p in &payments {
            let what = format!("payment {} ({:?} of {}, key {:?})", p.id, p.kind, p.amount_minor, p.idempotency_key);
            let has_sale = sales.contains_key(&p.sale_id);
            match p.state {
                PaymentState::Recorded => {
                    recorded.insert(p.id);
                    if p.kind == PaymentKind::Refund {
                        b.refunds += 1;
                    } else {
                        b.sales += 1;
                    }
                    if !has_sale {
                        b.sale_without_charge.push(format!("{what}: recorded, its sale is missing"));
                    }
                    let receipt =
                        p.card.as_ref().and_then(|c| c.receipt_no.map(|r| r.to_string()).or(c.reference.clone()));
                    match charge_of(p) {
                        Some(i) if journal[i].amount == p.amount_minor && matched.insert(i) => {}
                        Some(i) => b.sale_without_charge.push(format!(
                            "{what}: receipt {receipt:?} is {:?} (matched twice or another amount)",
                            journal[i]
                        )),
                        None => b
                            .sale_without_charge
                            .push(format!("{what}: no unreversed charge with receipt {receipt:?} at the terminal")),
                    }
                }
                PaymentState::Failed | PaymentState::Declined | PaymentState::Reversed => {
                    if has_sale {
                        b.sale_without_charge.push(format!("{what}: {:?} but its sale exists", p.state));
                    }
                }
                other => b.left_open.push(format!("{what}: left {other:?} ({:?})", p.reason)),
            }
        }
        for (i, c) in journal.iter().enumerate() {
            if c.result != 0 || c.reversed || c.kind == "reversal" {
                continue;
            }
            b.charges += 1;
            if matched.contains(&i) {
                continue;
            }
            let settled_none = payments.iter().find(|p| {
                p.amount_minor == c.amount
                    && p.state == PaymentState::Failed
                    && p.reason.as_deref().is_some_and(|r| r.contains("no charge") || r.contains("not charged"))
                    && p.receipt_before.is_none_or(|b| b < c.receipt)
            });
            match settled_none {
                Some(p) => b.charge_settled_as_none.push(format!(
                    "{} receipt {} of {}: payment {} settled {:?} ({:?})",
                    c.kind, c.receipt, c.amount, p.id, p.state, p.reason
                )),
                None => b.charged_without_sale.push(format!("{} receipt {} of {}", c.kind, c.receipt, c.amount)),
            }
        }
        let mut by_payment: BTreeMap<uuid::Uuid, usize> = BTreeMap::new();
        for s in sales.values() {
            for t in &s.tenders {
                let Tender::Card { payment_id, card, .. } = t else { continue };
                *by_payment.entry(*payment_id).or_default() += 1;
                if !recorded.contains(payment_id) {
                    b.sale_without_charge.push(format!("sale {}: its card payment {payment_id} is not recorded", s.id));
                }
                let complete = card.as_ref().is_some_and(|c| {
                    (c.reference.is_some() || (c.receipt_no.is_some() && c.trace.is_some()))
                        && c.pan_masked.is_some()
                        && c.card_name.is_some()
                        && c.auth_code.is_some()
                });
                if !complete {
                    b.card_data_missing.push(format!("sale {} ({:?}): card tender {card:?}", s.id, s.kind));
                }
            }
        }
        for (p, n) in by_payment.iter().filter(|(_, n)| **n > 1) {
            b.duplicates.push(format!("payment {p} pays {n} sales"));
        }
        let mut sale_of_key: BTreeMap<uuid::Uuid, String> = BTreeMap::new();
        for key in l.attempts.keys() {
            if let Some((id, _)) = store.sale_for_key(key).expect("key")
                && let Some(other) = sale_of_key.insert(id, key.clone())
            {
                b.duplicates.push(format!("sale {id} is under keys {other} and {key}"));
            }
        }
        if sale_of_key.len() != sales.len() {
            b.duplicates.push(format!("{} sales for {} keys that made one", sales.len(), sale_of_key.len()));
        }
        b
    }
}

fn post(
    http: &reqwest::blocking::Client,
    url: &str,
    cashier: &str,
    manager: &str,
    key: &str,
    a: &Attempt,
) -> (Option<u16>, String) {
    let req = match &a.refund_of {
        Some(id) => http.post(format!("{url}/v1/sales/{id}/refunds")).bearer_auth(manager),
        None => http.post(format!("{url}/v1/sales")).bearer_auth(cashier),
    };
    match req.header("Idempotency-Key", key).json(&a.body).timeout(Duration::from_secs(30)).send() {
        Ok(r) => {
            let s = r.status().as_u16();
            (Some(s), r.text().unwrap_or_default())
        }
        Err(_) => (None, String::new()),
    }
}

/// One till: where it sells and what it pays with.
struct Till {
    url: String,
    cashier: String,
    manager: String,
    skus: Vec<String>,
    cash: bool,
}

impl Till {
    /// New card sales, now and then a card refund of an earlier one, and retries of what
    /// it does not know (also while the first attempt may still be running).
    fn run(&self, ledger: &Mutex<Ledger>, stop: &AtomicBool, seed: u64) {
        let Till { url, cashier, manager, skus, cash } = self;
        let (url, cashier, manager, skus, cash) =
            (url.as_str(), cashier.as_str(), manager.as_str(), skus.as_slice(), *cash);
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
        let mut rng = Rng(seed);
        while !stop.load(Ordering::SeqCst) {
            let (key, attempt) = {
                let mut l = ledger.lock().expect("ledger");
                let unsettled: Vec<String> = l
                    .attempts
                    .keys()
                    .filter(|k| !l.acked.contains_key(*k) && !l.closed.contains(*k))
                    .cloned()
                    .collect();
                let refundable: Vec<String> = l
                    .acked
                    .iter()
                    .filter(|(k, s)| {
                        l.attempts.get(*k).is_some_and(|a| a.refund_of.is_none())
                            && s["id"].as_str().is_some_and(|id| !l.refunding.contains(id))
                    })
                    .filter_map(|(_, s)| s["id"].as_str().map(str::to_string))
                    .collect();
                if !unsettled.is_empty() && rng.below(4) == 0 {
                    let k = unsettled[rng.below(unsettled.len() as u64) as usize].clone();
                    let a = l.attempts[&k].clone();
                    (k, a)
                } else {
                    l.next += 1;
                    let k = format!("till-{seed:x}-{}", l.next);
                    let a = if !cash && !refundable.is_empty() && rng.below(6) == 0 {
                        let id = refundable[rng.below(refundable.len() as u64) as usize].clone();
                        l.refunding.insert(id.clone());
                        Attempt {
                            refund_of: Some(id),
                            body: json!({"lines": [{"line_no": 1, "qty": 1}], "tender": "card", "reason": "damaged"}),
                        }
                    } else {
                        let sku = &skus[rng.below(skus.len() as u64) as usize];
                        let qty = 1 + rng.below(3);
                        let tender = if cash {
                            json!({"type": "cash", "amount_minor": 10_000_000})
                        } else {
                            json!({"type": "card"})
                        };
                        Attempt {
                            refund_of: None,
                            body: json!({"lines": [{"sku": sku, "qty": qty}], "tenders": [tender]}),
                        }
                    };
                    l.attempts.insert(k.clone(), a.clone());
                    (k, a)
                }
            };
            let (status, text) = post(&http, url, cashier, manager, &key, &attempt);
            let mut l = ledger.lock().expect("ledger");
            if let Some(s) = status {
                *l.statuses.entry(s).or_default() += 1;
            }
            match status {
                Some(201) => {
                    let sale: Value = serde_json::from_str(&text).expect("201 body is a sale");
                    if let Some(prev) = l.acked.get(&key) {
                        assert_eq!(prev, &sale, "key {key} answered two different sales");
                    }
                    l.acked.insert(key, sale);
                }
                Some(402) => {
                    l.closed.insert(key);
                }
                // Killed, busy, in doubt, being settled, stopping: unknown, retried later.
                None | Some(409) | Some(502) | Some(503) | Some(504) => {}
                Some(other) => panic!("unexpected {other} for key {key} ({attempt:?}): {text}"),
            }
            drop(l);
            std::thread::sleep(Duration::from_millis(rng.below(30)));
        }
    }
}
