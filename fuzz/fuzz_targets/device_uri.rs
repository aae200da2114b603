//! Device URIs from config, `--device` and the CLI: never a panic, and what parses prints
//! back to a URI that parses to the same device.
#![no_main]
use edge_drivers::uri::DeviceUri;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(u) = DeviceUri::parse(s) {
        let again = DeviceUri::parse(&u.to_string()).expect("a printed URI parses");
        assert_eq!(u, again, "{s:?} -> {u} -> {again}");
    }
});
