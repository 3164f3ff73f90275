//! Routing: host -> environment, then method + path -> route.
//!
//! Everything here is built at compile time: one radix-tree router per environment holding
//! only the routes offered there, the `Allow` header of each path precomputed, and upstream
//! path templates split into literal and parameter parts.

mod template;

use http::{HeaderValue, Method};
use std::collections::HashMap;
pub use template::{is_safe_param, PathTemplate, TemplateError, TemplatePart};

/// The environment a request is served in. Credentials and upstreams never cross it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Sandbox,
    Production,
}

impl Environment {
    pub const ALL: [Environment; 2] = [Environment::Sandbox, Environment::Production];

    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Sandbox => "sandbox",
            Environment::Production => "production",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// One value per environment.
#[derive(Debug, Clone)]
pub struct EnvMap<T>(pub [Option<T>; 2]);

impl<T> Default for EnvMap<T> {
    fn default() -> Self {
        EnvMap([None, None])
    }
}

impl<T> EnvMap<T> {
    pub fn get(&self, env: Environment) -> Option<&T> {
        self.0[env.index()].as_ref()
    }

    pub fn set(&mut self, env: Environment, value: T) {
        self.0[env.index()] = Some(value);
    }
}

/// Host names (lowercase, without port) and the environment each serves.
#[derive(Debug, Default)]
pub struct HostTable {
    hosts: HashMap<String, Environment>,
}

impl HostTable {
    pub fn insert(&mut self, host: String, env: Environment) -> Option<Environment> {
        self.hosts.insert(host, env)
    }

    /// The environment for a `Host` header or `:authority` value.
    pub fn environment(&self, authority: &str) -> Option<Environment> {
        let host = strip_port(authority);
        if host.bytes().any(|b| b.is_ascii_uppercase()) {
            self.hosts.get(&host.to_ascii_lowercase()).copied()
        } else {
            self.hosts.get(host).copied()
        }
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}

fn strip_port(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        // [v6]:port
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// Index of a route in the pipeline's route table.
pub type RouteId = usize;

/// The routes offered in one environment.
#[derive(Debug, Default)]
pub struct Router {
    paths: matchit::Router<usize>,
    entries: Vec<PathEntry>,
}

#[derive(Debug)]
struct PathEntry {
    template: String,
    methods: Vec<(Method, RouteId)>,
    allow: HeaderValue,
}

/// What the router found for a request.
#[derive(Debug)]
pub enum RouteMatch<'r, 'p> {
    Found {
        route: RouteId,
        params: matchit::Params<'r, 'p>,
    },
    MethodNotAllowed {
        allow: &'r HeaderValue,
    },
    NotFound,
}

/// Why a route could not be added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertError {
    /// The same method and path template are already routed (to this route id).
    Duplicate(RouteId),
    /// The template overlaps another one ambiguously; the text explains how.
    Conflict(String),
}

impl Router {
    /// Adds a route. `template` uses `{name}` parameters, as validated by `PathTemplate`.
    pub fn insert(&mut self, method: Method, template: &str, route: RouteId) -> Result<(), InsertError> {
        if let Ok(found) = self.paths.at(template) {
            let entry_index = *found.value;
            // `at` can match a literal against another template's parameter; only an exact
            // template is the same path.
            if self.entries[entry_index].template == template {
                let entry = &mut self.entries[entry_index];
                if let Some((_, existing)) = entry.methods.iter().find(|(m, _)| *m == method) {
                    return Err(InsertError::Duplicate(*existing));
                }
                entry.methods.push((method, route));
                entry.allow = allow_header(&entry.methods);
                return Ok(());
            }
        }
        let index = self.entries.len();
        self.paths
            .insert(template, index)
            .map_err(|e| InsertError::Conflict(e.to_string()))?;
        let methods = vec![(method, route)];
        self.entries.push(PathEntry {
            template: template.to_string(),
            allow: allow_header(&methods),
            methods,
        });
        Ok(())
    }

    /// Finds the route for a method and a (percent-encoded) path.
    pub fn find<'r, 'p>(&'r self, method: &Method, path: &'p str) -> RouteMatch<'r, 'p> {
        let Ok(found) = self.paths.at(path) else {
            return RouteMatch::NotFound;
        };
        let entry = &self.entries[*found.value];
        match entry.methods.iter().find(|(m, _)| m == method) {
            Some((_, route)) => RouteMatch::Found {
                route: *route,
                params: found.params,
            },
            None => RouteMatch::MethodNotAllowed { allow: &entry.allow },
        }
    }

    pub fn len(&self) -> usize {
        self.entries.iter().map(|e| e.methods.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn allow_header(methods: &[(Method, RouteId)]) -> HeaderValue {
    let mut names: Vec<&str> = methods.iter().map(|(m, _)| m.as_str()).collect();
    names.sort_unstable();
    HeaderValue::from_str(&names.join(", ")).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_without_port_and_case() {
        let mut hosts = HostTable::default();
        hosts.insert("api.bank.example".into(), Environment::Production);
        assert_eq!(
            hosts.environment("API.Bank.Example:8443"),
            Some(Environment::Production)
        );
        assert_eq!(hosts.environment("api.bank.example"), Some(Environment::Production));
        assert_eq!(hosts.environment("evil.example"), None);
        assert_eq!(strip_port("[::1]:8080"), "::1");
    }

    #[test]
    fn finds_routes_and_reports_allowed_methods() {
        let mut r = Router::default();
        r.insert(Method::GET, "/v1/accounts", 0).unwrap();
        r.insert(Method::GET, "/v1/accounts/{account_id}", 1).unwrap();
        r.insert(Method::DELETE, "/v1/accounts/{account_id}", 2).unwrap();
        r.insert(Method::GET, "/v1/accounts/{account_id}/balances", 3).unwrap();
        match r.find(&Method::GET, "/v1/accounts/ACC-1") {
            RouteMatch::Found { route, params } => {
                assert_eq!(route, 1);
                assert_eq!(params.get("account_id"), Some("ACC-1"));
            }
            other => panic!("{other:?}"),
        }
        match r.find(&Method::POST, "/v1/accounts/ACC-1") {
            RouteMatch::MethodNotAllowed { allow } => assert_eq!(allow, "DELETE, GET"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(r.find(&Method::GET, "/v1/cards"), RouteMatch::NotFound));
    }

    #[test]
    fn duplicate_and_conflicting_templates_are_refused() {
        let mut r = Router::default();
        r.insert(Method::GET, "/v1/accounts/{account_id}", 0).unwrap();
        assert_eq!(
            r.insert(Method::GET, "/v1/accounts/{account_id}", 7),
            Err(InsertError::Duplicate(0))
        );
        assert!(matches!(
            r.insert(Method::GET, "/v1/accounts/{id}", 8),
            Err(InsertError::Conflict(_))
        ));
        // A literal beside a parameter is fine: the literal wins.
        r.insert(Method::GET, "/v1/accounts/summary", 9).unwrap();
        assert!(matches!(
            r.find(&Method::GET, "/v1/accounts/summary"),
            RouteMatch::Found { route: 9, .. }
        ));
    }
}
