//! Registry errors as HTTP responses: the spec's status codes and JSON
//! error bodies.

use crate::core::error::{Code, Error};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

pub fn status(code: Code) -> StatusCode {
    match code {
        Code::BlobUnknown | Code::BlobUploadUnknown | Code::ManifestUnknown | Code::NameUnknown => {
            StatusCode::NOT_FOUND
        }
        Code::BlobUploadInvalid
        | Code::DigestInvalid
        | Code::ManifestBlobUnknown
        | Code::ManifestInvalid
        | Code::NameInvalid
        | Code::SizeInvalid => StatusCode::BAD_REQUEST,
        Code::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
        Code::Unauthorized => StatusCode::UNAUTHORIZED,
        Code::Denied => StatusCode::FORBIDDEN,
        Code::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        Code::RangeInvalid | Code::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
        Code::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The JSON error body for one error.
pub fn body(err: &Error) -> String {
    let mut e = serde_json::json!({ "code": err.code.as_str(), "message": err.message });
    if let Some(d) = &err.detail {
        e["detail"] = d.clone();
    }
    serde_json::json!({ "errors": [e] }).to_string()
}

/// An error response; callers add endpoint headers (such as `Range`).
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (status(self.0.code), body(&self.0)).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.0.code == Code::RangeNotSatisfiable {
            if let Some(size) = self.0.upload_size {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    resp.headers_mut().insert(header::CONTENT_RANGE, v);
                }
            }
        }
        resp
    }
}

pub type ApiResult = Result<Response, ApiError>;

/// Shorthand for request-validation errors.
pub fn err(code: Code, message: impl Into<String>) -> ApiError {
    ApiError(Error::new(code, message))
}
