//! `berth-oci spec`: a template config.json, like `runc spec`.

use std::path::PathBuf;

use anyhow::{bail, Context};
use oci_spec::runtime::{
    LinuxIdMapping, LinuxIdMappingBuilder, LinuxNamespace, LinuxNamespaceType, Mount, Spec,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bundle directory to write config.json into.
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// A spec for a container run by an unprivileged user (user namespace, no network ns).
    #[arg(long)]
    pub rootless: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let path = args.bundle.join("config.json");
    if path.exists() {
        bail!("file {} exists: remove it first", path.display());
    }
    let spec = if args.rootless {
        rootless_spec()
    } else {
        default_spec()
    };
    let text = serde_json::to_string_pretty(&spec)?;
    std::fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// runc's template: an interactive `sh` on a read-only rootfs, hostname `berth`.
pub fn default_spec() -> Spec {
    let mut spec = Spec::default();
    spec.set_version("1.2.0".to_string());
    spec.set_hostname(Some("berth".to_string()));
    if let Some(process) = spec.process_mut() {
        process.set_args(Some(vec!["sh".to_string()]));
        process.set_terminal(Some(true));
    }
    spec
}

/// The template for an unprivileged user: the current uid and gid map to root in a user
/// namespace; no network namespace; sysfs bound from the host; no cgroup limits.
pub fn rootless_spec() -> Spec {
    let mut spec = default_spec();
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    if let Some(linux) = spec.linux_mut() {
        let mut namespaces: Vec<LinuxNamespace> = linux
            .namespaces()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|ns| {
                !matches!(
                    ns.typ(),
                    LinuxNamespaceType::Network | LinuxNamespaceType::User
                )
            })
            .collect();
        let mut user = LinuxNamespace::default();
        user.set_typ(LinuxNamespaceType::User);
        namespaces.push(user);
        linux.set_namespaces(Some(namespaces));
        linux.set_uid_mappings(Some(vec![mapping(uid)]));
        linux.set_gid_mappings(Some(vec![mapping(gid)]));
        linux.set_resources(None);
    }
    let mounts: Vec<Mount> = spec
        .mounts()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.destination() != &PathBuf::from("/sys/fs/cgroup"))
        .map(|mut m| {
            if m.destination() == &PathBuf::from("/sys") {
                m.set_typ(Some("none".to_string()));
                m.set_source(Some(PathBuf::from("/sys")));
                m.set_options(Some(
                    ["rbind", "nosuid", "noexec", "nodev", "ro"]
                        .map(String::from)
                        .to_vec(),
                ));
            }
            if let Some(options) = m.options().clone() {
                // gid= of devpts refers to a group that is not mapped.
                m.set_options(Some(
                    options
                        .into_iter()
                        .filter(|o| !o.starts_with("gid="))
                        .collect(),
                ));
            }
            m
        })
        .collect();
    spec.set_mounts(Some(mounts));
    spec
}

fn mapping(host: u32) -> LinuxIdMapping {
    LinuxIdMappingBuilder::default()
        .host_id(host)
        .container_id(0u32)
        .size(1u32)
        .build()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_is_runcs_template() {
        let spec = default_spec();
        let process = spec.process().as_ref().unwrap();
        assert_eq!(process.args().as_ref().unwrap(), &vec!["sh".to_string()]);
        assert_eq!(process.terminal(), Some(true));
        assert_eq!(
            spec.root().as_ref().unwrap().path(),
            &PathBuf::from("rootfs")
        );
    }

    #[test]
    fn rootless_spec_maps_the_current_user_without_network_ns() {
        let spec = rootless_spec();
        let linux = spec.linux().as_ref().unwrap();
        let types: Vec<_> = linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|ns| ns.typ())
            .collect();
        assert!(types.contains(&LinuxNamespaceType::User));
        assert!(!types.contains(&LinuxNamespaceType::Network));
        let uid = nix::unistd::geteuid().as_raw();
        assert_eq!(linux.uid_mappings().as_ref().unwrap()[0].host_id(), uid);
        assert!(linux.resources().is_none());
    }
}
