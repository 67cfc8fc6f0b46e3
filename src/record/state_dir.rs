//! The state dir, kept safe also when cutover runs as root: symlinks are
//! refused and never followed, directories owned by another account or
//! writable by others are refused, a directory cutover did not create is never
//! chmod-ed, and files are opened with `O_NOFOLLOW` (new ones with `O_EXCL`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where a state dir keeps its journals.
pub fn deployments_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("deployments")
}

fn refused(path: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("refusing the state dir {}: {why}", path.display()),
    )
}

/// Checks an existing directory of the state: a real directory (not a
/// symlink), owned by this account, not writable by other accounts.
fn check_dir(path: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Err(refused(
            path,
            "it is a symbolic link, and cutover never follows links for its state; name the real directory",
        ));
    }
    if !meta.is_dir() {
        return Err(refused(path, "it is not a directory"));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(refused(
            path,
            &format!(
                "it belongs to uid {}, not to this account (uid {me}); use a directory of your own",
                meta.uid()
            ),
        ));
    }
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(refused(
            path,
            &format!(
                "other accounts can write to it (mode {:o}); use a private directory (0700), cutover does not change the mode of a directory it did not create",
                meta.permissions().mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

/// Creates `path` (0700) if it is missing, else checks it.
fn ensure_dir(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(_) => check_dir(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(parent)?;
            }
            match fs::DirBuilder::new().mode(0o700).create(path) {
                Ok(()) => check_dir(path),
                // Another run made it meanwhile: check it like any other.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => check_dir(path),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// Creates the state dir and its deployments dir if missing (0700), and
/// checks them; returns the deployments dir.
pub fn ensure(state_dir: &Path) -> io::Result<PathBuf> {
    ensure_dir(state_dir)?;
    let dir = deployments_dir(state_dir);
    ensure_dir(&dir)?;
    Ok(dir)
}

/// Opens an existing regular file of the state without following a link,
/// checking it belongs to this account.
pub fn open_existing(path: &Path, opts: &mut OpenOptions) -> io::Result<File> {
    let file = opts
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    check_file(path, &file)?;
    Ok(file)
}

/// Opens a file of the state, creating it (0600) if missing; never follows a
/// link at `path`.
pub fn open_or_create(path: &Path, opts: &mut OpenOptions) -> io::Result<File> {
    let file = opts
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| link_error(path, e))?;
    check_file(path, &file)?;
    Ok(file)
}

/// Creates a new file of the state (0600), failing if anything is at `path`.
pub fn create_new(path: &Path, opts: &mut OpenOptions) -> io::Result<File> {
    opts.create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

fn link_error(path: &Path, e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(libc::ELOOP) {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is a symbolic link: cutover never follows links in its state dir",
                path.display()
            ),
        )
    } else {
        e
    }
}

fn check_file(path: &Path, file: &File) -> io::Result<()> {
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} is not a regular file", path.display()),
        ));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} belongs to uid {}, not to this account",
                path.display(),
                meta.uid()
            ),
        ));
    }
    Ok(())
}

/// Replaces `path` with `body` atomically: a new file under a random name in
/// the same directory (created exclusively, 0600), synced, then renamed over
/// `path` (a rename replaces a link at `path` rather than following it).
pub fn replace_file(path: &Path, body: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".cutover-")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)?;
    tmp.write_all(body)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_state_dir_is_private_and_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("a/b/state");
        let deployments = ensure(&state).unwrap();
        assert_eq!(
            fs::metadata(&state).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(
            fs::metadata(&deployments).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&state, &link).unwrap();
        let e = ensure(&link).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
    }

    #[test]
    fn a_shared_directory_is_refused_and_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
        let e = ensure(&shared).unwrap_err();
        assert!(e.to_string().contains("other accounts can write"), "{e}");
        assert_eq!(
            fs::metadata(&shared).unwrap().permissions().mode() & 0o7777,
            0o1777
        );
        // A pre-existing private-enough dir is used as it is, never chmod-ed.
        let mine = dir.path().join("mine");
        fs::create_dir(&mine).unwrap();
        fs::set_permissions(&mine, fs::Permissions::from_mode(0o755)).unwrap();
        ensure(&mine).unwrap();
        assert_eq!(
            fs::metadata(&mine).unwrap().permissions().mode() & 0o777,
            0o755
        );
    }

    #[test]
    fn a_link_at_a_state_file_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "keep me").unwrap();
        let link = dir.path().join("lock");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let e = open_or_create(&link, OpenOptions::new().read(true).write(true)).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        replace_file(&link, b"new").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep me");
        assert_eq!(fs::read_to_string(&link).unwrap(), "new");
    }
}
