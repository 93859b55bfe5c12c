//! Owners: user and group names on each host, and the mapping of the source's owners to the
//! target's (SPEC: "owner by name, mapped to the target's web user").
//!
//! The source web user becomes the target web user (and its primary group the target web
//! user's primary group); any other name is kept when the target has it, else it becomes the
//! target web user (or its group), with one warning per name. A numeric id without a name on the
//! source is treated the same way.

use crate::exit::Failure;
use crate::host::{Probe, ReadSide};
use std::collections::{BTreeSet, HashMap};

/// The accounts of one host: `/etc/passwd` and `/etc/group`.
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    pub users: HashMap<u32, String>,
    pub user_ids: HashMap<String, u32>,
    /// Primary group of each user name.
    pub primary: HashMap<String, u32>,
    pub groups: HashMap<u32, String>,
    pub group_ids: HashMap<String, u32>,
}

impl Accounts {
    /// Parse the text of `/etc/passwd` and `/etc/group` (the first entry of a name or id wins,
    /// as with the C library).
    pub fn parse(passwd: &str, group: &str) -> Accounts {
        let mut a = Accounts::default();
        for line in passwd.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 || f[0].is_empty() || f[0].starts_with('#') {
                continue;
            }
            let (Ok(uid), Ok(gid)) = (f[2].parse::<u32>(), f[3].parse::<u32>()) else {
                continue;
            };
            a.users.entry(uid).or_insert_with(|| f[0].to_string());
            a.user_ids.entry(f[0].to_string()).or_insert(uid);
            a.primary.entry(f[0].to_string()).or_insert(gid);
        }
        for line in group.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 3 || f[0].is_empty() || f[0].starts_with('#') {
                continue;
            }
            let Ok(gid) = f[2].parse::<u32>() else {
                continue;
            };
            a.groups.entry(gid).or_insert_with(|| f[0].to_string());
            a.group_ids.entry(f[0].to_string()).or_insert(gid);
        }
        a
    }

    /// The accounts of a host, read through its read-only side in one round trip.
    pub fn of_side(side: &ReadSide) -> Result<Accounts, Failure> {
        let r = side.probe(&Probe::Accounts)?;
        let (passwd, group) = match (r.ok(), split_accounts(&r.stdout)) {
            (true, Some(two)) => two,
            _ => {
                return Err(Failure::check(format!(
                    "{}: cannot read /etc/passwd and /etc/group: {}",
                    side.label(),
                    r.stderr_text().trim()
                )))
            }
        };
        Ok(Accounts::parse(&passwd, &group))
    }

    pub fn user_name(&self, uid: u32) -> String {
        self.users
            .get(&uid)
            .cloned()
            .unwrap_or_else(|| uid.to_string())
    }
    pub fn group_name(&self, gid: u32) -> String {
        self.groups
            .get(&gid)
            .cloned()
            .unwrap_or_else(|| gid.to_string())
    }
}

/// The two files of a [`Probe::Accounts`] answer, split at its line holding one NUL byte.
fn split_accounts(out: &[u8]) -> Option<(String, String)> {
    const SEP: &[u8] = b"\n\0\n";
    let at = out.windows(SEP.len()).position(|w| w == SEP)?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Some((text(&out[..at]), text(&out[at + SEP.len()..])))
}

/// Source ids → target ids.
#[derive(Debug, Clone)]
pub struct OwnerMap {
    web_uid: u32,
    web_gid: u32,
    uids: HashMap<u32, u32>,
    gids: HashMap<u32, u32>,
    src: Accounts,
    tgt: Accounts,
    src_web: String,
    /// One line per name that the target does not have.
    pub warnings: Vec<String>,
}

impl OwnerMap {
    /// The mapping for these hosts' accounts and web users.
    pub fn new(
        src: Accounts,
        tgt: Accounts,
        src_web: &str,
        tgt_web: &str,
    ) -> Result<OwnerMap, Failure> {
        let Some(&web_uid) = tgt.user_ids.get(tgt_web) else {
            return Err(Failure::usage(format!(
                "the target's web user {tgt_web:?} does not exist on the target"
            ))
            .hint(
                "create it, or name the right one with `[target] web_user` in the migration file",
            ));
        };
        let web_gid = tgt.primary.get(tgt_web).copied().unwrap_or(web_uid);
        let src_web_gid = src.primary.get(src_web).copied();
        let mut uids = HashMap::new();
        for (uid, name) in &src.users {
            let to = if name == src_web {
                web_uid
            } else {
                tgt.user_ids.get(name).copied().unwrap_or(web_uid)
            };
            uids.insert(*uid, to);
        }
        let mut gids = HashMap::new();
        for (gid, name) in &src.groups {
            let to = if Some(*gid) == src_web_gid {
                web_gid
            } else {
                tgt.group_ids.get(name).copied().unwrap_or(web_gid)
            };
            gids.insert(*gid, to);
        }
        Ok(OwnerMap {
            web_uid,
            web_gid,
            uids,
            gids,
            src,
            tgt,
            src_web: src_web.to_string(),
            warnings: Vec::new(),
        })
    }

    /// The identity mapping (both sides on one machine with the same accounts), for tests and
    /// local copies.
    pub fn identity() -> OwnerMap {
        OwnerMap {
            web_uid: 0,
            web_gid: 0,
            uids: HashMap::new(),
            gids: HashMap::new(),
            src: Accounts::default(),
            tgt: Accounts::default(),
            src_web: String::new(),
            warnings: Vec::new(),
        }
    }

    fn is_identity(&self) -> bool {
        self.uids.is_empty() && self.gids.is_empty() && self.src.users.is_empty()
    }

    pub fn uid(&self, uid: u32) -> u32 {
        if self.is_identity() {
            return uid;
        }
        self.uids.get(&uid).copied().unwrap_or(self.web_uid)
    }

    pub fn gid(&self, gid: u32) -> u32 {
        if self.is_identity() {
            return gid;
        }
        self.gids.get(&gid).copied().unwrap_or(self.web_gid)
    }

    /// Note, once per name, every source owner that the target does not have (they become the
    /// target's web user), for the ids seen in a manifest.
    pub fn note_unmapped(&mut self, uids: &BTreeSet<u32>, gids: &BTreeSet<u32>) {
        if self.is_identity() {
            return;
        }
        let web = self.tgt.user_name(self.web_uid);
        let web_group = self.tgt.group_name(self.web_gid);
        for u in uids {
            let name = self.src.user_name(*u);
            if name != self.src_web && !self.tgt.user_ids.contains_key(&name) {
                self.warn(format!(
                    "files owned by user {name} on the source belong to the target's web user \
                     {web} (the target has no user {name})"
                ));
            }
        }
        for g in gids {
            let name = self.src.group_name(*g);
            if Some(*g) != self.src.primary.get(&self.src_web).copied()
                && !self.tgt.group_ids.contains_key(&name)
            {
                self.warn(format!(
                    "files of group {name} on the source get the target web user's group \
                     {web_group} (the target has no group {name})"
                ));
            }
        }
    }

    fn warn(&mut self, w: String) {
        if !self.warnings.contains(&w) {
            self.warnings.push(w);
        }
    }

    /// `user:group` of target ids, by name, for messages.
    pub fn target_names(&self, uid: u32, gid: u32) -> String {
        if self.is_identity() {
            return format!("{uid}:{gid}");
        }
        format!("{}:{}", self.tgt.user_name(uid), self.tgt.group_name(gid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_s_accounts_come_in_one_answer() {
        let src = crate::host::SourceHost::new(crate::host::local_host_for_tests(), "/".into());
        let r = src.probe(&Probe::Accounts).unwrap();
        assert!(r.ok(), "{}", r.stderr_text());
        let (passwd, group) = split_accounts(&r.stdout).unwrap();
        assert_eq!(
            passwd.trim_end(),
            std::fs::read_to_string("/etc/passwd").unwrap().trim_end()
        );
        assert_eq!(group, std::fs::read_to_string("/etc/group").unwrap());
        let a = Accounts::of_side(&src).unwrap();
        assert_eq!(a.user_name(0), "root");
        assert_eq!(a.group_name(0), "root");
        // The separator is a line of its own; a file may end without a newline.
        let (p, g) = split_accounts(b"root:x:0:0::/root:/bin/sh\n\0\nroot:x:0:").unwrap();
        assert_eq!(
            (p.as_str(), g.as_str()),
            ("root:x:0:0::/root:/bin/sh", "root:x:0:")
        );
        assert_eq!(split_accounts(b"root:x:0:0::/root:/bin/sh\n"), None);
    }

    #[test]
    fn maps_web_user_and_names() {
        let src = Accounts::parse(
            "root:x:0:0::/root:/bin/sh\nwww-data:x:33:33::/var/www:/bin/false\nalice:x:1000:1000::/home/alice:/bin/sh\nzed:x:1001:1001::/:/bin/sh\n",
            "root:x:0:\nwww-data:x:33:\nalice:x:1000:\nzed:x:1001:\n",
        );
        let tgt = Accounts::parse(
            "root:x:0:0::/root:/bin/sh\napache:x:48:48::/:/bin/false\nalice:x:2000:2000::/:/bin/sh\n",
            "root:x:0:\napache:x:48:\nalice:x:2000:\n",
        );
        let mut m = OwnerMap::new(src, tgt, "www-data", "apache").unwrap();
        assert_eq!((m.uid(33), m.gid(33)), (48, 48));
        assert_eq!((m.uid(1000), m.gid(1000)), (2000, 2000));
        assert_eq!((m.uid(0), m.gid(0)), (0, 0));
        assert_eq!((m.uid(1001), m.gid(1001)), (48, 48), "no zed on the target");
        assert_eq!(m.uid(4242), 48, "no name on the source");
        m.note_unmapped(&[33, 1000, 1001, 4242].into(), &[33, 1001].into());
        assert_eq!(m.warnings.len(), 3, "{:?}", m.warnings);
        assert!(m.warnings.iter().any(|w| w.contains("user zed")));
        assert!(m.warnings.iter().any(|w| w.contains("user 4242")));
        assert!(m.warnings.iter().any(|w| w.contains("group zed")));
        assert_eq!(m.target_names(48, 2000), "apache:alice");
        let e = OwnerMap::new(Accounts::default(), Accounts::default(), "a", "nobody").unwrap_err();
        assert!(e.message.contains("nobody"));
    }
}
