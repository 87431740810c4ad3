//! `create`: from a bundle to an init process that is fully set up and waits on the exec fifo.

use std::fs::DirBuilder;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::sys::stat::Mode;
use nix::unistd::{chown, mkfifo, Gid, Uid};
use oci_spec::runtime::{Linux, LinuxIdMapping, Spec};

use super::device_rules;
use super::state::{self, State, EXEC_FIFO};
use super::{Container, CreateOptions, Stdio};
use crate::cgroups::Manager;
use crate::process::namespaces::NamespacePlan;
use crate::process::seccomp::SeccompProgram;
use crate::process::{self, sysctl, trampoline, ChildConfig, Command, InitConfig, Kind};
use crate::rootfs::RootfsOptions;
use crate::{Error, ProcessError, Result};

pub(crate) fn create(
    root: &Path,
    id: &str,
    bundle: &Path,
    opts: CreateOptions,
) -> Result<Container> {
    state::validate_id(id)?;
    let bundle = bundle
        .canonicalize()
        .map_err(|e| Error::io(format!("bundle {}", bundle.display()), e))?;
    let spec = match opts.spec {
        Some(spec) => spec,
        None => load_spec(&bundle)?,
    };
    let began = std::time::Instant::now();
    let checked = Checked::new(&spec, &bundle, id, opts.seccomp_cache.as_deref())?;
    let checked_in = began.elapsed();

    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .map_err(|e| Error::io(format!("creating the state root {}", root.display()), e))?;
    let dir = root.join(id);
    match DirBuilder::new().mode(0o711).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::AlreadyExists(id.to_string()))
        }
        Err(e) => return Err(Error::io(format!("creating {}", dir.display()), e)),
    }
    let mut undo = Undo {
        dir: Some(dir.clone()),
        cgroup: None,
    };

    let fifo = make_exec_fifo(&dir, checked.root_owner)?;
    let cgroup = Manager::new(&checked.cgroup_path)?;
    undo.cgroup = Some(cgroup.clone());
    // Runs in spawn, while the init's first stage creates its namespaces.
    let setup_cgroup = || {
        cgroup.create()?;
        if let Some(linux) = spec.linux() {
            let resources = linux.resources().clone().unwrap_or_default();
            let devices = linux.devices().clone().unwrap_or_default();
            cgroup.apply(&device_rules::with_container_devices(&resources, &devices))?;
        }
        Ok(())
    };

    let console = connect_console(&spec, opts.console_stream, opts.console_socket.as_deref())?;
    let Stdio {
        stdin,
        stdout,
        stderr,
    } = opts.stdio;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::InvalidSpec("process is missing".into()))?;
    let cfg = ChildConfig {
        kind: Kind::Init(InitConfig {
            spec: &spec,
            plan: checked.plan,
            rootfs: RootfsOptions {
                rootfs: checked.rootfs.clone(),
                bundle: bundle.clone(),
                in_user_ns: checked.in_user_ns,
            },
            no_pivot: opts.no_pivot,
            exec_fifo: fifo.as_raw_fd(),
        }),
        process,
        command: checked.command,
        seccomp: checked.seccomp,
        stdio: [&stdin, &stdout, &stderr].map(|fd| fd.as_ref().map(AsRawFd::as_raw_fd)),
        console: console.as_ref().map(AsRawFd::as_raw_fd),
        preserve_fds: opts.preserve_fds,
        self_attach: cgroup.self_attach_files().unwrap_or_default(),
        trampoline: checked.trampoline,
    };
    let prepared_in = began.elapsed();
    // The state is written while stage 2 sets up the rootfs; `undo` removes it on failure.
    let mut saved = None;
    let save_state = |pid| {
        let init_start_time = state::process_start_time(pid)
            .ok_or_else(|| Error::Init("the container's init exited during setup".into()))?;
        let state = State {
            id: id.to_string(),
            init_pid: pid,
            init_start_time,
            bundle: bundle.clone(),
            rootfs: checked.rootfs.clone(),
            created: humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
            cgroup_path: checked.cgroup_path.clone(),
            spec: spec.clone(),
        };
        state.save(&dir)?;
        saved = Some(state);
        Ok(())
    };
    let pid = process::spawn(&cfg, Some(&cgroup), setup_cgroup, save_state)?;
    drop(cfg);
    tracing::debug!(
        id,
        checks = ?checked_in,
        prepare = ?prepared_in - checked_in,
        spawn = ?began.elapsed() - prepared_in,
        "init created"
    );

    let finish = || -> Result<State> {
        let state = saved
            .filter(|s| state::init_alive(pid, s.init_start_time))
            .ok_or_else(|| Error::Init("the container's init exited right after setup".into()))?;
        if let Some(path) = &opts.pid_file {
            super::write_pid_file(path, pid)?;
        }
        Ok(state)
    };
    let state = finish().inspect_err(|_| {
        let pid = nix::unistd::Pid::from_raw(pid);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
    })?;
    undo.dir = None;
    undo.cgroup = None;
    Ok(Container { dir, state })
}

/// Reads `<bundle>/config.json`.
pub fn load_spec(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let data =
        std::fs::read(&path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    serde_json::from_slice(&data)
        .map_err(|e| Error::InvalidSpec(format!("{}: {e}", path.display())))
}

/// Everything about a spec that can be wrong, found before anything is created.
struct Checked {
    plan: NamespacePlan,
    command: Command,
    seccomp: Option<SeccompProgram>,
    rootfs: PathBuf,
    cgroup_path: PathBuf,
    in_user_ns: bool,
    /// Host uid/gid of the container's root (owns the exec fifo).
    root_owner: (u32, u32),
    /// The exec trampoline's fd when this process's binary is not protected.
    trampoline: Option<std::os::fd::RawFd>,
}

impl Checked {
    fn new(spec: &Spec, bundle: &Path, id: &str, seccomp_cache: Option<&Path>) -> Result<Self> {
        let invalid = |e: ProcessError| Error::InvalidSpec(e.to_string());
        let linux = spec
            .linux()
            .as_ref()
            .ok_or_else(|| Error::InvalidSpec("linux section is missing".into()))?;
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| Error::InvalidSpec("process is missing".into()))?;
        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| Error::InvalidSpec("root is missing".into()))?;
        let rootfs = bundle.join(root.path());
        let rootfs = rootfs
            .canonicalize()
            .map_err(|e| Error::InvalidSpec(format!("root.path {}: {e}", rootfs.display())))?;
        if !rootfs.is_dir() {
            return Err(Error::InvalidSpec(format!(
                "root.path {} is not a directory",
                rootfs.display()
            )));
        }
        let plan = NamespacePlan::from_spec(linux).map_err(invalid)?;
        if !plan.isolates(oci_spec::runtime::LinuxNamespaceType::Mount) {
            return Err(Error::InvalidSpec("a mount namespace is required".into()));
        }
        if let Some(sysctls) = linux.sysctl() {
            sysctl::validate(sysctls).map_err(invalid)?;
        }
        let command = Command::from_process(process).map_err(invalid)?;
        let seccomp = match linux.seccomp() {
            Some(s) => Some(compile_seccomp(s, seccomp_cache)?),
            None => None,
        };
        let cgroup_path = cgroup_path(linux, id)?;
        // Protecting our binary is the caller's part (crate::create_needs_protected_exe);
        // where the trampoline can stand in for it, the init execs through it.
        let trampoline = if crate::exe_is_protected(None) || !trampoline::covers(spec, &plan) {
            None
        } else {
            trampoline::fd()
        };
        let in_user_ns = plan.isolates(oci_spec::runtime::LinuxNamespaceType::User);
        let root_owner = if plan.new_user {
            (
                host_id_of_root(linux.uid_mappings()),
                host_id_of_root(linux.gid_mappings()),
            )
        } else {
            (0, 0)
        };
        Ok(Checked {
            plan,
            command,
            seccomp,
            rootfs,
            cgroup_path,
            in_user_ns,
            root_owner,
            trampoline,
        })
    }
}

fn cgroup_path(linux: &Linux, id: &str) -> Result<PathBuf> {
    let path = match linux.cgroups_path() {
        Some(p) if !p.as_os_str().is_empty() => p.clone(),
        _ => PathBuf::from(format!("/berth/{id}")),
    };
    if path
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(Error::InvalidSpec(format!(
            "cgroupsPath {} must not contain ..",
            path.display()
        )));
    }
    Ok(path)
}

fn host_id_of_root(maps: &Option<Vec<LinuxIdMapping>>) -> u32 {
    maps.iter()
        .flatten()
        .find(|m| m.container_id() == 0)
        .map(|m| m.host_id())
        .unwrap_or(0)
}

/// The exec fifo, owned by the container's root, and an O_PATH fd of it for the init.
fn make_exec_fifo(dir: &Path, owner: (u32, u32)) -> Result<OwnedFd> {
    let path = dir.join(EXEC_FIFO);
    mkfifo(&path, Mode::from_bits_truncate(0o622))
        .map_err(|e| Error::sys(format!("mkfifo {}", path.display()), e))?;
    // mkfifo honours the umask; the mode must be exact.
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o622))
        .map_err(|e| Error::io(format!("chmod {}", path.display()), e))?;
    chown(
        &path,
        Some(Uid::from_raw(owner.0)),
        Some(Gid::from_raw(owner.1)),
    )
    .map_err(|e| Error::sys(format!("chown {}", path.display()), e))?;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    Ok(OwnedFd::from(f))
}

pub(crate) fn connect_console(
    spec: &Spec,
    stream: Option<UnixStream>,
    socket: Option<&Path>,
) -> Result<Option<UnixStream>> {
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    if terminal && stream.is_some() {
        return Ok(stream);
    }
    match (terminal, socket) {
        (false, _) => Ok(None),
        (true, None) => Err(Error::InvalidSpec(
            "process.terminal is set: a console socket is required".into(),
        )),
        (true, Some(path)) => UnixStream::connect(path).map(Some).map_err(|e| {
            Error::io(
                format!("connecting to the console socket {}", path.display()),
                e,
            )
        }),
    }
}

/// Removes what a failed create made.
struct Undo {
    dir: Option<PathBuf>,
    cgroup: Option<Manager>,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if let Some(cg) = self.cgroup.take() {
            if let Err(e) = cg.remove() {
                tracing::warn!("removing the cgroup of a failed create: {e}");
            }
        }
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The spec's seccomp filter, through the cache when there is one.
pub(crate) fn compile_seccomp(
    spec: &oci_spec::runtime::LinuxSeccomp,
    cache: Option<&Path>,
) -> Result<SeccompProgram> {
    match cache {
        Some(dir) => SeccompProgram::compile_cached(spec, dir),
        None => SeccompProgram::compile(spec),
    }
    .map_err(|e| Error::InvalidSpec(e.to_string()))
}
