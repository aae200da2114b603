//! Money: integer minor units with an ISO 4217 currency. Never floats.
//!
//! Amounts are `i64` minor units (cents, Rappen, yen …). Arithmetic is checked: an overflow
//! is an error, never a wrap. Rounding of fractional results (tax, weighed prices) is half
//! away from zero, done once per line.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// An ISO 4217 alphabetic currency code, three ASCII upper-case letters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Currency([u8; 3]);

/// Why a currency code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("currency {0:?} is not an ISO 4217 code (three upper-case letters, e.g. EUR)")]
pub struct BadCurrency(pub String);

impl Currency {
    pub const EUR: Currency = Currency(*b"EUR");
    pub const USD: Currency = Currency(*b"USD");

    /// Parses a code such as `EUR`. Lower case is refused so that stored records stay canonical.
    pub fn parse(code: &str) -> Result<Currency, BadCurrency> {
        let b = code.as_bytes();
        if b.len() == 3 && b.iter().all(u8::is_ascii_uppercase) {
            Ok(Currency([b[0], b[1], b[2]]))
        } else {
            Err(BadCurrency(code.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored (see `parse`).
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// Digits after the decimal point (ISO 4217 exponent) for display only.
    pub fn exponent(&self) -> u32 {
        match &self.0 {
            b"JPY" | b"KRW" | b"ISK" | b"CLP" | b"VND" | b"HUF" => 0,
            b"BHD" | b"KWD" | b"OMR" | b"JOD" | b"TND" => 3,
            _ => 2,
        }
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Currency::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An amount of money.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

/// Money arithmetic that could not be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("cannot combine {0} with {1}")]
    CurrencyMismatch(Currency, Currency),
    #[error("amount overflows")]
    Overflow,
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Money {
        Money { minor, currency }
    }

    pub fn zero(currency: Currency) -> Money {
        Money { minor: 0, currency }
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch(self.currency, other.currency));
        }
        let minor = self.minor.checked_add(other.minor).ok_or(MoneyError::Overflow)?;
        Ok(Money { minor, currency: self.currency })
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch(self.currency, other.currency));
        }
        let minor = self.minor.checked_sub(other.minor).ok_or(MoneyError::Overflow)?;
        Ok(Money { minor, currency: self.currency })
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Money {
    /// `12.34 EUR`, `-0.05 EUR`, `500 JPY`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exp = self.currency.exponent();
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        if exp == 0 {
            return write!(f, "{sign}{abs} {}", self.currency);
        }
        let div = 10u64.pow(exp);
        write!(f, "{sign}{}.{:0width$} {}", abs / div, abs % div, self.currency, width = exp as usize)
    }
}

/// `num / den` rounded half away from zero, in 128-bit so no intermediate overflows.
/// Returns `None` when `den` is 0 or the result does not fit an `i64`.
pub fn div_round_half_away(num: i128, den: i128) -> Option<i64> {
    if den == 0 {
        return None;
    }
    let (num, den) = if den < 0 { (-num, -den) } else { (num, den) };
    let q = num / den;
    let r = num % den;
    let q = if 2 * r.abs() >= den { q + num.signum() } else { q };
    i64::try_from(q).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_codes_are_three_upper_case_letters() {
        assert_eq!(Currency::parse("EUR"), Ok(Currency::EUR));
        for bad in ["eur", "EU", "EURO", "E1R", ""] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn money_refuses_mixed_currencies_and_overflow() {
        let a = Money::new(100, Currency::EUR);
        let b = Money::new(100, Currency::USD);
        assert_eq!(a.checked_add(b), Err(MoneyError::CurrencyMismatch(Currency::EUR, Currency::USD)));
        let max = Money::new(i64::MAX, Currency::EUR);
        assert_eq!(max.checked_add(a), Err(MoneyError::Overflow));
        assert_eq!(a.checked_sub(Money::new(150, Currency::EUR)), Ok(Money::new(-50, Currency::EUR)));
    }

    #[test]
    fn money_displays_with_the_currency_exponent() {
        assert_eq!(Money::new(1234, Currency::EUR).to_string(), "12.34 EUR");
        assert_eq!(Money::new(-5, Currency::EUR).to_string(), "-0.05 EUR");
        let jpy = Currency::parse("JPY").expect("JPY");
        assert_eq!(Money::new(500, jpy).to_string(), "500 JPY");
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(div_round_half_away(5, 2), Some(3));
        assert_eq!(div_round_half_away(-5, 2), Some(-3));
        assert_eq!(div_round_half_away(4, 3), Some(1));
        assert_eq!(div_round_half_away(5, -2), Some(-3));
        assert_eq!(div_round_half_away(1, 0), None);
        assert_eq!(div_round_half_away(i128::MAX, 1), None);
    }
}
