//! User and group names to ids, from `/etc/passwd` and `/etc/group` (local accounts; names that
//! only a directory service knows are not found, and numeric ids are accepted as they are).

use std::path::Path;

/// A user or group that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// No such user.
    #[error("no such user `{0}` in /etc/passwd")]
    NoUser(String),
    /// No such group.
    #[error("no such group `{0}` in /etc/group")]
    NoGroup(String),
}

/// The uid of `name`, or `name` itself when it is a number.
pub fn uid(name: &str) -> Result<u32, LookupError> {
    lookup(Path::new("/etc/passwd"), name).ok_or_else(|| LookupError::NoUser(name.to_owned()))
}

/// The gid of `name`, or `name` itself when it is a number.
pub fn gid(name: &str) -> Result<u32, LookupError> {
    lookup(Path::new("/etc/group"), name).ok_or_else(|| LookupError::NoGroup(name.to_owned()))
}

/// The name of uid `id` in /etc/passwd, if any.
pub fn user_name(id: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        f.next()?;
        (f.next()?.parse::<u32>().ok()? == id).then(|| name.to_owned())
    })
}

fn lookup(file: &Path, name: &str) -> Option<u32> {
    if let Ok(id) = name.parse::<u32>() {
        return Some(id);
    }
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let mut f = line.split(':');
        (f.next()? == name).then_some(())?;
        f.next()?;
        f.next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_numbers() {
        assert_eq!(uid("root"), Ok(0));
        assert_eq!(gid("root"), Ok(0));
        assert_eq!(uid("4242"), Ok(4242));
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert_eq!(uid("no-such-user-kyb"), Err(LookupError::NoUser("no-such-user-kyb".into())));
        assert!(
            gid("no-such-group-kyb").unwrap_err().to_string().contains("no such group `no-such-group-kyb`")
        );
    }
}
