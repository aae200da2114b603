//! One controller per feature, each wired to its adapter global's callbacks.

pub mod events;
pub mod pay;
pub mod reports;
pub mod selfserve;
pub mod sell;
pub mod session;
pub mod status;

use crate::api::ApiError;
use crate::{AppWindow, say};
use slint::ComponentHandle;

/// Shows why a call failed: the daemon's words, or that it does not answer.
pub fn show_error(ui: &AppWindow, e: &ApiError) {
    match e {
        ApiError::Unreachable(_) => say(ui, "unreachable", "", true),
        ApiError::Refused { code, detail, .. } => {
            // The screen says a refusal it knows in its own language (Session.refusal);
            // one it does not know, in the daemon's words.
            ui.global::<crate::Session>().set_refusal(code.as_str().into());
            say(ui, "refused", detail, true)
        }
    }
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
