//! The ESC/POS driver against its simulated peer over real OS interfaces: loopback TCP and
//! a pty pair (`serialport::TTYPort::pair`).

use edge_drivers::escpos::sim::{PrinterSim, serve};
use edge_drivers::escpos::{Align, JobOutcome, Printer, Receipt, Symbology};
use edge_drivers::model::{DeviceError, DeviceEvent, HealthLevel};
use edge_drivers::transport::{Link, SerialLink, TcpLink};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Served {
    sim: Arc<Mutex<PrinterSim>>,
    stop: Arc<AtomicBool>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A simulated printer on loopback TCP; returns it and a ready driver.
fn tcp_printer() -> (Served, Printer) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let sim = Arc::new(Mutex::new(PrinterSim::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let (s2, st2) = (sim.clone(), stop.clone());
    std::thread::spawn(move || {
        if let Ok((stream, _)) = listener.accept() {
            let mut link = TcpLink::from_stream(stream);
            let _ = serve(&mut link, &s2, &st2);
        }
    });
    let link = TcpLink::connect("127.0.0.1", port, Duration::from_secs(2)).expect("connect");
    let mut p = Printer::new("printer-1", Box::new(link));
    p.lifecycle.open().expect("open");
    p.lifecycle.claim("edged").expect("claim");
    p.lifecycle.enable().expect("enable");
    (Served { sim, stop }, p)
}

fn receipt() -> Receipt {
    Receipt::new(19)
        .align(Align::Center)
        .double(true, true)
        .line("Demo Store")
        .double(false, false)
        .align(Align::Left)
        .bold(true)
        .line("2 x Light Juice 250 g   51,40 €")
        .bold(false)
        .underline(true)
        .line("Grüße")
        .underline(false)
        .barcode(Symbology::Ean13, "4006381333931")
        .expect("ean")
        .qr("https://example.com/r/0193")
        .expect("qr")
        .raster(2, 2, &[0xFF, 0x00, 0x0F, 0xF0])
        .expect("raster")
        .cut()
}

#[test]
fn a_receipt_prints_once_and_renders_as_text() {
    let (served, mut p) = tcp_printer();
    let (o, events) = p.print("sale-1", &receipt()).expect("print");
    assert_eq!(o, JobOutcome::Printed);
    assert!(events.iter().any(|e| matches!(e, DeviceEvent::OutputComplete { output_id, .. } if output_id == "sale-1")));
    {
        let sim = served.sim.lock().expect("sim");
        assert_eq!(sim.jobs().len(), 1);
        let t = &sim.jobs()[0].text;
        for want in [
            "Demo Store\n",
            "2 x Light Juice 250 g   51,40 €\n",
            "Grüße\n",
            "[BARCODE EAN13 4006381333931]",
            "[QR https://example.com/r/0193]",
            "[IMAGE 16x2]",
        ] {
            assert!(t.contains(want), "{want:?} not in {t:?}");
        }
        assert!(sim.errors().is_empty(), "{:?}", sim.errors());
    }
    // The same job id again is refused: never two receipts by accident.
    let again = p.print("sale-1", &receipt());
    assert!(matches!(again, Err(DeviceError::Illegal(ref w)) if w.contains("printed already")), "{again:?}");
    // A reprint on purpose is marked as a copy.
    let (o, _) = p.reprint("sale-1", &receipt()).expect("reprint");
    assert_eq!(o, JobOutcome::Printed);
    let sim = served.sim.lock().expect("sim");
    assert_eq!(sim.jobs().len(), 2);
    assert!(sim.jobs()[1].text.starts_with("*** COPY ***\n"), "{:?}", sim.jobs()[1].text);
}

#[test]
fn a_printer_that_cannot_print_gets_nothing_and_the_job_can_print_later() {
    let (served, mut p) = tcp_printer();
    served.sim.lock().expect("sim").condition.paper_end = true;
    let (o, events) = p.print("sale-2", &receipt()).expect("print");
    assert_eq!(o, JobOutcome::NotPrinted("paper end".into()));
    assert!(
        events.iter().any(|e| matches!(e, DeviceEvent::StatusUpdate { status, .. } if status.contains("paper end")))
    );
    assert!(served.sim.lock().expect("sim").jobs().is_empty());
    served.sim.lock().expect("sim").condition.paper_end = false;
    served.sim.lock().expect("sim").condition.cover_open = true;
    assert_eq!(p.print("sale-2", &receipt()).expect("print").0, JobOutcome::NotPrinted("cover open".into()));
    served.sim.lock().expect("sim").condition.cover_open = false;
    served.sim.lock().expect("sim").condition.paper_near_end = true;
    let (o, events) = p.print("sale-2", &receipt()).expect("print");
    assert_eq!(o, JobOutcome::Printed);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, DeviceEvent::StatusUpdate { status, .. } if status.contains("paper near end")))
    );
    assert_eq!(served.sim.lock().expect("sim").jobs().len(), 1);
}

#[test]
fn the_drawer_opens_and_its_sensor_is_read() {
    let (served, mut p) = tcp_printer();
    assert!(!p.status().expect("status").drawer_open);
    assert!(p.open_drawer().expect("kick"));
    assert_eq!(served.sim.lock().expect("sim").drawer_kicks, 1);
    served.sim.lock().expect("sim").condition.drawer_open = false;
    assert!(!p.status().expect("status").drawer_open);
    assert!(p.check_health(HealthLevel::Internal).expect("health").contains("online"));
    let ext = p.check_health(HealthLevel::External).expect("health");
    assert!(ext.contains("Printed"), "{ext}");
    assert!(served.sim.lock().expect("sim").jobs()[0].text.contains("TEST PAGE"));
}

#[test]
fn a_job_whose_outcome_is_unknown_is_never_printed_again_blindly() {
    // A printer that answers the status before the job, takes the job and then goes away.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut buf = [0u8; 3];
        for _ in 0..4 {
            s.read_exact(&mut buf).expect("dle eot");
            s.write_all(&[0x12]).expect("status");
        }
        let mut job = vec![0u8; 16];
        let _ = s.read(&mut job);
        drop(s); // power cut mid-job
    });
    let link = TcpLink::connect("127.0.0.1", port, Duration::from_secs(2)).expect("connect");
    let mut p = Printer::new("printer-2", Box::new(link));
    p.set_reply_timeout(Duration::from_millis(300));
    p.lifecycle.open().expect("open");
    p.lifecycle.claim("edged").expect("claim");
    p.lifecycle.enable().expect("enable");
    let (o, events) = p.print("sale-3", &receipt()).expect("print");
    assert!(matches!(o, JobOutcome::InDoubt(_)), "{o:?}");
    assert!(events.iter().any(|e| matches!(e, DeviceEvent::Error { retry: false, .. })));
    let again = p.print("sale-3", &receipt());
    assert!(matches!(again, Err(DeviceError::Illegal(ref w)) if w.contains("may have printed")), "{again:?}");
}

#[test]
fn a_garbled_status_reply_is_named_and_a_silent_printer_times_out() {
    for (reply, want) in [(Some(0xFFu8), "not a status byte"), (None, "no answer to DLE EOT 1")] {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut buf = [0u8; 3];
            while s.read_exact(&mut buf).is_ok() {
                if let Some(r) = reply {
                    let _ = s.write_all(&[r]);
                }
            }
        });
        let link = TcpLink::connect("127.0.0.1", port, Duration::from_secs(2)).expect("connect");
        let mut p = Printer::new("printer-3", Box::new(link));
        p.set_reply_timeout(Duration::from_millis(200));
        let e = p.status().expect_err("bad status");
        assert!(e.to_string().contains(want), "{e}");
        assert_eq!(p.lifecycle.stats.report()["CommunicationErrorCount"], "1");
    }
}

#[test]
fn a_disabled_printer_refuses_jobs() {
    let (_served, mut p) = tcp_printer();
    p.lifecycle.disable().expect("disable");
    assert_eq!(p.print("x", &receipt()).map(|r| r.0), Err(DeviceError::Disabled));
}

#[test]
fn the_printer_works_over_a_pty_pair() {
    let (host, dev) = serialport::TTYPort::pair().expect("pty pair");
    let sim = Arc::new(Mutex::new(PrinterSim::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let (s2, st2) = (sim.clone(), stop.clone());
    let t = std::thread::spawn(move || {
        let mut link = SerialLink::from_port(Box::new(dev), "pty-device");
        let _ = serve(&mut link, &s2, &st2);
    });
    let mut p = Printer::new("printer-pty", Box::new(SerialLink::from_port(Box::new(host), "pty-host")));
    p.lifecycle.open().expect("open");
    p.lifecycle.claim("edged").expect("claim");
    p.lifecycle.enable().expect("enable");
    let (o, _) = p.print("sale-pty", &receipt()).expect("print");
    assert_eq!(o, JobOutcome::Printed);
    assert!(sim.lock().expect("sim").jobs()[0].text.contains("[BARCODE EAN13 4006381333931]"));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    t.join().expect("sim thread");
}

#[test]
fn garbage_split_and_interleaved_input_never_panics_the_simulator() {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut sim = PrinterSim::new();
    for round in 0..2000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 64) as usize;
        let bytes: Vec<u8> = (0..len).map(|i| (x >> (i % 8 * 8)) as u8 ^ round as u8).collect();
        let _ = sim.feed(&bytes);
    }
    // A real job split in single bytes still parses.
    let mut clean = PrinterSim::new();
    let job = receipt();
    let mut replies = Vec::new();
    for b in job.bytes() {
        replies.extend(clean.feed(std::slice::from_ref(b)));
    }
    assert!(replies.is_empty());
    assert_eq!(clean.jobs().len(), 1);
    assert!(clean.jobs()[0].text.contains("[QR https://example.com/r/0193]"));
    // A wrong check digit is shown as such.
    let mut s = PrinterSim::new();
    s.feed(Receipt::new(0).barcode(Symbology::Ean13, "4006381333932").expect("ean").cut().bytes());
    assert!(s.jobs()[0].text.contains("check digit wrong"), "{:?}", s.jobs());
    // An unknown command is recorded and skipped.
    let mut s = PrinterSim::new();
    s.feed(&[0x1B, 0x7F, b'h', b'i', 0x1D, 0x56, 0x00]);
    assert_eq!(s.jobs()[0].text, "hi");
    assert_eq!(s.errors().len(), 1);
}

#[test]
fn links_say_when_the_peer_is_gone() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || drop(listener.accept()));
    let mut link = TcpLink::connect("127.0.0.1", port, Duration::from_secs(2)).expect("connect");
    std::thread::sleep(Duration::from_millis(100));
    let mut buf = [0u8; 8];
    assert!(matches!(link.read(&mut buf, Duration::from_millis(200)), Err(edge_drivers::transport::LinkError::Closed)));
    let refused = TcpLink::connect("127.0.0.1", 1, Duration::from_millis(500));
    assert!(refused.is_err_and(|e| e.to_string().contains("tcp://127.0.0.1:1")));
}
