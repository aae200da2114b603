//! The device model, in the UnifiedPOS vocabulary (UPOS 1.15, JavaPOS `BaseControl`).
//!
//! Every driver keeps a [`Lifecycle`]: `open` → `claim` → `enable` to use the device,
//! `disable` → `release` → `close` to let it go, with the UPOS states Closed, Idle, Busy
//! and Error. A call out of order fails with the UPOS error it would raise (E_CLOSED,
//! E_NOTCLAIMED, E_DISABLED …), never a panic. Drivers report [`DeviceEvent`]s (data,
//! error with its locus and whether a retry makes sense, status update, output complete)
//! and keep [`Statistics`] under the standard names.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

/// UPOS `State`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Idle,
    Busy,
    Error,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Idle => "idle",
            State::Busy => "busy",
            State::Error => "error",
        }
    }
}

/// UPOS `checkHealth` levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthLevel {
    /// Tests without changing the device.
    Internal,
    /// A more thorough test that may change the device (a printer prints a test page).
    External,
    /// A test with the operator (the driver says what to do and what to look for).
    Interactive,
}

/// UPOS error codes a driver raises.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    #[error("E_CLOSED: the device is not open")]
    Closed,
    #[error("E_CLAIMED: the device is claimed by {0}")]
    Claimed(String),
    #[error("E_NOTCLAIMED: claim the device first")]
    NotClaimed,
    #[error("E_DISABLED: enable the device first")]
    Disabled,
    #[error("E_ILLEGAL: {0}")]
    Illegal(String),
    #[error("E_NOHARDWARE: {0}")]
    NoHardware(String),
    #[error("E_OFFLINE: {0}")]
    Offline(String),
    #[error("E_TIMEOUT: {0}")]
    Timeout(String),
    #[error("E_BUSY: {0}")]
    Busy(String),
    #[error("E_FAILURE: {0}")]
    Failure(String),
    /// A device-specific condition (UPOS E_EXTENDED), e.g. paper empty.
    #[error("E_EXTENDED: {0}")]
    Extended(String),
}

/// Where an error happened (UPOS `ErrorLocus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorLocus {
    Output,
    Input,
    InputData,
}

/// What the application may do about an error (UPOS `ErrorResponse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorResponse {
    Retry,
    Clear,
    ContinueInput,
}

/// What a driver tells the daemon.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceEvent {
    /// Input (a scanned code, a weight).
    Data { device: String, data: String },
    /// An error, where it happened and whether a retry makes sense.
    Error { device: String, error: DeviceError, locus: ErrorLocus, retry: bool },
    /// A status change (paper low, cover open, drawer open, offline …), in words.
    StatusUpdate { device: String, status: String },
    /// An asynchronous output finished (a print job).
    OutputComplete { device: String, output_id: String },
}

/// UPOS statistics under their standard names (`HoursPoweredCount`,
/// `CommunicationErrorCount`, `ModelName`, `FirmwareRevision`, `SerialNumber` …).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Statistics {
    pub values: BTreeMap<String, String>,
    pub communication_errors: u64,
    opened_at: Option<Instant>,
    powered_before: Duration,
}

impl Statistics {
    pub fn set(&mut self, name: &str, value: impl fmt::Display) {
        self.values.insert(name.to_string(), value.to_string());
    }

    pub fn communication_error(&mut self) {
        self.communication_errors += 1;
    }

    /// Time the device has been open, in hours (UPOS `HoursPoweredCount`).
    pub fn hours_powered(&self) -> f64 {
        let now = self.opened_at.map(|t| t.elapsed()).unwrap_or_default();
        (self.powered_before + now).as_secs_f64() / 3600.0
    }

    /// All statistics as name → value.
    pub fn report(&self) -> BTreeMap<String, String> {
        let mut m = self.values.clone();
        m.insert("CommunicationErrorCount".into(), self.communication_errors.to_string());
        m.insert("HoursPoweredCount".into(), format!("{:.3}", self.hours_powered()));
        m
    }
}

/// The UPOS lifecycle of one device.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    pub name: String,
    state: State,
    claimed_by: Option<String>,
    enabled: bool,
    pub stats: Statistics,
}

impl Lifecycle {
    pub fn new(name: impl Into<String>) -> Lifecycle {
        Lifecycle {
            name: name.into(),
            state: State::Closed,
            claimed_by: None,
            enabled: false,
            stats: Statistics::default(),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn claimed(&self) -> bool {
        self.claimed_by.is_some()
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn open(&mut self) -> Result<(), DeviceError> {
        if self.state != State::Closed {
            return Err(DeviceError::Illegal(format!("{} is already open", self.name)));
        }
        self.state = State::Idle;
        self.stats.opened_at = Some(Instant::now());
        Ok(())
    }

    pub fn claim(&mut self, by: &str) -> Result<(), DeviceError> {
        self.need_open()?;
        match &self.claimed_by {
            Some(o) if o != by => Err(DeviceError::Claimed(o.clone())),
            _ => {
                self.claimed_by = Some(by.to_string());
                Ok(())
            }
        }
    }

    pub fn enable(&mut self) -> Result<(), DeviceError> {
        self.need_open()?;
        if self.claimed_by.is_none() {
            return Err(DeviceError::NotClaimed);
        }
        self.enabled = true;
        Ok(())
    }

    pub fn disable(&mut self) -> Result<(), DeviceError> {
        self.need_open()?;
        self.enabled = false;
        Ok(())
    }

    pub fn release(&mut self) -> Result<(), DeviceError> {
        self.need_open()?;
        if self.claimed_by.is_none() {
            return Err(DeviceError::NotClaimed);
        }
        self.enabled = false;
        self.claimed_by = None;
        Ok(())
    }

    pub fn close(&mut self) -> Result<(), DeviceError> {
        self.need_open()?;
        self.enabled = false;
        self.claimed_by = None;
        self.state = State::Closed;
        if let Some(t) = self.stats.opened_at.take() {
            self.stats.powered_before += t.elapsed();
        }
        Ok(())
    }

    /// The device is ready for I/O: open, claimed and enabled.
    pub fn ready(&self) -> Result<(), DeviceError> {
        self.need_open()?;
        if self.claimed_by.is_none() {
            return Err(DeviceError::NotClaimed);
        }
        if !self.enabled {
            return Err(DeviceError::Disabled);
        }
        Ok(())
    }

    pub fn set_busy(&mut self, busy: bool) {
        if self.state != State::Closed {
            self.state = if busy { State::Busy } else { State::Idle };
        }
    }

    pub fn set_error(&mut self) {
        if self.state != State::Closed {
            self.state = State::Error;
        }
    }

    fn need_open(&self) -> Result<(), DeviceError> {
        if self.state == State::Closed { Err(DeviceError::Closed) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_out_of_order_raise_the_upos_error() {
        let mut l = Lifecycle::new("printer");
        assert_eq!(l.claim("edged"), Err(DeviceError::Closed));
        l.open().expect("open");
        assert_eq!(l.enable(), Err(DeviceError::NotClaimed));
        assert_eq!(l.ready(), Err(DeviceError::NotClaimed));
        l.claim("edged").expect("claim");
        assert_eq!(l.claim("other"), Err(DeviceError::Claimed("edged".into())));
        assert_eq!(l.ready(), Err(DeviceError::Disabled));
        l.enable().expect("enable");
        l.ready().expect("ready");
        l.set_busy(true);
        assert_eq!(l.state(), State::Busy);
        l.release().expect("release");
        assert!(!l.enabled());
        l.close().expect("close");
        assert_eq!(l.state(), State::Closed);
        assert!(l.stats.report().contains_key("HoursPoweredCount"));
    }
}
