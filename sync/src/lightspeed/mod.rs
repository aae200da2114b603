//! Lightspeed Retail (R-Series API V3): the connector and its fake.
//!
//! - `bucket`: the leaky bucket, both its server side (what the fake enforces) and the
//!   client's pacing from the response headers, under the current (2026-03) and the legacy
//!   cost rules (shared/reference/lightspeed-netsuite.md §A3).
//! - `json`: its JSON as it comes (string-typed scalars, object-or-array relations,
//!   `@attributes.next` cursors, the error body).
//! - `oauth`: rotating OAuth 2 tokens with one refresher under a lock.
//! - `connector`: sales and refunds as completed Sales, exactly once (look-up by
//!   `referenceNumber` before any re-post).
//! - `pull`: Item pages and ItemShop stock by cursor.
//! - `fake`: the remote side, served by `edge-lab fakes` and run by the simulation.

pub mod bucket;
pub mod connector;
pub mod fake;
pub mod json;
pub mod live;
pub mod oauth;
