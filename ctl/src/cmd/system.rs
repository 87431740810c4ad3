//! events, namespaces, version, info.

use berth_proto::v1::{DeleteNamespaceRequest, Empty, Namespace, SubscribeRequest};
use serde_json::json;

use crate::client::Clients;
use crate::output::{self, Format};

#[derive(clap::Args, Clone, Copy)]
pub struct FormatArg {
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(clap::Args)]
pub struct EventsArgs {
    /// type=tasks, container=<id>, topic=/tasks/exit, ...
    #[arg(short = 'f', long = "filter")]
    filters: Vec<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(clap::Subcommand)]
pub enum NamespacesCmd {
    /// List namespaces.
    Ls,
    /// Create a namespace.
    Create { name: String },
    /// Remove an empty namespace.
    Rm { name: String },
}

pub async fn events(c: Clients, a: EventsArgs) -> anyhow::Result<i32> {
    let mut stream = c
        .events
        .clone()
        .subscribe(SubscribeRequest { filters: a.filters })
        .await?
        .into_inner();
    while let Some(e) = stream.message().await? {
        match a.format {
            Format::Json => println!(
                "{}",
                json!({"timestamp_ns": e.timestamp_ns, "namespace": e.namespace, "topic": e.topic,
                    "id": e.id, "attributes": e.attributes})
            ),
            Format::Table => {
                let t =
                    std::time::UNIX_EPOCH + std::time::Duration::from_nanos(e.timestamp_ns as u64);
                let mut attrs: Vec<_> = e
                    .attributes
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                attrs.sort();
                println!(
                    "{} {} {} {} {}",
                    humantime::format_rfc3339_millis(t),
                    e.namespace,
                    e.topic,
                    e.id,
                    attrs.join(",")
                );
            }
        }
    }
    Ok(0)
}

pub async fn namespaces(c: Clients, a: NamespacesCmd) -> anyhow::Result<i32> {
    let mut client = c.namespaces.clone();
    match a {
        NamespacesCmd::Ls => {
            let list = client.list(Empty {}).await?.into_inner().namespaces;
            let rows: Vec<_> = list.iter().map(|n| vec![n.name.clone()]).collect();
            output::table(&["NAME"], &rows);
        }
        NamespacesCmd::Create { name } => {
            client
                .create(Namespace {
                    name: name.clone(),
                    labels: Default::default(),
                })
                .await?;
            println!("{name}");
        }
        NamespacesCmd::Rm { name } => {
            client
                .delete(DeleteNamespaceRequest { name: name.clone() })
                .await?;
            println!("{name}");
        }
    }
    Ok(0)
}

pub async fn version(c: Clients, a: FormatArg) -> anyhow::Result<i32> {
    let v = c.version.clone().get(Empty {}).await?.into_inner();
    match a.format {
        Format::Json => output::json(
            &json!({"client": env!("CARGO_PKG_VERSION"), "server": v.version,
            "revision": v.revision, "shim_protocol": v.shim_protocol}),
        )?,
        Format::Table => {
            println!("Client: {}", env!("CARGO_PKG_VERSION"));
            println!(
                "Server: {} ({}), shim protocol {}",
                v.version, v.revision, v.shim_protocol
            );
        }
    }
    Ok(0)
}

pub async fn info(c: Clients, a: FormatArg) -> anyhow::Result<i32> {
    let i = c.version.clone().info(Empty {}).await?.into_inner();
    match a.format {
        Format::Json => output::json(
            &json!({"root": i.root, "state": i.state, "cgroup_version": i.cgroup_version,
            "containers": i.containers, "images": i.images, "kernel": i.kernel}),
        )?,
        Format::Table => {
            println!("Root:           {}", i.root);
            println!("State:          {}", i.state);
            println!("Cgroup version: {}", i.cgroup_version);
            println!("Containers:     {}", i.containers);
            println!("Images:         {}", i.images);
            println!("Kernel:         {}", i.kernel);
        }
    }
    Ok(0)
}

#[derive(clap::Subcommand)]
pub enum NetworkCmd {
    /// List networks.
    Ls {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

pub async fn network(c: Clients, a: NetworkCmd) -> anyhow::Result<i32> {
    let NetworkCmd::Ls { format } = a;
    let list = c
        .networks
        .clone()
        .list(Empty {})
        .await?
        .into_inner()
        .networks;
    match format {
        Format::Json => output::json(
            &list
                .iter()
                .map(|n| {
                    json!({"name": n.name, "bridge": n.bridge, "subnets": n.subnets,
                    "plugins": n.plugins, "cni_version": n.cni_version, "file": n.file})
                })
                .collect::<Vec<_>>(),
        )?,
        Format::Table => {
            let rows: Vec<_> = list
                .iter()
                .map(|n| {
                    vec![
                        n.name.clone(),
                        n.bridge.clone(),
                        n.subnets.join(","),
                        n.plugins.join(","),
                    ]
                })
                .collect();
            output::table(&["NAME", "BRIDGE", "SUBNETS", "PLUGINS"], &rows);
        }
    }
    Ok(0)
}
