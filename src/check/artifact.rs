//! The artifact check: the file's SHA-256 must be the one that was tested.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::Attempt;

pub async fn verify(path: &Path, expected: &str) -> Attempt {
    let p: PathBuf = path.to_path_buf();
    let digest = tokio::task::spawn_blocking(move || sha256_file(&p)).await;
    match digest {
        Ok(Ok(d)) if d == expected => Attempt::pass(format!("{} sha256 {d}", path.display())),
        Ok(Ok(d)) => Attempt::fail(format!(
            "{} has sha256 {d}, but the plan expects {expected}: this is not the artifact that was tested",
            path.display()
        )),
        Ok(Err(e)) => Attempt::fail(format!("cannot read the artifact {}: {e}", path.display())),
        Err(e) => Attempt::fail(format!("digest task failed: {e}")),
    }
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn matches_and_mismatches() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.tar.gz");
        std::fs::write(&p, b"hello").unwrap();
        let good = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        assert!(verify(&p, good).await.passed);
        let bad = verify(&p, &"0".repeat(64)).await;
        assert!(!bad.passed && bad.message.contains("not the artifact"));
        assert!(!verify(&dir.path().join("missing"), good).await.passed);
    }
}
