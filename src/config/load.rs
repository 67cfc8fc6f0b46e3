//! Loading a plan: the file read with bounds (regular files only, at most
//! [`MAX_CONFIG_BYTES`], never blocking on a FIFO or device), UTF-8 checked
//! with a position, then read and validated.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::error::{ConfigError, ConfigErrors, Errors};
use super::plan::Plan;
use super::{raw, validate};

/// The largest config file read: a plan is a few kilobytes; anything near
/// this is not one.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Reads and validates a plan file. Relative paths in it are relative to
/// its directory; `${env:NAME}` comes from this process's environment.
///
/// Errors: a file-level [`ConfigError`] when the file cannot be read, is not
/// a regular file, or is larger than [`MAX_CONFIG_BYTES`]; located ones for
/// everything else.
pub fn load(path: &Path) -> Result<Plan, ConfigErrors> {
    let display = path.display().to_string();
    let bytes = read_bounded(path)
        .map_err(|msg| ConfigErrors(vec![ConfigError::file_level(&display, &msg)]))?;
    let base = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    parse_bytes(&bytes, &display, &base, &|name| std::env::var(name).ok())
}

/// Parses and validates plan text. `file` names it in errors; `base`
/// resolves relative paths; `env` looks up `${env:NAME}`.
pub fn parse(
    text: &str,
    file: &str,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Plan, ConfigErrors> {
    let mut errors = Errors::new(file, text);
    let Some(raw) = raw::read(text, &mut errors) else {
        return Err(ConfigErrors(errors.into_sorted()));
    };
    validate::plan(raw, errors, base, env).map_err(ConfigErrors)
}

/// [`parse`] of bytes that may not be UTF-8: invalid UTF-8 is reported at
/// its line and column.
pub fn parse_bytes(
    bytes: &[u8],
    file: &str,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Plan, ConfigErrors> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(text, file, base, env),
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            // The valid prefix is UTF-8 by definition.
            let prefix = String::from_utf8_lossy(valid);
            Err(ConfigErrors(vec![ConfigError::at(
                file,
                &prefix,
                prefix.len(),
                &format!(
                    "invalid UTF-8 (byte 0x{:02x}): a plan is UTF-8 text; re-save it as UTF-8",
                    bytes.get(e.valid_up_to()).copied().unwrap_or(0)
                ),
            )]))
        }
    }
}

/// The file's bytes, refusing what is not a regular file or is too large,
/// without blocking: the type is checked before opening (a FIFO would block
/// `open`), and again on the open file (the path may have changed).
fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read the config file: {e}"))?;
    refuse_kind(&meta)?;
    let file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| format!("cannot read the config file: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read the config file: {e}"))?;
    refuse_kind(&meta)?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the config file: {e}"))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
}

fn refuse_kind(meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    let what = if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_socket() {
        Some("a socket")
    } else if t.is_char_device() || t.is_block_device() {
        Some("a device")
    } else {
        Some("a special file")
    };
    if let Some(what) = what {
        return Err(format!(
            "is {what}, not a plan file: give the path of the config file, like deploy.toml"
        ));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(too_large());
    }
    Ok(())
}

fn too_large() -> String {
    format!(
        "is larger than {} KiB: a plan is a few kilobytes of TOML; give the config file",
        MAX_CONFIG_BYTES / 1024
    )
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
