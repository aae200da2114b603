//! edged's configuration: a TOML file, checked as a whole so that every problem is reported
//! at once, each named by its key (`store.timezone: "Europe/Berln" is not a known time zone`).
//!
//! Secrets never live here: role tokens are in a separate 0600 file (`api.tokens_file`).

use edge_sync::domain::TaxMode;
use edge_sync::money::Currency;
use jiff::civil::Time;
use jiff::tz::TimeZone;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The remotes a store can deliver to.
pub const REMOTE_NAMES: [&str; 4] = ["cloud", "lightspeed", "netsuite", "shopify"];

pub use edge_sync::domain::Remote;

/// How a connector runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Off,
    Shadow,
    Live,
}

impl Mode {
    pub fn as_str(&self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Shadow => "shadow",
            Mode::Live => "live",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RemoteConfig {
    pub mode: Mode,
    pub url: Option<String>,
    /// A 0600 file holding the remote's secret (cloud: the HMAC key). Never in the config.
    pub secret_file: Option<PathBuf>,
    /// Per-request timeout.
    pub timeout_ms: u64,
    /// Requests outstanding at once.
    pub max_in_flight: usize,
    /// Records per request.
    pub max_batch: usize,
    /// Failures of one record before it becomes a dead letter.
    pub max_attempts: u32,
    /// Seconds between pulls (catalog, prices, stock, config) when nothing asks sooner.
    pub pull_interval_s: u64,
}

/// Reads a secret file: trimmed, non-empty, at most 4 KiB.
pub fn read_secret(path: &Path) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if meta.len() > 4096 {
        return Err(format!("{} is over 4 KiB; it should hold one secret", path.display()));
    }
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let secret = text.trim_ascii().to_vec();
    if secret.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(secret)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub store_id: String,
    pub store_name: String,
    pub timezone: TimeZone,
    pub timezone_name: String,
    pub currency: Currency,
    pub tax_mode: TaxMode,
    pub business_day_start: Time,
    pub data_dir: PathBuf,
    pub cache_mb: u64,
    /// New sales are refused below this much free disk on the data dir (0 = no guard).
    pub min_free_bytes: u64,
    /// The daemon reports `degraded` below this much free disk.
    pub warn_free_bytes: u64,
    pub listen: SocketAddr,
    pub allow_remote: bool,
    pub max_body_bytes: usize,
    pub max_lines_per_sale: usize,
    pub max_ws_clients: usize,
    pub tokens_file: PathBuf,
    pub remotes: BTreeMap<Remote, RemoteConfig>,
    pub log_format: LogFormat,
    pub log_level: String,
    /// `[devices.<id>]`: kind (printer, scanner, scale, display), uri, dialect (display:
    /// cd5220 | escpos; scanner: serial | hid-pos, hid-pos over USB).
    pub devices: Vec<crate::devices::DeviceSpec>,
    /// `[payments.offline]`: when a card may be taken while the terminal cannot reach its host.
    pub offline: OfflinePolicy,
    /// `[staff.ID]`: who may log in at the staff screens, with which role.
    pub staff: Vec<crate::staff::StaffMember>,
    /// `[mappings.lightspeed]`: the store's ids at Lightspeed.
    pub lightspeed: Option<edge_sync::mapping::LightspeedMap>,
    /// `[mappings.netsuite]`: the store's ids at NetSuite.
    pub netsuite: Option<edge_sync::mapping::NetSuiteMap>,
    /// `[mappings.shopify]`: the store's ids at Shopify.
    pub shopify: Option<edge_sync::mapping::ShopifyMap>,
    /// `[routing]`: which remote receives what, and the catalog's source.
    pub routing: edge_sync::mapping::Routing,
    /// The source of catalog, prices and stock (`routing.catalog`); `None`: no source.
    pub catalog: Option<Remote>,
    /// What `check-config` warns of without refusing the file.
    pub warnings: Vec<ConfigProblem>,
    /// `[store] address`, `vat_id`, `tax_number` and `[receipt]`: what the receipt prints.
    pub receipt: ReceiptSetup,
    /// `[lane] id`: this box's lane in the store (receipt numbers' prefix); default `1`.
    pub lane_id: String,
    /// `[lane] name`: how receipts and screens name the lane (`Kasse 1`, `Self-checkout 3`).
    pub lane_name: String,
    /// `[store] minimum_age`: the age a customer must have reached to buy an
    /// age-restricted item (default 18).
    pub minimum_age: u8,
    /// `[store] age_check`: `required` (the default: a sale with an age-restricted line is
    /// refused without an answered age check) or `recorded` (the screens stop the sale
    /// until it is answered; the API records a check when one is sent).
    pub age_check_required: bool,
    /// `[register] favourites`: SKUs on the register's favourites key, in this order (at
    /// most 48); `GET /v1/catalog/favourites` serves them.
    pub favourites: Vec<String>,
    /// `[bus]`: the store's NATS server the lanes share records through; `None`: this box
    /// is the store's only lane.
    pub bus: Option<BusConfig>,
}

/// `[bus]`: how this lane reaches the store's bus (NATS JetStream) and what it does when
/// it cannot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusConfig {
    /// `url`: `nats://HOST:PORT` or `tls://HOST:PORT`.
    pub url: String,
    /// `credentials`: a NATS credentials file (user JWT + nkey seed), 0600; never in the
    /// config itself.
    pub credentials: Option<PathBuf>,
    /// `low_stock`: at or below this many units (shown), a sale claims its units in the
    /// store's claims bucket before it commits; 0 turns claims off.
    pub low_stock: i64,
    /// `offline_refunds`: a refund of another lane's sale while the store's server cannot
    /// be reached to claim it.
    pub offline_refunds: edge_sync::bus::OfflineRefunds,
    /// `lanes`: how many lanes sell from the store's stock; while the server cannot be
    /// reached, a lane sells low-stock items from its share (the units shown ÷ lanes,
    /// rounded down, at least its own reservations).
    pub lanes: u32,
}

/// What the receipt prints beyond the sale: the seller, its tax ids, the paper and the
/// footer. Empty fields are left off the receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptSetup {
    /// Lines of the store's address, as printed.
    pub address: Vec<String>,
    /// The VAT id (e.g. `DE123456789`), required on invoices above the small-amount limit.
    pub vat_id: Option<String>,
    /// The tax number, printed when there is no VAT id.
    pub tax_number: Option<String>,
    /// The receipt's language.
    pub language: edge_api::locale::Lang,
    /// Characters per line: 42 (58 mm paper) or 48 (80 mm).
    pub width: usize,
    /// Lines under the receipt (return policy, opening hours).
    pub footer: Vec<String>,
}

impl Config {
    /// Remotes that get an outbox entry for each sale: `routing.sales`, or every remote in
    /// mode shadow or live.
    pub fn sale_remotes(&self) -> Vec<Remote> {
        self.routed(self.routing.sales.as_ref())
    }

    /// Remotes that get an outbox entry for each refund: `routing.refunds`, else as sales.
    pub fn refund_remotes(&self) -> Vec<Remote> {
        self.routed(self.routing.refunds.as_ref().or(self.routing.sales.as_ref()))
    }

    /// Remotes that get an outbox entry for each stock adjustment: `routing.adjustments`,
    /// else those of the sales routes that take adjustments (the cloud, NetSuite).
    pub fn adjustment_remotes(&self) -> Vec<Remote> {
        match &self.routing.adjustments {
            Some(l) => self.routed(Some(l)),
            // takes_adjustments is true of the bus.
            None => self.sale_remotes().into_iter().filter(|r| r.takes_adjustments()).collect(),
        }
    }

    /// Why stock adjustments are refused here, if they are: Lightspeed keeps the stock and
    /// takes no adjustments from the edge (its levels would never include them).
    pub fn adjustments_refused(&self) -> Option<String> {
        (self.catalog == Some(Remote::Lightspeed)).then(|| {
            "stock is kept in Lightspeed (routing.catalog = \"lightspeed\"), which takes no adjustments from the \
             edge: adjust it in Lightspeed, and the next stock pull brings the level here"
                .to_string()
        })
    }

    fn routed(&self, list: Option<&Vec<String>>) -> Vec<Remote> {
        let mut out: Vec<Remote> = self
            .remotes
            .iter()
            .filter(|(n, r)| r.mode != Mode::Off && list.is_none_or(|l| l.iter().any(|x| x == n.as_str())))
            .map(|(n, _)| *n)
            .collect();
        // Every record of a lane goes to the store's bus, whatever the routing.
        if self.bus.is_some() {
            out.push(Remote::Bus);
        }
        out
    }
}

/// One problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Walks a TOML table, taking typed values by key and remembering every problem.
struct Checker<'a> {
    problems: Vec<ConfigProblem>,
    root: &'a toml::Table,
    used: Vec<String>,
}

impl<'a> Checker<'a> {
    fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(ConfigProblem { key: key.to_string(), message: message.into() });
    }

    fn lookup(&mut self, key: &str) -> Option<&'a toml::Value> {
        self.used.push(key.to_string());
        let mut parts = key.split('.');
        let first = parts.next()?;
        let mut v = self.root.get(first)?;
        for p in parts {
            v = v.as_table()?.get(p)?;
        }
        Some(v)
    }

    /// A string that may be absent (None then, and no problem).
    fn opt_string(&mut self, key: &str) -> Option<String> {
        match self.lookup(key) {
            Some(toml::Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.problem(key, format!("must be a string, found {}", other.type_str()));
                None
            }
            None => None,
        }
    }

    fn string(&mut self, key: &str, default: Option<&str>) -> Option<String> {
        match self.lookup(key) {
            Some(toml::Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.problem(key, format!("must be a string, found {}", other.type_str()));
                None
            }
            None => match default {
                Some(d) => Some(d.to_string()),
                None => {
                    self.problem(key, "is required");
                    None
                }
            },
        }
    }

    /// Printed lines: a string (split at line breaks) or an array of strings; absent = none.
    fn lines(&mut self, key: &str) -> Vec<String> {
        match self.lookup(key) {
            None => vec![],
            Some(toml::Value::String(s)) => s.lines().map(str::to_string).collect(),
            Some(toml::Value::Array(a)) => {
                let mut out = vec![];
                for (i, v) in a.iter().enumerate() {
                    match v {
                        toml::Value::String(s) => out.push(s.clone()),
                        other => {
                            self.problem(key, format!("item {i} must be a string, found {}", other.type_str()));
                        }
                    }
                }
                out
            }
            Some(other) => {
                self.problem(key, format!("must be a string or a list of strings, found {}", other.type_str()));
                vec![]
            }
        }
    }

    fn integer(&mut self, key: &str, default: i64, min: i64, max: i64) -> i64 {
        match self.lookup(key) {
            Some(toml::Value::Integer(n)) if (min..=max).contains(n) => *n,
            Some(toml::Value::Integer(n)) => {
                self.problem(key, format!("{n} is out of range {min}..={max}"));
                default
            }
            Some(other) => {
                self.problem(key, format!("must be an integer, found {}", other.type_str()));
                default
            }
            None => default,
        }
    }

    fn boolean(&mut self, key: &str, default: bool) -> bool {
        match self.lookup(key) {
            Some(toml::Value::Boolean(b)) => *b,
            Some(other) => {
                self.problem(key, format!("must be true or false, found {}", other.type_str()));
                default
            }
            None => default,
        }
    }

    /// Reports keys that nothing reads (typos).
    fn unknown_keys(&mut self) {
        fn walk(prefix: &str, t: &toml::Table, out: &mut Vec<String>) {
            for (k, v) in t {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                match v {
                    toml::Value::Table(sub) => walk(&key, sub, out),
                    _ => out.push(key),
                }
            }
        }
        let mut all = vec![];
        walk("", self.root, &mut all);
        for k in all {
            // Mappings and routing are read whole, by serde, which names unknown fields.
            if k.starts_with("mappings.") || k.starts_with("routing.") {
                continue;
            }
            let known = self.used.iter().any(|u| u == &k);
            let under_reported = self.problems.iter().any(|p| k.starts_with(&format!("{}.", p.key)));
            if !known && !under_reported {
                self.problem(&k, "is not a known setting");
            }
        }
    }
}

/// The word for a lane a receipt prints when `[lane] name` is not set.
/// An Adyen terminal's settings: `poi_id`, `key_identifier`, `key_version`,
/// `passphrase_file` (a 0600 file; the passphrase is never in the config or the logs),
/// `root_cert` (PEM of the root its certificate chains to) and `sale_id` (default
/// `STORE-lane-LANE`: one per POS, as ServiceIDs are unique per sale system). Each missing
/// or wrong key is named.
fn adyen_spec(
    c: &mut Checker,
    id: &str,
    base: &Path,
    currency: Option<edge_sync::money::Currency>,
    default_sale_id: &str,
) -> Option<crate::devices::AdyenSpec> {
    let k = |name: &str| format!("devices.{id}.{name}");
    let poi_id = c.string(&k("poi_id"), None);
    if poi_id.is_none() {
        c.problem(&k("poi_id"), "is required for an adyen:// terminal (its POIID, e.g. V400m-324688179)");
    }
    if let Some(p) = &poi_id
        && let Err(e) = edge_drivers::adyen::tls::server_name(p)
    {
        c.problem(&k("poi_id"), e);
    }
    let key_id = c.string(&k("key_identifier"), None);
    if key_id.is_none() {
        c.problem(
            &k("key_identifier"),
            "is required for an adyen:// terminal (the key's identifier set on the terminal)",
        );
    }
    let version = c.integer(&k("key_version"), 0, 0, i64::from(u32::MAX));
    if version == 0 {
        c.problem(&k("key_version"), "is required for an adyen:// terminal (1 or more, as set on the terminal)");
    }
    let sale_id =
        c.string(&k("sale_id"), Some("")).filter(|s| !s.is_empty()).unwrap_or_else(|| default_sale_id.to_string());
    let passphrase = match c.string(&k("passphrase_file"), None) {
        None => {
            c.problem(
                &k("passphrase_file"),
                "is required for an adyen:// terminal (a 0600 file holding the passphrase)",
            );
            None
        }
        Some(f) => {
            let path = base.join(f);
            match secret_mode(&path).and_then(|()| read_secret(&path)) {
                Ok(p) => Some(p),
                Err(e) => {
                    c.problem(&k("passphrase_file"), e);
                    None
                }
            }
        }
    };
    let root = match c.string(&k("root_cert"), None) {
        None => {
            c.problem(&k("root_cert"), "is required for an adyen:// terminal (PEM of the terminal's root certificate)");
            None
        }
        Some(f) => {
            let path = base.join(f);
            match std::fs::read(&path) {
                Ok(pem) => match edge_drivers::adyen::tls::roots(&pem) {
                    Ok(_) => Some(pem),
                    Err(e) => {
                        c.problem(&k("root_cert"), format!("{}: {e}", path.display()));
                        None
                    }
                },
                Err(e) => {
                    c.problem(&k("root_cert"), format!("{}: {e}", path.display()));
                    None
                }
            }
        }
    };
    let currency = currency.map(|c| c.to_string());
    let (poi_id, key_id, passphrase, root_pem, currency) = (poi_id?, key_id?, passphrase?, root?, currency?);
    match edge_drivers::adyen::crypto::Key::derive(&key_id, version as u32, &passphrase) {
        Ok(key) => Some(crate::devices::AdyenSpec { poi_id, sale_id, currency, key, root_pem }),
        Err(e) => {
            c.problem(&k("passphrase_file"), e.to_string());
            None
        }
    }
}

/// A secret file may be read by its owner only.
pub fn secret_mode(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let m = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if m.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "{} is readable by others (mode {:o}); it holds a secret: chmod 600",
            path.display(),
            m.permissions().mode() & 0o777
        ));
    }
    Ok(())
}

fn lane_word(lang: edge_api::locale::Lang) -> &'static str {
    match lang {
        edge_api::locale::Lang::En => "Till",
        edge_api::locale::Lang::De => "Kasse",
    }
}

fn parse_time(s: &str) -> Option<Time> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (i8, i8) = (h.parse().ok()?, m.parse().ok()?);
    Time::new(h, m, 0, 0).ok()
}

/// Parses and checks a configuration; `base` resolves relative paths (the file's folder).
pub fn parse(text: &str, base: &Path) -> Result<Config, Vec<ConfigProblem>> {
    let root: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            let at = e.span().map(|s| line_of(text, s.start)).map(|l| format!("line {l}")).unwrap_or_default();
            return Err(vec![ConfigProblem {
                key: if at.is_empty() { "(file)".into() } else { at },
                message: format!("not valid TOML: {}", e.message()),
            }]);
        }
    };
    let mut c = Checker { problems: vec![], root: &root, used: vec![] };

    let store_id = c.string("store.id", None).unwrap_or_default();
    if !store_id.is_empty()
        && (store_id.len() > 64 || !store_id.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch)))
    {
        c.problem("store.id", "must be 1 to 64 characters of letters, digits, '-', '_' or '.'");
    }
    let store_name = c.string("store.name", Some("")).unwrap_or_default();
    let timezone_name = c.string("store.timezone", None).unwrap_or_default();
    let timezone = if timezone_name.is_empty() {
        None
    } else {
        match TimeZone::get(&timezone_name) {
            Ok(tz) => Some(tz),
            Err(_) => {
                c.problem(
                    "store.timezone",
                    format!("{timezone_name:?} is not a known IANA time zone (e.g. Europe/Berlin)"),
                );
                None
            }
        }
    };
    let currency = match c.string("store.currency", None) {
        Some(s) => match Currency::parse(&s) {
            Ok(cur) => Some(cur),
            Err(e) => {
                c.problem("store.currency", e.to_string());
                None
            }
        },
        None => None,
    };
    let tax_mode = match c.string("store.tax_mode", Some("inclusive")).as_deref() {
        Some("inclusive") => TaxMode::Inclusive,
        Some("exclusive") => TaxMode::Exclusive,
        Some(other) => {
            c.problem("store.tax_mode", format!("{other:?} must be \"inclusive\" or \"exclusive\""));
            TaxMode::Inclusive
        }
        None => TaxMode::Inclusive,
    };
    let day_start_s = c.string("store.business_day_start", Some("00:00")).unwrap_or_default();
    let business_day_start = parse_time(&day_start_s).unwrap_or_else(|| {
        c.problem("store.business_day_start", format!("{day_start_s:?} must be HH:MM, e.g. 04:00"));
        Time::midnight()
    });

    let minimum_age = c.integer("store.minimum_age", 18, 1, 99) as u8;
    let age_check_required = match c.string("store.age_check", Some("required")).as_deref() {
        Some("required") | None => true,
        Some("recorded") => false,
        Some(other) => {
            c.problem("store.age_check", format!("{other:?} must be \"required\" or \"recorded\""));
            true
        }
    };
    let address = c.lines("store.address");
    let vat_id = c.opt_string("store.vat_id").filter(|v| !v.trim().is_empty());
    if let Some(v) = &vat_id
        && (v.len() > 20 || !v.chars().all(|ch| ch.is_ascii_alphanumeric()))
    {
        c.problem("store.vat_id", format!("{v:?} must be letters and digits, e.g. DE123456789"));
    }
    let tax_number = c.opt_string("store.tax_number").filter(|v| !v.trim().is_empty());
    let receipt_lang = c.string("receipt.language", Some("en")).unwrap_or_default();
    let language = edge_api::locale::Lang::parse(&receipt_lang).unwrap_or_else(|| {
        c.problem("receipt.language", format!("{receipt_lang:?} must be \"en\" or \"de\""));
        edge_api::locale::Lang::En
    });
    let width = match c.integer("receipt.width", 48, 0, 1000) {
        w @ (42 | 48) => w as usize,
        w => {
            c.problem("receipt.width", format!("{w} must be 42 (58 mm paper) or 48 (80 mm paper)"));
            48
        }
    };
    let footer = c.lines("receipt.footer");
    for (key, lines) in [("store.address", &address), ("receipt.footer", &footer)] {
        if let Some(l) = lines.iter().find(|l| l.chars().count() > width) {
            c.problem(key, format!("{l:?} is longer than the receipt's {width} characters"));
        }
    }
    let lane_id = c.string("lane.id", Some(edge_sync::store::DEFAULT_LANE)).unwrap_or_default();
    if !edge_sync::domain::valid_lane(&lane_id) {
        c.problem("lane.id", format!("{lane_id:?} must be 1 to 4 letters or digits (it prefixes receipt numbers)"));
    }
    let lane_name = c.string("lane.name", Some("")).unwrap_or_default();
    let lane_name = if lane_name.trim().is_empty() { format!("{} {lane_id}", lane_word(language)) } else { lane_name };
    let receipt = ReceiptSetup { address, vat_id, tax_number, language, width, footer };
    let favourites = c.lines("register.favourites");
    if favourites.len() > 48 {
        c.problem(
            "register.favourites",
            format!("{} SKUs; at most 48 fit the register's favourites", favourites.len()),
        );
    }
    if let Some(f) = favourites.iter().find(|f| f.trim().is_empty() || f.len() > 64) {
        c.problem("register.favourites", format!("{f:?} is not a SKU"));
    }

    let bus = match c.opt_string("bus.url").filter(|u| !u.trim().is_empty()) {
        None => {
            for k in ["bus.credentials", "bus.low_stock", "bus.offline_refunds", "bus.lanes"] {
                if c.lookup(k).is_some() {
                    c.problem(k, "needs bus.url (the store's NATS server)");
                }
            }
            None
        }
        Some(url) => {
            let hostport = url.strip_prefix("nats://").or_else(|| url.strip_prefix("tls://"));
            match hostport {
                Some(hp) if hp.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()) => {}
                _ => c.problem("bus.url", format!("{url:?} must be nats://HOST:PORT or tls://HOST:PORT")),
            }
            let credentials = c.opt_string("bus.credentials").filter(|p| !p.is_empty()).map(|p| base.join(p));
            let low_stock = c.integer("bus.low_stock", 3, 0, 1_000_000);
            let offline_refunds = match c.string("bus.offline_refunds", Some("allow-and-flag")).as_deref() {
                Some(v) => edge_sync::bus::OfflineRefunds::parse(v).unwrap_or_else(|| {
                    c.problem("bus.offline_refunds", format!("{v:?} must be \"allow-and-flag\" or \"refuse\""));
                    edge_sync::bus::OfflineRefunds::AllowAndFlag
                }),
                None => edge_sync::bus::OfflineRefunds::AllowAndFlag,
            };
            let lanes = c.integer("bus.lanes", 2, 1, 64) as u32;
            Some(BusConfig { url, credentials, low_stock, offline_refunds, lanes })
        }
    };

    let data_dir = c.string("data.dir", None).map(|d| base.join(d)).unwrap_or_default();
    let cache_mb = c.integer("data.cache_mb", 16, 4, 4096) as u64;
    let min_free_mb = c.integer("data.min_free_mb", 64, 0, 1 << 20) as u64;
    let warn_free_mb = c.integer("data.warn_free_mb", 512, 0, 1 << 20) as u64;
    if warn_free_mb < min_free_mb {
        c.problem(
            "data.warn_free_mb",
            format!("{warn_free_mb} is below data.min_free_mb ({min_free_mb}): the warning must come first"),
        );
    }

    let listen_s = c.string("api.listen", Some("127.0.0.1:7420")).unwrap_or_default();
    let allow_remote = c.boolean("api.allow_remote", false);
    let listen = match listen_s.parse::<SocketAddr>() {
        Ok(a) => {
            if !a.ip().is_loopback() && !allow_remote {
                c.problem(
                    "api.listen",
                    format!("{a} is not a loopback address; set api.allow_remote = true to expose the API beyond this machine"),
                );
            }
            Some(a)
        }
        Err(_) => {
            c.problem("api.listen", format!("{listen_s:?} is not an address:port, e.g. 127.0.0.1:7420"));
            None
        }
    };
    let max_body_bytes = c.integer("api.max_body_kb", 64, 1, 1024) as usize * 1024;
    let max_lines_per_sale = c.integer("api.max_lines_per_sale", 200, 1, 1000) as usize;
    let max_ws_clients = c.integer("api.max_ws_clients", 32, 1, 1024) as usize;
    let tokens_file = match c.string("api.tokens_file", Some("")) {
        Some(s) if !s.is_empty() => base.join(s),
        _ => data_dir.join("tokens.json"),
    };

    let mut remotes = BTreeMap::new();
    if let Some(toml::Value::Table(t)) = root.get("remotes") {
        for name in t.keys() {
            if !REMOTE_NAMES.contains(&name.as_str()) {
                c.problem(&format!("remotes.{name}"), format!("unknown remote; known: {}", REMOTE_NAMES.join(", ")));
            }
        }
    } else if root.get("remotes").is_some() {
        c.problem("remotes", "must be a table");
    }
    for remote in Remote::ALL {
        let name = remote.as_str();
        let mode_key = format!("remotes.{name}.mode");
        let mode = match c.string(&mode_key, Some("off")).as_deref() {
            Some("off") | None => Mode::Off,
            Some("shadow") => Mode::Shadow,
            Some("live") => Mode::Live,
            Some(other) => {
                c.problem(&mode_key, format!("{other:?} must be \"off\", \"shadow\" or \"live\""));
                Mode::Off
            }
        };
        let url_key = format!("remotes.{name}.url");
        let url = c.string(&url_key, Some("")).filter(|u| !u.is_empty());
        if let Some(u) = &url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            c.problem(&url_key, format!("{u:?} must be an http:// or https:// URL"));
        }
        if mode == Mode::Live && url.is_none() {
            c.problem(&url_key, "required when the mode is \"live\"");
        }
        let secret_key = format!("remotes.{name}.secret_file");
        let secret_file = match c.string(&secret_key, Some("")).filter(|u| !u.is_empty()) {
            // systemd's LoadCredential: the secret never sits in /etc beside the config.
            Some(f) if f.starts_with("credential:") => match std::env::var_os("CREDENTIALS_DIRECTORY") {
                Some(d) => Some(PathBuf::from(d).join(f.trim_start_matches("credential:"))),
                None => {
                    c.problem(
                        &secret_key,
                        format!("{f:?} needs systemd's LoadCredential= (CREDENTIALS_DIRECTORY is not set here)"),
                    );
                    None
                }
            },
            Some(f) => Some(base.join(f)),
            None => None,
        };
        if mode != Mode::Off {
            match &secret_file {
                None => {
                    c.problem(&secret_key, "required when the mode is not \"off\" (a 0600 file holding the secret)")
                }
                Some(f) => {
                    if let Err(e) = read_secret(f) {
                        c.problem(&secret_key, e);
                    }
                }
            }
        }
        let timeout_ms = c.integer(&format!("remotes.{name}.timeout_ms"), 10_000, 100, 300_000) as u64;
        let max_in_flight = c.integer(&format!("remotes.{name}.max_in_flight"), 2, 1, 16) as usize;
        let max_batch = c.integer(&format!("remotes.{name}.max_batch"), 100, 1, 500) as usize;
        let max_attempts = c.integer(&format!("remotes.{name}.max_attempts"), 10, 1, 1000) as u32;
        let pull_interval_s = c.integer(&format!("remotes.{name}.pull_interval_s"), 60, 1, 86_400) as u64;
        remotes.insert(
            remote,
            RemoteConfig {
                mode,
                url,
                secret_file,
                timeout_ms,
                max_in_flight,
                max_batch,
                max_attempts,
                pull_interval_s,
            },
        );
    }

    let log_format = match c.string("log.format", Some("text")).as_deref() {
        Some("json") => LogFormat::Json,
        Some("text") | None => LogFormat::Text,
        Some(other) => {
            c.problem("log.format", format!("{other:?} must be \"text\" or \"json\""));
            LogFormat::Text
        }
    };
    let log_level = c.string("log.level", Some("info")).unwrap_or_default();
    if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
        c.problem("log.level", format!("{log_level:?} is not a log filter (e.g. info, or edge=debug,info)"));
    }
    let mut devices = Vec::new();
    if let Some(toml::Value::Table(t)) = root.get("devices") {
        for id in t.keys() {
            let kind_key = format!("devices.{id}.kind");
            let uri_key = format!("devices.{id}.uri");
            let kind = c.string(&kind_key, None);
            let uri = c.string(&uri_key, None);
            let dialect_key = format!("devices.{id}.dialect");
            let dialect = c.opt_string(&dialect_key);
            let kind = match kind.as_deref().map(crate::devices::Kind::parse) {
                Some(Some(k)) => Some(k),
                Some(None) => {
                    c.problem(&kind_key, "must be printer, scanner, scale or display");
                    None
                }
                None => {
                    c.problem(&kind_key, "is required");
                    None
                }
            };
            let uri = match uri.as_deref().map(edge_drivers::uri::DeviceUri::parse) {
                Some(Ok(u)) => Some(u),
                Some(Err(e)) => {
                    c.problem(&uri_key, e.why);
                    None
                }
                None => {
                    c.problem(&uri_key, "is required");
                    None
                }
            };
            if let (Some(kind), Some(uri)) = (kind, uri) {
                use crate::devices::Kind;
                use edge_drivers::display::Dialect;
                let mut spec = crate::devices::DeviceSpec::new(id, kind, uri);
                match (kind, dialect.as_deref()) {
                    (_, None) => {}
                    (Kind::Display, Some("escpos")) => spec.dialect = Dialect::EscPos,
                    (Kind::Display, Some("cd5220")) => spec.dialect = Dialect::Cd5220,
                    (Kind::Display, Some(other)) => {
                        c.problem(&dialect_key, format!("{other:?} must be cd5220 or escpos"))
                    }
                    (Kind::Scanner, Some("hid-pos")) => spec.hid = true,
                    (Kind::Scanner, Some("serial"))
                        if !matches!(spec.uri, edge_drivers::uri::DeviceUri::Usb { .. }) =>
                    {
                        spec.hid = false
                    }
                    (Kind::Scanner, Some(other)) => c.problem(
                        &dialect_key,
                        format!("{other:?} must be hid-pos, or serial for a scanner on a serial or TCP link"),
                    ),
                    (_, Some(_)) => c.problem(&dialect_key, format!("a {} has no dialect to choose", kind.name())),
                }
                if kind == Kind::Terminal {
                    spec.password = c.integer(&format!("devices.{id}.password"), 0, 0, 999_999) as u32;
                    spec.reply_timeout =
                        std::time::Duration::from_secs(
                            c.integer(&format!("devices.{id}.reply_timeout_s"), 180, 1, 600) as u64,
                        );
                    if let edge_drivers::uri::DeviceUri::Adyen { .. } = spec.uri {
                        spec.adyen = adyen_spec(&mut c, id, base, currency, &format!("{store_id}-lane-{lane_id}"));
                    } else {
                        match currency.and_then(crate::devices::iso_numeric) {
                            Some(n) => spec.currency = n,
                            None => c.problem(
                                &kind_key,
                                "the store's currency has no ISO 4217 number known to the terminal driver",
                            ),
                        }
                    }
                }
                devices.push(spec);
            }
        }
    } else if root.get("devices").is_some() {
        c.problem("devices", "must be a table of devices");
    }
    let d = OfflinePolicy::default();
    let offline = OfflinePolicy {
        enabled: c.boolean("payments.offline.enabled", d.enabled),
        max_per_tx_minor: c.integer("payments.offline.max_per_tx_minor", d.max_per_tx_minor, 1, 1_000_000_000),
        max_total_minor: c.integer("payments.offline.max_total_minor", d.max_total_minor, 1, 100_000_000_000),
        max_count: c.integer("payments.offline.max_count", i64::from(d.max_count), 1, 100_000) as u32,
        max_age: std::time::Duration::from_secs(
            c.integer("payments.offline.max_age_h", (d.max_age.as_secs() / 3600) as i64, 1, 24 * 30) as u64 * 3600,
        ),
    };
    if offline.max_per_tx_minor > offline.max_total_minor {
        c.problem("payments.offline.max_per_tx_minor", "must not be over payments.offline.max_total_minor");
    }
    let mut staff = Vec::new();
    match root.get("staff") {
        Some(toml::Value::Table(t)) => {
            for id in t.keys() {
                let k = |f: &str| format!("staff.{id}.{f}");
                if id.is_empty()
                    || id.len() > 32
                    || !id.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_".contains(ch))
                {
                    c.problem(&format!("staff.{id}"), "an id is 1 to 32 letters, digits, '-' or '_'");
                    continue;
                }
                let name = c.string(&k("name"), None).unwrap_or_default();
                let role = match c.string(&k("role"), None).as_deref() {
                    Some("cashier") => Some(crate::tokens::Role::Cashier),
                    Some("manager") => Some(crate::tokens::Role::Manager),
                    Some("tech") => Some(crate::tokens::Role::Tech),
                    Some(other) => {
                        c.problem(&k("role"), format!("{other:?} must be \"cashier\", \"manager\" or \"tech\""));
                        None
                    }
                    None => None,
                };
                let hash = match c.string(&k("pin_sha256"), None) {
                    Some(h) => match crate::staff::parse_hash(&h) {
                        Some(h) => Some(h),
                        None => {
                            c.problem(
                                &k("pin_sha256"),
                                format!("must be 64 hex digits (`edged hash-pin {id}` prints it)"),
                            );
                            None
                        }
                    },
                    None => None,
                };
                if let (Some(role), Some(pin_sha256)) = (role, hash) {
                    staff.push(crate::staff::StaffMember { id: id.clone(), name, role, pin_sha256 });
                }
            }
        }
        Some(_) => c.problem("staff", "must be a table of staff members"),
        None => {}
    }
    // Mappings and routing (edge_sync::mapping), read whole and checked.
    fn table<T: serde::de::DeserializeOwned>(c: &mut Checker<'_>, root: &toml::Table, key: &str) -> Option<T> {
        let mut v = Some(root);
        let mut found: Option<&toml::Value> = None;
        for part in key.split('.') {
            found = v.and_then(|t| t.get(part));
            v = found.and_then(toml::Value::as_table);
        }
        let found = found?;
        match found.clone().try_into::<T>() {
            Ok(t) => Some(t),
            Err(e) => {
                c.problem(key, e.to_string().trim().replace('\n', " "));
                None
            }
        }
    }
    let lightspeed: Option<edge_sync::mapping::LightspeedMap> = table(&mut c, &root, "mappings.lightspeed");
    let netsuite: Option<edge_sync::mapping::NetSuiteMap> = table(&mut c, &root, "mappings.netsuite");
    let shopify: Option<edge_sync::mapping::ShopifyMap> = table(&mut c, &root, "mappings.shopify");
    let routing: edge_sync::mapping::Routing = table(&mut c, &root, "routing").unwrap_or_default();
    if let Some(toml::Value::Table(t)) = root.get("mappings") {
        for k in t.keys() {
            if k != "lightspeed" && k != "netsuite" && k != "shopify" {
                c.problem(&format!("mappings.{k}"), "unknown; known: lightspeed, netsuite, shopify");
            }
        }
    }
    let mut warnings = Vec::new();
    for (k, m) in routing.problems(&REMOTE_NAMES) {
        c.problem(&k, m);
    }
    let is_on =
        |n: &str| Remote::parse(n).and_then(|n| remotes.get(&n)).is_some_and(|r: &RemoteConfig| r.mode != Mode::Off);
    let mut split = |list: Vec<(String, String)>, c: &mut Checker<'_>| {
        for (k, m) in list {
            if m.starts_with("missing:") {
                warnings.push(ConfigProblem { key: k, message: m });
            } else {
                c.problem(&k, m);
            }
        }
    };
    match &lightspeed {
        Some(m) => split(m.problems(), &mut c),
        None if is_on("lightspeed") => c.problem("mappings.lightspeed", "required when remotes.lightspeed is not off"),
        None => {}
    }
    match &netsuite {
        Some(m) => split(m.problems(), &mut c),
        None if is_on("netsuite") => c.problem("mappings.netsuite", "required when remotes.netsuite is not off"),
        None => {}
    }
    match &shopify {
        Some(m) => split(m.problems(), &mut c),
        None if is_on("shopify") => c.problem("mappings.shopify", "required when remotes.shopify is not off"),
        None => {}
    }
    let on: Vec<String> = remotes
        .iter()
        .filter(|(n, r)| {
            r.mode != Mode::Off && routing.sales.as_ref().is_none_or(|l| l.iter().any(|x| x == n.as_str()))
        })
        .map(|(n, _)| n.to_string())
        .collect();
    for w in routing.double_counts(&on) {
        warnings.push(ConfigProblem { key: "routing".into(), message: w });
    }
    if routing.catalog != "none" && routing.catalog != "cloud" && !is_on(&routing.catalog) {
        c.problem("routing.catalog", format!("{} is off: it cannot be the catalog's source", routing.catalog));
    }
    if routing.catalog == "lightspeed" && lightspeed.as_ref().is_some_and(|m| m.tax_classes.is_empty()) {
        warnings.push(ConfigProblem {
            key: "mappings.lightspeed.tax_classes".into(),
            message: "missing: Lightspeed is the catalog's source, and an item the store does not have yet cannot \
                      be added without a tax rate for its tax class (prices of known items still follow)"
                .into(),
        });
    }
    if routing.catalog == "netsuite" && netsuite.as_ref().is_some_and(|m| m.tax_schedules.is_empty()) {
        warnings.push(ConfigProblem {
            key: "mappings.netsuite.tax_schedules".into(),
            message: "missing: NetSuite is the catalog's source, and no item can be priced without a tax rate for \
                      its tax schedule"
                .into(),
        });
    }
    if routing.catalog == "shopify" && shopify.as_ref().is_some_and(|m| m.new_item_tax_bp.is_none()) {
        warnings.push(ConfigProblem {
            key: "mappings.shopify.new_item_tax_bp".into(),
            message: "missing: Shopify is the catalog's source, and a variant the store does not have yet cannot \
                      be added without a tax rate (Shopify's variants carry none; prices of known items still follow)"
                .into(),
        });
    }
    // Adjustments must reach the stock source, or its levels never include them.
    let adjusted: Vec<String> = match &routing.adjustments {
        Some(l) => l.iter().filter(|n| is_on(n)).cloned().collect(),
        None => on.iter().filter(|n| Remote::parse(n).is_some_and(Remote::takes_adjustments)).cloned().collect(),
    };
    if matches!(routing.catalog.as_str(), "cloud" | "netsuite" | "shopify")
        && is_on(&routing.catalog)
        && !adjusted.contains(&routing.catalog)
    {
        warnings.push(ConfigProblem {
            key: "routing.adjustments".into(),
            message: format!(
                "stock adjustments do not go to {0}, the stock source: its levels will never include them, and \
                 local stock keeps them on top of every level {0} sends",
                routing.catalog
            ),
        });
    }
    c.unknown_keys();

    match (c.problems.is_empty(), timezone, currency, listen) {
        (true, Some(timezone), Some(currency), Some(listen)) => Ok(Config {
            store_id,
            store_name,
            timezone,
            timezone_name,
            currency,
            tax_mode,
            business_day_start,
            data_dir,
            cache_mb,
            min_free_bytes: min_free_mb << 20,
            warn_free_bytes: warn_free_mb << 20,
            listen,
            allow_remote,
            max_body_bytes,
            max_lines_per_sale,
            max_ws_clients,
            tokens_file,
            remotes,
            log_format,
            devices,
            offline,
            log_level,
            staff,
            lightspeed,
            netsuite,
            shopify,
            catalog: Remote::parse(&routing.catalog),
            routing,
            warnings,
            receipt,
            lane_id,
            lane_name,
            minimum_age,
            age_check_required,
            favourites,
            bus,
        }),
        _ => Err(c.problems),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1
}

/// Reads and checks a configuration file.
pub fn load(path: &Path) -> Result<Config, Vec<ConfigProblem>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigProblem { key: "(file)".into(), message: format!("cannot read {}: {e}", path.display()) }]
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    parse(&text, &base)
}

/// The configuration `edged demo` runs with, written to `DIR/config.toml`.
pub fn demo_toml(data_dir: &Path, listen: &str, urls: &BTreeMap<String, String>) -> String {
    demo_toml_lane(data_dir, listen, urls, "1", None)
}

/// The demo configuration of lane `lane`, sharing its records over the store's bus at
/// `bus` when given (`edged demo --lane ID --bus nats://HOST:PORT`).
pub fn demo_toml_lane(
    data_dir: &Path,
    listen: &str,
    urls: &BTreeMap<String, String>,
    lane: &str,
    bus: Option<&str>,
) -> String {
    let bus = match bus {
        Some(u) => format!(
            r#"
# The store's bus: this lane shares its records with the other lanes through the store's
# NATS server (JetStream). Items at or below `low_stock` units are claimed across lanes
# before a sale commits; while the server cannot be reached, each lane sells from its
# share of them and a refund of another lane's sale is allowed up to what this lane knows,
# and flagged.
[bus]
url = {u:?}
low_stock = 3
offline_refunds = "allow-and-flag"
"#
        ),
        None => String::new(),
    };
    let url = |name: &str| match urls.get(name) {
        Some(u) => format!("mode = \"live\"\nurl = {u:?}\n"),
        None => "mode = \"off\"\n".to_string(),
    };
    format!(
        r#"# Written by `edged demo`. `edged run --config` this file to run the same store.
[store]
id = "store-001"
name = "Demo Store"
timezone = "Europe/Berlin"
currency = "EUR"
tax_mode = "inclusive"
business_day_start = "00:00"
# What the receipt prints about the seller (a receipt above 250 EUR is a full invoice).
address = ["Hauptstraße 1", "10115 Berlin"]
vat_id = "DE123456789"
# Age-restricted items (wine) are sold from 18. The screens stop such a sale until staff
# answer the age check, and the sale records who answered and when. `recorded` keeps the
# API's older contract: a script may post such a sale without a check. A store keeps the
# default, `required`: the daemon refuses it without one.
minimum_age = 18
age_check = "recorded"

# This box's lane in the store: receipt numbers are LANE-SEQUENCE (1-000042).
[lane]
id = {lane:?}
name = "Kasse {lane}"
{bus}
# The register's favourites key: the items a cashier reaches without a barcode.
[register]
favourites = ["SKU-0000008", "SKU-0000018", "SKU-0000028", "SKU-0000001", "SKU-0000002", "SKU-0000003"]

[receipt]
language = "de"
# 48 characters on 80 mm paper, 42 on 58 mm.
width = 48
footer = ["Umtausch binnen 30 Tagen mit Beleg", "Mo-Sa 8-20 Uhr  www.example.com"]

[data]
dir = {dir:?}
cache_mb = 16
# The disk guard is off in the demo (its data dir is often a small scratch disk in tests);
# `edged demo --min-free-mb N` turns it on. A store's config keeps the defaults (64 / 512).
min_free_mb = 0
warn_free_mb = 0

[api]
listen = {listen:?}

# Card payments while the terminal cannot reach its host (store-and-forward): the store
# carries the risk of each offline decline, so they are capped (Moneris Go's defaults:
# 250.00 per transaction; a day's age).
[payments.offline]
enabled = true
max_per_tx_minor = 25000
max_total_minor = 100000
max_count = 500
max_age_h = 24

# Every sale and refund goes to all four remotes; the cloud is the catalog's source.
[remotes.cloud]
{cloud}secret_file = "secrets/cloud.key"
timeout_ms = 3000
pull_interval_s = 5

[remotes.lightspeed]
{lightspeed}secret_file = "secrets/lightspeed.json"
timeout_ms = 5000
pull_interval_s = 30

[remotes.netsuite]
{netsuite}secret_file = "secrets/netsuite.json"
timeout_ms = 5000
# The account's concurrency allotted to this integration (mappings.netsuite.concurrency).
max_in_flight = 5

# Shopify (Admin GraphQL, API version 2026-04): its access token in a 0600 file.
[remotes.shopify]
{shopify}secret_file = "secrets/shopify.token"
timeout_ms = 5000
pull_interval_s = 30

[routing]
catalog = "cloud"

# The store's ids at Lightspeed (the demo account of the fake). Item ids are learned from
# the Item pull (customSku = SKU); [mappings.lightspeed.items] would pin them.
[mappings.lightspeed]
account_id = 12345
shop_id = 1
register_id = 1
employee_id = 1
reference_source = "edge"
# A sale whose answer was lost is looked up after this wait (the client's timeout is 5 s).
unknown_wait_s = 15
tenders = {{ cash = 1, card = 2 }}
# With routing.catalog = "lightspeed": the shelf price's use type, and the tax rate of each
# tax class for items the store does not have yet.
price_use_type = "Default"
tax_classes = {{ "1" = 1900, "2" = 700 }}

# The store's ids at NetSuite (TBA with Oracle's example keys). Items by external id = SKU.
[mappings.netsuite]
account = "123456"
subsidiary = "1"
location = "1"
walk_in_customer = "107"
items = "externalId"
tenders = {{ cash = "1", card = "5" }}
tax_codes = {{ "700" = "7", "1900" = "19" }}
concurrency = 5
# Stock adjustments are booked to this account; with routing.catalog = "netsuite", items
# are priced at this price level and taxed by their tax schedule.
adjustment_account = "140"
price_level = "1"
tax_schedules = {{ "1" = 1900, "2" = 700 }}

# The store's location at Shopify (the demo shop of the fake). Variants and inventory items
# are learned from the variant pull (sku = SKU); [mappings.shopify.variants] would pin them.
[mappings.shopify]
location_id = "gid://shopify/Location/1"
gateways = {{ cash = "cash", card = "edge-terminal" }}
tax_lines = {{ "1900" = "MwSt 19 %", "700" = "MwSt 7 %" }}
tag = "edge"
# An order whose answer was lost is looked up after this wait (the client's timeout is 5 s).
unknown_wait_s = 15
# With routing.catalog = "shopify": the tax rate of a variant the store does not have yet.
new_item_tax_bp = 1900

# Staff who log in at the register screen. Demo PINs: Anna 1111 (cashier), Max 9999
# (manager), Tina 4242 (tech). `edged hash-pin ID` prints the line for a new PIN.
[staff.anna]
name = "Anna"
role = "cashier"
pin_sha256 = "{anna}"

[staff.max]
name = "Max"
role = "manager"
pin_sha256 = "{max}"

[staff.tina]
name = "Tina"
role = "tech"
pin_sha256 = "{tina}"
"#,
        anna = crate::staff::pin_hash_hex("anna", "1111"),
        max = crate::staff::pin_hash_hex("max", "9999"),
        tina = crate::staff::pin_hash_hex("tina", "4242"),
        dir = data_dir.display().to_string(),
        cloud = url("cloud"),
        lightspeed = url("lightspeed"),
        netsuite = url("netsuite"),
        shopify = url("shopify"),
    )
}

/// The store's offline card policy (`[payments.offline]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflinePolicy {
    pub enabled: bool,
    /// Largest single offline payment.
    pub max_per_tx_minor: i64,
    /// Largest total of offline payments not yet forwarded.
    pub max_total_minor: i64,
    /// Most offline payments not yet forwarded.
    pub max_count: u32,
    /// Oldest an unforwarded offline payment may be before no more are taken.
    pub max_age: std::time::Duration,
}

impl Default for OfflinePolicy {
    fn default() -> Self {
        // Off by default: the merchant carries the risk of every offline decline.
        OfflinePolicy {
            enabled: false,
            max_per_tx_minor: 10_000,
            max_total_minor: 100_000,
            max_count: 50,
            max_age: std::time::Duration::from_secs(24 * 3600),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[store]
id = "store-001"
timezone = "Europe/Berlin"
currency = "EUR"
[data]
dir = "/var/lib/edged"
[remotes.cloud]
mode = "live"
url = "https://cloud.example"
secret_file = "cloud.key"
"#;

    fn with_secret() -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(d.path().join("cloud.key"), "s3cret\n").expect("write");
        d
    }

    #[test]
    fn a_good_config_parses_with_defaults() {
        let d = with_secret();
        let c = parse(GOOD, d.path()).expect("valid");
        assert_eq!(c.listen.to_string(), "127.0.0.1:7420");
        assert_eq!(c.sale_remotes(), vec![Remote::Cloud]);
        assert_eq!(c.tokens_file, PathBuf::from("/var/lib/edged/tokens.json"));
        assert_eq!(c.max_body_bytes, 64 * 1024);
        assert_eq!(
            read_secret(c.remotes[&Remote::Cloud].secret_file.as_deref().expect("file")).expect("read"),
            b"s3cret"
        );
    }

    #[test]
    fn register_favourites_are_read_in_order_and_checked() {
        let d = with_secret();
        let ok = format!("{GOOD}[register]\nfavourites = [\"B-2\", \"A-1\"]\n");
        assert_eq!(parse(&ok, d.path()).expect("valid").favourites, ["B-2", "A-1"]);
        let many: Vec<String> = (0..49).map(|i| format!("\"S{i}\"")).collect();
        let bad = format!("{GOOD}[register]\nfavourites = [{}]\n", many.join(", "));
        let p = parse(&bad, d.path()).expect_err("49 favourites");
        assert_eq!(p[0].key, "register.favourites", "{p:?}");
        assert!(p[0].message.contains("at most 48"), "{p:?}");
        let p = parse(&format!("{GOOD}[register]\nfavourites = [\"\", 3]\n"), d.path()).expect_err("bad");
        assert!(p.iter().all(|p| p.key == "register.favourites") && p.len() == 2, "{p:?}");
    }

    #[test]
    fn a_live_cloud_needs_a_url_and_a_readable_secret() {
        let text = "[store]\nid = \"s\"\ntimezone = \"UTC\"\ncurrency = \"EUR\"\n[data]\ndir = \"d\"\n\
                    [remotes.cloud]\nmode = \"live\"\nsecret_file = \"missing.key\"\n";
        let p = parse(text, Path::new("/nonexistent")).expect_err("invalid");
        let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, vec!["remotes.cloud.url", "remotes.cloud.secret_file"], "{p:?}");
        assert!(p[1].message.contains("missing.key"), "{p:?}");
    }

    #[test]
    fn every_problem_is_named_by_its_key() {
        let bad = r#"
[store]
id = "store 001"
timezone = "Europe/Berln"
currency = "euro"
tax_mode = "sometimes"
business_day_start = "25:00"
[data]
dir = 7
cache_mb = 1
[api]
listen = "0.0.0.0:80"
max_body_kb = "big"
[remotes.cloud]
mode = "on"
url = "ftp://x"
[remotes.square]
mode = "live"
[log]
levle = "debug"
"#;
        let problems = parse(bad, Path::new("/")).expect_err("invalid");
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        for k in [
            "store.id",
            "store.timezone",
            "store.currency",
            "store.tax_mode",
            "store.business_day_start",
            "data.dir",
            "data.cache_mb",
            "api.listen",
            "api.max_body_kb",
            "remotes.cloud.mode",
            "remotes.cloud.url",
            "remotes.square",
            "log.levle",
        ] {
            assert!(keys.contains(&k), "{k} not reported in {problems:?}");
        }
    }

    #[test]
    fn broken_toml_names_the_line() {
        let p = parse("[store]\nid = \"x\nzone", Path::new("/")).expect_err("invalid");
        assert_eq!(p.len(), 1);
        assert!(p[0].key.starts_with("line "), "{:?}", p[0]);
    }

    #[test]
    fn the_demo_config_is_valid() {
        let d = tempfile::tempdir().expect("tempdir");
        crate::demo::write_demo_secret(d.path()).expect("secret");
        let urls: BTreeMap<String, String> =
            REMOTE_NAMES.iter().map(|n| (n.to_string(), "http://127.0.0.1:1".to_string())).collect();
        let c = parse(&demo_toml(d.path(), "127.0.0.1:0", &urls), d.path()).expect("valid");
        assert_eq!(c.sale_remotes().len(), 4);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.lightspeed.as_ref().map(|m| m.shop_id), Some(1));
        // A remote the fakes do not name is off.
        let only_cloud = BTreeMap::from([("cloud".to_string(), "http://127.0.0.1:1".to_string())]);
        let c = parse(&demo_toml(d.path(), "127.0.0.1:0", &only_cloud), d.path()).expect("valid");
        assert_eq!(c.sale_remotes(), vec![Remote::Cloud]);
    }

    #[test]
    fn the_bus_is_checked_and_every_record_goes_to_it() {
        let d = tempfile::tempdir().expect("tempdir");
        crate::demo::write_demo_secret(d.path()).expect("secret");
        let urls = BTreeMap::from([("cloud".to_string(), "http://127.0.0.1:1".to_string())]);
        let c = parse(&demo_toml_lane(d.path(), "127.0.0.1:0", &urls, "2", Some("nats://127.0.0.1:4222")), d.path())
            .expect("valid");
        assert_eq!(c.lane_id, "2");
        let bus = c.bus.clone().expect("bus");
        assert_eq!((bus.url.as_str(), bus.low_stock, bus.lanes), ("nats://127.0.0.1:4222", 3, 2));
        assert_eq!(c.sale_remotes(), vec![Remote::Cloud, Remote::Bus]);
        assert_eq!(c.refund_remotes(), vec![Remote::Cloud, Remote::Bus]);
        assert_eq!(c.adjustment_remotes(), vec![Remote::Cloud, Remote::Bus]);
        let base = demo_toml(d.path(), "127.0.0.1:0", &urls);
        for (bad, key) in [
            ("[bus]\nurl = \"http://x:1\"\n", "bus.url"),
            ("[bus]\nurl = \"nats://host\"\n", "bus.url"),
            ("[bus]\nurl = \"nats://h:1\"\noffline_refunds = \"maybe\"\n", "bus.offline_refunds"),
            ("[bus]\nurl = \"nats://h:1\"\nlow_stock = -1\n", "bus.low_stock"),
            ("[bus]\nurl = \"nats://h:1\"\nlanes = 0\n", "bus.lanes"),
            ("[bus]\nurl = \"nats://h:1\"\nspeed = 3\n", "bus.speed"),
            ("[bus]\nlow_stock = 2\n", "bus.low_stock"),
        ] {
            let p = parse(&format!("{base}\n{bad}"), d.path()).expect_err(bad);
            assert!(p.iter().any(|p| p.key == key), "{bad}: {p:?}");
        }
    }

    #[test]
    fn routing_and_mappings_are_checked_and_a_double_count_is_warned() {
        let d = tempfile::tempdir().expect("tempdir");
        crate::demo::write_demo_secret(d.path()).expect("secret");
        let urls: BTreeMap<String, String> =
            REMOTE_NAMES.iter().map(|n| (n.to_string(), "http://127.0.0.1:1".to_string())).collect();
        let base = demo_toml(d.path(), "127.0.0.1:0", &urls);
        let twice = base.replace("[routing]\n", "[routing]\nforwarders = [\"lightspeed->netsuite\"]\n");
        let c = parse(&twice, d.path()).expect("valid, with a warning");
        assert!(c.warnings.iter().any(|w| w.message.contains("counted twice at netsuite")), "{:?}", c.warnings);
        // Sales to the cloud and Lightspeed only; refunds to all: no double count.
        let routed = base.replace(
            "[routing]\n",
            "[routing]\nsales = [\"cloud\", \"lightspeed\"]\nforwarders = [\"lightspeed->netsuite\"]\n",
        );
        let c = parse(&routed, d.path()).expect("valid");
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.sale_remotes(), vec![Remote::Cloud, Remote::Lightspeed]);
        assert_eq!(c.refund_remotes(), vec![Remote::Cloud, Remote::Lightspeed]);
        // Bad names, an unknown mapping field, a missing mapping: each named by key.
        // A Shopify–NetSuite connector forwarding Shopify's orders: a double count at NetSuite.
        let fw = base.replace("[routing]\n", "[routing]\nforwarders = [\"shopify->netsuite\"]\n");
        let c = parse(&fw, d.path()).expect("valid");
        assert!(c.warnings.iter().any(|w| w.message.contains("counted twice at netsuite")), "{:?}", c.warnings);
        let sh = base.replace("catalog = \"cloud\"", "catalog = \"shopify\"");
        let c = parse(&sh, d.path()).expect("Shopify can be the catalog's source");
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.catalog, Some(Remote::Shopify));
        let no_map =
            sh.replace("[mappings.shopify]\nlocation_id = \"gid://shopify/Location/1\"\n", "[mappings.shopify]\n");
        let p = parse(&no_map, d.path()).expect_err("the location is required");
        assert!(p.iter().any(|p| p.key.starts_with("mappings.shopify")), "{p:?}");
        let ns = base.replace("catalog = \"cloud\"", "catalog = \"netsuite\"");
        let c = parse(&ns, d.path()).expect("NetSuite can be the catalog's source");
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.adjustment_remotes(), vec![Remote::Cloud, Remote::Netsuite, Remote::Shopify]);
        assert_eq!(c.adjustments_refused(), None);
        let ls = base.replace("catalog = \"cloud\"", "catalog = \"lightspeed\"");
        assert!(parse(&ls, d.path()).expect("valid").adjustments_refused().is_some());
        // Adjustments to Lightspeed are refused; adjustments that miss the stock source warned.
        let to_ls = base.replace("[routing]\n", "[routing]\nadjustments = [\"lightspeed\"]\n");
        let p = parse(&to_ls, d.path()).expect_err("Lightspeed takes no adjustments");
        assert!(p.iter().any(|p| p.key == "routing.adjustments"), "{p:?}");
        let miss = base.replace("[routing]\n", "[routing]\nadjustments = [\"netsuite\"]\n");
        let c = parse(&miss, d.path()).expect("valid, with a warning");
        assert!(c.warnings.iter().any(|w| w.key == "routing.adjustments"), "{:?}", c.warnings);
        let bad = base
            .replace("[routing]\n", "[routing]\nsales = [\"square\"]\n")
            .replace("shop_id = 1\n", "shop_id = 1\nshop = 2\n")
            .replace("walk_in_customer = \"107\"\n", "");
        let keys: Vec<String> = parse(&bad, d.path()).expect_err("invalid").into_iter().map(|p| p.key).collect();
        for k in ["routing.sales", "mappings.lightspeed", "mappings.netsuite"] {
            assert!(keys.contains(&k.to_string()), "{k} in {keys:?}");
        }
    }

    #[test]
    fn an_adyen_terminal_needs_each_key_and_a_private_passphrase() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().expect("tmp");
        crate::demo::write_demo_secret(d.path()).expect("secret");
        let urls: BTreeMap<String, String> =
            REMOTE_NAMES.iter().map(|n| (n.to_string(), "http://127.0.0.1:1".to_string())).collect();
        let base = demo_toml(d.path(), "127.0.0.1:0", &urls);
        // Nothing but the URI: each missing key is named.
        let bare = format!("{base}\n[devices.till_terminal]\nkind = \"terminal\"\nuri = \"adyen://10.0.0.7:8443\"\n");
        let keys: Vec<String> = parse(&bare, d.path()).expect_err("incomplete").into_iter().map(|p| p.key).collect();
        for k in ["poi_id", "key_identifier", "key_version", "passphrase_file", "root_cert"] {
            assert!(keys.contains(&format!("devices.till_terminal.{k}")), "{k} in {keys:?}");
        }
        // A passphrase file others can read is refused; a root that is not PEM too.
        let ca = edge_drivers::adyen::tls::SimCa::load_or_make(d.path()).expect("ca");
        std::fs::write(d.path().join("adyen.pass"), "p@ssw0rd123456\n").expect("write");
        std::fs::set_permissions(d.path().join("adyen.pass"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
        std::fs::write(d.path().join("not.pem"), "hello").expect("write");
        let full = |root: &str| {
            format!(
                "{base}\n[devices.till_terminal]\nkind = \"terminal\"\nuri = \"adyen://10.0.0.7:8443\"\n\
                 poi_id = \"V400m-324688179\"\nkey_identifier = \"CryptoKeyIdentifier12345\"\nkey_version = 1\n\
                 passphrase_file = \"adyen.pass\"\nroot_cert = \"{root}\"\n"
            )
        };
        let p = parse(&full("not.pem"), d.path()).expect_err("readable passphrase, no PEM");
        assert!(
            p.iter().any(|p| p.key == "devices.till_terminal.passphrase_file" && p.message.contains("chmod 600")),
            "{p:?}"
        );
        assert!(p.iter().any(|p| p.key == "devices.till_terminal.root_cert"), "{p:?}");
        std::fs::set_permissions(d.path().join("adyen.pass"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let c = parse(&full(&ca.ca_path.display().to_string()), d.path()).expect("valid");
        let t = c.devices.iter().find(|s| s.id == "till_terminal").expect("terminal");
        let a = t.adyen.as_ref().expect("adyen settings");
        assert_eq!((a.poi_id.as_str(), a.currency.as_str()), ("V400m-324688179", "EUR"));
        assert!(a.sale_id.ends_with("-lane-1"), "one SaleID per lane: {}", a.sale_id);
        assert_eq!(a.key.identifier, "CryptoKeyIdentifier12345");
        let shown = format!("{t:?}");
        assert!(!shown.contains("p@ssw0rd"), "the passphrase is never shown: {shown}");
        // ZVT keys stay ZVT's: an Adyen key on a ZVT terminal is unknown.
        let zvt =
            format!("{base}\n[devices.t2]\nkind = \"terminal\"\nuri = \"tcp://10.0.0.8:20007\"\npoi_id = \"x\"\n");
        let p = parse(&zvt, d.path()).expect_err("unknown key");
        assert!(p.iter().any(|p| p.key == "devices.t2.poi_id"), "{p:?}");
    }
}
