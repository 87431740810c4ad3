//! Container processes: how they are spawned (stages talking over a channel) and how each is
//! set up before exec (user, capabilities, rlimits, seccomp, terminal).

pub(crate) mod caps;
mod channel;
mod command;
mod fds;
mod init_reaper;
mod loopback;
pub(crate) mod namespaces;
mod oom;
mod placement;
pub(crate) mod rlimits;
pub mod seccomp;
mod spawn;
mod stage1;
mod stage2;
pub(crate) mod sysctl;
pub(crate) mod trampoline;
pub(crate) mod tty;
pub(crate) mod user;

pub(crate) use command::Command;
pub(crate) use spawn::{spawn, ChildConfig, InitConfig, Kind};

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("{context}: {source}")]
    Sys {
        context: String,
        #[source]
        source: nix::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
}

impl ProcessError {
    pub(crate) fn sys(context: impl Into<String>, source: nix::Error) -> Self {
        ProcessError::Sys {
            context: context.into(),
            source,
        }
    }
}
