//! The difference between a source and a target manifest of one tree, as the actions that make
//! the target equal: remove, mkdir, symlink, file content, hard link, metadata, directory
//! metadata (deepest first, last, since every change inside a folder moves its mtime).
//!
//! A regular file is unchanged when type, size and mtime (to the nanosecond) are equal; when only
//! mode or owner differ it gets a metadata fix. Owners are compared after mapping (`OwnerMap`).
//! Nothing under a path the source scan could not read is removed from the target.

use super::manifest::{EntryRef, Manifest};
use super::owners::OwnerMap;
use crate::agent::proto::{FileType, RelPath, Time};
use std::collections::{HashMap, HashSet};

/// Attributes to give an entry on the target (ids already mapped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attrs {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Time,
}

/// A file whose bytes are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOp {
    pub path: RelPath,
    pub size: u64,
    pub attrs: Attrs,
}

/// A metadata fix: only the attributes that differ are `Some`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaOp {
    pub path: RelPath,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mtime: Option<Time>,
}

/// Everything to do on the target for one tree, in the order it must be done.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// In the way of a source entry of another type: removed first, recursively.
    pub remove_first: Vec<RelPath>,
    /// Extraneous (not on the source): removed after `reuse`, recursively (topmost only).
    pub remove: Vec<RelPath>,
    /// Folders to create, parents first (attributes but the mtime, which comes with `dir_meta`).
    pub mkdir: Vec<(RelPath, Attrs)>,
    pub symlinks: Vec<(RelPath, Vec<u8>, Attrs)>,
    /// New files whose bytes are already on the target under an extraneous name (a renamed or
    /// moved folder): hard-linked from there before the removals, instead of sent again. When
    /// the link fails, the file is sent.
    pub reuse: Vec<(FileOp, RelPath)>,
    pub files: Vec<FileOp>,
    /// `(new path, existing path)`: after the files, since the existing one may be among them.
    pub links: Vec<(RelPath, RelPath)>,
    pub meta: Vec<MetaOp>,
    /// Folders' attributes, deepest first, after everything else.
    pub dir_meta: Vec<MetaOp>,
    /// Entries that cannot be copied (fifos, sockets, devices): listed, left out.
    pub special: Vec<RelPath>,
    /// Bytes of `files`.
    pub bytes: u64,
}

impl Plan {
    /// Returns true if and only if nothing needs doing.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty()
            && self.remove_first.is_empty()
            && self.reuse.is_empty()
            && self.mkdir.is_empty()
            && self.symlinks.is_empty()
            && self.files.is_empty()
            && self.links.is_empty()
            && self.meta.is_empty()
            && self.dir_meta.is_empty()
    }
}

/// A file of the source to be written on the target (its bytes sent, or linked from a spare).
fn file_op(e: &EntryRef, owners: &OwnerMap) -> FileOp {
    FileOp {
        path: e.path.to_rel(),
        size: e.size,
        attrs: attrs(e, owners),
    }
}

fn attrs(e: &EntryRef, owners: &OwnerMap) -> Attrs {
    Attrs {
        mode: e.mode,
        uid: owners.uid(e.uid),
        gid: owners.gid(e.gid),
        mtime: e.mtime,
    }
}

fn name(p: &[u8]) -> &[u8] {
    match p.iter().rposition(|&b| b == b'/') {
        Some(i) => &p[i + 1..],
        None => p,
    }
}

fn parent(p: &[u8]) -> &[u8] {
    match p.iter().rposition(|&b| b == b'/') {
        Some(i) => &p[..i],
        None => b"",
    }
}

/// What differs in mode/owner/mtime; `with_mode` false for symlinks.
fn meta_of(src: &EntryRef, tgt: &EntryRef, owners: &OwnerMap, with_mode: bool) -> Option<MetaOp> {
    let a = attrs(src, owners);
    let m = MetaOp {
        path: src.path.to_rel(),
        mode: (with_mode && a.mode != tgt.mode).then_some(a.mode),
        uid: (a.uid != tgt.uid).then_some(a.uid),
        gid: (a.gid != tgt.gid).then_some(a.gid),
        mtime: (a.mtime != tgt.mtime).then_some(a.mtime),
    };
    (m.mode.is_some() || m.uid.is_some() || m.gid.is_some() || m.mtime.is_some()).then_some(m)
}

/// The plan that makes `tgt` equal to `src`.
pub fn diff(src: &Manifest, tgt: &Manifest, owners: &OwnerMap) -> Plan {
    let mut plan = Plan::default();
    let sleaders = src.link_leaders();
    // Folders whose content changes (their mtime must be set again at the end).
    let mut touched: HashSet<Vec<u8>> = HashSet::new();
    let mut dir_meta: HashMap<Vec<u8>, MetaOp> = HashMap::new();
    let mut removed: HashSet<Vec<u8>> = HashSet::new();
    // Files whose content is sent (their hard links must be made again).
    let mut sent: HashSet<&[u8]> = HashSet::new();

    // In the way of a source entry: removed before anything is created.
    let remove = |p: &super::manifest::MPath,
                  plan: &mut Plan,
                  removed: &mut HashSet<Vec<u8>>,
                  touched: &mut HashSet<Vec<u8>>| {
        plan.remove_first.push(p.to_rel());
        removed.insert(p.as_bytes().to_vec());
        touched.insert(parent(p.as_bytes()).to_vec());
    };
    // Extraneous target files by (name, size, mtime): the bytes of a renamed folder's files.
    let mut spare: HashMap<(&[u8], u64, Time), EntryRef> = HashMap::new();
    for t in tgt.iter() {
        let p = t.path.as_bytes();
        if t.file_type == FileType::File
            && t.nlink == 1
            && !src.contains(p)
            && !src.under_skipped(p)
        {
            spare.entry((name(p), t.size, t.mtime)).or_insert(t);
        }
    }

    for s in src.iter() {
        let s = &s;
        let path = s.path.as_bytes();
        let t = tgt.find(path);
        let t = t.as_ref();
        match s.file_type {
            FileType::Dir => {
                let t = match t {
                    Some(t) if t.file_type != FileType::Dir => {
                        remove(&s.path, &mut plan, &mut removed, &mut touched);
                        None
                    }
                    t => t,
                };
                match t {
                    None => {
                        if !s.path.is_root() {
                            plan.mkdir.push((s.path.to_rel(), attrs(s, owners)));
                            touched.insert(parent(path).to_vec());
                        }
                        let a = attrs(s, owners);
                        dir_meta.insert(
                            path.to_vec(),
                            MetaOp {
                                path: s.path.to_rel(),
                                mode: Some(a.mode),
                                uid: Some(a.uid),
                                gid: Some(a.gid),
                                mtime: Some(a.mtime),
                            },
                        );
                    }
                    Some(t) => {
                        if let Some(m) = meta_of(s, t, owners, true) {
                            dir_meta.insert(path.to_vec(), m);
                        }
                    }
                }
            }
            FileType::File => {
                if let Some(&leader) = sleaders.get(path).filter(|&&l| l != path) {
                    // A further name of a file already in this tree: a hard link.
                    let tl = tgt.find(leader);
                    let tl = tl.as_ref();
                    let fine = !sent.contains(leader)
                        && matches!((t, tl), (Some(t), Some(tl))
                            if t.file_type == FileType::File && tl.file_type == FileType::File
                            && (t.dev, t.ino) == (tl.dev, tl.ino));
                    if !fine {
                        if t.is_some() {
                            remove(&s.path, &mut plan, &mut removed, &mut touched);
                        }
                        touched.insert(parent(path).to_vec());
                        plan.links.push((
                            s.path.to_rel(),
                            RelPath::new(leader.to_vec()).expect("a manifest path"),
                        ));
                    }
                    continue;
                }
                let same_content = matches!(t, Some(t) if t.file_type == FileType::File
                    && t.size == s.size && t.mtime == s.mtime
                    // a lone source file must not stay linked to another target path
                    && (t.nlink <= 1 || sleaders.contains_key(path)));
                if same_content {
                    if let Some(m) = meta_of(s, t.expect("matched"), owners, true) {
                        plan.meta.push(m);
                    }
                } else {
                    if let Some(t) = t {
                        if t.file_type == FileType::Dir {
                            remove(&s.path, &mut plan, &mut removed, &mut touched);
                        }
                    }
                    // The temporary file and the rename move the folder's mtime.
                    touched.insert(parent(path).to_vec());
                    let key = (name(path), s.size, s.mtime);
                    let old = (t.is_none() && !sleaders.contains_key(path) && s.size > 0)
                        .then(|| spare.remove(&key))
                        .flatten();
                    if let Some(old) = old {
                        if let Some(mut m) = meta_of(s, &old, owners, true) {
                            m.mtime = None;
                            plan.meta.push(m);
                        }
                        plan.reuse.push((file_op(s, owners), old.path.to_rel()));
                        continue;
                    }
                    plan.bytes += s.size;
                    sent.insert(path);
                    plan.files.push(file_op(s, owners));
                }
            }
            FileType::Symlink => {
                let same = matches!(t, Some(t) if t.file_type == FileType::Symlink && t.target == s.target);
                if same {
                    if let Some(m) = meta_of(s, t.expect("matched"), owners, false) {
                        plan.meta.push(m);
                    }
                } else {
                    if let Some(t) = t {
                        if t.file_type == FileType::Dir {
                            remove(&s.path, &mut plan, &mut removed, &mut touched);
                        }
                    }
                    touched.insert(parent(path).to_vec());
                    plan.symlinks
                        .push((s.path.to_rel(), s.target.to_vec(), attrs(s, owners)));
                }
            }
            _ => plan.special.push(s.path.to_rel()),
        }
    }

    // Extraneous target entries: removed unless a removed ancestor covers them, or the source
    // could not read that part of its tree.
    for t in tgt.iter() {
        let p = t.path.as_bytes();
        if t.path.is_root() || src.contains(p) {
            continue;
        }
        if src.under_skipped(p) || src.skipped.iter().any(|s| s.path.as_bytes() == p) {
            continue;
        }
        let mut covered = false;
        let mut a = p;
        loop {
            a = parent(a);
            if a.is_empty() {
                break;
            }
            if removed.contains(a) {
                covered = true;
                break;
            }
        }
        if covered {
            continue;
        }
        plan.remove.push(t.path.to_rel());
        removed.insert(p.to_vec());
        touched.insert(parent(p).to_vec());
    }
    // A removal and a re-creation of the same path: removal first, as listed. Folders touched
    // get their attributes (their mtime at least) again at the end.
    for d in touched {
        let Some(s) = src.find(&d[..]) else { continue };
        if s.file_type != FileType::Dir {
            continue;
        }
        let a = attrs(&s, owners);
        dir_meta
            .entry(d)
            .or_insert(MetaOp {
                path: s.path.to_rel(),
                mode: None,
                uid: None,
                gid: None,
                mtime: Some(a.mtime),
            })
            .mtime = Some(a.mtime);
    }
    let mut dm: Vec<MetaOp> = dir_meta.into_values().collect();
    // Deepest first; among equals, reverse path order.
    dm.sort_by(|a, b| {
        let da = a.path.components().count();
        let db = b.path.components().count();
        db.cmp(&da).then_with(|| b.path.cmp(&a.path))
    });
    plan.dir_meta = dm;
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::proto::Entry;

    fn e(p: &str, ft: FileType, size: u64, sec: i64) -> Entry {
        Entry {
            path: RelPath::new(p).unwrap(),
            file_type: ft,
            mode: 0o644,
            uid: 33,
            gid: 33,
            size,
            mtime: Time { sec, nsec: 5 },
            ctime: Time::default(),
            dev: 1,
            ino: 0,
            nlink: 1,
            target: if ft == FileType::Symlink {
                b"t".to_vec()
            } else {
                vec![]
            },
        }
    }
    fn m(es: Vec<Entry>) -> Manifest {
        Manifest::from_entries(es)
    }
    fn paths<'a>(v: impl IntoIterator<Item = &'a RelPath>) -> Vec<String> {
        v.into_iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn equal_trees_give_nothing() {
        let a = m(vec![
            e("", FileType::Dir, 0, 1),
            e("a", FileType::File, 3, 2),
            e("l", FileType::Symlink, 1, 3),
        ]);
        let p = diff(&a, &a, &OwnerMap::identity());
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn creates_removes_and_fixes() {
        let src = m(vec![
            e("", FileType::Dir, 0, 1),
            e("d", FileType::Dir, 0, 1),
            e("d/new", FileType::File, 10, 2),
            e("same", FileType::File, 3, 2),
            e("chmod", FileType::File, 3, 2),
            e("typechange", FileType::File, 3, 2),
            e("sub", FileType::Dir, 0, 7),
        ]);
        let mut chmod = e("chmod", FileType::File, 3, 2);
        chmod.mode = 0o600;
        let tgt = m(vec![
            e("", FileType::Dir, 0, 1),
            e("same", FileType::File, 3, 2),
            chmod,
            e("typechange", FileType::Dir, 0, 2),
            e("typechange/x", FileType::File, 0, 2),
            e("gone", FileType::Dir, 0, 2),
            e("gone/deep", FileType::File, 0, 2),
            e("sub", FileType::Dir, 0, 7),
            e("sub/extra", FileType::File, 0, 7),
        ]);
        let p = diff(&src, &tgt, &OwnerMap::identity());
        assert_eq!(paths(&p.remove_first), ["typechange"]);
        assert_eq!(paths(&p.remove), ["gone", "sub/extra"]);
        assert_eq!(paths(p.mkdir.iter().map(|x| &x.0)), ["d"]);
        assert_eq!(
            paths(p.files.iter().map(|x| &x.path)),
            ["d/new", "typechange"]
        );
        assert_eq!(p.bytes, 13);
        assert_eq!(p.meta.len(), 1);
        assert_eq!(p.meta[0].mode, Some(0o644));
        assert_eq!(p.meta[0].mtime, None);
        // d (new), sub (lost a child) and the root (children added/removed), deepest first
        assert_eq!(paths(p.dir_meta.iter().map(|x| &x.path)), ["sub", "d", "."]);
    }

    #[test]
    fn hard_links_and_skipped_source_parts() {
        let mut a = e("a", FileType::File, 3, 2);
        a.ino = 9;
        a.nlink = 2;
        let mut b = a.clone();
        b.path = RelPath::new("b").unwrap();
        let mut src = m(vec![
            e("", FileType::Dir, 0, 1),
            a.clone(),
            b.clone(),
            e("locked", FileType::Dir, 0, 1),
        ]);
        src.skipped.push(super::super::manifest::Skip {
            path: RelPath::new("locked").unwrap(),
            code: crate::agent::proto::ErrorCode::PermissionDenied,
            message: "no".into(),
        });
        let tgt = m(vec![
            e("", FileType::Dir, 0, 1),
            e("locked", FileType::Dir, 0, 1),
            e("locked/keep", FileType::File, 1, 1),
        ]);
        let p = diff(&src, &tgt, &OwnerMap::identity());
        assert_eq!(paths(p.files.iter().map(|x| &x.path)), ["a"]);
        assert_eq!(
            p.links,
            vec![(RelPath::new("b").unwrap(), RelPath::new("a").unwrap())]
        );
        assert!(
            p.remove.is_empty(),
            "nothing under an unreadable source folder is removed"
        );
        // already linked on the target: nothing to do
        let mut ta = a.clone();
        ta.ino = 50;
        let mut tb = b.clone();
        tb.ino = 50;
        let tgt = m(vec![
            e("", FileType::Dir, 0, 1),
            ta,
            tb,
            e("locked", FileType::Dir, 0, 1),
        ]);
        let p = diff(&src, &tgt, &OwnerMap::identity());
        assert!(p.is_empty(), "{p:?}");
    }
}

#[cfg(test)]
mod reuse_tests {
    use super::*;
    use crate::agent::proto::Entry;

    #[test]
    fn a_renamed_folder_is_linked_not_sent() {
        let e = |p: &str, ft: FileType, size: u64| Entry {
            path: RelPath::new(p).unwrap(),
            file_type: ft,
            mode: 0o644,
            uid: 1,
            gid: 1,
            size,
            mtime: Time { sec: 9, nsec: 9 },
            ctime: Time::default(),
            dev: 1,
            ino: 0,
            nlink: 1,
            target: vec![],
        };
        let m = |v: Vec<Entry>| Manifest::from_entries(v);
        let src = m(vec![
            e("", FileType::Dir, 0),
            e("new", FileType::Dir, 0),
            e("new/a", FileType::File, 5),
            e("new/b", FileType::File, 6),
        ]);
        let mut old_b = e("old/b", FileType::File, 6);
        old_b.mode = 0o600;
        let tgt = m(vec![
            e("", FileType::Dir, 0),
            e("old", FileType::Dir, 0),
            e("old/a", FileType::File, 5),
            old_b,
        ]);
        let p = diff(&src, &tgt, &OwnerMap::identity());
        assert!(p.files.is_empty(), "{:?}", p.files);
        let reused: Vec<_> = p
            .reuse
            .iter()
            .map(|(f, o)| format!("{} <- {}", f.path, o))
            .collect();
        assert_eq!(reused, ["new/a <- old/a", "new/b <- old/b"]);
        assert_eq!(p.remove, vec![RelPath::new("old").unwrap()]);
        assert_eq!(p.meta.len(), 1, "the mode of b differs: {:?}", p.meta);
        assert_eq!(p.meta[0].mode, Some(0o644));
    }
}
