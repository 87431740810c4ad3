//! A process's stdio as the shim holds it: pipes (or a pty master) whose output is pumped into
//! the CRI log file and to attached readers, and a stdin end for one writer.

pub mod cri_log;
mod fd;
mod pump;

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use berth_proto::shim::v1::Output;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

pub use cri_log::CriLog;
pub use fd::{set_nonblocking, write_all};
pub use pump::spawn_pump;

/// How many output chunks an attached reader may fall behind before it is dropped.
pub const ATTACH_BACKLOG: usize = 256;

#[derive(Default)]
pub struct ProcIo {
    /// Our end of the process's stdin (pipe write end or a pty master); dropping it is EOF.
    pub stdin: Option<Arc<OwnedFd>>,
    /// A writer is connected to stdin.
    pub stdin_busy: bool,
    /// The pty master, for resizing.
    pub pty: Option<Arc<OwnedFd>>,
    /// Output to attached readers; `None` once every output stream has ended.
    pub output: Option<broadcast::Sender<Output>>,
    /// The pump tasks; they end at end-of-file of the process's output.
    pub pumps: Vec<JoinHandle<()>>,
    pub log: Option<Arc<Mutex<CriLog>>>,
}

/// The runtime's ends and ours for a non-terminal process.
pub struct Pipes {
    pub child: berth_runtime::Stdio,
    pub stdin: Option<OwnedFd>,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// Pipes for stdout and stderr, and stdin when asked (otherwise the process reads /dev/null).
pub fn pipes(want_stdin: bool) -> std::io::Result<Pipes> {
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (stdin_child, stdin_ours) = if want_stdin {
        let (r, w) = pipe()?;
        (r, Some(w))
    } else {
        (OwnedFd::from(std::fs::File::open("/dev/null")?), None)
    };
    Ok(Pipes {
        child: berth_runtime::Stdio {
            stdin: Some(stdin_child),
            stdout: Some(out_w),
            stderr: Some(err_w),
        },
        stdin: stdin_ours,
        stdout: out_r,
        stderr: err_r,
    })
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)
}
