//! The process's command line as /proc/<pid>/cmdline (and so ps and berthd's orphan pass)
//! shows it. A shim forked by the launcher takes the command line `berth-shim start` would
//! have had, so it looks exactly like one that was executed.

use std::io::{Error, ErrorKind};

/// `struct prctl_mm_map` (linux/prctl.h).
#[repr(C)]
struct MmMap {
    start_code: u64,
    end_code: u64,
    start_data: u64,
    end_data: u64,
    start_brk: u64,
    brk: u64,
    start_stack: u64,
    arg_start: u64,
    arg_end: u64,
    env_start: u64,
    env_end: u64,
    auxv: *mut u64,
    auxv_size: u32,
    exe_fd: u32,
}

/// The bounds of this process's memory map other than its arguments', as /proc/self/stat
/// tells them. A fork has the same ones, so the launcher reads them once for all its shims.
pub struct Layout {
    start_code: u64,
    end_code: u64,
    start_data: u64,
    end_data: u64,
    start_brk: u64,
    start_stack: u64,
    env_start: u64,
    env_end: u64,
}

impl Layout {
    pub fn current() -> std::io::Result<Layout> {
        let stat = std::fs::read_to_string("/proc/self/stat")?;
        let fields: Vec<u64> = stat
            .rsplit_once(')')
            .map(|(_, rest)| {
                rest.split_whitespace()
                    .map(|f| f.parse().unwrap_or(0))
                    .collect()
            })
            .unwrap_or_default();
        // proc(5) numbers the fields from 1 (pid, comm, state, ...): field n is fields[n - 3].
        let field = |n: usize| fields.get(n - 3).copied().ok_or(ErrorKind::InvalidData);
        Ok(Layout {
            start_code: field(26)?,
            end_code: field(27)?,
            start_data: field(45)?,
            end_data: field(46)?,
            start_brk: field(47)?,
            start_stack: field(28)?,
            env_start: field(50)?,
            env_end: field(51)?,
        })
    }

    /// Points the kernel's view of our arguments at a new block holding `args` (leaked: it
    /// must live as long as the process). PR_SET_MM_MAP, which needs no capability (unlike
    /// the single-field PR_SET_MM, which needs CAP_SYS_RESOURCE), takes every bound of the
    /// memory map at once: the others are passed back unchanged, the break as brk(0) tells
    /// it now. Only for a single-threaded process (another thread's brk in between would be
    /// undone).
    pub fn set_args(&self, args: &[&str]) -> std::io::Result<()> {
        let mut block = Vec::new();
        for a in args {
            block.extend_from_slice(a.as_bytes());
            block.push(0);
        }
        let block: &'static [u8] = Vec::leak(block);
        let mut map = MmMap {
            start_code: self.start_code,
            end_code: self.end_code,
            start_data: self.start_data,
            end_data: self.end_data,
            start_brk: self.start_brk,
            brk: 0,
            start_stack: self.start_stack,
            arg_start: block.as_ptr() as u64,
            arg_end: block.as_ptr() as u64 + block.len() as u64,
            env_start: self.env_start,
            env_end: self.env_end,
            auxv: std::ptr::null_mut(),
            auxv_size: 0,
            exe_fd: u32::MAX,
        };
        // SAFETY: brk(0) only reports the current break.
        map.brk = unsafe { libc::syscall(libc::SYS_brk, 0) } as u64;
        // SAFETY: the kernel reads `map` (its exact size is passed) and records the
        // addresses; every bound but the arguments' is the current one.
        let r = unsafe {
            libc::prctl(
                libc::PR_SET_MM,
                libc::PR_SET_MM_MAP,
                &map as *const MmMap,
                std::mem::size_of::<MmMap>(),
                0,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(Error::last_os_error())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_shows_the_new_command_line() {
        let before = std::fs::read("/proc/self/cmdline").unwrap();
        let env = std::fs::read("/proc/self/environ").unwrap();
        Layout::current()
            .and_then(|l| l.set_args(&["berth-shim", "start", "--id", "x y"]))
            .expect("PR_SET_MM_MAP");
        let after = std::fs::read("/proc/self/cmdline").unwrap();
        assert_eq!(after, b"berth-shim\0start\0--id\0x y\0");
        assert_ne!(before, after);
        // Nothing else moved: the environment and the heap still work.
        assert_eq!(std::fs::read("/proc/self/environ").unwrap(), env);
        let grown: Vec<u8> = vec![7; 1 << 20];
        assert_eq!(grown.iter().map(|&b| b as usize).sum::<usize>(), 7 << 20);
    }
}
