//! The API key: zeroized on drop, redacted in `Debug`, never displayed.

use std::fmt;

use zeroize::Zeroizing;

/// An API key, given by the caller at call time (exo resolves it from its
/// sealed secrets). Its memory is wiped when dropped, `Debug` prints
/// `ApiKey(<redacted>)`, and it has no `Display`.
#[derive(Clone)]
pub struct ApiKey(Zeroizing<String>);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(Zeroizing::new(key.into()))
    }

    /// The key itself, for building a request header.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with the key redacted in every form a provider echoes it in
    /// (see the `scrub` module); `None` when it holds none.
    pub fn scrub(&self, text: &str) -> Option<String> {
        crate::scrub::scrub(text, &self.0)
    }
}

impl From<String> for ApiKey {
    fn from(key: String) -> ApiKey {
        ApiKey::new(key)
    }
}

impl From<&str> for ApiKey {
    fn from(key: &str) -> ApiKey {
        ApiKey::new(key)
    }
}

impl From<Zeroizing<String>> for ApiKey {
    fn from(key: Zeroizing<String>) -> ApiKey {
        ApiKey(key)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let key = ApiKey::new("sk-secret-value");
        assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
        assert_eq!(key.expose(), "sk-secret-value");
    }
}
