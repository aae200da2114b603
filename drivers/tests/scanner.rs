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

/// HID POS framing over loopback TCP (the transport USB would be): reports split across
/// writes, codes over several reports, a cut-off report, a foreign report id, and a code
/// whose last report never comes.
#[test]
fn hid_pos_reports_over_tcp_give_whole_codes_and_name_what_is_wrong() {
    use edge_drivers::scanner::{HID_REPORT, HidScanner, encode_hid_reports};
    use edge_drivers::transport::TcpLink;
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let mut dev = TcpLink::connect("127.0.0.1", addr.port(), Duration::from_secs(2)).expect("connect");
    let (host, _) = l.accept().expect("accept");
    let mut scanner = HidScanner::new(Box::new(TcpLink::from_stream(host)));
    scanner.gap = Duration::from_millis(100);
    let next = |s: &mut HidScanner| s.next(Duration::from_secs(2)).expect("link").expect("a code");

    // One report, written in odd pieces.
    let one = encode_hid_reports(b"]E0", b"4006381333931").concat();
    for piece in one.chunks(7) {
        dev.write_all(piece).expect("write");
    }
    let s = next(&mut scanner).expect("valid");
    assert_eq!((s.aim.as_deref(), s.gtin.as_deref()), (Some("]E0"), Some("4006381333931")));

    // A GS1 code over two reports, and a second code right behind it.
    let long =
        "01040063813339311726033110".to_string() + &"L".repeat(20) + "\x1d21" + &"S".repeat(20) + "\x1d3103001250";
    let mut both = encode_hid_reports(b"]C1", long.as_bytes()).concat();
    assert!(both.len() >= 2 * HID_REPORT);
    both.extend(encode_hid_reports(b"]E0", b"96385074").concat());
    dev.write_all(&both).expect("write");
    let g = next(&mut scanner).expect("valid");
    assert_eq!((g.gtin.as_deref(), g.net_weight_g), (Some("04006381333931"), Some(1250)));
    assert_eq!(next(&mut scanner).expect("valid").gtin.as_deref(), Some("96385074"));

    // A report cut off: dropped after the gap, named, and the next code is fine.
    dev.write_all(&one[..30]).expect("write");
    let e = next(&mut scanner).expect_err("cut off").to_string();
    assert!(e.contains("cut off after 30 of 64"), "{e}");
    dev.write_all(&one).expect("write");
    assert!(next(&mut scanner).is_ok());

    // A report that is not the scanned-data report.
    let mut foreign = one.clone();
    foreign[0] = 0x05;
    dev.write_all(&foreign).expect("write");
    let e = next(&mut scanner).expect_err("foreign").to_string();
    assert!(e.contains("report id 0x05"), "{e}");

    // The first report of a two-report code, then silence: dropped, never half a barcode.
    let two = encode_hid_reports(b"]C1", long.as_bytes());
    dev.write_all(&two[0]).expect("write");
    let e = next(&mut scanner).expect_err("incomplete").to_string();
    assert!(e.contains("last report never came"), "{e}");
    dev.write_all(&one).expect("write");
    assert_eq!(next(&mut scanner).expect("valid").gtin.as_deref(), Some("4006381333931"));
    assert_eq!(scanner.communication_errors, 3);
    assert!(scanner.next(Duration::from_millis(50)).expect("link").is_none(), "nothing more");
}
