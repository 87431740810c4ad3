//! The WebSocket upgrade handshake (RFC 6455) on a hyper request, with the subprotocol choice
//! of Kubernetes: the first protocol the client offers that the server speaks; no protocol at
//! all means the oldest (`channel.k8s.io` framing).

use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Response, StatusCode};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use bytes::Bytes;

/// Why an upgrade is refused: the HTTP status and a line of text for the client.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

/// An accepted upgrade: the chosen subprotocol ("" for none) and the key to answer.
pub(crate) struct Accepted {
    pub protocol: String,
    key: HeaderValue,
}

fn header_tokens(headers: &HeaderMap, name: header::HeaderName) -> Vec<&str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Whether the client asks for a SPDY/3.1 upgrade.
pub(crate) fn is_spdy(headers: &HeaderMap) -> bool {
    header_tokens(headers, header::UPGRADE)
        .iter()
        .any(|u| u.eq_ignore_ascii_case("spdy/3.1"))
}

/// The header that carries the SPDY subprotocols, one per value.
const STREAM_PROTOCOL: &str = "x-stream-protocol-version";

/// An accepted SPDY upgrade and its negotiated protocol.
pub(crate) struct SpdyAccepted {
    pub protocol: String,
}

/// Checks a SPDY/3.1 upgrade and picks the client's first protocol that is `supported`
/// (kubelet answers 403 when there is none).
pub(crate) fn check_spdy(headers: &HeaderMap, supported: &[&str]) -> Result<SpdyAccepted, Refusal> {
    let connection_upgrade = header_tokens(headers, header::CONNECTION)
        .iter()
        .any(|c| c.eq_ignore_ascii_case("upgrade"));
    if !connection_upgrade {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "expected Connection: Upgrade",
        ));
    }
    let offered = header_tokens(headers, header::HeaderName::from_static(STREAM_PROTOCOL));
    match offered.iter().find(|p| supported.contains(p)) {
        Some(p) => Ok(SpdyAccepted {
            protocol: p.to_string(),
        }),
        None => Err(Refusal::new(
            StatusCode::FORBIDDEN,
            format!(
                "unable to upgrade: none of the client's stream protocols {offered:?} is supported (supported: {supported:?})"
            ),
        )),
    }
}

impl SpdyAccepted {
    /// The `101 Switching Protocols` answer.
    pub(crate) fn response(&self) -> Response<Full<Bytes>> {
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = resp.headers_mut();
        h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Ok(v) = HeaderValue::from_str(&self.protocol) {
            h.insert(STREAM_PROTOCOL, v);
        }
        resp
    }
}

/// Checks that `method`/`headers` ask for a WebSocket upgrade with one of `supported`.
pub(crate) fn check(
    method: &Method,
    headers: &HeaderMap,
    supported: &[&str],
) -> Result<Accepted, Refusal> {
    let upgrade = header_tokens(headers, header::UPGRADE);
    let connection_upgrade = header_tokens(headers, header::CONNECTION)
        .iter()
        .any(|c| c.eq_ignore_ascii_case("upgrade"));
    if !connection_upgrade || !upgrade.iter().any(|u| u.eq_ignore_ascii_case("websocket")) {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "expected a WebSocket upgrade request",
        ));
    }
    if method != Method::GET {
        return Err(Refusal::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "a WebSocket upgrade must use GET",
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(|v| v.as_bytes())
        != Some(b"13")
    {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "unsupported Sec-WebSocket-Version (want 13)",
        ));
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "missing Sec-WebSocket-Key",
        ));
    };
    let offered = header_tokens(headers, header::SEC_WEBSOCKET_PROTOCOL);
    let protocol = if offered.is_empty() {
        String::new()
    } else {
        match offered.iter().find(|p| supported.contains(p)) {
            Some(p) => p.to_string(),
            None => {
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "none of the requested subprotocols {offered:?} is supported (supported: {supported:?})"
                    ),
                ))
            }
        }
    };
    Ok(Accepted { protocol, key })
}

impl Accepted {
    /// The `101 Switching Protocols` answer.
    pub(crate) fn response(&self) -> Response<Full<Bytes>> {
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = resp.headers_mut();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Ok(v) = HeaderValue::from_str(&derive_accept_key(self.key.as_bytes())) {
            h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        if !self.protocol.is_empty() {
            if let Ok(v) = HeaderValue::from_str(&self.protocol) {
                h.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
            }
        }
        resp
    }
}

/// A plain-text error answer.
pub(crate) fn text(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(format!("{message}\n"))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    const WS: &[(&str, &str)] = &[
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    #[test]
    fn picks_clients_first_supported_protocol() {
        let mut h = headers(WS);
        h.append(
            "sec-websocket-protocol",
            HeaderValue::from_static("v9.channel.k8s.io, v4.channel.k8s.io"),
        );
        h.append(
            "sec-websocket-protocol",
            HeaderValue::from_static("v5.channel.k8s.io"),
        );
        let a = check(
            &Method::GET,
            &h,
            &["v5.channel.k8s.io", "v4.channel.k8s.io"],
        )
        .expect("accepted");
        assert_eq!(a.protocol, "v4.channel.k8s.io");
        let r = a.response();
        assert_eq!(r.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(
            r.headers()[header::SEC_WEBSOCKET_ACCEPT],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn spdy_negotiates_in_client_order() {
        let mut spdy = headers(&[("connection", "Upgrade"), ("upgrade", "SPDY/3.1")]);
        assert!(is_spdy(&spdy));
        assert!(!is_spdy(&headers(WS)));
        let e = check_spdy(&spdy, &["v4.channel.k8s.io"])
            .err()
            .expect("refused");
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        spdy.append(
            STREAM_PROTOCOL,
            HeaderValue::from_static("v5.channel.k8s.io"),
        );
        spdy.append(
            STREAM_PROTOCOL,
            HeaderValue::from_static("v3.channel.k8s.io"),
        );
        spdy.append(
            STREAM_PROTOCOL,
            HeaderValue::from_static("v4.channel.k8s.io"),
        );
        let a = check_spdy(&spdy, &["v4.channel.k8s.io", "v3.channel.k8s.io"]).expect("ok");
        assert_eq!(a.protocol, "v3.channel.k8s.io");
        assert_eq!(a.response().headers()[STREAM_PROTOCOL], "v3.channel.k8s.io");
        // A WebSocket check refuses a SPDY request.
        let e = check(&Method::POST, &spdy, &["v5.channel.k8s.io"])
            .err()
            .expect("refused");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn refuses_unknown_protocols() {
        let mut h = headers(WS);
        h.append(
            "sec-websocket-protocol",
            HeaderValue::from_static("v9.channel.k8s.io"),
        );
        let e = check(&Method::GET, &h, &["v5.channel.k8s.io"])
            .err()
            .expect("refused");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let e = check(&Method::GET, &HeaderMap::new(), &["v5.channel.k8s.io"])
            .err()
            .expect("refused");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }
}
