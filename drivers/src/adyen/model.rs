//! The nexo message model of the Terminal API, apart from any encoding: what a POS asks a
//! terminal and what it answers. [`super::json`] writes and reads it as Adyen's JSON
//! dialect; a nexo Retailer XML dialect (Swedbank Pay's PAX terminals) would be a second
//! encoder over these same types.
//!
//! Amounts are integer minor units here; the dialect turns them into the decimal major
//! units nexo sends, by the currency's exponent ([`exponent`]).

/// `MessageHeader.MessageCategory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    Payment,
    TransactionStatus,
    Abort,
    Reversal,
    Diagnosis,
    Login,
    Reconciliation,
}

impl Category {
    pub const ALL: [Category; 7] = [
        Category::Payment,
        Category::TransactionStatus,
        Category::Abort,
        Category::Reversal,
        Category::Diagnosis,
        Category::Login,
        Category::Reconciliation,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Category::Payment => "Payment",
            Category::TransactionStatus => "TransactionStatus",
            Category::Abort => "Abort",
            Category::Reversal => "Reversal",
            Category::Diagnosis => "Diagnosis",
            Category::Login => "Login",
            Category::Reconciliation => "Reconciliation",
        }
    }
    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.name() == s)
    }
}

/// The header every message carries (ProtocolVersion 3.0, MessageClass Service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub category: Category,
    /// Request or Response.
    pub request: bool,
    /// At most 10 characters, unique per POS within a period ([`super::ServiceIds`]).
    pub service_id: String,
    /// The POS.
    pub sale_id: String,
    /// The terminal, e.g. `P400Plus-275039202`.
    pub poi_id: String,
}

/// Which earlier message a TransactionStatus or Abort is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRef {
    pub category: Category,
    pub service_id: String,
    pub sale_id: String,
}

/// The terminal's id of a transaction (`POITransactionID`): what a reversal or a
/// referenced refund names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoiTransaction {
    pub transaction_id: String,
    pub timestamp: String,
}

impl PoiTransaction {
    /// One string for storage: `TransactionID` and `TimeStamp`, space-separated (neither
    /// holds a space).
    pub fn to_ref(&self) -> String {
        format!("{} {}", self.transaction_id, self.timestamp)
    }
    pub fn from_ref(s: &str) -> Option<PoiTransaction> {
        let (id, ts) = s.split_once(' ')?;
        (!id.is_empty() && !ts.is_empty())
            .then(|| PoiTransaction { transaction_id: id.to_string(), timestamp: ts.to_string() })
    }
}

/// What a POS asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A payment, or an unreferenced refund (`PaymentType` Refund).
    Payment {
        transaction_id: String,
        timestamp: String,
        currency: String,
        amount_minor: i64,
        refund: bool,
    },
    TransactionStatus {
        reference: MessageRef,
    },
    Abort {
        reference: MessageRef,
        reason: String,
    },
    /// A reversal (no amount: the whole payment) or a referenced refund (an amount).
    Reversal {
        original: PoiTransaction,
        reason: String,
        amount_minor: Option<i64>,
        currency: String,
    },
    Diagnosis {
        host: bool,
    },
    Login {
        date_time: String,
        manufacturer: String,
        application: String,
        version: String,
        language: String,
    },
    /// The end of the day: the terminal forwards what it stored offline and closes its
    /// totals.
    Reconciliation,
}

impl Request {
    pub fn category(&self) -> Category {
        match self {
            Request::Payment { .. } => Category::Payment,
            Request::TransactionStatus { .. } => Category::TransactionStatus,
            Request::Abort { .. } => Category::Abort,
            Request::Reversal { .. } => Category::Reversal,
            Request::Diagnosis { .. } => Category::Diagnosis,
            Request::Login { .. } => Category::Login,
            Request::Reconciliation => Category::Reconciliation,
        }
    }
}

/// `Response`: Success / Failure, the error condition, AdditionalResponse (form-encoded,
/// decoded here into pairs) and a text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// `Success` (or `Partial`: see [`Outcome::partial`]).
    pub success: bool,
    /// `Partial`: the terminal took part of the amount asked (a partial approval).
    pub partial: bool,
    /// `Aborted`, `Busy`, `Cancel`, `InProgress`, `NotFound`, `Refusal`, `MessageFormat`,
    /// `UnavailableService`, … (nexo's ErrorCondition).
    pub error_condition: Option<String>,
    pub additional: Vec<(String, String)>,
}

impl Outcome {
    pub fn ok() -> Outcome {
        Outcome { success: true, ..Outcome::default() }
    }
    pub fn failure(condition: &str, additional: &[(&str, &str)]) -> Outcome {
        Outcome {
            success: false,
            partial: false,
            error_condition: Some(condition.to_string()),
            additional: additional.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }
    /// An AdditionalResponse value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.additional.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// A receipt the terminal made (`PaymentReceipt`): for the cashier or the customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// `CashierReceipt` or `CustomerReceipt`.
    pub qualifier: String,
    /// Each line as printed: `name: value`, or the name alone.
    pub lines: Vec<String>,
}

/// The answer to a payment or a reversal / refund.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaymentResult {
    pub outcome: Outcome,
    /// Our `SaleTransactionID.TransactionID`, echoed.
    pub sale_transaction_id: Option<String>,
    pub poi_transaction: Option<PoiTransaction>,
    /// What was authorised (or reversed), minor units.
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    /// `541333 **** 0010` (never more than first six and last four).
    pub masked_pan: Option<String>,
    pub brand: Option<String>,
    pub approval_code: Option<String>,
    pub receipts: Vec<Receipt>,
}

/// What a terminal answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Payment(PaymentResult),
    /// Success with the original answer repeated, or Failure with `InProgress` /
    /// `NotFound` (nothing of that ServiceID).
    TransactionStatus {
        outcome: Outcome,
        reference: Option<MessageRef>,
        repeated: Option<Box<PaymentResult>>,
    },
    Reversal(PaymentResult),
    /// GlobalStatus (`OK`, `Busy`, `Maintenance`, `Unreachable`) and whether the
    /// acquirer host is reachable.
    Diagnosis {
        outcome: Outcome,
        global_status: String,
        host_reachable: Option<bool>,
    },
    Login {
        outcome: Outcome,
        poi_serial: Option<String>,
    },
    Reconciliation {
        outcome: Outcome,
        transactions: u32,
        forwarded: u32,
    },
}

impl Response {
    pub fn category(&self) -> Category {
        match self {
            Response::Payment(_) => Category::Payment,
            Response::TransactionStatus { .. } => Category::TransactionStatus,
            Response::Reversal(_) => Category::Reversal,
            Response::Diagnosis { .. } => Category::Diagnosis,
            Response::Login { .. } => Category::Login,
            Response::Reconciliation { .. } => Category::Reconciliation,
        }
    }
    pub fn outcome(&self) -> &Outcome {
        match self {
            Response::Payment(p) | Response::Reversal(p) => &p.outcome,
            Response::TransactionStatus { outcome, .. }
            | Response::Diagnosis { outcome, .. }
            | Response::Login { outcome, .. }
            | Response::Reconciliation { outcome, .. } => outcome,
        }
    }
}

/// ISO 4217 minor-unit exponent of a currency (2 unless listed).
pub fn exponent(currency: &str) -> u32 {
    match currency {
        "JPY" | "KRW" | "ISK" | "CLP" | "VND" | "XAF" | "XOF" | "UGX" | "PYG" => 0,
        "BHD" | "KWD" | "OMR" | "JOD" | "TND" | "LYD" | "IQD" => 3,
        _ => 2,
    }
}
