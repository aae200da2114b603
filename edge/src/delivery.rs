//! Wiring of the sync engine (`edge_sync::engine`) into edged: one worker per configured
//! remote that has a connector in this build, the HTTP client they share, and the task that
//! announces `sync.status` events when a remote's state or counts change.

use crate::app::App;
use crate::config::{Config, Mode, read_secret};
use edge_api::Event;
use edge_sync::cloud::CloudConnector;
use edge_sync::cloud::live::{CloudLink, CommandHook};
use edge_sync::domain::Remote;
use edge_sync::engine::run::SyncEngine;
use edge_sync::engine::{Policy, Worker};
use std::sync::Arc;
use std::time::Duration;

/// Secrets of a Lightspeed connection (`remotes.lightspeed.secret_file`, JSON).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LsSecret {
    client_id: String,
    client_secret: String,
    /// The refresh token the store was authorised with (used until the first refresh;
    /// after that the store keeps the rotating pair).
    refresh_token: String,
}

/// Secrets of a NetSuite connection (`remotes.netsuite.secret_file`, JSON): `tba` or `m2m`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NsSecret {
    #[serde(default)]
    tba: Option<NsTba>,
    #[serde(default)]
    m2m: Option<NsM2m>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NsTba {
    consumer_key: String,
    consumer_secret: String,
    token: String,
    token_secret: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NsM2m {
    client_id: String,
    certificate_id: String,
    /// The PKCS#8 P-256 private key, base64.
    private_key_pkcs8_base64: String,
}

/// NetSuite's credentials from `remotes.netsuite.secret_file`.
pub fn netsuite_auth(
    cfg: &Config,
    rc: &crate::config::RemoteConfig,
) -> Result<edge_sync::netsuite::live::NsSigner, String> {
    use edge_sync::netsuite::connector::NsAuth;
    let map = cfg.netsuite.as_ref().ok_or("mappings.netsuite: required when remotes.netsuite is not off")?;
    let secret: NsSecret = secret_json("netsuite", rc)?;
    let auth = match (secret.tba, secret.m2m) {
        (Some(t), None) => NsAuth::Tba(edge_sync::netsuite::tba::Credentials {
            account: map.account.clone(),
            consumer_key: t.consumer_key,
            consumer_secret: t.consumer_secret,
            token: t.token,
            token_secret: t.token_secret,
        }),
        (None, Some(m)) => {
            use base64::Engine as _;
            let key = base64::engine::general_purpose::STANDARD
                .decode(m.private_key_pkcs8_base64.trim())
                .map_err(|e| format!("remotes.netsuite.secret_file: m2m.private_key_pkcs8_base64: {e}"))?;
            NsAuth::M2m(
                edge_sync::netsuite::m2m::M2m::new(&m.client_id, &m.certificate_id, &key)
                    .map_err(|e| format!("remotes.netsuite.secret_file: {e}"))?,
            )
        }
        _ => return Err("remotes.netsuite.secret_file: give exactly one of \"tba\" and \"m2m\"".into()),
    };
    Ok(edge_sync::netsuite::live::NsSigner::new(auth))
}

/// Shopify's Admin API access token (`remotes.shopify.secret_file`, owner-only).
pub fn shopify_token(rc: &crate::config::RemoteConfig) -> Result<String, String> {
    let f = rc.secret_file.as_ref().ok_or("remotes.shopify.secret_file: required when the mode is not \"off\"")?;
    crate::config::secret_mode(f).map_err(|e| format!("remotes.shopify.secret_file: {e}"))?;
    let raw = read_secret(f).map_err(|e| format!("remotes.shopify.secret_file: {e}"))?;
    let t = String::from_utf8(raw).map_err(|_| "remotes.shopify.secret_file: the token is not text".to_string())?;
    if !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("remotes.shopify.secret_file: the token has spaces or control characters".into());
    }
    Ok(t)
}

/// Store meta key of Lightspeed's token pair.
pub const META_LS_TOKENS: &str = "lightspeed.tokens";
const META_LS_BOOTSTRAP: &str = "lightspeed.bootstrap_sha256";

fn secret_json<T: serde::de::DeserializeOwned>(name: &str, rc: &crate::config::RemoteConfig) -> Result<T, String> {
    let key = format!("remotes.{name}.secret_file");
    let f = rc.secret_file.as_ref().ok_or_else(|| format!("{key}: required when the mode is not \"off\""))?;
    let raw = read_secret(f).map_err(|e| format!("{key}: {e}"))?;
    serde_json::from_slice(&raw).map_err(|e| format!("{key}: {} is not the expected JSON: {e}", f.display()))
}

/// The Lightspeed account's tokens: the pair the store keeps, or the bootstrap refresh
/// token from the secret file when it is new (a re-authorisation replaces the file).
pub fn lightspeed_auth(
    cfg: &Config,
    store: &Arc<dyn edge_sync::store::Store>,
) -> Result<Option<Arc<edge_sync::lightspeed::connector::LsAuth>>, String> {
    use edge_sync::lightspeed::oauth::TokenSet;
    use sha2::Digest;
    let Some(rc) = cfg.remotes.get(&Remote::Lightspeed).filter(|r| r.mode != Mode::Off) else { return Ok(None) };
    let secret: LsSecret = secret_json("lightspeed", rc)?;
    let boot: String =
        sha2::Sha256::digest(secret.refresh_token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let meta = |k: &str| store.meta_get(k).map_err(|e| format!("cannot read the store: {e}"));
    let known_boot = meta(META_LS_BOOTSTRAP)?.map(|b| String::from_utf8_lossy(&b).into_owned());
    let kept: Option<TokenSet> = match meta(META_LS_TOKENS)? {
        Some(b) if known_boot.as_deref() == Some(boot.as_str()) => serde_json::from_slice(&b).ok(),
        _ => None,
    };
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let tokens = match kept {
        Some(t) => t,
        None => {
            tracing::info!("Lightspeed: starting from the refresh token in the secret file");
            store.meta_set(META_LS_BOOTSTRAP, boot.as_bytes()).map_err(|e| format!("cannot write the store: {e}"))?;
            TokenSet {
                access: String::new(),
                refresh: secret.refresh_token.clone(),
                access_expires_at_ms: 0,
                refresh_used_at_ms: now_ms,
                previous_refresh: None,
            }
        }
    };
    let st = store.clone();
    let save = Box::new(move |t: &TokenSet| {
        let b = serde_json::to_vec(t).map_err(|e| e.to_string())?;
        st.meta_set(META_LS_TOKENS, &b).map_err(|e| e.to_string())?;
        st.sync().map_err(|e| e.to_string())
    });
    Ok(Some(edge_sync::lightspeed::connector::LsAuth::new(&secret.client_id, &secret.client_secret, tokens, save)))
}

/// Builds the workers the configuration asks for. Errors name the config key.
pub fn build_engine(
    cfg: &Config,
    store: &Arc<dyn edge_sync::store::Store>,
    ls_auth: Option<Arc<edge_sync::lightspeed::connector::LsAuth>>,
    ns_newest: Arc<edge_sync::netsuite::live::NsNewest>,
    shop: &Arc<edge_sync::shopify::connector::Shop>,
    bus: Option<&edge_sync::bus::live::Bus>,
) -> Result<SyncEngine, String> {
    let mut engine = SyncEngine::new();
    if let Some(bus) = bus {
        // The store's bus is a remote of the outbox like the others: its own state,
        // backoff, dead letters and health; its requests are publishes to JetStream.
        let seed = getrandom::u64().map_err(|e| format!("no random seed for the bus worker: {e}"))?;
        let policy = Policy {
            max_batch: 64,
            max_in_flight: 4,
            backoff_base_ms: 200,
            backoff_max_ms: 5_000,
            breaker_open_ms: 2_000,
            ..Policy::default()
        };
        let connector = Box::new(edge_sync::bus::BusConnector::new(bus.lane()));
        engine.add_with(Worker::new(Remote::Bus, connector, policy, seed), bus.transport(), Duration::from_secs(5));
        tracing::info!(lane = bus.lane(), "bus worker configured");
    }
    for (name, rc) in &cfg.remotes {
        if rc.mode == Mode::Off {
            continue;
        }
        let url = rc.url.clone().unwrap_or_default();
        let seed = getrandom::u64().map_err(|e| format!("no random seed for the sync worker: {e}"))?;
        let mut max_in_flight = rc.max_in_flight;
        let connector: Box<dyn edge_sync::engine::Connector> = match name {
            Remote::Cloud => {
                let secret = match &rc.secret_file {
                    Some(f) => read_secret(f).map_err(|e| format!("remotes.{name}.secret_file: {e}"))?,
                    None => return Err(format!("remotes.{name}.secret_file: required when the mode is not \"off\"")),
                };
                Box::new(CloudConnector::new(cfg.store_id.clone(), secret))
            }
            Remote::Lightspeed => {
                let map =
                    cfg.lightspeed.clone().ok_or("mappings.lightspeed: required when remotes.lightspeed is not off")?;
                let auth = ls_auth.clone().ok_or("remotes.lightspeed: no tokens")?;
                let st = store.clone();
                let items: edge_sync::lightspeed::connector::ItemResolver = Arc::new(move |sku: &str| {
                    let v = st.meta_get(&edge_sync::mapping::ls_item_key(sku)).ok()??;
                    String::from_utf8_lossy(&v).parse().ok()
                });
                let token_url = map.token_url.clone();
                Box::new(
                    edge_sync::lightspeed::connector::LightspeedConnector::new(map, auth, items, token_url)
                        .learning_items(),
                )
            }
            Remote::Bus => continue,
            Remote::Shopify => {
                use edge_sync::shopify::connector::{ShopifyConnector, VariantResolver};
                let map = cfg.shopify.clone().ok_or("mappings.shopify: required when remotes.shopify is not off")?;
                let token = shopify_token(rc)?;
                let st = store.clone();
                let variants: VariantResolver = Arc::new(move |sku: &str| {
                    let v = st.meta_get(&edge_sync::mapping::shopify_variant_key(sku)).ok()??;
                    let v = String::from_utf8_lossy(&v).into_owned();
                    let (a, b) = v.split_once(' ')?;
                    Some((a.to_string(), b.to_string()))
                });
                // Two requests at most: the shop's bucket is the limit, not the latency.
                max_in_flight = max_in_flight.min(2);
                let keeps_stock = cfg.catalog == Some(Remote::Shopify);
                Box::new(ShopifyConnector::new(map, shop.clone(), &token, variants, keeps_stock).learning_variants())
            }
            Remote::Netsuite => {
                use edge_sync::netsuite::connector::NetSuiteConnector;
                let map = cfg.netsuite.clone().ok_or("mappings.netsuite: required when remotes.netsuite is not off")?;
                let auth = netsuite_auth(cfg, rc)?.auth;
                max_in_flight = max_in_flight.min(map.concurrency as usize).max(1);
                Box::new(NetSuiteConnector::new(map, auth, &url, seed ^ 0x4e53).with_newest(ns_newest.clone()))
            }
        };
        let policy = Policy {
            max_batch: rc.max_batch,
            max_in_flight,
            max_record_attempts: rc.max_attempts,
            shadow: rc.mode == Mode::Shadow,
            ..Policy::default()
        };
        engine.add(Worker::new(*name, connector, policy, seed), &url, Duration::from_millis(rc.timeout_ms));
        tracing::info!(remote = %name, mode = rc.mode.as_str(), %url, "sync worker configured");
    }
    Ok(engine)
}

/// The cloud's pull and stream link, when the cloud is live with a URL.
pub fn build_cloud_link(cfg: &Config) -> Result<Option<CloudLink>, String> {
    let Some(rc) = cfg.remotes.get(&Remote::Cloud) else { return Ok(None) };
    let (Mode::Live, Some(url)) = (rc.mode, rc.url.as_ref()) else { return Ok(None) };
    let secret = match &rc.secret_file {
        Some(f) => read_secret(f).map_err(|e| format!("remotes.cloud.secret_file: {e}"))?,
        None => return Err("remotes.cloud.secret_file: required when the mode is not \"off\"".into()),
    };
    let mut link = CloudLink::new(
        &cfg.store_id,
        &secret,
        url,
        Duration::from_secs(rc.pull_interval_s),
        Duration::from_millis(rc.timeout_ms),
    );
    if cfg.catalog != Some(Remote::Cloud) {
        // Another source (or none) owns catalog, prices and stock: only the config feed.
        link.feeds = vec![edge_sync::cloud::pull::Feed::Config];
    }
    Ok(Some(link))
}

/// Starts the cloud link's puller and stream (if any).
pub fn spawn_cloud_link(app: &Arc<App>, client: reqwest::Client) -> Vec<tokio::task::JoinHandle<()>> {
    let Some(link) = app.cloud_link.clone() else { return Vec::new() };
    let weak = Arc::downgrade(app);
    let hook: CommandHook = Arc::new(move |name: &str, data: &serde_json::Value| {
        if let Some(app) = weak.upgrade() {
            remote_command(&app, name, data);
        }
    });
    vec![
        tokio::spawn(link.clone().run_puller(app.store.clone(), client, app.stopping.subscribe())),
        tokio::spawn(link.run_stream(app.store.clone(), hook, app.stopping.subscribe())),
    ]
}

/// A command the cloud sent on its stream.
fn remote_command(app: &Arc<App>, name: &str, data: &serde_json::Value) {
    let audit = |detail: String| {
        let rec = edge_sync::domain::AuditRecord {
            id: edge_sync::domain::new_id(),
            at: jiff::Timestamp::now(),
            actor: "cloud".into(),
            action: format!("remote.{name}"),
            subject: app.cfg.store_id.clone(),
            request_id: String::new(),
            detail,
        };
        if let Err(e) = app.store.append_audit(&rec) {
            tracing::warn!(error = %e, "cannot write the audit record of a remote command");
        }
    };
    match name {
        "sync_now" => {
            app.engine.nudge(jiff::Timestamp::now());
            if let Some(l) = &app.cloud_link {
                l.wake_pull.notify_one();
            }
            audit("deliveries and pulls started now".into());
        }
        "collect_bundle" => match write_bundle(app) {
            Ok(path) => {
                tracing::info!(path = %path.display(), "support bundle written at the cloud's request");
                audit(format!("bundle {}", path.display()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "support bundle failed");
                audit(format!("failed: {e}"));
            }
        },
        other => {
            tracing::warn!(command = other, data = %data, "unknown remote command; ignored");
            audit("unknown command, ignored".into());
        }
    }
}

/// Bundles kept under `DATA/support/`.
const MAX_BUNDLES: usize = 5;

/// A small support bundle: version, health, delivery state, store figures, metrics, and the
/// configuration's shape — never a secret (secrets live in files the bundle does not read)
/// and never card data (the store holds none).
pub fn write_bundle(app: &App) -> Result<std::path::PathBuf, String> {
    let now = jiff::Timestamp::now();
    let dir = app.cfg.data_dir.join("support");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    let sync: Vec<(String, edge_sync::engine::Health)> =
        app.engine.names().into_iter().filter_map(|n| app.engine.health(n, now).map(|h| (n.to_string(), h))).collect();
    let remotes: serde_json::Value = app
        .cfg
        .remotes
        .iter()
        .map(|(n, r)| {
            (n.to_string(), serde_json::json!({"mode": r.mode.as_str(), "url": r.url.as_deref().map(redact_url), "timeout_ms": r.timeout_ms,
                "secret_file_set": r.secret_file.is_some()}))
        })
        .collect::<serde_json::Map<String, serde_json::Value>>()
        .into();
    let bundle = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "at": now.to_string(),
        "store_id": app.cfg.store_id,
        "timezone": app.cfg.timezone_name,
        "health": app.health(),
        "sync": app.remote_statuses(now),
        "remotes_config": remotes,
        "metrics": app.metrics.render(app.store.as_ref(), &sync, now),
    });
    let path = dir.join(format!("bundle-{}.json", now.as_second()));
    let bytes = serde_json::to_vec_pretty(&bundle).map_err(|e| e.to_string())?;
    crate::tokens::write_private(&path, &bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let mut old: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("bundle-")))
        .collect();
    old.sort();
    while old.len() > MAX_BUNDLES {
        let p = old.remove(0);
        let _ = std::fs::remove_file(p);
    }
    Ok(path)
}

/// A URL without user info (`https://user:pw@host` → `https://…@host`).
fn redact_url(u: &str) -> String {
    match u.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('/').map_or(rest, |x| x.0).rsplit_once('@') {
            Some((_, host)) => {
                let path = rest.split_once('/').map(|x| format!("/{}", x.1)).unwrap_or_default();
                format!("{scheme}://…@{host}{path}")
            }
            None => u.to_string(),
        },
        None => u.to_string(),
    }
}

/// The client the workers share (plain HTTP and HTTPS).
pub fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(concat!("edged/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Sends `sync.status` when something other than the ages changed, and at least every
/// minute while anything waits. Ends when the daemon stops.
pub async fn announce_status(app: Arc<App>) {
    let mut stopping = app.stopping.subscribe();
    let mut last_sig = String::new();
    let mut last_sent = std::time::Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = stopping.changed() => return,
        }
        let now = jiff::Timestamp::now();
        let remotes = app.remote_statuses(now);
        let sig: String = remotes
            .iter()
            .map(|r| {
                format!(
                    "{}:{}:{}:{}:{}:{}:{}:{}:{}|",
                    r.name, r.state, r.pending, r.in_flight, r.unknown, r.confirmed, r.rejected, r.dead, r.lag
                )
            })
            .collect();
        let waiting = remotes.iter().any(|r| r.pending + r.in_flight + r.unknown > 0);
        if sig != last_sig || (waiting && last_sent.elapsed() >= Duration::from_secs(60)) {
            last_sig = sig;
            last_sent = std::time::Instant::now();
            let _ = app.events.send(Event::SyncStatus { at: now.to_string(), remotes });
        }
    }
}

/// Lightspeed's pulls: Item pages by cursor (the SKU → itemID identity the connector
/// needs: `customSku` is the SKU), and, when Lightspeed is the catalog's source, ItemShop
/// stock by `timeStamp` (the mapped shop's rows; the shopID 0 summary row ignored). Shares
/// the account's tokens with the delivery worker (one refresher).
/// How often the Item pages are read again once known.
const ITEM_PULL_EVERY: Duration = Duration::from_secs(3600);

pub fn spawn_lightspeed_pull(
    app: &Arc<App>,
    client: reqwest::Client,
    auth: Option<Arc<edge_sync::lightspeed::connector::LsAuth>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let (Some(auth), Some(map)) = (auth, app.cfg.lightspeed.clone()) else { return Vec::new() };
    let Some(rc) = app.cfg.remotes.get(&Remote::Lightspeed).filter(|r| r.mode != Mode::Off).cloned() else {
        return Vec::new();
    };
    let Some(base) = rc.url.clone() else { return Vec::new() };
    let app = app.clone();
    let stock = app.cfg.catalog == Some(Remote::Lightspeed);
    vec![tokio::spawn(async move {
        let mut stopping = app.stopping.subscribe();
        let mut pull =
            edge_sync::lightspeed::live::LsPull::new(client, &base, auth, map, Duration::from_millis(rc.timeout_ms));
        if stock {
            // The catalog's source: prices and names too (edited items every interval).
            pull = pull.with_catalog(app.cfg.currency);
        }
        let mut items_read: Option<std::time::Instant> = None;
        loop {
            // Item identities change rarely and cost a drip a page: at start (until one full
            // read succeeds), then hourly. Stock follows every pull_interval_s.
            let items_due =
                !pull.items_known() || items_read.is_none_or(|t: std::time::Instant| t.elapsed() >= ITEM_PULL_EVERY);
            match pull.round(&app.store, items_due, stock).await {
                Ok(n) => {
                    if items_due {
                        items_read = Some(std::time::Instant::now());
                    }
                    tracing::debug!(items = n.0, levels = n.1, "Lightspeed pull done")
                }
                Err(e) => tracing::warn!(error = %e, "Lightspeed pull failed; trying again later"),
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(rc.pull_interval_s)) => {}
                _ = stopping.changed() => return,
            }
        }
    })]
}

/// The catalog, price and stock pull from NetSuite (SuiteQL) when NetSuite is the
/// catalog's source: every `pull_interval_s`, items and prices into the catalog overlay and
/// stock levels rebased (see `edge_sync::netsuite::live`).
pub fn spawn_netsuite_pull(app: &Arc<App>, client: reqwest::Client) -> Vec<tokio::task::JoinHandle<()>> {
    if app.cfg.catalog != Some(Remote::Netsuite) {
        return Vec::new();
    }
    let Some(map) = app.cfg.netsuite.clone() else { return Vec::new() };
    let Some(rc) = app.cfg.remotes.get(&Remote::Netsuite).filter(|r| r.mode != Mode::Off).cloned() else {
        return Vec::new();
    };
    let Some(base) = rc.url.clone() else { return Vec::new() };
    let signer = match netsuite_auth(&app.cfg, &rc) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "NetSuite pull not started");
            return Vec::new();
        }
    };
    let app = app.clone();
    vec![tokio::spawn(async move {
        let mut stopping = app.stopping.subscribe();
        let mut pull = edge_sync::netsuite::live::NsPull::new(
            client,
            &base,
            signer,
            map,
            app.cfg.currency,
            app.ns_newest.clone(),
            Duration::from_millis(rc.timeout_ms),
        );
        loop {
            match pull.round(&app.store).await {
                Ok(n) => tracing::debug!(
                    items = n.items,
                    changed = n.items_changed,
                    skipped = n.skipped,
                    levels = n.levels,
                    "NetSuite pull done"
                ),
                Err(e) => tracing::warn!(error = %e, "NetSuite pull failed; trying again later"),
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(rc.pull_interval_s)) => {}
                _ = stopping.changed() => return,
            }
        }
    })]
}

/// Shopify's pulls (see `edge_sync::shopify::pull`): variants (the SKU ↔ variant identity
/// the connector needs) by a bulk read at start and hourly, by cursor in between; when
/// Shopify is the catalog's source, prices and levels too. Shares the shop's pacer with the
/// delivery worker.
pub fn spawn_shopify_pull(app: &Arc<App>, client: reqwest::Client) -> Vec<tokio::task::JoinHandle<()>> {
    let Some(map) = app.cfg.shopify.clone() else { return Vec::new() };
    let Some(rc) = app.cfg.remotes.get(&Remote::Shopify).filter(|r| r.mode != Mode::Off).cloned() else {
        return Vec::new();
    };
    let Some(base) = rc.url.clone() else { return Vec::new() };
    let token = match shopify_token(&rc) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "Shopify pull not started");
            return Vec::new();
        }
    };
    let app = app.clone();
    let catalog = app.cfg.catalog == Some(Remote::Shopify);
    vec![tokio::spawn(async move {
        let mut stopping = app.stopping.subscribe();
        let mut pull = edge_sync::shopify::pull::ShopifyPull::new(
            client,
            &base,
            &token,
            app.shop.clone(),
            map,
            Duration::from_millis(rc.timeout_ms),
        );
        if catalog {
            pull = pull.with_catalog(app.cfg.currency);
        }
        let mut full_read: Option<std::time::Instant> = None;
        loop {
            let full = full_read.is_none_or(|t| t.elapsed() >= ITEM_PULL_EVERY);
            match pull.round(&app.store, full).await {
                Ok(n) => {
                    if n.bulk {
                        full_read = Some(std::time::Instant::now());
                    }
                    tracing::debug!(
                        variants = n.variants,
                        changed = n.items_changed,
                        levels = n.levels,
                        bulk = n.bulk,
                        "Shopify pull done"
                    )
                }
                Err(e) => tracing::warn!(error = %e, "Shopify pull failed; trying again later"),
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(rc.pull_interval_s)) => {}
                _ = stopping.changed() => return,
            }
        }
    })]
}
