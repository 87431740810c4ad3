//! A Kubernetes CRI v1 client (the `k8s-cri` crate's protobufs) over berthd's unix socket,
//! and helpers for the CRI tests.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

pub use k8s_cri::v1 as api;

pub struct Cri {
    pub runtime: RuntimeServiceClient<Channel>,
    pub images: ImageServiceClient<Channel>,
}

/// Connects to the CRI services on `socket` (tonic over the unix socket).
pub async fn connect(socket: &Path) -> Cri {
    let path: PathBuf = socket.to_path_buf();
    let channel = Endpoint::try_from("http://[::]:50051")
        .expect("endpoint")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .expect("connecting to the CRI socket");
    Cri {
        runtime: RuntimeServiceClient::new(channel.clone()),
        images: ImageServiceClient::new(channel),
    }
}

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
