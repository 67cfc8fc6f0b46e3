//! Fleet benchmark: a rollback to weight 0 on a group of 1, 5 and 20 real
//! HAProxy instances (`[[traffic.routers]]`), each reached over its own
//! runtime API socket. Each round moves every member to 50% (not timed),
//! then times `RouterGroup::apply(0)`: weight 0 set on every member at once
//! and read back from each. Printed per size: the median and p99 time until
//! every member confirmed, and the median and p99 skew (first to last
//! confirmation). HAProxy missing: skipped with a note.

#[path = "../tests/common/mod.rs"]
mod common;

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use cutover::config::HaproxyTarget;
use cutover::router::group::{Member, RouterGroup};
use cutover::router::haproxy::HaproxyRouter;

type BoxError = Box<dyn Error + Send + Sync>;

/// Rounds per size; `BENCH_ROUNDS` overrides.
const ROUNDS: usize = 200;
const SIZES: [usize; 3] = [1, 5, 20];
/// Each member's bound for one change (set and read back).
const TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> Result<(), BoxError> {
    if !common::have_external("haproxy") {
        return Ok(());
    }
    let rounds = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(ROUNDS);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    // The servers need not answer: only the runtime API is exercised.
    let (stable, canary) = (common::free_addr(), common::free_addr());
    let most = SIZES.iter().copied().max().unwrap_or(1);
    let fleet: Vec<common::Haproxy> = (1..=most)
        .map(|i| {
            let d = dir.path().join(format!("lb{i}"));
            std::fs::create_dir_all(&d).map(|()| common::Haproxy::start(&d, stable, canary))
        })
        .collect::<Result<_, _>>()?;
    println!(
        "rollback to 0 confirmed on every member of a group of HAProxy instances ({rounds} rounds each, runtime API over unix sockets)"
    );
    println!(
        "{:>8}  {:>14}  {:>14}  {:>12}  {:>12}",
        "routers", "median to all", "p99 to all", "median skew", "p99 skew"
    );
    for size in SIZES {
        let members = fleet[..size]
            .iter()
            .enumerate()
            .map(|(i, h)| Member {
                name: format!("lb{}", i + 1),
                router: Arc::new(HaproxyRouter::new(HaproxyTarget {
                    socket: h.socket.display().to_string(),
                    backend: "app".into(),
                    stable_server: "v1".into(),
                    canary_server: "v2".into(),
                })),
            })
            .collect();
        let group = RouterGroup::new(members);
        let (mut all, mut skew) = runtime.block_on(rollbacks(&group, rounds))?;
        all.sort_by(f64::total_cmp);
        skew.sort_by(f64::total_cmp);
        println!(
            "{size:>8}  {:>11.2} ms  {:>11.2} ms  {:>9.2} ms  {:>9.2} ms",
            quantile(&all, 0.5),
            quantile(&all, 0.99),
            quantile(&skew, 0.5),
            quantile(&skew, 0.99)
        );
    }
    Ok(())
}

/// Times `rounds` rollbacks: the time until every member confirmed 0, and
/// the skew, in milliseconds.
async fn rollbacks(group: &RouterGroup, rounds: usize) -> Result<(Vec<f64>, Vec<f64>), BoxError> {
    let mut all = Vec::with_capacity(rounds);
    let mut skew = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let up = group.apply(50, TIMEOUT).await;
        if !up.confirmed() {
            return Err(format!("50% not confirmed: {}", up.failures()).into());
        }
        let t0 = tokio::time::Instant::now();
        let down = group.apply(0, TIMEOUT).await;
        let elapsed = t0.elapsed().as_secs_f64() * 1000.0;
        if !down.confirmed() {
            return Err(format!("0% not confirmed: {}", down.failures()).into());
        }
        all.push(elapsed);
        skew.push(down.skew_ms.unwrap_or(0.0));
    }
    Ok((all, skew))
}

/// The `q` quantile of sorted values (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}
