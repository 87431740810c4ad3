//! cri-bench: RunPodSandbox + CreateContainer + StartContainer latency over CRI v1, against
//! one or more CRI sockets (berthd, containerd) side by side. Used by `bench/cri`.
//!
//!   cri-bench run --target NAME=SOCKET [--target ...] [--runs 20] [--warmup 2]
//!                 [--image IMAGE] [--log-dir DIR] [--cgroup-parent /P]
//!   cri-bench cleanup SOCKET     (stops and removes every pod sandbox)
//!
//! Iterations are interleaved across targets so that they share the machine's noise. Each
//! iteration times the three calls of one pod with one container (`sleep`), then stops and
//! removes the pod (not timed). Prints a markdown table: median and p95 per target and the
//! ratio of each target to the first.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use berth_tests::cri::{try_connect, Cri};
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, CreateContainerRequest, ImageSpec, ImageStatusRequest,
    LinuxPodSandboxConfig, ListPodSandboxRequest, PodSandboxConfig, PodSandboxMetadata,
    RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest, StopPodSandboxRequest,
    VersionRequest,
};

struct Target {
    name: String,
    /// The image ID to create containers from.
    image: String,
    cri: Cri,
    times: Vec<Duration>,
    error: Option<String>,
}

struct Opts {
    runs: usize,
    warmup: usize,
    image: String,
    log_dir: PathBuf,
    cgroup_parent: String,
}

fn pod_config(o: &Opts, target: &str, i: usize) -> PodSandboxConfig {
    let name = format!("bench-{target}-{i}");
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.clone(),
            uid: format!("uid-{name}-{}", std::process::id()),
            namespace: "bench".into(),
            attempt: 0,
        }),
        hostname: name.clone(),
        log_directory: o.log_dir.join(&name).display().to_string(),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: o.cgroup_parent.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// One pod with one container, started; returns the pod id and the time of the three calls.
async fn one(
    cri: &mut Cri,
    o: &Opts,
    target: &str,
    image: &str,
    i: usize,
) -> anyhow::Result<(String, Duration)> {
    let config = pod_config(o, target, i);
    let start = Instant::now();
    let pod = cri
        .runtime
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .context("RunPodSandbox")?
        .into_inner()
        .pod_sandbox_id;
    let created = cri
        .runtime
        .create_container(CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(ContainerConfig {
                metadata: Some(ContainerMetadata {
                    name: "c".into(),
                    attempt: 0,
                }),
                image: Some(ImageSpec {
                    image: image.to_string(),
                    ..Default::default()
                }),
                command: vec!["sleep".into(), "3600".into()],
                log_path: "c.log".into(),
                ..Default::default()
            }),
            sandbox_config: Some(config),
        })
        .await;
    let created = match created {
        Ok(c) => c.into_inner().container_id,
        Err(e) => {
            remove_pod(cri, &pod).await;
            return Err(e).context("CreateContainer");
        }
    };
    if let Err(e) = cri
        .runtime
        .start_container(StartContainerRequest {
            container_id: created,
        })
        .await
    {
        remove_pod(cri, &pod).await;
        return Err(e).context("StartContainer");
    }
    Ok((pod, start.elapsed()))
}

async fn remove_pod(cri: &mut Cri, id: &str) {
    let id = id.to_string();
    if let Err(e) = cri
        .runtime
        .stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: id.clone(),
        })
        .await
    {
        eprintln!("cri-bench: StopPodSandbox {id}: {}", e.message());
    }
    if let Err(e) = cri
        .runtime
        .remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
        .await
    {
        eprintln!("cri-bench: RemovePodSandbox: {}", e.message());
    }
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[((sorted.len() - 1) * p / 100).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn run(targets: Vec<(String, PathBuf)>, o: Opts) -> anyhow::Result<()> {
    let mut all = Vec::new();
    for (name, socket) in targets {
        let mut cri = try_connect(&socket)
            .await
            .with_context(|| format!("{name}: connecting to {}", socket.display()))?;
        let error = match cri.runtime.version(VersionRequest::default()).await {
            Ok(v) => {
                let v = v.into_inner();
                eprintln!(
                    "cri-bench: {name}: {} {} (CRI {})",
                    v.runtime_name, v.runtime_version, v.runtime_api_version
                );
                None
            }
            Err(e) => Some(format!(
                "no RuntimeService ({:?}: {})",
                e.code(),
                e.message()
            )),
        };
        // Like kubelet: the container is created from the image's ID (ImageStatus).
        let id = cri
            .images
            .image_status(ImageStatusRequest {
                image: Some(ImageSpec {
                    image: o.image.clone(),
                    ..Default::default()
                }),
                verbose: false,
            })
            .await
            .with_context(|| format!("{name}: ImageStatus {}", o.image))?
            .into_inner()
            .image
            .map(|i| i.id)
            .with_context(|| format!("{name}: image {} not found", o.image))?;
        all.push(Target {
            image: id,
            name,
            cri,
            times: Vec::new(),
            error,
        });
    }
    for i in 0..o.warmup + o.runs {
        for t in all.iter_mut().filter(|t| t.error.is_none()) {
            match one(&mut t.cri, &o, &t.name, &t.image, i).await {
                Ok((pod, took)) => {
                    if i >= o.warmup {
                        t.times.push(took);
                    }
                    remove_pod(&mut t.cri, &pod).await;
                }
                Err(e) => t.error = Some(format!("{e:#}")),
            }
        }
    }
    let base = all.iter().find(|t| t.error.is_none()).map(|t| {
        let mut s = t.times.clone();
        s.sort();
        (t.name.clone(), percentile(&s, 50), percentile(&s, 95))
    });
    println!(
        "| RunPodSandbox + CreateContainer + StartContainer ({} runs) | median | p95 | ratio (median) |",
        o.runs
    );
    println!("|---|---|---|---|");
    for t in &all {
        if let Some(e) = &t.error {
            println!("| {} | n/a | n/a | {e} |", t.name);
            continue;
        }
        let mut s = t.times.clone();
        s.sort();
        let (p50, p95) = (percentile(&s, 50), percentile(&s, 95));
        let ratio = match &base {
            Some((name, b50, _)) if *name != t.name => {
                format!("{:.2}× {name}", ms(p50) / ms(*b50))
            }
            _ => "1.00×".into(),
        };
        println!(
            "| {} | {:.1} ms | {:.1} ms | {ratio} |",
            t.name,
            ms(p50),
            ms(p95)
        );
    }
    if all.iter().all(|t| t.error.is_some()) {
        bail!("no target could be measured");
    }
    Ok(())
}

async fn cleanup(socket: &Path) -> anyhow::Result<()> {
    let mut cri = try_connect(socket).await?;
    let pods = cri
        .runtime
        .list_pod_sandbox(ListPodSandboxRequest { filter: None })
        .await?
        .into_inner()
        .items;
    for p in pods {
        remove_pod(&mut cri, &p.id).await;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match args.first().map(String::as_str) {
        Some("cleanup") => {
            let socket = args.get(1).context("usage: cri-bench cleanup SOCKET")?;
            rt.block_on(cleanup(Path::new(socket)))
        }
        Some("run") => {
            let mut targets = Vec::new();
            let mut o = Opts {
                runs: 20,
                warmup: 2,
                image: "docker.io/library/busybox:latest".into(),
                log_dir: std::env::temp_dir().join("cri-bench-logs"),
                cgroup_parent: String::new(),
            };
            let mut it = args[1..].iter();
            while let Some(flag) = it.next() {
                let value = it.next().with_context(|| format!("{flag} needs a value"))?;
                match flag.as_str() {
                    "--target" => {
                        let (name, socket) =
                            value.split_once('=').context("--target NAME=SOCKET")?;
                        targets.push((name.to_string(), PathBuf::from(socket)));
                    }
                    "--runs" => o.runs = value.parse().context("--runs")?,
                    "--warmup" => o.warmup = value.parse().context("--warmup")?,
                    "--image" => o.image = value.clone(),
                    "--log-dir" => o.log_dir = PathBuf::from(value),
                    "--cgroup-parent" => o.cgroup_parent = value.clone(),
                    other => bail!("unknown flag {other}"),
                }
            }
            if targets.is_empty() || o.runs == 0 {
                bail!("cri-bench run --target NAME=SOCKET [...] [--runs N]");
            }
            rt.block_on(run(targets, o))
        }
        _ => bail!("usage: cri-bench run --target NAME=SOCKET [...] | cri-bench cleanup SOCKET"),
    }
}
