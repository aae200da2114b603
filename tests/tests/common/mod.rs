#![allow(dead_code)]
//! Runs the real `edged` binary for tests: `edged demo` on a data dir, READY parsed from
//! stdout, stderr kept in `DIR/edged.stderr.log`, stopped with SIGTERM or SIGKILL.

use edge_api::TokensFile;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Daemon {
    pub child: Child,
    pub url: String,
    pub dir: PathBuf,
    pub tokens: TokensFile,
    pub log_path: std::path::PathBuf,
}

/// The `edged` binary of this build (beside the test, see `edge_tests::support::bin`).
pub fn edged() -> PathBuf {
    edge_tests::support::bin("edged")
}

/// The `edgectl` binary of this build.
pub fn edgectl() -> PathBuf {
    edge_tests::support::bin("edgectl")
}

impl Daemon {
    /// Starts `edged demo` on `dir` and waits for its READY line.
    pub fn start(dir: &Path, catalog_size: u64) -> Daemon {
        Daemon::start_with(dir, catalog_size, &[])
    }

    pub fn start_with(dir: &Path, catalog_size: u64, extra: &[&str]) -> Daemon {
        Daemon::start_logging_to(dir, &dir.join("edged.stderr.log"), catalog_size, extra)
    }

    /// Like [`Daemon::start_with`], with the log kept at `log_path`.
    pub fn start_logging_to(dir: &Path, log_path: &Path, catalog_size: u64, extra: &[&str]) -> Daemon {
        Daemon::start_env(dir, log_path, catalog_size, extra, &[])
    }

    /// Like [`Daemon::start_logging_to`], with environment variables for edged.
    pub fn start_env(dir: &Path, log_path: &Path, catalog_size: u64, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        edge_sync::tls::install_provider();
        std::fs::create_dir_all(dir).expect("data dir");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log_path).expect("log file");
        let mut child = Command::new(edged())
            .args([
                "demo",
                "--no-ui",
                "--listen",
                "127.0.0.1:0",
                "--catalog-size",
                &catalog_size.to_string(),
                "--data-dir",
            ])
            .arg(dir)
            .args(extra)
            .envs(env.iter().copied())
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
        let url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(u) => u,
            Err(_) => {
                let _ = child.kill();
                let log = std::fs::read_to_string(log_path).unwrap_or_default();
                panic!("edged did not get ready; its log:\n{log}");
            }
        };
        let tokens: TokensFile =
            serde_json::from_slice(&std::fs::read(dir.join("tokens.json")).expect("tokens.json")).expect("tokens json");
        Daemon { child, url, dir: dir.to_path_buf(), tokens, log_path: log_path.to_path_buf() }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    /// SIGTERM; returns the exit code.
    pub fn term(&mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
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
        reqwest::blocking::Client::builder().timeout(Duration::from_secs(20)).build().expect("client")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small deterministic generator (xorshift64*), so a failing run can be replayed by seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
