//! Contrast of the theme, computed from ui/theme.slint as WCAG 2.2 defines it (relative
//! luminance, (L1 + 0.05) / (L2 + 0.05)), in both themes: text at least 4.5:1 on every
//! background it is drawn on (1.4.3), control borders, focus and state colours at least
//! 3:1 (1.4.11). EN 301 549 § 9.1.4.3 / 9.1.4.11 ask the same of a self-service terminal.

use std::collections::BTreeMap;

/// `name: high-contrast ? #hc : #normal;` → name → (normal, high contrast).
fn theme() -> BTreeMap<String, (String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/ui/theme.slint");
    let text = std::fs::read_to_string(path).expect("ui/theme.slint");
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let l = line.trim();
        let Some(rest) = l.strip_prefix("out property <color> ") else { continue };
        let Some((name, expr)) = rest.split_once(':') else { continue };
        let Some((_, arms)) = expr.split_once('?') else { continue };
        let Some((hc, normal)) = arms.split_once(':') else { continue };
        let clean = |s: &str| s.trim().trim_end_matches(';').trim().to_string();
        out.insert(name.trim().to_string(), (clean(normal), clean(hc)));
    }
    out
}

fn luminance(hex: &str) -> f64 {
    let h = hex.trim_start_matches('#');
    assert_eq!(h.len(), 6, "a #rrggbb colour: {hex}");
    let ch = |i: usize| {
        let c = f64::from(u8::from_str_radix(&h[i..i + 2], 16).expect("hex")) / 255.0;
        if c <= 0.039_28 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
    };
    0.2126 * ch(0) + 0.7152 * ch(2) + 0.0722 * ch(4)
}

fn ratio(a: &str, b: &str) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

#[test]
fn the_formula_matches_wcag() {
    assert!((ratio("#000000", "#ffffff") - 21.0).abs() < 1e-9);
    assert!((ratio("#777777", "#ffffff") - 4.48).abs() < 0.01);
}

#[test]
fn text_borders_and_states_are_legible_in_both_themes() {
    let t = theme();
    assert!(t.len() >= 12, "the theme's colours were read: {t:?}");
    // (foreground, background, minimum, what)
    let pairs = [
        ("text", "background", 4.5, "text on the screen"),
        ("text", "surface", 4.5, "text on panels"),
        ("muted", "background", 4.5, "secondary text on the screen"),
        ("muted", "surface", 4.5, "secondary text on panels"),
        ("on-accent", "accent", 4.5, "labels of primary buttons"),
        ("on-danger", "danger", 4.5, "labels of danger buttons"),
        ("warning-text", "warning-bg", 4.5, "banner text"),
        ("offline-text", "offline-bg", 4.5, "the offline banner"),
        ("danger", "surface", 4.5, "error text"),
        ("accent", "surface", 4.5, "links and the focus ring on panels"),
        ("accent", "background", 3.0, "the focus ring on the screen"),
        ("ok", "surface", 3.0, "the online mark"),
        ("border", "surface", 3.0, "control borders on panels"),
        ("border", "background", 3.0, "control borders on the screen"),
    ];
    let mut low = Vec::new();
    for (fg, bg, min, what) in pairs {
        let (Some(f), Some(b)) = (t.get(fg), t.get(bg)) else { panic!("{fg} or {bg} is not in the theme") };
        for (theme, f, b) in [("normal", &f.0, &b.0), ("high contrast", &f.1, &b.1)] {
            let r = ratio(f, b);
            if r < min {
                low.push(format!("{theme}: {what} ({fg} {f} on {bg} {b}) is {r:.2}:1, below {min}:1"));
            }
        }
    }
    assert!(low.is_empty(), "{}", low.join("\n"));
}
