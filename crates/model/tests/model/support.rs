//! Helpers for the async tests. The fake model API server they run against
//! is the `exo-fake-model` crate.

use std::time::Duration;

/// Runs a future with a generous limit, so a hang fails the test instead of
/// the suite.
pub async fn within<T>(limit: Duration, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(limit, future)
        .await
        .expect("the test took too long")
}
