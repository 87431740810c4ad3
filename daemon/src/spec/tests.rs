use super::*;
use berth_proto::v1::Mount as RunMount;

fn inputs<'a>(image: &'a ImageConfig, opts: &'a RunOptions) -> Inputs<'a> {
    Inputs {
        id: "0123456789abcdef",
        namespace: "default",
        image,
        opts,
        cgroup_v2: false,
        cgroup_root: "/berth",
    }
}

fn image() -> ImageConfig {
    ImageConfig {
        entrypoint: vec!["/entry".into()],
        cmd: vec!["serve".into()],
        env: vec!["PATH=/custom".into(), "A=1".into()],
        workdir: "/app".into(),
        ..Default::default()
    }
}

#[test]
fn image_config_and_options_combine_like_docker() {
    let img = image();
    let opts = RunOptions {
        args: vec!["other".into()],
        env: vec!["A=2".into(), "B=3".into()],
        memory: 64 << 20,
        cpus: 1.5,
        pids_limit: 50,
        cap_drop: vec!["NET_RAW".into()],
        cap_add: vec!["sys_admin".into()],
        read_only: true,
        init: true,
        mounts: vec![RunMount {
            r#type: "tmpfs".into(),
            destination: "/scratch".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let spec = generate(&inputs(&img, &opts)).unwrap();
    let p = spec.process().as_ref().unwrap();
    assert_eq!(
        p.args().as_ref().unwrap(),
        &vec!["/entry".to_string(), "other".to_string()]
    );
    let env = p.env().as_ref().unwrap();
    assert!(env.contains(&"PATH=/custom".to_string()));
    assert!(env.contains(&"A=2".to_string()) && !env.contains(&"A=1".to_string()));
    assert_eq!(p.cwd().to_str(), Some("/app"));
    let caps = p
        .capabilities()
        .as_ref()
        .unwrap()
        .effective()
        .as_ref()
        .unwrap();
    assert!(caps.contains(&Capability::SysAdmin) && !caps.contains(&Capability::NetRaw));
    assert!(caps.contains(&Capability::Chown));
    let set = p.capabilities().as_ref().unwrap();
    assert!(set.inheritable().as_ref().is_some_and(|c| c.is_empty()));
    assert!(set.ambient().as_ref().is_some_and(|c| c.is_empty()));
    let linux = spec.linux().as_ref().unwrap();
    let r = linux.resources().as_ref().unwrap();
    assert_eq!(r.memory().as_ref().unwrap().limit(), Some(64 << 20));
    assert_eq!(r.cpu().as_ref().unwrap().quota(), Some(150_000));
    assert_eq!(r.pids().as_ref().unwrap().limit(), 50);
    assert!(linux.seccomp().is_some());
    assert!(linux
        .masked_paths()
        .as_ref()
        .unwrap()
        .contains(&"/proc/kcore".to_string()));
    assert_eq!(
        linux.cgroups_path().as_ref().unwrap().to_str(),
        Some("/berth/default/0123456789abcdef")
    );
    assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
    assert_eq!(spec.hostname().as_deref(), Some("0123456789ab"));
    assert!(spec
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .any(|m| m.destination().to_str() == Some("/scratch")));
    assert_eq!(
        spec.annotations()
            .as_ref()
            .unwrap()
            .get(INIT_ANNOTATION)
            .map(String::as_str),
        Some("true")
    );
}

#[test]
fn entrypoint_override_drops_cmd_and_host_namespaces_are_left_out() {
    let img = image();
    let opts = RunOptions {
        entrypoint: vec!["sh".into()],
        pid: "host".into(),
        network: "host".into(),
        privileged: true,
        ..Default::default()
    };
    let spec = generate(&inputs(&img, &opts)).unwrap();
    assert_eq!(
        spec.process().as_ref().unwrap().args().as_ref().unwrap(),
        &vec!["sh".to_string()]
    );
    let linux = spec.linux().as_ref().unwrap();
    let types: Vec<_> = linux
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .map(|n| n.typ())
        .collect();
    assert!(!types.contains(&LinuxNamespaceType::Pid));
    assert!(!types.contains(&LinuxNamespaceType::Network));
    assert!(linux.seccomp().is_none());
    assert!(linux.masked_paths().is_none());
    let caps = spec
        .process()
        .as_ref()
        .unwrap()
        .capabilities()
        .as_ref()
        .unwrap();
    let ours = caps::read(None, caps::CapSet::Bounding).unwrap();
    assert_eq!(
        caps.bounding().as_ref().unwrap().len(),
        ours.len(),
        "privileged gets every capability the daemon has"
    );
}

#[test]
fn bad_options_are_invalid_arguments() {
    let img = ImageConfig::default();
    for opts in [
        RunOptions::default(),
        RunOptions {
            args: vec!["x".into()],
            cap_add: vec!["CAP_MAKE_COFFEE".into()],
            ..Default::default()
        },
        RunOptions {
            args: vec!["x".into()],
            memory: 1024,
            ..Default::default()
        },
        RunOptions {
            args: vec!["x".into()],
            workdir: "relative".into(),
            ..Default::default()
        },
        RunOptions {
            args: vec!["x".into()],
            pid: "sideways".into(),
            ..Default::default()
        },
        RunOptions {
            args: vec!["x".into()],
            cgroup_parent: "/a/../b".into(),
            ..Default::default()
        },
    ] {
        assert!(
            matches!(
                generate(&inputs(&img, &opts)),
                Err(ApiError::InvalidArgument(_))
            ),
            "{opts:?}"
        );
    }
}

#[test]
fn hold_asks_the_runtime_for_a_holding_init() {
    let img = image();
    let opts = RunOptions {
        hold: true,
        init: true,
        ..Default::default()
    };
    let spec = generate(&inputs(&img, &opts)).unwrap();
    assert_eq!(
        spec.annotations()
            .as_ref()
            .and_then(|a| a.get(INIT_ANNOTATION))
            .map(String::as_str),
        Some("hold")
    );
}
