//! Header hygiene between partner and upstream.
//!
//! tollgate is the edge of the bank: partner-supplied forwarding headers are replaced, not
//! trusted; partner credentials end here; and upstream headers that describe the bank's
//! internals (server software, proxies) never reach the partner.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::net::IpAddr;

/// Headers that describe one connection (RFC 9110 section 7.6.1), never forwarded.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// Upstream response headers that reveal internals.
const INTERNAL_RESPONSE: [HeaderName; 5] = [
    header::SERVER,
    header::VIA,
    HeaderName::from_static("x-powered-by"),
    HeaderName::from_static("x-aspnet-version"),
    HeaderName::from_static("x-backend-server"),
];

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_FAPI_INTERACTION_ID: HeaderName = HeaderName::from_static("x-fapi-interaction-id");

/// Removes hop-by-hop headers, including any the Connection header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::TRANSFER_ENCODING);
}

/// Rewrites a partner's request headers for the upstream.
pub fn to_upstream(headers: &mut HeaderMap, client_ip: IpAddr, proto: &'static str, upstream_host: &HeaderValue) {
    strip_hop_by_hop(headers);
    let original_host = headers.remove(header::HOST);
    // Partner credentials are for the gateway; the core never sees them.
    headers.remove(header::AUTHORIZATION);
    headers.remove(header::COOKIE);
    if let Ok(ip) = HeaderValue::from_str(&client_ip.to_string()) {
        headers.insert(X_FORWARDED_FOR, ip);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    match original_host {
        Some(host) => {
            headers.insert(X_FORWARDED_HOST, host);
        }
        None => {
            headers.remove(X_FORWARDED_HOST);
        }
    }
    headers.insert(header::HOST, upstream_host.clone());
}

/// Cleans an upstream's response headers for the partner.
pub fn from_upstream(headers: &mut HeaderMap) {
    strip_hop_by_hop(headers);
    for name in &INTERNAL_RESPONSE {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_headers_are_rewritten_for_the_upstream() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("api.bank.example"));
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-secret-hop"));
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        h.insert(X_FORWARDED_FOR, HeaderValue::from_static("6.6.6.6"));
        h.insert("x-custom", HeaderValue::from_static("kept"));
        to_upstream(
            &mut h,
            "203.0.113.9".parse().unwrap(),
            "http",
            &HeaderValue::from_static("core:9000"),
        );
        assert_eq!(h[header::HOST], "core:9000");
        assert_eq!(h[X_FORWARDED_FOR], "203.0.113.9");
        assert_eq!(h[X_FORWARDED_PROTO], "http");
        assert_eq!(h[X_FORWARDED_HOST], "api.bank.example");
        assert_eq!(h["x-custom"], "kept");
        for gone in ["connection", "x-secret-hop", "authorization"] {
            assert!(!h.contains_key(gone), "{gone}");
        }
    }

    #[test]
    fn internals_are_removed_from_responses() {
        let mut h = HeaderMap::new();
        h.insert(header::SERVER, HeaderValue::from_static("CICS/TS 5.6"));
        h.insert("x-powered-by", HeaderValue::from_static("COBOL"));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        from_upstream(&mut h);
        assert!(!h.contains_key(header::SERVER));
        assert!(!h.contains_key("x-powered-by"));
        assert!(h.contains_key(header::CONTENT_TYPE));
    }
}
