//! The fake remotes over real HTTP (`edge-lab fakes`, and embedded in `edged demo`).
//!
//! The behaviour lives in `edge_sync::cloud::fake`, `edge_sync::lightspeed::fake`,
//! `edge_sync::netsuite::fake` and `edge_sync::shopify::fake` (state machines shared with the simulation); this module
//! only puts them on sockets, one listener each. Two faults need the socket itself:
//! `down` drops every connection (new ones at accept, open ones at their next request),
//! and a reply lost after commit drops the connection after the fake has kept the batch,
//! so the client sees a broken connection exactly as it would in a store.

use axum::Router;
use axum::body::Bytes;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method as HttpMethod, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use edge_sync::cloud::fake::{Disposition, FakeCloud, FakeConfig};
use edge_sync::lightspeed::fake::{FakeLightspeed, LsFakeConfig};
use edge_sync::netsuite::fake::{FakeNetSuite, NsFakeConfig};
use edge_sync::shopify::fake::{FakeShopify, ShopifyFakeConfig};
use edge_sync::wire::{HttpRequest, Method};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// `DIR/fakes.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FakesFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lightspeed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netsuite: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shopify: Option<String>,
}

impl FakesFile {
    /// The remotes it names, by name (`cloud`, `lightspeed`, `netsuite`, `shopify`).
    pub fn urls(&self) -> std::collections::BTreeMap<String, String> {
        [
            ("cloud", &self.cloud),
            ("lightspeed", &self.lightspeed),
            ("netsuite", &self.netsuite),
            ("shopify", &self.shopify),
        ]
        .into_iter()
        .filter_map(|(n, u)| Some((n.to_string(), u.clone()?)))
        .collect()
    }
}

/// Limits of the fakes.
#[derive(Debug, Clone)]
pub struct FakesOptions {
    pub host: String,
    pub store_id: String,
    pub cloud_secret: Vec<u8>,
    pub cloud_bucket: f64,
    pub cloud_refill_per_s: f64,
    /// The demo catalog the fakes start from (same items as `edged demo --catalog-size`).
    pub catalog_size: u64,
    /// Lightspeed's cost rules.
    pub ls_rules: edge_sync::lightspeed::bucket::Rules,
    /// Lightspeed's registers (bucket 90 + 10 and drip 1 + 0.5 per extra register).
    pub ls_registers: u32,
    /// Lightspeed's drip-rate multiplier (drains measured in seconds).
    pub ls_speed: u32,
    /// Lightspeed bucket size and drip per second, instead of the rules' (thousandths).
    pub ls_bucket: Option<(i64, i64)>,
    /// NetSuite's concurrent request limit.
    pub ns_concurrency: usize,
    /// NetSuite's time to serve a request (requests overlap for this long).
    pub ns_processing_ms: u64,
    /// NetSuite M2M: client id, certificate id, public key.
    pub ns_m2m: Option<(String, String, Vec<u8>)>,
    /// Shopify's bucket: size and restore rate (points, points a second).
    pub shopify_bucket: (f64, f64),
    /// Shopify's restore-rate multiplier (drains measured in seconds).
    pub shopify_speed: u32,
    /// A Shopify development store (5 orders a minute).
    pub shopify_dev_store: bool,
}

impl Default for FakesOptions {
    fn default() -> Self {
        FakesOptions {
            host: "127.0.0.1".into(),
            store_id: "store-001".into(),
            cloud_secret: b"demo-cloud-secret".to_vec(),
            cloud_bucket: 1000.0,
            cloud_refill_per_s: 200.0,
            catalog_size: 2000,
            ls_rules: edge_sync::lightspeed::bucket::Rules::Current,
            ls_registers: 1,
            ls_speed: 1,
            ls_bucket: None,
            ns_concurrency: 5,
            ns_processing_ms: 5,
            ns_m2m: None,
            shopify_bucket: (2000.0, 100.0),
            shopify_speed: 1,
            shopify_dev_store: false,
        }
    }
}

/// A TCP stream the handler can break.
pub struct KillableStream {
    inner: TcpStream,
    killed: Arc<AtomicBool>,
}

fn broken() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "dropped by the fake")
}

impl AsyncRead for KillableStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.killed.load(Ordering::SeqCst) {
            return Poll::Ready(Err(broken()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.killed.load(Ordering::SeqCst) {
            return Poll::Ready(Err(broken()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Accepts connections, dropping them while the fake is down.
pub struct KillableListener {
    inner: TcpListener,
    down: Arc<AtomicBool>,
}

impl Listener for KillableListener {
    type Io = KillableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((s, a)) => {
                    // Down: connections are dropped before a byte is answered, except the
                    // ones for the inspection and fault surface (`/_fake/…`), so a test can
                    // always heal the fake.
                    if self.down.load(Ordering::SeqCst) && !is_fake_surface(&s).await {
                        drop(s);
                        continue;
                    }
                    let _ = s.set_nodelay(true);
                    return (KillableStream { inner: s, killed: Arc::new(AtomicBool::new(false)) }, a);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "fake: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Whether a new connection's first request is for `/_fake/…` (peeked, not consumed).
async fn is_fake_surface(s: &tokio::net::TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(std::time::Duration::from_millis(200), s.peek(&mut buf)).await {
        Ok(Ok(n)) => buf[..n].windows(8).any(|w| w == b" /_fake/"),
        _ => false,
    }
}

/// The handler's grip on its connection.
#[derive(Clone)]
pub struct ConnKill(Arc<AtomicBool>);

impl Connected<IncomingStream<'_, KillableListener>> for ConnKill {
    fn connect_info(stream: IncomingStream<'_, KillableListener>) -> Self {
        ConnKill(stream.io().killed.clone())
    }
}

#[derive(Clone)]
struct CloudState {
    fake: Arc<Mutex<FakeCloud>>,
    down: Arc<AtomicBool>,
    /// Told when a push message may have been added.
    pushed: Arc<tokio::sync::Notify>,
}

fn method_of(m: &HttpMethod) -> Option<Method> {
    match *m {
        HttpMethod::GET => Some(Method::Get),
        HttpMethod::POST => Some(Method::Post),
        HttpMethod::PUT => Some(Method::Put),
        HttpMethod::DELETE => Some(Method::Delete),
        _ => None,
    }
}

fn to_request(method: Method, uri: &Uri, headers: &HeaderMap, body: Vec<u8>) -> HttpRequest {
    HttpRequest {
        method,
        path: uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| uri.path().to_string()),
        headers: headers
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string())))
            .collect(),
        body,
    }
}

/// `GET /v1/stores/{store}/stream?after=N`: the signed push messages after N, then new ones
/// as they come, with a ping every 25 s.
async fn stream_handler(
    State(st): State<CloudState>,
    ConnectInfo(kill): ConnectInfo<ConnKill>,
    uri: Uri,
    headers: HeaderMap,
    ws: axum::extract::WebSocketUpgrade,
) -> Response {
    let req = to_request(Method::Get, &uri, &headers, Vec::new());
    let after =
        uri.query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("after="))).map(|v| v.parse::<u64>());
    let after = match after {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return (StatusCode::BAD_REQUEST, "after must be a message id").into_response(),
    };
    {
        let mut f = st.fake.lock().unwrap_or_else(|p| p.into_inner());
        if f.faults().down {
            kill.0.store(true, Ordering::SeqCst);
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        let store_ok = uri.path() == format!("/v1/stores/{}/stream", f.store_id());
        if !store_ok {
            return (StatusCode::NOT_FOUND, "unknown store").into_response();
        }
        if let Err(r) = f.authenticate(Timestamp::now(), &req) {
            let mut resp = Response::new(axum::body::Body::from(r.body));
            *resp.status_mut() = StatusCode::UNAUTHORIZED;
            return resp;
        }
    }
    ws.on_upgrade(move |socket| stream_session(st, socket, after))
}

async fn stream_session(st: CloudState, mut socket: axum::extract::ws::WebSocket, mut after: u64) {
    use axum::extract::ws::Message as WsMessage;
    loop {
        let (msgs, down) = {
            let f = st.fake.lock().unwrap_or_else(|p| p.into_inner());
            (f.pushes_after(after), f.faults().down)
        };
        if down {
            return;
        }
        for m in msgs {
            after = m.id;
            let text = serde_json::to_string(&m).unwrap_or_default();
            if socket.send(WsMessage::Text(text.into())).await.is_err() {
                return;
            }
        }
        let notified = st.pushed.notified();
        tokio::select! {
            () = notified => {}
            () = tokio::time::sleep(std::time::Duration::from_secs(25)) => {
                if socket.send(WsMessage::Ping(Bytes::new())).await.is_err() {
                    return;
                }
            }
            m = socket.recv() => match m {
                None | Some(Err(_)) | Some(Ok(WsMessage::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

async fn cloud_handler(
    State(st): State<CloudState>,
    ConnectInfo(kill): ConnectInfo<ConnKill>,
    method: HttpMethod,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(method) = method_of(&method) else {
        return (StatusCode::METHOD_NOT_ALLOWED, "method not allowed").into_response();
    };
    let req = to_request(method, &uri, &headers, body.to_vec());
    let (disp, latency) = {
        let mut f = st.fake.lock().unwrap_or_else(|p| p.into_inner());
        let before = f.last_push();
        let d = f.handle(Timestamp::now(), &req);
        st.down.store(f.faults().down, Ordering::SeqCst);
        if f.last_push() != before || f.faults().down {
            st.pushed.notify_waiters();
        }
        (d, f.faults().latency_ms)
    };
    if latency > 0 && !req.path.starts_with("/_fake/") {
        tokio::time::sleep(std::time::Duration::from_millis(latency.min(120_000))).await;
    }
    reply(disp, &kill)
}

/// A fake of one protocol behind a socket.
trait Served: Send + 'static {
    fn serve(&mut self, now: Timestamp, req: &HttpRequest, concurrent: usize) -> Disposition;
    fn down(&self) -> bool;
    fn latency_ms(&self) -> u64;
}

/// Fakes whose answers do not depend on how many requests are in flight.
macro_rules! served_one_at_a_time {
    ($($fake:ty),*) => {$(
        impl Served for $fake {
            fn serve(&mut self, now: Timestamp, req: &HttpRequest, _concurrent: usize) -> Disposition {
                self.handle(now, req)
            }
            fn down(&self) -> bool {
                self.faults().down
            }
            fn latency_ms(&self) -> u64 {
                self.faults().latency_ms
            }
        }
    )*};
}

served_one_at_a_time!(FakeLightspeed, FakeShopify);

impl Served for FakeNetSuite {
    fn serve(&mut self, now: Timestamp, req: &HttpRequest, concurrent: usize) -> Disposition {
        self.handle(now, req, concurrent)
    }
    fn down(&self) -> bool {
        self.faults().down
    }
    fn latency_ms(&self) -> u64 {
        self.faults().latency_ms
    }
}

struct ServedState<F> {
    fake: Arc<Mutex<F>>,
    down: Arc<AtomicBool>,
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    /// Time a request is held (counted as in flight) before it is answered.
    processing_ms: u64,
}

impl<F> Clone for ServedState<F> {
    fn clone(&self) -> Self {
        ServedState {
            fake: self.fake.clone(),
            down: self.down.clone(),
            in_flight: self.in_flight.clone(),
            processing_ms: self.processing_ms,
        }
    }
}

/// Counts a request in flight until dropped.
struct InFlight(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn served_handler<F: Served>(
    State(st): State<ServedState<F>>,
    ConnectInfo(kill): ConnectInfo<ConnKill>,
    method: HttpMethod,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(method) = method_of(&method) else {
        return (StatusCode::METHOD_NOT_ALLOWED, "method not allowed").into_response();
    };
    let req = to_request(method, &uri, &headers, body.to_vec());
    let surface = req.path.starts_with("/_fake/");
    let concurrent = st.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _guard = InFlight(st.in_flight.clone());
    if st.processing_ms > 0 && !surface {
        tokio::time::sleep(std::time::Duration::from_millis(st.processing_ms)).await;
    }
    let (disp, latency) = {
        let mut f = st.fake.lock().unwrap_or_else(|p| p.into_inner());
        let d = f.serve(Timestamp::now(), &req, if surface { 1 } else { concurrent });
        st.down.store(f.down(), Ordering::SeqCst);
        (d, f.latency_ms())
    };
    if latency > 0 && !surface {
        tokio::time::sleep(std::time::Duration::from_millis(latency.min(120_000))).await;
    }
    reply(disp, &kill)
}

fn reply(disp: Disposition, kill: &ConnKill) -> Response {
    match disp {
        Disposition::Reply(r) => {
            let mut resp = Response::new(axum::body::Body::from(r.body));
            *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            for (k, v) in r.headers {
                if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
                    resp.headers_mut().append(k, v);
                }
            }
            resp
        }
        Disposition::LoseReply | Disposition::Refuse => {
            kill.0.store(true, Ordering::SeqCst);
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

/// Serves a fake on its own port; the fake is made once the URL is known.
async fn serve_fake<F: Served>(
    host: &str,
    processing_ms: u64,
    make: impl FnOnce(&str) -> F,
) -> io::Result<(String, Arc<Mutex<F>>)> {
    let listener = TcpListener::bind((host, 0)).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let fake = Arc::new(Mutex::new(make(&url)));
    let down = Arc::new(AtomicBool::new(false));
    let st = ServedState {
        fake: fake.clone(),
        down: down.clone(),
        in_flight: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        processing_ms,
    };
    let router =
        Router::new().fallback(served_handler::<F>).layer(DefaultBodyLimit::max(8 * 1024 * 1024)).with_state(st);
    let listener = KillableListener { inner: listener, down };
    tokio::spawn(async move {
        let svc = router.into_make_service_with_connect_info::<ConnKill>();
        if let Err(e) = axum::serve(listener, svc).await {
            tracing::error!(error = %e, "a fake stopped");
        }
    });
    Ok((url, fake))
}

/// A running set of fakes.
pub struct Fakes {
    pub file: FakesFile,
    pub cloud: Arc<Mutex<FakeCloud>>,
    pub lightspeed: Arc<Mutex<FakeLightspeed>>,
    pub netsuite: Arc<Mutex<FakeNetSuite>>,
    pub shopify: Arc<Mutex<FakeShopify>>,
}

/// Binds and serves the fakes (cloud, Lightspeed, NetSuite, Shopify) on the current runtime; returns
/// at once.
pub async fn start(opts: &FakesOptions) -> io::Result<Fakes> {
    let mut cfg = FakeConfig::new(&opts.store_id, &opts.cloud_secret);
    cfg.bucket_capacity = opts.cloud_bucket;
    cfg.refill_per_s = opts.cloud_refill_per_s;
    let seed = getrandom::u64().unwrap_or(0x5eed);
    let mut fake = FakeCloud::new(cfg, seed);
    fake.seed_catalog(opts.catalog_size);
    let cloud = Arc::new(Mutex::new(fake));
    let down = Arc::new(AtomicBool::new(false));
    let listener = TcpListener::bind((opts.host.as_str(), 0)).await?;
    let addr = listener.local_addr()?;
    let router = Router::new()
        .route("/v1/stores/{store}/stream", axum::routing::get(stream_handler))
        .fallback(cloud_handler)
        .layer(DefaultBodyLimit::max(8 * 1024 * 1024))
        .with_state(CloudState {
            fake: cloud.clone(),
            down: down.clone(),
            pushed: Arc::new(tokio::sync::Notify::new()),
        });
    let listener = KillableListener { inner: listener, down };
    tokio::spawn(async move {
        let svc = router.into_make_service_with_connect_info::<ConnKill>();
        if let Err(e) = axum::serve(listener, svc).await {
            tracing::error!(error = %e, "fake cloud stopped");
        }
    });
    let url = format!("http://{addr}");
    tracing::info!(%url, "fake cloud listening");
    let o = opts.clone();
    let (ls_url, lightspeed) = serve_fake(&opts.host, 0, move |u| {
        let mut c = LsFakeConfig::demo(u);
        c.rules = o.ls_rules;
        c.registers = o.ls_registers;
        c.speed = o.ls_speed;
        c.catalog_size = o.catalog_size;
        let mut f = FakeLightspeed::new(c, seed ^ 0x4c53);
        if let Some((size, drip)) = o.ls_bucket {
            f.set_bucket(size, drip);
        }
        f
    })
    .await?;
    tracing::info!(url = %ls_url, "fake Lightspeed listening");
    let o = opts.clone();
    let (ns_url, netsuite) = serve_fake(&opts.host, opts.ns_processing_ms, move |u| {
        let mut c = NsFakeConfig::demo(u);
        c.concurrency = o.ns_concurrency;
        c.catalog_size = o.catalog_size;
        c.m2m = o.ns_m2m.clone();
        FakeNetSuite::new(c, seed ^ 0x4e53)
    })
    .await?;
    tracing::info!(url = %ns_url, "fake NetSuite listening");
    let o = opts.clone();
    let (sh_url, shopify) = serve_fake(&opts.host, 0, move |u| {
        let mut c = ShopifyFakeConfig::demo(u);
        c.catalog_size = o.catalog_size;
        (c.max, c.restore) = o.shopify_bucket;
        c.speed = o.shopify_speed;
        c.dev_store = o.shopify_dev_store;
        FakeShopify::new(c, seed ^ 0x5348)
    })
    .await?;
    tracing::info!(url = %sh_url, "fake Shopify listening");
    Ok(Fakes {
        file: FakesFile { cloud: Some(url), lightspeed: Some(ls_url), netsuite: Some(ns_url), shopify: Some(sh_url) },
        cloud,
        lightspeed,
        netsuite,
        shopify,
    })
}

/// Starts the fakes on a thread of their own (the demo's embedded remotes), so they behave
/// like a separate service and outlive nothing but the process.
pub fn start_in_background(opts: FakesOptions) -> Result<FakesFile, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("fakes".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(format!("cannot start the fakes' runtime: {e}")));
                    return;
                }
            };
            rt.block_on(async move {
                match start(&opts).await {
                    Ok(f) => {
                        let _ = tx.send(Ok(f.file.clone()));
                        std::future::pending::<()>().await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(format!("cannot start the fakes: {e}")));
                    }
                }
            });
        })
        .map_err(|e| format!("cannot start the fakes' thread: {e}"))?;
    rx.recv().map_err(|_| "the fakes' thread ended before it was ready".to_string())?
}
