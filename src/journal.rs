//! The journal: one append-only JSONL file per deployment, each line chained to
//! the previous one by a SHA-256 hash, written and flushed before it counts.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Where a state dir keeps its journals.
pub fn deployments_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("deployments")
}

/// Creates the state dir (0700) and its deployments dir.
pub fn ensure_state_dir(state_dir: &Path) -> io::Result<PathBuf> {
    let dir = deployments_dir(state_dir);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    // A pre-existing dir keeps its mode unless we tighten it.
    for d in [state_dir, dir.as_path()] {
        let meta = fs::metadata(d)?;
        if meta.permissions().mode() & 0o077 != 0 {
            fs::set_permissions(d, fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(dir)
}

/// One journal line as written.
#[derive(Debug, Clone)]
pub struct Line {
    pub seq: u64,
    pub ts: DateTime<Utc>,
    /// The whole line, JSON, without the trailing newline.
    pub text: String,
}

pub struct Journal {
    file: File,
    path: PathBuf,
    seq: u64,
    prev_hash: String,
}

impl Journal {
    /// Creates a new journal `<state_dir>/deployments/<id>.jsonl` (0600), failing
    /// if it exists.
    pub fn create(state_dir: &Path, id: &str) -> io::Result<Journal> {
        let dir = ensure_state_dir(state_dir)?;
        let path = dir.join(format!("{id}.jsonl"));
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        Ok(Journal {
            file,
            path,
            seq: 0,
            prev_hash: String::new(),
        })
    }

    /// Opens an existing journal to append to it, after checking its chain.
    pub fn reopen(path: &Path) -> io::Result<Journal> {
        let report = verify(path)?;
        if let Some(bad) = report.problem {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: line {}: {}", path.display(), bad.line, bad.message),
            ));
        }
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(Journal {
            file,
            path: path.to_path_buf(),
            seq: report.lines,
            prev_hash: report.last_hash,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `event` (an object with an `event` field) as the next line and
    /// flushes it to disk before returning.
    pub fn append<E: Serialize>(&mut self, event: &E) -> io::Result<Line> {
        let ts = Utc::now();
        let seq = self.seq + 1;
        let body = serde_json::to_value(event).map_err(io::Error::other)?;
        let serde_json::Value::Object(fields) = body else {
            return Err(io::Error::other("a journal event must be a JSON object"));
        };
        let mut obj = serde_json::Map::new();
        obj.insert("seq".into(), seq.into());
        obj.insert(
            "ts".into(),
            ts.to_rfc3339_opts(SecondsFormat::Millis, true).into(),
        );
        for (k, v) in fields {
            obj.insert(k, v);
        }
        let unsigned =
            serde_json::to_string(&serde_json::Value::Object(obj)).map_err(io::Error::other)?;
        let hash = chain_hash(&self.prev_hash, &unsigned);
        let text = sign(&unsigned, &hash);
        let mut buf = text.clone().into_bytes();
        buf.push(b'\n');
        self.file.write_all(&buf)?;
        self.file.sync_data()?;
        self.seq = seq;
        self.prev_hash = hash;
        Ok(Line { seq, ts, text })
    }
}

/// hex(SHA-256(previous hash ‖ line without its hash)).
fn chain_hash(prev: &str, unsigned: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(unsigned.as_bytes());
    hex::encode(h.finalize())
}

/// `{"seq":…,…}` → `{"seq":…,…,"hash":"…"}`: the hash goes last so the signed
/// text is recovered by cutting it off again.
fn sign(unsigned: &str, hash: &str) -> String {
    let mut text = unsigned[..unsigned.len() - 1].to_string();
    text.push_str(",\"hash\":\"");
    text.push_str(hash);
    text.push_str("\"}");
    text
}

/// A line that breaks the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct BadLine {
    /// 1-based line number in the file.
    pub line: u64,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub lines: u64,
    pub last_hash: String,
    pub problem: Option<BadLine>,
}

/// Checks a journal's hash chain and sequence; names the first bad line.
pub fn verify(path: &Path) -> io::Result<VerifyReport> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut prev = String::new();
    let mut n = 0u64;
    let mut raw = Vec::new();
    loop {
        raw.clear();
        let read = reader.read_until(b'\n', &mut raw)?;
        if read == 0 {
            break;
        }
        let lineno = n + 1;
        let bad = |message: String| VerifyReport {
            lines: n,
            last_hash: prev.clone(),
            problem: Some(BadLine {
                line: lineno,
                message,
            }),
        };
        if raw.last() != Some(&b'\n') {
            return Ok(bad(
                "the last line is torn (no newline): the writer stopped mid-line".into(),
            ));
        }
        let Ok(text) = std::str::from_utf8(&raw[..raw.len() - 1]) else {
            return Ok(bad("not UTF-8".into()));
        };
        let Some(cut) = text.rfind(",\"hash\":\"") else {
            return Ok(bad("no hash".into()));
        };
        let hash = &text[cut + 9..text.len().saturating_sub(2)];
        if !text.ends_with("\"}") || hash.len() != 64 {
            return Ok(bad("malformed hash".into()));
        }
        let unsigned = format!("{}}}", &text[..cut]);
        let expected = chain_hash(&prev, &unsigned);
        if expected != hash {
            return Ok(bad(
                "hash does not match: the line or one before it was changed, or a line was removed"
                    .into(),
            ));
        }
        let seq = serde_json::from_str::<serde_json::Value>(&unsigned)
            .ok()
            .and_then(|v| v.get("seq").and_then(|s| s.as_u64()));
        if seq != Some(lineno) {
            return Ok(bad(format!("seq is {seq:?}, expected {lineno}")));
        }
        prev = hash.to_string();
        n += 1;
    }
    Ok(VerifyReport {
        lines: n,
        last_hash: prev,
        problem: None,
    })
}

/// Every complete line of a journal as JSON (a torn or unparsable line ends the read).
pub fn read_events(path: &Path) -> io::Result<Vec<serde_json::Value>> {
    let text = fs::read_to_string(path)?;
    let mut out = Vec::new();
    for line in text.split_inclusive('\n') {
        if !line.ends_with('\n') {
            break;
        }
        match serde_json::from_str(line.trim_end()) {
            Ok(v) => out.push(v),
            Err(_) => break,
        }
    }
    Ok(out)
}

/// The journals of a state dir, oldest first (ids start with a UTC timestamp).
pub fn list(state_dir: &Path) -> io::Result<Vec<PathBuf>> {
    let dir = deployments_dir(state_dir);
    let mut out = Vec::new();
    match fs::read_dir(&dir) {
        Ok(entries) => {
            for e in entries {
                let p = e?.path();
                if p.extension().and_then(|s| s.to_str()) == Some("jsonl") {
                    out.push(p);
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Ev {
        event: &'static str,
        n: u32,
    }

    #[test]
    fn chain_verifies_and_detects_edits() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::create(dir.path(), "x").unwrap();
        for n in 0..5 {
            j.append(&Ev { event: "e", n }).unwrap();
        }
        let path = j.path().to_path_buf();
        let r = verify(&path).unwrap();
        assert_eq!(r.lines, 5);
        assert!(r.problem.is_none());
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = fs::metadata(dir.path().join("deployments"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);

        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, text.replacen("\"n\":2", "\"n\":7", 1)).unwrap();
        let r = verify(&path).unwrap();
        assert_eq!(r.problem.unwrap().line, 3);

        // A removed line breaks the chain at the line after it.
        let lines: Vec<&str> = text.lines().collect();
        let cut = format!("{}\n{}\n{}\n", lines[0], lines[2], lines[3]);
        fs::write(&path, cut).unwrap();
        assert_eq!(verify(&path).unwrap().problem.unwrap().line, 2);

        // A torn last line is reported, not dropped.
        fs::write(&path, format!("{}\n{}", lines[0], &lines[1][..10])).unwrap();
        let p = verify(&path).unwrap().problem.unwrap();
        assert_eq!(p.line, 2);
        assert!(p.message.contains("torn"));
    }

    #[test]
    fn reopen_continues_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::create(dir.path(), "y").unwrap();
        j.append(&Ev { event: "e", n: 1 }).unwrap();
        let path = j.path().to_path_buf();
        drop(j);
        let mut j = Journal::reopen(&path).unwrap();
        let line = j.append(&Ev { event: "e", n: 2 }).unwrap();
        assert_eq!(line.seq, 2);
        let r = verify(&path).unwrap();
        assert_eq!(r.lines, 2);
        assert!(r.problem.is_none());
        assert!(Journal::create(dir.path(), "y").is_err());
    }
}
