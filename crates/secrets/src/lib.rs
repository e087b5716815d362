//! Secret encryption for exo: the master key and AEAD sealing.
//!
//! Secrets are sealed with XChaCha20-Poly1305 under a 32-byte master key.
//! Each seal uses a fresh 24-byte nonce from the operating system's CSPRNG
//! (24 bytes is large enough that random nonces never collide in practice).
//! The caller supplies associated data that names what the ciphertext is for
//! (the secret's id and scope), so a ciphertext copied to another row fails
//! to open.
//!
//! The key comes from `EXO_ENCRYPTION_KEY` (64 hex digits or base64 of 32
//! bytes) or else from a key file, `$XDG_CONFIG_HOME/exo/key` (by default
//! `~/.config/exo/key`), created with mode 0600 on first use.
//!
//! Variables exo moved out of its process environment at start-up (so
//! that the commands it runs cannot read them from `/proc`) are read
//! through [`environment::var_os`]; this crate reads its variables that
//! way.
//!
//! This crate knows nothing of SQLite or of exo's scopes.

pub mod environment;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

/// The environment variable that holds the master key.
pub const KEY_ENV: &str = "EXO_ENCRYPTION_KEY";

/// Length of a nonce, in bytes.
pub const NONCE_LEN: usize = 24;

/// Why a key could not be had or a secret could not be opened. Messages never
/// contain key material or plaintext.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `EXO_ENCRYPTION_KEY` is set but is not a 32-byte key.
    #[error("{KEY_ENV} must be 32 bytes written as 64 hex digits or as base64")]
    MalformedEnvKey,
    /// The key file exists but does not hold a 32-byte key.
    #[error("key file {0} does not hold a 32-byte key (64 hex digits)")]
    MalformedKeyFile(PathBuf),
    /// The key file can be read by other users.
    #[error("key file {path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`")]
    KeyFileTooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// There is nowhere to keep a key file.
    #[error(
        "cannot locate a config directory for the key file: set {KEY_ENV}, XDG_CONFIG_HOME or HOME"
    )]
    NoConfigDir,
    /// Reading or writing the key file failed.
    #[error("key file {path}: {source}")]
    KeyFileIo {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The OS random source failed.
    #[error("the operating system's random source failed: {0}")]
    Random(getrandom::Error),
    /// Authentication failed: a different key, or a ciphertext moved from
    /// another row, or corruption.
    #[error("cannot decrypt secrets: wrong key?")]
    Decrypt,
}

/// The 32-byte master key. Zeroed on drop; its `Debug` shows nothing.
#[derive(Clone)]
pub struct Key(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// Where the key came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// From `EXO_ENCRYPTION_KEY`.
    Env,
    /// From an existing key file.
    File(PathBuf),
    /// A key file was just created.
    CreatedFile(PathBuf),
}

impl Key {
    /// Builds a key from its bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Key(Zeroizing::new(bytes))
    }

    /// A fresh random key.
    pub fn generate() -> Result<Self, Error> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::getrandom(bytes.as_mut()).map_err(Error::Random)?;
        Ok(Key(bytes))
    }

    /// Parses 64 hex digits or base64 (standard or URL-safe, padded or not)
    /// of exactly 32 bytes. Surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let mut bytes = Zeroizing::new([0u8; 32]);
        if text.len() == 64 && hex::decode_to_slice(text, bytes.as_mut()).is_ok() {
            return Some(Key(bytes));
        }
        let engines = [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ];
        for engine in engines {
            if let Ok(decoded) = engine.decode(text) {
                let decoded = Zeroizing::new(decoded);
                if decoded.len() == 32 {
                    bytes.copy_from_slice(&decoded);
                    return Some(Key(bytes));
                }
            }
        }
        None
    }

    /// Loads the key from `EXO_ENCRYPTION_KEY`, else from the key file,
    /// creating the file (mode 0600) when `create` is true and it is missing.
    /// Returns `Ok(None)` when there is no key and `create` is false.
    pub fn load(create: bool) -> Result<Option<(Key, KeySource)>, Error> {
        if let Some(text) = environment::var_os(KEY_ENV) {
            let text = text.to_str().ok_or(Error::MalformedEnvKey)?;
            let key = Key::parse(text).ok_or(Error::MalformedEnvKey)?;
            return Ok(Some((key, KeySource::Env)));
        }
        let path = default_key_file()?;
        Key::load_file(&path, create)
    }

    /// Loads the key from `path`, creating it when `create` is true and it is
    /// missing.
    pub fn load_file(path: &Path, create: bool) -> Result<Option<(Key, KeySource)>, Error> {
        let io = |source| Error::KeyFileIo {
            path: path.to_path_buf(),
            source,
        };
        match fs::metadata(path) {
            Ok(metadata) => {
                let mode = metadata.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(Error::KeyFileTooOpen {
                        path: path.to_path_buf(),
                        mode,
                    });
                }
                let text = Zeroizing::new(fs::read_to_string(path).map_err(io)?);
                let key =
                    Key::parse(&text).ok_or_else(|| Error::MalformedKeyFile(path.to_path_buf()))?;
                Ok(Some((key, KeySource::File(path.to_path_buf()))))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound && create => {
                let key = Key::generate()?;
                if let Some(dir) = path.parent() {
                    fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(dir)
                        .map_err(io)?;
                }
                // Written whole to a private temporary file, made durable,
                // then linked into place: another process sees either no
                // key file or a complete one, never an empty one.
                let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
                let text = Zeroizing::new(format!("{}\n", hex::encode(key.0.as_ref())));
                let written = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&temporary)
                    .and_then(|mut file| {
                        file.write_all(text.as_bytes())?;
                        file.sync_all()
                    });
                if let Err(err) = written {
                    let _ = fs::remove_file(&temporary);
                    return Err(io(err));
                }
                let linked = fs::hard_link(&temporary, path);
                let _ = fs::remove_file(&temporary);
                match linked {
                    Ok(()) => {}
                    // Another process created it first: use theirs.
                    Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                        return Key::load_file(path, false);
                    }
                    Err(err) => return Err(io(err)),
                }
                if let Some(dir) = path.parent() {
                    fs::File::open(dir)
                        .and_then(|dir| dir.sync_all())
                        .map_err(io)?;
                }
                Ok(Some((key, KeySource::CreatedFile(path.to_path_buf()))))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(io(err)),
        }
    }

    /// Seals `plaintext`, binding it to `associated_data`.
    pub fn seal(&self, plaintext: &[u8], associated_data: &[u8]) -> Result<Sealed, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce).map_err(Error::Random)?;
        let cipher = XChaCha20Poly1305::new(self.0.as_ref().into());
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: associated_data,
                },
            )
            // Encryption fails only for inputs far beyond any secret's size.
            .map_err(|_| Error::Decrypt)?;
        Ok(Sealed { nonce, ciphertext })
    }

    /// Opens a sealed value; fails with [`Error::Decrypt`] for a wrong key,
    /// different associated data or a tampered ciphertext.
    pub fn open(
        &self,
        sealed: &Sealed,
        associated_data: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let cipher = XChaCha20Poly1305::new(self.0.as_ref().into());
        cipher
            .decrypt(
                XNonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: associated_data,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| Error::Decrypt)
    }
}

/// A nonce and the ciphertext with its authentication tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// The nonce.
    pub nonce: [u8; NONCE_LEN],
    /// Ciphertext followed by the 16-byte tag.
    pub ciphertext: Vec<u8>,
}

/// `$XDG_CONFIG_HOME/exo/key`, or `$HOME/.config/exo/key`.
pub fn default_key_file() -> Result<PathBuf, Error> {
    let config_home = environment::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|path| path.is_absolute())
        .or_else(|| environment::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
        .ok_or(Error::NoConfigDir)?;
    Ok(config_home.join("exo").join("key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_aad_binding() {
        let key = Key::generate().unwrap();
        let sealed = key.seal(b"sk-test", b"secret:1|root").unwrap();
        assert_eq!(
            key.open(&sealed, b"secret:1|root").unwrap().as_slice(),
            b"sk-test"
        );
        assert!(matches!(
            key.open(&sealed, b"secret:2|root"),
            Err(Error::Decrypt)
        ));
        let other = Key::generate().unwrap();
        let err = other.open(&sealed, b"secret:1|root").unwrap_err();
        assert_eq!(err.to_string(), "cannot decrypt secrets: wrong key?");
        let again = key.seal(b"sk-test", b"secret:1|root").unwrap();
        assert_ne!(again.nonce, sealed.nonce, "every seal draws a fresh nonce");
    }

    #[test]
    fn parses_hex_and_base64() {
        let hex_key = "00".repeat(31) + "ff";
        assert!(Key::parse(&hex_key).is_some());
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert!(Key::parse(&b64).is_some());
        assert!(Key::parse(b64.trim_end_matches('=')).is_some());
        assert!(Key::parse("too short").is_none());
        assert!(Key::parse(&"00".repeat(31)).is_none());
    }

    #[test]
    fn key_file_is_created_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exo").join("key");
        assert!(Key::load_file(&path, false).unwrap().is_none());
        let (created, source) = Key::load_file(&path, true).unwrap().unwrap();
        assert_eq!(source, KeySource::CreatedFile(path.clone()));
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (loaded, _) = Key::load_file(&path, true).unwrap().unwrap();
        let sealed = created.seal(b"x", b"").unwrap();
        assert_eq!(loaded.open(&sealed, b"").unwrap().as_slice(), b"x");

        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Key::load_file(&path, false),
            Err(Error::KeyFileTooOpen { .. })
        ));
    }
}
