//! Adyen's local Terminal API: nexo-shaped JSON to the terminal over the store's LAN,
//! HTTPS POST to `https://HOST:8443/nexo`, every message encrypted with the AdyenNexoV1
//! scheme (../shared/reference/adyen-local.md).
//!
//! * [`model`]: the nexo messages as plain types (Payment, TransactionStatus, Abort,
//!   Reversal and referenced refund, Diagnosis, Login, Reconciliation), apart from any
//!   encoding, so a nexo XML dialect can follow.
//! * [`json`]: Adyen's JSON dialect of them, and the envelope (`NexoBlob` +
//!   `SecurityTrailer`) around it.
//! * [`crypto`]: the AdyenNexoV1 key derivation, AES-256-CBC and HMAC-SHA256, proven on
//!   Adyen's published known-answer message.
//! * [`tls`]: TLS 1.2 only (rustls); the terminal's certificate is checked against the
//!   configured root and must name the terminal's POIID. There is no switch to turn the
//!   check off.
//! * [`http`]: HTTP/1.1 framing of one request and one answer per connection (`httparse`
//!   reads the heads; bodies by `Content-Length`).
//! * [`host`]: the POS side we ship, answering in the checkout's [`crate::payment`] types.
//! * [`sim`]: a wire-true simulated terminal (its own CA, the same crypto, outcomes by
//!   rule or per call, a journal that outlives restarts, store-and-forward).
//!
//! Why by hand: Adyen publishes no Rust library, and no crate speaks the local Terminal
//! API; the pieces that are general (PBKDF2, HMAC, AES-CBC, TLS, HTTP head parsing,
//! certificates) are well-kept crates. Why not reqwest: the payment state machine needs to
//! know exactly whether the request could have reached the terminal (a refused connection
//! or a failed handshake: nothing sent; after the first byte of the request: in doubt), and
//! the TLS name to check is the POIID, not the address dialled.
//!
//! Card data: the terminal sends a masked PAN (first six, last four) and the last four in
//! `cardSummary`; [`json::mask`] stars anything more before it is kept. The passphrase is
//! read from a 0600 secret file and lives only as derived key material ([`crypto::Key`]).

pub mod crypto;
pub mod host;
pub mod http;
pub mod json;
pub mod model;
pub mod sim;
pub mod tls;

/// What went wrong talking to an Adyen terminal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdyenError {
    /// No connection, or the TLS handshake failed: the request never left.
    #[error("Adyen terminal at {addr}: {why}")]
    Connect { addr: String, why: String },
    /// The connection broke or stayed silent after the request went out.
    #[error("Adyen terminal: {0}")]
    Link(String),
    #[error("Adyen terminal: no answer within {0} ms")]
    Timeout(u64),
    /// An HTTP status other than 200, with the terminal's words.
    #[error("Adyen terminal answered HTTP {status}: {text}")]
    Http { status: u16, text: String },
    /// The answer could not be read or opened (names the field or the crypto check).
    #[error(transparent)]
    Message(#[from] json::JsonError),
    /// The answer is well-formed but not the answer to what was asked.
    #[error("Adyen terminal: {0}")]
    Mismatch(String),
    /// The terminal refused the request itself (its `SaleToPOIRequest` error answer).
    #[error("Adyen terminal refused the request: {0}")]
    Refused(String),
    #[error("Adyen: {0}")]
    Config(String),
}

impl AdyenError {
    pub fn is_link(&self) -> bool {
        matches!(self, AdyenError::Connect { .. } | AdyenError::Link(_))
    }
}

const B36: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

fn base36(mut v: u64, width: usize) -> String {
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = B36[(v % 36) as usize];
        v /= 36;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A ServiceID (at most 10 characters, unique per POS within a period) from a UUID v7:
/// six base-36 digits of its second (they repeat after 69 years) and four of its random
/// bits (1.68 million: two payments in the same second share one once in that many). A
/// payment's ServiceID is its id's, so the stored intent names it before the first byte
/// and an in-doubt payment is asked about by it after any crash.
pub fn service_id_for(id: u128) -> String {
    let ms = (id >> 80) as u64;
    let secs = (ms / 1000) % 36u64.pow(6);
    let rand = ((id & ((1u128 << 62) - 1)) % 36u128.pow(4)) as u64;
    format!("{}{}", base36(secs, 6), base36(rand, 4))
}

/// The ServiceID of the reversal of the payment with this id: the payment's own second
/// and other random digits, so a reversal whose answer was lost is asked about by it.
pub fn reversal_service_id_for(id: u128) -> String {
    service_id_for(id ^ 0x2545_F491_4F6C_DD1D)
}

/// A fresh ServiceID for a request that no intent names (status, diagnosis, abort …):
/// the clock's second and a counter, so no two requests of one process share one.
pub fn fresh_service_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    // Always a lower-case `s` in the seventh place: a payment's ServiceID (digits and
    // upper case) is never one of these.
    format!("{}s{}", base36(now.as_secs() % 36u64.pow(6), 6), base36(n % 36u64.pow(3), 3).to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_ids_are_ten_characters_and_differ() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..40_000 {
            let id = fresh_service_id();
            assert_eq!(id.len(), 10);
            assert!(seen.insert(id));
        }
        let a = service_id_for(0x0193_0000_0000_7000_8000_0000_0000_0001);
        let b = service_id_for(0x0193_0000_0000_7000_8000_0000_0000_0002);
        assert_eq!(a.len(), 10);
        assert_ne!(a, b);
        assert!(!seen.contains(&a));
    }
}
