//! XML mapped to JSON and back: elements, attributes and namespaces, enough for ISO 20022
//! (camt.053 statements, pain.001 initiations with computed `NbOfTxs` and `CtrlSum`,
//! pain.002 status reports) and SOAP 1.1 envelopes.
//!
//! Decoding parses the document into a small tree (no DTDs, no external entities, bounded
//! depth) and reads each mapped field by its path. Encoding writes an element tree compiled
//! from the same paths, in the order the fields are declared; elements left without content
//! are not written.

use super::convert::{DecimalText, Sum};
use super::json::{JsonDoc, NodeId};
use super::{
    apply_indicator, deliver_with_currency, field_path, read_indicator, render_template, Conv, Currency, DecodeError,
    EncodeError, Found, JsonPath, Part, Pending, RecordError, Slots,
};
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;
use serde_json::{Map, Value};
use std::time::SystemTime;

/// The SOAP 1.1 envelope namespace.
pub const SOAP11_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";

/// Deeper documents are refused: no mapping needs them, and they cost stack.
const MAX_DEPTH: usize = 64;

/// A namespace-qualified name, with the prefix used when writing.
#[derive(Debug, Clone)]
pub struct QName {
    pub ns: Option<Box<str>>,
    pub local: Box<str>,
    pub prefix: Option<Box<str>>,
}

impl PartialEq for QName {
    fn eq(&self, other: &QName) -> bool {
        self.ns == other.ns && self.local == other.local
    }
}

impl QName {
    fn write(&self, out: &mut String) {
        if let Some(prefix) = &self.prefix {
            out.push_str(prefix);
            out.push(':');
        }
        out.push_str(&self.local);
    }
}

/// A compiled XML mapping.
#[derive(Debug)]
pub struct XmlMapping {
    pub root: QName,
    /// Namespace declarations written on the root element: (prefix, "" for the default; uri).
    pub declarations: Vec<(Box<str>, Box<str>)>,
    pub soap: Option<Soap>,
    pub items: Vec<XItem>,
    pub slots: usize,
    /// The element tree `encode` writes.
    pub tree: Element,
}

/// SOAP 1.1 envelope settings.
#[derive(Debug, Clone)]
pub struct Soap {
    pub action: Box<str>,
}

/// One entry of a mapping, in order.
#[derive(Debug, Clone)]
pub enum XItem {
    Field(XField),
    Group(XGroup),
    Const { target: JsonPath, value: Value },
    Template { target: JsonPath, parts: Vec<Part> },
}

/// A value computed when writing.
#[derive(Debug, Clone)]
pub enum Compute {
    /// The number of instances of a group (1 for a group without a JSON array).
    Count(Option<JsonPath>),
    /// The sum of a decimal field over a group's instances.
    Sum { group: Option<JsonPath>, field: JsonPath },
    /// The current time, UTC, to the second.
    Now,
}

/// An element's text or an attribute, mapped to a JSON member.
#[derive(Debug, Clone)]
pub struct XField {
    pub name: Box<str>,
    /// Elements below the context element (empty: the context element itself).
    pub path: Vec<QName>,
    pub attribute: Option<QName>,
    pub target: Option<JsonPath>,
    pub conv: Conv,
    pub constant: Option<Box<str>>,
    pub compute: Option<Compute>,
    pub slot: Option<usize>,
}

/// A repeating element (a JSON array), or a scope for the fields below it.
#[derive(Debug, Clone)]
pub struct XGroup {
    pub name: Box<str>,
    pub path: Vec<QName>,
    pub target: Option<JsonPath>,
    pub items: Vec<XItem>,
}

/// An element as `encode` writes it.
#[derive(Debug, Clone)]
pub struct Element {
    pub name: QName,
    pub attributes: Vec<(QName, XField)>,
    pub text: Option<XField>,
    pub children: Vec<Child>,
}

#[derive(Debug, Clone)]
pub enum Child {
    Element(Element),
    /// A group's element, once per item of its JSON array (or once, without an array).
    Repeat {
        target: Option<JsonPath>,
        element: Element,
    },
}

impl Element {
    pub fn new(name: QName) -> Element {
        Element {
            name,
            attributes: Vec::new(),
            text: None,
            children: Vec::new(),
        }
    }
}

/// Builds the element tree of a mapping: paths merged in declaration order.
pub fn build_tree(root: QName, items: &[XItem]) -> Element {
    let mut element = Element::new(root);
    add_items(&mut element, items);
    element
}

fn add_items(element: &mut Element, items: &[XItem]) {
    for item in items {
        match item {
            XItem::Field(field) => {
                let leaf = match &field.attribute {
                    Some(attribute) => Leaf::Attribute(attribute.clone(), field.clone()),
                    None => Leaf::Text(field.clone()),
                };
                place(element, &field.path, leaf);
            }
            XItem::Group(group) => {
                let Some((last, parents)) = group.path.split_last() else {
                    add_items(element, &group.items);
                    continue;
                };
                let mut repeated = Element::new(last.clone());
                add_items(&mut repeated, &group.items);
                place(
                    element,
                    parents,
                    Leaf::Repeat {
                        target: group.target.clone(),
                        element: repeated,
                    },
                );
            }
            XItem::Const { .. } | XItem::Template { .. } => {}
        }
    }
}

/// What a path ends in.
enum Leaf {
    Text(XField),
    Attribute(QName, XField),
    Repeat { target: Option<JsonPath>, element: Element },
}

/// Puts `leaf` at `path` below `element`, reusing the last child when it has that name, so
/// the document follows the order fields are declared in.
fn place(element: &mut Element, path: &[QName], leaf: Leaf) {
    let Some((first, rest)) = path.split_first() else {
        match leaf {
            Leaf::Text(field) => element.text = Some(field),
            Leaf::Attribute(name, field) => element.attributes.push((name, field)),
            Leaf::Repeat { target, element: child } => element.children.push(Child::Repeat { target, element: child }),
        }
        return;
    };
    let reuse = matches!(element.children.last(), Some(Child::Element(c)) if c.name == *first);
    if !reuse {
        element.children.push(Child::Element(Element::new(first.clone())));
    }
    if let Some(Child::Element(child)) = element.children.last_mut() {
        place(child, rest, leaf);
    }
}

// ---------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------

struct Node {
    ns: Option<u32>,
    local: Box<str>,
    attributes: Vec<(Option<u32>, Box<str>, String)>,
    children: Vec<u32>,
    text: String,
    offset: usize,
}

/// A parsed document: nodes in an arena, namespaces interned.
struct Dom {
    nodes: Vec<Node>,
    namespaces: Vec<Box<str>>,
}

impl Dom {
    fn node(&self, id: u32) -> Option<&Node> {
        self.nodes.get(id as usize)
    }

    fn ns(&self, id: Option<u32>) -> Option<&str> {
        id.and_then(|i| self.namespaces.get(i as usize)).map(|s| &**s)
    }

    fn is(&self, id: u32, name: &QName) -> bool {
        self.node(id)
            .is_some_and(|n| *n.local == *name.local && self.ns(n.ns) == name.ns.as_deref())
    }

    fn is_named(&self, id: u32, ns: &str, local: &str) -> bool {
        self.node(id)
            .is_some_and(|n| &*n.local == local && self.ns(n.ns) == Some(ns))
    }

    fn intern(&mut self, ns: &[u8]) -> u32 {
        let text = String::from_utf8_lossy(ns);
        match self.namespaces.iter().position(|n| **n == *text) {
            Some(i) => i as u32,
            None => {
                self.namespaces.push(Box::from(&*text));
                (self.namespaces.len() - 1) as u32
            }
        }
    }

    fn attribute(&self, id: u32, name: &QName) -> Option<&str> {
        let node = self.node(id)?;
        node.attributes
            .iter()
            .find(|(ns, local, _)| **local == *name.local && self.ns(*ns) == name.ns.as_deref())
            .map(|(_, _, value)| value.as_str())
    }

    /// Every node at `path` below `from`, in document order.
    fn find(&self, from: u32, path: &[QName], out: &mut Vec<u32>, first_only: bool) {
        let Some((step, rest)) = path.split_first() else {
            out.push(from);
            return;
        };
        let Some(node) = self.node(from) else { return };
        for child in &node.children {
            if self.is(*child, step) {
                self.find(*child, rest, out, first_only);
                if first_only && !out.is_empty() {
                    return;
                }
            }
        }
    }
}

fn malformed(bytes: &[u8], position: u64, expected: &str) -> DecodeError {
    let at = usize::try_from(position).unwrap_or(usize::MAX).min(bytes.len());
    let found = match bytes.get(at..(at + 1).min(bytes.len())) {
        Some(b) if !b.is_empty() => Found::bytes(b),
        _ => Found::End { len: bytes.len() },
    };
    DecodeError::Record(RecordError {
        offset: at,
        field: "(document)".into(),
        expected: expected.into(),
        found,
    })
}

fn parse(bytes: &[u8]) -> Result<(Dom, u32), DecodeError> {
    let mut reader = NsReader::from_reader(bytes);
    reader.config_mut().check_end_names = true;
    let mut dom = Dom {
        nodes: Vec::new(),
        namespaces: Vec::new(),
    };
    let mut stack: Vec<u32> = Vec::new();
    let mut root: Option<u32> = None;
    loop {
        let offset = reader.buffer_position();
        let (resolved, event) = match reader.read_resolved_event() {
            Ok(pair) => pair,
            Err(_) => return Err(malformed(bytes, reader.error_position(), "well-formed XML")),
        };
        let ns = match resolved {
            ResolveResult::Bound(ns) => Some(ns.0.to_vec()),
            ResolveResult::Unbound => None,
            ResolveResult::Unknown(_) => return Err(malformed(bytes, offset, "only declared namespace prefixes")),
        };
        match event {
            Event::Start(start) => {
                let id = open(&mut dom, &reader, &start, ns, bytes, offset)?;
                attach(&mut dom, &stack, &mut root, id, bytes, offset)?;
                if stack.len() >= MAX_DEPTH {
                    return Err(malformed(bytes, offset, "at most 64 nested elements"));
                }
                stack.push(id);
            }
            Event::Empty(start) => {
                let id = open(&mut dom, &reader, &start, ns, bytes, offset)?;
                attach(&mut dom, &stack, &mut root, id, bytes, offset)?;
            }
            Event::End(_) => {
                stack.pop();
            }
            Event::Text(text) => {
                let content = text
                    .xml10_content()
                    .map_err(|_| malformed(bytes, offset, "UTF-8 text"))?;
                append_text(&mut dom, &stack, &content, bytes, offset)?;
            }
            Event::CData(data) => {
                let content = data.decode().map_err(|_| malformed(bytes, offset, "UTF-8 text"))?;
                append_text(&mut dom, &stack, &content, bytes, offset)?;
            }
            Event::GeneralRef(reference) => {
                let c = match reference.resolve_char_ref() {
                    Ok(Some(c)) => c,
                    Ok(None) => match &*reference {
                        b"lt" => '<',
                        b"gt" => '>',
                        b"amp" => '&',
                        b"apos" => '\'',
                        b"quot" => '"',
                        _ => return Err(malformed(bytes, offset, "only the predefined XML entities")),
                    },
                    Err(_) => return Err(malformed(bytes, offset, "a valid character reference")),
                };
                append_text(&mut dom, &stack, c.encode_utf8(&mut [0; 4]), bytes, offset)?;
            }
            Event::DocType(_) => return Err(malformed(bytes, offset, "XML without a DOCTYPE")),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(malformed(bytes, bytes.len() as u64, "every element closed"));
    }
    match root {
        Some(root) => Ok((dom, root)),
        None => Err(malformed(bytes, 0, "an XML document")),
    }
}

/// Creates the node of a start (or empty) tag.
fn open(
    dom: &mut Dom,
    reader: &NsReader<&[u8]>,
    start: &quick_xml::events::BytesStart<'_>,
    ns: Option<Vec<u8>>,
    bytes: &[u8],
    offset: u64,
) -> Result<u32, DecodeError> {
    let ns = ns.map(|n| dom.intern(&n));
    let local = String::from_utf8_lossy(start.local_name().as_ref()).into();
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let Ok(attribute) = attribute else {
            return Err(malformed(bytes, offset, "well-formed attributes"));
        };
        if attribute.key.as_namespace_binding().is_some() {
            continue;
        }
        let (resolved, local) = reader.resolver().resolve_attribute(attribute.key);
        let ans = match resolved {
            ResolveResult::Bound(ns) => Some(ns.0.to_vec()),
            ResolveResult::Unbound => None,
            ResolveResult::Unknown(_) => return Err(malformed(bytes, offset, "only declared namespace prefixes")),
        };
        let local: Box<str> = String::from_utf8_lossy(local.as_ref()).into();
        let value = attribute
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|_| malformed(bytes, offset, "a well-formed attribute value"))?
            .into_owned();
        let ans = ans.map(|n| dom.intern(&n));
        attributes.push((ans, local, value));
    }
    let id = dom.nodes.len() as u32;
    dom.nodes.push(Node {
        ns,
        local,
        attributes,
        children: Vec::new(),
        text: String::new(),
        offset: usize::try_from(offset).unwrap_or(0),
    });
    Ok(id)
}

/// Adds a new node to its parent, or makes it the root.
fn attach(
    dom: &mut Dom,
    stack: &[u32],
    root: &mut Option<u32>,
    id: u32,
    bytes: &[u8],
    offset: u64,
) -> Result<(), DecodeError> {
    match stack.last() {
        Some(parent) => {
            if let Some(p) = dom.nodes.get_mut(*parent as usize) {
                p.children.push(id);
            }
            Ok(())
        }
        None if root.is_none() => {
            *root = Some(id);
            Ok(())
        }
        None => Err(malformed(bytes, offset, "a single root element")),
    }
}

fn append_text(dom: &mut Dom, stack: &[u32], text: &str, bytes: &[u8], offset: u64) -> Result<(), DecodeError> {
    match stack.last().and_then(|id| dom.nodes.get_mut(*id as usize)) {
        Some(node) => {
            node.text.push_str(text);
            Ok(())
        }
        // Whitespace around the root element is allowed; anything else is not.
        None if text.trim().is_empty() => Ok(()),
        None => Err(malformed(bytes, offset, "text only inside the root element")),
    }
}

// ---------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------

struct Reader<'a> {
    dom: &'a Dom,
    context: Vec<(&'a str, Option<usize>)>,
    slots: Slots,
    found: Vec<u32>,
    /// A converted value's text (dates, decimals, joins), reused field after field.
    scratch: String,
    doc: JsonDoc<'a>,
}

impl XmlMapping {
    /// Reads a document (or a SOAP envelope) as JSON text.
    pub fn decode(&self, bytes: &[u8]) -> Result<Vec<u8>, DecodeError> {
        let (dom, document) = parse(bytes)?;
        let root = match &self.soap {
            Some(_) => soap_body(&dom, document)?,
            None => document,
        };
        if !dom.is(root, &self.root) {
            let node = dom.node(root);
            return Err(DecodeError::Record(RecordError {
                offset: node.map(|n| n.offset).unwrap_or(0),
                field: "(document)".into(),
                expected: format!("element `{}`{}", self.root.local, ns_note(&self.root)),
                found: Found::Element(node.map(|n| n.local.to_string()).unwrap_or_default()),
            }));
        }
        let mut reader = Reader {
            dom: &dom,
            context: Vec::new(),
            slots: Slots::new(self.slots),
            found: Vec::new(),
            scratch: String::new(),
            doc: JsonDoc::new(bytes.len() / 4),
        };
        reader.items(&self.items, root, JsonDoc::ROOT)?;
        Ok(reader.doc.finish())
    }
}

fn ns_note(name: &QName) -> String {
    match &name.ns {
        Some(ns) => format!(" in namespace `{ns}`"),
        None => String::new(),
    }
}

/// The payload of a SOAP 1.1 envelope, or the fault it carries.
fn soap_body(dom: &Dom, envelope: u32) -> Result<u32, DecodeError> {
    let record = |node: u32, expected: &str| {
        let n = dom.node(node);
        DecodeError::Record(RecordError {
            offset: n.map(|n| n.offset).unwrap_or(0),
            field: "(envelope)".into(),
            expected: expected.into(),
            found: Found::Element(n.map(|n| n.local.to_string()).unwrap_or_default()),
        })
    };
    if !dom.is_named(envelope, SOAP11_NS, "Envelope") {
        return Err(record(envelope, "a SOAP 1.1 Envelope"));
    }
    let children = dom.node(envelope).map(|n| n.children.as_slice()).unwrap_or(&[]);
    let Some(body) = children.iter().copied().find(|c| dom.is_named(*c, SOAP11_NS, "Body")) else {
        return Err(record(envelope, "a SOAP Body"));
    };
    let Some(payload) = dom.node(body).and_then(|n| n.children.first().copied()) else {
        return Err(record(body, "an element in the SOAP Body"));
    };
    if dom.is_named(payload, SOAP11_NS, "Fault") {
        let code = dom
            .node(payload)
            .into_iter()
            .flat_map(|n| n.children.iter())
            .filter_map(|c| dom.node(*c))
            .find(|n| &*n.local == "faultcode")
            .map(|n| sanitize_code(&n.text))
            .unwrap_or_default();
        return Err(DecodeError::Fault { code });
    }
    Ok(payload)
}

/// A fault code is a QName; anything else in it is dropped, and it is kept short.
fn sanitize_code(text: &str) -> String {
    text.trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '_' | '-'))
        .take(64)
        .collect()
}

impl<'a> Reader<'a> {
    fn error(&self, node: Option<u32>, field: &str, expected: impl Into<String>, found: Found) -> DecodeError {
        DecodeError::Record(RecordError {
            offset: node.and_then(|n| self.dom.node(n)).map(|n| n.offset).unwrap_or(0),
            field: field_path(&self.context, field),
            expected: expected.into(),
            found,
        })
    }

    fn items(&mut self, items: &'a [XItem], node: u32, out: NodeId) -> Result<(), DecodeError> {
        let mut pending: Vec<(Pending, Option<u32>)> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            match item {
                XItem::Field(field) => self.field(field, index, node, out, &mut pending)?,
                XItem::Group(group) => {
                    let mut nodes = Vec::new();
                    self.dom.find(node, &group.path, &mut nodes, group.target.is_none());
                    match &group.target {
                        Some(target) => {
                            // Its items write only to their own objects, so the array can take its
                            // place first.
                            let array = self.doc.set_array(out, target);
                            for (k, n) in nodes.into_iter().enumerate() {
                                self.context.push((&group.name, Some(k)));
                                let element = self.doc.push_object(array);
                                self.items(&group.items, n, element)?;
                                self.context.pop();
                            }
                        }
                        None => {
                            if let Some(n) = nodes.first() {
                                self.items(&group.items, *n, out)?;
                            }
                        }
                    }
                }
                XItem::Const { target, value } => self.doc.set_value(out, target, value),
                XItem::Template { target, parts } => {
                    let text = render_template(parts, &self.slots, &mut self.scratch);
                    self.doc.set_str(out, target, text);
                }
            }
        }
        for (p, node) in pending {
            let Some(XItem::Field(field)) = items.get(p.field) else {
                continue;
            };
            let result = deliver_with_currency(
                &field.conv,
                field.target.as_ref(),
                &p.text,
                &mut self.doc,
                out,
                &mut self.scratch,
            );
            if let Err(e) = result {
                return Err(self.error(
                    node,
                    &field.name,
                    e.expected,
                    Found::Other("a value its currency does not allow"),
                ));
            }
        }
        Ok(())
    }

    fn field(
        &mut self,
        field: &'a XField,
        index: usize,
        node: u32,
        out: NodeId,
        pending: &mut Vec<(Pending, Option<u32>)>,
    ) -> Result<(), DecodeError> {
        if field.target.is_none() && field.slot.is_none() {
            return Ok(());
        }
        self.found.clear();
        self.dom.find(node, &field.path, &mut self.found, true);
        let at = self.found.first().copied();
        let raw = at.and_then(|n| match &field.attribute {
            Some(attribute) => self.dom.attribute(n, attribute),
            None => self.dom.node(n).map(|n| n.text.as_str()),
        });
        let Some(raw) = raw else {
            if field.conv.required {
                let what = match &field.attribute {
                    Some(a) => format!("attribute `{}`", a.local),
                    None => format!("element `{}`", field.path.last().map(|q| &*q.local).unwrap_or("")),
                };
                return Err(self.error(at.or(Some(node)), &field.name, what, Found::Other("nothing")));
            }
            return Ok(());
        };
        let text = match field.conv.trim {
            super::convert::Trim::None => raw,
            _ => raw.trim_matches(|c: char| c.is_ascii_whitespace()),
        };
        let text = apply_indicator(&field.conv, text, &mut self.doc, out);
        if matches!(field.conv.currency, Some(Currency::Path(_))) {
            // Hold the member's place, so JSON follows the layout's order.
            if let Some(target) = &field.target {
                self.doc.set_null(out, target);
            }
            pending.push((
                Pending {
                    field: index,
                    text: text.to_string(),
                    offset: 0,
                },
                at,
            ));
            return Ok(());
        }
        let currency = match &field.conv.currency {
            Some(Currency::Fixed(code, e)) => Some((&**code, *e)),
            _ => None,
        };
        match field.conv.to_json(text, currency, &mut self.scratch) {
            Ok(Some(value)) => {
                super::deliver(
                    value,
                    field.slot,
                    field.target.as_ref(),
                    &mut self.slots,
                    &mut self.doc,
                    out,
                );
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => {
                let offending = text
                    .as_bytes()
                    .get(e.at..(e.at + e.len.max(1)).min(text.len()))
                    .unwrap_or(&[]);
                Err(self.error(at, &field.name, e.expected, Found::bytes(offending)))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------

struct Writer<'a> {
    out: String,
    pointer: String,
    now: SystemTime,
    declarations: &'a [(Box<str>, Box<str>)],
}

impl XmlMapping {
    /// Writes JSON as a document (in a SOAP envelope, for SOAP mappings).
    pub fn encode(&self, root: &Map<String, Value>, now: SystemTime) -> Result<Vec<u8>, EncodeError> {
        let mut w = Writer {
            out: String::with_capacity(1024),
            pointer: String::new(),
            now,
            declarations: &self.declarations,
        };
        w.out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
        if self.soap.is_some() {
            w.out.push_str("<soapenv:Envelope xmlns:soapenv=\"");
            w.out.push_str(SOAP11_NS);
            w.out.push_str("\"><soapenv:Body>");
        }
        w.element(&self.tree, root, true)?;
        if self.soap.is_some() {
            w.out.push_str("</soapenv:Body></soapenv:Envelope>");
        }
        Ok(w.out.into_bytes())
    }
}

impl Writer<'_> {
    fn element(&mut self, element: &Element, scope: &Map<String, Value>, root: bool) -> Result<bool, EncodeError> {
        let start = self.out.len();
        self.out.push('<');
        element.name.write(&mut self.out);
        if root {
            for (prefix, uri) in self.declarations {
                self.out.push_str(" xmlns");
                if !prefix.is_empty() {
                    self.out.push(':');
                    self.out.push_str(prefix);
                }
                self.out.push_str("=\"");
                escape(&mut self.out, uri, true);
                self.out.push('"');
            }
        }
        let mut attributes = false;
        for (name, field) in &element.attributes {
            if let Some(value) = self.value(field, scope)? {
                self.out.push(' ');
                name.write(&mut self.out);
                self.out.push_str("=\"");
                escape(&mut self.out, &value, true);
                self.out.push('"');
                attributes = true;
            }
        }
        self.out.push('>');
        let content = self.out.len();
        if let Some(field) = &element.text {
            if let Some(value) = self.value(field, scope)? {
                escape(&mut self.out, &value, false);
            }
        }
        for child in &element.children {
            match child {
                Child::Element(child) => {
                    self.element(child, scope, false)?;
                }
                Child::Repeat { target: None, element } => {
                    self.element(element, scope, false)?;
                }
                Child::Repeat {
                    target: Some(target),
                    element,
                } => {
                    let base = self.pointer.len();
                    match target.get(scope) {
                        None => {}
                        Some(Value::Object(object)) => {
                            self.pointer.push_str(&target.pointer());
                            self.element(element, object, false)?;
                        }
                        Some(Value::Array(items)) => {
                            for (k, item) in items.iter().enumerate() {
                                self.pointer.push_str(&format!("{}/{k}", target.pointer()));
                                let object = item
                                    .as_object()
                                    .ok_or_else(|| EncodeError::new(self.pointer.clone(), "expected an object"))?;
                                self.element(element, object, false)?;
                                self.pointer.truncate(base);
                            }
                        }
                        Some(_) => {
                            return Err(EncodeError::new(
                                format!("{}{}", self.pointer, target.pointer()),
                                "expected an array",
                            ))
                        }
                    }
                    self.pointer.truncate(base);
                }
            }
        }
        if self.out.len() == content && !attributes && !root {
            self.out.truncate(start);
            return Ok(false);
        }
        self.out.push_str("</");
        element.name.write(&mut self.out);
        self.out.push('>');
        Ok(true)
    }

    fn value(&self, field: &XField, scope: &Map<String, Value>) -> Result<Option<String>, EncodeError> {
        if let Some(constant) = &field.constant {
            return Ok(Some(constant.to_string()));
        }
        if let Some(compute) = &field.compute {
            return self.compute(compute, scope).map(Some);
        }
        let Some(target) = &field.target else {
            return Ok(None);
        };
        let at = || format!("{}{}", self.pointer, target.pointer());
        match target.get(scope) {
            None if field.conv.required => Err(EncodeError::new(at(), "is required by the core")),
            None => Ok(None),
            Some(value) => {
                let mut text = field
                    .conv
                    .to_text(value, scope)
                    .map_err(|d| EncodeError::new(at(), d))?;
                if text.chars().any(|c| c < ' ' && !matches!(c, '\t' | '\n' | '\r')) {
                    return Err(EncodeError::new(at(), "contains a control character XML cannot carry"));
                }
                if let Some(indicator) = &field.conv.indicator {
                    let negative = read_indicator(indicator, scope)
                        .map_err(|d| EncodeError::new(format!("{}{}", self.pointer, indicator.target.pointer()), d))?;
                    if negative && !text.starts_with('-') {
                        text.insert(0, '-');
                    }
                }
                Ok(Some(text))
            }
        }
    }

    fn compute(&self, compute: &Compute, scope: &Map<String, Value>) -> Result<String, EncodeError> {
        let instances = |group: &Option<JsonPath>| -> Vec<&Map<String, Value>> {
            match group {
                None => vec![scope],
                Some(path) => match path.get(scope) {
                    Some(Value::Array(items)) => items.iter().filter_map(Value::as_object).collect(),
                    Some(Value::Object(object)) => vec![object],
                    _ => Vec::new(),
                },
            }
        };
        match compute {
            Compute::Count(group) => Ok(instances(group).len().to_string()),
            Compute::Sum { group, field } => {
                let mut sum = Sum::default();
                for (k, instance) in instances(group).into_iter().enumerate() {
                    let at = || {
                        let group = group
                            .as_ref()
                            .map(|g| format!("{}/{k}", g.pointer()))
                            .unwrap_or_default();
                        format!("{}{group}{}", self.pointer, field.pointer())
                    };
                    let Some(value) = field.get(instance) else { continue };
                    let text = match value {
                        Value::String(s) => s.clone(),
                        Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
                        _ => return Err(EncodeError::new(at(), "expected a decimal string")),
                    };
                    let decimal =
                        DecimalText::parse(&text).map_err(|_| EncodeError::new(at(), "expected a decimal string"))?;
                    sum.add(&decimal)
                        .ok_or_else(|| EncodeError::new(at(), "is too large to total"))?;
                }
                Ok(sum.render())
            }
            Compute::Now => Ok(humantime::format_rfc3339_seconds(self.now).to_string()),
        }
    }
}

/// Escapes text for an element (`<`, `&`, `>`) or an attribute (and quotes).
fn escape(out: &mut String, text: &str, attribute: bool) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' if attribute => out.push_str("&quot;"),
            '\'' if attribute => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\t' if attribute => out.push_str("&#9;"),
            '\n' if attribute => out.push_str("&#10;"),
            c => out.push(c),
        }
    }
}
