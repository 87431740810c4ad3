//! berth-runtime: Berth's container runtime library.
//!
//! Creates, starts, signals, pauses and deletes containers described by an OCI runtime spec:
//! namespaces, cgroups (v1 and v2), a secure rootfs and the container's process setup. It never
//! talks gRPC and never touches the daemon's metadata store.
//!
//! The entry point is [`Runtime`]: it keeps one state directory per container under its root
//! (like `runc --root`), so separate processes (a CLI, a shim) can act on the same container.

pub mod cgroups;
mod container;
mod error;
pub mod mountinfo;
mod process;
pub mod rootfs;
mod self_exe;

/// The console socket protocol (pty master passed with SCM_RIGHTS).
pub mod console {
    pub use crate::process::tty::{receive_pty_master, set_winsize};
}

pub use container::load_spec;
pub use container::{
    Container, CreateOptions, DeleteOutcome, ExecOptions, OciState, Runtime, Status, Stdio,
};
pub use error::{Error, Result};
pub use process::seccomp::{docker_default_profile, SeccompError, SeccompProgram};
pub use process::ProcessError;
pub use self_exe::{
    create_needs_protected_exe, exe_is_protected, protect_self_exe, readonly_clone,
};
