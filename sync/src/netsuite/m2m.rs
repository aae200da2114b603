//! NetSuite OAuth 2.0 client credentials (machine to machine, §B3 of the reference): a JWT
//! assertion signed ES256 with the key whose certificate was uploaded to the account's
//! M2M mapping, exchanged at `POST /services/rest/auth/oauth2/v1/token` for a bearer token
//! valid 60 minutes. There is no refresh token: a new assertion buys a new token.
//!
//! Both sides live here: [`assertion`] (ours) and [`verify_assertion`] (the fake's).

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, UnparsedPublicKey,
};
use serde_json::{Value, json};

pub const TOKEN_PATH: &str = "/services/rest/auth/oauth2/v1/token";
/// Longest assertion lifetime NetSuite takes.
pub const MAX_ASSERTION_S: i64 = 3600;
pub const TOKEN_LIFETIME_S: i64 = 3600;

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The integration's M2M credentials.
pub struct M2m {
    pub client_id: String,
    /// The certificate id of the mapping (the JWT's `kid`).
    pub certificate_id: String,
    key: EcdsaKeyPair,
}

impl std::fmt::Debug for M2m {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("M2m")
            .field("client_id", &self.client_id)
            .field("certificate_id", &self.certificate_id)
            .finish_non_exhaustive()
    }
}

impl M2m {
    /// From a PKCS#8 P-256 private key.
    pub fn new(client_id: &str, certificate_id: &str, pkcs8: &[u8]) -> Result<M2m, String> {
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &SystemRandom::new())
            .map_err(|e| format!("the M2M private key is not a PKCS#8 P-256 key: {e}"))?;
        Ok(M2m { client_id: client_id.into(), certificate_id: certificate_id.into(), key })
    }

    /// The public key (uncompressed point) the fake checks with.
    pub fn public_key(&self) -> Vec<u8> {
        self.key.public_key().as_ref().to_vec()
    }

    /// The signed assertion for `token_url`, issued at `now_s`.
    pub fn assertion(&self, token_url: &str, now_s: i64) -> Result<String, String> {
        let header = json!({"typ": "JWT", "alg": "ES256", "kid": self.certificate_id});
        let claims = json!({"iss": self.client_id, "scope": ["rest_webservices"], "aud": token_url,
                            "iat": now_s, "exp": now_s + MAX_ASSERTION_S});
        let input = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
        let sig = self.key.sign(&SystemRandom::new(), input.as_bytes()).map_err(|_| "signing the assertion failed")?;
        Ok(format!("{input}.{}", b64url(sig.as_ref())))
    }

    /// The token request's form.
    pub fn token_form(&self, token_url: &str, now_s: i64) -> Result<String, String> {
        Ok(format!(
            "grant_type=client_credentials&client_assertion_type={}&client_assertion={}",
            super::tba::pct("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            self.assertion(token_url, now_s)?
        ))
    }
}

/// A new P-256 key as PKCS#8 (the demo's; a store's comes from its own certificate).
pub fn generate_pkcs8() -> Result<Vec<u8>, String> {
    EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .map(|d| d.as_ref().to_vec())
        .map_err(|_| "cannot generate a key".to_string())
}

/// The fake's check of an assertion: signature, `kid`, `iss`, `aud`, scope and times.
pub fn verify_assertion(
    jwt: &str,
    public_key: &[u8],
    client_id: &str,
    certificate_id: &str,
    token_url: &str,
    now_s: i64,
) -> Result<(), String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [h, c, s] = parts.as_slice() else { return Err("the assertion is not header.claims.signature".into()) };
    let dec =
        |p: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).map_err(|e| format!("base64url: {e}"));
    let header: Value = serde_json::from_slice(&dec(h)?).map_err(|e| format!("header: {e}"))?;
    let claims: Value = serde_json::from_slice(&dec(c)?).map_err(|e| format!("claims: {e}"))?;
    match header.get("alg").and_then(Value::as_str) {
        Some("ES256") => {}
        Some(a @ ("PS256" | "PS384" | "PS512" | "ES384" | "ES512")) => {
            return Err(format!("alg {a} is valid but this fake checks ES256 only"));
        }
        other => return Err(format!("alg {other:?} is not accepted")),
    }
    if header.get("kid").and_then(Value::as_str) != Some(certificate_id) {
        return Err("kid is not the certificate id of the mapping".into());
    }
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public_key)
        .verify(format!("{h}.{c}").as_bytes(), &dec(s)?)
        .map_err(|_| "the assertion's signature does not verify")?;
    if claims.get("iss").and_then(Value::as_str) != Some(client_id) {
        return Err("iss is not the integration's client id".into());
    }
    if claims.get("aud").and_then(Value::as_str) != Some(token_url) {
        return Err(format!("aud must be the token URL {token_url}"));
    }
    let scope_ok = match claims.get("scope") {
        Some(Value::String(s)) => s.split([' ', ',']).any(|x| x == "rest_webservices"),
        Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some("rest_webservices")),
        _ => false,
    };
    if !scope_ok {
        return Err("scope must include rest_webservices".into());
    }
    let (iat, exp) = (claims.get("iat").and_then(Value::as_i64), claims.get("exp").and_then(Value::as_i64));
    let (Some(iat), Some(exp)) = (iat, exp) else { return Err("iat and exp are required".into()) };
    if exp <= iat || exp - iat > MAX_ASSERTION_S {
        return Err("exp must be after iat and at most 60 minutes after it".into());
    }
    if now_s > exp || iat > now_s + 300 {
        return Err("the assertion is expired or issued in the future".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assertion_verifies_and_a_tampered_one_does_not() {
        let key = generate_pkcs8().expect("key");
        let m = M2m::new("client-1", "cert-1", &key).expect("m2m");
        let url = "http://127.0.0.1:9/services/rest/auth/oauth2/v1/token";
        let jwt = m.assertion(url, 1_000_000).expect("signed");
        let pk = m.public_key();
        assert_eq!(verify_assertion(&jwt, &pk, "client-1", "cert-1", url, 1_000_010), Ok(()));
        assert!(verify_assertion(&jwt, &pk, "client-1", "cert-2", url, 1_000_010).is_err(), "kid");
        assert!(verify_assertion(&jwt, &pk, "client-1", "cert-1", "https://other/token", 1_000_010).is_err(), "aud");
        assert!(verify_assertion(&jwt, &pk, "client-1", "cert-1", url, 1_000_000 + 3601).is_err(), "expired");
        let mut t = jwt.clone();
        t.insert(jwt.find('.').expect("dot") + 2, 'x');
        assert!(verify_assertion(&t, &pk, "client-1", "cert-1", url, 1_000_010).is_err(), "tampered");
        let other = M2m::new("client-1", "cert-1", &generate_pkcs8().expect("key")).expect("m2m");
        assert!(
            verify_assertion(&jwt, &other.public_key(), "client-1", "cert-1", url, 1_000_010).is_err(),
            "wrong key"
        );
        assert!(M2m::new("c", "k", b"not a key").is_err());
        assert!(!format!("{m:?}").contains("key:"), "no key in Debug");
    }
}
