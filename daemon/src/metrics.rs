//! A Prometheus `/metrics` endpoint (off unless `metrics_address` is configured; bind it to
//! loopback): per-container cpu, memory, pids and io, and daemon gauges.

use std::fmt::Write;
use std::sync::Arc;

use berth_proto::shim::v1 as shim;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::daemon::Daemon;

pub async fn serve(d: Arc<Daemon>, address: String) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&address).await?;
    tracing::info!(address, "metrics endpoint serving /metrics");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let d = d.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let d = d.clone();
                        async move { Ok::<_, std::convert::Infallible>(answer(&d, req).await) }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(())
}

/// A metric's name, help text and how it is read off a shim's stats.
type Gauge = (&'static str, &'static str, fn(&shim::StatsResponse) -> f64);

async fn answer(d: &Daemon, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    if req.uri().path() != "/metrics" {
        let mut r = Response::new(Full::new(Bytes::from_static(b"not found\n")));
        *r.status_mut() = StatusCode::NOT_FOUND;
        return r;
    }
    let mut r = Response::new(Full::new(Bytes::from(render(d).await)));
    if let Ok(v) = "text/plain; version=0.0.4".parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// The exposition text.
pub async fn render(d: &Daemon) -> String {
    let mut out = String::new();
    let mut rows: Vec<(String, String, shim::StatsResponse)> = Vec::new();
    let mut containers = 0;
    for ns in d.store.namespaces().unwrap_or_default() {
        for c in d.store.containers(&ns.name).unwrap_or_default() {
            containers += 1;
            if !d.bundles.path(&ns.name, &c.id).exists() {
                continue;
            }
            if let Ok(mut client) = crate::tasks::client(d, &ns.name, &c.id).await {
                if let Ok(s) = client.stats(shim::Empty {}).await {
                    rows.push((ns.name.clone(), c.id.clone(), s.into_inner()));
                }
            }
        }
    }
    let gauges: [Gauge; 7] = [
        (
            "berth_container_cpu_usage_seconds_total",
            "CPU time used",
            |s| s.cpu_usage_ns as f64 / 1e9,
        ),
        (
            "berth_container_cpu_throttled_periods_total",
            "CFS periods throttled",
            |s| s.cpu_throttled_periods as f64,
        ),
        ("berth_container_memory_usage_bytes", "Memory in use", |s| {
            s.memory_usage as f64
        }),
        (
            "berth_container_memory_working_set_bytes",
            "Memory working set",
            |s| s.memory_working_set as f64,
        ),
        ("berth_container_pids", "Processes", |s| {
            s.pids_current as f64
        }),
        (
            "berth_container_io_read_bytes_total",
            "Bytes read from block devices",
            |s| s.io_read_bytes as f64,
        ),
        (
            "berth_container_io_write_bytes_total",
            "Bytes written to block devices",
            |s| s.io_write_bytes as f64,
        ),
    ];
    for (name, help, get) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}.\n# TYPE {name} gauge");
        for (ns, id, s) in &rows {
            let _ = writeln!(out, "{name}{{namespace=\"{ns}\",id=\"{id}\"}} {}", get(s));
        }
    }
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let _ = writeln!(out, "# HELP berthd_containers Containers known to the daemon.\n# TYPE berthd_containers gauge\nberthd_containers {containers}");
    let _ = writeln!(out, "# HELP berthd_tasks Containers with a live task.\n# TYPE berthd_tasks gauge\nberthd_tasks {}", rows.len());
    let _ = writeln!(out, "# HELP berthd_resident_memory_bytes The daemon's RSS.\n# TYPE berthd_resident_memory_bytes gauge\nberthd_resident_memory_bytes {}", rss * 1024);
    out
}
