//! Exec and attach sessions over an upgraded WebSocket, as kubelet's remotecommand server runs
//! them: an empty message on the first output channel says the streams are ready, the client's
//! stdin and resize messages go to the backend, its output goes to the client, and the end is
//! reported on the error channel before the connection closes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::protocol::{
    normal_close, parse_resize, Framing, Incoming, Status, CHANNEL_ERROR, CHANNEL_RESIZE,
    CHANNEL_STDERR, CHANNEL_STDIN, CHANNEL_STDOUT,
};
use crate::server::Ws;
use std::future::Future;

use tokio::task::JoinHandle;

use crate::tokens::Pending;
use crate::{Backend, Streams, TerminalSize};

/// Messages buffered per stream between the socket and the backend.
const STREAM_BUFFER: usize = 16;
/// How long output may still arrive after the backend's future resolved.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How long to wait for the client's answer to our close.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Which streams a session has.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Opts {
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

impl Opts {
    pub(crate) fn of(pending: &Pending) -> Option<Self> {
        let (tty, stdin, stdout, stderr) = match pending {
            Pending::Exec(r) => (r.tty, r.stdin, r.stdout, r.stderr),
            Pending::Attach(r) => (r.tty, r.stdin, r.stdout, r.stderr),
            Pending::PortForward(_) => return None,
        };
        Some(Self {
            tty,
            stdin,
            stdout,
            stderr: stderr && !tty,
        })
    }
}

/// What the backend resolved to, as the error channel reports it.
pub(crate) enum Outcome {
    Exec(Vec<String>, Result<i32, String>),
    Attach(Result<(), String>),
}

impl Outcome {
    pub(crate) fn status(&self) -> Status {
        match self {
            Outcome::Exec(_, Ok(0)) | Outcome::Attach(Ok(())) => Status::success(),
            Outcome::Exec(cmd, Ok(code)) => Status::exit_code(cmd, *code),
            Outcome::Exec(_, Err(e)) => {
                Status::internal(&format!("error executing command in container: {e}"))
            }
            Outcome::Attach(Err(e)) => {
                Status::internal(&format!("error attaching to container: {e}"))
            }
        }
    }
}

/// Starts the backend for an exec or attach on its own task.
pub(crate) fn start_backend(
    backend: Arc<dyn Backend>,
    pending: Pending,
    io: Streams,
) -> JoinHandle<Outcome> {
    tokio::spawn(async move {
        match pending {
            Pending::Exec(req) => {
                tracing::debug!(container = %req.container_id, cmd = ?req.cmd, tty = req.tty, "exec stream");
                let cmd = req.cmd.clone();
                Outcome::Exec(cmd, backend.exec(req, io).await)
            }
            Pending::Attach(req) => {
                tracing::debug!(container = %req.container_id, tty = req.tty, "attach stream");
                Outcome::Attach(backend.attach(req, io).await)
            }
            Pending::PortForward(_) => Outcome::Attach(Err("not an exec or attach".into())),
        }
    })
}

pub(crate) fn channel<T>(wanted: bool) -> (Option<mpsc::Sender<T>>, Option<mpsc::Receiver<T>>) {
    if wanted {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        (Some(tx), Some(rx))
    } else {
        (None, None)
    }
}

async fn recv(rx: &mut Option<mpsc::Receiver<Bytes>>) -> Option<Bytes> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Where a session's output goes (a WebSocket, or SPDY streams).
pub(crate) trait Output: Send {
    /// Sends `data` on `channel` (stdout or stderr); false when the client is gone.
    fn send(&mut self, channel: u8, data: Bytes) -> impl Future<Output = bool> + Send;
}

/// Carries the backend's output to the client until the backend is done and its output
/// senders are dropped. None when the client went away first (nobody to report to; the
/// backend then sees its streams close).
pub(crate) async fn pump<O: Output>(
    out: &mut O,
    mut stdout_rx: Option<mpsc::Receiver<Bytes>>,
    mut stderr_rx: Option<mpsc::Receiver<Bytes>>,
    backend: &mut JoinHandle<Outcome>,
    client: &mut JoinHandle<()>,
) -> Option<Outcome> {
    let mut result: Option<Outcome> = None;
    let mut deadline = None;
    loop {
        if result.is_some() && stdout_rx.is_none() && stderr_rx.is_none() {
            break;
        }
        let grace = async move {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            data = recv(&mut stdout_rx), if stdout_rx.is_some() => match data {
                Some(d) => if !d.is_empty() && !out.send(CHANNEL_STDOUT, d).await { return None },
                None => stdout_rx = None,
            },
            data = recv(&mut stderr_rx), if stderr_rx.is_some() => match data {
                Some(d) => if !d.is_empty() && !out.send(CHANNEL_STDERR, d).await { return None },
                None => stderr_rx = None,
            },
            r = &mut *backend, if result.is_none() => {
                result = Some(r.unwrap_or_else(|e| {
                    Outcome::Attach(Err(format!("backend task failed: {e}")))
                }));
                deadline = Some(Instant::now() + DRAIN_GRACE);
            }
            _ = grace => {
                tracing::warn!("backend kept its output streams open after finishing; closing");
                break;
            }
            _ = &mut *client => {
                tracing::debug!("stream client disconnected");
                return None;
            }
        }
    }
    result
}

struct WsOutput {
    sink: SplitSink<Ws, Message>,
    framing: Framing,
}

impl Output for WsOutput {
    async fn send(&mut self, channel: u8, data: Bytes) -> bool {
        send(&mut self.sink, self.framing, channel, &data).await
    }
}

/// Serves an exec or attach over a WebSocket.
pub(crate) async fn serve(ws: Ws, framing: Framing, backend: Arc<dyn Backend>, pending: Pending) {
    let Some(opts) = Opts::of(&pending) else {
        return;
    };
    let (sink, source) = ws.split();
    let mut out = WsOutput { sink, framing };
    let (stdin_tx, stdin_rx) = channel(opts.stdin);
    let (stdout_tx, stdout_rx) = channel(opts.stdout);
    let (stderr_tx, stderr_rx) = channel(opts.stderr);
    let (resize_tx, resize_rx) = mpsc::channel(STREAM_BUFFER);

    // kubelet's "ready" signal: an empty message on the lowest writable channel.
    let ready = if opts.stdout {
        CHANNEL_STDOUT
    } else if opts.stderr {
        CHANNEL_STDERR
    } else {
        CHANNEL_ERROR
    };
    if out.sink.send(framing.encode(ready, &[])).await.is_err() {
        return;
    }

    let io = Streams {
        stdin: stdin_rx,
        stdout: stdout_tx,
        stderr: stderr_tx,
        resize: resize_rx,
    };
    let mut backend = start_backend(backend, pending, io);
    let resize_tx = opts.tty.then_some(resize_tx);
    let mut reader = tokio::spawn(read_client(source, framing, stdin_tx, resize_tx));

    let Some(outcome) = pump(&mut out, stdout_rx, stderr_rx, &mut backend, &mut reader).await
    else {
        return;
    };
    if let Some(bytes) = outcome.status().encode(framing.status) {
        if !send(&mut out.sink, framing, CHANNEL_ERROR, &bytes).await {
            return;
        }
    }
    let _ = out.sink.send(normal_close()).await;
    if tokio::time::timeout(CLOSE_GRACE, &mut reader)
        .await
        .is_err()
    {
        reader.abort();
    }
}

/// Sends one channel message; false when the client is gone.
async fn send(
    sink: &mut SplitSink<Ws, Message>,
    framing: Framing,
    channel: u8,
    data: &[u8],
) -> bool {
    if data.is_empty() {
        return true;
    }
    match sink.send(framing.encode(channel, data)).await {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(error = %e, "stream client write failed");
            false
        }
    }
}

/// Carries the client's messages to the backend until the client closes the connection.
async fn read_client(
    mut source: SplitStream<Ws>,
    framing: Framing,
    mut stdin: Option<mpsc::Sender<Bytes>>,
    resize: Option<mpsc::Sender<TerminalSize>>,
) {
    while let Some(msg) = source.next().await {
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "stream client read failed");
                break;
            }
        };
        match framing.decode(msg) {
            Incoming::Data(CHANNEL_STDIN, data) => {
                if let Some(tx) = &stdin {
                    if !data.is_empty() && tx.send(data).await.is_err() {
                        stdin = None;
                    }
                }
            }
            Incoming::Data(CHANNEL_RESIZE, data) => match (&resize, parse_resize(&data)) {
                (None, _) => tracing::debug!("resize without a tty ignored"),
                (Some(resize), Some(size)) => {
                    if resize.try_send(size).is_err() {
                        tracing::debug!(?size, "resize dropped: backend not reading resizes");
                    }
                }
                (Some(_), None) => tracing::debug!("malformed resize message"),
            },
            Incoming::Close(CHANNEL_STDIN) => stdin = None,
            Incoming::Closed => break,
            Incoming::Data(..) | Incoming::Close(_) | Incoming::Ignore => {}
        }
    }
}
