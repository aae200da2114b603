//! edge-lab: the test lab. `edge-lab fakes` runs the fake remotes as one standalone process
//! (see CONTRACT.md); its state lives as long as the process. `edge-lab sim KIND` runs one
//! simulated device over TCP or a pty.

use clap::{Parser, Subcommand};
use edge::fakes::{FakesOptions, start};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "edge-lab", version, about = "Simulators and fake remotes for the store edge daemon")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The man page (roff), on stdout.
    Man,
    /// One simulated device, standalone, steered by lines on stdin (see `edge_drivers::sim`).
    Sim {
        /// terminal, printer, scanner, scale or display.
        kind: String,
        /// Listen on TCP, e.g. 127.0.0.1:9100.
        #[arg(long, conflicts_with = "link")]
        tcp: Option<String>,
        /// Make a pty and symlink its device end here, e.g. /tmp/scale.
        #[arg(long)]
        link: Option<PathBuf>,
        /// Terminal only: the journal file (kept across runs; default ./terminal-journal.tsv,
        /// or ./adyen-journal.json for Adyen).
        #[arg(long)]
        journal: Option<PathBuf>,
        /// Terminal only: zvt (the default) or adyen (the local Terminal API over HTTPS; its
        /// CA is kept as adyen-ca.pem beside the journal).
        #[arg(long, default_value = "zvt")]
        protocol: String,
        /// Adyen only: the terminal's POIID.
        #[arg(long, default_value = edge_drivers::adyen::sim::DEMO_POI_ID)]
        poi_id: String,
        /// Terminal only: milliseconds from the card prompt to the decision (card read, PIN,
        /// host); 0 decides at once.
        #[arg(long, default_value_t = 0)]
        processing_ms: u64,
        /// Scanner only: send HID POS scanned-data reports (as a USB HID POS scanner does)
        /// instead of CR-terminated codes.
        #[arg(long)]
        hid: bool,
    },
    /// The fake cloud, Lightspeed and NetSuite in one process (each on its own port).
    Fakes {
        /// Where fakes.json is written (default: a fresh temporary directory).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Address the fakes listen on (ports are chosen by the system).
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Lightspeed leaky bucket size (default: by the cost rules and registers).
        #[arg(long)]
        lightspeed_bucket: Option<u32>,
        /// Lightspeed drip rate per second (default: by the cost rules and registers).
        #[arg(long)]
        lightspeed_drip_per_s: Option<f64>,
        /// Lightspeed cost rules: current (2026-03) or legacy (GET 1, writes 10).
        #[arg(long, default_value = "current")]
        lightspeed_rules: String,
        /// Registers on the Lightspeed subscription (bucket and drip grow with them).
        #[arg(long, default_value_t = 1)]
        lightspeed_registers: u32,
        /// Lightspeed drip-rate multiplier, to measure drains in seconds.
        #[arg(long, default_value_t = 1)]
        lightspeed_speed: u32,
        /// NetSuite concurrent request limit.
        #[arg(long, default_value_t = 5)]
        netsuite_concurrency: u32,
        /// Shopify restore-rate multiplier (its Standard-plan bucket: 2,000 points, 100 a second).
        #[arg(long, default_value_t = 1)]
        shopify_speed: u32,
        /// The fake Shopify is a development store: 5 orders a minute.
        #[arg(long)]
        shopify_dev_store: bool,
        /// Cloud event bucket size (events).
        #[arg(long, default_value_t = 1000.0)]
        cloud_bucket: f64,
        /// Cloud bucket refill, events per second.
        #[arg(long, default_value_t = 200.0)]
        cloud_refill_per_s: f64,
        /// Items of the demo catalog the fakes start from (as `edged demo --catalog-size`).
        #[arg(long, default_value_t = 2000)]
        catalog_size: u64,
        /// Store id the fake cloud accepts.
        #[arg(long, default_value = "store-001")]
        store_id: String,
        /// File holding the cloud HMAC secret (default: the demo secret).
        #[arg(long)]
        cloud_secret_file: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    edge_sync::tls::install_provider();
    let cli = Cli::parse();
    edge::daemon::init_logging(edge::config::LogFormat::Text, "info");
    match cli.cmd {
        Cmd::Man => edge::print_man(<Cli as clap::CommandFactory>::command()),
        Cmd::Sim { kind, tcp, link, hid, journal, processing_ms, protocol, poi_id } => {
            if kind == "terminal" && protocol == "adyen" {
                let Some(tcp) = tcp else {
                    eprintln!("edge-lab sim terminal --protocol adyen: give --tcp ADDR (it speaks HTTPS)");
                    return ExitCode::from(2);
                };
                let journal = journal.unwrap_or_else(|| PathBuf::from("adyen-journal.json"));
                return match edge_drivers::sim::run_adyen(
                    &tcp,
                    &poi_id,
                    journal,
                    std::time::Duration::from_millis(processing_ms),
                ) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("edge-lab sim: {e}");
                        ExitCode::from(2)
                    }
                };
            }
            if protocol != "zvt" {
                eprintln!("edge-lab sim: --protocol is zvt or adyen, and only for the terminal");
                return ExitCode::from(2);
            }
            let kind = match (kind.as_str(), hid) {
                ("scanner", true) => "scanner-hid".to_string(),
                (_, true) => {
                    eprintln!("edge-lab sim: --hid is for the scanner");
                    return ExitCode::from(2);
                }
                _ => kind,
            };
            let at = match (tcp, link) {
                (Some(t), None) => edge_drivers::sim::Endpoint::Tcp(t),
                (None, Some(l)) => edge_drivers::sim::Endpoint::Link(l),
                _ => {
                    eprintln!("edge-lab sim: give --tcp ADDR or --link PATH");
                    return ExitCode::from(2);
                }
            };
            let ran = if kind == "terminal" {
                edge_drivers::sim::run_terminal(
                    at,
                    journal.unwrap_or_else(|| PathBuf::from("terminal-journal.tsv")),
                    std::time::Duration::from_millis(processing_ms),
                )
            } else {
                edge_drivers::sim::run_standalone(&kind, at)
            };
            match ran {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("edge-lab sim: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Cmd::Fakes {
            data_dir,
            host,
            lightspeed_bucket,
            lightspeed_drip_per_s,
            lightspeed_rules,
            lightspeed_registers,
            lightspeed_speed,
            netsuite_concurrency,
            shopify_speed,
            shopify_dev_store,
            cloud_bucket,
            cloud_refill_per_s,
            catalog_size,
            store_id,
            cloud_secret_file,
        } => {
            if !(cloud_bucket >= 1.0 && cloud_refill_per_s > 0.0 && cloud_bucket.is_finite()) {
                eprintln!("edge-lab fakes: --cloud-bucket must be >= 1 and --cloud-refill-per-s > 0");
                return ExitCode::from(2);
            }
            let mut opts = FakesOptions {
                host,
                store_id,
                cloud_bucket,
                cloud_refill_per_s,
                catalog_size,
                ..FakesOptions::default()
            };
            opts.ls_rules = match lightspeed_rules.as_str() {
                "current" => edge_sync::lightspeed::bucket::Rules::Current,
                "legacy" => edge_sync::lightspeed::bucket::Rules::Legacy,
                other => {
                    eprintln!("edge-lab fakes: --lightspeed-rules {other:?}: give current or legacy");
                    return ExitCode::from(2);
                }
            };
            if !(1..=100).contains(&lightspeed_registers) || !(1..=10_000).contains(&lightspeed_speed) {
                eprintln!("edge-lab fakes: --lightspeed-registers must be 1–100 and --lightspeed-speed 1–10000");
                return ExitCode::from(2);
            }
            opts.ls_registers = lightspeed_registers;
            opts.ls_speed = lightspeed_speed;
            if lightspeed_bucket.is_some() || lightspeed_drip_per_s.is_some() {
                let (size, drip) = edge_sync::lightspeed::bucket::limits(opts.ls_rules, lightspeed_registers);
                let size = lightspeed_bucket.map_or(size, |b| i64::from(b) * 1000);
                let drip = match lightspeed_drip_per_s {
                    Some(d) if d.is_finite() && d > 0.0 && d <= 10_000.0 => (d * 1000.0).round() as i64,
                    Some(_) => {
                        eprintln!("edge-lab fakes: --lightspeed-drip-per-s must be > 0 and at most 10000");
                        return ExitCode::from(2);
                    }
                    None => drip,
                };
                if size < 1000 {
                    eprintln!("edge-lab fakes: --lightspeed-bucket must be at least 1");
                    return ExitCode::from(2);
                }
                opts.ls_bucket = Some((size, drip));
            }
            if !(1..=1000).contains(&netsuite_concurrency) {
                eprintln!("edge-lab fakes: --netsuite-concurrency must be 1–1000");
                return ExitCode::from(2);
            }
            opts.ns_concurrency = netsuite_concurrency as usize;
            if !(1..=10_000).contains(&shopify_speed) {
                eprintln!("edge-lab fakes: --shopify-speed must be 1–10000");
                return ExitCode::from(2);
            }
            opts.shopify_speed = shopify_speed;
            opts.shopify_dev_store = shopify_dev_store;
            if let Some(f) = cloud_secret_file {
                match edge::config::read_secret(&f) {
                    Ok(s) => opts.cloud_secret = s,
                    Err(e) => {
                        eprintln!("edge-lab fakes: --cloud-secret-file: {e}");
                        return ExitCode::from(2);
                    }
                }
            }
            let dir = match data_dir {
                Some(d) => d,
                None => match tempfile::Builder::new().prefix("edge-fakes-").tempdir() {
                    Ok(d) => d.keep(),
                    Err(e) => {
                        eprintln!("edge-lab fakes: cannot make a temporary dir: {e}");
                        return ExitCode::from(2);
                    }
                },
            };
            if let Err(e) = std::fs::create_dir_all(&dir) {
                eprintln!("edge-lab fakes: cannot make {}: {e}", dir.display());
                return ExitCode::from(2);
            }
            let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("edge-lab fakes: cannot start the runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            rt.block_on(async move {
                let shutdown = edge::daemon::shutdown_signal();
                let fakes = match start(&opts).await {
                    Ok(f) => f,
                    Err(e) => {
                        eprintln!("edge-lab fakes: {e}");
                        return ExitCode::from(1);
                    }
                };
                let path = dir.join("fakes.json");
                let json = serde_json::to_vec_pretty(&fakes.file).unwrap_or_default();
                if let Err(e) = edge::tokens::write_public(&path, &json) {
                    eprintln!("edge-lab fakes: cannot write {}: {e}", path.display());
                    return ExitCode::from(1);
                }
                println!("READY {}", path.display());
                shutdown.await;
                ExitCode::SUCCESS
            })
        }
    }
}
