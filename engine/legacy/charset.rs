//! Character sets of legacy text fields: ASCII and EBCDIC code page 037.
//!
//! Only alphanumeric (PIC X) fields pass through here. Zoned digits, packed and binary
//! fields are read nibble by nibble in `fields.rs`, because their bytes are not text.
//! Control characters are refused both ways: in a text field they mean the record is not
//! what its layout says.

/// The character set of a fixed-width layout's text fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// Printable US-ASCII, 0x20 to 0x7E.
    Ascii,
    /// IBM EBCDIC code page 037 (US/Canada), a permutation of ISO 8859-1.
    Cp037,
}

/// cp037 byte -> Unicode scalar (ISO 8859-1, so every value fits a byte).
const CP037_TO_LATIN1: [u8; 256] = [
    0x00, 0x01, 0x02, 0x03, 0x9C, 0x09, 0x86, 0x7F, 0x97, 0x8D, 0x8E, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, // 0x00
    0x10, 0x11, 0x12, 0x13, 0x9D, 0x85, 0x08, 0x87, 0x18, 0x19, 0x92, 0x8F, 0x1C, 0x1D, 0x1E, 0x1F, // 0x10
    0x80, 0x81, 0x82, 0x83, 0x84, 0x0A, 0x17, 0x1B, 0x88, 0x89, 0x8A, 0x8B, 0x8C, 0x05, 0x06, 0x07, // 0x20
    0x90, 0x91, 0x16, 0x93, 0x94, 0x95, 0x96, 0x04, 0x98, 0x99, 0x9A, 0x9B, 0x14, 0x15, 0x9E, 0x1A, // 0x30
    0x20, 0xA0, 0xE2, 0xE4, 0xE0, 0xE1, 0xE3, 0xE5, 0xE7, 0xF1, 0xA2, 0x2E, 0x3C, 0x28, 0x2B, 0x7C, // 0x40
    0x26, 0xE9, 0xEA, 0xEB, 0xE8, 0xED, 0xEE, 0xEF, 0xEC, 0xDF, 0x21, 0x24, 0x2A, 0x29, 0x3B, 0xAC, // 0x50
    0x2D, 0x2F, 0xC2, 0xC4, 0xC0, 0xC1, 0xC3, 0xC5, 0xC7, 0xD1, 0xA6, 0x2C, 0x25, 0x5F, 0x3E, 0x3F, // 0x60
    0xF8, 0xC9, 0xCA, 0xCB, 0xC8, 0xCD, 0xCE, 0xCF, 0xCC, 0x60, 0x3A, 0x23, 0x40, 0x27, 0x3D, 0x22, // 0x70
    0xD8, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0xAB, 0xBB, 0xF0, 0xFD, 0xFE, 0xB1, // 0x80
    0xB0, 0x6A, 0x6B, 0x6C, 0x6D, 0x6E, 0x6F, 0x70, 0x71, 0x72, 0xAA, 0xBA, 0xE6, 0xB8, 0xC6, 0xA4, // 0x90
    0xB5, 0x7E, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0xA1, 0xBF, 0xD0, 0xDD, 0xDE, 0xAE, // 0xA0
    0x5E, 0xA3, 0xA5, 0xB7, 0xA9, 0xA7, 0xB6, 0xBC, 0xBD, 0xBE, 0x5B, 0x5D, 0xAF, 0xA8, 0xB4, 0xD7, // 0xB0
    0x7B, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0xAD, 0xF4, 0xF6, 0xF2, 0xF3, 0xF5, // 0xC0
    0x7D, 0x4A, 0x4B, 0x4C, 0x4D, 0x4E, 0x4F, 0x50, 0x51, 0x52, 0xB9, 0xFB, 0xFC, 0xF9, 0xFA, 0xFF, // 0xD0
    0x5C, 0xF7, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0xB2, 0xD4, 0xD6, 0xD2, 0xD3, 0xD5, // 0xE0
    0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0xB3, 0xDB, 0xDC, 0xD9, 0xDA, 0x9F, // 0xF0
];

/// ISO 8859-1 code point -> cp037 byte, the inverse of the table above.
const LATIN1_TO_CP037: [u8; 256] = invert(&CP037_TO_LATIN1);

const fn invert(table: &[u8; 256]) -> [u8; 256] {
    let mut out = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        out[table[i] as usize] = i as u8;
        i += 1;
    }
    out
}

/// Whether a Latin-1 code point is printable (not C0, DEL or C1).
const fn printable(code: u8) -> bool {
    !(code < 0x20 || (code >= 0x7F && code < 0xA0))
}

impl Charset {
    /// The space character, used to pad text fields and fillers.
    pub const fn space(self) -> u8 {
        match self {
            Charset::Ascii => 0x20,
            Charset::Cp037 => 0x40,
        }
    }

    /// Appends the text of `bytes` to `out`; on a byte that is not a printable character,
    /// returns its index.
    pub fn decode_into(self, bytes: &[u8], out: &mut String) -> Result<(), usize> {
        match self {
            Charset::Ascii => {
                if let Some(bad) = bytes.iter().position(|b| !(0x20..=0x7E).contains(b)) {
                    return Err(bad);
                }
                // Printable ASCII is valid UTF-8 byte for byte.
                out.push_str(std::str::from_utf8(bytes).map_err(|e| e.valid_up_to())?);
                Ok(())
            }
            Charset::Cp037 => {
                out.reserve(bytes.len());
                for (i, byte) in bytes.iter().enumerate() {
                    let code = CP037_TO_LATIN1[*byte as usize];
                    if !printable(code) {
                        return Err(i);
                    }
                    out.push(char::from(code));
                }
                Ok(())
            }
        }
    }

    /// The byte for `c`, or `None` if the character set cannot represent it.
    pub fn encode_char(self, c: char) -> Option<u8> {
        let code = u8::try_from(u32::from(c)).ok()?;
        if !printable(code) {
            return None;
        }
        match self {
            Charset::Ascii => (code < 0x80).then_some(code),
            Charset::Cp037 => Some(LATIN1_TO_CP037[code as usize]),
        }
    }

    /// The name used in layout files.
    pub fn name(self) -> &'static str {
        match self {
            Charset::Ascii => "ascii",
            Charset::Cp037 => "ebcdic-cp037",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp037_landmarks() {
        // Values from IBM's published code page 037 chart.
        for (c, byte) in [
            ('A', 0xC1),
            ('J', 0xD1),
            ('S', 0xE2),
            ('a', 0x81),
            ('0', 0xF0),
            ('9', 0xF9),
            (' ', 0x40),
            ('.', 0x4B),
            ('-', 0x60),
            ('/', 0x61),
            ('&', 0x50),
            ('£', 0xB1),
            ('{', 0xC0),
            ('}', 0xD0),
            ('é', 0x51),
        ] {
            assert_eq!(Charset::Cp037.encode_char(c), Some(byte), "{c}");
            let mut s = String::new();
            Charset::Cp037.decode_into(&[byte], &mut s).unwrap();
            assert_eq!(s, c.to_string());
        }
    }

    #[test]
    fn every_printable_latin1_character_round_trips() {
        for code in (0u8..=255).filter(|c| printable(*c)) {
            let c = char::from(code);
            let byte = Charset::Cp037.encode_char(c).unwrap();
            let mut s = String::new();
            Charset::Cp037.decode_into(&[byte], &mut s).unwrap();
            assert_eq!(s.chars().next(), Some(c));
        }
    }

    #[test]
    fn control_characters_and_non_ascii_are_refused() {
        let mut s = String::new();
        assert_eq!(Charset::Ascii.decode_into(b"AB\x00C", &mut s), Err(2));
        assert_eq!(Charset::Cp037.decode_into(&[0xC1, 0x00], &mut s), Err(1));
        assert_eq!(Charset::Ascii.encode_char('é'), None);
        assert_eq!(Charset::Ascii.encode_char('\n'), None);
        assert_eq!(Charset::Cp037.encode_char('€'), None);
    }
}
