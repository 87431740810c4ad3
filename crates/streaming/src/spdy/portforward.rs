//! Port-forward over SPDY (`portforward.k8s.io`), as kubelet serves it: for every connection
//! the client opens an error stream and a data stream with the same `port` and `requestid`
//! headers; each pair is forwarded through the backend until either side closes, and the
//! SPDY connection stays open for further pairs.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::conn::{self, NewStream, Writer};
use crate::{Backend, PortForwardRequest};

const READ_CHUNK: usize = 32 * 1024;
const DUPLEX_BUFFER: usize = 64 * 1024;

/// Serves port-forward requests on an upgraded SPDY connection.
pub(crate) async fn serve<IO>(io: IO, backend: Arc<dyn Backend>, req: PortForwardRequest)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (writer, mut new_streams, mut reader) = match conn::start(io) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "SPDY connection setup failed");
            return;
        }
    };
    tracing::debug!(pod = %req.pod_sandbox_id, ports = ?req.ports, "SPDY port-forward");
    // Half pairs by request id: (error stream, data stream).
    let mut pairs: HashMap<String, (Option<NewStream>, Option<NewStream>)> = HashMap::new();
    loop {
        let stream = tokio::select! {
            st = new_streams.recv() => match st {
                Some(st) => st,
                None => break,
            },
            _ = &mut reader => break,
        };
        let request = stream.header("requestid").unwrap_or("").to_string();
        let entry = pairs.entry(request.clone()).or_default();
        match stream.header("streamtype") {
            Some("error") => entry.0 = Some(stream),
            Some("data") => entry.1 = Some(stream),
            other => {
                tracing::debug!(streamtype = ?other, "unexpected SPDY port-forward stream");
                writer.reset(stream.id).await;
                continue;
            }
        }
        if matches!(entry, (Some(_), Some(_))) {
            if let Some((Some(error), Some(data))) = pairs.remove(&request) {
                tokio::spawn(forward(
                    writer.clone(),
                    backend.clone(),
                    req.clone(),
                    error,
                    data,
                ));
            }
        }
    }
    writer.close().await;
}

async fn forward(
    writer: Writer,
    backend: Arc<dyn Backend>,
    req: PortForwardRequest,
    error: NewStream,
    mut data: NewStream,
) {
    let port = data
        .header("port")
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|p| *p > 0);
    let Some(port) = port else {
        let msg = format!("invalid port header {:?}", data.header("port"));
        writer.data(error.id, Bytes::from(msg)).await;
        writer.fin(error.id).await;
        writer.fin(data.id).await;
        return;
    };
    if !req.ports.is_empty() && !req.ports.contains(&port) {
        let msg = format!("port {port} was not requested for this port-forward");
        writer.data(error.id, Bytes::from(msg)).await;
        writer.fin(error.id).await;
        writer.fin(data.id).await;
        return;
    }
    let (ours, theirs) = tokio::io::duplex(DUPLEX_BUFFER);
    let (mut rd, mut wr) = tokio::io::split(ours);
    let pod = req.pod_sandbox_id.clone();
    let forward = backend.port_forward(pod.clone(), port, theirs);
    let backend_task = tokio::spawn(forward);

    // Client → backend.
    let inbound = tokio::spawn(async move {
        while let Some(chunk) = data.data.recv().await {
            if wr.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    // Backend → client.
    let data_id = data.id;
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if !writer
                    .data(data_id, Bytes::copy_from_slice(&buf[..n]))
                    .await
                {
                    break;
                }
            }
        }
    }
    let result = backend_task
        .await
        .unwrap_or_else(|e| Err(format!("backend task failed: {e}")));
    if let Err(e) = result {
        tracing::debug!(%pod, port, error = %e, "port-forward failed");
        let msg = format!("error forwarding port {port} to pod {pod}: {e}");
        writer.data(error.id, Bytes::from(msg)).await;
    }
    inbound.abort();
    writer.fin(data_id).await;
    writer.fin(error.id).await;
}
