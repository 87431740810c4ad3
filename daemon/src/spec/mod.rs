//! The OCI runtime spec of a container, generated in the daemon from the image config and the
//! run options, so berthctl and CRI get the same containers.

pub mod defaults;
mod host_devices;
mod resources;
pub mod user;

use std::collections::HashMap;

use berth_proto::v1::RunOptions;
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxNamespace, LinuxNamespaceBuilder,
    LinuxNamespaceType, Mount, MountBuilder, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder,
    RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use crate::error::ApiError;

/// Annotation asking the runtime for its built-in init (a reaper as pid 1).
pub const INIT_ANNOTATION: &str = "io.berth.init";
/// The image's stop signal (e.g. SIGQUIT), used by stop instead of SIGTERM.
pub const STOP_SIGNAL_ANNOTATION: &str = "io.berth.stop-signal";

/// What the image says about how to run it.
#[derive(Debug, Clone, Default)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub workdir: String,
    pub user: String,
    pub stop_signal: String,
}

/// Everything the spec is made of.
pub struct Inputs<'a> {
    pub id: &'a str,
    pub namespace: &'a str,
    pub image: &'a ImageConfig,
    pub opts: &'a RunOptions,
    pub cgroup_v2: bool,
    /// The daemon's parent cgroup for containers.
    pub cgroup_root: &'a str,
}

pub fn generate(i: &Inputs<'_>) -> Result<Spec, ApiError> {
    let o = i.opts;
    let invalid = |e: oci_spec::OciSpecError| ApiError::InvalidArgument(e.to_string());
    let entrypoint = if o.entrypoint.is_empty() {
        &i.image.entrypoint
    } else {
        &o.entrypoint
    };
    // An entrypoint from the command line drops the image's cmd, like docker.
    let cmd = if !o.args.is_empty() {
        &o.args
    } else if o.entrypoint.is_empty() {
        &i.image.cmd
    } else {
        &Vec::new()
    };
    let args: Vec<String> = entrypoint.iter().chain(cmd.iter()).cloned().collect();
    if args.is_empty() {
        return Err(ApiError::InvalidArgument(
            "no command: the image has no entrypoint or cmd and none was given".into(),
        ));
    }
    let hostname = if o.hostname.is_empty() {
        i.id.chars().take(12).collect()
    } else {
        o.hostname.clone()
    };
    let env = merge_env(&i.image.env, &o.env, &hostname, o.tty);
    let cwd = [o.workdir.as_str(), i.image.workdir.as_str(), "/"]
        .into_iter()
        .find(|w| !w.is_empty())
        .unwrap_or("/");
    if !cwd.starts_with('/') {
        return Err(ApiError::InvalidArgument(format!(
            "workdir {cwd:?} must be absolute"
        )));
    }
    let caps = capabilities(o)?;
    let caps: oci_spec::runtime::Capabilities = caps.into_iter().collect();
    let capset = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        // Nothing inheritable or ambient (CVE-2022-24769): exec'd programs gain nothing.
        .inheritable(oci_spec::runtime::Capabilities::new())
        .ambient(oci_spec::runtime::Capabilities::new())
        .build()
        .map_err(invalid)?;
    let mut rlimits = Vec::new();
    for u in &o.ulimits {
        let typ: PosixRlimitType = serde_json::from_value(serde_json::Value::String(format!(
            "RLIMIT_{}",
            u.name.to_uppercase()
        )))
        .map_err(|_| ApiError::InvalidArgument(format!("unknown ulimit {:?}", u.name)))?;
        if u.soft > u.hard {
            return Err(ApiError::InvalidArgument(format!(
                "ulimit {}: soft {} above hard {}",
                u.name, u.soft, u.hard
            )));
        }
        rlimits.push(
            PosixRlimitBuilder::default()
                .typ(typ)
                .soft(u.soft)
                .hard(u.hard)
                .build()
                .map_err(invalid)?,
        );
    }
    let process = ProcessBuilder::default()
        .terminal(o.tty)
        .args(args)
        .env(env)
        .cwd(cwd)
        .user(
            UserBuilder::default()
                .uid(0u32)
                .gid(0u32)
                .build()
                .map_err(invalid)?,
        )
        .capabilities(capset)
        .rlimits(rlimits)
        .no_new_privileges(o.no_new_privileges)
        .build()
        .map_err(invalid)?;

    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces(o)?)
        .resources(resources::from_options(o, i.cgroup_v2)?)
        .cgroups_path(cgroups_path(i)?)
        .sysctl(o.sysctls.clone())
        .build()
        .map_err(invalid)?;
    if !o.privileged {
        linux.set_masked_paths(Some(
            defaults::MASKED_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ));
        linux.set_readonly_paths(Some(
            defaults::READONLY_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ));
        linux.set_seccomp(seccomp(o)?);
    } else {
        linux.set_masked_paths(None);
        linux.set_readonly_paths(None);
        linux.set_devices(Some(host_devices::under(std::path::Path::new("/dev"))));
    }

    let mut annotations = HashMap::new();
    if o.hold {
        annotations.insert(INIT_ANNOTATION.to_string(), "hold".to_string());
    } else if o.init {
        annotations.insert(INIT_ANNOTATION.to_string(), "true".to_string());
    }
    if !i.image.stop_signal.is_empty() {
        annotations.insert(
            STOP_SIGNAL_ANNOTATION.to_string(),
            i.image.stop_signal.clone(),
        );
    }
    let root_path = if o.rootfs.is_empty() {
        "rootfs".to_string()
    } else {
        o.rootfs.clone()
    };
    SpecBuilder::default()
        .version("1.2.0")
        .root(
            RootBuilder::default()
                .path(root_path)
                .readonly(o.read_only)
                .build()
                .map_err(invalid)?,
        )
        .hostname(hostname)
        .mounts(mounts(o)?)
        .process(process)
        .linux(linux)
        .annotations(annotations)
        .build()
        .map_err(invalid)
}

fn merge_env(image: &[String], opts: &[String], hostname: &str, tty: bool) -> Vec<String> {
    let mut env: Vec<String> = vec![
        defaults::DEFAULT_PATH.to_string(),
        format!("HOSTNAME={hostname}"),
    ];
    if tty {
        env.push("TERM=xterm".into());
    }
    for kv in image.iter().chain(opts.iter()) {
        let key = kv.split_once('=').map(|(k, _)| k).unwrap_or(kv);
        env.retain(|e| e.split_once('=').map(|(k, _)| k) != Some(key));
        if kv.contains('=') {
            env.push(kv.clone());
        }
    }
    env
}

fn capabilities(o: &RunOptions) -> Result<Vec<Capability>, ApiError> {
    // "All" is every capability in the daemon's own bounding set (as containerd does): a
    // restricted host may lack some, and asking for those would fail the container's start.
    let all = || -> Vec<Capability> {
        let bounding = caps::read(None, caps::CapSet::Bounding).unwrap_or_else(|_| caps::all());
        let mut names: Vec<String> = bounding.iter().map(|c| c.to_string()).collect();
        names.sort();
        names
            .iter()
            .filter_map(|c| c.trim_start_matches("CAP_").parse().ok())
            .collect()
    };
    let mut caps: Vec<Capability> = if o.privileged {
        all()
    } else {
        defaults::CAPABILITIES.to_vec()
    };
    let parse = |name: &str| -> Result<Capability, ApiError> {
        let upper = name.to_uppercase();
        upper
            .trim_start_matches("CAP_")
            .parse::<Capability>()
            .map_err(|_| ApiError::InvalidArgument(format!("unknown capability {name:?}")))
    };
    for add in &o.cap_add {
        if add.eq_ignore_ascii_case("ALL") {
            caps = all();
        } else {
            let c = parse(add)?;
            if !caps.contains(&c) {
                caps.push(c);
            }
        }
    }
    for drop in &o.cap_drop {
        if drop.eq_ignore_ascii_case("ALL") {
            caps.clear();
        } else {
            let c = parse(drop)?;
            caps.retain(|x| *x != c);
        }
    }
    Ok(caps)
}

/// ipc/pid/uts/cgroupns/network: private by default, "host" shares the host's, and
/// "container:<id>" is resolved to a path when the task is created.
fn namespaces(o: &RunOptions) -> Result<Vec<LinuxNamespace>, ApiError> {
    let ns = |typ| LinuxNamespaceBuilder::default().typ(typ).build();
    let mut out = vec![ns(LinuxNamespaceType::Mount)];
    for (typ, mode, what) in [
        (LinuxNamespaceType::Pid, &o.pid, "pid"),
        (LinuxNamespaceType::Ipc, &o.ipc, "ipc"),
        (LinuxNamespaceType::Uts, &o.uts, "uts"),
        (LinuxNamespaceType::Cgroup, &o.cgroupns, "cgroupns"),
        (LinuxNamespaceType::Network, &o.network, "network"),
    ] {
        match mode.as_str() {
            "host" => {}
            "" | "private" | "bridge" | "none" => out.push(ns(typ)),
            m if m.starts_with("container:") && typ != LinuxNamespaceType::Cgroup => {
                out.push(ns(typ))
            }
            m => {
                return Err(ApiError::InvalidArgument(format!(
                    "invalid {what} mode {m:?}"
                )));
            }
        }
    }
    out.into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::InvalidArgument(e.to_string()))
}

fn cgroups_path(i: &Inputs<'_>) -> Result<String, ApiError> {
    let parent = if i.opts.cgroup_parent.is_empty() {
        format!("{}/{}", i.cgroup_root.trim_end_matches('/'), i.namespace)
    } else {
        i.opts.cgroup_parent.clone()
    };
    if parent.split('/').any(|c| c == "..") {
        return Err(ApiError::InvalidArgument(format!(
            "cgroup parent {parent:?} contains .."
        )));
    }
    Ok(format!("{}/{}", parent.trim_end_matches('/'), i.id))
}

fn mounts(o: &RunOptions) -> Result<Vec<Mount>, ApiError> {
    let mut out = Vec::new();
    let build = |dest: &str, typ: &str, src: &str, opts: Vec<String>| {
        MountBuilder::default()
            .destination(dest)
            .typ(typ)
            .source(src)
            .options(opts)
            .build()
            .map_err(|e| ApiError::InvalidArgument(e.to_string()))
    };
    for (dest, typ, src, opts) in defaults::MOUNTS {
        let mut opts: Vec<String> = opts.iter().map(|s| s.to_string()).collect();
        if o.privileged && (dest == "/sys" || dest == "/sys/fs/cgroup") {
            opts.retain(|x| x != "ro");
        }
        out.push(build(dest, typ, src, opts)?);
    }
    for m in &o.mounts {
        if !m.destination.starts_with('/') {
            return Err(ApiError::InvalidArgument(format!(
                "mount destination {:?} must be absolute",
                m.destination
            )));
        }
        match m.r#type.as_str() {
            "bind" | "" => {
                if !m.source.starts_with('/') {
                    return Err(ApiError::InvalidArgument(format!(
                        "bind source {:?} must be an absolute host path",
                        m.source
                    )));
                }
                std::fs::metadata(&m.source).map_err(|e| {
                    ApiError::InvalidArgument(format!("bind source {}: {e}", m.source))
                })?;
                let mut opts = vec!["rbind".to_string(), "rprivate".to_string()];
                opts.extend(m.options.iter().cloned());
                out.push(build(&m.destination, "bind", &m.source, opts)?);
            }
            "tmpfs" => {
                let mut opts = vec!["nosuid".to_string(), "nodev".to_string()];
                opts.extend(m.options.iter().cloned());
                out.push(build(&m.destination, "tmpfs", "tmpfs", opts)?);
            }
            t => {
                return Err(ApiError::InvalidArgument(format!(
                    "unknown mount type {t:?}"
                )))
            }
        }
    }
    Ok(out)
}

fn seccomp(o: &RunOptions) -> Result<Option<oci_spec::runtime::LinuxSeccomp>, ApiError> {
    match o.seccomp.as_str() {
        "" => Ok(Some(berth_runtime::docker_default_profile())),
        "unconfined" => Ok(None),
        path => {
            let data = std::fs::read(path)
                .map_err(|e| ApiError::InvalidArgument(format!("seccomp profile {path}: {e}")))?;
            serde_json::from_slice(&data)
                .map(Some)
                .map_err(|e| ApiError::InvalidArgument(format!("seccomp profile {path}: {e}")))
        }
    }
}

#[cfg(test)]
mod tests;
