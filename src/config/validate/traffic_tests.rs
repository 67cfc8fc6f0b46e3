//! `[traffic]`: steps, bounded durations, policies.

use std::time::Duration;

use crate::config::testing::*;
use crate::domain::{OnDisconnect, Strategy};

fn traffic(extra: &str) -> String {
    format!(
        "{HEAD}{}",
        TRAFFIC.replacen(
            "steps = [10, 100]\n",
            &format!("steps = [10, 100]\n{extra}"),
            1
        )
    )
}

#[test]
fn defaults_follow_the_spec() {
    let t = plan(&traffic("")).traffic.unwrap();
    assert_eq!(t.steps, vec![10, 100]);
    assert_eq!(t.bake, Duration::from_secs(60));
    assert_eq!(t.step_deadline, Duration::from_secs(15 * 60));
    assert_eq!(t.unattended_after, Duration::from_secs(120));
    assert_eq!(t.on_disconnect, OnDisconnect::Hold);
    let t = plan(&format!(
        "{HEAD}{}",
        TRAFFIC.replace("steps = [10, 100]\n", "strategy = \"blue-green\"\n")
    ))
    .traffic
    .unwrap();
    assert_eq!((t.strategy, t.steps), (Strategy::BlueGreen, vec![100]));
}

#[test]
fn every_on_disconnect_policy_is_accepted() {
    for (word, policy) in [
        ("continue", OnDisconnect::Continue),
        ("hold", OnDisconnect::Hold),
        ("rollback", OnDisconnect::Rollback),
    ] {
        let t = plan(&traffic(&format!(
            "on_disconnect = \"{word}\"\nunattended_after = \"30s\"\n"
        )))
        .traffic
        .unwrap();
        assert_eq!(t.on_disconnect, policy);
        assert_eq!(t.unattended_after, Duration::from_secs(30));
    }
}

#[test]
fn steps_are_checked_before_narrowing() {
    let body = |steps: &str| format!("{HEAD}{}", TRAFFIC.replace("[10, 100]", steps));
    expect(
        &body("[50, 25]"),
        "6:14",
        "step 25 comes after 50: steps must strictly increase",
    );
    expect(&body("[10, 50]"), "6:9", "end at 100");
    expect(&body("[]"), "6:9", "steps is empty");
    // 356 would be 100 as a u8.
    expect(&body("[10, 356]"), "6:14", "step 356 is out of range");
    expect(&body("[-1, 100]"), "6:10", "out of range");
    expect(&body("[10, 100, 100]"), "6:19", "strictly increase");
    expect(
        &format!(
            "{HEAD}{}",
            TRAFFIC.replace(
                "steps = [10, 100]",
                "strategy = \"blue-green\"\nsteps = [50, 100]"
            )
        ),
        "7:9",
        "steps must be [100]",
    );
}

#[test]
fn durations_are_bounded() {
    expect(
        &traffic("bake = \"25h\"\n"),
        "7:8",
        "bake = \"25h\" is too long: use a duration up to 24h",
    );
    expect(
        &traffic("step_deadline = \"0s\"\n"),
        "7:17",
        "from 1s to 24h",
    );
    expect(
        &traffic("unattended_after = \"1000000h\"\n"),
        "7:20",
        "from 1s to 24h",
    );
    expect(
        &traffic("unattended_after = \"soon\"\n"),
        "7:20",
        "is not a duration",
    );
}

#[test]
fn a_step_deadline_shorter_than_a_sample_is_refused() {
    expect(
        &format!(
            "{}[analysis]\ninterval = \"10s\"\n",
            traffic("step_deadline = \"5s\"\n")
        ),
        "7:17",
        "step_deadline is shorter than the analysis interval (10s)",
    );
    expect(
        &format!(
            "{}[analysis]\ninterval = \"20m\"\nwindow = \"30m\"\n",
            traffic("")
        ),
        "13:12",
        "interval is longer than [traffic] step_deadline (15m by default)",
    );
}

#[test]
fn a_traffic_table_needs_a_router() {
    expect(
        &format!("{HEAD}[traffic]\nsteps = [100]\n"),
        "5:1",
        "needs a [traffic.router] table",
    );
}
