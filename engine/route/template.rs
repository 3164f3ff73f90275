//! Path templates: `/v1/accounts/{account_id}/balances`.
//!
//! A route's path template is checked here before it goes into the router; an upstream
//! path template is compiled into literal and parameter parts so that building the upstream
//! path at request time is a few string pushes.

use std::fmt;

/// A validated path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    pub parts: Vec<TemplatePart>,
    /// Parameter names in order of appearance.
    pub params: Vec<String>,
    len_hint: usize,
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    Literal(String),
    /// The value of the route parameter at this index (in the route's template order).
    Param(usize),
}

/// Why a template is not valid, with a hint on fixing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub message: String,
    pub help: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

fn err(message: impl Into<String>, help: impl Into<String>) -> TemplateError {
    TemplateError {
        message: message.into(),
        help: help.into(),
    }
}

impl PathTemplate {
    /// Parses a template whose parameters are its own (a route path).
    pub fn parse(template: &str) -> Result<PathTemplate, TemplateError> {
        Self::parse_with(template, None)
    }

    /// Parses an upstream template whose parameters must come from `route_params`.
    pub fn parse_upstream(template: &str, route_params: &[String]) -> Result<PathTemplate, TemplateError> {
        Self::parse_with(template, Some(route_params))
    }

    fn parse_with(template: &str, route_params: Option<&[String]>) -> Result<PathTemplate, TemplateError> {
        let Some(rest) = template.strip_prefix('/') else {
            return Err(err(
                "a path template must start with '/'",
                format!("write \"/{template}\""),
            ));
        };
        if template.len() > 1 && template.ends_with('/') {
            return Err(err(
                "a path template must not end with '/'",
                format!("write \"{}\"", template.trim_end_matches('/')),
            ));
        }
        if template.contains('?') || template.contains('#') {
            return Err(err(
                "a path template holds no query or fragment",
                "query strings are passed through as the partner sent them; remove the '?...' part",
            ));
        }
        let mut parts = Vec::new();
        let mut params: Vec<String> = Vec::new();
        let mut literal = String::from("/");
        for (i, segment) in rest.split('/').enumerate() {
            if i > 0 {
                literal.push('/');
            }
            if segment.is_empty() && !rest.is_empty() {
                return Err(err(
                    "a path template has an empty segment ('//')",
                    "remove the doubled '/'",
                ));
            }
            if let Some(inner) = segment.strip_prefix('{') {
                let Some(name) = inner.strip_suffix('}') else {
                    return Err(err(
                        format!("segment `{segment}` opens a parameter but does not close it"),
                        "a parameter is a whole segment: `{name}`",
                    ));
                };
                if !is_param_name(name) {
                    return Err(err(
                        format!("`{{{name}}}` is not a valid parameter name"),
                        "parameter names are lowercase letters, digits and '_', starting with a letter, e.g. {account_id}",
                    ));
                }
                let index = match route_params {
                    None => {
                        if params.iter().any(|p| p == name) {
                            return Err(err(
                                format!("parameter `{{{name}}}` appears twice"),
                                "give each parameter its own name",
                            ));
                        }
                        params.len()
                    }
                    Some(known) => match known.iter().position(|p| p == name) {
                        Some(index) => index,
                        None => {
                            let help = if known.is_empty() {
                                "the route's path has no parameters; use a literal path".to_string()
                            } else {
                                format!(
                                    "the route's path defines: {}",
                                    known.iter().map(|p| format!("{{{p}}}")).collect::<Vec<_>>().join(", ")
                                )
                            };
                            return Err(err(
                                format!("parameter `{{{name}}}` is not defined by the route's path"),
                                help,
                            ));
                        }
                    },
                };
                params.push(name.to_string());
                parts.push(TemplatePart::Literal(std::mem::take(&mut literal)));
                parts.push(TemplatePart::Param(index));
                continue;
            }
            if segment.contains('{') || segment.contains('}') {
                return Err(err(
                    format!("segment `{segment}` mixes text and a parameter"),
                    "a parameter must be a whole segment, e.g. /accounts/{account_id}",
                ));
            }
            if let Some(bad) = segment.chars().find(|c| !is_segment_char(*c)) {
                return Err(err(
                    format!("character {bad:?} is not allowed in a path template"),
                    "use letters, digits and - . _ ~ : @ in literal segments",
                ));
            }
            if segment == "." || segment == ".." {
                return Err(err(
                    "`.` and `..` segments are not allowed",
                    "write the path without dot segments",
                ));
            }
            literal.push_str(segment);
        }
        if !literal.is_empty() {
            parts.push(TemplatePart::Literal(literal));
        }
        parts.retain(|p| !matches!(p, TemplatePart::Literal(l) if l.is_empty()));
        let len_hint = parts
            .iter()
            .map(|p| match p {
                TemplatePart::Literal(l) => l.len(),
                TemplatePart::Param(_) => 16,
            })
            .sum();
        Ok(PathTemplate {
            parts,
            params,
            len_hint,
        })
    }

    /// Fills the template with route parameter values (already checked as safe segments),
    /// writing into `out`.
    pub fn render_into(&self, values: &[&str], out: &mut String) {
        out.reserve(self.len_hint);
        for part in &self.parts {
            match part {
                TemplatePart::Literal(l) => out.push_str(l),
                TemplatePart::Param(i) => out.push_str(values.get(*i).copied().unwrap_or("")),
            }
        }
    }
}

fn is_param_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn is_segment_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | ':' | '@')
}

/// Whether a raw (percent-encoded) path parameter value is safe to put in an upstream path:
/// it must not decode to a dot segment or smuggle a '/' or '\' in encoded form.
pub fn is_safe_param(raw: &str) -> bool {
    if raw.is_empty() {
        return false;
    }
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(b) => {
                    decoded.push(b);
                    i += 3;
                    continue;
                }
                None => return false,
            }
        }
        decoded.push(bytes[i]);
        i += 1;
    }
    !(decoded == b"." || decoded == b".." || decoded.iter().any(|b| matches!(b, b'/' | b'\\' | 0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders() {
        let route = PathTemplate::parse("/v1/accounts/{account_id}/transactions/{tx_id}").unwrap();
        assert_eq!(route.params, vec!["account_id", "tx_id"]);
        let upstream = PathTemplate::parse_upstream("/core/tx/{tx_id}/acct/{account_id}", &route.params).unwrap();
        let mut out = String::new();
        upstream.render_into(&["A1", "T9"], &mut out);
        assert_eq!(out, "/core/tx/T9/acct/A1");
        let root = PathTemplate::parse("/").unwrap();
        let mut out = String::new();
        root.render_into(&[], &mut out);
        assert_eq!(out, "/");
    }

    #[test]
    fn rejects_bad_templates_with_help() {
        for bad in [
            "v1/x",
            "/v1/x/",
            "/v1//x",
            "/v1/{id",
            "/v1/{Id}",
            "/v1/acc-{id}",
            "/v1/{id}/{id}",
            "/v1/x?y=1",
            "/v1/a b",
            "/v1/../x",
        ] {
            let e = PathTemplate::parse(bad).unwrap_err();
            assert!(!e.help.is_empty(), "{bad}");
        }
        let e = PathTemplate::parse_upstream("/core/{other}", &["account_id".to_string()]).unwrap_err();
        assert!(e.message.contains("not defined by the route"), "{}", e.message);
    }

    #[test]
    fn unsafe_parameters_are_caught() {
        for ok in ["ACC-1", "a.b", "%20x", "GB29NWBK60161331926819"] {
            assert!(is_safe_param(ok), "{ok}");
        }
        for bad in ["..", ".", "%2e%2E", "a%2Fb", "a%5cb", "%zz", "", "%00"] {
            assert!(!is_safe_param(bad), "{bad}");
        }
    }
}
