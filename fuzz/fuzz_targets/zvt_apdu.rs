//! ZVT APDUs and their BMP fields from the terminal: never a panic; a decoded APDU encodes
//! back to the bytes it came from; status information never holds a full card number.
#![no_main]
use edge_drivers::zvt::{Apdu, StatusInfo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((a, used))) = Apdu::decode(data) {
        let back = a.encode();
        // A short length may also be written long; both must decode to the same APDU.
        assert_eq!(Apdu::decode(&back), Ok(Some((a.clone(), back.len()))));
        assert!(used <= data.len());
        if let Ok(s) = StatusInfo::parse(&a.data) {
            if let Some(p) = s.pan_masked {
                assert!(p.chars().filter(char::is_ascii_digit).count() <= 10, "PAN {p} shows too much");
            }
        }
    }
    let _ = StatusInfo::parse(data);
});
