//! Byte spans of every value in a JSON text, by JSON pointer.
//!
//! serde_json keeps no positions, and schema files are JSON, so this small scanner walks
//! text that serde_json has already accepted and records where each key and value stands.
//! On malformed input it stops early and returns what it found.

use super::document::{escape_pointer, SpanEntry};
use std::collections::HashMap;

pub fn index(text: &str) -> HashMap<String, SpanEntry> {
    let mut scanner = Scanner {
        bytes: text.as_bytes(),
        pos: 0,
        spans: HashMap::new(),
    };
    scanner.skip_ws();
    let start = scanner.pos;
    if scanner.value("").is_some() {
        scanner.spans.insert(
            String::new(),
            SpanEntry {
                key: None,
                value: start..scanner.pos,
            },
        );
    }
    scanner.spans
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    spans: HashMap<String, SpanEntry>,
}

impl Scanner<'_> {
    fn skip_ws(&mut self) {
        while matches!(self.bytes.get(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn value(&mut self, pointer: &str) -> Option<()> {
        match self.peek()? {
            b'{' => self.object(pointer),
            b'[' => self.array(pointer),
            b'"' => self.string().map(|_| ()),
            _ => {
                while let Some(b) = self.peek() {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.pos += 1;
                }
                Some(())
            }
        }
    }

    fn string(&mut self) -> Option<String> {
        let start = self.pos;
        self.pos += 1;
        loop {
            match self.peek()? {
                b'\\' => self.pos += 2,
                b'"' => {
                    self.pos += 1;
                    break;
                }
                _ => self.pos += 1,
            }
        }
        serde_json::from_slice(self.bytes.get(start..self.pos)?).ok()
    }

    fn object(&mut self, pointer: &str) -> Option<()> {
        self.pos += 1;
        loop {
            self.skip_ws();
            match self.peek()? {
                b'}' => {
                    self.pos += 1;
                    return Some(());
                }
                b',' => {
                    self.pos += 1;
                    continue;
                }
                b'"' => {}
                _ => return None,
            }
            let key_start = self.pos;
            let key = self.string()?;
            let key_end = self.pos;
            self.skip_ws();
            if self.peek()? != b':' {
                return None;
            }
            self.pos += 1;
            self.skip_ws();
            let child = format!("{pointer}/{}", escape_pointer(&key));
            let value_start = self.pos;
            self.value(&child)?;
            self.spans.insert(
                child,
                SpanEntry {
                    key: Some(key_start..key_end),
                    value: value_start..self.pos,
                },
            );
        }
    }

    fn array(&mut self, pointer: &str) -> Option<()> {
        self.pos += 1;
        let mut i = 0;
        loop {
            self.skip_ws();
            match self.peek()? {
                b']' => {
                    self.pos += 1;
                    return Some(());
                }
                b',' => {
                    self.pos += 1;
                    continue;
                }
                _ => {}
            }
            let child = format!("{pointer}/{i}");
            let start = self.pos;
            self.value(&child)?;
            self.spans.insert(
                child,
                SpanEntry {
                    key: None,
                    value: start..self.pos,
                },
            );
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_nested_keys_and_items() {
        let text = "{\n  \"type\": \"object\",\n  \"properties\": {\"a/b\": {\"type\": [\"x\", \"y\"]}}\n}";
        let spans = super::index(text);
        let e = &spans["/properties/a~1b/type/1"];
        assert_eq!(&text[e.value.clone()], "\"y\"");
        let k = spans["/type"].key.clone().unwrap();
        assert_eq!(&text[k], "\"type\"");
    }
}
