//! edge-sync: the domain records of the store edge daemon, the durable store with its
//! outbox, the sync engine and its connectors (each with its fake). Only this crate talks
//! to remote services and only its `store` module opens sled.

pub mod bus;
pub mod cloud;
pub mod demo;
pub mod domain;
pub mod engine;
pub mod lightspeed;
pub mod mapping;
pub mod money;
pub mod netsuite;
pub mod report;
pub mod shopify;
pub mod stock;
pub mod store;
pub mod tls;
pub mod wire;

pub use money::{Currency, Money};
