//! The parser under mutated plans: it never panics, every error is located
//! (line and column from 1, within the text) and printable with no secret,
//! and every plan it accepts keeps the engine's invariants
//! ([`super::invariants`]). Seeds: the example plan, the invalid-config
//! fixtures and the corpus of found cases (`tests/config_corpus/`), which
//! are also checked one by one.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::error::is_unsafe_char;
use super::testing::{env, SECRET};
use super::{invariants, parse_bytes};

/// What must hold for any input, accepted or not.
fn property(bytes: &[u8]) -> Result<(), String> {
    let lines = bytes.iter().filter(|b| **b == b'\n').count() + 1;
    match parse_bytes(bytes, "p.toml", Path::new("/base"), &env) {
        Ok(plan) => {
            invariants::check(&plan)?;
            let shown = plan.describe();
            if shown.contains('\u{1b}') || shown.contains(SECRET) {
                return Err(format!("describe shows: {shown:?}"));
            }
            Ok(())
        }
        Err(errors) => {
            if errors.0.is_empty() {
                return Err("an Err with no error".into());
            }
            for e in &errors.0 {
                if e.line < 1 || e.col < 1 || e.line > lines {
                    return Err(format!("badly located ({} lines): {e}", lines));
                }
                let shown = e.to_string();
                if shown.chars().any(is_unsafe_char) || shown.contains(SECRET) {
                    return Err(format!("unsafe message: {shown:?}"));
                }
            }
            Ok(())
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn toml_files(dir: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(root().join(dir))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .filter_map(|p| std::fs::read(&p).ok().map(|b| (p, b)))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn seeds() -> Vec<String> {
    let mut seeds = vec![
        include_str!("../../deploy.example.toml").to_string(),
        format!("{}{}", super::testing::HEAD, super::testing::TRAFFIC),
        format!("{}[traffic]\nsteps = [100]\n[traffic.router]\nkind = \"haproxy\"\nsocket = \"/s\"\nbackend = \"b\"\nstable_server = \"s\"\ncanary_server = \"c\"\n[analysis.source]\nkind = \"haproxy\"\n", super::testing::HEAD),
        format!("{}[traffic]\nsteps = [100]\n[[traffic.routers]]\nname = \"a\"\nkind = \"haproxy\"\nsocket = \"/s\"\nbackend = \"b\"\nstable_server = \"s\"\ncanary_server = \"c\"\n[[traffic.routers]]\nname = \"b\"\nkind = \"haproxy\"\nsocket = \"/t\"\nbackend = \"b\"\nstable_server = \"s\"\ncanary_server = \"c\"\n[analysis.source]\nkind = \"haproxy\"\n[lock]\nkind = \"etcd\"\nendpoints = [\"http://127.0.0.1:2379\"]\nttl = \"10s\"\n", super::testing::HEAD),
        format!("{}[traffic]\n[traffic.router]\nkind = \"nginx\"\nupstream_file = \"u\"\nupstream = \"app\"\nstable = \"127.0.0.1:1\"\ncanary = \"127.0.0.1:2\"\n[analysis.source]\nkind = \"prometheus\"\nurl = \"http://127.0.0.1:9090\"\nerror_rate = 'x{{version=\"$version\"}}'\nrequests = 'y{{version=\"$version\"}}'\n", super::testing::HEAD),
    ];
    for dir in ["tests/invalid_configs", "tests/config_corpus"] {
        seeds.extend(
            toml_files(dir)
                .into_iter()
                .map(|(_, b)| String::from_utf8_lossy(&b).into_owned()),
        );
    }
    seeds
}

const VALUES: &[&str] = &[
    "0",
    "-1",
    "1",
    "100",
    "101",
    "356",
    "1000",
    "4294967296",
    "9223372036854775807",
    "1.5",
    "nan",
    "-inf",
    "true",
    "\"\"",
    "\" \"",
    "\"0s\"",
    "\"1ms\"",
    "\"99ms\"",
    "\"100ms\"",
    "\"1s\"",
    "\"59m\"",
    "\"1h\"",
    "\"24h\"",
    "\"25h\"",
    "\"30d\"",
    "\"300000000000y\"",
    "\"99999999999999999999s\"",
    "\"1h 30m\"",
    "\"ten\"",
    "\"v2\\u001b[2J\"",
    "\"a\\nb\"",
    "\"a\\u0000b\"",
    "\"\\u202e\"",
    "\"é\"",
    "\"${env:CUTOVER_TEST_SECRET}\"",
    "\"${env:CUTOVER_TEST_SHORT}\"",
    "\"${env:CUTOVER_TEST_ESC}\"",
    "\"${env:UNSET}\"",
    "\"${env:\"",
    "\"127.0.0.1:0\"",
    "\"[::1]:80\"",
    "\"h:1\"",
    "\"http://u:p@127.0.0.1:1/?t=1\"",
    "\"http://${env:CUTOVER_TEST_SECRET}@h/\"",
    "\"ftp://x\"",
    "[]",
    "[100]",
    "[5, 25, 50, 100]",
    "[50, 25]",
    "[1, 356]",
    "{}",
    "{ A = \"b\" }",
    "\"builtin\"",
    "\"haproxy\"",
    "\"nginx\"",
    "\"command\"",
    "\"prometheus\"",
    "\"continue\"",
    "\"blue-green\"",
    "\"v2 weight 100; set server app/v1 weight 0\"",
    "'x{version=\"$version\"}'",
];

const KEYS: &[&str] = &[
    "service",
    "version",
    "previous",
    "environment",
    "state_dir",
    "name",
    "run",
    "manual",
    "http",
    "tcp",
    "timeout",
    "retries",
    "retry_delay",
    "expect_status",
    "expect_body",
    "optional",
    "env",
    "strategy",
    "steps",
    "bake",
    "approval",
    "on_failure",
    "on_disconnect",
    "unattended_after",
    "step_deadline",
    "measure_split",
    "kind",
    "listen",
    "stable",
    "canary",
    "socket",
    "backend",
    "stable_server",
    "canary_server",
    "upstream_file",
    "upstream",
    "test",
    "reload",
    "set_weight",
    "get_weight",
    "interval",
    "window",
    "min_requests",
    "failure_limit",
    "max_error_rate",
    "max_p99_ms",
    "max_error_rate_increase",
    "max_p99_ratio",
    "url",
    "error_rate",
    "requests",
    "p99_ms",
    "sample",
    "webhook",
    "format",
    "secret",
    "events",
    "path",
    "sha256",
    "bogus",
];

const LINES: &[&str] = &[
    "[deployment]",
    "[traffic]",
    "[traffic.router]",
    "[[traffic.routers]]",
    "[lock]",
    "kind = \"etcd\"",
    "[analysis]",
    "[analysis.source]",
    "[notify]",
    "[artifact]",
    "[[smoke]]",
    "[[prepare]]",
    "[bogus]",
    "kind = \"haproxy\"",
    "kind = \"command\"",
    "set_weight = \"true\"",
    "unattended_after = \"2m\"",
    "name = \"x\"",
    "run = \"true\"",
    "x = ",
    "[[traffic]]",
    "traffic = 1",
    "deployment = []",
    "",
];

#[derive(Debug, Clone)]
enum Mutation {
    Value { line: usize, value: usize },
    Key { line: usize, key: usize },
    Delete(usize),
    Duplicate(usize),
    Insert { at: usize, line: usize },
    Byte { at: usize, byte: u8 },
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 0..VALUES.len()).prop_map(|(line, value)| Mutation::Value { line, value }),
        2 => (any::<usize>(), 0..KEYS.len()).prop_map(|(line, key)| Mutation::Key { line, key }),
        1 => any::<usize>().prop_map(Mutation::Delete),
        1 => any::<usize>().prop_map(Mutation::Duplicate),
        2 => (any::<usize>(), 0..LINES.len()).prop_map(|(at, line)| Mutation::Insert { at, line }),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Byte { at, byte }),
        1 => any::<usize>().prop_map(Mutation::Truncate),
    ]
}

/// Applies the mutations to the seed; bytes, since a byte mutation may
/// break UTF-8.
fn mutate(seed: &str, mutations: &[Mutation]) -> Vec<u8> {
    let mut lines: Vec<String> = seed.lines().map(str::to_string).collect();
    let mut bytes_ops = Vec::new();
    for m in mutations {
        let n = lines.len().max(1);
        match m {
            Mutation::Value { line, value } => {
                let i = line % n;
                if let Some(l) = lines.get_mut(i) {
                    if let Some((k, _)) = l.split_once('=') {
                        *l = format!("{}= {}", k, VALUES[*value]);
                    }
                }
            }
            Mutation::Key { line, key } => {
                let i = line % n;
                if let Some(l) = lines.get_mut(i) {
                    if let Some((_, v)) = l.split_once('=') {
                        *l = format!("{} ={}", KEYS[*key], v);
                    }
                }
            }
            Mutation::Delete(i) => {
                if !lines.is_empty() {
                    lines.remove(i % n);
                }
            }
            Mutation::Duplicate(i) => {
                if let Some(l) = lines.get(i % n).cloned() {
                    lines.insert(i % n, l);
                }
            }
            Mutation::Insert { at, line } => {
                lines.insert(at % (lines.len() + 1), LINES[*line].to_string())
            }
            Mutation::Byte { .. } | Mutation::Truncate(_) => bytes_ops.push(m.clone()),
        }
    }
    let mut bytes = (lines.join("\n") + "\n").into_bytes();
    for m in bytes_ops {
        let len = bytes.len().max(1);
        match m {
            Mutation::Byte { at, byte } => {
                if let Some(b) = bytes.get_mut(at % len) {
                    *b = byte;
                }
            }
            Mutation::Truncate(at) => bytes.truncate(at % len),
            _ => {}
        }
    }
    bytes
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1500)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutated_plans_never_panic_and_what_is_accepted_can_run(
        seed in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        let seeds = seeds();
        let seed = &seeds[seed.index(seeds.len())];
        let bytes = mutate(seed, &mutations);
        if let Err(e) = property(&bytes) {
            panic!("{e}\n--- input ---\n{}", String::from_utf8_lossy(&bytes));
        }
    }
}

#[test]
fn every_corpus_case_keeps_the_property() {
    let corpus = toml_files("tests/config_corpus");
    assert!(corpus.len() >= 5, "the corpus is missing");
    for (path, bytes) in corpus {
        if let Err(e) = property(&bytes) {
            panic!("{}: {e}", path.display());
        }
        // Each was accepted once though the engine could not honour it.
        if bytes.starts_with(b"# found:") {
            let accepted = parse_bytes(&bytes, "p.toml", Path::new("/base"), &env).is_ok();
            assert!(!accepted, "{} is accepted", path.display());
        }
    }
}

#[test]
fn the_seeds_themselves_keep_the_property() {
    for seed in seeds() {
        property(seed.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{seed}"));
    }
}
