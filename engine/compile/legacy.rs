//! catalogue/<domain>/legacy/*.toml -> `legacy::Codec`, and each route's `legacy` key ->
//! `legacy::RouteCodec`.
//!
//! Layouts are checked on their own first (PICTURE strings, record lengths against their
//! fields, overlaps and gaps, OCCURS DEPENDING ON targets, code tables, dates, currencies,
//! XML paths and namespaces), then against each route that uses them: every JSON target
//! must be a member the route's request or response schema declares.

use super::body_schemas::BodySchema;
use crate::body::projection::{Projection, Shape};
use crate::diagnostics::{did_you_mean, Diagnostic, Diagnostics, Location, SourceFile};
use crate::legacy::charset::Charset;
use crate::legacy::convert::{currency_exponent, CodeTable, DateFormat, Trim};
use crate::legacy::layout::{self, Count, Discriminator, FixedLayout, Group, Item, Kind, Record, Repeat};
use crate::legacy::pic::{self, Pic};
use crate::legacy::xml::{self, Compute, QName, Soap, XField, XGroup, XItem, XmlMapping};
use crate::legacy::{fields, Codec, Conv, Currency, Format, Indicator, JsonPath, JsonType, Part, RouteCodec};
use crate::policy::document::Document;
use crate::policy::raw_legacy::{
    RawCharset, RawCodes, RawCompute, RawField, RawJsonType, RawLayout, RawLayoutFormat, RawRecord, RawRepeat,
    RawRouteLegacy, RawTrim, RawUsage,
};
use crate::policy::schemas::FileKind;
use crate::policy::{LoadedLayout, PolicySet};
use http::HeaderValue;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One step of a JSON target from the body's root: a member, or every item of an array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Items,
}

/// A JSON member a layout reads (encoding) or writes (decoding), and where it is declared.
#[derive(Debug, Clone)]
pub struct TargetUse {
    pub path: Vec<Seg>,
    /// JSON pointer into the layout file, for the diagnostic.
    pub pointer: String,
    pub reads: bool,
    pub writes: bool,
}

/// A compiled layout and the JSON members it touches.
#[derive(Debug)]
pub struct CompiledLayout {
    pub codec: Arc<Codec>,
    pub targets: Vec<TargetUse>,
}

/// Compiles one layout document. `None` if it has errors (all pushed to `diags`).
pub fn compile_layout(name: &str, doc: &Document, raw: &RawLayout, diags: &mut Diagnostics) -> Option<CompiledLayout> {
    let before = diags.error_count();
    let mut cx = Cx {
        doc,
        diags,
        codes: HashMap::new(),
        targets: Vec::new(),
        slots: 0,
        charset: Charset::Ascii,
    };
    cx.code_tables(raw);
    let format = match raw.format {
        RawLayoutFormat::Fixed => cx.fixed(raw).map(Format::Fixed),
        RawLayoutFormat::Xml => cx.xml(raw).map(|m| Format::Xml(Box::new(m))),
    };
    if cx.diags.error_count() > before {
        return None;
    }
    Some(CompiledLayout {
        codec: Arc::new(Codec {
            name: Arc::from(name),
            format: format?,
        }),
        targets: cx.targets,
    })
}

/// Compiles a layout file on its own (for `tollgate codec` and tests): no route, so no
/// schema checks. The name is the file stem.
pub fn compile_file(path: &Path, text: String) -> Result<(Arc<Codec>, Diagnostics), Diagnostics> {
    let source = SourceFile::new(path, text);
    let (loaded, mut diags) = crate::policy::load_file::<RawLayout>(source, FileKind::Legacy);
    let Some(loaded) = loaded else {
        return Err(diags);
    };
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    match compile_layout(&name, &loaded.doc, &loaded.raw, &mut diags) {
        Some(compiled) if !diags.has_errors() => Ok((compiled.codec, diags)),
        _ => Err(diags),
    }
}

// ---------------------------------------------------------------------------------------
// The layouts of a policy set, and routes binding to them
// ---------------------------------------------------------------------------------------

struct Entry<'a> {
    loaded: &'a LoadedLayout,
    compiled: Option<CompiledLayout>,
    used: bool,
}

/// Every layout of the policy set, by domain and name.
pub struct Layouts<'a> {
    set: &'a PolicySet,
    entries: HashMap<(PathBuf, String), Entry<'a>>,
    /// (layout file, schema, target) already reported, so a layout used by several routes
    /// with the same schema is reported once.
    reported: BTreeSet<(PathBuf, usize, String)>,
}

impl<'a> Layouts<'a> {
    pub fn compile(set: &'a PolicySet, diags: &mut Diagnostics) -> Layouts<'a> {
        let mut entries = HashMap::new();
        for loaded in &set.layouts {
            let compiled = compile_layout(&loaded.name, &loaded.doc, &loaded.raw, diags);
            entries.insert(
                (loaded.dir.clone(), loaded.name.clone()),
                Entry {
                    loaded,
                    compiled,
                    used: false,
                },
            );
        }
        Layouts {
            set,
            entries,
            reported: BTreeSet::new(),
        }
    }

    /// Compiles a route's `legacy` key. `at(key)` locates a key of the route's `legacy`
    /// table (`""` for the table itself).
    #[allow(clippy::too_many_arguments)] // the route's facts the binding checks
    pub fn bind(
        &mut self,
        raw: &RawRouteLegacy,
        route_id: &str,
        dir: &Path,
        at: &dyn Fn(&str) -> Location,
        schemas: [(Option<&BodySchema>, bool); 2],
        diags: &mut Diagnostics,
    ) -> Option<Arc<RouteCodec>> {
        let before = diags.error_count();
        let mut codecs: [Option<Arc<Codec>>; 2] = [None, None];
        let roles = [
            ("request", &raw.request, "request_schema"),
            ("response", &raw.response, "response_schema"),
        ];
        for (i, (role, name, schema_key)) in roles.into_iter().enumerate() {
            let Some(name) = name else { continue };
            let key = (dir.to_path_buf(), name.clone());
            let Some(entry) = self.entries.get_mut(&key) else {
                if self
                    .set
                    .unparsed
                    .contains(&dir.join("legacy").join(format!("{name}.toml")))
                {
                    continue;
                }
                let known: Vec<&str> = self
                    .entries
                    .keys()
                    .filter(|(d, _)| d == dir)
                    .map(|(_, n)| n.as_str())
                    .collect();
                let help = match did_you_mean(name, known.iter().copied()) {
                    Some(s) => format!("did you mean \"{s}\"?"),
                    None => format!(
                        "create `{}/legacy/{name}.toml`; routes name layouts of their own domain by file name",
                        dir.display()
                    ),
                };
                diags.push(
                    Diagnostic::error("unknown-layout", format!("legacy layout `{name}` does not exist"))
                        .at(at(role))
                        .help(help),
                );
                continue;
            };
            entry.used = true;
            let (schema, declared) = schemas[i];
            let Some(compiled) = &entry.compiled else { continue };
            let Some(schema) = schema else {
                if !declared {
                    diags.push(
                        Diagnostic::error(
                            "legacy-without-schema",
                            format!("route `{route_id}` has a legacy {role} layout but no {schema_key}"),
                        )
                        .at(at(role))
                        .help(format!(
                            "add {schema_key}: the JSON is validated against it, and the layout's JSON members are checked against it"
                        )),
                    );
                }
                continue;
            };
            let file = entry.loaded.doc.source.path().to_path_buf();
            for target in &compiled.targets {
                let relevant = if i == 0 { target.reads } else { target.writes };
                if !relevant {
                    continue;
                }
                if let Err(miss) = check_target(&schema.projection, &target.path) {
                    let id = (
                        file.clone(),
                        Arc::as_ptr(&schema.projection) as usize,
                        target.pointer.clone(),
                    );
                    if !self.reported.insert(id) {
                        continue;
                    }
                    let shown = render_path(&target.path);
                    let help = match miss {
                        Miss::Unknown { name, known } => match did_you_mean(&name, known.iter().map(String::as_str)) {
                            Some(s) => format!("did you mean `{s}`? (the {schema_key} declares: {})", known.join(", ")),
                            None if known.is_empty() => format!("the {schema_key} declares nothing there"),
                            None => format!("the {schema_key} declares: {}", known.join(", ")),
                        },
                        Miss::NotArray => format!("the {schema_key} does not declare an array there"),
                        Miss::Array => format!("the {schema_key} declares an array there; use a repeating group"),
                    };
                    diags.push(
                        Diagnostic::error(
                            "unknown-json-target",
                            format!("`{shown}` is not a member of the {role} schema of route `{route_id}`"),
                        )
                        .at(entry.loaded.doc.value_location(&target.pointer))
                        .note(
                            format!("used as the {role} layout of route `{route_id}` here"),
                            Some(at(role)),
                        )
                        .help(help),
                    );
                }
            }
            codecs[i] = Some(compiled.codec.clone());
        }
        if diags.error_count() > before {
            return None;
        }
        let [request, response] = codecs;
        if request.is_none() && response.is_none() {
            return None;
        }
        let default_type = request
            .as_ref()
            .or(response.as_ref())
            .map(|c| c.default_media_type())
            .unwrap_or("application/octet-stream");
        let content_type = match &raw.content_type {
            Some(given) => match HeaderValue::from_str(given) {
                Ok(v) => v,
                Err(_) => {
                    diags.push(
                        Diagnostic::error("invalid-value", format!("`{given}` is not a valid media type"))
                            .at(at("content_type"))
                            .help("write a media type, e.g. \"application/octet-stream\""),
                    );
                    return None;
                }
            },
            None => HeaderValue::from_static(default_type),
        };
        let soap_action = request
            .as_ref()
            .and_then(|c| c.soap_action())
            .and_then(|a| HeaderValue::from_str(&format!("\"{a}\"")).ok());
        let accept = response
            .as_ref()
            .and_then(|c| HeaderValue::from_str(c.default_media_type()).ok());
        Some(Arc::new(RouteCodec {
            request,
            response,
            content_type,
            accept,
            soap_action,
        }))
    }

    /// Layouts no route names, as warnings (only when the set compiled: a broken product
    /// would make its layouts look unused).
    pub fn report_unused(&self, diags: &mut Diagnostics) {
        if diags.has_errors() {
            return;
        }
        let mut unused: Vec<&Path> = self
            .entries
            .values()
            .filter(|e| !e.used && e.compiled.is_some())
            .map(|e| e.loaded.doc.source.path())
            .collect();
        unused.sort();
        for path in unused {
            diags.push(
                Diagnostic::warning(
                    "unused-layout",
                    format!("legacy layout `{}` is not used by any route", path.display()),
                )
                .at(Location::file(path))
                .help("name it from a route: legacy = { response = \"<file name>\" }, or delete it"),
            );
        }
    }
}

enum Miss {
    Unknown { name: String, known: Vec<String> },
    NotArray,
    Array,
}

/// Whether a target is a member the schema's projection keeps.
fn check_target(projection: &Projection, path: &[Seg]) -> Result<(), Miss> {
    let Some((seg, rest)) = path.split_first() else {
        return Ok(());
    };
    match (&projection.shape, seg) {
        (Shape::Keep, _) => Ok(()),
        (Shape::Object(members), Seg::Key(name)) => match members.get(name) {
            Some(p) => check_target(p, rest),
            None => Err(Miss::Unknown {
                name: name.clone(),
                known: members.keys().map(str::to_string).collect(),
            }),
        },
        (Shape::Map(p), Seg::Key(_)) => check_target(p, rest),
        (Shape::Array(p), Seg::Items) => check_target(p, rest),
        (Shape::Array(_), Seg::Key(_)) => Err(Miss::Array),
        (_, Seg::Items) => Err(Miss::NotArray),
    }
}

fn render_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Items => out.push_str("[]"),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Compiling one layout
// ---------------------------------------------------------------------------------------

struct Cx<'d> {
    doc: &'d Document,
    diags: &'d mut Diagnostics,
    codes: HashMap<String, Arc<CodeTable>>,
    targets: Vec<TargetUse>,
    /// Slots allocated in the current record (or mapping).
    slots: usize,
    charset: Charset,
}

/// Names resolvable at one level of fields: for templates, OCCURS DEPENDING ON and sums.
#[derive(Default)]
struct Level {
    /// Field name -> (index in the item list, numeric).
    names: HashMap<String, (usize, bool)>,
    /// Slots to assign once the list is built: (item index, slot).
    slots: Vec<(usize, usize)>,
}

impl Level {
    fn slot_for(&mut self, index: usize, cx: &mut Cx<'_>) -> usize {
        if let Some((_, slot)) = self.slots.iter().find(|(i, _)| *i == index) {
            return *slot;
        }
        let slot = cx.slots;
        cx.slots += 1;
        self.slots.push((index, slot));
        slot
    }
}

/// Where a list of fields sits in JSON: the path of its object from the body's root.
#[derive(Clone, Default)]
struct Scope {
    json: Vec<Seg>,
}

impl Scope {
    fn child(&self, target: &JsonPath, array: bool) -> Scope {
        let mut json = self.json.clone();
        json.extend(target.segments().map(|s| Seg::Key(s.to_string())));
        if array {
            json.push(Seg::Items);
        }
        Scope { json }
    }
}

impl<'d> Cx<'d> {
    fn loc(&self, pointer: &str) -> Location {
        self.doc.value_location(pointer)
    }

    fn key_loc(&self, pointer: &str) -> Location {
        self.doc.key_location(pointer)
    }

    fn error(&mut self, code: &'static str, pointer: &str, message: impl Into<String>, help: impl Into<String>) {
        let location = self.loc(pointer);
        self.diags
            .push(Diagnostic::error(code, message).at(location).help(help));
    }

    fn code_tables(&mut self, raw: &RawLayout) {
        for (name, entries) in &raw.codes {
            let table = CodeTable {
                entries: entries
                    .iter()
                    .map(|(code, value)| (Box::from(code.as_str()), Box::from(value.as_str())))
                    .collect(),
            };
            self.codes.insert(name.clone(), Arc::new(table));
        }
    }

    /// A key that the format does not use.
    fn not_for(&mut self, pointer: &str, key: &str, format: &str) {
        let location = self.key_loc(pointer);
        self.diags.push(
            Diagnostic::error("not-for-format", format!("`{key}` has no meaning in a {format} layout"))
                .at(location)
                .help(format!(
                    "remove `{key}`; see docs/reference/legacy.md for the keys of {format} layouts"
                )),
        );
    }

    /// `not_for` each key that is present, under `base` (a JSON pointer prefix).
    fn none_of(&mut self, base: &str, keys: &[(&str, bool)], format: &str) {
        for &(key, present) in keys {
            if present {
                self.not_for(&format!("{base}/{key}"), key, format);
            }
        }
    }

    fn json_path(&mut self, pointer: &str, text: &str) -> Option<JsonPath> {
        let path = JsonPath::parse(text);
        if path.is_none() {
            self.error(
                "invalid-value",
                pointer,
                format!("`{text}` is not a JSON path"),
                "write a dotted path relative to the current object, e.g. \"balance.amount\"",
            );
        }
        path
    }

    fn target(&mut self, scope: &Scope, path: &JsonPath, pointer: &str, array: bool, reads: bool, writes: bool) {
        let mut json = scope.child(path, false).json;
        if array {
            json.push(Seg::Items);
        }
        self.targets.push(TargetUse {
            path: json,
            pointer: pointer.to_string(),
            reads,
            writes,
        });
    }

    // -----------------------------------------------------------------------------------
    // fixed
    // -----------------------------------------------------------------------------------

    fn fixed(&mut self, raw: &RawLayout) -> Option<FixedLayout> {
        self.none_of(
            "",
            &[
                ("root", raw.root.is_some()),
                ("namespace", raw.namespace.is_some()),
                ("namespaces", !raw.namespaces.is_empty()),
                ("soap", raw.soap.is_some()),
            ],
            "fixed",
        );
        self.charset = match raw.charset {
            Some(RawCharset::EbcdicCp037) => Charset::Cp037,
            Some(RawCharset::Ascii) | None => Charset::Ascii,
        };
        match (&raw.fields, &raw.records) {
            (Some(fields), None) => {
                if raw.record_type.is_some() {
                    self.not_for("/record_type", "record_type", "single-record");
                }
                self.slots = 0;
                let mut pos = 0usize;
                let mut variable = false;
                let before = self.diags.error_count();
                let items = self.fixed_items(fields, "/fields", &Scope::default(), &mut pos, &mut variable, None);
                if self.diags.error_count() == before {
                    self.check_length(raw.length, "/length", pos, variable);
                }
                Some(FixedLayout {
                    charset: self.charset,
                    records: vec![Record {
                        name: "record".into(),
                        code: None,
                        repeat: Repeat::Once,
                        target: None,
                        items,
                        slots: self.slots,
                    }],
                    discriminator: None,
                })
            }
            (None, Some(records)) => {
                if raw.length.is_some() {
                    self.not_for("/length", "length", "multi-record (give each record its length)");
                }
                self.records(raw, records)
            }
            (Some(_), Some(_)) => {
                let location = self.key_loc("/records");
                self.diags.push(
                    Diagnostic::error(
                        "invalid-value",
                        "a layout has either `fields` (one record type) or `records`, not both",
                    )
                    .at(location)
                    .help("move the fields into a [[records]] entry, or remove [[records]]"),
                );
                None
            }
            (None, None) => {
                let location = self.loc("");
                self.diags.push(
                    Diagnostic::error("missing-key", "a fixed layout needs `fields` or `records`")
                        .at(location)
                        .help("add fields = [ { name = \"...\", pic = \"X(8)\", json = \"...\" }, ... ]"),
                );
                None
            }
        }
    }

    fn check_length(&mut self, declared: Option<u64>, pointer: &str, computed: usize, variable: bool) {
        let Some(declared) = declared else { return };
        if declared as usize != computed {
            let what = if variable {
                format!("the fields add up to {computed} bytes at their maximum OCCURS")
            } else {
                format!("the fields add up to {computed} bytes")
            };
            self.error(
                "record-length",
                pointer,
                format!("the record length is declared as {declared} bytes, but {what}"),
                "fix the length or the fields (a missing FILLER is the usual cause)",
            );
        }
    }

    fn records(&mut self, raw: &RawLayout, records: &[RawRecord]) -> Option<FixedLayout> {
        let names: Vec<&str> = records.iter().map(|r| r.name.as_str()).collect();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut compiled = Vec::new();
        let mut discriminator: Option<(Discriminator, usize)> = None;
        if records.len() > 1 && raw.record_type.is_none() {
            let location = self.loc("");
            self.diags.push(
                Diagnostic::error(
                    "missing-key",
                    "several record types need `record_type` to tell them apart",
                )
                .at(location)
                .help("add record_type = \"<the field holding the record code>\", and a `code` on each record"),
            );
        }
        for (ri, record) in records.iter().enumerate() {
            let base = format!("/records/{ri}");
            if let Some(first) = seen.insert(&record.name, ri) {
                let location = self.loc(&format!("{base}/name"));
                let first = self.loc(&format!("/records/{first}/name"));
                self.diags.push(
                    Diagnostic::error("duplicate-field", format!("record `{}` is declared twice", record.name))
                        .at(location)
                        .note("first declared here", Some(first))
                        .help("give each record type its own name"),
                );
            }
            self.slots = 0;
            let repeat = match record.repeat {
                None | Some(RawRepeat::Once) => Repeat::Once,
                Some(RawRepeat::Optional) => Repeat::Optional,
                Some(RawRepeat::Many) => Repeat::Many,
            };
            let target = record
                .json
                .as_ref()
                .and_then(|j| self.json_path(&format!("{base}/json"), j));
            if repeat != Repeat::Once && target.is_none() && record.json.is_none() {
                let location = self.loc(&base);
                self.diags.push(
                    Diagnostic::error(
                        "missing-key",
                        format!("record `{}` repeats, so it needs `json`", record.name),
                    )
                    .at(location)
                    .help("add json = \"<member>\": an array (many) or an object (optional) of the body"),
                );
            }
            let scope = match &target {
                Some(t) => {
                    self.target(
                        &Scope::default(),
                        t,
                        &format!("{base}/json"),
                        repeat == Repeat::Many,
                        true,
                        true,
                    );
                    Scope::default().child(t, repeat == Repeat::Many)
                }
                None => Scope::default(),
            };
            let mut pos = 0usize;
            let mut variable = false;
            let mut items = self.fixed_items(
                &record.fields,
                &format!("{base}/fields"),
                &scope,
                &mut pos,
                &mut variable,
                Some(&names),
            );
            self.check_length(record.length, &format!("{base}/length"), pos, variable);

            let code = match (&raw.record_type, &record.code) {
                (Some(field), Some(code)) => self.discriminate(field, code, &base, &mut items, &mut discriminator, ri),
                (Some(_), None) => {
                    let location = self.loc(&base);
                    self.diags.push(
                        Diagnostic::error("missing-key", format!("record `{}` has no `code`", record.name))
                            .at(location)
                            .help("add code = \"...\": the value of the record_type field for this record"),
                    );
                    None
                }
                (None, Some(_)) => {
                    self.not_for(&format!("{base}/code"), "code", "layout without record_type");
                    None
                }
                (None, None) => None,
            };
            compiled.push(Record {
                name: record.name.as_str().into(),
                code,
                repeat,
                target,
                items,
                slots: self.slots,
            });
        }
        Some(FixedLayout {
            charset: self.charset,
            records: compiled,
            discriminator: discriminator.map(|(d, _)| d),
        })
    }

    /// Makes the record_type field of a record a constant with the record's code, and checks
    /// it sits where it sits in every other record.
    fn discriminate(
        &mut self,
        field: &str,
        code: &str,
        base: &str,
        items: &mut [Item],
        discriminator: &mut Option<(Discriminator, usize)>,
        ri: usize,
    ) -> Option<Box<[u8]>> {
        let mut offset = 0usize;
        let mut found: Option<usize> = None;
        for (i, item) in items.iter().enumerate() {
            match item {
                Item::Field(f) if &*f.name == field => {
                    found = Some(i);
                    break;
                }
                Item::Field(f) => offset += f.len,
                _ => break,
            }
        }
        let Some(Item::Field(f)) = found.and_then(|i| items.get_mut(i)) else {
            let location = self.loc(&format!("{base}/fields"));
            self.diags.push(
                Diagnostic::error(
                    "invalid-record",
                    format!("record has no field `{field}` (the record_type)"),
                )
                .at(location)
                .help(format!(
                    "declare `{field}` (PIC X) in every record, before any OCCURS group"
                )),
            );
            return None;
        };
        if f.kind != Kind::Alnum {
            let location = self.loc(&format!("{base}/fields"));
            self.diags.push(
                Diagnostic::error(
                    "invalid-record",
                    format!("the record_type field `{field}` must be PIC X"),
                )
                .at(location)
                .help("record-type codes are compared as text"),
            );
            return None;
        }
        let mut bytes = Vec::with_capacity(f.len);
        for c in code.chars() {
            match self.charset.encode_char(c) {
                Some(b) => bytes.push(b),
                None => {
                    self.error(
                        "invalid-record",
                        &format!("{base}/code"),
                        format!("`{code}` cannot be written in {}", self.charset.name()),
                        "use characters of the layout's character set",
                    );
                    return None;
                }
            }
        }
        if bytes.len() != f.len {
            self.error(
                "invalid-record",
                &format!("{base}/code"),
                format!(
                    "code `{code}` has {} characters but `{field}` holds {}",
                    bytes.len(),
                    f.len
                ),
                "make the code as long as the record_type field",
            );
            return None;
        }
        match discriminator {
            None => {
                *discriminator = Some((
                    Discriminator {
                        offset,
                        len: f.len,
                        field: Box::from(field),
                    },
                    ri,
                ))
            }
            Some((d, first)) if d.offset != offset || d.len != f.len => {
                let location = self.loc(&format!("{base}/fields"));
                let first_loc = self.loc(&format!("/records/{first}/fields"));
                self.diags.push(
                    Diagnostic::error(
                        "invalid-record",
                        format!(
                            "`{field}` is at offset {offset} ({} bytes) here but at {} ({} bytes) in another record",
                            f.len, d.offset, d.len
                        ),
                    )
                    .at(location)
                    .note("the first record declares it here", Some(first_loc))
                    .help("the record_type field must sit at the same place in every record"),
                );
                return None;
            }
            Some(_) => {}
        }
        let code: Box<[u8]> = bytes.into();
        f.constant = Some(code.clone());
        Some(code)
    }

    #[allow(clippy::too_many_arguments)] // the position in the record and in JSON
    fn fixed_items(
        &mut self,
        raws: &[RawField],
        base: &str,
        scope: &Scope,
        pos: &mut usize,
        variable: &mut bool,
        records: Option<&[&str]>,
    ) -> Vec<Item> {
        let mut items: Vec<Item> = Vec::with_capacity(raws.len());
        let mut level = Level::default();
        // (item index, byte offset in this level) of fields at a fixed place.
        let mut starts: Vec<(usize, Option<usize>)> = Vec::new();
        for (i, raw) in raws.iter().enumerate() {
            let p = format!("{base}/{i}");
            self.none_of(&p, &[("xml", raw.xml.is_some())], "fixed");
            if matches!(raw.compute, Some(RawCompute::Sum | RawCompute::Now)) {
                self.not_for(&format!("{p}/compute"), "compute", "fixed (only compute = \"count\")");
            }
            let index = items.len();
            if raw.fields.is_some() {
                if let Some((item, count)) = self.fixed_group(raw, &p, scope, pos, variable, &mut level, records) {
                    if let Some((count_index, target)) = count {
                        if let Some(Item::Field(f)) = items.get_mut(count_index) {
                            f.count = Some(Count::Items(target));
                        }
                    }
                    self.declare(&mut level, raw, &p, index, false);
                    items.push(item);
                }
                continue;
            }
            if raw.pic.is_none() {
                if let Some(item) = self.entry_without_bytes(raw, &p, scope, &mut level, "pic") {
                    items.push(item);
                }
                continue;
            }
            let was_variable = *variable;
            if let Some(field) = self.fixed_field(raw, &p, scope, pos, variable, records) {
                let numeric = field.kind != Kind::Alnum && field.kind != Kind::Filler;
                self.declare(&mut level, raw, &p, index, numeric);
                // fixed_field leaves `pos` at the field's end.
                starts.push((items.len(), (!was_variable).then(|| pos.saturating_sub(field.len))));
                items.push(Item::Field(field));
            }
        }
        for (index, slot) in level.slots {
            if let Some(Item::Field(f)) = items.get_mut(index) {
                f.slot = Some(slot);
            }
        }
        link_currencies(&mut items, &starts);
        items
    }

    /// Registers a field name at its level; a second field of the same name is an error.
    fn declare(&mut self, level: &mut Level, raw: &RawField, p: &str, index: usize, numeric: bool) {
        let Some(name) = &raw.name else { return };
        if name.eq_ignore_ascii_case("filler") {
            return;
        }
        if level.names.insert(name.clone(), (index, numeric)).is_some() {
            self.error(
                "duplicate-field",
                &format!("{p}/name"),
                format!("field `{name}` is declared twice at this level"),
                "give each field its own name (FILLER may repeat)",
            );
        }
    }

    /// A `const` or `template` entry: JSON only, no bytes.
    fn entry_without_bytes(
        &mut self,
        raw: &RawField,
        p: &str,
        scope: &Scope,
        level: &mut Level,
        bytes_key: &str,
    ) -> Option<Item> {
        let target = raw.json.as_ref().and_then(|j| self.json_path(&format!("{p}/json"), j));
        match (&raw.constant, &raw.template) {
            (Some(value), None) => {
                let Some(target) = target else {
                    self.missing_json(p, "const");
                    return None;
                };
                self.target(scope, &target, &format!("{p}/json"), false, false, true);
                Some(Item::Const {
                    target,
                    value: value.clone(),
                })
            }
            (None, Some(template)) => {
                let Some(target) = target else {
                    self.missing_json(p, "template");
                    return None;
                };
                self.target(scope, &target, &format!("{p}/json"), false, false, true);
                let parts = self.template(template, &format!("{p}/template"), level)?;
                Some(Item::Template { target, parts })
            }
            (Some(_), Some(_)) => {
                self.error(
                    "invalid-value",
                    p,
                    "an entry has `const` or `template`, not both",
                    "split it in two entries",
                );
                None
            }
            (None, None) => {
                let location = self.loc(p);
                self.diags.push(
                    Diagnostic::error("missing-key", format!("this field has no `{bytes_key}`"))
                        .at(location)
                        .help(format!(
                            "add {bytes_key} = \"...\"; or, for a JSON-only member, const = ... or template = \"...\" with json"
                        )),
                );
                None
            }
        }
    }

    fn missing_json(&mut self, p: &str, what: &str) {
        let location = self.loc(p);
        self.diags.push(
            Diagnostic::error("missing-key", format!("a `{what}` entry needs `json`"))
                .at(location)
                .help("add json = \"<member>\": where the value goes"),
        );
    }

    fn template(&mut self, text: &str, pointer: &str, level: &mut Level) -> Option<Vec<Part>> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].into()));
            }
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else {
                self.error(
                    "invalid-value",
                    pointer,
                    format!("`{text}` has an unclosed `{{`"),
                    "write fields as {name}",
                );
                return None;
            };
            let name = &after[..close];
            match level.names.get(name) {
                Some((index, _)) => {
                    let index = *index;
                    let slot = level.slot_for(index, self);
                    parts.push(Part::Slot(slot));
                }
                None => {
                    let known: Vec<&str> = level.names.keys().map(String::as_str).collect();
                    let help = match did_you_mean(name, known.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => "a template names fields declared before it, at the same level".to_string(),
                    };
                    self.error(
                        "unknown-field",
                        pointer,
                        format!("template names `{name}`, which is not an earlier field"),
                        help,
                    );
                    return None;
                }
            }
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.into()));
        }
        Some(parts)
    }

    #[allow(clippy::too_many_arguments)] // the position in the record and in JSON
    fn fixed_group(
        &mut self,
        raw: &RawField,
        p: &str,
        scope: &Scope,
        pos: &mut usize,
        variable: &mut bool,
        level: &mut Level,
        records: Option<&[&str]>,
    ) -> Option<(Item, Option<(usize, JsonPath)>)> {
        let fields = raw.fields.as_deref().unwrap_or(&[]);
        self.none_of(
            p,
            &[
                ("pic", raw.pic.is_some()),
                ("usage", raw.usage.is_some()),
                ("value", raw.value.is_some()),
                ("codes", raw.codes.is_some()),
                ("date", raw.date.is_some()),
            ],
            "group",
        );
        let name: Box<str> = raw.name.as_deref().unwrap_or("group").into();
        self.offset(raw, p, pos, *variable);
        let occurs = raw.occurs.unwrap_or(1) as usize;
        let mut ok = true;
        let depending_on = match &raw.depending_on {
            None => None,
            Some(_) if raw.occurs.is_none() => {
                self.error(
                    "invalid-depending-on",
                    &format!("{p}/depending_on"),
                    "depending_on needs occurs (the maximum)",
                    "add occurs = <the most times the group can occur>",
                );
                ok = false;
                None
            }
            Some(count) => match level.names.get(count.as_str()) {
                Some((index, true)) => {
                    let index = *index;
                    Some((index, level.slot_for(index, self)))
                }
                found => {
                    let why = if found.is_some() {
                        format!("`{count}` is not numeric")
                    } else {
                        format!("`{count}` is not a field declared before this group")
                    };
                    let numeric: Vec<&str> = level
                        .names
                        .iter()
                        .filter(|(_, (_, n))| *n)
                        .map(|(k, _)| k.as_str())
                        .collect();
                    let help = match did_you_mean(count, numeric.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => "OCCURS DEPENDING ON names an earlier numeric field at the same level (PIC 9)".into(),
                    };
                    self.error(
                        "invalid-depending-on",
                        &format!("{p}/depending_on"),
                        format!("depending_on: {why}"),
                        help,
                    );
                    ok = false;
                    None
                }
            },
        };
        let target = raw.json.as_ref().and_then(|j| self.json_path(&format!("{p}/json"), j));
        let array = raw.occurs.is_some();
        let child = match &target {
            Some(t) => {
                self.target(scope, t, &format!("{p}/json"), array, true, true);
                scope.child(t, array)
            }
            None => scope.clone(),
        };
        let mut element_len = 0usize;
        let mut nested_variable = false;
        let items = self.fixed_items(
            fields,
            &format!("{p}/fields"),
            &child,
            &mut element_len,
            &mut nested_variable,
            records,
        );
        if nested_variable {
            self.error(
                "invalid-depending-on",
                p,
                "an OCCURS DEPENDING ON group cannot sit inside another group",
                "move the variable group to the record's top level",
            );
        }
        if array && target.is_none() && has_targets(&items) {
            let location = self.loc(p);
            self.diags.push(
                Diagnostic::error(
                    "missing-key",
                    format!("group `{name}` repeats and maps fields, so it needs `json`"),
                )
                .at(location)
                .help("add json = \"<member>\": the JSON array its occurrences become"),
            );
        }
        // The count field is written from the array's length.
        let count = match (depending_on, &target) {
            (Some((index, _)), Some(target)) => Some((index, target.clone())),
            _ => None,
        };
        *pos += element_len * occurs;
        if depending_on.is_some() {
            *variable = true;
        }
        if !ok {
            return None;
        }
        let group = Item::Group(Group {
            name,
            occurs,
            depending_on: depending_on.map(|(_, slot)| slot),
            target,
            items,
        });
        Some((group, count))
    }
}

/// An amount whose currency is a text field beside it, at a fixed distance, reads the code
/// straight from the record instead of waiting for the whole object to be read.
fn link_currencies(items: &mut [Item], starts: &[(usize, Option<usize>)]) {
    let start_of = |index: usize| starts.iter().find(|(i, _)| *i == index).and_then(|(_, s)| *s);
    let mut links = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let Item::Field(field) = item else { continue };
        let Some(Currency::Path(path)) = &field.conv.currency else {
            continue;
        };
        let sibling = items.iter().enumerate().find_map(|(j, other)| match other {
            Item::Field(f) if f.kind == Kind::Alnum && f.target.as_ref() == Some(path) && f.conv.codes.is_none() => {
                Some((j, f.len, f.conv.trim))
            }
            _ => None,
        });
        let Some((j, len, trim)) = sibling else { continue };
        if let (Some(code_at), Some(amount_at)) = (start_of(j), start_of(index)) {
            links.push((index, code_at as isize - amount_at as isize, len, trim));
        }
    }
    for (index, delta, len, trim) in links {
        if let Some(Item::Field(f)) = items.get_mut(index) {
            f.currency_at = Some(layout::CurrencyAt { delta, len, trim });
        }
    }
}

fn has_targets(items: &[Item]) -> bool {
    items.iter().any(|item| match item {
        Item::Field(f) => f.target.is_some(),
        Item::Group(g) => g.target.is_some() || has_targets(&g.items),
        Item::Const { .. } | Item::Template { .. } => true,
    })
}

impl Cx<'_> {
    /// Checks an explicit `offset` against where the previous field ended.
    fn offset(&mut self, raw: &RawField, p: &str, pos: &mut usize, variable: bool) {
        let Some(offset) = raw.offset else { return };
        let offset = offset as usize;
        let pointer = format!("{p}/offset");
        if variable {
            self.error(
                "invalid-value",
                &pointer,
                "an offset after an OCCURS DEPENDING ON group moves with the count",
                "remove `offset`: fields after a variable group follow it",
            );
        } else if offset < *pos {
            self.error(
                "field-overlap",
                &pointer,
                format!("this field starts at offset {offset}, inside the field before it, which ends at {pos}"),
                "fix the offset or the size of the field before it (REDEFINES is not supported: map the bytes once)",
            );
        } else if offset > *pos {
            self.error(
                "field-gap",
                &pointer,
                format!(
                    "bytes {pos} to {} are not declared: this field starts at {offset}",
                    offset - 1
                ),
                format!(
                    "declare them, e.g. {{ pic = \"X({})\" }} (a FILLER), or fix the offset",
                    offset - *pos
                ),
            );
        }
        *pos = offset;
    }

    fn fixed_field(
        &mut self,
        raw: &RawField,
        p: &str,
        scope: &Scope,
        pos: &mut usize,
        variable: &mut bool,
        records: Option<&[&str]>,
    ) -> Option<layout::Field> {
        let text = raw.pic.as_deref().unwrap_or_default();
        let parsed = match pic::parse(text) {
            Ok(parsed) => parsed,
            Err(e) => {
                let mut location = self.loc(&format!("{p}/pic"));
                // Point at the offending character inside the quoted string.
                if location.line > 0 && location.width == text.len() + 2 {
                    location.column += 1 + e.at;
                    location.width = 1;
                }
                self.diags.push(
                    Diagnostic::error("invalid-pic", format!("PIC `{text}`: {}", e.message))
                        .at(location)
                        .help("write a COBOL PICTURE such as X(8), 9(6), S9(13)V99 or S9(7)V9(2)"),
                );
                return None;
            }
        };
        let filler = raw.name.as_deref().is_none_or(|n| n.eq_ignore_ascii_case("filler"));
        let usage = raw.usage.unwrap_or(RawUsage::Display);
        let (kind, len) = match (parsed, usage) {
            (Pic::Alnum { len }, RawUsage::Display) => (Kind::Alnum, len),
            (Pic::Alnum { .. }, _) => {
                self.error(
                    "invalid-pic",
                    &format!("{p}/usage"),
                    "comp-3 and comp fields are numeric, but the PICTURE is alphanumeric",
                    "use a numeric PICTURE (S9(n)V9(m)), or remove usage",
                );
                return None;
            }
            (Pic::Numeric { signed, digits, scale }, RawUsage::Display) => {
                (Kind::Zoned { signed, digits, scale }, digits)
            }
            (Pic::Numeric { signed, digits, scale }, RawUsage::Comp3) => {
                (Kind::Packed { signed, digits, scale }, fields::packed_len(digits))
            }
            (Pic::Numeric { signed, digits, scale }, RawUsage::Comp) => {
                if digits > fields::BINARY_MAX_DIGITS {
                    self.error(
                        "invalid-pic",
                        &format!("{p}/pic"),
                        format!(
                            "a binary (comp) field holds at most {} digits",
                            fields::BINARY_MAX_DIGITS
                        ),
                        "use comp-3 for longer numbers",
                    );
                    return None;
                }
                (Kind::Binary { signed, digits, scale }, fields::binary_len(digits))
            }
        };
        self.offset(raw, p, pos, *variable);
        *pos += len;
        let kind = if filler && raw.value.is_none() {
            Kind::Filler
        } else {
            kind
        };
        if filler && raw.json.is_some() {
            self.error(
                "invalid-value",
                &format!("{p}/json"),
                "a FILLER is not mapped",
                "give the field a name to map it",
            );
            return None;
        }
        let name: Box<str> = raw.name.as_deref().unwrap_or("FILLER").into();
        let mut target = None;
        if let Some(json) = &raw.json {
            if raw.value.is_some() {
                self.error(
                    "invalid-value",
                    &format!("{p}/json"),
                    "a field with a constant `value` is not mapped",
                    "remove json (use const on a separate entry to put a fixed value in JSON)",
                );
                return None;
            }
            target = self.json_path(&format!("{p}/json"), json);
            if let Some(t) = &target {
                self.target(scope, t, &format!("{p}/json"), false, true, true);
            }
        }
        let constant = match &raw.value {
            None => None,
            Some(value) => Some(self.constant(value, kind, len, &format!("{p}/value"))?),
        };
        let count = match raw.compute {
            Some(RawCompute::Count) => {
                let of = raw.of.as_deref().unwrap_or_default();
                let index = records.and_then(|names| names.iter().position(|n| *n == of));
                match (index, !matches!(kind, Kind::Alnum | Kind::Filler)) {
                    (Some(index), true) => Some(Count::Records(index)),
                    (_, false) => {
                        self.error(
                            "invalid-compute",
                            &format!("{p}/compute"),
                            "a count is written in a numeric field",
                            "use a PIC 9 field",
                        );
                        return None;
                    }
                    (None, true) => {
                        let known = records.unwrap_or(&[]);
                        let help = match did_you_mean(of, known.iter().copied()) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None if known.is_empty() => "in a fixed layout, compute = \"count\" counts records of a multi-record layout; an OCCURS count is its depending_on field".into(),
                            None => format!("name a record type: {}", known.join(", ")),
                        };
                        self.error(
                            "invalid-compute",
                            &format!("{p}/of"),
                            format!("`{of}` is not a record type"),
                            help,
                        );
                        return None;
                    }
                }
            }
            _ => None,
        };
        let numeric = match kind {
            Kind::Zoned { signed, digits, scale }
            | Kind::Packed { signed, digits, scale }
            | Kind::Binary { signed, digits, scale } => Some((signed, digits, scale)),
            _ => None,
        };
        let alnum = (kind == Kind::Alnum).then_some(len);
        let conv = self.conv(raw, p, scope, numeric, alnum, false)?;
        Some(layout::Field {
            name,
            len,
            kind,
            target,
            conv,
            constant,
            slot: None,
            count,
            currency_at: None,
        })
    }

    /// A constant `value` in the field's storage.
    fn constant(&mut self, value: &str, kind: Kind, len: usize, pointer: &str) -> Option<Box<[u8]>> {
        let mut out = Vec::with_capacity(len);
        match kind {
            Kind::Alnum | Kind::Filler => {
                for c in value.chars() {
                    match self.charset.encode_char(c) {
                        Some(b) => out.push(b),
                        None => {
                            self.error(
                                "invalid-value",
                                pointer,
                                format!("`{value}` cannot be written in {}", self.charset.name()),
                                "use characters of the layout's character set",
                            );
                            return None;
                        }
                    }
                }
                if out.len() > len {
                    self.error(
                        "invalid-value",
                        pointer,
                        format!("`{value}` is longer than the field ({len} characters)"),
                        "shorten the value or widen the PICTURE",
                    );
                    return None;
                }
                out.resize(len, self.charset.space());
            }
            Kind::Zoned { signed, digits, scale }
            | Kind::Packed { signed, digits, scale }
            | Kind::Binary { signed, digits, scale } => {
                let d = match layout::digits_from_text(value, digits, scale, signed) {
                    Ok(d) => d,
                    Err(why) => {
                        self.error(
                            "invalid-value",
                            pointer,
                            format!("`{value}` does not fit the field: {why}"),
                            "write a number the PICTURE holds",
                        );
                        return None;
                    }
                };
                match kind {
                    Kind::Zoned { .. } => fields::encode_zoned(&d, self.charset, signed, &mut out),
                    Kind::Packed { .. } => fields::encode_packed(&d, signed, &mut out),
                    _ => fields::encode_binary(&d, len, signed, &mut out),
                }
            }
        }
        Some(out.into_boxed_slice())
    }

    /// The conversions of a field, for fixed (`numeric`/`alnum` say what it stores) and
    /// XML fields.
    fn conv(
        &mut self,
        raw: &RawField,
        p: &str,
        scope: &Scope,
        numeric: Option<(bool, usize, usize)>,
        alnum: Option<usize>,
        xml: bool,
    ) -> Option<Conv> {
        let before = self.diags.error_count();
        let mut conv = Conv {
            trim: match raw.trim {
                Some(RawTrim::None) => Trim::None,
                Some(RawTrim::Left) => Trim::Left,
                Some(RawTrim::Right) => Trim::Right,
                Some(RawTrim::Both) => Trim::Both,
                None if xml => Trim::Both,
                None => Trim::Right,
            },
            required: raw.required.unwrap_or(false),
            ..Conv::default()
        };
        let mut with_time = false;
        conv.json_type = match raw.json_type {
            Some(RawJsonType::String) => JsonType::String,
            Some(RawJsonType::Integer) => JsonType::Integer,
            Some(RawJsonType::Decimal) => JsonType::Decimal,
            Some(kind @ (RawJsonType::Date | RawJsonType::DateTime)) => {
                with_time = kind == RawJsonType::DateTime;
                if raw.date.is_none() {
                    self.error(
                        "missing-key",
                        &format!("{p}/json_type"),
                        "a date needs `date`: the format the core writes it in",
                        "add date = \"YYYYMMDD\" (or YYMMDD, DDMMYY, DDMMYYYY, YYDDD, YYYYDDD, CYYMMDD, ISO)",
                    );
                }
                JsonType::String
            }
            None => match numeric {
                Some((_, digits, scale)) => layout::default_numeric_type(digits, scale),
                None => JsonType::String,
            },
        };
        if let (JsonType::Integer, Some((_, digits, scale))) = (conv.json_type, numeric) {
            if digits > 18 || scale > 0 {
                self.error(
                    "invalid-value",
                    &format!("{p}/json_type"),
                    "an integer holds at most 18 digits and no decimal places",
                    "use json_type = \"decimal\" (a decimal string) or \"string\"",
                );
            }
        }
        if let Some(name) = &raw.date {
            if matches!(raw.json_type, Some(RawJsonType::Integer | RawJsonType::Decimal)) {
                self.error(
                    "invalid-value",
                    &format!("{p}/json_type"),
                    "a date is a string in JSON",
                    "use json_type = \"date\" or \"date-time\"",
                );
            }
            match DateFormat::parse(name) {
                Some(format) => {
                    let width_ok = match (numeric, alnum) {
                        (Some((_, digits, scale)), _) => {
                            format != DateFormat::Iso && scale == 0 && digits == format.width()
                        }
                        (None, Some(len)) => len == format.width(),
                        (None, None) => true,
                    };
                    if !width_ok {
                        self.error(
                            "invalid-value",
                            &format!("{p}/date"),
                            format!("a {name} date has {} characters, which this field does not", format.width()),
                            "make the PICTURE as wide as the date format (numeric dates have no decimal places; ISO dates are text)",
                        );
                    }
                    conv.date = Some((format, with_time));
                }
                None => self.error(
                    "invalid-value",
                    &format!("{p}/date"),
                    format!("`{name}` is not a date format tollgate knows"),
                    format!("use one of: {}", DateFormat::NAMES.join(", ")),
                ),
            }
        }
        match &raw.codes {
            None => {}
            Some(RawCodes::Named(name)) => match self.codes.get(name) {
                Some(table) => conv.codes = Some(table.clone()),
                None => {
                    let known: Vec<&str> = self.codes.keys().map(String::as_str).collect();
                    let help = match did_you_mean(name, known.iter().copied()) {
                        Some(s) => format!("did you mean \"{s}\"?"),
                        None => format!("declare it: [codes.{name}] with legacy code = \"json value\" lines"),
                    };
                    self.error(
                        "unknown-code-table",
                        &format!("{p}/codes"),
                        format!("code table `{name}` is not declared"),
                        help,
                    );
                }
            },
            Some(RawCodes::Inline(entries)) => {
                conv.codes = Some(Arc::new(CodeTable {
                    entries: entries
                        .iter()
                        .map(|(c, v)| (Box::from(c.as_str()), Box::from(v.as_str())))
                        .collect(),
                }))
            }
        }
        if conv.codes.is_some() && conv.date.is_some() {
            self.error(
                "invalid-value",
                &format!("{p}/codes"),
                "a field has codes or a date, not both",
                "remove one",
            );
        }
        match (&raw.currency, &raw.currency_code) {
            (Some(_), Some(_)) => self.error(
                "invalid-value",
                &format!("{p}/currency_code"),
                "a field has `currency` (a JSON path) or `currency_code`, not both",
                "remove one",
            ),
            (Some(path), None) => {
                if let Some(path) = self.json_path(&format!("{p}/currency"), path) {
                    self.target(scope, &path, &format!("{p}/currency"), false, true, false);
                    conv.currency = Some(Currency::Path(path));
                }
            }
            (None, Some(code)) => match currency_exponent(code) {
                Some(e) => conv.currency = Some(Currency::Fixed(code.as_str().into(), e)),
                None => self.error(
                    "invalid-currency",
                    &format!("{p}/currency_code"),
                    format!("`{code}` is not an ISO 4217 currency code"),
                    "use an active ISO 4217 code, e.g. GBP, EUR, JPY",
                ),
            },
            (None, None) => {}
        }
        if conv.currency.is_some()
            && (conv.json_type != JsonType::Decimal || conv.codes.is_some() || conv.date.is_some())
        {
            self.error(
                "invalid-value",
                &format!(
                    "{p}/{}",
                    if raw.currency.is_some() {
                        "currency"
                    } else {
                        "currency_code"
                    }
                ),
                "a currency applies to decimal amounts",
                "add json_type = \"decimal\"",
            );
        }
        if let Some(indicator) = &raw.indicator {
            if numeric.is_some_and(|(signed, _, _)| !signed) {
                self.error(
                    "invalid-value",
                    &format!("{p}/indicator"),
                    "an unsigned field has no sign to carry",
                    "make the PICTURE signed (S9...), or remove indicator",
                );
            }
            if let Some(path) = self.json_path(&format!("{p}/indicator/json"), &indicator.json) {
                self.target(scope, &path, &format!("{p}/indicator/json"), false, true, true);
                conv.indicator = Some(Indicator {
                    target: path,
                    positive: indicator.positive.as_str().into(),
                    negative: indicator.negative.as_str().into(),
                });
            }
        }
        (self.diags.error_count() == before).then_some(conv)
    }

    // -----------------------------------------------------------------------------------
    // xml
    // -----------------------------------------------------------------------------------

    fn xml(&mut self, raw: &RawLayout) -> Option<XmlMapping> {
        self.none_of(
            "",
            &[
                ("charset", raw.charset.is_some()),
                ("length", raw.length.is_some()),
                ("record_type", raw.record_type.is_some()),
                ("records", raw.records.is_some()),
            ],
            "xml",
        );
        let space = Namespaces {
            default: raw.namespace.clone(),
            prefixes: raw.namespaces.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        };
        let Some(root_text) = &raw.root else {
            let location = self.loc("");
            self.diags.push(
                Diagnostic::error("missing-key", "an xml layout needs `root`: the document element")
                    .at(location)
                    .help("add root = \"Document\" (for SOAP, the element inside the Body)"),
            );
            return None;
        };
        let root = self.qname(root_text, "/root", &space, true)?;
        let Some(fields) = &raw.fields else {
            let location = self.loc("");
            self.diags.push(
                Diagnostic::error("missing-key", "an xml layout needs `fields`")
                    .at(location)
                    .help("add fields = [ { xml = \"Path/To/Element\", json = \"member\" }, ... ]"),
            );
            return None;
        };
        let mut groups = HashMap::new();
        collect_groups(fields, &mut groups);
        self.slots = 0;
        let items = self.xml_items(fields, "/fields", &Scope::default(), &space, &groups, true);
        let mut declarations: Vec<(Box<str>, Box<str>)> = Vec::new();
        if let Some(ns) = &raw.namespace {
            declarations.push(("".into(), ns.as_str().into()));
        }
        for (prefix, uri) in &raw.namespaces {
            declarations.push((prefix.as_str().into(), uri.as_str().into()));
        }
        Some(XmlMapping {
            tree: xml::build_tree(root.clone(), &items),
            root,
            declarations,
            soap: raw.soap.as_ref().map(|s| Soap {
                action: s.action.as_str().into(),
            }),
            items,
            slots: self.slots,
        })
    }

    fn qname(&mut self, text: &str, pointer: &str, space: &Namespaces, element: bool) -> Option<QName> {
        match text.split_once(':') {
            Some((prefix, local)) => match space.prefixes.get(prefix) {
                Some(uri) => Some(QName {
                    ns: Some(uri.as_str().into()),
                    local: local.into(),
                    prefix: Some(prefix.into()),
                }),
                None => {
                    let known: Vec<&str> = space.prefixes.keys().map(String::as_str).collect();
                    let help = match did_you_mean(prefix, known.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("declare it: [namespaces] {prefix} = \"<namespace URI>\""),
                    };
                    self.error(
                        "unknown-prefix",
                        pointer,
                        format!("namespace prefix `{prefix}` is not declared"),
                        help,
                    );
                    None
                }
            },
            None => Some(QName {
                ns: if element {
                    space.default.as_deref().map(Box::from)
                } else {
                    None
                },
                local: text.into(),
                prefix: None,
            }),
        }
    }

    /// `A/B/@attr`, `@attr` or `.`: elements below the current one, and an attribute.
    fn xml_path(&mut self, text: &str, pointer: &str, space: &Namespaces) -> Option<(Vec<QName>, Option<QName>)> {
        if text == "." {
            return Some((Vec::new(), None));
        }
        let steps: Vec<&str> = text.split('/').collect();
        let mut path = Vec::new();
        let mut attribute = None;
        for (i, step) in steps.iter().enumerate() {
            match step.strip_prefix('@') {
                Some(name) if i + 1 == steps.len() => attribute = Some(self.qname(name, pointer, space, false)?),
                Some(_) => {
                    self.error(
                        "invalid-value",
                        pointer,
                        format!("`{text}`: an attribute can only end a path"),
                        "write Element/@attribute",
                    );
                    return None;
                }
                None => path.push(self.qname(step, pointer, space, true)?),
            }
        }
        Some((path, attribute))
    }

    fn xml_items(
        &mut self,
        raws: &[RawField],
        base: &str,
        scope: &Scope,
        space: &Namespaces,
        groups: &Groups,
        top: bool,
    ) -> Vec<XItem> {
        let mut items: Vec<XItem> = Vec::with_capacity(raws.len());
        let mut level = Level::default();
        for (i, raw) in raws.iter().enumerate() {
            let p = format!("{base}/{i}");
            self.none_of(
                &p,
                &[
                    ("pic", raw.pic.is_some()),
                    ("usage", raw.usage.is_some()),
                    ("offset", raw.offset.is_some()),
                    ("occurs", raw.occurs.is_some()),
                    ("depending_on", raw.depending_on.is_some()),
                ],
                "xml",
            );
            let index = items.len();
            let name: Box<str> = raw.name.as_deref().or(raw.xml.as_deref()).unwrap_or("field").into();
            if let Some(fields) = &raw.fields {
                let Some(path_text) = &raw.xml else {
                    self.error(
                        "missing-key",
                        &p,
                        "a group needs `xml`: the element it repeats or enters",
                        "add xml = \"Path/To/Element\"",
                    );
                    continue;
                };
                let Some((path, attribute)) = self.xml_path(path_text, &format!("{p}/xml"), space) else {
                    continue;
                };
                if attribute.is_some() || path.is_empty() {
                    self.error(
                        "invalid-value",
                        &format!("{p}/xml"),
                        "a group's path names an element",
                        "remove the attribute step",
                    );
                    continue;
                }
                let target = raw.json.as_ref().and_then(|j| self.json_path(&format!("{p}/json"), j));
                let child = match &target {
                    Some(t) => {
                        self.target(scope, t, &format!("{p}/json"), true, true, true);
                        scope.child(t, true)
                    }
                    None => scope.clone(),
                };
                let sub = self.xml_items(
                    fields,
                    &format!("{p}/fields"),
                    &child,
                    space,
                    groups,
                    top && target.is_none(),
                );
                items.push(XItem::Group(XGroup {
                    name,
                    path,
                    target,
                    items: sub,
                }));
                continue;
            }
            let Some(path_text) = &raw.xml else {
                if let Some(item) = self.entry_without_bytes(raw, &p, scope, &mut level, "xml") {
                    items.push(match item {
                        Item::Const { target, value } => XItem::Const { target, value },
                        Item::Template { target, parts } => XItem::Template { target, parts },
                        _ => continue,
                    });
                }
                continue;
            };
            let Some((path, attribute)) = self.xml_path(path_text, &format!("{p}/xml"), space) else {
                continue;
            };
            let compute = match raw.compute {
                None => None,
                Some(kind) => {
                    if !top {
                        self.error(
                            "invalid-compute",
                            &format!("{p}/compute"),
                            "computed values are written at the top level of the body",
                            "move the field out of the repeating group",
                        );
                        continue;
                    }
                    match self.compute(kind, raw.of.as_deref(), &p, groups) {
                        Some(c) => Some(c),
                        None => continue,
                    }
                }
            };
            let target = raw.json.as_ref().and_then(|j| self.json_path(&format!("{p}/json"), j));
            if let Some(t) = &target {
                self.target(
                    scope,
                    t,
                    &format!("{p}/json"),
                    false,
                    compute.is_none() && raw.value.is_none(),
                    true,
                );
            }
            let Some(conv) = self.conv(raw, &p, scope, None, None, true) else {
                continue;
            };
            self.declare(&mut level, raw, &p, index, false);
            items.push(XItem::Field(XField {
                name,
                path,
                attribute,
                target,
                conv,
                constant: raw.value.as_deref().map(Box::from),
                compute,
                slot: None,
            }));
        }
        for (index, slot) in level.slots {
            if let Some(XItem::Field(f)) = items.get_mut(index) {
                f.slot = Some(slot);
            }
        }
        items
    }

    fn compute(&mut self, kind: RawCompute, of: Option<&str>, p: &str, groups: &Groups) -> Option<Compute> {
        if kind == RawCompute::Now {
            return Some(Compute::Now);
        }
        let Some(of) = of else {
            self.error(
                "missing-key",
                p,
                "a count or sum needs `of`",
                "add of = \"<group>\" (count) or \"<group>.<field>\" (sum)",
            );
            return None;
        };
        let (group, field) = match of.split_once('.') {
            Some((g, f)) => (g, Some(f)),
            None => (of, None),
        };
        let Some((target, fields)) = groups.get(group) else {
            let known: Vec<&str> = groups.keys().map(String::as_str).collect();
            let help = match did_you_mean(group, known.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => "name a group (an entry with fields and a name) declared in this layout".into(),
            };
            self.error(
                "invalid-compute",
                &format!("{p}/of"),
                format!("`{group}` is not a group of this layout"),
                help,
            );
            return None;
        };
        match (kind, field) {
            (RawCompute::Count, None) => Some(Compute::Count(target.clone())),
            (RawCompute::Sum, Some(field)) => match fields.iter().find(|(n, _)| n == field) {
                Some((_, path)) => Some(Compute::Sum {
                    group: target.clone(),
                    field: path.clone(),
                }),
                None => {
                    let known: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
                    let help = match did_you_mean(field, known.iter().copied()) {
                        Some(s) => format!("did you mean `{group}.{s}`?"),
                        None => format!("name a field of `{group}` that has a name and json"),
                    };
                    self.error(
                        "invalid-compute",
                        &format!("{p}/of"),
                        format!("group `{group}` has no mapped field `{field}`"),
                        help,
                    );
                    None
                }
            },
            (RawCompute::Count, Some(_)) => {
                self.error(
                    "invalid-compute",
                    &format!("{p}/of"),
                    "a count names a group, not a field",
                    format!("write of = \"{group}\""),
                );
                None
            }
            _ => {
                self.error(
                    "invalid-compute",
                    &format!("{p}/of"),
                    "a sum names a group's field",
                    format!("write of = \"{group}.<field>\""),
                );
                None
            }
        }
    }
}

/// Groups by name: their JSON array (if any) and their named, mapped fields.
type Groups = HashMap<String, (Option<JsonPath>, Vec<(String, JsonPath)>)>;

/// The namespaces a mapping's names resolve against.
struct Namespaces {
    default: Option<String>,
    prefixes: HashMap<String, String>,
}

/// Groups a computed count or sum may name: those at the body's top level (inside groups
/// without `json` at most), with their named, mapped fields.
fn collect_groups(raws: &[RawField], out: &mut Groups) {
    for raw in raws {
        let Some(fields) = &raw.fields else { continue };
        let target = raw.json.as_deref().and_then(JsonPath::parse);
        if let Some(name) = &raw.name {
            let mapped = fields
                .iter()
                .filter_map(|f| Some((f.name.clone()?, JsonPath::parse(f.json.as_deref()?)?)))
                .collect();
            out.insert(name.clone(), (target.clone(), mapped));
        }
        if target.is_none() {
            collect_groups(fields, out);
        }
    }
}
