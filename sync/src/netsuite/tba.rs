//! NetSuite Token-Based Authentication: OAuth 1.0a (RFC 5849) with HMAC-SHA256, as Oracle
//! documents it for SuiteTalk REST and RESTlets.
//!
//! - The parameter string holds the six `oauth_*` parameters and **every query parameter**
//!   of the URL, each name and value percent-encoded (RFC 3986 unreserved set), sorted,
//!   joined `k=v` with `&`. `realm` is not in it, and a JSON body is never signed.
//! - Base string: `METHOD & pct(scheme://host/path) & pct(parameter string)`.
//! - Key: `pct(consumer_secret) & pct(token_secret)`; signature = Base64(HMAC-SHA256).
//! - Header: `OAuth realm="ACCOUNT", oauth_…="…", oauth_signature="pct(signature)"`. The
//!   realm is the account id in upper case with `_` (`1234567_SB1`); the host form is lower
//!   case with `-` (`1234567-sb1`).
//!
//! [`verify`] is what the fake does with an incoming header: the same computation from the
//! other side, with the reason for a refusal in words.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The four secrets of a TBA integration and the account.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The account id, any form (`1234567_SB1` or `1234567-sb1`).
    pub account: String,
    pub consumer_key: String,
    pub consumer_secret: String,
    pub token: String,
    pub token_secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("account", &self.account).finish_non_exhaustive()
    }
}

/// Oracle's published example TBA values (not real credentials): the known-answer vectors'
/// inputs and the demo's NetSuite credentials (CONTRACT).
pub fn oracle_example() -> Credentials {
    Credentials {
        account: "123456".into(),
        consumer_key: "ef40afdd8abaac111b13825dd5e5e2ddddb44f86d5a0dd6dcf38c20aae6b67e4".into(),
        consumer_secret: "d26ad321a4b2f23b0741c8d38392ce01c3e23e109df6c96eac6d099e9ab9e8b5".into(),
        token: "2b0ce516420110bcbd36b69e99196d1b7f6de3c6234c5afb799b73d87569f5cc".into(),
        token_secret: "c29a677df7d5439a458c063654187e3d678d73aca8e3c9d8bea1478a3eb0d295".into(),
    }
}

/// The realm form of an account id: upper case, `_` (what the header's realm must say).
pub fn realm(account: &str) -> String {
    account.replace('-', "_").to_uppercase()
}

/// The host form of an account id: lower case, `-` (what the URL's host starts with).
pub fn host_account(account: &str) -> String {
    account.replace('_', "-").to_lowercase()
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
pub fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn pct_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3).ok_or_else(|| format!("{s:?}: a % without two hex digits"))?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("{s:?}: bad escape %{hex}"))?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?}: not UTF-8 once decoded"))
}

/// Splits a URL into `scheme://host/path` (lower-case scheme and host) and its decoded
/// query parameters.
fn split_url(url: &str) -> Result<(String, Vec<(String, String)>), String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let (scheme, rest) = base.split_once("://").ok_or_else(|| format!("{url:?} is not an absolute URL"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut params = Vec::new();
    for kv in query.split('&').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        params.push((pct_decode(k)?, pct_decode(v)?));
    }
    Ok((format!("{}://{}{}", scheme.to_lowercase(), host.to_lowercase(), path), params))
}

/// The signature base string of a request.
pub fn base_string(method: &str, url: &str, oauth: &[(&str, &str)]) -> Result<String, String> {
    let (base, query) = split_url(url)?;
    let mut all: Vec<(String, String)> = oauth.iter().map(|(k, v)| (pct(k), pct(v))).collect();
    all.extend(query.iter().map(|(k, v)| (pct(k), pct(v))));
    all.sort();
    let params: Vec<String> = all.iter().map(|(k, v)| format!("{k}={v}")).collect();
    Ok(format!("{}&{}&{}", method.to_uppercase(), pct(&base), pct(&params.join("&"))))
}

/// Base64(HMAC-SHA256(pct(consumer_secret)&pct(token_secret), base string)).
pub fn signature(base: &str, consumer_secret: &str, token_secret: &str) -> String {
    let key = format!("{}&{}", pct(consumer_secret), pct(token_secret));
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.as_bytes()) else {
        unreachable!("HMAC takes a key of any length")
    };
    mac.update(base.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The `Authorization` header for a request (the body is not signed).
pub fn authorization(c: &Credentials, method: &str, url: &str, nonce: &str, timestamp: u64) -> Result<String, String> {
    let ts = timestamp.to_string();
    let oauth = [
        ("oauth_consumer_key", c.consumer_key.as_str()),
        ("oauth_token", c.token.as_str()),
        ("oauth_signature_method", "HMAC-SHA256"),
        ("oauth_timestamp", ts.as_str()),
        ("oauth_nonce", nonce),
        ("oauth_version", "1.0"),
    ];
    let sig = signature(&base_string(method, url, &oauth)?, &c.consumer_secret, &c.token_secret);
    let mut h = format!("OAuth realm=\"{}\"", realm(&c.account));
    for (k, v) in oauth {
        h.push_str(&format!(", {k}=\"{}\"", pct(v)));
    }
    h.push_str(&format!(", oauth_signature=\"{}\"", pct(&sig)));
    Ok(h)
}

/// A parsed `Authorization: OAuth …` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthHeader {
    pub realm: Option<String>,
    /// Every `oauth_*` parameter but the signature, decoded.
    pub params: Vec<(String, String)>,
    pub signature: String,
}

impl OAuthHeader {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
}

/// Parses `OAuth k="v", …` (any order).
pub fn parse_header(h: &str) -> Result<OAuthHeader, String> {
    let rest = h.trim().strip_prefix("OAuth ").ok_or("the Authorization header is not `OAuth …`")?;
    let mut realm = None;
    let mut params = Vec::new();
    let mut signature = None;
    for part in rest.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (k, v) = part.split_once('=').ok_or_else(|| format!("{part:?} is not k=\"v\""))?;
        let v = v
            .trim()
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .ok_or_else(|| format!("{k}: value not quoted"))?;
        let v = pct_decode(v)?;
        match k.trim() {
            "realm" => realm = Some(v),
            "oauth_signature" => signature = Some(v),
            k if k.starts_with("oauth_") => params.push((k.to_string(), v)),
            other => return Err(format!("unexpected parameter {other:?}")),
        }
    }
    Ok(OAuthHeader { realm, params, signature: signature.ok_or("no oauth_signature")? })
}

/// Checks a request's header against the secrets, as NetSuite does. Err says why not
/// (NetSuite itself answers only "INVALID_LOGIN"; the fake also logs the reason).
pub fn verify(c: &Credentials, method: &str, url: &str, header: &str) -> Result<(), String> {
    let h = parse_header(header)?;
    match &h.realm {
        Some(r) if *r == realm(&c.account) => {}
        Some(r) => return Err(format!("realm {r:?} is not the account {:?} (upper case, `_`)", realm(&c.account))),
        None => return Err("no realm".into()),
    }
    for (k, want) in [
        ("oauth_consumer_key", c.consumer_key.as_str()),
        ("oauth_token", c.token.as_str()),
        ("oauth_signature_method", "HMAC-SHA256"),
        ("oauth_version", "1.0"),
    ] {
        match h.get(k) {
            Some(v) if v == want => {}
            Some(v) if k == "oauth_signature_method" => {
                return Err(format!("signature method {v:?}; only HMAC-SHA256"));
            }
            Some(_) => return Err(format!("{k} is not this integration's")),
            None => return Err(format!("{k} missing")),
        }
    }
    if h.get("oauth_nonce").is_none_or(str::is_empty) || h.get("oauth_timestamp").is_none() {
        return Err("oauth_nonce or oauth_timestamp missing".into());
    }
    let oauth: Vec<(&str, &str)> = h.params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let want = signature(&base_string(method, url, &oauth)?, &c.consumer_secret, &c.token_secret);
    if want != h.signature {
        return Err("the signature does not match (query parameters signed? body left out? secrets right?)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oracle() -> Credentials {
        oracle_example()
    }

    const NONCE: &str = "fjaLirsIcCGVZWzBX0pg";
    const TS: u64 = 1508242306;

    fn sig_of(header: &str) -> String {
        parse_header(header).expect("header").signature
    }

    #[test]
    fn oracles_rest_vector() {
        let url = "https://123456.suitetalk.api.netsuite.com/services/rest/record/v1/employee/40";
        let h = authorization(&oracle(), "GET", url, NONCE, TS).expect("header");
        assert_eq!(sig_of(&h), "B5OIWznZ2YP0OB7VrJrGkYsTh+8H+5T9Hag+o92q0zY=");
        assert!(h.contains("oauth_signature=\"B5OIWznZ2YP0OB7VrJrGkYsTh%2B8H%2B5T9Hag%2Bo92q0zY%3D\""), "{h}");
        assert!(h.starts_with("OAuth realm=\"123456\""));
        assert_eq!(verify(&oracle(), "GET", url, &h), Ok(()));
    }

    #[test]
    fn oracles_restlet_vector_signs_the_query_parameters() {
        let url = "https://123456.restlets.api.netsuite.com/app/site/hosting/restlet.nl?script=6&deploy=1&customParam=someValue&testParam=someOtherValue";
        let h = authorization(&oracle(), "POST", url, NONCE, TS).expect("header");
        assert_eq!(sig_of(&h), "+KK4SKNgz4ZiILGLwOMtfYlgcXSy1eis8ldE9X90azQ=");
        assert_eq!(verify(&oracle(), "POST", url, &h), Ok(()));
        // Leaving the query out of the signature is caught.
        let bare = "https://123456.restlets.api.netsuite.com/app/site/hosting/restlet.nl";
        let wrong = authorization(&oracle(), "POST", bare, NONCE, TS).expect("header");
        assert!(verify(&oracle(), "POST", url, &wrong).is_err());
    }

    #[test]
    fn realm_rules_and_refusals_are_named() {
        assert_eq!(realm("1234567-sb1"), "1234567_SB1");
        assert_eq!(host_account("1234567_SB1"), "1234567-sb1");
        let mut c = oracle();
        c.account = "1234567_SB1".into();
        let url = "https://1234567-sb1.suitetalk.api.netsuite.com/services/rest/record/v1/cashsale/eid:abc";
        let h = authorization(&c, "PUT", url, NONCE, TS).expect("header");
        assert_eq!(verify(&c, "PUT", url, &h), Ok(()));
        let lower = h.replace("realm=\"1234567_SB1\"", "realm=\"1234567_sb1\"");
        assert!(verify(&c, "PUT", url, &lower).is_err_and(|e| e.contains("realm")));
        let sha1 = h.replace("HMAC-SHA256", "HMAC-SHA1");
        assert!(verify(&c, "PUT", url, &sha1).is_err_and(|e| e.contains("HMAC-SHA256")));
        let mut other = c.clone();
        other.token_secret = "x".into();
        assert!(verify(&other, "PUT", url, &h).is_err_and(|e| e.contains("signature")));
        assert!(parse_header("Bearer abc").is_err());
        // The parameters' order in the header does not matter.
        let p = parse_header(&h).expect("parse");
        let mut reordered = format!("OAuth oauth_signature=\"{}\"", pct(&p.signature));
        for (k, v) in p.params.iter().rev() {
            reordered.push_str(&format!(", {k}=\"{}\"", pct(v)));
        }
        reordered.push_str(", realm=\"1234567_SB1\"");
        assert_eq!(verify(&c, "PUT", url, &reordered), Ok(()));
    }
}
