//! A whole CRI pod lifecycle with berthd killed (-9) and restarted in the middle: pods and
//! containers are listed again with their states, the pod keeps its IP, and everything after
//! (exec, new containers, stop, removal) works.

use std::time::{Duration, Instant};

use berth_tests::cri::{
    self, api, container_config, create, import_busybox, pod_config, pod_status, run_pod, start,
};
use berth_tests::daemon::DaemonGuard;

#[tokio::test]
async fn pod_lifecycle_across_kill_9_of_berthd() {
    let mut d = DaemonGuard::start();
    let image = import_busybox(&d);
    let mut c = cri::connect(&d.socket).await;
    let logs = d.dir.path().join("pod-logs");
    let pod = run_pod(&mut c, pod_config("survivor", &logs)).await;
    let ip = pod_status(&mut c, &pod).await.network.unwrap().ip;
    assert!(!ip.is_empty());
    let sleeper = create(
        &mut c,
        &pod,
        container_config("sleeper", &image, &["sleep", "3600"]),
    )
    .await;
    start(&mut c, &sleeper).await;
    let done = create(
        &mut c,
        &pod,
        container_config("done", &image, &["sh", "-c", "exit 7"]),
    )
    .await;
    start(&mut c, &done).await;
    let waiting = create(
        &mut c,
        &pod,
        container_config("waiting", &image, &["sleep", "3600"]),
    )
    .await;
    // `done` exits while the daemon is away.
    d.stop(nix::sys::signal::Signal::SIGKILL);
    std::thread::sleep(Duration::from_millis(500));
    d.spawn();
    let mut c = cri::connect(&d.socket).await;

    let ps = pod_status(&mut c, &pod).await;
    assert_eq!(ps.state, api::PodSandboxState::SandboxReady as i32);
    assert_eq!(ps.network.unwrap().ip, ip, "the pod kept its IP");
    let pods = c
        .runtime
        .list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(pods.len(), 1);
    let listed = c
        .runtime
        .list_containers(api::ListContainersRequest { filter: None })
        .await
        .unwrap()
        .into_inner()
        .containers;
    let by_id = |id: &str| listed.iter().find(|x| x.id == id).map(|x| x.state);
    assert_eq!(
        by_id(&sleeper),
        Some(api::ContainerState::ContainerRunning as i32)
    );
    assert_eq!(
        by_id(&waiting),
        Some(api::ContainerState::ContainerCreated as i32)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while cri::status(&mut c, &done).await.state != api::ContainerState::ContainerExited as i32 {
        assert!(Instant::now() < deadline, "done never exited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = cri::status(&mut c, &done).await;
    assert_eq!(
        (s.exit_code, s.reason.as_str()),
        (7, "Error"),
        "{s:?}\n{}",
        d.log()
    );

    // Life goes on: exec, start the created container, stop, remove.
    let r = c
        .runtime
        .exec_sync(api::ExecSyncRequest {
            container_id: sleeper.clone(),
            cmd: vec!["hostname".into()],
            timeout: 10,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(String::from_utf8_lossy(&r.stdout), "survivor\n");
    start(&mut c, &waiting).await;
    assert_eq!(
        cri::status(&mut c, &waiting).await.state,
        api::ContainerState::ContainerRunning as i32
    );
    c.runtime
        .stop_pod_sandbox(api::StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .unwrap();
    for id in [&sleeper, &waiting] {
        assert_eq!(
            cri::status(&mut c, id).await.state,
            api::ContainerState::ContainerExited as i32
        );
    }
    c.runtime
        .remove_pod_sandbox(api::RemovePodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .unwrap();
    let left = c
        .runtime
        .list_containers(api::ListContainersRequest { filter: None })
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert!(left.is_empty(), "{left:?}");
}
