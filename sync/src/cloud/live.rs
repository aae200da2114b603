//! The cloud link's long-running tasks in edged: the puller (catalog, prices, stock, config
//! by cursor, every `interval` and whenever the cloud says something changed) and the push
//! stream (a WebSocket of signed messages, resumed after the last message id).
//!
//! Both run beside the push worker, one request or connection each, so they never take the
//! push worker's slots. A message whose signature does not verify is dropped and counted; a
//! message seen before (id not above the last one) is skipped.

use super::PushMessage;
use super::pull::{Feed, Puller};
use crate::engine::run::exchange;
use crate::store::Store;
use futures_util::{SinkExt, StreamExt};
use jiff::Timestamp;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const META_STREAM_LAST: &str = "cloud.stream.last_id";
/// Largest message taken from the stream.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// What the link tells the rest of the daemon.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkHealth {
    pub pull_last_success: Option<Timestamp>,
    pub pull_last_error: Option<String>,
    pub pull_errors: u64,
    pub pulled_records: u64,
    pub refused_records: u64,
    pub stream_connected: bool,
    pub stream_last_id: u64,
    pub stream_last_error: Option<String>,
    pub stream_bad_signatures: u64,
}

/// A remote command from the stream (`sync_now`, `collect_bundle`).
pub type CommandHook = Arc<dyn Fn(&str, &serde_json::Value) + Send + Sync>;

/// The pull and stream side of the cloud connector.
#[derive(Clone)]
pub struct CloudLink {
    pub store_id: String,
    pub secret: Vec<u8>,
    pub base_url: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub health: Arc<Mutex<LinkHealth>>,
    pub wake_pull: Arc<Notify>,
    /// The feeds pulled (catalog, prices and stock only when the cloud is their source).
    pub feeds: Vec<Feed>,
}

impl CloudLink {
    pub fn new(store_id: &str, secret: &[u8], base_url: &str, interval: Duration, timeout: Duration) -> CloudLink {
        CloudLink {
            store_id: store_id.into(),
            secret: secret.into(),
            base_url: base_url.trim_end_matches('/').into(),
            interval,
            timeout,
            health: Arc::new(Mutex::new(LinkHealth::default())),
            wake_pull: Arc::new(Notify::new()),
            feeds: Feed::ALL.to_vec(),
        }
    }

    pub fn health(&self) -> LinkHealth {
        self.health.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn note(&self, f: impl FnOnce(&mut LinkHealth)) {
        f(&mut self.health.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// One round over every feed, each until it has no more pages.
    pub async fn pull_round(&self, store: &Arc<dyn Store>, client: &reqwest::Client) -> Result<(), String> {
        let puller = Puller::new(self.store_id.clone(), self.secret.clone());
        for feed in self.feeds.iter().copied() {
            for _page in 0..10_000 {
                let req = puller.request(store.as_ref(), feed, Timestamp::now()).map_err(|e| e.to_string())?;
                let resp = exchange(client, &self.base_url, &req, self.timeout)
                    .await
                    .map_err(|e| format!("{} pull: {e}", feed.name()))?;
                let (s, r) = (store.clone(), resp);
                let applied = tokio::task::spawn_blocking(move || puller_apply(&s, feed, &r))
                    .await
                    .map_err(|e| e.to_string())??;
                self.note(|h| {
                    h.pulled_records += applied.records;
                    h.refused_records += applied.refused;
                });
                if !applied.has_more {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Pulls every `interval`, when woken, until shutdown.
    pub async fn run_puller(self, store: Arc<dyn Store>, client: reqwest::Client, mut shutdown: watch::Receiver<bool>) {
        loop {
            match self.pull_round(&store, &client).await {
                Ok(()) => self.note(|h| {
                    h.pull_last_success = Some(Timestamp::now());
                    h.pull_last_error = None;
                }),
                Err(e) => {
                    tracing::warn!(error = %e, "cloud pull failed; the next round retries");
                    self.note(|h| {
                        h.pull_errors += 1;
                        h.pull_last_error = Some(e);
                    });
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                () = self.wake_pull.notified() => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }

    fn stream_url(&self, after: u64) -> (String, String) {
        let path = format!("/v1/stores/{}/stream?after={after}", self.store_id);
        let ws = if let Some(rest) = self.base_url.strip_prefix("https://") {
            format!("wss://{rest}{path}")
        } else if let Some(rest) = self.base_url.strip_prefix("http://") {
            format!("ws://{rest}{path}")
        } else {
            format!("{}{path}", self.base_url)
        };
        (ws, path)
    }

    /// Keeps the push stream open (reconnecting with backoff) until shutdown.
    pub async fn run_stream(self, store: Arc<dyn Store>, on_command: CommandHook, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_secs(1);
        loop {
            let started = std::time::Instant::now();
            let res = tokio::select! {
                r = self.stream_once(&store, &on_command) => r,
                _ = shutdown.changed() => return,
            };
            self.note(|h| h.stream_connected = false);
            if let Err(e) = res {
                tracing::info!(error = %e, retry_in_s = backoff.as_secs(), "cloud stream closed");
                self.note(|h| h.stream_last_error = Some(e));
            }
            if started.elapsed() > Duration::from_secs(60) {
                backoff = Duration::from_secs(1);
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(60));
        }
    }

    async fn stream_once(&self, store: &Arc<dyn Store>, on_command: &CommandHook) -> Result<(), String> {
        let last = match store.meta_get(META_STREAM_LAST).map_err(|e| e.to_string())? {
            Some(v) => std::str::from_utf8(&v).ok().and_then(|s| s.parse().ok()).unwrap_or(0),
            None => 0,
        };
        let (url, path) = self.stream_url(last);
        let mut signed =
            crate::wire::HttpRequest { method: crate::wire::Method::Get, path, headers: Vec::new(), body: Vec::new() };
        super::sign(&mut signed, &self.store_id, &self.secret, Timestamp::now());
        let mut req = url.as_str().into_client_request().map_err(|e| format!("stream URL {url}: {e}"))?;
        for (k, v) in &signed.headers {
            let name =
                tokio_tungstenite::tungstenite::http::HeaderName::try_from(k.as_str()).map_err(|e| e.to_string())?;
            let value =
                tokio_tungstenite::tungstenite::http::HeaderValue::try_from(v.as_str()).map_err(|e| e.to_string())?;
            req.headers_mut().insert(name, value);
        }
        let mut cfg = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default();
        cfg.max_message_size = Some(MAX_MESSAGE_BYTES);
        cfg.max_frame_size = Some(MAX_MESSAGE_BYTES);
        let (mut ws, _) =
            tokio::time::timeout(self.timeout, tokio_tungstenite::connect_async_with_config(req, Some(cfg), false))
                .await
                .map_err(|_| "connecting timed out".to_string())?
                .map_err(|e| format!("cannot connect: {e}"))?;
        tracing::info!(after = last, "cloud stream connected");
        self.note(|h| {
            h.stream_connected = true;
            h.stream_last_error = None;
        });
        let mut last = last;
        loop {
            // The cloud pings every 25 s; a silent minute means the link is gone.
            let msg = tokio::time::timeout(Duration::from_secs(60), ws.next())
                .await
                .map_err(|_| "no message or ping for 60 s".to_string())?;
            let msg = match msg {
                None => return Err("closed by the cloud".into()),
                Some(Err(e)) => return Err(e.to_string()),
                Some(Ok(m)) => m,
            };
            let text = match msg {
                Message::Text(t) => t.to_string(),
                Message::Ping(p) => {
                    ws.send(Message::Pong(p)).await.map_err(|e| e.to_string())?;
                    continue;
                }
                Message::Close(_) => return Err("closed by the cloud".into()),
                _ => continue,
            };
            let m: PushMessage = match serde_json::from_str(&text) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "cloud stream: a message that is not a push message; skipped");
                    continue;
                }
            };
            if !m.verify(&self.secret) {
                tracing::warn!(id = m.id, kind = %m.kind, "cloud stream: signature does not verify; message dropped");
                self.note(|h| h.stream_bad_signatures += 1);
                continue;
            }
            if m.id <= last {
                continue;
            }
            match m.kind.as_str() {
                "price.changed" | "item.changed" | "config.changed" => self.wake_pull.notify_one(),
                "command" => {
                    let name = m.data["name"].as_str().unwrap_or("");
                    tracing::info!(command = name, id = m.id, "cloud command");
                    on_command(name, &m.data);
                }
                other => tracing::info!(kind = other, "cloud stream: unknown message type; skipped"),
            }
            last = m.id;
            store.meta_set(META_STREAM_LAST, last.to_string().as_bytes()).map_err(|e| e.to_string())?;
            self.note(|h| h.stream_last_id = last);
        }
    }
}

fn puller_apply(
    store: &Arc<dyn Store>,
    feed: Feed,
    resp: &crate::wire::HttpResponse,
) -> Result<super::pull::Applied, String> {
    // The puller holds no state of its own: its cursors live in the store.
    Puller::new(String::new(), Vec::new()).apply(store.as_ref(), feed, resp).map_err(|e| e.to_string())
}
