//! edgectl: the field tech's CLI. Tables for people, `--json` for scripts.
//! Exit codes: 0 done, 1 the daemon could not be asked or said no, 2 bad usage or config.

use clap::{Parser, Subcommand};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use edge::client::{Client, ClientError};
use edge::tokens::Role;
use edge_api::{Health, OutboxEntryOut, OutboxPage, RetryOut, SaleOut, SalesPage, SyncStatus};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "edgectl", version, about = "Field tech's CLI for the store edge daemon")]
struct Cli {
    /// The daemon's data directory (reads api.json and tokens.json). Default: /var/lib/edged.
    #[arg(long, global = true, env = "EDGECTL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// API URL, e.g. http://127.0.0.1:7420 (with --token).
    #[arg(long, global = true, env = "EDGECTL_API")]
    api: Option<String>,
    /// Bearer token (with --api).
    #[arg(long, global = true, env = "EDGECTL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Daemon health and the delivery state per remote.
    Status,
    /// Recent daemon logs from DATA/logs (the journal has them too under systemd).
    Logs {
        /// How many lines (after filtering).
        #[arg(long, default_value_t = 100)]
        lines: usize,
        /// Only lines containing this text.
        #[arg(long)]
        grep: Option<String>,
        /// Only this level and worse: error, warn, info, debug.
        #[arg(long)]
        level: Option<String>,
    },
    /// A support bundle (.tar.gz): versions, redacted config, health, devices, sync state,
    /// store statistics, metrics, recent logs. Bounded in size; never a token, secret or
    /// card data.
    Bundle {
        /// Where to write it (default: ./edge-bundle-STORE-TIME.tar.gz).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The daemon's config, redacted into the bundle.
        #[arg(long, default_value = "/etc/edged/edged.toml")]
        config: PathBuf,
    },
    /// Shell completions for bash, zsh or fish, on stdout.
    Completions { shell: clap_complete::Shell },
    /// The man page (roff), on stdout.
    Man,
    /// Checks the box without needing the daemon: config, data dir, store and its format,
    /// free disk, permissions of tokens and secrets, devices present, clock synchronised,
    /// TLS trust store, and whether edged answers. Exit 1 if any check fails.
    Doctor {
        /// The daemon's config.
        #[arg(long, default_value = "/etc/edged/edged.toml")]
        config: PathBuf,
    },
    /// The outbox: records waiting for (or delivered to) each remote.
    Queue {
        #[command(subcommand)]
        cmd: QueueCmd,
    },
    /// The store's devices: `ls` (the default), `health`, `test`, `stats`, `scan`.
    Devices {
        #[command(subcommand)]
        cmd: Option<DevicesCmd>,
    },
    /// The payment terminal: `status`, `diagnosis`, `eod` (end-of-day; forwards offline
    /// payments), `offline on|off` (manager: take cards under the offline policy).
    Terminal {
        #[command(subcommand)]
        cmd: TerminalCmd,
    },
    /// Card payments: state, offline ones waiting to be forwarded and their age;
    /// `payments settle ID --not-charged | --charged RECEIPT` (manager) settles a payment
    /// in doubt after reading the terminal's own journal.
    Payments {
        #[command(subcommand)]
        cmd: Option<PaymentsCmd>,
        /// Only those not settled, and offline ones not forwarded.
        #[arg(long)]
        open: bool,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// X report (running totals since the last Z) or Z report (closes them; manager).
    Report {
        #[command(subcommand)]
        cmd: ReportCmd,
    },
    /// Delivery to each remote: health, rate limits, errors; `sync run` to deliver now.
    Sync {
        #[command(subcommand)]
        cmd: Option<SyncCmd>,
    },
    /// The store's lanes (`[bus]`): every lane seen, its heartbeat, its lag, what it has
    /// not published yet, the bus's health, and the flags across lanes (over-refunds,
    /// offline refunds, oversells). Exit 1 when the bus is down or a lane id is claimed twice.
    Lanes,
    /// Sales.
    Sales {
        #[command(subcommand)]
        cmd: SalesCmd,
    },
    /// Configuration files.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
}

#[derive(Subcommand)]
enum QueueCmd {
    /// List outbox entries.
    Ls {
        /// cloud, lightspeed or netsuite.
        #[arg(long)]
        remote: Option<String>,
        /// pending, in_flight, confirmed, unknown, rejected or dead.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One outbox entry.
    Show { id: String },
    /// Dead letters: records a remote refused or the worker gave up on.
    Dead {
        #[command(subcommand)]
        cmd: DeadCmd,
    },
}

#[derive(Subcommand)]
enum DeadCmd {
    /// List dead letters with the remote's reason.
    Ls {
        #[arg(long)]
        remote: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One dead letter.
    Show { id: String },
    /// Hand one dead letter back to its worker (same id: the remote keeps it once).
    Retry { id: String },
    /// Hand every dead letter (of one remote) back.
    RetryAll {
        #[arg(long)]
        remote: Option<String>,
    },
}

#[derive(Subcommand)]
enum TerminalCmd {
    Status,
    Diagnosis,
    Eod,
    /// on / off.
    Offline {
        state: String,
    },
}

#[derive(Subcommand)]
enum PaymentsCmd {
    /// Settles a payment in doubt by hand (manager): what the terminal's journal shows.
    Settle {
        id: String,
        /// The terminal charged it: its receipt number there.
        #[arg(long, conflicts_with = "not_charged", required_unless_present = "not_charged")]
        charged: Option<u32>,
        /// The terminal did not charge it.
        #[arg(long)]
        not_charged: bool,
    },
}

#[derive(Subcommand)]
enum ReportCmd {
    X,
    Z,
}

#[derive(Subcommand)]
enum DevicesCmd {
    /// Every device the daemon drives: state, health, URI, communication errors.
    Ls,
    /// UPOS checkHealth on one device (asks the daemon, which holds the device).
    Health {
        id: String,
        /// internal (changes nothing), external (test page / test pattern / echo test) or
        /// interactive (with you at the device: a scanner waits for a scan).
        #[arg(long, default_value = "internal")]
        level: String,
    },
    /// The external check: the printer prints a test page, the display shows a test
    /// pattern, the scale runs its echo test; a scanner waits for you to scan a code.
    Test { id: String },
    /// UPOS statistics of one device (hours powered, communication errors, model …).
    Stats { id: String },
    /// Probe what is attached to this machine: serial ports (/dev/serial/by-id, ttyUSB*,
    /// ttyACM*), the USB bus and the network addresses given. Runs here, without the
    /// daemon; ports the daemon holds are listed as busy. Unsupported devices are listed too.
    Scan {
        /// Also probe this serial path (repeatable), e.g. a pty a simulator made.
        #[arg(long = "path")]
        paths: Vec<String>,
        /// Also probe this network address, host:port (repeatable), e.g. 10.0.0.20:9100.
        #[arg(long = "tcp")]
        tcp: Vec<String>,
        /// Skip the serial ports under /dev.
        #[arg(long)]
        no_serial: bool,
        /// Skip the USB bus.
        #[arg(long)]
        no_usb: bool,
    },
}

#[derive(Subcommand)]
enum SyncCmd {
    /// Per remote: state, breaker, rate limit, last success, errors, counts (the default).
    Status,
    /// Deliver now: forget backoff, probe open circuit breakers.
    Run,
    /// A business day reconciled with Lightspeed and NetSuite: counts, totals, and the lost,
    /// duplicated and unexpected records. Exit 1 when anything is off.
    Report {
        /// Business date, YYYY-MM-DD (default: today in the store's time zone).
        #[arg(long)]
        date: Option<String>,
    },
}

#[derive(Subcommand)]
enum SalesCmd {
    /// One sale with its lines, tenders and outbox entries.
    Show { id: String },
    /// The oldest sales first.
    Ls {
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        after: Option<String>,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Check a configuration file (as `edged check-config`).
    Check { file: PathBuf },
}

fn main() -> ExitCode {
    edge_sync::tls::install_provider();
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            if cli.json {
                println!("{}", serde_json::json!({"error": e.to_string()}));
            } else {
                eprintln!("edgectl: {e}");
            }
            ExitCode::from(1)
        }
    }
}

fn client(cli: &Cli) -> Result<Client, ClientError> {
    match (&cli.api, &cli.token, &cli.data_dir) {
        (Some(api), Some(token), _) => Client::new(api, token),
        (Some(_), None, _) => Err(ClientError::Other("--api needs --token (or EDGECTL_TOKEN)".into())),
        (None, _, Some(dir)) => Client::from_data_dir(dir, Role::Tech),
        (None, _, None) => Client::from_data_dir(std::path::Path::new("/var/lib/edged"), Role::Tech),
    }
}

/// A client with the manager's token: from the data dir's tokens file, or the given
/// `--api`/`--token` (which must then be a manager's).
fn manager_client(cli: &Cli) -> Result<Client, ClientError> {
    match (&cli.api, &cli.data_dir) {
        (None, dir) => {
            Client::from_data_dir(dir.as_deref().unwrap_or(std::path::Path::new("/var/lib/edged")), Role::Manager)
        }
        (Some(_), _) => client(cli),
    }
}

fn devices(cli: &Cli, cmd: &DevicesCmd) -> Result<ExitCode, ClientError> {
    match cmd {
        DevicesCmd::Ls => {
            let list: edge_api::DevicesList = client(cli)?.get("/v1/devices")?;
            if cli.json {
                print_json(&list);
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = table(&["device", "kind", "state", "health", "uri", "comm. errors"]);
            for d in &list.devices {
                t.add_row(vec![
                    d.id.clone(),
                    d.kind.clone(),
                    d.state.clone(),
                    d.health.clone(),
                    d.uri.clone(),
                    d.stats.get("CommunicationErrorCount").cloned().unwrap_or_else(|| "-".into()),
                ]);
            }
            println!("{t}");
            Ok(ExitCode::SUCCESS)
        }
        DevicesCmd::Health { id, level } => device_health(cli, id, level),
        DevicesCmd::Test { id } => device_health(cli, id, "external"),
        DevicesCmd::Stats { id } => {
            let d: edge_api::DeviceOut = client(cli)?.get(&format!("/v1/devices/{}", path_segment(id)))?;
            if cli.json {
                print_json(&d);
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = table(&["statistic", "value"]);
            for (k, v) in [("state", &d.state), ("health", &d.health), ("uri", &d.uri)] {
                t.add_row(vec![k.to_string(), v.clone()]);
            }
            t.add_row(vec!["last seen".to_string(), d.last_seen_at.clone().unwrap_or_else(|| "never".into())]);
            for (k, v) in &d.stats {
                t.add_row(vec![k.clone(), v.clone()]);
            }
            println!("{t}");
            Ok(ExitCode::SUCCESS)
        }
        DevicesCmd::Scan { paths, tcp, no_serial, no_usb } => {
            let r = edge_drivers::discover::scan(&edge_drivers::discover::Targets {
                paths: paths.clone(),
                tcp: tcp.clone(),
                system_serial: !no_serial,
                usb: !no_usb,
            });
            if cli.json {
                let found: Vec<serde_json::Value> = r
                    .found
                    .iter()
                    .map(|f| {
                        serde_json::json!({"uri": f.uri, "kind": f.kind, "supported": f.supported, "detail": f.detail})
                    })
                    .collect();
                print_json(&serde_json::json!({"found": found, "notes": r.notes}));
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = table(&["uri", "kind", "supported", "what the probe saw"]);
            for f in &r.found {
                t.add_row(vec![
                    f.uri.clone(),
                    f.kind.clone().unwrap_or_else(|| "?".into()),
                    if f.supported { "yes" } else { "no" }.into(),
                    f.detail.clone(),
                ]);
            }
            if r.found.is_empty() {
                println!("nothing found");
            } else {
                println!("{t}");
            }
            for n in &r.notes {
                println!("note: {n}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn device_health(cli: &Cli, id: &str, level: &str) -> Result<ExitCode, ClientError> {
    if level == "interactive" && !cli.json {
        eprintln!("waiting for the device (a scanner: scan any code now) …");
    }
    let path = format!("/v1/devices/{}/health", path_segment(id));
    let out: edge_api::HealthCheckOut =
        client(cli)?.post(&path, &edge_api::HealthCheckIn { level: level.to_string() }, None)?;
    if cli.json {
        print_json(&out);
    } else {
        println!("{} ({} check): {}", out.device, out.level, if out.ok { "passed" } else { "FAILED" });
        println!("  {}", out.result);
    }
    Ok(if out.ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// A device id as one URL path segment.
fn path_segment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn data_dir(cli: &Cli) -> PathBuf {
    cli.data_dir.clone().unwrap_or_else(|| PathBuf::from("/var/lib/edged"))
}

/// The last lines of DATA/logs/edged.log (and .1 before it), filtered.
fn read_logs(
    dir: &std::path::Path,
    lines: usize,
    grep: Option<&str>,
    level: Option<&str>,
) -> Result<Vec<String>, ClientError> {
    let order = ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"];
    let max = match level {
        None => order.len(),
        Some(l) => {
            let up = l.to_ascii_uppercase();
            1 + order
                .iter()
                .position(|x| *x == up)
                .ok_or_else(|| ClientError::Other(format!("level {l:?}: error, warn, info, debug")))?
        }
    };
    let allowed = &order[..max];
    let mut all = Vec::new();
    for name in ["edged.log.1", "edged.log"] {
        if let Ok(text) = std::fs::read_to_string(dir.join("logs").join(name)) {
            all.extend(text.lines().map(str::to_string));
        }
    }
    if all.is_empty() {
        return Err(ClientError::Other(format!(
            "no logs in {}/logs (under systemd: journalctl -u edged)",
            dir.display()
        )));
    }
    let keep: Vec<String> = all
        .into_iter()
        .filter(|l| grep.is_none_or(|g| l.contains(g)))
        .filter(|l| {
            allowed.iter().any(|lv| l.contains(&format!(" {lv} ")) || l.contains(&format!("\"level\":\"{lv}\"")))
        })
        .collect();
    let skip = keep.len().saturating_sub(lines);
    Ok(keep.into_iter().skip(skip).collect())
}

fn logs(cli: &Cli, lines: usize, grep: Option<&str>, level: Option<&str>) -> Result<ExitCode, ClientError> {
    let got = read_logs(&data_dir(cli), lines, grep, level)?;
    if cli.json {
        print_json(&got);
    } else {
        for l in got {
            println!("{l}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Most bytes of any one file in a support bundle.
const BUNDLE_PART_MAX: usize = 2 << 20;

/// A config with every secret-looking value and URL credential blanked.
fn redact_config(text: &str) -> String {
    text.lines()
        .map(|l| {
            let t = l.trim_start();
            let key = t.split('=').next().unwrap_or("").trim().to_ascii_lowercase();
            if !t.starts_with('#')
                && t.contains('=')
                && ["secret", "token", "password", "key"].iter().any(|w| key.contains(w))
            {
                format!("{} = \"(redacted)\"", t.split('=').next().unwrap_or("").trim())
            } else if let (Some(a), Some(b)) = (l.find("://"), l.find('@')) {
                if b > a { format!("{}://(redacted)@{}", &l[..a], &l[b + 1..]) } else { l.to_string() }
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn bundle(cli: &Cli, out: Option<PathBuf>, config: &std::path::Path) -> Result<ExitCode, ClientError> {
    let tmp = tempfile::tempdir().map_err(|e| ClientError::Other(e.to_string()))?;
    let dir = tmp.path().join("edge-bundle");
    std::fs::create_dir_all(&dir).map_err(|e| ClientError::Other(e.to_string()))?;
    let put = |name: &str, bytes: &[u8]| -> Result<(), ClientError> {
        let cut = &bytes[..bytes.len().min(BUNDLE_PART_MAX)];
        std::fs::write(dir.join(name), cut).map_err(|e| ClientError::Other(format!("{name}: {e}")))
    };
    let steps = ["version", "config", "health", "devices", "sync", "metrics", "logs"];
    let mut notes = Vec::new();
    let c = client(cli);
    for (i, step) in steps.iter().enumerate() {
        eprint!("\r[{}/{}] {step:<10}", i + 1, steps.len());
        let json = |path: &str| -> Result<Vec<u8>, ClientError> {
            let v: serde_json::Value = c.as_ref().map_err(|e| ClientError::Other(e.to_string()))?.get(path)?;
            serde_json::to_vec_pretty(&v).map_err(|e| ClientError::Other(e.to_string()))
        };
        let r = match *step {
            "version" => put("version.txt", format!("edgectl {}\n", env!("CARGO_PKG_VERSION")).as_bytes()),
            "config" => match std::fs::read_to_string(config)
                .or_else(|_| std::fs::read_to_string(data_dir(cli).join("config.toml")))
            {
                Ok(t) => put("config.redacted.toml", redact_config(&t).as_bytes()),
                Err(e) => Err(ClientError::Other(format!("config: {e}"))),
            },
            "health" => json("/v1/health").and_then(|b| put("health.json", &b)),
            "devices" => json("/v1/devices").and_then(|b| put("devices.json", &b)),
            "sync" => json("/v1/sync").and_then(|b| put("sync.json", &b)),
            "metrics" => c
                .as_ref()
                .map_err(|e| ClientError::Other(e.to_string()))
                .and_then(|c| c.metrics_text())
                .and_then(|t| put("metrics.txt", t.as_bytes())),
            _ => read_logs(&data_dir(cli), 5000, None, None).and_then(|l| put("edged.log", l.join("\n").as_bytes())),
        };
        if let Err(e) = r {
            notes.push(format!("{step}: {e}"));
        }
    }
    eprintln!();
    put(
        "NOTES.txt",
        if notes.is_empty() { "everything collected\n".to_string() } else { notes.join("\n") + "\n" }.as_bytes(),
    )?;
    let out =
        out.unwrap_or_else(|| PathBuf::from(format!("edge-bundle-{}.tar.gz", jiff::Timestamp::now().as_second())));
    let st = std::process::Command::new("tar")
        .arg("czf")
        .arg(&out)
        .arg("-C")
        .arg(tmp.path())
        .arg("edge-bundle")
        .status()
        .map_err(|e| ClientError::Other(format!("tar: {e}")))?;
    if !st.success() {
        return Err(ClientError::Other(format!("tar could not write {}", out.display())));
    }
    let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    if cli.json {
        print_json(&serde_json::json!({"bundle": out, "bytes": size, "notes": notes}));
    } else {
        println!(
            "support bundle: {} ({} KiB){}",
            out.display(),
            size / 1024,
            if notes.is_empty() { String::new() } else { format!("; missing: {}", notes.join("; ")) }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_json<T: Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(header.to_vec());
    t
}

fn money(minor: i64, currency: &str) -> String {
    match edge_sync::Currency::parse(currency) {
        Ok(c) => edge_sync::Money::new(minor, c).to_string(),
        Err(_) => format!("{minor} (minor units of {currency:?})"),
    }
}

fn run(cli: &Cli) -> Result<ExitCode, ClientError> {
    match &cli.cmd {
        Cmd::Config { cmd: ConfigCmd::Check { file } } => {
            let res = edge::config::load(file);
            if cli.json {
                let problems: Vec<_> = match &res {
                    Ok(_) => vec![],
                    Err(ps) => ps.iter().map(|p| serde_json::json!({"key": p.key, "message": p.message})).collect(),
                };
                print_json(&serde_json::json!({"file": file, "ok": res.is_ok(), "problems": problems}));
            } else {
                match &res {
                    Ok(_) => println!("{}: ok", file.display()),
                    Err(ps) => ps.iter().for_each(|p| println!("{p}")),
                }
            }
            Ok(if res.is_ok() { ExitCode::SUCCESS } else { ExitCode::from(2) })
        }
        Cmd::Status => {
            let c = client(cli)?;
            let health: Health = c.get("/v1/health")?;
            let sync: SyncStatus = c.get("/v1/sync")?;
            if cli.json {
                print_json(&serde_json::json!({"api": c.base, "health": health, "sync": sync}));
                return Ok(ExitCode::SUCCESS);
            }
            println!("edged {} at {} — {}", health.version, c.base, health.status.to_uppercase());
            println!(
                "store {} · business date {} · up {} s · accepting sales: {}",
                health.store_id,
                health.business_date,
                health.uptime_s,
                if health.accepting_sales { "yes" } else { "no" }
            );
            println!(
                "store: format {} · {} items · {} sales · {:.1} MiB on disk · {} syncs for {} commits",
                health.store.format_version,
                health.store.items,
                health.store.sales,
                health.store.size_on_disk_bytes as f64 / 1048576.0,
                health.store.syncs,
                health.store.commits_synced
            );
            for r in &health.reasons {
                println!("! {r}");
            }
            let mut t = table(&[
                "remote",
                "mode",
                "state",
                "pending",
                "in flight",
                "unknown",
                "confirmed",
                "dead",
                "oldest",
                "lag",
            ]);
            for r in &sync.remotes {
                t.add_row(vec![
                    r.name.clone(),
                    r.mode.clone(),
                    r.state.clone(),
                    r.pending.to_string(),
                    r.in_flight.to_string(),
                    r.unknown.to_string(),
                    r.confirmed.to_string(),
                    r.dead.to_string(),
                    r.oldest_pending_age_s.map(|s| format!("{s} s")).unwrap_or_else(|| "-".into()),
                    r.lag.clone(),
                ]);
            }
            println!("{t}");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Queue { cmd: QueueCmd::Ls { remote, state, limit } } => {
            let c = client(cli)?;
            let mut path = format!("/v1/outbox?limit={}", (*limit).clamp(1, 500));
            if let Some(r) = remote {
                path.push_str(&format!("&remote={r}"));
            }
            if let Some(s) = state {
                path.push_str(&format!("&state={s}"));
            }
            let page: OutboxPage = c.get(&path)?;
            if cli.json {
                print_json(&page);
                return Ok(ExitCode::SUCCESS);
            }
            print_entries(&page.entries);
            if page.next_cursor.is_some() {
                println!("(more entries; raise --limit or filter by --remote / --state)");
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Queue { cmd: QueueCmd::Dead { cmd } } => dead(cli, cmd),
        Cmd::Devices { cmd } => devices(cli, cmd.as_ref().unwrap_or(&DevicesCmd::Ls)),
        Cmd::Logs { lines, grep, level } => logs(cli, *lines, grep.as_deref(), level.as_deref()),
        Cmd::Bundle { out, config } => bundle(cli, out.clone(), config),
        Cmd::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(*shell, &mut cmd, "edgectl", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Man => Ok(edge::print_man(<Cli as clap::CommandFactory>::command())),
        Cmd::Doctor { config } => {
            let mut checks = edge::doctor::run(config);
            // The daemon, if the config let us find it.
            let daemon = match client(cli).and_then(|c| c.get::<Health>("/v1/health")) {
                Ok(h) => edge::doctor::Check {
                    name: "daemon".into(),
                    level: if h.status == "ok" { "ok" } else { "warn" }.into(),
                    detail: format!("answers: {} {}", h.status, h.reasons.join("; ")),
                },
                Err(e) => edge::doctor::Check {
                    name: "daemon".into(),
                    level: "warn".into(),
                    detail: format!("not answering: {e}"),
                },
            };
            checks.push(daemon);
            let failed = checks.iter().any(|c| c.level == "fail");
            if cli.json {
                print_json(&checks);
            } else {
                let mut t = table(&["check", "result", "detail"]);
                for c in &checks {
                    t.add_row(vec![c.name.clone(), c.level.to_uppercase(), c.detail.clone()]);
                }
                println!("{t}");
            }
            Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        Cmd::Terminal { cmd } => {
            let c = client(cli)?;
            let out: edge_api::TerminalOut = match cmd {
                TerminalCmd::Status => c.post("/v1/terminal/status", &serde_json::json!({}), None)?,
                TerminalCmd::Diagnosis => c.post("/v1/terminal/diagnosis", &serde_json::json!({}), None)?,
                TerminalCmd::Eod => c.post("/v1/terminal/eod", &serde_json::json!({}), None)?,
                TerminalCmd::Offline { state } => {
                    let force = match state.as_str() {
                        "on" => true,
                        "off" => false,
                        other => return Err(ClientError::Other(format!("offline {other:?}: on or off"))),
                    };
                    // Forcing offline is a manager's decision: the manager token is used.
                    let m = match (&cli.api, &cli.data_dir) {
                        (None, dir) => Client::from_data_dir(
                            dir.as_deref().unwrap_or(std::path::Path::new("/var/lib/edged")),
                            Role::Manager,
                        )?,
                        (Some(_), _) => c,
                    };
                    m.post("/v1/terminal/offline", &edge_api::ForceOfflineIn { force }, None)?
                }
            };
            if cli.json {
                print_json(&out);
            } else {
                println!(
                    "{}: {}{}",
                    if out.ok { "ok" } else { "FAILED" },
                    out.text,
                    out.status.as_ref().map(|s| format!(" ({s})")).unwrap_or_default()
                );
                for l in &out.receipt {
                    println!("  {l}");
                }
                if out.forwarded > 0 {
                    println!("{} offline payments forwarded", out.forwarded);
                }
            }
            Ok(if out.ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Cmd::Payments { cmd: Some(PaymentsCmd::Settle { id, charged, not_charged }), .. } => {
            let m = manager_client(cli)?;
            let body = edge_api::PaymentSettleIn { charged: !*not_charged && charged.is_some(), receipt_no: *charged };
            let p: edge_api::PaymentOut = m.post(&format!("/v1/payments/{id}/settle"), &body, None)?;
            if cli.json {
                print_json(&p);
            } else {
                println!("payment {}: {}{}", p.id, p.state, p.reason.map(|r| format!(" ({r})")).unwrap_or_default());
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Payments { open, limit, .. } => {
            let list: edge_api::PaymentsList =
                client(cli)?.get(&format!("/v1/payments?limit={limit}{}", if *open { "&open=true" } else { "" }))?;
            if cli.json {
                print_json(&list);
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = table(&["payment", "state", "amount", "card", "receipt", "offline", "age", "reason"]);
            for p in &list.payments {
                t.add_row(vec![
                    p.id.to_string(),
                    p.state.clone(),
                    format!("{} {}", p.amount_minor, p.currency),
                    p.pan_masked.clone().unwrap_or_default(),
                    p.receipt_no.map(|r| r.to_string()).unwrap_or_default(),
                    if p.offline { if p.forwarded { "forwarded" } else { "WAITING" } } else { "" }.to_string(),
                    format!("{} s", p.age_s),
                    p.reason.clone().unwrap_or_default(),
                ]);
            }
            println!("{t}");
            println!(
                "offline card payments waiting to be forwarded: {} ({} minor units){}{}{}",
                list.offline_pending,
                list.offline_pending_minor,
                list.offline_oldest_age_s.map(|a| format!(", oldest {} min", a / 60)).unwrap_or_default(),
                if list.terminal_offline { "; the terminal cannot reach its host" } else { "" },
                if list.forced_offline { "; forced offline by a manager" } else { "" }
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Report { cmd } => {
            let r: serde_json::Value = match cmd {
                ReportCmd::X => client(cli)?.get("/v1/reports/x")?,
                ReportCmd::Z => {
                    let m = manager_client(cli)?;
                    m.post("/v1/reports/z", &serde_json::json!({}), None)?
                }
            };
            if cli.json {
                print_json(&r);
            } else {
                let t = &r["totals"];
                println!(
                    "{} report {} ({})",
                    r["kind"].as_str().unwrap_or("").to_uppercase(),
                    r["number"],
                    r["currency"].as_str().unwrap_or("")
                );
                for k in [
                    "sales",
                    "total_minor",
                    "tax_minor",
                    "cash_minor",
                    "card_minor",
                    "card_offline_minor",
                    "change_minor",
                    "cash_in_drawer_minor",
                ] {
                    println!("  {k:<22} {}", t[k]);
                }
                if let Some(l) = r["terminal_receipt"].as_array() {
                    for x in l {
                        println!("  | {}", x.as_str().unwrap_or(""));
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Sync { cmd: Some(SyncCmd::Report { date }) } => {
            let c = client(cli)?;
            let path = match date {
                Some(d) => format!("/v1/sync/report?date={}", edge_sync::netsuite::tba::pct(d)),
                None => "/v1/sync/report".to_string(),
            };
            let rep: edge_api::SyncReport = c.get(&path)?;
            let clean = rep.remotes.iter().all(|r| r.clean);
            if cli.json {
                print_json(&rep);
            } else {
                print_sync_report(&rep);
            }
            Ok(if clean { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Cmd::Lanes => {
            let c = client(cli)?;
            let v: edge_api::LanesOut = c.get("/v1/lanes")?;
            if cli.json {
                print_json(&v);
            } else {
                println!(
                    "lane {} — bus {}{}",
                    v.lane,
                    v.bus,
                    v.bus_url.as_ref().map(|u| format!(" ({u})")).unwrap_or_default()
                );
                if let Some(e) = &v.bus_error {
                    println!("bus error: {e}");
                }
                if let Some(c) = &v.conflict {
                    println!("CONFLICT: {c}");
                }
                let mut t = table(&[
                    "lane",
                    "name",
                    "state",
                    "heartbeat",
                    "unpublished",
                    "lag",
                    "records here",
                    "last record",
                    "last Z",
                ]);
                let dash = || "-".to_string();
                for l in &v.lanes {
                    t.add_row(vec![
                        if l.this { format!("{} (this)", l.lane) } else { l.lane.clone() },
                        l.name.clone().unwrap_or_else(dash),
                        l.state.clone(),
                        l.last_heartbeat_at.clone().unwrap_or_else(dash),
                        l.unpublished.map(|n| n.to_string()).unwrap_or_else(dash),
                        l.lag.map(|n| n.to_string()).unwrap_or_else(dash),
                        if l.this { dash() } else { l.records_here.to_string() },
                        l.last_record_at.clone().unwrap_or_else(dash),
                        l.last_z.map(|n| n.to_string()).unwrap_or_else(dash),
                    ]);
                }
                println!("{t}");
                if v.flags.is_empty() {
                    println!("no flags across lanes");
                } else {
                    let mut t = table(&["at", "kind", "lane", "record", "detail"]);
                    for f in &v.flags {
                        t.add_row(vec![
                            f.at.clone(),
                            f.kind.clone(),
                            f.lane.clone(),
                            f.record_id.to_string(),
                            f.detail.clone(),
                        ]);
                    }
                    println!("{t}");
                }
            }
            let bad = v.conflict.is_some() || matches!(v.bus.as_str(), "down" | "connecting");
            Ok(if bad { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        Cmd::Sync { cmd } => {
            let c = client(cli)?;
            let sync: SyncStatus = match cmd {
                Some(SyncCmd::Run) => c.post("/v1/sync/run", &serde_json::json!({}), None)?,
                None | Some(SyncCmd::Status) | Some(SyncCmd::Report { .. }) => c.get("/v1/sync")?,
            };
            if cli.json {
                print_json(&sync);
                return Ok(ExitCode::SUCCESS);
            }
            if matches!(cmd, Some(SyncCmd::Run)) {
                println!("delivery started now for every remote");
            }
            for r in &sync.remotes {
                println!(
                    "{} ({}) — {}{}",
                    r.name,
                    r.mode,
                    r.state,
                    r.detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default()
                );
                let mut t = table(&["field", "value"]);
                for (k, v) in [
                    ("pending / in flight / unknown", format!("{} / {} / {}", r.pending, r.in_flight, r.unknown)),
                    ("confirmed", r.confirmed.to_string()),
                    ("dead letters (rejected + dead)", format!("{} + {}", r.rejected, r.dead)),
                    (
                        "oldest waiting",
                        r.oldest_pending_age_s.map(|s| format!("{s} s ({})", r.lag)).unwrap_or_else(|| "-".into()),
                    ),
                    ("last success", r.last_success_at.clone().unwrap_or_else(|| "never".into())),
                    ("errors in the last hour", r.errors_last_hour.to_string()),
                    ("last error", r.last_error.clone().unwrap_or_else(|| "-".into())),
                    ("circuit breaker", r.breaker.clone().unwrap_or_else(|| "-".into())),
                    ("rate limit", r.rate_limit.clone().unwrap_or_else(|| "-".into())),
                    ("requests / 429s since start", format!("{} / {}", r.requests, r.throttled)),
                    (
                        "pulls (catalog, prices, stock, config)",
                        match (&r.pull_last_success_at, &r.pull_error) {
                            (_, Some(e)) => format!("failing: {e}"),
                            (Some(t), None) => format!("last {t}"),
                            (None, None) => "-".into(),
                        },
                    ),
                    ("push stream", r.stream.clone().unwrap_or_else(|| "-".into())),
                ] {
                    t.add_row(vec![k.to_string(), v]);
                }
                println!("{t}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Queue { cmd: QueueCmd::Show { id } } => {
            let c = client(cli)?;
            let e: OutboxEntryOut = c.get(&format!("/v1/outbox/{id}"))?;
            if cli.json {
                print_json(&e);
            } else {
                let mut t = table(&["field", "value"]);
                for (k, v) in [
                    ("id", e.id.to_string()),
                    ("remote", e.remote.clone()),
                    ("record", format!("{} {}", e.kind, e.record_id)),
                    ("state", e.state.clone()),
                    ("detail", e.detail.clone().unwrap_or_default()),
                    ("attempts", e.attempts.to_string()),
                    ("created", e.created_at.clone()),
                    ("updated", e.updated_at.clone()),
                    ("request", e.request_id.clone()),
                ] {
                    t.add_row(vec![k.to_string(), v]);
                }
                println!("{t}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Sales { cmd: SalesCmd::Show { id } } => {
            let c = client(cli)?;
            let s: SaleOut = c.get(&format!("/v1/sales/{id}"))?;
            let mine = c.get::<OutboxPage>(&format!("/v1/outbox?record={}", s.id))?.entries;
            if cli.json {
                print_json(&serde_json::json!({"sale": s, "outbox": mine}));
                return Ok(ExitCode::SUCCESS);
            }
            println!("sale {} · {} · business date {} · created {}", s.id, s.status, s.business_date, s.created_at);
            let mut t = table(&["#", "sku", "name", "qty", "unit price", "tax %", "gross"]);
            for l in &s.lines {
                let qty = match (l.qty, l.weight_g) {
                    (_, Some(g)) => format!("{g} g"),
                    (Some(q), None) => q.to_string(),
                    (None, None) => "-".into(),
                };
                t.add_row(vec![
                    l.line_no.to_string(),
                    l.sku.clone(),
                    l.name.clone(),
                    qty,
                    money(l.unit_price_minor, &s.currency),
                    format!("{:.2}", l.tax_rate_bp as f64 / 100.0),
                    money(l.gross_minor, &s.currency),
                ]);
            }
            println!("{t}");
            println!(
                "total {} (net {}, tax {}) · tendered {} · change {}",
                money(s.total_minor, &s.currency),
                money(s.net_minor, &s.currency),
                money(s.tax_minor, &s.currency),
                money(s.tendered_minor, &s.currency),
                money(s.change_minor, &s.currency)
            );
            if !mine.is_empty() {
                print_entries(&mine);
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Sales { cmd: SalesCmd::Ls { limit, after } } => {
            let c = client(cli)?;
            let mut path = format!("/v1/sales?limit={}", (*limit).clamp(1, 500));
            if let Some(a) = after {
                path.push_str(&format!("&cursor={a}"));
            }
            let page: SalesPage = c.get(&path)?;
            if cli.json {
                print_json(&page);
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = table(&["id", "business date", "created", "lines", "total"]);
            for s in &page.sales {
                t.add_row(vec![
                    s.id.to_string(),
                    s.business_date.clone(),
                    s.created_at.clone(),
                    s.lines.len().to_string(),
                    money(s.total_minor, &s.currency),
                ]);
            }
            println!("{t}");
            if let Some(n) = page.next_cursor {
                println!("(more: --after {n})");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn dead(cli: &Cli, cmd: &DeadCmd) -> Result<ExitCode, ClientError> {
    let c = client(cli)?;
    match cmd {
        DeadCmd::Ls { remote, limit } => {
            let mut all = Vec::new();
            for state in ["rejected", "dead"] {
                let mut path = format!("/v1/outbox?state={state}&limit={}", (*limit).clamp(1, 500));
                if let Some(r) = remote {
                    path.push_str(&format!("&remote={r}"));
                }
                let page: OutboxPage = c.get(&path)?;
                all.extend(page.entries);
            }
            all.sort_by_key(|e| e.id);
            all.truncate(*limit);
            if cli.json {
                print_json(&serde_json::json!({"entries": all}));
            } else if all.is_empty() {
                println!("no dead letters");
            } else {
                print_entries(&all);
                println!("replay with: edgectl queue dead retry ENTRY (or retry-all)");
            }
        }
        DeadCmd::Show { id } => {
            let e: OutboxEntryOut = c.get(&format!("/v1/outbox/{id}"))?;
            if cli.json {
                print_json(&e);
            } else {
                print_entries(std::slice::from_ref(&e));
            }
        }
        DeadCmd::Retry { id } => {
            let e: OutboxEntryOut = c.post(&format!("/v1/outbox/{id}/retry"), &serde_json::json!({}), None)?;
            if cli.json {
                print_json(&e);
            } else {
                println!(
                    "entry {} for {} is {} again; the worker delivers it with the same id",
                    e.id, e.remote, e.state
                );
            }
        }
        DeadCmd::RetryAll { remote } => {
            let path = match remote {
                Some(r) => format!("/v1/outbox/retry?remote={r}"),
                None => "/v1/outbox/retry".to_string(),
            };
            let out: RetryOut = c.post(&path, &serde_json::json!({}), None)?;
            if cli.json {
                print_json(&out);
            } else {
                println!("{} dead letters handed back to their workers", out.retried.len());
                if out.more {
                    println!("(more remain: run retry-all again)");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_entries(entries: &[OutboxEntryOut]) {
    let mut t = table(&["entry", "remote", "record", "state", "attempts", "created", "detail"]);
    for e in entries {
        t.add_row(vec![
            e.id.to_string(),
            e.remote.clone(),
            format!("{} {}", e.kind, e.record_id),
            e.state.clone(),
            e.attempts.to_string(),
            e.created_at.clone(),
            e.detail.clone().unwrap_or_default(),
        ]);
    }
    println!("{t}");
}

/// `edgectl sync report` in words.
fn print_sync_report(rep: &edge_api::SyncReport) {
    let money = |m: i64| {
        let sign = if m < 0 { "-" } else { "" };
        format!("{sign}{}.{:02}", m.unsigned_abs() / 100, m.unsigned_abs() % 100)
    };
    println!(
        "business day {} of {} ({} .. {} UTC)",
        rep.date,
        rep.store_id,
        rep.window_utc.first().map_or("", |s| s),
        rep.window_utc.get(1).map_or("", |s| s)
    );
    if rep.remotes.is_empty() {
        println!("no system of record is configured (remotes.lightspeed / remotes.netsuite are off)");
    }
    if !rep.lane_flags.is_empty() {
        println!();
        println!("across lanes — {} flag(s) for staff to check", rep.lane_flags.len());
        let mut t = table(&["at", "kind", "lane", "record", "detail"]);
        for f in &rep.lane_flags {
            t.add_row(vec![f.at.clone(), f.kind.clone(), f.lane.clone(), f.record_id.to_string(), f.detail.clone()]);
        }
        println!("{t}");
    }
    for r in &rep.remotes {
        println!();
        println!("{} — {}", r.remote, if r.clean { "reconciled" } else { "NOT reconciled" });
        if let Some(e) = &r.error {
            println!("  could not read the remote: {e}");
            continue;
        }
        let mut t = table(&["", "count", "total"]);
        t.add_row(vec!["here".to_string(), r.local_count.to_string(), money(r.local_total_minor)]);
        t.add_row(vec![r.remote.clone(), r.remote_count.to_string(), money(r.remote_total_minor)]);
        println!("{t}");
        let waiting = r.lost.iter().filter(|l| l.state != "confirmed").count();
        println!("  lost: {} ({} still waiting to be delivered)", r.lost.len(), waiting);
        for l in &r.lost {
            println!("    {} {} ({})", l.sale_id, money(l.total_minor), l.state);
        }
        println!("  duplicated: {}", r.duplicated.len());
        for d in &r.duplicated {
            println!("    {} kept as {}", d.sale_id, d.remote_ids.join(", "));
        }
        println!("  unexpected: {}", r.unexpected.len());
        for u in &r.unexpected {
            println!("    {} ({}) {}", u.reference, u.remote_id, money(u.total_minor));
        }
        if !r.differs.is_empty() {
            println!("  totals differ: {}", r.differs.len());
            for d in &r.differs {
                println!("    {} here {} there {}", d.sale_id, money(d.local_minor), money(d.remote_minor));
            }
        }
    }
}
