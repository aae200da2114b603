//! ZVT serial framing (DLE STX … DLE ETX CRC, ACK / NAK) on both sides: the frame scanner
//! and the simulated terminal fed arbitrary bytes in arbitrary pieces never panic, and
//! every frame the scanner accepts has a right CRC.
#![no_main]
use edge_drivers::transport::Peer;
use edge_drivers::zvt::sim::{SimFraming, TerminalPeer, TerminalSim};
use edge_drivers::zvt::transport::{Scanned, frame, scan};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while !rest.is_empty() {
        match scan(rest) {
            Scanned::More => break,
            Scanned::Frame(a, used) => {
                assert!(used <= rest.len());
                assert!(rest[..used].ends_with(&frame(&a)[frame(&a).len() - 2..]), "CRC bytes differ");
                rest = &rest[used..];
            }
            Scanned::Bad(_, used) | Scanned::Signal(_, used) => {
                assert!(used > 0 && used <= rest.len());
                rest = &rest[used..];
            }
        }
    }
    let Some((&cut, bytes)) = data.split_first() else { return };
    let size = usize::from(cut % 24) + 1;
    for framing in [SimFraming::Serial, SimFraming::Plain] {
        let mut p = TerminalPeer::new(TerminalSim::default(), framing);
        for piece in bytes.chunks(size) {
            let _ = p.feed(piece);
        }
    }
});
