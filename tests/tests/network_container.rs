//! A real container (berth-runtime) joining the namespace set up by berth-network, the way the
//! daemon will do it: setup, then the OCI spec's network namespace `path` and the hosts,
//! resolv.conf and hostname files bind-mounted, run, delete, teardown.

mod network_env;

use std::path::Path;

use berth_network::{write_hostname, write_hosts, write_resolv_conf, NetworkMode};
use berth_tests::guard::ContainerGuard;
use berth_tests::Exit;
use network_env::*;
use oci_spec::runtime::LinuxNamespaceType;

#[test]
fn container_joins_the_network_namespace_and_reaches_a_peer() {
    let env = Env::new().with_default_network();
    let container = ContainerGuard::new();
    let id = container.id().to_string();
    env.track(&id);
    let bridge = NetworkMode::Bridge {
        network: None,
        ports: vec![],
    };

    // A peer serving HTTP on the same network.
    let server = env.id("srv");
    let srv = block_on(env.network.setup(&server, bridge.clone())).unwrap();
    let srv_ip = srv.ip.unwrap();
    let content = format!("peer of {id}\n");
    let _httpd = start_httpd(
        srv.netns_path.as_deref().unwrap(),
        &env.root().join("www"),
        &content,
    );

    let info = block_on(env.network.setup(&id, bridge)).unwrap();
    let ip = info.ip.unwrap();
    let netns = info.netns_path.clone().unwrap();
    let files = container.scratch();
    write_hosts(
        &files.join("hosts"),
        &id,
        Some(ip),
        &[("peer".into(), srv_ip)],
    )
    .unwrap();
    write_hostname(&files.join("hostname"), &id).unwrap();
    write_resolv_conf(
        &files.join("resolv.conf"),
        info.dns.as_ref(),
        Path::new("/etc/resolv.conf"),
        false,
    )
    .unwrap();

    let script = "busybox ip -o -4 addr show eth0 && cat /etc/hosts && cat /etc/hostname \
                  && busybox wget -qO- http://peer/";
    let mut spec = container
        .spec(&["/bin/busybox", "sh", "-c", script])
        .bind(&files.join("hosts"), "/etc/hosts", true)
        .bind(&files.join("hostname"), "/etc/hostname", true)
        .bind(&files.join("resolv.conf"), "/etc/resolv.conf", true);
    let linux = spec.spec_mut().linux_mut().as_mut().unwrap();
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    let net = namespaces
        .iter_mut()
        .find(|ns| ns.typ() == LinuxNamespaceType::Network)
        .expect("the default spec has a network namespace");
    net.set_path(Some(netns.clone()));
    linux.set_namespaces(Some(namespaces));

    let run = container.run(&spec.build());
    assert_eq!(run.exit, Exit::Code(0), "output: {}", run.output);
    assert!(
        run.output.contains(&format!("inet {ip}/24")),
        "{}",
        run.output
    );
    assert!(
        run.output.contains(&format!("{ip}\t{id}")),
        "{}",
        run.output
    );
    assert!(
        run.output.contains(&format!("{srv_ip}\tpeer")),
        "{}",
        run.output
    );
    assert!(run.output.ends_with(&content), "{}", run.output);
    assert!(
        container.leftovers().is_empty(),
        "{:?}",
        container.leftovers()
    );

    // After the container is deleted: teardown leaves nothing of it.
    block_on(env.network.teardown(&id)).unwrap();
    assert!(!netns.exists());
    assert_eq!(
        env.bridge_ports().lines().count(),
        1,
        "only the peer's veth"
    );
    assert!(env
        .iptables_lines()
        .iter()
        .all(|l| !l.contains(&format!("{ip}/32"))));
    assert_eq!(env.ipam_leases(), vec![srv_ip.to_string()]);
}
