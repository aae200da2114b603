//! Domain records of the store: catalog items, sales with priced lines, tenders, stock
//! deltas, outbox entries and audit records. These are what the store keeps on disk; they
//! are not the local API's wire types (those live in `edge-api`).
//!
//! Rules held here:
//! - money is integer minor units with a currency ([`crate::money`]);
//! - tax is computed per line, for inclusive or exclusive pricing, rounded half away from
//!   zero once per line;
//! - weighed items are priced per kilogram and sold by the gram;
//! - lot-tracked items carry a lot number and an expiry date and are refused once expired;
//! - ids are UUID v7, made here at the edge ([`new_id`]) and stored before any remote sees them;
//! - timestamps are UTC; the business date is the calendar date in the store's time zone,
//!   shifted by the store's business-day start (a sale at 01:30 belongs to the previous
//!   business day when the day starts at 04:00).

use crate::money::{Currency, Money, div_round_half_away};
use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A new UUID v7: time-ordered, made at the edge.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// The UTC instant a UUID v7 was made, if it is one.
pub fn id_time(id: &Uuid) -> Option<Timestamp> {
    let (secs, nanos) = id.get_timestamp()?.to_unix();
    Timestamp::new(i64::try_from(secs).ok()?, i32::try_from(nanos).ok()?).ok()
}

/// How an item is sold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemKind {
    /// Sold by the piece; `price_minor` is per piece.
    Unit,
    /// Sold by weight; `price_minor` is per kilogram, quantities are grams.
    Weight,
    /// Sold by the piece, each from a lot with an expiry date.
    Lot,
}

/// Whether catalog prices include tax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaxMode {
    /// Shelf price includes tax (EU retail).
    Inclusive,
    /// Tax is added on top (US retail).
    Exclusive,
}

/// A catalog item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub sku: String,
    pub name: String,
    /// Per piece, or per kilogram for [`ItemKind::Weight`].
    pub price_minor: i64,
    pub currency: Currency,
    /// Tax rate in basis points: 1900 = 19 %.
    pub tax_rate_bp: u32,
    pub kind: ItemKind,
    #[serde(default)]
    pub barcodes: Vec<String>,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub age_restricted: bool,
    /// The item's picture as its source offers it: an `http(s)` URL, or a path on the
    /// company cloud (`/pictures/…`, from the cloud's catalog). The daemon keeps a copy on
    /// disk for the screens, so they show it offline too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// A picture's URL as the catalog may carry it: `http(s)://`, at most 1,000 printable
/// ASCII characters.
pub fn valid_image_url(u: &str) -> bool {
    (u.starts_with("https://") || u.starts_with("http://"))
        && u.len() <= 1000
        && u.bytes().all(|b| b.is_ascii_graphic())
}

/// How much of an item a line sells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantity {
    Units(u32),
    Grams(u32),
}

impl Quantity {
    /// The stock movement this quantity causes when sold (negative).
    pub fn sold_delta(&self) -> i64 {
        match *self {
            Quantity::Units(n) | Quantity::Grams(n) => -i64::from(n),
        }
    }

    /// Units or grams, whichever it is.
    pub fn amount(&self) -> u32 {
        match *self {
            Quantity::Units(n) | Quantity::Grams(n) => n,
        }
    }
}

/// A lot of a lot-tracked item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lot {
    pub number: String,
    pub expiry: Date,
}

/// One priced line of a sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleLine {
    pub line_no: u32,
    pub sku: String,
    pub name: String,
    pub kind: ItemKind,
    pub quantity: Quantity,
    /// Per piece, or per kilogram for weighed items, as the catalog had it.
    pub unit_price_minor: i64,
    pub tax_rate_bp: u32,
    pub net_minor: i64,
    pub tax_minor: i64,
    pub gross_minor: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lot: Option<Lot>,
    /// The catalog's unit price when a manager overrode it (`unit_price_minor` is charged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_price_minor: Option<i64>,
    /// Discount taken off the line before tax was split (minor units, in `gross_minor`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub discount_minor: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// Why a line could not be priced. The caller names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("quantity must be at least 1")]
    ZeroQuantity,
    #[error("quantity {0} is above the limit of {1}")]
    QuantityTooLarge(u64, u32),
    #[error("item {0} is sold by weight: give weight_g, not a count")]
    WeightRequired(String),
    #[error("item {0} is not sold by weight")]
    NotByWeight(String),
    #[error("item {0} is lot-tracked: give its lot number and expiry")]
    LotRequired(String),
    #[error("lot {lot} of item {sku} expired on {expiry}")]
    LotExpired { sku: String, lot: String, expiry: Date },
    #[error("item {sku} is priced in {item}, the store sells in {store}")]
    CurrencyMismatch { sku: String, item: Currency, store: Currency },
    #[error("line amount overflows")]
    Overflow,
}

/// Largest count on one line; larger is surely a typo.
pub const MAX_UNITS_PER_LINE: u32 = 9_999;
/// Largest weight on one line (grams): 1 t.
pub const MAX_GRAMS_PER_LINE: u32 = 1_000_000;

/// What the till asks for on one line, before pricing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineRequest {
    Units(u64),
    Grams(u64),
}

/// Prices one line: quantity × price, then tax per line in the store's tax mode.
pub fn price_line(
    line_no: u32,
    item: &Item,
    req: &LineRequest,
    lot: Option<Lot>,
    mode: TaxMode,
    store_currency: Currency,
    business_date: Date,
) -> Result<SaleLine, LineError> {
    if item.currency != store_currency {
        return Err(LineError::CurrencyMismatch { sku: item.sku.clone(), item: item.currency, store: store_currency });
    }
    let quantity = match (item.kind, req) {
        (ItemKind::Weight, LineRequest::Grams(g)) => Quantity::Grams(bounded(*g, MAX_GRAMS_PER_LINE)?),
        (ItemKind::Weight, LineRequest::Units(_)) => {
            return Err(LineError::WeightRequired(item.sku.clone()));
        }
        (_, LineRequest::Grams(_)) => return Err(LineError::NotByWeight(item.sku.clone())),
        (_, LineRequest::Units(n)) => Quantity::Units(bounded(*n, MAX_UNITS_PER_LINE)?),
    };
    let lot = match (item.kind, lot) {
        (ItemKind::Lot, None) => return Err(LineError::LotRequired(item.sku.clone())),
        (ItemKind::Lot, Some(l)) if l.expiry < business_date => {
            return Err(LineError::LotExpired { sku: item.sku.clone(), lot: l.number, expiry: l.expiry });
        }
        (ItemKind::Lot, Some(l)) => Some(l),
        // A lot given for an item that is not lot-tracked is kept for the record.
        (_, l) => l,
    };
    let amount = match quantity {
        Quantity::Units(n) => item.price_minor.checked_mul(i64::from(n)).ok_or(LineError::Overflow)?,
        Quantity::Grams(g) => {
            div_round_half_away(i128::from(item.price_minor) * i128::from(g), 1000).ok_or(LineError::Overflow)?
        }
    };
    let (net, tax, gross) = split_tax(amount, item.tax_rate_bp, mode).ok_or(LineError::Overflow)?;
    Ok(SaleLine {
        line_no,
        sku: item.sku.clone(),
        name: item.name.clone(),
        kind: item.kind,
        quantity,
        unit_price_minor: item.price_minor,
        tax_rate_bp: item.tax_rate_bp,
        net_minor: net,
        tax_minor: tax,
        gross_minor: gross,
        lot,
        list_price_minor: None,
        discount_minor: 0,
    })
}

/// Why a price override or discount was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdjustError {
    #[error("an overridden unit price must be 0 or more, not {0}")]
    NegativePrice(i64),
    #[error("a discount must be 0 or more, not {0}")]
    NegativeDiscount(i64),
    #[error("a discount of {discount} is more than the line's {amount}")]
    DiscountTooLarge { discount: i64, amount: i64 },
    #[error("the amount does not fit")]
    Overflow,
}

/// Reprices a line with a manager's price override (a unit price instead of the
/// catalog's) and / or a discount off the line, then splits tax again. The amount charged
/// is `quantity × unit price − discount`; a discount can bring a line to 0, never below.
pub fn adjust_line(
    line: SaleLine,
    unit_price: Option<i64>,
    discount: i64,
    mode: TaxMode,
) -> Result<SaleLine, AdjustError> {
    if let Some(p) = unit_price
        && p < 0
    {
        return Err(AdjustError::NegativePrice(p));
    }
    if discount < 0 {
        return Err(AdjustError::NegativeDiscount(discount));
    }
    let list = line.unit_price_minor;
    let price = unit_price.unwrap_or(list);
    let before = match line.quantity {
        Quantity::Units(n) => price.checked_mul(i64::from(n)).ok_or(AdjustError::Overflow)?,
        Quantity::Grams(g) => {
            div_round_half_away(i128::from(price) * i128::from(g), 1000).ok_or(AdjustError::Overflow)?
        }
    };
    if discount > before {
        return Err(AdjustError::DiscountTooLarge { discount, amount: before });
    }
    let (net, tax, gross) = split_tax(before - discount, line.tax_rate_bp, mode).ok_or(AdjustError::Overflow)?;
    Ok(SaleLine {
        unit_price_minor: price,
        list_price_minor: (price != list).then_some(list),
        discount_minor: discount,
        net_minor: net,
        tax_minor: tax,
        gross_minor: gross,
        ..line
    })
}

fn bounded(n: u64, max: u32) -> Result<u32, LineError> {
    if n == 0 {
        return Err(LineError::ZeroQuantity);
    }
    match u32::try_from(n) {
        Ok(v) if v <= max => Ok(v),
        _ => Err(LineError::QuantityTooLarge(n, max)),
    }
}

/// Splits a line amount into (net, tax, gross).
/// Inclusive: `amount` is gross; net = gross × 10000 / (10000 + rate), rounded; tax = gross − net.
/// Exclusive: `amount` is net; tax = net × rate / 10000, rounded; gross = net + tax.
pub fn split_tax(amount: i64, rate_bp: u32, mode: TaxMode) -> Option<(i64, i64, i64)> {
    let rate = i128::from(rate_bp);
    match mode {
        TaxMode::Inclusive => {
            let net = div_round_half_away(i128::from(amount) * 10_000, 10_000 + rate)?;
            Some((net, amount.checked_sub(net)?, amount))
        }
        TaxMode::Exclusive => {
            let tax = div_round_half_away(i128::from(amount) * rate, 10_000)?;
            Some((amount, tax, amount.checked_add(tax)?))
        }
    }
}

/// A tender on a sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[allow(
    clippy::large_enum_variant,
    reason = "a sale holds one or two tenders; boxing the card data would change every match for nothing"
)]
pub enum Tender {
    Cash {
        amount_minor: i64,
    },
    /// A card payment the terminal approved (see [`Payment`]). Never a full card number.
    Card {
        amount_minor: i64,
        payment_id: Uuid,
        terminal: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        card: Option<CardResult>,
    },
}

impl Tender {
    pub fn amount_minor(&self) -> i64 {
        match self {
            Tender::Cash { amount_minor } | Tender::Card { amount_minor, .. } => *amount_minor,
        }
    }
}

/// What the terminal said of an approved card payment: for the record and the receipt.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardResult {
    /// First six and last four digits at most, e.g. `679999*********0019`.
    pub pan_masked: Option<String>,
    pub card_name: Option<String>,
    pub auth_code: Option<String>,
    pub receipt_no: Option<u32>,
    pub trace: Option<u32>,
    pub terminal_id: Option<String>,
    /// Approved by the terminal offline (store-and-forward), not yet sent to the host.
    #[serde(default)]
    pub offline: bool,
    /// The terminal's receipt lines.
    #[serde(default)]
    pub receipt: Vec<String>,
    /// The terminal's own reference of the transaction, where its family reverses and
    /// refunds by reference (Adyen: `POITransactionID` and its time stamp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// What a card payment is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentKind {
    Sale,
    Refund,
}

/// Where a card payment stands. Every move is stored (journaled) before the next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentState {
    /// Stored before the first byte went to the terminal.
    Intent,
    /// The terminal's answer was lost: settle by asking it, never by charging again.
    InDoubt,
    /// The terminal approved; the sale is not committed yet.
    Approved,
    /// The sale (or refund) that the payment pays is committed. Final.
    Recorded,
    /// The terminal declined or the customer aborted. Final.
    Declined,
    /// The terminal never charged (refused, unreachable before accepting). Final.
    Failed,
    /// Approved, then reversed because it could not become a sale. Final.
    Reversed,
    /// Approved, could not become a sale, and the reversal failed: staff must act.
    ReversalFailed,
}

impl PaymentState {
    pub fn is_final(self) -> bool {
        matches!(self, PaymentState::Recorded | PaymentState::Declined | PaymentState::Failed | PaymentState::Reversed)
    }
}

/// A card payment (or card refund) and its journey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub id: Uuid,
    pub kind: PaymentKind,
    /// The sale this pays (made at the edge before the terminal is asked), or the sale a
    /// refund is for.
    pub sale_id: Uuid,
    pub amount_minor: i64,
    pub currency: Currency,
    pub terminal: String,
    pub state: PaymentState,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Grows with every stored move (a journal replay keeps the newest).
    pub rev: u64,
    /// The terminal's last receipt number before this payment was sent (None: the terminal
    /// had no transaction). A repeat receipt showing this number means the terminal did not
    /// act on the payment; another number, approved for this amount, means it charged.
    pub receipt_before: Option<u32>,
    /// `receipt_before` was read from the terminal itself (repeat receipt) while this payment
    /// held it, and no other payment could use the terminal until this one was settled: only
    /// then does the terminal's last transaction prove the outcome. False for payments stored
    /// by versions that took the number from their own notes (staff settle those in doubt).
    #[serde(default)]
    pub baseline_from_terminal: bool,
    /// The fingerprint of the request that started it, so a sale completed after a restart
    /// answers a retry of that same request (and a different body under its key is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<CardResult>,
    /// Why it was declined, failed or reversed, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The idempotency key of the request that started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The priced sale to commit once approved (kept so a restart can finish it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sale: Option<Box<Sale>>,
    /// Accepted under the offline policy (the terminal could not reach its host).
    #[serde(default)]
    pub offline: bool,
    /// Offline payment sent on to the host (the terminal's end-of-day).
    #[serde(default)]
    pub forwarded: bool,
    /// Which terminal the intent was sent to, where the family asks by reference (Adyen:
    /// `adyen POIID SALEID`): a payment is only ever settled by the terminal it was sent
    /// to. None for ZVT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal_identity: Option<String>,
    pub request_id: String,
    pub actor: String,
}

/// Where a sale stands. Only completed sales are stored by this version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SaleStatus {
    Completed,
}

/// A sale, or a refund of (part of) one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SaleKind {
    #[default]
    Sale,
    /// Money and goods going back: amounts are what is paid back (positive), stock returns.
    Refund,
}

/// A completed sale (or refund) as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sale {
    pub id: Uuid,
    pub status: SaleStatus,
    #[serde(default)]
    pub kind: SaleKind,
    /// A refund: the sale it refunds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_of: Option<Uuid>,
    /// A refund: why, in the manager's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// UTC.
    pub created_at: Timestamp,
    /// In the store's time zone.
    pub business_date: Date,
    pub store_id: String,
    pub currency: Currency,
    pub tax_mode: TaxMode,
    pub lines: Vec<SaleLine>,
    pub tenders: Vec<Tender>,
    pub net_minor: i64,
    pub tax_minor: i64,
    pub total_minor: i64,
    pub tendered_minor: i64,
    pub change_minor: i64,
    /// The local API request that made it.
    pub request_id: String,
    /// The role of the token that made it.
    pub actor: String,
    /// The manager who approved a price override or discount on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// The number people read out and scan for a return: `LANE-SEQUENCE` (`1-000042`),
    /// given by the store under its commit lock, unique in the store, never reused. None on
    /// records made before receipt numbers existed (their receipt shows the id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_no: Option<String>,
    /// The lane (register or self-serve kiosk) it was made at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<String>,
    /// The member of staff logged in at the register that made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cashier: Option<StaffRef>,
    /// The age check its age-restricted items passed: how, against which date, by whom, when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_check: Option<AgeCheck>,
}

/// How a customer's age was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgeCheckMethod {
    /// Staff asked "born on or before …?" (or read it from an ID shown to them).
    Dob,
    /// Staff scanned the customer's ID.
    IdScan,
    /// A self-serve screen asked staff, who approved with their PIN.
    Approval,
}

impl AgeCheckMethod {
    pub fn parse(s: &str) -> Option<AgeCheckMethod> {
        match s {
            "dob" => Some(AgeCheckMethod::Dob),
            "id_scan" => Some(AgeCheckMethod::IdScan),
            "approval" => Some(AgeCheckMethod::Approval),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AgeCheckMethod::Dob => "dob",
            AgeCheckMethod::IdScan => "id_scan",
            AgeCheckMethod::Approval => "approval",
        }
    }
}

/// An answered age check, recorded on the sale it allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgeCheck {
    pub method: AgeCheckMethod,
    /// The customer was born on or before this date (the store's minimum age before the
    /// sale's business date, or earlier).
    pub born_on_or_before: Date,
    pub minimum_age: u8,
    pub verified_by: StaffRef,
    /// When the sale that carries it was made (UTC).
    pub at: Timestamp,
    /// The self-serve screen's request that staff approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Uuid>,
}

/// The latest birth date of a customer who is `minimum_age` on `day` (29 February → 28th).
pub fn born_on_or_before(day: Date, minimum_age: u8) -> Date {
    let year = day.year() - i16::from(minimum_age);
    Date::new(year, day.month(), day.day()).or_else(|_| Date::new(year, day.month(), day.day() - 1)).unwrap_or(day)
}

/// A member of staff as a record names them: the config's id and the name people know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffRef {
    pub id: String,
    pub name: String,
}

/// A receipt number's parts: the lane's prefix and the sequence within the lane.
pub fn receipt_no(lane: &str, seq: u64) -> String {
    format!("{lane}-{seq:06}")
}

/// The sequence of a receipt number made by [`receipt_no`] (None: not one).
pub fn receipt_seq(no: &str) -> Option<u64> {
    let (lane, seq) = no.rsplit_once('-')?;
    if lane.is_empty() || seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    seq.parse().ok()
}

/// A lane id: 1 to 4 ASCII letters or digits (it prefixes receipt numbers, which people
/// read out and scanners read from a barcode).
pub fn valid_lane(id: &str) -> bool {
    (1..=4).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl Sale {
    pub fn total(&self) -> Money {
        Money::new(self.total_minor, self.currency)
    }

    /// The stock movement of one line: negative for a sale, positive for a refund.
    pub fn stock_delta(&self, l: &SaleLine) -> i64 {
        match self.kind {
            SaleKind::Sale => l.quantity.sold_delta(),
            SaleKind::Refund => -l.quantity.sold_delta(),
        }
    }
}

/// Why tenders do not settle a sale.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenderError {
    #[error("tender amount must be positive")]
    NotPositive,
    #[error("tendered {tendered} is short of the total {total}")]
    Short { tendered: Money, total: Money },
    #[error("amounts overflow")]
    Overflow,
    #[error("the card would pay {card} where {due} is due: change is given in cash only")]
    CardOverpays { card: Money, due: Money },
}

/// Sums lines and tenders; returns (net, tax, total, tendered, change).
/// Change is given in cash only: the cash tendered must cover what the change comes out of.
pub fn settle(
    lines: &[SaleLine],
    tenders: &[Tender],
    currency: Currency,
) -> Result<(i64, i64, i64, i64, i64), TenderError> {
    let mut net = 0i64;
    let mut tax = 0i64;
    let mut total = 0i64;
    for l in lines {
        net = net.checked_add(l.net_minor).ok_or(TenderError::Overflow)?;
        tax = tax.checked_add(l.tax_minor).ok_or(TenderError::Overflow)?;
        total = total.checked_add(l.gross_minor).ok_or(TenderError::Overflow)?;
    }
    let mut tendered = 0i64;
    let mut cash = 0i64;
    for t in tenders {
        if t.amount_minor() <= 0 {
            return Err(TenderError::NotPositive);
        }
        tendered = tendered.checked_add(t.amount_minor()).ok_or(TenderError::Overflow)?;
        if let Tender::Cash { amount_minor } = t {
            cash = cash.checked_add(*amount_minor).ok_or(TenderError::Overflow)?;
        }
    }
    if tendered < total {
        return Err(TenderError::Short {
            tendered: Money::new(tendered, currency),
            total: Money::new(total, currency),
        });
    }
    if tendered - total > cash {
        return Err(TenderError::CardOverpays {
            card: Money::new(tendered - cash, currency),
            due: Money::new((total - cash).max(0), currency),
        });
    }
    Ok((net, tax, total, tendered, tendered - total))
}

/// The business date of `at` in the store's zone, for a business day starting at `day_start`.
pub fn business_date(at: Timestamp, tz: &TimeZone, day_start: Time) -> Date {
    let local = at.to_zoned(tz.clone()).datetime();
    if local.time() < day_start { local.date().yesterday().unwrap_or(local.date()) } else { local.date() }
}

/// A local stock movement not yet reflected by the stock source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockDelta {
    pub sku: String,
    pub sale_id: Uuid,
    pub line_no: u32,
    /// Units or grams; negative for a sale.
    pub delta: i64,
    pub at: Timestamp,
}

/// Stock of one item: the last level the stock source reported, and local movements since.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevel {
    /// Last level from the stock source (units or grams), if any was ever pulled.
    pub remote_level: Option<i64>,
    /// When the stock source said so (its own clock).
    pub remote_at: Option<Timestamp>,
    /// Sum of local deltas not yet reflected remotely.
    pub unreflected: i64,
    /// What the level includes, in its stock source's own numbering: a local record that
    /// source confirmed under a remote id numbered at most `through` is in it (the cloud's
    /// `events_through`; for Lightspeed and NetSuite, the newest id they had confirmed to us
    /// when the read began). A record confirmed after the level was read is settled against
    /// it later ([`crate::store::Store::settle_stock`]). `None` for an imported level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub through: Option<StockMarker>,
}

/// The stock source whose level it is, and how far that level reaches in its numbering.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockMarker {
    pub source: String,
    pub through: u64,
}

impl StockLevel {
    /// What can be shown for selling: last remote level plus local unreflected movements.
    pub fn available(&self) -> Option<i64> {
        self.remote_level.map(|l| l.saturating_add(self.unreflected))
    }
}

/// Where an outbox entry stands. Every transition is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum OutboxState {
    Pending,
    InFlight { attempt: u32 },
    Confirmed { remote_id: String },
    Unknown,
    Rejected { reason: String },
    Dead { reason: String },
}

impl OutboxState {
    pub fn name(&self) -> &'static str {
        self.kind().as_str()
    }

    /// Which state this is, without its data.
    pub fn kind(&self) -> OutboxStateKind {
        match self {
            OutboxState::Pending => OutboxStateKind::Pending,
            OutboxState::InFlight { .. } => OutboxStateKind::InFlight,
            OutboxState::Confirmed { .. } => OutboxStateKind::Confirmed,
            OutboxState::Unknown => OutboxStateKind::Unknown,
            OutboxState::Rejected { .. } => OutboxStateKind::Rejected,
            OutboxState::Dead { .. } => OutboxStateKind::Dead,
        }
    }
}

/// An outbox state without its data: what listings filter by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OutboxStateKind {
    Pending,
    InFlight,
    Confirmed,
    Unknown,
    Rejected,
    Dead,
}

impl OutboxStateKind {
    pub const ALL: [OutboxStateKind; 6] = [
        OutboxStateKind::Pending,
        OutboxStateKind::InFlight,
        OutboxStateKind::Confirmed,
        OutboxStateKind::Unknown,
        OutboxStateKind::Rejected,
        OutboxStateKind::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStateKind::Pending => "pending",
            OutboxStateKind::InFlight => "in_flight",
            OutboxStateKind::Confirmed => "confirmed",
            OutboxStateKind::Unknown => "unknown",
            OutboxStateKind::Rejected => "rejected",
            OutboxStateKind::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<OutboxStateKind> {
        OutboxStateKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// What an outbox entry carries to its remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    Sale,
    /// A [`StockAdjustment`].
    Adjustment,
}

/// Why stock was adjusted at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdjustReason {
    /// A shelf count found a different quantity.
    Count,
    /// Broken, spoiled or expired goods written off.
    Damaged,
    /// Missing without a sale.
    Theft,
    /// Goods received without a purchase order in the stock source.
    Received,
    /// Goods sent back to the supplier.
    ReturnedToVendor,
    /// Any other correction (say why in the note).
    Correction,
}

impl AdjustReason {
    pub fn as_str(self) -> &'static str {
        match self {
            AdjustReason::Count => "count",
            AdjustReason::Damaged => "damaged",
            AdjustReason::Theft => "theft",
            AdjustReason::Received => "received",
            AdjustReason::ReturnedToVendor => "returned_to_vendor",
            AdjustReason::Correction => "correction",
        }
    }
}

/// A stock change that is not a sale, made at the edge by a manager: a delta (units, or
/// grams for weighed items), never an absolute level, so that it can be replayed and merged
/// with sales. Its id is the external id at the remotes (NetSuite `inventoryAdjustment`
/// upserted by `eid:`), so a replay never adjusts twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockAdjustment {
    pub id: Uuid,
    pub store_id: String,
    pub sku: String,
    /// Units, or grams when `by_weight`; positive adds stock.
    pub delta: i64,
    /// A weighed item: the delta is in grams.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub by_weight: bool,
    pub reason: AdjustReason,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// UTC.
    pub created_at: Timestamp,
    /// In the store's time zone.
    pub business_date: Date,
    pub request_id: String,
    /// The role (or staff member) that made it.
    pub actor: String,
}

/// What an outbox entry delivers, loaded from the store by its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Sale(Box<Sale>),
    Adjustment(StockAdjustment),
}

impl Record {
    pub fn id(&self) -> Uuid {
        match self {
            Record::Sale(s) => s.id,
            Record::Adjustment(a) => a.id,
        }
    }
}

/// A system the edge delivers records to: a closed set, so the compiler finds every place
/// a new remote must be handled. Stored and configured by its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Remote {
    /// The company cloud (event log, pulls, push stream).
    Cloud,
    /// Lightspeed Retail (X-Series), the POS of record.
    Lightspeed,
    /// NetSuite, the ERP.
    Netsuite,
    /// Shopify (Admin GraphQL): the online shop's orders, refunds and stock.
    Shopify,
    /// The store bus (NATS JetStream): the other lanes of the store. Not a remote of the
    /// `[remotes]` table or of routing: a lane with `[bus] url` publishes every record.
    Bus,
}

impl Remote {
    /// The remotes of `[remotes]` and routing (the bus is the store's own).
    pub const ALL: [Remote; 4] = [Remote::Cloud, Remote::Lightspeed, Remote::Netsuite, Remote::Shopify];

    pub fn as_str(self) -> &'static str {
        match self {
            Remote::Cloud => "cloud",
            Remote::Lightspeed => "lightspeed",
            Remote::Netsuite => "netsuite",
            Remote::Shopify => "shopify",
            Remote::Bus => "bus",
        }
    }

    /// Whether it takes stock adjustments from the edge (Lightspeed does not: it keeps
    /// the stock itself).
    pub fn takes_adjustments(self) -> bool {
        match self {
            Remote::Cloud | Remote::Netsuite | Remote::Shopify | Remote::Bus => true,
            Remote::Lightspeed => false,
        }
    }

    /// The remote a name means, or `None` for a name that is not one.
    pub fn parse(name: &str) -> Option<Remote> {
        Remote::ALL.into_iter().chain([Remote::Bus]).find(|r| r.as_str() == name)
    }
}

impl std::fmt::Display for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Remote {
    type Err = String;
    fn from_str(s: &str) -> Result<Remote, String> {
        Remote::parse(s).ok_or_else(|| format!("{s:?} is not a remote (cloud, lightspeed, netsuite or shopify)"))
    }
}

/// One record to deliver to one remote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub id: Uuid,
    pub remote: Remote,
    pub kind: RecordKind,
    pub record_id: Uuid,
    #[serde(flatten)]
    pub state: OutboxState,
    pub attempts: u32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub request_id: String,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub id: Uuid,
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub request_id: String,
    #[serde(default)]
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(kind: ItemKind, price: i64, rate: u32) -> Item {
        Item {
            sku: "S1".into(),
            name: "Thing".into(),
            price_minor: price,
            currency: Currency::EUR,
            tax_rate_bp: rate,
            kind,
            barcodes: vec![],
            category: String::new(),
            age_restricted: false,
            image: None,
        }
    }

    fn date(s: &str) -> Date {
        s.parse().expect("date")
    }

    #[test]
    fn override_and_discount_reprice_the_line_and_split_tax_again() {
        let it = item(ItemKind::Unit, 1000, 1900);
        let d = date("2026-01-01");
        let l = price_line(1, &it, &LineRequest::Units(3), None, TaxMode::Inclusive, Currency::EUR, d).expect("line");
        let a = adjust_line(l.clone(), Some(800), 0, TaxMode::Inclusive).expect("override");
        assert_eq!((a.unit_price_minor, a.list_price_minor, a.gross_minor), (800, Some(1000), 2400));
        assert_eq!(a.net_minor + a.tax_minor, a.gross_minor);
        let b = adjust_line(l.clone(), None, 500, TaxMode::Inclusive).expect("discount");
        assert_eq!((b.unit_price_minor, b.list_price_minor, b.discount_minor, b.gross_minor), (1000, None, 500, 2500));
        assert_eq!(b.net_minor, 2101);
        let z = adjust_line(l.clone(), None, 3000, TaxMode::Inclusive).expect("to zero");
        assert_eq!(z.gross_minor, 0);
        assert_eq!(
            adjust_line(l.clone(), None, 3001, TaxMode::Inclusive),
            Err(AdjustError::DiscountTooLarge { discount: 3001, amount: 3000 })
        );
        assert_eq!(adjust_line(l.clone(), Some(-1), 0, TaxMode::Inclusive), Err(AdjustError::NegativePrice(-1)));
        assert_eq!(adjust_line(l, None, -5, TaxMode::Inclusive), Err(AdjustError::NegativeDiscount(-5)));
        // Weighed: the override is per kg.
        let w = item(ItemKind::Weight, 2000, 700);
        let l = price_line(1, &w, &LineRequest::Grams(250), None, TaxMode::Exclusive, Currency::EUR, d).expect("w");
        let a = adjust_line(l, Some(1000), 50, TaxMode::Exclusive).expect("weighed override");
        assert_eq!((a.net_minor, a.tax_minor, a.gross_minor), (200, 14, 214));
    }

    #[test]
    fn inclusive_tax_is_taken_out_of_the_shelf_price() {
        // 2 × 1.19 EUR at 19 % inclusive: gross 2.38, net 2.00, tax 0.38.
        let l = price_line(
            1,
            &item(ItemKind::Unit, 119, 1900),
            &LineRequest::Units(2),
            None,
            TaxMode::Inclusive,
            Currency::EUR,
            date("2026-01-01"),
        )
        .expect("line");
        assert_eq!((l.net_minor, l.tax_minor, l.gross_minor), (200, 38, 238));
    }

    #[test]
    fn exclusive_tax_is_added_and_rounded_half_away_per_line() {
        // 0.99 at 8.25 %: tax 8.1675 → 8.
        assert_eq!(split_tax(99, 825, TaxMode::Exclusive), Some((99, 8, 107)));
        // 2.00 at 7.25 %: 14.5 → 15 (half away from zero).
        assert_eq!(split_tax(200, 725, TaxMode::Exclusive), Some((200, 15, 215)));
        // refunds (negative amounts) round symmetrically
        assert_eq!(split_tax(-200, 725, TaxMode::Exclusive), Some((-200, -15, -215)));
        assert_eq!(split_tax(1000, 0, TaxMode::Inclusive), Some((1000, 0, 1000)));
    }

    #[test]
    fn weighed_items_are_priced_per_kilogram_by_the_gram() {
        // 350 g at 12.99 / kg = 4.5465 → 4.55
        let l = price_line(
            1,
            &item(ItemKind::Weight, 1299, 700),
            &LineRequest::Grams(350),
            None,
            TaxMode::Inclusive,
            Currency::EUR,
            date("2026-01-01"),
        )
        .expect("line");
        assert_eq!(l.gross_minor, 455);
        assert_eq!(l.quantity, Quantity::Grams(350));
        let e = price_line(
            1,
            &item(ItemKind::Weight, 1299, 700),
            &LineRequest::Units(1),
            None,
            TaxMode::Inclusive,
            Currency::EUR,
            date("2026-01-01"),
        );
        assert_eq!(e, Err(LineError::WeightRequired("S1".into())));
        let e = price_line(
            1,
            &item(ItemKind::Unit, 1299, 700),
            &LineRequest::Grams(5),
            None,
            TaxMode::Inclusive,
            Currency::EUR,
            date("2026-01-01"),
        );
        assert_eq!(e, Err(LineError::NotByWeight("S1".into())));
    }

    #[test]
    fn lot_items_need_a_lot_that_has_not_expired() {
        let it = item(ItemKind::Lot, 500, 700);
        let today = date("2026-03-10");
        let need = price_line(1, &it, &LineRequest::Units(1), None, TaxMode::Inclusive, Currency::EUR, today);
        assert_eq!(need, Err(LineError::LotRequired("S1".into())));
        let old = Lot { number: "L1".into(), expiry: date("2026-03-09") };
        assert!(matches!(
            price_line(1, &it, &LineRequest::Units(1), Some(old), TaxMode::Inclusive, Currency::EUR, today),
            Err(LineError::LotExpired { .. })
        ));
        let ok = Lot { number: "L2".into(), expiry: today };
        let l = price_line(1, &it, &LineRequest::Units(1), Some(ok.clone()), TaxMode::Inclusive, Currency::EUR, today)
            .expect("line");
        assert_eq!(l.lot, Some(ok));
    }

    #[test]
    fn quantities_are_bounded() {
        let it = item(ItemKind::Unit, 100, 0);
        let d = date("2026-01-01");
        assert_eq!(
            price_line(1, &it, &LineRequest::Units(0), None, TaxMode::Inclusive, Currency::EUR, d),
            Err(LineError::ZeroQuantity)
        );
        assert!(matches!(
            price_line(1, &it, &LineRequest::Units(10_000), None, TaxMode::Inclusive, Currency::EUR, d),
            Err(LineError::QuantityTooLarge(..))
        ));
        let huge = Item { price_minor: i64::MAX, ..it };
        assert_eq!(
            price_line(1, &huge, &LineRequest::Units(2), None, TaxMode::Inclusive, Currency::EUR, d),
            Err(LineError::Overflow)
        );
    }

    #[test]
    fn short_tender_is_refused_and_change_computed() {
        let l = price_line(
            1,
            &item(ItemKind::Unit, 250, 1900),
            &LineRequest::Units(2),
            None,
            TaxMode::Inclusive,
            Currency::EUR,
            date("2026-01-01"),
        )
        .expect("line");
        let lines = vec![l];
        assert!(matches!(
            settle(&lines, &[Tender::Cash { amount_minor: 499 }], Currency::EUR),
            Err(TenderError::Short { .. })
        ));
        assert_eq!(settle(&lines, &[Tender::Cash { amount_minor: 0 }], Currency::EUR), Err(TenderError::NotPositive));
        let (_, _, total, tendered, change) =
            settle(&lines, &[Tender::Cash { amount_minor: 1000 }], Currency::EUR).expect("ok");
        assert_eq!((total, tendered, change), (500, 1000, 500));
    }

    #[test]
    fn business_date_is_local_and_honours_the_day_start() {
        let tz = TimeZone::get("Europe/Berlin").expect("tz");
        // 23:30 UTC on 31 Dec = 00:30 on 1 Jan in Berlin.
        let at: Timestamp = "2025-12-31T23:30:00Z".parse().expect("ts");
        assert_eq!(business_date(at, &tz, Time::midnight()), date("2026-01-01"));
        // With a 04:00 day start, 00:30 still belongs to 31 Dec.
        assert_eq!(business_date(at, &tz, Time::constant(4, 0, 0, 0)), date("2025-12-31"));
        let ny = TimeZone::get("America/New_York").expect("tz");
        assert_eq!(business_date(at, &ny, Time::midnight()), date("2025-12-31"));
    }

    #[test]
    fn ids_are_v7_and_carry_their_time() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.get_version_num(), 7);
        assert!(a < b);
        assert!(id_time(&a).is_some());
    }
}
