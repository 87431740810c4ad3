//! The pump: reads one output stream of a process until end-of-file and hands every chunk to
//! the log file and to attached readers. It never waits for a reader: a reader that falls
//! more than the backlog behind is dropped by the broadcast channel, the log never is.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use berth_proto::shim::v1::{output, Output};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::cri_log::{CriLog, LineSplitter, Stream};
use super::fd::{read, register, set_nonblocking};

const CHUNK: usize = 32 * 1024;

pub fn spawn_pump(
    fd: Arc<OwnedFd>,
    stream: Stream,
    out: broadcast::Sender<Output>,
    log: Option<Arc<Mutex<CriLog>>>,
) -> std::io::Result<JoinHandle<()>> {
    set_nonblocking(&fd)?;
    let afd = register(fd)?;
    Ok(tokio::spawn(async move {
        let mut buf = vec![0u8; CHUNK];
        let mut lines = LineSplitter::default();
        loop {
            let n = match read(&afd, &mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!("reading container {stream:?}: {e}");
                    break;
                }
            };
            let data = &buf[..n];
            if let Some(log) = &log {
                if let Ok(mut log) = log.lock() {
                    if let Err(e) = lines.feed(&mut log, stream, data) {
                        tracing::warn!("writing the container log: {e}");
                    }
                }
            }
            if out.receiver_count() > 0 {
                let kind = match stream {
                    Stream::Stdout => output::Stream::Stdout,
                    Stream::Stderr => output::Stream::Stderr,
                };
                let _ = out.send(Output {
                    stream: kind as i32,
                    data: data.to_vec(),
                });
            }
        }
        if let Some(log) = &log {
            if let Ok(mut log) = log.lock() {
                let _ = lines.finish(&mut log, stream);
            }
        }
    }))
}
