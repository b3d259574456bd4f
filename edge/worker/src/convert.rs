//! Between workers-rs (JavaScript `Request`/`Response`/`Headers`) and the `http` types the
//! edge's logic speaks, without losing anything on the way:
//!
//! * Header values: workerd hands JavaScript header values as text decoded from UTF-8 (bytes
//!   that are not UTF-8 are already U+FFFD when the Worker sees them, on Cloudflare as
//!   here) and encodes what JavaScript sets as UTF-8. So a value crosses as its UTF-8
//!   bytes, both ways: `café` stays `café` (a conversion through `to_str()` would drop it,
//!   since `http` calls anything past ASCII opaque), and a value that is not UTF-8 is
//!   passed on as the runtime would render it, never dropped. [`js_header_value`],
//!   [`header_value_to_js`].
//! * Bodies are read against a cap, and a body that cannot be read is an error, never an
//!   empty body: [`read_capped`].

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http::{HeaderName, HeaderValue};
use thiserror::Error;

/// Why a request could not be turned into the edge's `http::Request`. Each is a precise 4xx.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("the request body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("the request body could not be read: {0}")]
    BodyUnreadable(String),
    /// Shorter (the client stopped) or longer (e.g. chunked framing beside a
    /// Content-Length: a smuggling attempt) than declared.
    #[error("the request body is {read} bytes but its Content-Length declared {declared}")]
    BodyLengthMismatch { read: usize, declared: u64 },
    #[error("header {0:?} is not a valid header")]
    BadHeader(String),
    #[error("the request line is invalid: {0}")]
    BadRequestLine(String),
}

impl RequestError {
    pub fn status(&self) -> http::StatusCode {
        match self {
            Self::BodyTooLarge { .. } => http::StatusCode::PAYLOAD_TOO_LARGE,
            _ => http::StatusCode::BAD_REQUEST,
        }
    }

    /// The stable error code in the API's error JSON.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BodyTooLarge { .. } => "payload_too_large",
            Self::BodyUnreadable(_) => "body_unreadable",
            Self::BodyLengthMismatch { .. } => "body_length_mismatch",
            Self::BadHeader(_) => "bad_header",
            Self::BadRequestLine(_) => "bad_request",
        }
    }
}

/// A header value from JavaScript: its UTF-8 bytes. `None` only for what no header value
/// may hold (control characters).
pub fn js_header_value(value: &str) -> Option<HeaderValue> {
    HeaderValue::from_bytes(value.as_bytes()).ok()
}

/// A header value for JavaScript: the text its bytes spell in UTF-8; bytes that are not
/// UTF-8 become U+FFFD, as workerd renders them itself.
pub fn header_value_to_js(value: &HeaderValue) -> Cow<'_, str> {
    String::from_utf8_lossy(value.as_bytes())
}

/// `(name, value)` pairs from JavaScript into a header map; the first bad pair is an error.
pub fn headers_from_js(entries: impl IntoIterator<Item = (String, String)>) -> Result<http::HeaderMap, RequestError> {
    let mut headers = http::HeaderMap::new();
    for (name, value) in entries {
        let parsed_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| RequestError::BadHeader(name.clone()))?;
        let parsed_value = js_header_value(&value).ok_or(RequestError::BadHeader(name))?;
        headers.append(parsed_name, parsed_value);
    }
    Ok(headers)
}

/// Reads a body stream to its end, refusing it as soon as it passes `limit` bytes (a
/// declared `Content-Length` over the limit is refused before reading anything). A stream
/// error is an error; so is a body shorter than its declared length.
pub async fn read_capped<S, E>(stream: Option<S>, declared: Option<u64>, limit: usize) -> Result<Bytes, RequestError>
where
    S: Stream<Item = Result<Vec<u8>, E>> + Unpin,
    E: std::fmt::Display,
{
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(RequestError::BodyTooLarge { limit });
    }
    let Some(mut stream) = stream else {
        return match declared {
            Some(n) if n > 0 => Err(RequestError::BodyLengthMismatch { read: 0, declared: n }),
            _ => Ok(Bytes::new()),
        };
    };
    let mut body = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| RequestError::BodyUnreadable(e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(RequestError::BodyTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    // workers-rs ends the stream quietly when the client aborts; the declared length tells.
    if let Some(declared) = declared.filter(|&n| n != body.len() as u64) {
        return Err(RequestError::BodyLengthMismatch { read: body.len(), declared });
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;

    fn chunks(parts: &[&[u8]]) -> impl Stream<Item = Result<Vec<u8>, String>> + Unpin {
        stream::iter(parts.iter().map(|p| Ok(p.to_vec())).collect::<Vec<_>>())
    }

    #[test]
    fn utf8_header_values_cross_byte_for_byte_both_ways() {
        let from_js = js_header_value("inline; filename=\"café ☺.png\"").expect("UTF-8 text is a valid value");
        assert_eq!(from_js.as_bytes(), "inline; filename=\"café ☺.png\"".as_bytes());
        assert!(from_js.to_str().is_err(), "http calls it opaque, and it is still kept");
        assert_eq!(header_value_to_js(&from_js), "inline; filename=\"café ☺.png\"");
    }

    #[test]
    fn values_that_are_not_utf8_are_passed_on_as_the_runtime_renders_them() {
        let latin1 = HeaderValue::from_bytes(b"caf\xe9").unwrap();
        assert_eq!(header_value_to_js(&latin1), "caf\u{fffd}");
        assert_eq!(js_header_value("caf\u{fffd}").unwrap().as_bytes(), "caf\u{fffd}".as_bytes());
    }

    #[test]
    fn values_holding_control_characters_are_refused_by_name() {
        assert_eq!(js_header_value("a\u{0}b"), None);
        let err = headers_from_js([("x-ok".into(), "1".into()), ("x-bad".into(), "a\nb".into())]).unwrap_err();
        assert_eq!(err, RequestError::BadHeader("x-bad".into()));
        assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
        let err = headers_from_js([("bad name".into(), "1".into())]).unwrap_err();
        assert_eq!(err.code(), "bad_header");
    }

    #[test]
    fn repeated_headers_are_kept_in_order() {
        let h = headers_from_js([("accept".into(), "a".into()), ("accept".into(), "b".into())]).unwrap();
        let all: Vec<_> = h.get_all("accept").iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(all, ["a", "b"]);
    }

    #[tokio::test]
    async fn bodies_are_read_whole_up_to_the_cap_and_refused_past_it() {
        let ok = read_capped(Some(chunks(&[b"ab", b"cd"])), Some(4), 4).await.unwrap();
        assert_eq!(&ok[..], b"abcd");
        let chunked = read_capped(Some(chunks(&[b"ab", b"cd"])), None, 4).await.unwrap();
        assert_eq!(&chunked[..], b"abcd");
        let err = read_capped(Some(chunks(&[b"ab", b"cde"])), None, 4).await.unwrap_err();
        assert_eq!((err.status(), err.code()), (http::StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
        // A declared length over the cap is refused before a byte is read.
        let never_read = stream::iter(vec![Err::<Vec<u8>, _>("must not be polled".to_owned())]);
        let err = read_capped(Some(never_read), Some(5), 4).await.unwrap_err();
        assert_eq!(err, RequestError::BodyTooLarge { limit: 4 });
    }

    #[tokio::test]
    async fn a_body_that_fails_or_ends_early_is_an_error_not_an_empty_body() {
        let failing = stream::iter(vec![Ok(b"ab".to_vec()), Err("connection reset".to_owned())]);
        let err = read_capped(Some(failing), None, 100).await.unwrap_err();
        assert_eq!(err, RequestError::BodyUnreadable("connection reset".into()));
        let err = read_capped(Some(chunks(&[b"ab"])), Some(10), 100).await.unwrap_err();
        assert_eq!(err, RequestError::BodyLengthMismatch { read: 2, declared: 10 });
        let err = read_capped(None::<stream::Iter<std::vec::IntoIter<Result<Vec<u8>, String>>>>, Some(3), 100)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "body_length_mismatch");
        let longer = read_capped(Some(chunks(&[b"abcdef"])), Some(4), 100).await.unwrap_err();
        assert_eq!(longer, RequestError::BodyLengthMismatch { read: 6, declared: 4 });
        let empty = read_capped(None::<stream::Iter<std::vec::IntoIter<Result<Vec<u8>, String>>>>, None, 100).await;
        assert_eq!(empty.unwrap(), Bytes::new());
    }
}
