//! Tidy checks: the walls of docs/ARCHITECTURE.md and the code map, as tests (in the manner
//! of rust-analyzer's tidy tests). Each failure names the file and the rule.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

const CRATES: [&str; 6] = ["edge", "edge/api", "ui", "drivers", "sync", "tests"];

/// Every .rs file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Lines of code, comments dropped (a wall is about what code uses, not what docs say).
fn code_lines(p: &Path) -> Vec<(usize, String)> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .map(|(i, l)| (i + 1, l.to_string()))
        .collect()
}

fn code_map() -> String {
    let doc = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).expect("docs/ARCHITECTURE.md");
    let after = doc.split("## Code map").nth(1).expect("a ## Code map section");
    after.split("```").nth(1).expect("the code map's block").to_string()
}

/// The code map names every source file (by its path, its name, or its folder) and names
/// no file that is gone.
#[test]
fn the_code_map_matches_the_files() {
    let map = code_map();
    let mut unnamed = Vec::new();
    for c in CRATES {
        let base = root().join(c);
        for p in rust_files(&base.join("src")) {
            let rel = p.strip_prefix(&base).expect("under the crate").to_string_lossy().to_string();
            let name = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            let folder = p.parent().and_then(|d| d.strip_prefix(&base).ok()).map(|d| format!("{}/", d.display()));
            let named = name == "lib.rs"
                || map.contains(&rel)
                || map.contains(&name)
                || folder.is_some_and(|f| f != "src/" && map.contains(&f));
            if !named {
                unnamed.push(format!("{c}/{rel}"));
            }
        }
    }
    assert!(unnamed.is_empty(), "docs/ARCHITECTURE.md's code map does not name: {unnamed:?}");
    let mut gone = Vec::new();
    for word in map.split(|ch: char| ch.is_whitespace() || ch == ',' || ch == '(' || ch == ')') {
        let w = word.trim_end_matches([':', ';', '.']);
        if w.starts_with("src/") && w.ends_with(".rs") && !CRATES.iter().any(|c| root().join(c).join(w).exists()) {
            gone.push(w.to_string());
        }
    }
    assert!(gone.is_empty(), "the code map names files that do not exist: {gone:?}");
}

/// Only the sled store opens sled (wall 5).
#[test]
fn only_the_sled_store_names_sled() {
    let allowed = root().join("sync/src/store/sled_store.rs");
    let mut found = Vec::new();
    for c in CRATES {
        for p in rust_files(&root().join(c).join("src")) {
            if p == allowed {
                continue;
            }
            for (n, l) in code_lines(&p) {
                let l = l.replace("sled_store", "");
                if l.contains("sled::") || l.contains("use sled") {
                    found.push(format!("{}:{n}", p.display()));
                }
            }
        }
    }
    assert!(found.is_empty(), "sled is named outside sync/src/store/sled_store.rs: {found:?}");
}

/// The kiosk is an API client: its [dependencies] hold edge-api and no other crate of ours.
#[test]
fn the_kiosk_depends_on_the_api_types_alone() {
    let toml = std::fs::read_to_string(root().join("ui/Cargo.toml")).expect("ui/Cargo.toml");
    let deps = toml.split("[dependencies]").nth(1).expect("[dependencies]").split("\n[").next().unwrap_or("");
    let ours: Vec<&str> = deps
        .lines()
        .filter_map(|l| l.split(['.', '=', ' ']).next())
        .filter(|n| n.starts_with("edge-") || *n == "edge")
        .collect();
    assert_eq!(ours, ["edge-api"], "ui's [dependencies] of ours");
}

/// The sync engine's decisions and the connectors take the clock and the network as
/// parameters (wall 6): no reqwest, wall clock or randomness in them.
#[test]
fn the_engine_and_the_connectors_do_no_io() {
    let files = [
        "sync/src/engine/mod.rs",
        "sync/src/engine/sim.rs",
        "sync/src/cloud/mod.rs",
        "sync/src/lightspeed/connector.rs",
        "sync/src/netsuite/connector.rs",
        "sync/src/wire.rs",
    ];
    let banned = ["reqwest", "SystemTime::now", "Timestamp::now", "Instant::now", "getrandom", "rand::", "tokio::"];
    let mut found = Vec::new();
    for f in files {
        let p = root().join(f);
        assert!(p.exists(), "{f} is gone: update this list");
        for (n, l) in code_lines(&p) {
            if let Some(b) = banned.iter().find(|b| l.contains(*b)) {
                found.push(format!("{f}:{n} uses {b}"));
            }
        }
    }
    assert!(found.is_empty(), "{found:?}");
}
