//! Security battery, syscalls: privileged calls made from a container `berthctl run` starts
//! with default settings (root in the container, docker's capability set, the default seccomp
//! profile) are all refused, and the host shows no trace of them. Calls come from the static
//! `attack` helper (tests/attack/attack.c) in the battery image.

use berth_tests::attack::{assert_refused, Battery, USER};
use berth_tests::daemon::{err_text, text};

/// One syscall case: (attack case, errnos accepted as "refused").
fn refused(case: &[&str], errnos: &[&str]) {
    let b = Battery::shared();
    let line = b.attack(&[], case);
    assert_refused(&line, errnos);
}

#[test]
fn mount_is_refused() {
    refused(&["mount"], &["EPERM"]);
    // The same call through the i386 and x32 entry points: seccomp filters them too (ENOSYS
    // where the kernel lacks them).
    refused(&["mount-i386"], &["EPERM", "ENOSYS"]);
    refused(&["mount-x32"], &["EPERM", "ENOSYS"]);
}

#[test]
fn remounting_proc_sys_writable_is_refused() {
    refused(&["remount-proc-rw"], &["EPERM"]);
}

#[test]
fn umount_of_a_masked_path_is_refused() {
    let b = Battery::shared();
    // umount would unmask /proc/timer_list (readable, non-empty on the host); busybox's umount
    // as well as the raw call.
    assert!(std::fs::metadata("/proc/timer_list")
        .map(|m| m.is_file())
        .unwrap_or(false));
    assert_refused(&b.attack(&[], &["umount", "/proc/timer_list"]), &["EPERM"]);
    let (out, err, _) = b.sh(&[], "umount /proc/timer_list; wc -c < /proc/timer_list");
    assert!(err.contains("Operation not permitted"), "{out}{err}");
    assert_eq!(out.trim(), "0", "{out}{err}");
}

#[test]
fn pivot_root_is_refused() {
    refused(&["pivot_root"], &["EPERM"]);
}

#[test]
fn user_namespaces_cannot_be_created() {
    refused(&["unshare-user"], &["EPERM"]);
    refused(&["clone-newuser"], &["EPERM"]);
    refused(&["unshare-mnt"], &["EPERM"]);
    // busybox unshare as well.
    let b = Battery::shared();
    let (out, err, code) = b.sh(&[], "unshare -U -r id -u; echo rc=$?");
    assert!(out.contains("rc=1"), "{out}{err} ({code})");
    assert!(!out.lines().any(|l| l == "0"), "{out}");
}

#[test]
fn setns_into_another_namespace_is_refused() {
    refused(&["setns"], &["EPERM"]);
}

#[test]
fn keyctl_and_add_key_are_refused() {
    refused(&["keyctl"], &["EPERM"]);
    refused(&["add_key"], &["EPERM"]);
}

#[test]
fn ptrace_of_a_process_outside_the_container_is_impossible() {
    let b = Battery::shared();
    // berthd and the test process have no number in the container's pid namespace: ptrace by
    // their host pids finds nothing (or the container's own process, never theirs).
    let host_pid = b.d.pid().to_string();
    let me = std::process::id().to_string();
    let script = format!(
        "/bin/attack ptrace {host_pid}; /bin/attack ptrace {me}; ls /proc | grep -c '^[0-9]'"
    );
    let (out, err, _) = b.sh(&[], &script);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}{err}");
    assert_refused(lines[0], &["ESRCH"]);
    assert_refused(lines[1], &["ESRCH"]);
    let visible: u32 = lines[2].trim().parse().unwrap_or(99);
    assert!(visible <= 3, "host processes visible: {out}");
}

#[test]
fn ptrace_of_berths_init_is_refused() {
    // With --init, pid 1 is Berth's own init (runtime code, never exec'd, not dumpable): the
    // container's root cannot attach to it nor open its exe. (A container's own program as
    // pid 1 may be traced by the same user in the container, as under docker.)
    let b = Battery::shared();
    let (out, err, _) = b.sh(
        &["--init"],
        "/bin/attack ptrace 1; /bin/attack open /proc/1/exe w; readlink /proc/1/exe || echo noexe",
    );
    assert!(out.contains("ptrace: errno=EPERM "), "{out}{err}");
    let open = out.lines().find(|l| l.starts_with("open: ")).unwrap_or("");
    assert_refused(open, &["EACCES", "EPERM", "ETXTBSY", "EROFS"]);
    assert!(out.contains("noexe"), "{out}{err}");
}

#[test]
fn bpf_is_refused() {
    refused(&["bpf"], &["EPERM"]);
}

#[test]
fn perf_event_open_is_refused() {
    refused(&["perf_event_open"], &["EPERM"]);
}

#[test]
fn kernel_modules_cannot_be_loaded_or_removed() {
    let before = std::fs::read_to_string("/proc/modules").unwrap_or_default();
    refused(&["init_module"], &["EPERM"]);
    refused(&["finit_module"], &["EPERM"]);
    refused(&["delete_module"], &["EPERM"]);
    assert_eq!(
        std::fs::read_to_string("/proc/modules").unwrap_or_default(),
        before
    );
}

#[test]
fn reboot_is_refused() {
    refused(&["reboot"], &["EPERM"]);
}

#[test]
fn the_clock_cannot_be_set() {
    refused(&["settimeofday"], &["EPERM"]);
    refused(&["clock_settime"], &["EPERM"]);
}

#[test]
fn kexec_is_refused() {
    refused(&["kexec_load"], &["EPERM"]);
    refused(&["kexec_file_load"], &["EPERM"]);
    let loaded = std::fs::read_to_string("/sys/kernel/kexec_loaded").unwrap_or_default();
    assert_ne!(loaded.trim(), "1", "a kexec image is loaded");
}

#[test]
fn raw_io_ports_syslog_swap_and_acct_are_refused() {
    refused(&["iopl"], &["EPERM"]);
    refused(&["ioperm"], &["EPERM"]);
    refused(&["syslog"], &["EPERM"]);
    refused(&["swapon"], &["EPERM"]);
    refused(&["acct"], &["EPERM"]);
}

#[test]
fn open_by_handle_at_is_refused() {
    // The "shocker" escape: a file handle for the host's root inode.
    refused(&["open_by_handle_at"], &["EPERM"]);
}

#[test]
fn block_devices_cannot_be_made_or_opened() {
    let b = Battery::shared();
    // mknod of a host block device (loop0 is 7:0; sda 8:0): CAP_MKNOD is in the default set,
    // but the device cgroup refuses making the node ("m") and opening one ("rw").
    for (major, minor) in [("7", "0"), ("8", "0")] {
        let script = format!(
            "/bin/attack mknod /tmp/blk b {major} {minor}; /bin/attack open /tmp/blk r; \
             /bin/attack open /tmp/blk w"
        );
        let (out, err, _) = b.sh(&[], &script);
        let open_lines: Vec<&str> = out.lines().filter(|l| l.starts_with("open: ")).collect();
        assert_eq!(open_lines.len(), 2, "{out}{err}");
        for line in open_lines {
            // EPERM from the device cgroup; ENOENT if mknod itself was refused.
            assert_refused(line, &["EPERM", "ENOENT"]);
        }
    }
}

#[test]
fn host_char_devices_cannot_be_opened() {
    let b = Battery::shared();
    // /dev/mem (1:1), /dev/kmsg (1:11), /dev/kvm (10:232), /dev/tty0 (4:0).
    for (name, major, minor) in [
        ("mem", 1, 1),
        ("kmsg", 1, 11),
        ("kvm", 10, 232),
        ("tty0", 4, 0),
    ] {
        let script = format!(
            "ls /dev/{name} 2>/dev/null && echo present; \
             /bin/attack mknod /tmp/{name} c {major} {minor}; /bin/attack open /tmp/{name} r"
        );
        let (out, err, _) = b.sh(&[], &script);
        assert!(!out.contains("present"), "/dev/{name} exists: {out}");
        let line = out
            .lines()
            .find(|l| l.starts_with("open: "))
            .unwrap_or_else(|| panic!("{out}{err}"));
        assert_refused(line, &["EPERM", "ENOENT"]);
    }
}

#[test]
fn rlimits_cannot_be_raised_past_the_hard_limit() {
    let b = Battery::shared();
    let (out, err, _) = b.sh(&[], "/bin/attack rlimit-raise; ulimit -H -n");
    assert!(out.contains("rlimit-raise: errno=EPERM "), "{out}{err}");
    let hard: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("nofile hard="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    // busybox's ulimit: raising the hard limit fails too.
    let script = format!("ulimit -H -n {}; echo rc=$?; ulimit -H -n", hard + 1);
    let (out, err, _) = b.sh(&[], &script);
    assert!(out.contains("rc=1") || out.contains("rc=2"), "{out}{err}");
    assert!(out.trim_end().ends_with(&hard.to_string()), "{out}");
}

#[test]
fn setuid_binaries_gain_nothing_under_no_new_privileges() {
    let b = Battery::shared();
    let user = USER.to_string();
    let nnp = ["-u", user.as_str(), "--security-opt", "no-new-privileges"];
    let o = b.run(&nnp, &["/bin/attack-suid", "ids"]);
    let out = text(&o);
    assert!(
        out.contains("uid=1000 euid=1000 suid=1000"),
        "setuid took effect under no_new_privs: {out}{}",
        err_text(&o)
    );
    // And it cannot become root afterwards.
    let line = b.attack(&nnp, &["setuid0"]);
    assert_refused(&line, &["EPERM"]);
    // Without no-new-privileges (docker's default too) the setuid bit works, which shows the
    // test can tell the two apart; root there still holds only the default capabilities.
    let o = b.run(
        &["-u", &user],
        &[
            "sh",
            "-c",
            "/bin/attack-suid ids; grep CapEff /proc/self/status",
        ],
    );
    let out = text(&o);
    assert!(out.contains("euid=0"), "{out}");
}

#[test]
fn exec_processes_are_confined_like_the_init() {
    let b = Battery::shared();
    let o = b.d.run(&[
        "run",
        "-d",
        "--name",
        "exec-confined",
        "--network",
        "none",
        berth_tests::attack::IMAGE,
        "sleep",
        "60",
    ]);
    assert!(o.status.success(), "{}", err_text(&o));
    let exec = |cmd: &[&str]| {
        let mut args = vec!["exec", "exec-confined"];
        args.extend_from_slice(cmd);
        text(&b.d.run(&args))
    };
    let confinement = |status: &str| -> Vec<String> {
        status
            .lines()
            .filter(|l| {
                ["Cap", "Seccomp", "NoNewPrivs", "Uid", "Gid"]
                    .iter()
                    .any(|p| l.starts_with(p))
            })
            .map(str::to_string)
            .collect()
    };
    let init = confinement(&exec(&["cat", "/proc/1/status"]));
    let exec_status = exec(&["cat", "/proc/self/status"]);
    let execd = confinement(&exec_status);
    let cgroups = exec(&[
        "sh",
        "-c",
        "diff /proc/1/cgroup /proc/self/cgroup && echo same",
    ]);
    let mount = exec(&["/bin/attack", "mount"]);
    let keyctl = exec(&["/bin/attack", "keyctl"]);
    b.d.run(&["rm", "-f", "exec-confined"]);
    assert!(init.len() >= 8, "{init:?}");
    assert_eq!(init, execd, "an exec'd process is confined differently");
    assert!(exec_status.contains("Seccomp:\t2"), "{exec_status}");
    assert_eq!(cgroups, "same\n");
    assert_refused(mount.trim(), &["EPERM"]);
    assert_refused(keyctl.trim(), &["EPERM"]);
}
