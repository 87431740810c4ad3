//! berth-shim: one detached process per container. It owns the container's stdio, relays
//! signals, reaps every child and records the exit status; it serves berth.shim.v1 on its own
//! unix socket and outlives the daemon that started it.

mod bootstrap;
mod detach;
mod error;
mod exit;
mod io;
mod launcher;
mod process;
mod reaper;
mod service;
mod task;
mod title;

use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use berth_proto::shim::v1::shim_server::ShimServer;
use berth_proto::shim::v1::PROTOCOL_VERSION;
use clap::{Parser, Subcommand};

use berth_proto::shim::Bootstrap;

#[derive(Parser)]
#[command(name = "berth-shim", version, about = "Berth's per-container shim")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start (or find) the shim of a task and print its bootstrap answer as JSON.
    Start {
        #[arg(long, default_value = "default")]
        namespace: String,
        #[arg(long)]
        id: String,
        /// The task's bundle (config.json, rootfs); the exit file and shim.log go here.
        #[arg(long)]
        bundle: PathBuf,
        /// Where the shim's socket is created.
        #[arg(long)]
        socket_dir: PathBuf,
    },
    /// Fork a shim for each request on stdin (berthd's control socket) instead of being
    /// executed once per shim; exits when berthd closes it (docs/shim.md).
    Launcher,
}

fn main() -> anyhow::Result<()> {
    berth_runtime::protect_self_exe().context("protecting the shim binary")?;
    // berthd executes a read-only clone of this binary as /proc/self/fd/N, which names the
    // process "N": the name ps, top and perf show is ours again.
    let _ = nix::sys::prctl::set_name(c"berth-shim");
    let cli = Cli::parse();
    match cli.command {
        Command::Start {
            namespace,
            id,
            bundle,
            socket_dir,
        } => {
            let answer = start(&namespace, &id, &bundle, &socket_dir)?;
            let mut out = std::io::stdout().lock();
            serde_json::to_writer(&mut out, &answer)?;
            writeln!(out)?;
            Ok(())
        }
        Command::Launcher => {
            let argv0 = std::env::args_os()
                .next()
                .map_or_else(|| "berth-shim".into(), |a| a.to_string_lossy().into_owned());
            launcher::run(&argv0)
        }
    }
}

/// Starts (or finds) the shim of a task: the answer `berth-shim start` prints.
fn start(
    namespace: &str,
    id: &str,
    bundle: &std::path::Path,
    socket_dir: &std::path::Path,
) -> anyhow::Result<Bootstrap> {
    let bundle = bundle
        .canonicalize()
        .with_context(|| format!("bundle {}", bundle.display()))?;
    std::fs::create_dir_all(socket_dir)
        .with_context(|| format!("creating {}", socket_dir.display()))?;
    std::fs::set_permissions(socket_dir, std::fs::Permissions::from_mode(0o700))?;
    let path = bootstrap::socket_path(socket_dir, namespace, id);
    let address = format!("unix://{}", path.display());
    let pid = match bootstrap::live_shim(&path) {
        Some(pid) => pid,
        None => {
            // Nothing answers: a leftover socket file from a dead shim.
            let _ = std::fs::remove_file(&path);
            let listener =
                UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            let id = id.to_string();
            let task_bundle = bundle.clone();
            let sock = path.clone();
            detach::detach(
                listener,
                &bundle.join("shim.log"),
                move |listener, ready| serve(&id, task_bundle, listener, ready, sock),
            )?
        }
    };
    Ok(Bootstrap {
        version: PROTOCOL_VERSION,
        address,
        protocol: "grpc".into(),
        pid,
    })
}

/// How long in-flight calls may take to finish once the shim shuts down.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// The shim proper, in the detached child.
fn serve(
    id: &str,
    bundle: PathBuf,
    listener: UnixListener,
    ready: OwnedFd,
    socket: PathBuf,
) -> anyhow::Result<()> {
    // listen() again so the socket's peer credentials name this process, not the starter.
    // SAFETY: listen on a socket we own.
    if unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&listener), 1024) } != 0 {
        anyhow::bail!("listen: {}", std::io::Error::last_os_error());
    }
    // A plain level (BERTH_SHIM_LOG=debug, ...): no filter expressions, so no regex engine
    // allocated in every shim.
    let level = std::env::var("BERTH_SHIM_LOG")
        .ok()
        .and_then(|v| v.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    ignore_session_signals();
    reaper::become_subreaper().context("PR_SET_CHILD_SUBREAPER")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .context("building the runtime")?;
    rt.block_on(async move {
        // Beside the socket dir (<state>/s): <state>/seccomp, root-only.
        let cache = socket
            .parent()
            .and_then(|s| s.parent())
            .map(|state| state.join("seccomp"));
        let task = Arc::new(Mutex::new(task::Task::new(id, bundle, cache)));
        let shutdown = task
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .shutdown
            .clone();
        reaper::spawn(task.clone())?;
        listener.set_nonblocking(true)?;
        let listener = tokio::net::UnixListener::from_std(listener)?;
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
        // Ready: the starter may print our address now.
        nix::unistd::write(&ready, b"1")?;
        drop(ready);
        tracing::info!(id, "shim serving");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.notified().await;
            let _ = stop_tx.send(true);
        });
        let mut graceful = stop_rx.clone();
        let server = tonic::transport::Server::builder()
            .add_service(ShimServer::new(service::ShimService { task: task.clone() }))
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = graceful.wait_for(|stop| *stop).await;
            });
        let mut deadline = stop_rx;
        // In-flight answers get a moment to go out; a client that keeps a stream open does
        // not keep the shim alive.
        let forced = async move {
            let _ = deadline.wait_for(|stop| *stop).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            r = server => r?,
            () = forced => tracing::warn!("calls still open at shutdown; exiting anyway"),
        }
        let _ = std::fs::remove_file(&socket);
        tracing::info!("shim exiting");
        Ok(())
    })
}

/// The shim keeps serving whatever happens to the session that started it.
fn ignore_session_signals() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    for sig in [Signal::SIGINT, Signal::SIGHUP, Signal::SIGPIPE] {
        // SAFETY: SIG_IGN installs no handler code.
        let _ = unsafe { signal(sig, SigHandler::SigIgn) };
    }
}
