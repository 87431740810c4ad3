//! Port-forward sessions over an upgraded WebSocket, as kubelet serves them: each port gets a
//! data channel (2·i) and an error channel (2·i+1); the first message on each carries the port
//! as two little-endian bytes. The backend gets one in-memory duplex stream per port.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::SplitStream;
use futures_util::{SinkExt, StreamExt};
use tokio::io::DuplexStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt, WriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::protocol::{normal_close, Framing, Incoming};
use crate::server::Ws;
use crate::{Backend, PortForwardRequest};

/// Bytes buffered in each port's duplex stream.
const DUPLEX_BUFFER: usize = 64 * 1024;
/// Largest data message sent to the client.
const READ_CHUNK: usize = 32 * 1024;
/// Two channels per port, numbered by one byte.
const MAX_PORTS: usize = 128;
const CLOSE_GRACE: Duration = Duration::from_secs(1);

pub(crate) async fn serve(
    ws: Ws,
    framing: Framing,
    backend: Arc<dyn Backend>,
    req: PortForwardRequest,
) {
    let (mut sink, source) = ws.split();
    if req.ports.len() > MAX_PORTS {
        tracing::warn!(
            ports = req.ports.len(),
            "too many ports in one port-forward"
        );
        let _ = sink.send(normal_close()).await;
        return;
    }
    tracing::debug!(pod = %req.pod_sandbox_id, ports = ?req.ports, "port-forward stream");
    let (frames_tx, mut frames_rx) = mpsc::channel::<(u8, Bytes)>(32);
    let mut writers = Vec::with_capacity(req.ports.len());
    let mut readers = JoinSet::new();
    for (i, &port) in req.ports.iter().enumerate() {
        // MAX_PORTS keeps both channel numbers within a byte.
        let data_channel = (2 * i) as u8;
        let error_channel = data_channel + 1;
        let prefix = port.to_le_bytes();
        for ch in [data_channel, error_channel] {
            if sink.send(framing.encode(ch, &prefix)).await.is_err() {
                return;
            }
        }
        let (ours, theirs) = tokio::io::duplex(DUPLEX_BUFFER);
        let (mut rd, wr) = tokio::io::split(ours);
        writers.push(Some(wr));

        let forward = backend.port_forward(req.pod_sandbox_id.clone(), port, theirs);
        let tx = frames_tx.clone();
        let pod = req.pod_sandbox_id.clone();
        tokio::spawn(async move {
            if let Err(e) = forward.await {
                tracing::debug!(%pod, port, error = %e, "port-forward failed");
                let msg = format!("error forwarding port {port} to pod {pod}: {e}");
                let _ = tx.send((error_channel, Bytes::from(msg))).await;
            }
        });

        let tx = frames_tx.clone();
        readers.spawn(async move {
            let mut buf = vec![0u8; READ_CHUNK];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let data = Bytes::copy_from_slice(&buf[..n]);
                        if tx.send((data_channel, data)).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }
    drop(frames_tx);

    let mut reader = tokio::spawn(read_client(source, framing, writers));
    let mut client_gone = false;
    loop {
        tokio::select! {
            frame = frames_rx.recv() => match frame {
                Some((ch, data)) => {
                    if let Err(e) = sink.send(framing.encode(ch, &data)).await {
                        tracing::debug!(error = %e, "port-forward client write failed");
                        break;
                    }
                }
                // Every port is finished.
                None => break,
            },
            _ = &mut reader => {
                client_gone = true;
                break;
            }
        }
    }
    // Dropping the read halves tells backends still writing that nobody listens.
    readers.abort_all();
    if !client_gone {
        let _ = sink.send(normal_close()).await;
        if tokio::time::timeout(CLOSE_GRACE, &mut reader)
            .await
            .is_err()
        {
            reader.abort();
        }
    }
}

/// Writes the client's data messages into the ports' streams until the client closes the
/// connection; then ends every port's stream (EOF to the backend).
async fn read_client(
    mut source: SplitStream<Ws>,
    framing: Framing,
    mut writers: Vec<Option<WriteHalf<DuplexStream>>>,
) {
    while let Some(msg) = source.next().await {
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "port-forward client read failed");
                break;
            }
        };
        match framing.decode(msg) {
            Incoming::Data(ch, data) if ch % 2 == 0 => {
                let Some(slot) = writers.get_mut(usize::from(ch / 2)) else {
                    continue;
                };
                if let Some(w) = slot {
                    if w.write_all(&data).await.is_err() {
                        *slot = None;
                    }
                }
            }
            Incoming::Closed => break,
            _ => {}
        }
    }
    for w in writers.iter_mut().flatten() {
        let _ = w.shutdown().await;
    }
}
