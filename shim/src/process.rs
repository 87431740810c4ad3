//! One process of a task (the container's init or an exec process) and its lifecycle state
//! machine: each state allows only its own transitions.

use std::fmt;

use tokio::sync::watch;

use crate::error::TaskError;
use crate::exit::Exit;
use crate::io::ProcIo;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Created,
    Running,
    Paused,
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Start,
    Pause,
    Resume,
    Exit,
}

impl State {
    /// The state after `t`, or a FailedPrecondition naming the illegal move.
    pub fn next(self, t: Transition) -> Result<State, TaskError> {
        use State::*;
        use Transition::*;
        match (self, t) {
            (Created, Start) => Ok(Running),
            (Running, Pause) => Ok(Paused),
            (Paused, Resume) => Ok(Running),
            (Created | Running | Paused, Exit) => Ok(Stopped),
            (s, t) => Err(TaskError::FailedPrecondition(format!(
                "cannot {t} a {s} process"
            ))),
        }
    }

    pub fn to_proto(self) -> berth_proto::shim::v1::Status {
        use berth_proto::shim::v1::Status as P;
        match self {
            State::Created => P::Created,
            State::Running => P::Running,
            State::Paused => P::Paused,
            State::Stopped => P::Stopped,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Created => "created",
            State::Running => "running",
            State::Paused => "paused",
            State::Stopped => "stopped",
        })
    }
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transition::Start => "start",
            Transition::Pause => "pause",
            Transition::Resume => "resume",
            Transition::Exit => "exit",
        })
    }
}

/// A process the shim owns.
pub struct Proc {
    /// Host pid; 0 for an exec process not started yet.
    pub pid: i32,
    pub state: State,
    pub terminal: bool,
    /// The OCI process of an exec process (kept until Start).
    pub spec: Option<oci_spec::runtime::Process>,
    pub want_stdin: bool,
    pub io: ProcIo,
    pub exit: watch::Sender<Option<Exit>>,
}

impl Proc {
    pub fn new(terminal: bool, want_stdin: bool) -> Proc {
        Proc {
            pid: 0,
            state: State::Created,
            terminal,
            spec: None,
            want_stdin,
            // Attach may come before start: the output channel exists from the beginning.
            io: ProcIo {
                output: Some(tokio::sync::broadcast::channel(crate::io::ATTACH_BACKLOG).0),
                ..ProcIo::default()
            },
            exit: watch::channel(None).0,
        }
    }

    pub fn apply(&mut self, t: Transition) -> Result<(), TaskError> {
        self.state = self.state.next(t)?;
        Ok(())
    }

    pub fn is_alive(&self) -> bool {
        self.pid > 0 && self.state != State::Stopped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_legal_transitions_pass() {
        assert_eq!(
            State::Created.next(Transition::Start).unwrap(),
            State::Running
        );
        assert_eq!(
            State::Running.next(Transition::Pause).unwrap(),
            State::Paused
        );
        assert_eq!(
            State::Paused.next(Transition::Resume).unwrap(),
            State::Running
        );
        assert_eq!(
            State::Paused.next(Transition::Exit).unwrap(),
            State::Stopped
        );
        for (s, t) in [
            (State::Running, Transition::Start),
            (State::Created, Transition::Pause),
            (State::Running, Transition::Resume),
            (State::Stopped, Transition::Start),
            (State::Stopped, Transition::Exit),
        ] {
            let e = s.next(t).unwrap_err();
            assert!(matches!(e, TaskError::FailedPrecondition(_)), "{s} {t}");
        }
    }
}
