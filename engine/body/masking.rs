//! Masking: what a partner's profile (policies/masking.toml) does to a response field it
//! may see, and the card-number safety net for partners without a PCI DSS attestation.
//!
//! Rules are resolved against the route's response schema at compile time and attached to
//! the projection plan (`Projection::rule`), so a request evaluates no JSONPath: it walks
//! the plan once, and each field meets at most one rule.

use super::json::padded_word;
use hmac::digest::KeyInit;
use hmac::Mac;
use ring::aead;
use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

/// One compiled rule, attached to the projection node its JSONPath selected.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub action: Action,
    /// Scope index: the rule is skipped when the caller's token holds this scope.
    pub unless_scope: Option<usize>,
    /// Where the rule came from, for the exposure report: profile and rule number (from 1).
    pub origin: (std::sync::Arc<str>, usize),
}

/// What a rule does to the field it selects.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Remove,
    /// Digits beyond the first `first` and last `last` become `*` (at most 6 and 4).
    Pan {
        first: usize,
        last: usize,
    },
    /// Characters beyond the first `first` and last `last` become `*`.
    Partial {
        first: usize,
        last: usize,
    },
    /// A keyed digest, stable per partner: joinable across calls, not reversible.
    Hash,
    /// A format-preserving card token the gateway can reverse.
    Tokenize,
    /// Replaced with this value, held as the JSON text written in its place.
    Redact(Box<str>),
    /// Passed unchanged: the profile allows the field explicitly.
    Keep,
}

impl Action {
    /// Whether the action replaces the value with something that carries no card number,
    /// so the PAN mask and the safety net need not look at it again.
    pub fn neutralises(&self) -> bool {
        matches!(
            self,
            Action::Remove | Action::Hash | Action::Tokenize | Action::Redact(_)
        )
    }

    /// How the exposure report describes the action.
    pub fn describe(&self) -> String {
        match self {
            Action::Remove => "removed".into(),
            Action::Pan { first, last } => format!("masked: first {first}, last {last} digits shown"),
            Action::Partial { first, last } => format!("partially masked: first {first}, last {last} characters shown"),
            Action::Hash => "keyed hash (stable per partner, not reversible)".into(),
            Action::Tokenize => "tokenized (format-preserving, reversible only by the gateway)".into(),
            Action::Redact(value) => format!("redacted to {value}"),
            Action::Keep => "shown (explicitly allowed)".into(),
        }
    }
}

impl Rule {
    /// Whether the rule applies to a caller holding `scopes` (sorted scope indices).
    pub fn applies(&self, scopes: &[usize]) -> bool {
        self.unless_scope.is_none_or(|s| scopes.binary_search(&s).is_err())
    }
}

/// A partner's masking key, derived from the gateway's key so hashes and tokens differ
/// between partners: two partners cannot join their data on them. Held as HMAC-SHA-256
/// with the key's two padded blocks already hashed, so each value costs a clone and two
/// compressions (ring's HMAC took about 1.7 times as long for a short value).
#[derive(Clone)]
pub struct PartnerKey(HmacSha256);

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// HMAC-SHA-256 under a 32-byte key. A key shorter than the hash's 64-byte block is padded
/// with zeros (RFC 2104), which is what the block-sized constructor takes.
fn keyed(key: &[u8; 32]) -> HmacSha256 {
    let mut block = [0u8; 64];
    if let Some(head) = block.get_mut(..32) {
        head.copy_from_slice(key);
    }
    <HmacSha256 as KeyInit>::new(&block.into())
}

impl fmt::Debug for PartnerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PartnerKey(..)")
    }
}

impl PartnerKey {
    /// Derives the key for `partner` from the gateway's 32-byte masking key.
    pub fn derive(master: &[u8; 32], partner: &str) -> PartnerKey {
        let derived = keyed(master)
            .chain_update(format!("tollgate/masking/v1/{partner}"))
            .finalize()
            .into_bytes();
        PartnerKey(keyed(&derived.into()))
    }

    /// HMAC of `purpose`, a zero byte, `text` and `counter` (big-endian).
    fn tag(&self, purpose: &str, text: &str, counter: u32) -> [u8; 32] {
        // Updated in place: each `chain_update` would move the whole state.
        let mut mac = self.0.clone();
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(text.as_bytes());
        mac.update(&counter.to_be_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Seals a card number for the shared token store: AES-256-GCM under a key derived
    /// from this partner's, bound to the token it answers to, so a sealed number copied to
    /// another token or partner does not open.
    pub fn seal(&self, token: &str, number: &str) -> Option<Vec<u8>> {
        use ring::rand::SecureRandom;
        let key = self.sealing_key()?;
        let mut nonce = [0u8; aead::NONCE_LEN];
        ring::rand::SystemRandom::new().fill(&mut nonce).ok()?;
        let mut sealed = number.as_bytes().to_vec();
        key.seal_in_place_append_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(token.as_bytes()),
            &mut sealed,
        )
        .ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Some(out)
    }

    /// Opens what `seal` made for `token`; `None` if it was made for another token, another
    /// partner or under another key, or was altered.
    pub fn open(&self, token: &str, sealed: &[u8]) -> Option<String> {
        let key = self.sealing_key()?;
        let (nonce, rest) = sealed.split_at_checked(aead::NONCE_LEN)?;
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buffer = rest.to_vec();
        let plain = key
            .open_in_place(nonce, aead::Aad::from(token.as_bytes()), &mut buffer)
            .ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }

    fn sealing_key(&self) -> Option<aead::LessSafeKey> {
        let tag = self.tag("vault-seal", "", 0);
        aead::UnboundKey::new(&aead::AES_256_GCM, &tag)
            .ok()
            .map(aead::LessSafeKey::new)
    }

    /// The keyed hash of `text`: 128 bits, base64url.
    pub fn hash(&self, text: &str) -> String {
        let mut encoded = [0u8; HASH_LEN];
        let written = self.hash_into(text, &mut encoded);
        String::from_utf8_lossy(written).into_owned()
    }

    /// `hash` into a buffer, without allocating: this runs for every hashed field of every
    /// response.
    pub fn hash_into<'b>(&self, text: &str, encoded: &'b mut [u8; HASH_LEN]) -> &'b [u8] {
        use base64::Engine;
        let tag = self.tag("hash", text, 0);
        let written = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode_slice(tag.get(..16).unwrap_or_default(), encoded)
            .unwrap_or(0);
        encoded.get(..written).unwrap_or_default()
    }
}

/// The length of a keyed hash: 16 bytes in unpadded base64url.
pub const HASH_LEN: usize = 22;

/// Keeps the first `first` and last `last` characters; the rest become `*`. A value too
/// short to hide anything that way is hidden whole.
pub fn partial(text: &str, first: usize, last: usize) -> String {
    let (kept, hidden, tail) = partial_parts(text, first, last);
    [kept, &"*".repeat(hidden), tail].concat()
}

/// What `partial` keeps of `text`: its head, how many characters are hidden after it, and
/// its tail.
pub fn partial_parts(text: &str, first: usize, last: usize) -> (&str, usize, &str) {
    if text.is_ascii() {
        // One byte per character: the common case, without walking the characters.
        let count = text.len();
        let (first, last) = if first + last >= count { (0, 0) } else { (first, last) };
        return (
            text.get(..first).unwrap_or_default(),
            count - first - last,
            text.get(count - last..).unwrap_or_default(),
        );
    }
    let count = text.chars().count();
    let (first, last) = if first + last >= count { (0, 0) } else { (first, last) };
    let head_end = text.char_indices().nth(first).map_or(text.len(), |(at, _)| at);
    let tail_start = match last {
        0 => text.len(),
        _ => text.char_indices().nth_back(last - 1).map_or(0, |(at, _)| at),
    };
    (
        text.get(..head_end).unwrap_or_default(),
        count - first - last,
        text.get(tail_start..).unwrap_or_default(),
    )
}

/// Masks the digits of `text` beyond the first `first` and last `last`. Non-digits
/// (spaces, dashes, an existing `*`) stay. Fewer than `first + last + 1` digits cannot show
/// that many without showing all: every digit is hidden then, unless the value is already
/// masked.
pub fn mask_digits(text: &str, first: usize, last: usize) -> String {
    let digits = text.chars().filter(char::is_ascii_digit).count();
    if digits <= first + last && !text.contains('*') {
        return text.chars().map(|c| if c.is_ascii_digit() { '*' } else { c }).collect();
    }
    let mut seen = 0;
    text.chars()
        .map(|c| {
            if !c.is_ascii_digit() {
                return c;
            }
            seen += 1;
            if seen <= first || seen > digits.saturating_sub(last) {
                c
            } else {
                '*'
            }
        })
        .collect()
}

/// The Luhn (mod 10) check over the ASCII digits in `text` (separators are skipped).
pub fn luhn_valid(text: &[u8]) -> bool {
    let mut sum = 0u32;
    let mut count = 0usize;
    for d in text.iter().rev().filter(|b| b.is_ascii_digit()) {
        let mut v = u32::from(d - b'0');
        if count % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
        count += 1;
    }
    count > 0 && sum % 10 == 0
}

/// Length range of a primary account number (ISO/IEC 7812).
pub const PAN_DIGITS: std::ops::RangeInclusive<usize> = 13..=19;

/// What may join the digit groups of a card number written in groups (one between two
/// groups): the scanner and the filter in front of it must agree on this.
const JOINERS: [u8; 2] = [b' ', b'-'];

/// Masks every card number in `text`: each run of 13 to 19 digits that passes the Luhn
/// check, whether written plain or grouped by single spaces or dashes, keeps at most its
/// first 6 and last 4 digits. Returns `None` when there was nothing to mask, which is the
/// common case and allocates nothing.
pub fn scrub_pans(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    // Cheap exit: no run that could hold 13 digits means no card (a date or an amount has
    // digits, but not in such a run).
    if !may_hold_pan(bytes) {
        return None;
    }
    // Allocated only once a card is found: most text holds digits (dates, amounts,
    // account numbers) but no card.
    let mut hide: Option<Vec<bool>> = None;
    for grouped in [false, true] {
        let mut i = 0;
        while i < bytes.len() {
            if !bytes[i].is_ascii_digit() {
                i += 1;
                continue;
            }
            // The run from i: digits, and (when grouped) single separators between digits.
            let start = i;
            let mut digits = 0;
            let mut groups = Grouping::default();
            while i < bytes.len() {
                if bytes[i].is_ascii_digit() {
                    digits += 1;
                    groups.current += 1;
                    i += 1;
                } else if grouped
                    && JOINERS.contains(&bytes[i])
                    && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)
                    && i > start
                {
                    groups.split();
                    i += 1;
                } else {
                    break;
                }
            }
            if grouped && !groups.reads_as_card(start.checked_sub(1).map(|b| bytes[b]), bytes.get(i).copied()) {
                continue;
            }
            let run = &bytes[start..i];
            if PAN_DIGITS.contains(&digits) && luhn_valid(run) {
                let hide = hide.get_or_insert_with(|| vec![false; bytes.len()]);
                let positions = run
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| b.is_ascii_digit())
                    .map(|(p, _)| start + p);
                for p in positions.skip(6).take(digits - 10) {
                    hide[p] = true;
                }
            }
        }
    }
    let hide = hide?;
    Some(
        text.char_indices()
            .map(|(i, c)| if hide.get(i).copied().unwrap_or(false) { '*' } else { c })
            .collect(),
    )
}

/// Whether a JSON string or number token, as written (`raw`, escapes unresolved), or a
/// text, could hold a card number: 13 digits or more in one run, joined at most by single spaces or
/// dashes. Most tokens cannot (a date or a time has its digits, but split by letters and
/// colons) and are then copied without being read. First the digits are counted (most
/// tokens have fewer than 13); only then are runs looked for, and not in a token longer than
/// 64 bytes or one with a backslash: an escaped digit (`\u0034`) breaks a run as written,
/// though it is written with at least three digits, so the raw count never undercounts.
#[inline]
pub fn may_hold_pan(raw: &[u8]) -> bool {
    let least = *PAN_DIGITS.start();
    if raw.len() < least || count_digits(raw) < least {
        return false;
    }
    match card_run_bits(raw) {
        // Runs of at least 2, 4, 8, then 13 set bits.
        Some(mut run) => {
            run &= run >> 1;
            run &= run >> 2;
            run &= run >> 4;
            run &= run >> 5;
            run != 0
        }
        None => true,
    }
}

/// One bit per byte of `raw` (at most 64 bytes), set for what a card number's run is made
/// of: a digit, or one of `JOINERS` between two digits. `None` for a longer text or one
/// with a backslash. Eight bytes at a time.
fn card_run_bits(raw: &[u8]) -> Option<u64> {
    if raw.len() > 64 {
        return None;
    }
    let (mut digits, mut separators) = (0u64, 0u64);
    for (i, chunk) in raw.chunks(8).enumerate() {
        // The last chunk is padded with zero bytes, which are none of these.
        let v = padded_word(chunk, 0);
        if byte_is(v, b'\\') != 0 {
            return None;
        }
        digits |= high_bits_to_mask(digit_bytes(v)) << (8 * i);
        let joiners = JOINERS.iter().fold(0, |bits, &joiner| bits | byte_is(v, joiner));
        separators |= high_bits_to_mask(joiners) << (8 * i);
    }
    Some(digits | (separators & (digits << 1) & (digits >> 1)))
}

const LOW_SEVEN: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `v` that is an ASCII digit. Exact per byte: no sum carries
/// into the next byte (each stays below 0x100), and non-ASCII bytes are excluded.
#[inline]
fn digit_bytes(v: u64) -> u64 {
    let low = v & LOW_SEVEN;
    let from_zero = low + 0x5050_5050_5050_5050;
    let past_nine = low + 0x4646_4646_4646_4646;
    from_zero & !past_nine & !v & HIGH_BITS
}

/// The high bit of each byte of `v` equal to `byte`, exactly.
#[inline]
fn byte_is(v: u64, byte: u8) -> u64 {
    let x = v ^ (u64::from(byte) * 0x0101_0101_0101_0101);
    // The high bit of a byte of x | ((x & 0x7f) + 0x7f) is set unless the byte is zero.
    !(((x & LOW_SEVEN) + LOW_SEVEN) | x) & HIGH_BITS
}

/// Byte `i`'s high bit in `high` becomes bit `i` of the result (a movemask).
#[inline]
fn high_bits_to_mask(high: u64) -> u64 {
    // Each byte's bit lands in the top byte at its own place; the other products fall
    // below it or off the top, never on each other.
    (high >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

/// The ASCII digits in `bytes`, eight bytes at a time.
fn count_digits(bytes: &[u8]) -> usize {
    // Counted per byte lane, then the lanes summed with one multiply: a lane total below
    // 256 (31 words of 8 bytes) cannot carry. (Without POPCNT in the baseline x86-64 target,
    // a count of bits per word cost a dozen instructions.)
    let mut count = 0;
    for block in bytes.chunks(31 * 8) {
        let mut chunks = block.chunks_exact(8);
        let mut lanes = 0u64;
        for chunk in chunks.by_ref() {
            lanes += digit_bytes(u64::from_le_bytes(<[u8; 8]>::try_from(chunk).unwrap_or_default())) >> 7;
        }
        count += (lanes.wrapping_mul(0x0101_0101_0101_0101) >> 56) as usize;
        count += chunks.remainder().iter().filter(|b| b.is_ascii_digit()).count();
    }
    count
}

/// The digit groups of a run, counted as it is read.
#[derive(Default)]
struct Grouping {
    /// Groups closed by a separator.
    closed: usize,
    /// Every closed group had 3 to 6 digits.
    closed_fit: bool,
    /// Digits in the group being read.
    current: usize,
}

impl Grouping {
    fn split(&mut self) {
        self.closed_fit = (self.closed == 0 || self.closed_fit) && (3..=6).contains(&self.current);
        self.closed += 1;
        self.current = 0;
    }

    /// Whether the groups read as a card number written in groups (`4111 1111 1111 1111`,
    /// `3782-822463-10005`): groups of 3 to 6 digits (the last may be shorter), not glued
    /// to a letter or digit on either side. Identifiers that merely contain dashes (UUIDs,
    /// with their 8- and 12-digit groups and hex letters) are not cards.
    fn reads_as_card(&self, before: Option<u8>, after: Option<u8>) -> bool {
        let glued = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
        self.closed > 0 && self.closed_fit && (1..=6).contains(&self.current) && !glued(before) && !glued(after)
    }
}

/// Card tokens issued by this gateway, per partner, and the numbers behind them. Tokens are
/// derived from the partner's key, so the same card gets the same token after a restart;
/// the vault remembers the way back, and settles the rare collision.
///
/// In cluster mode the vault is `shared`: each token issued is also kept, sealed, for the
/// shared store (`take_unshared`), so a partner may send it back through any instance.
#[derive(Debug, Default)]
pub struct TokenVault {
    inner: Mutex<Vault>,
}

/// Per partner, so a lookup borrows the partner id and the value instead of allocating.
#[derive(Debug, Default)]
struct Vault {
    partners: HashMap<String, PartnerTokens>,
    shared: bool,
    unshared: Vec<SealedToken>,
}

/// Most tokens kept waiting for an unreachable shared store.
const MAX_UNSHARED: usize = 100_000;

/// A token issued here, with its card number sealed (`PartnerKey::seal`), on its way to the
/// shared store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedToken {
    pub partner: String,
    pub token: String,
    pub sealed: Vec<u8>,
}

#[derive(Debug, Default)]
struct PartnerTokens {
    /// Card number -> token.
    tokens: HashMap<String, String>,
    /// Token -> card number.
    numbers: HashMap<String, String>,
}

impl TokenVault {
    /// A vault whose new tokens are also queued, sealed, for a shared store.
    pub fn shared() -> TokenVault {
        TokenVault {
            inner: Mutex::new(Vault {
                shared: true,
                ..Vault::default()
            }),
        }
    }

    /// Tokens issued since the last call, for the shared store.
    pub fn take_unshared(&self) -> Vec<SealedToken> {
        self.inner
            .lock()
            .map(|mut v| std::mem::take(&mut v.unshared))
            .unwrap_or_default()
    }

    /// Puts back tokens the shared store did not take, to be offered again; beyond
    /// `MAX_UNSHARED` waiting, the oldest are given up (they stay reversible here).
    pub fn requeue(&self, tokens: Vec<SealedToken>) {
        if let Ok(mut vault) = self.inner.lock() {
            vault.unshared.extend(tokens);
            let excess = vault.unshared.len().saturating_sub(MAX_UNSHARED);
            vault.unshared.drain(..excess);
        }
    }

    /// Whether `token` is known here for `partner`.
    pub fn knows(&self, partner: &str, token: &str) -> bool {
        self.inner
            .lock()
            .is_ok_and(|v| v.partners.get(partner).is_some_and(|p| p.numbers.contains_key(token)))
    }

    /// Records a token another instance issued, as the shared store returned it.
    pub fn remember(&self, partner: &str, token: &str, number: &str) {
        if let Ok(mut vault) = self.inner.lock() {
            let issued = vault.partners.entry(partner.to_string()).or_default();
            issued.numbers.insert(token.to_string(), number.to_string());
            issued.tokens.insert(number.to_string(), token.to_string());
        }
    }

    /// The token for `text` (a card number, possibly grouped) for `partner`. Digits become
    /// other digits except the last four; separators stay; a token of card-number length
    /// always fails the Luhn check, so it can never be mistaken for a card.
    pub fn tokenize(&self, partner: &str, key: &PartnerKey, text: &str) -> String {
        let Ok(mut vault) = self.inner.lock() else {
            // A poisoned vault cannot settle collisions: hide the value instead.
            return mask_digits(text, 0, 0);
        };
        if let Some(token) = vault.partners.get(partner).and_then(|p| p.tokens.get(text)) {
            return token.clone();
        }
        let issued = vault.partners.entry(partner.to_string()).or_default();
        let mut counter = 0;
        let token = loop {
            let candidate = derive_token(key, text, counter);
            match issued.numbers.get(&candidate) {
                Some(owner) if owner != text => counter += 1,
                _ => break candidate,
            }
        };
        issued.numbers.insert(token.clone(), text.to_string());
        issued.tokens.insert(text.to_string(), token.clone());
        if vault.shared {
            if let Some(sealed) = key.seal(&token, text) {
                vault.unshared.push(SealedToken {
                    partner: partner.to_string(),
                    token: token.clone(),
                    sealed,
                });
            }
        }
        token
    }

    /// The card number behind a token this gateway gave `partner`, if any.
    pub fn detokenize(&self, partner: &str, token: &str) -> Option<String> {
        let vault = self.inner.lock().ok()?;
        vault.partners.get(partner)?.numbers.get(token).cloned()
    }

    /// Number of tokens held.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .map(|v| v.partners.values().map(|p| p.numbers.len()).sum())
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether `text` could be a card token. A card number (13 to 19 digits passing the Luhn
/// check) cannot: `derive_token` never issues one. So a card number a partner sends is never
/// looked up, or sent, anywhere as a token.
pub fn may_be_token(text: &str) -> bool {
    !(PAN_DIGITS.contains(&count_digits(text.as_bytes())) && luhn_valid(text.as_bytes()))
}

fn derive_token(key: &PartnerKey, text: &str, counter: u32) -> String {
    let tag = key.tag("token", text, counter);
    let mut stream = tag.as_ref().iter().cycle();
    let digits = text.bytes().filter(u8::is_ascii_digit).count();
    let keep_from = digits.saturating_sub(4);
    let mut seen = 0;
    let mut out: Vec<u8> = text
        .bytes()
        .map(|b| {
            if !b.is_ascii_digit() {
                return b;
            }
            seen += 1;
            if seen > keep_from {
                b
            } else {
                b'0' + stream.next().map_or(0, |r| r % 10)
            }
        })
        .collect();
    let positions: Vec<usize> = (0..out.len()).filter(|&i| out[i].is_ascii_digit()).collect();
    let digits: Vec<u8> = positions.iter().map(|&p| out[p]).collect();
    if PAN_DIGITS.contains(&digits.len()) && luhn_valid(&digits) {
        // Any change to one digit moves the Luhn sum by a non-zero amount mod 10.
        if let Some(&first) = positions.first() {
            out[first] = b'0' + (out[first] - b'0' + 1) % 10;
        }
    }
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(partner: &str) -> PartnerKey {
        PartnerKey::derive(&[7; 32], partner)
    }

    proptest::proptest! {
        /// `partial` keeps whole characters, ASCII or not: the head and tail are the first
        /// and last characters asked for (none when they would show everything), and what
        /// lies between is counted in characters.
        #[test]
        fn partial_keeps_whole_characters(text in "[a-z0-9 é€日*-]{0,14}", first in 0usize..6, last in 0usize..6) {
            let chars: Vec<char> = text.chars().collect();
            let (shown, kept) = if first + last >= chars.len() { (0, 0) } else { (first, last) };
            let head: String = chars[..shown].iter().collect();
            let tail: String = chars[chars.len() - kept..].iter().collect();
            proptest::prop_assert_eq!(
                partial_parts(&text, first, last),
                (head.as_str(), chars.len() - shown - kept, tail.as_str())
            );
        }
    }

    #[test]
    fn luhn() {
        assert!(luhn_valid(b"4111111111111111"));
        assert!(luhn_valid(b"79927398713"));
        assert!(!luhn_valid(b"4111111111111112"));
        assert!(!luhn_valid(b""));
    }

    #[test]
    fn scrub_finds_plain_and_grouped_numbers_only_when_luhn_valid() {
        assert_eq!(
            scrub_pans("card 4111111111111111 ok").as_deref(),
            Some("card 411111******1111 ok")
        );
        assert_eq!(
            scrub_pans("4111 1111 1111 1111").as_deref(),
            Some("4111 11** **** 1111")
        );
        assert_eq!(
            scrub_pans("5355-2200-0000-1234").as_deref(),
            Some("5355-22**-****-1234")
        );
        assert_eq!(scrub_pans("ref 4111111111111112"), None, "not Luhn-valid");
        assert_eq!(scrub_pans("GB29NWBK60161331926818"), None);
        assert_eq!(scrub_pans("short 1234"), None);
        // Identifiers with dashes are not grouped card numbers, even when their digits pass.
        for id in [
            "123e4567-e89b-12d3-a456-426614174000",
            "a1234567-8901-2345-6789-012345678903",
            "x4111-1111-1111-1111",
        ] {
            assert_eq!(scrub_pans(id), None, "{id}");
        }
        assert_eq!(
            scrub_pans("ref-3782-822463-10005").as_deref(),
            Some("ref-3782-82****-*0005")
        );
        // A PAN beside a short number in a grouped run is still found on its own.
        assert_eq!(
            scrub_pans("12 4111111111111111").as_deref(),
            Some("12 411111******1111")
        );
    }

    #[test]
    fn digits_are_counted_eight_bytes_at_a_time_as_one_by_one() {
        let text: Vec<u8> = "0123456789/:a\\u0034 é日 99\x7f\u{80}0"
            .bytes()
            .chain(0u8..=255)
            .collect();
        for start in 0..40 {
            for end in start..text.len() {
                let slice = &text[start..end];
                assert_eq!(count_digits(slice), slice.iter().filter(|b| b.is_ascii_digit()).count());
            }
        }
        // Long runs of digits: no lane may overflow into the next.
        for len in [247, 248, 249, 255, 256, 257, 2047, 2048, 5000] {
            assert_eq!(count_digits(&vec![b'7'; len]), len, "{len} digits");
        }
    }

    #[test]
    fn card_run_bits_are_what_a_byte_by_byte_reading_gives() {
        let naive = |raw: &[u8]| -> Option<u64> {
            if raw.len() > 64 || raw.contains(&b'\\') {
                return None;
            }
            let digit = |i: usize| raw.get(i).is_some_and(u8::is_ascii_digit);
            Some((0..raw.len()).fold(0u64, |bits, i| {
                let joins = JOINERS.contains(&raw[i]) && i > 0 && digit(i - 1) && digit(i + 1);
                if digit(i) || joins {
                    bits | 1 << i
                } else {
                    bits
                }
            }))
        };
        let text: Vec<u8> = "4111 1111-1111 1111 2026-11-20T09:14:03Z --1  2 é日\\u0034 \x7f9"
            .bytes()
            .chain(0u8..=255)
            .chain(*b"0123456789 0123456789-0123456789 0123456789")
            .collect();
        for start in 0..text.len() {
            for end in start..text.len().min(start + 70) {
                let slice = &text[start..end];
                assert_eq!(
                    card_run_bits(slice),
                    naive(slice),
                    "{:?}",
                    String::from_utf8_lossy(slice)
                );
            }
        }
    }

    #[test]
    fn what_may_hold_a_card_number_is_a_run_of_thirteen_digits() {
        for (raw, may) in [
            (&b"\"2026-11-20T09:14:03Z\""[..], false),
            (b"\"+44 7700 900123 ext 4\"", true),
            (b"\"4111 1111 1111 1111\"", true),
            (b"\"4111-1111-1111-1111\"", true),
            (b"4111111111111", true),
            (b"\"411111111111\"", false),
            (b"\"4111  1111  1111 1111\"", false),
            (b"\"12:34:56 12:34:56 12\"", false),
            // An escape breaks the run as written: then 13 digits in all are enough.
            (b"\"\\u0034111111111111111\"", true),
            (b"\"\\u0041 2026-11-20T09:14\"", true),
        ] {
            assert_eq!(may_hold_pan(raw), may, "{}", String::from_utf8_lossy(raw));
        }
        // Beyond 64 bytes, the count decides.
        let long = format!("\"{}2026-11-20T09:14:03Z\"", "x".repeat(60));
        assert!(may_hold_pan(long.as_bytes()));
    }

    proptest::proptest! {
        /// Nothing the scanner would mask is let through unread: wherever `scrub_pans` finds
        /// a card number in a string, `may_hold_pan` says the token may hold one.
        #[test]
        fn may_hold_pan_never_skips_what_scrub_pans_masks(
            before in "[0-9a-zé:T -]{0,30}",
            body in proptest::collection::vec(0u8..10, 12..=18),
            grouping in 0usize..3,
            after in "[0-9a-zé:T -]{0,30}",
            escape in proptest::option::of(0usize..19),
        ) {
            // A Luhn-valid number of 13 to 19 digits, written plain or grouped.
            let check = (0..10u8).find(|d| {
                let mut digits = body.clone();
                digits.push(*d);
                luhn_valid(&digits.iter().map(|d| b'0' + d).collect::<Vec<_>>())
            });
            let mut number: String = body.iter().chain(check.as_slice()).map(|d| char::from(b'0' + d)).collect();
            if grouping > 0 {
                let separator = if grouping == 1 { " " } else { "-" };
                let groups: Vec<String> = number.as_bytes().chunks(4).map(|g| String::from_utf8_lossy(g).into_owned()).collect();
                number = groups.join(separator);
            }
            // Set apart by a colon: neither glued to a letter nor joined to other digits.
            let text = format!("{before}:{number}:{after}");
            let mut token = serde_json::to_string(&text).expect("a JSON string");
            if let Some(nth) = escape {
                // One of its digits spelled as a JSON escape, which splits the run as written.
                let start = token.find(&number).expect("the number is written as it is");
                let digits: Vec<usize> = number.char_indices().filter(|(_, c)| c.is_ascii_digit()).map(|(i, _)| i).collect();
                let at = start + digits[nth % digits.len()];
                let digit = char::from(token.as_bytes()[at]);
                token.replace_range(at..at + 1, &format!("\\u{:04x}", u32::from(digit)));
                let read: Option<String> = serde_json::from_str(&token).ok();
                proptest::prop_assert_eq!(read.as_deref(), Some(text.as_str()));
            }
            if scrub_pans(&text).is_some() {
                proptest::prop_assert!(may_hold_pan(token.as_bytes()), "{}", token);
            }
            proptest::prop_assert!(scrub_pans(&text).is_some(), "the scanner finds {}", text);
        }
    }

    #[test]
    fn partial_and_digit_masks() {
        assert_eq!(partial("Jane Doe", 1, 0), "J*******");
        assert_eq!(partial("GB29NWBK60161331926819", 0, 4), "******************6819");
        assert_eq!(partial("ab", 1, 1), "**");
        assert_eq!(mask_digits("4111 1111 1111 1111", 6, 4), "4111 11** **** 1111");
        assert_eq!(mask_digits("4111111111111111", 0, 4), "************1111");
        assert_eq!(mask_digits("12345", 6, 4), "*****");
    }

    #[test]
    fn tags_and_keys_are_hmac_sha256_as_ring_computes_it() {
        // The reference: ring's HMAC, keyed as `derive` keys, over the same bytes.
        use ring::hmac as reference;
        let master = [5u8; 32];
        let derived = reference::sign(
            &reference::Key::new(reference::HMAC_SHA256, &master),
            b"tollgate/masking/v1/acme",
        );
        let expected_key = reference::Key::new(reference::HMAC_SHA256, derived.as_ref());
        let key = PartnerKey::derive(&master, "acme");
        for len in 0..200 {
            let text = "é9x".repeat(len).chars().take(len).collect::<String>();
            for (purpose, counter) in [("hash", 0), ("token", 3), ("vault-seal", u32::MAX)] {
                let mut ctx = reference::Context::with_key(&expected_key);
                for part in [purpose.as_bytes(), &[0], text.as_bytes(), &counter.to_be_bytes()] {
                    ctx.update(part);
                }
                assert_eq!(
                    key.tag(purpose, &text, counter),
                    ctx.sign().as_ref(),
                    "{purpose} of {len} characters"
                );
            }
        }
    }

    #[test]
    fn hashes_are_stable_per_partner_and_differ_between_partners() {
        assert_eq!(key("a").hash("GB29"), key("a").hash("GB29"));
        assert_ne!(key("a").hash("GB29"), key("b").hash("GB29"));
        assert_ne!(key("a").hash("GB29"), key("a").hash("GB30"));
        assert_eq!(key("a").hash("x").len(), 22);
    }

    #[test]
    fn a_shared_vault_queues_each_new_token_once_and_caps_what_waits() {
        let key = PartnerKey::derive(&[7; 32], "acme");
        let vault = TokenVault::shared();
        let token = vault.tokenize("acme", &key, "4111111111111111");
        assert_eq!(vault.tokenize("acme", &key, "4111111111111111"), token, "stable");
        let queued = vault.take_unshared();
        assert_eq!(queued.len(), 1, "a token seen again is not queued again");
        assert_eq!(key.open(&token, &queued[0].sealed).as_deref(), Some("4111111111111111"));
        assert!(vault.take_unshared().is_empty());
        // Not taken by the store: offered again, the oldest given up beyond the cap.
        let many: Vec<SealedToken> = (0..MAX_UNSHARED + 5)
            .map(|i| SealedToken {
                partner: "acme".into(),
                token: i.to_string(),
                sealed: Vec::new(),
            })
            .collect();
        vault.requeue(many);
        let kept = vault.take_unshared();
        assert_eq!(kept.len(), MAX_UNSHARED);
        assert_eq!(kept[0].token, "5", "the oldest go first");
        // An unshared (embedded) vault queues nothing.
        let local = TokenVault::default();
        local.tokenize("acme", &key, "4111111111111111");
        assert!(local.take_unshared().is_empty());
    }

    #[test]
    fn sealed_numbers_open_only_for_their_token_partner_and_key() {
        let acme = PartnerKey::derive(&[7; 32], "acme");
        let beta = PartnerKey::derive(&[7; 32], "beta");
        let sealed = acme.seal("830294556173111", "4111111111111111").expect("sealed");
        assert!(!sealed.windows(16).any(|w| w == b"4111111111111111"));
        assert_eq!(
            acme.open("830294556173111", &sealed).as_deref(),
            Some("4111111111111111")
        );
        assert_eq!(acme.open("830294556173112", &sealed), None, "bound to its token");
        assert_eq!(beta.open("830294556173111", &sealed), None, "bound to its partner");
        let mut tampered = sealed.clone();
        if let Some(last) = tampered.last_mut() {
            *last ^= 1;
        }
        assert_eq!(acme.open("830294556173111", &tampered), None);
        assert_eq!(acme.open("830294556173111", &sealed[..5]), None);
        assert_ne!(
            acme.seal("830294556173111", "4111111111111111"),
            Some(sealed),
            "fresh nonce each time"
        );
    }

    #[test]
    fn tokens_keep_format_and_last_four_fail_luhn_and_reverse() {
        let vault = TokenVault::default();
        let k = key("acme");
        for pan in ["4111111111111111", "5355 2200 0000 1234", "378282246310005"] {
            let token = vault.tokenize("acme", &k, pan);
            assert_eq!(token.len(), pan.len());
            assert_eq!(&token[token.len() - 4..], &pan[pan.len() - 4..]);
            assert_ne!(token, pan);
            let digits: Vec<u8> = token.bytes().filter(u8::is_ascii_digit).collect();
            assert!(!luhn_valid(&digits), "{token} must not pass Luhn");
            assert_eq!(scrub_pans(&token), None);
            assert_eq!(vault.tokenize("acme", &k, pan), token, "stable");
            assert_eq!(vault.detokenize("acme", &token).as_deref(), Some(pan));
            assert_eq!(vault.detokenize("other", &token), None, "tokens are per partner");
            assert!(may_be_token(&token));
            assert!(!may_be_token(pan), "a card number is never taken for a token");
        }
        // Derived, not random: a fresh vault (a restart) gives the same token.
        let again = TokenVault::default().tokenize("acme", &k, "4111111111111111");
        assert_eq!(again, vault.tokenize("acme", &k, "4111111111111111"));
    }
}
