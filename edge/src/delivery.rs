//! Wiring of the sync engine (`edge_sync::engine`) into edged: one worker per configured
//! remote that has a connector in this build, the HTTP client they share, and the task that
//! announces `sync.status` events when a remote's state or counts change.

use crate::app::App;
use crate::config::{CONNECTORS, Config, Mode, read_secret};
use edge_api::Event;
use edge_sync::cloud::CloudConnector;
use edge_sync::engine::run::SyncEngine;
use edge_sync::engine::{Policy, Worker};
use std::sync::Arc;
use std::time::Duration;

/// Builds the workers the configuration asks for. Errors name the config key.
pub fn build_engine(cfg: &Config) -> Result<SyncEngine, String> {
    let mut engine = SyncEngine::new();
    for (name, rc) in &cfg.remotes {
        if rc.mode == Mode::Off || !CONNECTORS.contains(&name.as_str()) {
            continue;
        }
        let secret = match &rc.secret_file {
            Some(f) => read_secret(f).map_err(|e| format!("remotes.{name}.secret_file: {e}"))?,
            None => return Err(format!("remotes.{name}.secret_file: required when the mode is not \"off\"")),
        };
        let connector = match name.as_str() {
            "cloud" => Box::new(CloudConnector::new(cfg.store_id.clone(), secret)),
            other => return Err(format!("remotes.{other}: no connector in this build")),
        };
        let policy = Policy {
            max_batch: rc.max_batch,
            max_in_flight: rc.max_in_flight,
            max_record_attempts: rc.max_attempts,
            shadow: rc.mode == Mode::Shadow,
            ..Policy::default()
        };
        let seed = getrandom::u64().map_err(|e| format!("no random seed for the sync worker: {e}"))?;
        let url = rc.url.clone().unwrap_or_default();
        engine.add(Worker::new(name.clone(), connector, policy, seed), &url, Duration::from_millis(rc.timeout_ms));
        tracing::info!(remote = %name, mode = rc.mode.as_str(), %url, "sync worker configured");
    }
    Ok(engine)
}

/// The client the workers share (plain HTTP and HTTPS).
pub fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(concat!("edged/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Sends `sync.status` when something other than the ages changed, and at least every
/// minute while anything waits. Ends when the daemon stops.
pub async fn announce_status(app: Arc<App>) {
    let mut stopping = app.stopping.subscribe();
    let mut last_sig = String::new();
    let mut last_sent = std::time::Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = stopping.changed() => return,
        }
        let now = jiff::Timestamp::now();
        let remotes = app.remote_statuses(now);
        let sig: String = remotes
            .iter()
            .map(|r| {
                format!(
                    "{}:{}:{}:{}:{}:{}:{}:{}:{}|",
                    r.name, r.state, r.pending, r.in_flight, r.unknown, r.confirmed, r.rejected, r.dead, r.lag
                )
            })
            .collect();
        let waiting = remotes.iter().any(|r| r.pending + r.in_flight + r.unknown > 0);
        if sig != last_sig || (waiting && last_sent.elapsed() >= Duration::from_secs(60)) {
            last_sig = sig;
            last_sent = std::time::Instant::now();
            let _ = app.events.send(Event::SyncStatus { at: now.to_string(), remotes });
        }
    }
}
