//! Spawning a container process: the parent's side of the stages.
//!
//! ```text
//! caller ──fork──▶ stage 1: join namespaces by path, unshare user ns (parent writes id maps),
//!   │                       unshare the rest, time offsets, clone(CLONE_PARENT) ─┐, exit
//!   │                                                                           ▼
//!   └────────────────────────────────── stage 2 (caller's child, pid 1 of a new pid ns):
//!                                        rootfs, console, user, caps, seccomp ... execve
//! ```
//! Where the cgroup is joined depends on [`ChildConfig::joins_in_stage2`]. An init without a
//! user namespace does its namespaces in stage 1 while the parent creates the cgroup (the two
//! CPUs work at once); stage 2 then joins the cgroup before anything else and creates the
//! cgroup namespace rooted there. Otherwise (user namespaces, exec) stage 1 joins the cgroup
//! before it does anything, so stage 2 and the program start inside it.

use std::os::fd::RawFd;

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult, Pid};
use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use super::channel::{self, Channel, Message};
use super::command::Command;
use super::namespaces::NamespacePlan;
use super::placement::Placement;
use super::seccomp::SeccompProgram;
use super::{stage1, ProcessError};
use crate::cgroups::Manager;
use crate::rootfs::RootfsOptions;

/// Everything a child needs, computed in the parent before forking.
pub(crate) struct ChildConfig<'a> {
    pub kind: Kind<'a>,
    pub process: &'a Process,
    pub command: Command,
    pub seccomp: Option<SeccompProgram>,
    pub stdio: [Option<RawFd>; 3],
    /// Connected console socket (pty master goes there) when `process.terminal`.
    pub console: Option<RawFd>,
    pub preserve_fds: u32,
    /// cgroup v1 `tasks` files stage 1 writes `0` to, to join the container's cgroup itself
    /// (empty: the parent moves it).
    pub self_attach: Vec<std::path::PathBuf>,
    /// The exec trampoline's memfd when the program is to be executed through it (an init
    /// started from an unprotected runtime binary; see `trampoline`).
    pub trampoline: Option<RawFd>,
}

pub(crate) enum Kind<'a> {
    /// A container's init: new namespaces, rootfs, then wait on the exec fifo.
    Init(InitConfig<'a>),
    /// A process joining the namespaces of a running init.
    Exec { init_pid: i32 },
}

pub(crate) struct InitConfig<'a> {
    pub spec: &'a Spec,
    pub plan: NamespacePlan,
    pub rootfs: RootfsOptions,
    pub no_pivot: bool,
    /// An O_PATH fd of the exec fifo; the init blocks reopening it until `start`.
    pub exec_fifo: RawFd,
}

impl ChildConfig<'_> {
    /// Whether stage 2 joins the cgroup (and creates the cgroup namespace), so that stage 1
    /// can create the other namespaces while the parent is still setting the cgroup up. Not
    /// with a new user namespace: from inside it the host's cgroup files are not writable.
    pub(crate) fn joins_in_stage2(&self) -> bool {
        matches!(&self.kind, Kind::Init(init) if !init.plan.new_user)
    }
}

impl InitConfig<'_> {
    pub(crate) fn new_mount_ns(&self) -> bool {
        self.plan.creates(LinuxNamespaceType::Mount)
    }
}

/// Forks the stages and drives them until the process is ready (init: waiting for start;
/// exec: exec'd). `setup_cgroup` (creating the cgroup and writing its limits) runs in the
/// parent once stage 1 is forked, before anything joins the cgroup; `on_pid` runs with the
/// container process's host pid once stage 2 is under way (the parent's bookkeeping overlaps
/// the rootfs setup). Returns that pid; the process is the caller's child.
pub(crate) fn spawn(
    cfg: &ChildConfig<'_>,
    cgroup: Option<&Manager>,
    setup_cgroup: impl FnOnce() -> crate::Result<()>,
    on_pid: impl FnOnce(i32) -> crate::Result<()>,
) -> crate::Result<i32> {
    let (parent, child) = channel::pair()?;
    // Only where the parent works while stage 1 does (see joins_in_stage2).
    let placement = cfg.joins_in_stage2().then(Placement::new).flatten();
    // SAFETY: the child only runs stage1 (syscalls, small allocations that glibc's fork keeps
    // safe) and leaves with _exit.
    let stage1_pid = match unsafe { fork() }.map_err(|e| ProcessError::sys("fork", e))? {
        ForkResult::Child => {
            drop(parent);
            let code = match stage1::run(cfg, &child, placement.as_ref()) {
                Ok(()) => 0,
                Err(e) => {
                    let _ = child.send(&Message::Error(e.to_string()));
                    1
                }
            };
            // SAFETY: leave the forked child without running the parent's atexit handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child: pid } => {
            if let Some(p) = &placement {
                p.move_child(pid);
            }
            pid
        }
    };
    drop(child);
    let mut driver = Driver {
        channel: parent,
        stage1: Some(stage1_pid),
        stage2: None,
    };
    match driver.drive(cfg, cgroup, setup_cgroup, on_pid) {
        Ok(pid) => Ok(pid),
        Err(e) => {
            driver.abort();
            Err(e)
        }
    }
}

struct Driver {
    channel: Channel,
    stage1: Option<Pid>,
    stage2: Option<Pid>,
}

impl Driver {
    fn drive(
        &mut self,
        cfg: &ChildConfig<'_>,
        cgroup: Option<&Manager>,
        setup_cgroup: impl FnOnce() -> crate::Result<()>,
        on_pid: impl FnOnce(i32) -> crate::Result<()>,
    ) -> crate::Result<i32> {
        let mut on_pid = Some(on_pid);
        let in_stage2 = cfg.joins_in_stage2();
        if in_stage2 {
            // Stage 1 creates namespaces meanwhile.
            self.channel.send(&Message::Go)?;
            setup_cgroup()?;
        } else {
            setup_cgroup()?;
            if let Some(pid) = self.stage1 {
                join_cgroup(cfg, cgroup, pid)?;
            }
            self.channel.send(&Message::Go)?;
        }
        let is_init = matches!(cfg.kind, Kind::Init(_));
        loop {
            match self.channel.recv()? {
                Some(Message::NeedIdMaps(pid)) => {
                    let Kind::Init(init) = &cfg.kind else {
                        return Err(
                            ProcessError::Invalid("unexpected id map request".into()).into()
                        );
                    };
                    write_id_maps(pid, &init.plan)?;
                    self.channel.send(&Message::IdMapsDone)?;
                }
                Some(Message::Stage2Pid(pid)) => {
                    self.stage2 = Some(Pid::from_raw(pid));
                    if in_stage2 {
                        join_cgroup(cfg, cgroup, Pid::from_raw(pid))?;
                    }
                    self.channel.send(&Message::Go)?;
                    if let Some(f) = on_pid.take() {
                        f(pid)?;
                    }
                    // Stage 1's exit (its memory torn down) is not on stage 2's way.
                    self.reap_stage1();
                }
                Some(Message::Warn(w)) => tracing::warn!("{w}"),
                Some(Message::Ready) if is_init => return self.stage2_pid(),
                Some(Message::Error(e)) => return Err(ProcessError::Invalid(e).into()),
                Some(other) => {
                    return Err(ProcessError::Invalid(format!(
                        "unexpected message {other:?} from the container process"
                    ))
                    .into())
                }
                None if !is_init && self.stage2.is_some() => return self.stage2_pid(),
                None => {
                    return Err(ProcessError::Invalid(
                        "the container process exited during setup".into(),
                    )
                    .into())
                }
            }
        }
    }

    fn stage2_pid(&self) -> crate::Result<i32> {
        self.stage2
            .map(Pid::as_raw)
            .ok_or_else(|| ProcessError::Invalid("no container process".into()).into())
    }

    fn reap_stage1(&mut self) {
        if let Some(pid) = self.stage1.take() {
            // ECHILD: someone else (a subreaper loop) reaped it already.
            let _ = waitpid(pid, None);
        }
    }

    /// Kills and reaps whatever the stages left behind.
    fn abort(&mut self) {
        if let Some(pid) = self.stage2.take() {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
        if let Some(pid) = self.stage1.take() {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
    }
}

/// The parent's part of joining: on v1 the stage moves itself (`self_attach`, fast), otherwise
/// the parent moves `pid`.
fn join_cgroup(cfg: &ChildConfig<'_>, cgroup: Option<&Manager>, pid: Pid) -> crate::Result<()> {
    match cgroup {
        Some(cg) if cfg.self_attach.is_empty() => cg.add_task(pid.as_raw()).map_err(|e| {
            ProcessError::Invalid(format!("moving process {pid} into the cgroup: {e}")).into()
        }),
        _ => Ok(()),
    }
}

fn write_id_maps(pid: i32, plan: &NamespacePlan) -> Result<(), ProcessError> {
    for (file, map) in [("uid_map", &plan.uid_map), ("gid_map", &plan.gid_map)] {
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, map.as_bytes()).map_err(|e| ProcessError::Io {
            context: format!("writing {path} ({})", map.trim().replace('\n', ", ")),
            source: e,
        })?;
    }
    Ok(())
}
