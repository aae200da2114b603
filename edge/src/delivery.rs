//! Wiring of the sync engine (`edge_sync::engine`) into edged: one worker per configured
//! remote that has a connector in this build, the HTTP client they share, and the task that
//! announces `sync.status` events when a remote's state or counts change.

use crate::app::App;
use crate::config::{CONNECTORS, Config, Mode, read_secret};
use edge_api::Event;
use edge_sync::cloud::CloudConnector;
use edge_sync::cloud::live::{CloudLink, CommandHook};
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

/// The cloud's pull and stream link, when the cloud is live with a URL.
pub fn build_cloud_link(cfg: &Config) -> Result<Option<CloudLink>, String> {
    let Some(rc) = cfg.remotes.get("cloud") else { return Ok(None) };
    let (Mode::Live, Some(url)) = (rc.mode, rc.url.as_ref()) else { return Ok(None) };
    let secret = match &rc.secret_file {
        Some(f) => read_secret(f).map_err(|e| format!("remotes.cloud.secret_file: {e}"))?,
        None => return Err("remotes.cloud.secret_file: required when the mode is not \"off\"".into()),
    };
    Ok(Some(CloudLink::new(
        &cfg.store_id,
        &secret,
        url,
        Duration::from_secs(rc.pull_interval_s),
        Duration::from_millis(rc.timeout_ms),
    )))
}

/// Starts the cloud link's puller and stream (if any).
pub fn spawn_cloud_link(app: &Arc<App>, client: reqwest::Client) -> Vec<tokio::task::JoinHandle<()>> {
    let Some(link) = app.cloud_link.clone() else { return Vec::new() };
    let weak = Arc::downgrade(app);
    let hook: CommandHook = Arc::new(move |name: &str, data: &serde_json::Value| {
        if let Some(app) = weak.upgrade() {
            remote_command(&app, name, data);
        }
    });
    vec![
        tokio::spawn(link.clone().run_puller(app.store.clone(), client, app.stopping.subscribe())),
        tokio::spawn(link.run_stream(app.store.clone(), hook, app.stopping.subscribe())),
    ]
}

/// A command the cloud sent on its stream.
fn remote_command(app: &Arc<App>, name: &str, data: &serde_json::Value) {
    let audit = |detail: String| {
        let rec = edge_sync::domain::AuditRecord {
            id: edge_sync::domain::new_id(),
            at: jiff::Timestamp::now(),
            actor: "cloud".into(),
            action: format!("remote.{name}"),
            subject: app.cfg.store_id.clone(),
            request_id: String::new(),
            detail,
        };
        if let Err(e) = app.store.append_audit(&rec) {
            tracing::warn!(error = %e, "cannot write the audit record of a remote command");
        }
    };
    match name {
        "sync_now" => {
            app.engine.nudge(jiff::Timestamp::now());
            if let Some(l) = &app.cloud_link {
                l.wake_pull.notify_one();
            }
            audit("deliveries and pulls started now".into());
        }
        "collect_bundle" => match write_bundle(app) {
            Ok(path) => {
                tracing::info!(path = %path.display(), "support bundle written at the cloud's request");
                audit(format!("bundle {}", path.display()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "support bundle failed");
                audit(format!("failed: {e}"));
            }
        },
        other => {
            tracing::warn!(command = other, data = %data, "unknown remote command; ignored");
            audit("unknown command, ignored".into());
        }
    }
}

/// Bundles kept under `DATA/support/`.
const MAX_BUNDLES: usize = 5;

/// A small support bundle: version, health, delivery state, store figures, metrics, and the
/// configuration's shape — never a secret (secrets live in files the bundle does not read)
/// and never card data (the store holds none).
pub fn write_bundle(app: &App) -> Result<std::path::PathBuf, String> {
    let now = jiff::Timestamp::now();
    let dir = app.cfg.data_dir.join("support");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    let sync: Vec<(String, edge_sync::engine::Health)> =
        app.engine.names().into_iter().filter_map(|n| app.engine.health(&n, now).map(|h| (n, h))).collect();
    let remotes: serde_json::Value = app
        .cfg
        .remotes
        .iter()
        .map(|(n, r)| {
            (n.clone(), serde_json::json!({"mode": r.mode.as_str(), "url": r.url.as_deref().map(redact_url), "timeout_ms": r.timeout_ms,
                "secret_file_set": r.secret_file.is_some()}))
        })
        .collect::<serde_json::Map<String, serde_json::Value>>()
        .into();
    let bundle = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "at": now.to_string(),
        "store_id": app.cfg.store_id,
        "timezone": app.cfg.timezone_name,
        "health": app.health(),
        "sync": app.remote_statuses(now),
        "remotes_config": remotes,
        "metrics": app.metrics.render(app.store.as_ref(), &sync, now),
    });
    let path = dir.join(format!("bundle-{}.json", now.as_second()));
    let bytes = serde_json::to_vec_pretty(&bundle).map_err(|e| e.to_string())?;
    crate::tokens::write_private(&path, &bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let mut old: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("bundle-")))
        .collect();
    old.sort();
    while old.len() > MAX_BUNDLES {
        let p = old.remove(0);
        let _ = std::fs::remove_file(p);
    }
    Ok(path)
}

/// A URL without user info (`https://user:pw@host` → `https://…@host`).
fn redact_url(u: &str) -> String {
    match u.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('/').map_or(rest, |x| x.0).rsplit_once('@') {
            Some((_, host)) => {
                let path = rest.split_once('/').map(|x| format!("/{}", x.1)).unwrap_or_default();
                format!("{scheme}://…@{host}{path}")
            }
            None => u.to_string(),
        },
        None => u.to_string(),
    }
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
