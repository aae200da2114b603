//! A serial scanner's byte stream, cut into reads where the input says: codes come out
//! whole or as errors, never a panic, never more codes than terminators plus one.
#![no_main]
use edge_drivers::scanner::SerialScanner;
use edge_drivers::transport::{Link, LinkError};
use libfuzzer_sys::fuzz_target;
use std::collections::VecDeque;
use std::time::Duration;

/// Reads come in the sizes the fuzzer chose; an empty read is a quiet gap.
struct Script(VecDeque<Vec<u8>>);

impl Link for Script {
    fn write_all(&mut self, _: &[u8]) -> Result<(), LinkError> {
        Ok(())
    }
    fn read(&mut self, buf: &mut [u8], _: Duration) -> Result<usize, LinkError> {
        let Some(mut chunk) = self.0.pop_front() else { return Err(LinkError::Closed) };
        let n = chunk.len().min(buf.len());
        buf[..n].copy_from_slice(&chunk[..n]);
        if n < chunk.len() {
            self.0.push_front(chunk.split_off(n));
        }
        Ok(n)
    }
    fn describe(&self) -> String {
        "fuzz".into()
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else { return };
    let size = usize::from(cut % 16);
    let chunks: VecDeque<Vec<u8>> =
        if size == 0 { rest.iter().map(|b| vec![*b]).collect() } else { rest.chunks(size).map(<[u8]>::to_vec).collect() };
    let ends = rest.iter().filter(|b| **b == b'\r' || **b == b'\n').count();
    let mut s = SerialScanner::new(Box::new(Script(chunks)));
    let mut codes = 0;
    loop {
        match s.next(Duration::from_millis(1)) {
            Ok(Some(_)) => codes += 1,
            Ok(None) => {}
            Err(_) => break,
        }
        assert!(codes <= ends + rest.len(), "more codes than input");
    }
});
