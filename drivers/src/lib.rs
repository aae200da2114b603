//! edge-drivers: the store's peripherals. Only this crate touches device I/O.
//!
//! - [`model`]: the UnifiedPOS device model (lifecycle, states, health levels, events,
//!   statistics);
//! - [`uri`]: one URI form for every device (`serial://`, `tcp://`, `usb://`);
//! - [`transport`]: byte links over serial (any line settings), TCP and USB;
//! - [`usb`]: the USB bus listing and links over bulk / interrupt endpoints (rusb);
//! - [`escpos`]: receipt printer and cash drawer, host side and simulated peer;
//! - [`toledo`]: Toledo 8217 scales, host side and simulated peer;
//! - [`scanner`]: serial and HID POS scanners, AIM ids, GS1 element strings, check digits;
//! - [`display`]: 2 x 20 pole displays (CD5220 and ESC/POS), host side and simulated peer;
//! - [`discover`]: candidates and probes for `edgectl devices scan`;
//! - [`zvt`]: ZVT payment terminals: APDUs, TCP and serial framing, host side, simulator;
//! - [`sim`]: simulators served in-process for `edged demo`.

pub mod adyen;
pub mod discover;
pub mod display;
pub mod escpos;
pub mod model;
pub mod payment;
pub mod scanner;
pub mod sim;
pub mod toledo;
pub mod transport;
pub mod uri;
pub mod usb;
pub mod zvt;
