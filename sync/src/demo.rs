//! The demo catalog: deterministic from its size, so a restarted demo, the fakes and the
//! tests all see the same items. Item `i` (0-based) has SKU `SKU-{i+1:07}` and an in-store
//! EAN-13 (`20` + ten digits of `i + 1` + check digit).

use crate::domain::{Item, ItemKind};
use crate::money::Currency;

const ADJ: [&str; 16] = [
    "Fresh", "Organic", "Classic", "Smoked", "Golden", "Spicy", "Mild", "Crunchy", "Wild", "Alpine", "Rustic", "Sweet",
    "Dark", "Light", "Roasted", "Creamy",
];
const NOUN: [(&str, &str, u32); 16] = [
    ("Apples", "produce", 700),
    ("Bread", "bakery", 700),
    ("Cheese", "dairy", 700),
    ("Coffee", "pantry", 700),
    ("Tea", "pantry", 700),
    ("Chocolate", "sweets", 700),
    ("Pasta", "pantry", 700),
    ("Olive Oil", "pantry", 700),
    ("Yoghurt", "dairy", 700),
    ("Ham", "deli", 700),
    ("Soap", "household", 1900),
    ("Candles", "household", 1900),
    ("Notebook", "stationery", 1900),
    ("Batteries", "household", 1900),
    ("Wine", "drinks", 1900),
    ("Juice", "drinks", 1900),
];
const SIZE: [&str; 4] = ["", " 250 g", " 500 g", " XL"];

/// GS1 check digit of the first 12 digits of an EAN-13 (or any GTIN body).
pub fn gtin_check_digit(body: &[u8]) -> u8 {
    let sum: u32 =
        body.iter().rev().enumerate().map(|(i, d)| u32::from(d - b'0') * if i % 2 == 0 { 3 } else { 1 }).sum();
    ((10 - sum % 10) % 10) as u8
}

/// The in-store EAN-13 of demo item `i`.
pub fn demo_ean(i: u64) -> String {
    let body = format!("20{:010}", (i + 1) % 10_000_000_000);
    let check = gtin_check_digit(body.as_bytes());
    format!("{body}{check}")
}

fn mix(mut x: u64) -> u64 {
    // splitmix64: a fixed, well-spread function of the index.
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Demo item `i` of a catalog.
pub fn demo_item(i: u64) -> Item {
    let h = mix(i);
    let (noun, category, rate) = NOUN[(h % 16) as usize];
    let adj = ADJ[((h >> 8) % 16) as usize];
    let kind = if i % 10 == 7 && category != "household" && category != "stationery" {
        ItemKind::Weight
    } else if i % 13 == 5 {
        ItemKind::Lot
    } else {
        ItemKind::Unit
    };
    let size = if kind == ItemKind::Weight { "" } else { SIZE[((h >> 16) % 4) as usize] };
    let price = match kind {
        ItemKind::Weight => 199 + (h >> 24) % 2800, // per kg
        _ => 49 + (h >> 24) % 2950,
    };
    Item {
        sku: format!("SKU-{:07}", i + 1),
        name: format!("{adj} {noun}{size}"),
        price_minor: price as i64,
        currency: Currency::EUR,
        tax_rate_bp: rate,
        kind,
        barcodes: vec![demo_ean(i)],
        category: category.to_string(),
        age_restricted: noun == "Wine",
    }
}

/// Initial stock level of demo item `i` (units, or grams for weighed items).
pub fn demo_stock(i: u64) -> i64 {
    let h = mix(i ^ 0xABCD);
    let base = (h % 200) as i64;
    if i % 10 == 7 { base * 1000 } else { base }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digits_match_published_examples() {
        // 4006381333931 is a widely published valid EAN-13.
        assert_eq!(gtin_check_digit(b"400638133393"), 1);
        assert_eq!(gtin_check_digit(b"978030640615"), 7);
    }

    #[test]
    fn demo_items_are_deterministic_and_valid() {
        assert_eq!(demo_item(41), demo_item(41));
        let e = demo_ean(0);
        assert_eq!(e, "2000000000015");
        for i in 0..500 {
            let it = demo_item(i);
            assert_eq!(it.barcodes[0].len(), 13);
            assert!(it.price_minor > 0);
        }
    }
}
