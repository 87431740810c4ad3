//! The shim's errors, each mapped to the gRPC status code a caller can act on.

use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Internal(String),
}

impl From<berth_runtime::Error> for TaskError {
    fn from(e: berth_runtime::Error) -> Self {
        use berth_runtime::Error as E;
        let msg = e.to_string();
        match e {
            E::NotFound(_) => TaskError::NotFound(msg),
            E::AlreadyExists(_) => TaskError::AlreadyExists(msg),
            E::InvalidId { .. } | E::InvalidSpec(_) => TaskError::InvalidArgument(msg),
            E::WrongState { .. } => TaskError::FailedPrecondition(msg),
            _ => TaskError::Internal(msg),
        }
    }
}

impl From<TaskError> for Status {
    fn from(e: TaskError) -> Status {
        let code = match &e {
            TaskError::NotFound(_) => Code::NotFound,
            TaskError::AlreadyExists(_) => Code::AlreadyExists,
            TaskError::InvalidArgument(_) => Code::InvalidArgument,
            TaskError::FailedPrecondition(_) => Code::FailedPrecondition,
            TaskError::Internal(_) => Code::Internal,
        };
        Status::new(code, e.to_string())
    }
}

pub fn internal(context: &str, e: impl std::fmt::Display) -> TaskError {
    TaskError::Internal(format!("{context}: {e}"))
}
