//! The task: one container (its init) and the processes exec'd into it, driven through
//! berth-runtime. All methods are synchronous and short; the service holds the lock only
//! around them, never across an await.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use berth_proto::shim::v1::{event, Event, ExitStatus};
use berth_runtime::{Container, CreateOptions, ExecOptions, Runtime};
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use tokio::sync::{broadcast, Notify};

use crate::error::{internal, TaskError};
use crate::exit::{now_ns, Exit};
use crate::io::cri_log::Stream;
use crate::io::{self, CriLog, ProcIo};
use crate::process::{Proc, State, Transition};

pub type Shared = Arc<Mutex<Task>>;

pub struct Task {
    pub id: String,
    pub bundle: PathBuf,
    runtime: Runtime,
    container: Option<Container>,
    init: Option<Proc>,
    execs: HashMap<String, Proc>,
    pub events: broadcast::Sender<Event>,
    /// Notified when the shim should stop serving and exit.
    pub shutdown: Arc<Notify>,
    /// Compiled seccomp filters shared by the host's shims.
    pub seccomp_cache: Option<PathBuf>,
}

impl Task {
    pub fn new(id: &str, bundle: PathBuf, seccomp_cache: Option<PathBuf>) -> Task {
        let runtime = Runtime::new(bundle.join(".runtime"));
        Task {
            id: id.to_string(),
            bundle,
            runtime,
            container: None,
            init: None,
            execs: HashMap::new(),
            events: broadcast::channel(64).0,
            shutdown: Arc::new(Notify::new()),
            seccomp_cache,
        }
    }

    pub fn create(&mut self, stdin: bool, log_path: Option<PathBuf>) -> Result<i32, TaskError> {
        if self.init.is_some() {
            return Err(TaskError::AlreadyExists(format!(
                "task {} already created",
                self.id
            )));
        }
        let spec = berth_runtime::load_spec(&self.bundle)?;
        let terminal = spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
        let mut proc = Proc::new(terminal, stdin);
        if let Some(path) = log_path {
            let log = CriLog::open(&path).map_err(|e| internal("opening the log file", e))?;
            proc.io.log = Some(Arc::new(Mutex::new(log)));
        }
        let mut opts = CreateOptions {
            spec: Some(spec),
            seccomp_cache: self.seccomp_cache.clone(),
            ..Default::default()
        };
        let mut wiring = Wiring::prepare(terminal, stdin)?;
        wiring.give(&mut opts.stdio, &mut opts.console_stream);
        let container = self.runtime.create(&self.id, &self.bundle, opts)?;
        let pid = container.pid().unwrap_or(0);
        proc.pid = pid;
        wiring.finish(&mut proc.io)?;
        self.container = Some(container);
        self.init = Some(proc);
        self.publish(event::Kind::Created, "", pid, None);
        Ok(pid)
    }

    pub fn start(&mut self, exec_id: &str) -> Result<i32, TaskError> {
        if exec_id.is_empty() {
            let proc = self.init.as_mut().ok_or_else(no_task)?;
            proc.state.next(Transition::Start)?;
            self.container.as_ref().ok_or_else(no_task)?.start()?;
            proc.apply(Transition::Start)?;
            let pid = proc.pid;
            self.publish(event::Kind::Started, "", pid, None);
            return Ok(pid);
        }
        let container = self.container.as_ref().ok_or_else(no_task)?;
        let proc = self
            .execs
            .get_mut(exec_id)
            .ok_or_else(|| no_exec(exec_id))?;
        proc.state.next(Transition::Start)?;
        let spec = proc.spec.take().ok_or_else(|| no_exec(exec_id))?;
        let mut opts = ExecOptions {
            seccomp_cache: self.seccomp_cache.clone(),
            ..Default::default()
        };
        let mut wiring = Wiring::prepare(proc.terminal, proc.want_stdin)?;
        wiring.give(&mut opts.stdio, &mut opts.console_stream);
        let pid = container.exec(&spec, opts)?;
        proc.pid = pid;
        proc.apply(Transition::Start)?;
        wiring.finish(&mut proc.io)?;
        self.publish(event::Kind::Started, exec_id, pid, None);
        Ok(pid)
    }

    pub fn exec(
        &mut self,
        exec_id: &str,
        process_json: &[u8],
        stdin: bool,
    ) -> Result<(), TaskError> {
        if exec_id.is_empty() || exec_id.len() > 256 || exec_id.contains(['/', '\0']) {
            return Err(TaskError::InvalidArgument(format!(
                "invalid exec id {exec_id:?}"
            )));
        }
        if self.execs.contains_key(exec_id) {
            return Err(TaskError::AlreadyExists(format!(
                "exec {exec_id} already exists"
            )));
        }
        let init = self.init.as_ref().ok_or_else(no_task)?;
        if !matches!(init.state, State::Created | State::Running) {
            return Err(TaskError::FailedPrecondition(format!(
                "cannot exec in a {} container",
                init.state
            )));
        }
        let spec: oci_spec::runtime::Process = serde_json::from_slice(process_json)
            .map_err(|e| TaskError::InvalidArgument(format!("exec process: {e}")))?;
        let mut proc = Proc::new(spec.terminal().unwrap_or(false), stdin);
        proc.spec = Some(spec);
        self.execs.insert(exec_id.to_string(), proc);
        self.publish(event::Kind::ExecAdded, exec_id, 0, None);
        Ok(())
    }

    pub fn kill(&mut self, exec_id: &str, signal: u32, all: bool) -> Result<(), TaskError> {
        let sig = Signal::try_from(signal as i32)
            .map_err(|_| TaskError::InvalidArgument(format!("invalid signal {signal}")))?;
        let proc = self.proc(exec_id)?;
        let exited = || TaskError::NotFound(format!("process {} already exited", name(exec_id)));
        if !proc.is_alive() && !all {
            return Err(exited());
        }
        let pid = proc.pid;
        if exec_id.is_empty() {
            let container = self.container.as_ref().ok_or_else(no_task)?;
            return match container.kill(sig, all) {
                // Died before the reaper saw it: the same answer as an exit already reaped.
                Err(berth_runtime::Error::WrongState {
                    status: berth_runtime::Status::Stopped,
                    ..
                }) => Err(exited()),
                r => Ok(r?),
            };
        }
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)
            .map_err(|e| internal(&format!("kill {pid}"), e))
    }

    pub fn state(&self, exec_id: &str) -> Result<berth_proto::shim::v1::StateResponse, TaskError> {
        let proc = self.proc(exec_id)?;
        Ok(berth_proto::shim::v1::StateResponse {
            id: self.id.clone(),
            exec_id: exec_id.to_string(),
            pid: proc.pid as u32,
            status: proc.state.to_proto() as i32,
            bundle: self.bundle.display().to_string(),
            terminal: proc.terminal,
            exit: proc.exit.borrow().map(crate::exit::to_proto),
        })
    }

    pub fn pause(&mut self) -> Result<(), TaskError> {
        let proc = self.init.as_mut().ok_or_else(no_task)?;
        proc.state.next(Transition::Pause)?;
        self.container.as_ref().ok_or_else(no_task)?.pause()?;
        proc.apply(Transition::Pause)?;
        let pid = proc.pid;
        self.publish(event::Kind::Paused, "", pid, None);
        Ok(())
    }

    pub fn resume(&mut self) -> Result<(), TaskError> {
        let proc = self.init.as_mut().ok_or_else(no_task)?;
        proc.state.next(Transition::Resume)?;
        self.container.as_ref().ok_or_else(no_task)?.resume()?;
        proc.apply(Transition::Resume)?;
        let pid = proc.pid;
        self.publish(event::Kind::Resumed, "", pid, None);
        Ok(())
    }

    pub fn container(&self) -> Result<&Container, TaskError> {
        self.container.as_ref().ok_or_else(no_task)
    }

    pub fn container_mut(&mut self) -> Result<&mut Container, TaskError> {
        self.container.as_mut().ok_or_else(no_task)
    }

    /// Deletes a stopped (or never started) exec process, or the whole container.
    pub fn delete(&mut self, exec_id: &str) -> Result<ExitStatus, TaskError> {
        if !exec_id.is_empty() {
            let proc = self.execs.get(exec_id).ok_or_else(|| no_exec(exec_id))?;
            if proc.is_alive() {
                return Err(TaskError::FailedPrecondition(format!(
                    "exec {exec_id} is {}: kill it first",
                    proc.state
                )));
            }
            let exit = *proc.exit.borrow();
            self.execs.remove(exec_id);
            return Ok(exit.map(crate::exit::to_proto).unwrap_or_default());
        }
        let init = self.init.as_ref().ok_or_else(no_task)?;
        if matches!(init.state, State::Running | State::Paused) {
            return Err(TaskError::FailedPrecondition(format!(
                "container {} is {}: kill it first",
                self.id, init.state
            )));
        }
        let exit = *init.exit.borrow();
        let container = self.container.take().ok_or_else(no_task)?;
        let outcome = container.delete(true)?;
        let _ = std::fs::remove_file(self.bundle.join(crate::exit::EXIT_FILE));
        let _ = std::fs::remove_dir(self.bundle.join(".runtime"));
        let mut status = exit.map(crate::exit::to_proto).unwrap_or_default();
        status.oom_killed |= outcome.oom_killed;
        let pid = init.pid;
        self.publish(event::Kind::Deleted, "", pid, Some(status));
        // End the event streams (subscribers get what was queued first), then stop.
        self.events = broadcast::channel(1).0;
        self.shutdown.notify_one();
        Ok(status)
    }

    /// Any process alive? The shim must not exit while one is.
    pub fn has_live_processes(&self) -> bool {
        self.init
            .iter()
            .chain(self.execs.values())
            .any(Proc::is_alive)
    }

    pub fn proc(&self, exec_id: &str) -> Result<&Proc, TaskError> {
        if exec_id.is_empty() {
            self.init.as_ref().ok_or_else(no_task)
        } else {
            self.execs.get(exec_id).ok_or_else(|| no_exec(exec_id))
        }
    }

    pub fn proc_mut(&mut self, exec_id: &str) -> Result<&mut Proc, TaskError> {
        if exec_id.is_empty() {
            self.init.as_mut().ok_or_else(no_task)
        } else {
            self.execs.get_mut(exec_id).ok_or_else(|| no_exec(exec_id))
        }
    }

    /// A child was reaped. Returns what must happen once its output is drained, or `None` for
    /// a process that is not ours (an orphan that was reparented to us).
    pub fn on_reaped(&mut self, status: WaitStatus) -> Option<PendingExit> {
        let mut exit = crate::exit::from_wait(status)?;
        let (exec_id, proc) = self
            .init
            .iter_mut()
            .map(|p| (String::new(), p))
            .chain(self.execs.iter_mut().map(|(k, p)| (k.clone(), p)))
            .find(|(_, p)| p.pid == exit.pid && p.state != State::Stopped)?;
        if exec_id.is_empty() {
            exit.oom_killed = self
                .container
                .as_ref()
                .and_then(|c| c.stats().ok())
                .is_some_and(|s| s.memory.oom_kill_count > 0);
        }
        let pumps = std::mem::take(&mut proc.io.pumps);
        Some(PendingExit {
            exec_id,
            exit,
            pumps,
        })
    }

    /// Records an exit (after its output was drained): exit file first, then state, waiters
    /// and events.
    pub fn finish_exit(&mut self, exec_id: &str, exit: Exit) {
        if exec_id.is_empty() {
            if let Err(e) = exit.store(&self.bundle) {
                tracing::error!("writing the exit file: {e}");
            }
        }
        let Ok(proc) = self.proc_mut(exec_id) else {
            return;
        };
        let _ = proc.apply(Transition::Exit);
        proc.io.output = None;
        proc.io.stdin = None;
        proc.io.pty = None;
        proc.exit.send_replace(Some(exit));
        if exit.oom_killed {
            self.publish(event::Kind::Oom, exec_id, exit.pid, None);
        }
        self.publish(
            event::Kind::Exited,
            exec_id,
            exit.pid,
            Some(crate::exit::to_proto(exit)),
        );
    }

    fn publish(&self, kind: event::Kind, exec_id: &str, pid: i32, exit: Option<ExitStatus>) {
        let _ = self.events.send(Event {
            kind: kind as i32,
            exec_id: exec_id.to_string(),
            pid: pid as u32,
            exit,
            timestamp_ns: now_ns(),
        });
    }
}

/// An exit waiting for its process's output pumps to finish.
pub struct PendingExit {
    pub exec_id: String,
    pub exit: Exit,
    pub pumps: Vec<tokio::task::JoinHandle<()>>,
}

fn no_task() -> TaskError {
    TaskError::NotFound("the task has not been created".into())
}

fn no_exec(exec_id: &str) -> TaskError {
    TaskError::NotFound(format!("exec {exec_id:?} does not exist"))
}

fn name(exec_id: &str) -> String {
    if exec_id.is_empty() {
        "init".into()
    } else {
        format!("exec {exec_id}")
    }
}

/// How a process's stdio is connected: pipes, or a pty whose master arrives on a socketpair.
enum Wiring {
    Pipes(io::Pipes),
    Tty {
        ours: UnixStream,
        theirs: Option<UnixStream>,
        want_stdin: bool,
    },
}

impl Wiring {
    fn prepare(terminal: bool, want_stdin: bool) -> Result<Wiring, TaskError> {
        if terminal {
            let (ours, theirs) =
                UnixStream::pair().map_err(|e| internal("console socketpair", e))?;
            Ok(Wiring::Tty {
                ours,
                theirs: Some(theirs),
                want_stdin,
            })
        } else {
            io::pipes(want_stdin)
                .map(Wiring::Pipes)
                .map_err(|e| internal("stdio pipes", e))
        }
    }

    /// Hands the runtime its ends (they are closed in the shim once the process has them).
    fn give(&mut self, stdio: &mut berth_runtime::Stdio, console: &mut Option<UnixStream>) {
        match self {
            Wiring::Pipes(p) => *stdio = std::mem::take(&mut p.child),
            Wiring::Tty { theirs, .. } => *console = theirs.take(),
        }
    }

    /// After the process exists: keep our ends and start pumping output.
    fn finish(self, pio: &mut ProcIo) -> Result<(), TaskError> {
        let out = pio
            .output
            .get_or_insert_with(|| broadcast::channel(io::ATTACH_BACKLOG).0)
            .clone();
        match self {
            Wiring::Pipes(p) => {
                if let Some(stdin) = p.stdin {
                    io::set_nonblocking(&stdin).map_err(|e| internal("stdin pipe", e))?;
                    pio.stdin = Some(Arc::new(stdin));
                }
                for (fd, stream) in [(p.stdout, Stream::Stdout), (p.stderr, Stream::Stderr)] {
                    let pump = io::spawn_pump(Arc::new(fd), stream, out.clone(), pio.log.clone())
                        .map_err(|e| internal("output pump", e))?;
                    pio.pumps.push(pump);
                }
            }
            Wiring::Tty {
                ours, want_stdin, ..
            } => {
                let master: OwnedFd = berth_runtime::console::receive_pty_master(&ours)
                    .map_err(|e| internal("receiving the pty master", e))?;
                let master = Arc::new(master);
                let pump =
                    io::spawn_pump(master.clone(), Stream::Stdout, out.clone(), pio.log.clone())
                        .map_err(|e| internal("output pump", e))?;
                pio.pumps.push(pump);
                if want_stdin {
                    // A separate fd number: the pump has the master registered with the reactor.
                    let writer = master
                        .try_clone()
                        .map_err(|e| internal("dup of the pty master", e))?;
                    pio.stdin = Some(Arc::new(writer));
                }
                pio.pty = Some(master);
            }
        }
        Ok(())
    }
}
