//! A small blocking client of the local API, for edgectl, tests and benchmarks. It finds the
//! daemon through a data directory (`api.json` + `tokens.json`) or a URL and token.

use crate::tokens::Role;
use edge_api::{ApiFile, Problem, TokensFile};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;
use std::time::Duration;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach edged at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("{status} {title}: {detail}{}", field.as_ref().map(|f| format!(" (field {f})")).unwrap_or_default())]
    Problem { status: u16, title: String, detail: String, field: Option<String> },
    #[error("{0}")]
    Other(String),
}

impl From<Problem> for ClientError {
    fn from(p: Problem) -> ClientError {
        ClientError::Problem { status: p.status, title: p.title, detail: p.detail, field: p.field }
    }
}

pub struct Client {
    pub base: String,
    token: String,
    http: reqwest::blocking::Client,
}

impl Client {
    pub fn new(base: &str, token: &str) -> Result<Client, ClientError> {
        edge_sync::tls::install_provider();
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ClientError::Other(e.to_string()))?;
        Ok(Client { base: base.trim_end_matches('/').to_string(), token: token.to_string(), http })
    }

    /// Finds a running daemon from its data directory.
    pub fn from_data_dir(dir: &Path, role: Role) -> Result<Client, ClientError> {
        let read = |name: &str| {
            std::fs::read(dir.join(name)).map_err(|e| {
                ClientError::Other(format!("{}: {e} (is edged running with this data dir?)", dir.join(name).display()))
            })
        };
        let api: ApiFile = serde_json::from_slice(&read("api.json")?)
            .map_err(|e| ClientError::Other(format!("{}/api.json is not valid: {e}", dir.display())))?;
        let tokens: TokensFile = serde_json::from_slice(&read("tokens.json")?)
            .map_err(|e| ClientError::Other(format!("{}/tokens.json is not valid: {e}", dir.display())))?;
        let token = match role {
            Role::Cashier => tokens.cashier,
            Role::Manager => tokens.manager,
            Role::Tech => tokens.tech,
            Role::Kiosk => tokens.kiosk,
        };
        Client::new(&api.url, &token)
    }

    fn unreachable(&self, e: reqwest::Error) -> ClientError {
        ClientError::Unreachable { url: self.base.clone(), detail: e.to_string() }
    }

    fn finish<T: DeserializeOwned>(&self, resp: reqwest::blocking::Response) -> Result<T, ClientError> {
        let status = resp.status();
        let bytes = resp.bytes().map_err(|e| self.unreachable(e))?;
        if status.is_success() {
            serde_json::from_slice(&bytes)
                .map_err(|e| ClientError::Other(format!("edged answered {status} with an unexpected body: {e}")))
        } else {
            match serde_json::from_slice::<Problem>(&bytes) {
                Ok(p) => Err(p.into()),
                Err(_) => {
                    Err(ClientError::Other(format!("edged answered {status}: {}", String::from_utf8_lossy(&bytes))))
                }
            }
        }
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .map_err(|e| self.unreachable(e))?;
        self.finish(resp)
    }

    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        idempotency_key: Option<&str>,
    ) -> Result<T, ClientError> {
        let mut req = self.http.post(format!("{}{path}", self.base)).bearer_auth(&self.token).json(body);
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        let resp = req.send().map_err(|e| self.unreachable(e))?;
        self.finish(resp)
    }

    /// `GET /metrics` (text).
    pub fn metrics_text(&self) -> Result<String, ClientError> {
        let resp = self.http.get(format!("{}/metrics", self.base)).send().map_err(|e| self.unreachable(e))?;
        resp.text().map_err(|e| self.unreachable(e))
    }
}
