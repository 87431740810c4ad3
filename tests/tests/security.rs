//! Security settings of a container, checked from inside: read-only root, masked and read-only
//! /proc paths, capabilities, seccomp, symlinked mount destinations, leaked fds and cwd.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use berth_tests::guard::TIMEOUT;
use berth_tests::{bundle, reaper, Capture, ContainerGuard, Exit};

#[test]
fn readonly_root_refuses_writes() {
    let guard = ContainerGuard::new();
    let spec = guard
        .spec(&[])
        .script("touch /x")
        .readonly_root(true)
        .build();
    let result = guard.run(&spec);
    assert_ne!(result.exit, Exit::Code(0), "{}", result.output);
    assert!(
        result.output.contains("Read-only file system"),
        "{}",
        result.output
    );
    assert!(!guard.rootfs().join("x").exists());
}

#[test]
fn masked_proc_files_read_empty() {
    // The spec's masked paths that this kernel has (it may lack /proc/kcore).
    let guard = ContainerGuard::new();
    let spec = guard.spec(&[]);
    let masked: Vec<String> = spec
        .build()
        .linux()
        .as_ref()
        .unwrap()
        .masked_paths()
        .clone()
        .unwrap()
        .into_iter()
        .filter(|p| p.starts_with("/proc/") && std::path::Path::new(p).is_file())
        .collect();
    assert!(
        !masked.is_empty(),
        "no masked /proc file exists on this host"
    );
    let script: String = masked
        .iter()
        .map(|p| format!("echo {p} $(wc -c < {p}); "))
        .collect();
    let result = guard.run(&spec.args(&["sh", "-c", &script]).build());
    assert_eq!(result.exit, Exit::Code(0), "{}", result.output);
    for path in &masked {
        assert!(
            result.output.contains(&format!("{path} 0\n")),
            "{path} is readable: {}",
            result.output
        );
    }
    // On the host, the same files are not all empty (the test can tell masking apart).
    let host_nonempty = masked
        .iter()
        .any(|p| std::fs::read(p).map(|c| !c.is_empty()).unwrap_or(false));
    assert!(
        host_nonempty,
        "every masked file is empty on the host too: {masked:?}"
    );
}

#[test]
fn proc_sys_is_readonly() {
    let guard = ContainerGuard::new();
    let spec = guard
        .spec(&[])
        .script("echo other > /proc/sys/kernel/hostname")
        .build();
    let result = guard.run(&spec);
    assert_ne!(result.exit, Exit::Code(0), "{}", result.output);
    assert!(
        result.output.contains("Read-only file system"),
        "{}",
        result.output
    );
}

/// Capability names by bit number (linux/capability.h).
const CAP_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

fn mask_of(caps: &oci_spec::runtime::Capabilities) -> u64 {
    caps.iter()
        .map(|cap| {
            let name = serde_json::to_value(cap).unwrap();
            let name = name.as_str().unwrap();
            let bit = CAP_NAMES.iter().position(|n| *n == name).unwrap();
            1u64 << bit
        })
        .fold(0, |acc, bit| acc | bit)
}

fn status_mask(output: &str, field: &str) -> u64 {
    let line = output
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in {output}"));
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

#[test]
fn capabilities_match_the_spec() {
    let guard = ContainerGuard::new();
    let spec = guard.spec(&["cat", "/proc/self/status"]).build();
    let caps = spec
        .process()
        .as_ref()
        .unwrap()
        .capabilities()
        .clone()
        .unwrap();
    let result = guard.run(&spec);
    assert_eq!(result.exit, Exit::Code(0), "{}", result.output);
    let effective = mask_of(caps.effective().as_ref().unwrap());
    assert_eq!(
        effective,
        (1 << 5) | (1 << 10) | (1 << 29),
        "the default set"
    );
    assert_eq!(status_mask(&result.output, "CapEff:"), effective);
    assert_eq!(
        status_mask(&result.output, "CapBnd:"),
        mask_of(caps.bounding().as_ref().unwrap())
    );
    assert_eq!(
        status_mask(&result.output, "CapPrm:"),
        mask_of(caps.permitted().as_ref().unwrap())
    );
    assert!(
        result.output.contains("NoNewPrivs:\t1"),
        "{}",
        result.output
    );
}

#[test]
fn seccomp_denies_mkdir_with_eperm() {
    let guard = ContainerGuard::new();
    let spec = guard
        .spec(&[])
        .script("mkdir /tmp/x; echo rc=$?; touch /tmp/y && echo touched")
        .seccomp_deny(&["mkdir", "mkdirat"], libc::EPERM as u32)
        .build();
    let result = guard.run(&spec);
    assert!(
        result.output.contains("Operation not permitted"),
        "{}",
        result.output
    );
    assert!(result.output.contains("rc=1"), "{}", result.output);
    assert!(
        result.output.contains("touched"),
        "other syscalls work: {}",
        result.output
    );
    assert!(!guard.rootfs().join("tmp/x").exists());
}

#[test]
fn symlinked_mount_destination_stays_in_the_rootfs() {
    let guard = ContainerGuard::new();
    let outside = guard.scratch().join("outside");
    std::fs::create_dir(&outside).unwrap();
    // /evil in the rootfs points at a host directory by its absolute host path.
    std::os::unix::fs::symlink(&outside, guard.rootfs().join("evil")).unwrap();
    let spec = guard
        .spec(&[])
        .script("touch /evil/sub/marker && echo ok")
        .tmpfs("/evil/sub")
        .build();
    let capture = Capture::new();
    match guard.create(&spec, capture.stdio()) {
        // Refusing the mount is fine too.
        Err(err) => eprintln!("create refused the symlinked destination: {err}"),
        Ok(container) => {
            let pid = container.pid().unwrap();
            container.start().expect("start");
            assert!(reaper::wait_exit(pid, TIMEOUT).is_some());
        }
    }
    let entries: Vec<_> = std::fs::read_dir(&outside).unwrap().collect();
    assert!(
        entries.is_empty(),
        "the runtime wrote outside the rootfs: {entries:?} ({})",
        capture.text()
    );
}

#[test]
fn only_stdio_fds_are_open_inside() {
    let guard = ContainerGuard::new();
    let spec = guard.spec(&["ls", "/proc/self/fd"]).build();
    let result = guard.run(&spec);
    assert_eq!(result.exit, Exit::Code(0), "{}", result.output);
    let fds: BTreeSet<u32> = result
        .output
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect();
    // ls itself holds the directory open (3).
    let allowed: BTreeSet<u32> = [0, 1, 2, 3].into();
    assert!(fds.is_subset(&allowed), "leaked fds: {fds:?}");
    assert!(fds.is_superset(&[0, 1, 2].into()), "{fds:?}");
}

#[test]
fn cwd_through_proc_self_fd_cannot_escape() {
    for fd in 3..=8 {
        let guard = ContainerGuard::new();
        let cwd = format!("/proc/self/fd/{fd}");
        let spec = guard.spec(&["sleep", "30"]).cwd(&cwd).build();
        let container = match guard.create(&spec, Capture::new().stdio()) {
            Ok(container) => container,
            Err(_) => continue,
        };
        let pid = container.pid().unwrap();
        if container.start().is_err() {
            continue;
        }
        // Once the init runs `sleep`, its cwd is final.
        let deadline = Instant::now() + TIMEOUT;
        while reaper::is_alive(pid)
            && std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default() != "sleep\n"
        {
            assert!(Instant::now() < deadline, "sleep never started");
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Ok(cwd) = std::fs::read_link(format!("/proc/{pid}/cwd")) {
            let rootfs = std::fs::canonicalize(guard.rootfs()).unwrap();
            assert!(
                cwd.starts_with(&rootfs),
                "fd {fd}: the container's cwd {} is outside its rootfs",
                cwd.display()
            );
        }
    }
}

#[test]
fn cgroup_of_the_container_is_its_own() {
    let guard = ContainerGuard::new();
    let spec = guard.spec(&["sleep", "30"]).build();
    let container = guard.create(&spec, Capture::new().stdio()).unwrap();
    let pid = container.pid().unwrap();
    container.start().unwrap();
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let expected = bundle::cgroups_path(guard.id());
    // v1: the memory hierarchy's line; v2: the only line, `0::<path>`.
    let line = cgroups
        .lines()
        .find(|l| l.split(':').nth(1) == Some("memory"))
        .or_else(|| cgroups.lines().find(|l| l.starts_with("0::")))
        .unwrap_or_else(|| panic!("no memory or unified line in {cgroups}"));
    assert!(line.ends_with(&expected), "{line} vs {expected}");
}
