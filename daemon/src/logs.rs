//! Reading a container's CRI-format log file back: tail, since, follow.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::sync::Arc;
use std::time::Duration;

use berth_proto::v1::{LogEntry, LogsRequest};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use crate::daemon::Daemon;
use crate::error::ApiResult;
use crate::services::BoxStream;

/// How often a follower looks for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(50);

/// One CRI log record; partial records are joined with the next one by the reader.
pub fn parse(line: &str) -> Option<(i64, String, bool, Vec<u8>)> {
    let mut f = line.splitn(4, ' ');
    let ts = humantime_nanos(f.next()?)?;
    let stream = f.next()?.to_string();
    let partial = f.next()? == "P";
    let content = f.next().unwrap_or("").as_bytes().to_vec();
    Some((ts, stream, partial, content))
}

fn humantime_nanos(ts: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339(ts).ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_nanos() as i64)
}

pub fn stream(
    d: Arc<Daemon>,
    ns: String,
    id: String,
    r: LogsRequest,
) -> ApiResult<BoxStream<LogEntry>> {
    let path = d.log_path(&ns, &id);
    let (tx, rx) = mpsc::channel::<LogEntry>(256);
    tokio::task::spawn_blocking(move || {
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(_) => return,
        };
        let mut reader = BufReader::new(file);
        // Whole history first (tail applies to it), then follow.
        let mut entries = Vec::new();
        let mut partial: Option<LogEntry> = None;
        let mut line = String::new();
        let push = |entries: &mut Vec<LogEntry>, line: &str, partial: &mut Option<LogEntry>| {
            let Some((ts, stream, is_partial, mut content)) = parse(line.trim_end_matches('\n'))
            else {
                return;
            };
            let mut e = partial.take().unwrap_or(LogEntry {
                timestamp_ns: ts,
                stream,
                data: Vec::new(),
            });
            e.data.append(&mut content);
            if is_partial {
                *partial = Some(e);
            } else {
                e.data.push(b'\n');
                if e.timestamp_ns >= r.since_ns {
                    entries.push(e);
                }
            }
        };
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            if line.ends_with('\n') {
                push(&mut entries, &line, &mut partial);
                line.clear();
            } else {
                break;
            }
        }
        let skip = if r.tail > 0 {
            entries.len().saturating_sub(r.tail as usize)
        } else {
            0
        };
        for e in entries.drain(skip..) {
            if tx.blocking_send(e).is_err() {
                return;
            }
        }
        if !r.follow {
            return;
        }
        let bundle = d.bundles.path(&ns, &id);
        loop {
            let pos = reader.stream_position().unwrap_or(0);
            let n = reader.read_line(&mut line).unwrap_or(0);
            if n > 0 && line.ends_with('\n') {
                let mut out = Vec::new();
                push(&mut out, &line, &mut partial);
                line.clear();
                for e in out {
                    if tx.blocking_send(e).is_err() {
                        return;
                    }
                }
                continue;
            }
            if n > 0 {
                // A record still being written: read it again whole.
                line.clear();
                let _ = reader.seek(SeekFrom::Start(pos));
            }
            // Follow ends when the task is gone (its exit file exists or the bundle is gone).
            if tx.is_closed()
                || !bundle.exists()
                || bundle.join(berth_proto::shim::EXIT_FILE).exists()
            {
                if bundle.join(berth_proto::shim::EXIT_FILE).exists() {
                    // Drain what the exit raced with.
                    while reader.read_line(&mut line).unwrap_or(0) > 0 {
                        let mut out = Vec::new();
                        push(&mut out, &line, &mut partial);
                        line.clear();
                        for e in out {
                            let _ = tx.blocking_send(e);
                        }
                    }
                }
                return;
            }
            std::thread::sleep(FOLLOW_POLL);
        }
    });
    Ok(Box::pin(ReceiverStream::new(rx).map(Ok)))
}
