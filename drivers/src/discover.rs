//! Discovery for `edgectl devices scan`: lists candidate devices — serial ports (stable
//! `/dev/serial/by-id` names first, then `ttyUSB*` / `ttyACM*` and what the system lists),
//! USB devices, and TCP addresses the caller names — and probes each with the protocols this
//! crate speaks, so a field tech sees what is attached, what it is, and what is not supported.
//!
//! Probes only ask questions a device answers without changing anything: `DLE EOT 1` (an
//! ESC/POS printer answers one status byte of the form 0xx1xx10) at the printer's usual line
//! settings, and the Toledo echo test (`E` `hello`) at 9600 7E1. Scanners only send and pole
//! displays cannot be read back, so a silent serial port is listed as "no answer" with that
//! hint; a port that sends a CR-terminated code while listening is listed as a scanner.
//! A port another process holds (edged itself, usually) is listed as busy, never forced.

use crate::escpos::valid_status_byte;
use crate::toledo::Scale;
use crate::transport::{Link, SerialLink, TcpLink, read_until};
use crate::uri::{DeviceUri, Parity, SerialSettings};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One thing found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The URI to put in the config (`serial://…`, `usb://…`, `tcp://…`).
    pub uri: String,
    /// `printer`, `scale`, `scanner`, `display`, or None when not identified.
    pub kind: Option<String>,
    /// Whether this daemon drives it.
    pub supported: bool,
    /// What the probe saw, in words.
    pub detail: String,
}

/// What a scan found, and what it could not look at.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub found: Vec<Found>,
    pub notes: Vec<String>,
}

/// Where to look.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    /// Serial paths to probe besides the ones found under /dev.
    pub paths: Vec<String>,
    /// `host:port` of network devices to probe.
    pub tcp: Vec<String>,
    /// Whether to look for serial ports under /dev (`/dev/serial/by-id`, `ttyUSB*`, `ttyACM*`).
    pub system_serial: bool,
    /// Whether to list the USB bus.
    pub usb: bool,
}

/// How long a probe waits for an answer.
pub const PROBE_WAIT: Duration = Duration::from_millis(400);

/// Serial candidates on this machine: by-id names (stable across reboots and replugging),
/// then device nodes that no by-id name points at.
pub fn serial_candidates(dev: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut covered = BTreeSet::new();
    if let Ok(rd) = std::fs::read_dir(dev.join("serial/by-id")) {
        let mut names: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        names.sort();
        for p in names {
            if let Ok(target) = std::fs::canonicalize(&p) {
                covered.insert(target);
            }
            out.push(p.display().to_string());
        }
    }
    if let Ok(rd) = std::fs::read_dir(dev) {
        let mut nodes: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("ttyUSB") || n.starts_with("ttyACM"))
            })
            .collect();
        nodes.sort();
        for p in nodes {
            if !covered.contains(&p) {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

fn open_serial(path: &str, settings: &SerialSettings) -> Result<SerialLink, String> {
    SerialLink::open(path, settings).map_err(|e| {
        let t = e.to_string();
        if t.contains("Device or resource busy") || t.contains("EBUSY") || t.contains("exclusive lock") {
            format!("busy: another program holds it (edged, when it is configured): {t}")
        } else {
            t
        }
    })
}

/// Sends `DLE EOT 1` and says whether one ESC/POS status byte came back.
pub fn probe_escpos(link: &mut dyn Link) -> Result<Option<u8>, String> {
    link.discard_input().map_err(|e| e.to_string())?;
    link.write_all(&[0x10, 0x04, 0x01]).map_err(|e| e.to_string())?;
    let got =
        read_until(link, PROBE_WAIT, Duration::from_millis(50), 8, |b| !b.is_empty()).map_err(|e| e.to_string())?;
    Ok(match got.as_slice() {
        [b] if valid_status_byte(*b) => Some(*b),
        _ => None,
    })
}

/// Probes one serial port.
pub fn probe_serial(path: &str) -> Found {
    let printer_settings = SerialSettings::default();
    let scale_settings =
        SerialSettings { baud: 9600, data_bits: 7, parity: Parity::Even, stop_bits: 1, ..SerialSettings::default() };
    let uri_of = |s: &SerialSettings| DeviceUri::Serial { path: path.to_string(), settings: *s }.to_string();
    let mut link = match open_serial(path, &printer_settings) {
        Ok(l) => l,
        Err(e) => return Found { uri: uri_of(&printer_settings), kind: None, supported: false, detail: e },
    };
    // A scanner talks on its own: listen a little first, so a code in flight is not taken
    // for a garbled answer.
    let heard =
        read_until(&mut link, PROBE_WAIT, Duration::from_millis(50), 4096, |b| b.ends_with(b"\r")).unwrap_or_default();
    if heard.ends_with(b"\r") || heard.ends_with(b"\n") {
        return Found {
            uri: uri_of(&printer_settings),
            kind: Some("scanner".into()),
            supported: true,
            detail: format!("sent a code of {} bytes without being asked", heard.len()),
        };
    }
    match probe_escpos(&mut link) {
        Ok(Some(b)) => {
            return Found {
                uri: uri_of(&printer_settings),
                kind: Some("printer".into()),
                supported: true,
                detail: format!("ESC/POS printer: DLE EOT 1 answered {b:#04x}"),
            };
        }
        Ok(None) => {}
        Err(e) => return Found { uri: uri_of(&printer_settings), kind: None, supported: false, detail: e },
    }
    drop(link);
    let mut link = match open_serial(path, &scale_settings) {
        Ok(l) => l,
        Err(e) => return Found { uri: uri_of(&scale_settings), kind: None, supported: false, detail: e },
    };
    match Scale::probe(&mut link) {
        Ok(true) => Found {
            uri: uri_of(&scale_settings),
            kind: Some("scale".into()),
            supported: true,
            detail: "Toledo 8217: echo test answered at 9600 7E1".into(),
        },
        Ok(false) => Found {
            uri: uri_of(&printer_settings),
            kind: None,
            supported: false,
            detail: "no answer to the printer or scale probes: a pole display (cannot be read back) or a scanner \
                     (scan a code while scanning), or a device this daemon does not drive"
                .into(),
        },
        Err(e) => Found { uri: uri_of(&scale_settings), kind: None, supported: false, detail: e.to_string() },
    }
}

/// Probes one network address (`host:port`).
pub fn probe_tcp(target: &str) -> Found {
    let uri = format!("tcp://{target}");
    let (host, port) = match DeviceUri::parse(&uri) {
        Ok(DeviceUri::Tcp { host, port }) => (host, port),
        Ok(_) => return Found { uri, kind: None, supported: false, detail: "not host:port".into() },
        Err(e) => return Found { uri, kind: None, supported: false, detail: e.why },
    };
    let mut link = match TcpLink::connect(&host, port, Duration::from_secs(2)) {
        Ok(l) => l,
        Err(e) => return Found { uri, kind: None, supported: false, detail: e.to_string() },
    };
    match probe_escpos(&mut link) {
        Ok(Some(b)) => Found {
            uri,
            kind: Some("printer".into()),
            supported: true,
            detail: format!("ESC/POS printer: DLE EOT 1 answered {b:#04x}"),
        },
        Ok(None) => match Scale::probe(&mut link) {
            Ok(true) => Found {
                uri,
                kind: Some("scale".into()),
                supported: true,
                detail: "Toledo 8217: echo test answered".into(),
            },
            _ => Found {
                uri,
                kind: None,
                supported: false,
                detail: "accepts connections but answers neither the printer nor the scale probe".into(),
            },
        },
        Err(e) => Found { uri, kind: None, supported: false, detail: e },
    }
}

/// The USB bus, each device with what it looks like.
pub fn probe_usb() -> Result<Vec<Found>, String> {
    let devices = crate::usb::list().map_err(|e| e.to_string())?;
    Ok(devices
        .into_iter()
        .filter(|d| d.class != 0x09) // hubs
        .map(|d| {
            let maker = crate::usb::known_vendor(d.vendor).map(|(m, _)| m.to_string());
            let name = [d.manufacturer.clone().or(maker), d.product_name.clone()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            let role = d.role();
            let mut detail = if name.is_empty() { "unknown maker".to_string() } else { name };
            detail.push_str(&format!(" (bus {} address {})", d.bus, d.address));
            if let Some(why) = &d.unreadable {
                detail.push_str(&format!("; {why}"));
            }
            match role {
                Some("serial") => Found {
                    uri: d.uri(),
                    kind: None,
                    supported: false,
                    detail: format!("{detail}; a USB-serial bridge: configure its /dev/serial/by-id path instead"),
                },
                Some(k) => Found { uri: d.uri(), kind: Some(k.into()), supported: true, detail },
                None => {
                    Found { uri: d.uri(), kind: None, supported: false, detail: format!("{detail}; not a POS device") }
                }
            }
        })
        .collect())
}

/// Runs the scan.
pub fn scan(t: &Targets) -> Report {
    let mut r = Report::default();
    let mut paths: Vec<String> = Vec::new();
    if t.system_serial {
        paths.extend(serial_candidates(Path::new("/dev")));
        if paths.is_empty() {
            r.notes.push("no serial ports under /dev/serial/by-id, /dev/ttyUSB* or /dev/ttyACM*".into());
        }
    }
    for p in &t.paths {
        if !paths.contains(p) {
            paths.push(p.clone());
        }
    }
    for p in &paths {
        r.found.push(probe_serial(p));
    }
    for a in &t.tcp {
        r.found.push(probe_tcp(a));
    }
    if t.usb {
        match probe_usb() {
            Ok(f) if f.is_empty() => r.notes.push("USB: no devices on the bus (hubs aside)".into()),
            Ok(f) => r.found.extend(f),
            Err(e) => r.notes.push(e),
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_id_names_come_first_and_cover_their_nodes() {
        let d = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(d.path().join("serial/by-id")).expect("mkdir");
        for n in ["ttyUSB0", "ttyUSB1", "ttyACM0", "ttyS0", "null"] {
            std::fs::write(d.path().join(n), b"").expect("node");
        }
        std::os::unix::fs::symlink(d.path().join("ttyUSB1"), d.path().join("serial/by-id/usb-FTDI_X-if00-port0"))
            .expect("link");
        let got = serial_candidates(d.path());
        let names: Vec<String> =
            got.iter().map(|p| p.trim_start_matches(&d.path().display().to_string()).to_string()).collect();
        assert_eq!(names, ["/serial/by-id/usb-FTDI_X-if00-port0", "/ttyACM0", "/ttyUSB0"]);
    }

    #[test]
    fn a_missing_port_and_a_closed_tcp_port_are_listed_with_the_reason() {
        let f = probe_serial("/dev/does-not-exist-edge");
        assert!(!f.supported && f.kind.is_none() && !f.detail.is_empty(), "{f:?}");
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        let f = probe_tcp(&format!("127.0.0.1:{port}"));
        assert!(!f.supported && f.detail.contains("cannot open"), "{f:?}");
        let f = probe_tcp("nonsense");
        assert!(!f.supported, "{f:?}");
    }
}
