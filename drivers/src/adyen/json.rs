//! Adyen's JSON dialect of the nexo messages ([`super::model`]) and its envelope
//! ([`super::crypto`]): `{"SaleToPOIRequest": {"MessageHeader": …, "PaymentRequest": …}}`,
//! and for the wire `{"SaleToPOIRequest": {"MessageHeader": …, "NexoBlob": …,
//! "SecurityTrailer": …}}` where the blob is the whole clear message, encrypted.
//!
//! Reading refuses, with the path of the field, anything that is not what the model
//! needs: a missing header field, a category that does not match the body, an amount
//! that is not a number, a ServiceID over 10 characters. Fields the model does not use
//! are ignored (terminals add many).

use super::crypto::{CryptoError, Key, SecurityTrailer};
use super::model::*;
use serde_json::{Map, Value, json};

/// A message that is not what the dialect allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("Adyen message: not JSON ({0})")]
    Syntax(String),
    #[error("Adyen message: {path}: {why}")]
    Field { path: String, why: String },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

fn field(path: &str, why: impl Into<String>) -> JsonError {
    JsonError::Field { path: path.to_string(), why: why.into() }
}

/// A JSON object with the path it was found at, for errors that name the field.
#[derive(Clone, Copy)]
struct At<'a> {
    path: &'a str,
    v: &'a Map<String, Value>,
}

impl<'a> At<'a> {
    fn root(path: &'a str, v: &'a Value) -> Result<At<'a>, JsonError> {
        v.as_object().map(|v| At { path, v }).ok_or_else(|| field(path, "not an object"))
    }
    fn p(&self, k: &str) -> String {
        format!("{}.{k}", self.path)
    }
    fn get(&self, k: &str) -> Option<&'a Value> {
        self.v.get(k).filter(|v| !v.is_null())
    }
    fn obj(&self, k: &str, path: &'a mut String) -> Result<At<'a>, JsonError> {
        *path = self.p(k);
        let v = self.get(k).ok_or_else(|| field(path, "missing"))?;
        v.as_object().map(|v| At { path: path.as_str(), v }).ok_or_else(|| field(path, "not an object"))
    }
    fn opt_obj(&self, k: &str, path: &'a mut String) -> Result<Option<At<'a>>, JsonError> {
        if self.get(k).is_none() {
            return Ok(None);
        }
        self.obj(k, path).map(Some)
    }
    fn str(&self, k: &str) -> Result<&'a str, JsonError> {
        self.opt_str(k)?.ok_or_else(|| field(&self.p(k), "missing"))
    }
    fn opt_str(&self, k: &str) -> Result<Option<&'a str>, JsonError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(field(&self.p(k), "not a string")),
        }
    }
    fn opt_num(&self, k: &str) -> Result<Option<f64>, JsonError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                n.as_f64().filter(|f| f.is_finite()).map(Some).ok_or_else(|| field(&self.p(k), "not a number"))
            }
            Some(_) => Err(field(&self.p(k), "not a number")),
        }
    }
    fn opt_bool(&self, k: &str) -> Result<Option<bool>, JsonError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(field(&self.p(k), "not true or false")),
        }
    }
}

/// Minor units to nexo's decimal major units.
pub fn to_decimal(minor: i64, currency: &str) -> Value {
    let e = exponent(currency);
    if e == 0 {
        return json!(minor);
    }
    let f = minor as f64 / 10f64.powi(e as i32);
    json!(f)
}

/// nexo's decimal major units to minor units; refuses what has more decimals than the
/// currency or is out of range.
pub fn to_minor(v: f64, currency: &str, path: &str) -> Result<i64, JsonError> {
    let scaled = v * 10f64.powi(exponent(currency) as i32);
    let minor = scaled.round();
    if (scaled - minor).abs() > 1e-6 || !(-1e15..=1e15).contains(&minor) {
        return Err(field(path, format!("{v} is not an amount in {currency}")));
    }
    Ok(minor as i64)
}

fn header_json(h: &Header) -> Value {
    json!({
        "ProtocolVersion": "3.0",
        "MessageClass": "Service",
        "MessageCategory": h.category.name(),
        "MessageType": if h.request { "Request" } else { "Response" },
        "ServiceID": h.service_id,
        "SaleID": h.sale_id,
        "POIID": h.poi_id,
    })
}

fn read_header(m: &At, request: bool) -> Result<Header, JsonError> {
    let mut p = String::new();
    let h = m.obj("MessageHeader", &mut p)?;
    let cat = h.str("MessageCategory")?;
    let category =
        Category::parse(cat).ok_or_else(|| field(&h.p("MessageCategory"), format!("{cat:?} is not known")))?;
    let t = h.str("MessageType")?;
    if t != if request { "Request" } else { "Response" } {
        return Err(field(
            &h.p("MessageType"),
            format!("{t:?} where a {} was expected", if request { "Request" } else { "Response" }),
        ));
    }
    let service_id = h.str("ServiceID")?.to_string();
    if service_id.is_empty() || service_id.chars().count() > 10 {
        return Err(field(&h.p("ServiceID"), format!("{service_id:?} is not 1 to 10 characters")));
    }
    Ok(Header {
        category,
        request,
        service_id,
        sale_id: h.str("SaleID")?.to_string(),
        poi_id: h.str("POIID")?.to_string(),
    })
}

fn msg_ref_json(r: &MessageRef) -> Value {
    json!({"MessageCategory": r.category.name(), "ServiceID": r.service_id, "SaleID": r.sale_id})
}

fn read_msg_ref(o: &At) -> Result<MessageRef, JsonError> {
    let cat = o.str("MessageCategory")?;
    Ok(MessageRef {
        category: Category::parse(cat)
            .ok_or_else(|| field(&o.p("MessageCategory"), format!("{cat:?} is not known")))?,
        service_id: o.str("ServiceID")?.to_string(),
        sale_id: o.str("SaleID")?.to_string(),
    })
}

fn body_name(c: Category, request: bool) -> String {
    format!("{}{}", c.name(), if request { "Request" } else { "Response" })
}

/// A request as clear JSON.
pub fn request_json(h: &Header, r: &Request) -> Value {
    let body = match r {
        Request::Payment { transaction_id, timestamp, currency, amount_minor, refund } => {
            let mut b = json!({
                "SaleData": {"SaleTransactionID": {"TransactionID": transaction_id, "TimeStamp": timestamp}},
                "PaymentTransaction": {"AmountsReq": {"Currency": currency, "RequestedAmount": to_decimal(*amount_minor, currency)}},
            });
            if *refund {
                b["PaymentData"] = json!({"PaymentType": "Refund"});
            }
            b
        }
        Request::TransactionStatus { reference } => json!({"MessageReference": msg_ref_json(reference)}),
        Request::Abort { reference, reason } => {
            json!({"MessageReference": msg_ref_json(reference), "AbortReason": reason})
        }
        Request::Reversal { original, reason, amount_minor, currency } => {
            let mut b = json!({
                "OriginalPOITransaction": {"POITransactionID": {"TransactionID": original.transaction_id, "TimeStamp": original.timestamp}},
                "ReversalReason": reason,
            });
            if let Some(a) = amount_minor {
                b["ReversedAmount"] = to_decimal(*a, currency);
            }
            b
        }
        Request::Diagnosis { host } => json!({"HostDiagnosisFlag": host}),
        Request::Login { date_time, manufacturer, application, version, language } => json!({
            "DateTime": date_time,
            "SaleSoftware": {"ManufacturerID": manufacturer, "ApplicationName": application, "SoftwareVersion": version},
            "OperatorLanguage": language,
        }),
        Request::Reconciliation => json!({"ReconciliationType": "SaleReconciliation"}),
    };
    let mut m = Map::new();
    m.insert("MessageHeader".into(), header_json(h));
    m.insert(body_name(r.category(), true), body);
    json!({"SaleToPOIRequest": Value::Object(m)})
}

/// Reads a clear request (the terminal's side). `currency_of` names the currency of an
/// earlier payment (a reversal's amount is in it; nexo does not repeat it).
pub fn read_request(
    v: &Value,
    currency_of: &dyn Fn(&PoiTransaction) -> Option<String>,
) -> Result<(Header, Request), JsonError> {
    let top = At::root("$", v)?;
    let mut p0 = String::new();
    let m = top.obj("SaleToPOIRequest", &mut p0)?;
    let h = read_header(&m, true)?;
    let name = body_name(h.category, true);
    let mut p = String::new();
    let b = m.obj(&name, &mut p)?;
    let r = match h.category {
        Category::Payment => {
            let (mut p1, mut p2, mut p3, mut p4) = (String::new(), String::new(), String::new(), String::new());
            let sd = b.obj("SaleData", &mut p1)?;
            let st = sd.obj("SaleTransactionID", &mut p2)?;
            let pt = b.obj("PaymentTransaction", &mut p3)?;
            let ar = pt.obj("AmountsReq", &mut p4)?;
            let currency = ar.str("Currency")?.to_string();
            if currency.len() != 3 || !currency.bytes().all(|c| c.is_ascii_uppercase()) {
                return Err(field(&ar.p("Currency"), format!("{currency:?} is not an ISO 4217 code")));
            }
            let amount = ar.opt_num("RequestedAmount")?.ok_or_else(|| field(&ar.p("RequestedAmount"), "missing"))?;
            let amount_minor = to_minor(amount, &currency, &ar.p("RequestedAmount"))?;
            if amount_minor <= 0 {
                return Err(field(&ar.p("RequestedAmount"), "must be more than zero"));
            }
            let mut p5 = String::new();
            let refund = match b.opt_obj("PaymentData", &mut p5)? {
                Some(pd) => match pd.opt_str("PaymentType")? {
                    None | Some("Normal") => false,
                    Some("Refund") => true,
                    Some(other) => return Err(field(&pd.p("PaymentType"), format!("{other:?} is not supported"))),
                },
                None => false,
            };
            Request::Payment {
                transaction_id: st.str("TransactionID")?.to_string(),
                timestamp: st.str("TimeStamp")?.to_string(),
                currency,
                amount_minor,
                refund,
            }
        }
        Category::TransactionStatus => {
            let mut p1 = String::new();
            Request::TransactionStatus { reference: read_msg_ref(&b.obj("MessageReference", &mut p1)?)? }
        }
        Category::Abort => {
            let mut p1 = String::new();
            Request::Abort {
                reference: read_msg_ref(&b.obj("MessageReference", &mut p1)?)?,
                reason: b.opt_str("AbortReason")?.unwrap_or("MerchantAbort").to_string(),
            }
        }
        Category::Reversal => {
            let (mut p1, mut p2) = (String::new(), String::new());
            let o = b.obj("OriginalPOITransaction", &mut p1)?.obj("POITransactionID", &mut p2)?;
            let original = PoiTransaction {
                transaction_id: o.str("TransactionID")?.to_string(),
                timestamp: o.str("TimeStamp")?.to_string(),
            };
            // nexo sends no currency with a reversal: it is the original payment's.
            let currency = currency_of(&original).unwrap_or_else(|| "EUR".to_string());
            let amount_minor = match b.opt_num("ReversedAmount")? {
                Some(a) => Some(to_minor(a, &currency, &b.p("ReversedAmount"))?),
                None => None,
            };
            Request::Reversal {
                original,
                reason: b.opt_str("ReversalReason")?.unwrap_or("MerchantCancel").to_string(),
                amount_minor,
                currency,
            }
        }
        Category::Diagnosis => Request::Diagnosis { host: b.opt_bool("HostDiagnosisFlag")?.unwrap_or(false) },
        Category::Login => {
            let mut p1 = String::new();
            let s = b.obj("SaleSoftware", &mut p1)?;
            Request::Login {
                date_time: b.str("DateTime")?.to_string(),
                manufacturer: s.str("ManufacturerID")?.to_string(),
                application: s.str("ApplicationName")?.to_string(),
                version: s.str("SoftwareVersion")?.to_string(),
                language: b.opt_str("OperatorLanguage")?.unwrap_or("en").to_string(),
            }
        }
        Category::Reconciliation => Request::Reconciliation,
    };
    Ok((h, r))
}

fn form_encode(pairs: &[(String, String)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
                _ => format!("%{b:02x}"),
            })
            .collect::<String>()
    };
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

/// Decodes `a=b&c=d` with %-escapes (as AdditionalResponse and receipt lines are sent).
pub fn form_decode(s: &str) -> Vec<(String, String)> {
    let dec = |s: &str| {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'%' if i + 2 < b.len() => {
                    match std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        Some(v) => {
                            out.push(v);
                            i += 3;
                            continue;
                        }
                        None => out.push(b'%'),
                    }
                }
                b'+' => out.push(b' '),
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (dec(k), dec(v)),
            None => (dec(p), String::new()),
        })
        .collect()
}

fn outcome_json(o: &Outcome) -> Value {
    let mut v = json!({"Result": match (o.success, o.partial) {
        (true, true) => "Partial",
        (true, false) => "Success",
        (false, _) => "Failure",
    }});
    if let Some(c) = &o.error_condition {
        v["ErrorCondition"] = json!(c);
    }
    if !o.additional.is_empty() {
        v["AdditionalResponse"] = json!(form_encode(&o.additional));
    }
    v
}

fn read_outcome(b: &At) -> Result<Outcome, JsonError> {
    let mut p = String::new();
    let r = b.obj("Response", &mut p)?;
    let (success, partial) = match r.str("Result")? {
        "Success" => (true, false),
        "Partial" => (true, true),
        "Failure" => (false, false),
        other => return Err(field(&r.p("Result"), format!("{other:?} is not Success, Partial or Failure"))),
    };
    Ok(Outcome {
        success,
        partial,
        error_condition: r.opt_str("ErrorCondition")?.map(str::to_string),
        additional: r.opt_str("AdditionalResponse")?.map(form_decode).unwrap_or_default(),
    })
}

fn receipt_json(r: &Receipt) -> Value {
    let lines: Vec<Value> = r
        .lines
        .iter()
        .map(|l| {
            let pairs = match l.split_once(": ") {
                Some((n, v)) => vec![("name".to_string(), n.to_string()), ("value".to_string(), v.to_string())],
                None if l.is_empty() => vec![("key".to_string(), "filler".to_string())],
                None => vec![("name".to_string(), l.clone())],
            };
            json!({"Text": form_encode(&pairs), "EndOfLineFlag": true})
        })
        .collect();
    json!({"DocumentQualifier": r.qualifier, "RequiredSignatureFlag": false,
           "OutputContent": {"OutputFormat": "Text", "OutputText": lines}})
}

fn read_receipts(b: &At) -> Result<Vec<Receipt>, JsonError> {
    let Some(v) = b.get("PaymentReceipt") else { return Ok(Vec::new()) };
    let arr = v.as_array().ok_or_else(|| field(&b.p("PaymentReceipt"), "not a list"))?;
    let mut out = Vec::new();
    for (i, r) in arr.iter().enumerate() {
        let path = format!("{}.PaymentReceipt[{i}]", b.path);
        let r = At::root(&path, r)?;
        let mut p = String::new();
        let oc = r.obj("OutputContent", &mut p)?;
        let mut lines = Vec::new();
        if let Some(t) = oc.get("OutputText") {
            for (j, line) in t.as_array().ok_or_else(|| field(&oc.p("OutputText"), "not a list"))?.iter().enumerate() {
                let lp = format!("{}.OutputText[{j}]", oc.path);
                let text = At::root(&lp, line)?.str("Text")?;
                let pairs = form_decode(text);
                let get = |k: &str| pairs.iter().find(|(a, _)| a == k).map(|(_, v)| v.trim().to_string());
                lines.push(match (get("name"), get("value")) {
                    (Some(n), Some(v)) => format!("{n}: {v}"),
                    (Some(n), None) => n,
                    (None, Some(v)) => v,
                    (None, None) => String::new(),
                });
            }
        }
        out.push(Receipt {
            qualifier: r.opt_str("DocumentQualifier")?.unwrap_or("CustomerReceipt").to_string(),
            lines,
        });
    }
    Ok(out)
}

fn payment_result_json(p: &PaymentResult, reversal: bool) -> Value {
    let mut b = json!({"Response": outcome_json(&p.outcome)});
    if let Some(t) = &p.poi_transaction {
        b["POIData"] = json!({"POITransactionID": {"TransactionID": t.transaction_id, "TimeStamp": t.timestamp}});
    }
    if let Some(s) = &p.sale_transaction_id {
        b["SaleData"] = json!({"SaleTransactionID": {"TransactionID": s, "TimeStamp": ""}});
    }
    let cur = p.currency.clone().unwrap_or_else(|| "EUR".into());
    if reversal {
        if let Some(a) = p.amount_minor {
            b["ReversedAmount"] = to_decimal(a, &cur);
        }
    } else {
        let mut r = json!({});
        if let Some(a) = p.amount_minor {
            r["AmountsResp"] = json!({"AuthorizedAmount": to_decimal(a, &cur), "Currency": cur});
        }
        if p.masked_pan.is_some() || p.brand.is_some() {
            r["PaymentInstrumentData"] = json!({"PaymentInstrumentType": "Card",
                "CardData": {"MaskedPan": p.masked_pan, "PaymentBrand": p.brand}});
        }
        if let Some(c) = &p.approval_code {
            r["PaymentAcquirerData"] = json!({"ApprovalCode": c});
        }
        b["PaymentResult"] = r;
    }
    if !p.receipts.is_empty() {
        b["PaymentReceipt"] = Value::Array(p.receipts.iter().map(receipt_json).collect());
    }
    b
}

fn read_payment_result(b: &At, reversal: bool, currency: &str) -> Result<PaymentResult, JsonError> {
    let outcome = read_outcome(b)?;
    let mut out = PaymentResult { outcome, ..PaymentResult::default() };
    let (mut p1, mut p2) = (String::new(), String::new());
    if let Some(pd) = b.opt_obj("POIData", &mut p1)? {
        let t = pd.obj("POITransactionID", &mut p2)?;
        out.poi_transaction = Some(PoiTransaction {
            transaction_id: t.str("TransactionID")?.to_string(),
            timestamp: t.str("TimeStamp")?.to_string(),
        });
    }
    let (mut p3, mut p4) = (String::new(), String::new());
    if let Some(sd) = b.opt_obj("SaleData", &mut p3)?
        && let Some(st) = sd.opt_obj("SaleTransactionID", &mut p4)?
    {
        out.sale_transaction_id = st.opt_str("TransactionID")?.map(str::to_string);
    }
    if reversal {
        if let Some(a) = b.opt_num("ReversedAmount")? {
            out.amount_minor = Some(to_minor(a, currency, &b.p("ReversedAmount"))?);
            out.currency = Some(currency.to_string());
        }
    } else {
        let mut p5 = String::new();
        if let Some(r) = b.opt_obj("PaymentResult", &mut p5)? {
            let (mut a1, mut a2, mut a3, mut a4) = (String::new(), String::new(), String::new(), String::new());
            if let Some(ar) = r.opt_obj("AmountsResp", &mut a1)? {
                // No currency named: the one asked for.
                let cur = ar.opt_str("Currency")?.unwrap_or(currency).to_string();
                if let Some(a) = ar.opt_num("AuthorizedAmount")? {
                    out.amount_minor = Some(to_minor(a, &cur, &ar.p("AuthorizedAmount"))?);
                }
                out.currency = Some(cur);
            }
            if let Some(pi) = r.opt_obj("PaymentInstrumentData", &mut a2)?
                && let Some(cd) = pi.opt_obj("CardData", &mut a3)?
            {
                out.masked_pan = cd.opt_str("MaskedPan")?.map(mask);
                out.brand = cd.opt_str("PaymentBrand")?.map(str::to_string);
            }
            if let Some(aq) = r.opt_obj("PaymentAcquirerData", &mut a4)? {
                out.approval_code = aq.opt_str("ApprovalCode")?.map(str::to_string);
            }
        }
    }
    if out.approval_code.is_none() {
        out.approval_code = out.outcome.get("authCode").map(str::to_string);
    }
    out.receipts = read_receipts(b)?;
    Ok(out)
}

/// Never more than the first six and last four digits: anything else is starred.
pub fn mask(pan: &str) -> String {
    let digits: Vec<usize> = pan.char_indices().filter(|(_, c)| c.is_ascii_digit()).map(|(i, _)| i).collect();
    let n = digits.len();
    pan.char_indices()
        .map(|(i, c)| match digits.iter().position(|d| *d == i) {
            Some(k) if k >= 6 && k + 4 < n => '*',
            _ => c,
        })
        .collect()
}

/// A response as clear JSON (the terminal's side).
pub fn response_json(h: &Header, r: &Response) -> Value {
    let body = match r {
        Response::Payment(p) => payment_result_json(p, false),
        Response::Reversal(p) => payment_result_json(p, true),
        Response::TransactionStatus { outcome, reference, repeated } => {
            let mut b = json!({"Response": outcome_json(outcome)});
            if let Some(r) = reference {
                b["MessageReference"] = msg_ref_json(r);
            }
            if let (Some(p), Some(r)) = (repeated, reference) {
                let h2 = Header {
                    category: r.category,
                    request: false,
                    service_id: r.service_id.clone(),
                    sale_id: r.sale_id.clone(),
                    poi_id: h.poi_id.clone(),
                };
                let inner = if r.category == Category::Reversal { "ReversalResponse" } else { "PaymentResponse" };
                b["RepeatedMessageResponse"] = json!({
                    "MessageHeader": header_json(&h2),
                    "RepeatedResponseMessageBody": {inner: payment_result_json(p, r.category == Category::Reversal)},
                });
            }
            b
        }
        Response::Diagnosis { outcome, global_status, host_reachable } => {
            let mut b = json!({"Response": outcome_json(outcome), "POIStatus": {"GlobalStatus": global_status}});
            if let Some(ok) = host_reachable {
                b["HostStatus"] = json!([{"AcquirerID": "acquirer", "IsReachableFlag": ok}]);
                b["POIStatus"]["CommunicationOKFlag"] = json!(ok);
            }
            b
        }
        Response::Login { outcome, poi_serial } => {
            json!({"Response": outcome_json(outcome), "POISystemData": {"POISerialNumber": poi_serial}})
        }
        Response::Reconciliation { outcome, transactions, forwarded } => json!({
            "Response": outcome_json(outcome),
            "ReconciliationType": "SaleReconciliation",
            "TransactionTotals": [{"PaymentInstrumentType": "Card", "TransactionCount": transactions, "ForwardedCount": forwarded}],
        }),
    };
    let mut m = Map::new();
    m.insert("MessageHeader".into(), header_json(h));
    m.insert(body_name(r.category(), false), body);
    json!({"SaleToPOIResponse": Value::Object(m)})
}

/// Reads a clear response (the POS's side); `currency` is the one of the amounts asked
/// for (a reversal's answer does not name it).
pub fn read_response(v: &Value, currency: &str) -> Result<(Header, Response), JsonError> {
    let top = At::root("$", v)?;
    let mut p0 = String::new();
    let m = top.obj("SaleToPOIResponse", &mut p0)?;
    let h = read_header(&m, false)?;
    let name = body_name(h.category, false);
    let mut p = String::new();
    let b = m.obj(&name, &mut p)?;
    let r = match h.category {
        Category::Payment => Response::Payment(read_payment_result(&b, false, currency)?),
        Category::Reversal => Response::Reversal(read_payment_result(&b, true, currency)?),
        Category::TransactionStatus => {
            let outcome = read_outcome(&b)?;
            let mut p1 = String::new();
            let reference = b.opt_obj("MessageReference", &mut p1)?.map(|r| read_msg_ref(&r)).transpose()?;
            let (mut p2, mut p3) = (String::new(), String::new());
            let repeated = match b.opt_obj("RepeatedMessageResponse", &mut p2)? {
                Some(rm) => {
                    let body = rm.obj("RepeatedResponseMessageBody", &mut p3)?;
                    let mut p4 = String::new();
                    if let Some(pr) = body.opt_obj("PaymentResponse", &mut p4)? {
                        Some(Box::new(read_payment_result(&pr, false, currency)?))
                    } else {
                        let mut p5 = String::new();
                        body.opt_obj("ReversalResponse", &mut p5)?
                            .map(|rr| read_payment_result(&rr, true, currency).map(Box::new))
                            .transpose()?
                    }
                }
                None => None,
            };
            Response::TransactionStatus { outcome, reference, repeated }
        }
        Category::Diagnosis => {
            let outcome = read_outcome(&b)?;
            let mut p1 = String::new();
            let ps = b.opt_obj("POIStatus", &mut p1)?;
            let global_status = match ps {
                Some(ps) => ps.opt_str("GlobalStatus")?.unwrap_or("OK").to_string(),
                None => "OK".to_string(),
            };
            let mut host_reachable = match ps {
                Some(ps) => ps.opt_bool("CommunicationOKFlag")?,
                None => None,
            };
            if let Some(hs) = b.get("HostStatus").and_then(Value::as_array) {
                let any = hs.iter().any(|h| h.get("IsReachableFlag").and_then(Value::as_bool) == Some(true));
                host_reachable = Some(any && host_reachable != Some(false));
            }
            Response::Diagnosis { outcome, global_status, host_reachable }
        }
        Category::Login => {
            let outcome = read_outcome(&b)?;
            let mut p1 = String::new();
            let poi_serial = match b.opt_obj("POISystemData", &mut p1)? {
                Some(s) => s.opt_str("POISerialNumber")?.map(str::to_string),
                None => None,
            };
            Response::Login { outcome, poi_serial }
        }
        Category::Reconciliation => {
            let outcome = read_outcome(&b)?;
            let t = b.get("TransactionTotals").and_then(Value::as_array).and_then(|a| a.first());
            let n = |k: &str| t.and_then(|t| t.get(k)).and_then(Value::as_u64).unwrap_or(0) as u32;
            Response::Reconciliation { outcome, transactions: n("TransactionCount"), forwarded: n("ForwardedCount") }
        }
        Category::Abort => return Err(field(&m.p("MessageHeader.MessageCategory"), "an Abort has no response body")),
    };
    Ok((h, r))
}

/// The wrapper's name: `SaleToPOIRequest` or `SaleToPOIResponse`.
fn top_name(request: bool) -> &'static str {
    if request { "SaleToPOIRequest" } else { "SaleToPOIResponse" }
}

/// Encrypts a clear message for the wire: its header stays clear beside the blob.
pub fn seal(clear: &Value, key: &Key, request: bool) -> Result<Vec<u8>, JsonError> {
    let name = top_name(request);
    let header = clear.get(name).and_then(|m| m.get("MessageHeader")).cloned().ok_or_else(|| field(name, "missing"))?;
    let plain = serde_json::to_vec(clear).map_err(|e| JsonError::Syntax(e.to_string()))?;
    let (blob, trailer) = key.seal(&plain)?;
    let trailer = serde_json::to_value(trailer).map_err(|e| JsonError::Syntax(e.to_string()))?;
    serde_json::to_vec(&json!({name: {"MessageHeader": header, "NexoBlob": blob, "SecurityTrailer": trailer}}))
        .map_err(|e| JsonError::Syntax(e.to_string()))
}

/// The clear header of a message off the wire, before it is opened (what a terminal reads
/// to answer a refusal to the right POS).
pub fn wire_header(bytes: &[u8], request: bool) -> Result<Header, JsonError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| JsonError::Syntax(e.to_string()))?;
    let top = At::root("$", &v)?;
    let mut p = String::new();
    read_header(&top.obj(top_name(request), &mut p)?, request)
}

/// Opens a message off the wire: checks the envelope and the HMAC, and that the clear
/// header matches the encrypted one. The clear message.
pub fn open(bytes: &[u8], key: &Key, request: bool) -> Result<Value, JsonError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| JsonError::Syntax(e.to_string()))?;
    let name = top_name(request);
    let top = At::root("$", &v)?;
    let mut p = String::new();
    let m = top.obj(name, &mut p)?;
    let outer = read_header(&m, request)?;
    let blob = m.str("NexoBlob")?;
    let tv = m.get("SecurityTrailer").ok_or_else(|| field(&m.p("SecurityTrailer"), "missing"))?;
    let trailer: SecurityTrailer =
        serde_json::from_value(tv.clone()).map_err(|e| field(&m.p("SecurityTrailer"), e.to_string()))?;
    let plain = key.open(blob, &trailer)?;
    let clear: Value = serde_json::from_slice(&plain).map_err(|e| JsonError::Syntax(format!("decrypted body: {e}")))?;
    let ctop = At::root("$", &clear)?;
    let mut p2 = String::new();
    let inner = read_header(&ctop.obj(name, &mut p2)?, request)?;
    if inner != outer {
        return Err(field(&m.p("MessageHeader"), "the clear header differs from the encrypted one"));
    }
    Ok(clear)
}
