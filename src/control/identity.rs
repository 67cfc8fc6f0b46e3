//! Who a client is: the account the kernel reports for the socket's peer
//! (never an environment variable), with the SSH client address and the
//! login key's fingerprint the client adds from its own session.

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::domain::Operator;

/// The account name of a uid (`getpwuid`), or `uid N` when it has none.
pub fn account_of(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// The operator behind a connected peer: the account from its uid, plus what
/// the client said of its SSH session.
pub fn operator_of(
    uid: u32,
    ssh_client: Option<String>,
    key_fingerprint: Option<String>,
) -> Operator {
    Operator {
        account: account_of(uid),
        uid: Some(uid),
        ssh_client: ssh_client.filter(|c| c.len() <= 64 && !c.chars().any(char::is_control)),
        key_fingerprint: key_fingerprint
            .filter(|k| k.len() <= 128 && !k.chars().any(char::is_control)),
    }
}

/// This session's SSH client address (`SSH_CONNECTION`'s first field).
pub fn ssh_client_here() -> Option<String> {
    std::env::var("SSH_CONNECTION")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .filter(|c| !c.is_empty())
}

/// The fingerprint (`SHA256:…`, as `ssh-keygen -l` prints it) of the public
/// key this SSH session logged in with, from the file sshd names in
/// `SSH_USER_AUTH` when `ExposeAuthInfo yes` is set.
pub fn key_fingerprint_here() -> Option<String> {
    let path = std::env::var_os("SSH_USER_AUTH")?;
    let text = std::fs::read_to_string(path).ok()?;
    fingerprint_of_auth_info(&text)
}

/// The first `publickey TYPE BASE64` line's fingerprint.
pub fn fingerprint_of_auth_info(text: &str) -> Option<String> {
    let line = text.lines().find(|l| l.starts_with("publickey "))?;
    let blob = line.split_whitespace().nth(2)?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .ok()?;
    let digest = Sha256::digest(&key);
    Some(format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_fingerprint_is_what_ssh_keygen_prints() {
        // A key and the fingerprint `ssh-keygen -l` printed for it.
        let blob = "AAAAC3NzaC1lZDI1NTE5AAAAIE7qN4MAbp8djJP36NNn+cLIbqa32OQNI67RRrOXjaOj";
        let text = format!("password\npublickey ssh-ed25519 {blob}\n");
        assert_eq!(
            fingerprint_of_auth_info(&text).as_deref(),
            Some("SHA256:EnYIJlhLAJWLGcgCsrrNvsBYH7uEB6GpRO+3wgkvlWs")
        );
        assert_eq!(fingerprint_of_auth_info("password\n"), None);
    }

    #[test]
    fn the_account_comes_from_the_uid() {
        assert_eq!(account_of(0), "root");
        let op = operator_of(0, Some("10.0.0.5".into()), Some("x\u{1b}[2J".into()));
        assert_eq!(op.to_string(), "root@10.0.0.5");
        assert_eq!(op.key_fingerprint, None, "control characters refused");
    }
}
