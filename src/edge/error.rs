//! Errors over HTTP: the one rendering of an [`ApiError`] as a response ([`error_response`]),
//! shared by the REST adapter, the operational endpoints and the WebSocket upgrade, and the one
//! place where errors raised outside the handlers (routing, parameter parsing, content types,
//! body limits) become the API's error body ([`render`]).

use poem::{
    Response,
    http::{HeaderValue, StatusCode, header},
};
use poem_openapi::error::{
    ContentTypeError, ParseParamError, ParsePathError, ParseRequestPayloadError,
};

use petstore_api::ApiError;

/// The HTTP status of an error.
pub fn error_status(error: &ApiError) -> StatusCode {
    StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The full HTTP response for an error: its status, headers and `ErrorResponse` body.
pub fn error_response(error: &ApiError) -> Response {
    let body = serde_json::to_vec(&error.to_body()).unwrap_or_else(|_| {
        br#"{"code":500,"type":"INTERNAL","message":"internal error"}"#.to_vec()
    });
    let mut builder = Response::builder().status(error_status(error)).header(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in error.headers() {
        builder = builder.header(name, value);
    }
    builder.body(body)
}

/// An [`ApiError`] as poem's error type, for the places poem expects one (a request body that
/// cannot be read, the edge's refusals): rendered by [`error_response`] like every other error.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct HttpError(pub ApiError);

impl poem::error::ResponseError for HttpError {
    fn status(&self) -> StatusCode {
        error_status(&self.0)
    }

    fn as_response(&self) -> Response {
        error_response(&self.0)
    }
}

/// Renders any error that reached the edge as an `ErrorResponse` with the right status.
pub async fn render(error: poem::Error) -> Response {
    error_response(&classify(error))
}

fn classify(error: poem::Error) -> ApiError {
    if let Some(HttpError(api_error)) = error.downcast_ref::<HttpError>() {
        return api_error.clone();
    }
    if let Some(param) = error.downcast_ref::<ParseParamError>() {
        return ApiError::BadRequest(format!(
            "parameter `{}`: {}",
            param.name,
            without_type_trail(&param.reason)
        ));
    }
    if let Some(path) = error.downcast_ref::<ParsePathError>() {
        // poem-openapi names path parameters by position internally (`param0`); the reason is the
        // useful part.
        return ApiError::BadRequest(format!(
            "invalid path parameter: {}",
            without_type_trail(&path.reason)
        ));
    }
    if let Some(content_type) = error.downcast_ref::<ContentTypeError>() {
        return match content_type {
            ContentTypeError::ExpectContentType => ApiError::UnsupportedMediaType(
                "the request has a body but no Content-Type".to_owned(),
            ),
            ContentTypeError::NotSupported { content_type } => ApiError::UnsupportedMediaType(
                format!("content type `{content_type}` is not accepted here"),
            ),
        };
    }
    if let Some(payload) = error.downcast_ref::<ParseRequestPayloadError>() {
        return ApiError::BadRequest(payload.reason.clone());
    }
    let status = error.status();
    match status {
        StatusCode::UNAUTHORIZED => ApiError::Unauthorized {
            challenge: petstore_api::Challenge::Missing,
        },
        StatusCode::FORBIDDEN => ApiError::Forbidden(error.to_string()),
        StatusCode::REQUEST_TIMEOUT => ApiError::Timeout,
        StatusCode::NOT_FOUND => ApiError::NotFound("no such resource".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge { limit: None },
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(error.to_string()),
        status if status.is_client_error() => ApiError::BadRequest(error.to_string()),
        _ => {
            tracing::error!(%status, error = %error, "unhandled error at the HTTP edge");
            ApiError::Internal
        }
    }
}

/// poem-openapi appends the internal names of the types it was parsing
/// (`(occurred while parsing "optional_list_PetStatus")`); they mean nothing to a client.
fn without_type_trail(reason: &str) -> &str {
    reason
        .split(" (occurred while parsing")
        .next()
        .unwrap_or(reason)
        .trim_end()
}

#[cfg(test)]
mod tests {
    use poem::http::StatusCode;

    use super::{classify, without_type_trail};

    #[test]
    fn internal_type_names_are_cut_from_parameter_errors() {
        assert_eq!(
            without_type_trail(
                "failed to parse \"PetStatus\": Expect a valid enumeration value. (occurred while \
                 parsing \"list_PetStatus\") (occurred while parsing \"optional_list_PetStatus\")"
            ),
            "failed to parse \"PetStatus\": Expect a valid enumeration value."
        );
        assert_eq!(without_type_trail("invalid digit"), "invalid digit");
    }

    #[test]
    fn an_api_error_raised_through_poem_keeps_its_details() {
        let challenge = petstore_api::Challenge::InvalidToken;
        let raised = poem::Error::from(super::HttpError(petstore_api::ApiError::Unauthorized {
            challenge,
        }));
        assert_eq!(
            classify(raised),
            petstore_api::ApiError::Unauthorized { challenge }
        );
    }

    #[test]
    fn a_413_from_elsewhere_does_not_claim_a_limit() {
        let error = classify(poem::Error::from_status(StatusCode::PAYLOAD_TOO_LARGE));
        assert_eq!(error.status(), 413);
        assert_eq!(error.to_string(), "request body is too large");
    }
}
