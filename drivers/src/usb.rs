//! USB devices through rusb (libusb, compiled in with the `vendored` feature so every build
//! links the same libusb): the bus listing for `edgectl devices scan`, and a [`Link`] over a
//! claimed interface — bulk OUT / IN endpoints for printers (USB printer class 7 or a vendor
//! interface with bulk endpoints), the interrupt IN endpoint for HID POS scanners.
//!
//! libusb cannot start where there is no `/dev/bus/usb` (containers, our CI): `rusb::devices()`
//! panics there, so this module only ever goes through `rusb::Context::new()` and turns its
//! error into [`UsbError::NoUsb`] ("no USB" in the device list).
//!
//! The framing of what travels over USB is kept apart from this transport: a HID POS report
//! is decoded by [`crate::scanner::HidScanner`] from whatever [`Link`] carries it, and ESC/POS
//! bytes are the same on bulk endpoints as on serial or TCP, so both are tested over a pty
//! and loopback TCP. What only real hardware (or umockdev) shows is the enumeration and
//! claiming done here.

use crate::transport::{Link, LinkError};
use rusb::{Direction, TransferType, UsbContext};
use std::collections::VecDeque;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsbError {
    #[error("no USB: {0}")]
    NoUsb(String),
    #[error("no USB device {0} is attached")]
    NotFound(String),
    #[error("USB device {what}: {why}")]
    Device { what: String, why: String },
}

/// USB interface classes that matter to a store.
pub const CLASS_HID: u8 = 0x03;
pub const CLASS_PRINTER: u8 = 0x07;
pub const CLASS_CDC_DATA: u8 = 0x0a;
pub const CLASS_VENDOR: u8 = 0xff;

/// One endpoint of an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub address: u8,
    pub input: bool,
    pub transfer: &'static str,
    pub max_packet: u16,
}

/// One interface (first alternate setting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub number: u8,
    pub class: u8,
    pub subclass: u8,
    pub protocol: u8,
    pub endpoints: Vec<Endpoint>,
}

/// A device on the bus, as much as can be read without claiming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbDevice {
    pub bus: u8,
    pub address: u8,
    pub vendor: u16,
    pub product: u16,
    pub class: u8,
    pub manufacturer: Option<String>,
    pub product_name: Option<String>,
    pub serial: Option<String>,
    pub interfaces: Vec<Interface>,
    /// Why the strings could not be read (permissions, busy), if they could not.
    pub unreadable: Option<String>,
}

impl UsbDevice {
    /// The URI that names this device (with its serial number when it has one).
    pub fn uri(&self) -> String {
        match &self.serial {
            Some(s) if !s.is_empty() && !s.contains(['/', '?', ' ']) => {
                format!("usb://{:04x}:{:04x}/{s}", self.vendor, self.product)
            }
            _ => format!("usb://{:04x}:{:04x}", self.vendor, self.product),
        }
    }

    /// What kind of store device this looks like, from its interfaces: `printer` (printer
    /// class, or a vendor interface with a bulk OUT endpoint from a known POS printer
    /// maker), `scanner` (HID from a known scanner maker: HID POS or keyboard wedge),
    /// `serial` (a CDC / USB-serial bridge: probe it as a serial device), or None.
    pub fn role(&self) -> Option<&'static str> {
        let has = |class: u8| self.interfaces.iter().any(|i| i.class == class);
        if has(CLASS_PRINTER) {
            return Some("printer");
        }
        let maker = known_vendor(self.vendor);
        if has(CLASS_HID) && matches!(maker, Some((_, "scanner"))) {
            return Some("scanner");
        }
        if has(CLASS_VENDOR)
            && matches!(maker, Some((_, "printer")))
            && self.interfaces.iter().any(|i| i.endpoints.iter().any(|e| !e.input && e.transfer == "bulk"))
        {
            return Some("printer");
        }
        if has(CLASS_CDC_DATA) || matches!(maker, Some((_, "serial"))) {
            return Some("serial");
        }
        None
    }
}

/// Vendor ids of makers a store meets, with the kind of device they make for it.
pub fn known_vendor(vendor: u16) -> Option<(&'static str, &'static str)> {
    Some(match vendor {
        0x04b8 => ("Seiko Epson", "printer"),
        0x0519 => ("Star Micronics", "printer"),
        0x0dd4 => ("Custom Engineering", "printer"),
        0x1504 => ("Bixolon", "printer"),
        0x0fe6 => ("ICS Advent (generic POS printer)", "printer"),
        0x05e0 => ("Symbol / Zebra", "scanner"),
        0x0c2e => ("Honeywell (Metrologic)", "scanner"),
        0x05f9 => ("Datalogic", "scanner"),
        0x1eab => ("Newland", "scanner"),
        0x0403 => ("FTDI (USB-serial)", "serial"),
        0x067b => ("Prolific (USB-serial)", "serial"),
        0x10c4 => ("Silicon Labs (USB-serial)", "serial"),
        0x1a86 => ("QinHeng CH340 (USB-serial)", "serial"),
        _ => return None,
    })
}

fn context() -> Result<rusb::Context, UsbError> {
    rusb::Context::new().map_err(|e| UsbError::NoUsb(format!("libusb cannot start ({e})")))
}

fn transfer_name(t: TransferType) -> &'static str {
    match t {
        TransferType::Bulk => "bulk",
        TransferType::Interrupt => "interrupt",
        TransferType::Isochronous => "isochronous",
        TransferType::Control => "control",
    }
}

/// Lists the devices on the bus. Strings are read where the device can be opened; a device
/// that cannot be opened is still listed, with the reason.
pub fn list() -> Result<Vec<UsbDevice>, UsbError> {
    let ctx = context()?;
    let devices = ctx.devices().map_err(|e| UsbError::NoUsb(format!("cannot list devices ({e})")))?;
    let mut out = Vec::new();
    for d in devices.iter() {
        let Ok(desc) = d.device_descriptor() else { continue };
        let mut interfaces = Vec::new();
        if let Ok(cfg) = d.active_config_descriptor().or_else(|_| d.config_descriptor(0)) {
            for i in cfg.interfaces() {
                if let Some(alt) = i.descriptors().next() {
                    interfaces.push(Interface {
                        number: alt.interface_number(),
                        class: alt.class_code(),
                        subclass: alt.sub_class_code(),
                        protocol: alt.protocol_code(),
                        endpoints: alt
                            .endpoint_descriptors()
                            .map(|e| Endpoint {
                                address: e.address(),
                                input: e.direction() == Direction::In,
                                transfer: transfer_name(e.transfer_type()),
                                max_packet: e.max_packet_size(),
                            })
                            .collect(),
                    });
                }
            }
        }
        let mut dev = UsbDevice {
            bus: d.bus_number(),
            address: d.address(),
            vendor: desc.vendor_id(),
            product: desc.product_id(),
            class: desc.class_code(),
            manufacturer: None,
            product_name: None,
            serial: None,
            interfaces,
            unreadable: None,
        };
        // Linux keeps the strings in sysfs, readable without opening (or owning) the device.
        if let Some([m, p, s]) = sysfs_strings(&d) {
            (dev.manufacturer, dev.product_name, dev.serial) = (m, p, s);
        } else {
            match d.open() {
                Ok(h) => {
                    dev.manufacturer = h.read_manufacturer_string_ascii(&desc).ok();
                    dev.product_name = h.read_product_string_ascii(&desc).ok();
                    dev.serial = h.read_serial_number_string_ascii(&desc).ok();
                }
                Err(e) => dev.unreadable = Some(format!("cannot open ({e})")),
            }
        }
        out.push(dev);
    }
    Ok(out)
}

/// Manufacturer, product and serial strings from `/sys/bus/usb/devices/BUS-PORT[.PORT…]/`,
/// or None where that directory does not exist.
fn sysfs_strings<T: UsbContext>(d: &rusb::Device<T>) -> Option<[Option<String>; 3]> {
    let ports = d.port_numbers().ok().filter(|p| !p.is_empty())?;
    let name = format!("{}-{}", d.bus_number(), ports.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("."));
    let dir = std::path::Path::new("/sys/bus/usb/devices").join(name);
    if !dir.is_dir() {
        return None;
    }
    let read =
        |f: &str| std::fs::read_to_string(dir.join(f)).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    Some([read("manufacturer"), read("product"), read("serial")])
}

/// The serial number of a device: sysfs first, then a string descriptor read.
fn serial_of<T: UsbContext>(
    d: &rusb::Device<T>,
    h: &rusb::DeviceHandle<T>,
    desc: &rusb::DeviceDescriptor,
) -> Option<String> {
    match sysfs_strings(d) {
        Some([_, _, s]) => s,
        None => h.read_serial_number_string_ascii(desc).ok(),
    }
}

/// A claimed USB interface as a byte link.
pub struct UsbLink {
    handle: rusb::DeviceHandle<rusb::Context>,
    interface: u8,
    out_ep: Option<u8>,
    in_ep: Option<(u8, TransferType, usize)>,
    pending: VecDeque<u8>,
    name: String,
}

/// Which interface to claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Bulk OUT (and bulk IN for status, when there is one): printers.
    Bulk,
    /// Interrupt IN: HID POS scanners.
    InterruptIn,
}

impl UsbLink {
    /// Opens `usb://vendor:product[/serial]` and claims the first interface that has the
    /// endpoints `want` needs, detaching a kernel driver (usblp, usbhid) from it.
    pub fn open(vendor: u16, product: u16, serial: Option<&str>, want: Want) -> Result<UsbLink, UsbError> {
        let what = match serial {
            Some(s) => format!("{vendor:04x}:{product:04x}/{s}"),
            None => format!("{vendor:04x}:{product:04x}"),
        };
        let fail = |why: String| UsbError::Device { what: what.clone(), why };
        let ctx = context()?;
        let devices = ctx.devices().map_err(|e| UsbError::NoUsb(format!("cannot list devices ({e})")))?;
        let mut last = None;
        for d in devices.iter() {
            let Ok(desc) = d.device_descriptor() else { continue };
            if desc.vendor_id() != vendor || desc.product_id() != product {
                continue;
            }
            let handle = match d.open() {
                Ok(h) => h,
                Err(e) => {
                    last = Some(fail(format!("cannot open ({e}); is the udev rule for the service's group in place?")));
                    continue;
                }
            };
            if let Some(want_serial) = serial
                && serial_of(&d, &handle, &desc).as_deref() != Some(want_serial)
            {
                last = Some(UsbError::NotFound(what.clone()));
                continue;
            }
            let cfg = d.active_config_descriptor().map_err(|e| fail(format!("no configuration ({e})")))?;
            for i in cfg.interfaces() {
                let Some(alt) = i.descriptors().next() else { continue };
                let eps: Vec<_> = alt.endpoint_descriptors().collect();
                let find = |dir: Direction, t: TransferType| {
                    eps.iter()
                        .find(|e| e.direction() == dir && e.transfer_type() == t)
                        .map(|e| (e.address(), usize::from(e.max_packet_size()).max(8)))
                };
                let (out_ep, in_ep) = match want {
                    Want::Bulk => match find(Direction::Out, TransferType::Bulk) {
                        Some((o, _)) => {
                            (Some(o), find(Direction::In, TransferType::Bulk).map(|(a, m)| (a, TransferType::Bulk, m)))
                        }
                        None => continue,
                    },
                    Want::InterruptIn => match find(Direction::In, TransferType::Interrupt) {
                        Some((a, m)) => (None, Some((a, TransferType::Interrupt, m))),
                        None => continue,
                    },
                };
                let n = alt.interface_number();
                // Claim; if a kernel driver (usblp, usbhid) holds the interface, detach it
                // and claim again.
                if let Err(first) = handle.claim_interface(n) {
                    let held = matches!(first, rusb::Error::Busy) || handle.kernel_driver_active(n).unwrap_or(false);
                    if !held {
                        return Err(fail(format!("cannot claim interface {n} ({first})")));
                    }
                    handle.detach_kernel_driver(n).map_err(|e| {
                        fail(format!("interface {n} is held by a kernel driver that cannot be detached ({e})"))
                    })?;
                    handle.claim_interface(n).map_err(|e| fail(format!("cannot claim interface {n} ({e})")))?;
                }
                return Ok(UsbLink {
                    handle,
                    interface: n,
                    out_ep,
                    in_ep,
                    pending: VecDeque::new(),
                    name: format!("usb://{what}"),
                });
            }
            last = Some(fail(match want {
                Want::Bulk => "no interface with a bulk OUT endpoint".into(),
                Want::InterruptIn => "no interface with an interrupt IN endpoint".into(),
            }));
        }
        Err(last.unwrap_or(UsbError::NotFound(what)))
    }

    /// The claimed interface number.
    pub fn interface(&self) -> u8 {
        self.interface
    }
}

fn usb_io(e: rusb::Error) -> LinkError {
    match e {
        rusb::Error::NoDevice | rusb::Error::NotFound | rusb::Error::Pipe => LinkError::Closed,
        other => LinkError::Io(format!("USB: {other}")),
    }
}

impl Link for UsbLink {
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        let ep = self.out_ep.ok_or_else(|| LinkError::Unsupported("this USB interface only sends".into()))?;
        let mut sent = 0;
        while sent < bytes.len() {
            match self.handle.write_bulk(ep, &bytes[sent..], Duration::from_secs(5)) {
                Ok(0) => return Err(LinkError::Io("USB: the device took no bytes".into())),
                Ok(n) => sent += n,
                Err(rusb::Error::Timeout) => return Err(LinkError::Io("USB: the device took no bytes for 5 s".into())),
                Err(e) => return Err(usb_io(e)),
            }
        }
        Ok(())
    }

    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError> {
        if self.pending.is_empty() {
            let Some((ep, t, max)) = self.in_ep else {
                // Nothing can come back from an OUT-only interface: wait as asked, then nothing.
                std::thread::sleep(timeout);
                return Ok(0);
            };
            // A transfer must have room for a whole packet, or libusb reports an overflow.
            let mut packet = vec![0u8; max.max(64)];
            let timeout = timeout.max(Duration::from_millis(1));
            let got = match t {
                TransferType::Interrupt => self.handle.read_interrupt(ep, &mut packet, timeout),
                _ => self.handle.read_bulk(ep, &mut packet, timeout),
            };
            match got {
                Ok(n) => self.pending.extend(&packet[..n]),
                Err(rusb::Error::Timeout) => return Ok(0),
                Err(e) => return Err(usb_io(e)),
            }
        }
        let n = buf.len().min(self.pending.len());
        for (slot, b) in buf.iter_mut().zip(self.pending.drain(..n)) {
            *slot = b;
        }
        Ok(n)
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

impl Drop for UsbLink {
    fn drop(&mut self) {
        let _ = self.handle.release_interface(self.interface);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(vendor: u16, ifaces: Vec<Interface>) -> UsbDevice {
        UsbDevice {
            bus: 1,
            address: 2,
            vendor,
            product: 0x0202,
            class: 0,
            manufacturer: None,
            product_name: None,
            serial: Some("ABC123".into()),
            interfaces: ifaces,
            unreadable: None,
        }
    }

    fn iface(class: u8, eps: &[(bool, &'static str)]) -> Interface {
        Interface {
            number: 0,
            class,
            subclass: 0,
            protocol: 0,
            endpoints: eps
                .iter()
                .enumerate()
                .map(|(i, (input, t))| Endpoint { address: i as u8 + 1, input: *input, transfer: t, max_packet: 64 })
                .collect(),
        }
    }

    #[test]
    fn roles_come_from_interfaces_and_makers() {
        assert_eq!(dev(0x1234, vec![iface(CLASS_PRINTER, &[(false, "bulk")])]).role(), Some("printer"));
        assert_eq!(dev(0x04b8, vec![iface(CLASS_VENDOR, &[(false, "bulk"), (true, "bulk")])]).role(), Some("printer"));
        assert_eq!(dev(0x1234, vec![iface(CLASS_VENDOR, &[(false, "bulk")])]).role(), None);
        assert_eq!(dev(0x05e0, vec![iface(CLASS_HID, &[(true, "interrupt")])]).role(), Some("scanner"));
        assert_eq!(dev(0x046d, vec![iface(CLASS_HID, &[(true, "interrupt")])]).role(), None, "a mouse");
        assert_eq!(dev(0x0403, vec![iface(CLASS_VENDOR, &[])]).role(), Some("serial"));
        assert_eq!(dev(0x04b8, vec![]).uri(), "usb://04b8:0202/ABC123");
    }

    #[test]
    fn a_machine_without_usb_says_so_and_does_not_panic() {
        // Here (no /dev/bus/usb) libusb cannot start; on a machine with USB the list works.
        match list() {
            Ok(devices) => assert!(devices.iter().all(|d| d.vendor != 0 || d.product != 0)),
            Err(UsbError::NoUsb(why)) => assert!(!why.is_empty()),
            Err(other) => panic!("{other}"),
        }
        match UsbLink::open(0x04b8, 0x0202, None, Want::Bulk) {
            Err(UsbError::NoUsb(_) | UsbError::NotFound(_)) => {}
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("no such printer is attached here"),
        }
    }
}
