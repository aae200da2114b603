//! A full disk: the store's flush fails, edged exits 70 without acknowledging the sale it
//! could not make durable, and after space is freed every acknowledged sale is there.
//! Uses a small tmpfs as the data dir (needs root for `mount`, as on CI and dev machines).

mod common;

use common::Daemon;
use edge_api::SaleOut;
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(path: &std::path::Path, size: &str) -> Result<Tmpfs, String> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(Tmpfs(path.to_path_buf()))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn resize(&self, size: &str) {
        let st =
            Command::new("mount").args(["-o", &format!("remount,size={size}")]).arg(&self.0).status().expect("remount");
        assert!(st.success(), "remount failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

#[test]
fn a_full_disk_stops_the_daemon_and_loses_no_acknowledged_sale() {
    if !is_root() {
        eprintln!("SKIPPED: mounting a small tmpfs needs root");
        return;
    }
    let base = tempfile::tempdir().expect("tmp");
    let fs = Tmpfs::mount(base.path(), "6m").expect("mount tmpfs");
    let dir = base.path().join("d");
    // The log lives off the small file system, so the daemon's last words can be read.
    let logs = tempfile::tempdir().expect("tmp");
    let mut d = Daemon::start_logging_to(&dir, &logs.path().join("edged.log"), 100, &[]);
    let http = d.http();
    let body = json!({"lines": [{"sku": "SKU-0000001", "qty": 2}, {"sku": "SKU-0000002", "qty": 2}, {"sku": "SKU-0000003", "qty": 2}],
                      "tenders": [{"type": "cash", "amount_minor": 1_000_000}]});
    let mut acked: Vec<SaleOut> = vec![];
    let mut refusal = None;
    for i in 0..20_000 {
        let r = http
            .post(format!("{}/v1/sales", d.url))
            .bearer_auth(&d.tokens.cashier)
            .header("Idempotency-Key", format!("k{i}"))
            .json(&body)
            .send();
        match r {
            Ok(r) if r.status().as_u16() == 201 => acked.push(r.json().expect("sale")),
            Ok(r) => {
                refusal = Some(format!("{} {}", r.status(), r.text().unwrap_or_default()));
                break;
            }
            Err(e) => {
                refusal = Some(e.to_string());
                break;
            }
        }
    }
    assert!(refusal.is_some(), "6 MiB never filled up");
    assert!(acked.len() > 10, "only {} sales before the disk was full", acked.len());
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(st) = d.child.try_wait().expect("wait") {
            break st.code();
        }
        assert!(Instant::now() < deadline, "edged kept running on a full disk after {refusal:?}; log:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(70), "exit code; log:\n{}", d.log());
    assert!(d.log().contains("FATAL: store"), "{}", d.log());
    drop(d);

    fs.resize("64m");
    let d = Daemon::start(&dir, 100);
    let http = d.http();
    for s in &acked {
        let mut got: SaleOut = http
            .get(format!("{}/v1/sales/{}", d.url, s.id))
            .bearer_auth(&d.tokens.tech)
            .send()
            .expect("get")
            .json()
            .expect("acknowledged sale present");
        got.receipt = None;
        assert_eq!(&got, s);
    }
    let health: serde_json::Value = http.get(format!("{}/v1/health", d.url)).send().expect("get").json().expect("json");
    let n = health["store"]["sales"].as_u64().unwrap_or(0) as usize;
    assert!(n == acked.len() || n == acked.len() + 1, "{n} sales stored, {} acknowledged", acked.len());
    eprintln!("disk full after {} acknowledged sales ({refusal:?}); all present after restart", acked.len());
}

/// The disk guard: below `--min-free-mb` new sales are refused with a clear message before
/// the store can fill, the daemon reports the low disk earlier, and freed space counts at once.
#[test]
fn low_disk_refuses_new_sales_before_the_store_can_fill() {
    if !is_root() {
        eprintln!("SKIPPED: mounting a small tmpfs needs root");
        return;
    }
    let base = tempfile::tempdir().expect("tmp");
    let _fs = Tmpfs::mount(base.path(), "48m").expect("mount tmpfs");
    let dir = base.path().join("d");
    let logs = tempfile::tempdir().expect("tmp");
    let d = Daemon::start_logging_to(&dir, &logs.path().join("edged.log"), 100, &["--min-free-mb", "16"]);
    let http = d.http();
    let sale = |key: &str| {
        http.post(format!("{}/v1/sales", d.url))
            .bearer_auth(&d.tokens.cashier)
            .header("Idempotency-Key", key)
            .json(&json!({"lines": [{"sku": "SKU-0000001", "qty": 1}], "tenders": [{"type": "cash", "amount_minor": 5000}]}))
            .send()
            .expect("post")
    };
    assert_eq!(sale("before").status(), 201);
    // Ballast leaves less than 16 MiB free.
    let ballast = base.path().join("ballast");
    let free = edge::doctor::disk_free(base.path()).expect("df").0;
    let fill = free.saturating_sub(8 << 20);
    std::fs::write(&ballast, vec![0u8; fill as usize]).expect("ballast");
    // A reading is trusted for a second (one `df` a second at most, however fast sales come).
    std::thread::sleep(Duration::from_millis(1100));
    let r = sale("low");
    assert_eq!(r.status().as_u16(), 507);
    let p: serde_json::Value = r.json().expect("problem");
    assert_eq!(p["type"].as_str().map(|t| t.ends_with("disk-low")), Some(true), "{p}");
    assert!(p["detail"].as_str().unwrap_or("").contains("new sales are refused below 16 MiB"), "{p}");
    // The health says so (the watcher measures every 10 s; the refusal measured just now).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let h: serde_json::Value =
            http.get(format!("{}/v1/health", d.url)).send().expect("health").json().expect("json");
        if h["reasons"].to_string().contains("disk low") {
            break;
        }
        assert!(Instant::now() < deadline, "no disk warning in health: {h}");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::fs::remove_file(&ballast).expect("free space");
    assert_eq!(sale("after").status(), 201, "freed space counts at once");
}
