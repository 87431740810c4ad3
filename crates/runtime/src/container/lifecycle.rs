//! start, kill, delete and update of an existing container.

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill as send_signal, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

use super::state::EXEC_FIFO;
use super::{Container, DeleteOutcome};
use crate::{Error, Result, Status};

/// How long delete waits for killed processes to leave the cgroup.
const KILL_GRACE: Duration = Duration::from_secs(10);

/// Opens the exec fifo for reading: the init, blocked opening the other end, writes one byte
/// and execs. The fifo is then removed, which is what makes the status `running`.
pub(crate) fn start(c: &Container) -> Result<()> {
    c.require(Status::Created, "start")?;
    let path = c.dir.join(EXEC_FIFO);
    let mut fifo = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    loop {
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => {
                if c.pid().is_none() {
                    return Err(Error::Init(
                        "the container's init exited before start".into(),
                    ));
                }
            }
            Ok(_) => break,
            Err(e) => return Err(Error::sys("waiting on the exec fifo", e)),
        }
    }
    let mut byte = [0u8; 1];
    let n = fifo
        .read(&mut byte)
        .map_err(|e| Error::io("reading the exec fifo", e))?;
    if n == 0 {
        return Err(Error::Init(
            "the container's init exited before start".into(),
        ));
    }
    std::fs::remove_file(&path).map_err(|e| Error::io(format!("removing {}", path.display()), e))
}

pub(crate) fn kill(c: &Container, signal: Signal, all: bool) -> Result<()> {
    if all {
        return kill_all(c, signal);
    }
    let Some(pid) = c.pid() else {
        return Err(Error::WrongState {
            id: c.state.id.clone(),
            status: Status::Stopped,
            op: "kill",
        });
    };
    send_signal(Pid::from_raw(pid), signal).map_err(|e| Error::sys(format!("kill {pid}"), e))
}

/// Signals every process of the container's cgroup. The cgroup is frozen meanwhile so that no
/// process forks away from the signal; a paused container stays paused (except for SIGKILL).
fn kill_all(c: &Container, signal: Signal) -> Result<()> {
    let cgroup = c.cgroup()?;
    let was_frozen = cgroup.is_frozen().unwrap_or(false);
    let froze = !was_frozen && cgroup.freeze().is_ok();
    let pids = cgroup.pids()?;
    for pid in pids {
        match send_signal(Pid::from_raw(pid), signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => return Err(Error::sys(format!("kill {pid}"), e)),
        }
    }
    if froze || (was_frozen && signal == Signal::SIGKILL) {
        cgroup.thaw()?;
    }
    Ok(())
}

pub(crate) fn delete(c: Container, force: bool) -> Result<DeleteOutcome> {
    let status = c.status();
    match status {
        Status::Running | Status::Paused if !force => {
            return Err(Error::WrongState {
                id: c.state.id.clone(),
                status,
                op: "delete without force",
            })
        }
        _ => {}
    }
    let cgroup = c.cgroup()?;
    if status != Status::Stopped || !cgroup.pids().unwrap_or_default().is_empty() {
        kill_all(&c, Signal::SIGKILL)?;
        if let Some(pid) = c.pid() {
            let _ = send_signal(Pid::from_raw(pid), Signal::SIGKILL);
        }
        wait_empty(&c)?;
    }
    // Read before the cgroup goes away: this is the only record of an OOM kill.
    let oom_killed = cgroup.oom_kill_count().unwrap_or(0) > 0;
    cgroup.remove()?;
    std::fs::remove_dir_all(&c.dir)
        .map_err(|e| Error::io(format!("removing {}", c.dir.display()), e))?;
    Ok(DeleteOutcome { oom_killed })
}

/// Waits until no process is left in the cgroup (and the init is gone).
fn wait_empty(c: &Container) -> Result<()> {
    let cgroup = c.cgroup()?;
    let deadline = Instant::now() + KILL_GRACE;
    let mut pause = Duration::from_micros(200);
    loop {
        let empty = cgroup.pids().map(|p| p.is_empty()).unwrap_or(true);
        if empty && c.pid().is_none() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Init(format!(
                "processes of container {:?} did not die within {KILL_GRACE:?}",
                c.state.id
            )));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Applies `resources` to the cgroup and merges them into the recorded spec: only the
/// sections given are replaced.
pub(crate) fn update(c: &mut Container, resources: &LinuxResources) -> Result<()> {
    let status = c.status();
    if status == Status::Stopped {
        return Err(Error::WrongState {
            id: c.state.id.clone(),
            status,
            op: "update",
        });
    }
    c.cgroup()?.apply(resources)?;
    let mut linux = c.state.spec.linux().clone().unwrap_or_default();
    let mut merged = linux.resources().clone().unwrap_or_default();
    if resources.memory().is_some() {
        merged.set_memory(*resources.memory());
    }
    if resources.cpu().is_some() {
        merged.set_cpu(resources.cpu().clone());
    }
    if resources.pids().is_some() {
        merged.set_pids(*resources.pids());
    }
    if resources.block_io().is_some() {
        merged.set_block_io(resources.block_io().clone());
    }
    if resources.hugepage_limits().is_some() {
        merged.set_hugepage_limits(resources.hugepage_limits().clone());
    }
    if resources.unified().is_some() {
        merged.set_unified(resources.unified().clone());
    }
    linux.set_resources(Some(merged));
    c.state.spec.set_linux(Some(linux));
    c.state.save(&c.dir)
}
