//! The store bus: the lanes of one store share their records over NATS JetStream.
//!
//! # Design
//!
//! Every lane (a register or a self-serve kiosk, one `edged` each) stays whole on its own:
//! its own store, journal and outbox, its own deliveries to the remotes. The bus adds two
//! things on top, both built on the store's `nats-server` (JetStream, file storage):
//!
//! * **Publishing is a delivery.** A lane with `[bus] url` makes one more outbox entry per
//!   record, for the remote [`Remote::Bus`], in the same atomic commit as the record. The
//!   engine's [`Worker`](crate::engine::Worker) walks those entries like any other remote's
//!   (InFlight, backoff, circuit breaker, dead letters, health); [`BusConnector`] turns a
//!   batch into messages and [`live::BusTransport`] publishes each with
//!   `Nats-Msg-Id` = the record id, so a re-send after a crash or a lost ack is
//!   deduplicated by the stream (within its duplicate window) and, past the window, by the
//!   replicas, which apply a record id once.
//! * **Following is a durable consumer.** Each lane reads the whole stream (`lanes.>`) with
//!   its own durable pull consumer (`lane-<id>`), applies the other lanes' messages to a
//!   local replica (`Store::apply_lane_messages`: one sled write per message under the
//!   commit lock, journaled in the commit journal and fdatasynced with the sales' group commit)
//!   and acks only after the replica is durable. A crash
//!   before the ack means a redelivery, which the replica recognises by id.
//!
//! # Subjects and messages
//!
//! | subject | message ([`LaneMessage`]) | `Nats-Msg-Id` |
//! |---|---|---|
//! | `lanes.<lane>.records` | a sale or refund, a stock adjustment | the record id |
//! | `lanes.<lane>.notes` | the stock source confirmed a record; a Z report closed the lane's period | the note id (UUID v7) |
//!
//! Each message is JSON, `{"v": 1, "kind": …}`; a reader refuses a version it does not know
//! by name rather than guessing. Notes are queued in the store (in the same transaction as
//! the confirmation they report, or with the Z) and published by the bus task until the
//! stream acknowledges them.
//!
//! # Why confirmations travel
//!
//! Stock shown = the source's level − the deltas the level does not include yet. A sale
//! made at lane 1 subtracts its units at every lane as soon as the stream brings it; it is
//! in the source's level once the source confirmed it under a number at most the level's
//! marker (see [`crate::stock`]). Only lane 1 hears that confirmation from the remote, so it
//! publishes it; the other lanes settle the foreign delta by the very same rule as their own.

pub mod live;

use crate::domain::{OutboxEntry, Record, Remote, Sale, StockAdjustment};
use crate::engine::{Connector, RecordResult};
use crate::wire::{HttpRequest, HttpResponse, Method};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// The store stream's name.
pub const STREAM: &str = "STORE";
/// Every subject of the store stream.
pub const SUBJECTS: &str = "lanes.>";
/// The message format this build writes and reads.
pub const VERSION: u32 = 1;
/// Largest message the bus takes (a sale of 200 lines is about 100 KiB of JSON).
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// The subject of a lane's records.
pub fn record_subject(lane: &str) -> String {
    format!("lanes.{lane}.records")
}

/// The subject of a lane's notes.
pub fn note_subject(lane: &str) -> String {
    format!("lanes.{lane}.notes")
}

/// The durable consumer of a lane.
pub fn consumer_name(lane: &str) -> String {
    format!("lane-{lane}")
}

/// One message on the store stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LaneMessage {
    /// A sale or a refund, as committed at its lane.
    Sale { lane: String, sale: Box<Sale> },
    /// A stock adjustment, as committed at its lane.
    Adjustment { lane: String, adjustment: StockAdjustment },
    /// The stock source confirmed one of the lane's records under this remote id.
    Confirmed { lane: String, record_id: Uuid, remote: Remote, remote_id: String },
    /// The lane closed its period with a Z report: its next X starts after `last_sale`.
    Z { lane: String, number: u64, last_sale: Option<Uuid>, at: Timestamp },
}

impl LaneMessage {
    pub fn lane(&self) -> &str {
        match self {
            LaneMessage::Sale { lane, .. }
            | LaneMessage::Adjustment { lane, .. }
            | LaneMessage::Confirmed { lane, .. }
            | LaneMessage::Z { lane, .. } => lane,
        }
    }

    /// The message of a record of `lane`.
    pub fn of_record(lane: &str, record: &Record) -> LaneMessage {
        match record {
            Record::Sale(s) => LaneMessage::Sale { lane: lane.to_string(), sale: s.clone() },
            Record::Adjustment(a) => LaneMessage::Adjustment { lane: lane.to_string(), adjustment: a.clone() },
        }
    }

    /// What a field tech reads in a log line.
    pub fn describe(&self) -> String {
        match self {
            LaneMessage::Sale { lane, sale } => {
                let what = if sale.kind == crate::domain::SaleKind::Refund { "refund" } else { "sale" };
                format!("{what} {} of lane {lane}", sale.id)
            }
            LaneMessage::Adjustment { lane, adjustment } => format!("adjustment {} of lane {lane}", adjustment.id),
            LaneMessage::Confirmed { lane, record_id, remote, .. } => {
                format!("{remote}'s confirmation of {record_id} (lane {lane})")
            }
            LaneMessage::Z { lane, number, .. } => format!("Z report {number} of lane {lane}"),
        }
    }
}

/// [`LaneMessage`] externally tagged, for reading with the failing field's path.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Tagged {
    Sale { lane: String, sale: Box<Sale> },
    Adjustment { lane: String, adjustment: StockAdjustment },
    Confirmed { lane: String, record_id: Uuid, remote: Remote, remote_id: String },
    Z { lane: String, number: u64, last_sale: Option<Uuid>, at: Timestamp },
}

impl From<Tagged> for LaneMessage {
    fn from(t: Tagged) -> LaneMessage {
        match t {
            Tagged::Sale { lane, sale } => LaneMessage::Sale { lane, sale },
            Tagged::Adjustment { lane, adjustment } => LaneMessage::Adjustment { lane, adjustment },
            Tagged::Confirmed { lane, record_id, remote, remote_id } => {
                LaneMessage::Confirmed { lane, record_id, remote, remote_id }
            }
            Tagged::Z { lane, number, last_sale, at } => LaneMessage::Z { lane, number, last_sale, at },
        }
    }
}

#[derive(Serialize)]
struct EnvelopeOut<'a> {
    v: u32,
    #[serde(flatten)]
    msg: &'a LaneMessage,
}

/// The bytes of a message on the stream.
pub fn encode(msg: &LaneMessage) -> Result<Vec<u8>, String> {
    serde_json::to_vec(&EnvelopeOut { v: VERSION, msg }).map_err(|e| format!("cannot encode a bus message: {e}"))
}

/// A message read off the stream, or why it cannot be read (naming the problem).
pub fn decode(bytes: &[u8]) -> Result<LaneMessage, String> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(format!("bus message of {} bytes is over the {MAX_MESSAGE_BYTES}-byte limit", bytes.len()));
    }
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| format!("bus message is not JSON: {e}"))?;
    match v.get("v").and_then(serde_json::Value::as_u64) {
        Some(1) => {}
        Some(n) => return Err(format!("bus message version {n} is not known here (this edged reads {VERSION})")),
        None => return Err("bus message has no version field \"v\"".into()),
    }
    // Read through the externally tagged mirror so that a bad field is named by its path
    // (an internally tagged enum loses the path).
    let kind = v.get("kind").and_then(serde_json::Value::as_str).ok_or("bus message has no \"kind\"")?.to_string();
    let mut body = v;
    if let Some(o) = body.as_object_mut() {
        o.remove("v");
        o.remove("kind");
    }
    let ext = serde_json::json!({ kind.clone(): body });
    let msg: Tagged = serde_path_to_error::deserialize(ext).map_err(|e| {
        let path = e.path().to_string();
        format!("bus message field {path}: {}", e.inner())
    })?;
    let msg = LaneMessage::from(msg);
    if !crate::domain::valid_lane(msg.lane()) {
        return Err(format!("bus message names lane {:?}, which is not a lane id", msg.lane()));
    }
    Ok(msg)
}

/// One message for the transport to publish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outgoing {
    pub subject: String,
    /// `Nats-Msg-Id`.
    pub id: String,
    /// The encoded message (JSON).
    pub data: serde_json::Value,
}

/// What the transport says of one published message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub id: String,
    /// The stream's sequence, once stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The stream had it already (same `Nats-Msg-Id` within its window).
    #[serde(default)]
    pub duplicate: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The request body the bus connector builds (`POST /publish`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishBatch {
    pub messages: Vec<Outgoing>,
}

/// The reply the transport makes of the stream's acks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishReply {
    pub results: Vec<Published>,
}

/// The bus as a remote of the outbox: a batch of records becomes messages on the lane's
/// record subject, each with `Nats-Msg-Id` = the record id. No I/O.
pub struct BusConnector {
    lane: String,
    /// Outbox entry id → record id of the batch being built (the reply names record ids).
    ids: BTreeMap<Uuid, Uuid>,
}

impl BusConnector {
    pub fn new(lane: &str) -> BusConnector {
        BusConnector { lane: lane.to_string(), ids: BTreeMap::new() }
    }
}

impl Connector for BusConnector {
    fn max_batch(&self) -> usize {
        64
    }

    fn build(
        &mut self,
        records: &[(OutboxEntry, Record)],
        _now: Timestamp,
    ) -> (Option<HttpRequest>, Vec<(Uuid, String)>) {
        let (mut messages, mut refused) = (Vec::new(), Vec::new());
        for (e, r) in records {
            let msg = LaneMessage::of_record(&self.lane, r);
            match encode(&msg).and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string())) {
                Ok(data) => {
                    self.ids.insert(e.id, e.record_id);
                    messages.push(Outgoing { subject: record_subject(&self.lane), id: e.record_id.to_string(), data });
                }
                Err(why) => refused.push((e.id, why)),
            }
        }
        if messages.is_empty() {
            return (None, refused);
        }
        let body = match serde_json::to_vec(&PublishBatch { messages }) {
            Ok(b) => b,
            Err(e) => {
                let why = format!("cannot encode the batch: {e}");
                return (None, records.iter().map(|(e, _)| (e.id, why.clone())).collect());
            }
        };
        let request = HttpRequest {
            method: Method::Post,
            path: "/publish".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body,
        };
        (Some(request), refused)
    }

    fn parse(&mut self, ids: &[Uuid], reply: &HttpResponse) -> Result<BTreeMap<Uuid, RecordResult>, String> {
        let r: PublishReply =
            serde_json::from_slice(&reply.body).map_err(|e| format!("the bus transport's reply is unreadable: {e}"))?;
        let by_record: BTreeMap<&str, &Published> = r.results.iter().map(|p| (p.id.as_str(), p)).collect();
        let mut out = BTreeMap::new();
        for id in ids {
            let Some(record) = self.ids.remove(id) else { continue };
            let res = match by_record.get(record.to_string().as_str()) {
                Some(Published { seq: Some(seq), .. }) => RecordResult::Confirmed(format!("seq:{seq}")),
                Some(Published { error: Some(e), .. }) => RecordResult::Retry(e.clone()),
                _ => RecordResult::Retry("the stream did not acknowledge it".into()),
            };
            out.insert(*id, res);
        }
        Ok(out)
    }

    fn resend_is_safe(&self) -> bool {
        // The stream drops a repeated Nats-Msg-Id within its window; past it, every replica
        // applies a record id once.
        true
    }
}

/// How a lane refunds another lane's sale while the store's server cannot be reached to
/// claim the amount (`[bus] offline_refunds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OfflineRefunds {
    /// Up to what this lane knows is left of the sale, flagged for staff and the report.
    AllowAndFlag,
    /// Refused: come back when the bus is up, or refund at the lane that sold it.
    Refuse,
}

impl OfflineRefunds {
    pub fn parse(s: &str) -> Option<OfflineRefunds> {
        match s {
            "allow-and-flag" => Some(OfflineRefunds::AllowAndFlag),
            "refuse" => Some(OfflineRefunds::Refuse),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_bad_ones_are_named() {
        let msg = LaneMessage::Confirmed {
            lane: "2".into(),
            record_id: Uuid::now_v7(),
            remote: Remote::Cloud,
            remote_id: "evt_7".into(),
        };
        let bytes = encode(&msg).expect("encode");
        assert_eq!(decode(&bytes).expect("decode"), msg);
        assert!(decode(b"{").expect_err("not json").contains("not JSON"));
        assert!(decode(br#"{"kind":"z"}"#).expect_err("no v").contains("no version"));
        assert!(decode(br#"{"v":1}"#).expect_err("no kind").contains("kind"));
        assert!(decode(br#"{"v":2,"kind":"z"}"#).expect_err("v2").contains("version 2"));
        let e = decode(br#"{"v":1,"kind":"z","lane":"1","number":"x"}"#).expect_err("bad field");
        assert!(e.contains("number"), "{e}");
        let e = decode(br#"{"v":1,"kind":"z","lane":"../x","number":1,"at":"2026-01-01T00:00:00Z"}"#)
            .expect_err("bad lane");
        assert!(e.contains("lane"), "{e}");
        let e = decode(br#"{"v":1,"kind":"teleport","lane":"1"}"#).expect_err("unknown kind");
        assert!(e.contains("teleport"), "{e}");
    }
}
