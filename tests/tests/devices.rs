//! Devices end to end: the real `edged demo` drives a printer simulator on loopback TCP and
//! a scanner on a pty pair that this test holds (`--device KIND=URI`); the other kinds are
//! the demo's own simulators.

mod common;

use common::Daemon;
use edge_drivers::escpos::sim::PrinterSim;
use edge_drivers::transport::{Link, SerialLink, TcpLink, serve_peer};
use serde_json::{Value, json};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn a_sale_prints_its_receipt_and_scans_reach_the_event_stream() {
    use futures_util::StreamExt;
    // The printer: a simulator on loopback TCP.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let printer = Arc::new(Mutex::new(PrinterSim::new()));
    let p2 = printer.clone();
    let stop: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let mut link = TcpLink::from_stream(s);
            let _ = serve_peer(&mut link, p2.as_ref(), stop);
        }
    });
    // The scanner: the device end of a pty pair.
    let (master, slave) = serialport::TTYPort::pair().expect("pty");
    let path = serialport::SerialPort::name(&slave).expect("pty name");
    let mut scanner = SerialLink::from_port(Box::new(master), "test-scanner");

    let dir = tempfile::tempdir().expect("tmp");
    let printer_arg = format!("printer=tcp://127.0.0.1:{port}");
    let scanner_arg = format!("scanner=serial://{path}");
    let d = Daemon::start_with(dir.path(), 100, &["--device", &printer_arg, "--device", &scanner_arg]);
    let http = d.http();

    // Every kind is listed; the given ones with their URIs.
    let deadline = Instant::now() + Duration::from_secs(10);
    let list = loop {
        let v: Value = http
            .get(format!("{}/v1/devices", d.url))
            .bearer_auth(&d.tokens.kiosk)
            .send()
            .expect("get")
            .json()
            .expect("json");
        let all_online =
            v["devices"].as_array().is_some_and(|a| a.len() == 5 && a.iter().all(|x| x["state"] == "online"));
        if all_online {
            break v;
        }
        assert!(Instant::now() < deadline, "devices not online: {v}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let printer_out =
        list["devices"].as_array().expect("list").iter().find(|x| x["id"] == "printer").cloned().expect("printer");
    assert_eq!(printer_out["uri"], format!("tcp://127.0.0.1:{port}"));
    assert!(printer_out["health"].as_str().unwrap_or("").contains("online"), "{printer_out}");

    // A sale prints its receipt once, with the lines and the total.
    let body =
        json!({"lines": [{"sku": "SKU-0000001", "qty": 2}], "tenders": [{"type": "cash", "amount_minor": 100_000}]});
    let sale: Value = http
        .post(format!("{}/v1/sales", d.url))
        .bearer_auth(&d.tokens.cashier)
        .json(&body)
        .send()
        .expect("post")
        .json()
        .expect("sale");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let jobs = printer.lock().expect("sim").jobs().to_vec();
        if let Some(j) = jobs.first() {
            assert_eq!(jobs.len(), 1);
            assert!(j.text.contains("Demo Store") && j.text.contains("SUMME"), "{}", j.text);
            assert!(j.text.contains(sale["receipt_no"].as_str().expect("receipt number")), "{}", j.text);
            break;
        }
        assert!(Instant::now() < deadline, "no receipt printed");
        std::thread::sleep(Duration::from_millis(50));
    }

    // A scan arrives as a `scan` event with the GTIN checked and the AIM id stripped.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    rt.block_on(async {
        let ws_url = format!("{}/v1/events?access_token={}", d.url.replace("http://", "ws://"), d.tokens.kiosk);
        let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.expect("ws");
        // The stream's first message (sync.status) means this client is subscribed.
        let _ = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("first message");
        scanner.write_all(b"]E04006381333931\r").expect("scan");
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .unwrap_or_else(|_| panic!("no scan event in 10 s; edged log:\n{}", d.log()))
                .expect("msg")
                .expect("ok");
            let v: Value = serde_json::from_str(m.to_text().expect("text")).expect("json");
            if v["type"] == "scan" {
                assert_eq!(v["gtin"], "4006381333931");
                assert_eq!(v["aim"], "]E0");
                assert_eq!(v["device"], "scanner");
                break;
            }
        }
    });
    let out = std::process::Command::new(common::edgectl())
        .arg("--data-dir")
        .arg(dir.path())
        .args(["devices"])
        .output()
        .expect("edgectl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("printer") && text.contains("scanner") && text.contains("online"),
        "{text}"
    );

    // The field tech's checks, through edgectl and the API.
    let edgectl = |args: &[&str]| {
        let out = std::process::Command::new(common::edgectl())
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .output()
            .expect("edgectl");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string())
    };
    let (code, text) = edgectl(&["devices", "test", "printer"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("passed"), "{text}");
    let jobs = printer.lock().expect("sim").jobs().to_vec();
    assert!(jobs.len() == 2 && jobs[1].text.contains("TEST PAGE"), "a test page was printed: {jobs:?}");
    let (code, text) = edgectl(&["devices", "stats", "printer", "--json"]);
    let stats: Value = serde_json::from_str(&text).expect("json");
    assert_eq!((code, &stats["stats"]["DeviceCategory"]), (Some(0), &json!("POSPrinter")), "{text}");
    let (code, text) = edgectl(&["devices", "health", "display", "--level", "bogus"]);
    assert_eq!(code, Some(1), "a bad level is refused: {text}");
    let (code, _) = edgectl(&["devices", "stats", "no-such-device"]);
    assert_eq!(code, Some(1));
    // The interactive scanner check waits for a code scanned at the device.
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        scanner.write_all(b"]E096385074\r").expect("scan");
        scanner
    });
    let (code, text) = edgectl(&["devices", "health", "scanner", "--level", "interactive"]);
    let _scanner = writer.join().expect("writer");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("96385074") && text.contains("]E0"), "{text}");
    // The cash drawer kicks through the printer (cashier), and its sensor reads open.
    let r: Value = http
        .post(format!("{}/v1/drawer/open", d.url))
        .bearer_auth(&d.tokens.cashier)
        .send()
        .expect("post")
        .json()
        .expect("json");
    assert_eq!(r["open"], true, "{r}");
    assert_eq!(printer.lock().expect("sim").drawer_kicks, 2, "once for the cash sale, once asked");
    let r = http
        .post(format!("{}/v1/devices/printer/health", d.url))
        .bearer_auth(&d.tokens.kiosk)
        .json(&json!({"level": "internal"}))
        .send()
        .expect("post");
    assert_eq!(r.status(), 403, "customers cannot run device checks");
    drop(slave);
}

/// `edgectl devices scan` probes what is attached, without the daemon.
#[test]
fn edgectl_scan_identifies_attached_simulators() {
    let stop: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
    let mut paths = Vec::new();
    let mut keep = Vec::new();
    for kind in ["printer", "scale", "display"] {
        let (master, slave) = serialport::TTYPort::pair().expect("pty");
        paths.push(serialport::SerialPort::name(&slave).expect("name"));
        keep.push(slave);
        std::thread::spawn(move || {
            let mut link = SerialLink::from_port(Box::new(master), kind);
            let _ = match kind {
                "printer" => serve_peer(&mut link, &Mutex::new(PrinterSim::new()), stop),
                "scale" => serve_peer(&mut link, &Mutex::new(edge_drivers::toledo::ScaleSim::with_load(0)), stop),
                _ => serve_peer(&mut link, &Mutex::new(edge_drivers::display::DisplaySim::default()), stop),
            };
        });
    }
    let mut args = vec!["devices".to_string(), "scan".into(), "--no-serial".into(), "--json".into()];
    for p in &paths {
        args.extend(["--path".to_string(), p.clone()]);
    }
    let out = std::process::Command::new(common::edgectl()).args(&args).output().expect("edgectl");
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let kinds: Vec<&Value> = v["found"].as_array().expect("found").iter().map(|f| &f["kind"]).collect();
    assert_eq!(kinds, [&json!("printer"), &json!("scale"), &Value::Null], "{v}");
    assert_eq!(v["found"][2]["supported"], false, "the display is listed, as not identified: {v}");
    assert!(v["notes"].as_array().is_some_and(|n| !n.is_empty()), "USB is named in the notes here: {v}");
    drop(keep);
}

/// `edge-lab sim` as its own process: a scanner on a pty symlinked at `--link` and a
/// printer on `--tcp`, driven by the real edged and steered through stdin.
#[test]
fn standalone_simulators_serve_edged_over_a_link_and_tcp() {
    use futures_util::StreamExt;
    use std::io::{BufRead, Write};
    use std::process::{Command, Stdio};
    fn edge_lab() -> std::path::PathBuf {
        edge_tests::support::bin("edge-lab")
    }
    let dir = tempfile::tempdir().expect("tmp");
    let start = |args: &[&str]| {
        let mut c = Command::new(edge_lab())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("edge-lab");
        let mut out = std::io::BufReader::new(c.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("READY");
        assert!(line.starts_with("READY "), "{line}");
        (c, out, line.trim().to_string())
    };
    let link = dir.path().join("scanner");
    let (mut scanner, _sout, _) = start(&["sim", "scanner", "--link", link.to_str().expect("path")]);
    let (mut printer, mut pout, ready) = start(&["sim", "printer", "--tcp", "127.0.0.1:0"]);
    let printer_uri = ready.trim_start_matches("READY ").to_string();

    let data = dir.path().join("edge");
    let d = Daemon::start_with(
        &data,
        100,
        &["--device", &format!("scanner=serial://{}", link.display()), "--device", &format!("printer={printer_uri}")],
    );
    let http = d.http();
    let body =
        json!({"lines": [{"sku": "SKU-0000001", "qty": 1}], "tenders": [{"type": "cash", "amount_minor": 100_000}]});
    let r = http.post(format!("{}/v1/sales", d.url)).bearer_auth(&d.tokens.cashier).json(&body).send().expect("sale");
    assert_eq!(r.status().as_u16(), 201);

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    rt.block_on(async {
        let ws_url = format!("{}/v1/events?access_token={}", d.url.replace("http://", "ws://"), d.tokens.kiosk);
        let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.expect("ws");
        let _ = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("first message");
        let stdin = scanner.stdin.as_mut().expect("stdin");
        writeln!(stdin, "]C101040063813339311726033110LOT42").expect("scan");
        stdin.flush().expect("flush");
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .unwrap_or_else(|_| panic!("no scan event; edged log:\n{}", d.log()))
                .expect("msg")
                .expect("ok");
            let v: Value = serde_json::from_str(m.to_text().expect("text")).expect("json");
            if v["type"] == "scan" {
                assert_eq!(
                    (v["gtin"].as_str(), v["lot"].as_str(), v["expiry"].as_str()),
                    (Some("04006381333931"), Some("LOT42"), Some("2026-03-31"))
                );
                break;
            }
        }
    });
    // The receipt, as the standalone printer rendered it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let stdin = printer.stdin.as_mut().expect("stdin");
    let mut seen = String::new();
    while !seen.contains("SUMME") {
        assert!(Instant::now() < deadline, "no receipt: {seen}");
        writeln!(stdin, "jobs").expect("jobs");
        stdin.flush().expect("flush");
        // Every dump ends with an "end of jobs" line, so this never waits for nothing.
        loop {
            let mut line = String::new();
            if pout.read_line(&mut line).expect("stdout") == 0 || line.starts_with("--- end of jobs") {
                break;
            }
            seen.push_str(&line);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = scanner.kill();
    let _ = printer.kill();
    let _ = scanner.wait();
    let _ = printer.wait();
}

/// A weighed item sold with the scale's weight: only a stable, in-range weight sells.
#[test]
fn a_weighed_item_takes_only_a_stable_weight_from_the_scale() {
    use std::io::{BufRead, Write};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().expect("tmp");
    let link = dir.path().join("scale");
    let mut scale = Command::new(edge_tests::support::bin("edge-lab"))
        .args(["sim", "scale", "--link", link.to_str().expect("path")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("edge-lab");
    let mut line = String::new();
    std::io::BufReader::new(scale.stdout.take().expect("stdout")).read_line(&mut line).expect("READY");
    assert!(line.starts_with("READY"), "{line}");
    let d =
        Daemon::start_with(&dir.path().join("edge"), 100, &["--device", &format!("scale=serial://{}", link.display())]);
    let http = d.http();
    let sku = (0..100)
        .map(edge_sync::demo::demo_item)
        .find(|i| i.kind == edge_sync::domain::ItemKind::Weight)
        .expect("a weighed item")
        .sku;
    let stdin = scale.stdin.as_mut().expect("stdin");
    let mut steer = |cmd: &str| {
        writeln!(stdin, "{cmd}").expect("steer");
        stdin.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(100));
    };
    let sell_with = |key: Option<&str>| {
        let body = json!({"lines": [{"sku": sku, "from_scale": true}], "tenders": [{"type": "cash", "amount_minor": 1_000_000}]});
        let mut r = http.post(format!("{}/v1/sales", d.url)).bearer_auth(&d.tokens.cashier).json(&body);
        if let Some(k) = key {
            r = r.header("Idempotency-Key", k);
        }
        let r = r.send().expect("post");
        (r.status().as_u16(), r.json::<Value>().expect("json"))
    };
    let sell = || sell_with(None);
    steer("weight 1250");
    let (st, v) = sell_with(Some("weighed-1"));
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["lines"][0]["weight_g"], 1250, "{v}");
    steer("motion on");
    // A retry of the same request answers with the first sale: the scale is not asked again.
    let (st, again) = sell_with(Some("weighed-1"));
    assert_eq!((st, &again["id"], &again["lines"][0]["weight_g"]), (201, &v["id"], &json!(1250)), "{again}");
    let (st, v) = sell();
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["field"], "lines[0].from_scale", "{v}");
    assert!(v["detail"].as_str().unwrap_or("").contains("not stable"), "{v}");
    steer("motion off");
    steer("weight 20000");
    let (st, v) = sell();
    assert_eq!(st, 422, "{v}");
    assert!(v["detail"].as_str().unwrap_or("").contains("capacity"), "{v}");
    let _ = scale.kill();
    let _ = scale.wait();
}
