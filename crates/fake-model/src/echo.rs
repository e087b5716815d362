//! The forms a provider (or a proxy in front of it) may echo an API key in
//! when it answers with an error: for tests that make the fake model echo
//! the key and check that exo shows none of them.

use base64::Engine;

/// `key` as a provider might echo it in an error message, each form named:
/// as sent, percent-encoded (upper- and lower-case hex), JSON-escaped,
/// hex, base64 (standard and URL-safe, padded or not), inside
/// `Basic base64(user:key)` at each of the three byte alignments, and cut
/// short (the start of the key, and of its base64), as providers show a
/// key they reject.
pub fn key_echoes(key: &str) -> Vec<(String, String)> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let mut echoes = vec![
        ("as sent", key.to_owned()),
        ("percent-encoded, upper case", percent(key, true)),
        ("percent-encoded, lower case", percent(key, false)),
        ("JSON, slashes escaped", key.replace('/', "\\/")),
        (
            "JSON, every character \\u-escaped",
            key.bytes().map(|byte| format!("\\u{byte:04X}")).collect(),
        ),
        ("hex", hex(key.as_bytes(), false)),
        ("HEX", hex(key.as_bytes(), true)),
        ("base64", STANDARD.encode(key)),
        ("base64, no padding", STANDARD_NO_PAD.encode(key)),
        ("base64url", URL_SAFE.encode(key)),
        ("base64url, no padding", URL_SAFE_NO_PAD.encode(key)),
        ("the first 16 characters", format!("{}...", prefix(key, 16))),
        (
            "the first 24 base64 digits",
            format!("{}...", prefix(&STANDARD.encode(key), 24)),
        ),
    ];
    for user in ["u:", "us:", "usr:"] {
        echoes.push((
            "Basic authorization",
            format!("Basic {}", STANDARD.encode(format!("{user}{key}"))),
        ));
    }
    echoes
        .into_iter()
        .map(|(name, text)| (name.to_owned(), text))
        .collect()
}

/// Percent-encoding of everything but RFC 3986's unreserved characters.
fn percent(text: &str, upper: bool) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(byte).to_string()
            }
            _ if upper => format!("%{byte:02X}"),
            _ => format!("%{byte:02x}"),
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

/// The first `n` characters.
fn prefix(text: &str, n: usize) -> &str {
    text.char_indices()
        .nth(n)
        .map_or(text, |(cut, _)| &text[..cut])
}

/// Whether `haystack` shows any stretch of `form` of at least 16
/// characters (all of it when shorter): what a test asserts is absent.
pub fn shows_echo(haystack: &str, form: &str) -> bool {
    let chars: Vec<char> = form.chars().collect();
    let width = chars.len().min(16);
    chars
        .windows(width)
        .any(|window| haystack.contains(&window.iter().collect::<String>()))
}
