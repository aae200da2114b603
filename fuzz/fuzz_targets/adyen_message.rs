//! The nexo JSON dialect's readers on any JSON: never a panic; a request or response that
//! reads writes back to JSON that reads to the same message; a masked PAN never shows more
//! than the first six and last four digits.
#![no_main]
use edge_drivers::adyen::json;
use edge_drivers::adyen::model::Response;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    if let Ok((h, r)) = json::read_request(&v, &|_| Some("EUR".into())) {
        let back = json::request_json(&h, &r);
        let again = json::read_request(&back, &|_| Some("EUR".into()));
        assert_eq!(again.as_ref().ok(), Some(&(h, r)), "{back}");
    }
    if let Ok((_, r)) = json::read_response(&v, "EUR") {
        if let Response::Payment(p) = &r {
            if let Some(pan) = &p.masked_pan {
                assert!(pan.chars().filter(char::is_ascii_digit).count() <= 10, "PAN {pan} shows too much");
            }
        }
    }
    let _ = json::form_decode(std::str::from_utf8(data).unwrap_or(""));
});
