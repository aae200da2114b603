//! The local API client: HTTP calls and the event stream, all on the tokio runtime (never
//! on the UI thread). Where the daemon is comes from `--api/--token` or, with
//! `--data-dir`, from `api.json` and `tokens.json`, read again on every reconnect (a
//! restarted demo may listen on another port).

use edge_api::{Event, Problem};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Where the daemon is.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// A fixed URL and token.
    Fixed { url: String, token: Option<String> },
    /// A data dir of `edged demo` (or of a store box): api.json, and tokens.json for the
    /// kiosk role when `kiosk_token` is set.
    DataDir { dir: PathBuf, kiosk_token: bool },
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// The daemon did not answer (not running, restarting, or the call timed out): the
    /// outcome of a write is unknown and it must be retried with the same id.
    Unreachable(String),
    /// The daemon answered with a problem.
    /// `code` is the problem's kind without its `/problems/` prefix (`card-declined`): the
    /// screens say it in their language; `detail` is the daemon's own (English) sentence.
    Refused { status: u16, code: String, title: String, detail: String, field: Option<String> },
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Unreachable(e) => write!(f, "{e}"),
            ApiError::Refused { detail, .. } => write!(f, "{detail}"),
        }
    }
}

impl ApiError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Refused { status, .. } => Some(*status),
            ApiError::Unreachable(_) => None,
        }
    }
}

/// The client. Cheap to clone (shared inside).
#[derive(Clone)]
pub struct Api {
    endpoint: Endpoint,
    http: reqwest::Client,
    /// The URL and token in use (the token may change at a PIN login).
    state: Arc<RwLock<(Option<String>, Option<String>)>>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

#[derive(serde::Deserialize)]
struct ApiJson {
    url: String,
}

impl Api {
    pub fn new(endpoint: Endpoint) -> Result<Api, String> {
        // rustls with ring, as edged uses (the API is loopback HTTP; a remote edged over
        // https would need it). Installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            // A card payment waits for the cardholder; everything else answers fast.
            .timeout(Duration::from_secs(150))
            .build()
            .map_err(|e| format!("cannot make the HTTP client: {e}"))?;
        let token = match &endpoint {
            Endpoint::Fixed { token, .. } => token.clone(),
            Endpoint::DataDir { .. } => None,
        };
        let url = match &endpoint {
            Endpoint::Fixed { url, .. } => Some(url.trim_end_matches('/').to_string()),
            Endpoint::DataDir { .. } => None,
        };
        Ok(Api { endpoint, http, state: Arc::new(RwLock::new((url, token))) })
    }

    /// Reads api.json (and the kiosk token) again from a data dir.
    pub fn refresh_endpoint(&self) -> Result<(), String> {
        let Endpoint::DataDir { dir, kiosk_token } = &self.endpoint else { return Ok(()) };
        let p = dir.join("api.json");
        let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        let a: ApiJson = serde_json::from_str(&text).map_err(|e| format!("{}: not an api.json: {e}", p.display()))?;
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        st.0 = Some(a.url.trim_end_matches('/').to_string());
        if *kiosk_token {
            let p = dir.join("tokens.json");
            let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            let t: edge_api::TokensFile =
                serde_json::from_str(&text).map_err(|e| format!("{}: not a tokens file: {e}", p.display()))?;
            st.1 = Some(t.kiosk);
        }
        Ok(())
    }

    /// The token a PIN login handed out (None: logged out).
    pub fn set_token(&self, token: Option<String>) {
        self.state.write().unwrap_or_else(|e| e.into_inner()).1 = token;
    }

    pub fn has_token(&self) -> bool {
        self.state.read().unwrap_or_else(|e| e.into_inner()).1.is_some()
    }

    fn url_token(&self) -> Result<(String, Option<String>), ApiError> {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        match &st.0 {
            Some(u) => Ok((u.clone(), st.1.clone())),
            None => Err(ApiError::Unreachable("the register service has not started yet".into())),
        }
    }

    /// The event stream's request: ws://…/v1/events with the token in the Authorization
    /// header (never in the URL, which error messages may repeat).
    pub fn events_request(&self) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request, ApiError> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let (url, token) = self.url_token()?;
        let ws = url.replacen("http://", "ws://", 1).replacen("https://", "wss://", 1);
        let mut req = format!("{ws}/v1/events")
            .into_client_request()
            .map_err(|e| ApiError::Unreachable(format!("bad daemon URL: {e}")))?;
        if let Some(t) = token {
            let v = format!("Bearer {t}")
                .parse()
                .map_err(|_| ApiError::Unreachable("the token is not a valid header value".into()))?;
            req.headers_mut().insert("authorization", v);
        }
        Ok(req)
    }

    /// A picture (or any bytes) from the daemon, with its content type.
    pub async fn get_bytes(&self, path: &str) -> Result<(Vec<u8>, String), ApiError> {
        let (url, token) = self.url_token()?;
        let mut req = self.http.get(format!("{url}{path}")).timeout(Duration::from_secs(10));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| ApiError::Unreachable(e.to_string()))?;
        let status = resp.status();
        let kind = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let bytes = resp.bytes().await.map_err(|e| ApiError::Unreachable(e.to_string()))?;
        if !status.is_success() {
            return Err(ApiError::Refused {
                status: status.as_u16(),
                code: "no-picture".into(),
                title: status.to_string(),
                detail: format!("{path} answered {status}"),
                field: None,
            });
        }
        Ok((bytes.to_vec(), kind))
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        token: Option<String>,
        extra: &[(&str, String)],
    ) -> Result<T, ApiError> {
        let mut req = req;
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in extra {
            req = req.header(*k, v);
        }
        let resp = req.send().await.map_err(|e| ApiError::Unreachable(e.to_string()))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| ApiError::Unreachable(e.to_string()))?;
        if status.is_success() {
            let body: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
            return serde_json::from_slice(body).map_err(|e| ApiError::Refused {
                status: status.as_u16(),
                code: "bad-answer".into(),
                title: "Unexpected answer".into(),
                detail: format!("the register service answered something this screen does not understand: {e}"),
                field: None,
            });
        }
        match serde_json::from_slice::<Problem>(&bytes) {
            Ok(p) => Err(ApiError::Refused {
                status: p.status,
                code: p.kind.rsplit('/').next().unwrap_or_default().to_string(),
                title: p.title,
                detail: p.detail,
                field: p.field,
            }),
            Err(_) => Err(ApiError::Refused {
                status: status.as_u16(),
                code: "bad-answer".into(),
                title: status.to_string(),
                detail: format!("the register service answered {status}"),
                field: None,
            }),
        }
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let (url, token) = self.url_token()?;
        self.send(self.http.get(format!("{url}{path}")).timeout(Duration::from_secs(10)), token, &[]).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ApiError> {
        self.post_with(path, body, None, &[]).await
    }

    /// POST with another token than the session's (a manager's for one action) and headers.
    pub async fn post_with<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        token: Option<&str>,
        extra: &[(&str, String)],
    ) -> Result<T, ApiError> {
        let (url, session_token) = self.url_token()?;
        let token = token.map(str::to_string).or(session_token);
        self.send(self.http.post(format!("{url}{path}")).json(body), token, extra).await
    }
}

/// Reads the event stream until it ends; `on` gets each event. Returns why it ended.
pub async fn read_events(api: &Api, on_open: &(dyn Fn() + Send + Sync), on: &(dyn Fn(Event) + Send + Sync)) -> String {
    use futures_util::StreamExt;
    let req = match api.events_request() {
        Ok(r) => r,
        Err(e) => return e.to_string(),
    };
    let (mut ws, _) = match tokio::time::timeout(Duration::from_secs(3), tokio_tungstenite::connect_async(req)).await {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return format!("event stream: {e}"),
        Err(_) => return "event stream: no answer in 3 s".into(),
    };
    on_open();
    loop {
        // The daemon pings every 20 s; silence for 45 s means the connection is gone.
        let msg = match tokio::time::timeout(Duration::from_secs(45), ws.next()).await {
            Ok(Some(Ok(m))) => m,
            Ok(Some(Err(e))) => return format!("event stream: {e}"),
            Ok(None) => return "event stream closed".into(),
            Err(_) => return "event stream silent for 45 s".into(),
        };
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            match serde_json::from_str::<Event>(t.as_str()) {
                Ok(ev) => on(ev),
                Err(e) => tracing::debug!(error = %e, "event not understood; skipped"),
            }
        }
    }
}
