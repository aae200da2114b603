//! `edgectl doctor`: what a field tech checks first, answered by the box itself, with or
//! without the daemon running. Every check says ok / warn / fail and why, in words.
//!
//! Checks: the config parses; the data dir exists with sane permissions; the store opens and
//! its format is one this build reads (skipped, and said so, while edged holds it — or when
//! the caller does not own it, so a root shell never leaves root-owned files in the store);
//! free disk; tokens and secrets are not readable by others; the configured devices are
//! present; the clock is synchronised; the TLS trust store is there; the daemon answers.

use crate::config::Config;
use edge_drivers::uri::DeviceUri;
use serde::Serialize;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// One check's verdict.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    /// `ok`, `warn` or `fail`.
    pub level: String,
    pub detail: String,
}

fn check(name: &str, level: &str, detail: impl Into<String>) -> Check {
    Check { name: name.into(), level: level.into(), detail: detail.into() }
}

/// Free warn level for the data dir's disk: below this, new sales should stop soon.
pub const DISK_WARN_BYTES: u64 = 512 << 20;
pub const DISK_FAIL_BYTES: u64 = 64 << 20;

fn my_uid() -> Option<u32> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Free and total bytes of the file system holding `path` (from `df`, which every box has).
pub fn disk_free(path: &Path) -> Result<(u64, u64), String> {
    let out = std::process::Command::new("df")
        .args(["-P", "-B1"])
        .arg(path)
        .env_remove("NOTIFY_SOCKET")
        .output()
        .map_err(|e| format!("df: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().nth(1).ok_or("df printed nothing")?;
    let f: Vec<&str> = line.split_whitespace().collect();
    let total = f.get(1).and_then(|v| v.parse().ok()).ok_or("df: no size")?;
    let free = f.get(3).and_then(|v| v.parse().ok()).ok_or("df: no free space")?;
    Ok((free, total))
}

fn mode_check(name: &str, path: &Path, max_other: u32) -> Check {
    match std::fs::metadata(path) {
        Ok(m) => {
            let mode = m.mode() & 0o777;
            if mode & max_other != 0 {
                check(name, "fail", format!("{} is mode {mode:o}: others can read it", path.display()))
            } else {
                check(name, "ok", format!("{} mode {mode:o}", path.display()))
            }
        }
        Err(e) => check(name, "warn", format!("{}: {e}", path.display())),
    }
}

/// Runs every check that needs no daemon.
pub fn run(config_path: &Path) -> Vec<Check> {
    let mut out = Vec::new();
    let cfg: Config = match crate::config::load(config_path) {
        Ok(c) => {
            out.push(check("config", "ok", format!("{} parses and passes its checks", config_path.display())));
            c
        }
        Err(problems) => {
            let text: Vec<String> = problems.iter().map(|p| format!("{}: {}", p.key, p.message)).collect();
            out.push(check("config", "fail", text.join("; ")));
            return out;
        }
    };
    let data = &cfg.data_dir;
    match std::fs::metadata(data) {
        Ok(m) if m.is_dir() => {
            let mode = m.mode() & 0o777;
            let level = if mode & 0o007 != 0 { "warn" } else { "ok" };
            out.push(check("data dir", level, format!("{} mode {mode:o}, owner uid {}", data.display(), m.uid())));
            let store_dir = data.join("store");
            let owned = my_uid().is_some_and(|u| u == m.uid());
            if !store_dir.exists() {
                out.push(check(
                    "store",
                    "warn",
                    format!("{} does not exist yet (made at first start)", store_dir.display()),
                ));
            } else if !owned {
                out.push(check(
                    "store",
                    "warn",
                    format!(
                        "not opened: {} belongs to uid {}; run as that user (sudo -u edged edgectl doctor)",
                        data.display(),
                        m.uid()
                    ),
                ));
            } else {
                let sc = edge_sync::store::StoreConfig::new(store_dir.clone());
                match edge_sync::store::SledStore::open(sc) {
                    Ok(s) => {
                        use edge_sync::store::Store;
                        let st = s.stats();
                        out.push(check(
                            "store",
                            "ok",
                            format!(
                                "opens; format {} (this build reads up to {}); {} sales, {} items",
                                s.format_version(),
                                edge_sync::store::FORMAT_VERSION,
                                st.sales,
                                st.items
                            ),
                        ));
                    }
                    Err(edge_sync::store::StoreError::Locked { .. }) => {
                        out.push(check("store", "ok", "in use by a running edged (not opened here)"))
                    }
                    Err(e) => out.push(check("store", "fail", e.to_string())),
                }
            }
        }
        Ok(_) => out.push(check("data dir", "fail", format!("{} is not a directory", data.display()))),
        Err(e) => out.push(check("data dir", "fail", format!("{}: {e}", data.display()))),
    }
    match disk_free(if data.exists() { data } else { Path::new("/") }) {
        Ok((free, total)) => {
            let level = if free < DISK_FAIL_BYTES {
                "fail"
            } else if free < DISK_WARN_BYTES {
                "warn"
            } else {
                "ok"
            };
            out.push(check("disk", level, format!("{} MiB free of {} MiB", free >> 20, total >> 20)));
        }
        Err(e) => out.push(check("disk", "warn", e)),
    }
    out.push(mode_check("tokens", &cfg.tokens_file, 0o077));
    for (name, r) in &cfg.remotes {
        if let Some(f) = &r.secret_file {
            out.push(mode_check(&format!("secret {name}"), f, 0o007));
        }
    }
    for d in &cfg.devices {
        let c = match &d.uri {
            DeviceUri::Serial { path, .. } => {
                if Path::new(path).exists() {
                    check(&format!("device {}", d.id), "ok", format!("{path} present"))
                } else {
                    check(
                        &format!("device {}", d.id),
                        "fail",
                        format!("{path} is missing: unplugged, or a udev rule is not in place"),
                    )
                }
            }
            DeviceUri::Usb { vendor, product, .. } => match edge_drivers::usb::list() {
                Ok(l) if l.iter().any(|u| u.vendor == *vendor && u.product == *product) => {
                    check(&format!("device {}", d.id), "ok", format!("{vendor:04x}:{product:04x} attached"))
                }
                Ok(_) => {
                    check(&format!("device {}", d.id), "fail", format!("{vendor:04x}:{product:04x} is not attached"))
                }
                Err(e) => check(&format!("device {}", d.id), "fail", e.to_string()),
            },
            DeviceUri::Adyen { host, port } => check(
                &format!("device {}", d.id),
                "ok",
                format!(
                    "Adyen terminal at https://{host}:{port}/nexo{} (`edgectl terminal status` asks it)",
                    d.adyen.as_ref().map(|a| format!(", POIID {}, key {:?}", a.poi_id, a.key)).unwrap_or_default()
                ),
            ),
            DeviceUri::Tcp { host, port } => check(
                &format!("device {}", d.id),
                "ok",
                format!("{host}:{port} (network; `edgectl devices scan --tcp` probes it)"),
            ),
        };
        out.push(c);
    }
    out.push(clock());
    let bundle = Path::new("/etc/ssl/certs/ca-certificates.crt");
    out.push(match std::fs::read_to_string(bundle) {
        Ok(t) => {
            let n = t.matches("BEGIN CERTIFICATE").count();
            check(
                "tls trust store",
                if n > 0 { "ok" } else { "fail" },
                format!("{} holds {n} certificates", bundle.display()),
            )
        }
        Err(e) => check("tls trust store", "fail", format!("{}: {e} (install ca-certificates)", bundle.display())),
    });
    out
}

/// Whether the clock is synchronised, if this machine can tell (systemd-timesyncd's flag
/// file, or timedatectl).
pub fn clock_synchronised() -> Option<bool> {
    if Path::new("/run/systemd/timesync/synchronized").exists() {
        return Some(true);
    }
    match std::process::Command::new("timedatectl")
        .args(["show", "-p", "NTPSynchronized", "--value"])
        // systemd's tools report their own failure (ERRNO=…) to an inherited notify socket:
        // under systemd that would be read as edged's.
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .output()
    {
        Ok(o) if o.status.success() => Some(String::from_utf8_lossy(&o.stdout).trim() == "yes"),
        _ => None,
    }
}

/// The clock check (business dates depend on the clock).
fn clock() -> Check {
    match clock_synchronised() {
        Some(true) => check("clock", "ok", "synchronised"),
        Some(false) => check("clock", "warn", "not synchronised: business dates and receipts depend on the clock"),
        None => check("clock", "warn", "cannot tell whether the clock is synchronised (no timedatectl)"),
    }
}
