//! The catalogue's JSON Schemas for request and response bodies.
//!
//! Each file is checked against the 2020-12 meta-schema, compiled once however many
//! routes use it, and its examples are validated against it: the sandbox mock answers from
//! those examples, so an example that breaks its own schema is a compile error.

use crate::body::projection::{unknown_classes, FieldClass, Projection};
use crate::diagnostics::{did_you_mean, Diagnostic, Diagnostics, Location};
use crate::policy::document::{describe_pointer, Document};
use crate::policy::PolicySet;
use bytes::Bytes;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

/// A compiled body schema and its first example, serialised for the mock.
#[derive(Debug)]
pub struct BodySchema {
    pub validator: Arc<jsonschema::Validator>,
    pub example: Option<Bytes>,
    /// What a response may carry: the members the schema declares.
    pub projection: Arc<Projection>,
}

/// Compiles schema files on first use and remembers the outcome (success or not).
pub struct SchemaFiles<'a> {
    set: &'a PolicySet,
    cache: HashMap<PathBuf, Option<Arc<BodySchema>>>,
}

impl<'a> SchemaFiles<'a> {
    pub fn new(set: &'a PolicySet) -> Self {
        SchemaFiles {
            set,
            cache: HashMap::new(),
        }
    }

    /// Resolves `reference` against `dir` (the product's directory) and compiles it.
    /// `Err(diag)` means the reference itself is wrong; `Ok(None)` that the file has errors
    /// (already reported).
    pub fn get(
        &mut self,
        dir: &Path,
        reference: &str,
        diags: &mut Diagnostics,
    ) -> Result<Option<Arc<BodySchema>>, Diagnostic> {
        let path = normalize(&dir.join(reference));
        if !path.starts_with(crate::policy::CATALOGUE_DIR) {
            return Err(Diagnostic::error(
                "schema-outside-catalogue",
                format!("`{reference}` points outside the catalogue"),
            )
            .help("keep body schemas in catalogue/<domain>/schemas/ and refer to them as \"schemas/<file>.json\""));
        }
        if let Some(found) = self.cache.get(&path) {
            return Ok(found.clone());
        }
        if self.set.unparsed.contains(&path) {
            return Ok(None);
        }
        let in_schemas_dir = path.parent().and_then(Path::file_name).is_some_and(|d| d == "schemas");
        if !self.set.json.contains_key(&path) && !in_schemas_dir && self.set.root.join(&path).is_file() {
            return Err(Diagnostic::error(
                "schema-outside-catalogue",
                format!(
                    "`{}` is not in a schemas/ directory, so tollgate does not read it",
                    path.display()
                ),
            )
            .help("move it to catalogue/<domain>/schemas/ and refer to it as \"schemas/<file>.json\""));
        }
        let Some(doc) = self.set.json.get(&path) else {
            let file_name = path
                .file_name()
                .map(|f| f.to_string_lossy().to_string())
                .unwrap_or_default();
            let siblings: Vec<String> = self
                .set
                .json
                .keys()
                .filter(|p| p.parent() == path.parent())
                .filter_map(|p| p.file_name().map(|f| f.to_string_lossy().to_string()))
                .collect();
            let help = match did_you_mean(&file_name, siblings.iter().map(String::as_str)) {
                Some(s) => format!("did you mean `{}`?", Path::new(reference).with_file_name(s).display()),
                None => format!(
                    "create `{}`, or fix the path (it is relative to the product file)",
                    path.display()
                ),
            };
            return Err(Diagnostic::error(
                "missing-schema",
                format!("schema file `{}` does not exist", path.display()),
            )
            .help(help));
        };
        let compiled = compile_schema(doc, diags).map(Arc::new);
        self.cache.insert(path, compiled.clone());
        Ok(compiled)
    }

    /// Schema files no route refers to: probably a typo in a reference, or dead weight.
    pub fn unused(&self) -> BTreeSet<&Path> {
        self.set
            .json
            .keys()
            .filter(|p| !self.cache.contains_key(*p))
            .map(PathBuf::as_path)
            .collect()
    }
}

fn compile_schema(doc: &Document, diags: &mut Diagnostics) -> Option<BodySchema> {
    let schema = &doc.value;
    let before = diags.error_count();
    if !schema.is_object() {
        diags.push(
            Diagnostic::error("invalid-schema", "a body schema must be a JSON object")
                .at(doc.value_location(""))
                .help("start the file with {\"$schema\": \"https://json-schema.org/draft/2020-12/schema\", ...}"),
        );
        return None;
    }
    if let Some(dialect) = schema.get("$schema") {
        if dialect.as_str() != Some(DRAFT_2020_12) {
            diags.push(
                Diagnostic::error(
                    "schema-dialect",
                    format!("{dialect} is not a JSON Schema dialect tollgate accepts"),
                )
                .at(doc.value_location("/$schema"))
                .help(format!("write \"$schema\": \"{DRAFT_2020_12}\"")),
            );
            return None;
        }
    }
    let meta = jsonschema::draft202012::meta::validator();
    for error in meta.iter_errors(schema) {
        let pointer = error.instance_path().as_str().to_string();
        diags.push(
            Diagnostic::error(
                "invalid-schema",
                format!("{} is not valid JSON Schema: {error}", describe_pointer(&pointer)),
            )
            .at(doc.value_location(&pointer))
            .help("see https://json-schema.org/draft/2020-12/json-schema-validation"),
        );
    }
    for pointer in unknown_classes(schema) {
        let found = schema.pointer(&pointer).map(|v| v.to_string()).unwrap_or_default();
        let given = found.trim_matches('"').to_string();
        let help = match crate::diagnostics::did_you_mean(&given, FieldClass::NAMES) {
            Some(s) => format!("did you mean \"{s}\"?"),
            None => format!("use one of: {}", FieldClass::NAMES.join(", ")),
        };
        diags.push(
            Diagnostic::error(
                "unknown-data-class",
                format!("{found} is not a data class tollgate knows"),
            )
            .at(doc.value_location(&pointer))
            .help(format!("{help}; an unknown class would protect nothing")),
        );
    }
    if diags.error_count() > before {
        return None;
    }
    // Formats (date-time, email, uuid...) are assertions here: an example dated
    // "yesterday" must not reach partners from the sandbox.
    let validator = match jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(schema)
    {
        Ok(v) => v,
        Err(error) => {
            let pointer = error.schema_path().as_str().to_string();
            diags.push(
                Diagnostic::error("invalid-schema", format!("the schema does not compile: {error}"))
                    .at(location_or_file(doc, &pointer))
                    .help("references ($ref) must point inside the same file (#/$defs/...); patterns must be valid regular expressions"),
            );
            return None;
        }
    };
    let mut example = None;
    if let Some(examples) = schema.get("examples").and_then(Value::as_array) {
        for (i, instance) in examples.iter().enumerate() {
            let mut valid = true;
            for error in validator.iter_errors(instance) {
                valid = false;
                let pointer = format!("/examples/{i}{}", error.instance_path().as_str());
                diags.push(
                    Diagnostic::error(
                        "invalid-example",
                        format!("example {i} does not match its own schema: {error}"),
                    )
                    .at(doc.value_location(&pointer))
                    .help("fix the example or the schema; the sandbox mock answers partners with these examples"),
                );
            }
            if valid && example.is_none() {
                example = serde_json::to_vec(instance).ok().map(Bytes::from);
            }
        }
    }
    if diags.error_count() > before {
        return None;
    }
    Some(BodySchema {
        projection: Arc::new(Projection::from_schema(schema, schema)),
        validator: Arc::new(validator),
        example,
    })
}

fn location_or_file(doc: &Document, pointer: &str) -> Location {
    let loc = doc.value_location(pointer);
    if loc.line == 0 {
        Location::file(doc.source.path())
    } else {
        loc
    }
}

/// Lexically resolves `.` and `..` so references compare equal to loaded paths.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}
