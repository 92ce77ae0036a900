//! Every refusal of the API is `{"error": message}` with a status code that
//! says whose fault it is.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use booster_runtime::RuntimeError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.message }));
        (self.status, body).into_response()
    }
}

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> ApiError {
        let status = match &e {
            RuntimeError::NotFound(..) | RuntimeError::EntryNotFound(_) => StatusCode::NOT_FOUND,
            RuntimeError::IllegalTransition { .. } | RuntimeError::SingletonHeld { .. } => {
                StatusCode::CONFLICT
            }
            RuntimeError::BadPriority(_)
            | RuntimeError::UnknownKind(_)
            | RuntimeError::Invalid(_) => StatusCode::BAD_REQUEST,
            RuntimeError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            // The store's own words reach the client with a status that
            // says what kind of trouble it is, never a generic 500.
            RuntimeError::Store(e) if e.is_disk_full() => StatusCode::INSUFFICIENT_STORAGE,
            RuntimeError::Store(
                booster_store::StoreError::Poisoned { .. }
                | booster_store::StoreError::Closed
                | booster_store::StoreError::Unavailable { .. },
            ) => StatusCode::SERVICE_UNAVAILABLE,
            RuntimeError::Store(_) | RuntimeError::Corrupt(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> ApiError {
        // axum says 422 for well-formed JSON of the wrong shape; to a client
        // both are simply a bad request.
        let status = match e.status() {
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
            other => other,
        };
        ApiError::new(status, e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, e.body_text())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;
    use booster_store::StoreError;

    #[test]
    fn disk_full_is_507_and_a_poisoned_store_503_with_their_message() {
        let full = ApiError::from(RuntimeError::Store(StoreError::DiskFull {
            path: "seg".into(),
        }));
        assert_eq!(full.status, StatusCode::INSUFFICIENT_STORAGE);
        assert!(full.message.contains("disk full"), "{}", full.message);
        let poisoned = ApiError::from(RuntimeError::Store(StoreError::Poisoned {
            cause: "fsync failed".into(),
        }));
        assert_eq!(poisoned.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            poisoned.message.contains("fsync failed"),
            "{}",
            poisoned.message
        );
    }
}
