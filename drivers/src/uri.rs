//! One URI form names a device everywhere (config, `edged demo --device KIND=URI`, CLI):
//!
//! * `serial:///dev/serial/by-id/usb-…?baud=9600&data=7&parity=even&stop=1` — defaults
//!   9600 8N1; `parity` is `none`, `even` or `odd`; `data` 5–8; `stop` 1 or 2;
//!   `timeout_ms` (inter-character / read timeout, default 50).
//! * `tcp://host:port` — a network device (a printer on 9100, a terminal on 20007).
//! * `usb://vvvv:pppp[/serial]` — vendor and product id in hex, optional serial number.
//! * `adyen://host:port` — an Adyen terminal's local Terminal API (HTTPS, port 8443).
//!
//! Parsing never panics; every error names the part that is wrong.

use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    None,
    Even,
    Odd,
}

/// Line settings of a serial device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SerialSettings {
    pub baud: u32,
    pub data_bits: u8,
    pub parity: Parity,
    pub stop_bits: u8,
    pub timeout: Duration,
}

impl Default for SerialSettings {
    fn default() -> Self {
        SerialSettings {
            baud: 9600,
            data_bits: 8,
            parity: Parity::None,
            stop_bits: 1,
            timeout: Duration::from_millis(50),
        }
    }
}

/// Where a device is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceUri {
    Serial {
        path: String,
        settings: SerialSettings,
    },
    Tcp {
        host: String,
        port: u16,
    },
    Usb {
        vendor: u16,
        product: u16,
        serial: Option<String>,
    },
    /// An Adyen terminal (Terminal API over HTTPS, `https://host:port/nexo`).
    Adyen {
        host: String,
        port: u16,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("device URI {uri:?}: {why}")]
pub struct UriError {
    pub uri: String,
    pub why: String,
}

const BAUDS: [u32; 12] = [1200, 2400, 4800, 9600, 14400, 19200, 38400, 57600, 115200, 230400, 460800, 921600];

impl DeviceUri {
    pub fn parse(s: &str) -> Result<DeviceUri, UriError> {
        let err = |why: String| UriError { uri: s.to_string(), why };
        let (scheme, rest) =
            s.split_once("://").ok_or_else(|| err("expected serial://, tcp://, usb:// or adyen://".into()))?;
        match scheme {
            "serial" => {
                let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
                if !path.starts_with('/') || path.len() < 2 {
                    return Err(err("the serial path must be absolute, e.g. serial:///dev/ttyUSB0".into()));
                }
                let mut st = SerialSettings::default();
                for kv in query.split('&').filter(|x| !x.is_empty()) {
                    let (k, v) = kv.split_once('=').ok_or_else(|| err(format!("{kv:?} is not key=value")))?;
                    match k {
                        "baud" => {
                            st.baud = v
                                .parse()
                                .ok()
                                .filter(|b| BAUDS.contains(b))
                                .ok_or_else(|| err(format!("baud {v:?} is not one of {BAUDS:?}")))?;
                        }
                        "data" => {
                            st.data_bits = v
                                .parse()
                                .ok()
                                .filter(|d| (5..=8).contains(d))
                                .ok_or_else(|| err(format!("data {v:?} must be 5 to 8")))?;
                        }
                        "parity" => {
                            st.parity = match v {
                                "none" | "n" => Parity::None,
                                "even" | "e" => Parity::Even,
                                "odd" | "o" => Parity::Odd,
                                _ => return Err(err(format!("parity {v:?} must be none, even or odd"))),
                            };
                        }
                        "stop" => {
                            st.stop_bits = v
                                .parse()
                                .ok()
                                .filter(|d| *d == 1 || *d == 2)
                                .ok_or_else(|| err(format!("stop {v:?} must be 1 or 2")))?;
                        }
                        "timeout_ms" => {
                            let ms: u64 = v
                                .parse()
                                .ok()
                                .filter(|m| (1..=60_000).contains(m))
                                .ok_or_else(|| err(format!("timeout_ms {v:?} must be 1 to 60000")))?;
                            st.timeout = Duration::from_millis(ms);
                        }
                        other => {
                            return Err(err(format!(
                                "unknown setting {other:?} (baud, data, parity, stop, timeout_ms)"
                            )));
                        }
                    }
                }
                Ok(DeviceUri::Serial { path: path.to_string(), settings: st })
            }
            "tcp" | "adyen" => {
                let (host, port) =
                    rest.rsplit_once(':').ok_or_else(|| err(format!("expected {scheme}://host:port")))?;
                // An IPv6 address comes in brackets; a name or IPv4 address has none.
                let host = match host.strip_prefix('[') {
                    Some(v6) => match v6.strip_suffix(']') {
                        Some(a) if a.parse::<std::net::Ipv6Addr>().is_ok() => a,
                        _ => return Err(err(format!("host {host:?} is not a bracketed IPv6 address"))),
                    },
                    None => host,
                };
                let name_ok = |h: &str| {
                    !h.is_empty()
                        && h.len() <= 253
                        && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
                };
                if !(name_ok(host) || host.parse::<std::net::Ipv6Addr>().is_ok()) {
                    return Err(err(format!("host {host:?} is not a host name or address")));
                }
                let port: u16 = port
                    .parse()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| err(format!("port {port:?} is not 1 to 65535")))?;
                Ok(if scheme == "adyen" {
                    DeviceUri::Adyen { host: host.to_string(), port }
                } else {
                    DeviceUri::Tcp { host: host.to_string(), port }
                })
            }
            "usb" => {
                let (ids, serial) = match rest.split_once('/') {
                    Some((a, b)) if !b.is_empty() => (a, Some(b.to_string())),
                    Some((a, _)) => (a, None),
                    None => (rest, None),
                };
                let (v, p) = ids.split_once(':').ok_or_else(|| err("expected usb://vendor:product in hex".into()))?;
                let hex = |x: &str, what: &str| {
                    if x.len() == 4 {
                        u16::from_str_radix(x, 16).map_err(|_| err(format!("{what} {x:?} is not 4 hex digits")))
                    } else {
                        Err(err(format!("{what} {x:?} is not 4 hex digits")))
                    }
                };
                Ok(DeviceUri::Usb { vendor: hex(v, "vendor")?, product: hex(p, "product")?, serial })
            }
            other => Err(err(format!("unknown scheme {other:?}; use serial, tcp, usb or adyen"))),
        }
    }
}

impl fmt::Display for DeviceUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceUri::Serial { path, settings: s } => {
                let parity = match s.parity {
                    Parity::None => "none",
                    Parity::Even => "even",
                    Parity::Odd => "odd",
                };
                write!(
                    f,
                    "serial://{path}?baud={}&data={}&parity={parity}&stop={}&timeout_ms={}",
                    s.baud,
                    s.data_bits,
                    s.stop_bits,
                    s.timeout.as_millis()
                )
            }
            DeviceUri::Tcp { host, port } if host.contains(':') => write!(f, "tcp://[{host}]:{port}"),
            DeviceUri::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            DeviceUri::Adyen { host, port } if host.contains(':') => write!(f, "adyen://[{host}]:{port}"),
            DeviceUri::Adyen { host, port } => write!(f, "adyen://{host}:{port}"),
            DeviceUri::Usb { vendor, product, serial: Some(s) } => write!(f, "usb://{vendor:04x}:{product:04x}/{s}"),
            DeviceUri::Usb { vendor, product, serial: None } => write!(f, "usb://{vendor:04x}:{product:04x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_examples_parse_and_print_back() {
        let toledo = DeviceUri::parse("serial:///dev/ttyUSB0?baud=9600&data=7&parity=even&stop=1").expect("toledo");
        let DeviceUri::Serial { settings, .. } = &toledo else { panic!("serial") };
        assert_eq!(
            (settings.baud, settings.data_bits, settings.parity, settings.stop_bits),
            (9600, 7, Parity::Even, 1)
        );
        assert_eq!(DeviceUri::parse(&toledo.to_string()).expect("again"), toledo);
        assert_eq!(
            DeviceUri::parse("tcp://127.0.0.1:9100").expect("tcp"),
            DeviceUri::Tcp { host: "127.0.0.1".into(), port: 9100 }
        );
        assert_eq!(
            DeviceUri::parse("usb://04b8:0202").expect("usb"),
            DeviceUri::Usb { vendor: 0x04b8, product: 0x0202, serial: None }
        );
        assert_eq!(DeviceUri::parse("usb://04b8:0202/ABC123").expect("usb").to_string(), "usb://04b8:0202/ABC123");
        assert!(matches!(DeviceUri::parse("serial:///dev/ttyACM0").expect("defaults"), DeviceUri::Serial { .. }));
    }

    #[test]
    fn every_error_names_the_part() {
        // Found by fuzzing: what parses must print back to something that parses.
        for bad in ["tcp://[:20007", "tcp://[]:1", "tcp://a b:1", "tcp://[nothost]:9100"] {
            assert!(DeviceUri::parse(bad).is_err(), "{bad}");
        }
        let v6 = DeviceUri::parse("tcp://[fe80::1]:9100").expect("v6");
        assert_eq!(DeviceUri::parse(&v6.to_string()), Ok(v6));
        for (u, part) in [
            ("ttyUSB0", "serial://"),
            ("serial://dev/tty", "absolute"),
            ("serial:///dev/tty?baud=1234", "baud"),
            ("serial:///dev/tty?parity=mark", "parity"),
            ("serial:///dev/tty?data=9", "data"),
            ("serial:///dev/tty?stop=3", "stop"),
            ("serial:///dev/tty?speed=9600", "speed"),
            ("tcp://host", "tcp://host:port"),
            ("tcp://host:0", "port"),
            ("tcp://host:99999", "port"),
            ("usb://4b8:202", "vendor"),
            ("usb://04b8", "vendor:product"),
            ("ftp://x", "scheme"),
        ] {
            let e = DeviceUri::parse(u).expect_err(u);
            assert!(e.to_string().contains(part), "{u}: {e}");
        }
    }
}
