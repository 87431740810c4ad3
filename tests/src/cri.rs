//! A Kubernetes CRI v1 client (the `k8s-cri` protobufs, tonic over a unix socket), for tests
//! and the CRI benchmark: berthd and containerd serve the same two services.

use std::path::Path;

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

pub use k8s_cri::v1 as api;

/// Both CRI services on one connection.
pub struct Cri {
    pub runtime: RuntimeServiceClient<Channel>,
    pub images: ImageServiceClient<Channel>,
}

/// Connects to the CRI services on `socket`, or says why not.
pub async fn try_connect(socket: &Path) -> Result<Cri, tonic::transport::Error> {
    let path = socket.to_path_buf();
    let channel = Endpoint::from_static("http://cri")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let s = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(TokioIo::new(s))
            }
        }))
        .await?;
    // Image lists and container logs may be large.
    let max = 64 << 20;
    Ok(Cri {
        runtime: RuntimeServiceClient::new(channel.clone()).max_decoding_message_size(max),
        images: ImageServiceClient::new(channel).max_decoding_message_size(max),
    })
}

/// Connects to the CRI services on `socket` (panics if it cannot: a test helper).
pub async fn connect(socket: &Path) -> Cri {
    try_connect(socket)
        .await
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", socket.display()))
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

/// RunPodSandbox of `config` (default runtime handler); the pod's id.
pub async fn run_pod(c: &mut Cri, config: api::PodSandboxConfig) -> String {
    c.runtime
        .run_pod_sandbox(api::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        })
        .await
        .expect("RunPodSandbox")
        .into_inner()
        .pod_sandbox_id
}

/// CreateContainer in `pod`; the container's id.
pub async fn create(c: &mut Cri, pod: &str, cfg: api::ContainerConfig) -> String {
    c.runtime
        .create_container(api::CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: Some(cfg),
            sandbox_config: None,
        })
        .await
        .expect("CreateContainer")
        .into_inner()
        .container_id
}

/// StartContainer.
pub async fn start(c: &mut Cri, id: &str) {
    c.runtime
        .start_container(api::StartContainerRequest {
            container_id: id.into(),
        })
        .await
        .expect("StartContainer");
}

/// CreateContainer then StartContainer; the container's id.
pub async fn create_start(c: &mut Cri, pod: &str, cfg: api::ContainerConfig) -> String {
    let id = create(c, pod, cfg).await;
    start(c, &id).await;
    id
}

/// PodSandboxStatus (not verbose).
pub async fn pod_status(c: &mut Cri, id: &str) -> api::PodSandboxStatus {
    c.runtime
        .pod_sandbox_status(api::PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: false,
        })
        .await
        .expect("PodSandboxStatus")
        .into_inner()
        .status
        .expect("a status")
}

/// ContainerStatus (not verbose).
pub async fn status(c: &mut Cri, id: &str) -> api::ContainerStatus {
    c.runtime
        .container_status(api::ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        })
        .await
        .expect("ContainerStatus")
        .into_inner()
        .status
        .expect("a status")
}

/// ExecSync of `cmd` with a 10 s timeout.
pub async fn exec_sync(c: &mut Cri, id: &str, cmd: &[&str]) -> api::ExecSyncResponse {
    c.runtime
        .exec_sync(api::ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: 10,
        })
        .await
        .expect("ExecSync")
        .into_inner()
}
