//! What the generated REST adapter (`rest.rs`) is written against: the caller's context, the
//! request bodies, and answers that document themselves.
//!
//! An operation method answers [`Answer<Response, Error>`](Answer): the contract's success enum
//! or its error enum, both closed. Each of them says which responses it can produce
//! ([`Documented`], generated from the spec), so poem-openapi documents exactly the responses
//! the spec lists, and renders them here: a success through [`Render`], an error through the one
//! error rendering of HTTP ([`error_response`](crate::edge::error_response)).

use std::{borrow::Cow, sync::Arc};

use chrono::{DateTime, SecondsFormat, Utc};
use petstore_api::{
    ApiError, Ctx, Image, Principal, Serialized, error::Denied, security::SecurityRequirement,
};
use poem::{
    IntoResponse, Request, Response,
    http::{HeaderValue, StatusCode, header},
};
use poem_openapi::{
    ApiResponse,
    registry::{MetaHeader, MetaMediaType, MetaResponse, MetaResponses, Registry},
    types::Type,
};

pub use super::payload::{JsonBody, OctetStream};
use crate::{
    auth::{authorize, identify},
    edge::{Caller, RequestId, error_response as render_error},
};

/// What an operation answers: its success (`S`, the contract's `…Response`) or one of its
/// documented errors (`E`, the contract's `…Error`).
pub struct Answer<S, E>(pub Result<S, E>);

/// The responses an outcome type can produce, as poem-openapi documents them.
pub trait Documented {
    /// One entry per status.
    fn responses() -> Vec<MetaResponse>;

    /// Registers the schemas the responses name.
    fn register(registry: &mut Registry) {
        let _ = registry;
    }
}

/// Renders a success as an HTTP response.
pub trait Render {
    /// The response: status, body, headers.
    fn render(self) -> Response;
}

impl<S: Documented, E: Documented> ApiResponse for Answer<S, E> {
    fn meta() -> MetaResponses {
        let mut responses = S::responses();
        responses.extend(E::responses());
        MetaResponses { responses }
    }

    fn register(registry: &mut Registry) {
        S::register(registry);
        E::register(registry);
    }
}

impl<S: Render + Send, E: Into<ApiError> + Send> IntoResponse for Answer<S, E> {
    fn into_response(self) -> Response {
        match self.0 {
            Ok(success) => success.render(),
            Err(error) => render_error(&error.into()),
        }
    }
}

/// Who is calling, as the edge worked it out: attached to the request for the routed
/// operations ([`Calling::attached`]), lent by the edge for the direct lane, which it answers
/// itself ([`Calling::lent`]).
#[derive(Debug)]
pub struct Calling<'a> {
    caller: Cow<'a, Caller>,
    request_id: Option<&'a RequestId>,
}

impl<'a> Calling<'a> {
    /// The caller and request id the edge attached to `request` (an anonymous caller from the
    /// socket address when the request did not pass the edge, as in tests of the adapter alone).
    pub fn attached(request: &'a Request) -> Self {
        let caller = match request.data::<Caller>() {
            Some(caller) => Cow::Borrowed(caller),
            None => Cow::Owned(Caller {
                client_ip: request.remote_addr().as_socket_addr().map(|addr| addr.ip()),
                ..Caller::default()
            }),
        };
        Self {
            caller,
            request_id: request.data::<RequestId>(),
        }
    }

    /// The caller and request id the edge lends a request it answers itself.
    pub fn lent(caller: &'a Caller, request_id: &'a RequestId) -> Self {
        Self {
            caller: Cow::Borrowed(caller),
            request_id: Some(request_id),
        }
    }

    fn context(&self, principal: Option<Arc<Principal>>) -> Ctx {
        Ctx {
            request_id: self
                .request_id
                .map(|id| id.as_str().to_owned())
                .unwrap_or_default(),
            client_ip: self.caller.client_ip,
            principal,
        }
    }
}

/// The context of a call to an operation that requires credentials, once the caller the edge
/// verified ([`Caller`]) has passed the operation's security requirements.
///
/// # Errors
/// 401 or 403 from [`authorize`].
pub fn request_context(
    calling: &Calling<'_>,
    security: &'static [SecurityRequirement],
) -> Result<Ctx, Denied> {
    let principal = authorize(&calling.caller.authentication, security)?;
    Ok(calling.context(principal))
}

/// The context of a call to an operation that does not require credentials (public, or with an
/// anonymous alternative): whoever the caller validly is, if anyone.
pub fn caller_context(calling: &Calling<'_>, security: &'static [SecurityRequirement]) -> Ctx {
    calling.context(identify(&calling.caller.authentication, security))
}

/// The segments of `path` after its leading `/`, at most `N` of them: the direct lane splits a
/// path once and compares every route's static segments with them and reads its parameters from
/// them.
#[derive(Debug, Clone, Copy)]
pub struct PathSegments<'a, const N: usize> {
    found: [&'a str; N],
    len: usize,
}

impl<'a, const N: usize> PathSegments<'a, N> {
    /// The segments of `path`; `None` if it does not start with `/` or has more than `N`.
    pub fn of(path: &'a str) -> Option<Self> {
        let mut found = [""; N];
        let mut len = 0;
        for segment in path.strip_prefix('/')?.split('/') {
            *found.get_mut(len)? = segment;
            len += 1;
        }
        Some(Self { found, len })
    }

    /// The segments, in order.
    pub fn as_slice(&self) -> &[&'a str] {
        &self.found[..self.len]
    }
}

const JSON: &str = "application/json";

/// The content of a JSON response documented as a `T`.
pub fn json_content<T: Type>() -> Vec<MetaMediaType> {
    vec![MetaMediaType {
        content_type: JSON,
        schema: T::schema_ref(),
    }]
}

/// The content of an image response: `image/*`, a binary string.
pub fn image_content() -> Vec<MetaMediaType> {
    vec![MetaMediaType {
        content_type: "image/*",
        schema: OctetStream::binary_schema(),
    }]
}

/// A response header documented as a `T` (always sent).
pub fn header<T: Type>(name: &str, description: Option<&str>) -> MetaHeader {
    MetaHeader {
        name: name.to_owned(),
        description: description.map(str::to_owned),
        required: T::IS_REQUIRED,
        deprecated: false,
        schema: T::schema_ref(),
    }
}

/// A documented success response (always one status, never a range).
pub fn success_response(
    status: Option<u16>,
    description: &'static str,
    content: Vec<MetaMediaType>,
    headers: Vec<MetaHeader>,
) -> MetaResponse {
    error_response(status, None, description, content, headers)
}

/// A documented error response (a status, or the `5XX` range).
pub fn error_response(
    status: Option<u16>,
    status_range: Option<&str>,
    description: &'static str,
    content: Vec<MetaMediaType>,
    headers: Vec<MetaHeader>,
) -> MetaResponse {
    MetaResponse {
        description,
        status,
        status_range: status_range.map(str::to_owned),
        content,
        headers,
    }
}

/// The read path: the stored bytes and a static header value, nothing copied.
pub fn render_json<T>(status: StatusCode, body: Serialized<T>) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, HeaderValue::from_static(JSON))
        .body(body.into_bytes())
}

/// An image with its own content type; images never change under their id.
pub fn render_image(status: StatusCode, image: Image) -> Response {
    Response::builder()
        .status(status)
        .content_type(image.content_type)
        .header(header::CACHE_CONTROL, "public, max-age=86400, immutable")
        .header("x-content-type-options", "nosniff")
        .body(image.bytes)
}

/// A response without a body.
pub fn render_empty(status: StatusCode) -> Response {
    Response::builder().status(status).finish()
}

/// A value a success response sends as a header.
pub trait HeaderText {
    /// The header's text.
    fn header_text(&self) -> String;
}

impl HeaderText for i32 {
    fn header_text(&self) -> String {
        self.to_string()
    }
}

impl HeaderText for i64 {
    fn header_text(&self) -> String {
        self.to_string()
    }
}

impl HeaderText for String {
    fn header_text(&self) -> String {
        self.clone()
    }
}

impl HeaderText for DateTime<Utc> {
    /// RFC 3339, UTC, whole seconds (`2024-05-01T10:00:00Z`).
    fn header_text(&self) -> String {
        self.to_rfc3339_opts(SecondsFormat::Secs, true)
    }
}

/// Sets a success response's header `name` to `value`.
pub fn set_header(response: &mut Response, name: &'static str, value: &impl HeaderText) {
    if let (Ok(name), Ok(value)) = (
        header::HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(&value.header_text()),
    ) {
        response.headers_mut().insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use poem::Request;

    use super::{Calling, PathSegments, caller_context};
    use crate::edge::{Caller, REQUEST_ID, RequestId};

    #[test]
    fn the_context_is_the_same_whether_the_edge_attached_or_lent_the_caller() {
        let caller = Caller {
            client_ip: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))),
            ..Caller::default()
        };
        let mut request = Request::builder()
            .header(REQUEST_ID, "client-id-1")
            .finish();
        let request_id = RequestId::of(&request);
        request.set_data(caller.clone());
        request.set_data(request_id.clone());

        let attached = caller_context(&Calling::attached(&request), &[]);
        let lent = caller_context(&Calling::lent(&caller, &request_id), &[]);
        for ctx in [attached, lent] {
            assert_eq!(ctx.request_id, "client-id-1");
            assert_eq!(ctx.client_ip, caller.client_ip);
            assert!(ctx.principal.is_none());
        }
    }

    #[test]
    fn a_request_that_did_not_pass_the_edge_is_an_anonymous_caller_without_an_id() {
        let request = Request::builder().finish();
        let ctx = caller_context(&Calling::attached(&request), &[]);
        assert_eq!(ctx.request_id, "");
        assert_eq!(ctx.client_ip, None);
        assert!(ctx.principal.is_none());
    }

    fn segments<const N: usize>(path: &str) -> Option<Vec<&str>> {
        PathSegments::<N>::of(path).map(|found| found.as_slice().to_vec())
    }

    #[test]
    fn a_path_splits_into_its_segments_up_to_the_most_a_route_has() {
        assert_eq!(segments::<3>("/pet/1"), Some(vec!["pet", "1"]));
        assert_eq!(
            segments::<3>("/store/order/7"),
            Some(vec!["store", "order", "7"])
        );
        // Empty segments are kept, so `/pet/` or `/pet//1` never look like `/pet/{id}`'s path.
        assert_eq!(segments::<3>("/pet/"), Some(vec!["pet", ""]));
        assert_eq!(segments::<3>("/pet//1"), Some(vec!["pet", "", "1"]));
        assert_eq!(segments::<3>("/"), Some(vec![""]));
        // More segments than any route has, or no leading `/`: no route's.
        assert_eq!(segments::<3>("/store/order/7/x"), None);
        assert_eq!(segments::<3>("pet/1"), None);
    }
}
