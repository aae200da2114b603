//! A simulated ZVT terminal, wire-true over TCP (plain APDUs) and serial (framed, CRC'd,
//! ACK / NAK). It answers every command of [`super::host`], acknowledges and sequences its
//! messages as a terminal does (one message, then wait for the ECR's `80 00 00`), and keeps
//! a journal of what it charged — in a file when given one, so it outlives the daemon's
//! restarts and in-doubt recovery can be checked against it.
//!
//! Outcomes are set per call ([`TerminalSim::rules`], first in first used) or by a default
//! rule: approve, decline with a code, abort (customer pressed stop), time out (accepts,
//! then says nothing more), hang (not even an acknowledgement), crash after approving (the
//! charge is journaled, then silence), refuse (`84 xx`). Offline mode approves as
//! store-and-forward and marks the journal entry so.

use super::transport::{ACK, NAK, Scanned, frame, scan};
use super::{Apdu, StatusInfo, bcd, bmps, from_bcd};
use crate::transport::Peer;
use std::collections::VecDeque;
use std::path::PathBuf;

/// What the terminal does with the next payment or refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    Approve,
    Decline(u8),
    Abort,
    Timeout,
    Hang,
    CrashAfterApproving,
    Refuse(u8),
}

impl Rule {
    /// `approve`, `decline[:CODE]`, `abort`, `timeout`, `hang`, `crash-after-approving`,
    /// `refuse[:CODE]` (codes in hex, e.g. `decline:05`).
    pub fn parse(s: &str) -> Result<Rule, String> {
        let (name, code) = s.split_once(':').unwrap_or((s, ""));
        let code = |default: u8| -> Result<u8, String> {
            if code.is_empty() {
                Ok(default)
            } else {
                u8::from_str_radix(code, 16).map_err(|_| format!("{code:?} is not a hex byte"))
            }
        };
        Ok(match name {
            "approve" => Rule::Approve,
            "decline" => Rule::Decline(code(0x05)?),
            "abort" => Rule::Abort,
            "timeout" => Rule::Timeout,
            "hang" => Rule::Hang,
            "crash-after-approving" => Rule::CrashAfterApproving,
            "refuse" => Rule::Refuse(code(0x83)?),
            other => {
                return Err(format!(
                    "{other:?}: approve, decline[:CODE], abort, timeout, hang, crash-after-approving or refuse[:CODE]"
                ));
            }
        })
    }
}

/// Kinds of journal entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Payment,
    Refund,
    Reversal,
}

/// One line of the terminal's journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub receipt_no: u32,
    pub trace: u32,
    pub amount_minor: i64,
    /// 0 = approved, else the error code.
    pub result: u8,
    /// A payment later reversed.
    pub reversed: bool,
    /// Approved offline (store-and-forward), not yet sent to the host.
    pub offline: bool,
    /// The end-of-day batch that settled it (0 = open).
    pub batch: u32,
}

impl Entry {
    fn line(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            match self.kind {
                Kind::Payment => "payment",
                Kind::Refund => "refund",
                Kind::Reversal => "reversal",
            },
            self.receipt_no,
            self.trace,
            self.amount_minor,
            self.result,
            u8::from(self.reversed),
            u8::from(self.offline),
            self.batch
        )
    }

    fn parse(l: &str) -> Option<Entry> {
        let f: Vec<&str> = l.split('\t').collect();
        if f.len() != 8 {
            return None;
        }
        Some(Entry {
            kind: match f[0] {
                "payment" => Kind::Payment,
                "refund" => Kind::Refund,
                "reversal" => Kind::Reversal,
                _ => return None,
            },
            receipt_no: f[1].parse().ok()?,
            trace: f[2].parse().ok()?,
            amount_minor: f[3].parse().ok()?,
            result: f[4].parse().ok()?,
            reversed: f[5] == "1",
            offline: f[6] == "1",
            batch: f[7].parse().ok()?,
        })
    }
}

/// The simulated terminal's application.
#[derive(Debug)]
pub struct TerminalSim {
    /// Outcomes for the next payments / refunds, used first in first out.
    pub rules: VecDeque<Rule>,
    pub default_rule: Rule,
    /// Store-and-forward: approve without the host.
    pub offline: bool,
    pub terminal_id: String,
    pub currency: u16,
    journal: Vec<Entry>,
    path: Option<PathBuf>,
    out: VecDeque<Apdu>,
    /// The receipt of the last transaction (for repeat receipt).
    last: Option<(StatusInfo, Vec<String>)>,
    batch: u32,
    /// A payment or refund is under way (its completion or abort not yet sent).
    busy: bool,
    /// The decision of the payment under way, taken once its first prompt is acknowledged
    /// and the processing time has passed (card read, PIN, host).
    pending: Option<(Kind, i64, Rule)>,
    /// The transaction under way has been decided (journaled).
    decided: bool,
    /// How long a payment or refund takes from the card prompt to the decision.
    pub processing: std::time::Duration,
    /// Commands received (by name), for tests.
    pub commands: Vec<&'static str>,
}

impl Default for TerminalSim {
    fn default() -> Self {
        TerminalSim {
            rules: VecDeque::new(),
            default_rule: Rule::Approve,
            offline: false,
            terminal_id: "52500038".into(),
            currency: 978,
            journal: Vec::new(),
            path: None,
            out: VecDeque::new(),
            last: None,
            batch: 1,
            busy: false,
            pending: None,
            decided: false,
            processing: std::time::Duration::ZERO,
            commands: Vec::new(),
        }
    }
}

fn msg(class: u8, instr: u8, data: Vec<u8>) -> Apdu {
    Apdu::new(class, instr, data)
}

fn prompt(code: u8) -> Apdu {
    msg(0x04, 0xFF, vec![code])
}

fn print_line(text: &str) -> Apdu {
    let mut d = vec![0x00];
    d.extend(text.as_bytes());
    msg(0x06, 0xD1, d)
}

impl TerminalSim {
    /// A terminal whose journal lives in `path` (read now, rewritten after every change).
    pub fn with_journal(path: PathBuf) -> Result<TerminalSim, String> {
        let mut t = TerminalSim::default();
        if let Ok(text) = std::fs::read_to_string(&path) {
            for (i, l) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let e = Entry::parse(l)
                    .ok_or_else(|| format!("{}: line {} is not a journal entry", path.display(), i + 1))?;
                t.batch = t.batch.max(e.batch + 1);
                t.journal.push(e);
            }
        }
        // A terminal keeps its last receipt across its own restarts (repeat receipt).
        if let Some(e) = t.journal.last().cloned() {
            let title = match e.kind {
                Kind::Payment => "PAYMENT",
                Kind::Refund => "REFUND",
                Kind::Reversal => "REVERSAL",
            };
            t.last = Some((t.info(&e), t.receipt_lines(&e, title)));
        }
        t.path = Some(path);
        Ok(t)
    }

    pub fn journal(&self) -> &[Entry] {
        &self.journal
    }

    /// Approved payments not reversed, minus approved refunds: what the cards were charged.
    pub fn net_charged(&self) -> i64 {
        self.journal
            .iter()
            .filter(|e| e.result == 0)
            .map(|e| match e.kind {
                Kind::Payment if !e.reversed => e.amount_minor,
                Kind::Refund => -e.amount_minor,
                _ => 0,
            })
            .sum()
    }

    fn save(&self) {
        let Some(p) = &self.path else { return };
        let text: String = self.journal.iter().map(|e| e.line() + "\n").collect();
        let tmp = p.with_extension("tmp");
        let ok = std::fs::write(&tmp, text).and_then(|_| {
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, p)
        });
        if let Err(e) = ok {
            tracing::error!(path = %p.display(), error = %e, "terminal simulator: journal not written");
        }
    }

    /// The next receipt and trace numbers: one after the last transaction's, wrapping
    /// after 9999 and 999999 as terminals do.
    fn next_numbers(&self) -> (u32, u32) {
        let last = self.journal.last();
        let receipt = last.map_or(0, |e| e.receipt_no) % 9999 + 1;
        let trace = last.map_or(0, |e| e.trace) % 999_999 + 1;
        (receipt, trace)
    }

    fn info(&self, e: &Entry) -> StatusInfo {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let secs = now % 86_400;
        StatusInfo {
            result: Some(e.result),
            amount_minor: Some(e.amount_minor),
            currency: Some(self.currency),
            trace: Some(e.trace),
            receipt_no: Some(e.receipt_no),
            terminal_id: Some(self.terminal_id.clone()),
            pan_masked: (e.result == 0 && e.kind != Kind::Reversal).then(|| "6799998900000000019".to_string()),
            card_type: Some(5),
            card_name: Some("girocard".into()),
            auth_code: (e.result == 0).then(|| format!("{:06}", (e.trace * 7919) % 1_000_000)),
            time: Some(format!("{:02}{:02}{:02}", secs / 3600, secs / 60 % 60, secs % 60)),
            date: None,
            text: e.offline.then(|| "OFFLINE / STORE AND FORWARD".to_string()),
            ..Default::default()
        }
    }

    fn receipt_lines(&self, e: &Entry, title: &str) -> Vec<String> {
        let mut v = vec![
            title.to_string(),
            format!("TID {}  TRACE {:06}", self.terminal_id, e.trace),
            format!("RECEIPT {:04}", e.receipt_no),
            format!("AMOUNT EUR {}.{:02}", e.amount_minor / 100, e.amount_minor % 100),
            "CARD ************0019 girocard".to_string(),
        ];
        v.push(if e.result == 0 { "APPROVED".into() } else { format!("DECLINED {:02X}", e.result) });
        if e.offline {
            v.push("OFFLINE - STORED".into());
        }
        v
    }

    /// Starts a payment or refund under the next rule: the card prompt now, the decision
    /// (journal, status, receipt, completion) once the prompt is acknowledged and the
    /// processing time has passed. None: say nothing at all.
    fn transaction(&mut self, kind: Kind, amount: i64) -> Option<()> {
        let rule = self.rules.pop_front().unwrap_or_else(|| self.default_rule.clone());
        match rule {
            Rule::Hang => return None,
            Rule::Refuse(code) => self.out.push_back(Apdu::nak(code)),
            Rule::Timeout => self.out.push_back(prompt(0x0A)),
            Rule::Abort => {
                self.out.push_back(prompt(0x0A));
                self.out.push_back(msg(0x06, 0x1E, vec![0x6C]));
            }
            Rule::CrashAfterApproving | Rule::Decline(_) | Rule::Approve => {
                self.out.push_back(prompt(0x0A));
                self.pending = Some((kind, amount, rule));
            }
        }
        Some(())
    }

    /// A payment keyed at the terminal itself (a clerk using its own keypad, not through
    /// any ECR): journaled and its receipt the last one, as a real terminal would.
    pub fn keyed_payment(&mut self, amount: i64) -> u32 {
        let (receipt_no, trace) = self.next_numbers();
        let e = Entry {
            kind: Kind::Payment,
            receipt_no,
            trace,
            amount_minor: amount,
            result: 0,
            reversed: false,
            offline: self.offline,
            batch: 0,
        };
        self.journal.push(e.clone());
        self.save();
        self.last = Some((self.info(&e), self.receipt_lines(&e, "PAYMENT")));
        receipt_no
    }

    /// The terminal decides: journaled first (the host has answered), then told.
    fn decide(&mut self, kind: Kind, amount: i64, rule: Rule) {
        self.decided = true;
        let (receipt_no, trace) = self.next_numbers();
        let mut e = Entry {
            kind,
            receipt_no,
            trace,
            amount_minor: amount,
            result: 0,
            reversed: false,
            offline: false,
            batch: 0,
        };
        match rule {
            Rule::CrashAfterApproving => {
                self.journal.push(e.clone());
                self.save();
                self.last = Some((self.info(&e), self.receipt_lines(&e, "PAYMENT")));
                return;
            }
            Rule::Decline(code) => e.result = if code == 0 { 0x05 } else { code },
            _ => e.offline = self.offline,
        }
        self.journal.push(e.clone());
        self.save();
        let title = if kind == Kind::Refund { "REFUND" } else { "PAYMENT" };
        let info = self.info(&e);
        let lines = self.receipt_lines(&e, title);
        self.out.push_back(prompt(0x01));
        if !self.offline {
            self.out.push_back(prompt(0x04));
        }
        self.out.push_back(msg(0x04, 0x0F, info.encode()));
        for l in &lines {
            self.out.push_back(print_line(l));
        }
        self.out.push_back(if e.result == 0 { msg(0x06, 0x0F, Vec::new()) } else { msg(0x06, 0x1E, vec![e.result]) });
        self.last = Some((info, lines));
    }

    fn complete(&mut self, info: StatusInfo, lines: Vec<String>) {
        self.out.push_back(msg(0x04, 0x0F, info.encode()));
        for l in &lines {
            self.out.push_back(print_line(l));
        }
        self.out.push_back(msg(0x06, 0x0F, Vec::new()));
    }

    /// One APDU from the ECR; the APDUs to send back now.
    pub fn handle(&mut self, a: Apdu) -> Vec<Apdu> {
        if a.is(0x80, 0x00) || a.class == 0x84 {
            // The ECR acknowledged our last message: the next one goes.
            return self.pop().into_iter().collect();
        }
        self.commands.push(super::command_name(&a));
        if a.is(0x06, 0xB0) {
            // Abort request: only while a transaction is under way and not yet decided (a
            // payment the host approved cannot be aborted, only reversed).
            if !self.busy || self.decided {
                return vec![Apdu::nak(0x83)];
            }
            self.out.clear();
            self.pending = None;
            self.busy = false;
            return vec![Apdu::ack(), msg(0x06, 0x1E, vec![0x6C])];
        }
        self.out.clear();
        self.pending = None;
        self.decided = false;
        self.busy = false;
        let fields = |d: &[u8]| bmps(d).unwrap_or_default();
        let amount_of = |f: &[(u8, Vec<u8>)]| {
            f.iter().find(|(t, _)| *t == 0x04).and_then(|(_, v)| from_bcd(v).ok()).map(|v| v as i64)
        };
        let currency_ok = |f: &[(u8, Vec<u8>)], cur: u16| {
            f.iter().find(|(t, _)| *t == 0x49).is_none_or(|(_, v)| from_bcd(v).ok() == Some(u64::from(cur)))
        };
        match (a.class, a.instr) {
            (0x06, 0x00) => {
                let mut d = vec![0x29];
                d.extend(bcd(self.terminal_id.parse().unwrap_or(0), 4).unwrap_or_default());
                self.out.push_back(msg(0x06, 0x0F, d));
            }
            (0x06, 0x01) | (0x06, 0x31) => {
                let body = if a.instr == 0x31 { a.data.get(3..).unwrap_or(&[]) } else { &a.data[..] };
                let f = fields(body);
                let Some(amount) = amount_of(&f).filter(|x| *x > 0) else { return vec![Apdu::nak(0x9A)] };
                if !currency_ok(&f, self.currency) {
                    self.out.push_back(msg(0x06, 0x1E, vec![0x6F]));
                } else {
                    let kind = if a.instr == 0x31 { Kind::Refund } else { Kind::Payment };
                    self.busy = true;
                    if self.transaction(kind, amount).is_none() {
                        return Vec::new();
                    }
                }
            }
            (0x06, 0x30) => {
                let f = fields(a.data.get(3..).unwrap_or(&[]));
                let receipt = f.iter().find(|(t, _)| *t == 0x87).and_then(|(_, v)| from_bcd(v).ok()).map(|r| r as u32);
                let found = self.journal.iter().position(|e| {
                    Some(e.receipt_no) == receipt && e.kind == Kind::Payment && e.result == 0 && e.batch == 0
                });
                match found {
                    None => self.out.push_back(msg(0x06, 0x1E, vec![0xB5])),
                    Some(i) if self.journal[i].reversed => self.out.push_back(msg(0x06, 0x1E, vec![0xB4])),
                    Some(i) => {
                        self.journal[i].reversed = true;
                        let (receipt_no, trace) = self.next_numbers();
                        let e = Entry {
                            kind: Kind::Reversal,
                            receipt_no,
                            trace,
                            amount_minor: self.journal[i].amount_minor,
                            result: 0,
                            reversed: false,
                            offline: false,
                            batch: 0,
                        };
                        let mut info = self.info(&e);
                        info.original_trace = Some(self.journal[i].trace);
                        let lines = self.receipt_lines(&e, "REVERSAL");
                        self.journal.push(e);
                        self.save();
                        self.last = Some((info.clone(), lines.clone()));
                        self.complete(info, lines);
                    }
                }
            }
            (0x06, 0x50) => {
                let batch = self.batch;
                let mut total = 0i64;
                let mut count = 0u32;
                for e in self.journal.iter_mut().filter(|e| e.batch == 0) {
                    if e.result == 0 {
                        match e.kind {
                            Kind::Payment if !e.reversed => total += e.amount_minor,
                            Kind::Refund => total -= e.amount_minor,
                            _ => {}
                        }
                        count += 1;
                    }
                    e.batch = batch;
                }
                self.batch += 1;
                self.save();
                let info = StatusInfo {
                    result: Some(0),
                    amount_minor: Some(total.max(0)),
                    currency: Some(self.currency),
                    terminal_id: Some(self.terminal_id.clone()),
                    turnover_no: Some(batch),
                    text: Some(format!("END OF DAY: {count} TRANSACTIONS, NET {total}")),
                    ..Default::default()
                };
                let lines = vec![
                    "END OF DAY".to_string(),
                    format!("BATCH {batch}  TID {}", self.terminal_id),
                    format!("TRANSACTIONS {count}"),
                    format!("NET EUR {}.{:02}", total / 100, (total % 100).abs()),
                ];
                self.complete(info, lines);
            }
            (0x05, 0x01) => {
                let stored = self.journal.iter().filter(|e| e.offline && e.batch == 0).count();
                let info = StatusInfo {
                    result: Some(0),
                    terminal_id: Some(self.terminal_id.clone()),
                    text: Some(if self.offline {
                        format!("READY, OFFLINE: {stored} STORED")
                    } else {
                        "READY".to_string()
                    }),
                    ..Default::default()
                };
                self.out.push_back(msg(0x04, 0x0F, info.encode()));
                self.out.push_back(msg(0x06, 0x0F, Vec::new()));
            }
            (0x06, 0x20) => match self.last.clone() {
                Some((info, lines)) => {
                    let mut lines = lines;
                    lines.insert(0, "** COPY **".into());
                    self.complete(info, lines);
                }
                None => self.out.push_back(msg(0x06, 0x1E, vec![0x83])),
            },
            (0x06, 0x70) => {
                self.out.push_back(prompt(0x0E));
                let info = StatusInfo {
                    result: Some(0),
                    terminal_id: Some(self.terminal_id.clone()),
                    text: Some("DIAGNOSIS OK".into()),
                    ..Default::default()
                };
                self.out.push_back(msg(0x04, 0x0F, info.encode()));
                self.out.push_back(msg(0x06, 0x0F, Vec::new()));
            }
            _ => return vec![Apdu::nak(0x83)],
        }
        // A refusal goes alone, in place of the acknowledgement.
        if self.out.front().is_some_and(|m| m.class == 0x84) {
            return self.out.pop_front().into_iter().collect();
        }
        let mut now = vec![Apdu::ack()];
        now.extend(self.pop());
        now
    }

    fn pop(&mut self) -> Option<Apdu> {
        if self.out.is_empty()
            && let Some((kind, amount, rule)) = self.pending.take()
        {
            std::thread::sleep(self.processing);
            self.decide(kind, amount, rule);
        }
        let m = self.out.pop_front()?;
        if m.is(0x06, 0x0F) || m.is(0x06, 0x1E) {
            self.busy = false;
        }
        Some(m)
    }
}

/// How the simulated terminal is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimFraming {
    Plain,
    Serial,
}

/// The terminal on a byte link: its application plus the transport's framing.
#[derive(Debug)]
pub struct TerminalPeer {
    pub sim: TerminalSim,
    framing: SimFraming,
    buf: Vec<u8>,
    /// Serial: frames sent and waiting for the ECR's ACK (the front one is on the wire).
    unacked: VecDeque<Vec<u8>>,
    /// Serial: send the next N frames with a wrong CRC (the ECR must NAK and get them again).
    pub corrupt_next: u32,
    /// Frames the ECR NAKed, and bad frames it sent.
    pub naks_received: u64,
    pub bad_frames: u64,
}

impl TerminalPeer {
    pub fn new(sim: TerminalSim, framing: SimFraming) -> TerminalPeer {
        TerminalPeer {
            sim,
            framing,
            buf: Vec::new(),
            unacked: VecDeque::new(),
            corrupt_next: 0,
            naks_received: 0,
            bad_frames: 0,
        }
    }

    fn wire(&mut self, f: &[u8]) -> Vec<u8> {
        let mut f = f.to_vec();
        if self.corrupt_next > 0 {
            self.corrupt_next -= 1;
            let n = f.len();
            f[n - 1] ^= 0x5A;
        }
        f
    }
}

impl Peer for TerminalPeer {
    fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.buf.extend_from_slice(bytes);
        let mut reply = Vec::new();
        match self.framing {
            SimFraming::Plain => loop {
                match super::Apdu::decode(&self.buf) {
                    Ok(Some((a, used))) => {
                        self.buf.drain(..used);
                        for out in self.sim.handle(a) {
                            reply.extend(out.encode());
                        }
                    }
                    Ok(None) => break,
                    Err(_) => {
                        self.buf.clear();
                        break;
                    }
                }
            },
            SimFraming::Serial => loop {
                match scan(&self.buf) {
                    Scanned::More => break,
                    Scanned::Frame(a, used) => {
                        self.buf.drain(..used);
                        reply.push(ACK);
                        let idle = self.unacked.is_empty();
                        for out in self.sim.handle(a) {
                            self.unacked.push_back(frame(&out));
                        }
                        if idle && let Some(f) = self.unacked.front().cloned() {
                            let w = self.wire(&f);
                            reply.extend(w);
                        }
                    }
                    Scanned::Bad(why, used) => {
                        self.buf.drain(..used);
                        self.bad_frames += 1;
                        if !why.ends_with("of noise") {
                            reply.push(NAK);
                        }
                    }
                    Scanned::Signal(s, used) => {
                        self.buf.drain(..used);
                        if s == ACK {
                            self.unacked.pop_front();
                        } else {
                            self.naks_received += 1;
                        }
                        if let Some(f) = self.unacked.front().cloned() {
                            let w = self.wire(&f);
                            reply.extend(w);
                        }
                    }
                }
            },
        }
        reply
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_the_journal_survives_a_restart() {
        assert_eq!(Rule::parse("decline:51"), Ok(Rule::Decline(0x51)));
        assert_eq!(Rule::parse("crash-after-approving"), Ok(Rule::CrashAfterApproving));
        assert!(Rule::parse("explode").is_err());
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("journal.tsv");
        let mut t = TerminalSim::with_journal(path.clone()).expect("new");
        let mut auth = vec![0x04];
        auth.extend(bcd(1234, 6).expect("bcd"));
        auth.extend([0x49, 0x09, 0x78, 0x06, 0x00]);
        let first = t.handle(Apdu::new(0x06, 0x01, auth));
        assert_eq!(first[0], Apdu::ack());
        assert_eq!(t.net_charged(), 0, "the card prompt first; the decision once it is acknowledged");
        t.handle(Apdu::ack());
        // Decided: an abort now is refused (an approved payment is reversed, not aborted).
        assert_eq!(t.handle(Apdu::new(0x06, 0xB0, vec![])), vec![Apdu::nak(0x83)]);
        let t2 = TerminalSim::with_journal(path.clone()).expect("reopen");
        assert_eq!(t2.net_charged(), 1234);
        std::fs::write(&path, "garbage\n").expect("write");
        assert!(TerminalSim::with_journal(path).is_err());
    }
}
