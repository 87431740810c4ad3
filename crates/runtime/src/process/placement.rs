//! Running stage 1 beside the parent. A forked child starts on its parent's CPU and, on a
//! small machine, often waits there until the parent sleeps, so the parent's cgroup setup and
//! stage 1's namespaces would run one after the other. The parent pins the fresh child to
//! another CPU it may use; the child puts the caller's CPU mask back once told to go, before it
//! creates anything that inherits the mask.

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

pub(crate) struct Placement {
    original: CpuSet,
    other: CpuSet,
}

impl Placement {
    /// Before fork: the caller's mask and a CPU in it other than the current one (None on a
    /// single allowed CPU).
    pub(crate) fn new() -> Option<Self> {
        let original = sched_getaffinity(Pid::from_raw(0)).ok()?;
        // SAFETY: sched_getcpu takes no arguments.
        let current = unsafe { libc::sched_getcpu() };
        let cpu = (0..CpuSet::count())
            .filter(|&c| c as i32 != current)
            .find(|&c| original.is_set(c).unwrap_or(false))?;
        let mut other = CpuSet::new();
        other.set(cpu).ok()?;
        Some(Placement { original, other })
    }

    /// Parent, right after fork: moves `child` to the other CPU. Best effort.
    pub(crate) fn move_child(&self, child: Pid) {
        let _ = sched_setaffinity(child, &self.other);
    }

    /// Child, once the parent has moved it: the caller's mask again.
    pub(crate) fn restore(&self) -> Result<(), super::ProcessError> {
        sched_setaffinity(Pid::from_raw(0), &self.original)
            .map_err(|e| super::ProcessError::sys("restoring the CPU affinity", e))
    }
}
