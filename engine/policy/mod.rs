//! Policy files -> schema-validated raw documents.
//!
//! `load` reads the policy set under a root directory: `policies/gateway.toml` and
//! `catalogue/<domain>/<product>.toml` with the JSON Schemas beside them. Each TOML file is
//! validated against the engine's schema for its kind, then read into its raw type. Every
//! problem found becomes a located diagnostic; loading never stops at the first one.

pub mod document;
mod json_span;
pub mod raw;
pub mod raw_legacy;
pub mod raw_pricing;
pub mod raw_traffic;
pub mod schemas;
pub mod version;

use crate::diagnostics::{did_you_mean, Diagnostic, Diagnostics, Location, SourceFile};
use document::Document;
use raw::{RawGateway, RawMasking, RawPartner, RawProduct, RawScopes, RawTiers};
use schemas::FileKind;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
pub use version::PolicyVersion;

/// The directory of policy files, relative to the root.
pub const POLICIES_DIR: &str = "policies";
/// The directory of the API catalogue, relative to the root.
pub const CATALOGUE_DIR: &str = "catalogue";
/// The gateway settings file, relative to the root.
pub const GATEWAY_FILE: &str = "policies/gateway.toml";

/// Files in policies/ that tollgate knows, for "did you mean" on misnamed files.
const KNOWN_POLICY_FILES: &[&str] = &[
    "gateway.toml",
    "scopes.toml",
    "tiers.toml",
    "masking.toml",
    "pricing.toml",
    "partners/<id>.toml",
];

/// A document together with its raw typed form.
#[derive(Debug)]
pub struct Loaded<T> {
    pub doc: Document,
    pub raw: T,
}

/// A product file, with the domain (its directory) it belongs to.
#[derive(Debug)]
pub struct LoadedProduct {
    pub domain: String,
    /// The product file's directory relative to the root; schema paths resolve against it.
    pub dir: PathBuf,
    pub doc: Document,
    pub raw: RawProduct,
}

/// A legacy layout file; routes of its domain name it by `name` (the file stem).
#[derive(Debug)]
pub struct LoadedLayout {
    pub domain: String,
    pub name: String,
    /// The domain's directory relative to the root (`catalogue/<domain>`).
    pub dir: PathBuf,
    pub doc: Document,
    pub raw: raw_legacy::RawLayout,
}

/// Everything read from one policy root. Files with errors are left out of the typed parts.
#[derive(Debug)]
pub struct PolicySet {
    pub root: PathBuf,
    pub version: PolicyVersion,
    pub gateway: Option<Loaded<RawGateway>>,
    pub scopes: Option<Loaded<RawScopes>>,
    pub tiers: Option<Loaded<RawTiers>>,
    pub partners: Vec<Loaded<RawPartner>>,
    pub masking: Option<Loaded<RawMasking>>,
    /// policies/pricing.toml; absent: nothing is metered or billed.
    pub pricing: Option<Loaded<raw_pricing::RawPricing>>,
    pub products: Vec<LoadedProduct>,
    /// Legacy layouts, `catalogue/<domain>/legacy/*.toml`.
    pub layouts: Vec<LoadedLayout>,
    /// Every JSON file in the catalogue that parsed, by path relative to the root.
    pub json: BTreeMap<PathBuf, Document>,
    /// Files that exist but did not parse; their errors are already reported.
    pub unparsed: BTreeSet<PathBuf>,
    /// Some policy file failed to load, so a name that does not resolve may live in it:
    /// "does not exist" errors are held back until the file loads.
    pub incomplete: bool,
}

/// Reads and validates the policy set under `root`.
pub fn load(root: &Path) -> (PolicySet, Diagnostics) {
    let mut diags = Diagnostics::default();
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    if !root.is_dir() {
        diags.push(
            Diagnostic::error(
                "no-policy-root",
                format!("policy root `{}` is not a directory", root.display()),
            )
            .help("pass --root with the directory that holds policies/ and catalogue/"),
        );
    } else {
        collect(root, Path::new(POLICIES_DIR), &mut files, &mut diags);
        collect(root, Path::new(CATALOGUE_DIR), &mut files, &mut diags);
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let version = PolicyVersion::compute(files.iter().map(|(p, t)| (p.as_path(), t.as_bytes())), root);

    let mut set = PolicySet {
        root: root.to_path_buf(),
        version,
        gateway: None,
        scopes: None,
        tiers: None,
        partners: Vec::new(),
        masking: None,
        pricing: None,
        products: Vec::new(),
        layouts: Vec::new(),
        json: BTreeMap::new(),
        unparsed: BTreeSet::new(),
        incomplete: false,
    };
    if root.is_dir() && !files.iter().any(|(p, _)| p == Path::new(GATEWAY_FILE)) {
        diags.push(
            Diagnostic::error("missing-file", format!("`{GATEWAY_FILE}` was not found"))
                .at(Location::file(GATEWAY_FILE))
                .help(
                    "create it with at least one [[listeners]] entry and [environments]; see docs/reference/gateway.md",
                ),
        );
    }

    for (path, text) in files {
        let source = SourceFile::new(path.clone(), text);
        match classify(&path) {
            Place::Gateway => set.gateway = load_toml(source, FileKind::Gateway, &mut diags),
            Place::Scopes => set.scopes = load_toml(source, FileKind::Scopes, &mut diags),
            Place::Tiers => set.tiers = load_toml(source, FileKind::Tiers, &mut diags),
            Place::Partner => set.partners.extend(load_toml(source, FileKind::Partner, &mut diags)),
            Place::Masking => set.masking = load_toml(source, FileKind::Masking, &mut diags),
            Place::Pricing => set.pricing = load_toml(source, FileKind::Pricing, &mut diags),
            Place::Product { domain, dir } => {
                if let Some(loaded) = load_toml::<RawProduct>(source, FileKind::Product, &mut diags) {
                    set.products.push(LoadedProduct {
                        domain,
                        dir,
                        doc: loaded.doc,
                        raw: loaded.raw,
                    });
                }
            }
            Place::Layout { domain, dir, name } => {
                match load_toml::<raw_legacy::RawLayout>(source, FileKind::Legacy, &mut diags) {
                    Some(loaded) => set.layouts.push(LoadedLayout {
                        domain,
                        name,
                        dir,
                        doc: loaded.doc,
                        raw: loaded.raw,
                    }),
                    // Routes naming it stay quiet: its errors are reported already.
                    None => {
                        set.unparsed.insert(path);
                    }
                }
            }
            Place::CatalogueJson => match Document::from_json(source) {
                Ok(doc) => {
                    set.json.insert(path, doc);
                }
                Err(d) => {
                    diags.push(d);
                    set.unparsed.insert(path);
                }
            },
            Place::UnknownPolicyFile => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                let mut d = Diagnostic::error(
                    "unknown-file",
                    format!("`{}` is not a policy file tollgate knows", path.display()),
                )
                .at(Location::file(&path));
                d = match did_you_mean(&name, KNOWN_POLICY_FILES.iter().copied()) {
                    Some(s) => d.help(format!("did you mean `{POLICIES_DIR}/{s}`?")),
                    None => d.help(format!(
                        "policies/ holds: {}; move or remove this file",
                        KNOWN_POLICY_FILES.join(", ")
                    )),
                };
                diags.push(d);
            }
            Place::Stray(why) => diags.push(
                Diagnostic::warning("stray-file", format!("`{}` is not read by tollgate", path.display()))
                    .at(Location::file(&path))
                    .help(why),
            ),
        }
    }
    set.incomplete = diags.has_errors();
    (set, diags)
}

enum Place {
    Gateway,
    Scopes,
    Tiers,
    Partner,
    Masking,
    Pricing,
    Product { domain: String, dir: PathBuf },
    Layout { domain: String, dir: PathBuf, name: String },
    CatalogueJson,
    UnknownPolicyFile,
    Stray(&'static str),
}

fn classify(path: &Path) -> Place {
    let parts: Vec<&str> = path.iter().filter_map(|p| p.to_str()).collect();
    let is_toml = path.extension().is_some_and(|e| e == "toml");
    match parts.as_slice() {
        [POLICIES_DIR, "gateway.toml"] => Place::Gateway,
        [POLICIES_DIR, "scopes.toml"] => Place::Scopes,
        [POLICIES_DIR, "tiers.toml"] => Place::Tiers,
        [POLICIES_DIR, "masking.toml"] => Place::Masking,
        [POLICIES_DIR, "pricing.toml"] => Place::Pricing,
        [POLICIES_DIR, "partners", _file] if is_toml => Place::Partner,
        [POLICIES_DIR, ..] => Place::UnknownPolicyFile,
        [CATALOGUE_DIR, domain, _file] if is_toml => Place::Product {
            domain: (*domain).to_string(),
            dir: Path::new(CATALOGUE_DIR).join(domain),
        },
        [CATALOGUE_DIR, _domain, "schemas", ..] if !is_toml => Place::CatalogueJson,
        [CATALOGUE_DIR, domain, "legacy", file] if is_toml => Place::Layout {
            domain: (*domain).to_string(),
            dir: Path::new(CATALOGUE_DIR).join(domain),
            name: file.trim_end_matches(".toml").to_string(),
        },
        [CATALOGUE_DIR, _file] => Place::Stray("products live one level down, in catalogue/<domain>/<product>.toml"),
        _ => {
            Place::Stray("products are catalogue/<domain>/<product>.toml, schemas catalogue/<domain>/schemas/*.json and legacy layouts catalogue/<domain>/legacy/*.toml")
        }
    }
}

/// Parses and validates one file of a kind on its own, outside a policy set (for
/// `tollgate codec`). `None` when it has errors, all of them in the diagnostics.
pub fn load_file<T: DeserializeOwned>(source: SourceFile, kind: FileKind) -> (Option<Loaded<T>>, Diagnostics) {
    let mut diags = Diagnostics::default();
    let loaded = load_toml(source, kind, &mut diags);
    (loaded, diags)
}

fn load_toml<T: DeserializeOwned>(source: SourceFile, kind: FileKind, diags: &mut Diagnostics) -> Option<Loaded<T>> {
    let doc = match Document::from_toml(source) {
        Ok(doc) => doc,
        Err(d) => {
            diags.push(d);
            return None;
        }
    };
    let compiled = kind.compiled();
    let Some(validator) = compiled.validator.as_ref() else {
        diags.push(
            Diagnostic::error(
                "internal",
                format!("tollgate's own {} schema failed to build", kind.name()),
            )
            .at(Location::file(doc.source.path()))
            .help("this is a bug in tollgate; please report it"),
        );
        return None;
    };
    let found = doc.validate(validator, &compiled.schema, kind.name());
    if found.has_errors() {
        diags.extend(found);
        return None;
    }
    // The schema has accepted the document, so this only fails if schema and types disagree.
    match toml::from_str::<T>(&doc.source.text) {
        Ok(raw) => Some(Loaded { doc, raw }),
        Err(err) => {
            let location = doc.source.location(err.span().unwrap_or(0..0));
            diags.push(
                Diagnostic::error(
                    "invalid-value",
                    err.message().lines().next().unwrap_or("invalid value").to_string(),
                )
                .at(location)
                .help(format!("see docs/reference/{}.md", kind.name())),
            );
            None
        }
    }
}

/// Collects every .toml and .json file under `root/rel`, skipping hidden and editor files.
fn collect(root: &Path, rel: &Path, out: &mut Vec<(PathBuf, String)>, diags: &mut Diagnostics) {
    let dir = root.join(rel);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return,
        Err(err) => {
            diags.push(
                Diagnostic::error(
                    "unreadable",
                    format!("cannot read directory `{}`: {err}", rel.display()),
                )
                .at(Location::file(rel)),
            );
            return;
        }
    };
    let mut names: Vec<_> = entries.filter_map(Result::ok).map(|e| e.file_name()).collect();
    names.sort();
    for name in names {
        let name_str = name.to_string_lossy();
        if name_str.starts_with('.') || name_str.ends_with('~') || name_str.ends_with(".swp") {
            continue;
        }
        let rel_path = rel.join(&name);
        let full = root.join(&rel_path);
        if full.is_dir() {
            collect(root, &rel_path, out, diags);
            continue;
        }
        let wanted = full.extension().is_some_and(|e| e == "toml" || e == "json");
        if !wanted {
            continue;
        }
        match std::fs::read_to_string(&full) {
            Ok(text) => out.push((rel_path, text)),
            Err(err) => diags.push(
                Diagnostic::error("unreadable", format!("cannot read `{}`: {err}", rel_path.display()))
                    .at(Location::file(&rel_path))
                    .help("policy files must be readable UTF-8 text"),
            ),
        }
    }
}
