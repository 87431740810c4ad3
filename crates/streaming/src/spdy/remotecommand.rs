//! Exec and attach over SPDY, as kubelet's remotecommand server runs them: the client opens
//! one stream per stdio channel (header `streamtype`: error, stdin, stdout, stderr, resize);
//! the server waits for the streams it expects, runs the backend, writes the status on the
//! error stream and closes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::conn::{self, NewStream, Writer};
use crate::protocol::{parse_resize, StatusStyle, CHANNEL_STDERR, CHANNEL_STDOUT};
use crate::remotecommand::{channel, pump, start_backend, Opts, Output};
use crate::tokens::Pending;
use crate::{Backend, Streams, TerminalSize};

/// How long the client has to open its streams (kubelet's default).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

struct SpdyOutput {
    writer: Writer,
    stdout: Option<u32>,
    stderr: Option<u32>,
}

impl Output for SpdyOutput {
    async fn send(&mut self, channel: u8, data: Bytes) -> bool {
        let stream = match channel {
            CHANNEL_STDOUT => self.stdout,
            CHANNEL_STDERR => self.stderr,
            _ => None,
        };
        match stream {
            Some(id) => self.writer.data(id, data).await,
            None => true,
        }
    }
}

#[derive(Default)]
struct Wanted {
    error: Option<NewStream>,
    stdin: Option<NewStream>,
    stdout: Option<NewStream>,
    stderr: Option<NewStream>,
    resize: Option<NewStream>,
}

/// Serves an exec or attach on an upgraded SPDY connection.
pub(crate) async fn serve<IO>(io: IO, protocol: &str, backend: Arc<dyn Backend>, pending: Pending)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let Some(opts) = Opts::of(&pending) else {
        return;
    };
    let (writer, mut new_streams, mut reader) = match conn::start(io) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "SPDY connection setup failed");
            return;
        }
    };
    // v3 and later carry terminal sizes; v4 reports the end as JSON.
    let resize = opts.tty && protocol != "v2.channel.k8s.io";
    let style = if protocol == "v4.channel.k8s.io" {
        StatusStyle::Json
    } else {
        StatusStyle::Text
    };

    let mut s = Wanted::default();
    let deadline = Instant::now() + STREAM_CREATION_TIMEOUT;
    let complete = |s: &Wanted| {
        s.error.is_some()
            && (!opts.stdin || s.stdin.is_some())
            && (!opts.stdout || s.stdout.is_some())
            && (!opts.stderr || s.stderr.is_some())
            && (!resize || s.resize.is_some())
    };
    while !complete(&s) {
        let stream = tokio::select! {
            st = new_streams.recv() => match st {
                Some(st) => st,
                None => return,
            },
            _ = tokio::time::sleep_until(deadline) => {
                tracing::debug!("SPDY client did not open every stream in time");
                break;
            }
        };
        let slot = match stream.header("streamtype") {
            Some("error") => &mut s.error,
            Some("stdin") => &mut s.stdin,
            Some("stdout") => &mut s.stdout,
            Some("stderr") => &mut s.stderr,
            Some("resize") => &mut s.resize,
            other => {
                tracing::debug!(streamtype = ?other, "unexpected SPDY stream");
                writer.reset(stream.id).await;
                continue;
            }
        };
        *slot = Some(stream);
    }
    let Some(error) = s.error else {
        writer.close().await;
        return;
    };

    let (stdout_tx, stdout_rx) = channel(opts.stdout && s.stdout.is_some());
    let (stderr_tx, stderr_rx) = channel(opts.stderr && s.stderr.is_some());
    let (resize_tx, resize_rx) = mpsc::channel(8);
    if let Some(r) = s.resize.take().filter(|_| resize) {
        tokio::spawn(forward_resizes(r.data, resize_tx));
    }
    let io = Streams {
        stdin: s.stdin.take().filter(|_| opts.stdin).map(|st| st.data),
        stdout: stdout_tx,
        stderr: stderr_tx,
        resize: resize_rx,
    };
    let mut backend = start_backend(backend, pending, io);
    let mut out = SpdyOutput {
        writer: writer.clone(),
        stdout: s.stdout.as_ref().map(|st| st.id),
        stderr: s.stderr.as_ref().map(|st| st.id),
    };
    let Some(outcome) = pump(&mut out, stdout_rx, stderr_rx, &mut backend, &mut reader).await
    else {
        writer.close().await;
        return;
    };
    if let Some(bytes) = outcome.status().encode(style) {
        writer.data(error.id, Bytes::from(bytes)).await;
    }
    for id in [out.stdout, out.stderr, Some(error.id)]
        .into_iter()
        .flatten()
    {
        writer.fin(id).await;
    }
    writer.close().await;
}

/// Reads the resize stream: JSON terminal sizes, one after another.
async fn forward_resizes(mut data: mpsc::Receiver<Bytes>, tx: mpsc::Sender<TerminalSize>) {
    let mut buf = Vec::new();
    while let Some(chunk) = data.recv().await {
        buf.extend_from_slice(&chunk);
        let mut it = serde_json::Deserializer::from_slice(&buf).into_iter::<serde_json::Value>();
        let mut used = 0;
        while let Some(Ok(v)) = it.next() {
            used = it.byte_offset();
            let Ok(bytes) = serde_json::to_vec(&v) else {
                continue;
            };
            if let Some(size) = parse_resize(&bytes) {
                if tx.try_send(size).is_err() {
                    tracing::debug!(?size, "resize dropped: backend not reading resizes");
                }
            }
        }
        buf.drain(..used);
    }
}
