//! Containers: the public lifecycle API (create, start, kill, delete, exec, pause, ...).

mod create;
mod device_rules;
mod exec;
mod lifecycle;
mod state;

use std::fmt;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;
use oci_spec::runtime::{LinuxResources, Process, Spec};
use serde::{Deserialize, Serialize};

use crate::cgroups::{Manager, Stats};
use crate::{Error, Result};

pub use create::load_spec;
pub use state::OciState;
use state::State;

/// The lifecycle status of a container, as the OCI runtime spec names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// File descriptors to use as a process's stdin, stdout and stderr. `None` inherits the caller's.
#[derive(Debug, Default)]
pub struct Stdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

#[derive(Debug, Default)]
pub struct CreateOptions {
    /// A unix socket that receives the pty master (SCM_RIGHTS) when `process.terminal` is set.
    pub console_socket: Option<PathBuf>,
    /// An already connected console socket (e.g. one end of a socketpair), instead of
    /// `console_socket`.
    pub console_stream: Option<UnixStream>,
    /// Written with the container's init pid once created.
    pub pid_file: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root (needed on an initramfs root).
    pub no_pivot: bool,
    /// Pass fds 3..3+N of the caller to the container process.
    pub preserve_fds: u32,
    pub stdio: Stdio,
    /// Use this spec instead of reading `<bundle>/config.json`.
    pub spec: Option<Spec>,
    /// A directory caching compiled seccomp filters (shared by every container of a host).
    pub seccomp_cache: Option<PathBuf>,
}

#[derive(Debug, Default)]
pub struct ExecOptions {
    pub console_socket: Option<PathBuf>,
    pub console_stream: Option<UnixStream>,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    pub stdio: Stdio,
    /// See [`CreateOptions::seccomp_cache`].
    pub seccomp_cache: Option<PathBuf>,
}

/// What `delete` learned before it removed the container's cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteOutcome {
    /// The kernel OOM killer killed a process of this container.
    pub oom_killed: bool,
}

/// A runtime rooted at a state directory (one subdirectory per container, like `runc --root`).
#[derive(Debug, Clone)]
pub struct Runtime {
    root: PathBuf,
}

impl Runtime {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Runtime { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the container: namespaces, cgroup, rootfs and an init process that waits, set up,
    /// before exec until [`Container::start`]. The init is the caller's child.
    ///
    /// The caller protects its binary first ([`crate::protect_self_exe`]) unless
    /// [`crate::create_needs_protected_exe`] says the init can do without.
    pub fn create(&self, id: &str, bundle: &Path, opts: CreateOptions) -> Result<Container> {
        create::create(&self.root, id, bundle, opts)
    }

    /// The container `id`, or [`Error::NotFound`].
    pub fn load(&self, id: &str) -> Result<Container> {
        state::validate_id(id)?;
        let dir = self.root.join(id);
        let state = State::load(&dir, id)?;
        Ok(Container { dir, state })
    }

    /// Every container under the root, sorted by id. Unreadable entries are skipped.
    pub fn list(&self) -> Result<Vec<Container>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("listing {}", self.root.display()), e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let Some(id) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            match self.load(&id) {
                Ok(c) => out.push(c),
                Err(Error::NotFound(_)) | Err(Error::InvalidId { .. }) => {}
                Err(e) => tracing::warn!(id, "skipping an unreadable container: {e}"),
            }
        }
        out.sort_by(|a, b| a.id().cmp(b.id()));
        Ok(out)
    }
}

/// A container known to a [`Runtime`].
#[derive(Debug)]
pub struct Container {
    dir: PathBuf,
    state: State,
}

impl Container {
    pub fn id(&self) -> &str {
        &self.state.id
    }

    /// The init process's pid on the host, while it lives.
    pub fn pid(&self) -> Option<i32> {
        state::init_alive(self.state.init_pid, self.state.init_start_time)
            .then_some(self.state.init_pid)
    }

    pub fn bundle(&self) -> &Path {
        &self.state.bundle
    }

    /// When the container was created (RFC 3339).
    pub fn created(&self) -> &str {
        &self.state.created
    }

    /// The container's status, worked out now from the kernel.
    pub fn status(&self) -> Status {
        if self.pid().is_none() {
            return Status::Stopped;
        }
        if self.dir.join(state::EXEC_FIFO).exists() {
            return Status::Created;
        }
        match self.cgroup().and_then(|c| Ok(c.is_frozen()?)) {
            Ok(true) => Status::Paused,
            _ => Status::Running,
        }
    }

    /// The OCI state document (what `runc state` prints).
    pub fn oci_state(&self) -> OciState {
        let status = self.status();
        OciState {
            oci_version: self.state.spec.version().clone(),
            id: self.state.id.clone(),
            status,
            pid: if status == Status::Stopped {
                0
            } else {
                self.state.init_pid
            },
            bundle: self.state.bundle.clone(),
            rootfs: self.state.rootfs.clone(),
            created: self.state.created.clone(),
            annotations: self.state.spec.annotations().clone().unwrap_or_default(),
        }
    }

    /// Lets the created init exec the container's process.
    pub fn start(&self) -> Result<()> {
        lifecycle::start(self)
    }

    /// Sends `signal` to the init, or to every process of the container when `all`.
    pub fn kill(&self, signal: Signal, all: bool) -> Result<()> {
        lifecycle::kill(self, signal, all)
    }

    /// Removes the container. A running or paused one is refused unless `force`, which kills it.
    pub fn delete(self, force: bool) -> Result<DeleteOutcome> {
        lifecycle::delete(self, force)
    }

    /// Starts `process` inside the running container (its namespaces and cgroup); returns its
    /// host pid. The process is the caller's child. The caller protects its binary first
    /// ([`crate::protect_self_exe`]). A created container whose init runs the unprotected
    /// runtime binary (created through the exec trampoline) refuses until it is started.
    pub fn exec(&self, process: &Process, opts: ExecOptions) -> Result<i32> {
        exec::exec(self, process, opts)
    }

    /// Freezes every process of a running container.
    pub fn pause(&self) -> Result<()> {
        self.require(Status::Running, "pause")?;
        Ok(self.cgroup()?.freeze()?)
    }

    /// Thaws a paused container.
    pub fn resume(&self) -> Result<()> {
        self.require(Status::Paused, "resume")?;
        Ok(self.cgroup()?.thaw()?)
    }

    /// Applies new resource limits and records them in the container's spec.
    pub fn update(&mut self, resources: &LinuxResources) -> Result<()> {
        lifecycle::update(self, resources)
    }

    pub fn stats(&self) -> Result<Stats> {
        Ok(self.cgroup()?.stats()?)
    }

    /// Host pids of every process in the container.
    pub fn pids(&self) -> Result<Vec<i32>> {
        Ok(self.cgroup()?.pids()?)
    }

    /// The spec the container was created from (with updates applied).
    pub fn spec(&self) -> &Spec {
        &self.state.spec
    }

    fn cgroup(&self) -> Result<Manager> {
        Ok(Manager::new(&self.state.cgroup_path)?)
    }

    fn require(&self, want: Status, op: &'static str) -> Result<()> {
        let status = self.status();
        if status == want {
            Ok(())
        } else {
            Err(Error::WrongState {
                id: self.state.id.clone(),
                status,
                op,
            })
        }
    }
}

/// Writes a pid file atomically (temp file + rename), like runc.
pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_extension("berth-tmp");
    std::fs::write(&tmp, pid.to_string())
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| Error::io(format!("writing the pid file {}", path.display()), e))
}
