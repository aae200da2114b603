//! NetSuite reads outside the delivery worker (the reconciliation report's SuiteQL):
//! credentials added to a request, a client-credentials token bought when due.

use super::connector::NsAuth;
use jiff::Timestamp;
use std::time::Duration;

/// NetSuite credentials outside the delivery worker (the report's SuiteQL).
pub struct NsSigner {
    pub auth: NsAuth,
    bearer: Option<(String, i64)>,
}

impl NsSigner {
    pub fn new(auth: NsAuth) -> NsSigner {
        NsSigner { auth, bearer: None }
    }

    /// Adds the credentials to a request (buying a client-credentials token first if due).
    pub async fn sign(
        &mut self,
        client: &reqwest::Client,
        base: &str,
        req: &mut crate::wire::HttpRequest,
        timeout: Duration,
    ) -> Result<(), String> {
        use crate::netsuite::connector::NsAuth;
        let now = Timestamp::now();
        let base = base.trim_end_matches('/');
        match &self.auth {
            NsAuth::Tba(c) => {
                let nonce: String = (0..20)
                    .map(|_| {
                        let mut b = [0u8; 1];
                        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
                        let n = u64::from(b[0]) % 62;
                        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"[n as usize] as char
                    })
                    .collect();
                let h = crate::netsuite::tba::authorization(
                    c,
                    req.method.as_str(),
                    &format!("{base}{}", req.path),
                    &nonce,
                    now.as_second().max(0) as u64,
                )?;
                req.headers.push(("Authorization".into(), h));
                Ok(())
            }
            NsAuth::M2m(m) => {
                let fresh =
                    self.bearer.as_ref().filter(|(_, exp)| *exp > now.as_millisecond() + 60_000).map(|b| b.0.clone());
                let token = match fresh {
                    Some(t) => t,
                    None => {
                        let url = format!("{base}{}", crate::netsuite::m2m::TOKEN_PATH);
                        let treq = crate::wire::HttpRequest {
                            method: crate::wire::Method::Post,
                            path: crate::netsuite::m2m::TOKEN_PATH.into(),
                            headers: vec![("Content-Type".into(), "application/x-www-form-urlencoded".into())],
                            body: m.token_form(&url, now.as_second())?.into_bytes(),
                        };
                        let r = crate::engine::run::exchange(client, base, &treq, timeout)
                            .await
                            .map_err(|e| e.to_string())?;
                        if r.status != 200 {
                            return Err(format!(
                                "NetSuite refused the assertion: {}",
                                crate::netsuite::errors::reason(r.status, &r.body)
                            ));
                        }
                        let v: serde_json::Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
                        let t = v
                            .get("access_token")
                            .and_then(|x| x.as_str())
                            .ok_or("NetSuite's token answer has no access_token")?;
                        self.bearer = Some((t.to_string(), now.as_millisecond() + 3_000_000));
                        t.to_string()
                    }
                };
                req.headers.push(("Authorization".into(), format!("Bearer {token}")));
                Ok(())
            }
        }
    }
}
