//! Lightspeed Retail (R-Series API V3): the connector's building blocks. So far: the leaky
//! bucket, both its server side (what the fake enforces) and the client's pacing from the
//! response headers, under the current (2026-03) and the legacy cost rules
//! (shared/reference/lightspeed-netsuite.md §A3); and its JSON as it comes (string-typed
//! scalars, object-or-array relations, `@attributes.next` cursors, the error body); and its
//! rotating OAuth 2 tokens with one refresher under a lock.
//!
//! Still to come with issue 6: `POST Sale`, refunds,
//! Item / ItemShop cursors, the string-typed JSON, and the fake.

pub mod bucket;
pub mod json;
pub mod oauth;
