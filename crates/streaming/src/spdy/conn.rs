//! One SPDY/3.1 server connection: a task reads frames, accepts every stream the client opens
//! (SYN_REPLY) and hands it over with a receiver of its data (closed by the client's FIN);
//! another task owns the socket's write half and sends what the session queues.

use std::collections::HashMap;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::frame::{self, Frame, HeaderCodec};

/// Data messages buffered per stream.
const STREAM_BUFFER: usize = 16;
/// Largest DATA frame sent.
const MAX_DATA: usize = 32 * 1024;

/// A stream the client opened.
pub(crate) struct NewStream {
    pub id: u32,
    pub headers: Vec<(String, String)>,
    pub data: mpsc::Receiver<Bytes>,
}

impl NewStream {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

enum Out {
    Reply(u32),
    Data(u32, Bytes, bool),
    Raw(Bytes),
    GoAway,
}

/// Queues frames for the connection's writer.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Out>,
}

impl Writer {
    /// Sends `data` on `stream`; false when the connection is gone.
    pub(crate) async fn data(&self, stream: u32, data: Bytes) -> bool {
        let mut rest = data;
        while !rest.is_empty() {
            let chunk = rest.split_to(rest.len().min(MAX_DATA));
            if self.tx.send(Out::Data(stream, chunk, false)).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Ends our side of `stream`.
    pub(crate) async fn fin(&self, stream: u32) {
        let _ = self.tx.send(Out::Data(stream, Bytes::new(), true)).await;
    }

    pub(crate) async fn reset(&self, stream: u32) {
        // Status 5: CANCEL.
        let _ = self.tx.send(Out::Raw(frame::rst_stream(stream, 5))).await;
    }

    /// Says goodbye (GOAWAY) and closes the connection once everything queued is written.
    pub(crate) async fn close(&self) {
        let _ = self.tx.send(Out::GoAway).await;
    }
}

/// Starts serving `io`: the writer, the streams the client opens, and the reader task that
/// ends when the client leaves.
pub(crate) fn start<IO>(
    io: IO,
) -> Result<(Writer, mpsc::Receiver<NewStream>, JoinHandle<()>), String>
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(io);
    let (out_tx, out_rx) = mpsc::channel(64);
    let (streams_tx, streams_rx) = mpsc::channel(16);
    let reader_codec = HeaderCodec::new()?;
    let writer_codec = HeaderCodec::new()?;
    tokio::spawn(write_loop(wr, writer_codec, out_rx));
    let writer = Writer { tx: out_tx };
    let reader = tokio::spawn(read_loop(rd, reader_codec, writer.clone(), streams_tx));
    Ok((writer, streams_rx, reader))
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut w: W,
    mut codec: HeaderCodec,
    mut rx: mpsc::Receiver<Out>,
) {
    let mut last_stream = 0;
    while let Some(out) = rx.recv().await {
        let bytes = match out {
            Out::Reply(id) => {
                last_stream = last_stream.max(id);
                match frame::syn_reply(id, &mut codec) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(error = %e, "SPDY reply failed");
                        break;
                    }
                }
            }
            Out::Data(id, data, fin) => frame::data_frame(id, fin, &data),
            Out::Raw(b) => b,
            Out::GoAway => {
                let _ = w.write_all(&frame::goaway(last_stream)).await;
                break;
            }
        };
        if let Err(e) = w.write_all(&bytes).await {
            tracing::debug!(error = %e, "SPDY write failed");
            break;
        }
    }
    let _ = w.flush().await;
    let _ = w.shutdown().await;
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut r: R,
    mut codec: HeaderCodec,
    writer: Writer,
    streams: mpsc::Sender<NewStream>,
) {
    let mut open: HashMap<u32, mpsc::Sender<Bytes>> = HashMap::new();
    loop {
        let frame = match frame::read_frame(&mut r, &mut codec).await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(error = %e, "SPDY read failed");
                break;
            }
        };
        match frame {
            Frame::SynStream {
                stream,
                fin,
                headers,
            } => {
                let (tx, rx) = mpsc::channel(STREAM_BUFFER);
                if !fin {
                    open.insert(stream, tx);
                }
                if writer.tx.send(Out::Reply(stream)).await.is_err() {
                    break;
                }
                let new = NewStream {
                    id: stream,
                    headers,
                    data: rx,
                };
                if streams.send(new).await.is_err() {
                    tracing::debug!(stream, "SPDY stream opened after the session ended");
                }
            }
            Frame::Data { stream, fin, data } => {
                if let Some(tx) = open.get(&stream) {
                    if !data.is_empty() && tx.send(data).await.is_err() {
                        open.remove(&stream);
                    }
                }
                if fin {
                    open.remove(&stream);
                }
            }
            Frame::RstStream { stream } => {
                open.remove(&stream);
            }
            Frame::Ping { id } => {
                let _ = writer.tx.send(Out::Raw(frame::ping(id))).await;
            }
            Frame::GoAway => break,
            Frame::Other => {}
        }
    }
}
