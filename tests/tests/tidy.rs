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
        "sync/src/stock.rs",
        "edge/src/checkout/price.rs",
        "edge/src/checkout/order.rs",
        "edge/src/checkout/error.rs",
        "edge/src/checkout/receipt.rs",
        "edge/api/src/locale.rs",
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

/// Lines of code before the file's `#[cfg(test)]` module (tests may reach anywhere).
fn non_test_lines(p: &Path) -> Vec<(usize, String)> {
    code_lines(p).into_iter().take_while(|(_, l)| !l.trim_start().starts_with("#[cfg(test)]")).collect()
}

/// The checkout is HTTP-free: nothing under edge/src/checkout/ names axum, a status code,
/// the daemon's `App`, or an edge-api type other than the event bus's `Event` (its
/// `locale` rules — how money and dates are written — are shared with the screens and the
/// receipt, and are not wire types).
#[test]
fn the_checkout_knows_no_http_no_wire_types_and_no_app() {
    let mut found = Vec::new();
    for p in rust_files(&root().join("edge/src/checkout")) {
        for (n, l) in non_test_lines(&p) {
            let api_uses = l.match_indices("edge_api::").map(|(i, _)| &l[i + "edge_api::".len()..]);
            let wire = api_uses.into_iter().any(|rest| !rest.starts_with("Event") && !rest.starts_with("locale"));
            for (bad, why) in [
                ("axum", "axum"),
                ("StatusCode", "an HTTP status"),
                ("crate::app", "the daemon's App"),
                ("crate::http", "the HTTP layer"),
            ] {
                if l.contains(bad) {
                    found.push(format!("{}:{n} names {why}", p.display()));
                }
            }
            if wire {
                found.push(format!("{}:{n} names an edge-api type", p.display()));
            }
        }
    }
    assert!(found.is_empty(), "{found:?}");
}

/// edge's modules depend on each other without cycles (tests and binaries aside): each
/// top-level module's `crate::NAME` uses form a graph that must be acyclic.
#[test]
fn edge_modules_have_no_cycles() {
    use std::collections::{BTreeMap, BTreeSet};
    let src = root().join("edge/src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in rust_files(&src) {
        let rel = p.strip_prefix(&src).expect("under src");
        let first = rel.components().next().map(|c| c.as_os_str().to_string_lossy().to_string()).unwrap_or_default();
        if first == "bin" || first == "lib.rs" {
            continue;
        }
        let module = first.trim_end_matches(".rs").to_string();
        let deps = graph.entry(module.clone()).or_default();
        for (_, l) in non_test_lines(&p) {
            for (i, _) in l.match_indices("crate::") {
                let name: String =
                    l[i + "crate::".len()..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if !name.is_empty() && name != module && src.join(format!("{name}.rs")).exists()
                    || src.join(&name).is_dir() && name != module
                {
                    deps.insert(name);
                }
            }
        }
    }
    // Depth-first search for a back edge; the cycle found is named.
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == n) {
            let mut cycle = path[at..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        if let Some(c) = visit(n, &graph, &mut Vec::new(), &mut done) {
            panic!("a module cycle in edge/src: {}", c.join(" → "));
        }
    }
    assert!(graph.contains_key("checkout") && graph.contains_key("app"), "the graph was read: {graph:?}");
}
