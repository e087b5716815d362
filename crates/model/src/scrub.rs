//! Finding an API key in text a provider sent back, in the forms providers
//! and proxies echo it in, and replacing it with `<redacted>`.
//!
//! A provider may echo the key as it was sent, percent-encoded (upper- or
//! lower-case hex, as in a URL it logged), JSON-escaped (`\/`, `\"`, `\\`,
//! `\u00XX`), as hex, or base64-encoded (standard or URL-safe alphabet,
//! padded or not), possibly inside a longer base64 blob such as
//! `Basic base64(user:key)`, where the key starts at any of the three
//! byte alignments. It may also show only part of it (`sk-proj-abcd…`).
//!
//! So the key's forms are matched as *runs*: any stretch of the text that
//! spells consecutive bytes of the key in one of these forms (a JSON or
//! percent escape may stand for any character, in any of them) is redacted
//! when it reveals at least [`shortest_redacted_run`] bytes of the key, or
//! the whole key. Shorter runs are left alone: they reveal too little of a
//! real key to matter, and matching them would mangle ordinary text.
//! `spec/models.md` has the threshold and why.

use std::ops::Range;

use base64::Engine;
use zeroize::Zeroizing;

/// What replaces each run of the key.
pub(crate) const REDACTED: &str = "<redacted>";

/// A "key" shorter than this is not looked for: it would match ordinary
/// words and protects nothing (real keys are far longer).
const SHORTEST_KEY: usize = 4;

/// The most key bytes a run may reveal and still be left in the text.
const LONGEST_KEPT_RUN: usize = 11;

/// How many bytes of the key a run must reveal to be redacted: 12, or half
/// the key (at least 4) when the key is shorter than 24 bytes, so no run
/// is left that shows more than half of a short key.
pub(crate) fn shortest_redacted_run(key_len: usize) -> usize {
    key_len
        .div_ceil(2)
        .clamp(SHORTEST_KEY, LONGEST_KEPT_RUN + 1)
}

/// How a form's characters map to the key's bytes.
#[derive(Clone, Copy)]
enum Form {
    /// The key's own bytes.
    Text,
    /// Two hex digits per byte, in either case.
    Hex,
    /// Four base64 digits per three bytes.
    Base64,
}

impl Form {
    /// How many whole bytes of the key `digits` consecutive characters of
    /// this form reveal.
    fn key_bytes(self, digits: usize) -> usize {
        match self {
            Form::Text => digits,
            Form::Hex => digits / 2,
            Form::Base64 => digits * 6 / 8,
        }
    }
}

/// One form of the key, as the characters to look for.
struct Needle {
    form: Form,
    /// Zeroed when dropped: these are the key, encoded.
    digits: Zeroizing<Vec<u8>>,
}

/// Every form the key is looked for in.
fn needles(key: &[u8]) -> Vec<Needle> {
    let mut needles = vec![
        Needle {
            form: Form::Text,
            digits: Zeroizing::new(key.to_vec()),
        },
        Needle {
            form: Form::Hex,
            // Matched case-insensitively, so lower case stands for both.
            digits: Zeroizing::new(hex_lower(key).into_bytes()),
        },
    ];
    let engines = [
        (
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::STANDARD_NO_PAD,
        ),
        (
            &base64::engine::general_purpose::URL_SAFE,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ),
    ];
    for (padded, engine) in engines {
        // The key encoded alone, with its last digit and padding, so that
        // none of it is left behind.
        needles.push(Needle {
            form: Form::Base64,
            digits: Zeroizing::new(padded.encode(key).into_bytes()),
        });
        for offset in 0..3 {
            needles.push(Needle {
                form: Form::Base64,
                digits: base64_at(engine, key, offset),
            });
        }
    }
    needles
}

fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    text
}

/// The base64 digits that encode only the key's bits when the key starts
/// `offset` bytes into a longer base64 blob (0, 1 or 2: every alignment a
/// key can have): the digits that also carry bits of the bytes before or
/// after it are left out, since they depend on what surrounds the key.
fn base64_at(
    engine: &base64::engine::GeneralPurpose,
    key: &[u8],
    offset: usize,
) -> Zeroizing<Vec<u8>> {
    let mut padded = Zeroizing::new(vec![0u8; offset]);
    padded.extend_from_slice(key);
    let encoded = Zeroizing::new(engine.encode(padded.as_slice()).into_bytes());
    // Digit i holds bits 6i..6i+6 of the blob; the key's are 8·offset..
    // 8·(offset + len).
    let first = (8 * offset).div_ceil(6);
    let end = (8 * (offset + key.len())) / 6;
    Zeroizing::new(encoded[first..end.max(first)].to_vec())
}

/// `text` with every run of `key` replaced by [`REDACTED`]; `None` when
/// there is none (or the key is too short to look for).
pub(crate) fn scrub(text: &str, key: &str) -> Option<String> {
    let key = key.as_bytes();
    if key.len() < SHORTEST_KEY {
        return None;
    }
    // A key that is not ASCII can make a run start or end inside a
    // character; the whole character goes.
    let mut spans: Vec<Range<usize>> = Vec::new();
    for span in runs(text.as_bytes(), key) {
        let mut start = span.start;
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = span.end;
        while !text.is_char_boundary(end) {
            end += 1;
        }
        match spans.last_mut() {
            Some(last) if last.end >= start => last.end = last.end.max(end),
            _ => spans.push(start..end),
        }
    }
    if spans.is_empty() {
        return None;
    }
    let mut clean = String::with_capacity(text.len());
    let mut kept_from = 0;
    for span in spans {
        clean.push_str(&text[kept_from..span.start]);
        clean.push_str(REDACTED);
        kept_from = span.end;
    }
    clean.push_str(&text[kept_from..]);
    Some(clean)
}

/// The byte ranges of `text` holding runs of the key, sorted, merged where
/// they overlap or touch.
fn runs(text: &[u8], key: &[u8]) -> Vec<Range<usize>> {
    let needles = needles(key);
    let shortest = shortest_redacted_run(key.len());
    let mut found: Vec<Range<usize>> = Vec::new();
    for start in 0..text.len() {
        let mut longest = start;
        for needle in &needles {
            let digits = needle.digits.as_slice();
            for from in 0..digits.len() {
                let (matched, end) = run_at(text, start, &digits[from..], needle.form);
                let whole = from == 0 && matched == digits.len();
                if matched > 0 && (whole || needle.form.key_bytes(matched) >= shortest) {
                    longest = longest.max(end);
                }
            }
        }
        if longest > start {
            match found.last_mut() {
                Some(last) if last.end >= start => last.end = last.end.max(longest),
                _ => found.push(start..longest),
            }
        }
    }
    found
}

/// How many of `digits` the text spells from `start` on, and where that
/// spelling ends.
fn run_at(text: &[u8], start: usize, digits: &[u8], form: Form) -> (usize, usize) {
    // Hex digits match in either case (the needle is lower case); the
    // key's own bytes and base64 digits only exactly.
    let fold = matches!(form, Form::Hex);
    let mut at = start;
    let mut matched = 0;
    for &digit in digits {
        match digit_at(text, at, digit, fold) {
            Some(width) => {
                at += width;
                matched += 1;
            }
            None => break,
        }
    }
    (matched, at)
}

/// Whether `text[at..]` spells `digit`, literally or escaped, and if so
/// in how many bytes. With `fold`, an ASCII letter in the text stands for
/// its lower case.
fn digit_at(text: &[u8], at: usize, digit: u8, fold: bool) -> Option<usize> {
    let is = |byte: u8| byte == digit || (fold && byte.to_ascii_lowercase() == digit);
    let first = *text.get(at)?;
    if is(first) {
        return Some(1);
    }
    match first {
        // Percent-encoding, in either case of hex.
        b'%' => {
            let value = hex_pair(text.get(at + 1..at + 3)?)?;
            is(value).then_some(3)
        }
        b'\\' => match *text.get(at + 1)? {
            // JSON's short escapes of the characters it must or may
            // escape.
            escaped @ (b'/' | b'"' | b'\\') => is(escaped).then_some(2),
            // JSON's `\u00XX`, in either case.
            b'u' => {
                let code = text.get(at + 2..at + 6)?;
                if &code[..2] != b"00" {
                    return None;
                }
                let value = hex_pair(&code[2..])?;
                is(value).then_some(6)
            }
            _ => None,
        },
        _ => None,
    }
}

/// The byte two hex digits (either case) spell.
fn hex_pair(pair: &[u8]) -> Option<u8> {
    let value = |digit: u8| char::from(digit).to_digit(16);
    let high = value(pair[0])?;
    let low = value(pair[1])?;
    u8::try_from(high * 16 + low).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key with characters that percent-encoding, JSON and base64's two
    /// alphabets all treat differently.
    const KEY: &str = "sk-test+key/with=odd:chars~~~0123456789?>abcdefXYZ";

    fn clean(text: &str) -> String {
        scrub(text, KEY).unwrap_or_else(|| text.to_owned())
    }

    fn percent(text: &str, upper: bool) -> String {
        text.bytes()
            .map(|byte| {
                if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                    char::from(byte).to_string()
                } else if upper {
                    format!("%{byte:02X}")
                } else {
                    format!("%{byte:02x}")
                }
            })
            .collect()
    }

    fn hex(bytes: &[u8], upper: bool) -> String {
        bytes
            .iter()
            .map(|byte| {
                if upper {
                    format!("{byte:02X}")
                } else {
                    format!("{byte:02x}")
                }
            })
            .collect()
    }

    fn engines() -> [(&'static str, base64::engine::GeneralPurpose); 4] {
        use base64::engine::general_purpose::*;
        [
            ("standard", STANDARD),
            ("standard, no padding", STANDARD_NO_PAD),
            ("url-safe", URL_SAFE),
            ("url-safe, no padding", URL_SAFE_NO_PAD),
        ]
    }

    /// Every form of the key the scrubber must catch, named.
    fn forms() -> Vec<(String, String)> {
        let mut forms = vec![
            ("plain".to_owned(), KEY.to_owned()),
            ("percent, upper".to_owned(), percent(KEY, true)),
            ("percent, lower".to_owned(), percent(KEY, false)),
            (
                "JSON".to_owned(),
                serde_json::to_string(KEY)
                    .unwrap()
                    .trim_matches('"')
                    .to_owned(),
            ),
            ("JSON, slashes escaped".to_owned(), KEY.replace('/', "\\/")),
            (
                "JSON, all \\u escapes".to_owned(),
                KEY.bytes().map(|b| format!("\\u{:04x}", b)).collect(),
            ),
            ("hex".to_owned(), hex(KEY.as_bytes(), false)),
            ("HEX".to_owned(), hex(KEY.as_bytes(), true)),
        ];
        for (name, engine) in engines() {
            forms.push((format!("base64 {name}"), engine.encode(KEY)));
        }
        assert_ne!(
            percent(KEY, true),
            KEY,
            "the key exercises percent-encoding"
        );
        assert_ne!(
            base64::engine::general_purpose::STANDARD.encode(KEY),
            base64::engine::general_purpose::URL_SAFE.encode(KEY),
            "the key exercises both alphabets"
        );
        forms
    }

    #[test]
    fn every_form_is_redacted_whole() {
        for (name, form) in forms() {
            let text = format!("invalid key '{form}' given");
            assert_eq!(
                clean(&text),
                format!("invalid key '{REDACTED}' given"),
                "{name}: {form}"
            );
        }
    }

    #[test]
    fn a_prefix_of_twelve_bytes_or_more_is_redacted_in_every_form() {
        for (name, form) in forms() {
            // A provider that shows the start of the key (or of its
            // encoding), then an ellipsis.
            let shown = match name.as_str() {
                n if n.starts_with("base64") => 16,
                n if n.starts_with("hex") || n.starts_with("HEX") => 24,
                n if n.starts_with("percent") => percent(&KEY[..12], true).len(),
                "JSON, all \\u escapes" => 12 * 6,
                "JSON, slashes escaped" => 13,
                _ => 12,
            };
            let text = format!("key {}... is wrong", &form[..shown]);
            assert_eq!(
                clean(&text),
                format!("key {REDACTED}... is wrong"),
                "{name}: {form}"
            );
        }
    }

    #[test]
    fn runs_shorter_than_the_threshold_are_left() {
        // 11 bytes of the key: too little to matter, and text this short
        // must not be mangled.
        let text = format!("keys look like {}...", &KEY[..11]);
        assert_eq!(scrub(&text, KEY), None);
        // The middle and the end count as well as the start.
        let text = format!("ends in ...{}", &KEY[KEY.len() - 12..]);
        assert_eq!(clean(&text), format!("ends in ...{REDACTED}"));
        let text = format!("has {} inside", &KEY[10..30]);
        assert_eq!(clean(&text), format!("has {REDACTED} inside"));
    }

    #[test]
    fn the_key_inside_a_base64_blob_is_found_at_every_alignment() {
        for (name, engine) in engines() {
            for before in ["", "u", "us", "user:", "user:1", "a-longer-user:"] {
                for after in ["", "x", "xy", ":tail"] {
                    let blob = engine.encode(format!("{before}{KEY}{after}"));
                    let text = format!("Authorization: Basic {blob} rejected");
                    let cleaned = clean(&text);
                    let Some((kept_before, kept_after)) = cleaned
                        .strip_prefix("Authorization: Basic ")
                        .and_then(|rest| rest.strip_suffix(" rejected"))
                        .and_then(|rest| rest.split_once(REDACTED))
                    else {
                        panic!("{name}, {before:?}+key+{after:?}: {cleaned}");
                    };
                    // What is kept encodes what surrounds the key, and at
                    // most a digit's worth of it.
                    assert!(
                        kept_before.len() <= (before.len() * 8).div_ceil(6),
                        "{name}, {before:?}+key+{after:?}: {cleaned}"
                    );
                    assert!(
                        kept_after.trim_end_matches('=').len() <= (after.len() * 8).div_ceil(6) + 1,
                        "{name}, {before:?}+key+{after:?}: {cleaned}"
                    );
                    assert!(!kept_after.contains(REDACTED), "{cleaned}");
                }
            }
        }
    }

    #[test]
    fn mixed_text_keeps_everything_else() {
        let text = format!(
            "{{\"error\": {{\"message\": \"Incorrect API key provided: {KEY}. Sent as {}.\", \"code\": \"invalid_api_key\"}}}}",
            percent(KEY, false)
        );
        assert_eq!(
            clean(&text),
            format!(
                "{{\"error\": {{\"message\": \"Incorrect API key provided: {REDACTED}. Sent as {REDACTED}.\", \"code\": \"invalid_api_key\"}}}}"
            )
        );
        // Two copies side by side become one marker.
        assert_eq!(clean(&format!("{KEY}{KEY}")), REDACTED);
        assert_eq!(scrub("nothing to see here", KEY), None);
    }

    #[test]
    fn short_keys() {
        // Too short to look for.
        assert_eq!(scrub("abc abc", "abc"), None);
        // A short key is redacted whole, and any run of half of it.
        let key = "k3y-0123456789ab";
        assert_eq!(shortest_redacted_run(key.len()), 8);
        assert_eq!(
            scrub(&format!("bad {key}"), key).unwrap(),
            format!("bad {REDACTED}")
        );
        assert_eq!(
            scrub("bad k3y-0123…", key).unwrap(),
            format!("bad {REDACTED}…")
        );
        assert_eq!(scrub("bad k3y-012…", key), None);
        assert_eq!(shortest_redacted_run(100), 12);
        assert_eq!(shortest_redacted_run(5), 4);
    }

    #[test]
    fn keys_that_are_not_ascii_leave_valid_text() {
        let key = "ключ-секретный-123456";
        let (cut, _) = key.char_indices().nth(12).unwrap();
        let text = format!("bad «{key}» and «{}»", &key[..cut]);
        let cleaned = scrub(&text, key).unwrap();
        assert_eq!(cleaned, format!("bad «{REDACTED}» and «{REDACTED}»"));
    }
}
