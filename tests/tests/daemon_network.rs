//! Networking through berthd: the default bridge, published ports, host/none/container modes,
//! and a teardown that leaves nothing behind.

use std::time::Duration;

use berth_tests::daemon::{ok, text, DaemonGuard};
use berth_tests::free_port;

fn ip_of(d: &DaemonGuard, name: &str) -> String {
    let v: serde_json::Value = serde_json::from_slice(&d.run(&["inspect", name]).stdout).unwrap();
    v[0]["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn links() -> String {
    String::from_utf8_lossy(
        &std::process::Command::new("ip")
            .args(["-o", "link"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned()
}

#[test]
fn bridge_containers_reach_each_other_and_published_ports_the_host() {
    let d = DaemonGuard::start();
    let r = d.rootfs_arg();
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    ok(&d.run(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        &publish,
        "--rootfs",
        &r,
        "sh",
        "-c",
        "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 80 -h /www",
    ]));
    let ip = ip_of(&d, "web");
    assert!(
        ip.starts_with(&d.subnet[..d.subnet.rfind('.').unwrap()]),
        "{ip} not in {}",
        d.subnet
    );
    let url = format!("http://{ip}/");
    let mut got = String::new();
    for _ in 0..50 {
        let o = d.run(&[
            "run", "--rm", "--rootfs", &r, "timeout", "3", "wget", "-qO-", &url,
        ]);
        got = text(&o);
        if got.contains("hello-from-web") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        got.contains("hello-from-web"),
        "container to container: {got:?}"
    );
    // From the host through the published port.
    let mut body = String::new();
    for _ in 0..50 {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s.read_to_string(&mut body);
            if body.contains("hello-from-web") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        body.contains("hello-from-web"),
        "host to published port: {body:?}"
    );
    let ps = text(&d.run(&["ps"]));
    assert!(ps.contains(&publish), "{ps}");
    let nets = text(&d.run(&["network", "ls"]));
    assert!(nets.contains(&d.bridge), "{nets}");
    // Teardown: no veth left on the bridge, no netns pin, no iptables rule for the address.
    ok(&d.run(&["rm", "-f", "web"]));
    let veths: Vec<_> = links()
        .lines()
        .filter(|l| l.contains(&format!("master {}", d.bridge)))
        .map(str::to_string)
        .collect();
    assert!(veths.is_empty(), "{veths:?}");
    let pins: Vec<_> = std::fs::read_dir(d.state().join("netns"))
        .map(|e| e.flatten().collect())
        .unwrap_or_default();
    assert!(pins.is_empty(), "netns pins left: {pins:?}");
    let rules = String::from_utf8_lossy(
        &std::process::Command::new("iptables-save")
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(
        !rules.contains(&format!("{ip}/")),
        "iptables rules for {ip} left"
    );
    assert!(
        !rules.contains(&format!("--dport {port}")),
        "portmap rule left"
    );
}

#[test]
fn host_none_and_container_modes() {
    let d = DaemonGuard::start();
    let r = d.rootfs_arg();
    // The host's own interfaces (not the bridges and veths other tests come and go with).
    let host_dev = std::fs::read_to_string("/proc/net/dev").unwrap();
    let host_ifaces: Vec<String> = host_dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(|n| n.trim().to_string()))
        .filter(|n| {
            n != "lo" && !n.starts_with("veth") && !n.starts_with("bd") && !n.starts_with("bt")
        })
        .collect();
    assert!(!host_ifaces.is_empty());
    let o = d.run(&[
        "run",
        "--rm",
        "--network",
        "host",
        "--rootfs",
        &r,
        "cat",
        "/proc/net/dev",
    ]);
    for iface in &host_ifaces {
        assert!(
            text(&o).contains(&format!("{iface}:")),
            "host mode sees {iface}: {}",
            text(&o)
        );
    }
    let o = d.run(&["run", "--rm", "--network", "none", "--rootfs", &r, "sh", "-c", "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '; ip addr show lo 2>/dev/null | grep -c 'inet 127.0.0.1' || true"]);
    let out = text(&o);
    assert_eq!(out.lines().next(), Some("lo"), "{out}");
    assert_eq!(out.lines().count(), 2, "none has only lo: {out}");
    ok(&d.run(&[
        "run", "-d", "--name", "owner", "--rootfs", &r, "sleep", "30",
    ]));
    let owner_ip = ip_of(&d, "owner");
    let o = d.run(&[
        "run",
        "--rm",
        "--network",
        "container:owner",
        "--rootfs",
        &r,
        "sh",
        "-c",
        "ip -4 -o addr show eth0 2>/dev/null || cat /proc/net/fib_trie",
    ]);
    assert!(
        text(&o).contains(&owner_ip),
        "container mode shares {owner_ip}: {}",
        text(&o)
    );
}

/// Nothing of a bridge attachment is left: no veth on the bridge, no address allocated, no
/// iptables rule for the subnet, no pinned namespace.
fn assert_network_clean(d: &DaemonGuard) {
    let veths: Vec<_> = links()
        .lines()
        .filter(|l| l.contains(&format!("master {}", d.bridge)))
        .map(str::to_string)
        .collect();
    assert!(veths.is_empty(), "veths left: {veths:?}");
    let pins: Vec<_> = std::fs::read_dir(d.state().join("netns"))
        .map(|e| e.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(pins.is_empty(), "netns pins left: {pins:?}");
    let prefix = &d.subnet[..d.subnet.rfind('.').unwrap()];
    let ipam = d.root().join("network/ipam");
    let mut leases = Vec::new();
    for net in std::fs::read_dir(&ipam).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(net.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.starts_with(prefix) {
                leases.push(name);
            }
        }
    }
    assert!(leases.is_empty(), "addresses still allocated: {leases:?}");
    let rules = String::from_utf8_lossy(
        &std::process::Command::new("iptables-save")
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    let left: Vec<_> = rules
        .lines()
        .filter(|l| l.contains(&format!("{prefix}.")))
        .collect();
    assert!(left.is_empty(), "iptables rules left: {left:?}");
}

#[test]
fn create_delete_cycles_and_a_crash_leave_no_network_behind() {
    let mut d = DaemonGuard::start();
    let r = d.rootfs_arg();
    for i in 0..100 {
        let name = format!("cyc{i}");
        let publish = format!("127.0.0.1:{}:80", free_port());
        ok(&d.run(&[
            "create", "--name", &name, "-p", &publish, "--rootfs", &r, "true",
        ]));
        ok(&d.run(&["rm", "-f", &name]));
    }
    assert_network_clean(&d);
    // kill -9 in the middle of cycles, restart, remove what is left.
    let socket = d.socket.clone();
    let ctl = berth_tests::bin::bin("berthctl");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let r2 = r.clone();
    let worker = std::thread::spawn(move || {
        let mut i = 0;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            let name = format!("crash{i}");
            let _ = std::process::Command::new(&ctl)
                .env("BERTH_ADDRESS", &socket)
                .args([
                    "run", "-d", "--name", &name, "--rootfs", &r2, "sleep", "100",
                ])
                .output();
            let _ = std::process::Command::new(&ctl)
                .env("BERTH_ADDRESS", &socket)
                .args(["rm", "-f", &name])
                .output();
            i += 1;
        }
    });
    std::thread::sleep(Duration::from_millis(1500));
    d.stop(nix::sys::signal::Signal::SIGKILL);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    worker.join().unwrap();
    d.spawn();
    for id in text(&d.run(&["ps", "-aq"])).lines() {
        ok(&d.run(&["rm", "-f", id]));
    }
    assert_network_clean(&d);
}
