//! The AdyenNexoV1 envelope of the local Terminal API: what turns a clear
//! `SaleToPOIRequest` / `SaleToPOIResponse` into `MessageHeader` + `NexoBlob` +
//! `SecurityTrailer` and back (../shared/reference/adyen-local.md, "Local encryption").
//!
//! * Key material: PBKDF2-HMAC-SHA1 over the passphrase, salt `AdyenNexoV1Salt`, 4,000
//!   iterations, 80 bytes: 0–31 the HMAC key, 32–63 the AES-256 key, 64–79 an IV.
//! * Per message: a random 16-byte nonce; IV = derived IV XOR nonce; AES-256-CBC with
//!   PKCS#7 padding over the JSON body; HMAC-SHA256 over the **plaintext**.
//!
//! Derivation costs 4,000 SHA-1 rounds, so a [`Key`] is derived once and kept. The
//! passphrase is never kept, logged or shown: [`Key`]'s `Debug` prints its identifier and
//! version only. Decryption checks, in this order, the crypto version, the key identifier
//! and version, the nonce's length, the blob's base64 and block length, the padding, and
//! the HMAC (compared in constant time); each refusal names what was wrong.
//!
//! ring gives PBKDF2, HMAC and randomness; it has no CBC mode, so AES-256-CBC comes from
//! RustCrypto's `aes` + `cbc`.

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};
use std::num::NonZeroU32;

type Enc = cbc::Encryptor<aes::Aes256>;
type Dec = cbc::Decryptor<aes::Aes256>;

const SALT: &[u8] = b"AdyenNexoV1Salt";
const ROUNDS: u32 = 4_000;

/// The shared key of a POS and its terminal: identifier, version and the derived material.
#[derive(Clone)]
pub struct Key {
    pub identifier: String,
    pub version: u32,
    hmac: [u8; 32],
    aes: [u8; 32],
    iv: [u8; 16],
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key {{ identifier: {:?}, version: {} }}", self.identifier, self.version)
    }
}

/// The `SecurityTrailer` of an encrypted message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecurityTrailer {
    pub adyen_crypto_version: u32,
    pub key_identifier: String,
    pub key_version: u32,
    pub nonce: String,
    pub hmac: String,
}

/// Why an envelope was refused. The names match what a terminal reports (see the
/// simulator) so a field tech can tell a wrong key from a damaged message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("Adyen crypto: unsupported AdyenCryptoVersion {0} (only 1 is known)")]
    Version(u32),
    #[error("Adyen crypto: unknown key {identifier:?} version {version} (this side has {ours})")]
    UnknownKey { identifier: String, version: u32, ours: String },
    #[error("Adyen crypto: the nonce is not 16 bytes of base64 ({0})")]
    Nonce(String),
    #[error("Adyen crypto: the NexoBlob is not valid base64 ({0})")]
    Blob(String),
    #[error("Adyen crypto: the NexoBlob does not decrypt (wrong key, or a damaged or truncated blob)")]
    Padding,
    #[error("Adyen crypto: the HMAC is not 32 bytes of base64 ({0})")]
    HmacFormat(String),
    #[error("Adyen crypto: HMAC validation failed (the message was altered, or the key is not the terminal's)")]
    Hmac,
    #[error("Adyen crypto: the passphrase is empty")]
    EmptyPassphrase,
    #[error("Adyen crypto: no randomness for the nonce ({0})")]
    Random(String),
}

impl Key {
    /// Derives the key material from the passphrase (PBKDF2-HMAC-SHA1, 4,000 rounds).
    pub fn derive(identifier: &str, version: u32, passphrase: &[u8]) -> Result<Key, CryptoError> {
        if passphrase.is_empty() {
            return Err(CryptoError::EmptyPassphrase);
        }
        let mut out = [0u8; 80];
        let rounds = NonZeroU32::new(ROUNDS).ok_or(CryptoError::EmptyPassphrase)?;
        ring::pbkdf2::derive(ring::pbkdf2::PBKDF2_HMAC_SHA1, rounds, SALT, passphrase, &mut out);
        let mut k = Key { identifier: identifier.to_string(), version, hmac: [0; 32], aes: [0; 32], iv: [0; 16] };
        k.hmac.copy_from_slice(&out[..32]);
        k.aes.copy_from_slice(&out[32..64]);
        k.iv.copy_from_slice(&out[64..80]);
        Ok(k)
    }

    fn iv_for(&self, nonce: &[u8; 16]) -> [u8; 16] {
        let mut iv = self.iv;
        for (b, n) in iv.iter_mut().zip(nonce) {
            *b ^= n;
        }
        iv
    }

    fn mac(&self, plain: &[u8]) -> ring::hmac::Tag {
        ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.hmac), plain)
    }

    /// Encrypts a body with a fresh random nonce: the blob (base64) and its trailer.
    pub fn seal(&self, plain: &[u8]) -> Result<(String, SecurityTrailer), CryptoError> {
        let mut nonce = [0u8; 16];
        ring::rand::SystemRandom::new().fill(&mut nonce).map_err(|e| CryptoError::Random(format!("{e:?}")))?;
        Ok(self.seal_with(plain, &nonce))
    }

    /// Encrypts with a given nonce (known-answer tests; never reuse a nonce on the wire).
    pub fn seal_with(&self, plain: &[u8], nonce: &[u8; 16]) -> (String, SecurityTrailer) {
        let blob = Enc::new((&self.aes).into(), (&self.iv_for(nonce)).into()).encrypt_padded_vec_mut::<Pkcs7>(plain);
        let trailer = SecurityTrailer {
            adyen_crypto_version: 1,
            key_identifier: self.identifier.clone(),
            key_version: self.version,
            nonce: B64.encode(nonce),
            hmac: B64.encode(self.mac(plain).as_ref()),
        };
        (B64.encode(blob), trailer)
    }

    /// Decrypts a blob under its trailer and checks its HMAC; the plaintext.
    pub fn open(&self, blob: &str, t: &SecurityTrailer) -> Result<Vec<u8>, CryptoError> {
        if t.adyen_crypto_version != 1 {
            return Err(CryptoError::Version(t.adyen_crypto_version));
        }
        if t.key_identifier != self.identifier || t.key_version != self.version {
            return Err(CryptoError::UnknownKey {
                identifier: t.key_identifier.clone(),
                version: t.key_version,
                ours: format!("{:?} version {}", self.identifier, self.version),
            });
        }
        let nonce: [u8; 16] = B64
            .decode(t.nonce.as_bytes())
            .map_err(|e| CryptoError::Nonce(e.to_string()))?
            .try_into()
            .map_err(|v: Vec<u8>| CryptoError::Nonce(format!("{} bytes", v.len())))?;
        let mac: [u8; 32] = B64
            .decode(t.hmac.as_bytes())
            .map_err(|e| CryptoError::HmacFormat(e.to_string()))?
            .try_into()
            .map_err(|v: Vec<u8>| CryptoError::HmacFormat(format!("{} bytes", v.len())))?;
        let ct = B64.decode(blob.as_bytes()).map_err(|e| CryptoError::Blob(e.to_string()))?;
        if ct.is_empty() || ct.len() % 16 != 0 {
            return Err(CryptoError::Blob(format!("{} bytes, not a whole number of AES blocks", ct.len())));
        }
        let plain = Dec::new((&self.aes).into(), (&self.iv_for(&nonce)).into())
            .decrypt_padded_vec_mut::<Pkcs7>(&ct)
            .map_err(|_| CryptoError::Padding)?;
        ring::hmac::verify(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.hmac), &plain, &mac)
            .map_err(|_| CryptoError::Hmac)?;
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::derive("CryptoKeyIdentifier12345", 1, b"p@ssw0rd123456").expect("key")
    }

    #[test]
    fn round_trip_with_a_fresh_nonce_each_time() {
        let k = key();
        let (b1, t1) = k.seal(b"{\"a\":1}").expect("seal");
        let (b2, t2) = k.seal(b"{\"a\":1}").expect("seal");
        assert_ne!(t1.nonce, t2.nonce);
        assert_ne!(b1, b2);
        assert_eq!(k.open(&b1, &t1).expect("open"), b"{\"a\":1}");
        assert_eq!(k.open(&b2, &t2).expect("open"), b"{\"a\":1}");
    }

    #[test]
    fn debug_never_shows_the_material() {
        let s = format!("{:?}", key());
        assert!(s.contains("CryptoKeyIdentifier12345") && !s.contains("hmac"), "{s}");
    }
}
