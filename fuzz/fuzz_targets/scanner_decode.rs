//! One scanned code (AIM id, GS1 element strings, check digits): never a panic, and a GTIN
//! is only ever returned with a right check digit.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(scan) = edge_drivers::scanner::decode(data) {
        if let Some(g) = &scan.gtin {
            assert!(edge_drivers::scanner::gtin_valid(g), "GTIN {g} with a wrong check digit");
        }
        if let Some(w) = scan.net_weight_g {
            assert!(w >= 0, "negative weight {w}");
        }
        assert!(!scan.data.is_empty());
    }
});
