//! The POS side of the local Terminal API: one HTTPS POST to `https://HOST:PORT/nexo` per
//! request, encrypted, answered on the same connection; answers in the checkout's
//! [`crate::payment`] types.
//!
//! In doubt or not: a refused connection or a failed TLS handshake means the request never
//! left (`in_doubt: false`); once its first byte is written, a broken or silent connection
//! leaves the outcome unknown (`in_doubt: true`) and it is settled with
//! [`Terminal::transaction_status`] naming the payment's ServiceID — never by paying
//! again. A payment's ServiceID is made from its intent's id ([`super::service_id_for`]).
//!
//! While a payment runs, the abort flag (staff or the customer pressed stop) sends an
//! `AbortRequest` on a second connection; the payment's own answer then says `Aborted`.
//! A terminal that rejects a message it cannot open (a wrong key, a bad HMAC) answers an
//! `EventNotification` `Reject`, reported as [`AdyenError::Refused`] — nothing was done.

use super::crypto::Key;
use super::model::{self, Category, Header, MessageRef, PoiTransaction, Request, Response};
use super::{AdyenError, fresh_service_id, http, json, reversal_service_id_for, service_id_for, tls};
use crate::model::Lifecycle;
use crate::payment::{Event, Failure, Lookup, Outcome, StatusInfo};
use std::io::Read;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Where the terminal is and who we are to it.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `HOST:PORT` (the terminal listens on 8443).
    pub addr: String,
    /// The terminal's POIID, e.g. `P400Plus-275039202` (its certificate must name it).
    pub poi_id: String,
    /// This POS's SaleID.
    pub sale_id: String,
    /// ISO 4217 alphabetic code of the store's currency.
    pub currency: String,
    /// For connecting and the TLS handshake.
    pub connect_timeout: Duration,
    /// For an answer to a payment (a customer at the PIN pad).
    pub reply_timeout: Duration,
    /// For an answer to anything else.
    pub admin_timeout: Duration,
}

/// An Adyen terminal.
pub struct Terminal {
    s: Settings,
    key: Key,
    tls: Arc<rustls::ClientConfig>,
    name: rustls::pki_types::ServerName<'static>,
    pub lifecycle: Lifecycle,
    /// Set from another thread to abort the payment under way.
    pub abort: Arc<AtomicBool>,
    errors: u64,
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn fail(error: AdyenError, in_doubt: bool) -> Failure {
    Failure { error: error.into(), in_doubt, partial: Box::default() }
}

/// A reader that waits out read timeouts until a deadline, looking at the abort flag
/// between reads.
struct Patient<'a, F: FnMut()> {
    s: &'a mut Tls,
    deadline: Instant,
    abort: &'a AtomicBool,
    on_abort: Option<F>,
}

impl<F: FnMut()> Read for Patient<'_, F> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self.s.read(buf) {
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    if Instant::now() >= self.deadline {
                        return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in time"));
                    }
                    if self.abort.load(Ordering::SeqCst)
                        && let Some(mut f) = self.on_abort.take()
                    {
                        f();
                    }
                }
                r => return r,
            }
        }
    }
}

impl Terminal {
    /// A terminal at `s.addr`, trusted through `root_pem`, spoken to with `key`.
    pub fn new(id: &str, s: Settings, key: Key, root_pem: &[u8]) -> Result<Terminal, AdyenError> {
        let tls = tls::client_config(root_pem, &s.poi_id).map_err(AdyenError::Config)?;
        let name = tls::server_name(&s.poi_id).map_err(AdyenError::Config)?;
        let mut lifecycle = Lifecycle::new(id);
        lifecycle.stats.set("DeviceCategory", "PaymentTerminal (Adyen Terminal API)");
        lifecycle.stats.set("Interface", format!("https://{}/nexo ({})", s.addr, s.poi_id));
        Ok(Terminal { s, key, tls, name, lifecycle, abort: Arc::new(AtomicBool::new(false)), errors: 0 })
    }

    pub fn poi_id(&self) -> &str {
        &self.s.poi_id
    }

    /// Connection and answer errors so far.
    pub fn link_errors(&self) -> u64 {
        self.errors
    }

    fn connect(&self) -> Result<Tls, AdyenError> {
        let addr = &self.s.addr;
        let err = |why: String| AdyenError::Connect { addr: addr.clone(), why };
        let sock = addr
            .to_socket_addrs()
            .map_err(|e| err(format!("cannot resolve ({e})")))?
            .next()
            .ok_or_else(|| err("resolves to nothing".into()))?;
        let tcp = TcpStream::connect_timeout(&sock, self.s.connect_timeout).map_err(|e| err(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        tcp.set_read_timeout(Some(self.s.connect_timeout)).map_err(|e| err(e.to_string()))?;
        tcp.set_write_timeout(Some(self.s.connect_timeout)).map_err(|e| err(e.to_string()))?;
        let conn =
            rustls::ClientConnection::new(self.tls.clone(), self.name.clone()).map_err(|e| err(e.to_string()))?;
        let mut s = rustls::StreamOwned::new(conn, tcp);
        // The handshake, completed before the request: a terminal whose certificate does
        // not chain to the root or name the POIID never sees a byte of it.
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock).map_err(|e| err(format!("TLS handshake failed ({e})")))?;
        }
        Ok(s)
    }

    fn header(&self, category: Category, service_id: String) -> Header {
        Header { category, request: true, service_id, sale_id: self.s.sale_id.clone(), poi_id: self.s.poi_id.clone() }
    }

    /// Sends one request and reads its answer. `on_sent` runs once the request is out.
    fn exchange(
        &mut self,
        h: &Header,
        r: &Request,
        wait: Duration,
        on_sent: &mut dyn FnMut(),
    ) -> Result<Option<Response>, Failure> {
        let clear = json::request_json(h, r);
        let body = json::seal(&clear, &self.key, true).map_err(|e| fail(e.into(), false))?;
        let mut s = self.connect().map_err(|e| {
            self.errors += 1;
            fail(e, false)
        })?;
        // From the first byte on, the terminal may act.
        if let Err(e) = http::write_request(&mut s, &self.s.addr, "/nexo", &body) {
            self.errors += 1;
            return Err(fail(AdyenError::Link(format!("sending the {} request: {e}", h.category.name())), true));
        }
        on_sent();
        let _ = s.sock.set_read_timeout(Some(Duration::from_millis(200)));
        let abort = self.abort.clone();
        let is_payment = matches!(r, Request::Payment { .. });
        let (addr, key, tls, name, sale_id, poi_id, timeout) = (
            self.s.addr.clone(),
            self.key.clone(),
            self.tls.clone(),
            self.name.clone(),
            self.s.sale_id.clone(),
            self.s.poi_id.clone(),
            self.s.admin_timeout,
        );
        let target = h.service_id.clone();
        let on_abort = move || {
            if !is_payment {
                return;
            }
            let t = Terminal {
                s: Settings {
                    addr: addr.clone(),
                    poi_id: poi_id.clone(),
                    sale_id: sale_id.clone(),
                    currency: String::new(),
                    connect_timeout: timeout,
                    reply_timeout: timeout,
                    admin_timeout: timeout,
                },
                key: key.clone(),
                tls: tls.clone(),
                name: name.clone(),
                lifecycle: Lifecycle::new("abort"),
                abort: Arc::new(AtomicBool::new(false)),
                errors: 0,
            };
            if let Err(e) = t.send_abort(&target, Category::Payment, "MerchantAbort") {
                tracing::warn!(error = %e, "Adyen abort request not delivered");
            }
        };
        let mut rd = Patient { s: &mut s, deadline: Instant::now() + wait, abort: &abort, on_abort: Some(on_abort) };
        let (status, reason, bytes) = match http::read_response(&mut rd) {
            Ok(x) => x,
            Err(e) => {
                self.errors += 1;
                let err = match &e {
                    http::ReadError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                        AdyenError::Timeout(wait.as_millis() as u64)
                    }
                    _ => AdyenError::Link(format!("the answer to the {} request was lost: {e}", h.category.name())),
                };
                return Err(fail(err, true));
            }
        };
        if status != 200 {
            self.errors += 1;
            let text = String::from_utf8_lossy(&bytes).chars().take(200).collect::<String>();
            // The terminal read the whole request: what it did with it is not known here.
            return Err(fail(AdyenError::Http { status, text: if text.is_empty() { reason } else { text } }, true));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) || bytes == b"ok" {
            // An Abort is answered with an empty 200.
            return Ok(None);
        }
        if let Some(why) = rejected(&bytes) {
            self.errors += 1;
            return Err(fail(AdyenError::Refused(why), false));
        }
        let opened = json::open(&bytes, &self.key, false)
            .and_then(|clear| json::read_response(&clear, &self.s.currency))
            .map_err(|e| {
                self.errors += 1;
                fail(e.into(), true)
            })?;
        let (rh, resp) = opened;
        if rh.service_id != h.service_id || rh.category != h.category || resp.category() != h.category {
            self.errors += 1;
            return Err(fail(
                AdyenError::Mismatch(format!(
                    "asked {} {}, answered {} {}",
                    h.category.name(),
                    h.service_id,
                    rh.category.name(),
                    rh.service_id
                )),
                true,
            ));
        }
        Ok(Some(resp))
    }

    /// Sends an AbortRequest for an earlier message (answered with an empty 200).
    pub fn send_abort(&self, service_id: &str, category: Category, reason: &str) -> Result<(), AdyenError> {
        let h = self.header(Category::Abort, fresh_service_id());
        let r = Request::Abort {
            reference: MessageRef { category, service_id: service_id.to_string(), sale_id: self.s.sale_id.clone() },
            reason: reason.to_string(),
        };
        let body = json::seal(&json::request_json(&h, &r), &self.key, true)?;
        let mut s = self.connect()?;
        http::write_request(&mut s, &self.s.addr, "/nexo", &body).map_err(|e| AdyenError::Link(e.to_string()))?;
        let (status, _, bytes) = http::read_response(&mut s).map_err(|e| AdyenError::Link(e.to_string()))?;
        if let Some(why) = rejected(&bytes) {
            return Err(AdyenError::Refused(why));
        }
        if status != 200 {
            return Err(AdyenError::Http { status, text: String::from_utf8_lossy(&bytes).into_owned() });
        }
        Ok(())
    }

    fn now() -> String {
        let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        crate::adyen::sim::rfc3339(d.as_secs(), d.subsec_millis())
    }

    /// Login: who the POS is (the terminal logs the sale system in).
    pub fn login(&mut self) -> Result<Outcome, Failure> {
        let h = self.header(Category::Login, fresh_service_id());
        let r = Request::Login {
            date_time: Self::now(),
            manufacturer: "edge".into(),
            application: "edged".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            language: "en".into(),
        };
        let wait = self.s.admin_timeout;
        match self.exchange(&h, &r, wait, &mut || {})? {
            Some(Response::Login { outcome, poi_serial }) => Ok(plain(
                &outcome,
                &self.s.poi_id,
                format!("logged in{}", poi_serial.map(|s| format!(" (serial {s})")).unwrap_or_default()),
            )),
            other => Err(unexpected(other)),
        }
    }

    /// A payment of `minor` units; `payment_id` is the stored intent's id (its ServiceID).
    pub fn authorise(&mut self, minor: i64, payment_id: u128, on: &mut dyn FnMut(Event)) -> Result<Outcome, Failure> {
        self.pay(minor, payment_id, false, on)
    }

    fn pay(
        &mut self,
        minor: i64,
        payment_id: u128,
        refund: bool,
        on: &mut dyn FnMut(Event),
    ) -> Result<Outcome, Failure> {
        if minor <= 0 {
            return Err(fail(AdyenError::Config(format!("amount {minor} is not more than zero")), false));
        }
        let sid = service_id_for(payment_id);
        let h = self.header(Category::Payment, sid.clone());
        let r = Request::Payment {
            transaction_id: sid,
            timestamp: Self::now(),
            currency: self.s.currency.clone(),
            amount_minor: minor,
            refund,
        };
        self.abort.store(false, Ordering::SeqCst);
        let wait = self.s.reply_timeout;
        let mut prompt = || on(Event::Prompt { code: 0, text: "Follow the instructions on the card terminal".into() });
        match self.exchange(&h, &r, wait, &mut prompt)? {
            Some(Response::Payment(p)) => Ok(payment_outcome(&p, &self.s.poi_id, Some(minor))),
            other => Err(unexpected(other)),
        }
    }

    /// An unreferenced refund (the card presented), or a referenced refund of the payment
    /// with this terminal reference ([`PoiTransaction::to_ref`]).
    pub fn refund(
        &mut self,
        minor: i64,
        payment_id: u128,
        original: Option<&str>,
        on: &mut dyn FnMut(Event),
    ) -> Result<Outcome, Failure> {
        match original.and_then(PoiTransaction::from_ref) {
            None => self.pay(minor, payment_id, true, on),
            Some(o) => {
                let h = self.header(Category::Reversal, service_id_for(payment_id));
                let r = Request::Reversal {
                    original: o,
                    reason: "MerchantCancel".into(),
                    amount_minor: Some(minor),
                    currency: self.s.currency.clone(),
                };
                let wait = self.s.reply_timeout;
                match self.exchange(&h, &r, wait, &mut || {})? {
                    Some(Response::Reversal(p)) => Ok(payment_outcome(&p, &self.s.poi_id, Some(minor))),
                    other => Err(unexpected(other)),
                }
            }
        }
    }

    /// Reverses (cancels) the payment with this intent id, by its terminal reference. The
    /// reversal's ServiceID is made from the payment's id ([`reversal_service_id_for`]):
    /// a reversal already taken (its answer lost, or a retry) is found by TransactionStatus
    /// first and never sent twice.
    pub fn reverse(&mut self, reference: &str, payment_id: u128) -> Result<Outcome, Failure> {
        let o = PoiTransaction::from_ref(reference).ok_or_else(|| {
            fail(AdyenError::Config(format!("{reference:?} is not a terminal transaction reference")), false)
        })?;
        let sid = reversal_service_id_for(payment_id);
        let earlier = self.status_of(&sid, Category::Reversal)?;
        match earlier.lookup {
            Lookup::Found => return Ok(earlier),
            Lookup::InProgress => {
                return Err(fail(AdyenError::Mismatch(format!("reversal {sid} is still in progress")), true));
            }
            Lookup::NotFound | Lookup::NotAsked => {}
        }
        let h = self.header(Category::Reversal, sid);
        let r = Request::Reversal {
            original: o,
            reason: "MerchantCancel".into(),
            amount_minor: None,
            currency: self.s.currency.clone(),
        };
        let wait = self.s.admin_timeout;
        match self.exchange(&h, &r, wait, &mut || {})? {
            Some(Response::Reversal(p)) => Ok(payment_outcome(&p, &self.s.poi_id, None)),
            other => Err(unexpected(other)),
        }
    }

    /// What became of the payment (or refund) with this intent id: asks TransactionStatus
    /// by its ServiceID. A payment still in progress is aborted, then asked about again.
    /// The answer's [`Outcome::lookup`] says found, not found or in progress.
    pub fn transaction_status(&mut self, payment_id: u128) -> Result<Outcome, Failure> {
        let sid = service_id_for(payment_id);
        let ask = |t: &mut Terminal| -> Result<(Outcome, Category), Failure> {
            let mut last = (Outcome::default(), Category::Payment);
            // A payment or an unreferenced refund is a Payment; a referenced refund a Reversal.
            for category in [Category::Payment, Category::Reversal] {
                let o = t.status_of(&sid, category)?;
                let done = o.lookup != Lookup::NotFound;
                last = (o, category);
                if done {
                    break;
                }
            }
            Ok(last)
        };
        let (o, category) = ask(self)?;
        if o.lookup != Lookup::InProgress {
            return Ok(o);
        }
        // Still running at the terminal (a customer who walked away, a terminal that lost
        // us): stop it, then ask until it has ended, for a bounded time.
        self.send_abort(&sid, category, "MerchantAbort").map_err(|e| fail(e, true))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            std::thread::sleep(Duration::from_millis(250));
            let (o, _) = ask(self)?;
            if o.lookup != Lookup::InProgress || Instant::now() >= deadline {
                return Ok(o);
            }
        }
    }

    fn status_of(&mut self, sid: &str, category: Category) -> Result<Outcome, Failure> {
        let h = self.header(Category::TransactionStatus, fresh_service_id());
        let r = Request::TransactionStatus {
            reference: MessageRef { category, service_id: sid.to_string(), sale_id: self.s.sale_id.clone() },
        };
        let wait = self.s.admin_timeout;
        match self.exchange(&h, &r, wait, &mut || {})? {
            Some(Response::TransactionStatus { outcome, repeated, reference }) => {
                let cond = outcome.error_condition.clone().unwrap_or_default();
                // The answer must be about what was asked: another transaction's answer
                // (a terminal repeating its last one) proves nothing about this one.
                if let Some(r) = &reference
                    && (r.service_id != sid || r.sale_id != self.s.sale_id || r.category != category)
                {
                    return Err(fail(
                        AdyenError::Mismatch(format!(
                            "TransactionStatus of {} {sid} answered about {} {} of {}",
                            category.name(),
                            r.category.name(),
                            r.service_id,
                            r.sale_id
                        )),
                        false,
                    ));
                }
                if let Some(p) = &repeated
                    && category == Category::Payment
                    && p.sale_transaction_id.as_deref().is_some_and(|t| t != sid)
                {
                    return Err(fail(
                        AdyenError::Mismatch(format!(
                            "TransactionStatus of {sid} repeated the answer to transaction {:?}",
                            p.sale_transaction_id
                        )),
                        false,
                    ));
                }
                Ok(match (outcome.success, repeated) {
                    (true, Some(p)) => {
                        let mut o = payment_outcome(&p, &self.s.poi_id, None);
                        o.lookup = Lookup::Found;
                        o
                    }
                    (false, _) if cond == "InProgress" => Outcome {
                        lookup: Lookup::InProgress,
                        text: format!("payment {sid} is still in progress at the terminal"),
                        code: 0xFF,
                        ..Outcome::default()
                    },
                    (false, _) if cond == "NotFound" => Outcome {
                        lookup: Lookup::NotFound,
                        text: format!("the terminal has no {} with ServiceID {sid}", category.name()),
                        code: 0xFF,
                        ..Outcome::default()
                    },
                    (_, _) => {
                        return Err(fail(
                            AdyenError::Mismatch(format!(
                                "TransactionStatus of {sid} answered {cond:?} without the payment"
                            )),
                            false,
                        ));
                    }
                })
            }
            other => Err(unexpected(other)),
        }
    }

    /// Diagnosis with the acquirer host: ready, busy, or offline (host unreachable).
    pub fn status(&mut self) -> Result<Outcome, Failure> {
        self.diagnose(true)
    }

    /// Diagnosis for a field tech: the terminal's words on itself and its acquirer host.
    pub fn diagnosis(&mut self) -> Result<Outcome, Failure> {
        let mut o = self.diagnose(true)?;
        let state = o.info.as_ref().and_then(|i| i.text.clone()).unwrap_or_default();
        o.text = format!(
            "terminal {} at {} answers over TLS 1.2 with key {:?} version {}: {state}",
            self.s.poi_id, self.s.addr, self.key.identifier, self.key.version
        );
        Ok(o)
    }

    fn diagnose(&mut self, host: bool) -> Result<Outcome, Failure> {
        let h = self.header(Category::Diagnosis, fresh_service_id());
        let wait = self.s.admin_timeout;
        match self.exchange(&h, &Request::Diagnosis { host }, wait, &mut || {})? {
            Some(Response::Diagnosis { outcome, global_status, host_reachable }) => {
                let text = match (global_status.as_str(), host_reachable) {
                    ("OK", Some(false)) => "OFFLINE: the acquirer host is unreachable (store-and-forward)".to_string(),
                    ("OK", _) => "ready".to_string(),
                    (s, Some(false)) => format!("{s}, OFFLINE: the acquirer host is unreachable"),
                    (s, _) => s.to_lowercase(),
                };
                let mut o = plain(&outcome, &self.s.poi_id, text.clone());
                if let Some(i) = o.info.as_mut() {
                    i.text = Some(text);
                }
                Ok(o)
            }
            other => Err(unexpected(other)),
        }
    }

    /// The end of the day: the terminal forwards what it stored offline.
    pub fn end_of_day(&mut self) -> Result<Outcome, Failure> {
        let h = self.header(Category::Reconciliation, fresh_service_id());
        let wait = self.s.admin_timeout;
        match self.exchange(&h, &Request::Reconciliation, wait, &mut || {})? {
            Some(Response::Reconciliation { outcome, transactions, forwarded }) => {
                let text = format!("END OF DAY: {transactions} TRANSACTIONS, {forwarded} FORWARDED");
                let mut o = plain(&outcome, &self.s.poi_id, text.clone());
                if o.approved {
                    if let Some(i) = o.info.as_mut() {
                        i.text = Some(text);
                    }
                    o.receipt = vec![
                        "END OF DAY".into(),
                        format!("POIID {}", self.s.poi_id),
                        format!("TRANSACTIONS {transactions}"),
                        format!("{forwarded} FORWARDED (stored offline)"),
                    ];
                }
                Ok(o)
            }
            other => Err(unexpected(other)),
        }
    }
}

/// The `EventNotification` `Reject` a terminal answers to a message it cannot take.
pub fn rejected(bytes: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let ev = v.get("SaleToPOIRequest")?.get("EventNotification")?;
    let details = ev.get("EventDetails").and_then(|d| d.as_str()).unwrap_or("");
    let words = json::form_decode(details)
        .into_iter()
        .find(|(k, _)| k == "message")
        .map(|(_, v)| v)
        .unwrap_or_else(|| details.to_string());
    Some(format!("{} ({words})", ev.get("EventToNotify").and_then(|e| e.as_str()).unwrap_or("Reject")))
}

fn unexpected(r: Option<Response>) -> Failure {
    let what = r.map_or("an empty answer".to_string(), |r| format!("a {} answer", r.category().name()));
    fail(AdyenError::Mismatch(format!("{what} to another request")), true)
}

fn plain(o: &model::Outcome, poi: &str, text: String) -> Outcome {
    Outcome {
        approved: o.success,
        code: if o.success { 0 } else { 0xFF },
        text: if o.success { text } else { failure_text(o) },
        info: Some(StatusInfo {
            result: Some(if o.success { 0 } else { 0xFF }),
            terminal_id: Some(poi.to_string()),
            ..StatusInfo::default()
        }),
        ..Outcome::default()
    }
}

fn failure_text(o: &model::Outcome) -> String {
    let cond = o.error_condition.clone().unwrap_or_else(|| "Failure".into());
    match o.get("refusalReason").or_else(|| o.get("message")) {
        Some(r) => format!("{cond}: {r}"),
        None => cond,
    }
}

/// A payment's answer as the checkout reads it: approval, card data (masked), the
/// terminal's reference for a reversal, offline, and the customer's receipt lines.
///
/// `approved` only when the terminal took exactly what was asked (`asked`, when known):
/// a partial approval or another amount is not this payment's approval. `info.result` is
/// 0 whenever the terminal charged anything, so such an answer is settled as "charged,
/// not as asked" (in doubt, for a manager), never as "not charged".
pub fn payment_outcome(p: &model::PaymentResult, poi: &str, asked: Option<i64>) -> Outcome {
    let offline = p.outcome.get("offline") == Some("true");
    let charged = p.outcome.success;
    let as_asked = !p.outcome.partial && asked.is_none_or(|a| p.amount_minor.is_none_or(|got| got == a));
    let approved = charged && as_asked;
    let mut receipt: Vec<String> = p
        .receipts
        .iter()
        .find(|r| r.qualifier == "CustomerReceipt")
        .or(p.receipts.first())
        .map(|r| r.lines.clone())
        .unwrap_or_default();
    receipt.retain(|l| !l.trim().is_empty());
    let text = match (charged, as_asked) {
        (true, true) if offline => "approved offline (store-and-forward)".to_string(),
        (true, true) => "approved".to_string(),
        (true, false) => format!(
            "approved for {} instead of {} (a partial approval): not this payment",
            p.amount_minor.map_or("an unknown amount".into(), |a| a.to_string()),
            asked.map_or("the amount asked".into(), |a| a.to_string())
        ),
        (false, _) => failure_text(&p.outcome),
    };
    Outcome {
        approved,
        code: if approved { 0 } else { 0xFF },
        text,
        info: Some(StatusInfo {
            result: Some(if charged { 0 } else { 0xFF }),
            amount_minor: p.amount_minor,
            terminal_id: Some(poi.to_string()),
            pan_masked: p.masked_pan.clone().or_else(|| p.outcome.get("cardSummary").map(|l| format!("**** {l}"))),
            card_name: p.brand.clone().or_else(|| p.outcome.get("paymentMethod").map(str::to_string)),
            auth_code: p.approval_code.clone(),
            reference: p.poi_transaction.as_ref().map(PoiTransaction::to_ref),
            offline,
            text: offline.then(|| "OFFLINE / STORE AND FORWARD".to_string()),
            ..StatusInfo::default()
        }),
        receipt,
        ..Outcome::default()
    }
}

impl std::fmt::Debug for Terminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Adyen terminal {} at {} ({:?})", self.s.poi_id, self.s.addr, self.key)
    }
}
