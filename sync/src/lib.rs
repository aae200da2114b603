//! edge-sync: the domain records of the store edge daemon, the durable store with its
//! outbox, and (with later issues) the sync engine and its connectors. Only this crate talks
//! to remote services and only its `store` module opens sled.

pub mod demo;
pub mod domain;
pub mod money;
pub mod store;

pub use money::{Currency, Money};
