//! The channel between the runtime (parent) and the processes it forks while it sets up a
//! container process: a `SOCK_SEQPACKET` socketpair carrying one JSON message per packet.
//!
//! Both ends are close-on-exec, so a successful `execve` in the child shows up as end-of-file
//! on the parent's side.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{Deserialize, Serialize};

use super::ProcessError;

/// Largest message: an error string or a warning. Packets are never split.
const MAX_MESSAGE: usize = 64 * 1024;

/// What flows between the parent and the stages of a container process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Message {
    /// Parent → child: carry on (the child has been placed in its cgroup, or its pid is known).
    Go,
    /// Stage 1 → parent: write uid_map and gid_map of this pid (it has a new user namespace).
    NeedIdMaps(i32),
    /// Parent → stage 1: the maps are written.
    IdMapsDone,
    /// Stage 1 → parent: the host pid of the process that will exec the container's program.
    Stage2Pid(i32),
    /// Stage 2 → parent: something the parent should log (the child never logs itself).
    Warn(String),
    /// Stage 2 → parent: set up, waiting for `start` (container init only).
    Ready,
    /// Any stage → parent: setup failed; the stage exits.
    Error(String),
}

/// One end of the channel.
#[derive(Debug)]
pub(crate) struct Channel {
    fd: OwnedFd,
}

/// A connected pair: (parent end, child end).
pub(crate) fn pair() -> Result<(Channel, Channel), ProcessError> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| ProcessError::sys("socketpair", e))?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub(crate) fn send(&self, msg: &Message) -> Result<(), ProcessError> {
        let buf = serde_json::to_vec(msg)
            .map_err(|e| ProcessError::Invalid(format!("encoding {msg:?}: {e}")))?;
        loop {
            match send(self.fd.as_raw_fd(), &buf, MsgFlags::MSG_NOSIGNAL) {
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(ProcessError::sys("sending on the init channel", e)),
            }
        }
    }

    /// The next message, or `None` when every other end is closed (or exec'd).
    pub(crate) fn recv(&self) -> Result<Option<Message>, ProcessError> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let n = loop {
            match recv(self.fd.as_fd().as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(n) => break n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(ProcessError::sys("reading the init channel", e)),
            }
        };
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buf[..n])
            .map(Some)
            .map_err(|e| ProcessError::Invalid(format!("bad message on the init channel: {e}")))
    }

    /// Waits for one specific message; an `Error` or end-of-file become errors.
    pub(crate) fn expect(&self, want: &Message) -> Result<(), ProcessError> {
        match self.recv()? {
            Some(m) if &m == want => Ok(()),
            Some(Message::Error(e)) => Err(ProcessError::Invalid(e)),
            Some(other) => Err(ProcessError::Invalid(format!(
                "expected {want:?} on the init channel, got {other:?}"
            ))),
            None => Err(ProcessError::Invalid(format!(
                "init channel closed while waiting for {want:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_cross_the_pair_and_eof_is_none() {
        let (a, b) = pair().unwrap();
        a.send(&Message::Stage2Pid(42)).unwrap();
        a.send(&Message::Error("boom".into())).unwrap();
        assert_eq!(b.recv().unwrap(), Some(Message::Stage2Pid(42)));
        assert!(matches!(b.expect(&Message::Go), Err(ProcessError::Invalid(e)) if e == "boom"));
        drop(a);
        assert_eq!(b.recv().unwrap(), None);
    }
}
