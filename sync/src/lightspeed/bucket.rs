//! Lightspeed's leaky bucket (§A3 of the reference).
//!
//! - One bucket per account + API client. It drains at the drip rate (1/s, +0.5/s per
//!   register beyond the first) and holds 90 (+10 per extra register).
//! - Overflow rule: the first request that pushes the level past the size is still served;
//!   after that every request gets 429 until the level is below the size again.
//! - Costs come from the request alone. Current rules (2026-03-17): 1 per request; `Sale`
//!   writes 2, +3 when the body completes the sale; SaleLine writes 2; `Sale/#/Refund`,
//!   `Category` writes and `InventoryCount/#/Reconcile` 10; `EmailReceipt` 5; +0.5 per nested
//!   entity in a POST / PUT body; `count=1` 10. Legacy rules: GET 1, any write 10.
//! - Headers: `X-LS-API-Bucket-Level: level/size` (fractional level), `X-LS-API-Drip-Rate`,
//!   `X-LS-API-Request-Cost`; on 429 `Retry-After` (seconds) and `X-LS-API-RateLimit-Type`.
//!
//! Levels are kept in thousandths of a drip (integers: no float drift between the fake and
//! the client).

/// Thousandths of a drip.
pub type Milli = i64;

/// Which cost rules the bucket charges by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    /// Before 2026-03: GET 1, POST / PUT / DELETE 10.
    Legacy,
    /// From 2026-03-17.
    Current,
}

/// What a request's cost depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestShape<'a> {
    pub method: &'a str,
    /// The path after `/API/V3/Account/{id}/`, e.g. `Sale.json` or `Sale/12/Refund.json`.
    pub resource: &'a str,
    /// A `Sale` body with `"completed": true`.
    pub completes_sale: bool,
    /// Related entities nested in a POST / PUT body (SaleLines, SalePayments …).
    pub nested: u32,
    /// `count=1` in the query.
    pub count: bool,
}

/// The cost of a request, in thousandths of a drip.
pub fn cost(rules: Rules, r: &RequestShape<'_>) -> Milli {
    let write = matches!(r.method, "POST" | "PUT" | "DELETE");
    match rules {
        Rules::Legacy => {
            if write {
                10_000
            } else {
                1_000
            }
        }
        Rules::Current => {
            let res = r.resource.trim_end_matches(".json");
            let mut c: Milli = 1_000;
            if write {
                let last = res.rsplit('/').next().unwrap_or(res);
                c = match last {
                    "Refund" if res.starts_with("Sale/") => 10_000,
                    "Reconcile" if res.starts_with("InventoryCount/") => 10_000,
                    "EmailReceipt" => 5_000,
                    _ if res == "Category" || res.starts_with("Category/") => 10_000,
                    _ if res == "Sale" || (res.starts_with("Sale/") && res.split('/').count() == 2) => {
                        2_000 + if r.completes_sale { 3_000 } else { 0 }
                    }
                    _ if res == "SaleLine" || res.starts_with("SaleLine/") => 2_000,
                    _ => 1_000,
                };
                if matches!(r.method, "POST" | "PUT") {
                    c += 500 * i64::from(r.nested);
                }
            }
            if r.count {
                c += 10_000;
            }
            c
        }
    }
}

/// Size and drip rate for a subscription with `registers` registers.
pub fn limits(rules: Rules, registers: u32) -> (Milli, Milli) {
    let extra = i64::from(registers.max(1) - 1);
    match rules {
        // The legacy size was 60 by the docs (90 in recordings); the drip 1/s.
        Rules::Legacy => (60_000, 1_000),
        Rules::Current => (90_000 + 10_000 * extra, 1_000 + 500 * extra),
    }
}

/// The server's bucket (the fake's).
#[derive(Debug, Clone)]
pub struct Bucket {
    pub size: Milli,
    /// Drips per second, in thousandths.
    pub drip: Milli,
    level: Milli,
    at_ms: i64,
    /// The one overflow has been used (cleared once the level is below the size).
    overflowed: bool,
}

/// A refused request: 429 with these headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttled {
    pub level: Milli,
    pub size: Milli,
    /// Whole seconds until a request of this cost would be served.
    pub retry_after_s: u64,
}

impl Bucket {
    pub fn new(size: Milli, drip: Milli) -> Bucket {
        Bucket { size, drip, level: 0, at_ms: 0, overflowed: false }
    }

    fn drain(&mut self, now_ms: i64) {
        if now_ms > self.at_ms {
            let drained = (now_ms - self.at_ms) * self.drip / 1000;
            self.level = (self.level - drained).max(0);
            self.at_ms = now_ms;
        }
        if self.level < self.size {
            self.overflowed = false;
        }
    }

    /// The level now (after draining).
    pub fn level(&mut self, now_ms: i64) -> Milli {
        self.drain(now_ms);
        self.level
    }

    /// Charges a request, or refuses it.
    pub fn take(&mut self, cost: Milli, now_ms: i64) -> Result<Milli, Throttled> {
        self.drain(now_ms);
        if self.level + cost <= self.size {
            self.level += cost;
            return Ok(self.level);
        }
        if !self.overflowed && self.level <= self.size {
            // The one request allowed to push past the size.
            self.overflowed = true;
            self.level += cost;
            return Ok(self.level);
        }
        let need = (self.level + cost - self.size).max(self.level - self.size + 1);
        let wait_ms = ceil_div(need * 1000, self.drip.max(1));
        Err(Throttled { level: self.level, size: self.size, retry_after_s: (wait_ms as u64).div_ceil(1000).max(1) })
    }
}

/// `a / b` rounded up, for positive `b`.
fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1).div_euclid(b)
}

/// `X-LS-API-Bucket-Level` as sent: `37.46/90`.
pub fn level_header(level: Milli, size: Milli) -> String {
    format!("{}/{}", fmt_milli(level), fmt_milli(size))
}

fn fmt_milli(m: Milli) -> String {
    if m % 1000 == 0 {
        format!("{}", m / 1000)
    } else {
        let s = format!("{}.{:03}", m / 1000, (m % 1000).abs());
        s.trim_end_matches('0').to_string()
    }
}

/// Parses a decimal like `37.460243701934` into thousandths (extra digits cut).
pub fn parse_milli(s: &str) -> Option<Milli> {
    let s = s.trim();
    let (w, f) = s.split_once('.').unwrap_or((s, ""));
    if w.is_empty() || !w.bytes().all(|b| b.is_ascii_digit()) || !f.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: i64 = w.parse().ok()?;
    let mut frac = f.chars().take(3).collect::<String>();
    while frac.len() < 3 {
        frac.push('0');
    }
    whole.checked_mul(1000)?.checked_add(frac.parse::<i64>().ok()?)
}

/// Parses `X-LS-API-Bucket-Level` (`level/size`).
pub fn parse_level(h: &str) -> Option<(Milli, Milli)> {
    let (l, s) = h.split_once('/')?;
    Some((parse_milli(l)?, parse_milli(s)?))
}

/// The client's view, from the last response's headers: how long to wait before sending a
/// request of a given cost so that it is served without using the overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacer {
    pub level: Milli,
    pub size: Milli,
    pub drip: Milli,
    pub at_ms: i64,
}

impl Pacer {
    /// From `X-LS-API-Bucket-Level` and `X-LS-API-Drip-Rate` (a missing drip rate is taken
    /// as 1/s, never guessed from the size).
    pub fn from_headers(level: &str, drip: Option<&str>, now_ms: i64) -> Option<Pacer> {
        let (level, size) = parse_level(level)?;
        let drip = drip.and_then(parse_milli).filter(|d| *d > 0).unwrap_or(1000);
        Some(Pacer { level, size, drip, at_ms: now_ms })
    }

    /// Milliseconds to wait before a request of `cost` fits under the size.
    pub fn wait_ms(&self, cost: Milli, now_ms: i64) -> i64 {
        let level = (self.level - (now_ms - self.at_ms).max(0) * self.drip / 1000).max(0);
        let over = level + cost - self.size;
        if over <= 0 { 0 } else { ceil_div(over * 1000, self.drip.max(1)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_by_both_rule_sets() {
        let sale =
            RequestShape { method: "POST", resource: "Sale.json", completes_sale: true, nested: 3, count: false };
        assert_eq!(cost(Rules::Current, &sale), 2_000 + 3_000 + 1_500);
        assert_eq!(cost(Rules::Legacy, &sale), 10_000);
        let open = RequestShape { completes_sale: false, nested: 0, ..sale.clone() };
        assert_eq!(cost(Rules::Current, &open), 2_000);
        let get = RequestShape { method: "GET", resource: "Item.json", ..Default::default() };
        assert_eq!((cost(Rules::Current, &get), cost(Rules::Legacy, &get)), (1_000, 1_000));
        let counted = RequestShape { count: true, ..get.clone() };
        assert_eq!(cost(Rules::Current, &counted), 11_000);
        let refund = RequestShape { method: "POST", resource: "Sale/12/Refund.json", ..Default::default() };
        assert_eq!(cost(Rules::Current, &refund), 10_000);
        let line = RequestShape { method: "PUT", resource: "SaleLine/5.json", ..Default::default() };
        assert_eq!(cost(Rules::Current, &line), 2_000);
        assert_eq!(limits(Rules::Current, 3), (110_000, 2_000));
        assert_eq!(limits(Rules::Current, 1), (90_000, 1_000));
    }

    #[test]
    fn one_overflow_then_429_until_below_the_size() {
        let mut b = Bucket::new(90_000, 1_000);
        // 8 completed sales of 10: 80; the 9th pushes to 90 (fits); the 10th overflows.
        for _ in 0..9 {
            b.take(10_000, 0).expect("fits");
        }
        assert_eq!(b.take(10_000, 0), Ok(100_000), "the one overflow");
        let t = b.take(1_000, 0).expect_err("429");
        assert_eq!((t.level, t.size), (100_000, 90_000));
        assert_eq!(t.retry_after_s, 11, "level must drop below 90 and make room for 1");
        // Still over at 5 s; below the size at 10.001 s, and a 1-drip request fits at 11 s.
        assert!(b.take(1_000, 5_000).is_err());
        assert!(b.take(1_000, 11_000).is_ok());
        // The level went below the size at 10.001 s, so one overflow is allowed again, and
        // only one.
        assert_eq!(b.level(11_000), 90_000);
        assert_eq!(b.take(5_000, 11_000), Ok(95_000));
        assert!(b.take(1_000, 11_000).is_err());
    }

    #[test]
    fn headers_round_trip_and_the_pacer_waits_just_enough() {
        assert_eq!(level_header(37_460, 90_000), "37.46/90");
        assert_eq!(parse_level("37.460243701934/90"), Some((37_460, 90_000)));
        assert_eq!(parse_level("92.57/90"), Some((92_570, 90_000)));
        assert_eq!(parse_level("x/90"), None);
        let p = Pacer::from_headers("85/90", Some("1"), 0).expect("pacer");
        assert_eq!(p.wait_ms(5_000, 0), 0);
        assert_eq!(p.wait_ms(10_000, 0), 5_000);
        assert_eq!(p.wait_ms(10_000, 2_000), 3_000);
        let fast = Pacer::from_headers("85/110", Some("2"), 0).expect("pacer");
        assert_eq!(fast.wait_ms(30_000, 0), 2_500);
        // A paced client never meets a 429 and never uses the overflow.
        let mut b = Bucket::new(90_000, 1_000);
        let mut now = 0;
        let mut pacer = Pacer { level: 0, size: 90_000, drip: 1_000, at_ms: 0 };
        for _ in 0..500 {
            now += pacer.wait_ms(6_500, now);
            let level = b.take(6_500, now).expect("paced requests are never refused");
            assert!(level <= 90_000);
            pacer = Pacer { level, at_ms: now, ..pacer };
        }
        // 500 × 6.5 drips at 1 drip/s, after the first 90: about 3,160 s.
        assert!((3_150_000..3_170_000).contains(&now), "{now}");
    }
}
