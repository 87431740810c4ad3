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
use crate::{AttachRequest, Backend, BoxFuture, ExecRequest, Streams, TerminalSize};

/// Messages buffered per stream between the socket and the backend.
const STREAM_BUFFER: usize = 16;
/// How long output may still arrive after the backend's future resolved.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How long to wait for the client's answer to our close.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Which streams the session has.
#[derive(Clone, Copy, Debug)]
struct Opts {
    tty: bool,
    stdin: bool,
    stdout: bool,
    stderr: bool,
}

pub(crate) async fn exec(ws: Ws, framing: Framing, backend: Arc<dyn Backend>, req: ExecRequest) {
    let opts = Opts {
        tty: req.tty,
        stdin: req.stdin,
        stdout: req.stdout,
        stderr: req.stderr && !req.tty,
    };
    let cmd = req.cmd.clone();
    tracing::debug!(container = %req.container_id, ?cmd, tty = req.tty, "exec stream");
    run(
        ws,
        framing,
        opts,
        move |io| backend.exec(req, io),
        move |result| match result {
            Ok(0) => Status::success(),
            Ok(code) => Status::exit_code(&cmd, code),
            Err(e) => Status::internal(&format!("error executing command in container: {e}")),
        },
    )
    .await
}

pub(crate) async fn attach(
    ws: Ws,
    framing: Framing,
    backend: Arc<dyn Backend>,
    req: AttachRequest,
) {
    let opts = Opts {
        tty: req.tty,
        stdin: req.stdin,
        stdout: req.stdout,
        stderr: req.stderr && !req.tty,
    };
    tracing::debug!(container = %req.container_id, tty = req.tty, "attach stream");
    run(
        ws,
        framing,
        opts,
        move |io| backend.attach(req, io),
        |result| match result {
            Ok(()) => Status::success(),
            Err(e) => Status::internal(&format!("error attaching to container: {e}")),
        },
    )
    .await
}

fn channel<T>(wanted: bool) -> (Option<mpsc::Sender<T>>, Option<mpsc::Receiver<T>>) {
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

async fn run<T: Send + 'static>(
    ws: Ws,
    framing: Framing,
    opts: Opts,
    start: impl FnOnce(Streams) -> BoxFuture<Result<T, String>>,
    finish: impl FnOnce(Result<T, String>) -> Status,
) {
    let (mut sink, source) = ws.split();
    let (stdin_tx, stdin_rx) = channel(opts.stdin);
    let (stdout_tx, mut stdout_rx) = channel(opts.stdout);
    let (stderr_tx, mut stderr_rx) = channel(opts.stderr);
    let (resize_tx, resize_rx) = mpsc::channel(STREAM_BUFFER);

    // kubelet's "ready" signal: an empty message on the lowest writable channel.
    let ready = if opts.stdout {
        CHANNEL_STDOUT
    } else if opts.stderr {
        CHANNEL_STDERR
    } else {
        CHANNEL_ERROR
    };
    if sink.send(framing.encode(ready, &[])).await.is_err() {
        return;
    }

    let mut backend = tokio::spawn(start(Streams {
        stdin: stdin_rx,
        stdout: stdout_tx,
        stderr: stderr_tx,
        resize: resize_rx,
    }));
    let mut reader = tokio::spawn(read_client(
        source,
        framing,
        stdin_tx,
        opts.tty.then_some(resize_tx),
    ));

    let mut result: Option<Result<T, String>> = None;
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
                Some(d) => if !send(&mut sink, framing, CHANNEL_STDOUT, &d).await { return },
                None => stdout_rx = None,
            },
            data = recv(&mut stderr_rx), if stderr_rx.is_some() => match data {
                Some(d) => if !send(&mut sink, framing, CHANNEL_STDERR, &d).await { return },
                None => stderr_rx = None,
            },
            r = &mut backend, if result.is_none() => {
                result = Some(r.unwrap_or_else(|e| Err(format!("backend task failed: {e}"))));
                deadline = Some(Instant::now() + DRAIN_GRACE);
            }
            _ = grace => {
                tracing::warn!("backend kept its output streams open after finishing; closing");
                break;
            }
            _ = &mut reader => {
                // The client is gone: nobody to report to. The backend sees its streams close.
                tracing::debug!("stream client disconnected");
                return;
            }
        }
    }
    let Some(result) = result else { return };
    let status = finish(result);
    if let Some(bytes) = status.encode(framing.status) {
        if !send(&mut sink, framing, CHANNEL_ERROR, &bytes).await {
            return;
        }
    }
    let _ = sink.send(normal_close()).await;
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
