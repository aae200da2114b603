//! The Toledo 8217 driver against its simulator over a pty pair, at the scale's line
//! settings (9600 7E1).

use edge_drivers::toledo::{Scale, ScaleSim, WeighError, Weight};

use edge_drivers::transport::{SerialLink, serve_peer};
use edge_drivers::uri::DeviceUri;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[test]
fn a_sale_gets_only_stable_in_range_weights() {
    let (host, dev) = serialport::TTYPort::pair().expect("pty pair");
    let sim = Arc::new(Mutex::new(ScaleSim::with_load(1250)));
    let stop = Arc::new(AtomicBool::new(false));
    let (s2, st2) = (sim.clone(), stop.clone());
    let t = std::thread::spawn(move || {
        let mut link = SerialLink::from_port(Box::new(dev), "pty-scale");
        let _ = serve_peer(&mut link, s2.as_ref(), &st2);
    });
    // The line settings the URI names are the ones the port is opened with.
    let uri = DeviceUri::parse("serial:///dev/null?baud=9600&data=7&parity=even&stop=1").expect("uri");
    let DeviceUri::Serial { settings, .. } = uri else { panic!("serial") };
    assert_eq!((settings.data_bits, settings.stop_bits), (7, 1));

    let mut host_link = SerialLink::from_port(Box::new(host), "pty-host");
    assert!(Scale::probe(&mut host_link).expect("probe"), "the probe must recognise the scale");
    let mut scale = Scale::new("scale-1", Box::new(host_link));
    scale.set_reply_timeout(Duration::from_millis(500));
    assert!(matches!(scale.weigh(), Err(WeighError::Device(_))), "not claimed yet");
    scale.lifecycle.open().expect("open");
    scale.lifecycle.claim("edged").expect("claim");
    scale.lifecycle.enable().expect("enable");

    assert_eq!(scale.weigh(), Ok(Weight { grams: 1250, net: false }));
    sim.lock().expect("sim").motion = true;
    assert_eq!(scale.weigh(), Err(WeighError::Motion));
    sim.lock().expect("sim").motion = false;
    sim.lock().expect("sim").load_g = 20_000;
    assert_eq!(scale.weigh(), Err(WeighError::OverCapacity));
    // Tare a 250 g container, then weigh net.
    sim.lock().expect("sim").load_g = 250;
    assert!(scale.command(b'T').expect("tare").net);
    sim.lock().expect("sim").load_g = 1250;
    assert_eq!(scale.weigh(), Ok(Weight { grams: 1000, net: true }));
    assert!(!scale.command(b'C').expect("clear").net);
    assert!(scale.command(b'X').is_err());
    // UPOS checkHealth at every level.
    use edge_drivers::model::HealthLevel;
    let h = scale.check_health(HealthLevel::Internal).expect("internal");
    assert!(h.contains("1250 g"), "{h}");
    let h = scale.check_health(HealthLevel::External).expect("external");
    assert!(h.contains("echo test passed"), "{h}");
    sim.lock().expect("sim").motion = true;
    let h = scale.check_health(HealthLevel::Interactive).expect("interactive");
    assert!(h.contains("in motion") && h.contains("known test weight"), "{h}");
    stop.store(true, Ordering::SeqCst);
    t.join().expect("sim");
}

#[test]
fn a_silent_or_garbling_scale_is_named_never_a_wrong_weight() {
    for (reply, want) in [(&b""[..], "no reply"), (&b"\x02 1.2x5\r"[..], "garbled"), (&b"\x02?\r"[..], "garbled")] {
        let (host, mut dev) = serialport::TTYPort::pair().expect("pty pair");
        let reply = reply.to_vec();
        let t = std::thread::spawn(move || {
            use serialport::SerialPort;
            use std::io::{Read, Write};
            let mut b = [0u8; 1];
            let _ = dev.set_timeout(Duration::from_millis(800));
            if dev.read(&mut b).is_ok() && !reply.is_empty() {
                let _ = dev.write_all(&reply);
            }
            // Stay connected past the host's reply timeout: silence, not a hang-up.
            std::thread::sleep(Duration::from_millis(1000));
        });
        let mut scale = Scale::new("scale-2", Box::new(SerialLink::from_port(Box::new(host), "pty-host")));
        scale.set_reply_timeout(Duration::from_millis(300));
        scale.lifecycle.open().expect("open");
        scale.lifecycle.claim("edged").expect("claim");
        scale.lifecycle.enable().expect("enable");
        let e = scale.weigh().expect_err("no weight");
        assert!(e.to_string().contains(want), "{e}");
        t.join().expect("peer");
    }
}
