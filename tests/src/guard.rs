//! One test container's world, cleaned up and checked on drop.
//!
//! A [`ContainerGuard`] owns a unique container id (`t<pid>-<counter>`), a temp directory with
//! the runtime's state root and the bundle (busybox rootfs included), and a [`Runtime`] on that
//! root. Dropping it SIGKILLs every process of the container, force-deletes it, reaps its init,
//! and then asserts that no cgroup directory and no mount under the bundle remain (after
//! removing any leftover mounts, so the temp directory can be removed safely).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use berth_runtime::{Container, CreateOptions, DeleteOutcome, Runtime, Stdio};
use nix::sys::signal::Signal;
use oci_spec::runtime::Spec;

use crate::bundle::{SpecBuilder, CGROUP_PARENT};
use crate::output::Capture;
use crate::reaper::{self, Exit};
use crate::rootfs;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// How long a test waits for a container process before failing.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A fresh container id: `t<pid>-<counter>`.
pub fn unique_id() -> String {
    format!(
        "t{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// What [`ContainerGuard::run`] observed.
#[derive(Debug)]
pub struct RunResult {
    pub exit: Exit,
    pub output: String,
    pub outcome: DeleteOutcome,
}

/// A test container's id, directories and runtime; see the module docs.
pub struct ContainerGuard {
    id: String,
    runtime: Runtime,
    bundle: PathBuf,
    // Last: removed after the checks in `drop`.
    dir: tempfile::TempDir,
}

impl ContainerGuard {
    /// New id, state root and bundle with a busybox rootfs (no config.json yet).
    pub fn new() -> Self {
        reaper::init();
        let dir = tempfile::Builder::new()
            .prefix("berth-test-")
            .tempdir()
            .expect("temp dir");
        // Readable by container users mapped to other host ids (user namespaces).
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod temp dir");
        let bundle = dir.path().join("bundle");
        rootfs::populate(&bundle.join("rootfs")).expect("populating the rootfs");
        let runtime = Runtime::new(dir.path().join("state"));
        ContainerGuard {
            id: unique_id(),
            runtime,
            bundle,
            dir,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The runtime's state root (for `berth-oci --root`).
    pub fn state_root(&self) -> &Path {
        self.runtime.root()
    }

    pub fn bundle(&self) -> &Path {
        &self.bundle
    }

    pub fn rootfs(&self) -> PathBuf {
        self.bundle.join("rootfs")
    }

    /// A scratch directory of this test, outside the bundle.
    pub fn scratch(&self) -> PathBuf {
        let path = self.dir.path().join("scratch");
        std::fs::create_dir_all(&path).expect("scratch dir");
        path
    }

    /// The test default spec for this container running `args`.
    pub fn spec(&self, args: &[&str]) -> SpecBuilder {
        SpecBuilder::new(&self.id, args)
    }

    /// Writes `spec` as the bundle's config.json and creates the container with `stdio`.
    pub fn create(&self, spec: &Spec, stdio: Stdio) -> berth_runtime::Result<Container> {
        self.create_with(
            spec,
            CreateOptions {
                stdio,
                ..Default::default()
            },
        )
    }

    /// Writes `spec` as config.json and creates the container with `opts`.
    pub fn create_with(
        &self,
        spec: &Spec,
        opts: CreateOptions,
    ) -> berth_runtime::Result<Container> {
        spec.save(self.bundle.join("config.json"))
            .expect("writing config.json");
        self.runtime.create(&self.id, &self.bundle, opts)
    }

    /// Creates, starts and waits for the container (output captured), then deletes it.
    pub fn run(&self, spec: &Spec) -> RunResult {
        let capture = Capture::new();
        let container = self.create(spec, capture.stdio()).expect("create");
        let pid = container.pid().expect("created container has a pid");
        container.start().expect("start");
        let exit = reaper::wait_exit(pid, TIMEOUT)
            .unwrap_or_else(|| panic!("container {} did not exit in time", self.id));
        let outcome = container.delete(false).expect("delete");
        RunResult {
            exit,
            output: capture.text(),
            outcome,
        }
    }

    /// Kills and deletes the container if it still exists; reaps its init.
    pub fn cleanup(&self) {
        let Ok(container) = self.runtime.load(&self.id) else {
            return;
        };
        let init = container.pid();
        let _ = container.kill(Signal::SIGKILL, true);
        // A dying pid-namespace init waits until every other process of its namespace is
        // reaped, and processes orphaned by a `berth-oci exec -d` are our zombies (subreaper):
        // reap those, then the init.
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(pid) = init {
            reaper::reap_container_zombies();
            if reaper::try_reap(pid).is_some() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if let Err(err) = container.delete(true) {
            eprintln!("guard: force delete of {} failed: {err}", self.id);
        }
    }

    /// Problems left behind: cgroup directories and mounts under the bundle.
    pub fn leftovers(&self) -> Vec<String> {
        let mut found: Vec<String> = cgroup_dirs(&self.id)
            .into_iter()
            .map(|p| format!("cgroup {}", p.display()))
            .collect();
        found.extend(
            mounts_under(self.dir.path())
                .into_iter()
                .map(|m| format!("mount {m}")),
        );
        if self.runtime.load(&self.id).is_ok() {
            found.push(format!("container {} still known to the runtime", self.id));
        }
        found
    }
}

impl Default for ContainerGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        self.cleanup();
        let leftovers = self.leftovers();
        // Never remove the temp dir through a leftover mount.
        let mut mounts = mounts_under(self.dir.path());
        mounts.reverse();
        for mountpoint in mounts {
            let _ = nix::mount::umount2(mountpoint.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        for dir in cgroup_dirs(&self.id) {
            let _ = std::fs::remove_dir(&dir);
        }
        remove_test_cgroup_parent();
        if !leftovers.is_empty() && !std::thread::panicking() {
            panic!("container {} left behind: {leftovers:#?}", self.id);
        }
    }
}

/// Removes the tests' shared parent cgroup (`/berth-test`) where it is empty. While another
/// test has a container in it, rmdir fails (EBUSY) and it stays; the next create makes it again.
pub fn remove_test_cgroup_parent() {
    let root = std::path::Path::new("/sys/fs/cgroup");
    let _ = std::fs::remove_dir(root.join(CGROUP_PARENT));
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let _ = std::fs::remove_dir(entry.path().join(CGROUP_PARENT));
    }
}

/// Cgroup directories of container `id` that exist, on every mounted hierarchy.
pub fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let dir = entry.path().join(CGROUP_PARENT).join(id);
        if dir.is_dir() {
            found.push(dir);
        }
    }
    // cgroup v2 mounted directly at /sys/fs/cgroup.
    let unified = Path::new("/sys/fs/cgroup").join(CGROUP_PARENT).join(id);
    if unified.is_dir() && !found.contains(&unified) {
        found.push(unified);
    }
    found
}

/// Mount points in our mount namespace at or under `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.to_string_lossy().into_owned();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|mountpoint| mountpoint == &prefix || mountpoint.starts_with(&format!("{prefix}/")))
        .collect()
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                out.push(value as u8);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
