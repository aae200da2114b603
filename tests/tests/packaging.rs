//! The package's shipped files: the default config passes `edged check-config`, and the
//! systemd unit passes `systemd-analyze verify` against the real binaries.

mod common;

use std::path::Path;
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace")
}

#[test]
fn the_shipped_config_passes_check_config() {
    let out = Command::new(common::edged())
        .args(["check-config"])
        .arg(repo().join("packaging/edged.toml"))
        .output()
        .expect("edged");
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // A credential secret outside systemd is named, not silently ignored.
    let dir = tempfile::tempdir().expect("tmp");
    let text = std::fs::read_to_string(repo().join("packaging/edged.toml")).expect("config")
        + "\n[remotes.cloud]\nmode = \"live\"\nurl = \"https://edge.example.com\"\nsecret_file = \"credential:cloud.key\"\n";
    let cfg = dir.path().join("edged.toml");
    std::fs::write(&cfg, text).expect("write");
    let out = Command::new(common::edged())
        .arg("check-config")
        .arg(&cfg)
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .expect("edged");
    let err = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("remotes.cloud.secret_file") && err.contains("LoadCredential"), "{err}");
    std::fs::write(dir.path().join("cloud.key"), "s3cret").expect("secret");
    let out = Command::new(common::edged())
        .arg("check-config")
        .arg(&cfg)
        .env("CREDENTIALS_DIRECTORY", dir.path())
        .output()
        .expect("edged");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_systemd_unit_verifies() {
    let which = Command::new("systemd-analyze").arg("--version").output();
    assert!(which.is_ok_and(|o| o.status.success()), "systemd-analyze is missing (Debian package systemd)");
    let root = tempfile::tempdir().expect("tmp");
    let r = root.path();
    std::fs::create_dir_all(r.join("usr/bin")).expect("bin");
    std::fs::create_dir_all(r.join("lib/systemd/system")).expect("units");
    std::fs::copy(common::edged(), r.join("usr/bin/edged")).expect("edged");
    std::fs::copy(repo().join("packaging/systemd/edged.service"), r.join("lib/systemd/system/edged.service"))
        .expect("unit");
    for e in std::fs::read_dir("/lib/systemd/system").expect("system units").flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "target") {
            let _ = std::fs::copy(&p, r.join("lib/systemd/system").join(e.file_name()));
        }
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", r.display()))
        .arg("/lib/systemd/system/edged.service")
        .output()
        .expect("systemd-analyze");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && !text.contains("edged.service:"), "{text}");
}

/// `edgectl doctor` with the daemon up and down: the store is left alone while edged holds
/// it and opened (format named) when it does not; a tokens file others can read fails.
#[test]
fn doctor_checks_the_box_with_and_without_the_daemon() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("store-box");
    let mut d = common::Daemon::start(&data, 50);
    let doctor = || {
        let out = Command::new(common::edgectl())
            .arg("--data-dir")
            .arg(&data)
            .args(["doctor", "--json", "--config"])
            .arg(data.join("config.toml"))
            .output()
            .expect("edgectl");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
        let by: std::collections::BTreeMap<String, (String, String)> = v
            .as_array()
            .expect("checks")
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or("").to_string(),
                    (c["level"].as_str().unwrap_or("").to_string(), c["detail"].as_str().unwrap_or("").to_string()),
                )
            })
            .collect();
        (out.status.code(), by)
    };
    let (code, by) = doctor();
    assert_eq!(by["config"].0, "ok", "{by:?}");
    assert!(by["store"].1.contains("in use by a running edged"), "{by:?}");
    assert_eq!(by["daemon"].0, "ok", "{by:?}");
    assert!(by.contains_key("disk") && by.contains_key("clock") && by.contains_key("tls trust store"), "{by:?}");
    assert_eq!(by["tokens"].0, "ok", "{by:?}");
    let any_fail = by.values().any(|(l, _)| l == "fail");
    assert_eq!(code, Some(if any_fail { 1 } else { 0 }), "exit 1 exactly when a check fails: {by:?}");
    assert_eq!(d.term(), Some(0));
    let (_, by) = doctor();
    assert!(by["store"].1.starts_with("opens; format 3"), "{by:?}");
    assert_eq!(by["daemon"].0, "warn", "{by:?}");
    std::fs::set_permissions(data.join("tokens.json"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (code, by) = doctor();
    assert_eq!((code, by["tokens"].0.as_str()), (Some(1), "fail"), "{by:?}");
}

/// A support bundle from a demo with card sales: everything a tech needs, and no card
/// number, no token and no secret anywhere in the archive. `edgectl logs` filters by level.
#[test]
fn a_support_bundle_holds_no_card_number_token_or_secret() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("box");
    let d = common::Daemon::start(&data, 50);
    for i in 0..3 {
        let r = d
            .http()
            .post(format!("{}/v1/sales", d.url))
            .bearer_auth(&d.tokens.cashier)
            .json(&serde_json::json!({"lines": [{"sku": "SKU-0000001", "qty": 1 + i}], "tenders": [{"type": "card"}]}))
            .send()
            .expect("card sale");
        assert_eq!(r.status(), 201);
    }
    let out_path = dir.path().join("bundle.tar.gz");
    let out = Command::new(common::edgectl())
        .arg("--data-dir")
        .arg(&data)
        .args(["bundle", "--out"])
        .arg(&out_path)
        .args(["--config"])
        .arg(data.join("config.toml"))
        .output()
        .expect("edgectl bundle");
    assert!(out.status.success(), "{out:?}");
    let x = dir.path().join("x");
    std::fs::create_dir_all(&x).expect("mkdir");
    let st = Command::new("tar").arg("xzf").arg(&out_path).arg("-C").arg(&x).status().expect("tar");
    assert!(st.success());
    let b = x.join("edge-bundle");
    for f in
        ["version.txt", "config.redacted.toml", "health.json", "devices.json", "sync.json", "metrics.txt", "edged.log"]
    {
        assert!(
            b.join(f).exists(),
            "{f} missing; notes: {}",
            std::fs::read_to_string(b.join("NOTES.txt")).unwrap_or_default()
        );
    }
    let mut all = Vec::new();
    for e in std::fs::read_dir(&b).expect("bundle").flatten() {
        all.extend(std::fs::read(e.path()).expect("read"));
    }
    let text = String::from_utf8_lossy(&all);
    let secret = std::fs::read_to_string(data.join("secrets/cloud.key")).expect("secret");
    let forbidden = [
        "6799998900000000019".to_string(),
        d.tokens.cashier.clone(),
        d.tokens.manager.clone(),
        d.tokens.tech.clone(),
        d.tokens.kiosk.clone(),
        secret.trim().to_string(),
    ];
    for f in &forbidden {
        assert!(!text.contains(f.as_str()), "the bundle leaks {f:?}");
    }
    assert!(text.contains("terminal") && text.contains("edged_"), "devices and metrics are in it");
    let logs = Command::new(common::edgectl())
        .arg("--data-dir")
        .arg(&data)
        .args(["logs", "--level", "info", "--grep", "payment"])
        .output()
        .expect("logs");
    let l = String::from_utf8_lossy(&logs.stdout);
    assert!(logs.status.success() && l.contains("payment") && l.lines().all(|x| x.contains("payment")), "{l}");
    let man = Command::new(common::edgectl()).arg("man").output().expect("man");
    assert!(String::from_utf8_lossy(&man.stdout).contains(".TH edgectl"));
    let comp = Command::new(common::edgectl()).args(["completions", "bash"]).output().expect("completions");
    assert!(String::from_utf8_lossy(&comp.stdout).contains("_edgectl"));
}
