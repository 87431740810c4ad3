//! Helpers for the cgroup tests: fixture directories of fake control files, and forked
//! children that are killed and reaped when dropped.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use tempfile::TempDir;

/// A temp dir holding the given (empty) control files.
pub(crate) fn fixture(files: &[&str]) -> TempDir {
    let d = tempfile::tempdir().unwrap();
    for f in files {
        let p = d.path().join(f);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(p, "").unwrap();
    }
    d
}

/// The trimmed content of `file` in the fixture.
pub(crate) fn read(d: &TempDir, file: &str) -> String {
    read_at(d.path(), file)
}

/// The trimmed content of `dir/file`.
pub(crate) fn read_at(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()))
        .trim()
        .to_string()
}

/// A cgroup path unique to this process and test: `/berth-unit-<pid>-<n>`.
pub(crate) fn unique_path(tag: &str) -> std::path::PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    format!("/berth-unit-{}-{tag}-{n}", std::process::id()).into()
}

/// Owns a test cgroup and the children put in it. When dropped: thaws the cgroup (frozen
/// tasks cannot die), kills and reaps the children, removes the cgroup.
pub(crate) struct CgroupGuard {
    pub(crate) mgr: crate::cgroups::Manager,
    pub(crate) children: Vec<Child>,
}

impl CgroupGuard {
    pub(crate) fn new(mgr: crate::cgroups::Manager) -> Self {
        CgroupGuard {
            mgr,
            children: Vec::new(),
        }
    }
}

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        let _ = self.mgr.thaw();
        self.children.clear();
        let _ = self.mgr.remove();
    }
}

/// A forked child. `Sleep` children pause forever; `ProbeDevices` children wait for
/// [`Child::go`], then try to open `/dev/null` and `/dev/zero` and exit with
/// bit 0 = "/dev/null failed with EPERM", bit 1 = "/dev/zero opened".
pub(crate) struct Child {
    pub(crate) pid: i32,
    go: Option<std::os::fd::OwnedFd>,
    reaped: bool,
}

#[derive(Clone, Copy)]
pub(crate) enum ChildKind {
    Sleep,
    ProbeDevices,
    /// Waits for [`Child::go`], then maps and touches 256 MiB of anonymous memory.
    EatMemory,
}

impl Child {
    pub(crate) fn spawn(kind: ChildKind) -> Child {
        let (r, w) = nix::unistd::pipe().unwrap();
        // SAFETY: the child only calls async-signal-safe libc functions (read, open, pause,
        // _exit) on data prepared before the fork.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            use std::os::fd::AsRawFd;
            let rfd = r.as_raw_fd();
            // SAFETY: see above; this is the child, which never returns.
            unsafe {
                match kind {
                    ChildKind::Sleep => loop {
                        libc::pause();
                    },
                    ChildKind::ProbeDevices => {
                        let mut b = 0u8;
                        libc::read(rfd, (&mut b as *mut u8).cast(), 1);
                        let mut code = 0;
                        let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
                        if fd < 0 && *libc::__errno_location() == libc::EPERM {
                            code |= 1;
                        }
                        if libc::open(c"/dev/zero".as_ptr(), libc::O_RDONLY) >= 0 {
                            code |= 2;
                        }
                        libc::_exit(code);
                    }
                    ChildKind::EatMemory => {
                        let mut b = 0u8;
                        libc::read(rfd, (&mut b as *mut u8).cast(), 1);
                        let len = 256 << 20;
                        let p = libc::mmap(
                            std::ptr::null_mut(),
                            len,
                            libc::PROT_READ | libc::PROT_WRITE,
                            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                            -1,
                            0,
                        );
                        if p == libc::MAP_FAILED {
                            libc::_exit(100);
                        }
                        let mut off = 0;
                        while off < len {
                            *(p as *mut u8).add(off) = 1;
                            off += 4096;
                        }
                        libc::_exit(0);
                    }
                }
            }
        }
        drop(r);
        Child {
            pid,
            go: Some(w),
            reaped: false,
        }
    }

    /// Lets a waiting child run; returns how it ended.
    pub(crate) fn go_and_wait_status(&mut self) -> nix::sys::wait::WaitStatus {
        let w = self.go.take().unwrap();
        nix::unistd::write(&w, b"g").unwrap();
        let st = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(self.pid), None).unwrap();
        self.reaped = true;
        st
    }

    /// Lets a `ProbeDevices` child run; returns its exit code.
    pub(crate) fn go_and_wait(&mut self) -> i32 {
        match self.go_and_wait_status() {
            nix::sys::wait::WaitStatus::Exited(_, c) => c,
            other => panic!("child ended with {other:?}"),
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            let pid = nix::unistd::Pid::from_raw(self.pid);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
        }
    }
}
