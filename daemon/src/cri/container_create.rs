//! CreateContainer: only records, the spec and the writable snapshot (as containerd does);
//! the task (shim) is created and started by StartContainer. The container joins the pod's
//! namespaces through `container:<sandbox>` modes and bind-mounts the pod's /etc files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_proto::v1::{CreateContainerRequest, Mount, RunOptions};
use k8s_cri::v1 as cri;

use super::records::{self, ContainerRecord, SandboxRecord, NS};
use super::sandbox_run::{KIND_LABEL, SANDBOX_LABEL};
use super::security;
use crate::daemon::Daemon;
use crate::error::{ApiError, ApiResult};
use crate::events::now_ns;
use crate::ids;

/// Relative Localhost seccomp profiles are looked up here (kubelet's directory).
const SECCOMP_ROOT: &str = "/var/lib/kubelet/seccomp";

pub async fn create(d: &Arc<Daemon>, r: cri::CreateContainerRequest) -> ApiResult<String> {
    let config = r
        .config
        .ok_or_else(|| ApiError::InvalidArgument("CreateContainer needs a config".into()))?;
    if config.metadata.is_none() {
        return Err(ApiError::InvalidArgument(
            "the container config needs metadata".into(),
        ));
    }
    let image = config
        .image
        .as_ref()
        .map(|i| i.image.clone())
        .filter(|i| !i.is_empty())
        .ok_or_else(|| ApiError::InvalidArgument("the container config needs an image".into()))?;
    let (image, image_id) = image_name(d, &image)?;
    let sandbox = records::find_sandbox(d, &r.pod_sandbox_id)?.ok_or_else(|| {
        ApiError::NotFound(format!("pod sandbox {:?} not found", r.pod_sandbox_id))
    })?;
    if sandbox.stopped {
        return Err(ApiError::FailedPrecondition(format!(
            "pod sandbox {:?} is stopped",
            sandbox.id
        )));
    }
    let id = ids::generate();
    let log_path = log_path(d, &sandbox, &config)?;
    let opts = options(d, &sandbox, &config, &log_path)?;
    let mut record = ContainerRecord {
        id: id.clone(),
        sandbox_id: sandbox.id.clone(),
        config: Some(config.clone()),
        created_at_ns: now_ns(),
        log_path: log_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        resources: config.linux.as_ref().and_then(|l| l.resources.clone()),
        image_ref: image.clone(),
        image_id,
        ..Default::default()
    };
    // The record first: a crash after it leaves a container that status and removal can see.
    records::put_container(d, &record)?;
    let sc = config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.clone())
        .unwrap_or_default();
    let resources = config
        .linux
        .as_ref()
        .and_then(|l| l.resources.clone())
        .unwrap_or_default();
    let req = CreateContainerRequest {
        id: id.clone(),
        image,
        labels: [
            (KIND_LABEL.to_string(), "container".to_string()),
            (SANDBOX_LABEL.to_string(), sandbox.id.clone()),
        ]
        .into(),
        options: Some(opts),
        ..Default::default()
    };
    let created = crate::services::containers::create_with(d, NS, req, |spec| {
        // The pod's UTS namespace already has its hostname (or the host's).
        spec.set_hostname(None);
        security::patch_spec(&sc, spec);
        if resources.oom_score_adj > 0 {
            if let Some(p) = spec.process_mut() {
                p.set_oom_score_adj(Some(resources.oom_score_adj as i32));
            }
        }
        Ok(())
    })
    .await;
    match created {
        Ok(c) => {
            if c.image != record.image_ref {
                record.image_ref = c.image;
                records::put_container(d, &record)?;
            }
            Ok(id)
        }
        Err(e) => {
            let _ = records::delete_container(d, &id);
            Err(e)
        }
    }
}

/// The image kubelet means (a name, short or full, an image id as ImageStatus and
/// ContainerStatus report it, a manifest digest or `name@sha256:...`): the name of one of its
/// records, and its CRI image id (the config digest).
fn image_name(d: &Daemon, image: &str) -> ApiResult<(String, String)> {
    let found = super::image::catalog::find(d, NS, image)?.ok_or_else(|| {
        ApiError::NotFound(format!(
            "image {image:?} not found in namespace {NS}: pull it first (PullImage)"
        ))
    })?;
    let name = found
        .records
        .iter()
        .find(|r| r.name == image)
        .or_else(|| found.records.first())
        .map(|r| r.name.clone())
        .ok_or_else(|| ApiError::NotFound(format!("image {image:?} not found")))?;
    Ok((name, found.id.to_string()))
}

/// The log file kubelet asked for: the pod's log directory joined with the container's path.
fn log_path(
    d: &Daemon,
    sandbox: &SandboxRecord,
    config: &cri::ContainerConfig,
) -> ApiResult<Option<PathBuf>> {
    let dir = sandbox
        .config
        .as_ref()
        .map(|c| c.log_directory.as_str())
        .unwrap_or_default();
    super::log_paths::join(&d.cfg.cri.log_roots, dir, &config.log_path)
}

fn options(
    d: &Daemon,
    sandbox: &SandboxRecord,
    config: &cri::ContainerConfig,
    log_path: &Option<PathBuf>,
) -> ApiResult<RunOptions> {
    let pod_linux = sandbox
        .config
        .as_ref()
        .and_then(|c| c.linux.clone())
        .unwrap_or_default();
    let pod_ns = pod_linux
        .security_context
        .as_ref()
        .and_then(|s| s.namespace_options.clone())
        .unwrap_or_default();
    let linux = config.linux.clone().unwrap_or_default();
    let sc = linux.security_context.clone().unwrap_or_default();
    let ns = sc.namespace_options.clone().unwrap_or_default();
    let node = cri::NamespaceMode::Node as i32;
    let pod = format!("container:{}", sandbox.id);
    let host_network = pod_ns.network == node;
    let pid = match cri::NamespaceMode::try_from(ns.pid) {
        Ok(cri::NamespaceMode::Pod) => pod.clone(),
        Ok(cri::NamespaceMode::Node) => "host".into(),
        Ok(cri::NamespaceMode::Target) => {
            ids::validate("target container id", &ns.target_id)?;
            format!("container:{}", ns.target_id)
        }
        _ => String::new(),
    };
    // The spec's hostname is dropped (the pod's UTS namespace has it): this only sets the
    // container's HOSTNAME to the pod's (the node's on the host network), as containerd does.
    let pod_config = sandbox.config.clone().unwrap_or_default();
    let hostname = match super::sandbox_run::pod_hostname(&pod_config, host_network) {
        h if h.is_empty() => nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
        h => h,
    };
    let mut opts = RunOptions {
        entrypoint: config.command.clone(),
        hostname,
        args: config.args.clone(),
        env: config
            .envs
            .iter()
            .map(|kv| format!("{}={}", kv.key, kv.value))
            .collect(),
        workdir: config.working_dir.clone(),
        tty: config.tty,
        stdin: config.stdin,
        network: if host_network {
            "host".into()
        } else {
            pod.clone()
        },
        ipc: if pod_ns.ipc == node {
            "host".into()
        } else {
            pod.clone()
        },
        uts: if host_network {
            "host".into()
        } else {
            pod.clone()
        },
        pid,
        cgroup_parent: pod_linux.cgroup_parent.clone(),
        log_path: log_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        ..Default::default()
    };
    security::apply_to_options(&sc, Path::new(SECCOMP_ROOT), &mut opts)?;
    if let Some(res) = &linux.resources {
        opts.memory = res.memory_limit_in_bytes;
        opts.memory_swap = res.memory_swap_limit_in_bytes;
        if res.cpu_quota > 0 {
            let period = if res.cpu_period > 0 {
                res.cpu_period
            } else {
                100_000
            };
            opts.cpus = res.cpu_quota as f64 / period as f64;
        }
        opts.cpu_shares = u64::try_from(res.cpu_shares).unwrap_or(0);
        opts.cpuset_cpus = res.cpuset_cpus.clone();
    }
    opts.mounts = mounts(d, sandbox, config)?;
    Ok(opts)
}

/// Kubelet's mounts, then the pod's /etc files unless kubelet mounts its own there.
fn mounts(
    d: &Daemon,
    sandbox: &SandboxRecord,
    config: &cri::ContainerConfig,
) -> ApiResult<Vec<Mount>> {
    let mut out = Vec::new();
    for m in &config.mounts {
        if m.image.as_ref().is_some_and(|i| !i.image.is_empty()) {
            return Err(ApiError::InvalidArgument(
                "image volumes are not supported".into(),
            ));
        }
        let mut options = Vec::new();
        if m.readonly {
            options.push("ro".to_string());
        }
        match cri::MountPropagation::try_from(m.propagation) {
            Ok(cri::MountPropagation::PropagationHostToContainer) => options.push("rslave".into()),
            Ok(cri::MountPropagation::PropagationBidirectional) => options.push("rshared".into()),
            _ => {}
        }
        out.push(Mount {
            source: m.host_path.clone(),
            destination: m.container_path.clone(),
            r#type: "bind".into(),
            options,
        });
    }
    let etc = d.bundles.path(NS, &sandbox.id).join("etc");
    for name in ["hosts", "hostname", "resolv.conf"] {
        let dest = format!("/etc/{name}");
        if out.iter().any(|m| m.destination == dest) || !etc.join(name).exists() {
            continue;
        }
        out.push(Mount {
            source: etc.join(name).display().to_string(),
            destination: dest,
            r#type: "bind".into(),
            options: Vec::new(),
        });
    }
    Ok(out)
}
