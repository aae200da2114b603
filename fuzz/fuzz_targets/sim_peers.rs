//! The simulators parse what the host sends (ESC/POS jobs, Toledo commands, CD5220 and
//! ESC/POS display commands): arbitrary bytes in arbitrary pieces never panic them.
#![no_main]
use edge_drivers::display::DisplaySim;
use edge_drivers::escpos::sim::PrinterSim;
use edge_drivers::toledo::ScaleSim;
use edge_drivers::transport::Peer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else { return };
    let size = usize::from(cut % 32) + 1;
    let mut p = PrinterSim::new();
    let mut s = ScaleSim::with_load(1250);
    let mut d = DisplaySim::default();
    for piece in rest.chunks(size) {
        let _ = p.feed(piece);
        let _ = Peer::feed(&mut s, piece);
        let _ = Peer::feed(&mut d, piece);
    }
    let [a, b] = d.lines();
    assert!(a.chars().count() <= 20 && b.chars().count() <= 20, "a 2 x 20 display shows {a:?} / {b:?}");
});
