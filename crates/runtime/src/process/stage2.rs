//! Stage 2: the container process itself, from its first instruction to execve.
//!
//! Order matters and follows runc: rootfs and pivot_root, hostname, sysctls, masked and
//! read-only paths, console or stdio, rlimits, no_new_privs, seccomp (early when it needs
//! CAP_SYS_ADMIN, last otherwise), capabilities bounding set, user switch, capability sets,
//! cwd, then (init only) report ready and block on the exec fifo until `start`.

use std::convert::Infallible;
use std::ffi::CString;
use std::io::Write;
use std::os::fd::RawFd;
use std::os::unix::fs::OpenOptionsExt;

use nix::sched::{unshare, CloneFlags};
use nix::unistd::sethostname;
use oci_spec::runtime::LinuxNamespaceType;

use super::channel::{Channel, Message};
use super::spawn::{ChildConfig, InitConfig, Kind};
use super::{caps, fds, init_reaper, rlimits, sysctl, tty, user, ProcessError};
use crate::rootfs;

pub(crate) fn run(
    cfg: &ChildConfig<'_>,
    channel: &Channel,
    trampoline: Option<RawFd>,
) -> Result<Infallible, ProcessError> {
    channel.expect(&Message::Go)?;
    if cfg.joins_in_stage2() {
        super::stage1::join_cgroup(cfg)?;
        if let Kind::Init(init) = &cfg.kind {
            if init.plan.new.contains(CloneFlags::CLONE_NEWCGROUP) {
                unshare(CloneFlags::CLONE_NEWCGROUP)
                    .map_err(|e| ProcessError::sys("creating the cgroup namespace", e))?;
            }
        }
    }
    let terminal = cfg.process.terminal().unwrap_or(false);
    if !terminal {
        // A session of its own, like any daemon-started process (setup_console does it for a tty).
        let _ = nix::unistd::setsid();
    }

    let fifo = match &cfg.kind {
        Kind::Init(init) => Some(setup_init_environment(init)?),
        Kind::Exec { .. } => None,
    };

    if terminal {
        let socket = cfg.console.ok_or_else(|| {
            ProcessError::Invalid("process.terminal is set but no console socket was given".into())
        })?;
        tty::setup_console(socket)?;
        // SAFETY: our copy of the console socket is no longer needed.
        unsafe { libc::close(socket) };
    } else {
        fds::install_stdio(cfg.stdio, 3 + cfg.preserve_fds as RawFd)?;
    }

    if let Some(limits) = cfg.process.rlimits() {
        rlimits::apply(limits)?;
    }
    let no_new_privs = cfg.process.no_new_privileges().unwrap_or(false);
    if no_new_privs {
        nix::sys::prctl::set_no_new_privs()
            .map_err(|e| ProcessError::sys("PR_SET_NO_NEW_PRIVS", e))?;
    } else if let Some(filter) = &cfg.seccomp {
        // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: do it before the drop.
        filter.load()?;
    }

    let default_caps = oci_spec::runtime::LinuxCapabilities::default();
    let capabilities = cfg.process.capabilities().as_ref().unwrap_or(&default_caps);
    caps::drop_bounding(capabilities)?;
    user::switch(cfg.process.user())?;
    caps::apply_sets(capabilities)?;

    // A holding init (pod sandboxes) runs no program, so there is nothing to resolve.
    let hold = init_mode(cfg) == Some("hold");
    let path = if hold {
        None
    } else {
        Some(cfg.command.resolve()?)
    };
    enter_cwd(cfg)?;

    if let Some(fifo) = fifo {
        channel.send(&Message::Ready)?;
        wait_for_start(fifo)?;
    }
    if no_new_privs {
        if let Some(filter) = &cfg.seccomp {
            filter.load()?;
        }
    }
    fds::prepare_for_exec(cfg.preserve_fds)?;
    let Some(path) = path else {
        init_reaper::hold()
    };
    if init_mode(cfg) == Some("true") {
        init_reaper::fork_and_reap()?;
    }
    Err(exec(cfg, &path, trampoline))
}

/// The init's `io.berth.init` annotation: "true" (a reaper that runs the program) or "hold"
/// (a reaper that only holds the namespaces); None for an exec or no annotation.
fn init_mode<'a>(cfg: &'a ChildConfig<'_>) -> Option<&'a str> {
    let Kind::Init(init) = &cfg.kind else {
        return None;
    };
    init.spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(init_reaper::ANNOTATION))
        .map(String::as_str)
}

/// Everything only a container's init does: the filesystem, hostname and sysctls. Returns the
/// exec fifo's O_PATH fd.
fn setup_init_environment(init: &InitConfig<'_>) -> Result<RawFd, ProcessError> {
    let fifo = init.exec_fifo;
    let spec = init.spec;
    if init.new_mount_ns() {
        rootfs::prepare(spec, &init.rootfs).map_err(rootfs_error)?;
        rootfs::pivot(&init.rootfs.rootfs, init.no_pivot).map_err(rootfs_error)?;
    }
    if let Some(hostname) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        require_uts(init, "hostname")?;
        sethostname(hostname).map_err(|e| ProcessError::sys("sethostname", e))?;
    }
    if let Some(domain) = spec.domainname().as_deref().filter(|h| !h.is_empty()) {
        require_uts(init, "domainname")?;
        std::fs::write("/proc/sys/kernel/domainname", domain).map_err(|e| ProcessError::Io {
            context: "setting the domainname".into(),
            source: e,
        })?;
    }
    if init.plan.creates(LinuxNamespaceType::Network) {
        super::loopback::up()?;
    }
    if let Some(sysctls) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        sysctl::apply(sysctls)?;
    }
    if init.new_mount_ns() {
        rootfs::finalize(spec).map_err(rootfs_error)?;
    }
    Ok(fifo)
}

fn require_uts(init: &InitConfig<'_>, what: &str) -> Result<(), ProcessError> {
    if init.plan.isolates(LinuxNamespaceType::Uts) {
        Ok(())
    } else {
        Err(ProcessError::Invalid(format!(
            "setting the {what} needs a UTS namespace"
        )))
    }
}

fn rootfs_error(e: rootfs::RootfsError) -> ProcessError {
    ProcessError::Invalid(format!("rootfs: {e}"))
}

/// chdir into the process's cwd and make sure it is inside the container's root: a cwd like
/// /proc/self/fd/N naming a leaked directory would otherwise land outside (CVE-2024-21626).
fn enter_cwd(cfg: &ChildConfig<'_>) -> Result<(), ProcessError> {
    let cwd = cfg.process.cwd();
    let cwd = if cwd.as_os_str().is_empty() {
        std::path::Path::new("/")
    } else {
        cwd.as_path()
    };
    if !cwd.is_absolute() {
        return Err(ProcessError::Invalid(format!(
            "process.cwd {} must be absolute",
            cwd.display()
        )));
    }
    nix::unistd::chdir(cwd)
        .map_err(|e| ProcessError::sys(format!("chdir to {}", cwd.display()), e))?;
    match std::env::current_dir() {
        Ok(p) if p.is_absolute() => Ok(()),
        _ => Err(ProcessError::Invalid(format!(
            "process.cwd {} is outside the container's root",
            cwd.display()
        ))),
    }
}

/// Blocks until `start` opens the fifo for reading, then tells it we are going.
fn wait_for_start(fifo: RawFd) -> Result<(), ProcessError> {
    let path = format!("/proc/self/fd/{fifo}");
    let mut w = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| ProcessError::Io {
            context: "opening the exec fifo for writing".into(),
            source: e,
        })?;
    w.write_all(b"0").map_err(|e| ProcessError::Io {
        context: "writing the exec fifo".into(),
        source: e,
    })?;
    // SAFETY: the O_PATH fd is ours and no longer needed.
    unsafe { libc::close(fifo) };
    Ok(())
}

fn exec(cfg: &ChildConfig<'_>, path: &CString, trampoline: Option<RawFd>) -> ProcessError {
    let err = match trampoline {
        Some(fd) => cfg.command.exec_through(fd, path),
        None => cfg.command.exec(path),
    };
    if matches!(cfg.kind, Kind::Init(_)) {
        // Nobody may be listening on the channel any more: tell the container's stderr too.
        let msg = format!("berth: {err}\n");
        // SAFETY: writing a buffer we own to fd 2.
        unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
    }
    err
}
