//! Numeric field codecs: zoned decimal with a trailing overpunch sign, packed decimal
//! (COMP-3) and big-endian binary (COMP). They work on digits, never on floats, and never
//! pass through the character set: zoned digits are read by their nibbles.

use super::charset::Charset;

/// Most digits a value carries (31 for packed and zoned, 18 for binary, with room).
pub const MAX: usize = 40;

/// The digits of a number, most significant first, as ASCII, with its sign.
#[derive(Clone, Copy)]
pub struct Digits {
    buf: [u8; MAX],
    len: usize,
    pub negative: bool,
}

impl Default for Digits {
    fn default() -> Self {
        Digits {
            buf: [b'0'; MAX],
            len: 0,
            negative: false,
        }
    }
}

impl std::fmt::Debug for Digits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}{}",
            if self.negative { "-" } else { "" },
            String::from_utf8_lossy(self.as_bytes())
        )
    }
}

impl Digits {
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    pub fn push(&mut self, digit: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b'0' + digit;
            self.len += 1;
        }
    }

    pub fn clear(&mut self) {
        self.len = 0;
        self.negative = false;
    }

    /// `width` digits from an unsigned number (which must fit).
    pub fn from_u64(value: u64, width: usize, negative: bool) -> Digits {
        let mut d = Digits {
            negative,
            ..Digits::default()
        };
        let width = width.min(MAX);
        let mut v = value;
        for i in (0..width).rev() {
            if let Some(slot) = d.buf.get_mut(i) {
                *slot = b'0' + (v % 10) as u8;
            }
            v /= 10;
        }
        d.len = width;
        d
    }

    /// The value, if it fits a u64.
    pub fn to_u64(&self) -> Option<u64> {
        self.as_bytes()
            .iter()
            .try_fold(0u64, |acc, d| acc.checked_mul(10)?.checked_add(u64::from(d - b'0')))
    }

    pub fn is_zero(&self) -> bool {
        self.as_bytes().iter().all(|d| *d == b'0')
    }
}

/// What went wrong inside a field: the index of the offending byte, and for packed
/// fields the offending nibble.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub at: usize,
    pub nibble: Option<u8>,
    pub expected: &'static str,
}

fn fault(at: usize, expected: &'static str) -> Fault {
    Fault {
        at,
        nibble: None,
        expected,
    }
}

// ---------------------------------------------------------------------------------------
// Zoned decimal (USAGE DISPLAY), trailing overpunch sign
// ---------------------------------------------------------------------------------------

/// ASCII overpunch: `{` and `A`-`I` are +0..+9, `}` and `J`-`R` are -0..-9.
fn ascii_overpunch(byte: u8) -> Option<(u8, bool)> {
    match byte {
        b'0'..=b'9' => Some((byte - b'0', false)),
        b'{' => Some((0, false)),
        b'A'..=b'I' => Some((byte - b'A' + 1, false)),
        b'}' => Some((0, true)),
        b'J'..=b'R' => Some((byte - b'J' + 1, true)),
        _ => None,
    }
}

/// Reads a zoned decimal field into `out`.
pub fn decode_zoned(bytes: &[u8], charset: Charset, signed: bool, out: &mut Digits) -> Result<(), Fault> {
    out.clear();
    let Some((last, body)) = bytes.split_last() else {
        return Ok(());
    };
    match charset {
        Charset::Ascii => {
            for (i, b) in body.iter().enumerate() {
                if !b.is_ascii_digit() {
                    return Err(fault(i, "a digit 0-9"));
                }
                out.push(b - b'0');
            }
            let (digit, negative) = if signed {
                ascii_overpunch(*last)
                    .ok_or_else(|| fault(body.len(), "a digit or an overpunch sign ({, A-I, }, J-R)"))?
            } else if last.is_ascii_digit() {
                (last - b'0', false)
            } else {
                return Err(fault(body.len(), "a digit 0-9 (the field is unsigned)"));
            };
            out.push(digit);
            out.negative = negative;
        }
        Charset::Cp037 => {
            for (i, b) in body.iter().enumerate() {
                if b >> 4 != 0xF || b & 0xF > 9 {
                    return Err(fault(i, "an EBCDIC digit 0xF0-0xF9"));
                }
                out.push(b & 0xF);
            }
            let zone = last >> 4;
            let digit = last & 0xF;
            let negative = match (zone, signed) {
                (0xF, _) => false,
                (0xC, true) => false,
                (0xD, true) => true,
                (_, true) => return Err(fault(body.len(), "a digit with sign zone C, D or F")),
                (_, false) => return Err(fault(body.len(), "an EBCDIC digit 0xF0-0xF9 (the field is unsigned)")),
            };
            if digit > 9 {
                return Err(fault(body.len(), "a digit 0-9 in the low nibble"));
            }
            out.push(digit);
            out.negative = negative;
        }
    }
    Ok(())
}

/// Writes `digits` (exactly the field's width) as zoned decimal.
pub fn encode_zoned(digits: &Digits, charset: Charset, signed: bool, out: &mut Vec<u8>) {
    let Some((last, body)) = digits.as_bytes().split_last() else {
        return;
    };
    let negative = signed && digits.negative && !digits.is_zero();
    match charset {
        Charset::Ascii => {
            out.extend_from_slice(body);
            let d = last - b'0';
            out.push(match (signed, negative, d) {
                (false, _, _) => *last,
                (true, false, 0) => b'{',
                (true, false, d) => b'A' + d - 1,
                (true, true, 0) => b'}',
                (true, true, d) => b'J' + d - 1,
            });
        }
        Charset::Cp037 => {
            out.extend(body.iter().map(|d| 0xF0 | (d - b'0')));
            let zone = match (signed, negative) {
                (false, _) => 0xF0,
                (true, false) => 0xC0,
                (true, true) => 0xD0,
            };
            out.push(zone | (last - b'0'));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Packed decimal (COMP-3)
// ---------------------------------------------------------------------------------------

/// Bytes a packed field of `digits` digits occupies.
pub const fn packed_len(digits: usize) -> usize {
    digits / 2 + 1
}

/// Reads a packed decimal field of `digits` digits into `out`.
pub fn decode_packed(bytes: &[u8], digits: usize, signed: bool, out: &mut Digits) -> Result<(), Fault> {
    out.clear();
    let nibbles = bytes.len() * 2;
    // Nibbles before the first digit (one when the digit count is even) must be zero.
    let pad = nibbles.saturating_sub(digits + 1);
    for n in 0..nibbles {
        let byte = bytes.get(n / 2).copied().unwrap_or(0);
        let nibble = if n % 2 == 0 { byte >> 4 } else { byte & 0xF };
        let bad = |expected| Fault {
            at: n / 2,
            nibble: Some(nibble),
            expected,
        };
        if n + 1 == nibbles {
            out.negative = match (nibble, signed) {
                (0xC | 0xA | 0xE | 0xF, true) => false,
                (0xD | 0xB, true) => true,
                (0xF | 0xC, false) => false,
                (_, true) => return Err(bad("a packed sign nibble (C or F positive, D negative)")),
                (_, false) => return Err(bad("a packed sign nibble F or C (the field is unsigned)")),
            };
        } else if n < pad {
            if nibble != 0 {
                return Err(bad("a zero pad nibble"));
            }
        } else if nibble > 9 {
            return Err(bad("a packed digit nibble 0-9"));
        } else {
            out.push(nibble);
        }
    }
    Ok(())
}

/// Writes `digits` (exactly the field's digit count) as packed decimal.
pub fn encode_packed(digits: &Digits, signed: bool, out: &mut Vec<u8>) {
    let d = digits.as_bytes();
    let len = packed_len(d.len());
    let negative = signed && digits.negative && !digits.is_zero();
    let sign = match (signed, negative) {
        (false, _) => 0xF,
        (true, false) => 0xC,
        (true, true) => 0xD,
    };
    // Nibbles: pad zeros, the digits, the sign.
    let pad = len * 2 - 1 - d.len();
    let nibble = |n: usize| -> u8 {
        if n < pad {
            0
        } else if n == len * 2 - 1 {
            sign
        } else {
            d.get(n - pad).map(|b| b - b'0').unwrap_or(0)
        }
    };
    for i in 0..len {
        out.push(nibble(2 * i) << 4 | nibble(2 * i + 1));
    }
}

// ---------------------------------------------------------------------------------------
// Binary (COMP, COMP-4, BINARY), big-endian
// ---------------------------------------------------------------------------------------

/// Bytes a binary field of `digits` digits occupies (halfword, fullword, doubleword).
pub const fn binary_len(digits: usize) -> usize {
    match digits {
        0..=4 => 2,
        5..=9 => 4,
        _ => 8,
    }
}

/// Most digits a binary field may declare.
pub const BINARY_MAX_DIGITS: usize = 18;

/// Reads a big-endian binary field of `digits` digits into `out`.
pub fn decode_binary(bytes: &[u8], digits: usize, signed: bool, out: &mut Digits) -> Result<(), Fault> {
    let mut raw: u64 = 0;
    for b in bytes {
        raw = raw << 8 | u64::from(*b);
    }
    let bits = bytes.len() * 8;
    let (magnitude, negative) = if signed && bits > 0 && raw >> (bits - 1) & 1 == 1 {
        // Two's complement: the magnitude of a negative number.
        let mask = if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 };
        ((!raw & mask).wrapping_add(1) & mask, true)
    } else {
        (raw, false)
    };
    let limit = 10u64.checked_pow(digits as u32).unwrap_or(u64::MAX);
    let magnitude = if bits >= 64 && negative && magnitude == 0 {
        // i64::MIN has no positive counterpart; it is out of range for any PIC.
        u64::MAX
    } else {
        magnitude
    };
    if magnitude >= limit {
        return Err(fault(0, "a binary value within the PICTURE's digits"));
    }
    *out = Digits::from_u64(magnitude, digits, negative);
    Ok(())
}

/// Writes `digits` as a big-endian binary field of `len` bytes.
pub fn encode_binary(digits: &Digits, len: usize, signed: bool, out: &mut Vec<u8>) {
    let magnitude = digits.to_u64().unwrap_or(0);
    let negative = signed && digits.negative && magnitude != 0;
    let raw = if negative {
        (!magnitude).wrapping_add(1)
    } else {
        magnitude
    };
    let bytes = raw.to_be_bytes();
    out.extend_from_slice(bytes.get(8usize.saturating_sub(len)..).unwrap_or(&bytes));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits(text: &str) -> Digits {
        let mut d = Digits::default();
        let body = text.strip_prefix('-').unwrap_or(text);
        d.negative = body.len() != text.len();
        for b in body.bytes() {
            d.push(b - b'0');
        }
        d
    }

    #[test]
    fn zoned_overpunch_both_charsets() {
        let mut out = Vec::new();
        encode_zoned(&digits("-00012345"), Charset::Ascii, true, &mut out);
        assert_eq!(out, b"0001234N");
        out.clear();
        encode_zoned(&digits("00012340"), Charset::Ascii, true, &mut out);
        assert_eq!(out, b"0001234{");
        out.clear();
        encode_zoned(&digits("-125"), Charset::Cp037, true, &mut out);
        assert_eq!(out, [0xF1, 0xF2, 0xD5]);
        let mut d = Digits::default();
        decode_zoned(b"0001234N", Charset::Ascii, true, &mut d).unwrap();
        assert_eq!(format!("{d:?}"), "-00012345");
        assert_eq!(decode_zoned(b"00X1", Charset::Ascii, false, &mut d).unwrap_err().at, 2);
        assert_eq!(decode_zoned(b"001N", Charset::Ascii, false, &mut d).unwrap_err().at, 3);
    }

    #[test]
    fn packed_nibbles() {
        let mut out = Vec::new();
        encode_packed(&digits("-0012345"), true, &mut out);
        assert_eq!(out, [0x00, 0x12, 0x34, 0x5D]);
        out.clear();
        encode_packed(&digits("123"), false, &mut out);
        assert_eq!(out, [0x12, 0x3F]);
        let mut d = Digits::default();
        decode_packed(&[0x00, 0x12, 0x34, 0x5D], 7, true, &mut d).unwrap();
        assert_eq!(format!("{d:?}"), "-0012345");
        let f = decode_packed(&[0x01, 0x2A, 0x3C], 5, true, &mut d).unwrap_err();
        assert_eq!((f.at, f.nibble), (1, Some(0xA)));
        let f = decode_packed(&[0x10, 0x12, 0x34, 0x5C], 6, true, &mut d).unwrap_err();
        assert_eq!((f.at, f.nibble), (0, Some(0x1)));
        let f = decode_packed(&[0x12, 0x3D], 3, false, &mut d).unwrap_err();
        assert_eq!((f.at, f.nibble), (1, Some(0xD)));
    }

    #[test]
    fn binary_twos_complement() {
        let mut out = Vec::new();
        encode_binary(&digits("-0042"), 2, true, &mut out);
        assert_eq!(out, [0xFF, 0xD6]);
        let mut d = Digits::default();
        decode_binary(&[0xFF, 0xD6], 4, true, &mut d).unwrap();
        assert_eq!(format!("{d:?}"), "-0042");
        assert!(decode_binary(&[0x27, 0x10], 4, false, &mut d).is_err());
        decode_binary(&[0x27, 0x0F], 4, false, &mut d).unwrap();
        assert_eq!(format!("{d:?}"), "9999");
    }
}
