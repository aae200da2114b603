//! `edged demo`: the whole product on one machine. Makes (or reuses) a data directory,
//! writes a demo configuration, seeds the deterministic demo catalog once, and runs the
//! daemon on it. Restarted on the same directory (also after SIGKILL) it carries on with the
//! same store, catalog and tokens.

use crate::config::{self, Config};
use edge_sync::demo::{demo_item, demo_stock};
use edge_sync::store::{SnapshotRecord, Store};
use jiff::Timestamp;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const META_DEMO_SIZE: &str = "demo.catalog_size";

/// Device kinds a demo can take from `--device KIND=URI`.
pub const DEVICE_KINDS: [&str; 7] = ["terminal", "printer", "scanner", "scanner-hid", "scale", "display", "drawer"];

/// Checks one `--device KIND=URI` argument.
pub fn parse_device(arg: &str) -> Result<(String, String), String> {
    let (kind, uri) = arg.split_once('=').ok_or_else(|| format!("--device {arg:?}: expected KIND=URI"))?;
    if !DEVICE_KINDS.contains(&kind) {
        return Err(format!("--device {arg:?}: unknown kind {kind:?}; one of {}", DEVICE_KINDS.join(", ")));
    }
    let ok = ["tcp://", "serial://", "usb://"].iter().any(|s| uri.starts_with(s) && uri.len() > s.len())
        || (kind == "terminal" && uri.starts_with("adyen://") && uri.len() > 8);
    if !ok {
        return Err(format!(
            "--device {arg:?}: URI must be tcp://HOST:PORT, serial:///dev/… or usb://VID:PID (a terminal may be \
             adyen://HOST:PORT)"
        ));
    }
    Ok((kind.to_string(), uri.to_string()))
}

/// The remotes named by an `edge-lab fakes` file (`{"cloud": url, "lightspeed": url, "netsuite": url,
/// "shopify": url}`;
/// a remote without a fake yet may be absent).
pub fn read_fakes(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("--fakes {}: {e}", path.display()))?;
    let f: crate::fakes::FakesFile =
        serde_json::from_str(&text).map_err(|e| format!("--fakes {}: not a fakes file: {e}", path.display()))?;
    let out = f.urls();
    for (name, url) in &out {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("--fakes {}: {name}: {url:?} is not an http URL", path.display()));
        }
    }
    if out.is_empty() {
        return Err(format!("--fakes {}: names no remote", path.display()));
    }
    Ok(out)
}

/// The demo cloud secret, in a 0600 file under the data dir (secrets never sit in config).
pub fn write_demo_secret(dir: &Path) -> Result<(), String> {
    let d = dir.join("secrets");
    std::fs::create_dir_all(&d).map_err(|e| format!("cannot make {}: {e}", d.display()))?;
    let write = |name: &str, body: &[u8]| {
        crate::tokens::write_private(&d.join(name), body)
            .map_err(|e| format!("cannot write {}/{name}: {e}", d.display()))
    };
    write("cloud.key", b"demo-cloud-secret\n")?;
    // CONTRACT: the Lightspeed demo client, and Oracle's published example TBA values.
    write(
        "lightspeed.json",
        br#"{"client_id": "demo-client", "client_secret": "demo-secret", "refresh_token": "demo-refresh-token"}"#,
    )?;
    let t = edge_sync::netsuite::fake::demo_tba();
    let ns = serde_json::json!({"tba": {"consumer_key": t.consumer_key, "consumer_secret": t.consumer_secret,
                                        "token": t.token, "token_secret": t.token_secret}});
    write("netsuite.json", ns.to_string().as_bytes())?;
    // The fake shop's Admin API access token (CONTRACT).
    write("shopify.token", format!("{}\n", edge_sync::shopify::fake::DEMO_TOKEN).as_bytes())
}

/// Makes the data directory (a fresh temporary one unless given) and the demo config that
/// points at `urls` (the fakes).
pub fn prepare(
    data_dir: Option<PathBuf>,
    listen: &str,
    urls: &BTreeMap<String, String>,
    lane: &str,
    bus: Option<&str>,
) -> Result<(Config, PathBuf), String> {
    let dir = match data_dir {
        Some(d) => {
            std::fs::create_dir_all(&d).map_err(|e| format!("cannot make data dir {}: {e}", d.display()))?;
            d
        }
        None => tempfile::Builder::new()
            .prefix("edged-demo-")
            .tempdir()
            .map_err(|e| format!("cannot make a temporary data dir: {e}"))?
            .keep(),
    };
    let dir = std::fs::canonicalize(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    write_demo_secret(&dir)?;
    let text = config::demo_toml_lane(&dir, listen, urls, lane, bus);
    crate::tokens::write_public(&dir.join("config.toml"), text.as_bytes())
        .map_err(|e| format!("cannot write {}/config.toml: {e}", dir.display()))?;
    let cfg = config::parse(&text, &dir).map_err(|p| {
        let lines: Vec<String> = p.iter().map(ToString::to_string).collect();
        format!("demo config is invalid: {}", lines.join("; "))
    })?;
    Ok((cfg, dir))
}

/// The demo configuration for `dir` with the cloud at an address where nothing listens
/// (benches and tests that make sales without delivering them).
pub fn offline_config(dir: &Path) -> Result<Config, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    write_demo_secret(dir)?;
    let urls: BTreeMap<String, String> =
        config::REMOTE_NAMES.iter().map(|n| (n.to_string(), "http://127.0.0.1:9".to_string())).collect();
    config::parse(&config::demo_toml(dir, "127.0.0.1:0", &urls), dir).map_err(|p| {
        let lines: Vec<String> = p.iter().map(ToString::to_string).collect();
        lines.join("; ")
    })
}

/// Seeds the demo catalog up to `size` items (once; a restart finds it there).
pub fn seed_catalog(store: &dyn Store, size: u64) -> Result<(), String> {
    let have = match store.meta_get(META_DEMO_SIZE).map_err(|e| e.to_string())? {
        Some(v) => {
            u64::from_be_bytes(v.as_slice().try_into().map_err(|_| "demo catalog size record is damaged".to_string())?)
        }
        None => 0,
    };
    if have >= size {
        if have > size {
            tracing::warn!(have, asked = size, "demo catalog is larger than --catalog-size; keeping the larger one");
        }
        return Ok(());
    }
    let started = std::time::Instant::now();
    let now = Timestamp::now();
    // The whole demo catalog is one snapshot, as a full pull from the catalog source would be.
    let records: Vec<SnapshotRecord> = (0..size)
        .map(|i| {
            // The pictures as the catalog source (the fake cloud) gives them.
            let mut item = demo_item(i);
            item.image = Some(edge_sync::demo::demo_picture_path(&item.sku));
            SnapshotRecord { item, stock_level: Some(demo_stock(i)), stock_at: Some(now) }
        })
        .collect();
    store.import_catalog(&records).map_err(|e| e.to_string())?;
    drop(records);
    store.meta_set(META_DEMO_SIZE, &size.to_be_bytes()).map_err(|e| e.to_string())?;
    store.sync().map_err(|e| e.to_string())?;
    crate::daemon::release_free_memory();
    tracing::info!(items = size, ms = started.elapsed().as_millis() as u64, "demo catalog seeded");
    Ok(())
}

/// The demo's devices: the ones given with `--device KIND=URI`, and a simulator for every
/// other kind (see `edge_drivers::sim`), the terminal's journal kept in the data dir. The
/// drawer is driven through the printer.
pub fn demo_devices(given: &[(String, String)], data_dir: &Path) -> Result<Vec<crate::devices::DeviceSpec>, String> {
    let adyen = DemoAdyen {
        root: PathBuf::from("adyen-ca.pem"),
        poi_id: edge_drivers::adyen::sim::DEMO_POI_ID.into(),
        currency: "EUR".into(),
    };
    demo_devices_with(given, data_dir, &adyen)
}

/// An Adyen terminal in the demo (`--device terminal=adyen://HOST:PORT`): the root its
/// certificate chains to, its POIID, and the store's currency. The key is Adyen's
/// published test key (CONTRACT.md), its passphrase written to a 0600 file in the data
/// dir as a store's would be.
pub struct DemoAdyen {
    pub root: PathBuf,
    pub poi_id: String,
    pub currency: String,
}

/// [`demo_devices`] with the Adyen terminal's settings.
pub fn demo_devices_with(
    given: &[(String, String)],
    data_dir: &Path,
    adyen: &DemoAdyen,
) -> Result<Vec<crate::devices::DeviceSpec>, String> {
    use crate::devices::{DeviceSpec, Kind};
    use edge_drivers::uri::DeviceUri;
    let mut specs = Vec::new();
    for (kind, uri) in given {
        match Kind::parse(kind) {
            Some(k) => {
                let parsed = DeviceUri::parse(uri).map_err(|e| format!("--device {kind}={uri}: {e}"))?;
                let mut spec = DeviceSpec::new(kind, k, parsed);
                if k == Kind::Terminal && matches!(spec.uri, DeviceUri::Adyen { .. }) {
                    spec.adyen = Some(demo_adyen(adyen, data_dir).map_err(|e| format!("--device {kind}={uri}: {e}"))?);
                    spec.reply_timeout = std::time::Duration::from_secs(20);
                }
                specs.push(spec);
            }
            // A scanner that sends HID POS reports over a link that is not USB (a simulator).
            None if kind == "scanner-hid" => {
                let uri = DeviceUri::parse(uri).map_err(|e| format!("--device {kind}={uri}: {e}"))?;
                specs.push(DeviceSpec { hid: true, ..DeviceSpec::new("scanner", Kind::Scanner, uri) });
            }
            None => {
                tracing::warn!(%kind, %uri, "this build drives printers, scanners, scales and displays; {kind} is not driven")
            }
        }
    }
    if !specs.iter().any(|s| s.kind == Kind::Terminal) {
        let uri = edge_drivers::sim::spawn_terminal(data_dir.join("terminal-sim-journal.tsv"))?;
        tracing::info!(kind = "terminal", %uri, "simulated device");
        let mut t = DeviceSpec::new("terminal", Kind::Terminal, uri);
        t.reply_timeout = std::time::Duration::from_secs(20);
        specs.push(t);
    }
    let missing: Vec<&str> = ["printer", "scanner", "scale", "display"]
        .into_iter()
        .filter(|k| !specs.iter().any(|s| s.kind.name() == *k))
        .collect();
    for (kind, uri) in edge_drivers::sim::spawn(&missing)? {
        let k = Kind::parse(kind).ok_or_else(|| format!("simulator of unknown kind {kind}"))?;
        tracing::info!(kind, %uri, "simulated device");
        specs.push(DeviceSpec::new(kind, k, uri));
    }
    Ok(specs)
}

fn demo_adyen(a: &DemoAdyen, data_dir: &Path) -> Result<crate::devices::AdyenSpec, String> {
    use edge_drivers::adyen::sim::{DEMO_KEY_ID, DEMO_KEY_VERSION, DEMO_PASSPHRASE};
    let root_pem = std::fs::read(&a.root).map_err(|e| {
        format!(
            "the terminal's root certificate {}: {e} (start `edge-lab sim terminal --protocol adyen` in this directory, \
             or give --terminal-root)",
            a.root.display()
        )
    })?;
    // The passphrase as a store keeps it: a 0600 file, read back through the same check.
    let file = data_dir.join("adyen-passphrase");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&file)
            .map_err(|e| format!("{}: {e}", file.display()))?;
        f.write_all(DEMO_PASSPHRASE.as_bytes()).map_err(|e| format!("{}: {e}", file.display()))?;
        // A file kept from an earlier run keeps its mode on open: make it the owner's.
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(|e| format!("{}: {e}", file.display()))?;
    }
    let passphrase = crate::config::read_secret(&file)?;
    let key = edge_drivers::adyen::crypto::Key::derive(DEMO_KEY_ID, DEMO_KEY_VERSION, &passphrase)
        .map_err(|e| e.to_string())?;
    edge_drivers::adyen::tls::client_config(&root_pem, &a.poi_id)?;
    Ok(crate::devices::AdyenSpec {
        poi_id: a.poi_id.clone(),
        sale_id: "demo-edged".into(),
        currency: a.currency.clone(),
        key,
        root_pem,
    })
}

/// Starts the staff screen (`edge-kiosk --data-dir DIR --mode staff`, found beside this
/// binary) when a display exists; it connects once the API is up (`DIR/api.json`).
pub fn spawn_kiosk(dir: &Path) -> Option<std::process::Child> {
    let display = ["DISPLAY", "WAYLAND_DISPLAY"].iter().any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
    if !display {
        tracing::info!(
            "no display: the kiosk UI is not started (edge-kiosk --data-dir {} --mode staff)",
            dir.display()
        );
        return None;
    }
    let exe = std::env::current_exe().ok()?.with_file_name("edge-kiosk");
    if !exe.exists() {
        tracing::warn!(path = %exe.display(), "edge-kiosk is not installed beside edged; no kiosk UI");
        return None;
    }
    match std::process::Command::new(&exe)
        .arg("--data-dir")
        .arg(dir)
        .args(["--mode", "staff"])
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .spawn()
    {
        Ok(c) => {
            tracing::info!(pid = c.id(), "kiosk UI started (staff register)");
            Some(c)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the kiosk UI");
            None
        }
    }
}
