//! catalogue/<domain>/<product>.toml -> products, routes and one router per environment.

use super::body_schemas::{BodySchema, SchemaFiles};
use super::gateway::{suggest_upstream, GatewayParts};
use super::units::date_to_days;
use crate::access::AccessTable;
use crate::diagnostics::{did_you_mean, Diagnostic, Diagnostics, Location};
use crate::identity::token::RESERVED_PATHS;
use crate::pipeline::{DataClass, ProductPlan, ProductStatus, RoutePlan, RouteScope, Target};
use crate::policy::raw::{RawDataClass, RawProductStatus, RawRoute};
use crate::policy::{LoadedProduct, PolicySet};
use crate::route::{EnvMap, Environment, InsertError, PathTemplate, Router};
use crate::upstream::mock::MockResponse;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// The keyword that makes the sandbox answer from schema examples.
pub const MOCK: &str = "mock";

pub struct CatalogueParts {
    pub products: Vec<ProductPlan>,
    pub routes: Vec<RoutePlan>,
    pub routers: [Router; 2],
}

/// Where each route was declared, for diagnostics that point at two places.
struct Origin<'a> {
    product: &'a LoadedProduct,
    index: usize,
}

impl Origin<'_> {
    fn at(&self, key: &str) -> Location {
        self.product
            .doc
            .value_location(&format!("/routes/{}/{key}", self.index))
    }
}

pub fn compile(
    set: &PolicySet,
    gateway: Option<&GatewayParts>,
    access: &AccessTable,
    diags: &mut Diagnostics,
) -> CatalogueParts {
    let mut schemas = SchemaFiles::new(set);
    let mut layouts = super::legacy::Layouts::compile(set, diags);
    let mut products = Vec::new();
    let mut routes = Vec::new();
    let mut routers = [Router::default(), Router::default()];
    let mut product_ids: HashMap<&str, &LoadedProduct> = HashMap::new();
    let mut route_ids: HashMap<&str, Origin> = HashMap::new();
    let mut origins: Vec<Origin> = Vec::new();

    for loaded in &set.products {
        let raw = &loaded.raw;
        let doc = &loaded.doc;
        if let Some(first) = product_ids.insert(&raw.id, loaded) {
            diags.push(
                Diagnostic::error(
                    "duplicate-product",
                    format!("product id `{}` is declared twice", raw.id),
                )
                .at(doc.value_location("/id"))
                .note("first declared here", Some(first.doc.value_location("/id")))
                .help("product ids are unique across the catalogue; rename one"),
            );
            continue;
        }
        let product_index = products.len();
        products.push(product_plan(loaded, diags));
        let targets = product_targets(loaded, gateway, diags);

        for (index, raw_route) in raw.routes.iter().enumerate() {
            let origin = Origin { product: loaded, index };
            if let Some(first) = route_ids.get(raw_route.id.as_str()) {
                diags.push(
                    Diagnostic::error(
                        "duplicate-route",
                        format!("route id `{}` is declared twice", raw_route.id),
                    )
                    .at(origin.at("id"))
                    .note("first declared here", Some(first.at("id")))
                    .help("route ids are unique across the catalogue: counters, usage and audit are keyed by them"),
                );
                continue;
            }
            route_ids.insert(&raw_route.id, Origin { product: loaded, index });
            let names = Names {
                access,
                max_body: gateway.map(|g| g.settings.limits.max_body),
                incomplete: set.incomplete,
            };
            let Some(plan) = route_plan(
                raw_route,
                product_index,
                &origin,
                &targets,
                &mut schemas,
                &mut layouts,
                &names,
                diags,
            ) else {
                continue;
            };
            let sensitive = products.get(product_index).map(|p: &ProductPlan| p.data_class);
            if plan.response_projection.is_none() && matches!(sensitive, Some(DataClass::Pii | DataClass::Pci)) {
                diags.push(
                    Diagnostic::warning(
                        "unprojected-answers",
                        format!(
                            "route `{}` of a {} product has no response_schema: its answers reach partners unprojected and unmasked",
                            raw_route.id,
                            if sensitive == Some(DataClass::Pci) { "pci" } else { "pii" }
                        ),
                    )
                    .at(origin.at("id"))
                    .help("declare the answer with a response_schema: projection, masking profiles and the card-number safety net work from it"),
                );
            }
            let route_id = routes.len();
            for env in Environment::ALL {
                if plan.targets.get(env).is_none() {
                    continue;
                }
                match routers[env.index()].insert(plan.method.clone(), &raw_route.path, route_id) {
                    Ok(()) => {}
                    Err(InsertError::Duplicate(other)) => {
                        let other: &Origin = &origins[other];
                        diags.push(
                            Diagnostic::error(
                                "duplicate-path",
                                format!("{} {} is served twice in {}", plan.method, raw_route.path, env.as_str()),
                            )
                            .at(origin.at("path"))
                            .note(
                                format!("also served by route `{}`", other.product.raw.routes[other.index].id),
                                Some(other.at("path")),
                            )
                            .help("remove one of the routes, or give it another method or path"),
                        );
                        // The same clash in the other environment says nothing new.
                        break;
                    }
                    Err(InsertError::Conflict(why)) => {
                        diags.push(
                            Diagnostic::error(
                                "conflicting-path",
                                format!("path `{}` conflicts with another route: {why}", raw_route.path),
                            )
                            .at(origin.at("path"))
                            .help("two templates may not differ only in a parameter's name at the same position; use the same name"),
                        );
                        break;
                    }
                }
            }
            routes.push(plan);
            origins.push(origin);
        }
    }

    // With errors, some products were not read, so their schemas would look unused.
    let unused = if diags.has_errors() {
        Default::default()
    } else {
        schemas.unused()
    };
    layouts.report_unused(diags);
    for unused in unused {
        diags.push(
            Diagnostic::warning(
                "unused-schema",
                format!("schema `{}` is not used by any route", unused.display()),
            )
            .at(Location::file(unused))
            .help("refer to it from a route's request_schema or response_schema, or delete it"),
        );
    }
    CatalogueParts {
        products,
        routes,
        routers,
    }
}

fn product_plan(loaded: &LoadedProduct, diags: &mut Diagnostics) -> ProductPlan {
    let raw = &loaded.raw;
    let doc = &loaded.doc;
    let status = match raw.status {
        RawProductStatus::Active => ProductStatus::Active,
        RawProductStatus::Deprecated => ProductStatus::Deprecated,
        RawProductStatus::Retired => ProductStatus::Retired,
    };
    let mut lifecycle_headers = Vec::new();
    let date = |key: &str, value: &Option<String>, diags: &mut Diagnostics| -> Option<i64> {
        let text = value.as_deref()?;
        let days = date_to_days(text);
        if days.is_none() {
            diags.push(
                Diagnostic::error("invalid-date", format!("`{text}` is not a calendar date"))
                    .at(doc.value_location(&format!("/{key}")))
                    .help("write an existing date as YYYY-MM-DD"),
            );
        }
        days
    };
    let sunset = date("sunset", &raw.sunset, diags);
    let since = date("deprecated_since", &raw.deprecated_since, diags);
    if since.is_some() && status == ProductStatus::Active {
        diags.push(
            Diagnostic::error("lifecycle", "deprecated_since is set but the product is active")
                .at(doc.value_location("/deprecated_since"))
                .help("set status = \"deprecated\" (or \"retired\"), or remove deprecated_since"),
        );
    }
    if status == ProductStatus::Deprecated && since.is_none() {
        diags.push(
            Diagnostic::warning(
                "lifecycle",
                format!("product `{}` is deprecated but does not say since when", raw.id),
            )
            .at(doc.value_location("/status"))
            .help("add deprecated_since = \"YYYY-MM-DD\" so partners receive a Deprecation header"),
        );
    }
    if let (Some(since), Some(sunset)) = (since, sunset) {
        if sunset < since {
            diags.push(
                Diagnostic::error("lifecycle", "the sunset date is before the deprecation date")
                    .at(doc.value_location("/sunset"))
                    .help("a product is deprecated first and sunset later"),
            );
        }
    }
    if let Some(days) = since {
        if let Ok(value) = HeaderValue::from_str(&format!("@{}", days * 86_400)) {
            lifecycle_headers.push((HeaderName::from_static("deprecation"), value));
        }
    }
    if let Some(days) = sunset {
        let when = UNIX_EPOCH + Duration::from_secs(u64::try_from(days.max(0) * 86_400).unwrap_or(0));
        if let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(when)) {
            lifecycle_headers.push((HeaderName::from_static("sunset"), value));
        }
    }
    ProductPlan {
        id: Arc::from(raw.id.as_str()),
        name: raw.name.clone(),
        domain: loaded.domain.clone(),
        version: raw.version.clone(),
        status,
        licence: raw.licence.clone(),
        data_class: match raw.data_class {
            RawDataClass::Public => DataClass::Public,
            RawDataClass::Pii => DataClass::Pii,
            RawDataClass::Pci => DataClass::Pci,
        },
        lifecycle_headers,
    }
}

/// What route scopes resolve against.
struct Names<'a> {
    access: &'a AccessTable,
    /// The gateway's `limits.max_body`, which a route may lower but not raise.
    max_body: Option<u64>,
    /// Some policy file did not load, so an unresolved name may live there: stay quiet.
    incomplete: bool,
}

/// A route's `max_body`: a size no larger than the gateway's own limit, which stays the
/// ceiling (it also bounds what the listener buffers before a route is known).
fn route_body_limit(raw: &RawRoute, origin: &Origin, gateway: Option<u64>, diags: &mut Diagnostics) -> Option<u64> {
    let text = raw.max_body.as_deref()?;
    let Some(size) = super::units::size(text).filter(|s| *s > 0) else {
        diags.push(
            Diagnostic::error("invalid-size", format!("`{text}` is not a usable size"))
                .at(origin.at("max_body"))
                .help("write a positive whole number with a unit, e.g. \"16KiB\" or \"1MiB\""),
        );
        return None;
    };
    match gateway {
        Some(ceiling) if size > ceiling => {
            diags.push(
                Diagnostic::error(
                    "body-limit-above-gateway",
                    format!("max_body `{text}` is above the gateway's limits.max_body ({ceiling} bytes)"),
                )
                .at(origin.at("max_body"))
                .help("a route can only lower the limit; raise [limits] max_body in policies/gateway.toml first"),
            );
            None
        }
        _ => Some(size),
    }
}

/// What answers the product in each environment, before routes add their mocks.
#[derive(Clone, Copy)]
enum ProductTarget {
    Mock,
    Upstream(usize),
}

fn product_targets(
    loaded: &LoadedProduct,
    gateway: Option<&GatewayParts>,
    diags: &mut Diagnostics,
) -> EnvMap<ProductTarget> {
    let raw = &loaded.raw;
    let doc = &loaded.doc;
    let mut targets = EnvMap::default();
    let declared = [
        (Environment::Sandbox, raw.upstream.sandbox.as_deref()),
        (Environment::Production, raw.upstream.production.as_deref()),
    ];
    for (env, name) in declared {
        let Some(name) = name else { continue };
        let pointer = format!("/upstream/{}", env.as_str());
        if let Some(gateway) = gateway {
            if !gateway.environments[env.index()] {
                diags.push(
                    Diagnostic::warning(
                        "environment-not-served",
                        format!(
                            "product `{}` is offered in {} but no host serves it",
                            raw.id,
                            env.as_str()
                        ),
                    )
                    .at(doc.value_location(&pointer))
                    .help(format!(
                        "add [environments.{}] with hosts to policies/gateway.toml",
                        env.as_str()
                    )),
                );
            }
        }
        if name == MOCK {
            if env == Environment::Production {
                diags.push(
                    Diagnostic::error("mock-in-production", format!("product `{}` would answer production from the mock", raw.id))
                        .at(doc.value_location(&pointer))
                        .help("production must reach a real upstream; name one from gateway.toml, or remove the production line"),
                );
                continue;
            }
            targets.set(env, ProductTarget::Mock);
            continue;
        }
        let Some(gateway) = gateway else { continue };
        match gateway.upstream_index.get(name) {
            Some(index) => targets.set(env, ProductTarget::Upstream(*index)),
            None => diags.push(
                Diagnostic::error("missing-upstream", format!("upstream `{name}` is not declared"))
                    .at(doc.value_location(&pointer))
                    .help(suggest_upstream(
                        name,
                        gateway.upstream_index.keys().map(String::as_str),
                    )),
            ),
        }
    }
    targets
}

#[allow(clippy::too_many_arguments)] // what a route resolves against
fn route_plan(
    raw: &RawRoute,
    product: usize,
    origin: &Origin,
    targets: &EnvMap<ProductTarget>,
    schemas: &mut SchemaFiles,
    layouts: &mut super::legacy::Layouts,
    names: &Names,
    diags: &mut Diagnostics,
) -> Option<RoutePlan> {
    let access = names.access;
    let before = diags.error_count();
    if RESERVED_PATHS.contains(&raw.path.as_str()) {
        diags.push(
            Diagnostic::error(
                "reserved-path",
                format!("`{}` is answered by the gateway itself", raw.path),
            )
            .at(origin.at("path"))
            .help("choose another path; /oauth2/token, /.well-known/jwks.json and /.well-known/oauth-authorization-server belong to tollgate's authorization server"),
        );
    }
    let scope = raw.scope.as_deref().and_then(|name| match access.scope(name) {
        Some(index) => Some(RouteScope {
            index,
            name: Arc::from(name),
        }),
        None if names.incomplete => None,
        None => {
            let help = match did_you_mean(name, access.scope_index.keys().map(String::as_str)) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("declare it in policies/scopes.toml: [scopes.\"{name}\"] description = \"...\""),
            };
            diags.push(
                Diagnostic::error("unknown-scope", format!("scope `{name}` is not declared"))
                    .at(origin.at("scope"))
                    .help(help),
            );
            None
        }
    });
    let method = Method::from_bytes(raw.method.as_bytes()).unwrap_or(Method::GET);
    let path = match PathTemplate::parse(&raw.path) {
        Ok(path) => Some(path),
        Err(e) => {
            diags.push(
                Diagnostic::error("invalid-path", e.message)
                    .at(origin.at("path"))
                    .help(e.help),
            );
            None
        }
    };
    let upstream_path = path.as_ref().and_then(|path| {
        let Some(text) = raw.upstream_path.as_deref() else {
            return Some(path.clone());
        };
        match PathTemplate::parse_upstream(text, &path.params) {
            Ok(t) => Some(t),
            Err(e) => {
                diags.push(
                    Diagnostic::error("invalid-path", e.message)
                        .at(origin.at("upstream_path"))
                        .help(e.help),
                );
                None
            }
        }
    });
    let dir = &origin.product.dir;
    let mut schema = |key: &str, reference: &Option<String>, diags: &mut Diagnostics| -> Option<Arc<BodySchema>> {
        let reference = reference.as_deref()?;
        match schemas.get(dir, reference, diags) {
            Ok(found) => found,
            Err(d) => {
                diags.push(d.at(origin.at(key)));
                None
            }
        }
    };
    let request_schema = schema("request_schema", &raw.request_schema, diags);
    let response_schema = schema("response_schema", &raw.response_schema, diags);
    let legacy = raw.legacy.as_ref().and_then(|legacy| {
        let at = |key: &str| {
            origin.at(&if key.is_empty() {
                "legacy".to_string()
            } else {
                format!("legacy/{key}")
            })
        };
        let schemas = [
            (request_schema.as_deref(), raw.request_schema.is_some()),
            (response_schema.as_deref(), raw.response_schema.is_some()),
        ];
        layouts.bind(legacy, &raw.id, dir, &at, schemas, diags)
    });

    let mut route_targets = EnvMap::default();
    for env in Environment::ALL {
        match targets.get(env) {
            None => {}
            Some(ProductTarget::Upstream(index)) => route_targets.set(env, Target::Upstream(*index)),
            Some(ProductTarget::Mock) => {
                let status = StatusCode::from_u16(raw.mock_status.unwrap_or(200)).unwrap_or(StatusCode::OK);
                let example = response_schema.as_ref().and_then(|s| s.example.clone());
                let body = match (status == StatusCode::NO_CONTENT, example) {
                    (true, _) => Bytes::new(),
                    (false, Some(example)) => example,
                    // A broken schema reference is already reported; don't pile on.
                    (false, None) if raw.response_schema.is_some() && response_schema.is_none() => continue,
                    (false, None) => {
                        let why = if raw.response_schema.is_none() {
                            "it has no response_schema"
                        } else {
                            "its response schema has no valid example"
                        };
                        diags.push(
                            Diagnostic::error(
                                "mock-without-example",
                                format!("route `{}` is mocked in the sandbox but {why}", raw.id),
                            )
                            .at(origin.at("id"))
                            .help("add a response_schema with an \"examples\" array, or set mock_status = 204"),
                        );
                        continue;
                    }
                };
                route_targets.set(env, Target::Mock(MockResponse { status, body }));
            }
        }
    }
    let max_body = route_body_limit(raw, origin, names.max_body, diags);
    if diags.error_count() > before {
        return None;
    }
    Some(RoutePlan {
        id: Arc::from(raw.id.as_str()),
        max_body,
        product,
        method,
        path: Arc::from(raw.path.as_str()),
        upstream_path: upstream_path?,
        targets: route_targets,
        scope,
        billable_event: raw.billable_event.as_deref().map(Arc::from),
        billing: None,
        request_schema: request_schema.as_ref().map(|s| s.validator.clone()),
        request_card_fields: request_schema
            .filter(|s| s.projection.holds(crate::body::projection::FieldClass::PciPan))
            .map(|s| s.projection.clone()),
        response_projection: response_schema.map(|s| s.projection.clone()),
        masked_projections: Vec::new(),
        legacy,
    })
}
