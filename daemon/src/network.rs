//! Containers' networks through berth-network (CNI): the default bridge network, setup before
//! a task is created (namespace, address, /etc/hosts, /etc/hostname, /etc/resolv.conf) and
//! teardown after it is gone.

use std::path::Path;

use berth_network::{
    ensure_default_network, host_resolv_conf, parse_publish, write_hostname, write_hosts,
    write_resolv_conf, DefaultNetwork, Network, NetworkInfo, NetworkMode, NetworkOptions,
};
use berth_proto::v1::RunOptions;
use oci_spec::runtime::{LinuxNamespaceType, MountBuilder, Spec};

use crate::config::Config;
use crate::daemon::Daemon;
use crate::error::{ApiError, ApiResult};

pub fn new(cfg: &Config) -> anyhow::Result<Network> {
    let subnet = cfg
        .subnet
        .parse()
        .map_err(|e| anyhow::anyhow!("subnet {:?}: {e:?}", cfg.subnet))?;
    let default = DefaultNetwork {
        bridge: cfg.bridge.clone(),
        subnet,
        ipam_data_dir: Some(cfg.root.join("network/ipam")),
        ..DefaultNetwork::default()
    };
    ensure_default_network(&cfg.cni_conf_dir, &default)
        .map_err(|e| anyhow::anyhow!("writing the default network: {e}"))?;
    Ok(Network::new(NetworkOptions {
        conf_dir: cfg.cni_conf_dir.clone(),
        plugin_dirs: cfg.cni_plugin_dirs.clone(),
        state_dir: cfg.root.join("network"),
        netns_dir: cfg.state.join("netns"),
        default_network: Some(default.name),
        ..NetworkOptions::default()
    }))
}

/// Tears down networks of containers that no longer exist (after a crash).
pub async fn startup(d: &Daemon) {
    let attached = match d.network.list_attached() {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!("listing attached networks: {e}");
            return;
        }
    };
    for key in attached {
        // Namespaces may hold dots (k8s.io): any split a record owns keeps the network.
        let owned = crate::orphans::split_key(&key, |ns, id| {
            d.store.container(ns, id).ok().flatten().is_some()
        });
        if owned.is_none() {
            if let Err(e) = d.network.teardown(&key).await {
                tracing::warn!(key, "tearing down an orphaned network: {e}");
            }
        }
    }
}

/// The network's key for a container (CNI container id).
pub fn key(ns: &str, id: &str) -> String {
    format!("{ns}.{id}")
}

/// Sets up the container's network and fits the spec to it: namespace path, the three /etc
/// files bind-mounted read-only from the bundle.
pub async fn setup(
    d: &Daemon,
    ns: &str,
    id: &str,
    opts: &RunOptions,
    spec: &mut Spec,
    bundle: &Path,
) -> ApiResult<()> {
    let mode = match opts.network.as_str() {
        "" | "bridge" => {
            let ports = opts
                .publish
                .iter()
                .map(|p| {
                    parse_publish(p).map_err(|e| ApiError::InvalidArgument(format!("-p {p}: {e}")))
                })
                .collect::<ApiResult<Vec<_>>>()?;
            Some(NetworkMode::Bridge {
                network: None,
                ports,
            })
        }
        // A new namespace from the runtime, with `lo` up; no CNI plugin run.
        "none" => None,
        "host" => None,
        m if m.starts_with("container:") => return Ok(()),
        m => {
            return Err(ApiError::InvalidArgument(format!(
                "unknown network mode {m:?}"
            )))
        }
    };
    if mode.is_none() && !opts.publish.is_empty() {
        return Err(ApiError::InvalidArgument(
            "-p needs the bridge network".into(),
        ));
    }
    let info = match mode {
        Some(mode) => d
            .network
            .setup(&key(ns, id), mode)
            .await
            .map_err(|e| ApiError::internal("setting up the network", e))?,
        None => NetworkInfo::default(),
    };
    // No hostname of its own (the host's UTS namespace): the files name the host.
    let hostname = spec
        .hostname()
        .clone()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
        })
        .unwrap_or_else(|| "localhost".into());
    let files = bundle.join("etc");
    std::fs::create_dir_all(&files).map_err(|e| ApiError::internal("bundle etc dir", e))?;
    let host_network = opts.network == "host";
    let hosts_ip = if host_network { None } else { info.ip };
    write_hosts(&files.join("hosts"), &hostname, hosts_ip, &[])
        .and_then(|()| write_hostname(&files.join("hostname"), &hostname))
        .and_then(|()| {
            write_resolv_conf(
                &files.join("resolv.conf"),
                info.dns.as_ref(),
                &host_resolv_conf(),
                host_network,
            )
        })
        .map_err(|e| ApiError::internal("writing the container's /etc files", e))?;
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for name in ["hosts", "hostname", "resolv.conf"] {
        let dest = format!("/etc/{name}");
        if mounts
            .iter()
            .any(|m| m.destination().to_str() == Some(dest.as_str()))
        {
            continue;
        }
        mounts.push(
            MountBuilder::default()
                .destination(dest)
                .typ("bind")
                .source(files.join(name))
                .options(vec![
                    "rbind".into(),
                    "ro".into(),
                    "nosuid".into(),
                    "nodev".into(),
                    "noexec".into(),
                ])
                .build()
                .map_err(|e| ApiError::internal("mount", e))?,
        );
    }
    spec.set_mounts(Some(mounts));
    if let (Some(path), Some(linux)) = (info.netns_path, spec.linux_mut()) {
        if let Some(list) = linux.namespaces_mut() {
            for n in list
                .iter_mut()
                .filter(|n| n.typ() == LinuxNamespaceType::Network)
            {
                n.set_path(Some(path.clone()));
            }
        }
    }
    Ok(())
}

pub async fn teardown(d: &Daemon, ns: &str, id: &str) {
    if let Err(e) = d.network.teardown(&key(ns, id)).await {
        tracing::warn!(id, "tearing down the network: {e}");
    }
}

/// The container's address, if it has one.
pub fn ip(d: &Daemon, ns: &str, id: &str) -> String {
    d.network
        .info(&key(ns, id))
        .ok()
        .flatten()
        .and_then(|i| i.ip)
        .map(|ip| ip.to_string())
        .unwrap_or_default()
}
