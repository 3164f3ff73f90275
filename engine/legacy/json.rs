//! The JSON document a decoder writes, as text: what `serde_json::to_vec` would make of the
//! `Value` the decoders used to build, without building it.
//!
//! Decoding has the semantics of inserting into ordered JSON objects: a member written again
//! keeps its first place, `a.b` and `a.c` share `a` wherever they are declared, an amount
//! whose currency comes later holds its place, and untargeted records merge into the top
//! level. Text cannot be rewritten in place, so the document is a small arena of nodes
//! whose keys are borrowed from the layout and whose scalars are already JSON text in one
//! buffer; `finish` writes it out once. No field costs a heap allocation of its own.

use serde_json::Value;

use super::{JsonPath, Scalar};

/// A node of a `JsonDoc`.
pub(crate) type NodeId = usize;

/// No node: the end of a list.
const NONE: NodeId = usize::MAX;

#[derive(Debug, Clone, Copy)]
enum Shape {
    Null,
    /// JSON text in `JsonDoc::text`.
    Scalar {
        start: usize,
        end: usize,
    },
    /// Members, as a list linked through `Node::next`, and a one-word Bloom filter of their
    /// keys: a key not in it is new, and needs no walk of the list.
    Object {
        first: NodeId,
        last: NodeId,
        keys: u64,
    },
    /// Items, as a list linked through `Node::next`.
    Array {
        first: NodeId,
        last: NodeId,
    },
}

const EMPTY_OBJECT: Shape = Shape::Object {
    first: NONE,
    last: NONE,
    keys: 0,
};

const EMPTY_ARRAY: Shape = Shape::Array {
    first: NONE,
    last: NONE,
};

#[derive(Debug)]
struct Node<'k> {
    /// The member's name; unused for array items and the root.
    key: &'k str,
    /// `key_tag(key)`: most members are new, and telling keys apart by it is what makes looking
    /// for an existing one cheap.
    tag: u64,
    shape: Shape,
    next: NodeId,
}

/// A key's length and first bytes in one word: equal keys have equal tags. `JsonPath`
/// keeps its segments' tags, so decoding a field computes none.
pub(crate) fn key_tag(key: &str) -> u64 {
    let bytes = key.as_bytes();
    let mut word = bytes.len().min(255) as u64;
    for (i, b) in bytes.iter().take(7).enumerate() {
        word |= u64::from(*b) << (8 * (i + 1));
    }
    word
}

/// A tag's bit in an object's `keys` filter.
fn bit(tag: u64) -> u64 {
    1 << (tag.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58)
}

/// What a member holds, for reading a currency code back.
pub(crate) enum Lookup<'d> {
    Absent,
    /// A string's text as written (escaped; a currency code never needs escaping).
    Str(&'d str),
    Other,
}

/// A JSON document under construction. Node 0 is the top-level object.
#[derive(Debug)]
pub(crate) struct JsonDoc<'k> {
    nodes: Vec<Node<'k>>,
    text: Vec<u8>,
}

/// Appends `s` as a JSON string, escaped exactly as serde_json escapes it.
fn write_str(out: &mut Vec<u8>, s: &str) {
    // Most field text needs no escaping, and checking that is cheaper than escaping.
    // A fold without early exit, so that it vectorises.
    let plain = !s
        .bytes()
        .fold(false, |bad, b| bad | (b < 0x20) | (b == b'"') | (b == b'\\'));
    if plain {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    // serde_json's own string serializer; writing to a Vec cannot fail.
    let _ = serde_json::to_writer(out, s);
}

impl<'k> JsonDoc<'k> {
    /// An empty top-level object, with room for about `input_len` bytes of legacy data.
    pub fn new(input_len: usize) -> JsonDoc<'k> {
        let mut nodes = Vec::with_capacity(input_len / 8 + 8);
        nodes.push(Node {
            key: "",
            tag: 0,
            shape: EMPTY_OBJECT,
            next: NONE,
        });
        JsonDoc {
            nodes,
            text: Vec::with_capacity(input_len + 64),
        }
    }

    /// The top-level object.
    pub const ROOT: NodeId = 0;

    fn push(&mut self, key: &'k str, tag: u64, shape: Shape) -> NodeId {
        self.nodes.push(Node {
            key,
            tag,
            shape,
            next: NONE,
        });
        self.nodes.len() - 1
    }

    fn set_shape(&mut self, id: NodeId, shape: Shape) {
        if let Some(node) = self.nodes.get_mut(id) {
            node.shape = shape;
        }
    }

    fn shape(&self, id: NodeId) -> Option<Shape> {
        self.nodes.get(id).map(|n| n.shape)
    }

    /// An object attached to nothing yet: a record before it is placed.
    pub fn detached_object(&mut self) -> NodeId {
        self.push("", 0, EMPTY_OBJECT)
    }

    /// An array attached to nothing: the records of a type without a JSON target.
    pub fn detached_array(&mut self) -> NodeId {
        self.push("", 0, EMPTY_ARRAY)
    }

    /// Links `child` at the end of the object or array `parent`.
    fn link(&mut self, parent: NodeId, child: NodeId) {
        let (first, last, keys) = match self.shape(parent) {
            Some(Shape::Object { first, last, keys }) => (first, last, Some(keys)),
            Some(Shape::Array { first, last }) => (first, last, None),
            _ => return,
        };
        if let Some(node) = self.nodes.get_mut(last) {
            node.next = child;
        }
        let first = if first == NONE { child } else { first };
        let shape = match keys {
            Some(keys) => Shape::Object {
                first,
                last: child,
                keys: keys | self.nodes.get(child).map_or(0, |n| bit(n.tag)),
            },
            None => Shape::Array { first, last: child },
        };
        self.set_shape(parent, shape);
    }

    /// The member `key` (whose `key_tag` is `tag`) of `object`, appended (as null) when it is
    /// not there yet. A node that is not an object gets a detached node, never written.
    fn child(&mut self, object: NodeId, key: &'k str, tag: u64) -> NodeId {
        let Some(Shape::Object { first, keys, .. }) = self.shape(object) else {
            return self.push(key, tag, Shape::Null);
        };
        let mut at = if keys & bit(tag) == 0 { NONE } else { first };
        while let Some(node) = self.nodes.get(at) {
            if node.tag == tag && node.key == key {
                return at;
            }
            at = node.next;
        }
        let id = self.push(key, tag, Shape::Null);
        self.link(object, id);
        id
    }

    /// The member at `path` below `object`, creating the objects on the way: a parent that
    /// is not an object is replaced by an empty one, in its place.
    fn member(&mut self, object: NodeId, path: &'k JsonPath) -> NodeId {
        let mut segments = path.tagged();
        let Some((mut key, mut tag)) = segments.next() else {
            return self.push("", 0, Shape::Null);
        };
        let mut current = object;
        for (next_key, next_tag) in segments {
            let next = self.child(current, key, tag);
            if !matches!(self.shape(next), Some(Shape::Object { .. })) {
                self.set_shape(next, EMPTY_OBJECT);
            }
            current = next;
            (key, tag) = (next_key, next_tag);
        }
        self.child(current, key, tag)
    }

    fn set_text(&mut self, id: NodeId, start: usize) {
        let end = self.text.len();
        self.set_shape(id, Shape::Scalar { start, end });
    }

    /// Sets a string member.
    pub fn set_str(&mut self, object: NodeId, path: &'k JsonPath, value: &str) {
        let id = self.member(object, path);
        let start = self.text.len();
        write_str(&mut self.text, value);
        self.set_text(id, start);
    }

    /// Sets an integer member.
    pub fn set_int(&mut self, object: NodeId, path: &'k JsonPath, value: i64) {
        let id = self.member(object, path);
        let start = self.text.len();
        let _ = serde_json::to_writer(&mut self.text, &value);
        self.set_text(id, start);
    }

    /// Sets a member to a decoded field value.
    pub fn set_scalar(&mut self, object: NodeId, path: &'k JsonPath, value: Scalar<'_>) {
        match value {
            Scalar::Str(s) => self.set_str(object, path, s),
            Scalar::Integer(n) => self.set_int(object, path, n),
        }
    }

    /// Sets a member to null: the place of a value that comes later.
    pub fn set_null(&mut self, object: NodeId, path: &'k JsonPath) {
        let id = self.member(object, path);
        self.set_shape(id, Shape::Null);
    }

    /// Sets a member to a fresh empty array, and returns it.
    pub fn set_array(&mut self, object: NodeId, path: &'k JsonPath) -> NodeId {
        let id = self.member(object, path);
        self.set_shape(id, EMPTY_ARRAY);
        id
    }

    /// Appends a new empty object to `array`, and returns it.
    pub fn push_object(&mut self, array: NodeId) -> NodeId {
        let id = self.detached_object();
        self.link(array, id);
        id
    }

    /// Appends a (detached) node to `array`.
    pub fn push_item(&mut self, array: NodeId, item: NodeId) {
        self.link(array, item);
    }

    /// Sets a member to what `node` holds (a detached record object).
    pub fn attach(&mut self, object: NodeId, path: &'k JsonPath, node: NodeId) {
        let id = self.member(object, path);
        if let Some(shape) = self.shape(node) {
            self.set_shape(id, shape);
        }
    }

    /// Moves every member of `from` into `into`: a member `into` has already is replaced
    /// in its place, as `Map::extend` does.
    pub fn extend(&mut self, into: NodeId, from: NodeId) {
        let Some(Shape::Object { first, .. }) = self.shape(from) else {
            return;
        };
        let mut at = first;
        while let Some((key, tag, shape, next)) = self.nodes.get(at).map(|n| (n.key, n.tag, n.shape, n.next)) {
            let id = self.child(into, key, tag);
            self.set_shape(id, shape);
            at = next;
        }
    }

    /// Sets a member to a layout's constant value.
    pub fn set_value(&mut self, object: NodeId, path: &'k JsonPath, value: &'k Value) {
        let id = self.member(object, path);
        self.fill(id, value);
    }

    fn fill(&mut self, id: NodeId, value: &'k Value) {
        match value {
            Value::Null => self.set_shape(id, Shape::Null),
            Value::Object(members) => {
                self.set_shape(id, EMPTY_OBJECT);
                for (key, member) in members {
                    let child = self.child(id, key, key_tag(key));
                    self.fill(child, member);
                }
            }
            Value::Array(items) => {
                self.set_shape(id, EMPTY_ARRAY);
                for item in items {
                    let child = self.push("", 0, Shape::Null);
                    self.link(id, child);
                    self.fill(child, item);
                }
            }
            scalar => {
                let start = self.text.len();
                let _ = serde_json::to_writer(&mut self.text, scalar);
                self.set_text(id, start);
            }
        }
    }

    /// Reads the member at `path`, as `JsonPath::get` reads a `Map`: null is absent.
    pub fn get(&self, object: NodeId, path: &JsonPath) -> Lookup<'_> {
        let mut segments = path.segments();
        let Some(last) = segments.next_back() else {
            return Lookup::Absent;
        };
        let mut current = object;
        for segment in segments {
            match self.find(current, segment) {
                Some(next) if matches!(self.shape(next), Some(Shape::Object { .. })) => current = next,
                _ => return Lookup::Absent,
            }
        }
        match self.find(current, last).and_then(|id| self.shape(id)) {
            None | Some(Shape::Null) => Lookup::Absent,
            Some(Shape::Scalar { start, end }) => {
                let text = self.text.get(start..end).unwrap_or(&[]);
                match text.strip_prefix(b"\"").and_then(|t| t.strip_suffix(b"\"")) {
                    Some(inner) => std::str::from_utf8(inner).map_or(Lookup::Other, Lookup::Str),
                    None => Lookup::Other,
                }
            }
            Some(_) => Lookup::Other,
        }
    }

    fn find(&self, object: NodeId, key: &str) -> Option<NodeId> {
        let Some(Shape::Object { first, .. }) = self.shape(object) else {
            return None;
        };
        let mut at = first;
        while let Some(node) = self.nodes.get(at) {
            if node.key == key {
                return Some(at);
            }
            at = node.next;
        }
        None
    }

    /// The document as compact JSON text.
    pub fn finish(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.text.len() + self.nodes.len() * 16);
        self.write(Self::ROOT, &mut out);
        out
    }

    fn write(&self, id: NodeId, out: &mut Vec<u8>) {
        let (first, object) = match self.shape(id) {
            None | Some(Shape::Null) => {
                out.extend_from_slice(b"null");
                return;
            }
            Some(Shape::Scalar { start, end }) => {
                out.extend_from_slice(self.text.get(start..end).unwrap_or(&[]));
                return;
            }
            Some(Shape::Object { first, .. }) => (first, true),
            Some(Shape::Array { first, .. }) => (first, false),
        };
        out.push(if object { b'{' } else { b'[' });
        let mut at = first;
        while let Some(node) = self.nodes.get(at) {
            if at != first {
                out.push(b',');
            }
            if object {
                write_str(out, node.key);
                out.push(b':');
            }
            self.write(at, out);
            at = node.next;
        }
        out.push(if object { b'}' } else { b']' });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(text: &str) -> JsonPath {
        JsonPath::parse(text).unwrap()
    }

    #[test]
    fn members_keep_their_first_place_and_nested_paths_share_objects() {
        let (a, b, ab, ac, s) = (path("a"), path("b"), path("x.a"), path("x.c"), path("s"));
        let d = path("d");
        let konst = json!({"k": [1, "two\n", null, true, 1.5], "e": {}});
        let mut doc = JsonDoc::new(0);
        doc.set_str(JsonDoc::ROOT, &a, "first");
        doc.set_int(JsonDoc::ROOT, &ab, -42);
        doc.set_null(JsonDoc::ROOT, &b);
        doc.set_str(JsonDoc::ROOT, &ac, "\"q\"\u{1}é");
        doc.set_str(JsonDoc::ROOT, &d, "/\u{7f}\\\t");
        doc.set_str(JsonDoc::ROOT, &a, "again");
        doc.set_value(JsonDoc::ROOT, &s, &konst);
        assert!(matches!(doc.get(JsonDoc::ROOT, &ac), Lookup::Str(_)));
        assert!(matches!(doc.get(JsonDoc::ROOT, &b), Lookup::Absent));
        assert!(matches!(doc.get(JsonDoc::ROOT, &ab), Lookup::Other));
        let expected =
            json!({"a": "again", "x": {"a": -42, "c": "\"q\"\u{1}é"}, "b": null, "d": "/\u{7f}\\\t", "s": konst});
        assert_eq!(doc.finish(), serde_json::to_vec(&expected).unwrap());
    }

    #[test]
    fn records_merge_and_replace_in_place() {
        let (a, x, xa) = (path("a"), path("x"), path("x.a"));
        let (n, list, i) = (path("n"), path("list"), path("i"));
        let mut doc = JsonDoc::new(0);
        doc.set_str(JsonDoc::ROOT, &xa, "nested");
        doc.set_str(JsonDoc::ROOT, &a, "kept");
        let record = doc.detached_object();
        doc.set_str(record, &x, "flat");
        doc.set_int(record, &n, 7);
        doc.extend(JsonDoc::ROOT, record);
        let list = doc.set_array(JsonDoc::ROOT, &list);
        let item = doc.detached_object();
        doc.set_int(item, &i, 0);
        doc.push_item(list, item);
        let item = doc.push_object(list);
        doc.set_int(item, &i, 1);
        let expected = json!({"x": "flat", "a": "kept", "n": 7, "list": [{"i": 0}, {"i": 1}]});
        assert_eq!(doc.finish(), serde_json::to_vec(&expected).unwrap());
    }
}
