//! Adyen's local Terminal API: the AdyenNexoV1 envelope on Adyen's own known-answer
//! message, round trips, tampering refused by name, and every request against the
//! simulator over real HTTPS on loopback.

use edge_drivers::adyen::crypto::{CryptoError, Key, SecurityTrailer};
use edge_drivers::adyen::host::{Settings, Terminal};
use edge_drivers::adyen::json::{self, JsonError};
use edge_drivers::adyen::model::*;
use edge_drivers::adyen::sim::{self, Rule, State};
use edge_drivers::adyen::{AdyenError, service_id_for};
use edge_drivers::payment::{Lookup, TerminalError};
use std::time::Duration;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/reference/data/adyen-terminal-api");

fn key() -> Key {
    Key::derive("CryptoKeyIdentifier12345", 1, b"p@ssw0rd123456").expect("key")
}

fn kat() -> Vec<u8> {
    std::fs::read(format!("{DATA}/payment-local-success.json")).expect("the known-answer file")
}

#[test]
fn adyens_known_answer_decrypts_to_an_approved_payment() {
    let clear = json::open(&kat(), &key(), false).expect("HMAC verified and opened");
    let (h, r) = json::read_response(&clear, "EUR").expect("a payment response");
    assert_eq!(h.category, Category::Payment);
    assert_eq!(h.poi_id, "P400Plus-275039202");
    let Response::Payment(p) = r else { panic!("not a payment: {r:?}") };
    assert!(p.outcome.success);
    assert_eq!(p.amount_minor, Some(100));
    assert_eq!(p.currency.as_deref(), Some("EUR"));
    assert_eq!(p.approval_code.as_deref(), Some("123456"));
    assert_eq!(p.outcome.get("authCode"), Some("123456"));
    assert_eq!(p.outcome.get("pspReference"), Some("8815573255107661"));
    assert_eq!(p.masked_pan.as_deref(), Some("541333 **** 0010"));
    let customer = p.receipts.iter().find(|r| r.qualifier == "CustomerReceipt").expect("customer receipt");
    assert!(customer.lines.contains(&"Auth. code: 123456".to_string()), "{:?}", customer.lines);
    assert!(customer.lines.contains(&"TOTAL: €\u{a0}1.00".to_string()), "{:?}", customer.lines);
    let o = edge_drivers::adyen::host::payment_outcome(&p, "P400Plus-275039202", Some(100));
    assert!(o.approved);
    let info = o.info.expect("card data");
    assert_eq!(info.reference.as_deref(), Some("4r7i001557325515012.8815573255107661 2019-05-08T14:25:15.000Z"));
}

#[test]
fn encrypt_then_decrypt_round_trips_every_request() {
    let k = key();
    let h = |c| Header {
        category: c,
        request: true,
        service_id: "ABC123DEF0".into(),
        sale_id: "till-1".into(),
        poi_id: "V400m-324688179".into(),
    };
    let reqs = vec![
        Request::Payment {
            transaction_id: "T1".into(),
            timestamp: "2026-12-07T10:00:00.000Z".into(),
            currency: "EUR".into(),
            amount_minor: 2570,
            refund: false,
        },
        Request::Payment {
            transaction_id: "T2".into(),
            timestamp: "2026-12-07T10:00:00.000Z".into(),
            currency: "JPY".into(),
            amount_minor: 900,
            refund: true,
        },
        Request::TransactionStatus {
            reference: MessageRef { category: Category::Payment, service_id: "S1".into(), sale_id: "till-1".into() },
        },
        Request::Abort {
            reference: MessageRef { category: Category::Payment, service_id: "S1".into(), sale_id: "till-1".into() },
            reason: "MerchantAbort".into(),
        },
        Request::Reversal {
            original: PoiTransaction { transaction_id: "X.1".into(), timestamp: "2026-12-07T10:00:00.000Z".into() },
            reason: "MerchantCancel".into(),
            amount_minor: Some(1999),
            currency: "EUR".into(),
        },
        Request::Diagnosis { host: true },
        Request::Login {
            date_time: "2026-12-07T10:00:00.000Z".into(),
            manufacturer: "edge".into(),
            application: "edged".into(),
            version: "0.1.0".into(),
            language: "en".into(),
        },
        Request::Reconciliation,
    ];
    for r in reqs {
        let hd = h(r.category());
        let wire = json::seal(&json::request_json(&hd, &r), &k, true).expect("seal");
        let clear = json::open(&wire, &k, true).expect("open");
        let (h2, r2) = json::read_request(&clear, &|_| Some("EUR".into())).expect("read");
        assert_eq!((h2, r2), (hd, r));
    }
}

fn tampered(f: impl Fn(&mut serde_json::Value)) -> Result<serde_json::Value, JsonError> {
    let mut v: serde_json::Value = serde_json::from_slice(&kat()).expect("json");
    f(&mut v["SaleToPOIResponse"]);
    json::open(&serde_json::to_vec(&v).expect("json"), &key(), false)
}

#[test]
fn tampering_is_refused_by_name() {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    // One bit of the blob: the padding or the HMAC fails, never a silent change.
    let r = tampered(|m| {
        let mut blob = b64.decode(m["NexoBlob"].as_str().expect("blob")).expect("b64");
        blob[40] ^= 1;
        m["NexoBlob"] = b64.encode(blob).into();
    });
    assert!(matches!(r, Err(JsonError::Crypto(CryptoError::Hmac | CryptoError::Padding))), "{r:?}");
    let r = tampered(|m| {
        let mut mac = b64.decode(m["SecurityTrailer"]["Hmac"].as_str().expect("hmac")).expect("b64");
        mac[0] ^= 0x80;
        m["SecurityTrailer"]["Hmac"] = b64.encode(mac).into();
    });
    assert_eq!(r, Err(JsonError::Crypto(CryptoError::Hmac)));
    // Another nonce: another IV, so the first block (and the HMAC) no longer fit.
    let r = tampered(|m| m["SecurityTrailer"]["Nonce"] = b64.encode([7u8; 16]).into());
    assert!(matches!(r, Err(JsonError::Crypto(CryptoError::Hmac | CryptoError::Padding))), "{r:?}");
    let r = tampered(|m| m["SecurityTrailer"]["Nonce"] = "AAAA".into());
    assert!(matches!(r, Err(JsonError::Crypto(CryptoError::Nonce(_)))), "{r:?}");
    let r = tampered(|m| m["SecurityTrailer"]["KeyIdentifier"] = "SomeoneElsesKey".into());
    assert!(matches!(r, Err(JsonError::Crypto(CryptoError::UnknownKey { .. }))), "{r:?}");
    let r = tampered(|m| m["SecurityTrailer"]["KeyVersion"] = 2.into());
    assert!(matches!(r, Err(JsonError::Crypto(CryptoError::UnknownKey { .. }))), "{r:?}");
    let r = tampered(|m| m["SecurityTrailer"]["AdyenCryptoVersion"] = 0.into());
    assert_eq!(r, Err(JsonError::Crypto(CryptoError::Version(0))));
    let r = tampered(|m| m["MessageHeader"]["ServiceID"] = "other".into());
    assert!(matches!(&r, Err(JsonError::Field { path, .. }) if path.ends_with("MessageHeader")), "{r:?}");
    let r = tampered(|m| m["NexoBlob"] = "not base64!".into());
    assert!(matches!(r, Err(JsonError::Crypto(CryptoError::Blob(_)))), "{r:?}");
    let wrong = Key::derive("CryptoKeyIdentifier12345", 1, b"another passphrase").expect("key");
    let r = json::open(&kat(), &wrong, false);
    assert!(matches!(r, Err(JsonError::Crypto(CryptoError::Hmac | CryptoError::Padding))), "{r:?}");
    let t: SecurityTrailer = serde_json::from_value(
        serde_json::json!({"AdyenCryptoVersion": 1, "KeyIdentifier": "k", "KeyVersion": 1, "Nonce": "", "Hmac": ""}),
    )
    .expect("trailer");
    assert_eq!(t.key_identifier, "k");
}

#[test]
fn malformed_messages_name_the_field() {
    let v = serde_json::json!({"SaleToPOIRequest": {"MessageHeader": {"MessageCategory": "Payment", "MessageType": "Request", "ServiceID": "12345678901", "SaleID": "s", "POIID": "p"}}});
    let e = json::read_request(&v, &|_| None).expect_err("too long");
    assert!(e.to_string().contains("MessageHeader.ServiceID"), "{e}");
    let v = serde_json::json!({"SaleToPOIRequest": {"MessageHeader": {"MessageCategory": "Payment", "MessageType": "Request", "ServiceID": "1", "SaleID": "s", "POIID": "p"},
        "PaymentRequest": {"SaleData": {"SaleTransactionID": {"TransactionID": "t", "TimeStamp": "x"}}, "PaymentTransaction": {"AmountsReq": {"Currency": "EUR", "RequestedAmount": "ten"}}}}});
    let e = json::read_request(&v, &|_| None).expect_err("not a number");
    assert!(e.to_string().contains("AmountsReq.RequestedAmount: not a number"), "{e}");
    let v = serde_json::json!({"SaleToPOIRequest": {"MessageHeader": {"MessageCategory": "Payment", "MessageType": "Request", "ServiceID": "1", "SaleID": "s", "POIID": "p"},
        "PaymentRequest": {"SaleData": {"SaleTransactionID": {"TransactionID": "t", "TimeStamp": "x"}}, "PaymentTransaction": {"AmountsReq": {"Currency": "EUR", "RequestedAmount": 1.005}}}}});
    let e = json::read_request(&v, &|_| None).expect_err("three decimals");
    assert!(e.to_string().contains("not an amount in EUR"), "{e}");
    assert!(json::open(b"{\"SaleToPOIResponse\": 5}", &key(), false).is_err());
    assert!(json::open(b"\xff\x00", &key(), false).is_err());
}

struct Lab {
    _dir: tempfile::TempDir,
    run: sim::Running,
    journal: std::path::PathBuf,
}

const POI: &str = "V400m-324688179";

fn lab() -> Lab {
    let dir = tempfile::tempdir().expect("tmp");
    let journal = dir.path().join("journal.json");
    let run = sim::start("127.0.0.1:0", POI, key(), dir.path(), journal.clone()).expect("simulator");
    Lab { _dir: dir, run, journal }
}

fn host(l: &Lab, k: Key, reply: Duration) -> Terminal {
    let root = std::fs::read(&l.run.ca_path).expect("ca");
    let s = Settings {
        addr: l.run.addr.to_string(),
        poi_id: POI.into(),
        sale_id: "till-1".into(),
        currency: "EUR".into(),
        connect_timeout: Duration::from_secs(2),
        reply_timeout: reply,
        admin_timeout: Duration::from_secs(5),
    };
    Terminal::new("terminal", s, k, &root).expect("host")
}

fn pid(n: u128) -> u128 {
    // A UUID v7 shape: a timestamp on top, random-ish low bits.
    (0x0193_1234_5678u128 << 80) | (0x7000u128 << 64) | (0x8000_0000_0000_0000u128 + n * 7_777_777)
}

#[test]
fn every_request_over_real_https_on_loopback() {
    let l = lab();
    let mut t = host(&l, key(), Duration::from_secs(5));
    assert!(t.login().expect("login").approved);
    let st = t.status().expect("status");
    assert_eq!(st.text, "ready");
    assert!(t.diagnosis().expect("diagnosis").approved);
    let mut prompts = Vec::new();
    let o = t.authorise(2570, pid(1), &mut |e| prompts.push(e)).expect("payment");
    assert!(o.approved, "{o:?}");
    assert_eq!(prompts.len(), 1);
    let info = o.info.clone().expect("info");
    assert_eq!(info.amount_minor, Some(2570));
    assert_eq!(info.pan_masked.as_deref(), Some("541333 **** 0010"));
    assert!(info.auth_code.is_some() && info.reference.is_some());
    assert!(o.receipt.iter().any(|l| l == "CARDHOLDER COPY"), "{:?}", o.receipt);
    // Settled by its ServiceID.
    let s = t.transaction_status(pid(1)).expect("status of the payment");
    assert_eq!(s.lookup, Lookup::Found);
    assert!(s.approved);
    assert_eq!(s.info.as_ref().and_then(|i| i.amount_minor), Some(2570));
    let s = t.transaction_status(pid(99)).expect("status of nothing");
    assert_eq!(s.lookup, Lookup::NotFound);
    // A referenced refund of part of it, then a reversal of what is left is refused? No:
    // a reversal cancels the whole payment.
    let reference = info.reference.clone().expect("reference");
    let r = t.refund(1000, pid(2), Some(&reference), &mut |_| {}).expect("referenced refund");
    assert!(r.approved, "{r:?}");
    let r = t.refund(5000, pid(3), Some(&reference), &mut |_| {}).expect("too much");
    assert!(!r.approved, "{r:?}");
    let r = t.refund(700, pid(4), None, &mut |_| {}).expect("unreferenced refund");
    assert!(r.approved);
    let o2 = t.authorise(999, pid(5), &mut |_| {}).expect("payment");
    let reference = o2.info.and_then(|i| i.reference).expect("ref");
    let rv = t.reverse(&reference, pid(5)).expect("reversal");
    assert!(rv.approved, "{rv:?}");
    // Asked again (its answer lost, or a retry): the same reversal is found, none sent.
    let again = t.reverse(&reference, pid(5)).expect("reversal found");
    assert!(again.approved && again.lookup == Lookup::Found, "{again:?}");
    assert_eq!(l.run.sim.lock().expect("sim").journal().iter().filter(|e| e.kind == "reversal").count(), 1);
    // A partial approval is not this payment's approval, though the card was charged.
    l.run.sim.lock().expect("sim").rules.push_back(Rule::Partial(1500));
    let part = t.authorise(2000, pid(8), &mut |_| {}).expect("partial");
    assert!(!part.approved && part.info.as_ref().and_then(|i| i.result) == Some(0), "{part:?}");
    assert!(part.text.contains("partial"), "{}", part.text);
    let rv = t.reverse(&part.info.and_then(|i| i.reference).expect("ref"), pid(8)).expect("reversal");
    assert!(rv.approved);
    // Declined with its reason.
    l.run.sim.lock().expect("sim").rules.push_back(Rule::Decline("NOT_ENOUGH_BALANCE".into()));
    let d = t.authorise(5000, pid(6), &mut |_| {}).expect("declined");
    assert!(!d.approved);
    assert!(d.text.contains("Refusal") && d.text.contains("NOT_ENOUGH_BALANCE"), "{}", d.text);
    // Offline: store-and-forward, then forwarded at the end of the day.
    l.run.sim.lock().expect("sim").offline = true;
    assert!(t.status().expect("status").text.contains("OFFLINE"));
    let off = t.authorise(1200, pid(7), &mut |_| {}).expect("offline payment");
    assert!(off.approved && off.info.as_ref().is_some_and(|i| i.offline), "{off:?}");
    l.run.sim.lock().expect("sim").offline = false;
    let eod = t.end_of_day().expect("end of day");
    assert!(eod.approved && eod.text.contains("1 FORWARDED"), "{}", eod.text);
    let g = l.run.sim.lock().expect("sim");
    assert_eq!(g.net_charged(), 2570 - 1000 - 700 + 1200, "{:#?}", g.journal());
    // ServiceIDs: one per payment.
    let ids: std::collections::BTreeSet<_> = g.journal().iter().map(|e| e.service_id.clone()).collect();
    assert_eq!(ids.len(), g.journal().len());
    assert!(ids.contains(&service_id_for(pid(1))));
}

#[test]
fn lost_answers_are_settled_by_transaction_status_and_abort() {
    let l = lab();
    let mut t = host(&l, key(), Duration::from_millis(800));
    // Approved, the answer dropped: in doubt, then found charged.
    l.run.sim.lock().expect("sim").rules.push_back(Rule::ApproveThenDrop);
    let f = t.authorise(1500, pid(10), &mut |_| {}).expect_err("lost");
    assert!(f.in_doubt, "{f}");
    let s = t.transaction_status(pid(10)).expect("status");
    assert_eq!((s.lookup, s.approved), (Lookup::Found, true));
    // Hang: the payment never started: not found.
    l.run.sim.lock().expect("sim").rules.push_back(Rule::Hang);
    let f = t.authorise(1600, pid(11), &mut |_| {}).expect_err("hang");
    assert!(f.in_doubt && matches!(f.error, TerminalError::Adyen(AdyenError::Timeout(_))), "{f}");
    assert_eq!(t.transaction_status(pid(11)).expect("status").lookup, Lookup::NotFound);
    // Timeout: still waiting for a card: aborted, then found not charged.
    l.run.sim.lock().expect("sim").rules.push_back(Rule::Timeout);
    let f = t.authorise(1700, pid(12), &mut |_| {}).expect_err("timeout");
    assert!(f.in_doubt);
    let s = t.transaction_status(pid(12)).expect("status");
    assert_eq!((s.lookup, s.approved), (Lookup::Found, false), "{s:?}");
    assert!(s.text.contains("Aborted"), "{}", s.text);
    // The abort flag during a payment: the terminal ends it as Aborted.
    l.run.sim.lock().expect("sim").processing = Duration::from_secs(3);
    let flag = t.abort.clone();
    let h = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let mut t2 = host(&l, key(), Duration::from_secs(5));
    t2.abort = t.abort.clone();
    let o = t2.authorise(1800, pid(13), &mut |_| {}).expect("answered");
    h.join().expect("join");
    assert!(!o.approved && o.text.contains("Aborted"), "{o:?}");
    let states: Vec<State> = l.run.sim.lock().expect("sim").journal().iter().map(|e| e.state).collect();
    assert_eq!(states, vec![State::Approved, State::Aborted, State::Aborted]);
    // The journal outlives a restart of the simulator: a new one on the same file has it.
    let reopened = sim::AdyenSim::open(POI, key(), l.journal.clone()).expect("reopened");
    assert_eq!(reopened.journal(), l.run.sim.lock().expect("sim").journal());
}

#[test]
fn a_wrong_key_or_certificate_is_refused_and_nothing_runs() {
    let l = lab();
    let other = Key::derive("CryptoKeyIdentifier12345", 1, b"not the passphrase").expect("key");
    let mut t = host(&l, other, Duration::from_secs(2));
    let f = t.authorise(100, pid(20), &mut |_| {}).expect_err("bad HMAC");
    assert!(!f.in_doubt, "a rejected message did nothing: {f}");
    let why = f.to_string();
    assert!(why.contains("Reject") && (why.contains("HMAC") || why.contains("does not decrypt")), "{why}");
    let unknown = Key::derive("AnotherKey", 1, b"p@ssw0rd123456").expect("key");
    let f = host(&l, unknown, Duration::from_secs(2)).status().expect_err("unknown key");
    assert!(f.to_string().contains("unknown key"), "{f}");
    assert!(l.run.sim.lock().expect("sim").journal().is_empty());
    // A root that did not sign the terminal's certificate: the handshake fails, nothing sent.
    let other_ca = tempfile::tempdir().expect("tmp");
    let ca = edge_drivers::adyen::tls::SimCa::load_or_make(other_ca.path()).expect("ca");
    let s = Settings {
        addr: l.run.addr.to_string(),
        poi_id: POI.into(),
        sale_id: "till-1".into(),
        currency: "EUR".into(),
        connect_timeout: Duration::from_secs(2),
        reply_timeout: Duration::from_secs(2),
        admin_timeout: Duration::from_secs(2),
    };
    let mut t = Terminal::new("t", s.clone(), key(), ca.ca_pem.as_bytes()).expect("host");
    let f = t.authorise(100, pid(21), &mut |_| {}).expect_err("untrusted");
    assert!(!f.in_doubt && f.to_string().contains("TLS handshake failed"), "{f}");
    // The right root, another POIID: the certificate does not name it.
    let root = std::fs::read(&l.run.ca_path).expect("ca");
    let mut t = Terminal::new("t", Settings { poi_id: "P400Plus-275039202".into(), ..s }, key(), &root).expect("host");
    let f = t.status().expect_err("wrong name");
    assert!(!f.in_doubt && f.to_string().contains("TLS handshake failed"), "{f}");
    assert!(l.run.sim.lock().expect("sim").journal().is_empty());
}
