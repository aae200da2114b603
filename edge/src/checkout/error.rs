//! Why the checkout refused: a kind (what the caller may do about it), a stable slug, a
//! title, the detail in words and the field at fault. No HTTP here: the API maps each
//! kind to its status (http.rs), the CLI and the screens show the words.

use edge_sync::store::StoreError;

/// Why a sale, refund or payment was refused, in the domain's terms; the API maps each kind
/// to its status (http.rs), nothing here knows HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The request itself is wrong: an unknown SKU, a short tender, a bad quantity.
    Invalid,
    /// What it names does not exist (a sale to refund, a payment).
    NotFound,
    /// It needs a manager's approval it does not carry.
    NeedsApproval,
    /// The card was declined or may not be taken now (offline policy).
    Declined,
    /// It collides with the state of a payment or a sale (in progress, in doubt, reversed).
    Conflict,
    /// Something it needs (the store, the terminal) is not there now; nothing was done.
    Unavailable,
    /// The terminal's answer is unknown for now; it is settled with the terminal.
    InDoubt,
    /// The data disk is nearly full: nothing new is taken until space is freed.
    StorageLow,
}

/// A refusal: its kind, problem slug, title, detail and the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: RefusalKind,
    pub slug: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub field: Option<String>,
}

impl Refusal {
    pub fn unprocessable(slug: &'static str, title: &'static str, field: String, detail: impl Into<String>) -> Refusal {
        Refusal { kind: RefusalKind::Invalid, slug, title, detail: detail.into(), field: Some(field) }
    }

    /// Something the sale needs (the store, the terminal) is not there now.
    pub fn unavailable(detail: impl Into<String>) -> Refusal {
        Refusal {
            kind: RefusalKind::Unavailable,
            slug: "unavailable",
            title: "Not available now",
            detail: detail.into(),
            field: None,
        }
    }

    /// The card was declined or may not be taken (offline policy).
    pub fn payment(slug: &'static str, title: &'static str, detail: impl Into<String>) -> Refusal {
        Refusal { kind: RefusalKind::Declined, slug, title, detail: detail.into(), field: None }
    }

    /// The request collides with the state of a payment or sale.
    pub fn conflict(slug: &'static str, title: &'static str, detail: impl Into<String>) -> Refusal {
        Refusal { kind: RefusalKind::Conflict, slug, title, detail: detail.into(), field: None }
    }

    /// The terminal's answer is unknown for now.
    pub fn gateway(slug: &'static str, title: &'static str, detail: impl Into<String>) -> Refusal {
        Refusal { kind: RefusalKind::InDoubt, slug, title, detail: detail.into(), field: None }
    }

    /// What it names does not exist.
    pub fn not_found(slug: &'static str, title: &'static str, field: &str, detail: impl Into<String>) -> Refusal {
        Refusal { kind: RefusalKind::NotFound, slug, title, detail: detail.into(), field: Some(field.into()) }
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Refusal {
        Refusal {
            kind: RefusalKind::Unavailable,
            slug: "store-unavailable",
            title: "Store unavailable",
            detail: e.to_string(),
            field: None,
        }
    }
}
