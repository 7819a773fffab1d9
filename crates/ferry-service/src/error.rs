//! Service errors, each mapping to one HTTP status, so the API answers every failure
//! with what went wrong and how to fix it.

use ferry_core::lifecycle::Refused;

/// What a service call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No such object (or not visible to this tenant): 404.
    #[error("not found: {0}")]
    NotFound(String),
    /// The request names a field with a bad value: 422.
    #[error("{field}: {reason}")]
    Invalid {
        /// The offending field.
        field: String,
        /// Why, and how to fix it.
        reason: String,
    },
    /// The action is not allowed in the task's state: 409.
    #[error("{0}")]
    Refused(Refused),
    /// Another conflict (duplicate name): 409.
    #[error("{0}")]
    Conflict(String),
    /// No or a wrong token: 401.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Admin-only: 403.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The metadata store cannot be reached: 503.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or corrupt store: 500.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for ServiceError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                ServiceError::Unavailable(format!("metadata store: {e}"))
            }
            e => ServiceError::Internal(format!(
                "metadata store: {}",
                ferry_core::redact::redact(&e.to_string())
            )),
        }
    }
}

/// Result of a service call.
pub type ServiceResult<T> = Result<T, ServiceError>;
