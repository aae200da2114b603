//! How numbers, money, weights, rates and dates are written in the languages the screens
//! and the receipt speak: `71,96 €`, `0,350 kg`, `19 %`, `06.12.2026` in German; `€71.96`,
//! `0.350 kg`, `19%`, `2026-12-06` in English. Shared by the daemon (receipts) and the kiosk
//! (screens), so a price reads the same on the screen and on paper. Amounts are integer
//! minor units; nothing here uses floats.

/// A language of the screens and receipts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    De,
}

impl Lang {
    /// `en` or `de` (None: a language this version does not speak).
    pub fn parse(code: &str) -> Option<Lang> {
        match code {
            "en" => Some(Lang::En),
            "de" => Some(Lang::De),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
        }
    }

    fn separators(self) -> (char, char) {
        match self {
            Lang::En => ('.', ','),
            Lang::De => (',', '.'),
        }
    }
}

/// The currency's sign where people write one (`€`, `$`, `£`), else its code.
pub fn symbol(currency: &str) -> &str {
    match currency {
        "EUR" => "€",
        "USD" => "$",
        "GBP" => "£",
        other => other,
    }
}

/// Digits after the decimal point of a currency (ISO 4217 exponent), for a client that has
/// only the code (the daemon's records carry the currency's own).
pub fn exponent(currency: &str) -> u32 {
    match currency {
        "JPY" | "KRW" | "ISK" | "CLP" | "VND" | "HUF" => 0,
        "BHD" | "KWD" | "OMR" | "JOD" | "TND" => 3,
        _ => 2,
    }
}

/// An amount without its currency, grouped by thousands: `1.234,56` / `1,234.56`; the
/// decimals are `exponent` (ISO 4217: 2 for EUR, 0 for JPY). Negative amounts get `-`.
pub fn amount(minor: i64, exponent: u32, lang: Lang) -> String {
    let (dec, group) = lang.separators();
    let a = minor.unsigned_abs();
    let scale = 10u64.pow(exponent);
    let (units, frac) = (a / scale, a % scale);
    let digits = units.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(group);
        }
        grouped.push(c);
    }
    let sign = if minor < 0 { "-" } else { "" };
    if exponent == 0 {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}{dec}{frac:0width$}", width = exponent as usize)
    }
}

/// Money with its sign: `71,96 €` in German, `€71.96` in English (`12.00 CHF` for a code).
pub fn money(minor: i64, currency: &str, exponent: u32, lang: Lang) -> String {
    let n = amount(minor, exponent, lang);
    let sym = symbol(currency);
    match lang {
        Lang::De => format!("{n} {sym}"),
        Lang::En if sym.chars().count() == 1 => match n.strip_prefix('-') {
            Some(abs) => format!("-{sym}{abs}"),
            None => format!("{sym}{n}"),
        },
        Lang::En => format!("{n} {sym}"),
    }
}

/// A weight in kilograms with three decimals: `0,350 kg` / `0.350 kg`.
pub fn kg(grams: u32, lang: Lang) -> String {
    format!("{} kg", amount(i64::from(grams), 3, lang))
}

/// A rate in basis points: `19 %`, `7,5 %` in German; `19%`, `8.875%` in English.
pub fn percent(bp: u32, lang: Lang) -> String {
    let (dec, _) = lang.separators();
    let whole = bp / 100;
    let frac = bp % 100;
    let mut s = whole.to_string();
    if frac != 0 {
        let f = format!("{frac:02}");
        s.push(dec);
        s.push_str(f.trim_end_matches('0'));
    }
    match lang {
        Lang::De => format!("{s} %"),
        Lang::En => format!("{s}%"),
    }
}

/// A calendar date: `06.12.2026` in German, `2026-12-06` in English.
pub fn date(year: i16, month: i8, day: i8, lang: Lang) -> String {
    match lang {
        Lang::De => format!("{day:02}.{month:02}.{year:04}"),
        Lang::En => format!("{year:04}-{month:02}-{day:02}"),
    }
}

/// A time of day, 24-hour: `14:02`.
pub fn time(hour: i8, minute: i8) -> String {
    format!("{hour:02}:{minute:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_weights_rates_and_dates_by_language() {
        assert_eq!(money(7196, "EUR", 2, Lang::De), "71,96 €");
        assert_eq!(money(7196, "EUR", 2, Lang::En), "€71.96");
        assert_eq!(money(-250, "USD", 2, Lang::En), "-$2.50");
        assert_eq!(money(123_456_789, "EUR", 2, Lang::De), "1.234.567,89 €");
        assert_eq!(money(123_456_789, "USD", 2, Lang::En), "$1,234,567.89");
        assert_eq!(money(1200, "JPY", 0, Lang::En), "1,200 JPY");
        assert_eq!(money(5, "CHF", 2, Lang::En), "0.05 CHF");
        assert_eq!(kg(350, Lang::De), "0,350 kg");
        assert_eq!(kg(12_050, Lang::En), "12.050 kg");
        assert_eq!(percent(1900, Lang::De), "19 %");
        assert_eq!(percent(750, Lang::De), "7,5 %");
        assert_eq!(percent(888, Lang::En), "8.88%");
        assert_eq!(percent(0, Lang::En), "0%");
        assert_eq!(date(2026, 12, 6, Lang::De), "06.12.2026");
        assert_eq!(date(2026, 12, 6, Lang::En), "2026-12-06");
        assert_eq!(time(9, 5), "09:05");
        assert_eq!(Lang::parse("de"), Some(Lang::De));
        assert_eq!(Lang::parse("fr"), None);
    }
}
