//! Item pictures end to end: the real `edged demo` keeps the catalog's pictures (paths on
//! the fake cloud) on disk and serves them; the catalog then names them. Once kept, they are
//! served with the cloud gone (the screens show pictures offline).

mod common;

use common::Daemon;
use serde_json::Value;
use std::time::{Duration, Instant};

#[test]
fn the_catalogs_pictures_are_kept_on_disk_and_served_offline_too() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = Daemon::start(dir.path(), 20);
    let http = d.http();
    let item = |sku: &str| -> Value {
        http.get(format!("{}/v1/catalog/items?q={sku}", d.url))
            .bearer_auth(&d.tokens.cashier)
            .send()
            .expect("get")
            .json::<Value>()
            .expect("json")["items"][0]
            .clone()
    };
    // The daemon fetches them in the background; the catalog names each once it is kept.
    let deadline = Instant::now() + Duration::from_secs(30);
    let path = loop {
        if let Some(p) = item("SKU-0000001")["image"].as_str() {
            break p.to_string();
        }
        assert!(Instant::now() < deadline, "no picture kept; edged log:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(path, "/v1/catalog/items/SKU-0000001/image");
    let get = |p: &str| http.get(format!("{}{p}", d.url)).bearer_auth(&d.tokens.cashier).send().expect("get");
    let r = get(&path);
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    let body = r.bytes().expect("bytes");
    assert_eq!(
        body.as_ref(),
        edge_sync::demo::demo_picture_svg("SKU-0000001").expect("drawing").as_bytes(),
        "the picture as the cloud served it"
    );
    // The files are in the data dir, named by their URL's hash.
    let kept = std::fs::read_dir(dir.path().join("pictures")).expect("pictures dir").count();
    assert!(kept >= 1, "{kept}");

    // The cloud goes down: the kept picture is still served.
    let config = std::fs::read_to_string(dir.path().join("config.toml")).expect("config.toml");
    let cloud = config
        .split("[remotes.cloud]")
        .nth(1)
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("url = ")))
        .map(|u| u.trim_matches('"').to_string())
        .expect("the demo's cloud URL");
    let down = http.post(format!("{cloud}/_fake/faults")).json(&serde_json::json!({"down": true})).send();
    assert!(down.is_ok_and(|r| r.status().is_success()));
    assert_eq!(get(&path).status().as_u16(), 200);
    // An item that does not exist, or a picture not kept: 404 with a reason.
    let r = get("/v1/catalog/items/NO-SUCH/image");
    assert_eq!(r.status().as_u16(), 404);
    assert!(r.text().unwrap_or_default().contains("no-picture"));
}
