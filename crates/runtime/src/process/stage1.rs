//! Stage 1 of a container process (a forked child of the runtime): namespaces.
//!
//! Joins namespaces given by path, creates the user namespace (the parent writes its id maps),
//! creates the other namespaces, writes the time offsets, then clones stage 2 as a sibling (a
//! child of the caller, `CLONE_PARENT`) and exits. A new pid namespace only applies to
//! children, hence the second process.

use std::os::fd::RawFd;

use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};
use nix::unistd::{setresgid, setresuid, Gid, Uid};

use super::channel::{Channel, Message};
use super::placement::Placement;
use super::spawn::{ChildConfig, Kind};
use super::{fds, namespaces, oom, stage2, ProcessError};

pub(crate) fn run(
    cfg: &ChildConfig<'_>,
    channel: &Channel,
    placement: Option<&Placement>,
) -> Result<(), ProcessError> {
    reset_signals()?;
    set_dumpable(false)?;
    fds::close_all_except(3 + cfg.preserve_fds as RawFd, &inherited_fds(cfg, channel))?;
    let trampoline = cfg
        .trampoline
        .map(|fd| fds::move_above(fd, 3 + cfg.preserve_fds as RawFd))
        .transpose()?;
    channel.expect(&Message::Go)?;
    if let Some(p) = placement {
        p.restore()?;
    }
    let in_stage2 = cfg.joins_in_stage2();
    if !in_stage2 {
        join_cgroup(cfg)?;
    }

    if let Some(adj) = cfg.process.oom_score_adj() {
        if let Some(warning) = oom::set_score_adj(adj)? {
            channel.send(&Message::Warn(warning))?;
        }
    }

    match &cfg.kind {
        Kind::Init(init) => {
            let joins = namespaces::open_joins(&init.plan.join)?;
            namespaces::join(&joins)?;
            drop(joins);
            if init.plan.new_user {
                // The parent must be able to write our id maps, and we our time offsets.
                set_dumpable(true)?;
                unshare(CloneFlags::CLONE_NEWUSER)
                    .map_err(|e| ProcessError::sys("creating the user namespace", e))?;
                channel.send(&Message::NeedIdMaps(nix::unistd::getpid().as_raw()))?;
                channel.expect(&Message::IdMapsDone)?;
                become_root()?;
            }
            // Joining in stage 2 comes first there, and the cgroup namespace after it.
            let mut new = init.plan.new;
            if in_stage2 {
                new.remove(CloneFlags::CLONE_NEWCGROUP);
            }
            if !new.is_empty() {
                unshare(new)
                    .map_err(|e| ProcessError::sys(format!("creating namespaces {new:?}"), e))?;
            }
            if !init.plan.time_offsets.is_empty() {
                std::fs::write("/proc/self/timens_offsets", &init.plan.time_offsets).map_err(
                    |e| ProcessError::Io {
                        context: "writing /proc/self/timens_offsets".into(),
                        source: e,
                    },
                )?;
            }
            set_dumpable(false)?;
        }
        Kind::Exec { init_pid } => {
            let joins = namespaces::of_process(*init_pid)?;
            namespaces::join(&joins)?;
        }
    }

    let pid = clone_sibling()?;
    if pid == 0 {
        // Stage 2.
        let code = match stage2::run(cfg, channel, trampoline) {
            Ok(never) => match never {},
            Err(e) => {
                let _ = channel.send(&Message::Error(e.to_string()));
                1
            }
        };
        // SAFETY: leave the child without the parent's atexit handlers.
        unsafe { libc::_exit(code) }
    }
    channel.send(&Message::Stage2Pid(pid))
}

/// Moves this process into the container's cgroup: on v1 by writing `0` to every `tasks`
/// file (a single thread moving itself skips the threadgroup lock); on v2 the parent has moved
/// us already.
pub(crate) fn join_cgroup(cfg: &ChildConfig<'_>) -> Result<(), ProcessError> {
    for tasks in &cfg.self_attach {
        std::fs::write(tasks, b"0").map_err(|e| ProcessError::Io {
            context: format!("joining the cgroup ({})", tasks.display()),
            source: e,
        })?;
    }
    Ok(())
}

/// Every fd the stages need: the channel, stdio sources and the console socket.
fn inherited_fds(cfg: &ChildConfig<'_>, channel: &Channel) -> Vec<RawFd> {
    let mut keep = vec![channel.raw_fd()];
    keep.extend(cfg.stdio.iter().flatten());
    keep.extend(cfg.console);
    keep.extend(cfg.trampoline);
    if let Kind::Init(init) = &cfg.kind {
        keep.push(init.exec_fifo);
    }
    keep
}

/// Signal mask and dispositions as a new program expects them (the caller may block or ignore
/// signals, e.g. an async runtime).
fn reset_signals() -> Result<(), ProcessError> {
    for sig in nix::sys::signal::Signal::iterator() {
        if matches!(
            sig,
            nix::sys::signal::Signal::SIGKILL | nix::sys::signal::Signal::SIGSTOP
        ) {
            continue;
        }
        // SAFETY: restoring the default disposition has no handler to be unsafe about.
        let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) };
    }
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(|e| ProcessError::sys("resetting the signal mask", e))
}

pub(crate) fn set_dumpable(on: bool) -> Result<(), ProcessError> {
    nix::sys::prctl::set_dumpable(on).map_err(|e| ProcessError::sys("PR_SET_DUMPABLE", e))
}

/// In a new user namespace: become its root when root is mapped (otherwise keep the
/// namespace creator's full capabilities; the user switch later sets the real ids).
fn become_root() -> Result<(), ProcessError> {
    let root_gid = Gid::from_raw(0);
    let root_uid = Uid::from_raw(0);
    match setresgid(root_gid, root_gid, root_gid) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) => {}
        Err(e) => return Err(ProcessError::sys("setresgid(0) in the user namespace", e)),
    }
    match setresuid(root_uid, root_uid, root_uid) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) => Ok(()),
        Err(e) => Err(ProcessError::sys("setresuid(0) in the user namespace", e)),
    }
}

/// clone(CLONE_PARENT | SIGCHLD) without a new stack: fork semantics, but the new process is
/// the caller's child, not ours.
fn clone_sibling() -> Result<i32, ProcessError> {
    // SAFETY: a fork-like clone (no CLONE_VM) of a single-threaded process; the child continues
    // on its own copy of this stack.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if r < 0 {
        return Err(ProcessError::sys(
            "clone of the container process",
            nix::errno::Errno::last(),
        ));
    }
    Ok(r as i32)
}
