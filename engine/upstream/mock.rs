//! The sandbox mock: answers a route from the examples in its response schema, so partners
//! can build against the sandbox before (or without) a backend.

use crate::body::{full, Body};
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

/// A canned answer, serialised once at compile time.
#[derive(Debug, Clone)]
pub struct MockResponse {
    pub status: StatusCode,
    pub body: Bytes,
}

impl MockResponse {
    pub fn response(&self) -> Response<Body> {
        let mut response = Response::new(full(self.body.clone()));
        *response.status_mut() = self.status;
        if !self.body.is_empty() {
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        response
    }
}
