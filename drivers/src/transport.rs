//! Byte links to devices: serial (serialport, any line settings), TCP, USB ([`crate::usb`]), and — through the
//! same trait — a pty end in tests and simulators. Protocol modules speak bytes over a
//! [`Link`] and never know which one it is.
//!
//! `read` waits at most the given time and returns 0 when nothing came: protocols build
//! their inter-character and reply timeouts on it.

use crate::uri::{DeviceUri, Parity, SerialSettings};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot open {uri}: {why}")]
    Open { uri: String, why: String },
    #[error("link closed by the device")]
    Closed,
    #[error("I/O: {0}")]
    Io(String),
    #[error("{0}")]
    Unsupported(String),
}

/// A bidirectional byte link.
pub trait Link: Send {
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), LinkError>;
    /// Reads what is there, waiting at most `timeout`; `Ok(0)` = nothing in that time.
    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError>;
    /// Drops bytes that arrived but were not read (stale replies).
    fn discard_input(&mut self) -> Result<(), LinkError> {
        let mut buf = [0u8; 256];
        while self.read(&mut buf, Duration::from_millis(1))? > 0 {}
        Ok(())
    }
    fn describe(&self) -> String;
}

fn io(e: std::io::Error) -> LinkError {
    match e.kind() {
        std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof => {
            LinkError::Closed
        }
        _ => LinkError::Io(e.to_string()),
    }
}

/// A TCP device.
pub struct TcpLink {
    stream: TcpStream,
    peer: String,
}

impl TcpLink {
    pub fn connect(host: &str, port: u16, timeout: Duration) -> Result<TcpLink, LinkError> {
        use std::net::ToSocketAddrs;
        let peer = format!("{host}:{port}");
        let open = |why: String| LinkError::Open { uri: format!("tcp://{peer}"), why };
        let addrs: Vec<_> = (host, port).to_socket_addrs().map_err(|e| open(e.to_string()))?.collect();
        let mut last = "no address".to_string();
        for a in addrs {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(TcpLink { stream, peer });
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(open(last))
    }

    pub fn from_stream(stream: TcpStream) -> TcpLink {
        let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".into());
        let _ = stream.set_nodelay(true);
        TcpLink { stream, peer }
    }
}

impl Link for TcpLink {
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        self.stream.write_all(bytes).map_err(io)?;
        self.stream.flush().map_err(io)
    }

    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError> {
        self.stream.set_read_timeout(Some(timeout.max(Duration::from_millis(1)))).map_err(io)?;
        match self.stream.read(buf) {
            Ok(0) => Err(LinkError::Closed),
            Ok(n) => Ok(n),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => Ok(0),
            Err(e) => Err(io(e)),
        }
    }

    fn describe(&self) -> String {
        format!("tcp://{}", self.peer)
    }
}

/// A serial device (or one end of a pty pair).
pub struct SerialLink {
    port: Box<dyn serialport::SerialPort>,
    name: String,
}

impl SerialLink {
    pub fn open(path: &str, s: &SerialSettings) -> Result<SerialLink, LinkError> {
        let port = serialport::new(path, s.baud)
            .data_bits(match s.data_bits {
                5 => serialport::DataBits::Five,
                6 => serialport::DataBits::Six,
                7 => serialport::DataBits::Seven,
                _ => serialport::DataBits::Eight,
            })
            .parity(match s.parity {
                Parity::None => serialport::Parity::None,
                Parity::Even => serialport::Parity::Even,
                Parity::Odd => serialport::Parity::Odd,
            })
            .stop_bits(if s.stop_bits == 2 { serialport::StopBits::Two } else { serialport::StopBits::One })
            .flow_control(serialport::FlowControl::None)
            .timeout(s.timeout)
            .open()
            .map_err(|e| LinkError::Open { uri: format!("serial://{path}"), why: e.to_string() })?;
        Ok(SerialLink { port, name: path.to_string() })
    }

    /// A pty pair for a simulated serial device: the device end as a link, the path a driver
    /// opens, and the driver's end, which must be kept open while the device is in use.
    pub fn pty(name: &str) -> Result<(SerialLink, String, serialport::TTYPort), LinkError> {
        let (master, slave) = serialport::TTYPort::pair()
            .map_err(|e| LinkError::Open { uri: "pty".into(), why: format!("no pty: {e}") })?;
        let path = serialport::SerialPort::name(&slave)
            .ok_or_else(|| LinkError::Open { uri: "pty".into(), why: "a pty without a name".into() })?;
        Ok((SerialLink::from_port(Box::new(master), name), path, slave))
    }

    /// Wraps an already open port (a pty end in tests and simulators).
    pub fn from_port(port: Box<dyn serialport::SerialPort>, name: &str) -> SerialLink {
        SerialLink { port, name: name.to_string() }
    }
}

impl Link for SerialLink {
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        self.port.write_all(bytes).map_err(io)?;
        self.port.flush().map_err(io)
    }

    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError> {
        self.port.set_timeout(timeout.max(Duration::from_millis(1))).map_err(|e| LinkError::Io(e.to_string()))?;
        match self.port.read(buf) {
            Ok(n) => Ok(n),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => Ok(0),
            Err(e) => Err(io(e)),
        }
    }

    fn describe(&self) -> String {
        format!("serial://{}", self.name)
    }
}

/// Opens the link a URI names (a USB device by its bulk endpoints, as printers are).
pub fn open(uri: &DeviceUri, timeout: Duration) -> Result<Box<dyn Link>, LinkError> {
    open_for(uri, timeout, crate::usb::Want::Bulk)
}

/// Opens the link a URI names; `usb` says which USB interface to claim.
pub fn open_for(uri: &DeviceUri, timeout: Duration, usb: crate::usb::Want) -> Result<Box<dyn Link>, LinkError> {
    match uri {
        DeviceUri::Serial { path, settings } => Ok(Box::new(SerialLink::open(path, settings)?)),
        DeviceUri::Tcp { host, port } => Ok(Box::new(TcpLink::connect(host, *port, timeout)?)),
        DeviceUri::Adyen { .. } => Err(LinkError::Unsupported(
            "an Adyen terminal is spoken to over HTTPS (crate::adyen::host), not a raw link".into(),
        )),
        DeviceUri::Usb { vendor, product, serial } => {
            let link = crate::usb::UsbLink::open(*vendor, *product, serial.as_deref(), usb)
                .map_err(|e| LinkError::Open { uri: uri.to_string(), why: e.to_string() })?;
            Ok(Box::new(link))
        }
    }
}

/// Reads until `stop` returns true for the bytes so far, the peer goes quiet for
/// `gap` (inter-character timeout) after something came, or `total` passes. Returns
/// what came (possibly nothing).
pub fn read_until(
    link: &mut dyn Link,
    total: Duration,
    gap: Duration,
    max: usize,
    mut stop: impl FnMut(&[u8]) -> bool,
) -> Result<Vec<u8>, LinkError> {
    let deadline = std::time::Instant::now() + total;
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        let now = std::time::Instant::now();
        if now >= deadline || out.len() >= max {
            return Ok(out);
        }
        let wait = if out.is_empty() { deadline - now } else { gap.min(deadline - now) };
        let n = link.read(&mut buf, wait)?;
        if n == 0 {
            if !out.is_empty() {
                return Ok(out);
            }
            continue;
        }
        out.extend_from_slice(&buf[..n]);
        if stop(&out) {
            return Ok(out);
        }
    }
}

/// A simulated device: bytes in, bytes out.
pub trait Peer: Send {
    fn feed(&mut self, bytes: &[u8]) -> Vec<u8>;
}

/// Serves a simulated device on one link until `stop` is set or the host goes away.
pub fn serve_peer<P: Peer + ?Sized>(
    link: &mut dyn Link,
    peer: &std::sync::Mutex<P>,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<(), LinkError> {
    let mut buf = [0u8; 4096];
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let n = match link.read(&mut buf, Duration::from_millis(50)) {
            Ok(n) => n,
            Err(LinkError::Closed) => return Ok(()),
            Err(e) => return Err(e),
        };
        if n == 0 {
            continue;
        }
        let reply = peer.lock().unwrap_or_else(|p| p.into_inner()).feed(&buf[..n]);
        if !reply.is_empty() {
            link.write_all(&reply)?;
        }
    }
    Ok(())
}
