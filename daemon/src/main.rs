//! berthd: Berth's daemon. Serves berth.v1 (and the gRPC health service) on a unix socket,
//! keeps metadata in sled, and starts one berth-shim per task. Containers outlive it.

mod bundle;
mod config;
mod cri;
mod daemon;
mod error;
mod events;
mod exits;
mod fan_out;
mod ids;
mod images;
mod listener;
mod logs;
mod message_limit;
mod metrics;
mod network;
mod orphans;
mod recover;
mod services;
mod shim_launcher;
mod shims;
mod spec;
mod store;
mod sweep;
mod tasks;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use berth_proto::v1::{
    containers_server::ContainersServer, events_server::EventsServer,
    namespaces_server::NamespacesServer, tasks_server::TasksServer, version_server::VersionServer,
};
use clap::Parser;

#[derive(Parser)]
#[command(name = "berthd", version, about = "Berth's container daemon")]
struct Cli {
    /// TOML configuration file.
    #[arg(long, env = "BERTHD_CONFIG")]
    config: Option<PathBuf>,
    /// Persistent data: metadata, images, logs (default /var/lib/berth).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Runtime state: sockets and task bundles (default /run/berth).
    #[arg(long)]
    state: Option<PathBuf>,
    /// The API socket (default /run/berth/berth.sock).
    #[arg(long)]
    address: Option<PathBuf>,
    /// error, warn, info, debug or trace (or a tracing filter).
    #[arg(long)]
    log_level: Option<String>,
    /// A group allowed to use the socket besides root.
    #[arg(long)]
    group: Option<String>,
    /// Parent cgroup of every container (default /berth).
    #[arg(long)]
    cgroup_root: Option<String>,
    /// CNI network configuration directory (default /etc/cni/net.d).
    #[arg(long)]
    cni_conf_dir: Option<PathBuf>,
    /// The default network's bridge (default berth0).
    #[arg(long)]
    bridge: Option<String>,
    /// The default network's subnet (default 10.89.0.0/16).
    #[arg(long)]
    subnet: Option<String>,
    /// Registry hosts configuration (mirrors, plain HTTP, auth): <dir>/<host>/hosts.json.
    #[arg(long)]
    registry_dir: Option<PathBuf>,
    /// The CRI streaming server's address (default 127.0.0.1:0, a free loopback port).
    #[arg(long)]
    stream_address: Option<String>,
    /// A directory CRI pods may have container logs written in (repeatable; replaces the
    /// configured `[cri] log_roots`, default /var/log/pods).
    #[arg(long = "cri-log-root")]
    cri_log_roots: Vec<PathBuf>,
    /// Serve Prometheus metrics at http://ADDRESS/metrics (e.g. 127.0.0.1:9323).
    #[arg(long)]
    metrics_address: Option<String>,
}

/// How long in-flight calls may take to finish once the daemon is asked to stop.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut cfg = config::Config::load(cli.config.as_deref())?;
    if let Some(v) = cli.root {
        cfg.root = v;
    }
    if let Some(v) = cli.state {
        cfg.state = v;
    }
    if let Some(v) = cli.address {
        cfg.address = v;
    }
    if let Some(v) = cli.log_level {
        cfg.log_level = v;
    }
    if let Some(v) = cli.cgroup_root {
        cfg.cgroup_root = v;
    }
    if let Some(v) = cli.cni_conf_dir {
        cfg.cni_conf_dir = v;
    }
    if let Some(v) = cli.registry_dir {
        cfg.registry_dir = v;
    }
    if cli.metrics_address.is_some() {
        cfg.metrics_address = cli.metrics_address;
    }
    if let Some(v) = cli.stream_address {
        cfg.stream_address = v;
    }
    if !cli.cri_log_roots.is_empty() {
        cfg.cri.log_roots = cli.cri_log_roots;
    }
    if let Some(v) = cli.bridge {
        cfg.bridge = v;
    }
    if let Some(v) = cli.subnet {
        cfg.subnet = v;
    }
    if cli.group.is_some() {
        cfg.group = cli.group;
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cfg.log_level))
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(cfg))
}

async fn run(cfg: config::Config) -> anyhow::Result<()> {
    let _lock = listener::lock_root(&cfg.root)?;
    std::fs::create_dir_all(&cfg.state)
        .with_context(|| format!("creating {}", cfg.state.display()))?;
    let store = store::Store::open(&cfg.root.join("meta")).context("opening the metadata store")?;
    let listener = listener::bind(&cfg.address, cfg.group.as_deref())?;
    let d = Arc::new(daemon::Daemon::new(cfg.clone(), store)?);
    d.bundles.sweep();
    network::startup(&d).await;
    sweep::ephemeral(&d).await;
    // Before recovery, which reports the exits that happened while the daemon was away.
    cri::exit_reaper::spawn(&d);
    recover::run(&d).await;
    orphans::startup(&d);
    cri::exit_reaper::sweep(&d);
    if let Some(addr) = cfg.metrics_address.clone() {
        metrics::serve(d.clone(), addr).await?;
    }
    let streaming = cri::start_streaming(&d).await?;
    let cri_images = cri::image_service::CriImageService::new(d.clone())?;
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<ContainersServer<services::containers::ContainersService>>()
        .await;
    tracing::info!(address = %cfg.address.display(), root = %cfg.root.display(), "berthd serving");
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!("installing a SIGTERM handler: {e}");
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
        tracing::info!("shutting down; containers keep running");
        let _ = stop_tx.send(true);
    });
    let mut graceful = stop_rx.clone();
    let server = tonic::transport::Server::builder()
        .layer(message_limit::TooLargeLayer)
        .add_service(health_service)
        .add_service(ContainersServer::new(
            services::containers::ContainersService(d.clone()),
        ))
        .add_service(TasksServer::new(services::tasks::TasksService(d.clone())))
        .add_service(EventsServer::new(services::events::EventsService(
            d.clone(),
        )))
        .add_service(NamespacesServer::new(
            services::namespaces::NamespacesService(d.clone()),
        ))
        .add_service(VersionServer::new(services::version::VersionService(
            d.clone(),
        )))
        .add_service(berth_proto::v1::images_server::ImagesServer::new(
            services::images::ImagesService(d.clone()),
        ))
        .add_service(berth_proto::v1::maintenance_server::MaintenanceServer::new(
            services::maintenance::MaintenanceService(d.clone()),
        ))
        .add_service(berth_proto::v1::networks_server::NetworksServer::new(
            services::networks::NetworksService(d.clone()),
        ))
        .add_service(cri::runtime_service(d.clone(), streaming.clone()))
        .add_service(k8s_cri::v1::image_service_server::ImageServiceServer::new(
            cri_images,
        ))
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = graceful.wait_for(|stop| *stop).await;
        });
    // Calls in flight get a moment; clients holding connections or streams (events, logs -f)
    // do not keep the daemon from stopping.
    let mut deadline = stop_rx;
    let forced = async move {
        let _ = deadline.wait_for(|stop| *stop).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        r = server => r?,
        () = forced => tracing::warn!("connections still open at shutdown; stopping anyway"),
    }
    let _ = std::fs::remove_file(&cfg.address);
    d.store.flush()?;
    Ok(())
}
