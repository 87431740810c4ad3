//! Errors of API calls, each with the gRPC status code a client can act on.

use tonic::{Code, Status};

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn internal(context: &str, e: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(format!("{context}: {e}"))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => ApiError::NotFound(m),
            StoreError::AlreadyExists(m) => ApiError::AlreadyExists(m),
            StoreError::FailedPrecondition(m) => ApiError::FailedPrecondition(m),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// Errors from a shim keep their code; transport failures mean the shim is gone.
impl From<Status> for ApiError {
    fn from(s: Status) -> Self {
        let m = s.message().to_string();
        match s.code() {
            Code::NotFound => ApiError::NotFound(m),
            Code::AlreadyExists => ApiError::AlreadyExists(m),
            Code::InvalidArgument => ApiError::InvalidArgument(m),
            Code::FailedPrecondition => ApiError::FailedPrecondition(m),
            Code::Unavailable => ApiError::Unavailable(format!("shim unavailable: {m}")),
            _ => ApiError::Internal(m),
        }
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        let code = match &e {
            ApiError::NotFound(_) => Code::NotFound,
            ApiError::AlreadyExists(_) => Code::AlreadyExists,
            ApiError::InvalidArgument(_) => Code::InvalidArgument,
            ApiError::FailedPrecondition(_) => Code::FailedPrecondition,
            ApiError::Unavailable(_) => Code::Unavailable,
            ApiError::Internal(_) => Code::Internal,
        };
        Status::new(code, e.to_string())
    }
}
