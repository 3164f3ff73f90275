//! COBOL PICTURE strings, as copybooks write them: `X(8)`, `XXX`, `9(6)`, `S9(13)V99`,
//! `S9(7)V9(2)`. Editing symbols (Z, comma, CR, ...) and scaling (P) are not supported:
//! records on the wire carry plain data.

/// What a PICTURE declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pic {
    /// `X(n)` or `A(n)`: n characters.
    Alnum { len: usize },
    /// `S9(n)V9(m)`: n + m digits, m of them after the implied decimal point.
    Numeric { signed: bool, digits: usize, scale: usize },
}

/// Most digits a numeric field may have (COBOL's extended limit).
pub const MAX_DIGITS: usize = 31;
/// Most characters an alphanumeric field may have.
pub const MAX_LEN: usize = 65_535;

/// Why a PICTURE string is refused, with the character index it went wrong at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PicError {
    pub at: usize,
    pub message: String,
}

fn err(at: usize, message: impl Into<String>) -> PicError {
    PicError {
        at,
        message: message.into(),
    }
}

/// Parses a PICTURE string (case-insensitive).
pub fn parse(text: &str) -> Result<Pic, PicError> {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return Err(err(0, "the PICTURE string is empty"));
    }
    let mut i = 0;
    let mut signed = false;
    let mut alnum = 0usize;
    let mut int_digits = 0usize;
    let mut frac_digits = 0usize;
    let mut seen_v = false;
    while i < bytes.len() {
        let symbol = bytes[i].to_ascii_uppercase();
        let at = i;
        i += 1;
        // An optional repeat count: `(n)`.
        let mut count = 1usize;
        if bytes.get(i) == Some(&b'(') {
            let close = bytes[i..]
                .iter()
                .position(|b| *b == b')')
                .map(|p| i + p)
                .ok_or_else(|| err(i, "`(` is not closed"))?;
            let inner = &text[i + 1..close];
            count = inner
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| err(i + 1, format!("`({inner})` is not a repeat count of at least 1")))?;
            i = close + 1;
        }
        match symbol {
            b'S' => {
                if at != 0 || count != 1 {
                    return Err(err(at, "`S` (signed) may only come first, once"));
                }
                signed = true;
            }
            b'X' | b'A' => alnum = alnum.saturating_add(count),
            b'9' if seen_v => frac_digits = frac_digits.saturating_add(count),
            b'9' => int_digits = int_digits.saturating_add(count),
            b'V' => {
                if seen_v || count != 1 {
                    return Err(err(at, "`V` (the implied decimal point) may appear once"));
                }
                seen_v = true;
            }
            b'P' => return Err(err(at, "scaling positions (`P`) are not supported")),
            b'Z' | b'*' | b'+' | b'-' | b',' | b'.' | b'B' | b'0' | b'/' | b'$' | b'C' | b'D' => {
                return Err(err(
                    at,
                    format!(
                        "`{}` is an editing symbol; records carry unedited data",
                        char::from(bytes[at])
                    ),
                ))
            }
            _ => return Err(err(at, format!("`{}` is not a PICTURE symbol", char::from(bytes[at])))),
        }
    }
    let digits = int_digits.saturating_add(frac_digits);
    if alnum > 0 {
        if digits > 0 || signed || seen_v {
            return Err(err(
                0,
                "a PICTURE is either alphanumeric (X, A) or numeric (S, 9, V), not both",
            ));
        }
        if alnum > MAX_LEN {
            return Err(err(0, format!("at most {MAX_LEN} characters")));
        }
        return Ok(Pic::Alnum { len: alnum });
    }
    if digits == 0 {
        return Err(err(0, "a numeric PICTURE needs at least one `9`"));
    }
    if digits > MAX_DIGITS {
        return Err(err(0, format!("{digits} digits; at most {MAX_DIGITS} are supported")));
    }
    Ok(Pic::Numeric {
        signed,
        digits,
        scale: frac_digits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copybook_pictures() {
        assert_eq!(parse("X(8)").unwrap(), Pic::Alnum { len: 8 });
        assert_eq!(parse("xxx").unwrap(), Pic::Alnum { len: 3 });
        assert_eq!(parse("X(2)X").unwrap(), Pic::Alnum { len: 3 });
        assert_eq!(
            parse("S9(13)V99").unwrap(),
            Pic::Numeric {
                signed: true,
                digits: 15,
                scale: 2
            }
        );
        assert_eq!(
            parse("9(6)").unwrap(),
            Pic::Numeric {
                signed: false,
                digits: 6,
                scale: 0
            }
        );
        assert_eq!(
            parse("SV9(3)").unwrap(),
            Pic::Numeric {
                signed: true,
                digits: 3,
                scale: 3
            }
        );
    }

    #[test]
    fn bad_pictures_say_where() {
        assert_eq!(parse("9(13").unwrap_err().at, 1);
        assert_eq!(parse("X9").unwrap_err().at, 0);
        assert_eq!(parse("9(0)").unwrap_err().at, 2);
        assert_eq!(parse("9V9V9").unwrap_err().at, 3);
        assert_eq!(parse("Z(5)9").unwrap_err().at, 0);
        assert_eq!(parse("99S").unwrap_err().at, 2);
        assert!(parse("9(32)").is_err());
        assert!(parse("").is_err());
        assert!(parse("S").is_err());
    }
}
