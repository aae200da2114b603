//! edge: the store edge daemon (`edged`) and the field tech's CLI (`edgectl`).
//!
//! - [`config`]: the TOML configuration, checked whole with every problem named by key;
//! - [`tokens`]: role tokens (`tokens.json`);
//! - [`checkout`]: the path of a sale, refund and stock adjustment — admit, price, tender
//!   (cash, or card through the payment state machine), commit, after-commit — with no HTTP;
//! - [`app`]: shared state; [`http`]: the local API v1 (an adapter over checkout);
//!   [`wire`]: records → the API's wire types; [`metrics`]: `/metrics`;
//! - [`daemon`]: serving and graceful shutdown; [`demo`]: `edged demo`;
//! - [`delivery`]: the sync engine's workers in edged; [`fakes`]: the fake remotes on HTTP;
//! - [`devices`]: the store's devices (one thread per device, events, receipts);
//! - [`reports`]: X / Z;
//! - [`reconcile`]: a business day reconciled with Lightspeed and NetSuite;
//! - [`doctor`]: `edgectl doctor`, the box's own checks (works with the daemon down);
//! - [`client`]: the HTTP client edgectl (and tests, and benches) use.

pub mod app;
pub mod checkout;
pub mod client;
pub mod config;
pub mod daemon;
pub mod delivery;
pub mod demo;
pub mod devices;
pub mod doctor;
pub mod fakes;
pub mod http;
pub mod lanes;
pub mod metrics;
pub mod pictures;
pub mod reconcile;
pub mod reports;
pub mod staff;
pub mod tokens;
pub mod wire;

/// Prints a command-line tool's man page (roff) on stdout (`edged man`, `edgectl man`,
/// `edge-lab man`).
pub fn print_man(cmd: clap::Command) -> std::process::ExitCode {
    use std::io::Write;
    let mut out = Vec::new();
    if let Err(e) = clap_mangen::Man::new(cmd).render(&mut out) {
        let _ = writeln!(std::io::stderr(), "man page: {e}");
        return std::process::ExitCode::from(1);
    }
    let _ = std::io::stdout().write_all(&out);
    std::process::ExitCode::SUCCESS
}
