//! User and groups: additional groups, gid, uid and umask of the container process.
//!
//! Runs in a forked child between fork and exec: raw syscalls (per-thread credentials, no
//! glibc setxid broadcast), one small read of /proc/self/setgroups into a stack buffer.

use nix::errno::Errno;
use oci_spec::runtime::User;

use super::ProcessError;

/// The umask when the spec sets none (like runc).
const DEFAULT_UMASK: u32 = 0o022;

/// Sets additional groups, gid, uid (keeping the permitted capabilities across the switch, so
/// `caps::apply_sets` can set them afterwards) and the umask.
///
/// Additional groups are replaced even when the spec lists none (the process must not inherit
/// the runtime's groups), except in a user namespace whose setgroups is denied, where the
/// kernel refuses any setgroups.
pub(crate) fn switch(user: &User) -> Result<(), ProcessError> {
    let gids: &[u32] = user.additional_gids().as_deref().unwrap_or(&[]);
    if !(gids.is_empty() && setgroups_denied()) {
        // SAFETY: setgroups reads `gids.len()` gid_t values from a live slice.
        let rc = unsafe { libc::syscall(libc::SYS_setgroups, gids.len(), gids.as_ptr()) };
        check(rc, "setgroups")?;
    }
    let (uid, gid) = (user.uid(), user.gid());
    // SAFETY: setresgid takes plain integers.
    let rc = unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) };
    check(rc, "setresgid")?;

    set_keep_caps(true)?;
    // SAFETY: setresuid takes plain integers.
    let rc = unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) };
    check(rc, "setresuid")?;
    set_keep_caps(false)?;

    let umask = user.umask().unwrap_or(DEFAULT_UMASK) & 0o777;
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(umask as libc::mode_t) };
    Ok(())
}

/// Sets or clears PR_SET_KEEPCAPS: whether the permitted set survives a switch away from
/// uid 0 (the effective set is cleared either way).
pub(crate) fn set_keep_caps(keep: bool) -> Result<(), ProcessError> {
    // SAFETY: PR_SET_KEEPCAPS takes an integer flag.
    let rc = unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, libc::c_ulong::from(keep), 0, 0, 0) };
    check(rc.into(), "prctl(PR_SET_KEEPCAPS)")
}

/// Whether /proc/self/setgroups says "deny" (a user namespace that forbids setgroups). A
/// missing or unreadable file means allowed.
fn setgroups_denied() -> bool {
    let path = c"/proc/self/setgroups";
    // SAFETY: the path is a NUL-terminated literal.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return false;
    }
    let mut buf = [0u8; 16];
    // SAFETY: reads into a live stack buffer of the given length; `fd` is ours to close.
    let n = unsafe {
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        n
    };
    n >= 4 && buf.starts_with(b"deny")
}

fn check(rc: libc::c_long, context: &'static str) -> Result<(), ProcessError> {
    if rc < 0 {
        Err(ProcessError::sys(context, Errno::last()))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::seccomp::test_fork::run_in_child;

    fn user(uid: u32, gid: u32, gids: Option<Vec<u32>>, umask: Option<u32>) -> User {
        let mut user = User::default();
        user.set_uid(uid);
        user.set_gid(gid);
        user.set_additional_gids(gids);
        user.set_umask(umask);
        user
    }

    fn status_field(field: &str) -> String {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with(&format!("{field}:")))
            .unwrap_or_else(|| panic!("{field} not in /proc/self/status"));
        line[field.len() + 1..]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn want(field: &str, expected: &str) -> Result<(), String> {
        let got = status_field(field);
        if got == expected {
            Ok(())
        } else {
            Err(format!("{field}: got {got:?}, want {expected:?}"))
        }
    }

    #[test]
    fn switches_ids_groups_and_umask_keeping_permitted_caps() {
        run_in_child(|| {
            let before = status_field("CapPrm");
            switch(&user(1234, 2345, Some(vec![3001, 3002]), Some(0o027)))
                .map_err(|e| e.to_string())?;
            want("Uid", "1234 1234 1234 1234")?;
            want("Gid", "2345 2345 2345 2345")?;
            want("Groups", "3001 3002")?;
            want("Umask", "0027")?;
            // The permitted set survived (keepcaps), the effective set is empty.
            want("CapPrm", &before)?;
            want("CapEff", "0000000000000000")?;
            // PR_SET_KEEPCAPS is cleared again afterwards.
            // SAFETY: PR_GET_KEEPCAPS takes no arguments.
            match unsafe { libc::prctl(libc::PR_GET_KEEPCAPS, 0, 0, 0, 0) } {
                0 => Ok(()),
                other => Err(format!("keepcaps still {other}")),
            }
        });
    }

    #[test]
    fn no_additional_gids_clears_groups_and_default_umask_is_022() {
        run_in_child(|| {
            // Start with some groups that must not leak into the container.
            // SAFETY: a live two-element array.
            unsafe { libc::setgroups(2, [10u32, 20].as_ptr()) };
            switch(&user(0, 0, None, None)).map_err(|e| e.to_string())?;
            want("Groups", "")?;
            want("Umask", "0022")
        });
    }

    #[test]
    fn setgroups_is_skipped_when_denied_and_no_groups_are_asked() {
        run_in_child(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)
                .map_err(|e| format!("unshare: {e}"))?;
            let write = |file: &str, text: &str| {
                std::fs::write(format!("/proc/self/{file}"), text)
                    .map_err(|e| format!("writing {file}: {e}"))
            };
            write("setgroups", "deny")?;
            write("uid_map", "0 0 1")?;
            write("gid_map", "0 0 1")?;
            if !setgroups_denied() {
                return Err("setgroups not seen as denied".into());
            }
            switch(&user(0, 0, None, None)).map_err(|e| e.to_string())?;
            // Asking for groups anyway is the kernel's EPERM, not silently ignored.
            match switch(&user(0, 0, Some(vec![0]), None)) {
                Err(ProcessError::Sys { .. }) => Ok(()),
                other => Err(format!("setgroups with deny: {other:?}")),
            }
        });
    }
}
