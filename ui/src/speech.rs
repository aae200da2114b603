//! Speech output for the self-serve screen (EN 301 549 / EAA: a self-service terminal that
//! speaks to a customer who cannot see it; ../shared/reference/kiosk-accessibility.md).
//!
//! - Offline, in English or German, with espeak-ng (Debian's `espeak-ng`), started as a
//!   process per utterance that plays on the sound card; a new utterance interrupts the
//!   one speaking, as screen readers do.
//! - Turned on and off without sight: F2 on a keyboard or keypad, or a long press (1.5 s)
//!   on the screen's bottom-left corner, a fixed spot.
//! - What it says comes from what the screen shows ([`Snapshot`]), compared every
//!   [`TICK`]: a new screen's title and what matters on it (the cart's count and total,
//!   "tap, insert or swipe" and where the reader is), an item added with its price and the
//!   total, the terminal's prompts, errors and messages, the age check waiting for staff,
//!   the idle warning. [`utterances`] is pure: the test seam checks each screen's words,
//!   and [`Speech::spoken`] keeps what was said.

use edge_api::locale::Lang;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How often the screen is compared with what was last said.
pub const TICK: Duration = Duration::from_millis(50);
/// How long the corner must be held to turn speech on or off.
pub const LONG_PRESS: Duration = Duration::from_millis(1500);
/// Utterances kept for [`Speech::spoken`].
const KEEP: usize = 500;

/// Something that can speak.
pub trait Voice {
    /// Starts saying `text`, cutting off whatever is being said.
    fn speak(&mut self, lang: Lang, text: &str) -> Result<(), String>;
    fn stop(&mut self);
}

/// espeak-ng on the sound card, one process per utterance.
#[derive(Default)]
pub struct Espeak {
    child: Option<Child>,
}

/// espeak-ng's voice for a language.
pub fn espeak_voice(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "en",
        Lang::De => "de",
    }
}

impl Voice for Espeak {
    fn speak(&mut self, lang: Lang, text: &str) -> Result<(), String> {
        self.stop();
        let child = Command::new("espeak-ng")
            .args(["-v", espeak_voice(lang), "-s", "165", "--", text])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("espeak-ng cannot be started: {e}"))?;
        self.child = Some(child);
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Espeak {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A voice that says nothing (no sound card, or tests); [`Speech::spoken`] still records.
pub struct Silent;

impl Voice for Silent {
    fn speak(&mut self, _: Lang, _: &str) -> Result<(), String> {
        Ok(())
    }
    fn stop(&mut self) {}
}

/// Whether espeak-ng is on this machine.
pub fn espeak_available() -> bool {
    Command::new("espeak-ng")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Synthesises `text` to a WAV file (what the sound card would play): for tests and the
/// latency benchmark.
pub fn synthesize(lang: Lang, text: &str, wav: &std::path::Path) -> Result<(), String> {
    let st = Command::new("espeak-ng")
        .args(["-v", espeak_voice(lang), "-s", "165", "-w"])
        .arg(wav)
        .args(["--", text])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .status()
        .map_err(|e| format!("espeak-ng cannot be started: {e}"))?;
    if st.success() { Ok(()) } else { Err(format!("espeak-ng failed: {st}")) }
}

/// How long espeak-ng takes from its start to its first audio sample for `text` (its WAV
/// on stdout: the header, then samples); for the latency benchmark.
pub fn first_sample_latency(lang: Lang, text: &str) -> Result<Duration, String> {
    use std::io::Read;
    let started = std::time::Instant::now();
    let mut child = Command::new("espeak-ng")
        .args(["-v", espeak_voice(lang), "-s", "165", "--stdout", "--", text])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("espeak-ng cannot be started: {e}"))?;
    let mut out = child.stdout.take().ok_or("no stdout")?;
    let mut got = 0usize;
    let mut buf = [0u8; 4096];
    // The 44-byte header, then at least one 16-bit sample.
    while got < 46 {
        match out.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(e.to_string()),
        }
    }
    let took = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    if got < 46 { Err(format!("espeak-ng gave {got} bytes")) } else { Ok(took) }
}

/// What the self-serve screen shows, as far as speech is concerned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// `attract`, `shop`, `pay`, `thanks` (or a staff screen's name).
    pub screen: String,
    pub count: i32,
    pub total: String,
    /// The newest cart line: name and amount.
    pub last_item: Option<(String, String)>,
    /// The terminal's words while paying.
    pub prompt: String,
    /// Why a payment failed, in words.
    pub pay_error: String,
    /// The message bar's text (already in the screen's language).
    pub message: String,
    /// An age-restricted item waiting for staff.
    pub age_waiting: Option<String>,
    /// Seconds left before an idle basket is dropped, once the warning shows (None before).
    pub idle_warning: Option<i32>,
    /// What the keys are on: a product and its price, or "Pay by card".
    pub focused: String,
    /// The category shown.
    pub category: String,
}

/// The words of the speech, per language.
struct Words {
    on: &'static str,
    welcome: &'static str,
    shop: &'static str,
    empty: &'static str,
    items: &'static str,
    pay: &'static str,
    reader: &'static str,
    thanks: &'static str,
    added: &'static str,
    total: &'static str,
    age: &'static str,
    idle: &'static str,
    failed: &'static str,
    enter_add: &'static str,
    enter_pay: &'static str,
}

const EN: Words = Words {
    on: "Speech on. Press F2 or hold the bottom left corner to turn it off.",
    welcome: "Welcome to self-service checkout. Scan your first item, or press Enter to start. Arrow keys move between categories and items, Enter chooses, H calls staff.",
    shop: "Shopping.",
    empty: "Your cart is empty. Scan an item's barcode.",
    items: "items in your cart, total",
    pay: "Pay by card. Total",
    reader: "Tap, insert or swipe your card at the card reader below the screen, on the right.",
    thanks: "Thank you. Your payment is done. Take your items.",
    added: "Added",
    total: "Total",
    age: "must be checked by staff. Staff are on the way; you can keep scanning.",
    idle: "Are you still there? Touch the screen or press any key for more time. Seconds left:",
    failed: "The payment did not work:",
    enter_add: "Press Enter to add it.",
    enter_pay: "Press Enter to pay.",
};

const DE: Words = Words {
    on: "Sprachausgabe an. F2 drücken oder die linke untere Ecke halten, um sie auszuschalten.",
    welcome: "Willkommen an der Selbstbedienungskasse. Scannen Sie Ihren ersten Artikel oder drücken Sie Enter. Pfeiltasten wechseln zwischen Kategorien und Artikeln, Enter wählt, H ruft das Personal.",
    shop: "Einkauf.",
    empty: "Ihr Warenkorb ist leer. Scannen Sie den Strichcode eines Artikels.",
    items: "Artikel im Warenkorb, Summe",
    pay: "Mit Karte zahlen. Summe",
    reader: "Karte auflegen, einstecken oder durchziehen, am Kartenleser unter dem Bildschirm rechts.",
    thanks: "Vielen Dank. Ihre Zahlung ist erfolgt. Bitte nehmen Sie Ihre Waren mit.",
    added: "Hinzugefügt:",
    total: "Summe",
    age: "muss vom Personal geprüft werden. Das Personal kommt; Sie können weiter scannen.",
    idle: "Sind Sie noch da? Berühren Sie den Bildschirm oder drücken Sie eine Taste für mehr Zeit. Noch Sekunden:",
    failed: "Die Zahlung hat nicht geklappt:",
    enter_add: "Enter drücken, um es hinzuzufügen.",
    enter_pay: "Enter drücken, um zu zahlen.",
};

fn words(lang: Lang) -> &'static Words {
    match lang {
        Lang::En => &EN,
        Lang::De => &DE,
    }
}

/// A failed payment in the customer's words (the screen's own), from its kind; "" when
/// nothing failed.
pub fn failure(kind: &str, lang: Lang) -> String {
    match (kind, lang) {
        ("", _) => "",
        ("declined", Lang::En) => "Your card was not accepted. Try another card, or call staff for help.",
        ("declined", Lang::De) => {
            "Ihre Karte wurde nicht angenommen. Versuchen Sie eine andere Karte oder rufen Sie das Personal."
        }
        ("unknown", Lang::En) => {
            "We could not hear back from the card reader. Touch Try again: you will not be charged twice."
        }
        ("unknown", Lang::De) => {
            "Der Kartenleser hat nicht geantwortet. Tippen Sie auf Erneut versuchen: Sie zahlen nicht doppelt."
        }
        (_, Lang::En) => "The payment did not go through. Try again, or call staff for help.",
        (_, Lang::De) => "Die Zahlung hat nicht geklappt. Versuchen Sie es erneut oder rufen Sie das Personal.",
    }
    .to_string()
}

/// The idle warning's words.
pub fn idle_phrase(lang: Lang, seconds: i32) -> String {
    format!("{} {seconds}.", words(lang).idle)
}

/// What to say when the screen goes from `before` to `now` (nothing when nothing a
/// customer needs changed). A new screen says its title first.
pub fn utterances(before: &Snapshot, now: &Snapshot, lang: Lang) -> Vec<String> {
    let w = words(lang);
    let mut out = Vec::new();
    if now.screen != before.screen {
        match now.screen.as_str() {
            "attract" => out.push(w.welcome.to_string()),
            "shop" => out.push(if now.count == 0 {
                format!("{} {}", w.shop, w.empty)
            } else {
                format!("{} {} {} {}.", w.shop, now.count, w.items, now.total)
            }),
            "pay" => out.push(format!("{} {}. {}", w.pay, now.total, w.reader)),
            "thanks" => out.push(w.thanks.to_string()),
            _ => {}
        }
    } else if now.count > before.count
        && let Some((name, amount)) = &now.last_item
    {
        out.push(format!("{} {name}, {amount}. {} {}.", w.added, w.total, now.total));
    }
    if !now.category.is_empty() && now.category != before.category && now.screen == before.screen {
        out.push(now.category.clone());
    }
    if !now.focused.is_empty() && now.focused != before.focused {
        out.push(if now.focused == "Pay by card" {
            format!("{} {}. {}", w.pay, now.total, w.enter_pay)
        } else {
            format!("{}. {}", now.focused, w.enter_add)
        });
    }
    if !now.prompt.is_empty() && now.prompt != before.prompt {
        out.push(now.prompt.clone());
    }
    if !now.pay_error.is_empty() && now.pay_error != before.pay_error {
        out.push(format!("{} {}", w.failed, now.pay_error));
    }
    if !now.message.is_empty() && now.message != before.message {
        out.push(now.message.clone());
    }
    if let Some(item) = &now.age_waiting
        && before.age_waiting.as_ref() != Some(item)
    {
        out.push(format!("{item} {}", w.age));
    }
    if let Some(s) = now.idle_warning
        && before.idle_warning.is_none()
    {
        out.push(idle_phrase(lang, s));
    }
    out
}

/// The speech of one screen: on or off, what was last seen, what was said.
pub struct Speech {
    pub on: bool,
    voice: Box<dyn Voice>,
    seen: Snapshot,
    spoken: Vec<String>,
}

impl Speech {
    pub fn new(voice: Box<dyn Voice>) -> Speech {
        Speech { on: false, voice, seen: Snapshot::default(), spoken: Vec::new() }
    }

    /// Says `text` now (when on), cutting off what is being said.
    pub fn say(&mut self, lang: Lang, text: &str) {
        if !self.on || text.is_empty() {
            return;
        }
        tracing::debug!(%text, "speech");
        if self.spoken.len() >= KEEP {
            self.spoken.remove(0);
        }
        self.spoken.push(text.to_string());
        if let Err(e) = self.voice.speak(lang, text) {
            tracing::warn!(error = %e, "speech output failed");
        }
    }

    /// Says `text` even when speech is off: the idle warning is given by sound to everyone.
    pub fn announce(&mut self, lang: Lang, text: &str) {
        let on = self.on;
        self.on = true;
        self.say(lang, text);
        self.on = on;
    }

    /// Turns speech on (saying so, then the screen as it is) or off.
    pub fn toggle(&mut self, lang: Lang, now: &Snapshot) {
        if self.on {
            self.voice.stop();
            self.on = false;
            return;
        }
        self.on = true;
        self.say(lang, words(lang).on);
        self.seen = Snapshot::default();
        self.update(lang, now.clone());
    }

    /// Speaks what changed since the last look (when on); remembers the screen either way.
    pub fn update(&mut self, lang: Lang, now: Snapshot) {
        if now == self.seen {
            return;
        }
        let said = if self.on { utterances(&self.seen, &now, lang) } else { Vec::new() };
        self.seen = now;
        // One utterance: the parts in order, so a later one does not cut off an earlier.
        if !said.is_empty() {
            self.say(lang, &said.join(" "));
        }
    }

    /// Everything said since the screen started (the newest last).
    pub fn spoken(&self) -> &[String] {
        &self.spoken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shop(count: i32, total: &str, last: Option<(&str, &str)>) -> Snapshot {
        Snapshot {
            screen: "shop".into(),
            count,
            total: total.into(),
            last_item: last.map(|(a, b)| (a.into(), b.into())),
            ..Snapshot::default()
        }
    }

    #[test]
    fn each_self_serve_screen_says_its_title_and_what_matters_on_it() {
        let attract = Snapshot { screen: "attract".into(), ..Snapshot::default() };
        let said = utterances(&Snapshot::default(), &attract, Lang::En);
        assert!(said[0].starts_with("Welcome to self-service checkout"), "{said:?}");
        let said = utterances(&attract, &shop(0, "€0.00", None), Lang::En);
        assert_eq!(said, ["Shopping. Your cart is empty. Scan an item's barcode."]);
        let said = utterances(&shop(0, "€0.00", None), &shop(1, "€2.57", Some(("Light Juice", "€2.57"))), Lang::En);
        assert_eq!(said, ["Added Light Juice, €2.57. Total €2.57."]);
        let pay = Snapshot { screen: "pay".into(), total: "€2.57".into(), count: 1, ..Snapshot::default() };
        let said = utterances(&shop(1, "€2.57", None), &pay, Lang::En);
        assert!(said[0].starts_with("Pay by card. Total €2.57. Tap, insert or swipe"), "{said:?}");
        let prompt = Snapshot { prompt: "Enter PIN".into(), ..pay.clone() };
        assert_eq!(utterances(&pay, &prompt, Lang::En), ["Enter PIN"]);
        let failed = Snapshot { pay_error: "Card declined. Try another card or call staff.".into(), ..prompt.clone() };
        assert_eq!(
            utterances(&prompt, &failed, Lang::En),
            ["The payment did not work: Card declined. Try another card or call staff."]
        );
        let thanks = Snapshot { screen: "thanks".into(), ..Snapshot::default() };
        assert!(utterances(&failed, &thanks, Lang::En)[0].starts_with("Thank you"));
        // German.
        let said = utterances(&shop(0, "0,00 €", None), &shop(1, "2,57 €", Some(("Saft", "2,57 €"))), Lang::De);
        assert_eq!(said, ["Hinzugefügt: Saft, 2,57 €. Summe 2,57 €."]);
        // The age check and the idle warning.
        let waiting = Snapshot { age_waiting: Some("Mild Wine".into()), ..shop(1, "€2.57", None) };
        assert!(utterances(&shop(1, "€2.57", None), &waiting, Lang::En)[0].starts_with("Mild Wine must be checked"));
        let idle = Snapshot { idle_warning: Some(20), ..shop(1, "€2.57", None) };
        assert!(utterances(&shop(1, "€2.57", None), &idle, Lang::En)[0].ends_with("Seconds left: 20."));
        // Nothing changed: nothing said.
        assert!(utterances(&idle, &idle, Lang::En).is_empty());
    }

    #[test]
    fn speech_is_silent_until_turned_on_and_says_so() {
        let mut s = Speech::new(Box::new(Silent));
        s.update(Lang::En, shop(0, "€0.00", None));
        assert!(s.spoken().is_empty(), "off: nothing said");
        s.toggle(Lang::En, &shop(0, "€0.00", None));
        assert_eq!(s.spoken()[0], EN.on);
        assert_eq!(s.spoken()[1], "Shopping. Your cart is empty. Scan an item's barcode.");
        s.update(Lang::En, shop(1, "€1.00", Some(("Bread", "€1.00"))));
        assert_eq!(s.spoken().last().map(String::as_str), Some("Added Bread, €1.00. Total €1.00."));
        s.toggle(Lang::En, &Snapshot::default());
        s.update(Lang::En, shop(2, "€2.00", Some(("Bread", "€1.00"))));
        assert_eq!(s.spoken().len(), 3, "off again");
    }
}
