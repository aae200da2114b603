//! Item pictures kept on disk for the screens.
//!
//! A catalog item may carry a picture (`Item::image`): an `http(s)` URL its source gave
//! (Lightspeed's image host), or a path on the company cloud (`/pictures/…`, resolved
//! against `remotes.cloud.url`). The screens must show pictures while the store is
//! offline, and must never wait on the internet for one, so the daemon fetches each
//! picture once, in the background, into `DATA/pictures/`, and serves it from there
//! (`GET /v1/catalog/items/{sku}/image`). Pictures on the cloud are fetched only while the
//! cloud is live: in shadow mode nothing at all is sent to it.
//!
//! - A file is named by the SHA-256 of its URL: a changed URL is a new picture, an
//!   unchanged one is never fetched twice.
//! - Only pictures are kept: the bytes must be PNG, JPEG, WebP or SVG (by their content,
//!   not their name) and at most [`MAX_BYTES`]; anything else is refused with the reason
//!   logged, and retried no sooner than [`RETRY_AFTER`].
//! - A file is written to a temporary name, synced and renamed: a power cut leaves the
//!   old state or the whole picture, never half of one.
//! - A round reads the catalog page by page and fetches at most [`PER_ROUND`] pictures,
//!   two at a time, so a first start with a large catalog does not crowd out delivery.

use edge_sync::store::Store;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest picture kept.
pub const MAX_BYTES: usize = 2 * 1024 * 1024;
/// Pictures fetched per round at most.
pub const PER_ROUND: usize = 64;
/// A picture that failed is tried again no sooner than this.
pub const RETRY_AFTER: Duration = Duration::from_secs(600);
/// Time between rounds.
pub const ROUND_EVERY: Duration = Duration::from_secs(30);

/// The picture cache.
pub struct Pictures {
    dir: PathBuf,
    cloud: Option<String>,
    client: reqwest::Client,
    failed: Mutex<HashMap<String, Instant>>,
}

/// The kind of picture the bytes are, as a content type; `None`: not a picture we keep.
pub fn sniff(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some("image/png");
    }
    if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some("image/jpeg");
    }
    if b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        return Some("image/webp");
    }
    let head = &b[..b.len().min(512)];
    let text = std::str::from_utf8(head).ok()?.trim_start_matches('\u{feff}').trim_start();
    if text.starts_with("<svg") || (text.starts_with("<?xml") && text.contains("<svg")) {
        return Some("image/svg+xml");
    }
    None
}

impl Pictures {
    /// The cache in `data_dir/pictures` (made if missing); `cloud_url` resolves the
    /// cloud's picture paths.
    pub fn open(data_dir: &Path, cloud_url: Option<String>, client: reqwest::Client) -> std::io::Result<Pictures> {
        let dir = data_dir.join("pictures");
        std::fs::create_dir_all(&dir)?;
        Ok(Pictures { dir, cloud: cloud_url, client, failed: Mutex::default() })
    }

    fn file_of(&self, url: &str) -> PathBuf {
        let h = Sha256::digest(url.as_bytes());
        let name: String = h.iter().take(20).map(|b| format!("{b:02x}")).collect();
        self.dir.join(name)
    }

    /// Whether the picture at `url` is on disk.
    pub fn has(&self, url: &str) -> bool {
        self.file_of(url).is_file()
    }

    /// The picture at `url` as kept, with its content type.
    pub fn read(&self, url: &str) -> Option<(Vec<u8>, &'static str)> {
        let bytes = std::fs::read(self.file_of(url)).ok()?;
        let kind = sniff(&bytes)?;
        Some((bytes, kind))
    }

    /// Where `url` is fetched from: itself, or the cloud's URL + the path.
    fn resolve(&self, url: &str) -> Result<String, String> {
        if url.starts_with("https://") || url.starts_with("http://") {
            return Ok(url.to_string());
        }
        match (&self.cloud, url.starts_with('/')) {
            (Some(base), true) => Ok(format!("{}{url}", base.trim_end_matches('/'))),
            (None, true) => Err("a cloud picture path, but no remotes.cloud.url".into()),
            _ => Err("not an http(s) URL or a cloud path".into()),
        }
    }

    /// Fetches one picture and keeps it. Err names what is wrong with it.
    pub async fn fetch(&self, url: &str) -> Result<(), String> {
        let from = self.resolve(url)?;
        let resp = self.client.get(&from).timeout(Duration::from_secs(20)).send().await.map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("{from} answered {}", resp.status()));
        }
        if resp.content_length().is_some_and(|n| n as usize > MAX_BYTES) {
            return Err(format!("{from} is larger than {MAX_BYTES} bytes"));
        }
        let mut resp = resp;
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > MAX_BYTES {
                return Err(format!("{from} is larger than {MAX_BYTES} bytes"));
            }
        }
        if sniff(&bytes).is_none() {
            return Err(format!("{from} is not a PNG, JPEG, WebP or SVG picture"));
        }
        let path = self.file_of(url);
        let tmp = path.with_extension("part");
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            if let Some(d) = path.parent() {
                std::fs::File::open(d)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot keep the picture: {e}"))
    }

    /// One round: the catalog's pictures not on disk (and not failed lately), fetched.
    /// Returns how many were fetched.
    pub async fn round(&self, store: &Arc<dyn Store>) -> usize {
        let mut wanted: Vec<String> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let s = store.clone();
            let c = cursor.clone();
            let page = tokio::task::spawn_blocking(move || s.items_page(None, c.as_deref(), 500, 500)).await;
            let Ok(Ok((entries, next))) = page else { break };
            {
                let failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
                for e in entries {
                    if let Some(u) = e.item.image
                        && !wanted.contains(&u)
                        && !self.has(&u)
                        && failed.get(&u).is_none_or(|t| t.elapsed() >= RETRY_AFTER)
                    {
                        wanted.push(u);
                    }
                }
            }
            if wanted.len() >= PER_ROUND || next.is_none() {
                break;
            }
            cursor = next;
        }
        wanted.truncate(PER_ROUND);
        let mut fetched = 0;
        let mut failures: Vec<(String, String)> = Vec::new();
        for pair in wanted.chunks(2) {
            let results = futures_util::future::join_all(pair.iter().map(|u| self.fetch(u))).await;
            for (u, r) in pair.iter().zip(results) {
                match r {
                    Ok(()) => fetched += 1,
                    Err(e) => {
                        self.failed.lock().unwrap_or_else(|p| p.into_inner()).insert(u.clone(), Instant::now());
                        failures.push((u.clone(), e));
                    }
                }
            }
        }
        // One line per round, not one per picture: a store without a cloud URL or offline
        // would otherwise log its whole catalog.
        if let Some((u, e)) = failures.first() {
            tracing::warn!(failed = failures.len(), first = %u, error = %e, "item pictures not kept; tried again later");
        }
        fetched
    }

    /// Rounds until the daemon stops.
    pub async fn run(self: Arc<Self>, store: Arc<dyn Store>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let n = self.round(&store).await;
            if n > 0 {
                tracing::info!(fetched = n, "item pictures kept");
            }
            // A full round goes on at once; otherwise wait.
            let wait = if n >= PER_ROUND { Duration::from_millis(100) } else { ROUND_EVERY };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_are_known_by_their_bytes() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nrest"), Some("image/png"));
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff(b"<?xml version='1.0'?>\n<svg xmlns='x'/>"), Some("image/svg+xml"));
        assert_eq!(sniff(b"  <svg viewBox='0 0 1 1'/>"), Some("image/svg+xml"));
        assert_eq!(sniff(b"<html><body>not found</body></html>"), None);
        assert_eq!(sniff(b"{\"error\": 1}"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn cloud_paths_resolve_against_the_cloud_and_nothing_else_does() {
        let d = tempfile::tempdir().expect("tmp");
        edge_sync::tls::install_provider();
        let client = reqwest::Client::new();
        let p = Pictures::open(d.path(), Some("http://cloud.example/".into()), client.clone()).expect("open");
        assert_eq!(p.resolve("/pictures/A.svg").as_deref(), Ok("http://cloud.example/pictures/A.svg"));
        assert_eq!(p.resolve("https://img.example/a.jpg").as_deref(), Ok("https://img.example/a.jpg"));
        assert!(p.resolve("ftp://x/a.png").is_err());
        let q = Pictures::open(d.path(), None, client).expect("open");
        assert!(q.resolve("/pictures/A.svg").is_err());
    }
}
