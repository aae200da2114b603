//! ZVT (the German / Austrian / Swiss ECR–terminal protocol): APDUs, their fields, the two
//! transports, the host side we ship ([`host::Terminal`]) and a wire-true simulated
//! terminal ([`sim::TerminalSim`]). Byte values from `../shared/reference/
//! devices-payments-offline.md` §3.1 and its appendix (ecrterm's known-answer vectors).
//!
//! * An APDU is `CLASS INSTR LEN data`; `LEN = 0xFF` means two more length bytes,
//!   little-endian. Data is a fixed part and BMP fields (a one-byte tag; fixed length, or
//!   `LLVAR` / `LLLVAR` with `Fx` length digits), with a TLV container under tag `0x06`.
//! * Over TCP the APDUs go as they are; over serial each is framed `DLE STX … DLE ETX`
//!   with DLE doubled and a CRC-16 (reflected polynomial 0x8408, initial 0, over the APDU
//!   and ETX, low byte first), and every frame is answered `ACK` 06 or `NAK` 15
//!   ([`transport`]).
//! * A command is answered `80 00 00` (or `84 xx`, refused), then the terminal sends
//!   intermediate status (`04 FF`), status information (`04 0F`) and print lines (`06 D1`,
//!   `06 D3`), each acknowledged by the ECR, and ends with completion (`06 0F`) or abort
//!   (`06 1E` with an error code, explained in words by [`error_text`]).
//!
//! Why not the `zvt` crate (MIT / Apache-2.0, 0.1.0): it is TCP only and async (tokio),
//! has no authorisation, reversal or refund sequence, and its one crates.io release is from
//! 2023; our drivers are blocking threads over one [`crate::transport::Link`] for serial
//! and TCP alike. The codec here is small, and both sides of it are ours to test.
//!
//! Card data: a PAN arrives masked (BCD `E` nibbles) and is kept masked; track data
//! (BMPs 0x23, 0x24, 0x2D) is skipped by the parser and never stored or logged.

pub mod host;
pub mod sim;
pub mod transport;

use std::fmt;

/// One APDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Apdu {
    pub class: u8,
    pub instr: u8,
    pub data: Vec<u8>,
}

/// Longest APDU data accepted (the length field allows 65,535).
pub const MAX_DATA: usize = 65_535;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZvtError {
    #[error("ZVT: {0}")]
    Malformed(String),
    #[error("ZVT link: {0}")]
    Link(String),
    #[error("ZVT: no answer from the terminal within {0} ms")]
    Timeout(u64),
    #[error("ZVT: the terminal refused the command ({code:#04x}: {text})")]
    Refused { code: u8, text: String },
    #[error("ZVT: the terminal is busy with another command")]
    Busy,
}

impl Apdu {
    pub fn new(class: u8, instr: u8, data: Vec<u8>) -> Apdu {
        Apdu { class, instr, data }
    }

    /// `80 00 00`: the positive acknowledgement.
    pub fn ack() -> Apdu {
        Apdu::new(0x80, 0x00, Vec::new())
    }

    /// `84 xx 00`: a negative acknowledgement with its reason.
    pub fn nak(code: u8) -> Apdu {
        Apdu::new(0x84, code, Vec::new())
    }

    pub fn is(&self, class: u8, instr: u8) -> bool {
        self.class == class && self.instr == instr
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(self.data.len() + 5);
        b.push(self.class);
        b.push(self.instr);
        if self.data.len() < 0xFF {
            b.push(self.data.len() as u8);
        } else {
            b.push(0xFF);
            b.extend_from_slice(&(self.data.len().min(MAX_DATA) as u16).to_le_bytes());
        }
        b.extend_from_slice(&self.data[..self.data.len().min(MAX_DATA)]);
        b
    }

    /// Parses one APDU from the front of `b`: `Ok(None)` when more bytes are needed,
    /// otherwise the APDU and the bytes it used.
    pub fn decode(b: &[u8]) -> Result<Option<(Apdu, usize)>, ZvtError> {
        if b.len() < 3 {
            return Ok(None);
        }
        let (len, head) = if b[2] == 0xFF {
            if b.len() < 5 {
                return Ok(None);
            }
            (usize::from(u16::from_le_bytes([b[3], b[4]])), 5)
        } else {
            (usize::from(b[2]), 3)
        };
        if b.len() < head + len {
            return Ok(None);
        }
        Ok(Some((Apdu::new(b[0], b[1], b[head..head + len].to_vec()), head + len)))
    }
}

impl fmt::Display for Apdu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02X} {:02X} ({} bytes, {})", self.class, self.instr, self.data.len(), command_name(self))
    }
}

/// The name of a command, for logs (never its data).
pub fn command_name(a: &Apdu) -> &'static str {
    match (a.class, a.instr) {
        (0x80, 0x00) => "ACK",
        (0x84, _) => "NAK",
        (0x06, 0x00) => "registration",
        (0x06, 0x01) => "authorisation",
        (0x06, 0x0F) => "completion",
        (0x06, 0x1E) => "abort",
        (0x06, 0x20) => "repeat receipt",
        (0x06, 0x30) => "reversal",
        (0x06, 0x31) => "refund",
        (0x06, 0x50) => "end-of-day",
        (0x06, 0x70) => "diagnosis",
        (0x06, 0xB0) => "abort request",
        (0x06, 0xD1) => "print line",
        (0x06, 0xD3) => "print text block",
        (0x04, 0x0F) => "status information",
        (0x04, 0xFF) => "intermediate status",
        (0x04, 0x01) => "set time and date",
        (0x05, 0x01) => "status enquiry",
        _ => "other",
    }
}

// ---- BCD ----------------------------------------------------------------------------

/// `n` as `bytes` bytes of packed BCD (most significant first); None if it does not fit.
pub fn bcd(n: u64, bytes: usize) -> Option<Vec<u8>> {
    let digits = format!("{n:0width$}", width = bytes * 2);
    if digits.len() > bytes * 2 {
        return None;
    }
    Some(digits.as_bytes().chunks(2).map(|p| ((p[0] - b'0') << 4) | (p[1] - b'0')).collect())
}

/// Packed BCD to a number; an invalid nibble is an error naming it.
pub fn from_bcd(b: &[u8]) -> Result<u64, ZvtError> {
    let mut n: u64 = 0;
    for (i, x) in b.iter().enumerate() {
        for nib in [x >> 4, x & 0x0F] {
            if nib > 9 {
                return Err(ZvtError::Malformed(format!("BCD byte {i} is {x:#04x}")));
            }
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(nib)))
                .ok_or_else(|| ZvtError::Malformed("a BCD number longer than 19 digits".into()))?;
        }
    }
    Ok(n)
}

/// An `LLVAR` / `LLLVAR` length: `digits` bytes `F0`–`F9`.
fn var_len(b: &[u8], digits: usize) -> Result<usize, ZvtError> {
    let mut n = 0usize;
    for x in b.iter().take(digits) {
        if x >> 4 != 0x0F || x & 0x0F > 9 {
            return Err(ZvtError::Malformed(format!("variable length byte {x:#04x} is not F0-F9")));
        }
        n = n * 10 + usize::from(x & 0x0F);
    }
    Ok(n)
}

pub fn llvar(data: &[u8]) -> Vec<u8> {
    let n = data.len().min(99);
    let mut b = vec![0xF0 | (n / 10) as u8, 0xF0 | (n % 10) as u8];
    b.extend_from_slice(&data[..n]);
    b
}

pub fn lllvar(data: &[u8]) -> Vec<u8> {
    let n = data.len().min(999);
    let mut b = vec![0xF0 | (n / 100) as u8, 0xF0 | (n / 10 % 10) as u8, 0xF0 | (n % 10) as u8];
    b.extend_from_slice(&data[..n]);
    b
}

/// How long a BMP's value is.
enum Len {
    Fixed(usize),
    Ll,
    Lll,
    Tlv,
}

fn bmp_len(tag: u8) -> Option<Len> {
    Some(match tag {
        0x01 | 0x02 | 0x03 | 0x05 | 0x19 | 0x27 | 0x8A | 0x8C | 0xA0 | 0xD3 => Len::Fixed(1),
        0x0D | 0x0E | 0x17 | 0x49 | 0x87 => Len::Fixed(2),
        0x0B | 0x0C | 0x37 | 0x88 => Len::Fixed(3),
        0x29 => Len::Fixed(4),
        0xBA => Len::Fixed(5),
        0x04 => Len::Fixed(6),
        0x3B => Len::Fixed(8),
        0x2A => Len::Fixed(15),
        0x22 | 0x23 | 0x8B | 0x92 | 0x9A => Len::Ll,
        0x24 | 0x2D | 0x3C | 0x60 => Len::Lll,
        0x06 => Len::Tlv,
        _ => return None,
    })
}

/// BMP tags whose values are card track data: skipped, never kept.
const TRACK_DATA: [u8; 3] = [0x23, 0x24, 0x2D];

/// Splits BMP fields: (tag, value) in order; track data is dropped.
pub fn bmps(mut b: &[u8]) -> Result<Vec<(u8, Vec<u8>)>, ZvtError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while let Some((&tag, rest)) = b.split_first() {
        let short = || ZvtError::Malformed(format!("BMP {tag:#04x} at byte {at} is cut short"));
        let (head, len) = match bmp_len(tag) {
            Some(Len::Fixed(n)) => (0, n),
            Some(Len::Ll) => (2, var_len(rest.get(..2).ok_or_else(short)?, 2)?),
            Some(Len::Lll) => (3, var_len(rest.get(..3).ok_or_else(short)?, 3)?),
            Some(Len::Tlv) => {
                let first = *rest.first().ok_or_else(short)?;
                match first {
                    0x00..=0x7F => (1, usize::from(first)),
                    0x81 => (2, usize::from(*rest.get(1).ok_or_else(short)?)),
                    0x82 => {
                        let l = rest.get(1..3).ok_or_else(short)?;
                        (3, usize::from(u16::from_be_bytes([l[0], l[1]])))
                    }
                    other => return Err(ZvtError::Malformed(format!("TLV length byte {other:#04x}"))),
                }
            }
            None => return Err(ZvtError::Malformed(format!("unknown BMP {tag:#04x} at byte {at}"))),
        };
        let value = rest.get(head..head + len).ok_or_else(short)?;
        if !TRACK_DATA.contains(&tag) {
            out.push((tag, value.to_vec()));
        }
        at += 1 + head + len;
        b = &rest[head + len..];
    }
    Ok(out)
}

/// A masked PAN from BMP 0x22 (BCD, `E` = a hidden digit, `F` = padding).
pub fn masked_pan(v: &[u8]) -> String {
    let mut s = String::new();
    for x in v {
        for nib in [x >> 4, x & 0x0F] {
            match nib {
                0..=9 => s.push(char::from(b'0' + nib)),
                0x0E => s.push('*'),
                _ => {}
            }
        }
    }
    // Never more than the first six and the last four digits in clear.
    let n = s.chars().count();
    s.chars().enumerate().map(|(i, c)| if c.is_ascii_digit() && i >= 6 && i + 4 < n { '*' } else { c }).collect()
}

/// Encodes a PAN for BMP 0x22 with everything but the first six and last four masked.
pub fn mask_pan_bcd(pan: &str) -> Vec<u8> {
    let d: Vec<u8> = pan.bytes().filter(u8::is_ascii_digit).map(|c| c - b'0').collect();
    let n = d.len();
    let mut nibs: Vec<u8> = d.iter().enumerate().map(|(i, x)| if i >= 6 && i + 4 < n { 0x0E } else { *x }).collect();
    if nibs.len() % 2 == 1 {
        nibs.push(0x0F);
    }
    nibs.chunks(2).map(|p| (p[0] << 4) | p[1]).collect()
}

/// What a status information (`04 0F`) says about a transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusInfo {
    /// BMP 0x27: 0 = success, anything else an error code ([`error_text`]).
    pub result: Option<u8>,
    pub amount_minor: Option<i64>,
    pub currency: Option<u16>,
    pub trace: Option<u32>,
    pub original_trace: Option<u32>,
    pub receipt_no: Option<u32>,
    pub turnover_no: Option<u32>,
    pub terminal_id: Option<String>,
    /// `**** **** **** 1234` style: never the full number.
    pub pan_masked: Option<String>,
    pub card_type: Option<u8>,
    pub card_name: Option<String>,
    /// BMP 0x3B, the authorisation attribute (approval code).
    pub auth_code: Option<String>,
    /// `MMDD` and `HHMMSS` as the terminal sent them.
    pub date: Option<String>,
    pub time: Option<String>,
    pub text: Option<String>,
    /// The terminal's own reference of the transaction, for a reversal or a referenced
    /// refund (Adyen: `POITransactionID`; ZVT uses the receipt number instead).
    pub reference: Option<String>,
    /// Approved offline by the terminal (store-and-forward).
    pub offline: bool,
}

fn text_of(v: &[u8]) -> String {
    v.iter()
        .map(|b| if b.is_ascii_graphic() || *b == b' ' { char::from(*b) } else { '?' })
        .collect::<String>()
        .trim()
        .to_string()
}

impl StatusInfo {
    pub fn parse(data: &[u8]) -> Result<StatusInfo, ZvtError> {
        let mut s = StatusInfo::default();
        for (tag, v) in bmps(data)? {
            let num = |v: &[u8]| from_bcd(v);
            match tag {
                0x27 => s.result = v.first().copied(),
                0x04 => s.amount_minor = Some(num(&v)? as i64),
                0x49 => s.currency = Some(num(&v)? as u16),
                0x0B => s.trace = Some(num(&v)? as u32),
                0x37 => s.original_trace = Some(num(&v)? as u32),
                0x87 => s.receipt_no = Some(num(&v)? as u32),
                0x88 => s.turnover_no = Some(num(&v)? as u32),
                0x29 => s.terminal_id = Some(format!("{:08}", num(&v)?)),
                0x22 => s.pan_masked = Some(masked_pan(&v)),
                0x8A => s.card_type = v.first().copied(),
                0x8B => s.card_name = Some(text_of(&v)),
                0x3B => s.auth_code = Some(text_of(&v)),
                0x0D => s.date = Some(format!("{:04}", num(&v)?)),
                0x0C => s.time = Some(format!("{:06}", num(&v)?)),
                0x3C => s.text = Some(text_of(&v)),
                _ => {}
            }
        }
        Ok(s)
    }

    /// The BMP fields of this status information (the simulator's side).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        let mut put = |tag: u8, v: Option<Vec<u8>>| {
            if let Some(v) = v {
                b.push(tag);
                b.extend(v);
            }
        };
        put(0x27, self.result.map(|r| vec![r]));
        put(0x04, self.amount_minor.and_then(|a| bcd(a.max(0) as u64, 6)));
        put(0x0B, self.trace.and_then(|t| bcd(u64::from(t), 3)));
        put(0x37, self.original_trace.and_then(|t| bcd(u64::from(t), 3)));
        put(0x0C, self.time.as_ref().and_then(|t| t.parse().ok()).and_then(|t| bcd(t, 3)));
        put(0x0D, self.date.as_ref().and_then(|t| t.parse().ok()).and_then(|t| bcd(t, 2)));
        put(0x22, self.pan_masked.as_ref().map(|p| llvar(&mask_pan_bcd(p))));
        put(0x29, self.terminal_id.as_ref().and_then(|t| t.parse().ok()).and_then(|t| bcd(t, 4)));
        put(0x3B, self.auth_code.as_ref().map(|a| format!("{a:<8}").as_bytes()[..8].to_vec()));
        put(0x49, self.currency.and_then(|c| bcd(u64::from(c), 2)));
        put(0x87, self.receipt_no.and_then(|r| bcd(u64::from(r), 2)));
        put(0x88, self.turnover_no.and_then(|r| bcd(u64::from(r), 3)));
        put(0x8A, self.card_type.map(|c| vec![c]));
        put(0x8B, self.card_name.as_ref().map(|n| llvar(n.as_bytes())));
        put(0x3C, self.text.as_ref().map(|t| lllvar(t.as_bytes())));
        b
    }
}

/// The prompt an intermediate status code (`04 FF`) stands for.
pub fn prompt_text(code: u8) -> String {
    match code {
        0x00 => "Waiting for amount confirmation",
        0x01 | 0x02 => "Please watch the PIN pad",
        0x03 => "Not accepted",
        0x04 => "Waiting for the payment host",
        0x05 => "Sending auto-reversal",
        0x06 => "Sending post-bookings",
        0x07 => "Card not admitted",
        0x08 => "Card unknown",
        0x09 => "Card expired",
        0x0A => "Insert card",
        0x0B => "Please remove card",
        0x0C => "Card not readable",
        0x0D => "Processing error",
        0x0E | 0x17 => "Please wait",
        0x0F => "Automatic end-of-day in progress",
        0x10 => "Invalid card",
        0x11 => "Balance display",
        0x12 => "System malfunction",
        0x13 => "Payment not possible",
        0x14 => "Credit not sufficient",
        0x15 => "Incorrect PIN",
        0x16 => "Limit not sufficient",
        0x18 => "PIN try limit exceeded",
        0x19 => "Card data incorrect",
        0x1A => "Service mode",
        0x1B => "Approved, please fill up",
        0x1C => "Approved, please take goods",
        0x1D => "Declined",
        0x41 => "Please enter PIN",
        0x43 => "Tap, insert or swipe card",
        _ => return format!("Terminal status {code:#04x}"),
    }
    .to_string()
}

/// The words for a ZVT result / error code (BMP 0x27, `06 1E`, `84 xx`).
pub fn error_text(code: u8) -> String {
    match code {
        0x00 => "no error",
        0x01..=0x63 => return format!("declined by the card issuer (host response code {code:02})"),
        0x64 => "card not readable",
        0x65 => "card data not present",
        0x66 => "processing error",
        0x67 => "function not permitted for ec and Maestro cards",
        0x68 => "function not permitted for credit and tank cards",
        0x6A => "turnover file full",
        0x6B => "function deactivated (terminal not registered)",
        0x6C => "aborted (timeout or abort key)",
        0x6E => "card in blocked list",
        0x6F => "wrong currency",
        0x71 => "credit not sufficient",
        0x72 => "chip error",
        0x73 => "card data incorrect",
        0x77 => "end-of-day batch not possible",
        0x78 => "card expired",
        0x79 => "card not yet valid",
        0x7A => "card unknown",
        0x7D => "communication error",
        0x83 => "function not possible",
        0x85 => "key missing",
        0x89 => "PIN pad defective",
        0x9A => "ZVT protocol error",
        0x9B => "error from dial-up / communication fault",
        0x9C => "please wait",
        0xA0 => "receiver not ready",
        0xA1 => "remote station does not respond",
        0xA3 => "no connection",
        0xB1 => "memory full",
        0xB2 => "merchant journal full",
        0xB4 => "already reversed",
        0xB5 => "reversal not possible",
        0xB7 => "pre-authorisation incorrect or amount wrong",
        0xC2 => "diagnosis required",
        0xC3 => "maximum amount exceeded",
        0xC5 => "payment method not supported",
        0xC6 => "currency not applicable",
        0xC8 => "amount too small",
        0xCC => "printer not ready",
        0xDC => "card inserted",
        0xE2 => "card reader does not answer",
        0xE4 => "terminal activation required",
        0xF0 => "open end-of-day batch present",
        0xFA => "error transmitting offline transactions",
        0xFC => "necessary device not present",
        0xFE => "register unknown",
        0xFF => "system error",
        _ => return format!("terminal error {code:#04x}"),
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apdus_round_trip_with_short_and_long_lengths() {
        let short = Apdu::new(0x06, 0x01, vec![1, 2, 3]);
        assert_eq!(short.encode(), [0x06, 0x01, 0x03, 1, 2, 3]);
        assert_eq!(Apdu::decode(&short.encode()), Ok(Some((short.clone(), 6))));
        let long = Apdu::new(0x06, 0xD3, vec![0x41; 300]);
        let b = long.encode();
        assert_eq!(&b[..5], &[0x06, 0xD3, 0xFF, 0x2C, 0x01]);
        assert_eq!(Apdu::decode(&b), Ok(Some((long, 305))));
        assert_eq!(Apdu::decode(&b[..100]), Ok(None));
        assert_eq!(Apdu::decode(&[0x80]), Ok(None));
    }

    #[test]
    fn status_information_round_trips_and_never_keeps_a_full_pan() {
        let s = StatusInfo {
            result: Some(0),
            amount_minor: Some(1234),
            currency: Some(978),
            trace: Some(42),
            receipt_no: Some(7),
            terminal_id: Some("52500038".into()),
            pan_masked: Some("6799998900000000019".into()),
            card_type: Some(5),
            card_name: Some("Girocard".into()),
            auth_code: Some("A1B2C3".into()),
            date: Some("1122".into()),
            time: Some("093015".into()),
            ..Default::default()
        };
        let back = StatusInfo::parse(&s.encode()).expect("parse");
        assert_eq!(back.pan_masked.as_deref(), Some("679999*********0019"));
        assert_eq!((back.amount_minor, back.trace, back.receipt_no), (Some(1234), Some(42), Some(7)));
        assert_eq!(back.auth_code.as_deref(), Some("A1B2C3"));
        // Track 2 data (BMP 0x23) is skipped, never kept.
        let mut with_track = s.encode();
        with_track.extend([0x23, 0xF0, 0xF3, 0x67, 0x99, 0x99]);
        assert_eq!(StatusInfo::parse(&with_track).expect("parse"), back);
        assert!(StatusInfo::parse(&[0x04, 0x00]).is_err(), "cut short");
        assert!(StatusInfo::parse(&[0x77, 0x00]).is_err(), "unknown BMP");
        assert!(StatusInfo::parse(&[0x04, 0, 0, 0, 0, 0x1A, 0]).is_err(), "bad BCD");
    }

    #[test]
    fn codes_have_words() {
        assert_eq!(error_text(0x6C), "aborted (timeout or abort key)");
        assert!(error_text(0x05).contains("declined"));
        assert_eq!(prompt_text(0x0A), "Insert card");
        assert!(prompt_text(0xEE).contains("0xee"));
        assert_eq!(bcd(1234, 6), Some(vec![0, 0, 0, 0, 0x12, 0x34]));
        assert_eq!(bcd(1_000_000, 2), None);
        assert_eq!(from_bcd(&[0x09, 0x78]), Ok(978));
    }
}
