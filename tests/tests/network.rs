//! berth-network against the real CNI plugins (/usr/lib/cni), real network namespaces and
//! iptables, as root. Every test has its own conf/state/pin/IPAM dirs, network name, bridge
//! and 10.200.x.0/24 subnet, and its [`Env`] guard tears everything down on drop (CNI DEL,
//! pins, bridge), even when the test fails.

mod network_env;

use std::path::{Path, PathBuf};

use berth_network::cni::{Attachment, Cni, CniError, NetworkConfigList};
use berth_network::{parse_publish, NetNs, NetNsError, NetworkError, NetworkMode};
use berth_tests::free_port;
use network_env::*;

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn netns_is_created_pinned_and_removed() {
    let env = Env::new();
    let dir = env.root().join("pins");
    let ns = NetNs::create(&dir, "one").unwrap();
    assert_eq!(ns.path(), dir.join("one"));
    assert!(is_mounted(ns.path()), "pin is not a mount");
    assert_ne!(
        netns_inode(ns.path()),
        netns_inode(Path::new("/proc/self/ns/net")),
        "the pin must be a new namespace"
    );
    let links = in_netns(ns.path(), &["ip", "-o", "link"]);
    let links = String::from_utf8_lossy(&links.stdout);
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains("lo:"), "{links}");
    assert!(matches!(
        NetNs::create(&dir, "one"),
        Err(NetNsError::AlreadyExists(_))
    ));
    assert!(matches!(
        NetNs::create(&dir, "../x"),
        Err(NetNsError::InvalidName(_))
    ));
    let path = ns.path().to_path_buf();
    ns.remove().unwrap();
    assert!(!path.exists());
    assert!(!is_mounted(&path));
    berth_network::remove_pin(&path).unwrap();
}

#[test]
fn bridge_containers_reach_each_other_and_published_port() {
    let env = Env::new().with_default_network();
    let (port, any_port) = (free_port(), free_port());
    let publish = parse_publish(&format!("127.0.0.1:{port}:80")).unwrap();
    let publish_any = parse_publish(&format!("{any_port}:80/tcp")).unwrap();
    let (a, b) = (env.id("a"), env.id("b"));
    let mode_a = NetworkMode::Bridge {
        network: None,
        ports: vec![publish, publish_any],
    };
    let mode_b = NetworkMode::Bridge {
        network: Some(env.name.clone()),
        ports: vec![],
    };
    let info_a = block_on(env.network.setup(&a, mode_a)).unwrap();
    let info_b = block_on(env.network.setup(&b, mode_b)).unwrap();

    let ip_a = info_a.ip.unwrap();
    let ip_b = info_b.ip.unwrap();
    assert_ne!(ip_a, ip_b);
    assert!(ip_a.to_string().starts_with(&env.prefix), "{ip_a}");
    assert_eq!(info_a.prefix_len, Some(24));
    assert_eq!(
        info_a.gateway.unwrap().to_string(),
        format!("{}1", env.prefix)
    );
    assert_eq!(info_a.network.as_deref(), Some(env.name.as_str()));
    assert_eq!(info_a.ports, vec![publish, publish_any]);
    let pin_a = info_a.netns_path.clone().unwrap();
    let pin_b = info_b.netns_path.clone().unwrap();
    let addrs = in_netns(&pin_a, &["ip", "-o", "addr", "show", "eth0"]);
    assert!(
        String::from_utf8_lossy(&addrs.stdout).contains(&format!("{ip_a}/24")),
        "eth0 lacks {ip_a}"
    );
    assert_eq!(env.network.info(&a).unwrap(), Some(info_a.clone()));
    assert_eq!(
        env.network.list_attached().unwrap(),
        vec![a.clone(), b.clone()]
    );
    let nets = env.network.list_networks().unwrap();
    assert_eq!(nets.len(), 1);
    assert_eq!(nets[0].bridge.as_deref(), Some(env.bridge.as_str()));
    assert_eq!(nets[0].subnets, vec![format!("{}0/24", env.prefix)]);
    // CHECK of A (with a port mapping) is not asserted: portmap 1.1.1 (Debian 12) fails CHECK
    // on IPv4-only containers (containernetworking/plugins#819).
    block_on(env.network.check(&b)).unwrap();
    assert!(matches!(
        block_on(env.network.setup(&a, NetworkMode::None)),
        Err(NetworkError::AlreadySetUp(_))
    ));

    // Container to container over the bridge, and host port to container port.
    let content = format!("hello from {a}\n");
    let httpd = start_httpd(&pin_a, &env.root().join("www"), &content);
    assert_eq!(
        fetch(Some(&pin_b), &format!("http://{ip_a}/")).unwrap(),
        content
    );
    assert_eq!(
        fetch(None, &format!("http://127.0.0.1:{port}/")).unwrap(),
        content
    );
    // A mapping without host IP answers on every local address, loopback included.
    assert_eq!(
        fetch(None, &format!("http://127.0.0.1:{any_port}/")).unwrap(),
        content
    );
    drop(httpd);

    assert!(
        !env.iptables_lines().is_empty(),
        "no rules tagged with the network"
    );
    assert_eq!(env.ipam_leases().len(), 2);
    assert_eq!(
        env.bridge_ports().lines().count(),
        2,
        "{}",
        env.bridge_ports()
    );

    block_on(env.network.teardown(&a)).unwrap();
    block_on(env.network.teardown(&b)).unwrap();
    block_on(env.network.teardown(&a)).unwrap(); // idempotent

    assert!(!pin_a.exists() && !pin_b.exists());
    assert!(!is_mounted(&pin_a) && !is_mounted(&pin_b));
    assert_eq!(env.bridge_ports(), "", "veths left on the bridge");
    assert_eq!(env.iptables_lines(), Vec::<String>::new());
    assert_eq!(env.ipam_leases(), Vec::<String>::new());
    assert_eq!(env.network.info(&a).unwrap(), None);
    assert!(env.network.list_attached().unwrap().is_empty());
    let results = std::fs::read_dir(env.root().join("state/results")).unwrap();
    assert_eq!(results.count(), 0, "CNI cache entries left");
    assert!(!fetch_once(None, &format!("http://127.0.0.1:{port}/")));
    assert!(!fetch_once(None, &format!("http://127.0.0.1:{any_port}/")));
}

#[test]
fn none_host_and_container_modes() {
    let env = Env::new();
    let (none, host, joiner) = (env.id("none"), env.id("host"), env.id("join"));

    let info = block_on(env.network.setup(&none, NetworkMode::None)).unwrap();
    let pin = info.netns_path.clone().unwrap();
    assert_eq!(info.ip, None);
    let links = in_netns(&pin, &["ip", "-o", "link"]);
    let links = String::from_utf8_lossy(&links.stdout).to_string();
    assert_eq!(links.lines().count(), 1, "only lo expected: {links}");
    assert!(links.contains("lo:") && links.contains("UP"), "{links}");
    let addrs = in_netns(&pin, &["ip", "-o", "addr"]);
    assert!(String::from_utf8_lossy(&addrs.stdout).contains("127.0.0.1/8"));

    let info = block_on(env.network.setup(&host, NetworkMode::Host)).unwrap();
    assert_eq!(info.netns_path, None);
    assert!(env.network.info(&host).unwrap().is_some());

    let info = block_on(
        env.network
            .setup(&joiner, NetworkMode::Container(pin.clone())),
    )
    .unwrap();
    assert_eq!(info.netns_path.as_deref(), Some(pin.as_path()));
    let missing = env.root().join("no-such-netns");
    let err = block_on(env.network.setup("other", NetworkMode::Container(missing)));
    assert!(matches!(err, Err(NetworkError::NetNsMissing(_))));

    // Tearing down the joiner leaves the owner's namespace alone.
    block_on(env.network.teardown(&joiner)).unwrap();
    assert!(is_mounted(&pin));
    block_on(env.network.teardown(&host)).unwrap();
    block_on(env.network.teardown(&none)).unwrap();
    assert!(!pin.exists() && !is_mounted(&pin));
    assert!(env.network.list_attached().unwrap().is_empty());
    // Bridge mode with no network configured fails before creating anything.
    let err = block_on(env.network.setup(
        &env.id("nonet"),
        NetworkMode::Bridge {
            network: None,
            ports: vec![],
        },
    ));
    assert!(matches!(err, Err(NetworkError::NoNetwork(_))), "{err:?}");
    assert!(env.network.list_attached().unwrap().is_empty());
}

#[test]
fn failed_setup_is_rolled_back() {
    let env = Env::new().with_default_network();
    // The same network, with a last plugin that does not exist: bridge and portmap succeed,
    // then ADD fails, and setup must undo them.
    let file = env.conf_dir().join(format!("{}.conflist", env.name));
    let mut list: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    list["plugins"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "berth-no-such-plugin"}));
    std::fs::write(&file, list.to_string()).unwrap();

    let id = env.id("fail");
    let port = free_port();
    let mode = NetworkMode::Bridge {
        network: None,
        ports: vec![parse_publish(&format!("127.0.0.1:{port}:80")).unwrap()],
    };
    let err = block_on(env.network.setup(&id, mode)).unwrap_err();
    assert!(
        matches!(
            &err,
            NetworkError::Cni(CniError::PluginNotFound { plugin, .. }) if plugin == "berth-no-such-plugin"
        ),
        "{err}"
    );
    assert!(!env.root().join("netns").join(&id).exists());
    assert_eq!(env.bridge_ports(), "");
    assert_eq!(env.iptables_lines(), Vec::<String>::new());
    assert_eq!(env.ipam_leases(), Vec::<String>::new());
    assert!(env.network.list_attached().unwrap().is_empty());
}

#[test]
fn teardown_without_cache_uses_the_config() {
    // As after a crash that lost the result cache: DEL runs from the conflist alone, without
    // prevResult. The firewall plugin cannot undo its rules without prevResult (it learns the
    // addresses only from there), so this network has none.
    let env = Env::new().with_network(false);
    let id = env.id("nocache");
    let info = block_on(env.network.setup(
        &id,
        NetworkMode::Bridge {
            network: None,
            ports: vec![],
        },
    ))
    .unwrap();
    assert!(info.ip.is_some());
    assert!(
        !env.iptables_lines().is_empty(),
        "no masquerade rules to remove"
    );
    assert_eq!(env.ipam_leases().len(), 1);
    std::fs::remove_dir_all(env.root().join("state/results")).unwrap();
    block_on(env.network.teardown(&id)).unwrap();
    assert_eq!(env.bridge_ports(), "");
    assert_eq!(env.iptables_lines(), Vec::<String>::new());
    assert_eq!(env.ipam_leases(), Vec::<String>::new());
    assert!(!info.netns_path.unwrap().exists());
}

#[test]
fn cni_0_4_0_single_conf_add_check_del_and_plugin_errors() {
    let env = Env::new();
    let conf = serde_json::json!({
        "cniVersion": "0.4.0",
        "name": env.name,
        "type": "bridge",
        "bridge": env.bridge,
        "isGateway": true,
        "ipam": {
            "type": "host-local",
            "subnet": format!("{}0/24", env.prefix),
            "dataDir": env.ipam_dir,
        },
    });
    std::fs::create_dir_all(env.conf_dir()).unwrap();
    std::fs::write(env.conf_dir().join("10-single.conf"), conf.to_string()).unwrap();
    let net = berth_network::cni::find_network(&env.conf_dir(), &env.name).unwrap();
    assert_eq!(net.plugin_types(), ["bridge"]);

    let cni = Cni::new(vec![PathBuf::from(PLUGIN_DIR)], env.root().join("cache"));
    let pins = env.root().join("pins");
    let ns = NetNs::create(&pins, "single").unwrap();
    let id = env.id("single");
    let att = Attachment::new(&id, ns.path(), "eth0");
    let result = block_on(cni.add(&net, &att)).unwrap();
    assert_eq!(result.cni_version, "0.4.0");
    let ip = result.container_ip().unwrap();
    assert!(ip.address.addr.to_string().starts_with(&env.prefix));
    let sandbox = result.interfaces[ip.interface.unwrap()].clone();
    assert_eq!(sandbox.name, "eth0");
    assert_eq!(
        sandbox.sandbox.as_deref(),
        Some(ns.path().to_str().unwrap())
    );
    assert!(cni.cached(&env.name, &id, "eth0").unwrap().is_some());
    block_on(cni.check(&net, &att)).unwrap();

    block_on(cni.del(&net, &att)).unwrap();
    assert!(cni.cached(&env.name, &id, "eth0").unwrap().is_none());
    assert!(!block_on(cni.del_cached(&env.name, &id, "eth0")).unwrap());
    // Already deleted: DEL again (no cache, no prevResult) is fine; so is a vanished netns.
    block_on(cni.del(&net, &att)).unwrap();
    let pin = ns.path().to_path_buf();
    ns.remove().unwrap();
    block_on(cni.del(&net, &att)).unwrap();
    assert!(matches!(
        block_on(cni.check(&net, &att)),
        Err(CniError::NotAttached { .. })
    ));
    assert_eq!(env.ipam_leases(), Vec::<String>::new());
    assert_eq!(env.bridge_ports(), "");

    // A plugin's JSON error becomes a clear error with its code and message.
    let bad = NetworkConfigList::from_list_json(
        serde_json::json!({
            "cniVersion": "1.0.0",
            "name": env.name,
            "plugins": [{"type": "bridge", "bridge": env.bridge,
                         "ipam": {"type": "host-local", "subnet": "not-a-subnet",
                                  "dataDir": env.ipam_dir}}],
        })
        .to_string()
        .as_bytes(),
        None,
    )
    .unwrap();
    let ns = NetNs::create(&pins, "bad").unwrap();
    let att = Attachment::new(&id, ns.path(), "eth0");
    let err = block_on(cni.add(&bad, &att)).unwrap_err();
    match &err {
        CniError::Plugin {
            plugin, code, msg, ..
        } => {
            assert_eq!(plugin, "bridge");
            assert_ne!(*code, 0, "{err}");
            assert!(!msg.is_empty());
        }
        other => panic!("expected a plugin error, got {other}"),
    }
    assert!(err.to_string().contains("ADD"), "{err}");
    block_on(cni.del(&bad, &att)).ok();
    ns.remove().unwrap();
    assert!(!pin.exists());
}
