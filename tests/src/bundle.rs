//! Building the OCI spec of a test container.
//!
//! Starts from `Spec::default()` (the default mounts, masked and read-only paths, namespaces and
//! capabilities of a runc-style spec) and adjusts it for tests: the given args, no terminal,
//! the container id as hostname, cgroup `/berth-test/<id>`, root `rootfs` (writable unless
//! [`SpecBuilder::readonly_root`]).

use std::collections::HashMap;
use std::path::Path;

use oci_spec::runtime::{
    Arch, LinuxIdMapping, LinuxIdMappingBuilder, LinuxNamespace, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxResources, LinuxSeccompAction, LinuxSeccompBuilder,
    LinuxSyscallBuilder, LinuxTimeOffset, LinuxTimeOffsetBuilder, Mount, MountBuilder, Root,
    RootBuilder, Spec,
};

/// The cgroup parent of every test container.
pub const CGROUP_PARENT: &str = "berth-test";

/// A spec under construction.
#[derive(Debug, Clone)]
pub struct SpecBuilder {
    spec: Spec,
}

impl SpecBuilder {
    /// The test defaults for container `id` running `args`.
    pub fn new(id: &str, args: &[&str]) -> Self {
        let mut spec = Spec::default();
        spec.set_hostname(Some(id.to_string()));
        spec.set_root(Some(root(false)));
        let process = spec.process_mut().as_mut().expect("default process");
        process.set_terminal(Some(false));
        process.set_args(Some(args.iter().map(|a| a.to_string()).collect()));
        let linux = spec.linux_mut().as_mut().expect("default linux");
        linux.set_cgroups_path(Some(cgroups_path(id).into()));
        SpecBuilder { spec }
    }

    /// The finished spec.
    pub fn build(&self) -> Spec {
        self.spec.clone()
    }

    /// Direct access for changes without a helper.
    pub fn spec_mut(&mut self) -> &mut Spec {
        &mut self.spec
    }

    /// Writes `config.json` into `bundle`.
    pub fn write(&self, bundle: &Path) {
        self.spec
            .save(bundle.join("config.json"))
            .expect("writing config.json");
    }

    pub fn args(mut self, args: &[&str]) -> Self {
        self.process()
            .set_args(Some(args.iter().map(|a| a.to_string()).collect()));
        self
    }

    /// Runs `script` with `sh -c`, but only inside a test rootfs (exit 99 otherwise).
    pub fn script(self, script: &str) -> Self {
        let guarded = in_rootfs(script);
        self.args(&["sh", "-c", &guarded])
    }

    pub fn hostname(mut self, name: &str) -> Self {
        self.spec.set_hostname(Some(name.to_string()));
        self
    }

    pub fn readonly_root(mut self, readonly: bool) -> Self {
        self.spec.set_root(Some(root(readonly)));
        self
    }

    pub fn cwd(mut self, cwd: &str) -> Self {
        self.process().set_cwd(cwd.into());
        self
    }

    pub fn env(mut self, var: &str) -> Self {
        let process = self.process();
        let mut env = process.env().clone().unwrap_or_default();
        env.push(var.to_string());
        process.set_env(Some(env));
        self
    }

    /// Adds a namespace of `typ` (new, no path) unless the spec has one.
    pub fn namespace(mut self, typ: LinuxNamespaceType) -> Self {
        let mut list = self.namespaces();
        if !list.iter().any(|ns| ns.typ() == typ) {
            list.push(namespace(typ));
        }
        self.linux().set_namespaces(Some(list));
        self
    }

    pub fn without_namespace(mut self, typ: LinuxNamespaceType) -> Self {
        let list = self
            .namespaces()
            .into_iter()
            .filter(|ns| ns.typ() != typ)
            .collect();
        self.linux().set_namespaces(Some(list));
        self
    }

    /// Appends a mount.
    pub fn mount(mut self, mount: Mount) -> Self {
        let mut mounts = self.spec.mounts().clone().unwrap_or_default();
        mounts.push(mount);
        self.spec.set_mounts(Some(mounts));
        self
    }

    /// Appends a tmpfs mount at `destination`.
    pub fn tmpfs(self, destination: &str) -> Self {
        self.mount(mount("tmpfs", "tmpfs", destination, &["nosuid", "nodev"]))
    }

    /// Appends a bind mount of host `source` at `destination`.
    pub fn bind(self, source: &Path, destination: &str, readonly: bool) -> Self {
        let mut options = vec!["rbind", "nosuid", "nodev"];
        if readonly {
            options.push("ro");
        }
        let source = source.to_str().expect("utf-8 path");
        self.mount(mount("bind", source, destination, &options))
    }

    /// Changes the resources with `change`.
    pub fn resources(mut self, change: impl FnOnce(&mut LinuxResources)) -> Self {
        let linux = self.linux();
        let mut resources = linux.resources().clone().unwrap_or_default();
        change(&mut resources);
        linux.set_resources(Some(resources));
        self
    }

    pub fn memory_limit(self, bytes: i64) -> Self {
        self.resources(|r| {
            let mut memory = r.memory().unwrap_or_default();
            memory.set_limit(Some(bytes));
            r.set_memory(Some(memory));
        })
    }

    pub fn pids_limit(self, limit: i64) -> Self {
        self.resources(|r| {
            let mut pids = oci_spec::runtime::LinuxPids::default();
            pids.set_limit(limit);
            r.set_pids(Some(pids));
        })
    }

    /// CFS quota and period in microseconds.
    pub fn cpu_quota(self, quota: i64, period: u64) -> Self {
        self.resources(|r| {
            let mut cpu = r.cpu().clone().unwrap_or_default();
            cpu.set_quota(Some(quota));
            cpu.set_period(Some(period));
            r.set_cpu(Some(cpu));
        })
    }

    /// A seccomp filter allowing everything but `syscalls`, which fail with `errno`.
    pub fn seccomp_deny(mut self, syscalls: &[&str], errno: u32) -> Self {
        let rule = LinuxSyscallBuilder::default()
            .names(syscalls.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .action(LinuxSeccompAction::ScmpActErrno)
            .errno_ret(errno)
            .build()
            .expect("syscall rule");
        let seccomp = LinuxSeccompBuilder::default()
            .default_action(LinuxSeccompAction::ScmpActAllow)
            .architectures(vec![
                Arch::ScmpArchX86_64,
                Arch::ScmpArchX86,
                Arch::ScmpArchX32,
            ])
            .syscalls(vec![rule])
            .build()
            .expect("seccomp");
        self.linux().set_seccomp(Some(seccomp));
        self
    }

    /// A new user namespace mapping container ids 0.. to host ids `host_id`.. (`size` ids),
    /// for both uids and gids.
    pub fn user_namespace(mut self, host_id: u32, size: u32) -> Self {
        self = self.namespace(LinuxNamespaceType::User);
        let linux = self.linux();
        linux.set_uid_mappings(Some(vec![id_mapping(host_id, size)]));
        linux.set_gid_mappings(Some(vec![id_mapping(host_id, size)]));
        self
    }

    /// A new time namespace whose `clock` ("monotonic" or "boottime") is ahead by `secs`.
    pub fn time_offset(mut self, clock: &str, secs: i64) -> Self {
        self = self.namespace(LinuxNamespaceType::Time);
        let linux = self.linux();
        let mut offsets: HashMap<String, LinuxTimeOffset> =
            linux.time_offsets().clone().unwrap_or_default();
        let offset = LinuxTimeOffsetBuilder::default()
            .secs(secs)
            .nanosecs(0u32)
            .build()
            .expect("time offset");
        offsets.insert(clock.to_string(), offset);
        linux.set_time_offsets(Some(offsets));
        self
    }

    fn process(&mut self) -> &mut oci_spec::runtime::Process {
        self.spec.process_mut().as_mut().expect("process")
    }

    fn linux(&mut self) -> &mut oci_spec::runtime::Linux {
        self.spec.linux_mut().as_mut().expect("linux")
    }

    fn namespaces(&mut self) -> Vec<LinuxNamespace> {
        self.linux().namespaces().clone().unwrap_or_default()
    }
}

/// `script` prefixed with a check that `/` is a test rootfs: a broken runtime that left the
/// process on the host's root must not make a test write there.
pub fn in_rootfs(script: &str) -> String {
    format!(
        "[ -e /{} ] || {{ echo NOT-IN-TEST-ROOTFS; exit 99; }}; {script}",
        crate::rootfs::SENTINEL
    )
}

/// The cgroups path of container `id` (relative to each hierarchy's root).
pub fn cgroups_path(id: &str) -> String {
    format!("/{CGROUP_PARENT}/{id}")
}

/// A mount of `typ` from `source` at `destination` with `options`.
pub fn mount(typ: &str, source: &str, destination: &str, options: &[&str]) -> Mount {
    MountBuilder::default()
        .typ(typ)
        .source(source)
        .destination(destination)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()
        .expect("mount")
}

fn namespace(typ: LinuxNamespaceType) -> LinuxNamespace {
    LinuxNamespaceBuilder::default()
        .typ(typ)
        .build()
        .expect("namespace")
}

fn id_mapping(host_id: u32, size: u32) -> LinuxIdMapping {
    LinuxIdMappingBuilder::default()
        .container_id(0u32)
        .host_id(host_id)
        .size(size)
        .build()
        .expect("id mapping")
}

fn root(readonly: bool) -> Root {
    RootBuilder::default()
        .path("rootfs")
        .readonly(readonly)
        .build()
        .expect("root")
}
