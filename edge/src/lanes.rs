//! The other lanes of the store, as edged wires them (`[bus]`): connecting to the store's
//! bus, following it into the replica, the lanes' view for `GET /v1/lanes` and
//! `edgectl lanes`, and the store-wide X report. The protocol and its decisions are in
//! `edge_sync::bus`; the replica is the store's (`Store::apply_lane_messages`).

use crate::app::App;
use crate::config::{BusConfig, Config};
use edge_api::{Event, LaneFlagOut, LaneOut, LanesOut};
use edge_sync::bus::live::{Bus, BusSetup, LANE_STALE};
use edge_sync::store::Store;
use jiff::Timestamp;
use std::sync::Arc;

const META_INSTANCE: &str = "bus.instance";

/// This box's instance id: made once, kept in the store (two boxes configured with one
/// lane id are told apart by it).
fn instance(store: &Arc<dyn Store>) -> Result<uuid::Uuid, String> {
    if let Some(v) = store.meta_get(META_INSTANCE).map_err(|e| e.to_string())?
        && let Ok(id) = uuid::Uuid::from_slice(&v)
    {
        return Ok(id);
    }
    let id = uuid::Uuid::now_v7();
    store.meta_set(META_INSTANCE, id.as_bytes()).map_err(|e| e.to_string())?;
    Ok(id)
}

/// Connects to the store's bus (in the background: the lane sells while it is down), and
/// makes the stock source's confirmations notes for the other lanes.
pub async fn connect(cfg: &Config, b: &BusConfig, store: &Arc<dyn Store>) -> Result<Bus, String> {
    let setup = BusSetup {
        url: b.url.clone(),
        lane: cfg.lane_id.clone(),
        lane_name: cfg.lane_name.clone(),
        credentials: b.credentials.clone(),
        instance: instance(store)?,
    };
    let bus = Bus::connect(setup).await?;
    store.set_note_feed(cfg.catalog.map(|r| (r, cfg.lane_id.clone())));
    tracing::info!(url = %b.url, lane = %cfg.lane_id, "store bus: connecting");
    Ok(bus)
}

/// Starts following the bus; staff hear of every over-refund it finds.
pub fn spawn(app: &Arc<App>, bus: &Bus) -> Vec<tokio::task::JoinHandle<()>> {
    let events = app.events.clone();
    let store = app.store.clone();
    let on_applied = Arc::new(move |a: &edge_sync::store::LaneApplied| {
        if a.flagged > 0 {
            let last = store.lane_flags().ok().and_then(|f| f.last().cloned());
            let text = match last {
                Some(f) => format!("Refunded twice across lanes: {}", f.detail),
                None => format!("{} refunds across lanes took more than was sold", a.flagged),
            };
            tracing::warn!(%text, "lanes");
            let _ = events.send(Event::StaffAlert { at: Timestamp::now().to_string(), text });
        }
    });
    bus.spawn(app.store.clone(), on_applied, app.stopping.subscribe())
}

/// Every lane seen: from the lanes' bucket (heartbeats) and from the records held here.
pub fn view(app: &App) -> Result<LanesOut, String> {
    let now = Timestamp::now();
    let seen = app.store.lanes_seen().map_err(|e| e.to_string())?;
    let flags = app.store.lane_flags().map_err(|e| e.to_string())?;
    let v = app.bus.as_ref().map(Bus::view);
    let mut lanes: std::collections::BTreeMap<String, LaneOut> = std::collections::BTreeMap::new();
    let me = &app.cfg.lane_id;
    lanes.insert(
        me.clone(),
        LaneOut {
            lane: me.clone(),
            name: Some(app.cfg.lane_name.clone()),
            this: true,
            state: "up".into(),
            unpublished: Some(
                app.store
                    .outbox_counts()
                    .get(&edge_sync::domain::Remote::Bus)
                    .map_or(0, |c| c.pending + c.in_flight + c.unknown),
            ),
            lag: v.as_ref().map(|v| v.me.lag),
            last_heartbeat_at: v.as_ref().and_then(|v| v.me.at).map(|t| t.to_string()),
            ..Default::default()
        },
    );
    if let Some(v) = &v {
        for (id, st) in &v.lanes {
            if id == me {
                continue;
            }
            let fresh =
                st.at.is_some_and(|t| (now.as_millisecond() - t.as_millisecond()) < LANE_STALE.as_millis() as i64);
            let l = lanes.entry(id.clone()).or_insert_with(|| LaneOut { lane: id.clone(), ..Default::default() });
            l.name = Some(st.name.clone());
            l.state = if fresh { "up" } else { "gone" }.into();
            l.last_heartbeat_at = st.at.map(|t| t.to_string());
            l.unpublished = Some(st.unpublished);
            l.lag = Some(st.lag);
        }
    }
    for s in seen {
        let l = lanes.entry(s.lane.clone()).or_insert_with(|| LaneOut {
            lane: s.lane.clone(),
            state: "unknown".into(),
            ..Default::default()
        });
        l.records_here = s.records;
        l.last_record_at = s.last_at.map(|t| t.to_string());
        l.last_z = (s.z_number > 0).then_some(s.z_number);
    }
    let bus = match &v {
        None => "off",
        Some(v) if v.connected && v.ready => "connected",
        Some(v) if v.connected => "connecting",
        Some(_) => "down",
    };
    Ok(LanesOut {
        lane: me.clone(),
        bus_url: v.as_ref().map(|v| v.url.clone()),
        bus: bus.into(),
        bus_error: v.as_ref().and_then(|v| v.last_error.clone()),
        conflict: v.as_ref().and_then(|v| v.conflict.clone()),
        lanes: lanes.into_values().collect(),
        flags: flags
            .into_iter()
            .map(|f| LaneFlagOut {
                id: f.id,
                at: f.at.to_string(),
                kind: f.kind,
                lane: f.lane,
                record_id: f.record_id,
                detail: f.detail,
            })
            .collect(),
    })
}

/// The checkout's claims across lanes, through the bus (blocking: called from the
/// checkout's blocking threads, never from the runtime's own).
pub struct BusClaims {
    bus: Bus,
    store: Arc<dyn Store>,
    rt: tokio::runtime::Handle,
}

impl BusClaims {
    pub fn new(bus: Bus, store: Arc<dyn Store>, rt: tokio::runtime::Handle) -> BusClaims {
        BusClaims { bus, store, rt }
    }
}

fn outcome(c: edge_sync::bus::live::Claim) -> crate::checkout::ports::ClaimOutcome {
    use crate::checkout::ports::ClaimOutcome;
    match c {
        edge_sync::bus::live::Claim::Granted => ClaimOutcome::Granted,
        edge_sync::bus::live::Claim::Refused(w) => ClaimOutcome::Refused(w),
        edge_sync::bus::live::Claim::Unreachable(w) => ClaimOutcome::Unreachable(w),
    }
}

impl crate::checkout::ports::LaneClaims for BusClaims {
    fn claim_stock(
        &self,
        sku: &str,
        qty: i64,
        available: i64,
        sale: uuid::Uuid,
    ) -> crate::checkout::ports::ClaimOutcome {
        let store = self.store.clone();
        // A claim on a sale this lane holds (its own or applied from the bus) is counted
        // in what it shows already; what it shows is read again after the claims.
        let known = move |id: &uuid::Uuid| store.lane_sale(id).ok().flatten().is_some();
        let store = self.store.clone();
        let shown = move || store.stock(sku).ok().and_then(|l| l.available()).unwrap_or(available);
        outcome(self.rt.block_on(self.bus.claim_stock(sku, qty, &shown, sale, &known)))
    }

    fn claim_refund(
        &self,
        orig: uuid::Uuid,
        refund: uuid::Uuid,
        lines: &[(u32, u64, u64, u64)],
    ) -> crate::checkout::ports::ClaimOutcome {
        outcome(self.rt.block_on(self.bus.claim_refund(orig, refund, lines)))
    }

    fn lanes(&self) -> u32 {
        self.bus.lanes_known()
    }
}
