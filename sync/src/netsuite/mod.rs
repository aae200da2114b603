//! NetSuite (SuiteTalk REST): the connector and its fake.
//!
//! - `tba`: Token-Based Authentication (OAuth 1.0a with HMAC-SHA256), signer and verifier
//!   in one place so the connector and the fake agree by construction, both pinned to
//!   Oracle's published known-answer vectors (shared/reference/lightspeed-netsuite.md §B2).
//! - `m2m`: OAuth 2.0 client credentials with an ES256 JWT assertion (§B3).
//! - `errors`: the error envelope (`o:errorDetails`) turned into reasons naming the field.
//! - `connector`: `cashSale` / `cashRefund` upserted by `PUT …/eid:{sale id}`.
//! - `fake`: the remote side, served by `edge-lab fakes` and run by the simulation.

pub mod connector;
pub mod errors;
pub mod fake;
pub mod live;
pub mod m2m;
pub mod tba;
