//! Container records at scale, through the gRPC API and berthctl: List of hundreds of
//! containers within the default message limit, Tasks.List reporting every task, and
//! ephemeral (`run --rm`) records swept at start when their task is gone.

use berth_proto::v1::containers_client::ContainersClient;
use berth_proto::v1::tasks_client::TasksClient;
use berth_proto::v1::{
    CreateContainerRequest, CreateTaskRequest, GetContainerRequest, ListContainersRequest,
    ListTasksRequest, RunOptions, TaskRequest, TaskStatus,
};
use berth_tests::daemon::{text, DaemonGuard};
use nix::sys::signal::Signal;
use tonic::transport::Channel;

async fn channel(d: &DaemonGuard) -> Channel {
    berth_proto::shim::unix_channel(d.socket.to_str().unwrap())
        .await
        .unwrap()
}

fn create_req(d: &DaemonGuard, id: &str, args: &[&str], ephemeral: bool) -> CreateContainerRequest {
    CreateContainerRequest {
        id: id.into(),
        options: Some(RunOptions {
            rootfs: d.rootfs_arg(),
            args: args.iter().map(|s| s.to_string()).collect(),
            network: "none".into(),
            ephemeral,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn listing_600_containers_works_with_the_default_message_limit() {
    let d = DaemonGuard::start();
    // A client with tonic's default 4 MiB decoding limit, as other clients have.
    let mut containers = ContainersClient::new(channel(&d).await);
    for i in 0..600 {
        containers
            .create(create_req(&d, &format!("many-{i:03}"), &["true"], false))
            .await
            .unwrap();
    }
    let listed = containers
        .list(ListContainersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert_eq!(listed.len(), 600);
    // List leaves the specs out; Get carries the spec.
    assert!(listed.iter().all(|c| c.spec_json.is_empty()));
    let one = containers
        .get(GetContainerRequest {
            id_or_name: "many-599".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let spec: serde_json::Value = serde_json::from_slice(&one.spec_json).unwrap();
    assert_eq!(spec["process"]["args"][0], "true");

    let out = d.run(&["ps", "-aq"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out).lines().count(), 600);
    let out = d.run(&["inspect", "many-000"]);
    assert!(out.status.success(), "{out:?}");
    assert!(text(&out).contains("\"Spec\""), "{}", text(&out));
}

#[tokio::test]
async fn tasks_list_reports_every_task() {
    let d = DaemonGuard::start();
    let ch = channel(&d).await;
    let mut containers = ContainersClient::new(ch.clone());
    let mut tasks = TasksClient::new(ch);
    let mut with_task = Vec::new();
    for i in 0..12 {
        let id = format!("task-{i:02}");
        containers
            .create(create_req(&d, &id, &["sleep", "60"], false))
            .await
            .unwrap();
        // Every third container has no task.
        if i % 3 == 2 {
            continue;
        }
        tasks
            .create(CreateTaskRequest {
                container_id: id.clone(),
            })
            .await
            .unwrap();
        tasks
            .start(TaskRequest {
                container_id: id.clone(),
                exec_id: String::new(),
            })
            .await
            .unwrap();
        with_task.push(id);
    }
    let listed = tasks
        .list(ListTasksRequest {})
        .await
        .unwrap()
        .into_inner()
        .tasks;
    let mut ids: Vec<String> = listed.iter().map(|t| t.container_id.clone()).collect();
    ids.sort();
    assert_eq!(ids, with_task);
    for t in &listed {
        assert_eq!(t.status, TaskStatus::Running as i32, "{t:?}");
        assert!(t.pid > 0, "{t:?}");
    }
    let out = d.run(&["ps", "-a", "--format", "json"]);
    assert!(out.status.success(), "{out:?}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&text(&out)).unwrap();
    assert_eq!(rows.len(), 12);
    let running = rows.iter().filter(|r| r["status"] == "running").count();
    assert_eq!(running, with_task.len(), "{rows:?}");
    let out = d.run(&["rm", "-f", "task-00", "task-01", "task-02", "task-03"]);
    assert!(out.status.success(), "{out:?}");
}

#[tokio::test]
async fn leftover_ephemeral_records_are_swept_at_start() {
    let mut d = DaemonGuard::start();
    {
        let mut containers = ContainersClient::new(channel(&d).await);
        // An --rm container whose client went away before it got a task, and a kept one.
        containers
            .create(create_req(&d, "leftover", &["true"], true))
            .await
            .unwrap();
        containers
            .create(create_req(&d, "kept", &["true"], false))
            .await
            .unwrap();
    }
    // An --rm container whose task is running survives the restart.
    let out = d.run(&[
        "run",
        "-d",
        "--rm",
        "--name",
        "live",
        "--network",
        "none",
        "--rootfs",
        &d.rootfs_arg(),
        "sleep",
        "60",
    ]);
    assert!(out.status.success(), "{out:?}");
    d.stop(Signal::SIGTERM);
    d.spawn();
    let mut containers = ContainersClient::new(channel(&d).await);
    let mut names: Vec<String> = containers
        .list(ListContainersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .containers
        .into_iter()
        .map(|c| if c.name.is_empty() { c.id } else { c.name })
        .collect();
    names.sort();
    assert_eq!(names, ["kept", "live"], "{}", d.log());
    assert!(d.log().contains("leftover --rm container"), "{}", d.log());
    let out = d.run(&["rm", "-f", "live"]);
    assert!(out.status.success(), "{out:?}");
}
