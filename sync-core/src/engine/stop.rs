//! Graceful stop.

use std::sync::Arc;

use tokio::sync::watch;

/// Signals a running pipeline to stop gracefully. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StopHandle(Arc<watch::Sender<bool>>);

impl Default for StopHandle {
    fn default() -> Self {
        Self(Arc::new(watch::channel(false).0))
    }
}

impl StopHandle {
    /// A handle that has not been triggered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the pipeline to stop: the window being read is abandoned (not checkpointed),
    /// windows already handed to the sink finish.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }

    /// True once [`stop`](Self::stop) was called.
    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once [`stop`](Self::stop) is called.
    pub async fn stopped(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }
}
