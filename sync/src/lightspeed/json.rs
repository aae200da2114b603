//! Lightspeed's JSON as it comes (§A4, §A5, §A8 of the reference):
//! - every scalar is a string (`"itemID":"12"`, `"amount":"9.99"`, `"completed":"true"`);
//! - a relation holding one element is an object, several an array, none absent or `""`;
//! - list pages carry `"@attributes":{"next":"<full URL>","previous":"…"}`, `""` at the end;
//! - errors are `{"httpCode":"400","httpMessage":"Bad Request","message":"…"}`, sometimes
//!   served as text/html.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// An integer that may come as `"12"` or `12`.
pub fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A boolean that may come as `"true"` / `"false"` or a JSON boolean.
pub fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A decimal amount (`"9.99"`, `"-3.5"`, `9.99`) in minor units of a 2-decimal currency,
/// rounded half away from zero past the second decimal. None if it is not a number.
pub fn money_minor(v: &Value) -> Option<i64> {
    let (neg, whole, mut digits) = decimal(v)?;
    digits.resize(digits.len().max(3), 0);
    let cents = i64::from(digits[0]) * 10 + i64::from(digits[1]);
    let round = i64::from(digits[2] >= 5);
    let m = whole.checked_mul(100)?.checked_add(cents + round)?;
    Some(if neg { -m } else { m })
}

/// Thousandths of a quantity (a JSON number or a numeric string; digits past the third
/// decimal are cut): `"1.25"` → 1250.
pub fn thousandths(v: &Value) -> Option<i64> {
    let (neg, whole, mut digits) = decimal(v)?;
    digits.resize(digits.len().max(3), 0);
    let f = i64::from(digits[0]) * 100 + i64::from(digits[1]) * 10 + i64::from(digits[2]);
    let m = whole.checked_mul(1000)?.checked_add(f)?;
    Some(if neg { -m } else { m })
}

/// Sign, whole part and decimal digits of a number that may come as a JSON number or a
/// numeric string.
fn decimal(v: &Value) -> Option<(bool, i64, Vec<u8>)> {
    let s = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r.to_string()),
        None => (false, s),
    };
    let (w, f) = s.split_once('.').unwrap_or((&s, ""));
    if w.is_empty() || !w.bytes().all(|b| b.is_ascii_digit()) || !f.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((neg, w.parse().ok()?, f.bytes().map(|b| b - b'0').collect()))
}

/// Minor units as Lightspeed writes amounts: `"12.30"`.
pub fn money_str(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let a = minor.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

/// The elements of a relation: `{"SaleLine": {...}}` or `{"SaleLine": [...]}` (or absent,
/// or `""`), decoded as `T`. Err names the element that did not decode.
pub fn relation<T: DeserializeOwned>(parent: &Value, outer: &str, inner: &str) -> Result<Vec<T>, String> {
    let v = match parent.get(outer) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => return Ok(Vec::new()),
        Some(o) => match o.get(inner) {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(x) => x,
        },
    };
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![v],
        Value::String(s) if s.is_empty() => Vec::new(),
        other => return Err(format!("{outer}.{inner} is neither an object nor an array: {other}")),
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, x)| serde_json::from_value(x.clone()).map_err(|e| format!("{outer}.{inner}[{i}]: {e}")))
        .collect()
}

/// The next page's URL of a list response, None on the last page.
pub fn next_page(body: &Value) -> Option<String> {
    body.get("@attributes")?.get("next")?.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

/// The message of an error body (`message`, else `httpMessage`), whatever its content type.
pub fn error_message(status: u16, body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => v
            .get("message")
            .and_then(Value::as_str)
            .or_else(|| v.get("httpMessage").and_then(Value::as_str))
            .map(|m| format!("Lightspeed {status}: {m}"))
            .unwrap_or_else(|| format!("Lightspeed {status}")),
        Err(_) => format!("Lightspeed {status}: {}", String::from_utf8_lossy(&body[..body.len().min(200)])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Line {
        #[serde(rename = "itemID")]
        item_id: String,
    }

    #[test]
    fn strings_for_everything() {
        assert_eq!(int(&json!("12")), Some(12));
        assert_eq!(int(&json!(12)), Some(12));
        assert_eq!(int(&json!("x")), None);
        assert_eq!(boolean(&json!("true")), Some(true));
        assert_eq!(boolean(&json!(false)), Some(false));
        assert_eq!(money_minor(&json!("9.99")), Some(999));
        assert_eq!(money_minor(&json!("-3.5")), Some(-350));
        assert_eq!(money_minor(&json!("10")), Some(1000));
        assert_eq!(money_minor(&json!("0.005")), Some(1));
        assert_eq!(money_minor(&json!("1.23456")), Some(123));
        assert_eq!(money_minor(&json!(4.5)), Some(450));
        assert_eq!(money_minor(&json!("4,50")), None);
        assert_eq!(money_str(1230), "12.30");
        assert_eq!(money_str(-5), "-0.05");
    }

    #[test]
    fn a_relation_is_an_object_an_array_or_nothing() {
        let one = json!({"SaleLines": {"SaleLine": {"itemID": "7"}}});
        let many = json!({"SaleLines": {"SaleLine": [{"itemID": "7"}, {"itemID": "8"}]}});
        let none = json!({"SaleLines": ""});
        let l: Vec<Line> = relation(&one, "SaleLines", "SaleLine").expect("one");
        assert_eq!(l, vec![Line { item_id: "7".into() }]);
        let l: Vec<Line> = relation(&many, "SaleLines", "SaleLine").expect("many");
        assert_eq!(l.len(), 2);
        let l: Vec<Line> = relation(&none, "SaleLines", "SaleLine").expect("none");
        assert!(l.is_empty());
        let l: Vec<Line> = relation(&json!({}), "SaleLines", "SaleLine").expect("absent");
        assert!(l.is_empty());
        let bad = json!({"SaleLines": {"SaleLine": [{"itemID": "7"}, {"nope": 1}]}});
        let e = relation::<Line>(&bad, "SaleLines", "SaleLine").expect_err("bad");
        assert!(e.starts_with("SaleLines.SaleLine[1]"), "{e}");
    }

    #[test]
    fn cursors_and_errors() {
        let p = json!({"@attributes": {"next": "https://api.lightspeedapp.com/API/V3/Account/1/Item.json?after=WzEwMF0%3D&limit=100", "previous": ""}});
        assert!(next_page(&p).is_some_and(|u| u.contains("after=")));
        assert_eq!(next_page(&json!({"@attributes": {"next": "", "previous": "x"}})), None);
        let e = br#"{"httpCode":"400","httpMessage":"Bad Request","message":"name cannot be blank.","errorClass":"Exception"}"#;
        assert_eq!(error_message(400, e), "Lightspeed 400: name cannot be blank.");
        assert_eq!(error_message(502, b"<html>bad gateway</html>"), "Lightspeed 502: <html>bad gateway</html>");
    }
}
