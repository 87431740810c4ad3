//! berthd's side of the shim launcher (`berth-shim launcher`, docs/shim.md): one long-lived
//! child that forks a shim per request, so a task's start does not execute the shim binary.
//! Started at the first request from the same read-only clone `berth-shim start` would be
//! executed from, again when that clone changes (an upgrade) or the launcher died. Whenever it
//! cannot serve a request, the caller executes `berth-shim start` instead: the launcher only
//! makes starts faster, never possible.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_proto::shim::{LaunchAnswer, LaunchRequest};
use nix::errno::Errno;
use nix::sys::socket::{
    sendmsg, socketpair, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
};
use tokio::io::AsyncReadExt;

/// Set to `0` in berthd's environment: execute `berth-shim start` for every shim.
pub const DISABLE_ENV: &str = "BERTH_SHIM_LAUNCHER";

pub struct Launcher {
    enabled: bool,
    live: Mutex<Option<Live>>,
}

/// A running (or exited) launcher. One that failed is not started again from the same clone.
struct Live {
    /// The executable clone it was started from.
    exe: Arc<OwnedFd>,
    control: Arc<OwnedFd>,
    /// Set once the launcher process has exited.
    gone: Arc<AtomicBool>,
    /// Set when it exited with an error (it cannot run here: no PR_SET_MM_MAP, say).
    failed: Arc<AtomicBool>,
}

/// Why a request got no answer from a launcher: the caller starts the shim itself.
#[derive(Debug)]
pub struct Unavailable(pub String);

impl Launcher {
    pub fn new() -> Launcher {
        Launcher {
            enabled: std::env::var(DISABLE_ENV).map_or(true, |v| v != "0"),
            live: Mutex::new(None),
        }
    }

    /// Asks a launcher running `exe` (a clone of `binary`) for a task's shim and waits up to
    /// `timeout` for its answer.
    pub async fn start(
        &self,
        exe: &Arc<OwnedFd>,
        binary: &Path,
        request: &LaunchRequest,
        timeout: Duration,
    ) -> Result<LaunchAnswer, Unavailable> {
        if !self.enabled {
            return Err(Unavailable(format!("{DISABLE_ENV}=0")));
        }
        let message = serde_json::to_vec(request)
            .map_err(|e| Unavailable(format!("encoding the request: {e}")))?;
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()
            .map_err(|e| Unavailable(format!("socketpair: {e}")))?;
        // A launcher that died since its last request is only noticed when sending: one
        // fresh one gets the request then.
        let mut tries = 0;
        loop {
            let control = self.control(exe, binary)?;
            let sent = sendmsg::<()>(
                control.as_raw_fd(),
                &[IoSlice::new(&message)],
                &[ControlMessage::ScmRights(&[theirs.as_raw_fd()])],
                MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
                None,
            );
            match sent {
                Ok(_) => break,
                // Busy with a burst: not dead, but not for this request either.
                Err(Errno::EAGAIN) => return Err(Unavailable("the launcher is busy".into())),
                Err(e) => {
                    self.forget(&control);
                    tries += 1;
                    if tries == 2 {
                        return Err(Unavailable(format!("sending the request: {e}")));
                    }
                }
            }
        }
        // Only the child that answers holds the other end now: end of file follows its answer.
        drop(theirs);
        ours.set_nonblocking(true)
            .map_err(|e| Unavailable(format!("answer stream: {e}")))?;
        let mut stream = tokio::net::UnixStream::from_std(ours)
            .map_err(|e| Unavailable(format!("answer stream: {e}")))?;
        let mut out = Vec::new();
        match tokio::time::timeout(timeout, stream.read_to_end(&mut out)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(Unavailable(format!("reading the answer: {e}"))),
            // A start that hangs (a bundle on a stuck mount, say) would hang executed too; and
            // it may still finish: never a second start beside it.
            Err(_) => {
                return Ok(LaunchAnswer::Failed {
                    error: format!("the shim did not start within {timeout:?}"),
                })
            }
        }
        // Nothing at all: the launcher died before it forked (or the child before it bound
        // anything that a new start would not replace).
        serde_json::from_slice(&out).map_err(|e| {
            Unavailable(format!(
                "the launcher's answer {:?}: {e}",
                String::from_utf8_lossy(&out).trim()
            ))
        })
    }

    /// The control socket of a live launcher running `exe`, started if need be.
    fn control(&self, exe: &Arc<OwnedFd>, binary: &Path) -> Result<Arc<OwnedFd>, Unavailable> {
        let mut live = self
            .live
            .lock()
            .map_err(|_| Unavailable("poisoned".into()))?;
        if let Some(l) = live.as_ref() {
            if Arc::ptr_eq(&l.exe, exe) {
                if l.failed.load(Ordering::Acquire) {
                    return Err(Unavailable("the launcher failed (see the log)".into()));
                }
                if !l.gone.load(Ordering::Acquire) {
                    return Ok(l.control.clone());
                }
            }
        }
        // Dropping the old control socket ends the old launcher.
        *live = None;
        let l = spawn(exe, binary)?;
        let control = l.control.clone();
        *live = Some(l);
        Ok(control)
    }

    fn forget(&self, control: &Arc<OwnedFd>) {
        if let Ok(mut live) = self.live.lock() {
            if live
                .as_ref()
                .is_some_and(|l| Arc::ptr_eq(&l.control, control))
            {
                *live = None;
            }
        }
    }
}

fn spawn(exe: &Arc<OwnedFd>, binary: &Path) -> Result<Live, Unavailable> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Unavailable(format!("socketpair: {e}")))?;
    let mut child = crate::shims::clone_command(exe, binary)
        .arg("launcher")
        .stdin(std::process::Stdio::from(theirs))
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| Unavailable(format!("starting {} launcher: {e}", binary.display())))?;
    let gone = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicBool::new(false));
    let (gone_flag, failed_flag) = (gone.clone(), failed.clone());
    tokio::spawn(async move {
        match child.wait().await {
            // Refused to run here (killed by a signal, it is just started again).
            Ok(status) if status.code().is_some_and(|c| c != 0) => {
                tracing::warn!(%status, "the shim launcher failed; each shim is executed instead");
                failed_flag.store(true, Ordering::Release);
            }
            Ok(status) => tracing::debug!(%status, "the shim launcher exited"),
            Err(e) => tracing::warn!("waiting for the shim launcher: {e}"),
        }
        gone_flag.store(true, Ordering::Release);
    });
    tracing::debug!("shim launcher started");
    Ok(Live {
        exe: exe.clone(),
        control: Arc::new(ours),
        gone,
        failed,
    })
}
