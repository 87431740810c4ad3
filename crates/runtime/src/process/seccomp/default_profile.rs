//! A default seccomp profile with the semantics of Docker's: everything not listed fails with
//! EPERM; the allowlist is what ordinary programs need, plus the extras Docker grants for its
//! default capability set (CAP_SYS_CHROOT: `chroot`; no CAP_SYS_ADMIN: `clone` only without
//! namespace flags and `clone3` answered with ENOSYS so libcs fall back to `clone`).

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};

/// Syscalls every container may make.
#[rustfmt::skip]
const ALLOWED: &[&str] = &[
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "cachestat", "capget",
    "capset", "chdir", "chmod", "chown", "chown32", "clock_adjtime", "clock_adjtime64",
    "clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep",
    "clock_nanosleep_time64", "close", "close_range", "connect", "copy_file_range", "creat",
    "dup", "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old",
    "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2",
    "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2", "fadvise64",
    "fadvise64_64", "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchmodat2",
    "fchown", "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr",
    "flock", "fork", "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs",
    "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futex", "futex_requeue", "futex_time64",
    "futex_wait", "futex_waitv", "futex_wake", "futimesat", "getcpu", "getcwd", "getdents",
    "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32",
    "getgroups", "getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp", "getpid",
    "getppid", "getpriority", "getrandom", "getresgid", "getresgid32", "getresuid",
    "getresuid32", "getrlimit", "get_robust_list", "getrusage", "getsid", "getsockname",
    "getsockopt", "get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32", "getxattr",
    "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel",
    "ioctl", "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64", "ioprio_get",
    "ioprio_set", "io_setup", "io_submit", "ipc", "kill", "landlock_add_rule",
    "landlock_create_ruleset", "landlock_restrict_self", "lchown", "lchown32", "lgetxattr",
    "link", "linkat", "listen", "listxattr", "llistxattr", "_llseek", "lremovexattr", "lseek",
    "lsetxattr", "lstat", "lstat64", "madvise", "map_shadow_stack", "membarrier",
    "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock",
    "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr", "mq_notify", "mq_open",
    "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64",
    "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock",
    "munlockall", "munmap", "name_to_handle_at", "nanosleep", "newfstatat", "_newselect", "open",
    "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2",
    "pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl",
    "pread64", "preadv", "preadv2", "prlimit64", "process_mrelease", "pselect6",
    "pselect6_time64", "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink",
    "readlinkat", "readv", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg",
    "remap_file_pages", "removexattr", "rename", "renameat", "renameat2", "restart_syscall",
    "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
    "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr", "sched_getparam",
    "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity",
    "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select",
    "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "send", "sendfile",
    "sendfile64", "sendmmsg", "sendmsg", "sendto", "setfsgid", "setfsgid32", "setfsuid",
    "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32", "setitimer", "setpgid",
    "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid",
    "setresuid32", "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid",
    "setsockopt", "set_thread_area", "set_tid_address", "setuid", "setuid32", "setxattr",
    "shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4",
    "sigprocmask", "sigreturn", "socketcall", "socketpair", "splice", "stat", "stat64", "statfs",
    "statfs64", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo",
    "tee", "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime",
    "timer_gettime64", "timer_settime", "timer_settime64", "timerfd_create", "timerfd_gettime",
    "timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times", "tkill", "truncate",
    "truncate64", "ugetrlimit", "umask", "uname", "unlink", "unlinkat", "utime", "utimensat",
    "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid", "write",
    "writev",
    // Tracing one's own children is harmless since Linux 4.8 (seccomp is re-checked after a
    // tracer changes a syscall); Docker allows these on such kernels.
    "kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace",
];

/// Granted because the default capability set includes CAP_SYS_CHROOT.
const ALLOWED_SYS_CHROOT: &[&str] = &["chroot"];

/// x86 only: thread-local storage and LDT setup.
const ALLOWED_X86: &[&str] = &["arch_prctl", "modify_ldt"];

/// ARM only.
#[rustfmt::skip]
const ALLOWED_ARM: &[&str] = &[
    "arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush",
    "set_tls",
];

/// Personalities a process may switch to: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32
/// and 0xffffffff (query).
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// CLONE_NEWNS | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWCGROUP.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

/// `AF_VSOCK`: host-guest sockets stay closed.
const AF_VSOCK: u64 = 40;

/// Docker's default seccomp profile as written by Berth, for the default capability set and the
/// architectures of the build host (x86_64: also x86 and x32; aarch64: also arm).
pub fn docker_default_profile() -> LinuxSeccomp {
    let mut syscalls = vec![
        rule(ALLOWED, LinuxSeccompAction::ScmpActAllow),
        rule(ALLOWED_SYS_CHROOT, LinuxSeccompAction::ScmpActAllow),
        rule_with_args(
            &["socket"],
            vec![arg(0, AF_VSOCK, None, LinuxSeccompOperator::ScmpCmpNe)],
        ),
        // Several comparisons of the same argument: any one of them allows the call.
        rule_with_args(
            &["personality"],
            PERSONALITIES
                .iter()
                .map(|p| arg(0, *p, None, LinuxSeccompOperator::ScmpCmpEq))
                .collect(),
        ),
        // Without CAP_SYS_ADMIN: new processes and threads, but no new namespaces.
        rule_with_args(
            &["clone"],
            vec![arg(
                0,
                CLONE_NAMESPACE_FLAGS,
                Some(0),
                LinuxSeccompOperator::ScmpCmpMaskedEq,
            )],
        ),
    ];
    // clone3's flags live in memory seccomp cannot inspect: pretend it does not exist.
    let mut clone3 = rule(&["clone3"], LinuxSeccompAction::ScmpActErrno);
    clone3.set_errno_ret(Some(libc::ENOSYS as u32));
    syscalls.push(clone3);

    let architectures = if cfg!(target_arch = "x86_64") {
        syscalls.push(rule(ALLOWED_X86, LinuxSeccompAction::ScmpActAllow));
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    } else if cfg!(target_arch = "x86") {
        syscalls.push(rule(ALLOWED_X86, LinuxSeccompAction::ScmpActAllow));
        vec![Arch::ScmpArchX86]
    } else if cfg!(target_arch = "aarch64") {
        syscalls.push(rule(ALLOWED_ARM, LinuxSeccompAction::ScmpActAllow));
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    } else if cfg!(target_arch = "arm") {
        syscalls.push(rule(ALLOWED_ARM, LinuxSeccompAction::ScmpActAllow));
        vec![Arch::ScmpArchArm]
    } else {
        vec![Arch::ScmpArchNative]
    };

    let mut profile = LinuxSeccomp::default();
    profile.set_default_action(LinuxSeccompAction::ScmpActErrno);
    profile.set_default_errno_ret(Some(libc::EPERM as u32));
    profile.set_architectures(Some(architectures));
    profile.set_syscalls(Some(syscalls));
    profile
}

fn rule(names: &[&str], action: LinuxSeccompAction) -> LinuxSyscall {
    let mut rule = LinuxSyscall::default();
    rule.set_names(names.iter().map(|n| (*n).to_owned()).collect());
    rule.set_action(action);
    rule
}

fn rule_with_args(names: &[&str], args: Vec<LinuxSeccompArg>) -> LinuxSyscall {
    let mut rule = rule(names, LinuxSeccompAction::ScmpActAllow);
    rule.set_args(Some(args));
    rule
}

fn arg(
    index: usize,
    value: u64,
    value_two: Option<u64>,
    op: LinuxSeccompOperator,
) -> LinuxSeccompArg {
    let builder = LinuxSeccompArgBuilder::default()
        .index(index)
        .value(value)
        .op(op);
    let builder = match value_two {
        Some(value_two) => builder.value_two(value_two),
        None => builder,
    };
    // The builder only fails on missing fields without defaults; every field has one.
    builder
        .build()
        .expect("LinuxSeccompArg fields all have defaults")
}
