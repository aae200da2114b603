//! Serial scanners over a pty pair: suffixes, the inter-character gap, split and garbled
//! input.

use edge_drivers::scanner::{ScanError, ScannerSim, SerialScanner};
use edge_drivers::transport::{Link, SerialLink};
use std::time::Duration;

#[test]
fn codes_arrive_whole_however_the_bytes_are_split_and_bad_ones_are_named() {
    let (host, dev) = serialport::TTYPort::pair().expect("pty pair");
    let mut scanner = SerialScanner::new(Box::new(SerialLink::from_port(Box::new(host), "pty-host")));
    scanner.gap = Duration::from_millis(80);
    let mut dev = SerialLink::from_port(Box::new(dev), "pty-scanner");
    let sim = ScannerSim::default();

    // CR suffix with the AIM id.
    dev.write_all(&sim.frame("]E0", "4006381333931")).expect("write");
    let s = scanner.next(Duration::from_secs(2)).expect("link").expect("a code").expect("valid");
    assert_eq!((s.aim.as_deref(), s.gtin.as_deref()), (Some("]E0"), Some("4006381333931")));

    // CR LF, and two codes in one write.
    let crlf = ScannerSim { aim_prefix: false, suffix: b"\r\n".to_vec() };
    let mut both = crlf.frame("", "96385074");
    both.extend(crlf.frame("", "036000291452"));
    dev.write_all(&both).expect("write");
    let a = scanner.next(Duration::from_secs(2)).expect("link").expect("code").expect("valid");
    let b = scanner.next(Duration::from_secs(2)).expect("link").expect("code").expect("valid");
    assert_eq!((a.gtin.as_deref(), b.gtin.as_deref()), (Some("96385074"), Some("036000291452")));

    // Split byte by byte with pauses shorter than the gap: still one code.
    let gs1 = sim.frame("]C1", "01040063813339311726033110LOT42\x1d3103001250");
    for chunk in gs1.chunks(5) {
        dev.write_all(chunk).expect("write");
        std::thread::sleep(Duration::from_millis(10));
    }
    let g = scanner.next(Duration::from_secs(2)).expect("link").expect("code").expect("valid");
    assert_eq!(
        (g.lot.as_deref(), g.expiry.as_deref(), g.net_weight_g),
        (Some("LOT42"), Some("2026-03-31"), Some(1250))
    );

    // No suffix: the gap ends the code.
    let bare = ScannerSim { aim_prefix: true, suffix: vec![] };
    dev.write_all(&bare.frame("]E0", "4006381333931")).expect("write");
    let s = scanner.next(Duration::from_secs(2)).expect("link").expect("code").expect("valid");
    assert_eq!(s.gtin.as_deref(), Some("4006381333931"));

    // A misread check digit is refused with its reason; the next code is fine.
    dev.write_all(&sim.frame("]E0", "4006381333932")).expect("write");
    dev.write_all(&sim.frame("]E0", "4006381333931")).expect("write");
    assert_eq!(
        scanner.next(Duration::from_secs(2)).expect("link").expect("code"),
        Err(ScanError::CheckDigit("4006381333932".into()))
    );
    assert!(scanner.next(Duration::from_secs(2)).expect("link").expect("code").is_ok());

    // Line noise: control bytes are named, never turned into a barcode.
    dev.write_all(b"40\x0763\r").expect("write");
    assert_eq!(scanner.next(Duration::from_secs(2)).expect("link").expect("code"), Err(ScanError::Control(7)));

    // Nothing sent: nothing returned.
    assert_eq!(scanner.next(Duration::from_millis(100)).expect("link"), None);
}
