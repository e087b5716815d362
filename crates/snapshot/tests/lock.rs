//! One shadow per workspace at a time: the second opener waits, then gives
//! up with a clear error.

mod common;

use std::time::{Duration, Instant};

use common::Fixture;
use exo_snapshot::{Error, Options, ScanHint, Shadow};

#[test]
fn a_second_opener_waits_then_fails_busy() {
    let fixture = Fixture::new();
    fixture.write("a", "a");
    let mut first = fixture.shadow();
    let started = Instant::now();
    let error = Shadow::open_with_timeout(
        &fixture.exo,
        &fixture.ws,
        Options::default(),
        Duration::from_millis(300),
    )
    .err()
    .expect("the lock is held");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(matches!(error, Error::Busy(_)), "{error}");
    assert!(
        error
            .to_string()
            .starts_with("busy: another process holds the snapshot lock"),
        "{error}"
    );
    first.snapshot(ScanHint::Full).unwrap();
    drop(first);
    // Released on drop.
    Shadow::open_with_timeout(
        &fixture.exo,
        &fixture.ws,
        Options::default(),
        Duration::ZERO,
    )
    .unwrap();
}

#[test]
fn different_workspaces_get_different_shadows() {
    let fixture = Fixture::new();
    let other_ws = fixture.dir.path().join("other");
    std::fs::create_dir_all(&other_ws).unwrap();
    let one = fixture.shadow();
    let two = Shadow::open(&fixture.exo, &other_ws, Options::default()).unwrap();
    assert_ne!(one.dir(), two.dir());
    assert_eq!(one.dir().parent(), two.dir().parent());
}

#[test]
fn a_missing_workspace_is_not_found() {
    let fixture = Fixture::new();
    let missing = fixture.dir.path().join("missing");
    let error = Shadow::open(&fixture.exo, &missing, Options::default())
        .err()
        .unwrap();
    assert!(matches!(error, Error::NotFound(_)), "{error}");
}

#[test]
fn shadow_and_watcher_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<Shadow>();
    assert_send::<exo_snapshot::Watcher>();
    assert_send::<Error>();
    let fixture = Fixture::new();
    fixture.write("a", "a");
    let mut shadow = fixture.shadow();
    let snapshot = std::thread::spawn(move || shadow.snapshot(ScanHint::Full).unwrap())
        .join()
        .unwrap();
    assert_eq!(snapshot.added, 1);
}
