//! Shopify's leaky bucket of calculated query cost, from both sides: [`Bucket`] is what the
//! fake enforces, [`Pacer`] is the client's reckoning from `extensions.cost.throttleStatus`
//! (one per shop, shared by delivery and pulls), which holds a request until the bucket has
//! room for its requested cost, so "Throttled" is never earned.

use super::gql::Cost;
use std::collections::VecDeque;

/// The server side: points available, restored at `restore` points a second, at most
/// `max`. A request takes its requested cost up front and gets back what it did not use.
#[derive(Debug, Clone)]
pub struct Bucket {
    pub max: f64,
    pub restore: f64,
    available: f64,
    at_ms: i64,
}

impl Bucket {
    pub fn new(max: f64, restore: f64) -> Bucket {
        Bucket { max, restore, available: max, at_ms: i64::MIN }
    }

    pub fn available(&mut self, now_ms: i64) -> f64 {
        if self.at_ms != i64::MIN {
            let dt = (now_ms - self.at_ms).max(0) as f64 / 1000.0;
            self.available = (self.available + dt * self.restore).min(self.max);
        }
        self.at_ms = now_ms;
        self.available
    }

    /// Takes `cost` now, or says it is throttled (nothing taken).
    pub fn take(&mut self, cost: f64, now_ms: i64) -> bool {
        if self.available(now_ms) < cost {
            return false;
        }
        self.available -= cost;
        true
    }

    /// Gives back what a request did not use.
    pub fn refund(&mut self, points: f64, now_ms: i64) {
        self.available(now_ms);
        self.available = (self.available + points.max(0.0)).min(self.max);
    }

    /// Empties it (a switch of the fake: the bucket at zero).
    pub fn drain(&mut self, now_ms: i64) {
        self.available(now_ms);
        self.available = 0.0;
    }
}

/// Requests reserved and not yet answered are forgotten after this long (a lost reply).
const RESERVATION_TTL_MS: i64 = 30_000;

/// The client's reckoning of a shop's bucket.
#[derive(Debug, Clone)]
pub struct Pacer {
    max: f64,
    restore: f64,
    available: f64,
    at_ms: i64,
    /// Requested costs sent and not answered yet (with when they went).
    outstanding: VecDeque<(i64, f64)>,
    /// Whether the server has spoken yet (until then: a cautious guess).
    known: bool,
    /// Nothing goes before this (after a throttle despite the pacing: someone else is
    /// spending the bucket).
    hold_until_ms: i64,
}

impl Default for Pacer {
    fn default() -> Self {
        // Until the first answer: the smallest bucket of the published plans.
        Pacer {
            max: 1000.0,
            restore: 50.0,
            available: 1000.0,
            at_ms: i64::MIN,
            outstanding: VecDeque::new(),
            known: false,
            hold_until_ms: i64::MIN,
        }
    }
}

impl Pacer {
    fn now_available(&self, now_ms: i64) -> f64 {
        if self.at_ms == i64::MIN {
            return self.available;
        }
        let dt = (now_ms - self.at_ms).max(0) as f64 / 1000.0;
        (self.available + dt * self.restore).min(self.max)
    }

    /// Spends `cost` now, or says when there will be room (nothing spent).
    pub fn reserve(&mut self, cost: f64, now_ms: i64) -> Result<(), i64> {
        while self.outstanding.front().is_some_and(|(t, _)| *t < now_ms - RESERVATION_TTL_MS) {
            self.outstanding.pop_front();
        }
        if now_ms < self.hold_until_ms {
            return Err(self.hold_until_ms);
        }
        let avail = self.now_available(now_ms);
        // A request larger than the bucket can never wait its way in: send it when full
        // (Shopify refuses it by name; it is not a throttle).
        let need = cost.min(self.max);
        if avail < need {
            let wait = ((need - avail) / self.restore.max(1.0) * 1000.0).ceil() as i64;
            return Err(now_ms + wait.max(1));
        }
        self.available = avail - cost;
        self.at_ms = now_ms;
        self.outstanding.push_back((now_ms, cost));
        Ok(())
    }

    /// The server's word from an answer: its available points, less what is still on its
    /// way to it.
    pub fn observe(&mut self, c: &Cost, now_ms: i64) {
        if let Some(i) = self.outstanding.iter().position(|(_, r)| (*r - f64::from(c.requested)).abs() < 0.5) {
            self.outstanding.remove(i);
        } else {
            self.outstanding.pop_front();
        }
        let others: f64 = self.outstanding.iter().map(|(_, r)| r).sum();
        self.max = c.maximum.max(1.0);
        self.restore = c.restore_rate.max(0.1);
        self.available = (c.available - others).min(self.max);
        self.at_ms = now_ms;
        self.known = true;
    }

    /// A throttled answer: when it had no cost, assume the bucket empty; either way hold
    /// everything for a second, since something else is spending the bucket.
    pub fn throttled(&mut self, now_ms: i64, had_cost: bool) {
        if !had_cost {
            self.available = 0.0;
            self.at_ms = now_ms;
        }
        self.hold_until_ms = now_ms + 1000;
    }

    pub fn known(&self) -> bool {
        self.known
    }

    /// (available now, maximum, restore rate).
    pub fn status(&self, now_ms: i64) -> (f64, f64, f64) {
        (self.now_available(now_ms), self.max, self.restore)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pacer_waits_for_room_and_believes_the_server() {
        let mut p = Pacer::default();
        p.observe(&Cost { requested: 10, actual: Some(10), maximum: 2000.0, available: 15.0, restore_rate: 100.0 }, 0);
        assert_eq!(p.reserve(10.0, 0), Ok(()));
        // 5 left: 10 more needs 50 ms.
        assert_eq!(p.reserve(10.0, 0), Err(50));
        assert_eq!(p.reserve(10.0, 50), Ok(()));
        let mut b = Bucket::new(2000.0, 100.0);
        assert!(b.take(2000.0, 0));
        assert!(!b.take(1.0, 0));
        assert!(b.take(1.0, 10));
    }
}
