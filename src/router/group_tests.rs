//! The group on stand-in routers: all confirm, one fails, one is silent,
//! one reads back another weight; the common weight and the health view.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use super::*;

/// A router that keeps its weight in memory, and can be made to fail, to
/// hang, or to read back something else.
#[derive(Default)]
struct Stand {
    weight: AtomicU8,
    fail: AtomicBool,
    hang: AtomicBool,
    /// Reads back this instead of what was set (0 = what was set).
    lie: AtomicU8,
    health: Option<bool>,
}

#[async_trait]
impl Router for Stand {
    fn kind(&self) -> &'static str {
        "command"
    }
    async fn set_weight(&self, weight: u8) -> Result<(), RouterError> {
        if self.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if self.fail.load(Ordering::SeqCst) {
            return Err(RouterError::new("command", "connection refused"));
        }
        self.weight.store(weight, Ordering::SeqCst);
        Ok(())
    }
    async fn current_weight(&self) -> Result<u8, RouterError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(RouterError::new("command", "connection refused"));
        }
        match self.lie.load(Ordering::SeqCst) {
            0 => Ok(self.weight.load(Ordering::SeqCst)),
            w => Ok(w),
        }
    }
    async fn stable_health(&self) -> Result<Option<bool>, RouterError> {
        Ok(self.health)
    }
}

fn group(n: usize) -> (RouterGroup, Vec<Arc<Stand>>) {
    let stands: Vec<Arc<Stand>> = (0..n).map(|_| Arc::new(Stand::default())).collect();
    let members = stands
        .iter()
        .enumerate()
        .map(|(i, s)| Member {
            name: format!("lb{}", i + 1),
            router: s.clone(),
        })
        .collect();
    (RouterGroup::new(members), stands)
}

const T: Duration = Duration::from_millis(300);

#[tokio::test]
async fn a_change_confirmed_by_every_member_has_a_skew() {
    let (g, stands) = group(5);
    let change = g.apply(25, T).await;
    assert!(change.confirmed(), "{change:?}");
    assert_eq!(change.members.len(), 5);
    assert!(change.members.iter().all(|m| m.weight == Some(25)));
    let names: Vec<&str> = change.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["lb1", "lb2", "lb3", "lb4", "lb5"]);
    assert!(change.skew_ms.is_some_and(|s| s >= 0.0));
    assert!(stands.iter().all(|s| s.weight.load(Ordering::SeqCst) == 25));
    assert_eq!(g.current_weight().await.unwrap(), 25);
}

#[tokio::test]
async fn failing_silent_and_lying_members_are_named_and_the_rest_confirm() {
    let (g, stands) = group(4);
    stands[1].fail.store(true, Ordering::SeqCst);
    stands[2].hang.store(true, Ordering::SeqCst);
    stands[3].lie.store(10, Ordering::SeqCst);
    let change = g.apply(50, T).await;
    assert!(!change.confirmed());
    assert_eq!(change.unconfirmed_names(), ["lb2", "lb3", "lb4"]);
    let failures = change.failures();
    assert!(
        failures.contains("lb2 (command router: connection refused)"),
        "{failures}"
    );
    assert!(
        failures.contains("lb3 (no answer within 300ms)"),
        "{failures}"
    );
    assert!(failures.contains("lb4 (reads back 10%)"), "{failures}");
    assert!(change.members[0].confirmed);
    // Only the members not yet confirmed are asked again.
    stands[1].fail.store(false, Ordering::SeqCst);
    let again = g.apply_to(50, T, |n| n == "lb2").await;
    assert_eq!(again.members.len(), 1);
    assert!(again.confirmed());
    // The group has no one weight while they disagree.
    let e = g.current_weight().await.unwrap_err().to_string();
    assert!(e.contains("lb4 10%") && e.contains("lb1 50%"), "{e}");
    assert!(g.set_weight(50).await.is_err());
}

#[tokio::test]
async fn the_stable_server_is_up_only_when_every_member_sees_it_up() {
    let up = |h| {
        Arc::new(Stand {
            health: h,
            ..Stand::default()
        })
    };
    let make = |views: &[Option<bool>]| {
        RouterGroup::new(
            views
                .iter()
                .enumerate()
                .map(|(i, h)| Member {
                    name: format!("m{i}"),
                    router: up(*h),
                })
                .collect(),
        )
    };
    assert_eq!(
        make(&[Some(true), Some(true)])
            .stable_health()
            .await
            .unwrap(),
        Some(true)
    );
    assert_eq!(
        make(&[Some(true), None]).stable_health().await.unwrap(),
        None
    );
    assert_eq!(
        make(&[None, Some(false)]).stable_health().await.unwrap(),
        Some(false)
    );
}
