//! A simulated Adyen terminal, wire-true: HTTPS (TLS 1.2) on its own CA ([`super::tls::SimCa`]),
//! `POST /nexo`, every message opened and sealed with the AdyenNexoV1 key, answers as
//! [`super::json`] writes them. Nothing here is known to the host beyond the wire.
//!
//! * **Outcomes** per call ([`AdyenSim::next`], first in first used) or by the default
//!   rule ([`Rule`]): approve, decline with a refusal reason, timeout (takes the payment,
//!   waits for a card that never comes, answers only once aborted or after its own
//!   customer timeout), hang (takes the request and never answers: the payment never
//!   starts), approve-then-drop (charges, journals, closes without a word), partial
//!   (approves less than asked, `Result` `Partial`).
//! * **Journal**: every payment, refund and reversal with its ServiceID, state and the
//!   terminal's transaction id, rewritten atomically (write, fsync, rename) on each change
//!   so it outlives restarts; a payment that was running when the simulator stopped is
//!   `aborted` at the next start, as a terminal's reboot ends it.
//! * **TransactionStatus** answers from the journal: the payment's own answer repeated,
//!   `InProgress`, or `NotFound`. **Abort** ends a running payment as `Aborted`.
//! * **Offline** mode approves as store-and-forward (`offline=true` in
//!   AdditionalResponse); the Reconciliation forwards what is stored.
//! * **Refusals**: a message that cannot be opened (unknown key identifier or version, bad
//!   HMAC, damaged blob) is answered, in clear, with an `EventNotification` whose
//!   `EventToNotify` is `Reject` and whose `EventDetails` names the crypto error and
//!   carries the rejected message (base64) — the shape Adyen's terminals use; the wording
//!   is ours. A message it cannot parse is rejected the same way, naming the field.

use super::crypto::Key;
use super::json;
use super::model::*;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, VecDeque};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The demo terminal's POIID.
pub const DEMO_POI_ID: &str = "V400m-324688179";
/// Adyen's published test key (its Java, .NET and Node libraries' tests use it): the demo's.
pub const DEMO_KEY_ID: &str = "CryptoKeyIdentifier12345";
pub const DEMO_KEY_VERSION: u32 = 1;
pub const DEMO_PASSPHRASE: &str = "p@ssw0rd123456";

/// What the terminal does with the next payment or refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    Approve,
    Decline(String),
    Timeout,
    Hang,
    ApproveThenDrop,
    /// Approve this many minor units (less than asked: a partial approval).
    Partial(i64),
}

impl Rule {
    /// `approve`, `decline[:REASON]`, `timeout`, `hang`, `approve-then-drop`,
    /// `partial:AMOUNT`.
    pub fn parse(s: &str) -> Result<Rule, String> {
        let (name, arg) = s.split_once(':').unwrap_or((s, ""));
        Ok(match name {
            "approve" => Rule::Approve,
            "decline" => Rule::Decline(if arg.is_empty() { "NOT_ENOUGH_BALANCE".into() } else { arg.into() }),
            "timeout" => Rule::Timeout,
            "hang" => Rule::Hang,
            "approve-then-drop" => Rule::ApproveThenDrop,
            "partial" => Rule::Partial(
                arg.parse().ok().filter(|a| *a > 0).ok_or_else(|| format!("partial:{arg:?}: give minor units"))?,
            ),
            other => {
                return Err(format!(
                    "{other:?}: approve, decline[:REASON], timeout, hang, approve-then-drop or partial:AMOUNT"
                ));
            }
        })
    }
}

/// Where a journaled transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    InProgress,
    Approved,
    Declined,
    Aborted,
}

/// One transaction the terminal took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// `payment`, `refund` (unreferenced or referenced) or `reversal`.
    pub kind: String,
    pub service_id: String,
    pub sale_id: String,
    /// `Payment` or `Reversal`: the category a TransactionStatus names it by.
    pub category: String,
    pub amount_minor: i64,
    pub currency: String,
    pub state: State,
    pub reason: Option<String>,
    /// The terminal's POITransactionID.
    pub transaction_id: String,
    pub timestamp: String,
    pub offline: bool,
    pub forwarded: bool,
    /// A payment: reversed since. A reversal or referenced refund: what it names.
    pub reversed: bool,
    pub original: Option<String>,
    pub refunded_minor: i64,
    pub auth_code: Option<String>,
    /// What the sale system asked (more than `amount_minor` after a partial approval).
    #[serde(default)]
    pub asked_minor: i64,
}

impl Entry {
    /// A transaction just taken from `h`: in progress, the terminal's id and time given.
    fn new(
        kind: &str,
        h: &Header,
        category: Category,
        amount_minor: i64,
        currency: String,
        id: (String, String),
    ) -> Entry {
        Entry {
            kind: kind.into(),
            service_id: h.service_id.clone(),
            sale_id: h.sale_id.clone(),
            category: category.name().into(),
            amount_minor,
            currency,
            state: State::InProgress,
            reason: None,
            transaction_id: id.0,
            timestamp: id.1,
            offline: false,
            forwarded: false,
            reversed: false,
            original: None,
            refunded_minor: 0,
            auth_code: None,
            asked_minor: amount_minor,
        }
    }
}

/// The simulated terminal's state.
pub struct AdyenSim {
    pub poi_id: String,
    key: Key,
    pub rules: VecDeque<Rule>,
    pub default_rule: Rule,
    pub offline: bool,
    /// From the card prompt to the decision (card read, PIN, host).
    pub processing: Duration,
    /// How long a payment waits for a card before the terminal gives up (rule `timeout`).
    pub card_wait: Duration,
    journal: Vec<Entry>,
    path: PathBuf,
    aborts: BTreeSet<String>,
    seq: u64,
}

/// RFC 3339 UTC with milliseconds, from Unix seconds (civil-from-days, proleptic Gregorian).
pub fn rfc3339(secs: u64, ms: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    rfc3339(d.as_secs(), d.subsec_millis())
}

impl AdyenSim {
    /// A terminal `poi_id` keeping its journal at `path` (loaded if it exists).
    pub fn open(poi_id: &str, key: Key, path: PathBuf) -> Result<AdyenSim, String> {
        let mut journal: Vec<Entry> = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        for e in journal.iter_mut().filter(|e| e.state == State::InProgress) {
            e.state = State::Aborted;
            e.reason = Some("the terminal restarted during the transaction".into());
        }
        let seq = journal.len() as u64;
        let sim = AdyenSim {
            poi_id: poi_id.to_string(),
            key,
            rules: VecDeque::new(),
            default_rule: Rule::Approve,
            offline: false,
            processing: Duration::ZERO,
            card_wait: Duration::from_secs(120),
            journal,
            path,
            aborts: BTreeSet::new(),
            seq,
        };
        sim.save()?;
        Ok(sim)
    }

    pub fn journal(&self) -> &[Entry] {
        &self.journal
    }

    /// Approved payments not reversed, less approved refunds, minor units.
    pub fn net_charged(&self) -> i64 {
        self.journal
            .iter()
            .filter(|e| e.state == State::Approved && !e.reversed)
            .map(|e| match e.kind.as_str() {
                "payment" => e.amount_minor,
                "refund" => -e.amount_minor,
                _ => 0,
            })
            .sum()
    }

    fn save(&self) -> Result<(), String> {
        use std::io::Write;
        let tmp = self.path.with_extension("tmp");
        let body = serde_json::to_vec_pretty(&self.journal).map_err(|e| e.to_string())?;
        let mut f = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        f.write_all(&body).and_then(|()| f.sync_all()).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| format!("{}: {e}", self.path.display()))
    }

    fn persist(&self) {
        if let Err(e) = self.save() {
            tracing::error!(error = %e, "simulated terminal: journal not written");
        }
    }

    fn next_transaction_id(&mut self) -> (String, String) {
        self.seq += 1;
        let ts = now_rfc3339();
        let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        (format!("SIM{:013}.{:016}", d.as_millis() % 10_000_000_000_000, 8_800_000_000_000_000 + self.seq), ts)
    }

    fn find(&self, sid: &str, sale: &str, category: Category) -> Option<usize> {
        self.journal.iter().rposition(|e| e.service_id == sid && e.sale_id == sale && e.category == category.name())
    }

    fn result_of(&self, e: &Entry) -> PaymentResult {
        let approved = e.state == State::Approved;
        let mut additional = vec![
            ("tid".to_string(), "75039202".to_string()),
            ("offline".to_string(), e.offline.to_string()),
            ("pspReference".to_string(), e.transaction_id.rsplit('.').next().unwrap_or("").to_string()),
            ("cardSummary".to_string(), "0010".to_string()),
            ("paymentMethod".to_string(), "mc".to_string()),
        ];
        if let Some(c) = &e.auth_code {
            additional.push(("authCode".into(), c.clone()));
        }
        let condition = match e.state {
            State::Approved | State::InProgress => None,
            State::Declined => Some("Refusal"),
            State::Aborted => Some("Aborted"),
        };
        if let Some(r) = &e.reason {
            additional.push(("refusalReason".into(), r.clone()));
        }
        let amount = format!("{} {}.{:02}", e.currency, e.amount_minor / 100, e.amount_minor % 100);
        let lines = |title: &str| {
            let mut l = vec![
                title.to_string(),
                String::new(),
                format!("Date: {}", e.timestamp.get(..10).unwrap_or("")),
                format!("Time: {}", e.timestamp.get(11..19).unwrap_or("")),
                "Card: ************0010".to_string(),
                "Card type: mc".to_string(),
                format!("TID: {}", self.poi_id),
            ];
            if let Some(c) = &e.auth_code {
                l.push(format!("Auth. code: {c}"));
            }
            l.push(format!("Tender: {}", e.transaction_id.split('.').next().unwrap_or("")));
            l.push(format!("TOTAL: {amount}"));
            l.push(if approved { "APPROVED".into() } else { "DECLINED".into() });
            if e.offline {
                l.push("Offline transaction".into());
            }
            l
        };
        PaymentResult {
            outcome: Outcome {
                success: approved,
                partial: approved && e.amount_minor < e.asked_minor,
                error_condition: condition.map(str::to_string),
                additional,
            },
            sale_transaction_id: Some(e.service_id.clone()),
            poi_transaction: Some(PoiTransaction {
                transaction_id: e.transaction_id.clone(),
                timestamp: e.timestamp.clone(),
            }),
            amount_minor: Some(e.amount_minor),
            currency: Some(e.currency.clone()),
            masked_pan: approved.then(|| "541333 **** 0010".to_string()),
            brand: Some("mc".into()),
            approval_code: e.auth_code.clone(),
            receipts: vec![
                Receipt { qualifier: "CashierReceipt".into(), lines: lines("MERCHANT COPY") },
                Receipt { qualifier: "CustomerReceipt".into(), lines: lines("CARDHOLDER COPY") },
            ],
        }
    }
}

/// A running simulator: its address, CA file and state.
pub struct Running {
    pub addr: std::net::SocketAddr,
    pub ca_path: PathBuf,
    pub sim: Arc<Mutex<AdyenSim>>,
}

/// Listens on `addr` (HTTPS) with the CA kept in `state_dir`, journal in `journal`.
pub fn start(
    addr: &str,
    poi_id: &str,
    key: Key,
    state_dir: &std::path::Path,
    journal: PathBuf,
) -> Result<Running, String> {
    let ca = super::tls::SimCa::load_or_make(state_dir)?;
    let tls = ca.server_config(poi_id)?;
    let sim = Arc::new(Mutex::new(AdyenSim::open(poi_id, key, journal)?));
    let listener = TcpListener::bind(addr).map_err(|e| format!("{addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let s2 = sim.clone();
    std::thread::Builder::new()
        .name("adyen-sim".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (sim, tls) = (s2.clone(), tls.clone());
                let _ = std::thread::Builder::new().name("adyen-sim-conn".into()).spawn(move || serve(conn, &sim, tls));
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(Running { addr: local, ca_path: ca.ca_path, sim })
}

fn lock(sim: &Mutex<AdyenSim>) -> std::sync::MutexGuard<'_, AdyenSim> {
    sim.lock().unwrap_or_else(|p| p.into_inner())
}

type Tls = rustls::StreamOwned<rustls::ServerConnection, TcpStream>;

fn serve(tcp: TcpStream, sim: &Mutex<AdyenSim>, tls: Arc<rustls::ServerConfig>) {
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(conn) = rustls::ServerConnection::new(tls) else { return };
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let req = match super::http::read_request(&mut s) {
        Ok(r) => r,
        Err(_) => return,
    };
    if req.method != "POST" || req.path != "/nexo" {
        let _ = super::http::write_response(&mut s, 404, "Not Found", b"");
        return;
    }
    let answer = handle(sim, &req.body, &mut s);
    if let Some(bytes) = answer {
        let _ = super::http::write_response(&mut s, 200, "OK", &bytes);
    }
    s.conn.send_close_notify();
    let _ = s.conn.complete_io(&mut s.sock);
}

/// The clear `EventNotification` `Reject` a terminal answers to a message it cannot take.
pub fn reject(header: Option<&Header>, why: &str, raw: &[u8]) -> Vec<u8> {
    let details = format!("message={}", why.replace(' ', "+"));
    let h = header.cloned();
    let v = serde_json::json!({"SaleToPOIRequest": {
        "MessageHeader": {
            "ProtocolVersion": "3.0", "MessageClass": "Event", "MessageCategory": "Event", "MessageType": "Notification",
            "ServiceID": h.as_ref().map(|h| h.service_id.clone()), "SaleID": h.as_ref().map(|h| h.sale_id.clone()),
            "POIID": h.as_ref().map(|h| h.poi_id.clone()),
        },
        "EventNotification": {
            "TimeStamp": now_rfc3339(), "EventToNotify": "Reject", "EventDetails": details,
            "RejectedMessage": base64::engine::general_purpose::STANDARD.encode(raw),
        }
    }});
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Answers one request; `None` closes the connection without a word.
fn handle(sim: &Mutex<AdyenSim>, raw: &[u8], s: &mut Tls) -> Option<Vec<u8>> {
    let outer = json::wire_header(raw, true);
    let key = lock(sim).key.clone();
    let clear = match json::open(raw, &key, true) {
        Ok(c) => c,
        Err(e) => {
            let why = match &e {
                json::JsonError::Crypto(c) => format!("Crypto error: {c}"),
                other => other.to_string(),
            };
            tracing::warn!(error = %why, "simulated Adyen terminal rejected a message");
            return Some(reject(outer.as_ref().ok(), &why, raw));
        }
    };
    let currency_of = |t: &PoiTransaction| {
        lock(sim).journal.iter().find(|e| e.transaction_id == t.transaction_id).map(|e| e.currency.clone())
    };
    let (h, r) = match json::read_request(&clear, &currency_of) {
        Ok(x) => x,
        Err(e) => return Some(reject(outer.as_ref().ok(), &e.to_string(), raw)),
    };
    let poi = lock(sim).poi_id.clone();
    if h.poi_id != poi {
        return Some(reject(Some(&h), &format!("POIID {} is not this terminal ({poi})", h.poi_id), raw));
    }
    let answer = |resp: Response| -> Option<Vec<u8>> {
        let rh = Header { request: false, ..h.clone() };
        json::seal(&json::response_json(&rh, &resp), &key, false).ok()
    };
    match r {
        Request::Payment { transaction_id: _, timestamp: _, currency, amount_minor, refund } => {
            pay(sim, &h, currency, amount_minor, refund, None, s).and_then(|p| answer(Response::Payment(p)))
        }
        Request::Reversal { original, amount_minor: Some(a), currency, .. } => {
            pay(sim, &h, currency, a, true, Some(original), s).and_then(|p| answer(Response::Reversal(p)))
        }
        Request::Reversal { original, amount_minor: None, .. } => {
            answer(Response::Reversal(reverse(sim, &h, &original)))
        }
        Request::TransactionStatus { reference } => {
            let g = lock(sim);
            let cat = reference.category;
            let found = g.find(&reference.service_id, &reference.sale_id, cat).map(|i| g.journal[i].clone());
            let resp = match found {
                None => Response::TransactionStatus {
                    outcome: Outcome::failure("NotFound", &[("message", "no transaction with this ServiceID")]),
                    reference: Some(reference),
                    repeated: None,
                },
                Some(e) if e.state == State::InProgress => Response::TransactionStatus {
                    outcome: Outcome::failure("InProgress", &[("message", "the transaction is still in progress")]),
                    reference: Some(reference),
                    repeated: None,
                },
                Some(e) => Response::TransactionStatus {
                    outcome: Outcome::ok(),
                    reference: Some(reference),
                    repeated: Some(Box::new(g.result_of(&e))),
                },
            };
            drop(g);
            answer(resp)
        }
        Request::Abort { reference, .. } => {
            // Only a transaction of this sale system that is running can be aborted; an
            // abort of anything else changes nothing (and is answered the same).
            let mut g = lock(sim);
            let running = g
                .find(&reference.service_id, &reference.sale_id, reference.category)
                .is_some_and(|i| g.journal[i].state == State::InProgress);
            if running {
                g.aborts.insert(reference.service_id);
            }
            Some(Vec::new())
        }
        Request::Diagnosis { .. } => {
            let g = lock(sim);
            let busy = g.journal.iter().any(|e| e.state == State::InProgress);
            let resp = Response::Diagnosis {
                outcome: Outcome::ok(),
                global_status: if busy { "Busy".into() } else { "OK".into() },
                host_reachable: Some(!g.offline),
            };
            drop(g);
            answer(resp)
        }
        Request::Login { .. } => {
            answer(Response::Login { outcome: Outcome::ok(), poi_serial: Some(format!("{poi}-SIM")) })
        }
        Request::Reconciliation => {
            let mut g = lock(sim);
            if g.offline {
                drop(g);
                return answer(Response::Reconciliation {
                    outcome: Outcome::failure("UnreachableHost", &[("message", "the acquirer host cannot be reached")]),
                    transactions: 0,
                    forwarded: 0,
                });
            }
            let mut forwarded = 0;
            for e in g.journal.iter_mut().filter(|e| e.offline && !e.forwarded && e.state == State::Approved) {
                e.forwarded = true;
                forwarded += 1;
            }
            let transactions = g.journal.iter().filter(|e| e.state == State::Approved).count() as u32;
            g.persist();
            drop(g);
            answer(Response::Reconciliation { outcome: Outcome::ok(), transactions, forwarded })
        }
    }
}

/// A payment, an unreferenced refund or a referenced refund (`original`): journaled
/// `InProgress`, decided after the processing time by the rule.
fn pay(
    sim: &Mutex<AdyenSim>,
    h: &Header,
    currency: String,
    amount_minor: i64,
    refund: bool,
    original: Option<PoiTransaction>,
    s: &mut Tls,
) -> Option<PaymentResult> {
    let category = if original.is_some() { Category::Reversal } else { Category::Payment };
    let (rule, processing, card_wait, idx) = {
        let mut g = lock(sim);
        let refuse = |why: &str, cond: &str| {
            Some(PaymentResult {
                outcome: Outcome::failure(cond, &[("message", why)]),
                sale_transaction_id: Some(h.service_id.clone()),
                ..PaymentResult::default()
            })
        };
        if g.find(&h.service_id, &h.sale_id, category).is_some() {
            return refuse("this ServiceID was used before", "NotAllowed");
        }
        if g.journal.iter().any(|e| e.state == State::InProgress) {
            return refuse("the terminal is busy with another transaction", "Busy");
        }
        if let Some(o) = &original {
            let Some(orig) = g.journal.iter().find(|e| e.transaction_id == o.transaction_id && e.kind == "payment")
            else {
                return refuse("no payment with this POITransactionID", "NotFound");
            };
            if orig.state != State::Approved || orig.reversed {
                return refuse("the original payment is not an approved payment", "NotAllowed");
            }
            if orig.refunded_minor + amount_minor > orig.amount_minor {
                return refuse("the refund is more than what is left of the payment", "NotAllowed");
            }
        }
        let rule = g.rules.pop_front().unwrap_or_else(|| g.default_rule.clone());
        if rule == Rule::Hang {
            // The request was taken and the payment never starts: nothing is journaled,
            // nothing is answered; the connection stays open until the POS gives up.
            drop(g);
            let _ = s.sock.set_read_timeout(Some(Duration::from_secs(600)));
            let mut buf = [0u8; 64];
            while matches!(std::io::Read::read(&mut s.sock, &mut buf), Ok(n) if n > 0) {}
            return None;
        }
        let (transaction_id, timestamp) = g.next_transaction_id();
        let kind = if refund { "refund" } else { "payment" };
        let mut e = Entry::new(kind, h, category, amount_minor, currency, (transaction_id, timestamp));
        e.original = original.as_ref().map(PoiTransaction::to_ref);
        g.journal.push(e);
        g.persist();
        (rule, g.processing, g.card_wait, g.journal.len() - 1)
    };
    let aborted = |g: &mut AdyenSim| g.aborts.remove(&h.service_id);
    // The customer reads the card, enters the PIN, the host answers.
    let wait_until = Instant::now() + if rule == Rule::Timeout { card_wait } else { processing };
    let mut was_aborted = false;
    while Instant::now() < wait_until {
        if aborted(&mut lock(sim)) {
            was_aborted = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10).min(wait_until.saturating_duration_since(Instant::now())));
    }
    let mut g = lock(sim);
    if !was_aborted && aborted(&mut g) {
        was_aborted = true;
    }
    let offline = g.offline;
    let seq = g.seq;
    let e = &mut g.journal[idx];
    match (&rule, was_aborted) {
        (_, true) => {
            e.state = State::Aborted;
            e.reason = Some("aborted by the sale system".into());
        }
        (Rule::Timeout, false) => {
            e.state = State::Aborted;
            e.reason = Some("no card was presented in time".into());
        }
        (Rule::Decline(why), false) => {
            e.state = State::Declined;
            e.reason = Some(why.clone());
        }
        (Rule::Partial(part), false) => {
            e.state = State::Approved;
            e.amount_minor = (*part).min(e.amount_minor);
            e.auth_code = Some(format!("{:06}", (seq * 7919) % 1_000_000));
        }
        (Rule::Approve | Rule::Hang | Rule::ApproveThenDrop, false) => {
            e.state = State::Approved;
            e.offline = offline && e.original.is_none();
            e.auth_code = Some(format!("{:06}", (seq * 7919) % 1_000_000));
        }
    }
    if e.state == State::Approved
        && let Some(o) = e.original.clone()
    {
        let amount = e.amount_minor;
        if let Some(orig) = g.journal.iter_mut().find(|x| Some(x.transaction_id.as_str()) == o.split(' ').next()) {
            orig.refunded_minor += amount;
        }
    }
    g.persist();
    let result = g.result_of(&g.journal[idx].clone());
    drop(g);
    if rule == Rule::ApproveThenDrop {
        // Charged and journaled; the answer is lost.
        let _ = s.sock.shutdown(std::net::Shutdown::Both);
        return None;
    }
    Some(result)
}

/// A reversal of a whole payment.
fn reverse(sim: &Mutex<AdyenSim>, h: &Header, o: &PoiTransaction) -> PaymentResult {
    let mut g = lock(sim);
    let failure = |cond: &str, why: &str| PaymentResult {
        outcome: Outcome::failure(cond, &[("refusalReason", why)]),
        ..PaymentResult::default()
    };
    let Some(i) = g.journal.iter().position(|e| e.transaction_id == o.transaction_id) else {
        return failure("NotFound", "no transaction with this POITransactionID");
    };
    if g.journal[i].reversed {
        return failure("NotAllowed", "already reversed");
    }
    if g.journal[i].state != State::Approved {
        return failure("NotAllowed", "the transaction was not approved");
    }
    g.journal[i].reversed = true;
    let orig = g.journal[i].clone();
    let (transaction_id, timestamp) = g.next_transaction_id();
    let mut e =
        Entry::new("reversal", h, Category::Reversal, orig.amount_minor, orig.currency, (transaction_id, timestamp));
    e.state = State::Approved;
    e.original = Some(o.to_ref());
    g.journal.push(e);
    g.persist();
    let last = g.journal[g.journal.len() - 1].clone();
    g.result_of(&last)
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_557_325_515, 12), "2019-05-08T14:25:15.012Z");
        assert_eq!(rfc3339(1_796_601_600, 999), "2026-12-07T00:00:00.999Z");
    }
}
