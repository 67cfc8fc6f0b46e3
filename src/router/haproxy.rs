//! The HAProxy router: server weights over the runtime API.
//! (Placeholder: interface only.)

use async_trait::async_trait;

use super::{Router, RouterError};
use crate::config::HaproxyTarget;

pub struct HaproxyRouter {
    target: HaproxyTarget,
}

impl HaproxyRouter {
    pub fn new(target: HaproxyTarget) -> Self {
        HaproxyRouter { target }
    }
}

#[async_trait]
impl Router for HaproxyRouter {
    fn kind(&self) -> &'static str {
        "haproxy"
    }
    async fn set_weight(&self, _weight: u8) -> Result<(), RouterError> {
        Err(RouterError::new(
            "haproxy",
            format!("{}: not built yet", self.target.socket),
        ))
    }
    async fn current_weight(&self) -> Result<u8, RouterError> {
        Err(RouterError::new("haproxy", "not built yet"))
    }
}
