//! Who may do what on the control socket (SO_PEERCRED): root and the daemon's own user
//! everything; members of `[control] admin_group` may also act (drain, undrain, reload,
//! stop); members of `[control] group` may read (status, history, replay); anyone else is
//! refused (exit 77). The socket file is 0600 when no group is configured (the kernel refuses
//! others), else 0666 with these checks.

use super::protocol::Request;
use super::{BindError, Context};

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Nothing.
    None,
    /// Read: status, history, replay.
    Read,
    /// Also act: drain, undrain, reload, stop.
    Admin,
}

/// The group id of a group name (`[control] group`, `admin_group`).
pub fn group_gid(name: &str) -> Result<u32, BindError> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        Ok(None) => Err(BindError::NoGroup(name.to_owned())),
        Err(e) => Err(BindError::Group(name.to_owned(), e)),
    }
}

/// What a caller with `uid` and primary group `gid` may do.
pub fn access(uid: u32, gid: u32, context: &Context) -> Access {
    if uid == 0 || uid == nix::unistd::geteuid().as_raw() {
        return Access::Admin;
    }
    let mut groups = vec![gid];
    if let Ok(Some(user)) = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        if let Ok(name) = std::ffi::CString::new(user.name) {
            if let Ok(list) = nix::unistd::getgrouplist(&name, user.gid) {
                groups.extend(list.iter().map(|g| g.as_raw()));
            }
        }
    }
    if context.admin_gid.is_some_and(|g| groups.contains(&g)) {
        Access::Admin
    } else if context.read_gid.is_some_and(|g| groups.contains(&g)) {
        Access::Read
    } else {
        Access::None
    }
}

/// The action a request is, when it is one (acting needs [`Access::Admin`]).
pub fn action(request: &Request) -> Option<&'static str> {
    match request {
        Request::Drain { .. } => Some("drain"),
        Request::Undrain { .. } => Some("undrain"),
        Request::Reload => Some("reload"),
        Request::Stop { .. } => Some("stop"),
        Request::Status { .. }
        | Request::History { .. }
        | Request::Replay { .. }
        | Request::Report { .. } => None,
    }
}
