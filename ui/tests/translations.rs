//! Every string of the screens is translatable (`@tr`) and German is complete: each
//! `@tr("…")` of ui/ui/*.slint has a non-empty German entry with the same placeholders,
//! and the German file has no entry the screens no longer use.

use std::collections::BTreeMap;

/// The string literals of `@tr("…")` in a .slint source (with `\"` and `\\` unescaped).
fn tr_strings(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(at) = rest.find("@tr(\"") {
        rest = &rest[at + 5..];
        let mut s = String::new();
        let mut chars = rest.char_indices();
        let mut end = rest.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        s.push(n);
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => s.push(c),
            }
        }
        rest = &rest[end..];
        out.push(s);
    }
    out
}

/// msgid → msgstr of a .po file (single-line entries, as this project writes them).
fn po(text: &str) -> BTreeMap<String, String> {
    let unq = |s: &str| -> String {
        let s = s.trim();
        let s = s.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(s);
        s.replace("\\\"", "\"").replace("\\\\", "\\")
    };
    let mut map = BTreeMap::new();
    let mut id: Option<String> = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("msgid ") {
            id = Some(unq(v));
        } else if let Some(v) = line.strip_prefix("msgstr ")
            && let Some(k) = id.take()
            && !k.is_empty()
        {
            map.insert(k, unq(v));
        }
    }
    map
}

#[test]
fn every_string_is_translated_to_german() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut used = Vec::new();
    for e in std::fs::read_dir(dir.join("ui")).expect("ui dir") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "slint") {
            used.extend(tr_strings(&std::fs::read_to_string(&p).expect("read")));
        }
    }
    assert!(used.len() > 100, "found only {} translatable strings", used.len());
    let de = po(&std::fs::read_to_string(dir.join("lang/de/LC_MESSAGES/edge-kiosk.po")).expect("de .po"));
    let mut problems = Vec::new();
    for s in &used {
        match de.get(s) {
            None => problems.push(format!("missing: {s:?}")),
            Some(t) if t.trim().is_empty() => problems.push(format!("empty: {s:?}")),
            Some(t) if t.matches("{}").count() != s.matches("{}").count() => {
                problems.push(format!("placeholders differ: {s:?} → {t:?}"))
            }
            Some(_) => {}
        }
    }
    for k in de.keys() {
        if !used.contains(k) {
            problems.push(format!("unused: {k:?}"));
        }
    }
    assert!(problems.is_empty(), "German translation problems:\n{}", problems.join("\n"));
}

#[test]
fn no_text_is_written_without_tr() {
    // A `text:` bound to a bare string literal would not be translated. Symbols and
    // numbers (digits, "✕", "A+") are allowed.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    let mut bad = Vec::new();
    for e in std::fs::read_dir(&dir).expect("ui dir") {
        let p = e.expect("entry").path();
        if p.extension().is_none_or(|x| x != "slint") {
            continue;
        }
        let src = std::fs::read_to_string(&p).expect("read");
        for (n, line) in src.lines().enumerate() {
            let t = line.trim();
            if let Some(v) = t.strip_prefix("text: \"") {
                let lit = v.split('"').next().unwrap_or("");
                if lit.chars().any(|c| c.is_alphabetic()) && !["A−", "A+", "English", "Deutsch"].contains(&lit) {
                    bad.push(format!("{}:{}: {t}", p.display(), n + 1));
                }
            }
        }
    }
    assert!(bad.is_empty(), "untranslated texts:\n{}", bad.join("\n"));
}
