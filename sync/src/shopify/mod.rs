//! Shopify (Admin GraphQL API): the connector and its fake.
//!
//! Facts: shared/reference/shopify.md. The API version is pinned: [`API_VERSION`], in
//! every request's path (`/admin/api/2026-04/graphql.json`), with the store's access token
//! in `X-Shopify-Access-Token` (read from a 0600 secret file).
//!
//! - `gql`: GraphQL for both sides (parsing, Shopify's calculated cost, projection onto a
//!   selection, reading `errors`, `userErrors` and `extensions.cost`).
//! - `throttle`: the cost bucket the fake enforces and the client's pacer (one per shop,
//!   shared by delivery and pulls).
//! - `connector`: sales as `orderCreate` (looked up by `sourceIdentifier` before any
//!   re-post: it takes no idempotency key), refunds as `refundCreate @idempotent`, stock
//!   adjustments as `inventoryAdjustQuantities @idempotent` with `changeFromQuantity`.
//! - `pull`: variants (SKU ↔ variant and inventory item, prices, barcodes, images) by
//!   cursor or, for a full read, by a bulk operation; inventory levels at the location.
//! - `fake`: the remote side, served by `edge-lab fakes` and run by the simulation.

pub mod connector;
pub mod fake;
pub mod gql;
pub mod pull;
pub mod throttle;

use crate::money::Currency;

/// The Admin API version every request names. 2026-04 is the first version in which
/// `@idempotent` is required on refund and inventory mutations and `changeFromQuantity` is
/// required on inventory mutations (shared/reference/shopify.md).
pub const API_VERSION: &str = "2026-04";

/// The GraphQL endpoint's path on the shop's host.
pub fn graphql_path() -> String {
    format!("/admin/api/{API_VERSION}/graphql.json")
}

/// Minor units as Shopify's decimal string (`199` EUR → `"1.99"`).
pub fn decimal(minor: i64, currency: Currency) -> String {
    let e = currency.exponent();
    let sign = if minor < 0 { "-" } else { "" };
    let a = minor.unsigned_abs();
    if e == 0 {
        return format!("{sign}{a}");
    }
    let p = 10u64.pow(e);
    format!("{sign}{}.{:0width$}", a / p, a % p, width = e as usize)
}

/// A decimal string in minor units, refusing more decimals than the currency has.
pub fn parse_decimal(s: &str, currency: Currency) -> Option<i64> {
    let e = currency.exponent() as usize;
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
    let frac = frac.trim_end_matches('0');
    if whole.is_empty() || frac.len() > e || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let w: i64 = whole.parse().ok()?;
    let f: i64 = if frac.is_empty() { 0 } else { format!("{frac:0<e$}").parse().ok()? };
    let v = w.checked_mul(10i64.pow(e as u32))?.checked_add(f)?;
    Some(if neg { -v } else { v })
}

/// The remote id edged keeps for a record Shopify confirmed: its global id and, after
/// `@`, the time (ms, UTC) the confirmation reached us. Shopify numbers orders, refunds and
/// adjustment groups in separate sequences, so the stock rebase orders confirmations by
/// that time instead: a record confirmed before a level was read is in that level.
pub fn remote_id(gid: &str, confirmed_ms: i64) -> String {
    format!("{gid}@{confirmed_ms}")
}

/// The global id of a remote id.
pub fn gid_of(remote_id: &str) -> &str {
    remote_id.split_once('@').map_or(remote_id, |x| x.0)
}

/// The stock rebase's number of a remote id: its confirmation time.
pub fn confirmation_number(remote_id: &str) -> Option<u64> {
    remote_id.rsplit_once('@')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_round_trip_by_currency() {
        let eur = Currency::parse("EUR").expect("EUR");
        let jpy = Currency::parse("JPY").expect("JPY");
        assert_eq!(decimal(199, eur), "1.99");
        assert_eq!(decimal(-5, eur), "-0.05");
        assert_eq!(decimal(500, jpy), "500");
        assert_eq!(parse_decimal("1.99", eur), Some(199));
        assert_eq!(parse_decimal("2.5", eur), Some(250));
        assert_eq!(parse_decimal("1.999", eur), None);
        assert_eq!(parse_decimal("1.5", jpy), None);
        assert_eq!(confirmation_number(&remote_id("gid://shopify/Order/7", 42)), Some(42));
        assert_eq!(gid_of("gid://shopify/Order/7@42"), "gid://shopify/Order/7");
    }
}
