//! RunPodSandbox: the pod's shared namespaces, held by a Berth container whose init runs no
//! program (`io.berth.init: hold`), on an empty rootfs inside its own bundle: no pause image.
//! Network through the daemon's CNI networking (port mappings by the portmap plugin), the
//! pod's /etc/hosts, /etc/hostname and /etc/resolv.conf written in the sandbox's bundle, where
//! the pod's containers bind-mount them from.

use std::sync::Arc;

use berth_proto::shim::v1 as shim;
use berth_proto::v1::{CreateContainerRequest, RunOptions};
use k8s_cri::v1 as cri;

use super::records::{self, SandboxRecord, NS};
use crate::daemon::Daemon;
use crate::error::{ApiError, ApiResult};
use crate::events::now_ns;
use crate::{ids, tasks};

/// Label on the Berth containers behind CRI objects: "sandbox" or "container".
pub const KIND_LABEL: &str = "io.berth.cri.kind";
/// Label on a CRI container's Berth container: its pod sandbox.
pub const SANDBOX_LABEL: &str = "io.berth.cri.sandbox";

pub async fn run(d: &Arc<Daemon>, r: cri::RunPodSandboxRequest) -> ApiResult<String> {
    let config = r
        .config
        .ok_or_else(|| ApiError::InvalidArgument("RunPodSandbox needs a config".into()))?;
    if config.metadata.is_none() {
        return Err(ApiError::InvalidArgument(
            "the pod sandbox config needs metadata".into(),
        ));
    }
    super::log_paths::check_directory(&d.cfg.cri.log_roots, &config.log_directory)?;
    let id = ids::generate();
    let opts = options(d, &id, &config)?;
    let record = SandboxRecord {
        id: id.clone(),
        config: Some(config.clone()),
        created_at_ns: now_ns(),
        runtime_handler: r.runtime_handler,
        ..Default::default()
    };
    // The record first: a crash after it leaves a pod that status and removal can see.
    records::put_sandbox(d, &record)?;
    match start(d, &id, opts, &config).await {
        Ok(ip) => {
            let record = SandboxRecord { ip, ..record };
            records::put_sandbox(d, &record)?;
            Ok(id)
        }
        Err(e) => {
            if let Ok(c) = d.store.find_container(NS, &id) {
                let _ = crate::services::containers::remove(d, NS, &c, true).await;
            }
            let _ = records::delete_sandbox(d, &id);
            Err(e)
        }
    }
}

/// Creates and starts the holding container; returns the pod's IP.
async fn start(
    d: &Arc<Daemon>,
    id: &str,
    opts: RunOptions,
    config: &cri::PodSandboxConfig,
) -> ApiResult<String> {
    let host_uts = opts.uts == "host";
    let req = CreateContainerRequest {
        id: id.to_string(),
        labels: [(KIND_LABEL.to_string(), "sandbox".to_string())].into(),
        options: Some(opts),
        ..Default::default()
    };
    let c = crate::services::containers::create_with(d, NS, req, |spec| {
        if host_uts {
            spec.set_hostname(None);
        }
        Ok(())
    })
    .await?;
    tasks::create(d, NS, &c).await?;
    if let Some(dns) = &config.dns_config {
        write_resolv_conf(d, id, dns)?;
    }
    let mut client = tasks::client(d, NS, id).await?;
    client.start(shim::ProcessRequest::default()).await?;
    Ok(crate::network::ip(d, NS, id))
}

/// The run options of the holding container.
fn options(d: &Daemon, id: &str, config: &cri::PodSandboxConfig) -> ApiResult<RunOptions> {
    let linux = config.linux.clone().unwrap_or_default();
    let ns_opts = linux
        .security_context
        .as_ref()
        .and_then(|s| s.namespace_options.clone())
        .unwrap_or_default();
    let node = cri::NamespaceMode::Node as i32;
    let host_network = ns_opts.network == node;
    let mut publish = Vec::new();
    for p in &config.port_mappings {
        if p.host_port <= 0 {
            continue;
        }
        let proto = match cri::Protocol::try_from(p.protocol) {
            Ok(cri::Protocol::Tcp) => "tcp",
            Ok(cri::Protocol::Udp) => "udp",
            _ => {
                return Err(ApiError::InvalidArgument(format!(
                    "port mapping {}: only TCP and UDP are supported",
                    p.host_port
                )))
            }
        };
        if host_network {
            // The pod is on the host's network: its ports are the host's already.
            continue;
        }
        let ip = match p.host_ip.as_str() {
            "" => String::new(),
            ip if ip.contains(':') => format!("[{ip}]:"),
            ip => format!("{ip}:"),
        };
        publish.push(format!("{ip}{}:{}/{proto}", p.host_port, p.container_port));
    }
    let mode = |m: i32, private: &str| {
        if m == node {
            "host".to_string()
        } else {
            private.to_string()
        }
    };
    let hostname = pod_hostname(config, host_network);
    Ok(RunOptions {
        args: vec!["berth-hold".into()],
        hold: true,
        rootfs: d.bundles.path(NS, id).join("rootfs").display().to_string(),
        hostname,
        network: if host_network { "host" } else { "bridge" }.into(),
        publish,
        ipc: mode(ns_opts.ipc, ""),
        pid: mode(ns_opts.pid, ""),
        // Host network pods share the host's hostname too (as containerd does).
        uts: if host_network { "host" } else { "" }.into(),
        sysctls: linux.sysctls.clone(),
        cgroup_parent: linux.cgroup_parent.clone(),
        cap_drop: vec!["ALL".into()],
        no_new_privileges: true,
        ..Default::default()
    })
}

/// The pod's resolv.conf from its DNS config (over what the network wrote).
fn write_resolv_conf(d: &Daemon, id: &str, dns: &cri::DnsConfig) -> ApiResult<()> {
    if dns.servers.is_empty() && dns.searches.is_empty() && dns.options.is_empty() {
        return Ok(());
    }
    let mut text = String::new();
    if !dns.searches.is_empty() {
        text.push_str(&format!("search {}\n", dns.searches.join(" ")));
    }
    for s in &dns.servers {
        text.push_str(&format!("nameserver {s}\n"));
    }
    if !dns.options.is_empty() {
        text.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    // Written in place: the file is bind-mounted by inode.
    let path = d.bundles.path(NS, id).join("etc/resolv.conf");
    std::fs::write(&path, text).map_err(|e| ApiError::internal("writing resolv.conf", e))
}

/// The hostname of a pod's UTS namespace: the config's, else the pod's name; empty for a
/// host-network pod, which keeps the node's.
pub fn pod_hostname(config: &cri::PodSandboxConfig, host_network: bool) -> String {
    if host_network {
        String::new()
    } else if config.hostname.is_empty() {
        config
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default()
    } else {
        config.hostname.clone()
    }
}
