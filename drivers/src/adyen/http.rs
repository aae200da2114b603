//! HTTP/1.1 framing for the Terminal API: one POST and one answer per connection
//! (`Connection: close`), bodies by `Content-Length`, at most [`MAX_BODY`]. `httparse`
//! reads the heads; this module only finds where a head ends and reads the body after it.

use std::io::{Read, Write};

/// Longest body accepted either way (a payment answer with two receipts is ~12 KiB).
pub const MAX_BODY: usize = 1 << 20;
const MAX_HEAD: usize = 16 * 1024;

/// What went wrong reading a message.
#[derive(Debug)]
pub enum ReadError {
    /// The stream ended or failed (the peer went away, or a read timed out).
    Io(std::io::Error),
    /// The bytes are not HTTP/1.1 as this side speaks it.
    Bad(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Bad(w) => write!(f, "not HTTP as expected: {w}"),
        }
    }
}

/// A request as read by a server.
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
}

/// Writes a POST of a JSON body.
pub fn write_request(w: &mut impl Write, host: &str, path: &str, body: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    let mut all = head.into_bytes();
    all.extend_from_slice(body);
    w.write_all(&all)?;
    w.flush()
}

/// Writes an answer.
pub fn write_response(w: &mut impl Write, status: u16, reason: &str, body: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut all = head.into_bytes();
    all.extend_from_slice(body);
    w.write_all(&all)?;
    w.flush()
}

/// Reads until the head is complete; the bytes read so far.
fn read_head(r: &mut impl Read) -> Result<Vec<u8>, ReadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(buf);
        }
        if buf.len() > MAX_HEAD {
            return Err(ReadError::Bad(format!("head longer than {MAX_HEAD} bytes")));
        }
        let n = r.read(&mut chunk).map_err(ReadError::Io)?;
        if n == 0 {
            return Err(ReadError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                if buf.is_empty() { "closed without a word" } else { "closed in the middle of the head" },
            )));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn content_length(headers: &[httparse::Header]) -> Result<usize, ReadError> {
    let mut len = 0;
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            len = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| ReadError::Bad("Content-Length is not a number".into()))?;
        }
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(ReadError::Bad("chunked bodies are not used by the Terminal API".into()));
        }
    }
    if len > MAX_BODY {
        return Err(ReadError::Bad(format!("body of {len} bytes is over {MAX_BODY}")));
    }
    Ok(len)
}

fn read_body(r: &mut impl Read, mut have: Vec<u8>, len: usize) -> Result<Vec<u8>, ReadError> {
    have.truncate(len.min(have.len()));
    let mut chunk = [0u8; 8192];
    while have.len() < len {
        let n = r.read(&mut chunk).map_err(ReadError::Io)?;
        if n == 0 {
            return Err(ReadError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("closed after {} of {len} body bytes", have.len()),
            )));
        }
        have.extend_from_slice(&chunk[..n.min(len - have.len())]);
    }
    Ok(have)
}

/// Reads a request (the terminal's side).
pub fn read_request(r: &mut impl Read) -> Result<Request, ReadError> {
    let buf = read_head(r)?;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let n = match req.parse(&buf).map_err(|e| ReadError::Bad(e.to_string()))? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Err(ReadError::Bad("incomplete head".into())),
    };
    let method = req.method.unwrap_or_default().to_string();
    let path = req.path.unwrap_or_default().to_string();
    let len = content_length(req.headers)?;
    let body = read_body(r, buf[n..].to_vec(), len)?;
    Ok(Request { method, path, body })
}

/// Reads an answer (the POS's side): status, reason and body.
pub fn read_response(r: &mut impl Read) -> Result<(u16, String, Vec<u8>), ReadError> {
    let buf = read_head(r)?;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let n = match resp.parse(&buf).map_err(|e| ReadError::Bad(e.to_string()))? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Err(ReadError::Bad("incomplete head".into())),
    };
    let status = resp.code.unwrap_or(0);
    let reason = resp.reason.unwrap_or_default().to_string();
    let len = content_length(resp.headers)?;
    let body = read_body(r, buf[n..].to_vec(), len)?;
    Ok((status, reason, body))
}
