//! NetSuite (SuiteTalk REST): the connector's building blocks. So far: Token-Based
//! Authentication (OAuth 1.0a with HMAC-SHA256), signer and verifier in one place so the
//! connector and the fake agree by construction, and both are pinned to Oracle's published
//! known-answer vectors (shared/reference/lightspeed-netsuite.md §B2); and the error
//! envelope (`o:errorDetails`) turned into reasons that name the field.
//!
//! Still to come with issue 6: OAuth 2.0 client credentials, the record API (`cashSale`,
//! `cashRefund` by `PUT …/eid:{id}`), SuiteQL paging, `o:errorDetails`, and the fake.

pub mod errors;
pub mod tba;
