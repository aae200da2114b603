//! `edge-kiosk`: one kiosk screen (staff register or customer self-serve), a client of
//! edged's local API. `SLINT_BACKEND` picks the backend (winit-software under X / Xvfb,
//! linuxkms-software on a kiosk without X).

use clap::Parser;
use edge_kiosk::api::Endpoint;
use edge_kiosk::{Mode, Options};
use slint::ComponentHandle;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "edge-kiosk",
    version,
    about = "A kiosk screen of the store edge daemon: staff register or self-serve"
)]
struct Cli {
    /// The daemon's data dir (reads api.json, and tokens.json for the self-serve screen).
    #[arg(long, conflicts_with = "api")]
    data_dir: Option<PathBuf>,
    /// The daemon's URL, e.g. http://127.0.0.1:7420.
    #[arg(long)]
    api: Option<String>,
    /// The token (self-serve: the kiosk role's). Staff log in by PIN instead.
    #[arg(long, env = "EDGE_KIOSK_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// `staff` (register) or `self-serve`.
    #[arg(long, default_value = "staff")]
    mode: String,
    /// This screen's name, shown to staff on its requests.
    #[arg(long, default_value = "kiosk-1")]
    screen_name: String,
    /// `en` or `de`.
    #[arg(long, default_value = "en")]
    lang: String,
    #[arg(long)]
    high_contrast: bool,
    /// Text size, 0.8 to 2.0.
    #[arg(long, default_value_t = 1.0)]
    font_scale: f32,
    /// Self-serve: seconds without a touch before the attract screen returns.
    #[arg(long, default_value_t = 90)]
    idle_timeout_s: u64,
    /// Self-serve: speech output is recorded but not played (no sound card).
    #[arg(long)]
    silent: bool,
    /// Print the man page (roff) and exit.
    #[arg(long, hide = true)]
    man: bool,
}

fn main() -> ExitCode {
    edge_kiosk::init_logging();
    let cli = Cli::parse();
    if cli.man {
        let man = clap_mangen::Man::new(<Cli as clap::CommandFactory>::command());
        let mut out = Vec::new();
        if let Err(e) = man.render(&mut out) {
            eprintln!("edge-kiosk: cannot render the man page: {e}");
            return ExitCode::from(1);
        }
        use std::io::Write;
        let _ = std::io::stdout().write_all(&out);
        return ExitCode::SUCCESS;
    }
    let mode = match Mode::parse(&cli.mode) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("edge-kiosk: {e}");
            return ExitCode::from(2);
        }
    };
    let endpoint = match (cli.data_dir, cli.api) {
        (Some(dir), None) => Endpoint::DataDir { dir, kiosk_token: mode == Mode::SelfServe },
        // Staff log in by PIN; a token given here logs the screen in with its role.
        (None, Some(url)) => Endpoint::Fixed { url, token: cli.token },
        _ => {
            eprintln!("edge-kiosk: give --data-dir DIR or --api URL");
            return ExitCode::from(2);
        }
    };
    if !(0.8..=2.0).contains(&cli.font_scale) {
        eprintln!("edge-kiosk: --font-scale {} must be 0.8 to 2.0", cli.font_scale);
        return ExitCode::from(2);
    }
    let opts = Options {
        endpoint,
        mode,
        screen_name: cli.screen_name,
        language: cli.lang,
        high_contrast: cli.high_contrast,
        font_scale: cli.font_scale,
        idle_timeout: Duration::from_secs(cli.idle_timeout_s.max(10)),
        speech_aloud: !cli.silent,
    };
    let ui = match edge_kiosk::start(opts) {
        Ok(ui) => ui,
        Err(e) => {
            eprintln!("edge-kiosk: {e}");
            return ExitCode::from(1);
        }
    };
    match ui.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "edge-kiosk: the window cannot run: {e} (set SLINT_BACKEND=winit-software under X, linuxkms-software without)"
            );
            ExitCode::from(1)
        }
    }
}
