//! A JSON reader over bytes, for projecting responses without building a tree.
//!
//! Projection walks an upstream's answer once, copying what the plan keeps and skipping
//! what it drops. Building a `serde_json::Value` for that cost more than everything else a
//! masked route does, so the reader hands out borrowed tokens instead: a string's raw text
//! (unescaped only when something needs to look inside it), a number's text, a literal.
//!
//! It accepts what RFC 8259 accepts and nothing else, as strictly as `serde_json` does
//! (escapes, control characters, UTF-8, lone surrogates, leading zeros, trailing commas,
//! nesting depth, trailing content), so malformed upstream JSON is still refused as a whole.

use std::borrow::Cow;
use std::fmt;

/// Deeper nesting than this is refused, as `serde_json` refuses it: a hostile upstream must
/// not be able to exhaust the stack.
const MAX_DEPTH: usize = 128;

/// The input is not one well-formed JSON document; `offset` is where reading stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed {
    pub offset: usize,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed JSON at byte {}", self.offset)
    }
}

impl std::error::Error for Malformed {}

/// The reader met malformed input and stopped; `Reader::malformed` says where. It carries
/// nothing so that a token's result fits in two registers: a result returned through
/// memory, read back at once in other-sized pieces, stalled the hot loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stop;

/// A string token as it appears between its quotes.
#[derive(Debug, Clone, Copy)]
pub struct RawStr<'a> {
    /// The token as written, quotes included, so that copying it is one write.
    quoted: &'a str,
}

impl<'a> RawStr<'a> {
    /// The text between the quotes, escapes as written.
    #[inline]
    pub fn raw(&self) -> &'a str {
        self.quoted.get(1..self.quoted.len() - 1).unwrap_or_default()
    }

    /// The string's value, escapes resolved. Borrows unless there were escapes.
    #[inline]
    pub fn text(&self) -> Cow<'a, str> {
        // Kept out of the token (a flag would make every token a size that moves badly);
        // most names and values are short, and most have no backslash.
        let raw = self.raw();
        if raw.as_bytes().contains(&b'\\') {
            // Escapes were checked when the token was read.
            Cow::Owned(unescape(raw).unwrap_or_default())
        } else {
            Cow::Borrowed(raw)
        }
    }

    /// The token's length as written, quotes included.
    #[inline]
    pub fn written_len(&self) -> usize {
        self.quoted.len()
    }

    /// Writes the token back as it was read, quotes included.
    #[inline]
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.quoted.as_bytes());
    }
}

/// A scalar token, as written: a string with its quotes, a number, `true`, `false` or
/// `null`. Its first byte says which. (Two words, so reading one returns in registers;
/// an enum with a tag came back through memory, and copying its odd-sized parts stalled.)
#[derive(Debug, Clone, Copy)]
pub struct Scalar<'a>(&'a str);

impl<'a> Scalar<'a> {
    /// The token as written.
    #[inline]
    pub fn as_written(&self) -> &'a str {
        self.0
    }

    /// The string token, if this is one.
    #[inline]
    pub fn string(&self) -> Option<RawStr<'a>> {
        (self.first() == b'"').then_some(RawStr { quoted: self.0 })
    }

    /// Whether this is `true` or `false`.
    #[inline]
    pub fn is_bool(&self) -> bool {
        matches!(self.first(), b't' | b'f')
    }

    /// Whether this is `null`.
    #[inline]
    pub fn is_null(&self) -> bool {
        self.first() == b'n'
    }

    #[inline]
    fn first(&self) -> u8 {
        self.0.as_bytes().first().copied().unwrap_or_default()
    }

    /// Writes the token as it was read.
    #[inline]
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.0.as_bytes());
    }
}

/// A cursor over one JSON document.
pub struct Reader<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
    name_at: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `input`, which must be UTF-8 (checked here, once, for the whole input).
    pub fn new(input: &'a [u8]) -> Result<Reader<'a>, Malformed> {
        let text = std::str::from_utf8(input).map_err(|e| Malformed {
            offset: e.valid_up_to(),
        })?;
        Ok(Reader {
            text,
            pos: 0,
            depth: 0,
            name_at: 0,
        })
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// Where reading stopped, for the error a caller reports after a `Stop`.
    pub fn malformed(&self) -> Malformed {
        Malformed { offset: self.pos }
    }

    #[inline]
    fn skip_whitespace(&mut self) {
        // Compact JSON has none: every whitespace byte is at most b' '.
        if self.bytes().get(self.pos).is_none_or(|&b| b > b' ') {
            return;
        }
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes().get(self.pos) {
            self.pos += 1;
        }
    }

    /// The first byte of the next token, after whitespace.
    #[inline]
    pub fn peek(&mut self) -> Result<u8, Stop> {
        self.skip_whitespace();
        self.bytes().get(self.pos).copied().ok_or(Stop)
    }

    /// Succeeds when only whitespace is left: one document, nothing after it.
    pub fn finish(&mut self) -> Result<(), Stop> {
        self.skip_whitespace();
        if self.pos == self.text.len() {
            Ok(())
        } else {
            Err(Stop)
        }
    }

    #[inline]
    fn eat(&mut self, byte: u8) -> Result<(), Stop> {
        if self.peek()? == byte {
            self.pos += 1;
            Ok(())
        } else {
            Err(Stop)
        }
    }

    /// Consumes the `{` or `[` that opens a container.
    #[inline]
    pub fn enter(&mut self) -> Result<(), Stop> {
        let open = self.peek()?;
        if !matches!(open, b'{' | b'[') || self.depth >= MAX_DEPTH {
            return Err(Stop);
        }
        self.depth += 1;
        self.pos += 1;
        Ok(())
    }

    /// The next member's name in the object just entered, with its `:` consumed; `None` at
    /// the closing brace (consumed too). `first` tracks whether a comma is due.
    #[inline]
    pub fn member(&mut self, first: &mut bool) -> Result<Option<RawStr<'a>>, Stop> {
        if self.next_member(first)? {
            self.name().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Moves to the next member's name in the object just entered: `false` at the closing
    /// brace (consumed). The name is then read with `name` or `name_if`.
    #[inline]
    pub fn next_member(&mut self, first: &mut bool) -> Result<bool, Stop> {
        if self.peek()? == b'}' {
            self.leave();
            return Ok(false);
        }
        if !*first {
            self.eat(b',')?;
        }
        *first = false;
        self.skip_whitespace();
        self.name_at = self.pos;
        Ok(true)
    }

    /// Reads the member name at the cursor, and its `:`.
    #[inline]
    pub fn name(&mut self) -> Result<RawStr<'a>, Stop> {
        let name = self.string()?;
        self.colon()?;
        Ok(name)
    }

    /// Reads the member name at the cursor, and its `:`, if it is written exactly as
    /// `quoted` (quotes included), which holds no quote, backslash or control character:
    /// then those bytes are the whole token, and it need not be scanned. Reads nothing
    /// otherwise.
    #[inline]
    pub fn name_if(&mut self, quoted: &[u8]) -> Result<Option<RawStr<'a>>, Stop> {
        let end = self.pos + quoted.len();
        if quoted.len() < 2 || !self.bytes().get(self.pos..end).is_some_and(|here| same(here, quoted)) {
            return Ok(None);
        }
        let name = RawStr {
            quoted: self.text.get(self.pos..end).unwrap_or_default(),
        };
        self.pos = end;
        self.colon()?;
        Ok(Some(name))
    }

    #[inline]
    fn colon(&mut self) -> Result<(), Stop> {
        if self.bytes().get(self.pos) == Some(&b':') {
            self.pos += 1;
            Ok(())
        } else {
            self.eat(b':')
        }
    }

    /// The cursor's offset in the document.
    #[inline]
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// Where the name of the member `next_member` last moved to starts in the document (its
    /// opening quote).
    #[inline]
    pub fn name_offset(&self) -> usize {
        self.name_at
    }

    /// The document's text from offset `from` to offset `to`.
    #[inline]
    pub fn between(&self, from: usize, to: usize) -> &'a str {
        self.text.get(from..to).unwrap_or_default()
    }

    /// Whether another item follows in the array just entered; `false` at the closing
    /// bracket (consumed). `first` tracks whether a comma is due.
    #[inline]
    pub fn item(&mut self, first: &mut bool) -> Result<bool, Stop> {
        if self.peek()? == b']' {
            self.leave();
            return Ok(false);
        }
        if !*first {
            self.eat(b',')?;
        }
        *first = false;
        Ok(true)
    }

    #[inline]
    fn leave(&mut self) {
        self.depth -= 1;
        self.pos += 1;
    }

    /// Reads a string token; the cursor is on its opening quote.
    #[inline]
    fn string(&mut self) -> Result<RawStr<'a>, Stop> {
        if self.bytes().get(self.pos) != Some(&b'"') {
            return Err(Stop);
        }
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        let bytes = self.bytes();
        loop {
            // Most strings hold no escape: find the end in one pass.
            let Some((offset, stop)) = bytes.get(i..).and_then(string_stop) else {
                self.pos = bytes.len();
                return Err(Stop);
            };
            i += offset;
            match stop {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    match bytes.get(i + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                        Some(b'u')
                            if bytes
                                .get(i + 2..i + 6)
                                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) =>
                        {
                            i += 6
                        }
                        _ => {
                            self.pos = i;
                            return Err(Stop);
                        }
                    }
                }
                _ => {
                    self.pos = i;
                    return Err(Stop);
                }
            }
        }
        let token = RawStr {
            quoted: &self.text[start - 1..=i],
        };
        // Surrogate escapes must pair up; checked once here so `text` cannot fail later.
        if escaped && token.raw().contains("\\u") && unescape(token.raw()).is_none() {
            self.pos = start;
            return Err(Stop);
        }
        self.pos = i + 1;
        Ok(token)
    }

    /// Reads the scalar at the cursor. Fails on a container: the caller looks first.
    #[inline]
    pub fn scalar(&mut self) -> Result<Scalar<'a>, Stop> {
        let first = self.peek()?;
        let start = self.pos;
        match first {
            b'"' => return self.string().map(|s| Scalar(s.quoted)),
            b't' => self.literal("true")?,
            b'f' => self.literal("false")?,
            b'n' => self.literal("null")?,
            b'-' | b'0'..=b'9' => return self.number().map(Scalar),
            _ => return Err(Stop),
        }
        Ok(Scalar(self.text.get(start..self.pos).unwrap_or_default()))
    }

    fn literal(&mut self, word: &str) -> Result<(), Stop> {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(Stop)
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Result<&'a str, Stop> {
        let bytes = self.bytes();
        let start = self.pos;
        let mut i = start;
        let digits = |i: &mut usize| {
            let from = *i;
            while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > from
        };
        if bytes.get(i) == Some(&b'-') {
            i += 1;
        }
        let valid = match bytes.get(i) {
            Some(b'0') => {
                i += 1;
                true
            }
            Some(b'1'..=b'9') => digits(&mut i),
            _ => false,
        } && (bytes.get(i) != Some(&b'.') || {
            i += 1;
            digits(&mut i)
        }) && (!matches!(bytes.get(i), Some(b'e' | b'E')) || {
            i += 1;
            if matches!(bytes.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            digits(&mut i)
        });
        if !valid {
            self.pos = i;
            return Err(Stop);
        }
        self.pos = i;
        Ok(&self.text[start..i])
    }

    /// Reads one whole value, checking it, and returns its text as written.
    pub fn value(&mut self) -> Result<&'a str, Stop> {
        self.skip_whitespace();
        let start = self.pos;
        self.skip_value()?;
        Ok(&self.text[start..self.pos])
    }

    fn skip_value(&mut self) -> Result<(), Stop> {
        let mut first = true;
        match self.peek()? {
            b'{' => {
                self.enter()?;
                while self.member(&mut first)?.is_some() {
                    self.skip_value()?;
                }
            }
            b'[' => {
                self.enter()?;
                while self.item(&mut first)? {
                    self.skip_value()?;
                }
            }
            _ => {
                self.scalar()?;
            }
        }
        Ok(())
    }
}

/// `a == b`, compared a word at a time in line: for the short slices member names are, a
/// call to `memcmp` cost more than the compare itself.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a == b;
    }
    let word = |s: &[u8], at: usize| s.get(at..at + 8).and_then(|w| <[u8; 8]>::try_from(w).ok());
    let mut at = 0;
    while at + 8 < n {
        if word(a, at) != word(b, at) {
            return false;
        }
        at += 8;
    }
    // The last word may overlap the one before; that is fine for equality.
    word(a, n - 8) == word(b, n - 8)
}

/// The first eight bytes of `bytes` as a little-endian word; a shorter slice is padded with
/// `fill`. Built from overlapping loads, not copied into a buffer: a buffer filled byte by
/// byte and then read as a word stalls the load (it cannot be forwarded from the stores).
#[inline]
pub(crate) fn padded_word(bytes: &[u8], fill: u8) -> u64 {
    if let Some(word) = bytes.first_chunk::<8>() {
        return u64::from_le_bytes(*word);
    }
    let n = bytes.len();
    let low = match (bytes.first_chunk::<4>(), bytes.last_chunk::<4>()) {
        // Four to seven bytes: the two loads overlap on equal bytes.
        (Some(first), Some(last)) => {
            u64::from(u32::from_le_bytes(*first)) | u64::from(u32::from_le_bytes(*last)) << (8 * (n - 4))
        }
        _ => bytes.iter().rev().fold(0, |word, &b| word << 8 | u64::from(b)),
    };
    low | (u64::from(fill) * 0x0101_0101_0101_0101) << (8 * n)
}

/// The offset of the first byte in `text` that ends a run of plain string content (a
/// quote, a backslash or a control character), and that byte, taken from the word it was
/// found in rather than read again. Eight bytes at a time (SWAR), because string content is
/// most of what a response is made of.
fn string_stop(text: &[u8]) -> Option<(usize, u8)> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut at = 0;
    loop {
        // The last few bytes are padded with a byte that stops nothing.
        let (v, full) = match text.get(at..at + 8) {
            Some(chunk) => (u64::from_le_bytes(<[u8; 8]>::try_from(chunk).ok()?), true),
            None => {
                let rest = text.get(at..).filter(|rest| !rest.is_empty())?;
                (padded_word(rest, b' '), false)
            }
        };
        // A byte's high bit is set where it is zero (`has_zero`) or below 0x20; a borrow can
        // mark bytes after a true hit too, but never before one, so the lowest mark is exact.
        let has_zero = |x: u64| x.wrapping_sub(LO) & !x & HI;
        let stops = has_zero(v ^ (LO * u64::from(b'"')))
            | has_zero(v ^ (LO * u64::from(b'\\')))
            | (v.wrapping_sub(LO * 0x20) & !v & HI);
        if stops != 0 {
            let bit = stops.trailing_zeros();
            return Some((at + (bit / 8) as usize, (v >> (bit & !7)) as u8));
        }
        if !full {
            return None;
        }
        at += 8;
    }
}

/// Resolves the escapes in a string token's text; `None` if they are malformed.
fn unescape(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let resolved = match chars.next()? {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let unit = hex4(&mut chars)?;
                match unit {
                    0xd800..=0xdbff => {
                        if chars.next()? != '\\' || chars.next()? != 'u' {
                            return None;
                        }
                        let low = hex4(&mut chars)?;
                        if !(0xdc00..=0xdfff).contains(&low) {
                            return None;
                        }
                        char::from_u32(0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00))?
                    }
                    0xdc00..=0xdfff => return None,
                    _ => char::from_u32(unit)?,
                }
            }
            _ => return None,
        };
        out.push(resolved);
    }
    Some(out)
}

fn hex4(chars: &mut std::str::Chars<'_>) -> Option<u32> {
    let mut unit = 0;
    for _ in 0..4 {
        unit = unit * 16 + chars.next()?.to_digit(16)?;
    }
    Some(unit)
}

/// Writes `text` as a JSON string, quotes included.
pub fn write_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    // What needs escaping is what ends plain string content; masked values rarely hold any.
    if string_stop(bytes).is_none() {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(input: &str) -> bool {
        let Ok(mut reader) = Reader::new(input.as_bytes()) else {
            return false;
        };
        reader.value().is_ok() && reader.finish().is_ok()
    }

    #[test]
    fn accepts_what_rfc_8259_accepts() {
        for good in [
            "{}",
            " [ ] ",
            r#"{"a": [1, -0.5, 2e10, 1E-2, true, false, null, "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"]}"#,
            "0",
            "-0",
            r#""""#,
        ] {
            assert!(accepts(good), "{good}");
        }
    }

    #[test]
    fn refuses_what_it_does_not() {
        for bad in [
            "",
            "{",
            "[1,]",
            r#"{"a":1,}"#,
            "{,}",
            "[,1]",
            "01",
            "1.",
            "-",
            ".5",
            "1e",
            "+1",
            "tru",
            "nul",
            r#""\x""#,
            r#""\u12""#,
            r#""\ud800""#,
            r#""\udc00\ud800""#,
            "\"a\u{1}\"",
            r#"{"a" 1}"#,
            r#"{1: 2}"#,
            "[1] [2]",
            "[1] x",
            "\"unterminated",
        ] {
            assert!(!accepts(bad), "{bad:?}");
        }
        assert!(Reader::new(b"\"\xff\"").is_err(), "invalid UTF-8");
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(!accepts(&deep));
        let fine = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(accepts(&fine));
    }

    #[test]
    fn the_fast_string_scan_stops_where_a_byte_scan_would() {
        let naive = |t: &[u8]| t.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20);
        let mut text: Vec<u8> = "plain text, with é and 日本 and digits 4111 …".bytes().collect();
        assert_eq!(string_stop(&text), None);
        for stop in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
            for at in 0..text.len() {
                let saved = text[at];
                text[at] = stop;
                for end in at..=text.len() {
                    let found = naive(&text[..end]).map(|at| (at, text[at]));
                    assert_eq!(string_stop(&text[..end]), found, "{stop:#x} at {at} of {end}");
                }
                text[at] = saved;
            }
        }
    }

    #[test]
    fn the_word_compare_agrees_with_slice_equality() {
        let text: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        for n in 0..=text.len() {
            let a = &text[..n];
            let copy = a.to_vec();
            assert!(same(a, &copy), "{n}");
            for at in 0..n {
                let mut b = a.to_vec();
                b[at] ^= 0x20;
                assert!(!same(a, &b), "{n}: differs at {at}");
            }
            if let Some(shorter) = n.checked_sub(1) {
                assert!(!same(a, &text[..shorter]), "{n}: lengths differ");
            }
        }
    }

    #[test]
    fn padded_words_are_the_bytes_then_the_fill() {
        let text: Vec<u8> = (0..12u8).map(|i| 0xf0 ^ i.wrapping_mul(37)).collect();
        for fill in [0, b' ', 0xff] {
            for n in 0..=text.len() {
                let mut expected = [fill; 8];
                for (to, from) in expected.iter_mut().zip(&text[..n]) {
                    *to = *from;
                }
                assert_eq!(
                    padded_word(&text[..n], fill),
                    u64::from_le_bytes(expected),
                    "{n} bytes, fill {fill:#x}"
                );
            }
        }
    }

    #[test]
    fn scalars_are_their_tokens_as_written() {
        let mut reader = Reader::new(br#"["a\"b", -1.5e3, true, false, null]"#).expect("utf-8");
        reader.enter().expect("array");
        let mut first = true;
        let mut tokens = Vec::new();
        while reader.item(&mut first).expect("item") {
            tokens.push(reader.scalar().expect("scalar"));
        }
        let written: Vec<&str> = tokens.iter().map(Scalar::as_written).collect();
        assert_eq!(written, [r#""a\"b""#, "-1.5e3", "true", "false", "null"]);
        let kinds: Vec<(bool, bool, bool)> = tokens
            .iter()
            .map(|t| (t.string().is_some(), t.is_bool(), t.is_null()))
            .collect();
        assert_eq!(
            kinds,
            [
                (true, false, false),
                (false, false, false),
                (false, true, false),
                (false, true, false),
                (false, false, true)
            ]
        );
        assert_eq!(
            tokens[0].string().map(|s| s.text().into_owned()).as_deref(),
            Some("a\"b")
        );
    }

    #[test]
    fn strings_unescape_only_when_asked_and_write_back_as_json() {
        let mut reader = Reader::new(br#""a\u00e9\n\ud83d\ude00""#).expect("utf-8");
        let Some(s) = reader.scalar().ok().and_then(|t| t.string()) else {
            panic!("a string");
        };
        assert_eq!(s.text(), "a\u{e9}\n\u{1f600}");
        let mut out = Vec::new();
        write_string(&mut out, "q\"\\\n\u{1}é");
        assert_eq!(out, "\"q\\\"\\\\\\n\\u0001é\"".as_bytes());
        let back: String = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(back, "q\"\\\n\u{1}é");
    }
}
