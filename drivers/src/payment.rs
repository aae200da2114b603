//! What every payment terminal family gives the checkout, whatever its protocol: the
//! events while a command runs ([`Event`]), how a command ended ([`Outcome`], with the
//! card data in a [`StatusInfo`]), and a command that did not end cleanly ([`Failure`],
//! which says whether the terminal may have acted). ZVT ([`crate::zvt::host`]) and
//! Adyen's Terminal API ([`crate::adyen::host`]) both answer in these types; the
//! checkout's payment state machine knows only them and a [`Family`].

pub use crate::zvt::StatusInfo;
use crate::zvt::ZvtError;

/// The protocol family of a terminal: how an in-doubt payment is settled differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// ZVT: the terminal's last transaction (repeat receipt) against a baseline read
    /// before the payment.
    Zvt,
    /// nexo / Adyen: a TransactionStatus naming the payment's own ServiceID.
    Adyen,
}

/// Why a terminal command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TerminalError {
    #[error("terminal link: {0}")]
    Link(String),
    #[error("terminal: no answer within {0} ms")]
    Timeout(u64),
    #[error(transparent)]
    Zvt(#[from] ZvtError),
    #[error(transparent)]
    Adyen(#[from] crate::adyen::AdyenError),
}

impl TerminalError {
    /// The link to the terminal broke (the device is reconnected).
    pub fn is_link(&self) -> bool {
        matches!(self, TerminalError::Link(_) | TerminalError::Zvt(ZvtError::Link(_)))
            || matches!(self, TerminalError::Adyen(e) if e.is_link())
    }
}

/// What the terminal says during a command.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant, reason = "a few events per payment, each passed on at once")]
pub enum Event {
    /// An intermediate status, in words (for the screens: "Insert card", "Enter PIN" …).
    Prompt { code: u8, text: String },
    /// Status information (result, amount, trace and receipt numbers, masked PAN …).
    Status(StatusInfo),
    /// A line of the terminal's receipt.
    PrintLine(String),
}

/// How a command ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Completed with result 0 (for a payment: approved).
    pub approved: bool,
    /// The result / error code (0 = success).
    pub code: u8,
    /// The code in words.
    pub text: String,
    /// The last status information, if any came.
    pub info: Option<StatusInfo>,
    /// The terminal's receipt lines.
    pub receipt: Vec<String>,
    /// For a status lookup by reference (Adyen TransactionStatus): what it found.
    pub lookup: Lookup,
}

/// What a lookup of one payment by its reference found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Lookup {
    /// Not a lookup.
    #[default]
    NotAsked,
    /// The payment's own answer (approved or not) is in the outcome.
    Found,
    /// The terminal never took a payment by that reference.
    NotFound,
    /// Still running at the terminal.
    InProgress,
}

/// A command that did not end cleanly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}{}", if *.in_doubt { " (the terminal may have acted: ask it before trying again)" } else { "" })]
pub struct Failure {
    pub error: TerminalError,
    /// True once the terminal accepted the command: its outcome is unknown here.
    pub in_doubt: bool,
    /// What was heard before the failure.
    pub partial: Box<Outcome>,
}
