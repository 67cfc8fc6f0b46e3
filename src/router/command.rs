//! The command router: shell commands set and read the weight, for routers
//! cutover does not drive itself (Kubernetes gateways, service meshes, clouds).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use super::{Router, RouterError};
use crate::check::{shell, CheckContext};

pub struct CommandRouter {
    set_weight: String,
    get_weight: Option<String>,
    ctx: CheckContext,
    timeout: Duration,
    /// The last weight set, read back when there is no get_weight command.
    last: AtomicU8,
}

impl CommandRouter {
    pub fn new(set_weight: String, get_weight: Option<String>, ctx: CheckContext) -> Self {
        CommandRouter {
            set_weight,
            get_weight,
            ctx,
            timeout: Duration::from_secs(60),
            last: AtomicU8::new(0),
        }
    }
}

#[async_trait]
impl Router for CommandRouter {
    fn kind(&self) -> &'static str {
        "command"
    }

    async fn set_weight(&self, weight: u8) -> Result<(), RouterError> {
        if weight > 100 {
            return Err(RouterError::new(
                "command",
                format!("weight {weight} is above 100"),
            ));
        }
        let mut env = BTreeMap::new();
        env.insert("CUTOVER_WEIGHT".to_string(), weight.to_string());
        let a = shell::run(
            &self.set_weight,
            &env,
            &self.ctx,
            self.timeout,
            "router set_weight",
            true,
        )
        .await;
        if !a.passed {
            let detail = a.tail.last().map(|l| format!(": {l}")).unwrap_or_default();
            return Err(RouterError::new(
                "command",
                format!("set_weight failed ({}){detail}", a.message),
            ));
        }
        self.last.store(weight, Ordering::SeqCst);
        Ok(())
    }

    async fn current_weight(&self) -> Result<u8, RouterError> {
        let Some(cmd) = &self.get_weight else {
            return Ok(self.last.load(Ordering::SeqCst));
        };
        let a = shell::run(
            cmd,
            &BTreeMap::new(),
            &self.ctx,
            self.timeout,
            "router get_weight",
            false,
        )
        .await;
        if !a.passed {
            return Err(RouterError::new(
                "command",
                format!("get_weight failed ({})", a.message),
            ));
        }
        a.tail
            .iter()
            .rev()
            .find_map(|l| l.trim().parse::<u8>().ok().filter(|w| *w <= 100))
            .ok_or_else(|| {
                RouterError::new(
                    "command",
                    format!(
                        "get_weight printed no weight from 0 to 100 (last line: {:?})",
                        a.tail.last().map(String::as_str).unwrap_or("")
                    ),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sets_and_reads_back_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("w");
        let r = CommandRouter::new(
            format!("echo $CUTOVER_WEIGHT > {}", f.display()),
            Some(format!("cat {}", f.display())),
            CheckContext {
                kill_grace: Duration::from_millis(200),
                ..Default::default()
            },
        );
        r.set_weight(25).await.unwrap();
        assert_eq!(r.current_weight().await.unwrap(), 25);
        let bad = CommandRouter::new("exit 4".into(), None, CheckContext::default());
        let e = bad.set_weight(5).await.unwrap_err().to_string();
        assert!(e.contains("exit status 4"), "{e}");
    }
}
