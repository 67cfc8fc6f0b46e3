//! The nginx router: an upstream block with weights, written atomically, tested, reloaded.
//!
//! nginx's reload is graceful: new workers take the new weights while the old
//! ones finish the requests they hold, so no request is dropped by a change.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::{Router, RouterError};
use crate::check::{shell, CheckContext};

/// The line that marks a file as ours and states the weight it was written for.
const MARKER: &str = "# cutover canary_weight=";

pub struct NginxRouter {
    cfg: NginxConfig,
    ctx: CheckContext,
    /// Bounds the test and the reload command each.
    timeout: Duration,
    /// One weight change at a time: write, test and reload go together.
    changing: Mutex<()>,
}

pub use crate::config::NginxConfig;

/// The upstream file for a canary weight. nginx has no weight 0: the server at
/// 0% is written `down`, the other keeps a weight of at least 1.
fn render(cfg: &NginxConfig, weight: u8) -> String {
    let weight = weight.min(100);
    let line = |addr: &str, w: u8| {
        if w == 0 {
            format!("    server {addr} down;\n")
        } else {
            format!("    server {addr} weight={w};\n")
        }
    };
    format!(
        "# Written by cutover at every weight change; edits by hand are overwritten.\n\
         {MARKER}{weight}\n\
         upstream {name} {{\n{stable}{canary}}}\n",
        name = cfg.upstream,
        stable = line(&cfg.stable, 100 - weight),
        canary = line(&cfg.canary, weight),
    )
}

/// Reads the canary weight back from a file this router wrote.
fn parse(cfg: &NginxConfig, text: &str) -> Result<u8, String> {
    let file = cfg.upstream_file.display();
    let marked = text
        .lines()
        .find_map(|l| l.trim().strip_prefix(MARKER))
        .ok_or_else(|| {
            format!("{file} was not written by cutover (no `{MARKER}N` line): let cutover own this file, and keep other nginx settings in files of their own")
        })?;
    let marked: u8 = marked
        .trim()
        .parse()
        .ok()
        .filter(|w| *w <= 100)
        .ok_or_else(|| format!("{file}: `{MARKER}` is not followed by a weight from 0 to 100"))?;
    if !text.contains(&format!("upstream {} {{", cfg.upstream)) {
        return Err(format!(
            "{file} has no `upstream {} {{` block: it was written for another plan",
            cfg.upstream
        ));
    }
    // The server lines are what nginx applies: they must agree with the marker.
    let (mut stable, mut canary) = (None, None);
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("server ") else {
            continue;
        };
        let rest = rest.trim_end_matches(';');
        let mut words = rest.split_whitespace();
        let addr = words.next().unwrap_or("");
        let mut w: Option<u32> = Some(1);
        for word in words {
            if word == "down" {
                w = Some(0);
            } else if let Some(n) = word.strip_prefix("weight=") {
                w = n.parse().ok();
            }
        }
        let w = w.ok_or_else(|| format!("{file}: cannot read the weight in `{}`", line.trim()))?;
        if addr == cfg.stable {
            stable = Some(w);
        } else if addr == cfg.canary {
            canary = Some(w);
        } else {
            return Err(format!(
                "{file} lists server {addr}, which is neither stable ({}) nor canary ({}): it was written for another plan",
                cfg.stable, cfg.canary
            ));
        }
    }
    let (Some(stable), Some(canary)) = (stable, canary) else {
        return Err(format!(
            "{file} does not list both servers {} and {}",
            cfg.stable, cfg.canary
        ));
    };
    let total = stable + canary;
    if total == 0 {
        return Err(format!(
            "{file} marks both servers down: nginx has nowhere to send traffic"
        ));
    }
    let applied = ((canary * 100 + total / 2) / total) as u8;
    if applied != marked {
        return Err(format!(
            "{file} was edited by hand: its servers send {applied}% to the canary but it was written for {marked}%"
        ));
    }
    Ok(applied)
}

/// Replaces `path` with `contents` so readers see the old or the new file,
/// never a part: a temporary file in the same directory, synced, renamed.
fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode())
        .unwrap_or(0o644);
    let mut tmp = tempfile::Builder::new()
        .prefix(".cutover-upstream")
        .tempfile_in(dir)?;
    tmp.write_all(contents)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    // The rename itself is durable once the directory is synced.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Puts the file back as it was before a failed change.
fn restore(path: &Path, previous: Option<&[u8]>) -> std::io::Result<()> {
    match previous {
        Some(bytes) => write_atomic(path, bytes),
        None => match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    }
}

fn read_existing(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The command's outcome and its last lines, for an error message.
fn describe(attempt: &crate::check::Attempt) -> String {
    let tail: Vec<&str> = attempt
        .tail
        .iter()
        .rev()
        .take(5)
        .rev()
        .map(String::as_str)
        .collect();
    if tail.is_empty() {
        attempt.message.clone()
    } else {
        format!("{}: {}", attempt.message, tail.join(" | "))
    }
}

impl NginxRouter {
    pub fn new(cfg: NginxConfig, ctx: CheckContext) -> Self {
        NginxRouter {
            cfg,
            ctx,
            timeout: Duration::from_secs(60),
            changing: Mutex::new(()),
        }
    }

    fn error(&self, message: impl Into<String>) -> RouterError {
        RouterError::new("nginx", message)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> std::io::Result<T> {
        tokio::task::spawn_blocking(f)
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
    }

    /// Restores the previous file after a failed test or reload; says what
    /// happened in the error.
    async fn undo(&self, previous: Option<Vec<u8>>, what: String) -> RouterError {
        let path = self.cfg.upstream_file.clone();
        let file = path.display().to_string();
        match self
            .blocking(move || restore(&path, previous.as_deref()))
            .await
        {
            Ok(()) => self.error(format!("{what}; {file} was restored to what it was")),
            Err(e) => self.error(format!(
                "{what}; restoring {file} ALSO failed ({e}): check it before nginx reloads again"
            )),
        }
    }
}

#[async_trait]
impl Router for NginxRouter {
    fn kind(&self) -> &'static str {
        "nginx"
    }

    async fn set_weight(&self, weight: u8) -> Result<(), RouterError> {
        if weight > 100 {
            return Err(self.error(format!("weight {weight} is above 100")));
        }
        let _one = self.changing.lock().await;
        let path = self.cfg.upstream_file.clone();
        let file = path.display().to_string();
        let contents = render(&self.cfg, weight);
        let previous = self
            .blocking(move || {
                let previous = read_existing(&path)?;
                write_atomic(&path, contents.as_bytes())?;
                Ok(previous)
            })
            .await
            .map_err(|e| self.error(format!("cannot write {file}: {e}")))?;

        let env = BTreeMap::new();
        let test = shell::run(
            &self.cfg.test,
            &env,
            &self.ctx,
            self.timeout,
            "nginx test",
            true,
        )
        .await;
        if !test.passed {
            let what = format!(
                "`{}` rejected the upstream for {weight}% ({}); nginx was not reloaded",
                self.cfg.test,
                describe(&test)
            );
            return Err(self.undo(previous, what).await);
        }
        let reload = shell::run(
            &self.cfg.reload,
            &env,
            &self.ctx,
            self.timeout,
            "nginx reload",
            true,
        )
        .await;
        if !reload.passed {
            let what = format!(
                "`{}` failed ({}), so nginx still runs the previous weights",
                self.cfg.reload,
                describe(&reload)
            );
            return Err(self.undo(previous, what).await);
        }
        Ok(())
    }

    async fn current_weight(&self) -> Result<u8, RouterError> {
        let path = self.cfg.upstream_file.clone();
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(self.error(format!(
                    "{} does not exist: cutover writes it at every weight change; before the first run, put the upstream at 0% there (see assets/nginx-upstream.conf) and include it in nginx's http block",
                    path.display()
                )))
            }
            Err(e) => return Err(self.error(format!("cannot read {}: {e}", path.display()))),
        };
        parse(&self.cfg, &text).map_err(|e| self.error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path, test: &str) -> NginxConfig {
        NginxConfig {
            upstream_file: dir.join("app-upstream.conf"),
            upstream: "app".into(),
            stable: "127.0.0.1:9001".into(),
            canary: "127.0.0.1:9002".into(),
            test: test.into(),
            reload: "true".into(),
        }
    }

    #[test]
    fn renders_weights_and_down_for_zero() {
        let c = cfg(Path::new("/x"), "true");
        let text = render(&c, 25);
        assert!(text.contains("upstream app {\n"), "{text}");
        assert!(
            text.contains("    server 127.0.0.1:9001 weight=75;\n"),
            "{text}"
        );
        assert!(
            text.contains("    server 127.0.0.1:9002 weight=25;\n"),
            "{text}"
        );
        let zero = render(&c, 0);
        assert!(zero.contains("server 127.0.0.1:9001 weight=100;"), "{zero}");
        assert!(zero.contains("server 127.0.0.1:9002 down;"), "{zero}");
        assert!(!zero.contains(" weight=0;"), "{zero}");
        let full = render(&c, 100);
        assert!(full.contains("server 127.0.0.1:9001 down;"), "{full}");
        assert!(full.contains("server 127.0.0.1:9002 weight=100;"), "{full}");
        for w in [0, 1, 5, 25, 50, 99, 100] {
            assert_eq!(parse(&c, &render(&c, w)), Ok(w));
        }
    }

    #[test]
    fn refuses_files_it_did_not_write() {
        let c = cfg(Path::new("/x"), "true");
        let e = parse(&c, "upstream app { server 127.0.0.1:9001; }\n").unwrap_err();
        assert!(e.contains("not written by cutover"), "{e}");
        let other = cfg(Path::new("/x"), "true");
        let mut moved = NginxConfig {
            canary: "127.0.0.1:9999".into(),
            ..other
        };
        let e = parse(&moved, &render(&c, 10)).unwrap_err();
        assert!(e.contains("neither stable"), "{e}");
        moved.canary = c.canary.clone();
        moved.upstream = "web".into();
        let e = parse(&moved, &render(&c, 10)).unwrap_err();
        assert!(e.contains("no `upstream web {`"), "{e}");
        let edited = render(&c, 25).replace("weight=25", "weight=75");
        let e = parse(&c, &edited).unwrap_err();
        assert!(e.contains("edited by hand"), "{e}");
    }

    #[tokio::test]
    async fn writes_tests_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let r = NginxRouter::new(cfg(dir.path(), "true"), CheckContext::default());
        let e = r.current_weight().await.unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
        r.set_weight(30).await.unwrap();
        assert_eq!(r.current_weight().await.unwrap(), 30);
        r.set_weight(0).await.unwrap();
        assert_eq!(r.current_weight().await.unwrap(), 0);
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[tokio::test]
    async fn a_failed_test_restores_the_previous_file_and_skips_the_reload() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("reloaded");
        let mut c = cfg(dir.path(), "true");
        c.reload = format!("touch {}", marker.display());
        let good = NginxRouter::new(c, CheckContext::default());
        good.set_weight(10).await.unwrap();
        std::fs::remove_file(&marker).unwrap();
        let before = std::fs::read(dir.path().join("app-upstream.conf")).unwrap();

        let mut c = cfg(dir.path(), "echo 'emerg: bad upstream' >&2; exit 1");
        c.reload = format!("touch {}", marker.display());
        let bad = NginxRouter::new(c, CheckContext::default());
        let e = bad.set_weight(50).await.unwrap_err().to_string();
        assert!(e.contains("emerg: bad upstream"), "{e}");
        assert!(e.contains("not reloaded"), "{e}");
        assert!(e.contains("restored"), "{e}");
        assert_eq!(
            std::fs::read(dir.path().join("app-upstream.conf")).unwrap(),
            before
        );
        assert!(!marker.exists(), "reload ran after a failed test");
        assert_eq!(bad.current_weight().await.unwrap(), 10);
    }

    #[tokio::test]
    async fn a_failed_first_write_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let r = NginxRouter::new(cfg(dir.path(), "exit 1"), CheckContext::default());
        assert!(r.set_weight(5).await.is_err());
        assert!(!dir.path().join("app-upstream.conf").exists());
    }
}
