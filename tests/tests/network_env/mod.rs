//! Shared by the network test binaries: [`Env`], one test's network world (temp dirs, a
//! unique network name, bridge and 10.200.x.0/24 subnet, a [`Network`]) torn down on drop
//! (CNI DEL of its containers, pins, bridge) even when the test fails; process and fetch
//! helpers.

#![allow(dead_code)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use berth_network::{ensure_default_network, DefaultNetwork, Network, NetworkOptions};
use berth_tests::netslot::NetSlot;

pub const PLUGIN_DIR: &str = "/usr/lib/cni";

// ---------------------------------------------------------------------------------------------
// Guards

/// net.ipv4.ip_forward as found before the first live test; the bridge plugin (isGateway)
/// turns it on, the last test to finish puts it back.
static FORWARD: Mutex<(usize, Option<String>)> = Mutex::new((0, None));
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

struct ForwardGuard;

impl ForwardGuard {
    fn new() -> Self {
        let mut g = FORWARD.lock().unwrap_or_else(|e| e.into_inner());
        if g.0 == 0 {
            g.1 = std::fs::read_to_string(IP_FORWARD).ok();
        }
        g.0 += 1;
        ForwardGuard
    }
}

impl Drop for ForwardGuard {
    fn drop(&mut self) {
        let mut g = FORWARD.lock().unwrap_or_else(|e| e.into_inner());
        g.0 -= 1;
        if g.0 == 0 {
            if let Some(v) = g.1.take() {
                let _ = std::fs::write(IP_FORWARD, v.trim());
            }
        }
    }
}

/// One test's network world: temp dirs, a unique network/bridge/subnet, a [`Network`], and
/// the containers set up through it.
pub struct Env {
    pub network: Network,
    pub name: String,
    pub bridge: String,
    /// `10.200.N.` — the subnet's prefix, also used to grep iptables.
    pub prefix: String,
    pub ipam_dir: PathBuf,
    ids: Mutex<Vec<String>>,
    _forward: ForwardGuard,
    _slot: NetSlot,
    tmp: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        let forward = ForwardGuard::new();
        let slot = NetSlot::claim("env");
        let n = slot.n;
        let tmp = tempfile::Builder::new()
            .prefix("berth-net-")
            .tempdir()
            .unwrap();
        let root = tmp.path();
        let opts = NetworkOptions {
            conf_dir: root.join("net.d"),
            plugin_dirs: vec![PathBuf::from(PLUGIN_DIR)],
            state_dir: root.join("state"),
            netns_dir: root.join("netns"),
            ..NetworkOptions::default()
        };
        let env = Env {
            network: Network::new(opts),
            name: format!("bnt{n}"),
            bridge: format!("bttest{n}"),
            prefix: format!("10.200.{n}."),
            ipam_dir: root.join("ipam"),
            ids: Mutex::new(Vec::new()),
            _forward: forward,
            _slot: slot,
            tmp,
        };
        // No stale bridge of a crashed earlier run with the same pid may disturb the test.
        let _ = Command::new("ip")
            .args(["link", "del", &env.bridge])
            .stderr(Stdio::null())
            .status();
        env
    }

    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    pub fn conf_dir(&self) -> PathBuf {
        self.root().join("net.d")
    }

    /// Writes the default bridge network with this test's names (with the firewall plugin).
    pub fn with_default_network(self) -> Self {
        self.with_network(true)
    }

    /// Writes the default bridge network with this test's names.
    pub fn with_network(self, firewall: bool) -> Self {
        let def = DefaultNetwork {
            name: self.name.clone(),
            bridge: self.bridge.clone(),
            subnet: format!("{}0/24", self.prefix).parse().unwrap(),
            ipam_data_dir: Some(self.ipam_dir.clone()),
            firewall,
        };
        let written = ensure_default_network(&self.conf_dir(), &def).unwrap();
        assert_eq!(
            written,
            Some(self.conf_dir().join(format!("{}.conflist", self.name)))
        );
        self
    }

    /// Tears `id` down on drop too (for ids made elsewhere, such as a container guard's).
    pub fn track(&self, id: &str) {
        self.ids.lock().unwrap().push(id.to_string());
    }

    /// A fresh container id, torn down by the guard.
    pub fn id(&self, what: &str) -> String {
        let id = format!("{}-{what}", self.name);
        self.ids.lock().unwrap().push(id.clone());
        id
    }

    /// iptables rules (nat and filter) mentioning this test's network or subnet.
    pub fn iptables_lines(&self) -> Vec<String> {
        let out = Command::new("iptables-save").output().unwrap();
        assert!(out.status.success(), "iptables-save failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(&format!("\"{}\"", self.name)) || l.contains(&self.prefix))
            .map(str::to_string)
            .collect()
    }

    /// Interfaces enslaved to this test's bridge.
    pub fn bridge_ports(&self) -> String {
        let out = Command::new("ip")
            .args(["-o", "link", "show", "master", &self.bridge])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Addresses host-local still holds (files named after an IP in its data dir).
    pub fn ipam_leases(&self) -> Vec<String> {
        let dir = self.ipam_dir.join(&self.name);
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.parse::<IpAddr>().is_ok())
            .collect()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Dropped outside any runtime (tests drive their own), so one can be built here.
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            for id in self.ids.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                let _ = rt.block_on(self.network.teardown(id));
            }
        }
        if let Ok(pins) = std::fs::read_dir(self.root().join("netns")) {
            for pin in pins.filter_map(Result::ok) {
                let _ = berth_network::remove_pin(&pin.path());
            }
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
    }
}

/// A process (busybox httpd) killed and reaped on drop.
pub struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Runs `args` inside the network namespace pinned at `pin`.
pub fn in_netns(pin: &Path, args: &[&str]) -> std::process::Output {
    Command::new("nsenter")
        .arg(format!("--net={}", pin.display()))
        .args(args)
        .output()
        .unwrap()
}

/// Serves `content` on port 80 inside the namespace at `pin`.
pub fn start_httpd(pin: &Path, www: &Path, content: &str) -> ChildGuard {
    std::fs::create_dir_all(www).unwrap();
    std::fs::write(www.join("index.html"), content).unwrap();
    let child = Command::new("nsenter")
        .arg(format!("--net={}", pin.display()))
        .args(["busybox", "httpd", "-f", "-p", "80", "-h"])
        .arg(www)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    ChildGuard(child)
}

/// Fetches `url` (from the namespace at `pin`, or the host), retrying for a few seconds while
/// the server starts. (busybox wget's own -T crashes; coreutils timeout bounds each try.)
pub fn fetch(pin: Option<&Path>, url: &str) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut cmd = Command::new("timeout");
        cmd.arg("5");
        if let Some(pin) = pin {
            cmd.arg("nsenter").arg(format!("--net={}", pin.display()));
        }
        let out = cmd.args(["busybox", "wget", "-qO-", url]).output().unwrap();
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "wget {url}: {} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One fetch attempt (for asserting that something is no longer reachable).
pub fn fetch_once(pin: Option<&Path>, url: &str) -> bool {
    let mut cmd = Command::new("timeout");
    cmd.arg("3");
    if let Some(pin) = pin {
        cmd.arg("nsenter").arg(format!("--net={}", pin.display()));
    }
    let out = cmd.args(["busybox", "wget", "-qO-", url]).output().unwrap();
    out.status.success()
}

pub fn is_mounted(path: &Path) -> bool {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let p = path.display().to_string();
    mountinfo
        .lines()
        .any(|l| l.split_whitespace().nth(4) == Some(p.as_str()))
}

pub fn netns_inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().ino()
}
