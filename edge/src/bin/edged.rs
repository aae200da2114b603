//! edged: the store edge daemon. See `edged --help`.

use clap::{Parser, Subcommand};
use edge::config;
use edge::daemon;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "edged", version, about = "The store edge daemon: sales, devices, offline queue, sync")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The man page (roff), on stdout.
    Man,
    /// Run the daemon with a configuration file.
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// Print the `[staff.ID]` config lines for a PIN read from stdin (4 to 8 digits).
    HashPin {
        /// The staff member's id (the `ID` of `[staff.ID]`).
        id: String,
    },
    /// Check a configuration file: exit 0, or exit 2 with one line per problem naming the key.
    CheckConfig { file: PathBuf },
    /// The whole product on one machine: daemon, simulated devices, fake remotes.
    Demo {
        /// Data directory (default: a fresh temporary one). Reuse it to carry on after a restart.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// API address.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// Use remotes already running at the URLs in FILE (as written by `edge-lab fakes`).
        #[arg(long)]
        fakes: Option<PathBuf>,
        /// Items in the deterministic demo catalog.
        #[arg(long, default_value_t = 2000)]
        catalog_size: u64,
        /// Do not start the kiosk UI.
        #[arg(long)]
        no_ui: bool,
        /// Refuse new sales below this much free disk (warn below twice as much); 0 = off.
        #[arg(long, default_value_t = 0)]
        min_free_mb: u64,
        /// A real or external device in place of a simulator: KIND=URI (repeatable).
        #[arg(long = "device", value_name = "KIND=URI")]
        devices: Vec<String>,
        /// This daemon's lane in the store (1 to 4 letters or digits; receipt numbers' prefix).
        #[arg(long, default_value = "1")]
        lane: String,
        /// The store's NATS server (JetStream on) the lanes share records through.
        #[arg(long, value_name = "nats://HOST:PORT")]
        bus: Option<String>,
        /// With `--device terminal=adyen://…`: the root certificate the terminal's must chain
        /// to (default: adyen-ca.pem in the current directory, where `edge-lab sim terminal
        /// --protocol adyen` keeps its CA).
        #[arg(long, value_name = "PEM", default_value = "adyen-ca.pem")]
        terminal_root: PathBuf,
        /// With `--device terminal=adyen://…`: the terminal's POIID.
        #[arg(long, default_value = edge_drivers::adyen::sim::DEMO_POI_ID)]
        terminal_poi: String,
    },
}

fn main() -> ExitCode {
    edge_sync::tls::install_provider();
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Man => edge::print_man(<Cli as clap::CommandFactory>::command()),
        Cmd::HashPin { id } => {
            let mut pin = String::new();
            if let Err(e) = std::io::stdin().read_line(&mut pin) {
                eprintln!("edged hash-pin: cannot read the PIN from stdin: {e}");
                return ExitCode::from(2);
            }
            let pin = pin.trim();
            if !edge::staff::pin_well_formed(pin) {
                eprintln!("edged hash-pin: a PIN is 4 to 8 digits");
                return ExitCode::from(2);
            }
            println!(
                "[staff.{id}]\nname = \"{id}\"\nrole = \"cashier\"\npin_sha256 = \"{}\"",
                edge::staff::pin_hash_hex(&id, pin)
            );
            ExitCode::SUCCESS
        }
        Cmd::CheckConfig { file } => match config::load(&file) {
            Ok(c) => {
                for w in &c.warnings {
                    println!("warning: {w}");
                }
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(problems) => {
                for p in problems {
                    println!("{p}");
                }
                ExitCode::from(2)
            }
        },
        Cmd::Run { config: path } => {
            let cfg = match config::load(&path) {
                Ok(c) => c,
                Err(problems) => {
                    for p in problems {
                        eprintln!("edged: config {}: {p}", path.display());
                    }
                    return ExitCode::from(2);
                }
            };
            daemon::init_logging(cfg.log_format, &cfg.log_level);
            let dir = cfg.data_dir.clone();
            if let Err(e) = std::fs::create_dir_all(&dir) {
                eprintln!("edged: cannot make data dir {}: {e}", dir.display());
                return ExitCode::from(daemon::EXIT_START as u8);
            }
            start(cfg, dir, None)
        }
        Cmd::Demo {
            data_dir,
            listen,
            fakes,
            catalog_size,
            no_ui,
            devices,
            min_free_mb,
            lane,
            bus,
            terminal_root,
            terminal_poi,
        } => {
            daemon::init_logging(config::LogFormat::Text, "info");
            let mut given = Vec::new();
            for d in &devices {
                match edge::demo::parse_device(d) {
                    Ok(kv) => given.push(kv),
                    Err(e) => {
                        eprintln!("edged demo: {e}");
                        return ExitCode::from(2);
                    }
                }
            }
            let urls = match &fakes {
                Some(f) => edge::demo::read_fakes(f),
                None => edge::fakes::start_in_background(edge::fakes::FakesOptions {
                    catalog_size,
                    ..edge::fakes::FakesOptions::default()
                })
                .map(|f| f.urls()),
            };
            let urls = match urls {
                Ok(u) => u,
                Err(e) => {
                    eprintln!("edged demo: {e}");
                    return ExitCode::from(2);
                }
            };
            let (cfg, dir) =
                match edge::demo::prepare(data_dir, &listen, &urls, &lane, bus.as_deref()).and_then(|(c, d)| {
                    let adyen = edge::demo::DemoAdyen {
                        root: terminal_root,
                        poi_id: terminal_poi,
                        currency: c.currency.to_string(),
                    };
                    edge::demo::demo_devices_with(&given, &d, &adyen).map(|specs| (c, d, specs))
                }) {
                    Ok((mut c, d, specs)) => {
                        c.devices = specs;
                        c.min_free_bytes = min_free_mb << 20;
                        c.warn_free_bytes = (2 * min_free_mb) << 20;
                        (c, d)
                    }
                    Err(e) => {
                        eprintln!("edged demo: {e}");
                        return ExitCode::from(2);
                    }
                };
            eprintln!("edged demo: data dir {}", dir.display());
            let kiosk = if no_ui { None } else { edge::demo::spawn_kiosk(&dir) };
            if fakes.is_none() {
                tracing::info!(cloud = ?urls.get("cloud"), "no --fakes: the fake cloud runs inside this process");
            }
            let code = start(cfg, dir, Some(catalog_size));
            if let Some(mut k) = kiosk {
                let _ = k.kill();
                let _ = k.wait();
            }
            code
        }
    }
}

fn start(cfg: config::Config, dir: PathBuf, demo_catalog: Option<u64>) -> ExitCode {
    let store = match daemon::open_store(&cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("edged: {e}");
            return ExitCode::from(daemon::EXIT_START as u8);
        }
    };
    if let Some(size) = demo_catalog
        && let Err(e) = edge::demo::seed_catalog(store.as_ref(), size)
    {
        eprintln!("edged demo: cannot seed the catalog: {e}");
        return ExitCode::from(daemon::EXIT_START as u8);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("edged: cannot start the runtime: {e}");
            return ExitCode::from(daemon::EXIT_START as u8);
        }
    };
    match rt.block_on(daemon::run(cfg, store, &dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edged: {e}");
            ExitCode::from(daemon::EXIT_START as u8)
        }
    }
}
