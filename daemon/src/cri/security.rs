//! A CRI container's Linux security context, as run options and spec changes: user and
//! groups, privileged, capabilities, read-only rootfs, no_new_privs, seccomp, masked and
//! read-only paths. User namespaces are refused with a clear error (not supported yet).

use berth_proto::v1::RunOptions;
use k8s_cri::v1 as cri;
use oci_spec::runtime::Spec;

use crate::error::{ApiError, ApiResult};

/// Fills `opts` from the security context.
pub fn apply_to_options(
    sc: &cri::LinuxContainerSecurityContext,
    seccomp_root: &std::path::Path,
    opts: &mut RunOptions,
) -> ApiResult<()> {
    if let Some(userns) = sc
        .namespace_options
        .as_ref()
        .and_then(|n| n.userns_options.as_ref())
    {
        if userns.mode != cri::NamespaceMode::Node as i32 {
            return Err(ApiError::InvalidArgument(
                "user namespaces are not supported by berth yet (use hostUsers: true)".into(),
            ));
        }
    }
    let user = if !sc.run_as_username.is_empty() {
        sc.run_as_username.clone()
    } else if let Some(u) = &sc.run_as_user {
        u.value.to_string()
    } else {
        String::new()
    };
    if let Some(g) = &sc.run_as_group {
        if user.is_empty() {
            return Err(ApiError::InvalidArgument(
                "run_as_group needs run_as_user or run_as_username".into(),
            ));
        }
        opts.user = format!("{user}:{}", g.value);
    } else {
        opts.user = user;
    }
    for g in &sc.supplemental_groups {
        let g = u32::try_from(*g).map_err(|_| {
            ApiError::InvalidArgument(format!(
                "supplemental group {g} is not a group id (0 to 4294967295)"
            ))
        })?;
        opts.additional_gids.push(g);
    }
    opts.privileged = sc.privileged;
    if let Some(c) = &sc.capabilities {
        opts.cap_add = c.add_capabilities.clone();
        opts.cap_drop = c.drop_capabilities.clone();
        // CRI drops first, then adds (dropping ALL and adding one keeps that one); the run
        // options add first. Drop exactly the defaults not added instead.
        if c.drop_capabilities
            .iter()
            .any(|x| x.eq_ignore_ascii_case("ALL"))
        {
            let added = |name: &str| {
                c.add_capabilities.iter().any(|a| {
                    a.eq_ignore_ascii_case("ALL")
                        || a.trim_start_matches("CAP_")
                            .eq_ignore_ascii_case(name.trim_start_matches("CAP_"))
                })
            };
            opts.cap_drop = crate::spec::defaults::CAPABILITIES
                .iter()
                .map(|c| c.to_string())
                .filter(|c| !added(c))
                .collect();
        }
    }
    opts.read_only = sc.readonly_rootfs;
    opts.no_new_privileges = sc.no_new_privs;
    opts.seccomp = seccomp(sc, seccomp_root)?;
    Ok(())
}

// The deprecated seccomp_profile_path is still what older kubelets send.
#[allow(deprecated)]
fn seccomp(sc: &cri::LinuxContainerSecurityContext, root: &std::path::Path) -> ApiResult<String> {
    if sc.privileged {
        return Ok("unconfined".into());
    }
    let (typ, local) = match &sc.seccomp {
        Some(p) => (p.profile_type, p.localhost_ref.clone()),
        None => match sc.seccomp_profile_path.as_str() {
            "" | "runtime/default" | "docker/default" => (
                cri::security_profile::ProfileType::RuntimeDefault as i32,
                String::new(),
            ),
            "unconfined" => (
                cri::security_profile::ProfileType::Unconfined as i32,
                String::new(),
            ),
            p => (
                cri::security_profile::ProfileType::Localhost as i32,
                p.trim_start_matches("localhost/").to_string(),
            ),
        },
    };
    match cri::security_profile::ProfileType::try_from(typ) {
        Ok(cri::security_profile::ProfileType::RuntimeDefault) => Ok(String::new()),
        Ok(cri::security_profile::ProfileType::Unconfined) => Ok("unconfined".into()),
        Ok(cri::security_profile::ProfileType::Localhost) => {
            if local.is_empty() {
                return Err(ApiError::InvalidArgument(
                    "a Localhost seccomp profile needs localhost_ref".into(),
                ));
            }
            let path = std::path::Path::new(&local);
            let path = if path.is_absolute() {
                path.to_path_buf()
            } else {
                root.join(path)
            };
            if !path.is_file() {
                return Err(ApiError::InvalidArgument(format!(
                    "seccomp profile {} does not exist",
                    path.display()
                )));
            }
            Ok(path.display().to_string())
        }
        Err(_) => Err(ApiError::InvalidArgument(format!(
            "unknown seccomp profile type {typ}"
        ))),
    }
}

/// Spec changes the options do not carry: masked and read-only paths as kubelet gives them.
pub fn patch_spec(sc: &cri::LinuxContainerSecurityContext, spec: &mut Spec) {
    if sc.privileged {
        return;
    }
    if let Some(linux) = spec.linux_mut() {
        if !sc.masked_paths.is_empty() {
            linux.set_masked_paths(Some(sc.masked_paths.clone()));
        }
        if !sc.readonly_paths.is_empty() {
            linux.set_readonly_paths(Some(sc.readonly_paths.clone()));
        }
    }
}
