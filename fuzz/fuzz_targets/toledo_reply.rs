//! Toledo 8217 replies: never a panic; a weight is only read from a well-formed frame.
#![no_main]
use edge_drivers::toledo::{Reply, parse_reply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Reply::Weight(w)) = parse_reply(data) {
        assert!(data.contains(&0x02) && data.contains(&0x0D), "a weight without STX ... CR");
        assert!(w.grams >= 0 && w.grams < 100_000_000, "weight {} g from {data:?}", w.grams);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = edge_drivers::toledo::parse_kg(text);
    }
});
