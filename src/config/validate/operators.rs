//! `[operators]`: who may act on a detached deployment (others may watch),
//! the group its socket is shared with, and the two-person rule.

use super::super::plan::OperatorsPlan;
use super::super::raw::{Located, RawOperators};
use super::Validator;

/// Longest account or group name accepted (POSIX systems use at most 32).
const MAX_NAME: usize = 64;

/// Whether a word can be an account or group name as `getpwnam` knows it.
fn account_like(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '$'))
}

pub(super) fn validate(v: &mut Validator, o: &Located<RawOperators>) -> OperatorsPlan {
    let r = &o.value;
    let group = r.group.as_ref().and_then(|g| {
        let name = g.get_ref();
        if !account_like(name) {
            v.error(
                g.span(),
                "group is not a group name: use letters, digits, '_', '-' or '.'",
            );
            return None;
        }
        if nix::unistd::Group::from_name(name).ok().flatten().is_none() {
            v.error(
                g.span(),
                format!("there is no group named {name:?} on this machine: create it, or name one that exists"),
            );
            return None;
        }
        Some(name.clone())
    });
    let approvers = match &r.approvers {
        None => None,
        Some(list) => {
            let mut out: Vec<String> = Vec::new();
            for a in list.get_ref() {
                let name = a.get_ref();
                if !account_like(name) {
                    v.error(
                        a.span(),
                        "not an account name: use letters, digits, '_', '-' or '.'",
                    );
                } else if out.contains(name) {
                    v.error(a.span(), format!("{name:?} is listed twice"));
                } else {
                    out.push(name.clone());
                }
            }
            if list.get_ref().is_empty() {
                v.error(
                    list.span(),
                    "approvers is empty: nobody could steer; list the accounts, or leave the key out to let every operator steer",
                );
            }
            Some(out)
        }
    };
    let approvals: u32 = v.whole(&r.approvals, "approvals", 1..=10, 1);
    if let (Some(list), Some(a)) = (&approvers, &r.approvals) {
        if !list.is_empty() && (approvals as usize) > list.len() {
            v.error(
                a.span(),
                format!(
                    "approvals = {approvals} but only {} approver(s) are listed: no step could ever be approved",
                    list.len()
                ),
            );
        }
    }
    OperatorsPlan {
        group,
        approvers,
        approvals,
        self_approval: r.self_approval.as_ref().is_none_or(|s| *s.get_ref()),
    }
}
