//! A stand-in router for tests that drive the engine in-process: it applies
//! a weight at once and reads back what it was given. (The real routers
//! have tests of their own, with real servers.)

use std::sync::atomic::{AtomicU8, Ordering};

use async_trait::async_trait;
use cutover::router::{Router, RouterError};

#[derive(Default)]
pub struct RecordingRouter {
    /// The weight applied last, percent.
    pub weight: AtomicU8,
}

#[async_trait]
impl Router for RecordingRouter {
    fn kind(&self) -> &'static str {
        "test"
    }
    async fn set_weight(&self, weight: u8) -> Result<(), RouterError> {
        self.weight.store(weight, Ordering::SeqCst);
        Ok(())
    }
    async fn current_weight(&self) -> Result<u8, RouterError> {
        Ok(self.weight.load(Ordering::SeqCst))
    }
}
