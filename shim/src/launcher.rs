//! `berth-shim launcher`: a long-lived process, one per berthd, that forks a shim for each
//! request instead of berthd executing `berth-shim start` for it. A fork of this small,
//! single-threaded process skips what every start of the binary costs (the exec, glibc's
//! start-up, argument parsing): ~2 ms per container here (docs/performance.md).
//!
//! The control socket is stdin, a SOCK_SEQPACKET socket berthd holds the other end of. Each
//! datagram is a [`LaunchRequest`] carrying, as SCM_RIGHTS, the stream its answer goes to. A
//! forked child does exactly what `berth-shim start` does (bind, detach the shim, wait until
//! it serves) with that stream as its stdout, writes a [`LaunchAnswer`] line and exits; the
//! shim takes `start`'s command line ([`crate::title`]). The launcher exits when berthd
//! closes its end (or dies).

use std::io::{IoSliceMut, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use anyhow::{bail, Context};
use berth_proto::shim::{LaunchAnswer, LaunchRequest};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

/// How often forked children are reaped while some are still running.
const REAP_EVERY_MS: u16 = 20;

/// Serves requests on stdin until berthd goes away.
pub fn run(argv0: &str) -> anyhow::Result<()> {
    // Refuse to run where the shims could not carry their own command line (a kernel without
    // CONFIG_CHECKPOINT_RESTORE): berthd then executes `berth-shim start` for each.
    let layout = crate::title::Layout::current()
        .and_then(|l| l.set_args(&[argv0, "launcher"]).map(|()| l))
        .context("setting the command line (PR_SET_MM_MAP)")?;
    // SAFETY: fd 0 stays open for the life of the process (only children replace it).
    let control = unsafe { BorrowedFd::borrow_raw(0) };
    let mut buf = vec![0u8; 64 * 1024];
    let mut running = 0usize;
    loop {
        running = running.saturating_sub(reap());
        let timeout = if running > 0 {
            PollTimeout::from(REAP_EVERY_MS)
        } else {
            PollTimeout::NONE
        };
        match poll(&mut [PollFd::new(control, PollFlags::POLLIN)], timeout) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => bail!("poll: {e}"),
        }
        let (len, answer) = match receive(control, &mut buf) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(()),
            Err(Errno::EINTR | Errno::EAGAIN) => continue,
            Err(e) => bail!("reading a request: {e}"),
        };
        let Some(answer) = answer else {
            eprintln!("berth-shim launcher: a request without an answer stream; ignored");
            continue;
        };
        let request = match serde_json::from_slice::<LaunchRequest>(&buf[..len]) {
            Ok(r) => r,
            Err(e) => {
                reply(answer, failed(format!("a malformed launch request: {e}")));
                continue;
            }
        };
        // SAFETY: this process is single-threaded (no runtime, no threads ever), so the child
        // may run any code. It also never sets up what the shim sets up once per process
        // (the log subscriber, the async runtime): each forked shim does that itself.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => child(argv0, &layout, &request, answer),
            Ok(ForkResult::Parent { .. }) => running += 1,
            Err(e) => reply(answer, failed(format!("fork: {e}"))),
        }
    }
}

/// One datagram: its length and the fd it carried. None at end of file.
fn receive(
    control: BorrowedFd<'_>,
    buf: &mut [u8],
) -> Result<Option<(usize, Option<OwnedFd>)>, Errno> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([RawFd; 2]);
    let msg = recvmsg::<()>(
        control.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut answer = None;
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for fd in fds {
                // SAFETY: the kernel just installed these fds for us; each is owned once.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                answer.get_or_insert(fd);
            }
        }
    }
    if msg.bytes == 0 && answer.is_none() {
        return Ok(None);
    }
    Ok(Some((msg.bytes, answer)))
}

/// Reaps every child that has exited; returns how many.
fn reap() -> usize {
    let mut n = 0;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return n,
            Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) => n += 1,
            Ok(_) => {}
        }
    }
}

/// The forked child: `berth-shim start` with the answer stream as stdout.
fn child(argv0: &str, layout: &crate::title::Layout, req: &LaunchRequest, answer: OwnedFd) -> ! {
    let code = match take_stdio(answer) {
        Ok(()) => {
            let bundle = req.bundle.to_string_lossy();
            let socket_dir = req.socket_dir.to_string_lossy();
            let args = [
                argv0,
                "start",
                "--namespace",
                &req.namespace,
                "--id",
                &req.id,
                "--bundle",
                &bundle,
                "--socket-dir",
                &socket_dir,
            ];
            let started = layout
                .set_args(&args)
                .context("setting the shim's command line")
                .and_then(|()| crate::start(&req.namespace, &req.id, &req.bundle, &req.socket_dir));
            let answer = match started {
                Ok(boot) => LaunchAnswer::Started(boot),
                Err(e) => failed(format!("{e:#}")),
            };
            let mut out = std::io::stdout().lock();
            match serde_json::to_writer(&mut out, &answer)
                .map_err(std::io::Error::from)
                .and_then(|()| writeln!(out))
            {
                Ok(()) => 0,
                Err(_) => 1,
            }
        }
        Err(e) => {
            eprintln!("berth-shim launcher: {e:#}");
            1
        }
    };
    std::process::exit(code)
}

/// Stdin on /dev/null (only the launcher keeps the control socket, so berthd sees it close
/// when the launcher goes), the answer stream as stdout. Nothing else of the launcher's is
/// open, and the shim's own set-up replaces both before it serves.
fn take_stdio(answer: OwnedFd) -> anyhow::Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .open("/dev/null")
        .context("opening /dev/null")?;
    for (src, dst) in [(null.as_fd(), 0), (answer.as_fd(), 1)] {
        // SAFETY: dup2 onto a standard fd of this single-threaded child.
        if unsafe { libc::dup2(src.as_raw_fd(), dst) } < 0 {
            bail!("dup2: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn failed(error: String) -> LaunchAnswer {
    LaunchAnswer::Failed { error }
}

/// An answer from the launcher itself (the request never reached a child).
fn reply(answer: OwnedFd, what: LaunchAnswer) {
    let mut out = std::fs::File::from(answer);
    if let Ok(mut line) = serde_json::to_vec(&what) {
        line.push(b'\n');
        let _ = out.write_all(&line);
    }
}
