//! Tasks: a container's running side, through its shim. Bundle, rootfs, shim start, event
//! forwarding, stop with a grace period, and removal.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use berth_proto::shim::v1::{self as shim, event::Kind};
use berth_proto::v1::{Container, ExitInfo, Task, TaskStatus};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::daemon::Daemon;
use crate::error::{ApiError, ApiResult};
use crate::shims::Client;
pub use crate::shims::Client as ShimClient;
use crate::spec::user;

pub fn spec_of(c: &Container) -> ApiResult<Spec> {
    serde_json::from_slice(&c.spec_json).map_err(|e| ApiError::internal("the stored spec", e))
}

/// Creates the task of `c`: bundle, rootfs, shim, init (waiting for start).
pub async fn create(d: &Arc<Daemon>, ns: &str, c: &Container) -> ApiResult<Task> {
    let _lock = d.task_locks.lock(ns, &c.id).await;
    let began = std::time::Instant::now();
    let mut spec = spec_of(c)?;
    let opts = c.options.clone().unwrap_or_default();
    let bundle = d.bundles.create(ns, &c.id, &spec)?;
    let result = async {
        let bundled = began.elapsed();
        // The shim starts (its process is spawned at the first poll, so first in the join)
        // while the rootfs is mounted and the network set up (CNI plugins take a while); it
        // reads config.json only at create.
        let shim_start = async {
            let shim = d.shims.start(ns, &c.id, &bundle).await;
            (shim, began.elapsed())
        };
        let spec_ready = async {
            let rootfs = if opts.rootfs.is_empty() {
                crate::images::mount_rootfs(d, ns, c, &bundle.join("rootfs"))?;
                bundle.join("rootfs")
            } else {
                opts.rootfs.clone().into()
            };
            let mounted = began.elapsed();
            finish_spec(d, ns, &mut spec, &rootfs, &opts).await?;
            let finished = began.elapsed();
            crate::network::setup(d, ns, &c.id, &opts, &mut spec, &bundle).await?;
            let networked = began.elapsed();
            crate::bundle::write_spec(&bundle, &spec)?;
            Ok::<_, ApiError>([mounted, finished, networked, began.elapsed()])
        };
        let ((shim, shim_up), ready) = tokio::join!(shim_start, spec_ready);
        let [mounted, finished, networked, spec_written] = ready?;
        let client = shim?;
        let both = began.elapsed();
        let log = if opts.log_path.is_empty() {
            d.log_path(ns, &c.id)
        } else {
            opts.log_path.clone().into()
        };
        // Subscribed before the process can exit (it waits for start), so no exit is missed;
        // the two calls share the round trip.
        let (mut subscriber, mut creator) = (client.clone(), client);
        let (events, created) = tokio::join!(
            subscriber.events(shim::Empty {}),
            creator.create(shim::CreateRequest {
                bundle: bundle.display().to_string(),
                stdin: opts.stdin,
                log_path: log.display().to_string(),
            })
        );
        let events = events?.into_inner();
        let pid = created?.into_inner().pid;
        tracing::debug!(
            id = c.id,
            bundle = ?bundled,
            shim_up = ?shim_up,
            mounted = ?mounted,
            spec_finished = ?finished,
            networked = ?networked,
            spec_written = ?spec_written,
            runtime_create = ?began.elapsed() - both,
            "task created"
        );
        forward_events(
            d.clone(),
            ns.to_string(),
            c.id.clone(),
            opts.auto_remove,
            events,
        );
        Ok::<u32, ApiError>(pid)
    }
    .await;
    match result {
        Ok(pid) => {
            d.bus
                .publish(ns, "/tasks/create", &c.id, &[("pid", pid.to_string())]);
            Ok(Task {
                container_id: c.id.clone(),
                exec_id: String::new(),
                pid,
                status: TaskStatus::Created as i32,
                exit: None,
                ip_address: crate::network::ip(d, ns, &c.id),
                ..Default::default()
            })
        }
        Err(e) => {
            if let Ok(mut client) = d.shims.client(ns, &c.id, &bundle).await {
                let _ = client.shutdown(shim::ShutdownRequest { now: true }).await;
            }
            d.shims.forget(ns, &c.id);
            crate::network::teardown(d, ns, &c.id).await;
            crate::images::unmount_rootfs(d, ns, c);
            let _ = d.bundles.remove(ns, &c.id);
            Err(e)
        }
    }
}

/// What can only be decided once the rootfs exists and other containers are known: the user
/// from the image's /etc/passwd, and namespaces shared with another container.
async fn finish_spec(
    d: &Daemon,
    ns: &str,
    spec: &mut Spec,
    rootfs: &Path,
    opts: &berth_proto::v1::RunOptions,
) -> ApiResult<()> {
    let user_spec = if opts.user.is_empty() {
        "0".to_string()
    } else {
        opts.user.clone()
    };
    let resolved = user::resolve(rootfs, &user_spec)?;
    if let Some(process) = spec.process_mut() {
        let mut resolved = resolved;
        for g in &opts.additional_gids {
            if !resolved.additional_gids.contains(g) {
                resolved.additional_gids.push(*g);
            }
        }
        resolved.apply_to(process);
        let mut env = process.env().clone().unwrap_or_default();
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            env.push(format!("HOME={}", resolved.home.as_deref().unwrap_or("/")));
        }
        process.set_env(Some(env));
    }
    let shared = [
        (LinuxNamespaceType::Pid, &opts.pid, "pid"),
        (LinuxNamespaceType::Ipc, &opts.ipc, "ipc"),
        (LinuxNamespaceType::Uts, &opts.uts, "uts"),
        (LinuxNamespaceType::Network, &opts.network, "net"),
    ];
    for (typ, mode, file) in shared {
        let Some(other) = mode.strip_prefix("container:") else {
            continue;
        };
        crate::ids::validate("container id", other)?;
        let oc = d.store.find_container(ns, other)?;
        let pid = running_pid(d, ns, &oc.id).await?;
        let path = format!("/proc/{pid}/ns/{file}");
        if let Some(linux) = spec.linux_mut() {
            if let Some(list) = linux.namespaces_mut() {
                for n in list.iter_mut().filter(|n| n.typ() == typ) {
                    n.set_path(Some(path.clone().into()));
                }
            }
        }
    }
    Ok(())
}

/// The pid of a running task's init; FailedPrecondition when it does not run.
pub async fn running_pid(d: &Daemon, ns: &str, id: &str) -> ApiResult<u32> {
    let st = client(d, ns, id)
        .await?
        .state(shim::ProcessRequest::default())
        .await?
        .into_inner();
    if st.status != shim::Status::Running as i32 {
        return Err(ApiError::FailedPrecondition(format!(
            "container {id:?} is not running"
        )));
    }
    Ok(st.pid)
}

/// Relays a shim's events to the bus; removes an `--rm` container when its init exits.
pub fn forward_events(
    d: Arc<Daemon>,
    ns: String,
    id: String,
    auto_remove: bool,
    mut events: tonic::Streaming<shim::Event>,
) {
    tokio::spawn(async move {
        // The stream ends on purpose after Deleted (or once we removed an --rm container);
        // any other end means the shim died.
        let mut ended_on_purpose = false;
        while let Ok(Some(ev)) = events.message().await {
            let kind = Kind::try_from(ev.kind).unwrap_or(Kind::Unknown);
            let topic = match kind {
                Kind::Deleted => {
                    ended_on_purpose = true;
                    break;
                }
                Kind::Created => continue,
                Kind::Started => "/tasks/start",
                Kind::Exited => "/tasks/exit",
                Kind::Paused => "/tasks/paused",
                Kind::Resumed => "/tasks/resumed",
                Kind::Oom => "/tasks/oom",
                Kind::ExecAdded => "/tasks/exec-added",
                Kind::Unknown => continue,
            };
            let mut attrs = vec![("pid", ev.pid.to_string())];
            if !ev.exec_id.is_empty() {
                attrs.push(("exec_id", ev.exec_id.clone()));
            }
            if let Some(exit) = &ev.exit {
                attrs.push(("exit_code", exit.code.to_string()));
                attrs.push(("oom_killed", exit.oom_killed.to_string()));
            }
            if let (Kind::Exited, true, Some(exit)) = (kind, ev.exec_id.is_empty(), ev.exit) {
                crate::exits::record(&d, &ns, &id, exit_info(exit), crate::exits::EXITED, "");
            }
            d.bus.publish(&ns, topic, &id, &attrs);
            if kind == Kind::Exited && ev.exec_id.is_empty() && auto_remove {
                if let Ok(c) = d.store.find_container(&ns, &id) {
                    if let Err(e) = crate::services::containers::remove(&d, &ns, &c, true).await {
                        tracing::warn!(id, "removing an --rm container: {e}");
                    }
                }
                ended_on_purpose = true;
                break;
            }
        }
        if !ended_on_purpose {
            crate::exits::shim_gone(&d, &ns, &id, auto_remove).await;
        }
    });
}

pub async fn client(d: &Daemon, ns: &str, id: &str) -> ApiResult<Client> {
    d.shims.client(ns, id, &d.bundles.path(ns, id)).await
}

/// The state of a task's init process, as its shim reports it; None without a reachable shim.
pub async fn init_state(d: &Daemon, ns: &str, id: &str) -> Option<shim::StateResponse> {
    let mut c = client(d, ns, id).await.ok()?;
    let st = c.state(shim::ProcessRequest::default()).await.ok()?;
    Some(st.into_inner())
}

/// SIGTERM (or the given signal), then SIGKILL to every process after `timeout`.
pub async fn stop(d: &Daemon, ns: &str, c: &Container, timeout: Duration) -> ApiResult<ExitInfo> {
    let mut client = client(d, ns, &c.id).await?;
    let st = client
        .state(shim::ProcessRequest::default())
        .await?
        .into_inner();
    if st.status == shim::Status::Stopped as i32 {
        return Ok(exit_info(st.exit.unwrap_or_default()));
    }
    if st.status == shim::Status::Paused as i32 {
        // A frozen process cannot act on SIGTERM: go straight to SIGKILL.
        kill(&mut client, 9, true).await?;
    } else {
        kill(&mut client, stop_signal(c), false).await?;
    }
    let mut waiter = client.clone();
    let wait = waiter.wait(shim::ProcessRequest::default());
    match tokio::time::timeout(timeout, wait).await {
        Ok(r) => Ok(exit_info(r?.into_inner())),
        Err(_) => {
            kill(&mut client, 9, true).await?;
            let r = client.wait(shim::ProcessRequest::default()).await?;
            Ok(exit_info(r.into_inner()))
        }
    }
}

/// The image's stop signal, SIGTERM when it names none (or one we do not know).
fn stop_signal(c: &Container) -> u32 {
    let name = spec_of(c)
        .ok()
        .and_then(|s| s.annotations().clone())
        .and_then(|a| a.get(crate::spec::STOP_SIGNAL_ANNOTATION).cloned())
        .unwrap_or_default();
    let name = name.trim_start_matches("SIG");
    if let Ok(n) = name.parse::<u32>() {
        return n;
    }
    format!("SIG{name}")
        .parse::<nix::sys::signal::Signal>()
        .map(|s| s as u32)
        .unwrap_or(15)
}

async fn kill(client: &mut Client, signal: u32, all: bool) -> ApiResult<()> {
    match client
        .kill(shim::KillRequest {
            exec_id: String::new(),
            signal,
            all,
        })
        .await
    {
        Ok(_) => Ok(()),
        // Exited meanwhile.
        Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
        Err(s) => Err(s.into()),
    }
}

/// Deletes the task of `c` if it has one: refused while running unless `force` (then killed).
pub async fn remove_task(
    d: &Daemon,
    ns: &str,
    c: &Container,
    force: bool,
) -> ApiResult<Option<ExitInfo>> {
    let _lock = d.task_locks.lock(ns, &c.id).await;
    let bundle = d.bundles.path(ns, &c.id);
    if !bundle.exists() {
        // A removal a crash interrupted after the bundle went: finish it (idempotent).
        crate::network::teardown(d, ns, &c.id).await;
        return Ok(None);
    }
    let mut client = match d.shims.client(ns, &c.id, &bundle).await {
        Ok(c) => c,
        // A live shim this berthd cannot speak to: never killed behind its back.
        Err(e @ ApiError::FailedPrecondition(_)) => return Err(e),
        Err(_) => {
            // The shim is gone: clean up what it left (processes, cgroup, rootfs).
            cleanup_dead(d, ns, c, &bundle).await;
            return Ok(None);
        }
    };
    let st = match client.state(shim::ProcessRequest::default()).await {
        Ok(s) => s.into_inner(),
        Err(_) => {
            // Dead, or alive without a container (berthd died between starting it and Create):
            // either way it goes, or it would run on with nothing that ever talks to it.
            let _ = client.shutdown(shim::ShutdownRequest { now: true }).await;
            d.shims.forget(ns, &c.id);
            cleanup_dead(d, ns, c, &bundle).await;
            return Ok(None);
        }
    };
    let live =
        st.status == shim::Status::Running as i32 || st.status == shim::Status::Paused as i32;
    if live && !force {
        return Err(ApiError::FailedPrecondition(format!(
            "container {:?} is {}: stop it first or force the removal",
            c.id,
            status_name(st.status)
        )));
    }
    if live {
        kill(&mut client, 9, true).await?;
        let _ = tokio::time::timeout(
            Duration::from_secs(10),
            client.wait(shim::ProcessRequest::default()),
        )
        .await;
    }
    let exit = match client.delete(shim::ProcessRequest::default()).await {
        Ok(e) => {
            let e = e.into_inner();
            // The exit event recorded it already, unless it came while berthd was away.
            let known = d
                .store
                .container(ns, &c.id)
                .ok()
                .flatten()
                .and_then(|r| r.last_exit)
                .is_some_and(|l| l.exited_at_ns == e.exited_at_ns);
            if (st.status == shim::Status::Stopped as i32 || live) && !known {
                crate::exits::record(d, ns, &c.id, exit_info(e), crate::exits::EXITED, "");
            }
            e
        }
        // The shim went away mid-call: finish its work here.
        Err(s)
            if matches!(
                s.code(),
                tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::Unknown
            ) =>
        {
            cleanup_dead(d, ns, c, &bundle).await;
            return Ok(None);
        }
        Err(s) => return Err(s.into()),
    };
    d.bus.publish(
        ns,
        "/tasks/delete",
        &c.id,
        &[("exit_code", exit.code.to_string())],
    );
    d.shims.forget(ns, &c.id);
    // The network first: the bundle is what tells a later removal there is work left.
    crate::network::teardown(d, ns, &c.id).await;
    crate::images::unmount_rootfs(d, ns, c);
    d.bundles.remove(ns, &c.id)?;
    Ok(Some(exit_info(exit)))
}

/// A task whose shim died: kill what is left in its cgroup and remove the bundle.
async fn cleanup_dead(d: &Daemon, ns: &str, c: &Container, bundle: &Path) {
    if let Some(exit) = crate::exits::read_exit_file(bundle) {
        crate::exits::record(
            d,
            ns,
            &c.id,
            exit,
            crate::exits::EXITED,
            crate::exits::SHIM_DIED,
        );
    }
    let runtime = berth_runtime::Runtime::new(bundle.join(".runtime"));
    if let Ok(container) = runtime.load(&c.id) {
        if let Err(e) = container.delete(true) {
            tracing::warn!(id = c.id, "cleaning up after a dead shim: {e}");
        }
    }
    d.shims.forget(ns, &c.id);
    d.bus.publish(ns, "/tasks/delete", &c.id, &[]);
    crate::network::teardown(d, ns, &c.id).await;
    crate::images::unmount_rootfs(d, ns, c);
    if let Err(e) = d.bundles.remove(ns, &c.id) {
        tracing::warn!(id = c.id, "removing the bundle: {e}");
    }
}

pub fn exit_info(e: shim::ExitStatus) -> ExitInfo {
    ExitInfo {
        code: e.code,
        signal: e.signal,
        oom_killed: e.oom_killed,
        exited_at_ns: e.exited_at_ns,
        pid: e.pid,
    }
}

pub fn status_name(s: i32) -> &'static str {
    match shim::Status::try_from(s).unwrap_or(shim::Status::Unknown) {
        shim::Status::Created => "created",
        shim::Status::Running => "running",
        shim::Status::Paused => "paused",
        shim::Status::Stopped => "stopped",
        shim::Status::Unknown => "unknown",
    }
}

pub fn task_status(s: i32) -> TaskStatus {
    match shim::Status::try_from(s).unwrap_or(shim::Status::Unknown) {
        shim::Status::Created => TaskStatus::Created,
        shim::Status::Running => TaskStatus::Running,
        shim::Status::Paused => TaskStatus::Paused,
        shim::Status::Stopped => TaskStatus::Stopped,
        shim::Status::Unknown => TaskStatus::Unknown,
    }
}
