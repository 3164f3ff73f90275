//! Response projection, default deny: a response body is reduced to the members its route's
//! response schema declares, so a field the core starts sending tomorrow never leaks; and
//! the data classes the schema marks (`x-data-class`) are enforced on what remains.
//!
//! The plan is built once, at policy compile time, from the JSON Schema: object
//! `properties` (merged across `allOf`/`anyOf`/`oneOf`, with local `$ref`s resolved), array
//! `items`, and maps (`additionalProperties` with a schema). Members not declared are
//! dropped; scalars are kept as they are, unless their class says otherwise:
//! - `pci-sad` (CVV, track data, PIN blocks) is always removed;
//! - `pci-pan` is masked to the first 6 and last 4 digits for a partner without a current
//!   PCI DSS attestation.
//!
//! At request time the answer is never parsed into a tree: `Projection::project` walks the
//! plan and the bytes together (`body::json`), copying what it keeps as written, skipping
//! what it drops, and rewriting only the scalars a mask changes.

use super::json::{padded_word, write_string, Malformed, RawStr, Reader, Scalar, Stop};
use super::masking::{
    mask_digits, may_be_token, may_hold_pan, partial, partial_parts, scrub_pans, Action, PartnerKey, Rule, TokenVault,
    HASH_LEN,
};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// Deeper than this, `$ref` chains (recursive schemas) keep values as they are.
const MAX_DEPTH: usize = 24;

/// The data classes a schema may mark a value with (`x-data-class`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FieldClass {
    Public,
    Pii,
    PciPan,
    PciSad,
}

impl FieldClass {
    pub const NAMES: [&'static str; 4] = ["public", "pii", "pci-pan", "pci-sad"];

    pub fn parse(name: &str) -> Option<FieldClass> {
        match name {
            "public" => Some(FieldClass::Public),
            "pii" => Some(FieldClass::Pii),
            "pci-pan" => Some(FieldClass::PciPan),
            "pci-sad" => Some(FieldClass::PciSad),
            _ => None,
        }
    }
}

/// What survives of a value, and how it is treated.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    pub class: Option<FieldClass>,
    pub shape: Shape,
    /// The masking rule the partner's profile applies here, if any.
    pub rule: Option<Box<Rule>>,
}

/// The structure a projection keeps.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Kept as is: scalars, and what the schema explicitly leaves open.
    Keep,
    /// Only these members, each projected in turn.
    Object(Box<Members>),
    /// Every member (a map with schema-typed values), each projected.
    Map(Box<Projection>),
    /// Every item projected.
    Array(Box<Projection>),
}

/// An object's declared members, sorted by name. At request time a name is first compared,
/// as bytes, with the member expected next in declaration order (cores write their members
/// in a stable order, most often the schema's), so most names are matched without being
/// scanned. Otherwise it is read and looked up in a compact table of lengths and
/// first-eight-byte words, kept apart from the plans: objects are small, and this beats a
/// map's search, which compares text at every step.
#[derive(Debug, Clone, PartialEq)]
pub struct Members {
    names: Vec<Box<str>>,
    /// Per name, its length and its first eight bytes as a word: most names are compared
    /// by these alone, without a call to compare text.
    heads: Vec<(usize, u64)>,
    plans: Vec<Projection>,
    /// No name holds a backslash, so a name read without escapes can be compared as written.
    plain: bool,
    /// The members in the order they were declared.
    expected: Vec<Expected>,
    /// The names as a document writes them, quotes included, one after another (in
    /// declaration order): what the member expected next is compared with.
    written: Vec<u8>,
    /// Per sorted index, its place in `expected`.
    rank: Vec<usize>,
}

/// A member in declaration order: its name's span in `Members::written` (empty for a name
/// that needs an escape, which is always read and resolved) and its sorted index.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Expected {
    at: usize,
    len: usize,
    index: usize,
}

impl Members {
    /// Objects with more members than this are searched by bisection.
    const SCAN: usize = 16;

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    fn index(&self, name: &str) -> Result<usize, usize> {
        self.names.binary_search_by(|probe| (**probe).cmp(name))
    }

    pub fn get(&self, name: &str) -> Option<&Projection> {
        self.index(name).ok().and_then(|i| self.plans.get(i))
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Projection> {
        self.index(name).ok().and_then(|i| self.plans.get_mut(i))
    }

    /// Adds or replaces the plan for `name`.
    pub fn insert(&mut self, name: String, plan: Projection) {
        match self.index(&name) {
            Ok(i) => {
                if let Some(slot) = self.plans.get_mut(i) {
                    *slot = plan;
                }
            }
            Err(i) => {
                self.plain &= !name.contains('\\');
                let mut order = self.order();
                for at in order.iter_mut().filter(|at| **at >= i) {
                    *at += 1;
                }
                order.push(i);
                self.heads.insert(i, (name.len(), padded_word(name.as_bytes(), 0)));
                self.names.insert(i, name.into_boxed_str());
                self.plans.insert(i, plan);
                self.lay_out(order);
            }
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<Projection> {
        let i = self.index(name).ok()?;
        let mut order = self.order();
        order.retain(|&at| at != i);
        for at in order.iter_mut().filter(|at| **at > i) {
            *at -= 1;
        }
        self.names.remove(i);
        self.heads.remove(i);
        let plan = self.plans.remove(i);
        self.lay_out(order);
        Some(plan)
    }

    /// The sorted indexes in declaration order.
    fn order(&self) -> Vec<usize> {
        self.expected.iter().map(|e| e.index).collect()
    }

    /// Rebuilds the declaration-order tables from `order` (sorted indexes), after the
    /// sorted ones changed.
    fn lay_out(&mut self, order: Vec<usize>) {
        self.written.clear();
        self.expected.clear();
        self.rank = vec![0; order.len()];
        for (place, index) in order.into_iter().enumerate() {
            let at = self.written.len();
            let name = self.names.get(index).map_or("", |n| &**n);
            if !name.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
                self.written.push(b'"');
                self.written.extend_from_slice(name.as_bytes());
                self.written.push(b'"');
            }
            let len = self.written.len() - at;
            self.expected.push(Expected { at, len, index });
            if let Some(rank) = self.rank.get_mut(index) {
                *rank = place;
            }
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(|n| &**n)
    }

    pub fn values(&self) -> impl Iterator<Item = &Projection> {
        self.plans.iter()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Projection)> {
        self.keys().zip(self.values())
    }

    /// Reads the name of the member at the reader's cursor (after `Reader::next_member`)
    /// and finds its plan, `None` for an undeclared member. `next` is the place, in
    /// declaration order, of the member expected next; start it at 0 for each object.
    #[inline]
    fn read_name<'a>(
        &self,
        reader: &mut Reader<'a>,
        next: &mut usize,
    ) -> Result<(RawStr<'a>, Option<&Projection>), Stop> {
        if let Some(&Expected { at, len, index }) = self.expected.get(*next) {
            if let Some(name) = reader.name_if(self.written.get(at..at + len).unwrap_or_default())? {
                *next += 1;
                return Ok((name, self.plans.get(index)));
            }
        }
        let name = reader.name()?;
        let found = self.find(name);
        if let Some(&place) = found.and_then(|i| self.rank.get(i)) {
            *next = place + 1;
        }
        Ok((name, found.and_then(|i| self.plans.get(i))))
    }

    /// The index of the member named `name` in a document. A name without escapes is its
    /// own text, compared as written; one with escapes is resolved first.
    #[inline]
    fn find(&self, name: RawStr) -> Option<usize> {
        let raw = name.raw();
        if self.plain && self.names.len() <= Self::SCAN {
            let (len, first) = (raw.len(), padded_word(raw.as_bytes(), 0));
            for (i, &(n, h)) in self.heads.iter().enumerate() {
                if n == len && h == first && (len <= 8 || self.names.get(i)?.get(8..) == raw.get(8..)) {
                    return Some(i);
                }
            }
            if !raw.contains('\\') {
                return None;
            }
        }
        self.index(&name.text()).ok()
    }
}

impl Default for Members {
    fn default() -> Members {
        Members {
            names: Vec::new(),
            heads: Vec::new(),
            plans: Vec::new(),
            plain: true,
            expected: Vec::new(),
            written: Vec::new(),
            rank: Vec::new(),
        }
    }
}

impl FromIterator<(String, Projection)> for Members {
    fn from_iter<I: IntoIterator<Item = (String, Projection)>>(items: I) -> Members {
        let mut members = Members::default();
        for (name, plan) in items {
            members.insert(name, plan);
        }
        members
    }
}

impl IntoIterator for Members {
    type Item = (String, Projection);
    type IntoIter = std::iter::Zip<
        std::iter::Map<std::vec::IntoIter<Box<str>>, fn(Box<str>) -> String>,
        std::vec::IntoIter<Projection>,
    >;

    fn into_iter(self) -> Self::IntoIter {
        let to_string: fn(Box<str>) -> String = String::from;
        self.names.into_iter().map(to_string).zip(self.plans)
    }
}

/// Who the response is for, as far as projection and masking care.
#[derive(Debug, Clone, Copy)]
pub struct Audience<'a> {
    /// The partner holds a PCI DSS attestation valid today.
    pub pci_attested: bool,
    /// The partner's id: tokens are issued per partner.
    pub partner: &'a str,
    /// Scope indices the caller's token carries (sorted).
    pub scopes: &'a [usize],
    /// The partner's masking key, when the policy set has one.
    pub key: Option<&'a PartnerKey>,
    pub vault: &'a TokenVault,
}

/// What projection did to one response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Effect {
    /// Members dropped because the schema does not declare them.
    pub undeclared: u64,
    /// Sensitive authentication data removed.
    pub sad_removed: u64,
    /// Card numbers masked in fields classed `pci-pan`.
    pub pans_masked: u64,
    /// Fields a masking rule changed or removed.
    pub masked: u64,
    /// Card numbers found and masked in fields not classed as holding one.
    pub pans_caught: u64,
}

impl Projection {
    /// Builds the plan for `schema`, resolving `$ref`s against `root` (the schema file).
    pub fn from_schema(schema: &Value, root: &Value) -> Projection {
        build(schema, root, 0)
    }

    fn keep() -> Projection {
        Projection {
            class: None,
            shape: Shape::Keep,
            rule: None,
        }
    }

    /// The rule that applies for `audience`, if any.
    fn active_rule(&self, audience: &Audience) -> Option<&Rule> {
        self.rule.as_deref().filter(|rule| rule.applies(audience.scopes))
    }

    /// Whether the value this plan governs is removed for `audience`.
    fn removes(&self, audience: &Audience) -> bool {
        self.class == Some(FieldClass::PciSad) || self.active_rule(audience).is_some_and(|r| r.action == Action::Remove)
    }

    /// Projects and masks the JSON document `input` for `audience`, appending the result to
    /// `out`. The input is read once, as bytes: what the plan keeps unchanged is copied as
    /// written, so a response costs a scan, not a tree. Malformed input (anything
    /// `serde_json` would refuse) is refused whole, and `out` must then be discarded.
    pub fn project(&self, input: &[u8], audience: &Audience, out: &mut Vec<u8>) -> Result<Effect, Malformed> {
        let mut reader = Reader::new(input)?;
        let mut effect = Effect::default();
        match self.project_document(&mut reader, audience, out, &mut effect) {
            Ok(()) => Ok(effect),
            Err(Stop) => Err(reader.malformed()),
        }
    }

    fn project_document(
        &self,
        reader: &mut Reader,
        audience: &Audience,
        out: &mut Vec<u8>,
        effect: &mut Effect,
    ) -> Result<(), Stop> {
        if self.removes(audience) {
            // Only the root reaches here; members and items are removed by their parent.
            reader.value()?;
            out.extend_from_slice(b"null");
            self.count_removal(effect);
        } else {
            self.emit(reader, audience, out, effect)?;
        }
        reader.finish()
    }

    fn count_removal(&self, effect: &mut Effect) {
        match self.class {
            Some(FieldClass::PciSad) => effect.sad_removed += 1,
            _ => effect.masked += 1,
        }
    }

    /// Whether open content here is searched for card numbers nobody classified.
    fn scrubs(&self, rule: Option<&Rule>, audience: &Audience) -> bool {
        !audience.pci_attested
            && !matches!(self.class, Some(FieldClass::Public | FieldClass::PciPan))
            && rule.is_none_or(|r| !r.action.neutralises())
    }

    /// Writes the value at the reader's cursor as this plan allows.
    fn emit(
        &self,
        reader: &mut Reader,
        audience: &Audience,
        out: &mut Vec<u8>,
        effect: &mut Effect,
    ) -> Result<(), Stop> {
        let rule = self.active_rule(audience);
        if let Some(Rule {
            action: Action::Redact(fixed),
            ..
        }) = rule
        {
            reader.value()?;
            out.extend_from_slice(fixed.as_bytes());
            effect.masked += 1;
            return Ok(());
        }
        let mut first = true;
        match (reader.peek()?, &self.shape) {
            (b'{', Shape::Object(members)) => {
                reader.enter()?;
                out.push(b'{');
                let (mut separator, mut next, mut run) = (false, 0, Verbatim::default());
                while reader.next_member(&mut first)? {
                    let (name, plan) = members.read_name(reader, &mut next)?;
                    match plan {
                        None => {
                            reader.value()?;
                            effect.undeclared += 1;
                        }
                        Some(member) if member.removes(audience) => {
                            reader.value()?;
                            member.count_removal(effect);
                        }
                        Some(member) => {
                            let comma = std::mem::replace(&mut separator, true);
                            if !member.emit_kept_scalar(name, reader, audience, out, effect, &mut run, comma)? {
                                run.flush(reader, out);
                                if comma {
                                    out.push(b',');
                                }
                                name.write(out);
                                out.push(b':');
                                member.emit(reader, audience, out, effect)?;
                            }
                        }
                    }
                }
                run.flush(reader, out);
                out.push(b'}');
            }
            (b'{', Shape::Map(plan)) => plan.emit_each(reader, audience, out, effect, true)?,
            (b'[', Shape::Array(plan)) => plan.emit_each(reader, audience, out, effect, false)?,
            // A container where the schema declares another kind: default deny keeps
            // nothing of it rather than everything.
            (b'{' | b'[', Shape::Object(_) | Shape::Map(_) | Shape::Array(_)) => {
                reader.value()?;
                out.extend_from_slice(b"null");
                effect.undeclared += 1;
            }
            // Open content nobody classified: the safety net still looks for cards.
            (b'{' | b'[', Shape::Keep) if self.scrubs(rule, audience) => scrub(reader, out, effect)?,
            (b'{' | b'[', Shape::Keep) => out.extend_from_slice(reader.value()?.as_bytes()),
            (_, shape) => {
                let token = reader.scalar()?;
                let scrub = matches!(shape, Shape::Keep) && self.scrubs(rule, audience) && token.digits_may_hold_pan();
                self.emit_scalar(token, rule, scrub, audience, out, effect);
            }
        }
        Ok(())
    }

    /// The common member: a scalar that no rule or class changes, such as an id, a date or
    /// an amount. One written without whitespace is left to `run` as a piece of the
    /// document, so that consecutive ones are copied as one. Returns `false`, having read
    /// nothing but whitespace, for any other member, which `emit` then writes (after the
    /// comma, if `comma`).
    #[inline]
    #[allow(clippy::too_many_arguments)] // the walk's state, as `emit` holds it
    fn emit_kept_scalar(
        &self,
        name: RawStr,
        reader: &mut Reader,
        audience: &Audience,
        out: &mut Vec<u8>,
        effect: &mut Effect,
        run: &mut Verbatim,
        comma: bool,
    ) -> Result<bool, Stop> {
        let masks_pan = self.class == Some(FieldClass::PciPan) && !audience.pci_attested;
        if !matches!(self.shape, Shape::Keep) || masks_pan || self.active_rule(audience).is_some() {
            return Ok(false);
        }
        let after_colon = reader.offset();
        if matches!(reader.peek()?, b'{' | b'[') {
            return Ok(false);
        }
        let from = reader.name_offset();
        let compact = reader.offset() == after_colon && from + name.written_len() + 1 == after_colon;
        let token = reader.scalar()?;
        let scrub = self.scrubs(None, audience) && token.digits_may_hold_pan();
        if compact && !scrub {
            run.add(reader, from, reader.offset(), comma, out);
            return Ok(true);
        }
        run.flush(reader, out);
        if comma {
            out.push(b',');
        }
        name.write(out);
        out.push(b':');
        if scrub {
            self.emit_scalar(token, None, true, audience, out, effect);
        } else {
            token.write(out);
        }
        Ok(true)
    }

    /// Writes the container at the cursor (an object when `object`, else an array), each
    /// member or item by this one plan: a map's values or an array's items.
    fn emit_each(
        &self,
        reader: &mut Reader,
        audience: &Audience,
        out: &mut Vec<u8>,
        effect: &mut Effect,
        object: bool,
    ) -> Result<(), Stop> {
        let (open, close) = if object { (b'{', b'}') } else { (b'[', b']') };
        reader.enter()?;
        out.push(open);
        let (mut first, mut separator) = (true, false);
        loop {
            let name = if object {
                match reader.member(&mut first)? {
                    Some(name) => Some(name),
                    None => break,
                }
            } else if reader.item(&mut first)? {
                None
            } else {
                break;
            };
            if self.removes(audience) {
                reader.value()?;
                effect.masked += 1;
                continue;
            }
            if std::mem::replace(&mut separator, true) {
                out.push(b',');
            }
            if let Some(name) = name {
                name.write(out);
                out.push(b':');
            }
            self.emit(reader, audience, out, effect)?;
        }
        out.push(close);
        Ok(())
    }

    /// Writes a scalar: card numbers found in open content (`scrub`: the safety net runs here
    /// and the token has digits enough for one), then the rule's action, then the `pci-pan`
    /// class's own mask. Unchanged values are copied as written, type kept.
    fn emit_scalar(
        &self,
        token: Scalar,
        rule: Option<&Rule>,
        scrub: bool,
        audience: &Audience,
        out: &mut Vec<u8>,
        effect: &mut Effect,
    ) {
        let masks_pan = self.class == Some(FieldClass::PciPan) && !audience.pci_attested;
        if rule.is_none() && !scrub && !masks_pan {
            return token.write(out);
        }
        if token.is_null() {
            return token.write(out);
        }
        let mut text = match token.string() {
            Some(s) => s.text(),
            None => Cow::Borrowed(token.as_written()),
        };
        let mut changed = false;
        if scrub && !token.is_bool() {
            if let Some(clean) = scrub_pans(&text) {
                text = Cow::Owned(clean);
                changed = true;
                effect.pans_caught += 1;
            }
        }
        if !changed && !masks_pan {
            if let (Some(rule), Cow::Borrowed(plain)) = (rule, &text) {
                if let Some(masked) = mask_plain(&rule.action, plain, audience, out) {
                    effect.masked += u64::from(masked);
                    return;
                }
            }
        }
        let neutralised = match rule {
            Some(rule) => {
                if let Some(masked) = mask_text(&rule.action, &text, audience).filter(|m| *m != text) {
                    text = Cow::Owned(masked);
                    changed = true;
                    effect.masked += 1;
                }
                rule.action.neutralises()
            }
            None => false,
        };
        if masks_pan && !neutralised {
            let masked = mask_digits(&text, 6, 4);
            if masked != text {
                text = Cow::Owned(masked);
                changed = true;
                effect.pans_masked += 1;
            }
        }
        if changed {
            write_string(out, &text);
        } else {
            token.write(out);
        }
    }
}

/// Members an object keeps as written, waiting to be copied: while each one follows the
/// one before it with only a comma between them, the run is one piece of the document.
#[derive(Default)]
struct Verbatim {
    from: usize,
    to: usize,
}

impl Verbatim {
    /// Adds the member at `from..to` in the document, after a comma if `comma`.
    #[inline(always)]
    fn add(&mut self, reader: &Reader, from: usize, to: usize, comma: bool, out: &mut Vec<u8>) {
        // The reader consumed exactly one byte between the two, and a member only follows
        // a comma.
        if comma && self.to > self.from && self.to + 1 == from {
            self.to = to;
            return;
        }
        self.flush(reader, out);
        if comma {
            out.push(b',');
        }
        (self.from, self.to) = (from, to);
    }

    /// Writes the run out; call before anything else is written.
    #[inline(always)]
    fn flush(&mut self, reader: &Reader, out: &mut Vec<u8>) {
        if self.to > self.from {
            out.extend_from_slice(reader.between(self.from, self.to).as_bytes());
            self.from = self.to;
        }
    }
}

impl Scalar<'_> {
    /// Whether the token has digits enough for a card number (see `may_hold_pan`).
    fn digits_may_hold_pan(&self) -> bool {
        // The quotes of a string are not digits, nor are `true`, `false` and `null`.
        may_hold_pan(self.as_written().as_bytes())
    }
}

/// The common masked value, written straight to `out` as a JSON string: a partial or keyed
/// hash of `plain`, a value's text as written, which needs no escape (a string read without
/// escapes, or a number). Returns whether the text changed, or `None` (nothing written) for
/// the other actions, which go through `mask_text`.
#[inline]
fn mask_plain(action: &Action, plain: &str, audience: &Audience, out: &mut Vec<u8>) -> Option<bool> {
    let changed = match (action, audience.key) {
        (Action::Partial { first, last }, _) => {
            let (head, hidden, tail) = partial_parts(plain, *first, *last);
            out.push(b'"');
            out.extend_from_slice(head.as_bytes());
            out.resize(out.len() + hidden, b'*');
            out.extend_from_slice(tail.as_bytes());
            // The head and the tail never overlap: what lies between them was hidden.
            let gone = plain.get(head.len()..plain.len().saturating_sub(tail.len()));
            gone.is_some_and(|gone| gone.bytes().any(|b| b != b'*'))
        }
        (Action::Hash, Some(key)) => {
            let mut encoded = [0u8; HASH_LEN];
            let hash = key.hash_into(plain, &mut encoded);
            out.push(b'"');
            out.extend_from_slice(hash);
            hash != plain.as_bytes()
        }
        _ => return None,
    };
    out.push(b'"');
    Some(changed)
}

/// What a scalar action (pan, partial, hash, tokenize) makes of a value's text; `None` for
/// the structural actions, which `emit` handles.
fn mask_text(action: &Action, text: &str, audience: &Audience) -> Option<String> {
    Some(match action {
        Action::Pan { first, last } => mask_digits(text, *first, *last),
        Action::Partial { first, last } => partial(text, *first, *last),
        // Without a key (compile refuses that), hiding the value is the safe answer.
        Action::Hash => match audience.key {
            Some(key) => key.hash(text),
            None => partial(text, 0, 0),
        },
        Action::Tokenize => match audience.key {
            Some(key) => audience.vault.tokenize(audience.partner, key, text),
            None => mask_digits(text, 0, 0),
        },
        Action::Remove | Action::Redact(_) | Action::Keep => return None,
    })
}

/// Copies the container at the reader's cursor, masking card numbers in every string and
/// number; each one changed is counted.
fn scrub(reader: &mut Reader, out: &mut Vec<u8>, effect: &mut Effect) -> Result<(), Stop> {
    let mut first = true;
    match reader.peek()? {
        b'{' => {
            reader.enter()?;
            out.push(b'{');
            while let Some(name) = reader.member(&mut first)? {
                if out.last() != Some(&b'{') {
                    out.push(b',');
                }
                name.write(out);
                out.push(b':');
                scrub(reader, out, effect)?;
            }
            out.push(b'}');
        }
        b'[' => {
            reader.enter()?;
            out.push(b'[');
            while reader.item(&mut first)? {
                if out.last() != Some(&b'[') {
                    out.push(b',');
                }
                scrub(reader, out, effect)?;
            }
            out.push(b']');
        }
        _ => {
            let token = reader.scalar()?;
            let clean = match token.string() {
                _ if !token.digits_may_hold_pan() => None,
                Some(s) => scrub_pans(&s.text()),
                None => scrub_pans(token.as_written()),
            };
            match clean {
                Some(clean) => {
                    write_string(out, &clean);
                    effect.pans_caught += 1;
                }
                None => token.write(out),
            }
        }
    }
    Ok(())
}

impl Projection {
    /// Whether any value the plan governs has `class`.
    pub fn holds(&self, class: FieldClass) -> bool {
        self.class == Some(class)
            || match &self.shape {
                Shape::Object(members) => members.values().any(|m| m.holds(class)),
                Shape::Map(plan) | Shape::Array(plan) => plan.holds(class),
                Shape::Keep => false,
            }
    }

    /// Replaces card tokens `partner` was given, in `pci-pan` values, with the card
    /// numbers behind them. Returns how many were replaced, and the values the vault does
    /// not know that could be tokens (another instance's), for the shared vault; card
    /// numbers are never among them, so they never leave for a lookup elsewhere.
    pub fn detokenize(&self, value: &mut Value, partner: &str, vault: &TokenVault) -> (u64, Vec<String>) {
        let mut replaced = 0;
        let mut unknown = Vec::new();
        self.each_card(value, &mut |text| match vault.detokenize(partner, text) {
            Some(number) => {
                *text = number;
                replaced += 1;
            }
            None if may_be_token(text) => unknown.push(text.clone()),
            None => {}
        });
        (replaced, unknown)
    }

    fn each_card(&self, value: &mut Value, visit: &mut impl FnMut(&mut String)) {
        if self.class == Some(FieldClass::PciPan) {
            if let Value::String(text) = value {
                visit(text);
            }
            return;
        }
        match (&self.shape, value) {
            (Shape::Object(members), Value::Object(object)) => {
                for (key, child) in object.iter_mut() {
                    if let Some(plan) = members.get(key) {
                        plan.each_card(child, visit);
                    }
                }
            }
            (Shape::Map(plan), Value::Object(object)) => {
                object.values_mut().for_each(|child| plan.each_card(child, visit))
            }
            (Shape::Array(plan), Value::Array(items)) => items.iter_mut().for_each(|item| plan.each_card(item, visit)),
            _ => {}
        }
    }
}

/// A field a response can carry after projection, for the exposure report.
#[derive(Debug, Clone)]
pub struct Field<'a> {
    /// `$.a.b[*].c`, with `.*` for map values.
    pub path: String,
    pub class: Option<FieldClass>,
    /// The masking rule on the field or the nearest value that contains it.
    pub rule: Option<&'a Rule>,
}

impl Projection {
    /// Every field a response can carry after projection, with its class and rule.
    pub fn fields(&self) -> Vec<Field<'_>> {
        let mut out = Vec::new();
        self.walk("$", None, &mut out);
        out
    }

    fn walk<'a>(&'a self, path: &str, inherited: Option<&'a Rule>, out: &mut Vec<Field<'a>>) {
        let rule = self.rule.as_deref().or(inherited);
        let field = |path: &str| Field {
            path: path.to_string(),
            class: self.class,
            rule,
        };
        match &self.shape {
            Shape::Object(members) if !members.is_empty() => {
                if self.class.is_some() || self.rule.is_some() {
                    out.push(field(path));
                }
                for (name, member) in members.iter() {
                    member.walk(&format!("{path}.{name}"), rule, out);
                }
            }
            Shape::Map(plan) => plan.walk(&format!("{path}.*"), rule, out),
            Shape::Array(plan) => plan.walk(&format!("{path}[*]"), rule, out),
            _ => out.push(field(path)),
        }
    }
}

fn build(schema: &Value, root: &Value, depth: usize) -> Projection {
    if depth > MAX_DEPTH {
        return Projection::keep();
    }
    let Some(object) = schema.as_object() else {
        // `true` / `false` schemas: nothing to narrow.
        return Projection::keep();
    };
    let mut plan = Projection {
        class: object
            .get("x-data-class")
            .and_then(Value::as_str)
            .and_then(FieldClass::parse),
        shape: own_shape(object, root, depth),
        rule: None,
    };
    if let Some(target) = object
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| resolve(r, root))
    {
        plan = merge(plan, build(target, root, depth + 1));
    }
    for keyword in ["allOf", "anyOf", "oneOf"] {
        for branch in object.get(keyword).and_then(Value::as_array).into_iter().flatten() {
            plan = merge(plan, build(branch, root, depth + 1));
        }
    }
    plan
}

/// The shape from this schema object's own keywords, before `$ref` and combinators.
fn own_shape(object: &Map<String, Value>, root: &Value, depth: usize) -> Shape {
    let declares_object = object
        .get("type")
        .is_some_and(|t| t == "object" || t.as_array().is_some_and(|a| a.iter().any(|x| x == "object")));
    if let Some(properties) = object.get("properties").and_then(Value::as_object) {
        let members = properties
            .iter()
            .map(|(k, v)| (k.clone(), build(v, root, depth + 1)))
            .collect();
        return Shape::Object(Box::new(members));
    }
    match object.get("additionalProperties") {
        Some(Value::Bool(true)) => return Shape::Keep,
        Some(additional @ Value::Object(_)) => return Shape::Map(Box::new(build(additional, root, depth + 1))),
        _ => {}
    }
    if let Some(items) = object.get("items") {
        return Shape::Array(Box::new(build(items, root, depth + 1)));
    }
    if declares_object {
        // An object with nothing declared: default deny keeps none of its members.
        return Shape::Object(Box::default());
    }
    Shape::Keep
}

fn merge(a: Projection, b: Projection) -> Projection {
    // The more sensitive class wins.
    let class = a.class.max(b.class);
    let shape = match (a.shape, b.shape) {
        (Shape::Object(mut x), Shape::Object(y)) => {
            for (key, plan) in *y {
                let merged = match x.remove(&key) {
                    Some(existing) => merge(existing, plan),
                    None => plan,
                };
                x.insert(key, merged);
            }
            Shape::Object(x)
        }
        (Shape::Array(x), Shape::Array(y)) => Shape::Array(Box::new(merge(*x, *y))),
        (Shape::Map(x), Shape::Map(y)) => Shape::Map(Box::new(merge(*x, *y))),
        // A branch that narrows nothing keeps the other's plan.
        (Shape::Keep, other) | (other, Shape::Keep) => other,
        // Conflicting shapes (object in one branch, array in another): keep as is.
        _ => Shape::Keep,
    };
    Projection {
        class,
        shape,
        rule: None,
    }
}

/// A local reference (`#/$defs/x`); references to other documents are not followed.
fn resolve<'a>(reference: &str, root: &'a Value) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    root.pointer(pointer)
}

/// Every `x-data-class` in a schema document whose value is not a known class, by JSON
/// pointer to the value: a typo there would silently switch protection off.
pub fn unknown_classes(schema: &Value) -> Vec<String> {
    fn walk(value: &Value, pointer: &str, out: &mut Vec<String>) {
        match value {
            Value::Object(object) => {
                for (key, child) in object {
                    let child_pointer = format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"));
                    if key == "x-data-class" && child.as_str().is_none_or(|s| FieldClass::parse(s).is_none()) {
                        out.push(child_pointer.clone());
                    }
                    walk(child, &child_pointer, out);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &format!("{pointer}/{i}"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(schema, "", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    static VAULT: std::sync::LazyLock<TokenVault> = std::sync::LazyLock::new(TokenVault::default);

    fn audience(pci_attested: bool) -> Audience<'static> {
        Audience {
            pci_attested,
            partner: "acme",
            scopes: &[],
            key: None,
            vault: &VAULT,
        }
    }

    /// Projects `value` through its JSON text, as the gateway does, and parses the result.
    fn apply(plan: &Projection, value: &mut Value, audience: &Audience) -> Effect {
        let input = serde_json::to_vec(value).expect("serialise");
        let mut out = Vec::new();
        let effect = plan.project(&input, audience, &mut out).expect("well-formed");
        *value = serde_json::from_slice(&out).expect("projection writes JSON");
        effect
    }

    #[test]
    fn undeclared_members_are_dropped_at_every_depth() {
        let schema = json!({
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "balances": {"type": "array", "items": {"$ref": "#/$defs/balance"}},
                "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                "meta": {"type": "object"}
            },
            "$defs": {"balance": {"type": "object", "properties": {"amount": {"type": "string"}}}}
        });
        let plan = Projection::from_schema(&schema, &schema);
        let mut value = json!({
            "id": "A1", "internal_flag": true,
            "balances": [{"amount": "1.00", "ledger_code": "X9"}, {"amount": "2.00"}],
            "tags": {"a": "x", "b": "y"},
            "meta": {"cics_region": "PRD7"}
        });
        let effect = apply(&plan, &mut value, &audience(false));
        assert_eq!(
            value,
            json!({"id": "A1", "balances": [{"amount": "1.00"}, {"amount": "2.00"}], "tags": {"a": "x", "b": "y"}, "meta": {}})
        );
        assert_eq!(effect.undeclared, 3);
    }

    #[test]
    fn combinators_merge_their_members() {
        let schema = json!({
            "allOf": [
                {"type": "object", "properties": {"a": {"type": "string"}}},
                {"oneOf": [
                    {"type": "object", "properties": {"b": {"type": "string"}}},
                    {"type": "object", "properties": {"c": {"type": "object", "properties": {"d": {}}}}}
                ]}
            ]
        });
        let plan = Projection::from_schema(&schema, &schema);
        let mut value = json!({"a": 1, "b": 2, "c": {"d": 3, "e": 4}, "z": 5});
        assert_eq!(apply(&plan, &mut value, &audience(false)).undeclared, 2);
        assert_eq!(value, json!({"a": 1, "b": 2, "c": {"d": 3}}));
    }

    #[test]
    fn recursive_schemas_terminate() {
        let schema = json!({"$ref": "#/$defs/node", "$defs": {"node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/node"}, "v": {}}}}});
        let plan = Projection::from_schema(&schema, &schema);
        let mut value = json!({"v": 1, "x": 0, "child": {"v": 2, "x": 0}});
        apply(&plan, &mut value, &audience(false));
        assert_eq!(value, json!({"v": 1, "child": {"v": 2}}));
    }

    #[test]
    fn sad_is_always_removed_and_pans_masked_unless_attested() {
        let schema = json!({
            "type": "object",
            "properties": {
                "pan": {"type": "string", "x-data-class": "pci-pan"},
                "cvv": {"type": "string", "x-data-class": "pci-sad"},
                "cards": {"type": "array", "items": {"type": "object", "properties": {
                    "number": {"type": "string", "x-data-class": "pci-pan"},
                    "track2": {"type": "string", "x-data-class": "pci-sad"}
                }}}
            }
        });
        let plan = Projection::from_schema(&schema, &schema);
        let original = json!({"pan": "4111 1111 1111 1111", "cvv": "123", "cards": [{"number": "5355220000001234", "track2": ";5355=2512"}]});

        let mut value = original.clone();
        let effect = apply(&plan, &mut value, &audience(false));
        assert_eq!(
            value,
            json!({"pan": "4111 11** **** 1111", "cards": [{"number": "535522******1234"}]})
        );
        assert_eq!((effect.sad_removed, effect.pans_masked), (2, 2));

        let mut value = original.clone();
        let effect = apply(&plan, &mut value, &audience(true));
        assert_eq!(
            value,
            json!({"pan": "4111 1111 1111 1111", "cards": [{"number": "5355220000001234"}]})
        );
        assert_eq!((effect.sad_removed, effect.pans_masked), (2, 0));
    }

    #[test]
    fn only_what_could_be_a_token_is_left_for_the_shared_vault() {
        let schema = json!({"type": "object", "properties": {"cards": {"type": "array", "items": {
            "type": "string", "x-data-class": "pci-pan"
        }}}});
        let plan = Projection::from_schema(&schema, &schema);
        let key = PartnerKey::derive(&[9; 32], "acme");
        let vault = TokenVault::default();
        let ours = vault.tokenize("acme", &key, "5355220000001234");
        let theirs = TokenVault::default().tokenize("acme", &PartnerKey::derive(&[8; 32], "acme"), "4000056655665556");
        let mut value = json!({"cards": [ours, "4111111111111111", theirs]});
        let (replaced, unknown) = plan.detokenize(&mut value, "acme", &vault);
        assert_eq!(replaced, 1);
        assert_eq!(value["cards"][0], "5355220000001234");
        // The card number the partner sent itself is not a candidate: it is never sent to
        // the shared vault as a token to look up.
        assert_eq!(unknown, vec![theirs]);
    }

    #[test]
    fn masking_never_shows_more_than_six_and_four() {
        let schema = json!({"x-data-class": "pci-pan"});
        let plan = Projection::from_schema(&schema, &schema);
        let mut already = json!("535522******1234");
        assert_eq!(
            apply(&plan, &mut already, &audience(false)).pans_masked,
            0,
            "an already masked PAN stays"
        );
        let mut short = json!("1234567890");
        assert_eq!(apply(&plan, &mut short, &audience(false)).pans_masked, 1);
        assert_eq!(short, json!("**********"));
        let mut number = json!(4111111111111111u64);
        assert_eq!(apply(&plan, &mut number, &audience(false)).pans_masked, 1);
        assert_eq!(number, json!("411111******1111"));
    }

    #[test]
    fn kept_values_are_copied_as_written_and_escaped_names_still_match() {
        let schema = json!({"type": "object", "properties": {
            "id": {"type": "string"}, "amount": {}, "note": {"type": "string"}, "open": {}
        }});
        let plan = Projection::from_schema(&schema, &schema);
        let input = br#" { "\u0069d" : "A\u00e91" , "amount": 1.50E+2, "x": {"deep": [1, 2]}, "note": "tab\there",
            "open": {"a": [true, null, "4111 1111 1111 1111"]} } "#;
        let mut out = Vec::new();
        let effect = plan.project(input, &audience(true), &mut out).expect("well-formed");
        assert_eq!(
            std::str::from_utf8(&out).expect("utf-8"),
            r#"{"\u0069d":"A\u00e91","amount":1.50E+2,"note":"tab\there","open":{"a": [true, null, "4111 1111 1111 1111"]}}"#
        );
        assert_eq!(effect.undeclared, 1);

        // Without an attestation the open member is searched for card numbers.
        out.clear();
        let effect = plan.project(input, &audience(false), &mut out).expect("well-formed");
        let value: Value = serde_json::from_slice(&out).expect("JSON");
        assert_eq!(value["open"], json!({"a": [true, null, "4111 11** **** 1111"]}));
        assert_eq!(effect.pans_caught, 1);
    }

    #[test]
    fn names_match_by_their_text_whatever_the_object_size_or_spelling() {
        // A declared name holding a backslash: only its escaped spelling names it, and the
        // raw text of another name ("a\n": backslash, n) must not be taken for it.
        let schema = json!({"type": "object", "properties": {"a\\n": {}, "b": {}}});
        let plan = Projection::from_schema(&schema, &schema);
        let mut out = Vec::new();
        plan.project(br#"{"a\n": 1, "a\\n": 2, "\u0062": 3}"#, &audience(true), &mut out)
            .expect("well-formed");
        assert_eq!(out, br#"{"a\\n":2,"\u0062":3}"#);

        // More members than a scan covers are found by bisection, escaped or not.
        let properties: Map<String, Value> = (0..40).map(|i| (format!("field_{i:02}"), json!({}))).collect();
        let schema = json!({"type": "object", "properties": properties});
        let plan = Projection::from_schema(&schema, &schema);
        out.clear();
        let effect = plan
            .project(
                br#"{"field_07": 7, "field_3\u0039": 39, "field_40": 40}"#,
                &audience(true),
                &mut out,
            )
            .expect("well-formed");
        assert_eq!(out, br#"{"field_07":7,"field_3\u0039":39}"#);
        assert_eq!(effect.undeclared, 1);
    }

    #[test]
    fn members_in_any_order_match_as_they_do_in_declaration_order() {
        // Declared z, a, m: the name expected next is compared as bytes; any other order,
        // an undeclared member between, an escaped spelling of the expected name or a name
        // that only starts like it must all end the same way.
        let schema = json!({"type": "object", "properties": {"z": {}, "a": {}, "am": {}, "m\"q": {}}});
        let plan = Projection::from_schema(&schema, &schema);
        let cases: [(&[u8], &[u8]); 6] = [
            (br#"{"z":1,"a":2,"am":3}"#, br#"{"z":1,"a":2,"am":3}"#),
            (br#"{"am":3,"a":2,"z":1}"#, br#"{"am":3,"a":2,"z":1}"#),
            (br#"{"z":1,"x":0,"a":2,"y":0,"am":3}"#, br#"{"z":1,"a":2,"am":3}"#),
            (br#"{"z":1,"\u0061":2,"am":3}"#, br#"{"z":1,"\u0061":2,"am":3}"#),
            (br#"{"z":1,"ab":9,"amm":9,"am" : 3}"#, br#"{"z":1,"am":3}"#),
            (br#"{"m\"q":4,"z":1}"#, br#"{"m\"q":4,"z":1}"#),
        ];
        for (input, expected) in cases {
            let mut out = Vec::new();
            plan.project(input, &audience(true), &mut out).expect("well-formed");
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(expected),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
        // A name that matches up to its closing quote but has no colon is malformed.
        let mut out = Vec::new();
        assert!(plan.project(br#"{"z" 1}"#, &audience(true), &mut out).is_err());

        // The order survives removing and replacing members (the compiler does both).
        let mut members: Members = ["c", "a", "b"]
            .into_iter()
            .map(|name| (name.to_string(), Projection::keep()))
            .collect();
        members.remove("a");
        members.insert("d".to_string(), Projection::keep());
        members.insert("c".to_string(), Projection::keep());
        let declared: Vec<&str> = members.order().into_iter().map(|i| &*members.names[i]).collect();
        assert_eq!(declared, ["c", "b", "d"]);
        assert_eq!(members.written, br#""c""b""d""#);
        for (place, e) in members.expected.iter().enumerate() {
            assert_eq!(members.rank[e.index], place);
            assert_eq!(
                &members.written[e.at..e.at + e.len],
                format!("\"{}\"", members.names[e.index]).as_bytes()
            );
        }
    }

    proptest::proptest! {
        /// The direct writer of partial and hash masks writes what masking the text and
        /// writing the result as a JSON string would, and says when that changed it.
        #[test]
        fn plain_masks_are_written_as_the_general_path_writes_them(
            text in "[a-zA-Z0-9 *é€-]{0,12}",
            first in 0usize..5,
            last in 0usize..5,
        ) {
            let key = PartnerKey::derive(&[3; 32], "acme");
            let audience = Audience { key: Some(&key), ..audience(false) };
            for action in [Action::Partial { first, last }, Action::Hash] {
                let mut direct = Vec::new();
                let changed = mask_plain(&action, &text, &audience, &mut direct);
                let masked = mask_text(&action, &text, &audience).expect("a scalar action");
                let mut general = Vec::new();
                write_string(&mut general, &masked);
                proptest::prop_assert_eq!(&direct, &general);
                proptest::prop_assert_eq!(changed, Some(masked != text));
            }
        }

        /// Whatever the order, the spacing and the undeclared or removed members between
        /// them, an object's kept members come out compact and in order, and nothing else
        /// does: runs of kept members never carry a neighbour along.
        #[test]
        fn objects_keep_exactly_their_declared_members(
            members in proptest::strategy::Strategy::prop_shuffle(
                proptest::sample::subsequence(vec!["a", "b", "c", "cvv", "e", "y", "z"], 0..=7)
            ),
            values in proptest::collection::vec(0u32..1000, 7),
            spacing in proptest::collection::vec(0usize..4, 14),
        ) {
            let schema = json!({"type": "object", "properties": {
                "a": {}, "b": {}, "c": {}, "cvv": {"x-data-class": "pci-sad"},
                "e": {"type": "object", "properties": {"f": {}}}
            }});
            let plan = Projection::from_schema(&schema, &schema);
            let gap = |i: usize| [",", " ,", ", ", "\n,\t"][spacing[i] % 4];
            let colon = |i: usize| [":", " :", ": ", ":\r\n"][spacing[i] % 4];
            let (mut input, mut expected) = (String::from("{"), String::from("{"));
            for (i, name) in members.iter().enumerate() {
                let value = match *name {
                    "e" => format!(r#"{{"q":1,"f":{}}}"#, values[i]),
                    "c" => format!(r#""v{}""#, values[i]),
                    _ => values[i].to_string(),
                };
                if i > 0 {
                    input.push_str(gap(2 * i));
                }
                input.push_str(&format!(r#""{name}"{}{value}"#, colon(2 * i + 1)));
                if ["a", "b", "c", "e"].contains(name) {
                    if expected.len() > 1 {
                        expected.push(',');
                    }
                    let value = if *name == "e" { format!(r#"{{"f":{}}}"#, values[i]) } else { value };
                    expected.push_str(&format!(r#""{name}":{value}"#));
                }
            }
            input.push('}');
            expected.push('}');
            let mut out = Vec::new();
            plan.project(input.as_bytes(), &audience(true), &mut out).expect("well-formed");
            proptest::prop_assert_eq!(std::str::from_utf8(&out).expect("utf-8"), expected, "{}", input);
        }
    }

    #[test]
    fn card_numbers_spelled_in_escapes_are_still_caught() {
        let schema = json!({"type": "object", "properties": {"note": {"type": "string"}}});
        let plan = Projection::from_schema(&schema, &schema);
        let escaped: String = "4111111111111111"
            .chars()
            .map(|c| format!("\\u{:04x}", c as u32))
            .collect();
        let input = format!(r#"{{"note": "{escaped}"}}"#);
        let mut out = Vec::new();
        let effect = plan
            .project(input.as_bytes(), &audience(false), &mut out)
            .expect("well-formed");
        assert_eq!(out, br#"{"note":"411111******1111"}"#);
        assert_eq!(effect.pans_caught, 1);
    }

    #[test]
    fn a_container_of_the_wrong_kind_is_dropped_not_passed() {
        let schema = json!({"type": "object", "properties": {
            "items": {"type": "array", "items": {"type": "object", "properties": {"a": {}}}},
            "one": {"type": "object", "properties": {"a": {}}}
        }});
        let plan = Projection::from_schema(&schema, &schema);
        let mut value = json!({"items": {"a": 1, "secret": 2}, "one": [{"a": 1, "secret": 2}]});
        let effect = apply(&plan, &mut value, &audience(false));
        assert_eq!(value, json!({"items": null, "one": null}));
        assert_eq!(effect.undeclared, 2);
    }

    #[test]
    fn malformed_documents_are_refused_whole() {
        let schema = json!({"type": "object", "properties": {"a": {}}});
        let plan = Projection::from_schema(&schema, &schema);
        // The error says where reading stopped.
        for (bad, offset) in [
            (&b"{\"a\": 1"[..], 7),
            (b"{\"a\": 1} {}", 9),
            (b"{\"b\": [1,]}", 9),
            (b"", 0),
            (b"{\"b\": \"\\ud800\"}", 7),
            (b"{\"a\": \"\xff\"}", 7),
        ] {
            let mut out = Vec::new();
            assert_eq!(
                plan.project(bad, &audience(false), &mut out).map_err(|e| e.offset),
                Err(offset),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn kept_members_in_a_row_are_copied_as_one_piece_and_only_they() {
        let schema = json!({"type": "object", "properties": {
            "a": {}, "b": {}, "c": {}, "d": {}, "g": {}, "h": {},
            "cvv": {"x-data-class": "pci-sad"},
            "pan": {"x-data-class": "pci-pan"},
            "e": {"type": "object", "properties": {"f": {}}}
        }});
        let plan = Projection::from_schema(&schema, &schema);
        for (input, expected, caught) in [
            (r#"{"a":1,"b":"x","c":null}"#, r#"{"a":1,"b":"x","c":null}"#, 0),
            // Undeclared and removed members split a run; the commas stay right.
            (
                r#"{"z":0,"a":1,"y":2,"b":"x","cvv":"123","c":true,"d":false}"#,
                r#"{"a":1,"b":"x","c":true,"d":false}"#,
                0,
            ),
            (r#"{"cvv":"1","a":1,"b":2}"#, r#"{"a":1,"b":2}"#, 0),
            (r#"{"a":1,"b":2,"cvv":"1"}"#, r#"{"a":1,"b":2}"#, 0),
            // Whitespace anywhere in a member: written member by member, compacted.
            (
                r#"{"a":1 ,"b":2, "c":3,"d" :4,"g": 5,"h":6}"#,
                r#"{"a":1,"b":2,"c":3,"d":4,"g":5,"h":6}"#,
                0,
            ),
            // A container between kept members, with a run of its own.
            (
                r#"{"a":1,"e":{"f":2,"q":3},"g":4,"h":5}"#,
                r#"{"a":1,"e":{"f":2},"g":4,"h":5}"#,
                0,
            ),
            // A masked member, and a card number in a kept one, end the run they interrupt.
            (
                r#"{"a":1,"pan":"4111111111111111","b":2,"c":"4111 1111 1111 1111","d":3,"g":4}"#,
                r#"{"a":1,"pan":"411111******1111","b":2,"c":"4111 11** **** 1111","d":3,"g":4}"#,
                1,
            ),
        ] {
            let mut out = Vec::new();
            let effect = plan
                .project(input.as_bytes(), &audience(false), &mut out)
                .expect("well-formed");
            assert_eq!(std::str::from_utf8(&out).expect("utf-8"), expected, "{input}");
            assert_eq!(effect.pans_caught, caught, "{input}");
        }
    }

    #[test]
    fn unknown_class_names_are_found() {
        let schema = json!({"properties": {"a": {"x-data-class": "pci"}, "b": {"x-data-class": "pii"}, "c": {"items": {"x-data-class": 7}}}});
        assert_eq!(
            unknown_classes(&schema),
            vec!["/properties/a/x-data-class", "/properties/c/items/x-data-class"]
        );
    }
}
