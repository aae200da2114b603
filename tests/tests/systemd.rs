//! edged under systemd's notify protocol: READY once the API answers, WATCHDOG pings at
//! half the interval with a STATUS line, STOPPING on SIGTERM. The notify socket is a unix
//! datagram socket this test binds, as systemd does.

mod common;

use common::Daemon;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

#[test]
fn edged_speaks_the_systemd_notify_protocol() {
    let dir = tempfile::tempdir().expect("tmp");
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let sock_env = sock_path.display().to_string();
    let mut d = Daemon::start_env(
        &dir.path().join("edged"),
        &dir.path().join("edged.log"),
        100,
        &[],
        &[("NOTIFY_SOCKET", &sock_env), ("WATCHDOG_USEC", "400000")],
    );
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && got.iter().filter(|m: &&String| m.contains("WATCHDOG=1")).count() < 2 {
        let n = sock.recv(&mut buf).expect("a notification");
        got.push(String::from_utf8_lossy(&buf[..n]).to_string());
    }
    assert!(got[0].contains("READY=1"), "READY first: {got:?}");
    let ping = got.iter().find(|m| m.contains("WATCHDOG=1")).expect("watchdog pings");
    assert!(ping.contains("STATUS=serving;") && ping.contains("devices"), "{ping}");
    assert_eq!(d.term(), Some(0));
    let mut stopping = false;
    sock.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
    while let Ok(n) = sock.recv(&mut buf) {
        stopping |= String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1");
    }
    assert!(stopping, "STOPPING on SIGTERM");
}
