//! The ECR side: commands to a ZVT terminal and the flow that follows each one. Every
//! message the terminal sends is acknowledged `80 00 00` and reported as a [`Event`]
//! (a prompt for the screens, status information for the record, a print line for the
//! receipt). A command ends with the terminal's completion or abort, or with an error
//! that says whether the terminal may have acted ([`Outcome::in_doubt`]).

use super::transport::{SerialZvt, TcpZvt, ZvtLink};
use super::{Apdu, StatusInfo, ZvtError, bcd, command_name, error_text, prompt_text};
use crate::model::Lifecycle;
use crate::transport::Link;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use crate::payment::{Event, Failure, Outcome};

/// Timeouts of one terminal.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For the command's `80 00 00`.
    pub ack: Duration,
    /// Between messages while the terminal works (a customer at the PIN pad; ecrterm T4 is
    /// 180 s).
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { ack: Duration::from_secs(5), idle: Duration::from_secs(180) }
    }
}

/// A ZVT terminal on a link.
pub struct Terminal {
    link: Box<dyn ZvtLink>,
    password: u32,
    pub currency: u16,
    pub timeouts: Timeouts,
    pub lifecycle: Lifecycle,
    /// Set from another thread to ask the terminal to abort the running command (06 B0).
    pub abort: Arc<AtomicBool>,
}

/// Which framing a link needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// TCP: plain APDUs.
    Plain,
    /// Serial: DLE STX … DLE ETX CRC, ACK / NAK.
    Serial,
}

impl Terminal {
    pub fn new(name: &str, link: Box<dyn Link>, framing: Framing, password: u32, currency: u16) -> Terminal {
        let mut lifecycle = Lifecycle::new(name);
        lifecycle.stats.set("DeviceCategory", "PaymentTerminal (ZVT)");
        lifecycle.stats.set("Interface", link.describe());
        let link: Box<dyn ZvtLink> = match framing {
            Framing::Plain => Box::new(TcpZvt::new(link)),
            Framing::Serial => Box::new(SerialZvt::new(link)),
        };
        Terminal {
            link,
            password: password.min(999_999),
            currency,
            timeouts: Timeouts::default(),
            lifecycle,
            abort: Arc::new(AtomicBool::new(false)),
        }
    }

    fn password(&self) -> Vec<u8> {
        bcd(u64::from(self.password), 3).unwrap_or_else(|| vec![0; 3])
    }

    fn amount(&self, minor: i64) -> Result<Vec<u8>, Failure> {
        if !(1..=999_999_999_999).contains(&minor) {
            return Err(Failure {
                error: crate::payment::TerminalError::Zvt(ZvtError::Malformed(format!(
                    "amount {minor} is not 1 to 999999999999 minor units"
                ))),
                in_doubt: false,
                partial: Box::default(),
            });
        }
        let mut b = vec![0x04];
        b.extend(bcd(minor as u64, 6).unwrap_or_default());
        b.push(0x49);
        b.extend(bcd(u64::from(self.currency), 2).unwrap_or_default());
        Ok(b)
    }

    /// Registration (06 00): config byte 0xBA (receipts printed by the ECR, amounts set by
    /// the ECR, admin functions locked on the terminal), the currency.
    pub fn register(&mut self, on: &mut dyn FnMut(Event)) -> Result<Outcome, Failure> {
        let mut d = self.password();
        d.push(0xBA);
        d.extend(bcd(u64::from(self.currency), 2).unwrap_or_default());
        self.run(Apdu::new(0x06, 0x00, d), on)
    }

    /// Authorisation (06 01) of `minor` units.
    pub fn authorise(&mut self, minor: i64, on: &mut dyn FnMut(Event)) -> Result<Outcome, Failure> {
        let mut d = self.amount(minor)?;
        d.extend([0x06, 0x00]); // an empty TLV container, as ecrterm sends
        self.run(Apdu::new(0x06, 0x01, d), on)
    }

    /// Reversal (06 30) of the payment with this receipt number.
    pub fn reverse(&mut self, receipt_no: u32, on: &mut dyn FnMut(Event)) -> Result<Outcome, Failure> {
        let mut d = self.password();
        d.push(0x87);
        d.extend(bcd(u64::from(receipt_no.min(9999)), 2).unwrap_or_default());
        self.run(Apdu::new(0x06, 0x30, d), on)
    }

    /// Refund (06 31) of `minor` units to the card presented.
    pub fn refund(&mut self, minor: i64, on: &mut dyn FnMut(Event)) -> Result<Outcome, Failure> {
        let mut d = self.password();
        d.extend(self.amount(minor)?);
        self.run(Apdu::new(0x06, 0x31, d), on)
    }

    /// End-of-day (06 50): the terminal settles its batch.
    pub fn end_of_day(&mut self, on: &mut dyn FnMut(Event)) -> Result<Outcome, Failure> {
        let d = self.password();
        self.run(Apdu::new(0x06, 0x50, d), on)
    }

    /// Status enquiry (05 01).
    pub fn status_enquiry(&mut self, on: &mut dyn FnMut(Event)) -> Result<Outcome, Failure> {
        let d = self.password();
        self.run(Apdu::new(0x05, 0x01, d), on)
    }

    /// Repeat receipt (06 20): the last transaction's status information and receipt.
    pub fn repeat_receipt(&mut self, on: &mut dyn FnMut(Event)) -> Result<Outcome, Failure> {
        let d = self.password();
        self.run(Apdu::new(0x06, 0x20, d), on)
    }

    /// Diagnosis (06 70).
    pub fn diagnosis(&mut self, on: &mut dyn FnMut(Event)) -> Result<Outcome, Failure> {
        let d = self.password();
        self.run(Apdu::new(0x06, 0x70, d), on)
    }

    /// Transport errors (bad frames, CRCs, noise) so far.
    pub fn link_errors(&self) -> u64 {
        self.link.errors()
    }

    /// Sends a command and follows the flow to its end.
    pub fn run(&mut self, cmd: Apdu, on: &mut dyn FnMut(Event)) -> Result<Outcome, Failure> {
        let name = command_name(&cmd);
        let fail = |error: ZvtError, in_doubt: bool, partial: Outcome| Failure {
            error: error.into(),
            in_doubt,
            partial: Box::new(partial),
        };
        self.abort.store(false, Ordering::SeqCst);
        if let Err(e) = self.link.send(&cmd) {
            self.lifecycle.stats.communication_error();
            // Serial: not acknowledged means not received. TCP: written is all we know.
            return Err(fail(e, false, Outcome::default()));
        }
        let mut out = Outcome::default();
        // The command's acknowledgement (recv waits up to the whole ack timeout).
        match self.link.recv(self.timeouts.ack) {
            Ok(Some(a)) if a.is(0x80, 0x00) => {}
            Ok(Some(a)) if a.class == 0x84 => {
                let code = if a.instr == 0x00 { a.data.first().copied().unwrap_or(0x83) } else { a.instr };
                return Err(fail(ZvtError::Refused { code, text: error_text(code) }, false, out));
            }
            // A terminal may skip the ACK and start at once: handle it as a message.
            Ok(Some(a)) => match self.message(a, &mut out, on) {
                Ok(true) => return Ok(out),
                Ok(false) => {}
                Err(e) => return Err(fail(e, true, out)),
            },
            Ok(None) => {
                self.lifecycle.stats.communication_error();
                // On TCP the command may have arrived: in doubt; on serial it was ACKed.
                return Err(fail(ZvtError::Timeout(self.timeouts.ack.as_millis() as u64), true, out));
            }
            Err(e) => {
                self.lifecycle.stats.communication_error();
                return Err(fail(e, true, out));
            }
        }
        tracing::debug!(command = name, "ZVT command accepted");
        // The flow.
        let mut last = Instant::now();
        let mut abort_sent = false;
        loop {
            if self.abort.load(Ordering::SeqCst) && !abort_sent {
                abort_sent = true;
                if let Err(e) = self.link.send(&Apdu::new(0x06, 0xB0, Vec::new())) {
                    return Err(fail(e, true, out));
                }
            }
            if last.elapsed() >= self.timeouts.idle {
                self.lifecycle.stats.communication_error();
                return Err(fail(ZvtError::Timeout(self.timeouts.idle.as_millis() as u64), true, out));
            }
            let step = Duration::from_millis(200).min(self.timeouts.idle);
            match self.link.recv(step) {
                Ok(Some(a)) => {
                    last = Instant::now();
                    match self.message(a, &mut out, on) {
                        Ok(true) => return Ok(out),
                        Ok(false) => {}
                        Err(e) => return Err(fail(e, true, out)),
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    self.lifecycle.stats.communication_error();
                    return Err(fail(e, true, out));
                }
            }
        }
    }

    /// Handles one message of the flow; true when the command has ended.
    fn message(&mut self, a: Apdu, out: &mut Outcome, on: &mut dyn FnMut(Event)) -> Result<bool, ZvtError> {
        match (a.class, a.instr) {
            (0x80, 0x00) => return Ok(false), // the ACK of our abort request
            (0x84, _) => return Ok(false),    // an abort request the terminal could not take
            _ => {}
        }
        self.link.send(&Apdu::ack())?;
        match (a.class, a.instr) {
            (0x04, 0xFF) => {
                let code = a.data.first().copied().unwrap_or(0xFF);
                on(Event::Prompt { code, text: prompt_text(code) });
            }
            (0x04, 0x0F) => match StatusInfo::parse(&a.data) {
                Ok(s) => {
                    out.info = Some(s.clone());
                    on(Event::Status(s));
                }
                Err(e) => {
                    self.lifecycle.stats.communication_error();
                    tracing::warn!(error = %e, "ZVT status information not understood");
                }
            },
            (0x06, 0xD1) => {
                // Attribute byte, then the text.
                let line = String::from_utf8_lossy(a.data.get(1..).unwrap_or(&[])).trim_end().to_string();
                out.receipt.push(line.clone());
                on(Event::PrintLine(line));
            }
            (0x06, 0xD3) => {
                for line in String::from_utf8_lossy(&a.data).lines() {
                    out.receipt.push(line.to_string());
                    on(Event::PrintLine(line.to_string()));
                }
            }
            (0x06, 0x0F) => {
                let code = out.info.as_ref().and_then(|i| i.result).unwrap_or(0);
                out.code = code;
                out.approved = code == 0;
                out.text = error_text(code);
                return Ok(true);
            }
            (0x06, 0x1E) => {
                let code = a.data.first().copied().unwrap_or(0xFF);
                out.code = if code == 0 { 0xFF } else { code };
                out.approved = false;
                out.text = error_text(out.code);
                return Ok(true);
            }
            (0x04, 0x01) => {} // set time and date: acknowledged, the daemon keeps UTC itself
            _ => tracing::debug!(message = %a, "ZVT message not used"),
        }
        Ok(false)
    }
}
