//! A berthd under test: its own root, state dir, socket and cgroup root; berthctl pointed at
//! it; and a guard that removes every container, stops the daemon and checks nothing is left.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::guard::unique_id;
use crate::netslot::NetSlot;
use crate::{bin, reaper, rootfs};

pub struct DaemonGuard {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    /// The daemon's cgroup root, e.g. /berth-test-d<pid>-<n>.
    pub cgroup_root: String,
    /// A busybox rootfs for `--rootfs` runs.
    pub rootfs: PathBuf,
    /// The default network's bridge and subnet, unique to this daemon.
    pub bridge: String,
    pub subnet: String,
    /// Keeps `bridge` and `subnet` ours while the daemon lives.
    _slot: NetSlot,
    /// More berthd flags.
    pub extra: Vec<String>,
    /// More environment variables for berthd.
    pub env: Vec<(String, String)>,
    child: Option<Child>,
}

impl DaemonGuard {
    pub fn start() -> DaemonGuard {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> DaemonGuard {
        Self::start_with_env(extra, &[])
    }

    /// With more flags and environment variables.
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> DaemonGuard {
        reaper::init();
        let dir = tempfile::Builder::new()
            .prefix("berthd-test-")
            .tempdir()
            .expect("temp dir");
        let rootfs_dir = dir.path().join("rootfs");
        rootfs::populate(&rootfs_dir).expect("rootfs");
        let uid = unique_id();
        let slot = NetSlot::claim("daemon");
        let mut d = DaemonGuard {
            socket: dir.path().join("berth.sock"),
            cgroup_root: format!("/berth-test-{uid}"),
            bridge: format!("bdtest{}", slot.n),
            subnet: format!("10.201.{}.0/24", slot.n),
            _slot: slot,
            rootfs: rootfs_dir,
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
        };
        d.spawn();
        d
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Starts berthd (again) on the same dirs and waits for its socket.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("berthd.log"))
            .expect("log file");
        let child = Command::new(bin::bin("berthd"))
            .arg("--root")
            .arg(self.root())
            .arg("--state")
            .arg(self.state())
            .arg("--address")
            .arg(&self.socket)
            .arg("--cgroup-root")
            .arg(&self.cgroup_root)
            .arg("--cni-conf-dir")
            .arg(self.dir.path().join("cni"))
            .arg("--bridge")
            .arg(&self.bridge)
            .arg("--subnet")
            .arg(&self.subnet)
            // CRI pods of the tests log under the temp dir (the default is /var/log/pods).
            .arg("--cri-log-root")
            .arg(self.dir.path())
            .args(&self.extra)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting berthd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "berthd did not come up: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Stops berthd with `signal` and reaps it.
    pub fn stop(&mut self, signal: nix::sys::signal::Signal) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal);
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("berthd.log")).unwrap_or_default()
    }

    /// berthctl with this daemon's socket.
    pub fn ctl(&self) -> Command {
        let mut c = Command::new(bin::bin("berthctl"));
        c.env("BERTH_ADDRESS", &self.socket)
            .env_remove("BERTH_NAMESPACE");
        c
    }

    /// Runs berthctl to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.ctl()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running berthctl")
    }

    /// `run --rootfs <busybox> ...` arguments.
    pub fn rootfs_arg(&self) -> String {
        self.rootfs.display().to_string()
    }
}

/// Asserts berthctl succeeded, showing its output if not.
pub fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "berthctl failed: {}{}",
        text(o),
        err_text(o)
    );
}

pub fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn err_text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every cgroup dir under a cgroup root, on every hierarchy.
pub fn cgroups_under(root: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        for e in entries.flatten() {
            stack.push(e.path().join(root.trim_start_matches('/')));
        }
    }
    stack.push(Path::new("/sys/fs/cgroup").join(root.trim_start_matches('/')));
    while let Some(dir) = stack.pop() {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    stack.push(e.path());
                    out.push(e.path());
                }
            }
        }
    }
    out
}

impl Drop for DaemonGuard {
    fn drop(&mut self) {
        if self.child.is_none() {
            self.spawn();
        }
        // Remove every container of every namespace through the daemon.
        for ns in ["default", "k8s.io", "other"] {
            let ids = self.ctl().args(["-n", ns, "ps", "-aq"]).output();
            if let Ok(ids) = ids {
                for id in String::from_utf8_lossy(&ids.stdout).lines() {
                    let _ = self.ctl().args(["-n", ns, "rm", "-f", id]).output();
                }
            }
        }
        let shims = shim_pids(&self.state());
        self.stop(nix::sys::signal::Signal::SIGTERM);
        for pid in shims {
            let _ = reaper::wait_exit(pid, Duration::from_secs(10));
        }
        // The daemon leaves the empty per-namespace parents (like /berth/default); a
        // container's own cgroup must be gone.
        let mut dirs = cgroups_under(&self.cgroup_root);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for dir in &dirs {
            let _ = std::fs::remove_dir(dir);
        }
        for root in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_dir(root.path().join(self.cgroup_root.trim_start_matches('/')));
        }
        let parent_depth = |d: &PathBuf| {
            d.strip_prefix("/sys/fs/cgroup")
                .map(|p| p.components().count())
                .unwrap_or(0)
        };
        // <hierarchy>/<root>/<ns> is a parent; <hierarchy>/<root>/<ns>/<id> a container.
        let left: Vec<_> = dirs.into_iter().filter(|d| parent_depth(d) >= 4).collect();
        // The default network's bridge outlives its containers (like docker0); remove it.
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
        let mounts = crate::guard::mounts_under(self.dir.path());
        for m in &mounts {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        if !std::thread::panicking() {
            assert!(left.is_empty(), "cgroups left behind: {left:?}");
            assert!(mounts.is_empty(), "mounts left behind: {mounts:?}");
        }
    }
}

/// Pids of the shims serving tasks under a state dir (from their bootstrap files).
pub fn shim_pids(state: &Path) -> Vec<i32> {
    let mut out = Vec::new();
    let tasks = state.join("tasks");
    for ns in std::fs::read_dir(tasks).into_iter().flatten().flatten() {
        for t in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
            if let Ok(b) = berth_proto::shim::Bootstrap::load(&t.path()) {
                out.push(b.pid);
            }
        }
    }
    out
}
