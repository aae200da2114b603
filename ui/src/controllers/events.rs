//! What the daemon's event stream changes on the screen.

use crate::{AppWindow, Kiosk, Mode, PayAdapter, Session, StatusAdapter};
use crate::{PayState, Screen};
use edge_api::Event;
use slint::ComponentHandle;
use std::rc::Rc;

pub fn handle(k: &Rc<Kiosk>, ui: &AppWindow, ev: Event) {
    let screen = ui.global::<Session>().get_screen();
    match ev {
        Event::Scan { data, gtin, lot, expiry, .. } => {
            let code = gtin.unwrap_or(data);
            let lot = lot.zip(expiry);
            match k.opts.mode {
                Mode::Staff if screen == Screen::Register => super::sell::add_code(k, &code, lot),
                Mode::SelfServe if screen == Screen::Attract => {
                    super::selfserve::start_shopping(k, ui);
                    super::sell::add_code(k, &code, lot);
                }
                Mode::SelfServe if screen == Screen::Shop => super::sell::add_code(k, &code, lot),
                // A receipt's barcode on the refunds screen opens its sale.
                Mode::Staff if screen == Screen::Refunds => super::reports::find(k, &code),
                _ => tracing::debug!(?screen, "scan ignored on this screen"),
            }
        }
        Event::TerminalPrompt { text, .. } => {
            if ui.global::<PayAdapter>().get_state() == PayState::Working {
                ui.global::<PayAdapter>().set_prompt(text.into());
            }
        }
        Event::SyncStatus { remotes, .. } => super::status::apply_sync(k, ui, &remotes),
        Event::DeviceStatus { device, .. } => super::status::update_device(ui, device),
        Event::StaffAlert { text, .. } => ui.global::<StatusAdapter>().set_alert(text.into()),
        Event::ApprovalRequested { approval, .. } => {
            if k.opts.mode == Mode::Staff {
                super::status::add_approval(ui, &approval);
            }
        }
        Event::ApprovalDecided { approval, .. } => match k.opts.mode {
            Mode::Staff => super::status::remove_approval(ui, &approval.id.to_string()),
            Mode::SelfServe => super::selfserve::decided(k, ui, &approval),
        },
        Event::Stopping { .. } => ui.global::<Session>().set_connected(false),
        // The register offers a reprint (the sale's receipt endpoint) when one failed.
        Event::ReceiptFailed { sale_id, reason, .. } if k.opts.mode == Mode::Staff => {
            ui.global::<StatusAdapter>().set_alert(
                format!("Receipt of sale {sale_id} not printed: {reason}. Reprint it once the printer is back.").into(),
            )
        }
        Event::DrawerFailed { reason, .. } if k.opts.mode == Mode::Staff => {
            ui.global::<StatusAdapter>().set_alert(format!("Cash drawer did not open: {reason}").into())
        }
        Event::ReceiptFailed { .. }
        | Event::ReceiptPrinted { .. }
        | Event::DrawerOpened { .. }
        | Event::DrawerFailed { .. } => {}
        Event::Lagged { .. } | Event::SaleCompleted { .. } | Event::PaymentStatus { .. } => {}
    }
}
