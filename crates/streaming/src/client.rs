//! A small WebSocket client for streaming URLs (feature `client`): enough for tests and tools
//! to run a command through an exec URL the way kubectl does.

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use crate::protocol::{
    Framing, Incoming, Resize, Status, CHANNEL_CLOSE, CHANNEL_ERROR, CHANNEL_RESIZE,
    CHANNEL_STDERR, CHANNEL_STDIN, CHANNEL_STDOUT, PROTOCOL_V4, PROTOCOL_V5,
};

/// Why a client stream failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to the streaming server: {0}")]
    Connect(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("invalid streaming URL or header: {0}")]
    Request(String),
    #[error("streaming protocol: {0}")]
    Protocol(String),
    #[error("the command failed to run: {0}")]
    Failed(String),
}

/// What an exec produced.
pub type ExecOutput = (Vec<u8>, Vec<u8>, i32);

/// Runs the exec behind `url`: sends `stdin` (then closes it), collects stdout and stderr, and
/// returns them with the exit code. With `tty` an 80×24 terminal size is sent first. Speaks
/// `v5.channel.k8s.io` (falling back to v4, where stdin cannot be closed).
pub async fn exec(
    url: impl AsRef<str>,
    stdin: Option<Vec<u8>>,
    tty: bool,
) -> Result<ExecOutput, ClientError> {
    exec_with_protocols(url, &[PROTOCOL_V5, PROTOCOL_V4], stdin, tty).await
}

/// The WebSocket form of a streaming URL: `http://` becomes `ws://`, `https://` `wss://`.
pub fn ws_url(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        url.to_string()
    }
}

/// [`exec`] offering the given subprotocols, in order of preference.
pub async fn exec_with_protocols(
    url: impl AsRef<str>,
    protocols: &[&str],
    stdin: Option<Vec<u8>>,
    tty: bool,
) -> Result<ExecOutput, ClientError> {
    let mut request = ws_url(url.as_ref())
        .into_client_request()
        .map_err(|e| ClientError::Request(e.to_string()))?;
    let offered = HeaderValue::from_str(&protocols.join(", "))
        .map_err(|e| ClientError::Request(e.to_string()))?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", offered);
    let (ws, response) = tokio_tungstenite::connect_async(request).await?;
    let protocol = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let framing = Framing::of(&protocol);
    let (mut sink, mut source) = ws.split();

    // Write in a task of its own so a large stdin cannot block reading the output.
    let writer = tokio::spawn(async move {
        if tty {
            let size = serde_json::to_vec(&Resize {
                width: 80,
                height: 24,
            })
            .unwrap_or_default();
            sink.send(framing.encode(CHANNEL_RESIZE, &size)).await?;
        }
        if let Some(data) = stdin {
            for chunk in data.chunks(32 * 1024) {
                sink.send(framing.encode(CHANNEL_STDIN, chunk)).await?;
            }
            if framing.stream_close {
                let close = bytes::Bytes::from_static(&[CHANNEL_CLOSE, CHANNEL_STDIN]);
                sink.send(Message::Binary(close)).await?;
            }
        }
        Ok::<_, tokio_tungstenite::tungstenite::Error>(sink)
    });

    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut status = None;
    while let Some(msg) = source.next().await {
        let msg = match msg {
            Ok(m) => m,
            // The server may drop the connection right after its close.
            Err(_) if status.is_some() => break,
            Err(e) => return Err(e.into()),
        };
        match framing.decode(msg) {
            Incoming::Data(CHANNEL_STDOUT, d) => stdout.extend_from_slice(&d),
            Incoming::Data(CHANNEL_STDERR, d) => stderr.extend_from_slice(&d),
            Incoming::Data(CHANNEL_ERROR, d) if !d.is_empty() => {
                status = Some(String::from_utf8_lossy(&d).into_owned())
            }
            Incoming::Closed => break,
            _ => {}
        }
    }
    writer.abort();
    let code = match status {
        None if framing.status == crate::protocol::StatusStyle::Text => 0,
        None => {
            return Err(ClientError::Protocol(
                "the stream ended without a status".into(),
            ))
        }
        Some(text) => match serde_json::from_str::<Status>(&text) {
            Ok(s) => match s.reported_exit_code() {
                Some(code) => code,
                None => return Err(ClientError::Failed(s.message.unwrap_or(text))),
            },
            Err(_) => return Err(ClientError::Failed(text)),
        },
    };
    Ok((stdout, stderr, code))
}
