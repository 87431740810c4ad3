//! A shim under test: its own bundle (busybox rootfs + config.json) and socket directory, the
//! real `berth-shim start` handshake, and a guard that leaves nothing behind.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use berth_proto::shim::v1::shim_client::ShimClient;
use berth_proto::shim::Bootstrap;
use berth_runtime::Runtime;
use oci_spec::runtime::Spec;
use tonic::transport::Channel;

use crate::guard::{cgroup_dirs, unique_id};
use crate::{bin, reaper, rootfs, SpecBuilder};

pub struct ShimGuard {
    pub id: String,
    pub bundle: PathBuf,
    pub boot: Bootstrap,
    dir: tempfile::TempDir,
}

impl ShimGuard {
    /// A bundle for `spec` (built from `SpecBuilder::new(id, ..)` by `make`) and a started shim.
    pub fn start(make: impl FnOnce(SpecBuilder) -> SpecBuilder) -> ShimGuard {
        reaper::init();
        let id = unique_id();
        let dir = tempfile::Builder::new()
            .prefix("berth-shim-test-")
            .tempdir()
            .expect("temp dir");
        let bundle = dir.path().join("bundle");
        rootfs::populate(&bundle.join("rootfs")).expect("rootfs");
        let spec: Spec = make(SpecBuilder::new(&id, &["true"])).build();
        spec.save(bundle.join("config.json")).expect("config.json");
        let boot = start_shim(&id, &bundle, &dir.path().join("sockets"));
        ShimGuard {
            id,
            bundle,
            boot,
            dir,
        }
    }

    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sockets")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("container.log")
    }

    pub async fn client(&self) -> ShimClient<Channel> {
        berth_proto::shim::connect(&self.boot.address)
            .await
            .expect("connecting to the shim")
    }
}

/// Runs `berth-shim start` and returns (and stores) its bootstrap answer.
pub fn start_shim(id: &str, bundle: &Path, socket_dir: &Path) -> Bootstrap {
    let out = Command::new(bin::bin("berth-shim"))
        .args(["start", "--namespace", "test", "--id", id, "--bundle"])
        .arg(bundle)
        .arg("--socket-dir")
        .arg(socket_dir)
        .output()
        .expect("running berth-shim start");
    assert!(
        out.status.success(),
        "berth-shim start failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let boot: Bootstrap = serde_json::from_slice(&out.stdout).expect("bootstrap answer");
    boot.store(bundle).expect("storing bootstrap.json");
    boot
}

impl Drop for ShimGuard {
    fn drop(&mut self) {
        // Kill the shim first so it cannot react, then everything in the container's cgroup.
        let shim = nix::unistd::Pid::from_raw(self.boot.pid);
        let _ = nix::sys::signal::kill(shim, nix::sys::signal::Signal::SIGKILL);
        let _ = reaper::wait_exit(self.boot.pid, Duration::from_secs(10));
        let runtime = Runtime::new(self.bundle.join(".runtime"));
        if let Ok(c) = runtime.load(&self.id) {
            let pids = c.pids().unwrap_or_default();
            let _ = c.delete(true);
            // Orphaned container processes were reparented to us (the subreaper).
            for pid in pids {
                let _ = reaper::wait_exit(pid, Duration::from_secs(5));
            }
        }
        // Whatever a failed test left (a container that never got recorded): empty the cgroups
        // of anything still in them and remove them.
        for dir in cgroup_dirs(&self.id) {
            if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                    let _ = reaper::wait_exit(pid, Duration::from_secs(5));
                }
            }
            let _ = std::fs::remove_dir(&dir);
        }
        crate::guard::remove_test_cgroup_parent();
        let left = cgroup_dirs(&self.id);
        if !std::thread::panicking() {
            assert!(left.is_empty(), "cgroups left behind: {left:?}");
        }
    }
}
