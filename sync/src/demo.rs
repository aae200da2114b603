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
        image: None,
    }
}

/// Where the company cloud keeps a demo item's picture (a path on the cloud): the demo
/// catalog carries it as its source, the fake cloud, does.
pub fn demo_picture_path(sku: &str) -> String {
    format!("/pictures/{sku}.svg")
}

/// The demo item's picture, drawn (no image files to ship): an SVG of its kind of goods
/// on a colour of its own, 256 × 256. `None` for a SKU that is not a demo item's.
pub fn demo_picture_svg(sku: &str) -> Option<String> {
    let i = sku.strip_prefix("SKU-")?.parse::<u64>().ok()?.checked_sub(1)?;
    let h = mix(i);
    let noun = NOUN[(h % 16) as usize].0;
    // A light background per adjective, a darker ink for the drawing.
    const BG: [&str; 8] = ["#fde68a", "#bbf7d0", "#bfdbfe", "#fecaca", "#ddd6fe", "#fed7aa", "#a5f3fc", "#e5e7eb"];
    const INK: [&str; 8] = ["#92400e", "#166534", "#1e3a8a", "#991b1b", "#5b21b6", "#9a3412", "#155e75", "#374151"];
    let k = ((h >> 8) % 8) as usize;
    let (bg, ink) = (BG[k], INK[k]);
    let body = match noun {
        "Apples" => {
            "<circle cx='110' cy='146' r='62'/><circle cx='150' cy='146' r='62'/><path d='M128 84 C130 60 146 44 168 40 C164 62 150 76 128 84 Z' fill='#16a34a'/>"
        }
        "Bread" => {
            "<path d='M40 170 C40 110 84 84 128 84 C172 84 216 110 216 170 L216 196 L40 196 Z'/><path d='M90 110 L104 150 M128 100 L128 150 M166 110 L152 150' stroke='#fff' stroke-width='8' fill='none'/>"
        }
        "Cheese" => {
            "<path d='M40 180 L216 180 L216 120 L60 80 Z'/><circle cx='120' cy='140' r='14' fill='#fff'/><circle cx='176' cy='156' r='10' fill='#fff'/>"
        }
        "Coffee" => {
            "<path d='M64 96 L176 96 L168 196 L72 196 Z'/><path d='M176 120 C212 120 212 170 172 170' stroke-width='12' fill='none' stroke='currentColor'/><path d='M96 56 C86 70 106 76 96 90 M128 56 C118 70 138 76 128 90' stroke-width='6' fill='none' stroke='currentColor'/>"
        }
        "Tea" => {
            "<path d='M56 110 L168 110 C168 170 148 196 112 196 C76 196 56 170 56 110 Z'/><path d='M168 126 C200 126 200 166 164 166' stroke-width='12' fill='none' stroke='currentColor'/><path d='M112 110 L112 60 L92 60 L92 40 L132 40 L132 60 L112 60' stroke-width='4' fill='none' stroke='currentColor'/>"
        }
        "Chocolate" => {
            "<rect x='56' y='48' width='144' height='160' rx='10'/><path d='M56 101 L200 101 M56 154 L200 154 M104 48 L104 208 M152 48 L152 208' stroke='#fff' stroke-width='6'/>"
        }
        "Pasta" => {
            "<path d='M60 70 C100 90 60 130 100 150 C140 170 100 200 140 210 M100 60 C140 80 100 120 140 140 C180 160 140 190 180 200 M140 56 C180 76 140 116 180 136 C210 150 190 180 210 190' stroke-width='10' fill='none' stroke='currentColor'/>"
        }
        "Olive Oil" | "Wine" => {
            "<path d='M112 40 L144 40 L144 92 C176 104 184 124 184 150 L184 216 L72 216 L72 150 C72 124 80 104 112 92 Z'/><rect x='84' y='140' width='88' height='48' fill='#fff'/>"
        }
        "Yoghurt" => {
            "<path d='M64 80 L192 80 L176 208 L80 208 Z'/><rect x='56' y='64' width='144' height='20' rx='6'/><rect x='88' y='120' width='80' height='40' fill='#fff'/>"
        }
        "Ham" => {
            "<path d='M60 150 C40 90 110 50 160 70 C200 86 210 140 180 170 C150 200 80 210 60 150 Z'/><circle cx='190' cy='190' r='20'/><circle cx='130' cy='130' r='22' fill='#fff'/>"
        }
        "Soap" => {
            "<rect x='48' y='88' width='160' height='104' rx='36'/><circle cx='80' cy='64' r='14' fill='none' stroke='currentColor' stroke-width='6'/><circle cx='120' cy='52' r='9' fill='none' stroke='currentColor' stroke-width='5'/>"
        }
        "Candles" => {
            "<rect x='76' y='110' width='40' height='100'/><rect x='140' y='90' width='40' height='120'/><path d='M96 100 C84 84 96 70 96 60 C108 74 108 88 96 100 Z M160 80 C148 64 160 50 160 40 C172 54 172 68 160 80 Z' fill='#f59e0b'/>"
        }
        "Notebook" => {
            "<rect x='64' y='40' width='136' height='176' rx='8'/><path d='M92 88 L180 88 M92 120 L180 120 M92 152 L180 152 M92 184 L150 184' stroke='#fff' stroke-width='6'/>"
        }
        "Batteries" => {
            "<rect x='56' y='96' width='144' height='72' rx='8'/><rect x='200' y='116' width='14' height='32' rx='3'/><path d='M100 132 L132 132 M116 116 L116 148 M148 132 L172 132' stroke='#fff' stroke-width='8'/>"
        }
        "Juice" => {
            "<path d='M76 72 L180 72 L180 216 L76 216 Z M76 72 L100 40 L156 40 L180 72'/><circle cx='128' cy='146' r='30' fill='#fff'/><circle cx='128' cy='146' r='18' fill='#f59e0b'/>"
        }
        _ => "<circle cx='128' cy='128' r='70'/>",
    };
    Some(format!(
        "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 256 256' width='256' height='256'>\
         <rect width='256' height='256' rx='24' fill='{bg}'/><g fill='{ink}' color='{ink}'>{body}</g></svg>"
    ))
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
