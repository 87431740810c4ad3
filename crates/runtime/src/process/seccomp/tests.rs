use nix::errno::Errno;
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall,
};

use super::test_fork::run_in_child;
use super::{docker_default_profile, SeccompError, SeccompProgram};

fn rule(names: &[&str], action: LinuxSeccompAction, errno: Option<u32>) -> LinuxSyscall {
    let mut rule = LinuxSyscall::default();
    rule.set_names(names.iter().map(|n| n.to_string()).collect());
    rule.set_action(action);
    rule.set_errno_ret(errno);
    rule
}

fn set_no_new_privs() -> Result<(), String> {
    // SAFETY: PR_SET_NO_NEW_PRIVS takes no pointers.
    match unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } {
        0 => Ok(()),
        _ => Err(format!("PR_SET_NO_NEW_PRIVS: {}", Errno::last())),
    }
}

/// Runs a raw syscall and returns its result or errno.
fn expect(name: &str, result: libc::c_long, want: Result<(), Errno>) -> Result<(), String> {
    let got = if result < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    };
    if got == want {
        Ok(())
    } else {
        Err(format!("{name}: got {got:?}, want {want:?}"))
    }
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("berth-seccomp-{}-", std::process::id()))
        .tempdir()
        .unwrap()
}

fn c_path(path: &std::path::Path) -> std::ffi::CString {
    std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap()
}

#[test]
fn custom_profile_denies_only_what_it_lists() {
    let mut spec = LinuxSeccomp::default();
    spec.set_default_action(LinuxSeccompAction::ScmpActAllow);
    let mut fchmod = rule(&["fchmod"], LinuxSeccompAction::ScmpActErrno, Some(13));
    let arg = LinuxSeccompArgBuilder::default()
        .index(1usize)
        .value(0o700u64)
        .op(LinuxSeccompOperator::ScmpCmpEq)
        .build()
        .unwrap();
    fchmod.set_args(Some(vec![arg]));
    spec.set_syscalls(Some(vec![
        rule(
            &["mkdir", "mkdirat"],
            LinuxSeccompAction::ScmpActErrno,
            None,
        ),
        rule(&["getcwd"], LinuxSeccompAction::ScmpActErrno, Some(38)),
        // Unknown names are skipped, not fatal.
        rule(
            &["no_such_syscall_berth"],
            LinuxSeccompAction::ScmpActErrno,
            None,
        ),
        // Same action as the default: nothing to add.
        rule(&["getpid"], LinuxSeccompAction::ScmpActAllow, None),
        fchmod,
    ]));
    let program = SeccompProgram::compile(&spec).unwrap();
    assert!(!program.is_empty());

    let dir = temp_dir();
    let new_dir = c_path(&dir.path().join("denied"));
    let file = std::fs::File::create(dir.path().join("file")).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    run_in_child(move || {
        set_no_new_privs()?;
        program.load().map_err(|e| e.to_string())?;
        let mut buf = [0u8; 256];
        // SAFETY (all calls below): raw syscalls with valid pointers to live buffers/paths.
        unsafe {
            expect(
                "mkdir",
                libc::mkdir(new_dir.as_ptr(), 0o755).into(),
                Err(Errno::EPERM),
            )?;
            expect(
                "getcwd",
                libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()),
                Err(Errno::ENOSYS),
            )?;
            expect(
                "fchmod 0700",
                libc::fchmod(fd, 0o700).into(),
                Err(Errno::EACCES),
            )?;
            expect("fchmod 0600", libc::fchmod(fd, 0o600).into(), Ok(()))?;
            expect("getpid", libc::syscall(libc::SYS_getpid), Ok(()))?;
        }
        Ok(())
    });
    assert!(!dir.path().join("denied").exists());
}

#[test]
fn docker_default_profile_denies_dangerous_syscalls() {
    let program = SeccompProgram::compile(&docker_default_profile()).unwrap();
    let dir = temp_dir();
    let allowed_dir = c_path(&dir.path().join("allowed"));
    run_in_child(move || {
        set_no_new_privs()?;
        program.load().map_err(|e| e.to_string())?;
        // SAFETY (all calls below): raw syscalls; the clone calls return immediately in a
        // child that only _exit()s.
        unsafe {
            expect("getpid", libc::syscall(libc::SYS_getpid), Ok(()))?;
            expect(
                "mkdir",
                libc::mkdir(allowed_dir.as_ptr(), 0o755).into(),
                Ok(()),
            )?;
            expect(
                "keyctl",
                libc::syscall(libc::SYS_keyctl, 0, 0, 0),
                Err(Errno::EPERM),
            )?;
            expect(
                "unshare",
                libc::syscall(libc::SYS_unshare, 0),
                Err(Errno::EPERM),
            )?;
            expect(
                "mount",
                libc::syscall(libc::SYS_mount, 0, 0, 0, 0, 0),
                Err(Errno::EPERM),
            )?;
            expect(
                "clone3",
                libc::syscall(libc::SYS_clone3, 0, 0),
                Err(Errno::ENOSYS),
            )?;
            let flags = (libc::CLONE_NEWUTS | libc::SIGCHLD) as libc::c_ulong;
            let pid = libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0);
            if pid == 0 {
                libc::_exit(0);
            }
            expect("clone(CLONE_NEWUTS)", pid, Err(Errno::EPERM))?;
            // A plain fork (clone without namespace flags) still works.
            let pid = libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_ulong, 0, 0, 0, 0);
            if pid == 0 {
                libc::_exit(0);
            }
            expect("clone(SIGCHLD)", pid, Ok(()))?;
            libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0);
            expect(
                "personality query",
                libc::personality(0xffff_ffff).into(),
                Ok(()),
            )?;
        }
        Ok(())
    });
    assert!(dir.path().join("allowed").is_dir());
}

#[test]
fn notify_is_unsupported() {
    let mut spec = LinuxSeccomp::default();
    spec.set_syscalls(Some(vec![rule(
        &["getpid"],
        LinuxSeccompAction::ScmpActNotify,
        None,
    )]));
    let err = SeccompProgram::compile(&spec).unwrap_err();
    assert!(matches!(err, SeccompError::Unsupported(_)), "{err}");
}

#[test]
fn out_of_range_errno_and_argument_index_are_invalid() {
    let mut spec = LinuxSeccomp::default();
    spec.set_syscalls(Some(vec![rule(
        &["getpid"],
        LinuxSeccompAction::ScmpActErrno,
        Some(70_000),
    )]));
    assert!(matches!(
        SeccompProgram::compile(&spec),
        Err(SeccompError::Invalid(_))
    ));

    let mut bad_arg = rule(&["getpid"], LinuxSeccompAction::ScmpActErrno, None);
    let arg = LinuxSeccompArgBuilder::default()
        .index(6usize)
        .build()
        .unwrap();
    bad_arg.set_args(Some(vec![arg]));
    spec.set_syscalls(Some(vec![bad_arg]));
    assert!(matches!(
        SeccompProgram::compile(&spec),
        Err(SeccompError::Invalid(_))
    ));
}

#[test]
fn filter_flags_reach_the_kernel() {
    let mut spec = LinuxSeccomp::default();
    spec.set_default_action(LinuxSeccompAction::ScmpActAllow);
    spec.set_flags(Some(vec![
        LinuxSeccompFilterFlag::SeccompFilterFlagLog,
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow,
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync,
    ]));
    spec.set_syscalls(Some(vec![rule(
        &["getppid"],
        LinuxSeccompAction::ScmpActErrno,
        Some(libc::EACCES as u32),
    )]));
    let program = SeccompProgram::compile(&spec).unwrap();
    assert_eq!(program.flags, 0b111);
    run_in_child(move || {
        set_no_new_privs()?;
        program.load().map_err(|e| e.to_string())?;
        // SAFETY: getppid takes no arguments.
        let rc = unsafe { libc::syscall(libc::SYS_getppid) };
        expect("getppid", rc, Err(Errno::EACCES))
    });
}

#[test]
fn load_without_no_new_privs_or_cap_sys_admin_fails() {
    let program = SeccompProgram::compile(&docker_default_profile()).unwrap();
    run_in_child(move || {
        caps::drop(
            None,
            caps::CapSet::Effective,
            caps::Capability::CAP_SYS_ADMIN,
        )
        .map_err(|e| e.to_string())?;
        match program.load() {
            Err(SeccompError::Load(Errno::EACCES)) => Ok(()),
            other => Err(format!("load: {other:?}")),
        }
    });
}

#[test]
fn allows_unconditionally_is_sure_only_when_every_rule_and_the_default_agree() {
    use super::allows_unconditionally;
    let profile = |default: LinuxSeccompAction, rules: Vec<LinuxSyscall>| {
        let mut s = LinuxSeccomp::default();
        s.set_default_action(default);
        s.set_syscalls(Some(rules));
        s
    };
    let allow = LinuxSeccompAction::ScmpActAllow;
    let errno = LinuxSeccompAction::ScmpActErrno;
    assert!(allows_unconditionally(&profile(allow, vec![]), "execveat"));
    assert!(!allows_unconditionally(
        &profile(allow, vec![rule(&["execveat"], errno, Some(1))]),
        "execveat"
    ));
    assert!(!allows_unconditionally(&profile(errno, vec![]), "execveat"));
    assert!(allows_unconditionally(
        &profile(errno, vec![rule(&["execve", "execveat"], allow, None)]),
        "execveat"
    ));
    let mut conditional = rule(&["execveat"], allow, None);
    conditional.set_args(Some(vec![LinuxSeccompArgBuilder::default()
        .index(4usize)
        .value(0u64)
        .op(LinuxSeccompOperator::ScmpCmpEq)
        .build()
        .unwrap()]));
    assert!(!allows_unconditionally(
        &profile(errno, vec![conditional]),
        "execveat"
    ));
    assert!(allows_unconditionally(
        &docker_default_profile(),
        "execveat"
    ));
}
