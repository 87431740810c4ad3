//! Containers: the public lifecycle API (create, start, kill, delete, exec, pause, ...).

use std::fmt;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;
use oci_spec::runtime::{LinuxResources, Process, Spec};
use serde::{Deserialize, Serialize};

use crate::cgroups::Stats;
use crate::{Error, Result};

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
    /// Written with the container's init pid once created.
    pub pid_file: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root (needed on an initramfs root).
    pub no_pivot: bool,
    /// Pass fds 3..3+N of the caller to the container process.
    pub preserve_fds: u32,
    pub stdio: Stdio,
    /// Use this spec instead of reading `<bundle>/config.json`.
    pub spec: Option<Spec>,
}

#[derive(Debug, Default)]
pub struct ExecOptions {
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    pub stdio: Stdio,
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
    pub fn create(&self, id: &str, bundle: &Path, opts: CreateOptions) -> Result<Container> {
        let _ = (id, bundle, opts);
        Err(Error::Init("not implemented".into()))
    }

    pub fn load(&self, id: &str) -> Result<Container> {
        Err(Error::NotFound(id.to_string()))
    }

    pub fn list(&self) -> Result<Vec<Container>> {
        Ok(Vec::new())
    }
}

/// A container known to a [`Runtime`].
#[derive(Debug)]
pub struct Container {
    id: String,
}

impl Container {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The init process's pid on the host, while it lives.
    pub fn pid(&self) -> Option<i32> {
        None
    }

    pub fn bundle(&self) -> &Path {
        Path::new("")
    }

    pub fn status(&self) -> Status {
        Status::Stopped
    }

    /// The OCI state document (what `runc state` prints).
    pub fn oci_state(&self) -> oci_spec::runtime::State {
        oci_spec::runtime::State::default()
    }

    /// Lets the created init exec the container's process.
    pub fn start(&self) -> Result<()> {
        Err(Error::Init("not implemented".into()))
    }

    /// Sends `signal` to the init, or to every process of the container when `all`.
    pub fn kill(&self, signal: Signal, all: bool) -> Result<()> {
        let _ = (signal, all);
        Err(Error::Init("not implemented".into()))
    }

    /// Removes the container. A running or paused one is refused unless `force`, which kills it.
    pub fn delete(self, force: bool) -> Result<DeleteOutcome> {
        let _ = force;
        Err(Error::Init("not implemented".into()))
    }

    /// Starts `process` inside the running container (its namespaces and cgroup); returns its
    /// host pid. The process is the caller's child.
    pub fn exec(&self, process: &Process, opts: ExecOptions) -> Result<i32> {
        let _ = (process, opts);
        Err(Error::Init("not implemented".into()))
    }

    pub fn pause(&self) -> Result<()> {
        Err(Error::Init("not implemented".into()))
    }

    pub fn resume(&self) -> Result<()> {
        Err(Error::Init("not implemented".into()))
    }

    pub fn update(&self, resources: &LinuxResources) -> Result<()> {
        let _ = resources;
        Err(Error::Init("not implemented".into()))
    }

    pub fn stats(&self) -> Result<Stats> {
        Err(Error::Init("not implemented".into()))
    }

    /// Host pids of every process in the container.
    pub fn pids(&self) -> Result<Vec<i32>> {
        Ok(Vec::new())
    }

    /// The spec the container was created from.
    pub fn spec(&self) -> Result<Spec> {
        Err(Error::Init("not implemented".into()))
    }
}
