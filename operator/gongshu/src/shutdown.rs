//! Graceful shutdown: SIGTERM or SIGINT flips one watch channel that every part of the process
//! listens to.

use std::future::Future;

use futures::FutureExt;
use tokio::sync::watch;

/// The sending side: whoever triggers shutdown.
#[derive(Debug)]
pub struct Trigger(watch::Sender<bool>);

/// The listening side; cheap to clone.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<bool>);

/// A new shutdown channel, not triggered.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    /// Starts shutdown. Idempotent.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    /// A listener for this trigger.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    /// Whether shutdown has started.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once shutdown has started (at once if it has), or when the trigger is dropped.
    pub async fn wait(mut self) {
        // An error means the trigger is gone, which also ends the process's work.
        let _ = self.0.wait_for(|triggered| *triggered).await;
    }

    /// [`Shutdown::wait`] as a `Send + Sync` future, as `Controller::graceful_shutdown_on`
    /// requires; the watch receiver's own future is not `Sync`.
    pub fn signalled(self) -> impl Future<Output = ()> + Send + Sync + 'static {
        let (tx, rx) = futures::channel::oneshot::channel::<()>();
        tokio::spawn(async move {
            self.wait().await;
            let _ = tx.send(());
        });
        rx.map(drop)
    }
}

/// A listener that fires when either `a` or `b` does.
pub fn either(a: Shutdown, b: Shutdown) -> Shutdown {
    let (trigger, combined) = channel();
    tokio::spawn(async move {
        tokio::select! {
            () = a.wait() => {}
            () = b.wait() => {}
        }
        trigger.trigger();
    });
    combined
}

/// Triggers `trigger` on the first SIGTERM or SIGINT. Returns an error if the handlers cannot
/// be installed. Later signals are ignored: shutdown is bounded by its own drain timeout, and
/// the kubelet follows up with SIGKILL anyway.
pub fn on_signals(trigger: Trigger) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutting down gracefully");
        trigger.trigger();
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn listeners_wake_when_shutdown_is_triggered() {
        let (trigger, shutdown) = channel();
        assert!(!shutdown.is_triggered());
        let waiting = tokio::spawn(shutdown.clone().signalled());
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiting.is_finished());
        trigger.trigger();
        assert!(
            tokio::time::timeout(Duration::from_secs(1), waiting)
                .await
                .is_ok()
        );
        assert!(shutdown.is_triggered());
        tokio::time::timeout(Duration::from_secs(1), shutdown.wait())
            .await
            .ok();
    }

    #[tokio::test]
    async fn either_fires_when_one_side_does() {
        let (a, a_listener) = channel();
        let (_b, b_listener) = channel();
        let combined = either(a_listener, b_listener);
        assert!(!combined.is_triggered());
        a.trigger();
        assert!(
            tokio::time::timeout(Duration::from_secs(1), combined.wait())
                .await
                .is_ok()
        );
    }
}
