//! USB enumeration and claiming under umockdev (Debian's `umockdev`): a described USB
//! printer (class 7, bulk OUT + bulk IN) and a HID POS scanner (class 3, interrupt IN) are
//! put in a mocked /sys and /dev, and this test binary runs again under `umockdev-run` to
//! list them through rusb and claim their interfaces, as edged does. Transfers are not
//! replayed (umockdev's ioctl replay of bulk transfers hung when tried, see build-facts);
//! the bytes that travel over those endpoints are tested over ptys and TCP instead
//! (tests/escpos.rs, tests/scanner.rs).

use std::fmt::Write as _;

const INNER: &str = "EDGE_USB_UMOCKDEV_INNER";

fn hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// The sysfs / udev description of one device, in umockdev's text format.
fn describe(
    port: u8,
    devnum: u8,
    vendor: u16,
    product: u16,
    iface: [u8; 3],
    eps: &[(u8, u8)],
    strings: [&str; 3],
) -> String {
    let total = 9 + 9 + 7 * eps.len() as u16;
    let mut d = vec![0x12, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x40];
    d.extend(vendor.to_le_bytes());
    d.extend(product.to_le_bytes());
    d.extend([0x00, 0x01, 0x01, 0x02, 0x03, 0x01]);
    d.extend([0x09, 0x02]);
    d.extend(total.to_le_bytes());
    d.extend([0x01, 0x01, 0x00, 0xc0, 0x32]);
    d.extend([0x09, 0x04, 0x00, 0x00, eps.len() as u8, iface[0], iface[1], iface[2], 0x00]);
    for (addr, attr) in eps {
        d.extend([0x07, 0x05, *addr, *attr, 0x40, 0x00, if *attr == 3 { 0x0a } else { 0x00 }]);
    }
    format!(
        "P: /devices/pci0000:00/0000:00:14.0/usb1/1-{port}\n\
         N: bus/usb/001/{devnum:03}\n\
         E: BUSNUM=001\nE: DEVNAME=/dev/bus/usb/001/{devnum:03}\nE: DEVNUM={devnum:03}\n\
         E: DEVTYPE=usb_device\nE: DRIVER=usb\nE: MAJOR=189\nE: MINOR={devnum}\n\
         E: PRODUCT={vendor:x}/{product:x}/100\nE: SUBSYSTEM=usb\nE: TYPE=0/0/0\n\
         A: bConfigurationValue=1\nA: bDeviceClass=00\nA: bNumConfigurations=1\nA: bNumInterfaces= 1\n\
         A: busnum=1\nH: descriptors={desc}\nA: devnum={devnum}\nA: idProduct={product:04x}\n\
         A: idVendor={vendor:04x}\nA: manufacturer={}\nA: product={}\nA: serial={}\nA: speed=12\n\n",
        strings[0],
        strings[1],
        strings[2],
        desc = hex(&d),
    )
}

#[test]
fn usb_printer_and_hid_scanner_enumerate_and_claim_under_umockdev() {
    if std::env::var_os(INNER).is_some() {
        return inner();
    }
    let which = std::process::Command::new("umockdev-run").arg("--version").output();
    assert!(
        which.is_ok_and(|o| o.status.success()),
        "umockdev-run is missing: install Debian's umockdev (scripts/setup does)"
    );
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("pos.umockdev");
    let text = describe(
        2,
        2,
        0x04b8,
        0x0e03,
        [0x07, 0x01, 0x02],
        &[(0x01, 0x02), (0x82, 0x02)],
        ["EPSON", "TM-T20II", "X5E8012345"],
    ) + &describe(3, 3, 0x05e0, 0x1200, [0x03, 0x00, 0x00], &[(0x81, 0x03)], ["Zebra", "DS2208", "S123"]);
    std::fs::write(&file, text).expect("write");
    let exe = std::env::current_exe().expect("exe");
    let out = std::process::Command::new("umockdev-run")
        .arg("--device")
        .arg(&file)
        .arg("--")
        .arg(exe)
        .args([
            "--exact",
            "usb_printer_and_hid_scanner_enumerate_and_claim_under_umockdev",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INNER, "1")
        .output()
        .expect("umockdev-run");
    let log = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && log.contains("1 passed"), "under umockdev:\n{log}");
}

fn inner() {
    use edge_drivers::usb::{UsbLink, Want, list};
    let devices = list().expect("libusb starts under umockdev");
    eprintln!("{devices:#?}");
    let printer = devices.iter().find(|d| d.vendor == 0x04b8).expect("the printer is listed");
    assert_eq!((printer.product, printer.role()), (0x0e03, Some("printer")));
    assert_eq!(printer.serial.as_deref(), Some("X5E8012345"), "strings come from sysfs");
    assert_eq!(printer.uri(), "usb://04b8:0e03/X5E8012345");
    assert_eq!(printer.interfaces[0].endpoints.len(), 2);
    let scanner = devices.iter().find(|d| d.vendor == 0x05e0).expect("the scanner is listed");
    assert_eq!(scanner.role(), Some("scanner"));
    let found = edge_drivers::discover::probe_usb().expect("probe");
    assert!(found.iter().any(|f| f.kind.as_deref() == Some("printer") && f.uri.starts_with("usb://04b8:0e03")));

    let p =
        UsbLink::open(0x04b8, 0x0e03, Some("X5E8012345"), Want::Bulk).expect("the printer's bulk interface is claimed");
    let e = UsbLink::open(0x04b8, 0x0e03, Some("OTHER"), Want::Bulk).err().expect("another serial").to_string();
    assert!(e.contains("no USB device 04b8:0e03/OTHER"), "{e}");
    assert_eq!(p.interface(), 0);
    let s =
        UsbLink::open(0x05e0, 0x1200, None, Want::InterruptIn).expect("the scanner's interrupt interface is claimed");
    assert_eq!(s.interface(), 0);
    // The scanner has no bulk OUT endpoint: asking for one names what is missing.
    let e = UsbLink::open(0x05e0, 0x1200, None, Want::Bulk).err().expect("no bulk on a scanner").to_string();
    assert!(e.contains("no interface with a bulk OUT endpoint"), "{e}");
    let e = UsbLink::open(0x1234, 0x5678, None, Want::Bulk).err().expect("absent").to_string();
    assert!(e.contains("no USB device 1234:5678"), "{e}");
}
