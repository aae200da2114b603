//! Mettler-Toledo 8217 scales (9600 baud, 7 data bits, even parity, 1 stop), host side
//! and simulated peer. Byte values from §1.3 of the reference (Odoo's serial scale driver):
//!
//! * `W` asks for the weight. A stable weight answers `STX [spaces] digits.digits [N] CR`
//!   in kilograms (`N` = net of tare). Anything else answers `STX ? status CR`, the status
//!   character's bits (LSB first, bit 7 parity, ignored): 0 in motion, 1 over capacity,
//!   2 under zero, 3 outside zero-capture range, 4 centre of zero, 5 net weight, 6 bad
//!   command.
//! * `Z` zero, `T` tare, `C` clear tare.
//! * Probe: `E` then `hello`; the scale answers `STX E CR` and echoes `hello`; `F` ends it.
//!
//! Weights are integer grams, parsed from the decimal text without floats. A sale of a
//! weighed item must refuse a weight in motion or over capacity: [`Scale::weigh`] never
//! returns one.

use crate::model::{DeviceError, HealthLevel, Lifecycle};
use crate::transport::{Link, LinkError, Peer, read_until};
use std::time::Duration;

pub const STX: u8 = 0x02;
pub const CR: u8 = 0x0D;

/// A stable weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weight {
    pub grams: i64,
    /// Net of a tare.
    pub net: bool,
}

/// Status bits of `STX ? s CR`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScaleStatus {
    pub motion: bool,
    pub over_capacity: bool,
    pub under_zero: bool,
    pub outside_zero_range: bool,
    pub centre_of_zero: bool,
    pub net: bool,
    pub bad_command: bool,
}

impl ScaleStatus {
    pub fn from_char(c: u8) -> ScaleStatus {
        let b = |n: u8| c & (1 << n) != 0;
        ScaleStatus {
            motion: b(0),
            over_capacity: b(1),
            under_zero: b(2),
            outside_zero_range: b(3),
            centre_of_zero: b(4),
            net: b(5),
            bad_command: b(6),
        }
    }

    /// The status in words, e.g. "in motion, net".
    pub fn describe(self) -> String {
        let words: Vec<&str> = [
            (self.motion, "in motion"),
            (self.over_capacity, "over capacity"),
            (self.under_zero, "under zero"),
            (self.outside_zero_range, "outside the zero-capture range"),
            (self.centre_of_zero, "at centre of zero"),
            (self.net, "net"),
            (self.bad_command, "bad command"),
        ]
        .into_iter()
        .filter_map(|(on, w)| on.then_some(w))
        .collect();
        if words.is_empty() { "no weight and no condition set".into() } else { words.join(", ") }
    }

    pub fn to_char(self) -> u8 {
        u8::from(self.motion)
            | u8::from(self.over_capacity) << 1
            | u8::from(self.under_zero) << 2
            | u8::from(self.outside_zero_range) << 3
            | u8::from(self.centre_of_zero) << 4
            | u8::from(self.net) << 5
            | u8::from(self.bad_command) << 6
    }
}

/// Why no weight can be sold now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeighError {
    #[error("the weight is not stable (scale in motion)")]
    Motion,
    #[error("over the scale's capacity")]
    OverCapacity,
    #[error("under zero: zero the scale")]
    UnderZero,
    #[error("the scale refused the command")]
    BadCommand,
    #[error("the scale reports: {}", .0.describe())]
    Other(ScaleStatus),
    #[error("{0}")]
    Device(DeviceError),
}

/// One reply parsed from the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Weight(Weight),
    Status(ScaleStatus),
}

/// Kilograms as text (`0.125`, `12.5`, `  1.000`) to grams: a decimal point, at most 3
/// digits either side of it, digits only.
pub fn parse_kg(text: &str) -> Result<i64, String> {
    let t = text.trim_start_matches(' ');
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty() && frac.is_empty() {
        return Err("no digits".into());
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} is not a decimal weight"));
    }
    if !t.contains('.') {
        return Err(format!("{text:?} has no decimal point (the scale sends kg as digits.digits)"));
    }
    if frac.len() > 3 || int.len() > 3 {
        return Err(format!("{text:?} has more digits than a scale sends (at most 999.999 kg)"));
    }
    let kg: i64 = if int.is_empty() { 0 } else { int.parse().map_err(|_| format!("{text:?}"))? };
    let mut g = format!("{frac:0<3}");
    g.truncate(3);
    let g: i64 = g.parse().map_err(|_| format!("{text:?}"))?;
    Ok(kg * 1000 + g)
}

/// Parses one complete reply (`STX … CR`), or says what is wrong with it.
pub fn parse_reply(bytes: &[u8]) -> Result<Reply, String> {
    let start = bytes.iter().position(|b| *b == STX).ok_or_else(|| format!("no STX in {bytes:02x?}"))?;
    let body = &bytes[start + 1..];
    let end = body.iter().position(|b| *b == CR).ok_or_else(|| format!("no CR after STX in {bytes:02x?}"))?;
    let body = &body[..end];
    let trimmed: Vec<u8> = body.iter().copied().skip_while(|b| *b == b' ').collect();
    if trimmed.first() == Some(&b'?') {
        let c = *trimmed.get(1).ok_or("a status reply without its status character")?;
        if trimmed.len() != 2 {
            return Err(format!("status reply {body:02x?} is too long"));
        }
        return Ok(Reply::Status(ScaleStatus::from_char(c & 0x7F)));
    }
    let (digits, net) = match trimmed.last() {
        Some(b'N') => (&trimmed[..trimmed.len() - 1], true),
        _ => (&trimmed[..], false),
    };
    let text = std::str::from_utf8(digits).map_err(|_| format!("weight {digits:02x?} is not text"))?;
    Ok(Reply::Weight(Weight { grams: parse_kg(text)?, net }))
}

/// A Toledo 8217 scale on a link.
pub struct Scale {
    link: Box<dyn Link>,
    pub lifecycle: Lifecycle,
    reply_timeout: Duration,
}

impl Scale {
    pub fn new(name: &str, link: Box<dyn Link>) -> Scale {
        let mut lifecycle = Lifecycle::new(name);
        lifecycle.stats.set("DeviceCategory", "Scale");
        lifecycle.stats.set("Interface", link.describe());
        Scale { link, lifecycle, reply_timeout: Duration::from_millis(1000) }
    }

    pub fn set_reply_timeout(&mut self, t: Duration) {
        self.reply_timeout = t;
    }

    fn exchange(&mut self, cmd: &[u8]) -> Result<Reply, DeviceError> {
        let name = self.lifecycle.name.clone();
        self.link.discard_input().map_err(|e| self.comm(e))?;
        self.link.write_all(cmd).map_err(|e| self.comm(e))?;
        let got = read_until(self.link.as_mut(), self.reply_timeout, Duration::from_millis(100), 64, |b| {
            b.iter().position(|x| *x == STX).is_some_and(|s| b[s..].contains(&CR))
        })
        .map_err(|e| self.comm(e))?;
        if got.is_empty() {
            self.lifecycle.stats.communication_error();
            return Err(DeviceError::Timeout(format!(
                "{name}: no reply to {:?} within {} ms",
                cmd,
                self.reply_timeout.as_millis()
            )));
        }
        parse_reply(&got).map_err(|why| {
            self.lifecycle.stats.communication_error();
            DeviceError::Failure(format!("{name}: garbled reply: {why}"))
        })
    }

    fn comm(&mut self, e: LinkError) -> DeviceError {
        self.lifecycle.stats.communication_error();
        DeviceError::Offline(format!("{}: {e}", self.lifecycle.name))
    }

    /// A stable, in-range weight, or why there is none.
    pub fn weigh(&mut self) -> Result<Weight, WeighError> {
        self.lifecycle.ready().map_err(WeighError::Device)?;
        match self.exchange(b"W").map_err(WeighError::Device)? {
            Reply::Weight(w) => Ok(w),
            Reply::Status(s) if s.motion => Err(WeighError::Motion),
            Reply::Status(s) if s.over_capacity => Err(WeighError::OverCapacity),
            Reply::Status(s) if s.under_zero => Err(WeighError::UnderZero),
            Reply::Status(s) if s.bad_command => Err(WeighError::BadCommand),
            Reply::Status(s) => Err(WeighError::Other(s)),
        }
    }

    /// `Z`, `T` or `C`; the scale answers with its status.
    pub fn command(&mut self, c: u8) -> Result<ScaleStatus, DeviceError> {
        self.lifecycle.ready()?;
        if !matches!(c, b'Z' | b'T' | b'C') {
            return Err(DeviceError::Illegal(format!("{:?} is not zero (Z), tare (T) or clear tare (C)", c as char)));
        }
        match self.exchange(&[c])? {
            Reply::Status(s) if s.bad_command => {
                Err(DeviceError::Extended(format!("the scale refused {:?}", c as char)))
            }
            Reply::Status(s) => Ok(s),
            Reply::Weight(_) => Err(DeviceError::Failure("the scale answered a weight to a command".into())),
        }
    }

    /// UPOS checkHealth: internal = a weight request answered (the weight or the status in
    /// words); external = the scale's echo test (the identification probe); interactive =
    /// the weight now, for the operator to compare with a known test weight.
    pub fn check_health(&mut self, level: HealthLevel) -> Result<String, DeviceError> {
        self.lifecycle.ready()?;
        let now = match self.exchange(b"W")? {
            Reply::Weight(w) => format!("{} g{}", w.grams, if w.net { " net" } else { "" }),
            Reply::Status(s) => s.describe(),
        };
        match level {
            HealthLevel::Internal => Ok(format!("Internal HCheck: answers; {now}")),
            HealthLevel::External => {
                let echo = Scale::probe(self.link.as_mut()).map_err(|e| self.comm(e))?;
                if !echo {
                    self.lifecycle.stats.communication_error();
                    return Err(DeviceError::Failure(format!(
                        "{}: the echo test failed (not a Toledo 8217, or the line settings are wrong)",
                        self.lifecycle.name
                    )));
                }
                Ok(format!("External HCheck: echo test passed; {now}"))
            }
            HealthLevel::Interactive => Ok(format!(
                "Interactive HCheck: the scale reads {now}; put a known test weight on it and check the reading"
            )),
        }
    }

    /// The identification probe: is a Toledo 8217 on this link?
    pub fn probe(link: &mut dyn Link) -> Result<bool, LinkError> {
        link.discard_input()?;
        link.write_all(b"Ehello")?;
        let got = read_until(link, Duration::from_millis(300), Duration::from_millis(200), 8, |b| b.len() >= 8)?;
        link.write_all(b"F")?;
        Ok(got == [0x02, 0x45, 0x0D, 0x68, 0x65, 0x6C, 0x6C, 0x6F])
    }
}

/// A simulated Toledo 8217: set the load and motion, it answers like the scale.
#[derive(Debug, Clone)]
pub struct ScaleSim {
    /// What lies on the platter, grams.
    pub load_g: i64,
    pub motion: bool,
    pub capacity_g: i64,
    zero_g: i64,
    tare_g: i64,
    echo: bool,
}

impl Default for ScaleSim {
    fn default() -> Self {
        ScaleSim { load_g: 0, motion: false, capacity_g: 15_000, zero_g: 0, tare_g: 0, echo: false }
    }
}

impl ScaleSim {
    /// A scale with `grams` on it.
    pub fn with_load(grams: i64) -> ScaleSim {
        ScaleSim { load_g: grams, ..ScaleSim::default() }
    }

    fn status(&self, bad: bool) -> ScaleStatus {
        let gross = self.load_g - self.zero_g;
        ScaleStatus {
            motion: self.motion,
            over_capacity: gross > self.capacity_g,
            under_zero: gross < 0,
            outside_zero_range: false,
            centre_of_zero: gross == 0,
            net: self.tare_g != 0,
            bad_command: bad,
        }
    }

    fn status_reply(&self, bad: bool) -> Vec<u8> {
        vec![STX, b'?', self.status(bad).to_char(), CR]
    }

    /// Takes bytes from the host, returns the answer.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in bytes {
            if self.echo {
                if b == b'F' {
                    self.echo = false;
                } else {
                    out.push(b);
                }
                continue;
            }
            match b {
                b'W' => {
                    let s = self.status(false);
                    if s.motion || s.over_capacity || s.under_zero {
                        out.extend(self.status_reply(false));
                    } else {
                        let g = self.load_g - self.zero_g - self.tare_g;
                        out.push(STX);
                        out.extend(format!("{:>3}.{:03}", g / 1000, g % 1000).bytes());
                        if self.tare_g != 0 {
                            out.push(b'N');
                        }
                        out.push(CR);
                    }
                }
                b'Z' => {
                    let bad = self.motion;
                    if !bad {
                        self.zero_g = self.load_g;
                        self.tare_g = 0;
                    }
                    out.extend(self.status_reply(bad));
                }
                b'T' => {
                    let bad = self.motion || self.load_g - self.zero_g <= 0;
                    if !bad {
                        self.tare_g = self.load_g - self.zero_g;
                    }
                    out.extend(self.status_reply(bad));
                }
                b'C' => {
                    self.tare_g = 0;
                    out.extend(self.status_reply(false));
                }
                b'E' => {
                    self.echo = true;
                    out.extend([STX, b'E', CR]);
                }
                b'\r' | b'\n' => {}
                _ => out.extend(self.status_reply(true)),
            }
        }
        out
    }
}

impl Peer for ScaleSim {
    fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        ScaleSim::feed(self, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_parsed_to_grams_without_floats() {
        assert_eq!(parse_kg("  0.125"), Ok(125));
        assert_eq!(parse_kg("12.5"), Ok(12_500));
        assert_eq!(parse_kg("3."), Ok(3000));
        assert_eq!(parse_kg(".005"), Ok(5));
        for bad in ["", "1.2345", "1,5", "-1.0", "1.2.3", "abc", "1234.0", "115040", "3"] {
            assert!(parse_kg(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_reply(b"\x02  1.250N\r"), Ok(Reply::Weight(Weight { grams: 1250, net: true })));
        assert_eq!(parse_reply(b"\x02?\x01\r"), Ok(Reply::Status(ScaleStatus { motion: true, ..Default::default() })));
        // Bit 7 (parity) is ignored.
        assert_eq!(
            parse_reply(b"\x02?\x82\r"),
            Ok(Reply::Status(ScaleStatus { over_capacity: true, ..Default::default() }))
        );
        for bad in [&b"1.250\r"[..], b"\x021.250", b"\x02?\r", b"\x02?\x01\x01\r", b"\x021.2x\r", b"\x02\xff\r"] {
            assert!(parse_reply(bad).is_err(), "{bad:02x?}");
        }
    }

    #[test]
    fn the_simulator_answers_like_the_scale() {
        let mut s = ScaleSim { load_g: 1250, ..ScaleSim::default() };
        assert_eq!(s.feed(b"W"), b"\x02  1.250\r");
        s.motion = true;
        assert_eq!(parse_reply(&s.feed(b"W")), Ok(Reply::Status(ScaleStatus { motion: true, ..Default::default() })));
        s.motion = false;
        s.feed(b"T");
        s.load_g = 1750;
        assert_eq!(s.feed(b"W"), b"\x02  0.500N\r");
        assert_eq!(s.feed(b"Ehello"), [0x02, 0x45, 0x0D, 0x68, 0x65, 0x6C, 0x6C, 0x6F]);
        assert!(s.feed(b"F").is_empty());
        assert!(ScaleStatus::from_char(s.feed(b"q")[2]).bad_command);
    }
}
