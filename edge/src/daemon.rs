//! Running the daemon: logging, opening the store, serving the API until a signal, and
//! shutting down in the mini-redis manner — stop taking sales, let commits in progress
//! finish, let answered requests drain, sync the store, exit 0.

use crate::app::App;
use crate::config::{Config, LogFormat};
use crate::tokens::{Tokens, write_public};
use edge_api::ApiFile;
use edge_sync::store::{SledStore, Store, StoreConfig};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Exit code when the store could not be made durable (systemd restarts us).
pub const EXIT_STORE_FATAL: i32 = 70;
/// Exit code for a start-up failure (bad store, port in use …).
pub const EXIT_START: i32 = 1;
/// Longest wait for open requests once shutdown began.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Logs to stderr, as text or JSON lines. `RUST_LOG` overrides the configured level.
pub fn init_logging(format: LogFormat, level: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Under systemd (stderr connected to the journal) fields go to journald as fields.
    let journald = std::env::var_os("JOURNAL_STREAM").and_then(|_| tracing_journald::layer().ok());
    let ansi = journald.is_none() && std::io::IsTerminal::is_terminal(&std::io::stderr());
    // A log that cannot be written (a full disk) must not take the daemon down: the
    // subscriber would otherwise report its own write errors with eprintln!, which panics.
    let (json, text) = match (&journald, format) {
        (Some(_), _) => (None, None),
        (None, LogFormat::Json) => (
            Some(tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr).log_internal_errors(false)),
            None,
        ),
        (None, LogFormat::Text) => (
            None,
            Some(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(ansi)
                    .log_internal_errors(false),
            ),
        ),
    };
    // The file in the data dir (`edgectl logs`, support bundles), once it is known.
    let file = tracing_subscriber::fmt::layer().with_writer(LogFile).with_ansi(false).log_internal_errors(false);
    let _ = tracing_subscriber::registry().with(filter).with(journald).with(json).with(text).with(file).try_init();
}

/// Most bytes `DIR/logs/edged.log` grows to before it becomes `edged.log.1`.
pub const LOG_FILE_MAX: u64 = 4 << 20;

struct LogSink {
    file: std::fs::File,
    path: std::path::PathBuf,
    len: u64,
}

static LOG_SINK: std::sync::Mutex<Option<LogSink>> = std::sync::Mutex::new(None);

/// From now on logs also go to `dir/logs/edged.log` (rotated at [`LOG_FILE_MAX`], one old
/// file kept), for `edgectl logs` and support bundles.
pub fn log_to_dir(dir: &Path) -> Result<(), String> {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("cannot make {}: {e}", logs.display()))?;
    let path = logs.join("edged.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    *LOG_SINK.lock().unwrap_or_else(|p| p.into_inner()) = Some(LogSink { file, path, len });
    Ok(())
}

/// The log file writer: nothing until [`log_to_dir`]; write errors are dropped (a full disk
/// must not stop the daemon over its log).
#[derive(Clone, Copy)]
struct LogFile;

impl std::io::Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut g = LOG_SINK.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = g.as_mut() {
            if s.len + buf.len() as u64 > LOG_FILE_MAX {
                let old = s.path.with_extension("log.1");
                let _ = std::fs::rename(&s.path, &old);
                if let Ok(f) = std::fs::OpenOptions::new().create(true).append(true).open(&s.path) {
                    s.file = f;
                    s.len = 0;
                }
            }
            if std::io::Write::write_all(&mut s.file, buf).is_ok() {
                s.len += buf.len() as u64;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogFile {
    type Writer = LogFile;
    fn make_writer(&'a self) -> LogFile {
        *self
    }
}

/// Opens the store; a failed sync later exits the process with [`EXIT_STORE_FATAL`].
pub fn open_store(cfg: &Config) -> Result<Arc<dyn Store>, String> {
    let mut sc = StoreConfig::new(cfg.data_dir.join("store"));
    sc.cache_capacity_bytes = cfg.cache_mb * 1024 * 1024;
    sc.on_fatal = Some(Arc::new(|msg: &str| {
        // Not eprintln!: it panics when stderr cannot be written (a full disk holding the
        // log), and a panic here would leave the daemon running instead of exiting.
        use std::io::Write;
        let _ =
            writeln!(std::io::stderr(), "edged: FATAL: {msg}; exiting so that recovery starts from what is on disk");
        std::process::exit(EXIT_STORE_FATAL);
    }));
    let store = SledStore::open(sc).map_err(|e| e.to_string())?;
    Ok(Arc::new(store))
}

/// Installs the SIGTERM and SIGINT handlers now (so a signal that arrives right after READY
/// is not lost) and returns a future that resolves when one arrives.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut t), Ok(mut i)) => {
                tokio::select! {
                    _ = t.recv() => tracing::info!("SIGTERM: shutting down"),
                    _ = i.recv() => tracing::info!("SIGINT: shutting down"),
                }
            }
            _ => {
                tracing::warn!("cannot install signal handlers; stop with SIGKILL");
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Serves the API on `listener` until `shutdown` resolves, then drains and syncs.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = crate::http::router(app.clone());
    let app_for_signal = app.clone();
    let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
    let graceful = async move {
        shutdown.await;
        notify(&[sd_notify::NotifyState::Stopping, sd_notify::NotifyState::Status("stopping: finishing commits")]);
        // No new sales from here on; commits in progress finish and are answered.
        app_for_signal.drain().await;
        let _ = drained_tx.send(());
    };
    // Answers are small and latency matters: no Nagle delay.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, router).with_graceful_shutdown(graceful);
    let server = tokio::spawn(async move { server.await });
    // Once draining started, give open connections a bounded time to finish.
    let res = match drained_rx.await {
        Ok(()) => match tokio::time::timeout(DRAIN_TIMEOUT, server).await {
            Ok(joined) => joined.map_err(std::io::Error::other)?,
            Err(_) => {
                tracing::warn!("open connections did not finish within {DRAIN_TIMEOUT:?}; closing them");
                Ok(())
            }
        },
        // The server ended on its own (listener error).
        Err(_) => Err(std::io::Error::other("API server stopped unexpectedly")),
    };
    let store = app.store.clone();
    tokio::task::spawn_blocking(move || store.sync())
        .await
        .map_err(std::io::Error::other)?
        .map_err(std::io::Error::other)?;
    tracing::info!("store synced; bye");
    res
}

/// Tells systemd (under `Type=notify`; nothing happens without `NOTIFY_SOCKET`).
pub fn notify(states: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "systemd notification not sent");
    }
}

/// One line for `systemctl status`: sales, what waits for delivery, devices online.
fn status_line(app: &App) -> String {
    let st = app.store.stats();
    let counts = app.store.outbox_counts();
    let waiting: u64 = counts.values().map(|c| c.pending + c.in_flight + c.unknown).sum();
    let dead: u64 = counts.values().map(|c| c.dead).sum();
    let (online, all) = app.devices.get().map_or((0, 0), |d| {
        let l = d.list();
        (l.iter().filter(|x| x.state == "online").count(), l.len())
    });
    format!(
        "serving; {} sales; {waiting} records waiting for delivery, {dead} dead; devices {online}/{all} online",
        st.sales
    )
}

/// Pings the systemd watchdog at half its interval while the daemon works: the runtime runs
/// this task, and the store answers (a wedged store stops the pings and systemd restarts us).
fn spawn_watchdog(app: Arc<App>) {
    let Some(every) = sd_notify::watchdog_enabled() else { return };
    let half = every / 2;
    tracing::info!(interval_ms = every.as_millis() as u64, "systemd watchdog on");
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(half.max(Duration::from_millis(100)));
        loop {
            tick.tick().await;
            if app.is_stopping() {
                return;
            }
            let a = app.clone();
            let alive = tokio::time::timeout(
                half,
                tokio::task::spawn_blocking(move || {
                    let _ = a.store.meta_get("format");
                    status_line(&a)
                }),
            )
            .await;
            match alive {
                Ok(Ok(line)) => notify(&[sd_notify::NotifyState::Watchdog, sd_notify::NotifyState::Status(&line)]),
                _ => tracing::error!("the store did not answer within half the watchdog interval; no ping"),
            }
        }
    });
}

/// How far the wall clock may move against the monotonic clock between two looks before it
/// counts as a jump (NTP slews far less than this).
pub const CLOCK_JUMP_SECS: i64 = 30;

/// The wall clock's jump between two looks, if it moved more than [`CLOCK_JUMP_SECS`] away
/// from what the monotonic clock says passed.
pub fn clock_jump(wall_before: jiff::Timestamp, wall_now: jiff::Timestamp, mono_elapsed: Duration) -> Option<i64> {
    let wall = wall_now.as_second() - wall_before.as_second();
    let mono = mono_elapsed.as_secs() as i64;
    let jump = wall - mono;
    (jump.abs() > CLOCK_JUMP_SECS).then_some(jump)
}

/// Every 10 s: the data dir's free disk (when a guard or warning is set) and the clock
/// (a jump is logged and shown in the health, since business dates depend on the clock).
fn spawn_disk_watch(app: Arc<App>) {
    let spawned = std::thread::Builder::new().name("watch".into()).spawn(move || {
        let mut low = false;
        let mut wall = jiff::Timestamp::now();
        let mut mono = std::time::Instant::now();
        let mut round = 0u64;
        while !app.is_stopping() {
            if round.is_multiple_of(30) {
                let unsynced = crate::doctor::clock_synchronised() == Some(false);
                if unsynced && !app.clock_unsynced.load(std::sync::atomic::Ordering::SeqCst) {
                    tracing::warn!("the clock is not synchronised; business dates depend on it");
                }
                app.clock_unsynced.store(unsynced, std::sync::atomic::Ordering::SeqCst);
            }
            round += 1;
            if app.cfg.min_free_bytes > 0 || app.cfg.warn_free_bytes > 0 {
                let free = app.checkout.measure_disk();
                let now_low = free < app.cfg.warn_free_bytes;
                if now_low && !low {
                    tracing::warn!(free_mib = free >> 20, "disk low on the data dir");
                }
                low = now_low;
            }
            let (w, m) = (jiff::Timestamp::now(), std::time::Instant::now());
            if let Some(j) = clock_jump(wall, w, m - mono) {
                tracing::warn!(jump_s = j, "the wall clock jumped; business dates and receipts depend on it");
                app.note_clock_jump(w, j);
            }
            (wall, mono) = (w, m);
            std::thread::sleep(Duration::from_secs(10));
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "disk and clock watch not started");
    }
}

/// Binds, announces readiness (stdout `READY url`, `DIR/api.json`) and serves until a signal.
pub async fn run(cfg: Config, store: Arc<dyn Store>, announce_dir: &Path) -> Result<(), String> {
    if let Err(e) = log_to_dir(&cfg.data_dir) {
        tracing::warn!(error = %e, "logs go to stderr only");
    }
    let shutdown = shutdown_signal();
    let tokens = Tokens::load_or_create(&cfg.tokens_file)?;
    let listener = TcpListener::bind(cfg.listen).await.map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let url = format!("http://{addr}");
    let ls_auth = crate::delivery::lightspeed_auth(&cfg, &store)?;
    let ns_newest = Arc::new(edge_sync::netsuite::live::NsNewest::default());
    let lanes_bus = match &cfg.bus {
        Some(b) => Some(crate::lanes::connect(&cfg, b, &store).await?),
        None => None,
    };
    let shop = edge_sync::shopify::connector::Shop::new();
    let engine = Arc::new(crate::delivery::build_engine(
        &cfg,
        &store,
        ls_auth.clone(),
        ns_newest.clone(),
        &shop,
        lanes_bus.as_ref(),
    )?);
    let client = crate::delivery::http_client()?;
    let link = crate::delivery::build_cloud_link(&cfg)?;
    let mut app = App::new(cfg, store.clone(), tokens, engine.clone(), link);
    app.ls_auth = ls_auth.clone();
    app.ns_newest = ns_newest;
    app.shop = shop;
    app.bus = lanes_bus.clone();
    let app = Arc::new(app);
    let specs = app.cfg.devices.clone();
    let bus = app.events.clone();
    app.attach_devices(Arc::new(crate::devices::Devices::start(
        specs,
        Arc::new(move |e| {
            let _ = bus.send(e);
        }),
    )));
    crate::checkout::payments::spawn_recovery(app.checkout.clone());
    spawn_disk_watch(app.clone());
    let mut workers = engine.spawn(store, client.clone(), app.stopping.subscribe());
    if let Some(b) = &lanes_bus {
        let claims = crate::lanes::BusClaims::new(b.clone(), app.store.clone(), tokio::runtime::Handle::current());
        let _ = app.checkout.lanes.set(Arc::new(claims));
        workers.extend(crate::lanes::spawn(&app, b));
    }
    workers.extend(crate::delivery::spawn_lightspeed_pull(&app, client.clone(), ls_auth));
    workers.extend(crate::delivery::spawn_netsuite_pull(&app, client.clone()));
    workers.extend(crate::delivery::spawn_shopify_pull(&app, client.clone()));
    // Pictures on the cloud are fetched only when the cloud is live: in shadow mode (and
    // off) nothing at all is sent to it.
    let cloud_url = app
        .cfg
        .remotes
        .get(&edge_sync::domain::Remote::Cloud)
        .filter(|r| r.mode == crate::config::Mode::Live)
        .and_then(|r| r.url.clone());
    match crate::pictures::Pictures::open(&app.cfg.data_dir, cloud_url, client.clone()) {
        Ok(p) => {
            let p = Arc::new(p);
            let _ = app.pictures.set(p.clone());
            workers.push(tokio::spawn(p.run(app.store.clone(), app.stopping.subscribe())));
        }
        Err(e) => tracing::warn!(error = %e, "no item pictures: cannot make the pictures folder"),
    }
    workers.extend(crate::delivery::spawn_cloud_link(&app, client));
    tokio::spawn(crate::delivery::announce_status(app.clone()));
    let api = serde_json::to_vec(&ApiFile { url: url.clone() }).map_err(|e| e.to_string())?;
    write_public(&announce_dir.join("api.json"), &api).map_err(|e| format!("cannot write api.json: {e}"))?;
    tracing::info!(%url, store = %app.cfg.store_id, "API ready");
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "READY {url}");
        let _ = out.flush();
    }
    notify(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status(&status_line(&app))]);
    spawn_watchdog(app.clone());
    let res = serve(app.clone(), listener, shutdown).await.map_err(|e| e.to_string());
    // Workers stop when draining starts and wait briefly for replies in flight.
    for w in workers {
        let _ = tokio::time::timeout(Duration::from_secs(5), w).await;
    }
    let store = app.store.clone();
    match tokio::task::spawn_blocking(move || store.sync()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("final store sync: {e}")),
        Err(e) => return Err(format!("final store sync: {e}")),
    }
    res
}

/// Hands memory freed by a bulk job (a catalog import) back to the OS. glibc keeps freed
/// heap in its arenas; after importing a large catalog that is tens of MB the daemon would
/// otherwise hold for nothing (kiosk boxes have little memory).
#[allow(unsafe_code)]
pub fn release_free_memory() {
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no pointers
    // from us and is safe to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_jump_is_told_from_normal_time_passing() {
        let t0 = jiff::Timestamp::from_second(1_700_000_000).expect("t");
        let later = |s: i64| jiff::Timestamp::from_second(1_700_000_000 + s).expect("t");
        assert_eq!(clock_jump(t0, later(10), Duration::from_secs(10)), None);
        assert_eq!(clock_jump(t0, later(40), Duration::from_secs(10)), None, "30 s is still a slew");
        assert_eq!(clock_jump(t0, later(3610), Duration::from_secs(10)), Some(3600), "an hour forward");
        assert_eq!(clock_jump(t0, later(-50), Duration::from_secs(10)), Some(-60), "back in time");
    }
}
