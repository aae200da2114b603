//! Adyen Terminal API messages off the wire (the terminal's answers, and what the
//! simulator reads): the envelope (NexoBlob + SecurityTrailer under the demo key), the clear
//! header, a terminal's Reject notification, and the HTTP framing around them. Never a
//! panic; whatever opens reads as a message or a named error.
#![no_main]
use edge_drivers::adyen::crypto::Key;
use edge_drivers::adyen::{host, http, json};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn key() -> &'static Key {
    static K: OnceLock<Key> = OnceLock::new();
    K.get_or_init(|| Key::derive("CryptoKeyIdentifier12345", 1, b"p@ssw0rd123456").expect("key"))
}

fuzz_target!(|data: &[u8]| {
    for request in [true, false] {
        let _ = json::wire_header(data, request);
        if let Ok(clear) = json::open(data, key(), request) {
            if request {
                let _ = json::read_request(&clear, &|_| None);
            } else {
                let _ = json::read_response(&clear, "EUR");
            }
        }
    }
    let _ = host::rejected(data);
    let _ = http::read_response(&mut &data[..]);
    let _ = http::read_request(&mut &data[..]);
});
