//! Lightspeed's OAuth 2 tokens for an offline daemon (§A2 of the reference).
//!
//! - Every refresh returns a new access token *and* a new refresh token; the old refresh
//!   token is revoked once the new access token is first used. So the new pair is persisted
//!   before it is used, and the previous refresh token is kept until then: a refresh whose
//!   answer was lost can be repeated with it.
//! - One refresher at a time: [`Refresher`] holds the token set under an async mutex; a
//!   caller that waited finds the token another caller just refreshed.
//! - A refresh token unused for 30 days expires and the store must re-authorise: a warning
//!   is given from day 25.
//! - The refresh is form-encoded (JSON refreshes were seen to fail with invalid_grant).

use serde::{Deserialize, Serialize};

/// A refresh token unused this long is dead (30 days).
pub const REFRESH_LIFETIME_MS: i64 = 30 * 24 * 3600 * 1000;
/// Warn this long before it dies.
pub const REFRESH_WARN_MS: i64 = 5 * 24 * 3600 * 1000;
/// Refresh when the access token has less than this left.
pub const EARLY_MS: i64 = 60 * 1000;

/// The tokens as persisted (in the store's meta, never in the config or the log).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSet {
    pub access: String,
    pub refresh: String,
    pub access_expires_at_ms: i64,
    /// When `refresh` was issued or last used (its 30 days run from here).
    pub refresh_used_at_ms: i64,
    /// The refresh token before the last refresh, until the new access token is used.
    #[serde(default)]
    pub previous_refresh: Option<String>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_expires_at_ms", &self.access_expires_at_ms)
            .field("refresh_used_at_ms", &self.refresh_used_at_ms)
            .finish_non_exhaustive()
    }
}

impl TokenSet {
    pub fn needs_refresh(&self, now_ms: i64) -> bool {
        now_ms >= self.access_expires_at_ms.saturating_sub(EARLY_MS)
    }

    /// A warning once the refresh token has fewer than 5 of its 30 unused days left, and
    /// an error once it is dead.
    pub fn refresh_health(&self, now_ms: i64) -> Result<Option<String>, String> {
        let dies = self.refresh_used_at_ms + REFRESH_LIFETIME_MS;
        if now_ms >= dies {
            return Err(
                "the Lightspeed refresh token went unused for 30 days and has expired; re-authorise the store".into()
            );
        }
        if now_ms >= dies - REFRESH_WARN_MS {
            let days = (dies - now_ms) / (24 * 3600 * 1000);
            return Ok(Some(format!(
                "the Lightspeed refresh token expires in {days} days unless it is used (it dies after 30 days unused)"
            )));
        }
        Ok(None)
    }

    /// The first use of the access token: the previous refresh token is revoked now.
    pub fn mark_used(&mut self) {
        self.previous_refresh = None;
    }
}

/// The form of a refresh request.
pub fn refresh_form(client_id: &str, client_secret: &str, refresh: &str) -> String {
    let pct = crate::netsuite::tba::pct;
    format!(
        "grant_type=refresh_token&refresh_token={}&client_id={}&client_secret={}",
        pct(refresh),
        pct(client_id),
        pct(client_secret)
    )
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    refresh_token: String,
    expires_in: serde_json::Value,
}

/// Applies a token endpoint's 200 answer: the new pair, the old refresh token kept as
/// `previous_refresh`.
pub fn apply_response(old: Option<&TokenSet>, body: &[u8], now_ms: i64) -> Result<TokenSet, String> {
    let r: TokenResponse =
        serde_json::from_slice(body).map_err(|e| format!("the token endpoint answered something else: {e}"))?;
    let expires_in = crate::lightspeed::json::int(&r.expires_in)
        .filter(|s| *s > 0)
        .ok_or("the token endpoint's expires_in is not a positive number")?;
    if r.access_token.is_empty() || r.refresh_token.is_empty() {
        return Err("the token endpoint answered an empty token".into());
    }
    Ok(TokenSet {
        access: r.access_token,
        refresh: r.refresh_token,
        access_expires_at_ms: now_ms + expires_in * 1000,
        refresh_used_at_ms: now_ms,
        previous_refresh: old.map(|o| o.refresh.clone()),
    })
}

/// The one refresher: the token set under a lock, saved before it is handed out.
pub struct Refresher {
    tokens: tokio::sync::Mutex<TokenSet>,
}

impl Refresher {
    pub fn new(t: TokenSet) -> Refresher {
        Refresher { tokens: tokio::sync::Mutex::new(t) }
    }

    /// A usable access token. When it is due, `refresh(form)` is called once (others wait
    /// and get its result) and the new set is passed to `save` before anyone uses it.
    pub async fn access_token<F, Fut>(
        &self,
        now_ms: i64,
        client_id: &str,
        client_secret: &str,
        refresh: F,
        save: impl FnOnce(&TokenSet) -> Result<(), String>,
    ) -> Result<String, String>
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<u8>, String>>,
    {
        let mut t = self.tokens.lock().await;
        if !t.needs_refresh(now_ms) {
            t.mark_used();
            return Ok(t.access.clone());
        }
        t.refresh_health(now_ms)?;
        let body = refresh(refresh_form(client_id, client_secret, &t.refresh)).await?;
        let new = apply_response(Some(&t), &body, now_ms)?;
        save(&new)?;
        *t = new;
        Ok(t.access.clone())
    }

    pub async fn snapshot(&self) -> TokenSet {
        self.tokens.lock().await.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn set(now: i64) -> TokenSet {
        TokenSet {
            access: "a0".into(),
            refresh: "r0".into(),
            access_expires_at_ms: now + 3_600_000,
            refresh_used_at_ms: now,
            previous_refresh: None,
        }
    }

    #[test]
    fn the_refresh_token_warns_then_dies_after_30_unused_days() {
        let t = set(0);
        assert_eq!(t.refresh_health(24 * 24 * 3600 * 1000), Ok(None));
        let w = t.refresh_health(26 * 24 * 3600 * 1000).expect("alive").expect("a warning");
        assert!(w.contains("expires in 4 days"), "{w}");
        assert!(t.refresh_health(30 * 24 * 3600 * 1000).is_err());
        assert!(format!("{t:?}").contains("TokenSet") && !format!("{t:?}").contains("r0"), "no secret in Debug");
    }

    #[test]
    fn a_response_rotates_both_tokens_and_keeps_the_old_refresh_until_use() {
        let old = set(0);
        let body = br#"{"token_type":"Bearer","expires_in":"1800","access_token":"a1","refresh_token":"r1"}"#;
        let mut new = apply_response(Some(&old), body, 1000).expect("applied");
        assert_eq!((new.access.as_str(), new.refresh.as_str()), ("a1", "r1"));
        assert_eq!(new.access_expires_at_ms, 1000 + 1_800_000);
        assert_eq!(new.previous_refresh.as_deref(), Some("r0"));
        new.mark_used();
        assert_eq!(new.previous_refresh, None);
        assert!(apply_response(None, b"{\"error\":\"invalid_grant\"}", 0).is_err());
        assert!(apply_response(None, br#"{"expires_in":0,"access_token":"a","refresh_token":"r"}"#, 0).is_err());
        let f = refresh_form("demo-client", "demo secret", "r/1");
        assert_eq!(f, "grant_type=refresh_token&refresh_token=r%2F1&client_id=demo-client&client_secret=demo%20secret");
    }

    #[tokio::test]
    async fn one_refresh_for_many_callers_and_saved_before_use() {
        let r = Arc::new(Refresher::new(TokenSet { access_expires_at_ms: 0, ..set(0) }));
        let calls = Arc::new(AtomicUsize::new(0));
        let saved = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (r, calls, saved) = (r.clone(), calls.clone(), saved.clone());
            tasks.push(tokio::spawn(async move {
                r.access_token(
                    10_000,
                    "demo-client",
                    "demo-secret",
                    |form| {
                        let calls = calls.clone();
                        async move {
                            assert!(form.contains("refresh_token=r0"));
                            calls.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                            Ok(br#"{"expires_in":3600,"access_token":"a1","refresh_token":"r1"}"#.to_vec())
                        }
                    },
                    |t| {
                        saved.lock().map_err(|e| e.to_string())?.push(t.refresh.clone());
                        Ok(())
                    },
                )
                .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("task"), Ok("a1".to_string()));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one refresh for eight callers");
        assert_eq!(*saved.lock().expect("saved"), vec!["r1".to_string()]);
        // Used once: the previous refresh token is let go.
        assert_eq!(r.snapshot().await.previous_refresh, None);
        // A failed save hands out nothing.
        let r2 = Refresher::new(TokenSet { access_expires_at_ms: 0, ..set(0) });
        let e = r2
            .access_token(
                10_000,
                "c",
                "s",
                |_| async { Ok(br#"{"expires_in":3600,"access_token":"a1","refresh_token":"r1"}"#.to_vec()) },
                |_| Err("disk full".into()),
            )
            .await;
        assert_eq!(e, Err("disk full".into()));
        assert_eq!(r2.snapshot().await.refresh, "r0", "the old pair stays until the new one is saved");
    }
}
