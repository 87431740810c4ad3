//! Helpers of the CRI RuntimeService tests: the busybox image in `k8s.io`, pod and container
//! configs. The client itself is [`crate::cri`].

use std::path::Path;

pub use k8s_cri::v1 as api;

/// Builds the busybox image (scripts/busybox-image, all applets) once per process and imports
/// it into the daemon's `k8s.io` namespace; returns its name.
pub fn import_busybox(d: &crate::daemon::DaemonGuard) -> String {
    let name = "docker.io/library/busybox:latest";
    let tar = d.dir.path().join("busybox-cri.tar");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/busybox-image");
    let o = std::process::Command::new(script)
        .arg(&tar)
        .arg(name)
        .output()
        .expect("running scripts/busybox-image");
    assert!(
        o.status.success(),
        "busybox-image: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = d.run(&["-n", "k8s.io", "import", tar.to_str().expect("utf-8 path")]);
    assert!(
        o.status.success(),
        "import: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    name.to_string()
}

/// A pod config with a unique name, its logs under `log_dir`.
pub fn pod_config(name: &str, log_dir: &Path) -> api::PodSandboxConfig {
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: log_dir.display().to_string(),
        labels: [("app".to_string(), name.to_string())].into(),
        ..Default::default()
    }
}

/// A container config running `cmd` in `image`, logging to `<name>.log`.
pub fn container_config(name: &str, image: &str, cmd: &[&str]) -> api::ContainerConfig {
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(api::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        command: cmd.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}.log"),
        labels: [("container".to_string(), name.to_string())].into(),
        ..Default::default()
    }
}
