//! Security battery, /proc, /sys, fds and the cgroup fs, from inside a container `berthctl run`
//! starts with default settings: the runtime's binaries cannot be overwritten through
//! /proc/<pid>/exe (CVE-2019-5736), no host fd or cwd leaks in (CVE-2024-21626), masked paths are
//! masked with the real /dev/null (CVE-2025-31133), /proc and /sys refuse writes, the cgroup fs
//! cannot be used to leave the container's cgroup, and no daemon or shim socket is reachable.

use std::path::PathBuf;

use berth_tests::attack::{assert_refused, file_hash, fingerprint, Battery, IMAGE};
use berth_tests::bin;
use berth_tests::daemon::{err_text, text};
use berth_tests::images::Entry;

/// The host binaries a container must never be able to change.
fn runtime_binaries() -> Vec<PathBuf> {
    ["berthd", "berth-shim", "berth-oci", "berthctl"]
        .iter()
        .map(|b| bin::bin(b))
        .collect()
}

#[test]
fn proc_exe_of_every_visible_process_cannot_be_opened_for_writing() {
    let b = Battery::shared();
    let before: Vec<String> = runtime_binaries().iter().map(|p| fingerprint(p)).collect();
    // A container that keeps trying to open /proc/<pid>/exe for writing for every process it
    // can see, while execs (processes the runtime brings in) come and go.
    let script = "while true; do for p in /proc/[0-9]*; do \
                  [ \"$p\" = /proc/$$ ] && continue; \
                  r=$(/bin/attack open $p/exe w 2>&1); echo \"$p $r\" >> /tmp/tries; \
                  done; done";
    let o = b.d.run(&[
        "run",
        "-d",
        "--name",
        "exe-hunter",
        "--network",
        "none",
        // One core for the busy loop, the other for the daemon and the execs.
        "--cpus",
        "1",
        IMAGE,
        "sh",
        "-c",
        script,
    ]);
    assert!(o.status.success(), "{}{}", text(&o), err_text(&o));
    for _ in 0..8 {
        let o = b.d.run(&["exec", "exe-hunter", "sleep", "0.2"]);
        assert!(o.status.success(), "{}", err_text(&o));
    }
    let o = b.d.run(&["exec", "exe-hunter", "cat", "/tmp/tries"]);
    let tries = text(&o);
    b.d.run(&["rm", "-f", "exe-hunter"]);
    assert!(tries.lines().count() > 20, "the loop never ran: {tries}");
    // exec'd processes were tried, some while the runtime still held them (not dumpable yet:
    // EACCES), others once they ran busybox (ETXTBSY).
    assert!(tries.contains("open: errno=EACCES"), "{tries}");
    let opened: Vec<&str> = tries.lines().filter(|l| l.ends_with("open: ok")).collect();
    assert!(opened.is_empty(), "opened for writing: {opened:?}");
    let after: Vec<String> = runtime_binaries().iter().map(|p| fingerprint(p)).collect();
    assert_eq!(before, after, "a runtime binary changed");
}

#[test]
fn proc_self_exe_overwrite_fails_and_the_image_is_unchanged() {
    let b = Battery::shared();
    let (out, err, _) = b.sh(
        &[],
        "/bin/attack open /proc/self/exe w; echo x > /proc/self/exe; echo rc=$?; \
         /bin/attack open /proc/1/exe w",
    );
    assert_eq!(out.matches("open: errno=ETXTBSY").count(), 2, "{out}{err}");
    assert!(out.contains("rc=1"), "{out}{err}");
    // The image's busybox (the exe of both) is unchanged in a new container.
    let o = b.run(&[], &["sha256sum", "/bin/busybox"]);
    let host = file_hash(std::path::Path::new(berth_tests::rootfs::BUSYBOX));
    assert!(text(&o).starts_with(&host[7..]), "{} vs {host}", text(&o));
}

#[test]
fn only_stdio_fds_are_inherited() {
    let b = Battery::shared();
    for flags in [&[][..], &["--init"][..], &["-t"][..]] {
        let o = b.run(flags, &["ls", "/proc/self/fd"]);
        let fds: Vec<String> = text(&o)
            .split_whitespace()
            .map(|s| s.trim().to_string())
            .collect();
        // ls holds the directory open as 3.
        assert!(
            fds.iter()
                .all(|f| ["0", "1", "2", "3"].contains(&f.as_str())),
            "{flags:?}: leaked fds {fds:?} {}",
            err_text(&o)
        );
        assert!(fds.len() >= 3, "{flags:?}: {fds:?} {}", err_text(&o));
    }
    // exec'd processes too.
    let o = b.d.run(&[
        "run",
        "-d",
        "--name",
        "fd-exec",
        "--network",
        "none",
        IMAGE,
        "sleep",
        "30",
    ]);
    assert!(o.status.success(), "{}", err_text(&o));
    let o = b.d.run(&["exec", "fd-exec", "ls", "/proc/self/fd"]);
    b.d.run(&["rm", "-f", "fd-exec"]);
    let out = text(&o);
    assert!(
        out.split_whitespace()
            .all(|f| ["0", "1", "2", "3"].contains(&f)),
        "exec leaked fds: {out}"
    );
    assert!(out.contains('2'), "{out}{}", err_text(&o));
}

#[test]
fn no_fd_leads_outside_the_rootfs() {
    let b = Battery::shared();
    // fchdir into every fd number: none may be open, so none leads anywhere.
    let line = b.attack(&[], &["chdir-fds"]);
    assert_eq!(line, "chdir-fds: ok");
    let o = b.run(&[], &["/bin/attack", "chdir-fds"]);
    assert!(
        !text(&o).contains("fd "),
        "an fd is a directory: {}",
        text(&o)
    );
}

#[test]
fn workdir_through_proc_self_fd_cannot_escape() {
    let b = Battery::shared();
    for fd in 3..=9 {
        let wd = format!("/proc/self/fd/{fd}");
        let o = b.run(&["-w", &wd], &["sh", "-c", "pwd; ls .. | head -3"]);
        let out = text(&o);
        // Refused (not a directory in the container), or a cwd inside the container.
        assert!(
            !out.contains("unreachable") && !out.contains("berth"),
            "fd {fd}: {out}{}",
            err_text(&o)
        );
        if o.status.success() {
            assert!(out.starts_with('/'), "fd {fd}: {out}");
        }
    }
}

#[test]
fn masked_paths_are_empty_and_masked_with_the_real_null_device() {
    let b = Battery::shared();
    // The default masked paths this kernel has.
    let files: Vec<&str> = [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/proc/latency_stats",
    ]
    .into_iter()
    .filter(|p| std::path::Path::new(p).is_file())
    .collect();
    let dirs: Vec<&str> = ["/proc/acpi", "/proc/scsi", "/proc/asound", "/sys/firmware"]
        .into_iter()
        .filter(|p| std::path::Path::new(p).is_dir())
        .collect();
    assert!(!files.is_empty() && !dirs.is_empty());
    let mut script = String::new();
    for f in &files {
        script.push_str(&format!(
            "echo {f} $(wc -c < {f}) $(stat -c '%F %t:%T' {f}); "
        ));
    }
    for d in &dirs {
        script.push_str(&format!("echo {d} $(ls -A {d} | wc -l); "));
    }
    script.push_str("echo /dev/null $(stat -c '%F %t:%T' /dev/null)");
    let (out, err, code) = b.sh(&[], &script);
    assert_eq!(code, 0, "{out}{err}");
    for f in &files {
        assert!(
            out.contains(&format!("{f} 0 character special file 1:3\n")),
            "{f} not masked by /dev/null: {out}"
        );
    }
    for d in &dirs {
        assert!(out.contains(&format!("{d} 0\n")), "{d} not empty: {out}");
    }
    assert!(
        out.contains("/dev/null character special file 1:3"),
        "{out}"
    );
    // The host's /proc/keys and /proc/timer_list are not empty: the masking is what hides them.
    assert!(files
        .iter()
        .any(|f| !std::fs::read(f).unwrap_or_default().is_empty()));
}

#[test]
fn an_image_dev_null_symlink_does_not_redirect_masking() {
    // CVE-2025-31133: /dev/null in the rootfs swapped for a symlink to a host-sensitive file.
    // The image's /dev is covered by the container's own tmpfs; masking still uses 1:3 and the
    // target is untouched.
    let b = Battery::shared();
    b.import(
        "devnull-link:1",
        vec![
            Entry::dir("dev/"),
            Entry::symlink("dev/null", "/proc/sys/kernel/core_pattern"),
        ],
    );
    let before = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let o = b.run_image(
        "devnull-link:1",
        &[],
        &[
            "sh",
            "-c",
            "stat -c '%F %t:%T' /dev/null /proc/timer_list; echo '|/bin/evil' > /dev/null; \
             wc -c < /proc/timer_list",
        ],
    );
    let out = text(&o);
    assert_eq!(
        out,
        "character special file 1:3\ncharacter special file 1:3\n0\n",
        "{}",
        err_text(&o)
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        before
    );
}

#[test]
fn proc_sys_and_sysrq_trigger_refuse_writes() {
    let b = Battery::shared();
    let core = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let script = "echo '|/bin/evil' > /proc/sys/kernel/core_pattern; echo rc=$?; \
                  echo 1 > /proc/sys/vm/drop_caches; echo rc=$?; \
                  [ -e /proc/sysrq-trigger ] && { echo h > /proc/sysrq-trigger; echo rc=$?; }; \
                  /bin/attack open /proc/sys/kernel/core_pattern w; \
                  /bin/attack open /proc/sysrq-trigger w";
    let (out, err, _) = b.sh(&[], script);
    // This kernel may lack /proc/sysrq-trigger (then the open finds nothing).
    let sysrq = std::path::Path::new("/proc/sysrq-trigger").exists();
    let writes = if sysrq { 3 } else { 2 };
    assert_eq!(out.matches("rc=1").count(), writes, "{out}{err}");
    assert_eq!(
        err.matches("Read-only file system").count(),
        writes,
        "{out}{err}"
    );
    let opens: Vec<&str> = out.lines().filter(|l| l.starts_with("open: ")).collect();
    assert_eq!(opens.len(), 2, "{out}");
    assert_refused(opens[0], &["EROFS"]);
    assert_refused(opens[1], if sysrq { &["EROFS"] } else { &["ENOENT"] });
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        core
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        hostname
    );
}

#[test]
fn proc_kcore_and_kernel_memory_cannot_be_read() {
    let b = Battery::shared();
    // /proc/kcore is masked (when the kernel has it); /dev/mem and /dev/kmem are not in /dev
    // and kallsyms shows no addresses without CAP_SYSLOG.
    let (out, err, _) = b.sh(
        &[],
        "wc -c < /proc/kcore 2>/dev/null || echo nokcore; ls /dev/mem /dev/kmem 2>&1; \
         head -1 /proc/kallsyms",
    );
    let first = out.lines().next().unwrap_or("");
    assert!(first == "0" || first == "nokcore", "{out}{err}");
    assert!(!out.contains("/dev/mem\n"), "{out}");
    let kallsyms = out.lines().last().unwrap_or("");
    assert!(
        kallsyms.starts_with("0000000000000000") || kallsyms.is_empty(),
        "kernel addresses visible: {kallsyms}"
    );
}

#[test]
fn sys_refuses_writes() {
    let b = Battery::shared();
    let mtu = std::fs::read_to_string("/sys/class/net/lo/mtu").unwrap_or_default();
    let script = "echo 1 > /sys/kernel/mm/ksm/run; echo rc=$?; \
                  echo 1280 > /sys/class/net/lo/mtu; echo rc=$?; \
                  touch /sys/evil; echo rc=$?; \
                  /bin/attack open /sys/kernel/profiling w";
    let (out, err, _) = b.sh(&[], script);
    assert_eq!(out.matches("rc=1").count(), 3, "{out}{err}");
    assert!(err.contains("Read-only file system"), "{out}{err}");
    let line = out.lines().find(|l| l.starts_with("open: ")).unwrap_or("");
    assert_refused(line, &["EROFS", "ENOENT", "EACCES"]);
    assert_eq!(
        std::fs::read_to_string("/sys/class/net/lo/mtu").unwrap_or_default(),
        mtu
    );
}

#[test]
fn the_cgroup_fs_cannot_be_used_to_escape() {
    let b = Battery::shared();
    // Moving itself to the root cgroup, making a cgroup, setting a release agent
    // (CVE-2022-0492), raising its own limits, mounting a fresh cgroup hierarchy.
    let script = "cat /proc/self/cgroup > /tmp/before; \
                  for f in /sys/fs/cgroup/*/cgroup.procs /sys/fs/cgroup/cgroup.procs; do \
                    [ -e $f ] && { echo $$ > $f && echo MOVED $f; }; done; \
                  for d in /sys/fs/cgroup/*/; do mkdir $d/evil 2>/dev/null && echo MADE $d; done; \
                  for f in /sys/fs/cgroup/*/release_agent; do \
                    [ -e $f ] && { echo /evil > $f && echo AGENT $f; }; done; \
                  echo max > /sys/fs/cgroup/pids/pids.max 2>/dev/null && echo RAISED; \
                  mount -t cgroup -o memory cgroup /mnt && echo MOUNTED; \
                  cat /proc/self/cgroup | diff /tmp/before - && echo same; \
                  ls /sys/fs/cgroup | wc -l";
    let (out, err, _) = b.sh(&["--pids-limit", "100"], script);
    for bad in ["MOVED", "MADE", "AGENT", "RAISED", "MOUNTED"] {
        assert!(!out.contains(bad), "{bad}: {out}{err}");
    }
    assert!(out.contains("same"), "{out}{err}");
    assert!(
        err.contains("Read-only file system") || err.contains("Operation not permitted"),
        "{err}"
    );
    // The cgroup fs is there (read-only), so the attempts above hit it.
    let count: u32 = out
        .lines()
        .last()
        .unwrap_or("0")
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(count > 0, "no cgroup fs in the container: {out}");
    // No release agent was set on the host.
    for agent in glob_release_agents() {
        let v = std::fs::read_to_string(&agent).unwrap_or_default();
        assert!(!v.contains("/evil"), "{}: {v}", agent.display());
    }
}

fn glob_release_agents() -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("release_agent"))
        .filter(|p| p.exists())
        .collect()
}

#[test]
fn no_daemon_or_shim_socket_is_reachable() {
    let b = Battery::shared();
    let o = b.d.run(&[
        "run",
        "-d",
        "--name",
        "sock-probe",
        "--network",
        "none",
        IMAGE,
        "sleep",
        "60",
    ]);
    assert!(o.status.success(), "{}", err_text(&o));
    // The host paths of the daemon's socket and of every shim socket.
    let mut paths = vec![b.d.socket.display().to_string()];
    for ns in std::fs::read_dir(b.d.state().join("tasks"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for t in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
            let boot = berth_proto::shim::Bootstrap::load(&t.path()).expect("bootstrap.json");
            if let Some(sock) = boot.socket_path() {
                paths.push(sock.display().to_string());
            }
        }
    }
    assert!(
        paths.len() >= 2 && paths.iter().all(|p| std::path::Path::new(p).exists()),
        "{paths:?}"
    );
    let script = format!(
        "find / -path /proc -prune -o -path /sys -prune -o -type s -print; \
         for p in {} /run/berth; do [ -e $p ] && echo VISIBLE $p; done; \
         grep -c berth /proc/net/unix; echo done",
        paths.join(" ")
    );
    let o = b.d.run(&["exec", "sock-probe", "sh", "-c", &script]);
    b.d.run(&["rm", "-f", "sock-probe"]);
    let out = text(&o);
    // No socket file anywhere, none of the paths, and no berth socket in its netns.
    assert_eq!(out, "0\ndone\n", "{}", err_text(&o));
}
