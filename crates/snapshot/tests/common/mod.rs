//! Helpers shared by the snapshot integration tests.
//!
//! Every test works on real directories in its own temporary directory: a
//! workspace `ws/` and an exo root `exo/` beside it (or inside it, where a
//! test says so). git, where used, runs with a hermetic environment.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use exo_snapshot::{Options, Shadow};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// A temporary directory with a workspace and an exo root.
pub struct Fixture {
    pub dir: TempDir,
    pub ws: PathBuf,
    pub exo: PathBuf,
}

impl Fixture {
    /// `ws/` and `exo/` side by side.
    pub fn new() -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("exo-snapshot-test-")
            .tempdir()
            .expect("creating a temporary directory");
        let ws = dir.path().join("ws");
        let exo = dir.path().join("exo");
        fs::create_dir_all(&ws).unwrap();
        fs::create_dir_all(&exo).unwrap();
        Fixture { dir, ws, exo }
    }

    /// The exo root inside the workspace, at `ws/.exo`.
    pub fn with_exo_inside() -> Fixture {
        let mut fixture = Fixture::new();
        fixture.exo = fixture.ws.join(".exo");
        fs::create_dir_all(&fixture.exo).unwrap();
        fixture
    }

    pub fn shadow(&self) -> Shadow {
        Shadow::open(&self.exo, &self.ws, Options::default()).expect("opening the shadow")
    }

    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.ws.join(rel)
    }

    pub fn write(&self, rel: impl AsRef<Path>, content: impl AsRef<[u8]>) {
        write(&self.ws.join(rel), content.as_ref());
    }

    pub fn read(&self, rel: impl AsRef<Path>) -> Vec<u8> {
        fs::read(self.ws.join(rel)).unwrap()
    }

    pub fn set_exec(&self, rel: impl AsRef<Path>, exec: bool) {
        set_exec(&self.ws.join(rel), exec);
    }

    pub fn symlink(&self, target: impl AsRef<Path>, rel: impl AsRef<Path>) {
        let link = self.ws.join(rel);
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        std::os::unix::fs::symlink(target, link).unwrap();
    }

    pub fn remove(&self, rel: impl AsRef<Path>) {
        let path = self.ws.join(rel);
        match fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.is_dir() => fs::remove_dir_all(&path).unwrap(),
            Ok(_) => fs::remove_file(&path).unwrap(),
            Err(_) => {}
        }
    }
}

pub fn write(path: &Path, content: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    // Replace symlinks rather than writing through them.
    if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        fs::remove_file(path).unwrap();
    }
    fs::write(path, content).unwrap();
}

pub fn set_exec(path: &Path, exec: bool) {
    let mut permissions = fs::metadata(path).unwrap().permissions();
    let mode = permissions.mode();
    permissions.set_mode(if exec { mode | 0o111 } else { mode & !0o111 });
    fs::set_permissions(path, permissions).unwrap();
}

/// A non-UTF-8 file name.
pub fn latin1_name() -> PathBuf {
    PathBuf::from(OsStr::from_bytes(b"caf\xe9.txt"))
}

/// What a path is on disk, as far as snapshots care.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    File { content: Vec<u8>, exec: bool },
    Symlink(PathBuf),
    Dir,
}

/// Every path under `root` (relative), not following symlinks, leaving out
/// entries named `.git` and the relative paths in `skip`.
pub fn disk_state(root: &Path, skip: &[&str]) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    collect(root, Path::new(""), skip, &mut out);
    out
}

fn collect(root: &Path, rel: &Path, skip: &[&str], out: &mut BTreeMap<PathBuf, Node>) {
    let dir = root.join(rel);
    for entry in fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == ".git" {
            continue;
        }
        let child = rel.join(&name);
        if skip.iter().any(|s| child == Path::new(s)) {
            continue;
        }
        let metadata = fs::symlink_metadata(entry.path()).unwrap();
        if metadata.file_type().is_symlink() {
            out.insert(child, Node::Symlink(fs::read_link(entry.path()).unwrap()));
        } else if metadata.is_dir() {
            out.insert(child.clone(), Node::Dir);
            collect(root, &child, skip, out);
        } else if metadata.is_file() {
            out.insert(
                child,
                Node::File {
                    content: fs::read(entry.path()).unwrap(),
                    exec: metadata.mode() & 0o100 != 0,
                },
            );
        }
    }
}

/// Path, content hash and full mode of every file and directory under `dir`
/// (including `.git` internals), for proving nothing changed.
pub fn fingerprint(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    fingerprint_into(dir, Path::new(""), &mut out);
    out
}

fn fingerprint_into(root: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, String>) {
    for entry in fs::read_dir(root.join(rel)).unwrap() {
        let entry = entry.unwrap();
        let child = rel.join(entry.file_name());
        let metadata = fs::symlink_metadata(entry.path()).unwrap();
        let mode = metadata.mode();
        if metadata.file_type().is_symlink() {
            let target = fs::read_link(entry.path()).unwrap();
            out.insert(child, format!("link {mode:o} {}", target.display()));
        } else if metadata.is_dir() {
            out.insert(child.clone(), format!("dir {mode:o}"));
            fingerprint_into(root, &child, out);
        } else {
            let digest = Sha256::digest(fs::read(entry.path()).unwrap());
            out.insert(
                child,
                format!(
                    "file {mode:o} {} mtime {}.{}",
                    hex::encode(digest),
                    metadata.mtime(),
                    metadata.mtime_nsec()
                ),
            );
        }
    }
}

/// A git command with a hermetic environment, run in `dir`.
pub fn git(dir: &Path, home: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", home.join(".gitconfig"))
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
        .env("LC_ALL", "C")
        .output()
        .expect("running git");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Initializes a hermetic git repository in `dir` (branch `main`, no gpg).
pub fn git_init(dir: &Path, home: &Path) {
    fs::create_dir_all(home).unwrap();
    fs::write(
        home.join(".gitconfig"),
        "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n[core]\n\tautocrlf = false\n",
    )
    .unwrap();
    git(dir, home, &["init", "-q"]);
}
