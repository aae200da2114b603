//! Local stock against its source's levels, as decisions over values.
//!
//! A SKU's shown stock is the stock source's last level plus the local deltas (sales,
//! refunds, adjustments) the level does not reflect yet. A pull brings a level with a marker
//! `through`, in the source's own numbering: a local record that source confirmed under a
//! remote id numbered at most `through` is in the level, so its delta is dropped; every
//! other delta stays. A record confirmed after its SKU's level was read is settled later
//! against that level's marker.
//!
//! These are pure functions: the sled store applies them under its commit lock, and the
//! sync simulation applies them to its own model, so the rule the shelves depend on runs
//! under the simulation's lost replies, crash-restarts and partitions.

use crate::domain::{Remote, StockLevel, StockMarker};
use jiff::Timestamp;

/// One local delta as the decisions see it: its amount, and the number of the remote id
/// the stock source confirmed its record under (`None`: not confirmed there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeltaView {
    pub delta: i64,
    pub confirmed: Option<u64>,
}

/// What a pulled level does to a SKU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rebase {
    /// The level is older than the one held: ignored.
    Stale,
    /// The SKU's new level, and the deltas (indexes into the input) it reflects.
    Level { next: StockLevel, drop: Vec<usize> },
}

/// A level of `source` for a SKU, read at `at`, including the source's records numbered at
/// most `through`; `deltas` are the SKU's local deltas.
pub fn rebase(
    cur: &StockLevel,
    source: Remote,
    level: i64,
    at: Timestamp,
    through: u64,
    deltas: &[DeltaView],
) -> Rebase {
    if cur.remote_at.is_some_and(|t| t > at) {
        return Rebase::Stale;
    }
    let (mut keep, mut drop) = (0i64, Vec::new());
    for (i, d) in deltas.iter().enumerate() {
        // A record the stock source never confirmed cannot be in its level.
        if d.confirmed.is_some_and(|n| n <= through) {
            drop.push(i);
        } else {
            keep = keep.saturating_add(d.delta);
        }
    }
    let next = StockLevel {
        remote_level: Some(level),
        remote_at: Some(at),
        unreflected: keep,
        through: Some(StockMarker { source: source.to_string(), through }),
    };
    Rebase::Level { next, drop }
}

/// What settling a SKU's deltas against its level's marker does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settle {
    /// The SKU's new level, when deltas were dropped.
    pub next: Option<StockLevel>,
    /// The deltas (indexes into the input) the level already reflects.
    pub drop: Vec<usize>,
    /// A delta confirmed under a number above the marker: only a fresh read of the SKU's
    /// level can tell whether it holds the record.
    pub waits: bool,
}

/// Settles a SKU's deltas confirmed by `source` after its level was read: one numbered at
/// most the level's marker is in that level. Only a level of this source counts (another
/// source numbers its records otherwise).
pub fn settle(cur: &StockLevel, source: Remote, deltas: &[DeltaView]) -> Settle {
    let Some(through) = cur.through.as_ref().filter(|m| m.source == source.as_str()).map(|m| m.through) else {
        return Settle::default();
    };
    let mut out = Settle::default();
    let mut dropped = 0i64;
    for (i, d) in deltas.iter().enumerate() {
        match d.confirmed {
            Some(n) if n <= through => {
                dropped = dropped.saturating_add(d.delta);
                out.drop.push(i);
            }
            Some(_) => out.waits = true,
            None => {}
        }
    }
    if !out.drop.is_empty() {
        out.next = Some(StockLevel { unreflected: cur.unreflected.saturating_sub(dropped), ..cur.clone() });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_767_225_600 + s).expect("time")
    }

    fn d(delta: i64, confirmed: Option<u64>) -> DeltaView {
        DeltaView { delta, confirmed }
    }

    #[test]
    fn a_level_drops_exactly_the_deltas_it_includes() {
        let cur = StockLevel { remote_level: Some(50), remote_at: Some(t(0)), unreflected: -6, through: None };
        // Confirmed at 7 and 9 (in the level through 8: only 7), one not confirmed.
        let deltas = [d(-1, Some(7)), d(-2, Some(9)), d(-3, None)];
        let Rebase::Level { next, drop } = rebase(&cur, Remote::Cloud, 40, t(10), 8, &deltas) else {
            panic!("applied")
        };
        assert_eq!(drop, [0]);
        assert_eq!((next.remote_level, next.unreflected, next.available()), (Some(40), -5, Some(35)));
        assert_eq!(next.through, Some(StockMarker { source: "cloud".into(), through: 8 }));
        // An older level is ignored.
        assert_eq!(rebase(&next, Remote::Cloud, 99, t(5), 100, &deltas), Rebase::Stale);
        // Settled once the source's marker covers the later confirmation: only by the same
        // source, and never twice (the dropped delta is gone from the input).
        let s = settle(&next, Remote::Netsuite, &[d(-2, Some(9)), d(-3, None)]);
        assert_eq!(s, Settle::default());
        let s = settle(&next, Remote::Cloud, &[d(-2, Some(9)), d(-3, None)]);
        assert_eq!((s.next.as_ref(), s.drop.len(), s.waits), (None, 0, true), "9 > 8: a fresh read decides");
        let moved = StockLevel { through: Some(StockMarker { source: "cloud".into(), through: 9 }), ..next };
        let s = settle(&moved, Remote::Cloud, &[d(-2, Some(9)), d(-3, None)]);
        assert_eq!(s.drop, [0]);
        assert_eq!(s.next.map(|l| (l.unreflected, l.available())), Some((-3, Some(37))));
    }
}
