//! ESC/POS receipt printers (and the cash drawer behind them): the host side.
//!
//! Byte values from `../shared/reference/devices-payments-offline.md` §4 (python-escpos
//! constants, Epson `DLE EOT`). [`Receipt`] encodes a job: text with bold / underline /
//! double size, alignment, code page, barcodes, QR codes, raster logos, cut and drawer
//! kick. [`Printer`] drives a printer over any [`Link`]: real-time status (`DLE EOT 1–4`)
//! mapped to online, cover open, paper near end / end, cutter error and the drawer sensor.
//!
//! **A receipt is never printed twice by blind retry.** Every job carries an id. Before
//! sending, the printer's status is read: if it cannot print, nothing is sent and the job
//! is `NotPrinted` (safe to print later). Once bytes may have reached the printer, a
//! failure makes the job `InDoubt`: the driver asks the printer's status and reports it,
//! and the same id is refused from then on. Only an explicit reprint (a staff decision,
//! marked as a copy) prints it again. The simulated peer is [`sim`].

pub mod sim;

use crate::model::{DeviceError, DeviceEvent, HealthLevel, Lifecycle};
use crate::transport::{Link, LinkError, read_until};
use std::collections::BTreeMap;
use std::time::Duration;

pub const ESC: u8 = 0x1B;
pub const GS: u8 = 0x1D;
pub const DLE: u8 = 0x10;
pub const EOT: u8 = 0x04;
pub const LF: u8 = 0x0A;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left = 0,
    Center = 1,
    Right = 2,
}

/// Barcode symbologies (`GS k m`, function B: m 65–73).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Symbology {
    UpcA = 65,
    Ean13 = 67,
    Ean8 = 68,
    Code39 = 69,
    Code128 = 73,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("barcode data {0:?} does not fit the symbology")]
    Barcode(String),
    #[error("QR data is {0} bytes; at most 7,089")]
    QrTooLong(usize),
    #[error("raster image {w}x{h} does not match {len} bytes (width in bytes x height)")]
    Raster { w: usize, h: usize, len: usize },
    #[error("{0}")]
    Text(String),
}

/// The PC858 byte of a printable character this driver sends (None: printed as `?`).
fn pc858(c: char) -> Option<u8> {
    Some(match c {
        ' '..='~' => c as u8,
        '€' => 0xD5,
        'ä' => 0x84,
        'ö' => 0x94,
        'ü' => 0x81,
        'Ä' => 0x8E,
        'Ö' => 0x99,
        'Ü' => 0x9A,
        'ß' => 0xE1,
        'é' => 0x82,
        _ => return None,
    })
}

/// The character as the printer will show it: itself, or `?` for one the code page lacks
/// (so a text rendering of a job reads what the paper reads).
pub fn printable(c: char) -> char {
    if pc858(c).is_some() { c } else { '?' }
}

/// A print job being built.
#[derive(Debug, Clone, Default)]
pub struct Receipt {
    bytes: Vec<u8>,
}

impl Receipt {
    /// `ESC @` then the code page (`ESC t n`; 0 = PC437, 16 = WPC1252, 19 = PC858 with €).
    pub fn new(code_page: u8) -> Receipt {
        Receipt { bytes: vec![ESC, b'@', ESC, b't', code_page] }
    }

    /// Text in the printer's code page: ASCII passes, `€` and Latin-1 letters map to
    /// PC858, anything else becomes `?` (never a control byte).
    pub fn text(mut self, s: &str) -> Receipt {
        for c in s.chars() {
            let b = if c == '\n' { LF } else { pc858(c).unwrap_or(b'?') };
            self.bytes.push(b);
        }
        self
    }

    pub fn line(self, s: &str) -> Receipt {
        self.text(s).text("\n")
    }

    pub fn bold(mut self, on: bool) -> Receipt {
        self.bytes.extend_from_slice(&[ESC, b'E', u8::from(on)]);
        self
    }

    pub fn underline(mut self, on: bool) -> Receipt {
        self.bytes.extend_from_slice(&[ESC, b'-', u8::from(on)]);
        self
    }

    /// `ESC ! n`: 0x10 double height, 0x20 double width.
    pub fn double(mut self, height: bool, width: bool) -> Receipt {
        let n = if height { 0x10 } else { 0 } | if width { 0x20 } else { 0 };
        self.bytes.extend_from_slice(&[ESC, b'!', n]);
        self
    }

    pub fn align(mut self, a: Align) -> Receipt {
        self.bytes.extend_from_slice(&[ESC, b'a', a as u8]);
        self
    }

    /// `GS k m n d…` (function B) with the human-readable text below (`GS H 2`).
    pub fn barcode(mut self, sym: Symbology, data: &str) -> Result<Receipt, EncodeError> {
        let ok = match sym {
            Symbology::Ean13 => data.len() == 12 || data.len() == 13,
            Symbology::Ean8 => data.len() == 7 || data.len() == 8,
            Symbology::UpcA => data.len() == 11 || data.len() == 12,
            Symbology::Code39 | Symbology::Code128 => (1..=255).contains(&data.len()),
        } && data.bytes().all(|b| (0x20..0x7F).contains(&b))
            && (!matches!(sym, Symbology::Ean13 | Symbology::Ean8 | Symbology::UpcA)
                || data.bytes().all(|b| b.is_ascii_digit()));
        if !ok {
            return Err(EncodeError::Barcode(data.to_string()));
        }
        self.bytes.extend_from_slice(&[GS, b'H', 2, GS, b'h', 80, GS, b'k', sym as u8, data.len() as u8]);
        self.bytes.extend_from_slice(data.as_bytes());
        self.bytes.push(LF);
        Ok(self)
    }

    /// A QR code (`GS ( k`: model 2, module size 6, error correction M, store, print).
    pub fn qr(mut self, data: &str) -> Result<Receipt, EncodeError> {
        let d = data.as_bytes();
        if d.len() > 7089 {
            return Err(EncodeError::QrTooLong(d.len()));
        }
        let store_len = d.len() + 3;
        let (pl, ph) = ((store_len & 0xFF) as u8, (store_len >> 8) as u8);
        self.bytes.extend_from_slice(&[GS, b'(', b'k', 4, 0, 49, 65, 50, 0]);
        self.bytes.extend_from_slice(&[GS, b'(', b'k', 3, 0, 49, 67, 6]);
        self.bytes.extend_from_slice(&[GS, b'(', b'k', 3, 0, 49, 69, 49]);
        self.bytes.extend_from_slice(&[GS, b'(', b'k', pl, ph, 49, 80, 48]);
        self.bytes.extend_from_slice(d);
        self.bytes.extend_from_slice(&[GS, b'(', b'k', 3, 0, 49, 81, 48, LF]);
        Ok(self)
    }

    /// A 1-bit raster image (`GS v 0`), `width_bytes` × 8 dots wide, rows top to bottom.
    pub fn raster(mut self, width_bytes: usize, height: usize, data: &[u8]) -> Result<Receipt, EncodeError> {
        if width_bytes == 0
            || height == 0
            || width_bytes > 0xFFFF
            || height > 0xFFFF
            || width_bytes * height != data.len()
        {
            return Err(EncodeError::Raster { w: width_bytes, h: height, len: data.len() });
        }
        self.bytes.extend_from_slice(&[
            GS,
            b'v',
            b'0',
            0,
            (width_bytes & 0xFF) as u8,
            (width_bytes >> 8) as u8,
            (height & 0xFF) as u8,
            (height >> 8) as u8,
        ]);
        self.bytes.extend_from_slice(data);
        Ok(self)
    }

    /// Feed and full cut (`GS V A 3`).
    pub fn cut(mut self) -> Receipt {
        self.bytes.extend_from_slice(&[GS, b'V', b'A', 3]);
        self
    }

    /// Drawer kick on pin 2 (`ESC p 0 25 25`: 50 ms on, 50 ms off).
    pub fn kick(mut self) -> Receipt {
        self.bytes.extend_from_slice(&kick_bytes());
        self
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// `ESC p 0 25 25`.
pub fn kick_bytes() -> [u8; 5] {
    [ESC, b'p', 0, 25, 25]
}

/// What `DLE EOT 1–4` says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrinterStatus {
    pub online: bool,
    pub cover_open: bool,
    pub paper_near_end: bool,
    pub paper_end: bool,
    pub cutter_error: bool,
    pub unrecoverable_error: bool,
    /// Drawer connector pin 3 high: with the usual wiring, the drawer is open.
    pub drawer_open: bool,
}

impl PrinterStatus {
    /// Why a receipt cannot be printed now, if it cannot.
    pub fn blocker(&self) -> Option<&'static str> {
        if self.cover_open {
            Some("cover open")
        } else if self.paper_end {
            Some("paper end")
        } else if self.cutter_error {
            Some("cutter error")
        } else if self.unrecoverable_error {
            Some("unrecoverable error")
        } else if !self.online {
            Some("offline")
        } else {
            None
        }
    }

    /// The status in words, for events and the device list.
    pub fn describe(&self) -> String {
        let mut v = vec![if self.online { "online" } else { "offline" }];
        if self.cover_open {
            v.push("cover open");
        }
        if self.paper_end {
            v.push("paper end");
        } else if self.paper_near_end {
            v.push("paper near end");
        }
        if self.cutter_error {
            v.push("cutter error");
        }
        if self.unrecoverable_error {
            v.push("unrecoverable error");
        }
        v.push(if self.drawer_open { "drawer open" } else { "drawer closed" });
        v.join(", ")
    }
}

/// Checks the fixed bits of a `DLE EOT` reply (`0xx1xx10`).
pub fn valid_status_byte(b: u8) -> bool {
    b & 0b1001_0011 == 0b0001_0010
}

/// Decodes the four reply bytes of `DLE EOT 1`, `2`, `3`, `4`.
pub fn decode_status(r: [u8; 4]) -> Result<PrinterStatus, String> {
    for (i, b) in r.iter().enumerate() {
        if !valid_status_byte(*b) {
            return Err(format!("DLE EOT {} answered {b:#04x}, which is not a status byte (0xx1xx10)", i + 1));
        }
    }
    let bit = |b: u8, n: u8| b & (1 << n) != 0;
    Ok(PrinterStatus {
        online: !bit(r[0], 3),
        drawer_open: bit(r[0], 2),
        cover_open: bit(r[1], 2),
        paper_end: bit(r[1], 5) || (bit(r[3], 5) && bit(r[3], 6)),
        cutter_error: bit(r[2], 3),
        unrecoverable_error: bit(r[2], 5),
        paper_near_end: bit(r[3], 2) && bit(r[3], 3),
    })
}

/// Where a print job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    Printed,
    /// Nothing was sent; printing later is safe.
    NotPrinted(String),
    /// Bytes may have reached the printer: staff decide (see [`Printer::reprint`]).
    InDoubt(String),
}

/// Jobs remembered per printer (oldest forgotten first).
pub const MAX_JOBS: usize = 1000;

/// An ESC/POS printer on a link.
pub struct Printer {
    link: Box<dyn Link>,
    pub lifecycle: Lifecycle,
    jobs: BTreeMap<String, JobOutcome>,
    order: Vec<String>,
    reply_timeout: Duration,
    last_status: Option<PrinterStatus>,
}

impl Printer {
    pub fn new(name: &str, link: Box<dyn Link>) -> Printer {
        let mut lifecycle = Lifecycle::new(name);
        lifecycle.stats.set("DeviceCategory", "POSPrinter");
        lifecycle.stats.set("Interface", link.describe());
        Printer {
            link,
            lifecycle,
            jobs: BTreeMap::new(),
            order: Vec::new(),
            reply_timeout: Duration::from_millis(500),
            last_status: None,
        }
    }

    pub fn set_reply_timeout(&mut self, t: Duration) {
        self.reply_timeout = t;
    }

    fn comm(&mut self, e: LinkError) -> DeviceError {
        self.lifecycle.stats.communication_error();
        match e {
            LinkError::Closed => DeviceError::Offline(format!("{}: the printer closed the link", self.lifecycle.name)),
            other => DeviceError::Failure(format!("{}: {other}", self.lifecycle.name)),
        }
    }

    /// Asks `DLE EOT 1–4`. A missing or malformed reply is an error naming which.
    pub fn status(&mut self) -> Result<PrinterStatus, DeviceError> {
        self.link.discard_input().map_err(|e| self.comm(e))?;
        let mut r = [0u8; 4];
        for n in 1..=4u8 {
            self.link.write_all(&[DLE, EOT, n]).map_err(|e| self.comm(e))?;
            let got = read_until(self.link.as_mut(), self.reply_timeout, self.reply_timeout, 1, |b| !b.is_empty())
                .map_err(|e| self.comm(e))?;
            let Some(b) = got.first() else {
                self.lifecycle.stats.communication_error();
                return Err(DeviceError::Timeout(format!(
                    "{}: no answer to DLE EOT {n} within {} ms",
                    self.lifecycle.name,
                    self.reply_timeout.as_millis()
                )));
            };
            r[usize::from(n - 1)] = *b;
        }
        let st = decode_status(r).map_err(|why| {
            self.lifecycle.stats.communication_error();
            DeviceError::Failure(format!("{}: {why}", self.lifecycle.name))
        })?;
        self.last_status = Some(st);
        Ok(st)
    }

    pub fn job(&self, id: &str) -> Option<&JobOutcome> {
        self.jobs.get(id)
    }

    fn remember(&mut self, id: &str, o: JobOutcome) {
        if !self.jobs.contains_key(id) {
            self.order.push(id.to_string());
        }
        self.jobs.insert(id.to_string(), o);
        while self.order.len() > MAX_JOBS {
            let old = self.order.remove(0);
            self.jobs.remove(&old);
        }
    }

    /// Prints a job once. A job id seen before is refused (the earlier outcome says why).
    pub fn print(&mut self, id: &str, job: &Receipt) -> Result<(JobOutcome, Vec<DeviceEvent>), DeviceError> {
        self.lifecycle.ready()?;
        if let Some(prev) = self.jobs.get(id) {
            match prev {
                JobOutcome::NotPrinted(_) => {}
                JobOutcome::Printed => {
                    return Err(DeviceError::Illegal(format!("job {id} was printed already; reprint it as a copy")));
                }
                JobOutcome::InDoubt(w) => {
                    return Err(DeviceError::Illegal(format!(
                        "job {id} may have printed ({w}); ask staff, then reprint it as a copy"
                    )));
                }
            }
        }
        self.send(id, job.bytes())
    }

    /// Prints a job again on purpose, headed "COPY".
    pub fn reprint(&mut self, id: &str, job: &Receipt) -> Result<(JobOutcome, Vec<DeviceEvent>), DeviceError> {
        self.lifecycle.ready()?;
        let mut bytes = Receipt::new(19).align(Align::Center).bold(true).line("*** COPY ***").bold(false).bytes;
        bytes.extend_from_slice(job.bytes());
        self.send(&format!("{id}/copy"), &bytes)
    }

    fn send(&mut self, id: &str, bytes: &[u8]) -> Result<(JobOutcome, Vec<DeviceEvent>), DeviceError> {
        let name = self.lifecycle.name.clone();
        let mut events = Vec::new();
        // Before: a printer that cannot print gets nothing.
        let before = match self.status() {
            Ok(s) => s,
            Err(e) => {
                let o = JobOutcome::NotPrinted(e.to_string());
                self.remember(id, o.clone());
                return Ok((o, events));
            }
        };
        if let Some(why) = before.blocker() {
            let o = JobOutcome::NotPrinted(why.to_string());
            self.remember(id, o.clone());
            events.push(DeviceEvent::StatusUpdate { device: name, status: before.describe() });
            return Ok((o, events));
        }
        self.lifecycle.set_busy(true);
        let sent = self.link.write_all(bytes);
        // After: the printer's word on it.
        let after = self.status();
        self.lifecycle.set_busy(false);
        let outcome = match (sent, after) {
            (Ok(()), Ok(s)) if s.blocker().is_none() => JobOutcome::Printed,
            (Ok(()), Ok(s)) => JobOutcome::InDoubt(format!("the printer reports {} after the job", s.describe())),
            (Err(e), Ok(s)) => JobOutcome::InDoubt(format!("sending failed ({e}); printer now {}", s.describe())),
            (_, Err(e)) => JobOutcome::InDoubt(format!("no status after the job: {e}")),
        };
        if let Some(s) = self.last_status {
            events.push(DeviceEvent::StatusUpdate { device: name.clone(), status: s.describe() });
        }
        match &outcome {
            JobOutcome::Printed => events.push(DeviceEvent::OutputComplete { device: name, output_id: id.to_string() }),
            JobOutcome::InDoubt(w) => {
                self.lifecycle.set_error();
                events.push(DeviceEvent::Error {
                    device: name,
                    error: DeviceError::Extended(w.clone()),
                    locus: crate::model::ErrorLocus::Output,
                    retry: false,
                });
            }
            JobOutcome::NotPrinted(_) => {}
        }
        self.remember(id, outcome.clone());
        Ok((outcome, events))
    }

    /// Kicks the drawer (`ESC p`) and reads its sensor.
    pub fn open_drawer(&mut self) -> Result<bool, DeviceError> {
        self.lifecycle.ready()?;
        self.link.write_all(&kick_bytes()).map_err(|e| self.comm(e))?;
        std::thread::sleep(Duration::from_millis(60));
        Ok(self.status()?.drawer_open)
    }

    /// UPOS checkHealth: internal = status; external = a test page; interactive = a test
    /// page with what the operator should check.
    pub fn check_health(&mut self, level: HealthLevel) -> Result<String, DeviceError> {
        let st = self.status()?;
        match level {
            HealthLevel::Internal => Ok(format!("Internal HCheck: {}", st.describe())),
            HealthLevel::External | HealthLevel::Interactive => {
                let page = Receipt::new(19)
                    .align(Align::Center)
                    .double(true, false)
                    .line("TEST PAGE")
                    .double(false, false)
                    .line(&self.lifecycle.name)
                    .line("0123456789 ABCDEFGHIJ abcdefghij äöü €")
                    .cut();
                let id = format!("health-{}", self.order.len());
                let (o, _) = self.send(&id, page.bytes())?;
                let mut text =
                    format!("External HCheck: {o:?}; {}", self.last_status.map(|s| s.describe()).unwrap_or_default());
                if level == HealthLevel::Interactive {
                    text.push_str(
                        "; check: the page reads TEST PAGE, the digits, letters and € print, the paper was cut",
                    );
                }
                Ok(text)
            }
        }
    }
}
