//! Ctrl-C and SIGTERM for `robsond dev`: installed before anything is
//! started, so a signal at any point leads to the same orderly stop instead
//! of killing the process and leaving the server running.

use std::future::Future;

use anyhow::Context as _;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// A stop request, shared by every part of the session; cheap to clone.
#[derive(Debug, Clone)]
pub struct Stop(watch::Receiver<Option<&'static str>>);

impl Stop {
    /// Installs the SIGINT and SIGTERM handlers. Must run in the actix System.
    pub fn install() -> anyhow::Result<Stop> {
        let mut term =
            signal(SignalKind::terminate()).context("Failed to install SIGTERM handler")?;
        let mut int =
            signal(SignalKind::interrupt()).context("Failed to install SIGINT handler")?;
        let (tx, rx) = watch::channel(None);
        actix_rt::spawn(async move {
            let which = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(signal = which, "Stopping.");
            // The receivers keep the value after the sender is gone.
            let _ = tx.send(Some(which));
        });
        Ok(Stop(rx))
    }

    /// Resolves once a stop is requested (never, if the handler task is gone
    /// without one).
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(Option::is_some).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// `work`'s output, or `None` when a stop is requested first (`work` is
    /// then dropped).
    pub async fn unless_stopped<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            biased;
            _ = self.wait() => None,
            out = work => Some(out),
        }
    }
}
