//! Routers: what moves traffic between the stable and the canary version.
//!
//! The engine sees the [`Router`] trait; each implementation is one file. A
//! group of routers (`group.rs`) is a [`Router`] for reads, and the engine
//! drives its changes through [`group::RouterGroup`] to see each member.

pub mod builtin;
pub mod command;
pub mod connections;
pub mod group;
pub mod haproxy;
pub mod nginx;
pub mod serve;

use std::sync::Arc;

use async_trait::async_trait;

use crate::metrics::TrafficStats;
use serve::ConnectionCounters;

/// Why a router could not set or read the weight.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("{router} router: {message}")]
    Failed { router: String, message: String },
}

impl RouterError {
    pub fn new(router: &str, message: impl Into<String>) -> Self {
        RouterError::Failed {
            router: router.to_string(),
            message: message.into(),
        }
    }
}

/// Moves traffic: `weight` is the percent of requests sent to the canary (0..=100).
#[async_trait]
pub trait Router: Send + Sync {
    /// Short name for logs and the journal ("builtin", "haproxy", ...).
    fn kind(&self) -> &'static str;
    /// Returns once the weight is applied and holds from the next request.
    async fn set_weight(&self, weight: u8) -> Result<(), RouterError>;
    /// Reads the weight the router really applies now.
    async fn current_weight(&self) -> Result<u8, RouterError>;
    /// The router's own health view of the stable server: `Some(true)` when
    /// its health check sees it up, `Some(false)` when down, `None` when the
    /// router has no such view.
    async fn stable_health(&self) -> Result<Option<bool>, RouterError> {
        Ok(None)
    }
}

/// A router built from the plan, with the built-in router's own traffic counts
/// when it is the built-in one (the built-in metric source reads them).
pub struct BuiltRouter {
    pub router: Arc<dyn Router>,
    pub stats: Option<Arc<TrafficStats>>,
    /// Where clients connect (built-in router only).
    pub listen: Option<std::net::SocketAddr>,
    /// The built-in router's client connection counters: refused at the
    /// cap, closed by each timeout (built-in router only).
    pub connections: Option<Arc<ConnectionCounters>>,
    /// The same router as a group, when the plan names several
    /// (`[[traffic.routers]]`): changes go through it, member by member.
    pub group: Option<Arc<group::RouterGroup>>,
}

/// Builds the router the plan names. The built-in router binds its listener here.
pub async fn build(
    plan: &crate::config::RouterPlan,
    window: std::time::Duration,
    ctx: crate::check::CheckContext,
) -> Result<BuiltRouter, RouterError> {
    use crate::config::RouterPlan;
    match plan {
        RouterPlan::Builtin {
            listen,
            stable,
            canary,
        } => {
            let r = builtin::BuiltinRouter::start(*listen, *stable, *canary, window)
                .await
                .map_err(|e| {
                    RouterError::new("builtin", format!("cannot listen on {listen}: {e}"))
                })?;
            let stats = r.stats();
            let listen = r.local_addr();
            let connections = r.connections();
            Ok(BuiltRouter {
                router: Arc::new(r),
                stats: Some(stats),
                listen: Some(listen),
                connections: Some(connections),
                group: None,
            })
        }
        RouterPlan::Group(members) => {
            let mut built = Vec::with_capacity(members.len());
            for m in members {
                built.push(group::Member {
                    name: m.name.clone(),
                    router: build_member(&m.router, ctx.clone())?,
                });
            }
            let g = Arc::new(group::RouterGroup::new(built));
            Ok(BuiltRouter {
                router: g.clone(),
                stats: None,
                listen: None,
                connections: None,
                group: Some(g),
            })
        }
        other => Ok(BuiltRouter {
            router: build_member(other, ctx)?,
            stats: None,
            listen: None,
            connections: None,
            group: None,
        }),
    }
}

/// A router that needs no listener of its own: haproxy, nginx or command
/// (what a group may hold).
fn build_member(
    plan: &crate::config::RouterPlan,
    ctx: crate::check::CheckContext,
) -> Result<Arc<dyn Router>, RouterError> {
    use crate::config::RouterPlan;
    match plan {
        RouterPlan::Command {
            set_weight,
            get_weight,
        } => Ok(Arc::new(command::CommandRouter::new(
            set_weight.clone(),
            get_weight.clone(),
            ctx,
        ))),
        RouterPlan::Haproxy(target) => Ok(Arc::new(haproxy::HaproxyRouter::new(target.clone()))),
        RouterPlan::Nginx(cfg) => Ok(Arc::new(nginx::NginxRouter::new(cfg.clone(), ctx))),
        RouterPlan::Builtin { .. } | RouterPlan::Group(_) => Err(RouterError::new(
            plan.kind(),
            "a group holds haproxy, nginx and command routers only",
        )),
    }
}
