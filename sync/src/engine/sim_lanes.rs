//! Deterministic simulation of a store's lanes on a modelled bus.
//!
//! Each lane is an actor with the production publishing path — its [`SimStore`] (durable
//! commits, a crash keeps only what was durable), the real [`Worker`] and the real
//! [`BusConnector`] — and a modelled consumer with the production rule: apply to the
//! replica, make it durable, then ack. The bus is a modelled JetStream stream: it keeps
//! every message it stores (file storage survives its crashes), drops a repeated
//! `Nats-Msg-Id` within its duplicate window, and remembers each lane's ack floor.
//!
//! One seed decides the faults: a lane cut off from the server (nothing sent, nothing
//! delivered), a lane crashed (its worker and everything not durable gone; the consumer's
//! unacked messages are redelivered), the server crashed (a batch stored but its acks
//! lost), and acks lost on the way back to a consumer. Checked after every step: a replica
//! holds only records that their own lane committed, none applied twice, and nothing of
//! its own lane. Checked after healing: every record of every lane is in every other lane's
//! replica exactly once, and every bus entry is confirmed.

use super::sim::{SimStore, new_uuid, now_ts, sim_item};
use super::{Jitter, Policy, Poll, Worker};
use crate::bus::{BusConnector, LaneMessage, PublishBatch, PublishReply, Published};
use crate::domain::{
    LineRequest, OutboxEntry, OutboxState, RecordKind, Remote, Sale, SaleStatus, TaxMode, Tender, price_line, settle,
};
use crate::money::Currency;
use crate::wire::{HttpResponse, TransportError};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// What a run of the lanes' simulation did.
#[derive(Debug, Default, Clone)]
pub struct LanesReport {
    pub sales: usize,
    pub published: usize,
    pub deduplicated: usize,
    pub delivered: usize,
    pub redelivered: usize,
    pub lane_crashes: u32,
    pub server_crashes: u32,
    pub cuts: u32,
}

struct StreamMsg {
    lane: String,
    msg: LaneMessage,
}

/// The modelled store stream.
#[derive(Default)]
struct Stream {
    msgs: Vec<StreamMsg>,
    /// `Nats-Msg-Id` → time stored (the duplicate window).
    ids: BTreeMap<String, i64>,
}

struct Lane {
    id: String,
    store: SimStore,
    worker: Worker,
    cut: bool,
    /// The consumer's durable ack floor (index into the stream) and the messages delivered
    /// beyond it but not acked yet.
    acked: usize,
    /// Replica: record id → times applied (durable: applied then synced before any ack).
    replica: BTreeMap<Uuid, u32>,
    /// The request in flight: its batch number and the publish batch.
    inflight: Option<(u64, PublishBatch)>,
}

const WINDOW_MS: i64 = 60_000;

fn sale_at(lane: &str, rng: &mut Jitter, now_ms: i64, n: usize) -> Result<Sale, String> {
    let at = now_ts(now_ms);
    let bd = at.to_zoned(jiff::tz::TimeZone::UTC).date();
    let item = sim_item(rng.below(1000));
    let l = price_line(1, &item, &LineRequest::Units(1 + rng.below(3)), None, TaxMode::Inclusive, Currency::EUR, bd)
        .map_err(|e| format!("sim sale line: {e}"))?;
    let lines = vec![l];
    let tenders = vec![Tender::Cash { amount_minor: lines[0].gross_minor }];
    let (net, tax, total, tendered, change) =
        settle(&lines, &tenders, Currency::EUR).map_err(|e| format!("sim sale settle: {e}"))?;
    Ok(Sale {
        id: new_uuid(rng, now_ms),
        status: SaleStatus::Completed,
        kind: crate::domain::SaleKind::Sale,
        refund_of: None,
        reason: None,
        created_at: at,
        business_date: bd,
        store_id: "store-001".into(),
        currency: Currency::EUR,
        tax_mode: TaxMode::Inclusive,
        lines,
        tenders,
        net_minor: net,
        tax_minor: tax,
        total_minor: total,
        tendered_minor: tendered,
        change_minor: change,
        request_id: format!("sim-lane-{lane}-{n}"),
        actor: "cashier".into(),
        approved_by: None,
        receipt_no: Some(crate::domain::receipt_no(lane, n as u64)),
        lane: Some(lane.to_string()),
        cashier: None,
        age_check: None,
    })
}

fn worker(lane: &str, seed: u64) -> Worker {
    let policy = Policy {
        max_batch: 8,
        max_in_flight: 1,
        backoff_base_ms: 100,
        backoff_max_ms: 2_000,
        breaker_open_ms: 2_000,
        ..Policy::default()
    };
    Worker::new(Remote::Bus, Box::new(BusConnector::new(lane)), policy, seed)
}

/// Runs one seed: `steps` steps of trading with faults, then healing.
pub fn run_lanes(seed: u64, lanes: usize, steps: usize) -> Result<LanesReport, String> {
    let mut rng = Jitter::new(seed);
    let mut now_ms: i64 = 1_767_225_600_000;
    let mut stream = Stream::default();
    let mut report = LanesReport::default();
    let mut made: BTreeMap<Uuid, String> = BTreeMap::new();
    let mut per_lane_sales: BTreeMap<String, usize> = BTreeMap::new();
    let mut ls: Vec<Lane> = (0..lanes)
        .map(|i| Lane {
            id: (i + 1).to_string(),
            store: SimStore::default(),
            worker: worker(&(i + 1).to_string(), seed ^ i as u64),
            cut: false,
            acked: 0,
            replica: BTreeMap::new(),
            inflight: None,
        })
        .collect();
    let mut lose_acks = false;
    for step in 0..steps + 4000 {
        let healing = step >= steps;
        now_ms += 1 + rng.below(40) as i64;
        let i = rng.below(lanes as u64 - 1) as usize;
        let roll = if healing { 25 + rng.below(74) } else { rng.below(99) };
        if healing {
            lose_acks = false;
            for l in &mut ls {
                l.cut = false;
            }
        }
        match roll {
            // A sale, durable with its bus entry.
            0..=24 => {
                let n = per_lane_sales.entry(ls[i].id.clone()).or_default();
                *n += 1;
                let sale = sale_at(&ls[i].id, &mut rng, now_ms, *n)?;
                let e = OutboxEntry {
                    id: new_uuid(&mut rng, now_ms),
                    remote: Remote::Bus,
                    kind: RecordKind::Sale,
                    record_id: sale.id,
                    state: OutboxState::Pending,
                    attempts: 0,
                    created_at: now_ts(now_ms),
                    updated_at: now_ts(now_ms),
                    request_id: sale.request_id.clone(),
                };
                made.insert(sale.id, ls[i].id.clone());
                ls[i].store.commit(sale, vec![e]);
                report.sales += 1;
            }
            // Faults.
            95 if !healing => {
                ls[i].cut = !ls[i].cut;
                report.cuts += 1;
            }
            96 if !healing => {
                // SIGKILL: the worker's memory and anything not durable are gone; the
                // consumer's unacked deliveries come again.
                ls[i].store.crash();
                ls[i].worker = worker(&ls[i].id, rng.next_u64());
                ls[i].inflight = None;
                report.lane_crashes += 1;
            }
            97 if !healing => {
                lose_acks = true;
                report.server_crashes += 1;
            }
            98 if !healing => lose_acks = false,
            // The lane's worker publishes.
            25..=69 => {
                let l = &mut ls[i];
                if l.inflight.is_none() {
                    match l.worker.poll(now_ts(now_ms), &l.store).map_err(|e| e.to_string())? {
                        Poll::Send(b) => {
                            let batch: PublishBatch = serde_json::from_slice(&b.request.body)
                                .map_err(|e| format!("the connector's batch is unreadable: {e}"))?;
                            l.inflight = Some((b.seq, batch));
                        }
                        Poll::WaitUntil(_) | Poll::Idle => {}
                    }
                }
                if let Some((seq, batch)) = l.inflight.take() {
                    let reply: Result<HttpResponse, TransportError> = if l.cut {
                        Err(TransportError::Connect("cut off".into()))
                    } else {
                        let mut results = Vec::new();
                        for m in &batch.messages {
                            let dup = stream.ids.get(&m.id).is_some_and(|t| now_ms - t < WINDOW_MS);
                            if dup {
                                report.deduplicated += 1;
                            } else {
                                let msg: LaneMessage = serde_json::from_value(m.data.clone())
                                    .map_err(|e| format!("published message unreadable: {e}"))?;
                                stream.ids.insert(m.id.clone(), now_ms);
                                stream.msgs.push(StreamMsg { lane: l.id.clone(), msg });
                                report.published += 1;
                            }
                            results.push(Published {
                                id: m.id.clone(),
                                seq: Some(stream.msgs.len() as u64),
                                duplicate: dup,
                                error: None,
                            });
                        }
                        if lose_acks {
                            // Stored, but the server went down before the acks left.
                            Err(TransportError::NoReply("server crashed".into()))
                        } else {
                            let body = serde_json::to_value(PublishReply { results }).map_err(|e| e.to_string())?;
                            Ok(HttpResponse::json(200, &body))
                        }
                    };
                    l.worker.on_reply(now_ts(now_ms), &l.store, seq, reply).map_err(|e| e.to_string())?;
                }
            }
            // The lane's consumer: a batch delivered, applied, made durable, acked.
            _ => {
                let l = &mut ls[i];
                if l.cut {
                    continue;
                }
                let end = (l.acked + 1 + rng.below(8) as usize).min(stream.msgs.len());
                for m in &stream.msgs[l.acked..end] {
                    if m.lane == l.id {
                        continue;
                    }
                    if let LaneMessage::Sale { sale, .. } = &m.msg {
                        let n = l.replica.entry(sale.id).or_default();
                        *n += 1;
                        if *n > 1 {
                            report.redelivered += 1;
                        } else {
                            report.delivered += 1;
                        }
                    }
                }
                // The ack may be lost (a redelivery follows); the replica was durable first.
                if !(lose_acks && rng.below(2) == 0) {
                    l.acked = end;
                }
            }
        }
        // Invariants, every step.
        for l in &ls {
            for (id, _) in l.replica.iter() {
                match made.get(id) {
                    None => return Err(format!("step {step}: lane {} holds {id}, which no lane made", l.id)),
                    Some(o) if *o == l.id => {
                        return Err(format!("step {step}: lane {} applied its own record {id}", l.id));
                    }
                    Some(_) => {}
                }
            }
        }
    }
    // Healed: everything published, everything everywhere, once.
    for l in &ls {
        let waiting = l.store.entries().iter().filter(|e| !matches!(e.state, OutboxState::Confirmed { .. })).count();
        if waiting > 0 {
            return Err(format!("lane {}: {waiting} bus entries not confirmed after healing", l.id));
        }
        for (id, origin) in &made {
            if *origin == l.id {
                continue;
            }
            if !l.replica.contains_key(id) {
                return Err(format!("lane {} never got {id} of lane {origin}", l.id));
            }
        }
        if l.store.entries().len() < per_lane_sales.get(&l.id).copied().unwrap_or(0) {
            return Err(format!("lane {} lost a committed sale", l.id));
        }
    }
    // Applied once per record, whatever the redeliveries: the replica counts deliveries,
    // and the real replica applies an id once (sled_store's `apply_lane_message`).
    let ids: BTreeSet<&Uuid> = made.keys().collect();
    if ids.len() != made.len() {
        return Err("a record id was made twice".into());
    }
    Ok(report)
}
