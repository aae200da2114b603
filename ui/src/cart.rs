//! The cart on the screen, before it becomes a sale: plain data, no UI and no network, so
//! it is tested on its own. Amounts shown here are the screen's estimate; the daemon
//! prices the sale (tax, rounding, the catalog of the moment) and its answer is what the
//! done screen shows.

use edge_api::locale::{self, Lang};
use edge_api::{CatalogItem, SaleLineIn};

/// At most this many pieces on one line (the daemon has its own limit too).
pub const MAX_QTY: u32 = 999;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartItem {
    pub sku: String,
    pub name: String,
    /// Sold by weight: the price is per kg and the line needs a weight from the scale.
    pub weighed: bool,
    pub unit_price_minor: i64,
    pub qty: u32,
    pub grams: Option<u32>,
    /// A manager's unit price instead of the catalog's.
    pub price_override: Option<i64>,
    pub discount_minor: i64,
    pub age_restricted: bool,
    /// Age-restricted items: the birth date the customer must be born on or before
    /// (`YYYY-MM-DD`, from the daemon).
    pub born_on_or_before: Option<String>,
    /// Lot-tracked items: lot and expiry from a GS1 scan.
    pub lot: Option<(String, String)>,
}

impl CartItem {
    pub fn from_catalog(it: &CatalogItem) -> CartItem {
        CartItem {
            sku: it.sku.clone(),
            name: it.name.clone(),
            weighed: it.kind == "weight",
            unit_price_minor: it.price_minor,
            qty: 1,
            grams: None,
            price_override: None,
            discount_minor: 0,
            age_restricted: it.age_restricted,
            born_on_or_before: it.born_on_or_before.clone(),
            lot: None,
        }
    }

    /// What the line comes to (the screen's estimate): quantity × price − discount.
    pub fn amount_minor(&self) -> i64 {
        let price = self.price_override.unwrap_or(self.unit_price_minor);
        let gross = if self.weighed {
            // Per kg, sold by the gram, rounded half away from zero.
            let g = i128::from(self.grams.unwrap_or(0));
            ((i128::from(price) * g + 500) / 1000) as i64
        } else {
            price.saturating_mul(i64::from(self.qty))
        };
        (gross - self.discount_minor).max(0)
    }

    fn plain(&self) -> bool {
        !self.weighed && self.price_override.is_none() && self.discount_minor == 0 && self.lot.is_none()
    }
}

#[derive(Debug, Clone, Default)]
pub struct Cart {
    pub items: Vec<CartItem>,
}

impl Cart {
    /// Adds an item: one more on the line of the same plain item, else a new line.
    /// Returns the index of the line.
    pub fn add(&mut self, item: CartItem) -> usize {
        if item.plain()
            && let Some(i) = self.items.iter().position(|x| x.sku == item.sku && x.plain())
        {
            let it = &mut self.items[i];
            it.qty = (it.qty + 1).min(MAX_QTY);
            return i;
        }
        self.items.push(item);
        self.items.len() - 1
    }

    pub fn increase(&mut self, i: usize) {
        if let Some(it) = self.items.get_mut(i)
            && !it.weighed
        {
            it.qty = (it.qty + 1).min(MAX_QTY);
        }
    }

    /// One fewer; the line goes at zero.
    pub fn decrease(&mut self, i: usize) {
        let Some(it) = self.items.get_mut(i) else { return };
        if it.weighed || it.qty <= 1 {
            self.items.remove(i);
        } else {
            it.qty -= 1;
        }
    }

    pub fn remove(&mut self, i: usize) -> Option<CartItem> {
        (i < self.items.len()).then(|| self.items.remove(i))
    }

    pub fn clear(&mut self) {
        self.items.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Pieces (a weighed line counts one).
    pub fn count(&self) -> u32 {
        self.items.iter().map(|i| if i.weighed { 1 } else { i.qty }).sum()
    }

    pub fn total_minor(&self) -> i64 {
        self.items.iter().map(CartItem::amount_minor).sum()
    }

    pub fn has_adjustments(&self) -> bool {
        self.items.iter().any(|i| i.price_override.is_some() || i.discount_minor != 0)
    }

    /// The first weighed line that has no weight yet.
    pub fn unweighed(&self) -> Option<&CartItem> {
        self.items.iter().find(|i| i.weighed && i.grams.is_none())
    }

    /// The lines of `POST /v1/sales`.
    pub fn sale_lines(&self) -> Vec<SaleLineIn> {
        self.items
            .iter()
            .map(|i| SaleLineIn {
                sku: i.sku.clone(),
                qty: (!i.weighed).then_some(i64::from(i.qty)),
                weight_g: if i.weighed { i.grams.map(i64::from) } else { None },
                from_scale: None,
                lot: i.lot.as_ref().map(|l| l.0.clone()),
                expiry: i.lot.as_ref().map(|l| l.1.clone()),
                unit_price_minor: i.price_override,
                discount_minor: (i.discount_minor != 0).then_some(i.discount_minor),
            })
            .collect()
    }
}

/// Money for the screen: `€12.34` in English, `12,34 €` in German (edge-api's locale
/// rules, the receipt's too), with a true minus sign.
pub fn format_money(minor: i64, currency: &str, lang: &str) -> String {
    let lang = Lang::parse(lang).unwrap_or_default();
    locale::money(minor, currency, locale::exponent(currency), lang).replacen('-', "−", 1)
}

/// A date (`YYYY-MM-DD`) for the screen: `06.12.2008` in German, as given in English.
pub fn format_date(iso: &str, lang: &str) -> String {
    let parts: Vec<&str> = iso.split('-').collect();
    match (parts.as_slice(), Lang::parse(lang).unwrap_or_default()) {
        ([y, m, d], l) => match (y.parse(), m.parse(), d.parse()) {
            (Ok(y), Ok(m), Ok(d)) => locale::date(y, m, d, l),
            _ => iso.to_string(),
        },
        _ => iso.to_string(),
    }
}

/// A weight for the screen: `0,350 kg` in German, `0.350 kg` in English.
pub fn format_kg(grams: u32, lang: &str) -> String {
    locale::kg(grams, Lang::parse(lang).unwrap_or_default())
}

/// Cash amounts that make sense for a total, after "exact": the next whole unit, then the
/// next 5, 10, 20, 50 and 100 (71.96 → 72, 75, 80, 100), at most four, each above the total.
pub fn quick_amounts(total_minor: i64) -> Vec<i64> {
    let mut out: Vec<i64> = Vec::new();
    if total_minor <= 0 {
        return out;
    }
    for step in [100, 500, 1000, 2000, 5000, 10_000] {
        let up = (total_minor + step - 1) / step * step;
        if up > total_minor && !out.contains(&up) && out.len() < 4 {
            out.push(up);
        }
    }
    out
}

/// An amount as staff would type it: `72.00`.
pub fn plain_amount(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

/// Reads an amount typed by staff: `2.50`, `2,50`, `3`, `0.5`. Err names the problem.
pub fn parse_money(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("no amount given".into());
    }
    let t = t.replace(',', ".");
    let (whole, frac) = match t.split_once('.') {
        Some((w, f)) => (w, f),
        None => (t.as_str(), ""),
    };
    let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(frac) || frac.len() > 2 || (whole.is_empty() && frac.is_empty()) || whole.len() > 9 {
        return Err(format!("{s:?} is not an amount like 2.50"));
    }
    let w: i64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| format!("{s:?} is too large"))? };
    let f: i64 = match frac.len() {
        0 => 0,
        1 => frac.parse::<i64>().unwrap_or(0) * 10,
        _ => frac.parse::<i64>().unwrap_or(0),
    };
    Ok(w * 100 + f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(sku: &str, price: i64, weighed: bool) -> CartItem {
        CartItem {
            sku: sku.into(),
            name: sku.into(),
            weighed,
            unit_price_minor: price,
            qty: 1,
            grams: None,
            price_override: None,
            discount_minor: 0,
            age_restricted: false,
            born_on_or_before: None,
            lot: None,
        }
    }

    #[test]
    fn plain_items_stack_and_adjusted_or_weighed_ones_do_not() {
        let mut c = Cart::default();
        assert_eq!(c.add(item("A", 250, false)), 0);
        assert_eq!(c.add(item("A", 250, false)), 0);
        assert_eq!(c.items[0].qty, 2);
        assert_eq!(c.add(item("W", 1999, true)), 1);
        assert_eq!(c.add(item("W", 1999, true)), 2);
        c.items[0].discount_minor = 100;
        assert_eq!(c.add(item("A", 250, false)), 3);
        c.items[1].grams = Some(350);
        assert_eq!(c.items[1].amount_minor(), 700); // 19.99/kg × 0.350 = 6.9965
        assert_eq!(c.unweighed().map(|i| i.sku.as_str()), Some("W"));
        assert_eq!(c.count(), 5);
        // 2 × 2.50 − 1.00, 350 g at 19.99/kg, an unweighed line (0), 2.50.
        assert_eq!(c.total_minor(), 1350);
        c.decrease(0);
        assert_eq!(c.items[0].qty, 1);
        c.decrease(0);
        assert_eq!(c.items.len(), 3);
        let lines = c.sale_lines();
        assert_eq!(lines[0].weight_g, Some(350));
        assert_eq!(lines[0].qty, None);
        assert_eq!(lines[2].qty, Some(1));
    }

    #[test]
    fn overrides_and_discounts_go_to_the_sale() {
        let mut c = Cart::default();
        c.add(item("A", 1000, false));
        c.items[0].qty = 3;
        c.items[0].price_override = Some(800);
        c.items[0].discount_minor = 150;
        assert_eq!(c.total_minor(), 2250);
        assert!(c.has_adjustments());
        let l = &c.sale_lines()[0];
        assert_eq!((l.unit_price_minor, l.discount_minor, l.qty), (Some(800), Some(150), Some(3)));
    }

    #[test]
    fn quick_amounts_fit_the_total() {
        assert_eq!(quick_amounts(7196), [7200, 7500, 8000, 10_000]);
        assert_eq!(quick_amounts(500), [1000, 2000, 5000, 10_000]);
        assert_eq!(quick_amounts(1), [100, 500, 1000, 2000]);
        assert_eq!(quick_amounts(0), [] as [i64; 0]);
        assert_eq!(plain_amount(7200), "72.00");
    }

    #[test]
    fn money_reads_and_prints_both_ways() {
        assert_eq!(format_money(1234, "EUR", "en"), "€12.34");
        assert_eq!(format_money(1234, "EUR", "de"), "12,34 €");
        assert_eq!(format_money(-5, "EUR", "en"), "−€0.05");
        assert_eq!(format_money(100, "CHF", "en"), "1.00 CHF");
        assert_eq!(parse_money("2.50"), Ok(250));
        assert_eq!(parse_money("2,5"), Ok(250));
        assert_eq!(parse_money("3"), Ok(300));
        assert_eq!(parse_money(".05"), Ok(5));
        assert!(parse_money("").is_err());
        assert!(parse_money("1.234").is_err());
        assert!(parse_money("abc").is_err());
        assert!(parse_money("-1").is_err());
        assert!(parse_money("99999999999").is_err());
    }
}
