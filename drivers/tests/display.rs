//! The pole display driver against its simulator over a pty pair, in both dialects.

use edge_drivers::display::{Dialect, DisplaySim, PoleDisplay};
use edge_drivers::transport::{SerialLink, serve_peer};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn a_sale_shows_line_items_and_the_total() {
    for dialect in [Dialect::Cd5220, Dialect::EscPos] {
        let (host, dev) = serialport::TTYPort::pair().expect("pty pair");
        let sim = Arc::new(Mutex::new(DisplaySim::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, st2) = (sim.clone(), stop.clone());
        let t = std::thread::spawn(move || {
            let mut link = SerialLink::from_port(Box::new(dev), "pty-display");
            let _ = serve_peer(&mut link, s2.as_ref(), &st2);
        });
        let mut d = PoleDisplay::new("display-1", dialect, Box::new(SerialLink::from_port(Box::new(host), "pty-host")));
        assert!(d.show("x", "y").is_err(), "not enabled yet");
        d.lifecycle.open().expect("open");
        d.lifecycle.claim("edged").expect("claim");
        d.lifecycle.enable().expect("enable");
        d.brightness(2).expect("brightness");
        assert!(d.brightness(9).is_err());
        d.line_item("Light Juice 250 g", "25,70", "51,40 EUR").expect("show");
        let want = ["Light Juice 25  25,70".to_string(), "TOTAL      51,40 EUR".to_string()];
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let got = sim.lock().expect("sim").lines();
            if got[1] == want[1] {
                assert_eq!(got[0].len(), 20);
                assert!(got[0].starts_with("Light Juice") && got[0].ends_with("25,70"), "{got:?}");
                break;
            }
            assert!(Instant::now() < deadline, "display shows {got:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(sim.lock().expect("sim").brightness, 2);
        d.clear().expect("clear");
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(sim.lock().expect("sim").lines()[0].trim(), "");
        // The external health check puts a test pattern on both lines.
        let h = d.check_health(edge_drivers::model::HealthLevel::External).expect("health");
        assert!(h.contains("test pattern"), "{h}");
        let deadline = Instant::now() + Duration::from_secs(2);
        while sim.lock().expect("sim").lines()[1] != "ABCDEFGHIJKLMNOPQRST" {
            assert!(Instant::now() < deadline, "{:?}", sim.lock().expect("sim").lines());
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::SeqCst);
        t.join().expect("sim");
    }
}
