//! NetSuite's error envelope (§B6 of the reference): `{"type", "title", "status",
//! "o:errorDetails": [{"detail", "o:errorCode", "o:errorPath"?, "o:urlPath"?,
//! "o:errorHeader"?, "o:errorQueryParam"?}]}`, turned into a dead-letter reason that names
//! the field at fault.

use serde_json::Value;

/// One detail of the envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorDetail {
    pub code: String,
    pub detail: String,
    /// Where: the body's JSON path, or the URL path, header or query parameter.
    pub at: Option<String>,
}

/// The details of an error body (empty when it is not NetSuite's envelope).
pub fn details(body: &[u8]) -> Vec<ErrorDetail> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else { return Vec::new() };
    let Some(list) = v.get("o:errorDetails").and_then(Value::as_array) else { return Vec::new() };
    list.iter()
        .map(|d| {
            let s = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_string);
            let at = s("o:errorPath")
                .map(|p| format!("field {p}"))
                .or_else(|| s("o:errorQueryParam").map(|p| format!("query parameter {p}")))
                .or_else(|| s("o:errorHeader").map(|p| format!("header {p}")))
                .or_else(|| s("o:urlPath").map(|p| format!("URL {p}")));
            ErrorDetail { code: s("o:errorCode").unwrap_or_default(), detail: s("detail").unwrap_or_default(), at }
        })
        .collect()
}

/// A reason in words: `NetSuite 400 INVALID_CONTENT at field item.items[0].item: …`, one
/// clause per detail.
pub fn reason(status: u16, body: &[u8]) -> String {
    let ds = details(body);
    if ds.is_empty() {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).to_string();
        return format!("NetSuite {status}: {text}");
    }
    let parts: Vec<String> = ds
        .iter()
        .map(|d| match &d.at {
            Some(at) => format!("{} at {at}: {}", d.code, d.detail),
            None => format!("{}: {}", d.code, d.detail),
        })
        .collect();
    format!("NetSuite {status} {}", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_names_the_field() {
        let body = br#"{"type":"https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.1","title":"Bad Request","status":400,
            "o:errorDetails":[{"detail":"Invalid value for the resource or sub-resource field 'item'.","o:errorCode":"INVALID_CONTENT","o:errorPath":"item.items[0].item"},
                              {"detail":"Bad limit.","o:errorCode":"INVALID_PARAMETER","o:errorQueryParam":"limit"}]}"#;
        let r = reason(400, body);
        assert!(r.starts_with("NetSuite 400 INVALID_CONTENT at field item.items[0].item: Invalid value"), "{r}");
        assert!(r.contains("INVALID_PARAMETER at query parameter limit"), "{r}");
        let login = br#"{"title":"Unauthorized","status":401,"o:errorDetails":[{"detail":"Invalid login attempt. For more details, see the Login Audit Trail.","o:errorCode":"INVALID_LOGIN"}]}"#;
        assert!(reason(401, login).contains("INVALID_LOGIN: Invalid login attempt"));
        assert_eq!(reason(502, b"upstream"), "NetSuite 502: upstream");
    }
}
