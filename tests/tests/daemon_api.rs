//! berthd through its gRPC API directly (no berthctl): a container run end to end, and the
//! status codes of the error cases.

use berth_proto::v1::containers_client::ContainersClient;
use berth_proto::v1::namespaces_client::NamespacesClient;
use berth_proto::v1::tasks_client::TasksClient;
use berth_proto::v1::{
    AttachInput, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteNamespaceRequest, GetContainerRequest, Namespace, RunOptions, TaskRequest,
};
use berth_tests::daemon::DaemonGuard;
use tonic::transport::Channel;
use tonic::{Code, Request};

fn in_ns<T>(ns: &str, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("berth-namespace", ns.parse().unwrap());
    r
}

async fn channel(d: &DaemonGuard) -> Channel {
    berth_proto::shim::unix_channel(d.socket.to_str().unwrap())
        .await
        .unwrap()
}

fn create_req(d: &DaemonGuard, id: &str, name: &str, args: &[&str]) -> CreateContainerRequest {
    CreateContainerRequest {
        id: id.into(),
        name: name.into(),
        image: String::new(),
        labels: Default::default(),
        options: Some(RunOptions {
            rootfs: d.rootfs_arg(),
            args: args.iter().map(|s| s.to_string()).collect(),
            network: "none".into(),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn a_container_runs_through_the_api() {
    let d = DaemonGuard::start();
    let ch = channel(&d).await;
    let mut containers = ContainersClient::new(ch.clone());
    let mut tasks = TasksClient::new(ch);
    let c = containers
        .create(create_req(
            &d,
            "apirun",
            "",
            &["sh", "-c", "echo api-out; exit 4"],
        ))
        .await
        .unwrap()
        .into_inner();
    tasks
        .create(CreateTaskRequest {
            container_id: c.id.clone(),
        })
        .await
        .unwrap();
    let first = AttachInput {
        container_id: c.id.clone(),
        ..Default::default()
    };
    let mut out = tasks
        .attach(tokio_stream::iter(vec![first]))
        .await
        .unwrap()
        .into_inner();
    let req = TaskRequest {
        container_id: c.id.clone(),
        exec_id: String::new(),
    };
    let mut waiter = tasks.clone();
    let wait = tokio::spawn({
        let req = req.clone();
        async move { waiter.wait(req).await }
    });
    tasks.start(req).await.unwrap();
    let mut text = Vec::new();
    while let Some(chunk) = out.message().await.unwrap() {
        text.extend(chunk.data);
    }
    assert_eq!(String::from_utf8_lossy(&text), "api-out\n");
    assert_eq!(wait.await.unwrap().unwrap().into_inner().code, 4);
    containers
        .delete(DeleteContainerRequest {
            id_or_name: c.id,
            force: false,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn error_cases_have_the_right_status_codes() {
    let d = DaemonGuard::start();
    let ch = channel(&d).await;
    let mut containers = ContainersClient::new(ch.clone());
    let mut tasks = TasksClient::new(ch.clone());
    let mut namespaces = NamespacesClient::new(ch);
    let get = |id: &str| GetContainerRequest {
        id_or_name: id.into(),
    };

    assert_eq!(
        containers.get(get("missing")).await.unwrap_err().code(),
        Code::NotFound
    );
    // An empty id means "generate one"; these are refused.
    for bad in ["a/b", "..", "ctl\u{7}char", &"x".repeat(77)] {
        let e = containers
            .create(create_req(&d, bad, "", &["true"]))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{bad:?}: {e:?}");
    }
    containers
        .create(create_req(&d, "one", "same", &["sleep", "30"]))
        .await
        .unwrap();
    let e = containers
        .create(create_req(&d, "two", "same", &["true"]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    let e = containers
        .create(create_req(&d, "one", "", &["true"]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    tasks
        .create(CreateTaskRequest {
            container_id: "one".into(),
        })
        .await
        .unwrap();
    let req = TaskRequest {
        container_id: "one".into(),
        exec_id: String::new(),
    };
    tasks.start(req.clone()).await.unwrap();
    let e = tasks.start(req.clone()).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("running"), "{}", e.message());
    let e = containers
        .delete(DeleteContainerRequest {
            id_or_name: "one".into(),
            force: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    // Namespaces: unknown → NotFound; a non-empty one cannot be deleted.
    let e = containers.get(in_ns("nope", get("one"))).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    namespaces
        .create(Namespace {
            name: "other".into(),
            labels: Default::default(),
        })
        .await
        .unwrap();
    containers
        .create(in_ns("other", create_req(&d, "inother", "", &["true"])))
        .await
        .unwrap();
    assert_eq!(
        containers.get(get("inother")).await.unwrap_err().code(),
        Code::NotFound
    );
    let e = namespaces
        .delete(DeleteNamespaceRequest {
            name: "other".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    containers
        .delete(in_ns(
            "other",
            DeleteContainerRequest {
                id_or_name: "inother".into(),
                force: true,
            },
        ))
        .await
        .unwrap();
    namespaces
        .delete(DeleteNamespaceRequest {
            name: "other".into(),
        })
        .await
        .unwrap();
    containers
        .delete(DeleteContainerRequest {
            id_or_name: "one".into(),
            force: true,
        })
        .await
        .unwrap();
}
