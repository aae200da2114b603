//! Renders every screen of one mode in one language to PNG files, against a real
//! `edged demo`, and lists any text that does not fit its space (exit 1 if there is one).
//! Run under X (Xvfb) with the software renderer: `scripts/screenshots` does all four.
//!
//! `cargo run -p edge-kiosk --example screenshots -- --out DIR --mode staff|self-serve --lang en|de`

#[path = "../tests/support/mod.rs"]
mod support;

use edge_kiosk::{AppWindow, CartAdapter, Mode, PayAdapter, ReportsAdapter, Session, StatusAdapter, Theme};
use edge_kiosk::{PayState, Screen};
use slint::{ComponentHandle, Model};
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::*;

struct Shots {
    out: PathBuf,
    prefix: String,
    /// At the size and scale the screenshots are taken at: these fail the run.
    cut: Vec<String>,
    /// At the other sizes, at double text and in the other theme (the matrix): they fail
    /// the run too, and are kept in geometry-*.txt beside the pictures.
    matrix: Vec<String>,
    taken: Vec<String>,
    /// The window sizes every screen is checked at (px).
    sizes: Vec<(u32, u32)>,
}

/// Text scales every screen is checked at: as set, and doubled (WCAG 1.4.4).
const SCALES: [f32; 2] = [1.0, 2.0];

impl Shots {
    async fn take(&mut self, ui: &AppWindow, name: &str) {
        // Let bindings, layouts and the event stream settle.
        sleep(Duration::from_millis(400)).await;
        let file = format!("{}-{name}.png", self.prefix);
        let buf = ui.window().take_snapshot().expect("snapshot");
        write_png(&self.out.join(&file), buf.width(), buf.height(), buf.as_bytes());
        for t in cut_off(ui) {
            self.cut.push(format!("{file}: {t:?} is cut off"));
        }
        for b in small_buttons(ui) {
            self.cut.push(format!("{file}: button {b} is under 48 px"));
        }
        for g in geometry_violations(ui) {
            self.cut.push(format!("{file}: {g}"));
        }
        self.taken.push(file);
        // The same screen at every size and text scale: checked, not saved.
        let theme = ui.global::<Theme>();
        let scale = theme.get_font_scale();
        let contrast = theme.get_high_contrast();
        for (w, h) in self.sizes.clone() {
            for s in SCALES {
                for hc in [false, true] {
                    ui.window().set_size(slint::PhysicalSize::new(w, h));
                    theme.set_font_scale(s);
                    theme.set_high_contrast(hc);
                    // The geometry is read from the laid-out tree, not from a frame: a short
                    // pause lets timers and the event loop settle.
                    sleep(Duration::from_millis(40)).await;
                    let theme_name = if hc { "high contrast" } else { "normal contrast" };
                    let at = format!("{}-{name} at {w}x{h}, text x{s}, {theme_name}", self.prefix);
                    for t in cut_off(ui) {
                        self.matrix.push(format!("{at}: {t:?} is cut off"));
                    }
                    for g in geometry_violations(ui) {
                        self.matrix.push(format!("{at}: {g}"));
                    }
                }
            }
        }
        ui.window().set_size(slint::PhysicalSize::new(1280, 800));
        theme.set_font_scale(scale);
        theme.set_high_contrast(contrast);
        sleep(Duration::from_millis(150)).await;
    }
}

fn write_png(path: &Path, w: u32, h: u32, rgba: &[u8]) {
    let f = std::fs::File::create(path).expect("png file");
    let mut enc = png::Encoder::new(std::io::BufWriter::new(f), w, h);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let mut wr = enc.write_header().expect("png header");
    wr.write_image_data(rgba).expect("png data");
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut out, mut mode, mut lang) = (PathBuf::from("docs/screenshots"), Mode::Staff, "en".to_string());
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_default();
        match a.as_str() {
            "--out" => out = PathBuf::from(v),
            "--mode" => mode = Mode::parse(&v).unwrap_or_else(|e| panic!("{e}")),
            "--lang" => lang = v,
            other => panic!("unknown argument {other}"),
        }
    }
    std::fs::create_dir_all(&out).expect("out dir");
    let mut demo = Demo::start();
    let ui = kiosk(&demo, mode);
    ui.window().set_size(slint::PhysicalSize::new(1280, 800));
    edge_kiosk::controllers::session::select_language_now(&ui, &lang);
    let prefix = format!("{}-{lang}", mode.as_str());
    let prefix_name = prefix.clone();
    let ui2 = ui.clone_strong();
    let out2 = out.clone();
    let report = std::rc::Rc::new(std::cell::RefCell::new((Vec::new(), Vec::new(), Vec::new())));
    let rep = report.clone();
    run_flow(async move {
        let ui = ui2;
        let mut sizes = vec![(1280, 800), (1024, 768), (1920, 1080)];
        if mode == Mode::SelfServe {
            // A self-serve kiosk often stands in portrait.
            sizes.push((1080, 1920));
        }
        let mut shots = Shots { out: out2, prefix, cut: Vec::new(), matrix: Vec::new(), taken: Vec::new(), sizes };
        let s = ui.global::<Session>();
        let unit = demo_index(|it| it.kind == edge_sync::domain::ItemKind::Unit && !it.age_restricted);
        let unit2 = demo_index(|it| {
            it.kind == edge_sync::domain::ItemKind::Unit && !it.age_restricted && it.sku != demo_item(unit).sku
        });
        let weighed = demo_index(|it| it.kind == edge_sync::domain::ItemKind::Weight);
        let wine = demo_index(|it| it.age_restricted && it.kind == edge_sync::domain::ItemKind::Unit);
        match mode {
            Mode::Staff => {
                wait_for("the daemon", 60, || s.get_connected()).await;
                shots.take(&ui, "login").await;
                staff_login(&ui, "1111").await;
                let c = ui.global::<CartAdapter>();
                for code in [demo_ean(unit), demo_ean(unit2), demo_ean(weighed), demo_ean(unit)] {
                    demo.scan(&code);
                    sleep(Duration::from_millis(300)).await;
                }
                wait_for("the cart", 10, || c.get_count() >= 4).await;
                ui.global::<edge_kiosk::CatalogAdapter>().invoke_search("cheese".into());
                demo.scan(&demo_ean(wine));
                wait_for("the age check", 10, || !c.get_age_question().is_empty()).await;
                shots.take(&ui, "age-check").await;
                click(&ui, &first_label(&ui, &["Yes", "Ja"]));
                wait_for("the wine", 10, || c.get_lines().row_count() >= 4).await;
                shots.take(&ui, "register").await;
                click(&ui, &first_label(&ui, &["Price", "Preis"]));
                shots.take(&ui, "price-override").await;
                click(&ui, &first_label(&ui, &["Cancel", "Abbrechen"]));
                click(&ui, &first_label(&ui, &["Void sale", "Stornieren"]));
                shots.take(&ui, "void").await;
                click(&ui, &first_label(&ui, &["Cancel", "Abbrechen"]));
                click(&ui, &first_label(&ui, &["Pay cash", "Bar zahlen"]));
                shots.take(&ui, "cash").await;
                click(&ui, "1");
                click(&ui, "00");
                shots.take(&ui, "cash-typed").await;
                click(&ui, &first_label(&ui, &["Take cash", "Bargeld annehmen", "Bar annehmen"]));
                wait_for("done", 20, || s.get_screen() == Screen::Done).await;
                shots.take(&ui, "done").await;
                s.invoke_go(Screen::Register);
                demo.scan(&demo_ean(unit));
                wait_for("the cart", 10, || c.get_count() == 1).await;
                // The card screen as it looks while the terminal works.
                let p = ui.global::<PayAdapter>();
                p.set_total(c.get_total());
                p.set_state(PayState::Working);
                p.set_prompt(if lang == "de" { "Karte bitte" } else { "Insert card" }.into());
                s.set_screen(Screen::PayCard);
                shots.take(&ui, "card").await;
                p.set_state(PayState::Idle);
                s.set_screen(Screen::Register);
                // Customers' requests on the staff screen.
                let ask = |body: serde_json::Value| {
                    reqwest::blocking::Client::new()
                        .post(format!("{}/v1/approvals", demo.url))
                        .bearer_auth(&demo.tokens.kiosk)
                        .json(&body)
                        .send()
                        .expect("ask");
                };
                ask(serde_json::json!({"kind": "age", "screen": "kiosk-2", "sku": demo_item(wine).sku}));
                ask(serde_json::json!({"kind": "help", "screen": "kiosk-3"}));
                let st = ui.global::<StatusAdapter>();
                wait_for("the requests", 10, || st.get_approvals().row_count() == 2).await;
                shots.take(&ui, "requests").await;
                click(&ui, &first_label(&ui, &["Approve age", "Alter bestätigen"]));
                shots.take(&ui, "decide-pin").await;
                enter_pin(&ui, "1111", "OK");
                s.invoke_go(Screen::Refunds);
                wait_for("today's sales", 10, || ui.global::<ReportsAdapter>().get_sales().row_count() > 0).await;
                shots.take(&ui, "refunds").await;
                // The first receipt, as if its barcode were scanned; one piece of its first line.
                let r = ui.global::<ReportsAdapter>();
                r.invoke_find("1-000001".into());
                wait_for("the receipt opened", 10, || !r.get_open_id().is_empty()).await;
                r.invoke_choose(0, 1);
                click(&ui, &first_label(&ui, &["Damaged", "Beschädigt"]));
                shots.take(&ui, "refund-from-receipt").await;
                let amount = r.get_refund_amount().to_string();
                click(
                    &ui,
                    &first_label(&ui, &[&format!("Refund {amount} in cash"), &format!("{amount} bar erstatten")]),
                );
                shots.take(&ui, "refund-dialog").await;
                click(&ui, &first_label(&ui, &["Cancel", "Abbrechen"]));
                r.invoke_close_sale();
                s.invoke_go(Screen::Reports);
                ui.global::<ReportsAdapter>().invoke_x_report();
                wait_for("the X report", 10, || ui.global::<ReportsAdapter>().get_rows().row_count() > 0).await;
                shots.take(&ui, "reports").await;
                // Z: after the manager's PIN, the day's figures and the question.
                ui.global::<ReportsAdapter>().invoke_z_report("9999".into());
                wait_for("the Z question", 10, || ui.global::<ReportsAdapter>().get_z_confirm()).await;
                shots.take(&ui, "z-confirm").await;
                ui.global::<ReportsAdapter>().invoke_z_cancelled();
                s.invoke_go(Screen::Devices);
                wait_for("the devices", 10, || st.get_devices().row_count() > 0).await;
                shots.take(&ui, "devices").await;
                // The fake cloud goes down: a sale waits, the banner says so.
                let cloud = demo.fake_url("cloud");
                demo.post(&format!("{cloud}/_fake/faults"), &serde_json::json!({"down": true}));
                s.invoke_go(Screen::Register);
                click(&ui, &first_label(&ui, &["Pay cash", "Bar zahlen"]));
                click(&ui, &first_label(&ui, &["Exact", "Passend"]));
                wait_for("done", 20, || s.get_screen() == Screen::Done).await;
                s.invoke_go(Screen::Register);
                wait_for("the offline banner", 60, || st.get_offline()).await;
                demo.scan(&demo_ean(unit2));
                wait_for("the cart", 10, || c.get_count() == 1).await;
                shots.take(&ui, "offline").await;
                ui.global::<Theme>().set_high_contrast(true);
                ui.global::<Theme>().set_font_scale(1.4);
                shots.take(&ui, "register-high-contrast-large").await;
            }
            Mode::SelfServe => {
                wait_for("the event stream", 60, || s.get_live()).await;
                shots.take(&ui, "attract").await;
                click(&ui, &first_label(&ui, &["Touch to start", "Zum Starten berühren"]));
                wait_for("the categories", 10, || {
                    ui.global::<edge_kiosk::CatalogAdapter>().get_categories().row_count() > 0
                })
                .await;
                ui.global::<edge_kiosk::CatalogAdapter>().invoke_browse("bakery".into());
                demo.scan(&demo_ean(unit));
                demo.scan(&demo_ean(unit2));
                let c = ui.global::<CartAdapter>();
                wait_for("the cart", 10, || c.get_count() == 2).await;
                shots.take(&ui, "shop").await;
                demo.scan(&demo_ean(wine));
                let ss = ui.global::<edge_kiosk::SelfServeAdapter>();
                wait_for("the age check", 10, || ss.get_age_check() == "waiting").await;
                shots.take(&ui, "age-check").await;
                let pending = demo.get("/v1/approvals", &demo.tokens.cashier);
                let id = pending["approvals"][0]["id"].as_str().unwrap_or_default().to_string();
                reqwest::blocking::Client::new()
                    .post(format!("{}/v1/approvals/{id}/decision", demo.url))
                    .bearer_auth(&demo.tokens.cashier)
                    .json(&serde_json::json!({"decision": "approve", "pin": "1111"}))
                    .send()
                    .expect("decide");
                wait_for("approved", 10, || ss.get_age_check().is_empty()).await;
                click(&ui, &first_label(&ui, &["Call staff", "Personal rufen"]));
                wait_for("help called", 10, || s.get_message_code() == "help-called").await;
                shots.take(&ui, "help-called").await;
                let p = ui.global::<PayAdapter>();
                p.set_total(c.get_total());
                p.set_state(PayState::Working);
                p.set_prompt(if lang == "de" { "Karte bitte" } else { "Insert card" }.into());
                s.set_screen(Screen::Pay);
                shots.take(&ui, "pay").await;
                p.set_state(PayState::Failed);
                p.set_error(if lang == "de" { "Karte abgelehnt (05)" } else { "card declined (05)" }.into());
                p.set_error_kind("declined".into());
                shots.take(&ui, "pay-failed").await;
                p.set_state(PayState::Idle);
                s.set_screen(Screen::Shop);
                ui.global::<edge_kiosk::SelfServeAdapter>().invoke_pay();
                wait_for("thanks", 30, || s.get_screen() == Screen::Thanks).await;
                shots.take(&ui, "thanks").await;
                click(&ui, &first_label(&ui, &["No receipt", "Kein Bon"]));
                ui.global::<Theme>().set_high_contrast(true);
                ui.global::<Theme>().set_font_scale(1.4);
                click(&ui, &first_label(&ui, &["Touch to start", "Zum Starten berühren"]));
                ui.global::<edge_kiosk::CatalogAdapter>().invoke_browse("drinks".into());
                demo.scan(&demo_ean(unit));
                wait_for("the cart", 10, || c.get_count() == 1).await;
                shots.take(&ui, "shop-high-contrast-large").await;
            }
        }
        *rep.borrow_mut() = (shots.taken, shots.cut, shots.matrix);
    });
    let (taken, cut, matrix) = report.borrow().clone();
    println!("{} screenshots in {}", taken.len(), out.display());
    // The matrix's findings, kept beside the screenshots for the reviewer.
    let file = out.join(format!("geometry-{prefix_name}.txt"));
    std::fs::write(&file, matrix.join("\n") + "\n").expect("geometry report");
    println!("{} geometry findings at other sizes, double text and the other theme: {}", matrix.len(), file.display());
    if !matrix.is_empty() {
        eprintln!("the layout fails at other sizes, text scales or themes:\n{}", matrix.join("\n"));
        std::process::exit(1);
    }
    if !cut.is_empty() {
        eprintln!("not fit for a touch screen:\n{}", cut.join("\n"));
        std::process::exit(1);
    }
}
