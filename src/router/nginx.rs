//! The nginx router: an upstream block with weights, written atomically, tested, reloaded.
//! (Placeholder: interface only.)

use std::path::PathBuf;

use async_trait::async_trait;

use super::{Router, RouterError};
use crate::check::CheckContext;

pub struct NginxRouter {
    upstream_file: PathBuf,
}

pub struct NginxConfig {
    pub upstream_file: PathBuf,
    pub upstream: String,
    pub stable: String,
    pub canary: String,
    pub test: String,
    pub reload: String,
}

impl NginxRouter {
    pub fn new(cfg: NginxConfig, ctx: CheckContext) -> Self {
        let _ = ctx;
        NginxRouter {
            upstream_file: cfg.upstream_file,
        }
    }
}

#[async_trait]
impl Router for NginxRouter {
    fn kind(&self) -> &'static str {
        "nginx"
    }
    async fn set_weight(&self, _weight: u8) -> Result<(), RouterError> {
        Err(RouterError::new(
            "nginx",
            format!("{}: not built yet", self.upstream_file.display()),
        ))
    }
    async fn current_weight(&self) -> Result<u8, RouterError> {
        Err(RouterError::new("nginx", "not built yet"))
    }
}
