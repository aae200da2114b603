//! Reconciliation of one business day with a remote: what the store sold against what the
//! remote keeps, in Jepsen's words — **lost** (the store has it, the remote does not),
//! **duplicated** (the remote keeps it more than once), **unexpected** (the remote keeps it,
//! the store has no such sale that day) — and the counts and totals of both sides.
//!
//! Pure: the caller fetches the remote's records (Lightspeed: `Sale.json` by
//! `completeTime` over the day's UTC window and `referenceNumberSource`; NetSuite: SuiteQL
//! over `transaction` by `tranDate`), parses them with [`lightspeed_page`] /
//! [`netsuite_rows`] and hands them to [`reconcile`].

use crate::lightspeed::json::{int, money_minor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// One record at the remote: our reference (the edge sale id), its id there, its total
/// (negative for a refund).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteRecord {
    pub reference: String,
    pub remote_id: String,
    pub total_minor: i64,
}

/// One local sale of the day as the report sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalRecord {
    pub sale_id: String,
    /// Negative for a refund.
    pub total_minor: i64,
    /// The outbox entry's state for this remote (`pending`, `confirmed` …), or `none` when
    /// the sale was not routed to it.
    pub state: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Side {
    pub count: usize,
    pub total_minor: i64,
}

/// A record both sides have with different totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Differs {
    pub sale_id: String,
    pub local_minor: i64,
    pub remote_minor: i64,
}

/// The day at one remote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteReport {
    pub remote: String,
    pub local: Side,
    pub remote_side: Side,
    /// Local sales routed here that the remote does not keep, with their outbox state
    /// (pending / in flight / unknown: not delivered yet; confirmed: lost at the remote).
    pub lost: Vec<LocalRecord>,
    /// References the remote keeps more than once, with its ids.
    pub duplicated: Vec<(String, Vec<String>)>,
    /// Records at the remote with no local sale of the day.
    pub unexpected: Vec<RemoteRecord>,
    pub differs: Vec<Differs>,
    /// Why the remote could not be read (the lists are then empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RemoteReport {
    /// Nothing lost (beyond records still waiting), duplicated, unexpected or differing.
    pub fn clean(&self) -> bool {
        self.error.is_none()
            && self.duplicated.is_empty()
            && self.unexpected.is_empty()
            && self.differs.is_empty()
            && self.lost.iter().all(|l| matches!(l.state.as_str(), "pending" | "in_flight" | "unknown"))
    }
}

/// Compares the store's sales of the day routed to `remote` with the remote's records.
pub fn reconcile(remote: &str, local: &[LocalRecord], remote_records: &[RemoteRecord]) -> RemoteReport {
    let mut by_ref: BTreeMap<&str, Vec<&RemoteRecord>> = BTreeMap::new();
    for r in remote_records {
        by_ref.entry(r.reference.as_str()).or_default().push(r);
    }
    let routed: Vec<&LocalRecord> = local.iter().filter(|l| l.state != "none").collect();
    let mut rep = RemoteReport {
        remote: remote.into(),
        local: Side { count: routed.len(), total_minor: routed.iter().map(|l| l.total_minor).sum() },
        remote_side: Side {
            count: remote_records.len(),
            total_minor: remote_records.iter().map(|r| r.total_minor).sum(),
        },
        ..RemoteReport::default()
    };
    let mine: BTreeMap<&str, &LocalRecord> = local.iter().map(|l| (l.sale_id.as_str(), l)).collect();
    for l in &routed {
        match by_ref.get(l.sale_id.as_str()) {
            None => rep.lost.push((*l).clone()),
            Some(rs) => {
                if let Some(r) = rs.first()
                    && r.total_minor != l.total_minor
                {
                    rep.differs.push(Differs {
                        sale_id: l.sale_id.clone(),
                        local_minor: l.total_minor,
                        remote_minor: r.total_minor,
                    });
                }
            }
        }
    }
    for (reference, rs) in &by_ref {
        if rs.len() > 1 {
            rep.duplicated.push((reference.to_string(), rs.iter().map(|r| r.remote_id.clone()).collect()));
        }
        if !mine.contains_key(reference) {
            rep.unexpected.extend(rs.iter().map(|r| (*r).clone()));
        }
    }
    rep
}

/// A page of Lightspeed's `Sale.json` list: its records (ours: with a referenceNumber) and
/// the `next` URL.
pub fn lightspeed_page(body: &[u8]) -> Result<(Vec<RemoteRecord>, Option<String>), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("Lightspeed's Sale list is not JSON: {e}"))?;
    let rows: Vec<Value> = match v.get("Sale") {
        None => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(o @ Value::Object(_)) => vec![o.clone()],
        Some(other) => return Err(format!("Lightspeed's Sale list holds {other}")),
    };
    let mut out = Vec::new();
    for s in rows {
        let reference = s.get("referenceNumber").and_then(Value::as_str).unwrap_or("").to_string();
        let id = s.get("saleID").and_then(int).ok_or("a Sale without saleID")?;
        let total =
            s.get("total").or_else(|| s.get("calcTotal")).and_then(money_minor).ok_or("a Sale without total")?;
        if !reference.is_empty() {
            out.push(RemoteRecord { reference, remote_id: id.to_string(), total_minor: total });
        }
    }
    Ok((out, crate::lightspeed::json::next_page(&v)))
}

/// SuiteQL rows over `transaction`: its records (ours: with an external id).
pub fn netsuite_rows(items: &[Value]) -> Result<Vec<RemoteRecord>, String> {
    let mut out = Vec::new();
    for it in items {
        let Some(reference) = it.get("externalid").and_then(Value::as_str).filter(|s| !s.is_empty()) else { continue };
        let id = it.get("id").and_then(int).ok_or("a transaction without id")?;
        let total = it.get("foreigntotal").and_then(money_minor).ok_or("a transaction without foreigntotal")?;
        out.push(RemoteRecord { reference: reference.to_string(), remote_id: id.to_string(), total_minor: total });
    }
    Ok(out)
}

/// The SuiteQL query of a day's transactions (a unique ORDER BY: pages neither skip nor
/// repeat).
pub fn netsuite_day_query(date: &str) -> String {
    format!(
        "SELECT id, externalid, trandate, type, foreigntotal FROM transaction \
         WHERE trandate = TO_DATE('{date}', 'YYYY-MM-DD') AND type IN ('CashSale', 'CashRfnd', 'InvAdjst') \
         ORDER BY id"
    )
}

/// Most records read from one remote for one day (a bound on a broken remote's paging).
const MAX_RECORDS: usize = 100_000;

/// Lightspeed's sales of a day: `completeTime` within [start, end) and our
/// `referenceNumberSource`, every page.
pub async fn lightspeed_day(
    pull: &crate::lightspeed::live::LsPull,
    account_id: u64,
    source: &str,
    start: jiff::Timestamp,
    end: jiff::Timestamp,
) -> Result<Vec<RemoteRecord>, String> {
    let fmt = |t: jiff::Timestamp| t.strftime("%Y-%m-%dT%H:%M:%S+00:00").to_string();
    let last = end.checked_sub(jiff::SignedDuration::from_secs(1)).map_err(|e| e.to_string())?;
    let pct = crate::netsuite::tba::pct;
    let mut path = format!(
        "/API/V3/Account/{account_id}/Sale.json?referenceNumberSource={}&completeTime={}&limit=100",
        pct(source),
        pct(&format!("><,{},{}", fmt(start), fmt(last)))
    );
    let mut out = Vec::new();
    loop {
        let body = pull.get_raw(&path).await?;
        let (recs, next) = lightspeed_page(&body)?;
        out.extend(recs);
        if out.len() > MAX_RECORDS {
            return Err(format!("Lightspeed lists more than {MAX_RECORDS} sales for one day"));
        }
        match next {
            Some(n) => path = n,
            None => return Ok(out),
        }
    }
}

/// NetSuite's cash sales and refunds of a day by SuiteQL on `tranDate`, every page.
pub async fn netsuite_day(
    client: &reqwest::Client,
    base: &str,
    signer: &mut crate::netsuite::live::NsSigner,
    date: &str,
    timeout: std::time::Duration,
) -> Result<Vec<RemoteRecord>, String> {
    let rows = crate::netsuite::live::suiteql_all(client, base, signer, &netsuite_day_query(date), timeout).await?;
    if rows.len() > MAX_RECORDS {
        return Err(format!("NetSuite lists more than {MAX_RECORDS} transactions for one day"));
    }
    netsuite_rows(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(id: &str, t: i64, st: &str) -> LocalRecord {
        LocalRecord { sale_id: id.into(), total_minor: t, state: st.into() }
    }
    fn r(id: &str, rid: &str, t: i64) -> RemoteRecord {
        RemoteRecord { reference: id.into(), remote_id: rid.into(), total_minor: t }
    }

    #[test]
    fn lost_duplicated_unexpected_and_differing_are_told_apart() {
        let local = [
            l("a", 100, "confirmed"),
            l("b", 200, "confirmed"),
            l("c", 300, "pending"),
            l("d", -50, "confirmed"),
            l("e", 5, "none"),
        ];
        let remote = [r("a", "1", 100), r("a", "2", 100), r("d", "3", -40), r("x", "4", 9)];
        let rep = reconcile("lightspeed", &local, &remote);
        assert_eq!(rep.local, Side { count: 4, total_minor: 550 });
        assert_eq!(rep.remote_side, Side { count: 4, total_minor: 169 });
        let lost: Vec<&str> = rep.lost.iter().map(|x| x.sale_id.as_str()).collect();
        assert_eq!(lost, vec!["b", "c"]);
        assert_eq!(rep.duplicated, vec![("a".to_string(), vec!["1".to_string(), "2".to_string()])]);
        assert_eq!(rep.unexpected, vec![r("x", "4", 9)]);
        assert_eq!(rep.differs, vec![Differs { sale_id: "d".into(), local_minor: -50, remote_minor: -40 }]);
        assert!(!rep.clean());
        let ok = reconcile("netsuite", &[l("a", 1, "confirmed"), l("c", 2, "pending")], &[r("a", "9", 1)]);
        assert!(ok.clean(), "a sale still waiting is not a loss: {ok:?}");
    }
}
