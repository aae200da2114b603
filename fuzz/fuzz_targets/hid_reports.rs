//! HID POS scanned-data reports, 64 bytes each, fed to the assembler: never a panic, and
//! a code is only returned when a report said it was the last.
#![no_main]
use edge_drivers::scanner::HidAssembler;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut a = HidAssembler::default();
    for report in data.chunks(64) {
        let _ = edge_drivers::scanner::decode_hid_report(report);
        if let Ok(Some(Ok(scan))) = a.push(report) {
            if let Some(g) = &scan.gtin {
                assert!(edge_drivers::scanner::gtin_valid(g));
            }
        }
    }
});
