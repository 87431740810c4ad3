//! Version, Status, RuntimeConfig, UpdateRuntimeConfig and CheckpointContainer.

use k8s_cri::v1 as cri;

use crate::daemon::Daemon;
use crate::error::{ApiError, ApiResult};

pub const RUNTIME_NAME: &str = "berth";
pub const CRI_API_VERSION: &str = "v1";

pub fn version() -> cri::VersionResponse {
    cri::VersionResponse {
        version: "0.1.0".into(),
        runtime_name: RUNTIME_NAME.into(),
        runtime_version: env!("CARGO_PKG_VERSION").into(),
        runtime_api_version: CRI_API_VERSION.into(),
    }
}

/// Network readiness: a CNI configuration and the plugins it names are there.
fn network_condition(d: &Daemon) -> cri::RuntimeCondition {
    let has_conf = std::fs::read_dir(&d.cfg.cni_conf_dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.ends_with(".conflist") || name.ends_with(".conf") || name.ends_with(".json")
        });
    let has_plugins = d
        .cfg
        .cni_plugin_dirs
        .iter()
        .any(|dir| dir.join("bridge").exists());
    let (status, reason, message) = match (has_conf, has_plugins) {
        (true, true) => (true, String::new(), String::new()),
        (false, _) => (
            false,
            "NetworkPluginNotReady".to_string(),
            format!("no CNI configuration in {}", d.cfg.cni_conf_dir.display()),
        ),
        (true, false) => (
            false,
            "NetworkPluginNotReady".to_string(),
            "no CNI plugins found in the plugin directories".to_string(),
        ),
    };
    cri::RuntimeCondition {
        r#type: "NetworkReady".into(),
        status,
        reason,
        message,
    }
}

pub fn status(d: &Daemon, verbose: bool) -> cri::StatusResponse {
    let runtime = cri::RuntimeCondition {
        r#type: "RuntimeReady".into(),
        status: true,
        reason: String::new(),
        message: String::new(),
    };
    let mut info = std::collections::HashMap::new();
    if verbose {
        let doc = serde_json::json!({
            "root": d.cfg.root,
            "state": d.cfg.state,
            "cniConfDir": d.cfg.cni_conf_dir,
            "cgroupRoot": d.cfg.cgroup_root,
            "streamingAddress": d.cfg.stream_address,
        });
        info.insert("config".to_string(), doc.to_string());
    }
    cri::StatusResponse {
        status: Some(cri::RuntimeStatus {
            conditions: vec![runtime, network_condition(d)],
        }),
        info,
        runtime_handlers: vec![cri::RuntimeHandler {
            name: String::new(),
            features: Some(cri::RuntimeHandlerFeatures {
                recursive_read_only_mounts: false,
                user_namespaces: false,
            }),
        }],
        features: Some(cri::RuntimeFeatures {
            supplemental_groups_policy: false,
        }),
    }
}

pub fn runtime_config() -> cri::RuntimeConfigResponse {
    cri::RuntimeConfigResponse {
        linux: Some(cri::LinuxRuntimeConfiguration {
            cgroup_driver: cri::CgroupDriver::Cgroupfs as i32,
        }),
    }
}

/// CRIU on the PATH, answering `criu check`.
async fn criu_usable() -> bool {
    tokio::process::Command::new("criu")
        .arg("check")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .map(|s| s.success())
        .unwrap_or(false)
}

pub async fn checkpoint(d: &Daemon, r: &cri::CheckpointContainerRequest) -> ApiResult<()> {
    super::records::container(d, &r.container_id)?;
    if !criu_usable().await {
        return Err(ApiError::FailedPrecondition(
            "checkpointing needs CRIU, which is not installed or not usable on this host \
             (`criu check` failed)"
                .into(),
        ));
    }
    Err(ApiError::FailedPrecondition(
        "checkpointing containers is not supported by berth yet".into(),
    ))
}
