//! The journal: one append-only JSONL file per deployment, each line chained to
//! the previous one by a SHA-256 hash, written and flushed before it counts,
//! and its end anchored in `<id>.anchor` (the last seq and hash), so cutting
//! lines off the end is detected too.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::state_dir;
pub use super::state_dir::deployments_dir;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// One journal line as written.
#[derive(Debug, Clone)]
pub struct Line {
    pub seq: u64,
    pub ts: DateTime<Utc>,
    /// The whole line, JSON, without the trailing newline.
    pub text: String,
}

pub struct Journal {
    /// Masked in every line before it is hashed and written.
    secrets: std::sync::Arc<crate::redact::Secrets>,
    file: File,
    anchor: File,
    path: PathBuf,
    seq: u64,
    prev_hash: String,
}

/// Bytes of the anchor record (padded), written in place with one `pwrite`.
const ANCHOR_BYTES: usize = 128;

/// Where a journal's anchor is.
pub fn anchor_path(journal: &Path) -> PathBuf {
    journal.with_extension("anchor")
}

/// The end of a journal as last written: its final seq and hash.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Anchor {
    pub seq: u64,
    pub hash: String,
}

fn read_anchor(journal: &Path) -> io::Result<Option<Anchor>> {
    match fs::read(anchor_path(journal)) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            serde_json::from_str(text.trim_end_matches(['\0', ' ', '\n']))
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("anchor: {e}")))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl Journal {
    /// Creates a new journal `<state_dir>/deployments/<id>.jsonl` (0600), failing
    /// if it exists.
    pub fn create(state_dir: &Path, id: &str) -> io::Result<Journal> {
        let dir = state_dir::ensure(state_dir)?;
        let path = dir.join(format!("{id}.jsonl"));
        let file = state_dir::create_new(&path, OpenOptions::new().append(true))?;
        let anchor = match state_dir::create_new(
            &anchor_path(&path),
            OpenOptions::new().read(true).write(true),
        ) {
            Ok(a) => a,
            Err(e) => {
                // Leave no journal without its anchor behind.
                let _ = fs::remove_file(&path);
                return Err(e);
            }
        };
        Ok(Journal {
            secrets: Default::default(),
            file,
            anchor,
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
        let file = state_dir::open_existing(path, OpenOptions::new().append(true))?;
        let anchor = state_dir::open_or_create(
            &anchor_path(path),
            OpenOptions::new().read(true).write(true).truncate(false),
        )?;
        Ok(Journal {
            secrets: Default::default(),
            file,
            anchor,
            path: path.to_path_buf(),
            seq: report.lines,
            prev_hash: report.last_hash,
        })
    }

    /// Creates a new journal named `base_id`, or `base_id-2`, `-3`… when
    /// that name is taken (two runs in one second); returns the id used.
    pub fn create_unique(state_dir: &Path, base_id: &str) -> io::Result<(String, Journal)> {
        let mut id = base_id.to_string();
        let mut n = 1;
        loop {
            match Journal::create(state_dir, &id) {
                Ok(j) => return Ok((id, j)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 100 => {
                    n += 1;
                    id = format!("{base_id}-{n}");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Masks these secrets in every line written from now on.
    pub fn set_secrets(&mut self, secrets: std::sync::Arc<crate::redact::Secrets>) {
        self.secrets = secrets;
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens a journal to carry it on. A torn last line (a crash mid-write) is
    /// cut off and returned, to be recorded; any other break in the chain refuses.
    pub fn reopen_repairing(path: &Path) -> io::Result<(Journal, Option<BadLine>)> {
        let report = verify(path)?;
        match report.problem {
            None => Ok((Journal::reopen(path)?, None)),
            Some(bad) if bad.torn => {
                let text = fs::read(path)?;
                let keep = text
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map(|i| i + 1)
                    .unwrap_or(0);
                let f = state_dir::open_existing(path, OpenOptions::new().write(true))?;
                f.set_len(keep as u64)?;
                f.sync_all()?;
                Ok((Journal::reopen(path)?, Some(bad)))
            }
            Some(bad) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: line {}: {}", path.display(), bad.line, bad.message),
            )),
        }
    }

    /// Appends `event` (an object with an `event` field) as the next line and
    /// flushes it to disk before returning.
    pub fn append<E: Serialize>(&mut self, event: &E) -> io::Result<Line> {
        let ts = Utc::now();
        let seq = self.seq + 1;
        let mut body = serde_json::to_value(event).map_err(io::Error::other)?;
        self.secrets.redact_json(&mut body);
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
        self.write_anchor(&hash)?;
        self.prev_hash = hash;
        Ok(Line { seq, ts, text })
    }

    /// Records the journal's end (one in-place write within a sector, synced).
    fn write_anchor(&self, hash: &str) -> io::Result<()> {
        let body = serde_json::to_string(&Anchor {
            seq: self.seq,
            hash: hash.to_string(),
        })
        .map_err(io::Error::other)?;
        let mut buf = body.into_bytes();
        buf.resize(ANCHOR_BYTES, b' ');
        if let Some(last) = buf.last_mut() {
            *last = b'\n';
        }
        self.anchor.write_all_at(&buf, 0)?;
        self.anchor.sync_data()
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
    /// The last line has no newline (a writer stopped mid-line): repairable
    /// by cutting it off.
    pub torn: bool,
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
    let mut before_prev = String::new();
    let mut n = 0u64;
    let mut anchored = false;
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
                torn: false,
            }),
        };
        if raw.last() != Some(&b'\n') {
            let mut report =
                bad("the last line is torn (no newline): the writer stopped mid-line".into());
            if let Some(p) = report.problem.as_mut() {
                p.torn = true;
            }
            return Ok(report);
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
        let value = serde_json::from_str::<serde_json::Value>(&unsigned).ok();
        let seq = value.as_ref().and_then(|v| v.get("seq")?.as_u64());
        if seq != Some(lineno) {
            return Ok(bad(format!("seq is {seq:?}, expected {lineno}")));
        }
        if lineno == 1 {
            anchored = value.and_then(|v| v.get("anchored")?.as_bool()) == Some(true);
        }
        before_prev = std::mem::replace(&mut prev, hash.to_string());
        n += 1;
    }
    let problem = check_anchor(path, anchored, n, &prev, &before_prev)?;
    Ok(VerifyReport {
        lines: n,
        last_hash: prev,
        problem,
    })
}

/// The anchor must name the last line, or the one before it (a run stopped
/// between writing a line and its anchor).
fn check_anchor(
    path: &Path,
    anchored: bool,
    lines: u64,
    last: &str,
    before_last: &str,
) -> io::Result<Option<BadLine>> {
    let anchor = match read_anchor(path) {
        Ok(a) => a,
        Err(e) => {
            return Ok(Some(BadLine {
                line: lines,
                message: format!("the anchor cannot be read: {e}"),
                torn: false,
            }))
        }
    };
    let problem = match anchor {
        None if anchored => Some("the anchor beside the journal is missing".to_string()),
        None => None,
        Some(a) if a.seq > lines => Some(format!(
            "the journal ends at line {lines} but its anchor records line {}: lines were cut off its end",
            a.seq
        )),
        Some(a) if a.seq == lines && a.hash == last => None,
        Some(a) if a.seq + 1 == lines && a.hash == before_last => None,
        Some(a) if a.seq + 1 < lines => Some(format!(
            "the anchor records line {} but the journal has {lines} lines: lines were added without it",
            a.seq
        )),
        Some(a) => Some(format!(
            "line {} does not match the hash its anchor records: the end of the journal was rewritten",
            a.seq
        )),
    };
    Ok(problem.map(|message| BadLine {
        line: lines,
        message,
        torn: false,
    }))
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
    use std::os::unix::fs::PermissionsExt;

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
