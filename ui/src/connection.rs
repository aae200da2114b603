//! The link to edged: a loop on the network runtime that finds the daemon (api.json when
//! run from a data dir), checks `GET /v1/health`, and keeps the event stream open while a
//! token is held. While the daemon is away the header says "reconnecting"; the screens
//! keep working on what they have (the cart is local) and every write waits for it.

use crate::{Kiosk, Session, with};
use edge_api::{Event, Health, SyncStatus};
use slint::ComponentHandle;
use std::rc::Rc;
use std::time::Duration;

fn set_connected(up: bool) {
    let _ = slint::invoke_from_event_loop(move || {
        with(|_, ui| {
            let s = ui.global::<Session>();
            s.set_connected(up);
            if !up {
                s.set_live(false);
            }
        });
    });
}

fn set_live(live: bool) {
    let _ = slint::invoke_from_event_loop(move || {
        with(|_, ui| ui.global::<Session>().set_live(live));
    });
}

/// Starts the loop (once, at start).
pub fn start(k: &Rc<Kiosk>) {
    let api = k.api.clone();
    let notify = k.token_changed.clone();
    k.rt.spawn(async move {
        let mut backoff = Duration::from_millis(250);
        loop {
            let up = match api.refresh_endpoint() {
                Ok(()) => api.get::<Health>("/v1/health").await.is_ok(),
                Err(e) => {
                    tracing::debug!(error = %e, "daemon not found yet");
                    false
                }
            };
            set_connected(up);
            if !up {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(3));
                continue;
            }
            backoff = Duration::from_millis(250);
            if !api.has_token() {
                // Not logged in: no event stream; look again soon, or at once on login.
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = notify.notified() => {}
                }
                continue;
            }
            // Catch up on what the stream does not repeat: the sync state.
            poll_sync(&api).await;
            let on = |ev: Event| {
                let _ = slint::invoke_from_event_loop(move || {
                    with(|k, ui| crate::controllers::events::handle(k, ui, ev));
                });
            };
            let poll = async {
                loop {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    poll_sync(&api).await;
                }
            };
            let opened = || set_live(true);
            let why = tokio::select! {
                why = crate::api::read_events(&api, &opened, &on) => why,
                _ = notify.notified() => "the token changed".to_string(),
                _ = poll => String::new(),
            };
            set_live(false);
            tracing::info!(%why, "event stream ended; reconnecting");
        }
    });
}

async fn poll_sync(api: &crate::api::Api) {
    if let Ok(s) = api.get::<SyncStatus>("/v1/sync").await {
        let _ = slint::invoke_from_event_loop(move || {
            with(|k, ui| crate::controllers::status::apply_sync(k, ui, &s.remotes));
        });
    }
}
