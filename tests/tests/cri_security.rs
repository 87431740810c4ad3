//! CRI security contexts on real containers: user and groups (by id and by the image's user
//! name), supplemental groups, capabilities, read-only rootfs, no_new_privs, seccomp
//! RuntimeDefault / Unconfined / Localhost, read-only paths, and a clear error for user
//! namespaces.

use berth_tests::cri::{self, api, container_config, import_busybox, pod_config, run_pod, Cri};
use berth_tests::daemon::DaemonGuard;

async fn run(
    c: &mut Cri,
    pod: &str,
    image: &str,
    name: &str,
    mut sc: api::LinuxContainerSecurityContext,
) -> Result<String, tonic::Status> {
    // A pid namespace of its own, so /proc/1 is the container's init.
    if sc.namespace_options.is_none() {
        sc.namespace_options = Some(api::NamespaceOption {
            pid: api::NamespaceMode::Container as i32,
            ..Default::default()
        });
    }
    let mut cfg = container_config(name, image, &["sleep", "3600"]);
    cfg.linux = Some(api::LinuxContainerConfig {
        resources: None,
        security_context: Some(sc),
    });
    let id = c
        .runtime
        .create_container(api::CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: Some(cfg),
            sandbox_config: None,
        })
        .await?
        .into_inner()
        .container_id;
    c.runtime
        .start_container(api::StartContainerRequest {
            container_id: id.clone(),
        })
        .await?;
    Ok(id)
}

/// Runs `script` in the container; returns stdout (stderr appended) and the exit code.
async fn sh(c: &mut Cri, id: &str, script: &str) -> (String, i32) {
    let r = cri::exec_sync(c, id, &["sh", "-c", script]).await;
    let mut out = String::from_utf8_lossy(&r.stdout).into_owned();
    out.push_str(&String::from_utf8_lossy(&r.stderr));
    (out, r.exit_code)
}

/// A line of the init's /proc/1/status, e.g. "Uid".
async fn status_field(c: &mut Cri, id: &str, field: &str) -> String {
    let (out, _) = sh(c, id, "cat /proc/1/status").await;
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| panic!("no {field} in {out}"))
}

fn profile(t: api::security_profile::ProfileType, local: &str) -> Option<api::SecurityProfile> {
    Some(api::SecurityProfile {
        profile_type: t as i32,
        localhost_ref: local.into(),
    })
}

#[tokio::test]
async fn security_contexts_apply() {
    let d = DaemonGuard::start();
    let image = import_busybox(&d);
    let mut c = cri::connect(&d.socket).await;
    let logs = d.dir.path().join("pod-logs");
    let pod = run_pod(&mut c, pod_config("secure", &logs)).await;

    // A user by id with a group, supplemental groups, no_new_privs, capabilities dropped but
    // one, a read-only rootfs and the runtime's default seccomp profile.
    let strict = run(
        &mut c,
        &pod,
        &image,
        "strict",
        api::LinuxContainerSecurityContext {
            run_as_user: Some(api::Int64Value { value: 1000 }),
            run_as_group: Some(api::Int64Value { value: 1001 }),
            supplemental_groups: vec![2000, 2001],
            no_new_privs: true,
            readonly_rootfs: true,
            capabilities: Some(api::Capability {
                add_capabilities: vec!["NET_BIND_SERVICE".into()],
                drop_capabilities: vec!["ALL".into()],
                ..Default::default()
            }),
            seccomp: profile(api::security_profile::ProfileType::RuntimeDefault, ""),
            readonly_paths: vec!["/proc/sys".into(), "/var/tmp".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        status_field(&mut c, &strict, "Uid").await,
        "1000 1000 1000 1000"
    );
    assert_eq!(
        status_field(&mut c, &strict, "Gid").await,
        "1001 1001 1001 1001"
    );
    assert_eq!(status_field(&mut c, &strict, "Groups").await, "2000 2001");
    assert_eq!(status_field(&mut c, &strict, "NoNewPrivs").await, "1");
    assert_eq!(status_field(&mut c, &strict, "Seccomp").await, "2");
    // CAP_NET_BIND_SERVICE is bit 10.
    assert_eq!(
        status_field(&mut c, &strict, "CapBnd").await,
        "0000000000000400"
    );
    let (out, code) = sh(&mut c, &strict, "touch /newfile").await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    let (out, _) = sh(&mut c, &strict, "grep ' /var/tmp ' /proc/self/mounts").await;
    assert!(out.contains(" ro,") || out.contains(" ro "), "{out}");

    // The image's user by name; unconfined seccomp.
    let named = run(
        &mut c,
        &pod,
        &image,
        "named",
        api::LinuxContainerSecurityContext {
            run_as_username: "nobody".into(),
            seccomp: profile(api::security_profile::ProfileType::Unconfined, ""),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        status_field(&mut c, &named, "Uid").await,
        "65534 65534 65534 65534"
    );
    assert_eq!(status_field(&mut c, &named, "Seccomp").await, "0");

    // A Localhost profile file that refuses mkdir.
    let prof = d.dir.path().join("no-mkdir.json");
    std::fs::write(
        &prof,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let local = run(
        &mut c,
        &pod,
        &image,
        "local",
        api::LinuxContainerSecurityContext {
            seccomp: profile(
                api::security_profile::ProfileType::Localhost,
                prof.to_str().unwrap(),
            ),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (out, code) = sh(&mut c, &local, "mkdir /tmp/x").await;
    assert_ne!(code, 0, "{out}");
    let (_, code) = sh(&mut c, &local, "touch /tmp/y").await;
    assert_eq!(code, 0);

    // Privileged: every capability of the daemon, no seccomp.
    let privileged = run(
        &mut c,
        &pod,
        &image,
        "privileged",
        api::LinuxContainerSecurityContext {
            privileged: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(status_field(&mut c, &privileged, "Seccomp").await, "0");
    let bnd = status_field(&mut c, &privileged, "CapBnd").await;
    assert_ne!(bnd, "0000000000000000");

    // User namespaces: a clear refusal.
    let e = run(
        &mut c,
        &pod,
        &image,
        "userns",
        api::LinuxContainerSecurityContext {
            namespace_options: Some(api::NamespaceOption {
                userns_options: Some(api::UserNamespace {
                    mode: api::NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("user namespaces"), "{e:?}");

    c.runtime
        .remove_pod_sandbox(api::RemovePodSandboxRequest {
            pod_sandbox_id: pod,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn pod_sysctls_cgroup_parent_and_host_network() {
    let d = DaemonGuard::start();
    let image = import_busybox(&d);
    let mut c = cri::connect(&d.socket).await;
    let logs = d.dir.path().join("pod-logs");

    // Namespaced sysctls of the pod, seen by its containers; the pod's cgroup parent.
    let parent = format!("{}/kubepods/podabc", d.cgroup_root);
    let mut cfg = pod_config("tuned", &logs);
    cfg.linux = Some(api::LinuxPodSandboxConfig {
        cgroup_parent: parent.clone(),
        sysctls: [(
            "net.ipv4.ip_unprivileged_port_start".to_string(),
            "0".to_string(),
        )]
        .into(),
        ..Default::default()
    });
    let pod = run_pod(&mut c, cfg).await;
    let id = run(&mut c, &pod, &image, "app", Default::default())
        .await
        .unwrap();
    let (out, _) = sh(
        &mut c,
        &id,
        "cat /proc/sys/net/ipv4/ip_unprivileged_port_start",
    )
    .await;
    assert_eq!(out.trim(), "0");
    let under_parent = berth_tests::daemon::cgroups_under(&parent);
    assert!(
        under_parent.iter().any(|p| p.ends_with(&id)),
        "{id} not under {parent}: {under_parent:?}"
    );
    c.runtime
        .remove_pod_sandbox(api::RemovePodSandboxRequest {
            pod_sandbox_id: pod,
        })
        .await
        .unwrap();

    // A host-network pod: the host's interfaces and hostname.
    let mut cfg = pod_config("hostnet", &logs);
    cfg.linux = Some(api::LinuxPodSandboxConfig {
        security_context: Some(api::LinuxSandboxSecurityContext {
            namespace_options: Some(api::NamespaceOption {
                network: api::NamespaceMode::Node as i32,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let pod = run_pod(&mut c, cfg).await;
    let id = run(&mut c, &pod, &image, "app", Default::default())
        .await
        .unwrap();
    let (out, _) = sh(
        &mut c,
        &id,
        "hostname; echo HOSTNAME=$HOSTNAME; cat /proc/net/dev",
    )
    .await;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let host = host.trim();
    assert!(
        out.starts_with(&format!("{host}\nHOSTNAME={host}\n")),
        "{out}"
    );
    assert!(
        out.contains(&d.bridge),
        "the host's bridge is visible: {out}"
    );
    c.runtime
        .remove_pod_sandbox(api::RemovePodSandboxRequest {
            pod_sandbox_id: pod,
        })
        .await
        .unwrap();
    // The pod's cgroup is kubelet's to remove, as it created it.
    let mut dirs = berth_tests::daemon::cgroups_under(&d.cgroup_root);
    dirs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for dir in dirs
        .iter()
        .filter(|p| p.to_string_lossy().contains("/kubepods"))
    {
        let _ = std::fs::remove_dir(dir);
    }
}

/// Log paths are written by the shim as host root: a pod log directory outside the daemon's
/// log roots (or relative, or with `..`), a container log path that climbs out of it or is
/// absolute, or one through a symlink planted below the log directory, are InvalidArgument,
/// and nothing is written at the target.
#[tokio::test]
async fn log_paths_outside_the_log_roots_are_refused() {
    let d = DaemonGuard::start();
    let image = cri::import_busybox(&d);
    let mut c = cri::connect(&d.socket).await;
    let outside = tempfile::tempdir().expect("temp dir");
    for dir in [
        outside.path().join("pod-logs"),
        d.dir.path().join("pod-logs/../../escape"),
        std::path::PathBuf::from("relative/logs"),
    ] {
        let err = c
            .runtime
            .run_pod_sandbox(api::RunPodSandboxRequest {
                config: Some(pod_config("badlogs", &dir)),
                runtime_handler: String::new(),
            })
            .await
            .expect_err("a log directory outside the roots");
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{dir:?}: {err}");
    }

    let logs = d.dir.path().join("pod-logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::os::unix::fs::symlink(outside.path(), logs.join("link")).unwrap();
    let pod = run_pod(&mut c, pod_config("logs", &logs)).await;
    let escape = format!(
        "../../../../../../../..{}/climbed.log",
        outside.path().display()
    );
    let absolute = outside.path().join("absolute.log").display().to_string();
    for path in [escape.as_str(), absolute.as_str(), "link/planted.log"] {
        let mut cfg = container_config("c", &image, &["true"]);
        cfg.log_path = path.into();
        let err = c
            .runtime
            .create_container(api::CreateContainerRequest {
                pod_sandbox_id: pod.clone(),
                config: Some(cfg),
                sandbox_config: None,
            })
            .await
            .expect_err("a log path out of the log directory");
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{path}: {err}");
    }
    let written: Vec<_> = std::fs::read_dir(outside.path()).unwrap().collect();
    assert!(written.is_empty(), "written outside: {written:?}");

    // The same pod still runs a container logging where it should.
    let mut cfg = container_config("ok", &image, &["echo", "fine"]);
    cfg.log_path = "ok/0.log".into();
    let id = c
        .runtime
        .create_container(api::CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(cfg),
            sandbox_config: None,
        })
        .await
        .unwrap()
        .into_inner()
        .container_id;
    c.runtime
        .start_container(api::StartContainerRequest { container_id: id })
        .await
        .unwrap();
    let log = logs.join("ok/0.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !std::fs::read_to_string(&log).is_ok_and(|s| s.contains("stdout F fine")) {
        assert!(
            std::time::Instant::now() < deadline,
            "no log line in {log:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    c.runtime
        .stop_pod_sandbox(api::StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .unwrap();
    c.runtime
        .remove_pod_sandbox(api::RemovePodSandboxRequest {
            pod_sandbox_id: pod,
        })
        .await
        .unwrap();
}
