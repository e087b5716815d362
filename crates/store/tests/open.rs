//! Opening and creating a store: creation is atomic, so processes (here
//! threads with their own handles) creating one root at once all end up
//! with the same complete store, and what is not an exo store is refused
//! untouched.

mod common;

use std::sync::{Arc, Barrier};

use common::temp_dir;
use exo_store::{Error, OpenMode, Store, DB_FILE};

#[test]
fn handles_creating_one_store_at_once_share_it() {
    let dir = temp_dir();
    let root = dir.path().join("root");
    let count = 8;
    let barrier = Arc::new(Barrier::new(count));
    let handles: Vec<_> = (0..count)
        .map(|n| {
            let (root, barrier) = (root.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                let store = Store::open(&root, OpenMode::Create).expect("opening");
                store
                    .create_agent(&format!("Agent {n}"), None, Default::default())
                    .expect("creating an agent");
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    let store = Store::open(&root, OpenMode::Existing).unwrap();
    assert_eq!(store.agents().unwrap().len(), count);
    // Only the store's own files are left: no half-built temporary one.
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with(&format!("{DB_FILE}-")))
        .collect();
    names.sort();
    assert_eq!(names, [DB_FILE]);
}

#[test]
fn an_empty_database_file_is_refused_untouched() {
    let dir = temp_dir();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let db = root.join(DB_FILE);
    std::fs::write(&db, b"").unwrap();
    for mode in [OpenMode::Existing, OpenMode::Create] {
        let err = Store::open(&root, mode).unwrap_err();
        assert!(matches!(err, Error::EmptyStore(_)), "{err}");
        assert_eq!(err.code(), "not_a_store");
        assert_eq!(
            err.to_string(),
            format!(
                "{} is empty: not an exo store (left untouched)",
                db.display()
            )
        );
    }
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0);
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 1);
}

#[test]
fn is_inside_root_resolves_symlinks_and_missing_tails() {
    let dir = temp_dir();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink(&root, dir.path().join("to-root")).unwrap();
    std::os::unix::fs::symlink("root/not-yet", dir.path().join("dangling")).unwrap();
    std::os::unix::fs::symlink("loop", dir.path().join("loop")).unwrap();
    let inside = [
        root.clone(),
        root.join("exo.db"),
        root.join("a/b/c"),
        outside.join("../root/x"),
        dir.path().join("to-root/x"),
        dir.path().join("dangling"),
        dir.path().join("to-root/../root"),
    ];
    for path in inside {
        assert!(
            exo_store::is_inside_root(&root, &path).unwrap(),
            "{}",
            path.display()
        );
    }
    let not_inside = [
        dir.path().to_path_buf(),
        outside.join("x"),
        dir.path().join("root-sibling"),
        dir.path().join("to-root/../outside"),
    ];
    for path in not_inside {
        assert!(
            !exo_store::is_inside_root(&root, &path).unwrap(),
            "{}",
            path.display()
        );
    }
    assert!(exo_store::is_inside_root(&root, &dir.path().join("loop")).is_err());
}
