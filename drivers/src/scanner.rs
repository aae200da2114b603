//! Barcode scanners: serial (CR / LF suffix, inter-character timeout) and USB HID POS
//! (usage page 0x8C, scanned-data report), with the decoding every code goes through:
//! the AIM symbology identifier (ISO/IEC 15424, `]` + letter + modifier) is recognised and
//! stripped; GS1 element strings (GS1-128 `]C1`, GS1 DataMatrix `]d2`, GS1 QR `]Q3`,
//! DataBar `]e0`) are parsed into GTIN, lot, expiry, serial and net weight, so lot and
//! weight items sell correctly; EAN / UPC check digits are verified. Facts from §5.2 of the
//! reference. Every refusal says what is wrong; nothing panics on any input.

use crate::transport::{Link, LinkError, read_until};
use std::time::Duration;

/// Group separator: the FNC1 that ends a variable-length GS1 field.
pub const GS: u8 = 0x1D;

/// What a scan means.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// The AIM identifier, e.g. `]E0`, if the scanner sent one.
    pub aim: Option<String>,
    /// The code without the AIM identifier.
    pub data: String,
    /// A GTIN (8, 12, 13 or 14 digits) with a valid check digit.
    pub gtin: Option<String>,
    pub lot: Option<String>,
    /// `YYYY-MM-DD` (AI 17; day 00 = last day of the month).
    pub expiry: Option<String>,
    pub serial: Option<String>,
    /// AI 310n, in grams.
    pub net_weight_g: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    #[error("empty code")]
    Empty,
    #[error("code contains a control byte {0:#04x}")]
    Control(u8),
    #[error("check digit of {0} is wrong")]
    CheckDigit(String),
    #[error("GS1: {0}")]
    Gs1(String),
    #[error("code is not UTF-8 text")]
    NotText,
    #[error("HID POS: {0}")]
    Report(String),
}

/// Whether the GS1 check digit of a GTIN-8/12/13/14 is right.
pub fn gtin_valid(d: &str) -> bool {
    if !matches!(d.len(), 8 | 12 | 13 | 14) || !d.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let digits: Vec<u32> = d.bytes().map(|b| u32::from(b - b'0')).collect();
    let (body, check) = digits.split_at(digits.len() - 1);
    let sum: u32 = body.iter().rev().enumerate().map(|(i, x)| if i % 2 == 0 { x * 3 } else { *x }).sum();
    (10 - sum % 10) % 10 == check[0]
}

fn last_day(y: u32, m: u32) -> u32 {
    match m {
        2 if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn gs1_date(v: &str) -> Result<String, String> {
    let n = |r: std::ops::Range<usize>| v.get(r).and_then(|x| x.parse::<u32>().ok());
    let (Some(yy), Some(mm), Some(dd)) = (n(0..2), n(2..4), n(4..6)) else {
        return Err(format!("date {v:?} is not YYMMDD"));
    };
    let y = 2000 + yy;
    if !(1..=12).contains(&mm) {
        return Err(format!("date {v:?}: month {mm}"));
    }
    let d = if dd == 0 { last_day(y, mm) } else { dd };
    if d > last_day(y, mm) {
        return Err(format!("date {v:?}: day {dd}"));
    }
    Ok(format!("{y:04}-{mm:02}-{d:02}"))
}

/// Parses a GS1 element string (AIs with fixed or GS-terminated variable fields).
pub fn parse_gs1(s: &str, scan: &mut Scan) -> Result<(), String> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == GS {
            i += 1;
            continue;
        }
        let two = s.get(i..i + 2).ok_or("a truncated AI")?;
        let (ai_len, fixed): (usize, Option<usize>) = match two {
            "00" => (2, Some(18)),
            "01" | "02" => (2, Some(14)),
            "11" | "13" | "15" | "17" => (2, Some(6)),
            "10" | "21" => (2, None),
            "30" | "37" => (2, None),
            "31" | "32" | "33" | "34" | "35" | "36" => (4, Some(6)),
            other => return Err(format!("AI ({other}…) is not one this till reads")),
        };
        let ai = s.get(i..i + ai_len).ok_or("a truncated AI")?;
        let start = i + ai_len;
        let end = match fixed {
            Some(n) => start + n,
            None => b[start..].iter().position(|x| *x == GS).map_or(b.len(), |p| start + p),
        };
        let value = s.get(start..end).ok_or_else(|| format!("AI ({ai}) is cut short"))?;
        if value.is_empty() {
            return Err(format!("AI ({ai}) has no value"));
        }
        match ai {
            "01" | "02" => {
                if !gtin_valid(value) {
                    return Err(format!("AI ({ai}) GTIN {value} has a wrong check digit"));
                }
                if ai == "01" {
                    scan.gtin = Some(value.to_string());
                }
            }
            "10" => {
                if value.len() > 20 {
                    return Err(format!("AI (10) lot {value:?} is over 20 characters"));
                }
                scan.lot = Some(value.to_string());
            }
            "21" => {
                if value.len() > 20 {
                    return Err(format!("AI (21) serial {value:?} is over 20 characters"));
                }
                scan.serial = Some(value.to_string());
            }
            "17" => scan.expiry = Some(gs1_date(value).map_err(|e| format!("AI (17) {e}"))?),
            "11" | "13" | "15" => {
                gs1_date(value).map_err(|e| format!("AI ({ai}) {e}"))?;
            }
            "30" | "37" => {
                if value.len() > 8 || !value.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(format!("AI ({ai}) count {value:?}"));
                }
            }
            _ if ai.starts_with("310") => {
                let decimals = match ai.as_bytes().get(3) {
                    Some(d @ b'0'..=b'5') => u32::from(d - b'0'),
                    _ => return Err(format!("AI ({ai}): the decimals digit must be 0 to 5")),
                };
                // A fixed six digits (GS1 General Specifications, AI 310n).
                if value.len() != 6 || !value.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(format!("AI ({ai}) weight {value:?} is not six digits"));
                }
                let v: i64 = value.parse().map_err(|_| format!("AI ({ai}) weight {value:?}"))?;
                // kg with `decimals` decimals → grams, rounded half up.
                let grams = if decimals <= 3 {
                    v * 10i64.pow(3 - decimals)
                } else {
                    let div = 10i64.pow(decimals - 3);
                    (v + div / 2) / div
                };
                scan.net_weight_g = Some(grams);
            }
            _ => {
                if !value.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(format!("AI ({ai}) value {value:?}"));
                }
            }
        }
        i = end;
    }
    Ok(())
}

/// Decodes one code as a scanner delivered it (suffix already removed).
pub fn decode(raw: &[u8]) -> Result<Scan, ScanError> {
    let text = std::str::from_utf8(raw).map_err(|_| ScanError::NotText)?;
    let text = text.trim_end_matches(['\r', '\n']);
    if let Some(c) = text.bytes().find(|b| *b < 0x20 && *b != GS) {
        return Err(ScanError::Control(c));
    }
    let mut scan = Scan::default();
    let b = text.as_bytes();
    let body = if b.len() >= 3 && b[0] == b']' && b[1].is_ascii_alphabetic() && b[2].is_ascii_alphanumeric() {
        scan.aim = Some(text[..3].to_string());
        &text[3..]
    } else {
        text
    };
    if body.is_empty() {
        return Err(ScanError::Empty);
    }
    scan.data = body.to_string();
    let gs1 = matches!(scan.aim.as_deref(), Some("]C1" | "]d2" | "]Q3" | "]e0" | "]J1"));
    if gs1 {
        parse_gs1(body, &mut scan).map_err(ScanError::Gs1)?;
        return Ok(scan);
    }
    let numeric = body.bytes().all(|c| c.is_ascii_digit());
    let ean = matches!(scan.aim.as_deref(), Some("]E0" | "]E4" | "]E1" | "]E2" | "]E3"));
    if numeric && (ean || (scan.aim.is_none() && matches!(body.len(), 8 | 12 | 13 | 14))) {
        // UPC-A arrives as 12 digits or, from EAN-13 readers, with a leading 0.
        if !gtin_valid(body) {
            return Err(ScanError::CheckDigit(body.to_string()));
        }
        scan.gtin = Some(body.to_string());
    }
    Ok(scan)
}

/// Where scans come from: a serial scanner or a HID POS one.
pub trait ScanSource: Send {
    /// The next code within `wait`, or None; a bad code comes back as its error.
    fn next_scan(&mut self, wait: Duration) -> Result<Option<Result<Scan, ScanError>>, LinkError>;
    /// Bytes or reports dropped as garbled so far.
    fn communication_errors(&self) -> u64;
    /// The link, as a URI-like text.
    fn describe(&self) -> String;
}

impl ScanSource for SerialScanner {
    fn next_scan(&mut self, wait: Duration) -> Result<Option<Result<Scan, ScanError>>, LinkError> {
        self.next(wait)
    }
    fn communication_errors(&self) -> u64 {
        self.communication_errors
    }
    fn describe(&self) -> String {
        self.link.describe()
    }
}

impl ScanSource for HidScanner {
    fn next_scan(&mut self, wait: Duration) -> Result<Option<Result<Scan, ScanError>>, LinkError> {
        self.next(wait)
    }
    fn communication_errors(&self) -> u64 {
        self.communication_errors
    }
    fn describe(&self) -> String {
        format!("{} (HID POS)", self.link.describe())
    }
}

/// A serial scanner: codes end with CR and/or LF, or with a quiet gap.
pub struct SerialScanner {
    link: Box<dyn Link>,
    pub gap: Duration,
    pending: Vec<u8>,
    pub communication_errors: u64,
}

/// Longest code a serial scanner may send.
pub const MAX_CODE: usize = 4096;

impl SerialScanner {
    pub fn new(link: Box<dyn Link>) -> SerialScanner {
        SerialScanner { link, gap: Duration::from_millis(50), pending: Vec::new(), communication_errors: 0 }
    }

    /// The next code within `wait`, or None. A bad code is returned as its error (the
    /// stream carries on with the next one).
    pub fn next(&mut self, wait: Duration) -> Result<Option<Result<Scan, ScanError>>, LinkError> {
        loop {
            if let Some(p) = self.pending.iter().position(|b| *b == b'\r' || *b == b'\n') {
                let code: Vec<u8> = self.pending.drain(..=p).collect();
                let code = &code[..code.len() - 1];
                if code.is_empty() {
                    continue; // the LF of a CR LF pair
                }
                return Ok(Some(decode(code)));
            }
            let had = !self.pending.is_empty();
            let got = read_until(self.link.as_mut(), if had { self.gap } else { wait }, self.gap, MAX_CODE, |b| {
                b.contains(&b'\r') || b.contains(&b'\n')
            })?;
            if got.is_empty() {
                if had {
                    // The inter-character timeout ends a code sent without a suffix.
                    let code = std::mem::take(&mut self.pending);
                    return Ok(Some(decode(&code)));
                }
                return Ok(None);
            }
            self.pending.extend_from_slice(&got);
            if self.pending.len() > MAX_CODE {
                self.pending.clear();
                self.communication_errors += 1;
                return Ok(Some(Err(ScanError::Gs1(format!("a code over {MAX_CODE} bytes was dropped")))));
            }
        }
    }
}

/// One HID POS scanned-data report (report id 0x02), as the reference describes it:
/// byte 0 = length of the data, bytes 1–3 = AIM id, data from byte 4, byte 62 non-zero =
/// more reports follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HidChunk {
    pub aim: [u8; 3],
    pub data: Vec<u8>,
    pub more: bool,
}

/// Decodes a HID POS report (with its report id first).
pub fn decode_hid_report(report: &[u8]) -> Result<HidChunk, String> {
    let (&id, body) = report.split_first().ok_or("an empty report")?;
    if id != 0x02 {
        return Err(format!("report id {id:#04x} is not the scanned-data report (0x02)"));
    }
    if body.len() < 63 {
        return Err(format!("scanned-data report of {} bytes; 63 expected", body.len()));
    }
    let len = usize::from(body[0]);
    if len > 58 {
        return Err(format!("data length {len} does not fit the report"));
    }
    Ok(HidChunk { aim: [body[1], body[2], body[3]], data: body[4..4 + len].to_vec(), more: body[62] != 0 })
}

/// Builds HID POS reports for a code (the simulator's side of the same format).
pub fn encode_hid_reports(aim: &[u8; 3], code: &[u8]) -> Vec<Vec<u8>> {
    let chunks: Vec<&[u8]> = if code.is_empty() { vec![&[][..]] } else { code.chunks(58).collect() };
    let n = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let mut r = vec![0u8; 64];
            r[0] = 0x02;
            r[1] = c.len() as u8;
            r[2..5].copy_from_slice(aim);
            r[5..5 + c.len()].copy_from_slice(c);
            r[63] = u8::from(i + 1 < n);
            r
        })
        .collect()
}

/// Joins HID POS chunks into codes.
#[derive(Debug, Default)]
pub struct HidAssembler {
    aim: Option<[u8; 3]>,
    data: Vec<u8>,
}

impl HidAssembler {
    /// Whether a code's first chunks came and its last has not.
    pub fn is_partial(&self) -> bool {
        self.aim.is_some()
    }

    /// Feeds one report; returns a decoded code when its last chunk came.
    pub fn push(&mut self, report: &[u8]) -> Result<Option<Result<Scan, ScanError>>, String> {
        let c = decode_hid_report(report)?;
        if self.data.len() + c.data.len() > MAX_CODE {
            self.data.clear();
            return Err(format!("a code over {MAX_CODE} bytes was dropped"));
        }
        self.aim.get_or_insert(c.aim);
        self.data.extend_from_slice(&c.data);
        if c.more {
            return Ok(None);
        }
        let aim = self.aim.take().unwrap_or([0; 3]);
        let mut raw = Vec::new();
        if aim[0] == b']' {
            raw.extend_from_slice(&aim);
        }
        raw.append(&mut self.data);
        Ok(Some(decode(&raw)))
    }
}

/// Length of a HID POS scanned-data report on the wire: the report id and 63 bytes.
pub const HID_REPORT: usize = 64;

/// A USB HID POS scanner: scanned-data reports (usage page 0x8C) read from its interrupt IN
/// endpoint. The framing lives here, apart from the transport: any [`Link`] that carries
/// the 64-byte reports back to back (USB, or a pty / TCP in tests) works.
pub struct HidScanner {
    link: Box<dyn Link>,
    report: Vec<u8>,
    assembler: HidAssembler,
    /// A report cut off for longer than this is dropped (and counted).
    pub gap: Duration,
    pub communication_errors: u64,
}

impl HidScanner {
    pub fn new(link: Box<dyn Link>) -> HidScanner {
        HidScanner {
            link,
            report: Vec::with_capacity(HID_REPORT),
            assembler: HidAssembler::default(),
            gap: Duration::from_millis(50),
            communication_errors: 0,
        }
    }

    /// The next code within `wait`, or None; a bad report or code comes back as its error.
    /// Once a report has started (or a code's first chunk came), the rest must follow within
    /// `gap`, or what came is dropped with an error.
    pub fn next(&mut self, wait: Duration) -> Result<Option<Result<Scan, ScanError>>, LinkError> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let mid = !self.report.is_empty() || self.assembler.is_partial();
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let mut buf = [0u8; HID_REPORT];
            let room = HID_REPORT - self.report.len();
            let n = self.link.read(&mut buf[..room], if mid { self.gap } else { left })?;
            if n == 0 {
                if !mid {
                    return Ok(None);
                }
                self.communication_errors += 1;
                let got = std::mem::take(&mut self.report).len();
                self.assembler = HidAssembler::default();
                return Ok(Some(Err(ScanError::Report(if got > 0 {
                    format!("a report cut off after {got} of {HID_REPORT} bytes was dropped")
                } else {
                    "a code's last report never came; its first part was dropped".into()
                }))));
            }
            self.report.extend_from_slice(&buf[..n]);
            if self.report.len() < HID_REPORT {
                continue;
            }
            let report = std::mem::take(&mut self.report);
            match self.assembler.push(&report) {
                Ok(Some(done)) => return Ok(Some(done)),
                Ok(None) => {}
                Err(e) => {
                    self.communication_errors += 1;
                    self.assembler = HidAssembler::default();
                    return Ok(Some(Err(ScanError::Report(e))));
                }
            }
        }
    }
}

/// The serial scanner simulator: frames codes the way a configured scanner sends them.
#[derive(Debug, Clone)]
pub struct ScannerSim {
    /// Send the AIM identifier before the code.
    pub aim_prefix: bool,
    /// The suffix after each code (`\r` typical; empty = rely on the gap).
    pub suffix: Vec<u8>,
}

impl Default for ScannerSim {
    fn default() -> Self {
        ScannerSim { aim_prefix: true, suffix: b"\r".to_vec() }
    }
}

impl ScannerSim {
    /// The bytes a scan of `code` (with its AIM id) puts on the wire.
    pub fn frame(&self, aim: &str, code: &str) -> Vec<u8> {
        let mut out = Vec::new();
        if self.aim_prefix {
            out.extend_from_slice(aim.as_bytes());
        }
        out.extend_from_slice(code.as_bytes());
        out.extend_from_slice(&self.suffix);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aim_ids_are_stripped_and_gtins_checked() {
        let s = decode(b"]E04006381333931").expect("ean");
        assert_eq!((s.aim.as_deref(), s.gtin.as_deref()), (Some("]E0"), Some("4006381333931")));
        assert_eq!(decode(b"]E04006381333932"), Err(ScanError::CheckDigit("4006381333932".into())));
        assert_eq!(decode(b"4006381333931").expect("plain").gtin.as_deref(), Some("4006381333931"));
        assert_eq!(decode(b"]A0HELLO").expect("code39").gtin, None);
        assert!(gtin_valid("96385074") && gtin_valid("036000291452") && !gtin_valid("036000291453"));
        assert_eq!(decode(b""), Err(ScanError::Empty));
        assert_eq!(decode(b"]E0"), Err(ScanError::Empty));
        assert_eq!(decode(b"12\x0734"), Err(ScanError::Control(7)));
        assert_eq!(decode(&[0xff, 0xfe]), Err(ScanError::NotText));
    }

    #[test]
    fn gs1_element_strings_give_gtin_lot_expiry_and_weight() {
        let s = decode(b"]C101040063813339311726033110LOT42\x1d3103001250").expect("gs1");
        assert_eq!(s.gtin.as_deref(), Some("04006381333931"));
        assert_eq!(s.expiry.as_deref(), Some("2026-03-31"));
        assert_eq!(s.lot.as_deref(), Some("LOT42"));
        assert_eq!(s.net_weight_g, Some(1250));
        let s = decode(b"]d2010400638133393117260200").expect("datamatrix");
        assert_eq!(s.expiry.as_deref(), Some("2026-02-28"), "day 00 = last day");
        let s = decode(b"]C101040063813339313102000125").expect("2 decimals");
        assert_eq!(s.net_weight_g, Some(1250));
        for (bad, what) in [
            (&b"]C10104006381333932"[..], "check digit"),
            (b"]C1010400638133393117261301", "month"),
            (b"]C101040063813339311726023", "cut short"),
            (b"]C19912345", "AI (99"),
            (b"]C110", "no value"),
            (b"]C1310312345", "cut short"),
            // Found by fuzzing: a non-digit decimals position and a signed or long weight.
            (b"]C1310x001250", "decimals digit"),
            (b"]C13103+01250", "six digits"),
        ] {
            let e = decode(bad).expect_err(what).to_string();
            assert!(e.contains(what), "{bad:?}: {e}");
        }
    }

    #[test]
    fn hid_pos_reports_round_trip_in_chunks() {
        let code = "]C1".to_string() + &"0104006381333931".repeat(8);
        let reports = encode_hid_reports(b"]C1", &code.as_bytes()[3..]);
        assert!(reports.len() > 1);
        let mut a = HidAssembler::default();
        let mut out = None;
        for r in &reports {
            out = a.push(r).expect("report");
        }
        let scan = out.expect("complete").expect("scan");
        assert_eq!(scan.gtin.as_deref(), Some("04006381333931"));
        assert_eq!(scan.aim.as_deref(), Some("]C1"));
        assert!(decode_hid_report(&[0x03; 64]).is_err());
        assert!(decode_hid_report(&[0x02; 10]).is_err());
        let one = encode_hid_reports(b"]E0", b"4006381333931");
        let got = HidAssembler::default().push(&one[0]).expect("report").expect("done").expect("scan");
        assert_eq!(got.gtin.as_deref(), Some("4006381333931"));
    }
}
