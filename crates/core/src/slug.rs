//! Slugs: short, shell-friendly names derived from display names.
//!
//! `"Sandbox Example"` becomes `sandbox-example`. A slug is unique within
//! its scope (agents globally, conversations per agent), and commands accept
//! a slug wherever they accept an id. A slug never parses as a UUID, so the
//! two can never be confused.

/// A slug could not be made or is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlugError {
    /// The name has no ASCII letter or digit to build a slug from.
    #[error("cannot derive a slug from {0:?}: it has no ASCII letters or digits; pass --slug")]
    Empty(String),
    /// A given slug does not follow the slug rules.
    #[error("invalid slug {0:?}: use lowercase a-z, 0-9 and single dashes, at most 64 characters, not a UUID")]
    Invalid(String),
}

/// The longest slug we produce or accept.
pub const MAX_SLUG_LEN: usize = 64;

/// Derives a slug from a display name: ASCII letters and digits are kept
/// (lowercased), every other run of characters becomes one `-`, and dashes
/// at either end are dropped.
pub fn slugify(name: &str) -> Result<String, SlugError> {
    let mut slug = String::with_capacity(name.len());
    let mut pending_dash = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if pending_dash && !slug.is_empty() {
                slug.push('-');
            }
            pending_dash = false;
            slug.push(c.to_ascii_lowercase());
        } else {
            pending_dash = true;
        }
        if slug.len() >= MAX_SLUG_LEN {
            break;
        }
    }
    let slug = slug.trim_end_matches('-').to_string();
    if slug.is_empty() {
        return Err(SlugError::Empty(name.to_string()));
    }
    if uuid::Uuid::try_parse(&slug).is_ok() {
        return Err(SlugError::Invalid(slug));
    }
    Ok(slug)
}

/// Checks an explicitly given slug.
pub fn validate_slug(slug: &str) -> Result<(), SlugError> {
    let well_formed = !slug.is_empty()
        && slug.len() <= MAX_SLUG_LEN
        && slug.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    if well_formed && uuid::Uuid::try_parse(slug).is_err() {
        Ok(())
    } else {
        Err(SlugError::Invalid(slug.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugify_examples() {
        for (name, slug) in [
            ("Sandbox Example", "sandbox-example"),
            ("Local Dev", "local-dev"),
            ("  --Hello,   World!! ", "hello-world"),
            ("gpt-5.4", "gpt-5-4"),
            ("Ünïcode Name 2", "n-code-name-2"),
        ] {
            assert_eq!(slugify(name).unwrap(), slug, "{name:?}");
            validate_slug(slug).unwrap();
        }
        assert!(matches!(slugify("   "), Err(SlugError::Empty(_))));
        assert!(matches!(slugify("日本"), Err(SlugError::Empty(_))));
        assert_eq!(slugify(&"a".repeat(200)).unwrap().len(), MAX_SLUG_LEN);
    }

    #[test]
    fn validate_rejects_malformed() {
        for bad in [
            "",
            "A",
            "a--b",
            "-a",
            "a-",
            "a b",
            "a_b",
            "0190a6c2-0000-7000-8000-000000000000",
        ] {
            assert!(validate_slug(bad).is_err(), "{bad:?}");
        }
    }
}
