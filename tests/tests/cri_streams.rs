//! CRI streams and side calls against berthd: GetContainerEvents, Attach and PortForward over
//! WebSocket, ReopenContainerLog after a rotation, UpdateContainerResources on a running
//! container.

use std::time::Duration;

use berth_tests::cri::{
    self, api, container_config, create_start, import_busybox, pod_config, run_pod, Cri,
};
use berth_tests::daemon::DaemonGuard;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

const LIMIT: Duration = Duration::from_secs(30);

async fn next_event(
    events: &mut tonic::Streaming<api::ContainerEventResponse>,
    id: &str,
) -> api::ContainerEventType {
    loop {
        let ev = tokio::time::timeout(LIMIT, events.message())
            .await
            .expect("an event in time")
            .expect("events stream")
            .expect("an event");
        if ev.container_id == id {
            return api::ContainerEventType::try_from(ev.container_event_type).expect("a type");
        }
    }
}

async fn sh(c: &mut Cri, id: &str, script: &str) -> String {
    let r = cri::exec_sync(c, id, &["sh", "-c", script]).await;
    String::from_utf8_lossy(&r.stdout).into_owned()
}

#[tokio::test]
async fn events_attach_port_forward_reopen_update() {
    let d = DaemonGuard::start();
    let image = import_busybox(&d);
    let mut c = cri::connect(&d.socket).await;
    let logs = d.dir.path().join("pod-logs");
    let pod = run_pod(&mut c, pod_config("streams", &logs)).await;
    let mut events = c
        .runtime
        .get_container_events(api::GetEventsRequest {})
        .await
        .unwrap()
        .into_inner();

    // Attach to `cat` as the main process: stdin in, stdout out, the end when stdin closes.
    let mut cfg = container_config("cat", &image, &["cat"]);
    cfg.stdin = true;
    let cat = create_start(&mut c, &pod, cfg).await;
    assert_eq!(
        next_event(&mut events, &cat).await,
        api::ContainerEventType::ContainerCreatedEvent
    );
    assert_eq!(
        next_event(&mut events, &cat).await,
        api::ContainerEventType::ContainerStartedEvent
    );
    let url = c
        .runtime
        .attach(api::AttachRequest {
            container_id: cat.clone(),
            stdin: true,
            tty: false,
            stdout: true,
            stderr: true,
        })
        .await
        .unwrap()
        .into_inner()
        .url;
    let (out, _, code) = tokio::time::timeout(
        LIMIT,
        berth_streaming::client::exec(&url, Some(b"through attach\n".to_vec()), false),
    )
    .await
    .expect("attach in time")
    .expect("attach");
    assert_eq!((out.as_slice(), code), (&b"through attach\n"[..], 0));
    assert_eq!(
        next_event(&mut events, &cat).await,
        api::ContainerEventType::ContainerStoppedEvent
    );

    // Port-forward to a server listening on the pod's loopback only.
    let web = create_start(
        &mut c,
        &pod,
        container_config(
            "web",
            &image,
            &[
                "sh",
                "-c",
                "mkdir -p /www && echo forwarded > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www",
            ],
        ),
    )
    .await;
    let mut body = String::new();
    for _ in 0..50 {
        body = port_forward_get(&mut c, &pod, 8080).await;
        if body.contains("forwarded") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(body.contains("forwarded"), "{body}");

    // The log file rotated by kubelet, then reopened.
    let log = logs.join("web.log");
    let rotated = logs.join("web.log.1");
    sh(&mut c, &web, "echo before").await;
    std::fs::rename(&log, &rotated).unwrap();
    c.runtime
        .reopen_container_log(api::ReopenContainerLogRequest {
            container_id: web.clone(),
        })
        .await
        .unwrap();
    assert!(log.exists(), "the log file was reopened");

    // New limits on a running container reach its cgroup.
    c.runtime
        .update_container_resources(api::UpdateContainerResourcesRequest {
            container_id: web.clone(),
            linux: Some(api::LinuxContainerResources {
                memory_limit_in_bytes: 64 << 20,
                cpu_period: 100_000,
                cpu_quota: 50_000,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let status = cri::status(&mut c, &web).await;
    let res = status.resources.unwrap().linux.unwrap();
    assert_eq!(res.memory_limit_in_bytes, 64 << 20);
    let cgroup = sh(&mut c, &web, "cat /proc/1/cgroup").await;
    let mem = cgroup
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))
        .expect(&cgroup);
    let limit =
        std::fs::read_to_string(format!("/sys/fs/cgroup/memory{mem}/memory.limit_in_bytes"))
            .unwrap_or_default();
    // The container sees its own cgroup as / (cgroup namespace): find it from the host.
    let host_limit = if limit.is_empty() {
        find_limit(&d.cgroup_root, &web)
    } else {
        limit
    };
    assert_eq!(host_limit.trim(), (64u64 << 20).to_string());

    c.runtime
        .remove_pod_sandbox(api::RemovePodSandboxRequest {
            pod_sandbox_id: pod,
        })
        .await
        .unwrap();
    // web's CREATED and STARTED came first.
    let mut seen = Vec::new();
    while seen.last() != Some(&api::ContainerEventType::ContainerDeletedEvent) {
        seen.push(next_event(&mut events, &web).await);
    }
    assert!(
        seen.contains(&api::ContainerEventType::ContainerStoppedEvent),
        "{seen:?}"
    );
}

/// memory.limit_in_bytes of the container's cgroup, found under the daemon's cgroup root.
fn find_limit(root: &str, id: &str) -> String {
    berth_tests::daemon::cgroups_under(root)
        .into_iter()
        .filter(|p| p.starts_with("/sys/fs/cgroup/memory") && p.ends_with(id))
        .find_map(|p| std::fs::read_to_string(p.join("memory.limit_in_bytes")).ok())
        .unwrap_or_default()
}

/// GET / through a PortForward URL (WebSocket, portforward.k8s.io).
async fn port_forward_get(c: &mut Cri, pod: &str, port: u16) -> String {
    let url = c
        .runtime
        .port_forward(api::PortForwardRequest {
            pod_sandbox_id: pod.into(),
            port: vec![port as i32],
        })
        .await
        .unwrap()
        .into_inner()
        .url;
    let mut req = berth_streaming::client::ws_url(&url)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("portforward.k8s.io"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut body = Vec::new();
    let mut prefixes = 0;
    ws.send(Message::Binary(bytes::Bytes::from_static(
        b"\x00GET / HTTP/1.0\r\nHost: pod\r\n\r\n",
    )))
    .await
    .unwrap();
    let read = async {
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Binary(b) = msg {
                if prefixes < 2 {
                    prefixes += 1;
                    continue;
                }
                if b[0] == 0 {
                    body.extend_from_slice(&b[1..]);
                } else {
                    body.extend_from_slice(b"error: ");
                    body.extend_from_slice(&b[1..]);
                    break;
                }
                if body.windows(9).any(|w| w == b"forwarded") {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    String::from_utf8_lossy(&body).into_owned()
}
