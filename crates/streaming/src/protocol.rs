//! The Kubernetes WebSocket channel protocols: subprotocol names, channel numbers, framing and
//! the status message that ends an exec or attach.
//!
//! Each WebSocket message carries one channel's data, prefixed by the channel number: a byte in
//! the binary protocols, an ASCII digit followed by base64 in the base64 ones. `v5` adds the
//! message `[255, channel]` that closes one stream (a client's stdin EOF).

use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::TerminalSize;

pub const PROTOCOL_V5: &str = "v5.channel.k8s.io";
pub const PROTOCOL_V4: &str = "v4.channel.k8s.io";
pub const PROTOCOL_V4_BASE64: &str = "v4.base64.channel.k8s.io";
pub const PROTOCOL_V1: &str = "channel.k8s.io";
pub const PROTOCOL_V1_BASE64: &str = "base64.channel.k8s.io";
pub const PROTOCOL_PORT_FORWARD: &str = "portforward.k8s.io";
/// kubectl ≥ 1.30's port-forward: SPDY frames carried in binary WebSocket messages.
pub const PROTOCOL_PORT_FORWARD_SPDY_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";

pub const CHANNEL_STDIN: u8 = 0;
pub const CHANNEL_STDOUT: u8 = 1;
pub const CHANNEL_STDERR: u8 = 2;
pub const CHANNEL_ERROR: u8 = 3;
pub const CHANNEL_RESIZE: u8 = 4;
/// v5: `[CHANNEL_CLOSE, n]` closes channel `n`.
pub const CHANNEL_CLOSE: u8 = 255;

/// Subprotocols of exec and attach, in no particular order (the client's order decides).
pub(crate) const REMOTE_COMMAND_PROTOCOLS: &[&str] = &[
    PROTOCOL_V5,
    PROTOCOL_V4,
    PROTOCOL_V4_BASE64,
    PROTOCOL_V1,
    PROTOCOL_V1_BASE64,
];

/// Subprotocols of port-forward.
pub(crate) const PORT_FORWARD_PROTOCOLS: &[&str] = &[
    PROTOCOL_PORT_FORWARD_SPDY_TUNNEL,
    PROTOCOL_PORT_FORWARD,
    PROTOCOL_V4,
    PROTOCOL_V4_BASE64,
];

/// How the error channel reports the end of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StatusStyle {
    /// v1: the error text on failure, nothing on success.
    Text,
    /// v4 and later: a JSON `metav1.Status` either way.
    Json,
}

/// The framing chosen by the handshake.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Framing {
    pub base64: bool,
    pub stream_close: bool,
    pub status: StatusStyle,
}

impl Framing {
    /// The framing of a subprotocol name ("" when the client asked for none).
    pub(crate) fn of(protocol: &str) -> Self {
        Self {
            base64: protocol.contains("base64"),
            stream_close: protocol == PROTOCOL_V5,
            status: if protocol.starts_with("v4.") || protocol.starts_with("v5.") {
                StatusStyle::Json
            } else {
                StatusStyle::Text
            },
        }
    }

    /// A message carrying `data` on `channel`.
    pub(crate) fn encode(&self, channel: u8, data: &[u8]) -> Message {
        if self.base64 {
            let mut s = String::with_capacity(1 + data.len().div_ceil(3) * 4);
            s.push(char::from(b'0' + channel));
            base64::engine::general_purpose::STANDARD.encode_string(data, &mut s);
            Message::text(s)
        } else {
            let mut b = BytesMut::with_capacity(1 + data.len());
            b.put_u8(channel);
            b.put_slice(data);
            Message::Binary(b.freeze())
        }
    }

    /// What a message from the client means.
    pub(crate) fn decode(&self, msg: Message) -> Incoming {
        let (channel, data) = match msg {
            Message::Binary(b) if !b.is_empty() => {
                if self.stream_close && b[0] == CHANNEL_CLOSE {
                    return match b.len() {
                        2 => Incoming::Close(b[1]),
                        _ => Incoming::Ignore,
                    };
                }
                (b[0], b.slice(1..))
            }
            Message::Text(t) if self.base64 && !t.is_empty() => {
                let s = t.as_str();
                let Some(channel) = s.as_bytes()[0].checked_sub(b'0') else {
                    return Incoming::Ignore;
                };
                match base64::engine::general_purpose::STANDARD.decode(&s[1..]) {
                    Ok(d) => (channel, Bytes::from(d)),
                    Err(_) => return Incoming::Ignore,
                }
            }
            Message::Close(_) => return Incoming::Closed,
            _ => return Incoming::Ignore,
        };
        Incoming::Data(channel, data)
    }
}

/// The close message that ends a session: status 1000, which Go clients (gorilla/websocket
/// in client-go) read as a clean end; a close without a status (1005) is an error to them.
pub(crate) fn normal_close() -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
}

/// A decoded client message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming {
    Data(u8, Bytes),
    Close(u8),
    Closed,
    Ignore,
}

/// `metav1.Status` as the error channel of v4 and later carries it.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Status {
    #[serde(default)]
    pub metadata: Metadata,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Details>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
}

#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Metadata {}

#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Details {
    #[serde(default)]
    pub causes: Vec<Cause>,
}

#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Cause {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

pub(crate) const REASON_NON_ZERO_EXIT: &str = "NonZeroExitCode";
pub(crate) const CAUSE_EXIT_CODE: &str = "ExitCode";

impl Status {
    pub(crate) fn success() -> Self {
        Self {
            status: "Success".into(),
            ..Self::default()
        }
    }

    /// A command that ran and exited with `code` (not 0).
    pub(crate) fn exit_code(cmd: &[String], code: i32) -> Self {
        Self {
            status: "Failure".into(),
            message: Some(format!(
                "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                cmd.join(" ")
            )),
            reason: Some(REASON_NON_ZERO_EXIT.into()),
            details: Some(Details {
                causes: vec![Cause {
                    reason: Some(CAUSE_EXIT_CODE.into()),
                    message: Some(code.to_string()),
                }],
            }),
            ..Self::default()
        }
    }

    /// A failure of the runtime (not of the command), as `apierrors.NewInternalError`.
    pub(crate) fn internal(err: &str) -> Self {
        Self {
            status: "Failure".into(),
            message: Some(format!("Internal error occurred: {err}")),
            reason: Some("InternalError".into()),
            details: Some(Details {
                causes: vec![Cause {
                    reason: None,
                    message: Some(err.to_string()),
                }],
            }),
            code: Some(500),
            ..Self::default()
        }
    }

    /// The exit code this status reports, if it reports one.
    #[cfg_attr(not(feature = "client"), allow(dead_code))]
    pub(crate) fn reported_exit_code(&self) -> Option<i32> {
        if self.status == "Success" {
            return Some(0);
        }
        if self.reason.as_deref() != Some(REASON_NON_ZERO_EXIT) {
            return None;
        }
        self.details
            .as_ref()?
            .causes
            .iter()
            .find(|c| c.reason.as_deref() == Some(CAUSE_EXIT_CODE))
            .and_then(|c| c.message.as_deref()?.parse().ok())
    }

    /// The bytes to put on the error channel in `style` (None: nothing to send).
    pub(crate) fn encode(&self, style: StatusStyle) -> Option<Vec<u8>> {
        match style {
            StatusStyle::Json => serde_json::to_vec(self).ok(),
            StatusStyle::Text if self.status == "Success" => None,
            StatusStyle::Text => Some(self.message.clone().unwrap_or_default().into_bytes()),
        }
    }
}

/// A resize message as kubectl sends it: `{"Width":80,"Height":24}`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Resize {
    #[serde(rename = "Width", alias = "width")]
    pub width: u16,
    #[serde(rename = "Height", alias = "height")]
    pub height: u16,
}

pub(crate) fn parse_resize(data: &[u8]) -> Option<TerminalSize> {
    let r: Resize = serde_json::from_slice(data).ok()?;
    Some(TerminalSize {
        width: r.width,
        height: r.height,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_json_matches_kubelet() {
        assert_eq!(
            String::from_utf8(Status::success().encode(StatusStyle::Json).expect("json"))
                .expect("utf8"),
            r#"{"metadata":{},"status":"Success"}"#
        );
        let s = Status::exit_code(&["sh".into(), "-c".into(), "exit 3".into()], 3);
        assert_eq!(
            String::from_utf8(s.encode(StatusStyle::Json).expect("json")).expect("utf8"),
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
        );
        assert_eq!(s.reported_exit_code(), Some(3));
        assert_eq!(Status::success().reported_exit_code(), Some(0));
        assert_eq!(Status::internal("boom").reported_exit_code(), None);
        assert_eq!(Status::success().encode(StatusStyle::Text), None);
    }

    #[test]
    fn framing_round_trips() {
        for proto in [PROTOCOL_V5, PROTOCOL_V4, PROTOCOL_V4_BASE64] {
            let f = Framing::of(proto);
            let m = f.encode(CHANNEL_STDOUT, b"hello");
            assert_eq!(
                f.decode(m),
                Incoming::Data(CHANNEL_STDOUT, Bytes::from_static(b"hello"))
            );
        }
        let v5 = Framing::of(PROTOCOL_V5);
        assert_eq!(
            v5.decode(Message::Binary(Bytes::from_static(&[255, 0]))),
            Incoming::Close(0)
        );
        let v4 = Framing::of(PROTOCOL_V4);
        assert_eq!(
            v4.decode(Message::Binary(Bytes::from_static(&[255, 0]))),
            Incoming::Data(255, Bytes::from_static(&[0]))
        );
        assert_eq!(v4.status, StatusStyle::Json);
        assert_eq!(Framing::of(PROTOCOL_V1).status, StatusStyle::Text);
    }

    #[test]
    fn resize_parses_kubectl_json() {
        assert_eq!(
            parse_resize(br#"{"Width":120,"Height":40}"#),
            Some(TerminalSize {
                width: 120,
                height: 40
            })
        );
        assert_eq!(parse_resize(b"nope"), None);
    }
}
