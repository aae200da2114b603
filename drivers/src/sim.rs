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
use std::time::Duration;

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
                        "scale" => serve_peer(&mut link, &Mutex::new(ScaleSim::with_load(DEMO_SCALE_LOAD_G)), &STOP),
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

/// Starts the simulated payment terminal on loopback TCP (plain ZVT APDUs), its journal kept
/// in `journal` so it outlives the daemon's restarts.
pub fn spawn_terminal(journal: std::path::PathBuf) -> Result<DeviceUri, String> {
    use crate::zvt::sim::{SimFraming, TerminalPeer, TerminalSim};
    let sim = TerminalSim::with_journal(journal)?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("terminal simulator: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    std::thread::Builder::new()
        .name("sim-terminal".into())
        .spawn(move || {
            let peer = Mutex::new(TerminalPeer::new(sim, SimFraming::Plain));
            for stream in listener.incoming().flatten() {
                let mut link = TcpLink::from_stream(stream);
                let _ = serve_peer(&mut link, &peer, &STOP);
            }
        })
        .map_err(|e| e.to_string())?;
    DeviceUri::parse(&format!("tcp://127.0.0.1:{port}")).map_err(|e| e.to_string())
}

/// What lies on the demo's embedded scale: weighed items can be sold at the demo register.
pub const DEMO_SCALE_LOAD_G: i64 = 350;

/// Runs the simulated payment terminal standalone (`edge-lab sim terminal`): plain APDUs over
/// `--tcp`, DLE STX framing over `--link`; the journal in `journal` (kept across runs).
/// Lines on stdin steer it: `next RULE` (the next payment's outcome), `default RULE`,
/// `offline on|off`, `processing MS` (card read to decision), `keyed AMOUNT` (a payment
/// keyed at the terminal itself, as a clerk might), `corrupt N` (serial: the next N frames
/// with a bad CRC), `journal`.
/// RULE: approve, decline[:CODE], abort, timeout, hang, crash-after-approving, refuse[:CODE].
pub fn run_terminal(at: Endpoint, journal: std::path::PathBuf, processing: Duration) -> Result<(), String> {
    use crate::zvt::sim::{Rule, SimFraming, TerminalPeer, TerminalSim};
    use std::io::BufRead;
    let mut sim = TerminalSim::with_journal(journal)?;
    sim.processing = processing;
    let framing = match at {
        Endpoint::Tcp(_) => SimFraming::Plain,
        Endpoint::Link(_) => SimFraming::Serial,
    };
    let peer: &'static Mutex<TerminalPeer> = Box::leak(Box::new(Mutex::new(TerminalPeer::new(sim, framing))));
    serve_at(at, move |link| serve_peer(link, peer, &STOP))?;
    use std::io::Write;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let mut w = line.split_whitespace();
        let (cmd, arg) = (w.next().unwrap_or(""), w.next());
        let mut p = peer.lock().unwrap_or_else(|e| e.into_inner());
        let said = match (cmd, arg) {
            ("next", Some(r)) => Rule::parse(r).map(|r| p.sim.rules.push_back(r)),
            ("default", Some(r)) => Rule::parse(r).map(|r| p.sim.default_rule = r),
            ("offline", a) => {
                p.sim.offline = a == Some("on");
                Ok(())
            }
            ("corrupt", Some(n)) => n.parse().map(|n| p.corrupt_next = n).map_err(|_| format!("{n:?} is not a count")),
            ("keyed", Some(a)) => a
                .parse()
                .ok()
                .filter(|a| *a > 0)
                .map(|a| {
                    p.sim.keyed_payment(a);
                })
                .ok_or_else(|| format!("{a:?} is not an amount in minor units")),
            ("processing", Some(ms)) => ms
                .parse()
                .map(|ms| p.sim.processing = Duration::from_millis(ms))
                .map_err(|_| format!("{ms:?} is not milliseconds")),
            ("journal", _) => {
                for e in p.sim.journal() {
                    println!("{e:?}");
                }
                println!("net charged {}", p.sim.net_charged());
                Ok(())
            }
            ("", _) => Ok(()),
            _ => {
                Err("next RULE | default RULE | offline on|off | processing MS | keyed AMOUNT | corrupt N | journal"
                    .into())
            }
        };
        match said {
            Ok(()) => println!("ok"),
            Err(e) => println!("? {e}"),
        }
        let _ = std::io::stdout().flush();
    }
    serve_until_terminated()
}

/// The Adyen terminal simulator, standalone: HTTPS on `addr` with the demo key, its CA
/// and journal beside `journal`; steered by lines on stdin like the ZVT one.
pub fn run_adyen(addr: &str, poi_id: &str, journal: std::path::PathBuf, processing: Duration) -> Result<(), String> {
    use crate::adyen::sim::{DEMO_KEY_ID, DEMO_KEY_VERSION, DEMO_PASSPHRASE, Rule};
    use std::io::{BufRead, Write};
    let key = crate::adyen::crypto::Key::derive(DEMO_KEY_ID, DEMO_KEY_VERSION, DEMO_PASSPHRASE.as_bytes())
        .map_err(|e| e.to_string())?;
    let dir = journal.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new(".")).to_path_buf();
    let run = crate::adyen::sim::start(addr, poi_id, key, &dir, journal)?;
    run.sim.lock().unwrap_or_else(|e| e.into_inner()).processing = processing;
    tracing::info!(addr = %run.addr, poi_id, ca = %run.ca_path.display(), "simulated Adyen terminal listening");
    println!("READY adyen://{}", run.addr);
    let _ = std::io::stdout().flush();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let mut w = line.split_whitespace();
        let (cmd, arg) = (w.next().unwrap_or(""), w.next());
        let mut p = run.sim.lock().unwrap_or_else(|e| e.into_inner());
        let said = match (cmd, arg) {
            ("next", Some(r)) => Rule::parse(r).map(|r| p.rules.push_back(r)),
            ("default", Some(r)) => Rule::parse(r).map(|r| p.default_rule = r),
            ("offline", a) => {
                p.offline = a == Some("on");
                Ok(())
            }
            ("processing", Some(ms)) => ms
                .parse()
                .map(|ms| p.processing = Duration::from_millis(ms))
                .map_err(|_| format!("{ms:?} is not milliseconds")),
            ("journal", _) => {
                for e in p.journal() {
                    println!("{e:?}");
                }
                println!("net charged {}", p.net_charged());
                Ok(())
            }
            ("", _) => Ok(()),
            _ => Err("next RULE | default RULE | offline on|off | processing MS | journal".into()),
        };
        match said {
            Ok(()) => println!("ok"),
            Err(e) => println!("? {e}"),
        }
        let _ = std::io::stdout().flush();
    }
    serve_until_terminated()
}

/// A simulator whose stdin closed (started in a script with `&`, or by a service manager)
/// keeps serving its device until SIGTERM ends the process.
fn serve_until_terminated() -> ! {
    loop {
        std::thread::park();
    }
}

/// Serves a standalone simulator at its endpoint from a background thread: TCP connections
/// one after another, or the device end of a pty symlinked at the path. Prints `READY …`.
fn serve_at<F>(at: Endpoint, serve: F) -> Result<(), String>
where
    F: Fn(&mut dyn crate::transport::Link) -> Result<(), crate::transport::LinkError> + Send + 'static,
{
    match at {
        Endpoint::Tcp(addr) => {
            let listener = std::net::TcpListener::bind(&addr).map_err(|e| format!("--tcp {addr}: {e}"))?;
            let local = listener.local_addr().map_err(|e| e.to_string())?;
            println!("READY tcp://{local}");
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let _ = serve(&mut TcpLink::from_stream(stream));
                }
            });
        }
        Endpoint::Link(path) => {
            let (mut link, dev, slave) = SerialLink::pty("sim").map_err(|e| e.to_string())?;
            if path.symlink_metadata().is_ok() {
                std::fs::remove_file(&path).map_err(|e| format!("--link {}: {e}", path.display()))?;
            }
            std::os::unix::fs::symlink(&dev, &path).map_err(|e| format!("--link {}: {e}", path.display()))?;
            println!("READY serial://{} ({dev})", path.display());
            std::thread::spawn(move || {
                let _keep_open = slave;
                let _ = serve(&mut link);
            });
        }
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    Ok(())
}

/// Where a standalone simulator listens.
pub enum Endpoint {
    /// Loopback or LAN TCP (`--tcp ADDR`): connections are served one after another.
    Tcp(String),
    /// A pty whose device end is symlinked at this path (`--link PATH`).
    Link(std::path::PathBuf),
}

/// The shared state of a standalone simulator, driven by lines on stdin.
enum State {
    Printer(Mutex<PrinterSim>),
    Scale(Mutex<ScaleSim>),
    Display(Mutex<DisplaySim>),
    /// Bytes waiting to go out; whether they are framed as HID POS reports.
    Scanner(Mutex<Vec<u8>>, bool),
}

/// Runs one simulated device until stdin closes (`edge-lab sim KIND`). Lines on stdin
/// steer it — printer: `paper-end on|off`, `near-end on|off`, `cover on|off`, `hang on|off`
/// (takes bytes, never answers),
/// `offline on|off`, `cutter on|off`, `drawer close`, `jobs`; scale: `weight GRAMS`,
/// `motion on|off`; scanner: any other line is scanned (with its AIM id if given, e.g.
/// `]E04006381333931`), framed with CR or, for `scanner-hid`, as HID POS scanned-data
/// reports; display: `show`. Printed jobs and display changes go to stdout.
pub fn run_standalone(kind: &str, at: Endpoint) -> Result<(), String> {
    use std::io::BufRead;
    let state: &'static State = Box::leak(Box::new(match kind {
        "printer" => State::Printer(Mutex::new(PrinterSim::new())),
        "scale" => State::Scale(Mutex::new(ScaleSim::with_load(0))),
        "display" => State::Display(Mutex::new(DisplaySim::default())),
        "scanner" => State::Scanner(Mutex::new(Vec::new()), false),
        "scanner-hid" => State::Scanner(Mutex::new(Vec::new()), true),
        other => return Err(format!("no simulator for {other:?}; printer, scanner, scanner-hid, scale or display")),
    }));
    let serve_link = move |link: &mut dyn crate::transport::Link| -> Result<(), crate::transport::LinkError> {
        match state {
            State::Printer(p) => serve_peer(link, p, &STOP),
            State::Scale(s) => serve_peer(link, s, &STOP),
            State::Display(d) => serve_peer(link, d, &STOP),
            State::Scanner(q, _) => loop {
                let pending: Vec<u8> = std::mem::take(&mut *q.lock().unwrap_or_else(|p| p.into_inner()));
                if !pending.is_empty() {
                    link.write_all(&pending)?;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            },
        }
    };
    serve_at(at, serve_link)?;
    let on = |v: Option<&str>| v == Some("on");
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let mut w = line.split_whitespace();
        let (cmd, arg) = (w.next().unwrap_or(""), w.next());
        match state {
            State::Printer(p) => {
                let mut p = p.lock().unwrap_or_else(|e| e.into_inner());
                match cmd {
                    "paper-end" => p.condition.paper_end = on(arg),
                    "near-end" => p.condition.paper_near_end = on(arg),
                    "cover" => p.condition.cover_open = on(arg),
                    "offline" => p.condition.offline = on(arg),
                    "cutter" => p.condition.cutter_error = on(arg),
                    "hang" => p.condition.hang = on(arg),
                    "drawer" => p.condition.drawer_open = arg != Some("close"),
                    "jobs" => {
                        for (i, j) in p.jobs().iter().enumerate() {
                            println!("--- job {} ---\n{}", i + 1, j.text);
                        }
                        println!("--- end of jobs ({}) ---", p.jobs().len());
                    }
                    "" => {}
                    other => {
                        println!("? {other}: paper-end|near-end|cover|offline|cutter|hang on|off, drawer close, jobs")
                    }
                }
            }
            State::Scale(s) => {
                let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
                match (cmd, arg.and_then(|a| a.parse::<i64>().ok())) {
                    ("weight", Some(g)) => s.load_g = g,
                    ("motion", _) => s.motion = on(arg),
                    _ => println!("? weight GRAMS | motion on|off"),
                }
            }
            State::Display(d) => {
                let [a, b] = d.lock().unwrap_or_else(|e| e.into_inner()).lines();
                println!("[{a}]\n[{b}]");
            }
            State::Scanner(q, hid) => {
                let line = line.trim_end();
                if !line.is_empty() {
                    let mut q = q.lock().unwrap_or_else(|e| e.into_inner());
                    if *hid {
                        let (aim, code) = match line.as_bytes() {
                            [b']', a, b, rest @ ..] => ([b']', *a, *b], rest),
                            all => ([0; 3], all),
                        };
                        for r in crate::scanner::encode_hid_reports(&aim, code) {
                            q.extend_from_slice(&r);
                        }
                    } else {
                        q.extend_from_slice(line.as_bytes());
                        q.push(b'\r');
                    }
                }
            }
        }
    }
    serve_until_terminated()
}
