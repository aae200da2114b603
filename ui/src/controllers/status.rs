//! The device panel, the drawer, and answering customers' requests (staff screens).

use super::show_error;
use crate::{AppWindow, DeviceRow, Kiosk, StatusAdapter, say};
use edge_api::{ApprovalOut, DecisionIn, DevicesList};
use slint::{ComponentHandle, Model, ModelRc, VecModel};
use std::rc::Rc;

pub fn wire(ui: &AppWindow, k: &Rc<Kiosk>) {
    let s = ui.global::<StatusAdapter>();
    let kk = k.clone();
    s.on_refresh_devices(move || {
        let api = kk.api.clone();
        kk.spawn(async move { api.get::<DevicesList>("/v1/devices").await }, |_, ui, r| match r {
            Ok(list) => {
                let rows: Vec<DeviceRow> = list.devices.into_iter().map(|d| row(ui, d)).collect();
                ui.global::<StatusAdapter>().set_devices(ModelRc::new(VecModel::from(rows)));
            }
            Err(e) => show_error(ui, &e),
        });
    });
    let kk = k.clone();
    s.on_open_drawer(move || {
        let api = kk.api.clone();
        kk.spawn(
            async move { api.post::<_, serde_json::Value>("/v1/drawer/open", &serde_json::json!({})).await },
            |_, ui, r| match r {
                Ok(_) => say(ui, "drawer-opened", "", false),
                Err(e) => show_error(ui, &e),
            },
        );
    });
    let kk = k.clone();
    s.on_decide(move |id, decision, pin| {
        let api = kk.api.clone();
        let body = DecisionIn { decision: decision.to_string(), pin: pin.to_string() };
        kk.spawn(
            async move { api.post::<_, ApprovalOut>(&format!("/v1/approvals/{id}/decision"), &body).await },
            |_, ui, r| match r {
                Ok(a) => remove_approval(ui, &a.id.to_string()),
                Err(e) => show_error(ui, &e),
            },
        );
    });
}

/// A device's row, its health in the screen's language (phrase by phrase; a phrase this
/// screen does not know stays as the daemon wrote it).
pub fn row(ui: &AppWindow, d: edge_api::DeviceOut) -> DeviceRow {
    let words = ui.global::<crate::DeviceWords>();
    let phrase = |p: &str| -> String {
        // "drawer left open (since 2026-12-07T04:13:07Z)": the time in the store's clock.
        if let Some(at) = p.strip_prefix("drawer left open (since ").and_then(|r| r.strip_suffix(')')) {
            let time = at
                .parse::<jiff::Timestamp>()
                .map(|t| t.to_zoned(jiff::tz::TimeZone::system()).strftime("%H:%M").to_string())
                .unwrap_or_else(|_| at.to_string());
            return words.invoke_left_open(time.into()).to_string();
        }
        words.invoke_of(p.into()).to_string()
    };
    let health: Vec<String> =
        d.health.split("; ").map(|part| part.split(", ").map(phrase).collect::<Vec<_>>().join(", ")).collect();
    DeviceRow { id: d.id.into(), kind: d.kind.into(), state: d.state.into(), health: health.join("; ").into() }
}

/// A device changed: its row is replaced (or added).
pub fn update_device(ui: &AppWindow, d: edge_api::DeviceOut) {
    let st = ui.global::<StatusAdapter>();
    let mut rows: Vec<DeviceRow> = st.get_devices().iter().collect();
    let r = row(ui, d);
    match rows.iter_mut().find(|x| x.id == r.id) {
        Some(x) => *x = r,
        None => rows.push(r),
    }
    st.set_devices(ModelRc::new(VecModel::from(rows)));
}

pub fn remove_approval(ui: &AppWindow, id: &str) {
    let st = ui.global::<StatusAdapter>();
    let rows: Vec<crate::ApprovalRow> = st.get_approvals().iter().filter(|a| a.id != id).collect();
    st.set_approvals(ModelRc::new(VecModel::from(rows)));
}

pub fn add_approval(ui: &AppWindow, a: &ApprovalOut) {
    let st = ui.global::<StatusAdapter>();
    let mut rows: Vec<crate::ApprovalRow> = st.get_approvals().iter().filter(|x| x.id != a.id.to_string()).collect();
    rows.push(crate::ApprovalRow {
        id: a.id.to_string().into(),
        kind: a.kind.clone().into(),
        screen: a.screen.clone().into(),
        item: a.item_name.clone().unwrap_or_default().into(),
        waiting: waiting(&a.created_at).into(),
    });
    st.set_approvals(ModelRc::new(VecModel::from(rows)));
}

fn waiting(created_at: &str) -> String {
    let Ok(t) = created_at.parse::<jiff::Timestamp>() else { return String::new() };
    let s = jiff::Timestamp::now().duration_since(t).as_secs().max(0);
    age_text(s as u64)
}

/// The offline banner: a remote that is down, or degraded (errors in the last minutes)
/// with records still waiting for it; with the records not yet delivered and the age of
/// the oldest. Staff screens only show it.
pub fn apply_sync(_k: &std::rc::Rc<crate::Kiosk>, ui: &crate::AppWindow, remotes: &[edge_api::RemoteStatus]) {
    let waiting = |r: &edge_api::RemoteStatus| r.pending + r.in_flight + r.unknown > 0;
    let offline = remotes.iter().any(|r| r.state == "down" || (r.state == "degraded" && waiting(r)));
    let unsynced: u64 = remotes.iter().map(|r| r.pending + r.in_flight + r.unknown).max().unwrap_or(0);
    let oldest = remotes.iter().filter_map(|r| r.oldest_pending_age_s).max().unwrap_or(0);
    let st = ui.global::<StatusAdapter>();
    st.set_offline(offline);
    st.set_unsynced(i32::try_from(unsynced).unwrap_or(i32::MAX));
    st.set_oldest_age(age_text(oldest).into());
    let since = jiff::Zoned::now().checked_sub(jiff::SignedDuration::from_secs(oldest as i64)).ok();
    st.set_offline_since(since.map(|z| format!("{:02}:{:02}", z.hour(), z.minute())).unwrap_or_default().into());
}

/// `45 s`, `12 min`, `3 h 5 min`.
pub fn age_text(s: u64) -> String {
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}
