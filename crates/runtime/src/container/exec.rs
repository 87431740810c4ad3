//! `exec`: a new process in the namespaces and cgroup of a running container.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use oci_spec::runtime::Process;

use super::{Container, ExecOptions, Stdio};
use crate::process::{self, ChildConfig, Command, Kind};
use crate::{Error, Result, Status};

pub(crate) fn exec(container: &Container, process: &Process, opts: ExecOptions) -> Result<i32> {
    let status = container.status();
    if !matches!(status, Status::Created | Status::Running) {
        return Err(Error::WrongState {
            id: container.state.id.clone(),
            status,
            op: "exec",
        });
    }
    // An init created through the exec trampoline runs the (unprotected) runtime binary until
    // it is started: nothing may join its pid namespace and see it before then.
    if status == Status::Created && !crate::exe_is_protected(Some(container.state.init_pid)) {
        return Err(Error::WrongState {
            id: container.state.id.clone(),
            status,
            op: "exec before it is started",
        });
    }
    let command = Command::from_process(process).map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let seccomp = match container
        .state
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
    {
        Some(s) => Some(super::create::compile_seccomp(
            s,
            opts.seccomp_cache.as_deref(),
        )?),
        None => None,
    };
    let console = connect(process, opts.console_stream, opts.console_socket.as_deref())?;
    let Stdio {
        stdin,
        stdout,
        stderr,
    } = opts.stdio;
    let cgroup = container.cgroup()?;
    let cfg = ChildConfig {
        kind: Kind::Exec {
            init_pid: container.state.init_pid,
        },
        process,
        command,
        seccomp,
        stdio: [&stdin, &stdout, &stderr].map(|fd| fd.as_ref().map(AsRawFd::as_raw_fd)),
        console: console.as_ref().map(AsRawFd::as_raw_fd),
        preserve_fds: opts.preserve_fds,
        self_attach: cgroup.self_attach_files().unwrap_or_default(),
        trampoline: None,
    };
    let pid = process::spawn(&cfg, Some(&cgroup), || Ok(()), |_| Ok(()))?;
    if let Some(path) = &opts.pid_file {
        super::write_pid_file(path, pid)?;
    }
    Ok(pid)
}

fn connect(
    process: &Process,
    stream: Option<UnixStream>,
    socket: Option<&std::path::Path>,
) -> Result<Option<UnixStream>> {
    if !process.terminal().unwrap_or(false) {
        return Ok(None);
    }
    if stream.is_some() {
        return Ok(stream);
    }
    let path = socket.ok_or_else(|| {
        Error::InvalidSpec("process.terminal is set: a console socket is required".into())
    })?;
    UnixStream::connect(path).map(Some).map_err(|e| {
        Error::io(
            format!("connecting to the console socket {}", path.display()),
            e,
        )
    })
}
