//! The receipt a store hands out, composed once and rendered twice: as ESC/POS for the
//! printer and as the same text for `GET /v1/sales/{id}/receipt` (a screen preview, or an
//! e-mail sent by the cloud). No I/O here: a sale and its context in, a [`Doc`] out.
//!
//! What it holds (../shared/reference/counter.md, "The receipt"): the seller's name,
//! address and VAT id or tax number; date and time in the store's zone; the lane and the
//! cashier; the human receipt number, also as a Code 128 barcode for returns; each line as
//! quantity × unit price (weight × price per kg, lot and expiry), price overrides and
//! discounts; the subtotal; VAT per rate with net, tax and gross (or sales tax on top, for
//! exclusive pricing); the total; each tender, cash given and change; the card slip (masked
//! card number, auth code, terminal id and the terminal's own lines); the footer. A refund
//! names the receipt it refunds and why; a copy says so at its top and bottom. Widths are
//! 42 or 48 characters (58 / 80 mm paper); numbers and dates follow the receipt's language
//! (edge-api's `locale`). Room is left for a fiscal block (the German TSE's data) between
//! the totals and the barcode: [`Context::fiscal`] lines print there once a TSE signs.
//!
//! The text rendering is exactly what the printer prints (characters its code page lacks
//! become `?` in both), with a barcode written as the printer simulator reads it:
//! `[BARCODE CODE128 1-000042]`.

use crate::config::ReceiptSetup;
use edge_api::locale::{self, Lang};
use edge_drivers::escpos::{Receipt, Symbology, printable};
use edge_sync::domain::{Quantity, Sale, SaleKind, TaxMode, Tender};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::collections::BTreeMap;

/// PC858: the code page with `€` (ESC t 19).
const CODE_PAGE: u8 = 19;

/// What a receipt needs besides its sale.
pub struct Context<'a> {
    pub store_name: &'a str,
    pub setup: &'a ReceiptSetup,
    pub lane_name: &'a str,
    pub tz: &'a TimeZone,
    /// A refund: the receipt number (or id) of the sale it refunds, and when that was made.
    pub original: Option<(String, Timestamp)>,
    /// A copy (a reprint asked for by staff).
    pub copy: bool,
    /// The fiscal block's lines (a TSE signature); empty until a fiscal module exists.
    pub fiscal: Vec<String>,
}

/// One piece of a receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// A line of at most the paper's width; `tall` is double height.
    Line { text: String, bold: bool, tall: bool },
    /// A Code 128 barcode with its text under it.
    Barcode(String),
}

/// A composed receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    pub width: usize,
    pub blocks: Vec<Block>,
}

impl Doc {
    /// The receipt as text, exactly as printed.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for b in &self.blocks {
            match b {
                Block::Line { text, .. } => {
                    out.extend(text.chars().map(printable));
                    out.push('\n');
                }
                Block::Barcode(data) => {
                    out.push_str(&format!("[BARCODE CODE128 {data}]\n\n"));
                }
            }
        }
        out
    }

    /// The receipt as an ESC/POS job, ending with a cut.
    pub fn escpos(&self) -> Receipt {
        let mut r = Receipt::new(CODE_PAGE);
        for b in &self.blocks {
            match b {
                Block::Line { text, bold, tall } => {
                    if *bold {
                        r = r.bold(true);
                    }
                    if *tall {
                        r = r.double(true, false);
                    }
                    r = r.line(text);
                    if *tall {
                        r = r.double(false, false);
                    }
                    if *bold {
                        r = r.bold(false);
                    }
                }
                Block::Barcode(data) => {
                    r = match r.clone().barcode(Symbology::Code128, data) {
                        Ok(x) => x,
                        // Only printable ASCII of at most 255 bytes is refused, and receipt
                        // numbers and ids are both: the text line under it stands in.
                        Err(_) => r.line(data).line(""),
                    };
                }
            }
        }
        r.cut()
    }
}

/// The words of a receipt, per language.
struct Words {
    vat_id: &'static str,
    tax_number: &'static str,
    receipt: &'static str,
    cashier: &'static str,
    copy: &'static str,
    refund: &'static str,
    refund_of: &'static str,
    reason: &'static str,
    was: &'static str,
    discount: &'static str,
    lot: &'static str,
    best_before: &'static str,
    subtotal: &'static str,
    sales_tax: &'static str,
    total: &'static str,
    refund_total: &'static str,
    cash: &'static str,
    cash_back: &'static str,
    change: &'static str,
    card: &'static str,
    card_back: &'static str,
    auth: &'static str,
    terminal: &'static str,
    vat: &'static str,
    net: &'static str,
    tax: &'static str,
    gross: &'static str,
    offline: &'static str,
}

const EN: Words = Words {
    vat_id: "VAT no.",
    tax_number: "Tax no.",
    receipt: "Receipt",
    cashier: "Cashier",
    copy: "*** COPY ***",
    refund: "REFUND",
    refund_of: "for receipt",
    reason: "Reason",
    was: "price changed, was",
    discount: "Discount",
    lot: "Lot",
    best_before: "best before",
    subtotal: "Subtotal",
    sales_tax: "Sales tax",
    total: "TOTAL",
    refund_total: "REFUNDED",
    cash: "Cash",
    cash_back: "Cash back",
    change: "Change",
    card: "Card",
    card_back: "Back to card",
    auth: "Auth",
    terminal: "Terminal",
    vat: "VAT",
    net: "Net",
    tax: "Tax",
    gross: "Gross",
    offline: "stored by the terminal, sent later",
};

const DE: Words = Words {
    vat_id: "USt-IdNr.",
    tax_number: "St.-Nr.",
    receipt: "Beleg",
    cashier: "Bediener",
    copy: "*** KOPIE ***",
    refund: "RÜCKGABE",
    refund_of: "zu Beleg",
    reason: "Grund",
    was: "Preis geändert, statt",
    discount: "Rabatt",
    lot: "Charge",
    best_before: "MHD",
    subtotal: "Zwischensumme",
    sales_tax: "Umsatzsteuer",
    total: "SUMME",
    refund_total: "ERSTATTET",
    cash: "Bar",
    cash_back: "Bar zurück",
    change: "Rückgeld",
    card: "Karte",
    card_back: "Gutschrift Karte",
    auth: "Genehmigung",
    terminal: "Terminal",
    vat: "MwSt",
    net: "Netto",
    tax: "Steuer",
    gross: "Brutto",
    offline: "vom Terminal gespeichert, später gesendet",
};

fn words(lang: Lang) -> &'static Words {
    match lang {
        Lang::En => &EN,
        Lang::De => &DE,
    }
}

/// Builds the lines of a receipt.
struct Page {
    width: usize,
    blocks: Vec<Block>,
}

impl Page {
    fn push(&mut self, text: String, bold: bool, tall: bool) {
        self.blocks.push(Block::Line { text, bold, tall });
    }

    fn plain(&mut self, text: &str) {
        for l in wrap(text, self.width) {
            self.push(l, false, false);
        }
    }

    fn center(&mut self, text: &str, bold: bool, tall: bool) {
        for l in wrap(text, self.width) {
            let pad = (self.width - len(&l)) / 2;
            self.push(format!("{}{l}", " ".repeat(pad)), bold, tall);
        }
    }

    fn rule(&mut self, c: char) {
        self.push(c.to_string().repeat(self.width), false, false);
    }

    /// `left` and `right` on one line, `right` flush right; a long `left` wraps above.
    fn pair(&mut self, left: &str, right: &str, bold: bool, tall: bool) {
        let room = self.width.saturating_sub(len(right) + 1).max(1);
        let mut lines = wrap(left, room);
        let last = lines.pop().unwrap_or_default();
        for l in lines {
            self.push(l, bold, tall);
        }
        let gap = self.width.saturating_sub(len(&last) + len(right));
        self.push(format!("{last}{}{right}", " ".repeat(gap.max(1))), bold, tall);
    }
}

fn len(s: &str) -> usize {
    s.chars().count()
}

/// Splits text into lines of at most `width` characters, at spaces where it can; an
/// indented text keeps its indent on every line.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let body = text.trim_start_matches(' ');
    let indent = len(text) - len(body);
    if indent > 0 && indent < width {
        let pad = " ".repeat(indent);
        return wrap_words(body, width - indent).into_iter().map(|l| format!("{pad}{l}")).collect();
    }
    wrap_words(body, width)
}

fn wrap_words(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut out = vec![];
    let mut cur = String::new();
    for word in text.split(' ') {
        let mut word = word.to_string();
        loop {
            let need = if cur.is_empty() { len(&word) } else { len(&cur) + 1 + len(&word) };
            if need <= width {
                if !cur.is_empty() {
                    cur.push(' ');
                }
                cur.push_str(&word);
                break;
            }
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            // A word longer than the line is cut.
            let head: String = word.chars().take(width).collect();
            word = word.chars().skip(width).collect();
            out.push(head);
            if word.is_empty() {
                break;
            }
        }
    }
    if !cur.is_empty() || out.is_empty() {
        out.push(cur);
    }
    out
}

/// The receipt of a sale or refund.
pub fn compose(sale: &Sale, cx: &Context) -> Doc {
    let lang = cx.setup.language;
    let w = words(lang);
    let exp = sale.currency.exponent();
    let cur = sale.currency.as_str();
    let refund = sale.kind == SaleKind::Refund;
    // A refund's amounts are what goes back: printed negative.
    let sign = if refund { -1 } else { 1 };
    let money = |m: i64| locale::money(m, cur, exp, lang);
    let num = |m: i64| locale::amount(m, exp, lang);
    let mut p = Page { width: cx.setup.width, blocks: vec![] };

    // The seller.
    p.center(cx.store_name, true, true);
    for l in &cx.setup.address {
        p.center(l, false, false);
    }
    if let Some(v) = &cx.setup.vat_id {
        p.center(&format!("{} {v}", w.vat_id), false, false);
    } else if let Some(t) = &cx.setup.tax_number {
        p.center(&format!("{} {t}", w.tax_number), false, false);
    }
    if cx.copy {
        p.center(w.copy, true, false);
    }
    p.rule('=');

    // Which receipt: number, date and time, lane, cashier.
    let at = sale.created_at.to_zoned(cx.tz.clone());
    let when =
        format!("{} {}", locale::date(at.year(), at.month(), at.day(), lang), locale::time(at.hour(), at.minute()));
    let number = sale.receipt_no.clone().unwrap_or_else(|| sale.id.to_string());
    match &sale.receipt_no {
        Some(no) => p.pair(&format!("{} {no}", w.receipt), &when, false, false),
        // A sale from before receipt numbers: its id, on a line of its own.
        None => {
            p.pair(w.receipt, &when, false, false);
            p.plain(&number);
        }
    }
    match &sale.cashier {
        Some(c) => p.pair(cx.lane_name, &format!("{}: {}", w.cashier, c.name), false, false),
        None => p.plain(cx.lane_name),
    }
    if refund {
        p.rule('-');
        p.center(w.refund, true, true);
        if let Some((no, at)) = &cx.original {
            let z = at.to_zoned(cx.tz.clone());
            p.center(
                &format!("{} {no} ({})", w.refund_of, locale::date(z.year(), z.month(), z.day(), lang)),
                false,
                false,
            );
        }
        if let Some(r) = &sale.reason {
            p.plain(&format!("{}: {r}", w.reason));
        }
    }
    p.rule('-');

    // The lines, each tagged with its VAT rate's letter (A = the highest rate).
    let mut rates: Vec<u32> = sale.lines.iter().map(|l| l.tax_rate_bp).collect();
    rates.sort_unstable_by(|a, b| b.cmp(a));
    rates.dedup();
    let letter = |bp: u32| {
        let i = rates.iter().position(|r| *r == bp).unwrap_or(0);
        char::from(b'A' + (i.min(25) as u8))
    };
    for l in &sale.lines {
        let tag = letter(l.tax_rate_bp);
        // The line before its discount, the discount under it: they sum to the line.
        let shown = match sale.tax_mode {
            TaxMode::Inclusive => l.gross_minor,
            // Sales tax comes on top: lines show their prices before it.
            TaxMode::Exclusive => l.net_minor,
        };
        p.pair(&l.name, &format!("{} {tag}", num(sign * (shown + l.discount_minor))), false, false);
        let each = match l.quantity {
            Quantity::Units(n) => format!("  {n} x {}", money(l.unit_price_minor)),
            Quantity::Grams(g) => format!("  {} x {}/kg", locale::kg(g, lang), money(l.unit_price_minor)),
        };
        p.plain(&each);
        if let Some(list) = l.list_price_minor {
            p.plain(&format!("  {} {}", w.was, money(list)));
        }
        if let Some(lot) = &l.lot {
            let e = lot.expiry;
            p.plain(&format!(
                "  {} {}, {} {}",
                w.lot,
                lot.number,
                w.best_before,
                locale::date(e.year(), e.month(), e.day(), lang)
            ));
        }
        if l.discount_minor != 0 {
            p.pair(&format!("  {}", w.discount), &format!("{} {tag}", num(-sign * l.discount_minor)), false, false);
        }
    }
    p.rule('-');

    // Totals.
    let gross: i64 = sale.lines.iter().map(|l| l.gross_minor).sum();
    match sale.tax_mode {
        TaxMode::Inclusive => p.pair(w.subtotal, &money(sign * gross), false, false),
        TaxMode::Exclusive => {
            p.pair(w.subtotal, &money(sign * sale.net_minor), false, false);
            for (bp, (_, tax, _)) in per_rate(sale).iter().rev() {
                p.pair(&format!("{} {}", w.sales_tax, locale::percent(*bp, lang)), &money(sign * tax), false, false);
            }
        }
    }
    let total_word = if refund { w.refund_total } else { w.total };
    p.pair(total_word, &money(sign * sale.total_minor), true, true);

    // Tenders, cash given and change.
    for t in &sale.tenders {
        match t {
            Tender::Cash { amount_minor } => {
                let word = if refund { w.cash_back } else { w.cash };
                p.pair(word, &money(sign * amount_minor), false, false);
            }
            Tender::Card { amount_minor, card, .. } => {
                let word = if refund { w.card_back } else { w.card };
                p.pair(word, &money(sign * amount_minor), false, false);
                if let Some(c) = card {
                    let card_line: Vec<&str> =
                        [c.card_name.as_deref(), c.pan_masked.as_deref()].into_iter().flatten().collect();
                    if !card_line.is_empty() {
                        p.plain(&format!("  {}", card_line.join(" ")));
                    }
                    let mut ids = vec![];
                    if let Some(a) = &c.auth_code {
                        ids.push(format!("{} {a}", w.auth));
                    }
                    if let Some(t) = &c.terminal_id {
                        ids.push(format!("{} {t}", w.terminal));
                    }
                    if !ids.is_empty() {
                        p.plain(&format!("  {}", ids.join("  ")));
                    }
                    if c.offline {
                        p.plain(&format!("  ({})", w.offline));
                    }
                }
            }
        }
    }
    if sale.change_minor > 0 {
        p.pair(w.change, &money(sale.change_minor), false, false);
    }

    // VAT per rate (inclusive pricing: what the total holds).
    if sale.tax_mode == TaxMode::Inclusive && !sale.lines.is_empty() {
        p.rule('-');
        let col = (p.width - 12) / 3;
        let row = |a: &str, b: &str, c: &str, d: &str| format!("{a:<12}{b:>col$}{c:>col$}{d:>col$}");
        p.push(row(w.vat, w.net, w.tax, w.gross), false, false);
        for (bp, (net, tax, gross)) in per_rate(sale).iter().rev() {
            let label = format!("{} {}", letter(*bp), locale::percent(*bp, lang));
            p.push(row(&label, &num(sign * net), &num(sign * tax), &num(sign * gross)), false, false);
        }
    }

    // The terminal's own slip lines (merchant and cardholder copy texts, as it sent them).
    let slips: Vec<&String> = sale
        .tenders
        .iter()
        .filter_map(|t| match t {
            Tender::Card { card: Some(c), .. } => Some(c.receipt.iter()),
            _ => None,
        })
        .flatten()
        .collect();
    if !slips.is_empty() {
        p.rule('-');
        for l in slips {
            p.plain(l.trim_end());
        }
    }

    // The fiscal block's place.
    if !cx.fiscal.is_empty() {
        p.rule('-');
        for l in &cx.fiscal {
            p.plain(l);
        }
    }

    p.rule('=');
    p.blocks.push(Block::Barcode(number));
    for l in &cx.setup.footer {
        p.center(l, false, false);
    }
    if cx.copy {
        p.center(w.copy, true, false);
    }
    Doc { width: p.width, blocks: p.blocks }
}

/// Net, tax and gross per VAT rate (basis points), from the lines.
fn per_rate(sale: &Sale) -> BTreeMap<u32, (i64, i64, i64)> {
    let mut m: BTreeMap<u32, (i64, i64, i64)> = BTreeMap::new();
    for l in &sale.lines {
        let e = m.entry(l.tax_rate_bp).or_default();
        e.0 += l.net_minor;
        e.1 += l.tax_minor;
        e.2 += l.gross_minor;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_drivers::escpos::sim::PrinterSim;
    use edge_sync::domain::{CardResult, Item, ItemKind, LineRequest, Lot, SaleStatus, StaffRef, price_line, settle};
    use edge_sync::money::Currency;
    use jiff::civil::date;

    fn item(sku: &str, name: &str, price: i64, bp: u32, kind: ItemKind) -> Item {
        Item {
            sku: sku.into(),
            name: name.into(),
            price_minor: price,
            currency: Currency::EUR,
            tax_rate_bp: bp,
            kind,
            barcodes: vec![],
            category: String::new(),
            age_restricted: false,
            image: None,
        }
    }

    /// Milk ×2, apples 0,350 kg, a lot-tracked yoghurt with a discount and an override.
    fn sale(mode: TaxMode, tenders: impl Fn(i64) -> Vec<Tender>) -> Sale {
        let bd = date(2026, 12, 6);
        let mut lines = vec![
            price_line(
                1,
                &item("M", "Milch 1,5 % 1 l", 119, 700, ItemKind::Unit),
                &LineRequest::Units(2),
                None,
                mode,
                Currency::EUR,
                bd,
            )
            .expect("milk"),
            price_line(
                2,
                &item("A", "Äpfel Elstar", 299, 700, ItemKind::Weight),
                &LineRequest::Grams(350),
                None,
                mode,
                Currency::EUR,
                bd,
            )
            .expect("apples"),
            price_line(
                3,
                &item("W", "Rotwein Spätlese", 2199, 1900, ItemKind::Lot),
                &LineRequest::Units(3),
                Some(Lot { number: "L123".into(), expiry: date(2027, 3, 31) }),
                mode,
                Currency::EUR,
                bd,
            )
            .expect("wine"),
        ];
        // The shelf price was 24,99; a manager made it 21,99 and took 5,00 off the line.
        lines[2].unit_price_minor = 2499;
        lines[2] = edge_sync::domain::adjust_line(lines[2].clone(), Some(2199), 500, mode).expect("adjust");
        let total: i64 = lines.iter().map(|l| l.gross_minor).sum();
        let tenders = tenders(total);
        let (net, tax, total, tendered, change) = settle(&lines, &tenders, Currency::EUR).expect("settle");
        Sale {
            id: uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0042),
            status: SaleStatus::Completed,
            kind: SaleKind::Sale,
            refund_of: None,
            reason: None,
            created_at: "2026-12-06T13:02:09Z".parse().expect("ts"),
            business_date: bd,
            store_id: "s".into(),
            currency: Currency::EUR,
            tax_mode: mode,
            lines,
            tenders,
            net_minor: net,
            tax_minor: tax,
            total_minor: total,
            tendered_minor: tendered,
            change_minor: change,
            request_id: "r".into(),
            actor: "cashier".into(),
            approved_by: Some("Max".into()),
            receipt_no: Some("1-000042".into()),
            lane: Some("1".into()),
            cashier: Some(StaffRef { id: "anna".into(), name: "Anna".into() }),
            age_check: None,
        }
    }

    fn setup(lang: Lang, width: usize) -> ReceiptSetup {
        ReceiptSetup {
            address: vec!["Hauptstraße 1".into(), "10115 Berlin".into()],
            vat_id: Some("DE123456789".into()),
            tax_number: None,
            language: lang,
            width,
            footer: vec!["Umtausch binnen 30 Tagen mit Beleg".into()],
        }
    }

    /// The text as the printer simulator reads the ESC/POS bytes, and the text rendering.
    fn printed(doc: &Doc) -> String {
        let mut sim = PrinterSim::new();
        sim.feed(doc.escpos().bytes());
        assert_eq!(sim.errors(), &[] as &[String], "the printer parsed every byte");
        let jobs = sim.jobs();
        assert_eq!(jobs.len(), 1, "one cut job");
        assert_eq!(jobs[0].text, doc.text(), "the text rendering is what the printer printed");
        jobs[0].text.clone()
    }

    fn render(s: &Sale, lang: Lang, width: usize, original: Option<(String, Timestamp)>, copy: bool) -> String {
        let tz = TimeZone::get("Europe/Berlin").expect("tz");
        let setup = setup(lang, width);
        let cx = Context {
            store_name: "Demo Store",
            setup: &setup,
            lane_name: "Kasse 1",
            tz: &tz,
            original,
            copy,
            fiscal: vec![],
        };
        let doc = compose(s, &cx);
        let text = printed(&doc);
        for l in text.lines().filter(|l| !l.starts_with("[BARCODE ")) {
            assert!(l.chars().count() <= width, "{l:?} is wider than {width}:\n{text}");
        }
        text
    }

    fn has(text: &str, parts: &[&str]) {
        for p in parts {
            assert!(text.contains(p), "{p:?} missing from:\n{text}");
        }
    }

    #[test]
    fn a_cash_sale_in_german_holds_every_field_on_48_and_42_columns() {
        let s = sale(TaxMode::Inclusive, |t| vec![Tender::Cash { amount_minor: (t / 1000 + 1) * 1000 }]);
        for width in [48, 42] {
            let t = render(&s, Lang::De, width, None, false);
            has(
                &t,
                &[
                    "Demo Store",
                    "Hauptstraße 1",
                    "10115 Berlin",
                    "USt-IdNr. DE123456789",
                    "Beleg 1-000042",
                    "06.12.2026 14:02", // 13:02 UTC in Berlin
                    "Kasse 1",
                    "Bediener: Anna",
                    "Milch 1,5 % 1 l",
                    "  2 x 1,19 €",
                    "Äpfel Elstar",
                    "  0,350 kg x 2,99 €/kg",
                    "  Preis geändert, statt 24,99 €",
                    "  Charge L123, MHD 31.03.2027",
                    "  Rabatt",
                    "-5,00 A",
                    "Zwischensumme",
                    "SUMME",
                    "Bar",
                    "Rückgeld",
                    "MwSt",
                    "Netto",
                    "A 19 %",
                    "B 7 %",
                    "[BARCODE CODE128 1-000042]",
                    "Umtausch binnen 30 Tagen mit Beleg",
                ],
            );
            assert!(!t.contains("KOPIE"), "{t}");
            // The amounts: 2,38 + 1,05 (0,350 × 2,99 = 1,0465) + 3 × 21,99 − 5,00 = 64,40.
            has(&t, &["2,38 B", "1,05 B", "65,97 A", "64,40 €"]);
            assert_eq!(s.total_minor, 6440);
        }
    }

    #[test]
    fn a_card_sale_in_english_shows_the_slip_and_a_copy_says_so() {
        let s = sale(TaxMode::Inclusive, |t| {
            vec![Tender::Card {
                amount_minor: t,
                payment_id: uuid::Uuid::nil(),
                terminal: "terminal".into(),
                card: Some(CardResult {
                    pan_masked: Some("679999******0019".into()),
                    card_name: Some("Girocard".into()),
                    auth_code: Some("123456".into()),
                    receipt_no: Some(17),
                    trace: Some(99),
                    terminal_id: Some("52500038".into()),
                    offline: false,
                    receipt: vec!["KUNDENBELEG".into(), "Zahlung erfolgt".into()],
                    reference: None,
                }),
            }]
        });
        let t = render(&s, Lang::En, 42, None, true);
        has(
            &t,
            &[
                "VAT no. DE123456789",
                "Receipt 1-000042",
                "2026-12-06 14:02",
                "Cashier: Anna",
                "  2 x €1.19",
                "  0.350 kg x €2.99/kg",
                "  price changed, was €24.99",
                "  Lot L123, best before 2027-03-31",
                "TOTAL",
                "€64.40",
                "Card",
                "Girocard 679999******0019",
                "Auth 123456  Terminal 52500038",
                "KUNDENBELEG",
                "A 19%",
            ],
        );
        assert_eq!(t.matches("*** COPY ***").count(), 2, "a copy is marked at its top and bottom:\n{t}");
        assert!(!t.contains("Change"), "no change on a card sale:\n{t}");
        assert!(!t.contains("6799990"), "never a full card number");
    }

    #[test]
    fn a_refund_names_its_receipt_and_reason_with_amounts_going_back() {
        let orig = sale(TaxMode::Inclusive, |t| vec![Tender::Cash { amount_minor: t }]);
        let mut r = orig.clone();
        r.id = uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0043);
        r.kind = SaleKind::Refund;
        r.refund_of = Some(orig.id);
        r.reason = Some("beschädigt".into());
        r.lines.truncate(1);
        r.tenders = vec![Tender::Cash { amount_minor: r.lines[0].gross_minor }];
        r.total_minor = r.lines[0].gross_minor;
        r.net_minor = r.lines[0].net_minor;
        r.tax_minor = r.lines[0].tax_minor;
        r.change_minor = 0;
        r.receipt_no = Some("1-000043".into());
        let t = render(&r, Lang::De, 48, Some(("1-000042".into(), orig.created_at)), false);
        has(
            &t,
            &[
                "RÜCKGABE",
                "zu Beleg 1-000042 (06.12.2026)",
                "Grund: beschädigt",
                "-2,38 A",
                "ERSTATTET",
                "-2,38 €",
                "Bar zurück",
            ],
        );
        has(&t, &["[BARCODE CODE128 1-000043]"]);
        let en = render(&r, Lang::En, 42, Some(("1-000042".into(), orig.created_at)), false);
        has(
            &en,
            &["REFUND", "for receipt 1-000042 (2026-12-06)", "Reason: beschädigt", "REFUNDED", "-€2.38", "Cash back"],
        );
    }

    #[test]
    fn exclusive_pricing_prints_sales_tax_on_top() {
        let s = sale(TaxMode::Exclusive, |t| vec![Tender::Cash { amount_minor: t }]);
        let t = render(&s, Lang::En, 48, None, false);
        has(&t, &["Subtotal", "Sales tax 19%", "Sales tax 7%", "TOTAL"]);
        assert!(!t.contains("Net"), "no VAT table for sales tax:\n{t}");
    }

    #[test]
    fn long_names_wrap_and_nothing_passes_the_paper_edge() {
        let mut s = sale(TaxMode::Inclusive, |t| vec![Tender::Cash { amount_minor: t }]);
        s.lines[0].name =
            "Sehr lange Produktbezeichnung mit vielen Wörtern und einem Überlangenwortohneleerzeichen".into();
        s.receipt_no = None;
        let t = render(&s, Lang::De, 42, None, false);
        has(&t, &["Sehr lange", &format!("[BARCODE CODE128 {}]", s.id)]);
        assert_eq!(wrap("", 10), [""]);
        assert_eq!(wrap("abcdefghijkl", 5), ["abcde", "fghij", "kl"]);
    }
}
