//! The code's shape, checked: no import circle between top-level modules
//! (read from `crate::` paths), the engine free of the terminal UI, and every
//! source file short enough to read (tests aside).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest a source file may grow, its tests excluded.
const MAX_LINES: usize = 600;

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's text without its `#[cfg(test)]` module (inline tests, or the
/// declaration of a `*_tests.rs` file).
fn without_tests(text: &str) -> &str {
    match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    }
}

/// `src/engine/traffic.rs` → `engine`; `src/domain.rs` → `domain`.
fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("a component");
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_string()
}

fn src_files() -> (PathBuf, Vec<PathBuf>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    (src, files)
}

fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let (src, files) = src_files();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let from = top_module(&src, file);
        if from == "lib" || from == "main" {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("read");
        let code = without_tests(&text);
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != from {
                graph.entry(from.clone()).or_default().insert(name);
            }
        }
        graph.entry(from).or_default();
    }
    graph
}

#[test]
fn top_level_modules_import_each_other_without_a_circle() {
    let graph = import_graph();
    // Depth-first search for a back edge.
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut cycle = path[i..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for next in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        if let Some(cycle) = visit(n, &graph, &mut Vec::new(), &mut done) {
            panic!("import circle: {}\ngraph: {graph:#?}", cycle.join(" → "));
        }
    }
    // The words of the field depend on nothing of ours but secrets masking.
    assert!(graph["domain"].is_empty(), "{:?}", graph["domain"]);
    assert!(!graph["config"].contains("engine"), "config imports engine");
    assert!(
        !graph["metrics"].contains("router"),
        "metrics reaches into router"
    );
}

#[test]
fn the_engine_and_the_record_know_nothing_of_the_terminal() {
    let (src, files) = src_files();
    for file in files {
        let top = top_module(&src, &file);
        if !["engine", "record", "domain", "config", "router", "metrics"].contains(&top.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read");
        for word in ["ratatui", "crossterm", "tui_logger", "crate::ui"] {
            assert!(
                !without_tests(&text).contains(word),
                "{} uses {word}",
                file.display()
            );
        }
    }
}

#[test]
fn every_source_file_stays_readable() {
    let (_, files) = src_files();
    let long: Vec<String> = files
        .iter()
        .filter(|f| !f.to_string_lossy().ends_with("_tests.rs"))
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).expect("read");
            let n = without_tests(&text).lines().count();
            (n > MAX_LINES).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines (tests aside): {long:?}"
    );
}
