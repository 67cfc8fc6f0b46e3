//! The judge's simulation at scale: 1,000 runs per scenario (`JUDGE_RUNS` to
//! change), printing the table in `docs/analysis.md`: the false-rollback rate
//! with its 95 % Monte Carlo interval where canary and stable are the same,
//! and total requests to a rollback where the canary is worse; then how soon
//! the interval for the ratio rules out a 2× regression (a bounded pass) and
//! how often the canary is shown below the tolerance (a shown pass).
//!
//! `JUDGE_ALPHA` and `JUDGE_TOLERANCE` change the settings (default
//! `Settings::default()`); `JUDGE_FAIL_SCALE` and `JUDGE_FAIL_CENTRE` the fail
//! mixture; `JUDGE_ONLY` picks scenarios by name.

use cutover::judge::sequential::{Priors, SequentialTest};
use cutover::judge::sim::{run_many, scenarios, PASS_RATIO, REQUESTS_PER_INTERVAL, SLOW_MS};
use cutover::judge::Settings;

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs = env_f64("JUDGE_RUNS", 1000.0) as u32;
    let d = Settings::default();
    let settings = Settings::new(
        env_f64("JUDGE_ALPHA", d.alpha),
        env_f64("JUDGE_TOLERANCE", d.tolerance),
    )?;
    let p = Priors::default();
    let priors = Priors {
        fail_scale: env_f64("JUDGE_FAIL_SCALE", p.fail_scale),
        fail_centre: env_f64("JUDGE_FAIL_CENTRE", p.fail_centre),
        ..p
    };
    let test = SequentialTest::with_priors(settings, priors);
    let horizon = env_f64("JUDGE_HORIZON", 100_000.0) as u64;
    let only = std::env::var("JUDGE_ONLY").unwrap_or_default();
    println!(
        "alpha {}, tolerance {}, {runs} runs per scenario, {REQUESTS_PER_INTERVAL} requests per reading, slow_ms {SLOW_MS}, \
         no-difference canaries {horizon} requests long, fail prior centre {} scale {}",
        settings.alpha, settings.tolerance, priors.fail_centre, priors.fail_scale
    );
    println!();
    println!(
        "| scenario | rolled back | 95 % interval | median requests | p95 requests | max requests | median to ratio ≤ {PASS_RATIO} shown | shown below tolerance |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let show = |v: Option<u64>| v.map_or("—".to_string(), |v| v.to_string());
    for (i, scenario) in scenarios(horizon).iter().enumerate() {
        if !only.is_empty() && !scenario.name.contains(&only) {
            continue;
        }
        let t0 = std::time::Instant::now();
        let s = run_many(scenario, &test, runs, 0x5EED_0000 + i as u64);
        let (lo, hi) = s.rate_interval;
        println!(
            "| {} | {}/{} = {:.1} % | {:.1}–{:.1} % | {} | {} | {} | {} | {} |",
            scenario.name,
            s.rollbacks,
            s.runs,
            100.0 * s.rate(),
            100.0 * lo,
            100.0 * hi,
            show(s.median),
            show(s.p95),
            show(s.max),
            show(s.bounded_median),
            s.shown,
        );
        eprintln!(
            "  ({} in {:.1} s)",
            scenario.name,
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
