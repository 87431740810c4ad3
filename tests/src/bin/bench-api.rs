//! bench-api: times the List call of berthd (berth.v1.Containers/List) and of containerd
//! (containerd.services.containers.v1.Containers/List) over their gRPC sockets, after filling
//! each with N container records. Used by bench/run; not a test.
//!
//!   bench-api BERTH_SOCKET CONTAINERD_SOCKET N RUNS ROOTFS
//!
//! berthd's records run from ROOTFS (no image); containerd's carry the very spec berthd
//! generated for the first one, so both stores hold the same bytes. Prints one line per
//! daemon: `berth created_ms=… p50_ms=… p99_ms=… bytes=…`.

use std::time::Instant;

use anyhow::Context;
use berth_proto::v1::containers_client::ContainersClient;
use berth_proto::v1::{
    CreateContainerRequest, GetContainerRequest, ListContainersRequest, RunOptions,
};
use tonic::codegen::http;
use tonic::transport::Channel;

/// containerd's messages, only the fields used (unknown ones are skipped on decode).
mod containerd {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Any {
        #[prost(string, tag = "1")]
        pub type_url: String,
        #[prost(bytes = "vec", tag = "2")]
        pub value: Vec<u8>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Runtime {
        #[prost(string, tag = "1")]
        pub name: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Container {
        #[prost(string, tag = "1")]
        pub id: String,
        #[prost(map = "string, string", tag = "2")]
        pub labels: std::collections::HashMap<String, String>,
        #[prost(string, tag = "3")]
        pub image: String,
        #[prost(message, optional, tag = "4")]
        pub runtime: Option<Runtime>,
        #[prost(message, optional, tag = "5")]
        pub spec: Option<Any>,
        #[prost(string, tag = "6")]
        pub snapshotter: String,
        #[prost(string, tag = "7")]
        pub snapshot_key: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CreateContainerRequest {
        #[prost(message, optional, tag = "1")]
        pub container: Option<Container>,
    }
    /// A reply whose content is not needed.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Ignored {}
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListContainersRequest {
        #[prost(string, repeated, tag = "1")]
        pub filters: Vec<String>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListContainersResponse {
        #[prost(message, repeated, tag = "1")]
        pub containers: Vec<Container>,
    }
}

const CONTAINERD_NS: &str = "containerd-namespace";

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [berth_sock, containerd_sock, n, runs, rootfs] = args.as_slice() else {
        anyhow::bail!("usage: bench-api BERTH_SOCKET CONTAINERD_SOCKET N RUNS ROOTFS");
    };
    let n: usize = n.parse().context("N")?;
    let runs: usize = runs.parse().context("RUNS")?;
    let connect = |s: String| async move {
        berth_proto::shim::unix_channel(&s)
            .await
            .with_context(|| format!("connecting to {s}"))
    };
    let (created, samples, bytes, spec) =
        berth(connect(berth_sock.clone()).await?, n, runs, rootfs).await?;
    report("berth", created, samples, bytes);
    let (created, samples, bytes) =
        containerd(connect(containerd_sock.clone()).await?, n, runs, spec).await?;
    report("containerd", created, samples, bytes);
    Ok(())
}

fn report(who: &str, created_ms: f64, mut samples: Vec<f64>, bytes: usize) {
    samples.sort_by(f64::total_cmp);
    let pct = |p: f64| samples[(((samples.len() - 1) as f64) * p).round() as usize];
    println!(
        "{who} created_ms={created_ms:.0} p50_ms={:.2} p99_ms={:.2} bytes={bytes}",
        pct(0.50),
        pct(0.99)
    );
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

async fn berth(
    channel: Channel,
    n: usize,
    runs: usize,
    rootfs: &str,
) -> anyhow::Result<(f64, Vec<f64>, usize, Vec<u8>)> {
    let mut client = ContainersClient::new(channel).max_decoding_message_size(usize::MAX);
    let t = Instant::now();
    let have = client
        .list(ListContainersRequest::default())
        .await?
        .into_inner()
        .containers
        .len();
    for i in have..n {
        client
            .create(CreateContainerRequest {
                id: format!("list-{i:05}"),
                options: Some(RunOptions {
                    rootfs: rootfs.into(),
                    args: vec!["sleep".into(), "1000".into()],
                    network: "none".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .with_context(|| format!("creating container {i}"))?;
    }
    let created_ms = ms_since(t);
    let spec = client
        .get(GetContainerRequest {
            id_or_name: "list-00000".into(),
        })
        .await?
        .into_inner()
        .spec_json;
    let mut samples = Vec::with_capacity(runs);
    let mut bytes = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let r = client
            .list(ListContainersRequest::default())
            .await?
            .into_inner();
        samples.push(ms_since(t));
        anyhow::ensure!(r.containers.len() >= n, "listed {}", r.containers.len());
        bytes = prost::Message::encoded_len(&r);
    }
    Ok((created_ms, samples, bytes, spec))
}

fn in_ns<T>(msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert(
        CONTAINERD_NS,
        tonic::metadata::MetadataValue::from_static("bench"),
    );
    r
}

async fn containerd(
    channel: Channel,
    n: usize,
    runs: usize,
    spec: Vec<u8>,
) -> anyhow::Result<(f64, Vec<f64>, usize)> {
    let mut grpc = tonic::client::Grpc::new(channel).max_decoding_message_size(usize::MAX);
    let t = Instant::now();
    for i in 0..n {
        let req = containerd::CreateContainerRequest {
            container: Some(containerd::Container {
                id: format!("list-{i:05}"),
                image: "docker.io/library/busybox:latest".into(),
                runtime: Some(containerd::Runtime {
                    name: "io.containerd.runc.v2".into(),
                }),
                spec: Some(containerd::Any {
                    type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec".into(),
                    value: spec.clone(),
                }),
                ..Default::default()
            }),
        };
        grpc.ready().await?;
        let path = http::uri::PathAndQuery::from_static(
            "/containerd.services.containers.v1.Containers/Create",
        );
        let codec = tonic_prost::ProstCodec::<_, containerd::Ignored>::default();
        grpc.unary(in_ns(req), path, codec)
            .await
            .with_context(|| format!("creating container {i} in containerd"))?;
    }
    let created_ms = ms_since(t);
    let mut samples = Vec::with_capacity(runs);
    let mut bytes = 0;
    for _ in 0..runs {
        grpc.ready().await?;
        let path = http::uri::PathAndQuery::from_static(
            "/containerd.services.containers.v1.Containers/List",
        );
        let codec = tonic_prost::ProstCodec::<
            containerd::ListContainersRequest,
            containerd::ListContainersResponse,
        >::default();
        let t = Instant::now();
        let r = grpc
            .unary(
                in_ns(containerd::ListContainersRequest::default()),
                path,
                codec,
            )
            .await?
            .into_inner();
        samples.push(ms_since(t));
        anyhow::ensure!(r.containers.len() >= n, "listed {}", r.containers.len());
        bytes = prost::Message::encoded_len(&r);
    }
    Ok((created_ms, samples, bytes))
}
