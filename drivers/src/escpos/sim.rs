//! A simulated ESC/POS printer with a cash drawer: the peer of [`super::Printer`], wire-true
//! to the commands in §4 of the reference. It parses the byte stream (commands may arrive
//! split across reads), keeps each job (ended by a cut) rendered as plain text, answers
//! `DLE EOT 1–4` from its state, opens its drawer on `ESC p`, and can be told: paper near
//! end / end, cover open, offline, cutter error, drawer closed. Bytes it cannot parse are
//! recorded as errors and skipped; nothing panics, nothing is invented.

use super::{DLE, EOT, ESC, GS, LF};
use crate::transport::{Link, LinkError, Peer, serve_peer};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

/// Largest command the simulator buffers (a raster image up to this size).
pub const MAX_COMMAND: usize = 4 * 1024 * 1024;
/// Jobs kept (oldest dropped first).
pub const MAX_JOBS: usize = 1000;

/// The printer's condition, settable by tests and `edge-lab sim printer`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Condition {
    pub offline: bool,
    pub cover_open: bool,
    pub paper_near_end: bool,
    pub paper_end: bool,
    pub cutter_error: bool,
    pub drawer_open: bool,
    /// Hung: takes every byte and answers nothing (no status, no print).
    pub hang: bool,
}

/// One finished (cut) job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub text: String,
    /// The printer could not print part of it (cover open, paper end, offline).
    pub incomplete: bool,
}

#[derive(Debug, Default)]
pub struct PrinterSim {
    pub condition: Condition,
    pending: Vec<u8>,
    current: String,
    current_incomplete: bool,
    jobs: Vec<Job>,
    errors: Vec<String>,
    qr_store: Option<String>,
    pub drawer_kicks: u64,
}

impl PrinterSim {
    pub fn new() -> PrinterSim {
        PrinterSim::default()
    }

    pub fn jobs(&self) -> &[Job] {
        &self.jobs
    }

    /// Text printed since the last cut.
    pub fn current(&self) -> &str {
        &self.current
    }

    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    fn blocked(&self) -> bool {
        let c = &self.condition;
        c.offline || c.cover_open || c.paper_end
    }

    fn status_byte(&self, n: u8) -> Option<u8> {
        let c = &self.condition;
        let base = 0x12u8;
        Some(match n {
            1 | 49 => base | if c.drawer_open { 0x04 } else { 0 } | if self.blocked() { 0x08 } else { 0 },
            2 | 50 => base | if c.cover_open { 0x04 } else { 0 } | if c.paper_end { 0x20 } else { 0 },
            3 | 51 => base | if c.cutter_error { 0x08 } else { 0 },
            4 | 52 => {
                base | if c.paper_near_end || c.paper_end { 0x0C } else { 0 } | if c.paper_end { 0x60 } else { 0 }
            }
            _ => return None,
        })
    }

    fn emit(&mut self, s: &str) {
        if self.blocked() {
            self.current_incomplete = true;
            return;
        }
        if self.current.len() + s.len() <= 1 << 20 {
            self.current.push_str(s);
        }
    }

    fn error(&mut self, e: String) {
        if self.errors.len() < 1000 {
            self.errors.push(e);
        }
    }

    fn cut(&mut self) {
        if self.condition.cutter_error {
            self.error("cut requested with a cutter error".into());
            return;
        }
        let text = std::mem::take(&mut self.current);
        let incomplete = std::mem::take(&mut self.current_incomplete);
        self.jobs.push(Job { text, incomplete });
        if self.jobs.len() > MAX_JOBS {
            self.jobs.remove(0);
        }
    }

    /// Takes bytes from the host; returns the bytes to send back (status replies).
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        if self.condition.hang {
            return Vec::new();
        }
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(used) = self.step(&mut out) {
            self.pending.drain(..used);
            if self.pending.is_empty() {
                break;
            }
        }
        if self.pending.len() > MAX_COMMAND {
            self.error(format!("a command over {MAX_COMMAND} bytes; {} bytes dropped", self.pending.len()));
            self.pending.clear();
        }
        out
    }

    /// Parses one command at the start of `pending`: Some(bytes used) or None = need more.
    fn step(&mut self, out: &mut Vec<u8>) -> Option<usize> {
        let p = &self.pending;
        let b0 = *p.first()?;
        match b0 {
            LF => {
                self.emit("\n");
                Some(1)
            }
            0x0D | 0x00 => Some(1),
            DLE => {
                if p.len() < 3 {
                    return None;
                }
                if p[1] == EOT {
                    let n = p[2];
                    match self.status_byte(n) {
                        Some(b) => out.push(b),
                        None => self.error(format!("DLE EOT {n}: no such status")),
                    }
                    Some(3)
                } else {
                    let e = format!("unknown command DLE {:#04x}", p[1]);
                    self.error(e);
                    Some(2)
                }
            }
            ESC => {
                let cmd = *p.get(1)?;
                let args = match cmd {
                    b'@' => 0,
                    b't' | b'E' | b'-' | b'!' | b'a' | b'M' | b'=' | b'd' | b'J' => 1,
                    b'p' => 3,
                    _ => {
                        let e = format!("unknown command ESC {cmd:#04x}");
                        self.error(e);
                        return Some(2);
                    }
                };
                if p.len() < 2 + args {
                    return None;
                }
                match cmd {
                    b'p' => {
                        self.drawer_kicks += 1;
                        self.condition.drawer_open = true;
                    }
                    b'd' => {
                        let n = usize::from(p[2]).min(20);
                        self.emit(&"\n".repeat(n));
                    }
                    _ => {}
                }
                Some(2 + args)
            }
            GS => {
                let cmd = *p.get(1)?;
                match cmd {
                    b'!' | b'B' | b'H' | b'h' | b'w' | b'f' => {
                        if p.len() < 3 {
                            return None;
                        }
                        Some(3)
                    }
                    b'V' => {
                        let m = *p.get(2)?;
                        let len = match m {
                            0 | 1 | 48 | 49 => 3,
                            65 | 66 => 4,
                            _ => {
                                let e = format!("GS V {m}: no such cut");
                                self.error(e);
                                return Some(3);
                            }
                        };
                        if p.len() < len {
                            return None;
                        }
                        self.cut();
                        Some(len)
                    }
                    b'k' => {
                        let m = *p.get(2)?;
                        if m <= 6 {
                            let end = p[3..].iter().position(|b| *b == 0)?;
                            let data = String::from_utf8_lossy(&p[3..3 + end]).into_owned();
                            self.emit(&format!("[BARCODE {} {data}]\n", symbology_name(m)));
                            Some(3 + end + 1)
                        } else if (65..=78).contains(&m) {
                            let n = usize::from(*p.get(3)?);
                            if p.len() < 4 + n {
                                return None;
                            }
                            let data = String::from_utf8_lossy(&p[4..4 + n]).into_owned();
                            let name = symbology_name(m);
                            let check =
                                if matches!(m, 67 | 68 | 65) && !gtin_ok(&data) { " (check digit wrong)" } else { "" };
                            self.emit(&format!("[BARCODE {name} {data}{check}]\n"));
                            Some(4 + n)
                        } else {
                            let e = format!("GS k {m}: no such barcode type");
                            self.error(e);
                            Some(3)
                        }
                    }
                    b'(' => {
                        if p.len() < 5 {
                            return None;
                        }
                        let len = usize::from(p[3]) | usize::from(p[4]) << 8;
                        if p.len() < 5 + len {
                            return None;
                        }
                        let body = &p[5..5 + len];
                        // QR print (GS ( k … 49 81): render what was stored.
                        if p[2] == b'k' && body.len() >= 3 && body[0] == 49 && body[1] == 80 {
                            let data = String::from_utf8_lossy(&body[3..]).into_owned();
                            self.qr_store = Some(data);
                        } else if p[2] == b'k' && body.len() >= 2 && body[0] == 49 && body[1] == 81 {
                            let data = self.qr_store.take().unwrap_or_default();
                            self.emit(&format!("[QR {data}]\n"));
                        }
                        Some(5 + len)
                    }
                    b'v' => {
                        if p.len() < 8 {
                            return None;
                        }
                        let w = usize::from(p[4]) | usize::from(p[5]) << 8;
                        let h = usize::from(p[6]) | usize::from(p[7]) << 8;
                        let n = w * h;
                        if n > MAX_COMMAND {
                            let e = format!("GS v 0: a {w}x{h} image is over {MAX_COMMAND} bytes");
                            self.error(e);
                            return Some(8);
                        }
                        if p.len() < 8 + n {
                            return None;
                        }
                        self.emit(&format!("[IMAGE {}x{h}]\n", w * 8));
                        Some(8 + n)
                    }
                    _ => {
                        let e = format!("unknown command GS {cmd:#04x}");
                        self.error(e);
                        Some(2)
                    }
                }
            }
            0x20..=0x7E => {
                let n = p.iter().take_while(|b| (0x20..=0x7E).contains(*b)).count();
                let s = String::from_utf8_lossy(&p[..n]).into_owned();
                self.emit(&s);
                Some(n)
            }
            0x80..=0xFF => {
                let c = match b0 {
                    0xD5 => '€',
                    0x84 => 'ä',
                    0x94 => 'ö',
                    0x81 => 'ü',
                    0x8E => 'Ä',
                    0x99 => 'Ö',
                    0x9A => 'Ü',
                    0xE1 => 'ß',
                    0x82 => 'é',
                    _ => '?',
                };
                self.emit(&c.to_string());
                Some(1)
            }
            other => {
                self.error(format!("control byte {other:#04x} ignored"));
                Some(1)
            }
        }
    }
}

fn symbology_name(m: u8) -> &'static str {
    match m {
        0 | 65 => "UPC-A",
        2 | 67 => "EAN13",
        3 | 68 => "EAN8",
        4 | 69 => "CODE39",
        73 => "CODE128",
        _ => "OTHER",
    }
}

/// GS1 check digit of an EAN-8 / UPC-A / EAN-13 with its check digit (shorter: no check).
fn gtin_ok(d: &str) -> bool {
    if !matches!(d.len(), 8 | 12 | 13) {
        return true;
    }
    let digits: Vec<u32> = d.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() != d.len() {
        return false;
    }
    let (body, check) = digits.split_at(digits.len() - 1);
    let sum: u32 = body.iter().rev().enumerate().map(|(i, x)| if i % 2 == 0 { x * 3 } else { *x }).sum();
    (10 - sum % 10) % 10 == check[0]
}

impl Peer for PrinterSim {
    fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        PrinterSim::feed(self, bytes)
    }
}

/// Serves one link until `stop` is set or the host goes away.
pub fn serve(link: &mut dyn Link, sim: &Arc<Mutex<PrinterSim>>, stop: &AtomicBool) -> Result<(), LinkError> {
    serve_peer(link, sim.as_ref(), stop)
}
