//! The ZVT host side against the simulated terminal, over loopback TCP (plain APDUs) and a
//! pty pair (DLE STX framing, CRC, ACK / NAK): every command, outcomes by rule, NAKs, bad
//! CRCs, garbage between frames, timeouts and a terminal that answers nothing.

use edge_drivers::transport::{Link, SerialLink, TcpLink, serve_peer};
use edge_drivers::zvt::host::{Event, Framing, Terminal, Timeouts};
use edge_drivers::zvt::sim::{Kind, Rule, SimFraming, TerminalPeer, TerminalSim};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

static STOP: AtomicBool = AtomicBool::new(false);

/// A terminal simulator and a host connected to it, over TCP or a pty.
fn connect(framing: Framing) -> (Terminal, Arc<Mutex<TerminalPeer>>) {
    let sim_framing = if framing == Framing::Serial { SimFraming::Serial } else { SimFraming::Plain };
    let peer = Arc::new(Mutex::new(TerminalPeer::new(TerminalSim::default(), sim_framing)));
    let p2 = peer.clone();
    let link: Box<dyn Link> = match framing {
        Framing::Plain => {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let port = l.local_addr().expect("addr").port();
            std::thread::spawn(move || {
                for s in l.incoming().flatten() {
                    let _ = serve_peer(&mut TcpLink::from_stream(s), p2.as_ref(), &STOP);
                }
            });
            Box::new(TcpLink::connect("127.0.0.1", port, Duration::from_secs(2)).expect("connect"))
        }
        Framing::Serial => {
            let (dev, path, host) = SerialLink::pty("pt").expect("pty");
            let _ = path;
            std::thread::spawn(move || {
                let mut dev = dev;
                let _ = serve_peer(&mut dev, p2.as_ref(), &STOP);
            });
            Box::new(SerialLink::from_port(Box::new(host), "ecr"))
        }
    };
    let mut t = Terminal::new("terminal", link, framing, 123456, 978);
    t.timeouts = Timeouts { ack: Duration::from_millis(800), idle: Duration::from_millis(1500) };
    (t, peer)
}

fn every_command_and_outcome(framing: Framing) {
    let (mut t, peer) = connect(framing);
    let mut events = Vec::new();
    let mut on = |e: Event| events.push(e);
    assert!(t.register(&mut on).expect("registration").approved);

    // Approved, with prompts, status information and the terminal's receipt.
    let o = t.authorise(1234, &mut on).expect("authorisation");
    assert!(o.approved, "{o:?}");
    let info = o.info.clone().expect("status information");
    assert_eq!((info.amount_minor, info.result), (Some(1234), Some(0)));
    assert_eq!(info.pan_masked.as_deref(), Some("679999*********0019"));
    assert!(o.receipt.iter().any(|l| l == "APPROVED"), "{:?}", o.receipt);
    assert!(events.iter().any(|e| matches!(e, Event::Prompt { text, .. } if text == "Insert card")));
    let receipt = info.receipt_no.expect("receipt number");

    // A decline names its reason; an abort says aborted.
    peer.lock().expect("sim").sim.rules.extend([Rule::Decline(0x05), Rule::Abort]);
    let d = t.authorise(500, &mut |_| {}).expect("declined");
    assert!(!d.approved && d.text.contains("declined by the card issuer"), "{d:?}");
    let a = t.authorise(500, &mut |_| {}).expect("aborted");
    assert_eq!((a.approved, a.code), (false, 0x6C));

    // Repeat receipt gives the last transaction again; reversal undoes the approved one.
    let r = t.repeat_receipt(&mut |_| {}).expect("repeat");
    assert_eq!(r.receipt.first().map(String::as_str), Some("** COPY **"));
    let v = t.reverse(receipt, &mut |_| {}).expect("reversal");
    assert!(v.approved, "{v:?}");
    let again = t.reverse(receipt, &mut |_| {}).expect("reversal twice");
    assert_eq!((again.approved, again.text.as_str()), (false, "already reversed"));

    // Refund, status enquiry, diagnosis, end-of-day.
    assert!(t.refund(300, &mut |_| {}).expect("refund").approved);
    let s = t.status_enquiry(&mut |_| {}).expect("status");
    assert_eq!(s.info.and_then(|i| i.text).as_deref(), Some("READY"));
    assert!(t.diagnosis(&mut |_| {}).expect("diagnosis").approved);
    let eod = t.end_of_day(&mut |_| {}).expect("end of day");
    assert!(eod.approved && eod.receipt.iter().any(|l| l.starts_with("TRANSACTIONS")), "{eod:?}");

    // The terminal refuses a command: 84 xx, nothing charged, not in doubt.
    peer.lock().expect("sim").sim.rules.push_back(Rule::Refuse(0x83));
    let e = t.authorise(100, &mut |_| {}).expect_err("refused");
    assert!(!e.in_doubt && e.to_string().contains("function not possible"), "{e}");

    // Accepted, then silence: in doubt (ask before charging again).
    peer.lock().expect("sim").sim.rules.push_back(Rule::CrashAfterApproving);
    let e = t.authorise(700, &mut |_| {}).expect_err("silence");
    assert!(e.in_doubt, "{e}");
    let r = t.repeat_receipt(&mut |_| {}).expect("repeat after crash");
    assert_eq!(r.info.as_ref().and_then(|i| i.amount_minor), Some(700), "the terminal charged it: {r:?}");

    // Not even an acknowledgement.
    peer.lock().expect("sim").sim.rules.push_back(Rule::Hang);
    let e = t.authorise(800, &mut |_| {}).expect_err("hang");
    assert!(e.to_string().contains("no answer"), "{e}");

    let p = peer.lock().expect("sim");
    let j = p.sim.journal();
    assert_eq!(j.iter().filter(|e| e.kind == Kind::Payment && e.result == 0).count(), 2);
    assert_eq!(p.sim.net_charged(), -300 + 700, "reversed 1234, refunded 300, charged 700 in doubt");
}

#[test]
fn every_command_over_tcp() {
    every_command_and_outcome(Framing::Plain);
}

#[test]
fn every_command_over_a_pty_with_framing() {
    every_command_and_outcome(Framing::Serial);
}

#[test]
fn serial_naks_bad_crcs_and_garbage_are_survived() {
    let (mut t, peer) = connect(Framing::Serial);
    // The terminal's next two frames arrive with a wrong CRC: the host NAKs, gets them again.
    peer.lock().expect("sim").corrupt_next = 2;
    let o = t.authorise(1010, &mut |_| {}).expect("authorisation through bad CRCs");
    assert!(o.approved);
    assert!(t.link_errors() >= 2, "bad frames are counted: {}", t.link_errors());
    assert_eq!(peer.lock().expect("sim").naks_received, 2);
}

#[test]
fn garbage_between_frames_is_skipped_and_a_garbled_frame_is_nakked() {
    use edge_drivers::zvt::Apdu;
    use edge_drivers::zvt::transport::{ACK, NAK, SerialZvt, ZvtLink, frame};
    let (mut dev, _path, host) = SerialLink::pty("pt").expect("pty");
    let mut z = SerialZvt::new(Box::new(SerialLink::from_port(Box::new(host), "ecr")));
    let a = Apdu::new(0x04, 0xFF, vec![0x0A]);
    let mut bytes = vec![0x00, 0x55, 0xFF];
    bytes.extend(frame(&a));
    let mut bad = frame(&Apdu::new(0x04, 0xFF, vec![0x0B]));
    let n = bad.len();
    bad[n - 2] ^= 1;
    bytes.extend(&bad);
    bytes.extend([0x99, 0x98]);
    bytes.extend(frame(&Apdu::new(0x04, 0xFF, vec![0x0E])));
    dev.write_all(&bytes).expect("write");
    assert_eq!(z.recv(Duration::from_secs(2)).expect("recv"), Some(a));
    assert_eq!(z.recv(Duration::from_secs(2)).expect("recv"), Some(Apdu::new(0x04, 0xFF, vec![0x0E])));
    // The three answers may come in more than one read of the pty.
    let mut answers = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while answers.len() < 3 && std::time::Instant::now() < deadline {
        let mut buf = [0u8; 8];
        let n = dev.read(&mut buf, Duration::from_millis(300)).expect("read");
        answers.extend_from_slice(&buf[..n]);
    }
    assert_eq!(answers, [ACK, NAK, ACK], "good, bad, good");
    assert!(z.errors() >= 1);
    // Nothing more: a timeout, not a panic or a made-up message.
    assert_eq!(z.recv(Duration::from_millis(100)).expect("recv"), None);
    // A frame cut off mid-way and never finished: nothing is returned.
    dev.write_all(&frame(&Apdu::new(0x04, 0xFF, vec![0x0A]))[..4]).expect("write");
    assert_eq!(z.recv(Duration::from_millis(400)).expect("recv"), None);
}

#[test]
fn an_abort_request_ends_a_payment_in_progress() {
    let (mut t, peer) = connect(Framing::Plain);
    peer.lock().expect("sim").sim.rules.push_back(Rule::Timeout);
    t.timeouts.idle = Duration::from_secs(5);
    let abort = t.abort.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        abort.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let o = t.authorise(999, &mut |_| {}).expect("aborted cleanly");
    assert_eq!((o.approved, o.code), (false, 0x6C), "{o:?}");
    assert!(peer.lock().expect("sim").sim.commands.contains(&"abort request"));
}
