//! The engine's async driver in edged: one task per remote, HTTP over reqwest.
//!
//! Each task asks its [`Worker`] what to send (store work runs on the blocking pool: the
//! InFlight move ends with an fdatasync), sends up to the policy's concurrency cap, hands
//! every reply back, and sleeps until the worker's next deadline, a new sale
//! ([`SyncEngine::wake`]) or shutdown. At shutdown it waits a little for replies in flight
//! and leaves the rest InFlight: the next start re-sends them with the same ids.

use super::{Batch, Health, Poll, Worker};
use crate::domain::Remote;
use crate::store::Store;
use crate::wire::{HttpRequest, HttpResponse, TransportError};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use jiff::Timestamp;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// Largest reply body read from a remote.
pub const MAX_REPLY_BYTES: usize = 8 * 1024 * 1024;

/// Where time comes from (the simulation uses its own).
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The machine's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// How a remote's requests travel when they are not HTTP: the store bus publishes a batch
/// to NATS JetStream and makes the stream's acks into a reply (see `bus::live`).
pub trait Transport: Send + Sync {
    fn exchange<'a>(
        &'a self,
        req: &'a HttpRequest,
        timeout: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<HttpResponse, TransportError>> + Send + 'a>>;
}

/// One remote as the daemon sees it.
pub struct RemoteHandle {
    pub name: Remote,
    pub base_url: String,
    pub timeout: Duration,
    /// Not HTTP: the requests go through this.
    transport: Option<Arc<dyn Transport>>,
    worker: Arc<Mutex<Worker>>,
    /// Last health seen, for readers that must not wait while the worker is busy with the
    /// store (an fdatasync can take long on a sick disk).
    last_health: Arc<Mutex<Option<Health>>>,
    wake: Arc<Notify>,
}

/// All remote workers of the daemon.
#[derive(Default)]
pub struct SyncEngine {
    remotes: BTreeMap<Remote, RemoteHandle>,
}

impl SyncEngine {
    pub fn new() -> SyncEngine {
        SyncEngine::default()
    }

    pub fn add(&mut self, worker: Worker, base_url: &str, timeout: Duration) {
        let name = worker.remote();
        self.remotes.insert(
            name,
            RemoteHandle {
                name,
                base_url: base_url.trim_end_matches('/').to_string(),
                timeout,
                transport: None,
                worker: Arc::new(Mutex::new(worker)),
                last_health: Arc::new(Mutex::new(None)),
                wake: Arc::new(Notify::new()),
            },
        );
    }

    /// A remote whose requests go through `transport` rather than HTTP (the store bus).
    pub fn add_with(&mut self, worker: Worker, transport: Arc<dyn Transport>, timeout: Duration) {
        let name = worker.remote();
        self.add(worker, "", timeout);
        if let Some(h) = self.remotes.get_mut(&name) {
            h.base_url = format!("{name}:");
            h.transport = Some(transport);
        }
    }

    pub fn names(&self) -> Vec<Remote> {
        self.remotes.keys().copied().collect()
    }

    /// The remote's health now, or as last seen if its worker is busy.
    pub fn health(&self, remote: Remote, now: Timestamp) -> Option<Health> {
        let r = self.remotes.get(&remote)?;
        let mut last = r.last_health.lock().unwrap_or_else(|p| p.into_inner());
        match r.worker.try_lock() {
            Ok(w) => {
                let h = w.health(now);
                *last = Some(h.clone());
                Some(h)
            }
            Err(_) => last.clone(),
        }
    }

    /// New work for every remote (a sale was committed).
    pub fn wake(&self) {
        for r in self.remotes.values() {
            r.wake.notify_one();
        }
    }

    /// "Sync now": forget backoff, probe open breakers, wake every worker. Does not wait for
    /// a busy worker: it is told on its own thread.
    pub fn nudge(&self, now: Timestamp) {
        for r in self.remotes.values() {
            let (w, wake) = (r.worker.clone(), r.wake.clone());
            std::thread::spawn(move || {
                w.lock().unwrap_or_else(|p| p.into_inner()).nudge(now);
                wake.notify_one();
            });
        }
    }

    /// Starts one task per remote. They end after `shutdown` turns true.
    pub fn spawn(
        &self,
        store: Arc<dyn Store>,
        client: reqwest::Client,
        shutdown: watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        self.remotes
            .values()
            .map(|r| {
                let task = Task {
                    name: r.name,
                    base_url: r.base_url.clone(),
                    worker: r.worker.clone(),
                    wake: r.wake.clone(),
                    store: store.clone(),
                    client: client.clone(),
                    transport: r.transport.clone(),
                    timeout: r.timeout,
                };
                tokio::spawn(task.run(shutdown.clone()))
            })
            .collect()
    }
}

struct Task {
    name: Remote,
    base_url: String,
    worker: Arc<Mutex<Worker>>,
    wake: Arc<Notify>,
    store: Arc<dyn Store>,
    client: reqwest::Client,
    transport: Option<Arc<dyn Transport>>,
    timeout: Duration,
}

type Reply = (u64, Result<HttpResponse, TransportError>);

impl Task {
    async fn poll(&self) -> Result<Poll, String> {
        let (w, s) = (self.worker.clone(), self.store.clone());
        tokio::task::spawn_blocking(move || {
            let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
            w.poll(Timestamp::now(), &*s).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| format!("worker task: {e}"))?
    }

    async fn reply(&self, (seq, r): Reply) {
        let (w, s) = (self.worker.clone(), self.store.clone());
        let res = tokio::task::spawn_blocking(move || {
            let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
            w.on_reply(Timestamp::now(), &*s, seq, r).map_err(|e| e.to_string())
        })
        .await;
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(remote = %self.name, error = %e, "storing a delivery result failed"),
            Err(e) => tracing::error!(remote = %self.name, error = %e, "worker task failed"),
        }
    }

    async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut inflight: FuturesUnordered<_> = FuturesUnordered::new();
        tracing::info!(remote = %self.name, url = %self.base_url, "sync worker started");
        loop {
            if *shutdown.borrow() {
                break;
            }
            let deadline = match self.poll().await {
                Ok(Poll::Send(b)) => {
                    inflight.push(send(
                        self.client.clone(),
                        self.transport.clone(),
                        self.base_url.clone(),
                        b,
                        self.timeout,
                    ));
                    continue;
                }
                Ok(Poll::WaitUntil(t)) => {
                    let ms = (t.as_millisecond() - Timestamp::now().as_millisecond()).max(1);
                    Some(Duration::from_millis(u64::try_from(ms).unwrap_or(1)))
                }
                Ok(Poll::Idle) => None,
                Err(e) => {
                    tracing::error!(remote = %self.name, error = %e, "sync worker could not read the outbox");
                    Some(Duration::from_secs(5))
                }
            };
            let sleep = tokio::time::sleep(deadline.unwrap_or(Duration::from_secs(3600)));
            tokio::select! {
                Some(r) = inflight.next(), if !inflight.is_empty() => self.reply(r).await,
                () = sleep => {}
                () = self.wake.notified() => {}
                _ = shutdown.changed() => break,
            }
        }
        // Replies already on their way are worth a short wait; the rest stays InFlight.
        let grace = tokio::time::sleep(Duration::from_secs(3));
        tokio::pin!(grace);
        while !inflight.is_empty() {
            tokio::select! {
                Some(r) = inflight.next() => self.reply(r).await,
                () = &mut grace => break,
            }
        }
        tracing::info!(remote = %self.name, left_in_flight = inflight.len(), "sync worker stopped");
    }
}

async fn send(
    client: reqwest::Client,
    transport: Option<Arc<dyn Transport>>,
    base: String,
    b: Batch,
    timeout: Duration,
) -> Reply {
    match transport {
        Some(t) => (b.seq, t.exchange(&b.request, timeout).await),
        None => (b.seq, exchange(&client, &base, &b.request, timeout).await),
    }
}

/// One HTTP exchange, with the error classified by whether the remote may have acted.
pub async fn exchange(
    client: &reqwest::Client,
    base: &str,
    req: &HttpRequest,
    timeout: Duration,
) -> Result<HttpResponse, TransportError> {
    let method = match reqwest::Method::from_bytes(req.method.as_str().as_bytes()) {
        Ok(m) => m,
        Err(e) => return Err(TransportError::Connect(format!("bad method: {e}"))),
    };
    // A path may be a whole URL (Lightspeed's token endpoint lives on another host).
    let url = if req.path.starts_with("https://") || req.path.starts_with("http://") {
        req.path.clone()
    } else {
        format!("{base}{}", req.path)
    };
    let mut rb = client.request(method, url).timeout(timeout).body(req.body.clone());
    for (k, v) in &req.headers {
        rb = rb.header(k, v);
    }
    let resp = rb.send().await.map_err(|e| classify(&e))?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string())))
        .collect();
    let mut body = Vec::new();
    let mut resp = resp;
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if body.len() + c.len() > MAX_REPLY_BYTES {
                    return Err(TransportError::NoReply(format!("reply body over {MAX_REPLY_BYTES} bytes")));
                }
                body.extend_from_slice(&c);
            }
            Ok(None) => break,
            Err(e) => return Err(TransportError::NoReply(format!("reply cut off: {e}"))),
        }
    }
    Ok(HttpResponse { status, headers, body })
}

fn classify(e: &reqwest::Error) -> TransportError {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    if e.is_connect() { TransportError::Connect(msg) } else { TransportError::NoReply(msg) }
}
