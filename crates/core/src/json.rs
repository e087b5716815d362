//! Reading JSON with one nesting limit everywhere.
//!
//! serde_json refuses input nested deeper than 128 levels, which is both
//! too little (a value exo stored, wrapped in a response, may exceed it)
//! and applied in different places to different amounts of envelope. Every
//! reader of exo's JSON (requests and responses, stored events, the command
//! line's input) goes through [`from_slice`] instead: input nested deeper
//! than [`MAX_DEPTH`] is refused by a linear scan before it is parsed (a
//! parser recursing on it could overflow its stack), and anything within it
//! is parsed without serde_json's own limit.

/// The deepest nesting of arrays and objects a message may have. Deeper
/// input is refused before it is parsed (a parser recursing on it could
/// overflow its stack); anything within it is parsed without serde_json's
/// own limit of 128, so a value exo stored is always readable inside a
/// response that wraps it.
pub const MAX_DEPTH: usize = 256;

/// Whether `bytes` (JSON text, maybe invalid) nests arrays and objects
/// deeper than `max`. Linear, without recursion; strings are skipped.
pub fn nests_deeper_than(bytes: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Why [`from_slice`] failed.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// Not JSON, or not the expected shape.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
}

/// Reads JSON text as `T`, nested at most [`MAX_DEPTH`] levels: the one
/// limit every reader of exo's JSON (requests, responses, stored events,
/// command-line input) applies.
pub fn from_slice<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    if nests_deeper_than(bytes, MAX_DEPTH) {
        return Err(JsonError::TooDeep);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    // Safe to lift: the depth was bounded above.
    deserializer.disable_recursion_limit();
    let value = T::deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// [`from_slice`] for a string.
pub fn from_str<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, JsonError> {
    from_slice(text.as_bytes())
}
