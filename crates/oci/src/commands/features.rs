//! `berth-oci features`: what this runtime supports, in the OCI features format.

use oci_spec::runtime::{
    Arch, Capability, LinuxNamespaceType, LinuxSeccompAction, LinuxSeccompOperator,
};
use serde_json::{json, Value};

/// Mount options the rootfs code understands.
const MOUNT_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "rbind",
    "relatime",
    "remount",
    "ro",
    "rprivate",
    "rshared",
    "rslave",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "tmpcopyup",
    "unbindable",
];

const HOOKS: &[&str] = &[
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

pub fn run() -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&features()?)?);
    Ok(())
}

fn names<T: serde::Serialize>(items: &[T]) -> anyhow::Result<Vec<Value>> {
    items
        .iter()
        .map(|item| serde_json::to_value(item).map_err(Into::into))
        .collect()
}

fn features() -> anyhow::Result<Value> {
    use Capability as C;
    let capabilities = [
        C::Chown,
        C::DacOverride,
        C::DacReadSearch,
        C::Fowner,
        C::Fsetid,
        C::Kill,
        C::Setgid,
        C::Setuid,
        C::Setpcap,
        C::LinuxImmutable,
        C::NetBindService,
        C::NetBroadcast,
        C::NetAdmin,
        C::NetRaw,
        C::IpcLock,
        C::IpcOwner,
        C::SysModule,
        C::SysRawio,
        C::SysChroot,
        C::SysPtrace,
        C::SysPacct,
        C::SysAdmin,
        C::SysBoot,
        C::SysNice,
        C::SysResource,
        C::SysTime,
        C::SysTtyConfig,
        C::Mknod,
        C::Lease,
        C::AuditWrite,
        C::AuditControl,
        C::Setfcap,
        C::MacOverride,
        C::MacAdmin,
        C::Syslog,
        C::WakeAlarm,
        C::BlockSuspend,
        C::AuditRead,
        C::Perfmon,
        C::Bpf,
        C::CheckpointRestore,
    ];
    use LinuxNamespaceType as N;
    let namespaces = [
        N::Cgroup,
        N::Ipc,
        N::Mount,
        N::Network,
        N::Pid,
        N::Time,
        N::User,
        N::Uts,
    ];
    use LinuxSeccompAction as A;
    let actions = [
        A::ScmpActAllow,
        A::ScmpActErrno,
        A::ScmpActKill,
        A::ScmpActKillProcess,
        A::ScmpActKillThread,
        A::ScmpActLog,
        A::ScmpActTrace,
        A::ScmpActTrap,
    ];
    use LinuxSeccompOperator as O;
    let operators = [
        O::ScmpCmpEq,
        O::ScmpCmpGe,
        O::ScmpCmpGt,
        O::ScmpCmpLe,
        O::ScmpCmpLt,
        O::ScmpCmpMaskedEq,
        O::ScmpCmpNe,
    ];
    let archs = [
        Arch::ScmpArchX86,
        Arch::ScmpArchX86_64,
        Arch::ScmpArchX32,
        Arch::ScmpArchAarch64,
        Arch::ScmpArchArm,
    ];
    Ok(json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": HOOKS,
        "mountOptions": MOUNT_OPTIONS,
        "linux": {
            "namespaces": names(&namespaces)?,
            "capabilities": names(&capabilities)?,
            "cgroup": { "v1": true, "v2": true, "systemd": false, "systemdUser": false },
            "seccomp": {
                "enabled": true,
                "actions": names(&actions)?,
                "operators": names(&operators)?,
                "archs": names(&archs)?,
            },
            "apparmor": { "enabled": false },
            "selinux": { "enabled": false },
        },
        "annotations": { "org.opencontainers.runc.checkpoint.enabled": "false" },
    }))
}
