//! ESC/POS real-time status bytes: never a panic; bytes that are not status bytes are
//! refused rather than read as a printer state.
#![no_main]
use edge_drivers::escpos::{decode_status, valid_status_byte};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for c in data.chunks_exact(4) {
        let r = [c[0], c[1], c[2], c[3]];
        match decode_status(r) {
            Ok(_) => assert!(r.iter().all(|b| valid_status_byte(*b))),
            Err(e) => assert!(!e.is_empty()),
        }
    }
});
