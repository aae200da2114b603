//! Wire types of the edge daemon's local API v1.
//!
//! These are what crosses the loopback socket between edged and its clients (the kiosk
//! screens, edgectl, scripts). They are deliberately separate from the domain records in
//! `edge-sync`: the API may rename or reshape a field without touching what is on disk, and
//! the other way round. Every type derives an OpenAPI schema (`utoipa`), served at
//! `GET /v1/openapi.json`.
//!
//! Money is always integer minor units plus an ISO 4217 currency; times are RFC 3339 UTC;
//! business dates are `YYYY-MM-DD` in the store's time zone.

pub mod locale;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// An error, as `application/problem+json` (RFC 9457).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the kind of problem, e.g. `/problems/unknown-sku`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The request field at fault, e.g. `lines[0].sku`, or a header name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The id of the request (also in the `x-request-id` header and the daemon's logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// `GET /v1/health`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` or `degraded`.
    pub status: String,
    pub version: String,
    pub store_id: String,
    pub uptime_s: u64,
    /// Today's business date in the store's time zone.
    pub business_date: String,
    /// Whether new sales are accepted (false while shutting down).
    pub accepting_sales: bool,
    /// Why the status is `degraded`, one line per reason.
    #[serde(default)]
    pub reasons: Vec<String>,
    pub store: StoreHealth,
}

/// The store part of [`Health`].
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StoreHealth {
    pub format_version: u32,
    pub items: u64,
    pub sales: u64,
    pub size_on_disk_bytes: u64,
    /// Commit journal fdatasync rounds so far, and the commits they covered.
    pub syncs: u64,
    pub commits_synced: u64,
    /// sled flush + fdatasync checkpoints so far.
    #[serde(default)]
    pub checkpoints: u64,
}

/// A catalog item with its stock.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CatalogItem {
    pub sku: String,
    pub name: String,
    /// Per piece, or per kilogram when `kind` is `weight`.
    pub price_minor: i64,
    pub currency: String,
    /// `unit`, `weight` (sold by the gram) or `lot` (needs lot number and expiry).
    pub kind: String,
    pub tax_rate_bp: u32,
    pub barcodes: Vec<String>,
    pub category: String,
    pub age_restricted: bool,
    /// Age-restricted items: sold today only to customers born on or before this date
    /// (`YYYY-MM-DD`, the store's minimum age before its business date): the question the
    /// screens ask.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub born_on_or_before: Option<String>,
    /// Available for selling (units, or grams for weighed items): last level from the stock
    /// source minus local sales not yet reflected there. Null when no level was ever pulled.
    pub stock: Option<i64>,
    /// When the stock source last reported this item's level (its clock, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock_at: Option<String>,
    /// The item's picture on this daemon (`/v1/catalog/items/{sku}/image`), once it is
    /// kept on disk; absent when the item has none or it is not fetched yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// `GET /v1/catalog/items`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ItemsPage {
    pub items: Vec<CatalogItem>,
    /// Pass as `cursor` to continue; null at the end.
    pub next_cursor: Option<String>,
}

/// One line of `POST /v1/sales`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaleLineIn {
    pub sku: String,
    /// Pieces (unit and lot items). Defaults to 1 when neither `qty` nor `weight_g` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qty: Option<i64>,
    /// Grams, for items sold by weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_g: Option<i64>,
    /// Take the weight from the store's scale (instead of `weight_g`). A weight in motion,
    /// over capacity or under zero is refused (422 naming this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_scale: Option<bool>,
    /// Lot number, for lot-tracked items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lot: Option<String>,
    /// Expiry of the lot, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<String>,
    /// Price override: the unit price (per piece, or per kg) to charge instead of the
    /// catalog's. Needs a manager's PIN in the `X-Manager-Pin` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price_minor: Option<i64>,
    /// Discount off this line, in minor units (at most the line's amount). Needs a
    /// manager's PIN in the `X-Manager-Pin` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount_minor: Option<i64>,
}

/// One tender of `POST /v1/sales`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenderIn {
    /// `cash` or `card`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Required for cash. For card, absent means "the remainder".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_minor: Option<i64>,
}

/// `POST /v1/sales`: a whole sale in one call.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaleIn {
    /// Optional client-made UUID; repeating it returns the first result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    pub lines: Vec<SaleLineIn>,
    pub tenders: Vec<TenderIn>,
    /// `false`: print no receipt now (a self-serve customer may ask for one afterwards with
    /// `POST /v1/sales/{id}/receipt`). Default: printed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<bool>,
    /// The id of the member of staff logged in at the register (`[staff.ID]`), printed on
    /// the receipt as cashier. Not part of what makes a retry the same request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cashier: Option<String>,
    /// Required when a line is age-restricted: how the customer's age was checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_check: Option<AgeCheckIn>,
}

/// An age check answered at a screen: staff asked "born on or before …?" or scanned an ID
/// (`dob`, `id_scan`: `verified_by` and `born_on_or_before`), or approved a self-serve
/// screen's request with their PIN (`approval`: `approval_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgeCheckIn {
    /// `dob`, `id_scan` or `approval`.
    pub method: String,
    /// `YYYY-MM-DD`: the customer was born on or before it (at most the store's minimum
    /// age before today).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub born_on_or_before: Option<String>,
    /// The id of the member of staff who checked (`[staff.ID]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_by: Option<String>,
    /// The self-serve screen's request (`POST /v1/approvals`, kind `age`) staff approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<Uuid>,
}

/// The age check a sale's age-restricted items passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AgeCheckOut {
    /// `dob`, `id_scan` or `approval`.
    pub method: String,
    pub born_on_or_before: String,
    pub minimum_age: u8,
    /// The name of the member of staff who checked.
    pub verified_by: String,
    /// When (RFC 3339, UTC).
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<Uuid>,
}

/// A priced line of a sale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SaleLineOut {
    pub line_no: u32,
    pub sku: String,
    pub name: String,
    pub kind: String,
    /// Pieces, for unit and lot items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qty: Option<u32>,
    /// Grams, for weighed items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_g: Option<u32>,
    pub unit_price_minor: i64,
    pub tax_rate_bp: u32,
    pub net_minor: i64,
    pub tax_minor: i64,
    pub gross_minor: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<String>,
    /// The catalog's unit price, when a manager overrode it (`unit_price_minor` is charged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_price_minor: Option<i64>,
    /// Discount taken off the line (already out of `gross_minor`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub discount_minor: i64,
    /// Refunded so far (pieces, or grams for weighed items); in `GET /v1/sales/{id}`.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub refunded: u64,
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// A tender as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TenderOut {
    #[serde(rename = "type")]
    pub kind: String,
    pub amount_minor: i64,
    /// Card: the masked card number (first six and last four digits at most).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pan_masked: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_code: Option<String>,
    /// Card: the terminal's receipt number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_no: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
    /// Card: approved offline by the terminal (staff see this; cardholders never do).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub offline: bool,
    /// Card: the terminal's receipt lines, for the printed receipt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub card_receipt: Vec<String>,
    /// Card: the terminal's own reference of the transaction where its family has one
    /// (Adyen: the POITransactionID and its time stamp), for a reversal or a refund.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal_reference: Option<String>,
}

/// A sale (`201` of `POST /v1/sales`, `GET /v1/sales/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SaleOut {
    pub id: Uuid,
    /// `completed`.
    pub status: String,
    pub total_minor: i64,
    pub net_minor: i64,
    pub tax_minor: i64,
    pub currency: String,
    pub business_date: String,
    pub created_at: String,
    pub lines: Vec<SaleLineOut>,
    pub tenders: Vec<TenderOut>,
    pub tendered_minor: i64,
    pub change_minor: i64,
    /// `sale`, or `refund` (amounts are what was paid back).
    #[serde(default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_of: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The manager who approved a price override or discount on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// The receipt number people read out and scan for returns (`LANE-SEQUENCE`, unique in
    /// the store); absent on sales made before receipt numbers existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_no: Option<String>,
    /// The lane (register or kiosk) it was made at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<String>,
    /// The name of the member of staff at the register.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cashier: Option<String>,
    /// The age check its age-restricted items passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_check: Option<AgeCheckOut>,
    /// What became of its receipt (in `GET /v1/sales/{id}`; not in the 201, which answers
    /// as soon as the sale is durable, before anything is printed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<ReceiptOut>,
}

/// What became of a sale's receipt since edged started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReceiptOut {
    /// `queued`, `printed`, `failed` (see `reason`; offer a reprint), `not_requested`,
    /// `no_printer`, or `unknown` (nothing heard of it since edged started).
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Copies (reprints) asked for.
    #[serde(default)]
    pub copies: u32,
    /// When it reached its state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// One line to refund.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundLineIn {
    pub line_no: u32,
    /// Units (or grams for a weighed line) to refund; absent = what is left of the line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qty: Option<u32>,
}

/// `POST /v1/sales/{id}/refunds` (manager).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundIn {
    /// The lines to refund; absent = everything not refunded yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<Vec<RefundLineIn>>,
    /// `cash` (from the drawer) or `card` (to the card presented at the terminal).
    pub tender: String,
    /// Why, in words (kept with the refund and in the audit).
    pub reason: String,
    /// The id of the member of staff at the register (printed on the refund's receipt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cashier: Option<String>,
}

/// `POST /v1/stock/adjustments` (manager): a stock change that is not a sale.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentIn {
    pub sku: String,
    /// Units, or grams for weighed items; positive adds stock, negative takes it; never 0.
    pub delta: i64,
    /// `count`, `damaged`, `theft`, `received`, `returned_to_vendor` or `correction`.
    pub reason: String,
    /// Up to 200 characters, kept with the adjustment and sent to the remotes' memo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A stock adjustment as stored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AdjustmentOut {
    /// UUID v7 made at the edge; the external id at the remotes.
    pub id: String,
    pub sku: String,
    pub delta: i64,
    /// `units` or `grams`.
    pub unit: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// UTC, RFC 3339.
    pub created_at: String,
    /// In the store's time zone.
    pub business_date: String,
    pub actor: String,
    /// Available after it (units or grams), when answered to the request that made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock: Option<i64>,
}

/// `GET /v1/stock/adjustments`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AdjustmentsPage {
    pub adjustments: Vec<AdjustmentOut>,
    pub next_cursor: Option<String>,
}

/// `GET /v1/sales`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SalesPage {
    pub sales: Vec<SaleOut>,
    pub next_cursor: Option<String>,
}

/// Delivery state of the records bound for one remote.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RemoteStatus {
    /// `cloud`, `lightspeed` or `netsuite`.
    pub name: String,
    /// `off`, `shadow` or `live`.
    pub mode: String,
    /// `connected`, `degraded`, `down`, `shadow`, `idle` (no exchange yet), `off`, or
    /// `unavailable` (no connector in this build).
    pub state: String,
    pub pending: u64,
    pub in_flight: u64,
    pub unknown: u64,
    pub confirmed: u64,
    pub rejected: u64,
    pub dead: u64,
    /// Age of the oldest record not yet delivered, seconds.
    pub oldest_pending_age_s: Option<u64>,
    /// `ok`, `warning` (≥ 5 min) or `critical` (≥ 15 min).
    pub lag: String,
    pub last_success_at: Option<String>,
    pub errors_last_hour: u64,
    /// `ok`, or `limited until …` while the remote's rate limit holds deliveries back.
    pub rate_limit: Option<String>,
    /// Circuit breaker: `closed`, `open` or `half_open`.
    #[serde(default)]
    pub breaker: Option<String>,
    #[serde(default)]
    pub last_error: Option<String>,
    /// Requests sent and 429 answers received since the daemon started.
    #[serde(default)]
    pub requests: u64,
    #[serde(default)]
    pub throttled: u64,
    #[serde(default)]
    pub detail: Option<String>,
    /// Pulls (catalog, prices, stock, config): last success and the last error since.
    #[serde(default)]
    pub pull_last_success_at: Option<String>,
    #[serde(default)]
    pub pull_error: Option<String>,
    /// The remote's push stream: `connected (last message N)` or why it is not.
    #[serde(default)]
    pub stream: Option<String>,
}

/// `GET /v1/sync`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SyncStatus {
    pub remotes: Vec<RemoteStatus>,
}

/// `GET /v1/sync/report?date=D`: one business day reconciled with each system of record.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SyncReport {
    /// The business date (store time zone).
    pub date: String,
    pub store_id: String,
    /// The day's window in UTC: from, to (exclusive).
    pub window_utc: Vec<String>,
    pub remotes: Vec<RemoteReconciliation>,
    /// Across the store's lanes that day: over-refunds, refunds allowed and units sold while
    /// the store's server could not be reached (`[bus]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lane_flags: Vec<LaneFlagOut>,
}

/// A day at one remote, in Jepsen's categories.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RemoteReconciliation {
    pub remote: String,
    /// Nothing lost (beyond records still waiting), duplicated, unexpected or differing.
    pub clean: bool,
    pub local_count: usize,
    pub local_total_minor: i64,
    pub remote_count: usize,
    pub remote_total_minor: i64,
    /// Sales of the day routed here that the remote does not keep, with their outbox state
    /// (pending, in_flight, unknown: not delivered yet; confirmed: lost at the remote).
    pub lost: Vec<ReconLocal>,
    /// Sales the remote keeps more than once.
    pub duplicated: Vec<ReconDuplicate>,
    /// Records at the remote with no local sale of that day.
    pub unexpected: Vec<ReconRemote>,
    /// Records both sides have with different totals.
    pub differs: Vec<ReconDiffers>,
    /// Why the remote could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReconLocal {
    pub sale_id: String,
    /// Negative for a refund.
    pub total_minor: i64,
    pub state: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReconDuplicate {
    pub sale_id: String,
    pub remote_ids: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReconRemote {
    pub reference: String,
    pub remote_id: String,
    pub total_minor: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReconDiffers {
    pub sale_id: String,
    pub local_minor: i64,
    pub remote_minor: i64,
}

/// One outbox entry: one record bound for one remote.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OutboxEntryOut {
    pub id: Uuid,
    pub remote: String,
    /// `sale`.
    pub kind: String,
    pub record_id: Uuid,
    /// `pending`, `in_flight`, `confirmed`, `unknown`, `rejected` or `dead`.
    pub state: String,
    /// Remote id (confirmed) or reason (rejected, dead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub attempts: u32,
    pub created_at: String,
    pub updated_at: String,
    pub request_id: String,
}

/// `GET /v1/outbox`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OutboxPage {
    pub entries: Vec<OutboxEntryOut>,
    pub next_cursor: Option<String>,
}

/// A device the daemon drives.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceOut {
    pub id: String,
    /// `printer`, `scanner`, `scale` or `display`.
    pub kind: String,
    /// `connecting`, `online`, `offline`, `error` or `gone` (several missed checks).
    pub state: String,
    /// The device's own words: `online, paper near end, drawer closed`, or the last error.
    pub health: String,
    #[serde(default)]
    pub uri: String,
    #[serde(default)]
    pub last_seen_at: Option<String>,
    /// UPOS statistics (`CommunicationErrorCount`, `HoursPoweredCount`, …).
    #[serde(default)]
    pub stats: std::collections::BTreeMap<String, String>,
}

/// `POST /v1/devices/{id}/health`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckIn {
    /// UPOS checkHealth level: `internal` (no change to the device), `external` (a printer
    /// prints a test page, a display shows a test pattern, a scale runs its echo test) or
    /// `interactive` (with the operator: a scanner waits for a code to be scanned).
    pub level: String,
}

/// The result of a health check.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HealthCheckOut {
    pub device: String,
    pub level: String,
    pub ok: bool,
    /// What the device answered, in words (UPOS `CheckHealthText`), or why it failed.
    pub result: String,
}

/// A card payment (`GET /v1/payments`): staff and field techs only.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PaymentOut {
    pub id: Uuid,
    /// `sale` or `refund`.
    pub kind: String,
    pub sale_id: Uuid,
    pub amount_minor: i64,
    pub currency: String,
    pub terminal: String,
    /// `intent`, `in_doubt`, `approved`, `recorded`, `declined`, `failed`, `reversed`,
    /// `reversal_failed`.
    pub state: String,
    pub reason: Option<String>,
    pub offline: bool,
    /// Offline payments: sent on to the host by the terminal's end-of-day.
    pub forwarded: bool,
    pub pan_masked: Option<String>,
    pub receipt_no: Option<u32>,
    pub idempotency_key: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Seconds since it was made.
    pub age_s: u64,
}

/// `POST /v1/payments/{id}/settle` (manager): the outcome of a payment in doubt, read by a
/// manager from the terminal's own journal or printout when the terminal's answer cannot
/// prove it. `charged: true` needs the terminal's `receipt_no` for the payment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PaymentSettleIn {
    pub charged: bool,
    #[serde(default)]
    pub receipt_no: Option<u32>,
}

/// `GET /v1/payments`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PaymentsList {
    pub payments: Vec<PaymentOut>,
    /// Offline card payments waiting to be forwarded (staff see these; cardholders never do).
    pub offline_pending: u32,
    pub offline_pending_minor: i64,
    /// Age of the oldest one, seconds.
    pub offline_oldest_age_s: Option<u64>,
    /// Whether a manager forced card acceptance offline.
    pub forced_offline: bool,
    /// Whether the terminal says it cannot reach its host.
    pub terminal_offline: bool,
}

/// What the payment terminal answered (`POST /v1/terminal/status|diagnosis|eod`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TerminalOut {
    pub ok: bool,
    /// The ZVT result code (0 = success).
    pub code: u8,
    /// The result in words.
    pub text: String,
    /// The terminal's own status text (e.g. `READY`, `READY, OFFLINE: 2 STORED`).
    pub status: Option<String>,
    /// Its receipt lines (end-of-day report, diagnosis).
    pub receipt: Vec<String>,
    /// End-of-day: offline payments now forwarded.
    #[serde(default)]
    pub forwarded: u32,
}

/// `POST /v1/terminal/offline`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForceOfflineIn {
    /// true: take cards under the offline policy even if the terminal says it is online.
    pub force: bool,
}

/// `POST /v1/drawer/open`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DrawerOut {
    /// What the drawer sensor reads after the kick.
    pub open: bool,
}

/// `GET /v1/devices`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DevicesList {
    pub devices: Vec<DeviceOut>,
}

/// A message on `GET /v1/events` (WebSocket, JSON text frames).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type")]
pub enum Event {
    /// A sale was committed durably.
    #[serde(rename = "sale.completed")]
    SaleCompleted { at: String, sale_id: Uuid, total_minor: i64, currency: String, business_date: String },
    /// Delivery state per remote (sent on connect and when it changes).
    #[serde(rename = "sync.status")]
    SyncStatus { at: String, remotes: Vec<RemoteStatus> },
    /// A device changed state or health.
    #[serde(rename = "device.status")]
    DeviceStatus { at: String, device: DeviceOut },
    /// A barcode was scanned (AIM id stripped; GS1 fields parsed when present).
    #[serde(rename = "scan")]
    Scan {
        at: String,
        device: String,
        data: String,
        aim: Option<String>,
        gtin: Option<String>,
        lot: Option<String>,
        expiry: Option<String>,
        net_weight_g: Option<i64>,
    },
    /// What the payment terminal asks of the customer ("Insert card", "Enter PIN" …).
    #[serde(rename = "terminal.prompt")]
    TerminalPrompt { at: String, payment_id: Uuid, text: String },
    /// A card payment moved (approved, declined, in doubt, reversed …); staff screens only.
    #[serde(rename = "payment.status")]
    PaymentStatus {
        at: String,
        payment_id: Uuid,
        sale_id: Uuid,
        state: String,
        amount_minor: i64,
        reason: Option<String>,
        offline: bool,
    },
    /// Something staff must act on (a reversal that failed, a drawer left open …).
    #[serde(rename = "staff.alert")]
    StaffAlert { at: String, text: String },
    /// A self-serve screen asks staff for something (an age check, help); staff screens only.
    #[serde(rename = "approval.requested")]
    ApprovalRequested { at: String, approval: ApprovalOut },
    /// Staff answered a request (every screen hears it; the asking kiosk moves on).
    #[serde(rename = "approval.decided")]
    ApprovalDecided { at: String, approval: ApprovalOut },
    /// This client was too slow and missed `missed` events; re-read state over HTTP.
    #[serde(rename = "events.lagged")]
    Lagged { missed: u64 },
    /// The daemon is stopping; reconnect later.
    #[serde(rename = "daemon.stopping")]
    Stopping { at: String },
    /// A sale's receipt (or a copy) came out of the printer.
    #[serde(rename = "receipt.printed")]
    ReceiptPrinted { at: String, sale_id: Uuid, copy: bool },
    /// A sale's receipt did not print (printer absent, hung, out of paper …): offer a reprint.
    #[serde(rename = "receipt.failed")]
    ReceiptFailed { at: String, sale_id: Uuid, copy: bool, reason: String },
    /// The cash drawer was kicked open for a sale or refund; staff screens only.
    #[serde(rename = "drawer.opened")]
    DrawerOpened { at: String, sale_id: Uuid },
    /// The cash drawer could not be kicked open (why); staff screens only.
    #[serde(rename = "drawer.failed")]
    DrawerFailed { at: String, sale_id: Uuid, reason: String },
}

impl Event {
    /// Events cardholders at a self-serve kiosk must not see (offline payments, store
    /// internals); sent to staff roles only.
    pub fn staff_only(&self) -> bool {
        matches!(
            self,
            Event::PaymentStatus { .. }
                | Event::StaffAlert { .. }
                | Event::ApprovalRequested { .. }
                | Event::DrawerOpened { .. }
                | Event::DrawerFailed { .. }
        )
    }
}

/// `POST /v1/outbox/retry`: dead letters that are pending again.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RetryOut {
    pub retried: Vec<OutboxEntryOut>,
    /// Entries left for another call (at most 10,000 are replayed per call).
    pub more: bool,
}

/// `DIR/api.json`, written by the daemon when its API is ready.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiFile {
    pub url: String,
}

/// `DIR/tokens.json`: one bearer token per role.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokensFile {
    pub cashier: String,
    pub manager: String,
    pub tech: String,
    pub kiosk: String,
}

/// `POST /v1/login`: a staff member's PIN.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginIn {
    pub pin: String,
}

/// Who a PIN belongs to, and the token of their role.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LoginOut {
    pub staff_id: String,
    pub name: String,
    /// `cashier`, `manager` or `tech`.
    pub role: String,
    /// The bearer token of that role.
    pub token: String,
}

/// `POST /v1/approvals`: a self-serve screen asks staff.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalIn {
    /// `age` (an age-restricted item needs a check) or `help` (the customer called staff).
    pub kind: String,
    /// Which screen asks (its name, e.g. `kiosk-1`).
    pub screen: String,
    /// For `age`: the item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
}

/// A request for staff, and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApprovalOut {
    pub id: Uuid,
    pub kind: String,
    pub screen: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// The item's name, for `age`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_name: Option<String>,
    /// `pending`, `approved`, `refused` (age), `done` (help) or `expired`.
    pub state: String,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
    /// The staff member who answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
}

/// `POST /v1/approvals/{id}/decision` (cashier, manager).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionIn {
    /// `approve`, `refuse` (age) or `done` (help answered).
    pub decision: String,
    /// The PIN of the staff member deciding (named in the record and the audit).
    pub pin: String,
}

/// `GET /v1/approvals`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApprovalsList {
    pub approvals: Vec<ApprovalOut>,
}

/// `GET /v1/catalog/categories`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CategoriesOut {
    pub categories: Vec<CategoryOut>,
}

/// One category of the catalog (browse with `q=category:NAME`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CategoryOut {
    pub name: String,
    pub items: u64,
}

/// `GET /v1/scale`: what the scale reads now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScaleOut {
    pub grams: i64,
    /// False while the weight moves, or the reading is not usable (`status` says why).
    pub stable: bool,
    pub status: String,
}

/// `POST /v1/voids` (manager): a cart abandoned before payment, for the audit trail.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoidIn {
    pub lines: u32,
    pub total_minor: i64,
    pub reason: String,
}

/// `GET /v1/whoami`: the role of the token used.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    /// `cashier`, `manager`, `tech` or `kiosk`.
    pub role: String,
}

/// Totals over a run of sales.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Totals {
    pub sales: u64,
    /// Refunds, and what they paid back (already taken off the other totals).
    pub refunds: u64,
    pub refunds_minor: i64,
    pub total_minor: i64,
    pub tax_minor: i64,
    pub cash_minor: i64,
    pub card_minor: i64,
    pub card_offline_minor: i64,
    pub change_minor: i64,
    /// Cash that should be in the drawer from these sales (cash taken minus change).
    pub cash_in_drawer_minor: i64,
}

/// A report (`GET /v1/reports/x`, `POST /v1/reports/z`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Report {
    /// `x` or `z`.
    pub kind: String,
    /// Z reports are numbered from 1; an X report carries the number the next Z will have.
    pub number: u64,
    pub currency: String,
    pub from_sale: Option<Uuid>,
    pub to_sale: Option<Uuid>,
    pub first_at: Option<String>,
    pub last_at: Option<String>,
    pub totals: Totals,
    /// Z: what the terminal's end-of-day said, its receipt lines.
    pub terminal: Option<String>,
    #[serde(default)]
    pub terminal_receipt: Vec<String>,
    pub made_at: String,
    /// A lane of a store with a bus (`scope=store`): each lane's totals since its own last
    /// Z, this lane first, then the store's total.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lanes: Vec<LaneTotals>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_totals: Option<Totals>,
}

/// One lane's part of a store-wide X report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LaneTotals {
    pub lane: String,
    /// The number its next Z will have.
    pub number: u64,
    pub totals: Totals,
}

/// `GET /v1/lanes`: the store's lanes as this lane sees them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LanesOut {
    /// This lane.
    pub lane: String,
    /// `off` (no `[bus]`), or the bus's URL.
    pub bus_url: Option<String>,
    /// `connected`, `connecting`, `down`, or `off`.
    pub bus: String,
    pub bus_error: Option<String>,
    /// Another box configured with this lane's id.
    pub conflict: Option<String>,
    pub lanes: Vec<LaneOut>,
    /// Over-refunds found across lanes, refunds allowed and units sold while the store's
    /// server could not be reached.
    pub flags: Vec<LaneFlagOut>,
}

/// One lane of the store.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct LaneOut {
    pub lane: String,
    pub name: Option<String>,
    /// This box.
    pub this: bool,
    /// `up` (heartbeat in the last 15 s), `gone`, or `unknown` (seen only through its records).
    pub state: String,
    pub last_heartbeat_at: Option<String>,
    /// Its records not yet on the store stream.
    pub unpublished: Option<u64>,
    /// Stream messages it has not applied yet.
    pub lag: Option<u64>,
    /// Its records this lane holds (other lanes), and the newest one's time.
    pub records_here: u64,
    pub last_record_at: Option<String>,
    pub last_z: Option<u64>,
}

/// Something across lanes that staff must see.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LaneFlagOut {
    pub id: Uuid,
    pub at: String,
    /// `over-refund`, `offline-refund`, `oversell`.
    pub kind: String,
    pub lane: String,
    pub record_id: Uuid,
    pub detail: String,
}
