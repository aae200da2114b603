//! Simulated devices served by threads of this process, for `edged demo`: the printer on
//! loopback TCP, the scanner, scale and pole display on pty pairs (the device end is ours,
//! the driver opens the other end by its path, as it would a real serial device).

use crate::display::DisplaySim;
use crate::escpos::sim::PrinterSim;
use crate::toledo::ScaleSim;
use crate::transport::{SerialLink, TcpLink, serve_peer};
use crate::uri::DeviceUri;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

static STOP: AtomicBool = AtomicBool::new(false);

/// Starts a simulator for each kind (`printer`, `scanner`, `scale`, `display`); returns the
/// URI a driver opens for each. The scanner stays quiet (codes come from outside).
pub fn spawn(kinds: &[&'static str]) -> Result<Vec<(&'static str, DeviceUri)>, String> {
    let mut out = Vec::new();
    for &kind in kinds {
        let uri = if kind == "printer" {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("printer simulator: {e}"))?;
            let port = listener.local_addr().map_err(|e| e.to_string())?.port();
            std::thread::Builder::new()
                .name("sim-printer".into())
                .spawn(move || {
                    let sim = Mutex::new(PrinterSim::new());
                    for stream in listener.incoming().flatten() {
                        let mut link = TcpLink::from_stream(stream);
                        let _ = serve_peer(&mut link, &sim, &STOP);
                    }
                })
                .map_err(|e| e.to_string())?;
            format!("tcp://127.0.0.1:{port}")
        } else {
            let (master, slave) = serialport::TTYPort::pair().map_err(|e| format!("{kind} simulator: no pty: {e}"))?;
            let path = serialport::SerialPort::name(&slave).ok_or("a pty without a name")?;
            std::thread::Builder::new()
                .name(format!("sim-{kind}"))
                .spawn(move || {
                    let _keep_open = slave;
                    let mut link = SerialLink::from_port(Box::new(master), kind);
                    let res = match kind {
                        "scale" => serve_peer(&mut link, &Mutex::new(ScaleSim::with_load(0)), &STOP),
                        "display" => serve_peer(&mut link, &Mutex::new(DisplaySim::default()), &STOP),
                        _ => loop {
                            std::thread::sleep(std::time::Duration::from_secs(3600));
                        },
                    };
                    if let Err(e) = res {
                        tracing::warn!(simulator = kind, error = %e, "simulator stopped");
                    }
                })
                .map_err(|e| e.to_string())?;
            format!("serial://{path}")
        };
        out.push((kind, DeviceUri::parse(&uri).map_err(|e| e.to_string())?));
    }
    Ok(out)
}
