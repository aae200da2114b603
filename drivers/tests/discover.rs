//! Discovery over real ptys and loopback TCP: each simulator is identified by the probes
//! `edgectl devices scan` runs, a silent port is listed with its hint, and a port another
//! program holds is reported busy, never taken.

use edge_drivers::discover::{Targets, probe_serial, probe_tcp, scan};
use edge_drivers::display::DisplaySim;
use edge_drivers::escpos::sim::PrinterSim;
use edge_drivers::toledo::ScaleSim;
use edge_drivers::transport::{Peer, SerialLink, TcpLink, serve_peer};
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

static STOP: AtomicBool = AtomicBool::new(false);

/// A simulator on a pty; returns the path a driver opens.
fn on_pty<P: Peer + 'static>(peer: P) -> String {
    let (master, slave) = serialport::TTYPort::pair().expect("pty");
    let path = serialport::SerialPort::name(&slave).expect("name");
    std::thread::spawn(move || {
        let _keep = slave;
        let mut link = SerialLink::from_port(Box::new(master), "sim");
        let _ = serve_peer(&mut link, &Mutex::new(peer), &STOP);
    });
    path
}

#[test]
fn every_simulator_is_identified_by_its_probe() {
    let printer = on_pty(PrinterSim::new());
    let scale = on_pty(ScaleSim::with_load(1234));
    let display = on_pty(DisplaySim::default());

    let p = probe_serial(&printer);
    assert_eq!((p.kind.as_deref(), p.supported), (Some("printer"), true), "{p:?}");
    assert!(p.uri.starts_with("serial://") && p.detail.contains("DLE EOT 1"), "{p:?}");

    let s = probe_serial(&scale);
    assert_eq!(s.kind.as_deref(), Some("scale"), "{s:?}");
    assert!(s.uri.contains("data=7") && s.uri.contains("parity=even"), "the URI carries 7E1: {s:?}");

    let d = probe_serial(&display);
    assert_eq!((d.kind.as_deref(), d.supported), (None, false), "{d:?}");
    assert!(d.detail.contains("pole display"), "{d:?}");

    // A TCP printer.
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let sim = Mutex::new(PrinterSim::new());
        for s in l.incoming().flatten() {
            let _ = serve_peer(&mut TcpLink::from_stream(s), &sim, &STOP);
        }
    });
    let t = probe_tcp(&format!("127.0.0.1:{port}"));
    assert_eq!(t.kind.as_deref(), Some("printer"), "{t:?}");

    // The whole scan, with USB (none here: named in the notes, not a panic).
    let r = scan(&Targets {
        paths: vec![printer.clone(), scale.clone()],
        tcp: vec![format!("127.0.0.1:{port}")],
        system_serial: false,
        usb: true,
    });
    let kinds: Vec<Option<&str>> = r.found.iter().take(3).map(|f| f.kind.as_deref()).collect();
    assert_eq!(kinds, [Some("printer"), Some("scale"), Some("printer")]);
    if !std::path::Path::new("/dev/bus/usb").exists() {
        // libusb either cannot start or finds nothing: either way it is said, not a panic.
        assert!(r.notes.iter().any(|n| n.starts_with("no USB") || n.starts_with("USB: no devices")), "{:?}", r.notes);
    }
}

#[test]
fn a_port_held_by_another_program_is_busy_and_a_talking_scanner_is_heard() {
    let (master, slave) = serialport::TTYPort::pair().expect("pty");
    let path = serialport::SerialPort::name(&slave).expect("name");
    // The pty's device end opened exclusively, as edged opens the devices it drives.
    let held = serialport::new(&path, 9600).open_native().expect("open");
    let f = probe_serial(&path);
    assert!(!f.supported && f.detail.contains("busy"), "{f:?}");
    drop(held);

    // A scanner that sends a code while the probe listens.
    let mut dev = SerialLink::from_port(Box::new(master), "scanner");
    let t = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(100));
        edge_drivers::transport::Link::write_all(&mut dev, b"]E04006381333931\r").expect("write");
        dev
    });
    let f = probe_serial(&path);
    let _dev = t.join().expect("join");
    drop(slave);
    assert_eq!(f.kind.as_deref(), Some("scanner"), "{f:?}");
}
