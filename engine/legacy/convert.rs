//! Field conversions between a legacy value and its JSON form: decimal amounts with ISO 4217
//! exponents, legacy date formats to ISO 8601, code tables and trimming.
//!
//! Amounts are digit strings and integers all the way through: a float never holds money.
//! Every conversion error says where in the legacy text it went wrong (`ConvError::at`), so
//! the caller can show the offending bytes and nothing else.

use std::fmt::Write as _;

/// Why a legacy text or a JSON value could not be converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvError {
    /// Byte index of the first offending byte in the text.
    pub at: usize,
    /// How many bytes offend (at least 1, unless the text is empty).
    pub len: usize,
    pub expected: String,
}

impl ConvError {
    fn new(at: usize, len: usize, expected: impl Into<String>) -> ConvError {
        ConvError {
            at,
            len,
            expected: expected.into(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// ISO 4217
// ---------------------------------------------------------------------------------------

/// Active ISO 4217 currency codes and their minor-unit exponents (List One, 2024). Codes
/// not listed here are refused: an amount in an unknown currency cannot be checked.
const CURRENCIES: &[(&str, u8)] = &[
    ("AED", 2),
    ("AFN", 2),
    ("ALL", 2),
    ("AMD", 2),
    ("ANG", 2),
    ("AOA", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("AWG", 2),
    ("AZN", 2),
    ("BAM", 2),
    ("BBD", 2),
    ("BDT", 2),
    ("BGN", 2),
    ("BHD", 3),
    ("BIF", 0),
    ("BMD", 2),
    ("BND", 2),
    ("BOB", 2),
    ("BOV", 2),
    ("BRL", 2),
    ("BSD", 2),
    ("BTN", 2),
    ("BWP", 2),
    ("BYN", 2),
    ("BZD", 2),
    ("CAD", 2),
    ("CDF", 2),
    ("CHE", 2),
    ("CHF", 2),
    ("CHW", 2),
    ("CLF", 4),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("COU", 2),
    ("CRC", 2),
    ("CUP", 2),
    ("CVE", 2),
    ("CZK", 2),
    ("DJF", 0),
    ("DKK", 2),
    ("DOP", 2),
    ("DZD", 2),
    ("EGP", 2),
    ("ERN", 2),
    ("ETB", 2),
    ("EUR", 2),
    ("FJD", 2),
    ("FKP", 2),
    ("GBP", 2),
    ("GEL", 2),
    ("GHS", 2),
    ("GIP", 2),
    ("GMD", 2),
    ("GNF", 0),
    ("GTQ", 2),
    ("GYD", 2),
    ("HKD", 2),
    ("HNL", 2),
    ("HTG", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("IQD", 3),
    ("IRR", 2),
    ("ISK", 0),
    ("JMD", 2),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KGS", 2),
    ("KHR", 2),
    ("KMF", 0),
    ("KPW", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("KYD", 2),
    ("KZT", 2),
    ("LAK", 2),
    ("LBP", 2),
    ("LKR", 2),
    ("LRD", 2),
    ("LSL", 2),
    ("LYD", 3),
    ("MAD", 2),
    ("MDL", 2),
    ("MGA", 2),
    ("MKD", 2),
    ("MMK", 2),
    ("MNT", 2),
    ("MOP", 2),
    ("MRU", 2),
    ("MUR", 2),
    ("MVR", 2),
    ("MWK", 2),
    ("MXN", 2),
    ("MXV", 2),
    ("MYR", 2),
    ("MZN", 2),
    ("NAD", 2),
    ("NGN", 2),
    ("NIO", 2),
    ("NOK", 2),
    ("NPR", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PAB", 2),
    ("PEN", 2),
    ("PGK", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("RUB", 2),
    ("RWF", 0),
    ("SAR", 2),
    ("SBD", 2),
    ("SCR", 2),
    ("SDG", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("SHP", 2),
    ("SLE", 2),
    ("SOS", 2),
    ("SRD", 2),
    ("SSP", 2),
    ("STN", 2),
    ("SVC", 2),
    ("SYP", 2),
    ("SZL", 2),
    ("THB", 2),
    ("TJS", 2),
    ("TMT", 2),
    ("TND", 3),
    ("TOP", 2),
    ("TRY", 2),
    ("TTD", 2),
    ("TWD", 2),
    ("TZS", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("USN", 2),
    ("UYI", 0),
    ("UYU", 2),
    ("UYW", 4),
    ("UZS", 2),
    ("VED", 2),
    ("VES", 2),
    ("VND", 0),
    ("VUV", 0),
    ("WST", 2),
    ("XAF", 0),
    ("XCD", 2),
    ("XCG", 2),
    ("XOF", 0),
    ("XPF", 0),
    ("YER", 2),
    ("ZAR", 2),
    ("ZMW", 2),
    ("ZWG", 2),
];

/// A currency code as a number, for lookups without string comparisons.
const fn code_key(code: &[u8]) -> u32 {
    if code.len() != 3 {
        return 0;
    }
    (code[0] as u32) << 16 | (code[1] as u32) << 8 | code[2] as u32
}

/// `CURRENCIES` keyed by `code_key`, in the same (sorted) order.
const CURRENCY_KEYS: [(u32, u8); CURRENCIES.len()] = {
    let mut out = [(0u32, 0u8); CURRENCIES.len()];
    let mut i = 0;
    while i < CURRENCIES.len() {
        out[i] = (code_key(CURRENCIES[i].0.as_bytes()), CURRENCIES[i].1);
        i += 1;
    }
    out
};

/// The number of decimal places of an ISO 4217 currency, or `None` for an unknown code.
pub fn currency_exponent(code: &str) -> Option<u8> {
    let key = code_key(code.as_bytes());
    CURRENCY_KEYS
        .binary_search_by_key(&key, |(k, _)| *k)
        .ok()
        .and_then(|i| CURRENCY_KEYS.get(i))
        .map(|(_, e)| *e)
}

// ---------------------------------------------------------------------------------------
// Decimals
// ---------------------------------------------------------------------------------------

/// A decimal number read from text: sign, integer digits and fraction digits, each as
/// ASCII digits without leading (integer) zeros. Never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecimalText<'a> {
    pub negative: bool,
    pub int: &'a str,
    pub frac: &'a str,
}

impl<'a> DecimalText<'a> {
    /// Parses `-?[0-9]+(\.[0-9]+)?`.
    pub fn parse(text: &'a str) -> Result<DecimalText<'a>, ConvError> {
        let (negative, body, start) = match text.strip_prefix('-') {
            Some(rest) => (true, rest, 1),
            None => (false, text, 0),
        };
        let (int, frac) = match body.split_once('.') {
            Some((int, frac)) => (int, frac),
            None => (body, ""),
        };
        let expected = "a decimal number such as 1250.00";
        if int.is_empty() {
            return Err(ConvError::new(start, 1.min(text.len() - start), expected));
        }
        if let Some(i) = int.bytes().position(|b| !b.is_ascii_digit()) {
            return Err(ConvError::new(start + i, 1, expected));
        }
        if body.len() > int.len() && frac.is_empty() {
            return Err(ConvError::new(start + int.len(), 1, expected));
        }
        if let Some(i) = frac.bytes().position(|b| !b.is_ascii_digit()) {
            return Err(ConvError::new(start + int.len() + 1 + i, 1, expected));
        }
        let trimmed = int.trim_start_matches('0');
        Ok(DecimalText {
            negative,
            int: trimmed,
            frac,
        })
    }

    /// The fraction without trailing zeros: what actually needs decimal places.
    pub fn significant_frac(&self) -> &'a str {
        self.frac.trim_end_matches('0')
    }

    pub fn is_zero(&self) -> bool {
        self.int.is_empty() && self.significant_frac().is_empty()
    }
}

/// Writes a decimal with exactly `scale` fraction digits, from digits whose last `scale`
/// are the fraction. Leading zeros of the integer part are dropped (one is kept).
pub fn write_decimal(out: &mut String, negative: bool, digits: &[u8], scale: usize) {
    let split = digits.len().saturating_sub(scale);
    let (int, frac) = digits.split_at(split);
    let int = match int.iter().position(|d| *d != b'0') {
        Some(first) => &int[first..],
        None => &[][..],
    };
    let zero = int.is_empty() && frac.iter().all(|d| *d == b'0');
    if negative && !zero {
        out.push('-');
    }
    if int.is_empty() {
        out.push('0');
    } else {
        out.extend(int.iter().map(|d| char::from(*d)));
    }
    if scale > 0 {
        out.push('.');
        for _ in frac.len()..scale {
            out.push('0');
        }
        out.extend(frac.iter().map(|d| char::from(*d)));
    }
}

/// A decimal as an integer mantissa and a scale, for sums (ISO 20022 `CtrlSum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sum {
    mantissa: i128,
    scale: u32,
}

/// Sums larger than this many digits are refused rather than risk overflow.
const MAX_SUM_DIGITS: usize = 30;

impl Sum {
    /// Adds a decimal; `None` if it has too many digits to sum safely.
    pub fn add(&mut self, value: &DecimalText<'_>) -> Option<()> {
        if value.int.len() + value.frac.len() > MAX_SUM_DIGITS {
            return None;
        }
        let scale = u32::try_from(value.frac.len()).ok()?;
        if scale > self.scale {
            self.mantissa = self.mantissa.checked_mul(10i128.checked_pow(scale - self.scale)?)?;
            self.scale = scale;
        }
        let mut m: i128 = 0;
        for d in value.int.bytes().chain(value.frac.bytes()) {
            m = m.checked_mul(10)?.checked_add(i128::from(d - b'0'))?;
        }
        m = m.checked_mul(10i128.checked_pow(self.scale - scale)?)?;
        if value.negative {
            m = -m;
        }
        self.mantissa = self.mantissa.checked_add(m)?;
        Some(())
    }

    /// The sum as decimal text, with the largest scale of its terms.
    pub fn render(&self) -> String {
        let digits = self.mantissa.unsigned_abs().to_string();
        let mut out = String::with_capacity(digits.len() + 2);
        write_decimal(&mut out, self.mantissa < 0, digits.as_bytes(), self.scale as usize);
        out
    }
}

/// Checks a decimal's places against a currency and re-renders it with exactly the
/// currency's places: "1250.5" GBP -> "1250.50", "100.0" JPY -> "100", "100.5" JPY -> error.
pub fn amount_for_currency(text: &str, exponent: u8, code: &str) -> Result<String, ConvError> {
    let mut out = String::new();
    amount_for_currency_into(text, exponent, code, &mut out)?;
    Ok(out)
}

/// `amount_for_currency`, appended to `out`.
pub fn amount_for_currency_into(text: &str, exponent: u8, code: &str, out: &mut String) -> Result<(), ConvError> {
    let parsed = DecimalText::parse(text)?;
    let places = usize::from(exponent);
    let significant = parsed.significant_frac();
    if significant.len() > places {
        let at = text.len() - (parsed.frac.len() - places);
        return Err(ConvError::new(
            at,
            text.len() - at,
            match exponent {
                0 => format!("a whole amount: {code} has no decimal places"),
                1 => format!("at most 1 decimal place for {code}"),
                e => format!("at most {e} decimal places for {code}"),
            },
        ));
    }
    normalize_decimal_into(&parsed, Some(places), out);
    Ok(())
}

/// A parsed decimal as canonical text: no leading zeros, and `places` fraction digits
/// (padded with zeros; the caller has checked no significant digit is dropped), or its
/// own fraction when `None`. Appended to `out`.
pub fn normalize_decimal_into(d: &DecimalText<'_>, places: Option<usize>, out: &mut String) {
    let frac = match places {
        Some(p) => &d.frac[..p.min(d.frac.len())],
        None => d.frac,
    };
    let places = places.unwrap_or(d.frac.len());
    let zero = d.int.is_empty() && frac.bytes().all(|b| b == b'0');
    out.reserve(d.int.len() + places + 3);
    if d.negative && !zero {
        out.push('-');
    }
    out.push_str(if d.int.is_empty() { "0" } else { d.int });
    if places > 0 {
        out.push('.');
        out.push_str(frac);
        for _ in frac.len()..places {
            out.push('0');
        }
    }
}

// ---------------------------------------------------------------------------------------
// Dates
// ---------------------------------------------------------------------------------------

/// A legacy date layout. Two-digit years are windowed: 00-49 are 20xx, 50-99 are 19xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateFormat {
    /// 20260314
    Yyyymmdd,
    /// 260314
    Yymmdd,
    /// 140326
    Ddmmyy,
    /// 14032026
    Ddmmyyyy,
    /// Julian: 26073 (year and day of year)
    Yyddd,
    /// Julian: 2026073
    Yyyyddd,
    /// IBM i: century digit (0 = 19xx, 1 = 20xx) and YYMMDD, 1260314
    Cyymmdd,
    /// 2026-03-14
    Iso,
}

impl DateFormat {
    pub const NAMES: [&'static str; 8] = [
        "YYYYMMDD", "YYMMDD", "DDMMYY", "DDMMYYYY", "YYDDD", "YYYYDDD", "CYYMMDD", "ISO",
    ];

    pub fn parse(name: &str) -> Option<DateFormat> {
        Some(match name {
            "YYYYMMDD" => DateFormat::Yyyymmdd,
            "YYMMDD" => DateFormat::Yymmdd,
            "DDMMYY" => DateFormat::Ddmmyy,
            "DDMMYYYY" => DateFormat::Ddmmyyyy,
            "YYDDD" => DateFormat::Yyddd,
            "YYYYDDD" => DateFormat::Yyyyddd,
            "CYYMMDD" => DateFormat::Cyymmdd,
            "ISO" => DateFormat::Iso,
            _ => return None,
        })
    }

    /// How many characters the legacy text has.
    pub fn width(self) -> usize {
        match self {
            DateFormat::Yyyymmdd | DateFormat::Ddmmyyyy => 8,
            DateFormat::Yymmdd | DateFormat::Ddmmyy => 6,
            DateFormat::Yyddd => 5,
            DateFormat::Yyyyddd | DateFormat::Cyymmdd => 7,
            DateFormat::Iso => 10,
        }
    }
}

/// A calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

fn is_leap(year: u16) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

const CUMULATIVE_DAYS: [u16; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];

fn day_of_year(date: Date) -> u16 {
    let before = CUMULATIVE_DAYS
        .get(usize::from(date.month.saturating_sub(1)))
        .copied()
        .unwrap_or(0);
    let leap = u16::from(date.month > 2 && is_leap(date.year));
    before + leap + u16::from(date.day)
}

fn from_day_of_year(year: u16, ordinal: u16) -> Option<Date> {
    let mut remaining = ordinal;
    for month in 1..=12u8 {
        let len = u16::from(days_in_month(year, month));
        if remaining <= len {
            return u8::try_from(remaining)
                .ok()
                .filter(|d| *d > 0)
                .map(|day| Date { year, month, day });
        }
        remaining -= len;
    }
    None
}

fn window(yy: u16) -> u16 {
    if yy < 50 {
        2000 + yy
    } else {
        1900 + yy
    }
}

/// Reads the number in `text[range]`, or says which bytes are not digits.
fn number(text: &str, at: usize, len: usize, what: &'static str, format: DateFormat) -> Result<u16, ConvError> {
    // The message is only built on failure: dates are decoded on the hot path.
    let fail =
        |at: usize, len: usize| ConvError::new(at, len, format!("{what} ({})", DateFormat::NAMES[format as usize]));
    let part = text.get(at..at + len).ok_or_else(|| fail(at, len))?;
    let mut value: u16 = 0;
    for (i, b) in part.bytes().enumerate() {
        if !b.is_ascii_digit() {
            return Err(fail(at + i, 1));
        }
        value = value * 10 + u16::from(b - b'0');
    }
    Ok(value)
}

/// Whether a legacy date is "no date": all zeros or all spaces, as cores write them.
pub fn is_empty_date(text: &str) -> bool {
    text.bytes().all(|b| b == b'0') || text.bytes().all(|b| b == b' ')
}

/// Parses a legacy date.
pub fn parse_date(text: &str, format: DateFormat) -> Result<Date, ConvError> {
    let expected = |what: &str| format!("{what} ({})", DateFormat::NAMES[format as usize]);
    if text.len() != format.width() {
        return Err(ConvError::new(0, text.len(), expected("a date")));
    }
    let (year, year_at, year_len, month_day) = match format {
        DateFormat::Yyyymmdd => (number(text, 0, 4, "a year", format)?, 0, 4, Some((4, 6))),
        DateFormat::Yymmdd => (window(number(text, 0, 2, "a year", format)?), 0, 2, Some((2, 4))),
        DateFormat::Ddmmyy => (window(number(text, 4, 2, "a year", format)?), 4, 2, Some((2, 0))),
        DateFormat::Ddmmyyyy => (number(text, 4, 4, "a year", format)?, 4, 4, Some((2, 0))),
        DateFormat::Yyddd => (window(number(text, 0, 2, "a year", format)?), 0, 2, None),
        DateFormat::Yyyyddd => (number(text, 0, 4, "a year", format)?, 0, 4, None),
        DateFormat::Cyymmdd => {
            let century = number(text, 0, 1, "a century digit 0 or 1", format)?;
            if century > 1 {
                return Err(ConvError::new(0, 1, expected("a century digit 0 or 1")));
            }
            (
                1900 + 100 * century + number(text, 1, 2, "a year", format)?,
                0,
                3,
                Some((3, 5)),
            )
        }
        DateFormat::Iso => {
            for at in [4, 7] {
                if text.as_bytes().get(at) != Some(&b'-') {
                    return Err(ConvError::new(at, 1, expected("a date")));
                }
            }
            (number(text, 0, 4, "a year", format)?, 0, 4, Some((5, 8)))
        }
    };
    if year == 0 {
        return Err(ConvError::new(year_at, year_len, expected("a year after 0000")));
    }
    match month_day {
        Some((month_at, day_at)) => {
            let month = number(text, month_at, 2, "a month", format)?;
            if !(1..=12).contains(&month) {
                return Err(ConvError::new(month_at, 2, expected("a month 01-12")));
            }
            let month = month as u8;
            let day = number(text, day_at, 2, "a day", format)?;
            if day == 0 || day > u16::from(days_in_month(year, month)) {
                return Err(ConvError::new(day_at, 2, expected("a day of that month")));
            }
            Ok(Date {
                year,
                month,
                day: day as u8,
            })
        }
        None => {
            let ordinal_at = year_len;
            let ordinal = number(text, ordinal_at, 3, "a day of the year", format)?;
            from_day_of_year(year, ordinal)
                .ok_or_else(|| ConvError::new(ordinal_at, 3, expected("a day of the year 001-365 (366 in leap years)")))
        }
    }
}

/// Writes a date in a legacy format; `None` if the format cannot hold its year.
pub fn format_date(date: Date, format: DateFormat) -> Option<String> {
    let Date { year, month, day } = date;
    let yy = year % 100;
    let windowed = window(yy) == year;
    let mut out = String::with_capacity(10);
    let ok = match format {
        DateFormat::Yyyymmdd => write!(out, "{year:04}{month:02}{day:02}").is_ok(),
        DateFormat::Yymmdd => windowed && write!(out, "{yy:02}{month:02}{day:02}").is_ok(),
        DateFormat::Ddmmyy => windowed && write!(out, "{day:02}{month:02}{yy:02}").is_ok(),
        DateFormat::Ddmmyyyy => write!(out, "{day:02}{month:02}{year:04}").is_ok(),
        DateFormat::Yyddd => windowed && write!(out, "{yy:02}{:03}", day_of_year(date)).is_ok(),
        DateFormat::Yyyyddd => write!(out, "{year:04}{:03}", day_of_year(date)).is_ok(),
        DateFormat::Cyymmdd => {
            (1900..2100).contains(&year) && write!(out, "{}{yy:02}{month:02}{day:02}", (year - 1900) / 100).is_ok()
        }
        DateFormat::Iso => write!(out, "{year:04}-{month:02}-{day:02}").is_ok(),
    };
    (ok && year <= 9999).then_some(out)
}

/// The JSON form of a date, appended to `out`: ISO 8601 date, or midnight UTC as a date-time.
pub fn iso_date_into(date: Date, with_time: bool, out: &mut String) {
    let digit = |n: u16| char::from(b'0' + (n % 10) as u8);
    let y = date.year;
    for n in [y / 1000, y / 100, y / 10, y] {
        out.push(digit(n));
    }
    out.push('-');
    out.push(digit(u16::from(date.month) / 10));
    out.push(digit(u16::from(date.month)));
    out.push('-');
    out.push(digit(u16::from(date.day) / 10));
    out.push(digit(u16::from(date.day)));
    if with_time {
        out.push_str("T00:00:00Z");
    }
}

/// Reads the date of an ISO 8601 date or date-time (its time is not kept).
pub fn parse_iso_date(text: &str, with_time: bool) -> Result<Date, ConvError> {
    if with_time {
        let (date, _) = text
            .split_once('T')
            .ok_or_else(|| ConvError::new(0, text.len(), "an ISO 8601 date-time"))?;
        return parse_date(date, DateFormat::Iso);
    }
    parse_date(text, DateFormat::Iso)
}

// ---------------------------------------------------------------------------------------
// Code tables and trimming
// ---------------------------------------------------------------------------------------

/// A code table: legacy code <-> JSON value, in declaration order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CodeTable {
    pub entries: Vec<(Box<str>, Box<str>)>,
}

impl CodeTable {
    pub fn to_json(&self, code: &str) -> Option<&str> {
        self.entries.iter().find(|(c, _)| &**c == code).map(|(_, v)| &**v)
    }

    /// The first legacy code for a JSON value.
    pub fn to_legacy(&self, value: &str) -> Option<&str> {
        self.entries.iter().find(|(_, v)| &**v == value).map(|(c, _)| &**c)
    }

    /// The legacy codes, for error messages.
    pub fn codes(&self) -> String {
        let list: Vec<&str> = self.entries.iter().map(|(c, _)| &**c).collect();
        list.join(", ")
    }
}

/// Which ends of a text field lose their spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trim {
    None,
    Left,
    Right,
    Both,
}

impl Trim {
    pub fn apply(self, text: &str) -> &str {
        // By byte rather than by char, as this runs for every text field: a space is ASCII,
        // so the cut is always at a char boundary.
        let bytes = text.as_bytes();
        let start = match self {
            Trim::Left | Trim::Both => bytes.iter().position(|b| *b != b' ').unwrap_or(bytes.len()),
            Trim::None | Trim::Right => 0,
        };
        let end = match self {
            Trim::Right | Trim::Both => bytes.iter().rposition(|b| *b != b' ').map_or(start, |i| i + 1),
            Trim::None | Trim::Left => bytes.len(),
        };
        text.get(start..end.max(start)).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_table_is_sorted_and_knows_the_odd_exponents() {
        assert!(CURRENCIES.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(currency_exponent("GBP"), Some(2));
        assert_eq!(currency_exponent("JPY"), Some(0));
        assert_eq!(currency_exponent("KWD"), Some(3));
        assert_eq!(currency_exponent("CLF"), Some(4));
        assert_eq!(currency_exponent("XXX"), None);
    }

    #[test]
    fn amounts_take_their_currency_places() {
        assert_eq!(amount_for_currency("1250.5", 2, "GBP").unwrap(), "1250.50");
        assert_eq!(amount_for_currency("100.00", 0, "JPY").unwrap(), "100");
        assert_eq!(amount_for_currency("0.125", 3, "KWD").unwrap(), "0.125");
        let err = amount_for_currency("100.5", 0, "JPY").unwrap_err();
        assert_eq!((err.at, err.len), (4, 1));
        assert!(err.expected.contains("JPY has no decimal places"));
        assert!(amount_for_currency("1.2.3", 2, "GBP").is_err());
        assert!(amount_for_currency("1e5", 2, "GBP").is_err());
    }

    #[test]
    fn trims_cut_spaces_only() {
        for (trim, expected) in [
            (Trim::None, " a b "),
            (Trim::Left, "a b "),
            (Trim::Right, " a b"),
            (Trim::Both, "a b"),
        ] {
            assert_eq!(trim.apply(" a b "), expected);
            assert_eq!(trim.apply("   "), if trim == Trim::None { "   " } else { "" });
        }
        assert_eq!(Trim::Both.apply(" é\t "), "é\t");
    }

    #[test]
    fn sums_keep_every_place() {
        let mut sum = Sum::default();
        for t in ["1250.00", "10.5", "0.125", "-1"] {
            sum.add(&DecimalText::parse(t).unwrap()).unwrap();
        }
        assert_eq!(sum.render(), "1259.625");
    }

    #[test]
    fn dates_in_every_format() {
        let d = Date {
            year: 2026,
            month: 3,
            day: 14,
        };
        for (text, format) in [
            ("20260314", DateFormat::Yyyymmdd),
            ("260314", DateFormat::Yymmdd),
            ("140326", DateFormat::Ddmmyy),
            ("14032026", DateFormat::Ddmmyyyy),
            ("26073", DateFormat::Yyddd),
            ("2026073", DateFormat::Yyyyddd),
            ("1260314", DateFormat::Cyymmdd),
            ("2026-03-14", DateFormat::Iso),
        ] {
            assert_eq!(parse_date(text, format).unwrap(), d, "{text}");
            assert_eq!(format_date(d, format).unwrap(), text);
        }
        assert_eq!(parse_date("2024366", DateFormat::Yyyyddd).unwrap().day, 31);
        let err = parse_date("2025366", DateFormat::Yyyyddd).unwrap_err();
        assert_eq!((err.at, err.len), (4, 3));
        let err = parse_date("20261301", DateFormat::Yyyymmdd).unwrap_err();
        assert_eq!((err.at, err.len), (4, 2));
        assert!(parse_date("20250229", DateFormat::Yyyymmdd).is_err());
        assert_eq!(parse_date("991231", DateFormat::Yymmdd).unwrap().year, 1999);
        assert_eq!(
            format_date(
                Date {
                    year: 1949,
                    month: 1,
                    day: 1
                },
                DateFormat::Yymmdd
            ),
            None
        );
    }
}
