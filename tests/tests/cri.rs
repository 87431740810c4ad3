//! CRI v1 RuntimeService end to end against berthd (a Rust CRI client from the same
//! protobufs): a pod whose containers share localhost, a hostPort from the host's loopback,
//! ExecSync, the CRI log format, stats, exec over WebSocket, OOMKilled, idempotent stop and
//! removal, NotFound for unknown ids.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use berth_tests::cri::{
    self, api, container_config, create_start, exec_sync, import_busybox, pod_config, run_pod,
    status, Cri,
};
use berth_tests::daemon::DaemonGuard;
use berth_tests::free_port;

async fn wait_exited(c: &mut Cri, id: &str, within: Duration) -> api::ContainerStatus {
    let deadline = Instant::now() + within;
    loop {
        let s = status(c, id).await;
        if s.state == api::ContainerState::ContainerExited as i32 {
            return s;
        }
        assert!(Instant::now() < deadline, "{id} did not exit: {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An exec URL run like kubectl does, failing the test after 30 s.
async fn ws_exec(url: &str, stdin: Option<Vec<u8>>, tty: bool) -> (Vec<u8>, Vec<u8>, i32) {
    tokio::time::timeout(
        Duration::from_secs(30),
        berth_streaming::client::exec(url, stdin, tty),
    )
    .await
    .expect("the exec did not finish within 30 s")
    .expect("exec over WebSocket")
}

/// GET / on 127.0.0.1:port from the host, retried while the server comes up.
fn http_get(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n");
            let mut body = String::new();
            let _ = s.read_to_string(&mut body);
            if body.contains("200") {
                return body;
            }
        }
        assert!(Instant::now() < deadline, "port {port} never answered");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn pod_shares_localhost_host_port_exec_logs_stats() {
    let d = DaemonGuard::start();
    let image = import_busybox(&d);
    let mut c = cri::connect(&d.socket).await;
    let logs = d.dir.path().join("pod-logs");
    let host_port = free_port();
    let mut pod_cfg = pod_config("web-pod", &logs);
    pod_cfg.port_mappings = vec![api::PortMapping {
        protocol: api::Protocol::Tcp as i32,
        container_port: 80,
        host_port: host_port as i32,
        host_ip: String::new(),
    }];
    pod_cfg.dns_config = Some(api::DnsConfig {
        servers: vec!["10.96.0.10".into()],
        searches: vec!["default.svc.cluster.local".into()],
        options: vec!["ndots:5".into()],
    });
    let pod = run_pod(&mut c, pod_cfg.clone()).await;
    let ps = cri::pod_status(&mut c, &pod).await;
    assert_eq!(ps.state, api::PodSandboxState::SandboxReady as i32);
    let ip = ps.network.unwrap().ip;
    assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "pod ip {ip:?}");

    let web = create_start(
        &mut c,
        &pod,
        container_config(
            "web",
            &image,
            &[
                "sh",
                "-c",
                "mkdir -p /www && echo hello-pod > /www/index.html && exec httpd -f -p 80 -h /www",
            ],
        ),
    )
    .await;
    let client_cmd = "for i in $(seq 1 100); do wget -q -O - http://127.0.0.1/ && exit 0; sleep 0.1; done; exit 1";
    // Like kubelet: the container is created from the image ID that ImageStatus reports.
    let image_id = c
        .images
        .image_status(api::ImageStatusRequest {
            image: Some(api::ImageSpec {
                image: image.clone(),
                ..Default::default()
            }),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .image
        .expect("the imported image")
        .id;
    let client = create_start(
        &mut c,
        &pod,
        container_config("client", &image_id, &["sh", "-c", client_cmd]),
    )
    .await;
    let s = wait_exited(&mut c, &client, Duration::from_secs(30)).await;
    assert_eq!(s.exit_code, 0, "{s:?}");
    assert_eq!(s.reason, "Completed");
    assert!(s.finished_at >= s.started_at && s.started_at >= s.created_at);
    assert_eq!(s.image_ref, image_id);
    // Its task (shim, bundle, rootfs mount) is released once it exited.
    let bundle = d.state().join("tasks/k8s.io").join(&client);
    let deadline = Instant::now() + Duration::from_secs(10);
    while bundle.exists() {
        assert!(
            Instant::now() < deadline,
            "the exited container kept its task"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status(&mut c, &client).await.exit_code, 0);

    // The log file in the CRI format, where kubelet asked for it.
    assert_eq!(s.log_path, logs.join("client.log").display().to_string());
    let log = std::fs::read_to_string(logs.join("client.log")).unwrap();
    let line = log.lines().find(|l| l.contains("hello-pod")).expect(&log);
    let fields: Vec<&str> = line.splitn(4, ' ').collect();
    assert_eq!(&fields[1..], ["stdout", "F", "hello-pod"], "{line}");
    assert!(
        fields[0].ends_with('Z') && fields[0].contains('T'),
        "{line}"
    );

    // The hostPort from the host's loopback.
    assert!(http_get(host_port).contains("hello-pod"));

    // Hostname (and $HOSTNAME) and DNS of the pod in its containers.
    let r = exec_sync(
        &mut c,
        &web,
        &[
            "sh",
            "-c",
            "hostname; echo HOSTNAME=$HOSTNAME; cat /etc/resolv.conf",
        ],
    )
    .await;
    let out = String::from_utf8_lossy(&r.stdout);
    assert!(out.starts_with("web-pod\nHOSTNAME=web-pod\n"), "{out}");
    assert!(
        out.contains("nameserver 10.96.0.10") && out.contains("ndots:5"),
        "{out}"
    );

    // ExecSync: output, stderr and exit code; a timeout.
    let r = exec_sync(
        &mut c,
        &web,
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
    )
    .await;
    assert_eq!(
        (r.stdout.as_slice(), r.stderr.as_slice(), r.exit_code),
        (&b"out\n"[..], &b"err\n"[..], 3)
    );
    let t = Instant::now();
    let e = c
        .runtime
        .exec_sync(api::ExecSyncRequest {
            container_id: web.clone(),
            cmd: vec!["sleep".into(), "30".into()],
            timeout: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::DeadlineExceeded, "{e:?}");
    assert!(t.elapsed() < Duration::from_secs(10));

    // Exec over WebSocket, without and with a tty.
    let url = c
        .runtime
        .exec(api::ExecRequest {
            container_id: web.clone(),
            cmd: vec!["sh".into(), "-c".into(), "cat; echo e >&2; exit 4".into()],
            tty: false,
            stdin: true,
            stdout: true,
            stderr: true,
        })
        .await
        .unwrap()
        .into_inner()
        .url;
    let (out, err, code) = ws_exec(&url, Some(b"ping\n".to_vec()), false).await;
    assert_eq!(
        (out.as_slice(), err.as_slice(), code),
        (&b"ping\n"[..], &b"e\n"[..], 4)
    );
    let url = c
        .runtime
        .exec(api::ExecRequest {
            container_id: web.clone(),
            cmd: vec![
                "sh".into(),
                "-c".into(),
                "tty >/dev/null && echo is-a-tty".into(),
            ],
            tty: true,
            stdin: false,
            stdout: true,
            stderr: false,
        })
        .await
        .unwrap()
        .into_inner()
        .url;
    let (out, _, code) = ws_exec(&url, None, true).await;
    assert_eq!(code, 0);
    assert!(
        String::from_utf8_lossy(&out).contains("is-a-tty"),
        "{out:?}"
    );

    // Stats: cpu, memory working set, the writable layer (it holds /www).
    let st = c
        .runtime
        .container_stats(api::ContainerStatsRequest {
            container_id: web.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    let cpu = st.cpu.unwrap().usage_core_nano_seconds.unwrap().value;
    let mem = st.memory.unwrap().working_set_bytes.unwrap().value;
    let layer = st.writable_layer.unwrap().used_bytes.unwrap().value;
    assert!(cpu > 0 && mem > 0 && layer > 0, "{cpu} {mem} {layer}");
    let ps = c
        .runtime
        .pod_sandbox_stats(api::PodSandboxStatsRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    assert_eq!(ps.linux.unwrap().containers.len(), 2);

    // Filters.
    let running = c
        .runtime
        .list_containers(api::ListContainersRequest {
            filter: Some(api::ContainerFilter {
                pod_sandbox_id: pod.clone(),
                state: Some(api::ContainerStateValue {
                    state: api::ContainerState::ContainerRunning as i32,
                }),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert_eq!(
        running.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        [web.as_str()]
    );
    let pods = c
        .runtime
        .list_pod_sandbox(api::ListPodSandboxRequest {
            filter: Some(api::PodSandboxFilter {
                label_selector: [("app".to_string(), "web-pod".to_string())].into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(pods.len(), 1);

    // Stop with a grace period: httpd dies of SIGTERM.
    c.runtime
        .stop_container(api::StopContainerRequest {
            container_id: web.clone(),
            timeout: 5,
        })
        .await
        .unwrap();
    let s = status(&mut c, &web).await;
    assert_eq!(s.state, api::ContainerState::ContainerExited as i32);
    assert_eq!(s.reason, "Error");

    // Stop and removal twice each; NotFound afterwards.
    for _ in 0..2 {
        c.runtime
            .stop_pod_sandbox(api::StopPodSandboxRequest {
                pod_sandbox_id: pod.clone(),
            })
            .await
            .unwrap();
    }
    let ps = cri::pod_status(&mut c, &pod).await;
    assert_eq!(ps.state, api::PodSandboxState::SandboxNotready as i32);
    assert!(std::net::TcpStream::connect(("127.0.0.1", host_port)).is_err());
    for _ in 0..2 {
        c.runtime
            .remove_pod_sandbox(api::RemovePodSandboxRequest {
                pod_sandbox_id: pod.clone(),
            })
            .await
            .unwrap();
    }
    let e = c
        .runtime
        .container_status(api::ContainerStatusRequest {
            container_id: web.clone(),
            verbose: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn oom_killed_reason() {
    let d = DaemonGuard::start();
    let image = import_busybox(&d);
    let mut c = cri::connect(&d.socket).await;
    let logs = d.dir.path().join("pod-logs");
    let pod_cfg = pod_config("oom-pod", &logs);
    let pod = run_pod(&mut c, pod_cfg.clone()).await;
    // By image id (the manifest digest), as kubelet names images it pulled.
    let o = d.run(&["-n", "k8s.io", "images", "--format", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).expect("images json");
    let id = list
        .as_array()
        .and_then(|l| l.iter().find(|i| i["name"] == image.as_str()))
        .and_then(|i| i["digest"].as_str())
        .expect("the image's digest")
        .to_string();
    let mut cfg = container_config(
        "hog",
        &id,
        &[
            "sh",
            "-c",
            "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived",
        ],
    );
    cfg.linux = Some(api::LinuxContainerConfig {
        resources: Some(api::LinuxContainerResources {
            memory_limit_in_bytes: 16 << 20,
            memory_swap_limit_in_bytes: 16 << 20,
            ..Default::default()
        }),
        security_context: None,
    });
    let hog = create_start(&mut c, &pod, cfg).await;
    let s = wait_exited(&mut c, &hog, Duration::from_secs(60)).await;
    assert_eq!(s.reason, "OOMKilled", "{s:?}");
    assert_ne!(s.exit_code, 0);
    c.runtime
        .remove_pod_sandbox(api::RemovePodSandboxRequest {
            pod_sandbox_id: pod,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn unknown_ids_and_runtime_info() {
    let d = DaemonGuard::start();
    let mut c = cri::connect(&d.socket).await;
    let v = c
        .runtime
        .version(api::VersionRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.runtime_name, "berth");
    assert_eq!(v.runtime_api_version, "v1");
    let st = c
        .runtime
        .status(api::StatusRequest { verbose: false })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    for cond in ["RuntimeReady", "NetworkReady"] {
        assert!(
            st.conditions.iter().any(|c| c.r#type == cond && c.status),
            "{cond}: {st:?}"
        );
    }
    let rc = c
        .runtime
        .runtime_config(api::RuntimeConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        rc.linux.unwrap().cgroup_driver,
        api::CgroupDriver::Cgroupfs as i32
    );
    let missing = "0123456789abcdef0123456789abcdef";
    let e = c
        .runtime
        .container_status(api::ContainerStatusRequest {
            container_id: missing.into(),
            verbose: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    let e = c
        .runtime
        .pod_sandbox_status(api::PodSandboxStatusRequest {
            pod_sandbox_id: missing.into(),
            verbose: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    let e = c
        .runtime
        .container_stats(api::ContainerStatsRequest {
            container_id: missing.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    c.runtime
        .stop_pod_sandbox(api::StopPodSandboxRequest {
            pod_sandbox_id: missing.into(),
        })
        .await
        .unwrap();
    c.runtime
        .remove_pod_sandbox(api::RemovePodSandboxRequest {
            pod_sandbox_id: missing.into(),
        })
        .await
        .unwrap();
    c.runtime
        .stop_container(api::StopContainerRequest {
            container_id: missing.into(),
            timeout: 0,
        })
        .await
        .unwrap();
    c.runtime
        .remove_container(api::RemoveContainerRequest {
            container_id: missing.into(),
        })
        .await
        .unwrap();
}
