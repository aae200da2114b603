//! Pole displays (2 × 20 characters): the CD5220 command set and the ESC/POS (Epson DM-D)
//! display set, host side and simulated peer. Byte values from §5.1 of the reference.
//!
//! * CD5220: `ESC @` initialise, `CLR` (0C) clear, `ESC Q A text CR` upper line,
//!   `ESC Q B text CR` lower line, `ESC * n` brightness 1–4, `ESC l x y` cursor.
//! * ESC/POS display: `ESC @`, `CLR`, `US $ x y` cursor (1-based), then text; `US X n`
//!   brightness 1–4.
//!
//! Text is cut or padded to 20 columns; characters the display cannot show become `?`.

use crate::model::{DeviceError, HealthLevel, Lifecycle};
use crate::transport::{Link, Peer};

pub const COLS: usize = 20;
const ESC: u8 = 0x1B;
const US: u8 = 0x1F;
const CLR: u8 = 0x0C;
const CAN: u8 = 0x18;
const CR: u8 = 0x0D;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Cd5220,
    EscPos,
}

/// 20 columns of displayable ASCII.
pub fn fit(s: &str) -> String {
    let mut out: String = s.chars().map(|c| if (' '..='~').contains(&c) { c } else { '?' }).take(COLS).collect();
    while out.len() < COLS {
        out.push(' ');
    }
    out
}

/// `name` on the left, `amount` on the right, in 20 columns.
pub fn two_sided(left: &str, right: &str) -> String {
    let right: String = right.chars().take(COLS).collect();
    let room = COLS.saturating_sub(right.chars().count() + 1);
    let left: String = left.chars().take(room).collect();
    let pad = COLS.saturating_sub(left.chars().count() + right.chars().count());
    fit(&format!("{left}{}{right}", " ".repeat(pad)))
}

/// A pole display on a link.
pub struct PoleDisplay {
    link: Box<dyn Link>,
    pub dialect: Dialect,
    pub lifecycle: Lifecycle,
}

impl PoleDisplay {
    pub fn new(name: &str, dialect: Dialect, link: Box<dyn Link>) -> PoleDisplay {
        let mut lifecycle = Lifecycle::new(name);
        lifecycle.stats.set("DeviceCategory", "LineDisplay");
        lifecycle.stats.set("Interface", link.describe());
        PoleDisplay { link, dialect, lifecycle }
    }

    fn send(&mut self, b: &[u8]) -> Result<(), DeviceError> {
        self.lifecycle.ready()?;
        self.link.write_all(b).map_err(|e| {
            self.lifecycle.stats.communication_error();
            DeviceError::Offline(format!("{}: {e}", self.lifecycle.name))
        })
    }

    /// The bytes that show two lines.
    pub fn encode(dialect: Dialect, upper: &str, lower: &str) -> Vec<u8> {
        let (u, l) = (fit(upper), fit(lower));
        let mut b = Vec::with_capacity(64);
        match dialect {
            Dialect::Cd5220 => {
                b.push(CLR);
                b.extend_from_slice(&[ESC, b'Q', b'A']);
                b.extend_from_slice(u.as_bytes());
                b.push(CR);
                b.extend_from_slice(&[ESC, b'Q', b'B']);
                b.extend_from_slice(l.as_bytes());
                b.push(CR);
            }
            Dialect::EscPos => {
                b.push(CLR);
                b.extend_from_slice(&[US, b'$', 1, 1]);
                b.extend_from_slice(u.as_bytes());
                b.extend_from_slice(&[US, b'$', 1, 2]);
                b.extend_from_slice(l.as_bytes());
            }
        }
        b
    }

    pub fn show(&mut self, upper: &str, lower: &str) -> Result<(), DeviceError> {
        let b = Self::encode(self.dialect, upper, lower);
        self.send(&b)
    }

    pub fn clear(&mut self) -> Result<(), DeviceError> {
        self.send(&[CLR])
    }

    pub fn brightness(&mut self, level: u8) -> Result<(), DeviceError> {
        if !(1..=4).contains(&level) {
            return Err(DeviceError::Illegal(format!("brightness {level}: 1 to 4")));
        }
        let b = match self.dialect {
            Dialect::Cd5220 => [ESC, b'*', level],
            Dialect::EscPos => [US, b'X', level],
        };
        self.send(&b)
    }

    /// UPOS checkHealth. A pole display cannot be read back: internal = the link takes a
    /// clear; external = a test pattern on both lines; interactive = the same, with what the
    /// operator should see.
    pub fn check_health(&mut self, level: HealthLevel) -> Result<String, DeviceError> {
        match level {
            HealthLevel::Internal => {
                self.clear()?;
                Ok("Internal HCheck: the link takes commands (a display cannot be read back)".into())
            }
            HealthLevel::External | HealthLevel::Interactive => {
                self.brightness(4)?;
                self.show("01234567890123456789", "ABCDEFGHIJKLMNOPQRST")?;
                let mut text = "External HCheck: test pattern sent".to_string();
                if level == HealthLevel::Interactive {
                    text.push_str("; check: the upper line shows 0–9 twice, the lower A–T, all 40 cells lit");
                }
                Ok(text)
            }
        }
    }

    /// During a sale: the last line item and the running total.
    pub fn line_item(&mut self, name: &str, price: &str, total: &str) -> Result<(), DeviceError> {
        self.show(&two_sided(name, price), &two_sided("TOTAL", total))
    }
}

/// A simulated 2 × 20 display that keeps what it shows.
#[derive(Debug, Clone)]
pub struct DisplaySim {
    lines: [Vec<u8>; 2],
    pub brightness: u8,
    col: usize,
    row: usize,
    pending: Vec<u8>,
    errors: Vec<String>,
}

impl Default for DisplaySim {
    fn default() -> Self {
        DisplaySim {
            lines: [vec![b' '; COLS], vec![b' '; COLS]],
            brightness: 4,
            col: 0,
            row: 0,
            pending: Vec::new(),
            errors: Vec::new(),
        }
    }
}

impl DisplaySim {
    /// The two lines shown now.
    pub fn lines(&self) -> [String; 2] {
        [String::from_utf8_lossy(&self.lines[0]).into_owned(), String::from_utf8_lossy(&self.lines[1]).into_owned()]
    }

    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    fn put(&mut self, b: u8) {
        if self.col < COLS {
            self.lines[self.row][self.col] = b;
            self.col += 1;
        }
    }

    fn clear(&mut self) {
        self.lines = [vec![b' '; COLS], vec![b' '; COLS]];
        self.col = 0;
        self.row = 0;
    }

    /// One command at the start of `pending`: Some(used) or None = need more bytes.
    /// Cursor to column `x`, row `y` (1-based), as `ESC l` and `US $` both do.
    fn move_to(&mut self, cmd: &str, x: u8, y: u8) {
        if (1..=20).contains(&x) && (1..=2).contains(&y) {
            self.col = usize::from(x - 1);
            self.row = usize::from(y - 1);
        } else {
            self.errors.push(format!("{cmd} {x} {y}: outside 20 x 2"));
        }
    }

    /// Brightness 1 to 4, as `ESC *` and `US X` both set it.
    fn set_brightness(&mut self, cmd: &str, n: u8) {
        if (1..=4).contains(&n) {
            self.brightness = n;
        } else {
            self.errors.push(format!("{cmd} {n}: brightness is 1 to 4"));
        }
    }

    fn step(&mut self) -> Option<usize> {
        let p = &self.pending;
        match *p.first()? {
            CLR => {
                self.clear();
                Some(1)
            }
            CAN => {
                self.lines[self.row] = vec![b' '; COLS];
                self.col = 0;
                Some(1)
            }
            CR => {
                self.col = 0;
                Some(1)
            }
            0x0A => {
                self.row = 1;
                Some(1)
            }
            0x0B => {
                self.row = 0;
                self.col = 0;
                Some(1)
            }
            ESC => match *p.get(1)? {
                b'@' => {
                    self.clear();
                    self.brightness = 4;
                    Some(2)
                }
                b'*' => {
                    self.set_brightness("ESC *", *p.get(2)?);
                    Some(3)
                }
                b'l' => {
                    self.move_to("ESC l", *p.get(2)?, *p.get(3)?);
                    Some(4)
                }
                b'Q' => {
                    let which = *p.get(2)?;
                    let end = p[3..].iter().position(|b| *b == CR)?;
                    let text: Vec<u8> = p[3..3 + end].to_vec();
                    let row = match which {
                        b'A' => Some(0),
                        b'B' => Some(1),
                        _ => None,
                    };
                    match row {
                        Some(r) => {
                            let mut l: Vec<u8> = text.into_iter().take(COLS).collect();
                            l.resize(COLS, b' ');
                            self.lines[r] = l;
                        }
                        None => self.errors.push(format!("ESC Q {}: only A and B lines", which as char)),
                    }
                    Some(3 + end + 1)
                }
                // Two-byte-argument commands this simulator does not model: wait for the argument.
                b'_' | b'f' => p.get(2).map(|_| 3),
                other => {
                    self.errors.push(format!("unknown command ESC {other:#04x}"));
                    Some(2)
                }
            },
            US => match *p.get(1)? {
                b'$' => {
                    self.move_to("US $", *p.get(2)?, *p.get(3)?);
                    Some(4)
                }
                b'X' => {
                    self.set_brightness("US X", *p.get(2)?);
                    Some(3)
                }
                b'C' | b'E' | b'r' => p.get(2).map(|_| 3),
                1..=3 => Some(2),
                other => {
                    self.errors.push(format!("unknown command US {other:#04x}"));
                    Some(2)
                }
            },
            b @ 0x20..=0x7E => {
                self.put(b);
                Some(1)
            }
            other => {
                self.errors.push(format!("byte {other:#04x} ignored"));
                Some(1)
            }
        }
    }
}

impl Peer for DisplaySim {
    fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(bytes);
        while let Some(used) = self.step() {
            self.pending.drain(..used);
            if self.pending.is_empty() {
                break;
            }
        }
        if self.pending.len() > 1024 {
            self.errors.push("an unterminated command over 1 KiB was dropped".into());
            self.pending.clear();
        }
        if self.errors.len() > 1000 {
            self.errors.drain(..500);
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_dialects_show_the_same_two_lines() {
        for d in [Dialect::Cd5220, Dialect::EscPos] {
            let mut sim = DisplaySim::default();
            let bytes = PoleDisplay::encode(d, &two_sided("Light Juice", "25,70"), &two_sided("TOTAL", "51,40 EUR"));
            // Split anywhere: the same picture.
            for chunk in bytes.chunks(3) {
                sim.feed(chunk);
            }
            assert_eq!(sim.lines(), ["Light Juice    25,70".to_string(), "TOTAL      51,40 EUR".to_string()], "{d:?}");
            assert!(sim.errors().is_empty(), "{:?}", sim.errors());
        }
        assert_eq!(fit("Grüße an alle Kunden heute"), "Gr??e an alle Kunden");
        assert_eq!(two_sided("A very long item name indeed", "1,00").len(), 20);
    }

    #[test]
    fn garbage_is_recorded_never_shown_as_commands() {
        // Found by fuzzing: a command cut after its second byte waits for the rest.
        for cut in [&[0x1F, b'r'][..], &[0x1B, b'f'], &[0x1F, b'C']] {
            let mut d = DisplaySim::default();
            d.feed(cut);
            d.feed(&[1]);
            d.feed(b"ok");
            assert!(d.lines()[0].starts_with("ok"), "{cut:?}: {:?}", d.lines());
        }
        let mut sim = DisplaySim::default();
        sim.feed(&[0x1B, b'*', 9, 0x1F, b'$', 30, 1, 0x07, b'o', b'k']);
        assert_eq!(sim.errors().len(), 3);
        assert!(sim.lines()[0].starts_with("ok"));
        let mut sim = DisplaySim::default();
        sim.feed(&[0x1B, b'Q', b'A']);
        sim.feed(&[b'x'; 2000]);
        assert!(sim.errors().iter().any(|e| e.contains("over 1 KiB")));
    }
}
