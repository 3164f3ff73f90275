//! A route's legacy codecs at request time: phase 7 turns the validated JSON body into the
//! core's record; phase 9 turns the core's answer back into JSON before projection.

use super::{Codec, DecodeError};
use crate::body::Body;
use crate::problem::{Problem, Violation};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use std::sync::Arc;

const SOAP_ACTION: HeaderName = HeaderName::from_static("soapaction");

/// What a route's `legacy` key compiled to.
#[derive(Debug)]
pub struct RouteCodec {
    /// Encodes the partner's JSON body for the core.
    pub request: Option<Arc<Codec>>,
    /// Decodes the core's answer into JSON.
    pub response: Option<Arc<Codec>>,
    /// Content-Type of the record sent upstream.
    pub content_type: HeaderValue,
    /// Accept sent upstream, when the answer is a legacy format.
    pub accept: Option<HeaderValue>,
    /// SOAPAction sent upstream, for SOAP 1.1 requests (quoted, as SOAP 1.1 wants).
    pub soap_action: Option<HeaderValue>,
}

impl RouteCodec {
    /// Phase 7: the validated JSON body as the core's record. A value the core's format
    /// cannot carry (a JPY amount with decimals, a name too long for its field) is the
    /// partner's to fix: 400 with the JSON pointer.
    /// `None` when the route sends its JSON as it is.
    pub fn encode_request(&self, value: &serde_json::Value) -> Result<Option<Bytes>, Problem> {
        let Some(codec) = &self.request else {
            return Ok(None);
        };
        match codec.encode(value) {
            Ok(bytes) => Ok(Some(Bytes::from(bytes))),
            Err(error) => Err(Problem::UnsupportedValue {
                errors: Arc::from(vec![Violation {
                    pointer: error.pointer,
                    detail: error.detail,
                }]),
            }),
        }
    }

    /// The headers the core expects, on the request about to go upstream.
    pub fn upstream_headers(&self, headers: &mut HeaderMap) {
        if self.request.is_some() {
            headers.insert(header::CONTENT_TYPE, self.content_type.clone());
            // The body is now the record; hyper sets its length.
            headers.remove(header::CONTENT_LENGTH);
            if let Some(action) = &self.soap_action {
                headers.insert(SOAP_ACTION, action.clone());
            }
        }
        if let Some(accept) = &self.accept {
            headers.insert(header::ACCEPT, accept.clone());
        }
    }

    /// Phase 9: the core's answer as JSON. A record that does not match its layout, or a
    /// SOAP fault, is a 502 for the partner and one warning for the platform team; the
    /// core's bytes and fault text are never passed on. A non-2xx answer keeps its status
    /// but loses its body, which is in the core's format, not JSON.
    pub async fn decode_response(
        &self,
        response: Response<Body>,
        route: &str,
        idle: std::time::Duration,
    ) -> Result<Response<Body>, Problem> {
        let Some(codec) = &self.response else {
            return Ok(response);
        };
        let soap = codec.soap_action().is_some();
        let status = response.status();
        let (mut parts, body) = response.into_parts();
        let fault_status = soap && status == StatusCode::INTERNAL_SERVER_ERROR;
        if !status.is_success() && !fault_status {
            parts.headers.remove(header::CONTENT_TYPE);
            parts.headers.remove(header::CONTENT_LENGTH);
            return Ok(Response::from_parts(parts, crate::body::empty()));
        }
        let bytes = crate::body::read_answer(body, idle).await.map_err(|fault| {
            tracing::warn!(route, layout = %codec.name, ?fault, "upstream legacy answer not read whole");
            Problem::BadUpstreamResponse
        })?;
        if bytes.is_empty() && !fault_status {
            return Ok(Response::from_parts(parts, crate::body::empty()));
        }
        match codec.decode_json(&bytes) {
            Ok(_) if fault_status => {
                tracing::warn!(route, layout = %codec.name, "upstream answered 500 without a SOAP fault");
                Err(Problem::UpstreamFault)
            }
            Ok(json) => {
                parts
                    .headers
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                parts.headers.remove(header::CONTENT_LENGTH);
                Ok(Response::from_parts(parts, crate::body::full(json)))
            }
            Err(DecodeError::Record(error)) => {
                tracing::warn!(
                    route,
                    layout = %codec.name,
                    offset = error.offset,
                    field = %error.field,
                    expected = %error.expected,
                    found = %error.found,
                    "upstream record does not match its layout"
                );
                Err(Problem::BadUpstreamRecord)
            }
            Err(DecodeError::Fault { code }) => {
                tracing::warn!(route, layout = %codec.name, faultcode = %code, "upstream answered with a SOAP fault");
                Err(Problem::UpstreamFault)
            }
        }
    }
}
