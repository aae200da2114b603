//! The two ZVT transports over any [`Link`]: plain APDUs on TCP, and the serial frame
//! `DLE STX <APDU, DLE doubled> DLE ETX CRC-lo CRC-hi` answered by `ACK` / `NAK`. Bytes
//! between frames (line noise) are skipped and counted; a bad CRC is answered `NAK` and
//! the sender repeats the frame up to [`SERIAL_TRIES`] times.

use super::{Apdu, ZvtError};
use crate::transport::{Link, LinkError};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub const DLE: u8 = 0x10;
pub const STX: u8 = 0x02;
pub const ETX: u8 = 0x03;
pub const ACK: u8 = 0x06;
pub const NAK: u8 = 0x15;

/// Sends of one frame before the link is declared broken (ecrterm: 3).
pub const SERIAL_TRIES: usize = 3;
/// How long a sender waits for `ACK` / `NAK` (ecrterm's T3 is 5 s; a terminal answers at once).
pub const ACK_WAIT: Duration = Duration::from_millis(1000);
/// Longest gap inside a frame (ecrterm's T1 is 0.2 s).
pub const CHAR_GAP: Duration = Duration::from_millis(200);

/// CRC-16, reflected polynomial 0x8408, initial value 0.
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for b in bytes {
        crc ^= u16::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x8408 } else { crc >> 1 };
        }
    }
    crc
}

/// The serial frame of an APDU.
pub fn frame(apdu: &Apdu) -> Vec<u8> {
    let raw = apdu.encode();
    let mut f = vec![DLE, STX];
    for b in &raw {
        f.push(*b);
        if *b == DLE {
            f.push(DLE);
        }
    }
    f.extend([DLE, ETX]);
    let mut c = raw;
    c.push(ETX);
    f.extend(crc16(&c).to_le_bytes());
    f
}

/// What the frame scanner found at the front of the input.
#[derive(Debug, PartialEq, Eq)]
pub enum Scanned {
    /// Need more bytes.
    More,
    /// A frame with a good CRC, and the bytes it used (garbage before it included).
    Frame(Apdu, usize),
    /// A frame whose CRC or content is wrong: answer NAK. Bytes used.
    Bad(String, usize),
    /// A lone ACK / NAK byte (after `skipped` bytes of garbage).
    Signal(u8, usize),
}

/// Scans `b` for the next frame or transport signal; garbage before it is counted in the
/// bytes used.
pub fn scan(b: &[u8]) -> Scanned {
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            ACK | NAK => return Scanned::Signal(b[i], i + 1),
            DLE if b.get(i + 1) == Some(&STX) => break,
            DLE if i + 1 == b.len() => return Scanned::More,
            _ => i += 1,
        }
    }
    if i >= b.len() {
        return if i == 0 { Scanned::More } else { Scanned::Bad(format!("{i} bytes of noise"), i) };
    }
    let start = i;
    let mut raw = Vec::new();
    let mut j = start + 2;
    loop {
        let Some(&x) = b.get(j) else { return Scanned::More };
        if x == DLE {
            match b.get(j + 1) {
                None => return Scanned::More,
                Some(&DLE) => {
                    raw.push(DLE);
                    j += 2;
                }
                Some(&ETX) => {
                    let Some(crc) = b.get(j + 2..j + 4) else { return Scanned::More };
                    let used = j + 4;
                    let mut c = raw.clone();
                    c.push(ETX);
                    let want = crc16(&c);
                    let got = u16::from_le_bytes([crc[0], crc[1]]);
                    if want != got {
                        return Scanned::Bad(format!("CRC {got:#06x}, expected {want:#06x}"), used);
                    }
                    return match Apdu::decode(&raw) {
                        Ok(Some((a, n))) if n == raw.len() => Scanned::Frame(a, used),
                        Ok(_) => Scanned::Bad(format!("frame of {} bytes is not one whole APDU", raw.len()), used),
                        Err(e) => Scanned::Bad(e.to_string(), used),
                    };
                }
                Some(&STX) => {
                    // A new frame started inside this one: drop the broken one.
                    return Scanned::Bad("a frame cut off by the next one".into(), j);
                }
                Some(other) => return Scanned::Bad(format!("DLE followed by {other:#04x}"), j + 2),
            }
        } else {
            raw.push(x);
            j += 1;
            if raw.len() > super::MAX_DATA + 5 {
                return Scanned::Bad("a frame longer than any APDU".into(), j);
            }
        }
    }
}

/// APDUs in and out over a link.
pub trait ZvtLink: Send {
    /// Sends one APDU (serial: until the peer ACKs it).
    fn send(&mut self, apdu: &Apdu) -> Result<(), ZvtError>;
    /// The next APDU within `wait`, or None.
    fn recv(&mut self, wait: Duration) -> Result<Option<Apdu>, ZvtError>;
    /// Bytes, frames or CRCs that were wrong so far.
    fn errors(&self) -> u64;
    fn describe(&self) -> String;
}

fn link_err(e: LinkError) -> ZvtError {
    ZvtError::Link(e.to_string())
}

/// ZVT over TCP: APDUs back to back.
pub struct TcpZvt {
    link: Box<dyn Link>,
    buf: Vec<u8>,
}

impl TcpZvt {
    pub fn new(link: Box<dyn Link>) -> TcpZvt {
        TcpZvt { link, buf: Vec::new() }
    }
}

impl ZvtLink for TcpZvt {
    fn send(&mut self, apdu: &Apdu) -> Result<(), ZvtError> {
        self.link.write_all(&apdu.encode()).map_err(link_err)
    }

    fn recv(&mut self, wait: Duration) -> Result<Option<Apdu>, ZvtError> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some((a, used)) = Apdu::decode(&self.buf)? {
                self.buf.drain(..used);
                return Ok(Some(a));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            // An APDU started must be finished within the character gap.
            let w = if self.buf.is_empty() { left } else { left.min(CHAR_GAP).max(Duration::from_millis(1)) };
            if w.is_zero() {
                return Ok(None);
            }
            let mut b = [0u8; 1024];
            let n = self.link.read(&mut b, w).map_err(link_err)?;
            if n == 0 {
                if !self.buf.is_empty() {
                    let got = self.buf.len();
                    self.buf.clear();
                    return Err(ZvtError::Malformed(format!("an APDU cut off after {got} bytes")));
                }
                if Instant::now() >= deadline {
                    return Ok(None);
                }
                continue;
            }
            self.buf.extend_from_slice(&b[..n]);
        }
    }

    fn errors(&self) -> u64 {
        0
    }

    fn describe(&self) -> String {
        self.link.describe()
    }
}

/// ZVT over serial: framed, CRC'd, acknowledged.
pub struct SerialZvt {
    link: Box<dyn Link>,
    buf: Vec<u8>,
    /// Frames received and not yet handed out (a peer may send its next frame at once).
    ready: VecDeque<Apdu>,
    errors: u64,
}

impl SerialZvt {
    pub fn new(link: Box<dyn Link>) -> SerialZvt {
        SerialZvt { link, buf: Vec::new(), ready: VecDeque::new(), errors: 0 }
    }

    fn fill(&mut self, wait: Duration) -> Result<bool, ZvtError> {
        let mut b = [0u8; 1024];
        let n = self.link.read(&mut b, wait).map_err(link_err)?;
        self.buf.extend_from_slice(&b[..n]);
        Ok(n > 0)
    }

    /// Handles what is in the buffer: frames are ACKed (or NAKed) and queued; returns a
    /// transport signal if one came.
    fn pump(&mut self) -> Result<Option<u8>, ZvtError> {
        loop {
            match scan(&self.buf) {
                Scanned::More => return Ok(None),
                Scanned::Frame(a, used) => {
                    self.buf.drain(..used);
                    self.link.write_all(&[ACK]).map_err(link_err)?;
                    self.ready.push_back(a);
                }
                Scanned::Bad(why, used) => {
                    self.buf.drain(..used);
                    self.errors += 1;
                    tracing::debug!(%why, "ZVT serial: bad input");
                    if !why.ends_with("of noise") {
                        self.link.write_all(&[NAK]).map_err(link_err)?;
                    }
                }
                Scanned::Signal(s, used) => {
                    if used > 1 {
                        self.errors += 1;
                    }
                    self.buf.drain(..used);
                    return Ok(Some(s));
                }
            }
        }
    }
}

impl ZvtLink for SerialZvt {
    fn send(&mut self, apdu: &Apdu) -> Result<(), ZvtError> {
        let f = frame(apdu);
        for _ in 0..SERIAL_TRIES {
            self.link.write_all(&f).map_err(link_err)?;
            let deadline = Instant::now() + ACK_WAIT;
            loop {
                match self.pump()? {
                    Some(ACK) => return Ok(()),
                    Some(_) => break, // NAK: send again
                    None => {}
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                self.fill(left.min(CHAR_GAP))?;
            }
            self.errors += 1;
        }
        Err(ZvtError::Link(format!(
            "the terminal did not acknowledge {} after {SERIAL_TRIES} tries",
            super::command_name(apdu)
        )))
    }

    fn recv(&mut self, wait: Duration) -> Result<Option<Apdu>, ZvtError> {
        let deadline = Instant::now() + wait;
        loop {
            // Stray ACK / NAK bytes here belong to nothing we sent: ignore them.
            let _ = self.pump()?;
            if let Some(a) = self.ready.pop_front() {
                return Ok(Some(a));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let w = if self.buf.is_empty() { left } else { left.min(CHAR_GAP) };
            if !self.fill(w)? && !self.buf.is_empty() && Instant::now() >= deadline {
                self.errors += 1;
                self.buf.clear();
                return Ok(None);
            }
        }
    }

    fn errors(&self) -> u64 {
        self.errors
    }

    fn describe(&self) -> String {
        self.link.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The known-answer vectors of the reference (from ecrterm).
    #[test]
    fn frames_match_the_reference_vectors() {
        let reg = Apdu::new(0x06, 0x00, vec![0x12, 0x34, 0x56, 0xBA, 0x09, 0x78]);
        let f = frame(&reg);
        assert_eq!(&f[f.len() - 2..], &[0x24, 0xC3]);
        let auth = Apdu::new(0x06, 0x01, vec![0x04, 0, 0, 0, 0, 0x12, 0x34, 0x49, 0x09, 0x78, 0x06, 0x00]);
        let f = frame(&auth);
        assert_eq!(&f[f.len() - 2..], &[0x25, 0xBA]);
        let dle = Apdu::new(0x06, 0x01, vec![0x04, 0, 0, 0, 0, 0x10, 0x10, 0x49, 0x09, 0x78, 0x06, 0x00]);
        assert_eq!(
            frame(&dle),
            [
                0x10, 0x02, 0x06, 0x01, 0x0c, 0x04, 0x00, 0x00, 0x00, 0x00, 0x10, 0x10, 0x10, 0x10, 0x49, 0x09, 0x78,
                0x06, 0x00, 0x10, 0x03, 0xbf, 0xbd
            ]
        );
    }

    #[test]
    fn the_scanner_finds_frames_in_noise_and_names_bad_ones() {
        let a = Apdu::new(0x04, 0xFF, vec![0x0A, 0x10]);
        let f = frame(&a);
        let mut noisy = vec![0x55, 0xAA];
        noisy.extend(&f);
        assert_eq!(scan(&noisy), Scanned::Frame(a.clone(), noisy.len()));
        for cut in 0..f.len() {
            assert_eq!(scan(&f[..cut]), Scanned::More, "cut at {cut}");
        }
        let mut bad = f.clone();
        let n = bad.len();
        bad[n - 1] ^= 0xFF;
        assert!(matches!(scan(&bad), Scanned::Bad(w, _) if w.contains("CRC")));
        assert_eq!(scan(&[ACK]), Scanned::Signal(ACK, 1));
        assert!(matches!(scan(&[0x10, 0x02, 0x06, 0x10, 0x07]), Scanned::Bad(w, 5) if w.contains("DLE followed")));
    }
}
