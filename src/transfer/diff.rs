//! The difference between a source and a target manifest of one tree, as the actions that make
//! the target equal: remove, mkdir, symlink, file content, hard link, metadata, directory
//! metadata (deepest first, last, since every change inside a folder moves its mtime).
//!
//! A regular file is unchanged when type, size and mtime (to the nanosecond) are equal; when only
//! mode or owner differ it gets a metadata fix. Owners are compared after mapping (`OwnerMap`).
//! Nothing under a path the source scan could not read is removed from the target.

use super::manifest::{walk_cmp, EntryRef, Manifest};
use super::owners::OwnerMap;
use crate::agent::proto::{Entry, FileType, RelPath, Time};
use std::cmp::Ordering;
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

/// The plan that makes `tgt` equal to `src` (both manifests merged in scan order through a
/// [`Differ`], as a pass does with the scans themselves).
pub fn diff(src: &Manifest, tgt: &Manifest, owners: &OwnerMap) -> Plan {
    let mut d = Differ::new(owners);
    feed(src, tgt, &mut d, |_| {});
    d.finish()
}

/// Both manifests into `d`, merged in scan order; `each` after every position.
fn feed(src: &Manifest, tgt: &Manifest, d: &mut Differ, mut each: impl FnMut(&mut Differ)) {
    let (s, t) = (src.walk_order(), tgt.walk_order());
    let (mut i, mut j) = (0, 0);
    loop {
        let (a, b) = (s.get(i), t.get(j));
        let ord = match (a, b) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(a), Some(b)) => walk_cmp(a.path.as_bytes(), b.path.as_bytes()),
        };
        match ord {
            Ordering::Less => {
                d.pair(a, None);
                i += 1;
            }
            Ordering::Greater => {
                d.pair(None, b);
                j += 1;
            }
            Ordering::Equal => {
                d.pair(a, b);
                i += 1;
                j += 1;
            }
        }
        each(d);
    }
    for sk in &src.skipped {
        d.skipped(sk.clone());
    }
}

/// A source file whose decision waits for the end of the scans: one with more than one link
/// (its hard-link group is known only then), with the target's entry at its path.
struct Linked {
    src: Entry,
    tgt: Option<Entry>,
    /// The target had a folder there, already removed (`remove_first`).
    tgt_was_dir: bool,
}

/// The diff of one tree, fed entry by entry in scan order ([`walk_cmp`]): each position of the
/// merged scans is one [`Differ::pair`] (the source's entry, the target's, or both when the
/// path is on both sides). It holds what a decision needs later, not the manifests: the source's
/// folders (their attributes, for the folders touched), the new files and the target's
/// extraneous files (a renamed folder's files are linked from their old names, matched at the
/// end), the source's files with several links (their groups are known at the end), and what
/// could not be read on the source (nothing under it is removed: extraneous entries are
/// judged at the end).
pub struct Differ<'o> {
    owners: &'o OwnerMap,
    plan: Plan,
    /// Folders whose content changes (their mtime must be set again at the end).
    touched: HashSet<Vec<u8>>,
    dir_meta: HashMap<Vec<u8>, MetaOp>,
    /// Removed on the target (first or as extraneous, topmost): what lies under them is covered.
    removed: HashSet<Vec<u8>>,
    /// Every source folder's attributes.
    src_dirs: HashMap<Vec<u8>, Attrs>,
    /// Extraneous target entries, topmost: removed at the end unless the source could not read
    /// their part of the tree.
    extraneous: Vec<RelPath>,
    /// Extraneous target files with one link: the bytes a new file may be linked from.
    spares: Vec<Entry>,
    /// New source files (one link, not empty, nothing at their path on the target): linked from
    /// a spare at the end, or sent.
    fresh: Vec<FileOp>,
    linked: Vec<Linked>,
    skipped: Vec<super::manifest::Skip>,
    /// Early sending on ([`Differ::send_early`]): the folders the target already has (the
    /// source has them too), and the files found so far that may be sent before the scans end.
    early: Option<(HashSet<Vec<u8>>, Vec<FileOp>)>,
}

fn owned(e: &EntryRef) -> Entry {
    Entry {
        path: e.path.to_rel(),
        file_type: e.file_type,
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        size: e.size,
        mtime: e.mtime,
        ctime: Time::default(),
        dev: e.dev,
        ino: e.ino,
        nlink: e.nlink,
        target: e.target.to_vec(),
    }
}

impl<'o> Differ<'o> {
    pub fn new(owners: &'o OwnerMap) -> Differ<'o> {
        Differ {
            owners,
            plan: Plan::default(),
            touched: HashSet::new(),
            dir_meta: HashMap::new(),
            removed: HashSet::new(),
            src_dirs: HashMap::new(),
            extraneous: Vec::new(),
            spares: Vec::new(),
            fresh: Vec::new(),
            linked: Vec::new(),
            skipped: Vec::new(),
            early: None,
        }
    }

    /// Set files aside that can be written before the scans end ([`Differ::take_early`]): a
    /// regular file of one link on the source whose parent folder is a folder on both sides,
    /// and that is either a file with other content on the target (a rewrite) or not on the
    /// target at all (a new file in an existing folder; it is then sent, not matched with a
    /// renamed folder's spare). Nothing else needs to be done on the target before it: no
    /// folder to make, nothing in the way to remove. Whatever needs the whole scan (new folders
    /// and what lies below them, links, removals) stays in the plan.
    pub fn send_early(mut self) -> Self {
        self.early = Some((HashSet::new(), Vec::new()));
        self
    }

    /// The next file set aside to be sent early; one that cannot be sent early is given back
    /// with [`Differ::send_later`].
    pub fn take_early(&mut self) -> Option<FileOp> {
        self.early.as_mut().and_then(|(_, v)| v.pop())
    }

    /// A file set aside for early sending that is sent with the plan after all.
    pub fn send_later(&mut self, op: FileOp) {
        self.plan.bytes += op.size;
        self.plan.files.push(op);
    }

    /// In the way of a source entry: removed before anything is created.
    fn remove_first(&mut self, p: &[u8]) {
        self.plan
            .remove_first
            .push(RelPath::new(p.to_vec()).expect("a manifest path"));
        self.removed.insert(p.to_vec());
        self.touched.insert(parent(p).to_vec());
    }

    /// A part of the source's tree that could not be read.
    pub fn skipped(&mut self, s: super::manifest::Skip) {
        self.skipped.push(s);
    }

    /// One position of the merged scans: `s` the source's entry, `t` the target's, the same path
    /// when both are there. Positions must come in scan order.
    pub fn pair(&mut self, s: Option<&EntryRef>, t: Option<&EntryRef>) {
        let owners = self.owners;
        let Some(s) = s else {
            if let Some(t) = t {
                self.extra(t);
            }
            return;
        };
        let path = s.path.as_bytes();
        match s.file_type {
            FileType::Dir => {
                self.src_dirs.insert(path.to_vec(), attrs(s, owners));
                let t = match t {
                    Some(t) if t.file_type != FileType::Dir => {
                        self.remove_first(path);
                        None
                    }
                    t => t,
                };
                match t {
                    None => {
                        if !s.path.is_root() {
                            self.plan.mkdir.push((s.path.to_rel(), attrs(s, owners)));
                            self.touched.insert(parent(path).to_vec());
                        }
                        let a = attrs(s, owners);
                        self.dir_meta.insert(
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
                        if let Some((dirs, _)) = &mut self.early {
                            dirs.insert(path.to_vec());
                        }
                        if let Some(m) = meta_of(s, t, owners, true) {
                            self.dir_meta.insert(path.to_vec(), m);
                        }
                    }
                }
            }
            FileType::File => {
                let mut tgt_was_dir = false;
                let t = match t {
                    Some(t) if t.file_type == FileType::Dir => {
                        self.remove_first(path);
                        tgt_was_dir = true;
                        None
                    }
                    t => t,
                };
                if s.nlink > 1 {
                    self.linked.push(Linked {
                        src: owned(s),
                        tgt: t.map(owned),
                        tgt_was_dir,
                    });
                    return;
                }
                // One link on the source: not in a group of this tree.
                let same_content = matches!(t, Some(t) if t.file_type == FileType::File
                    && t.size == s.size && t.mtime == s.mtime
                    // a lone source file must not stay linked to another target path
                    && t.nlink <= 1);
                if same_content {
                    if let Some(m) = meta_of(s, t.expect("matched"), owners, true) {
                        self.plan.meta.push(m);
                    }
                    return;
                }
                // The temporary file and the rename move the folder's mtime.
                self.touched.insert(parent(path).to_vec());
                if let Some((dirs, early)) = &mut self.early {
                    let fits = match t {
                        Some(t) => t.file_type == FileType::File,
                        None => !tgt_was_dir && dirs.contains(parent(path)),
                    };
                    if fits {
                        early.push(file_op(s, owners));
                        return;
                    }
                }
                if t.is_none() && !tgt_was_dir && s.size > 0 {
                    self.fresh.push(file_op(s, owners));
                } else {
                    self.plan.bytes += s.size;
                    self.plan.files.push(file_op(s, owners));
                }
            }
            FileType::Symlink => {
                let same = matches!(t, Some(t) if t.file_type == FileType::Symlink && t.target == s.target);
                if same {
                    if let Some(m) = meta_of(s, t.expect("matched"), owners, false) {
                        self.plan.meta.push(m);
                    }
                } else {
                    if let Some(t) = t {
                        if t.file_type == FileType::Dir {
                            self.remove_first(path);
                        }
                    }
                    self.touched.insert(parent(path).to_vec());
                    self.plan
                        .symlinks
                        .push((s.path.to_rel(), s.target.to_vec(), attrs(s, owners)));
                }
            }
            _ => self.plan.special.push(s.path.to_rel()),
        }
    }

    /// A target entry the source does not have.
    fn extra(&mut self, t: &EntryRef) {
        let p = t.path.as_bytes();
        if t.path.is_root() {
            return;
        }
        if t.file_type == FileType::File && t.nlink == 1 {
            self.spares.push(owned(t));
        }
        let mut a = p;
        loop {
            a = parent(a);
            if a.is_empty() {
                break;
            }
            if self.removed.contains(a) {
                return; // covered by a removal above it
            }
        }
        self.extraneous.push(t.path.to_rel());
        self.removed.insert(p.to_vec());
    }

    fn under_skipped(&self, p: &[u8]) -> bool {
        self.skipped
            .iter()
            .any(|s| super::manifest::is_under(p, s.path.as_bytes()))
    }

    /// The plan, once every position has been given.
    pub fn finish(mut self) -> Plan {
        let owners = self.owners;
        // Extraneous entries: removed unless the source could not read that part of its tree.
        let extraneous = std::mem::take(&mut self.extraneous);
        for x in extraneous {
            if self.under_skipped(x.as_bytes()) {
                continue;
            }
            self.touched.insert(parent(x.as_bytes()).to_vec());
            self.plan.remove.push(x);
        }
        // The source's files with several links, in path order: a group's first path (its
        // leader) is written, the others are linked to it.
        let mut linked = std::mem::take(&mut self.linked);
        linked.sort_by(|a, b| a.src.path.cmp(&b.src.path));
        let mut count: HashMap<(u64, u64), usize> = HashMap::new();
        let mut first: HashMap<(u64, u64), usize> = HashMap::new();
        for (k, l) in linked.iter().enumerate() {
            *count.entry((l.src.dev, l.src.ino)).or_default() += 1;
            first.entry((l.src.dev, l.src.ino)).or_insert(k);
        }
        // The leader's index, for the files of a group of two or more in this tree.
        let leader_of = |l: &Linked| -> Option<usize> {
            let key = (l.src.dev, l.src.ino);
            (count[&key] > 1).then(|| first[&key])
        };
        let mut sent: HashSet<usize> = HashSet::new();
        for (k, l) in linked.iter().enumerate() {
            let s = EntryRef::of(&l.src);
            let t = l.tgt.as_ref().map(EntryRef::of);
            let path = s.path.as_bytes();
            let leader = leader_of(l);
            if let Some(lk) = leader.filter(|&lk| lk != k) {
                // A further name of a file already in this tree: a hard link.
                let tl = linked[lk].tgt.as_ref().map(EntryRef::of);
                let fine = !sent.contains(&lk)
                    && matches!((t, tl), (Some(t), Some(tl))
                        if t.file_type == FileType::File && tl.file_type == FileType::File
                        && (t.dev, t.ino) == (tl.dev, tl.ino));
                if !fine {
                    if t.is_some() {
                        self.remove_first(path);
                    }
                    self.touched.insert(parent(path).to_vec());
                    self.plan
                        .links
                        .push((s.path.to_rel(), linked[lk].src.path.clone()));
                }
                continue;
            }
            let same_content = matches!(t, Some(t) if t.file_type == FileType::File
                && t.size == s.size && t.mtime == s.mtime
                && (t.nlink <= 1 || leader.is_some()));
            if same_content {
                if let Some(m) = meta_of(&s, &t.expect("matched"), owners, true) {
                    self.plan.meta.push(m);
                }
                continue;
            }
            self.touched.insert(parent(path).to_vec());
            if t.is_none() && !l.tgt_was_dir && leader.is_none() && s.size > 0 {
                self.fresh.push(file_op(&s, owners));
            } else {
                self.plan.bytes += s.size;
                sent.insert(k);
                self.plan.files.push(file_op(&s, owners));
            }
        }
        // New files whose bytes are on the target under an extraneous name (a renamed folder):
        // matched by name, size and mtime, in path order, the first spare of each key.
        let mut fresh = std::mem::take(&mut self.fresh);
        let spares = std::mem::take(&mut self.spares);
        let mut spare: HashMap<(Vec<u8>, u64, Time), &Entry> = HashMap::new();
        for t in &spares {
            if !self.under_skipped(t.path.as_bytes()) {
                spare
                    .entry((name(t.path.as_bytes()).to_vec(), t.size, t.mtime))
                    .or_insert(t);
            }
        }
        if spare.is_empty() {
            // Nothing to link from: every new file is sent. Moved whole, not pushed one by one
            // into a second vector (a first copy of 100,000 files held both).
            for f in &fresh {
                self.plan.bytes += f.size;
            }
            if self.plan.files.is_empty() {
                self.plan.files = fresh;
            } else {
                self.plan.files.append(&mut fresh);
            }
            fresh = Vec::new();
        } else {
            fresh.sort_by(|a, b| a.path.cmp(&b.path));
        }
        for f in fresh {
            let old = if spare.is_empty() {
                None
            } else {
                spare.remove(&(name(f.path.as_bytes()).to_vec(), f.size, f.attrs.mtime))
            };
            if let Some(old) = old {
                let a = &f.attrs;
                let m = MetaOp {
                    path: f.path.clone(),
                    mode: (a.mode != old.mode).then_some(a.mode),
                    uid: (a.uid != old.uid).then_some(a.uid),
                    gid: (a.gid != old.gid).then_some(a.gid),
                    mtime: None,
                };
                if m.mode.is_some() || m.uid.is_some() || m.gid.is_some() {
                    self.plan.meta.push(m);
                }
                self.plan.reuse.push((f, old.path.clone()));
            } else {
                self.plan.bytes += f.size;
                self.plan.files.push(f);
            }
        }
        // Folders touched get their attributes (their mtime at least) again at the end.
        for d in std::mem::take(&mut self.touched) {
            let Some(a) = self.src_dirs.get(&d[..]) else {
                continue;
            };
            let mtime = a.mtime;
            self.dir_meta
                .entry(d)
                .or_insert_with_key(|d| MetaOp {
                    path: RelPath::new(d.clone()).expect("a manifest path"),
                    mode: None,
                    uid: None,
                    gid: None,
                    mtime: Some(mtime),
                })
                .mtime = Some(mtime);
        }
        let mut dm: Vec<MetaOp> = self.dir_meta.into_values().collect();
        // Deepest first; among equals, reverse path order.
        dm.sort_by(|a, b| {
            let da = a.path.components().count();
            let db = b.path.components().count();
            db.cmp(&da).then_with(|| b.path.cmp(&a.path))
        });
        let mut plan = self.plan;
        plan.dir_meta = dm;
        // Path order within each list (the scans came in scan order).
        // Unstable sorts (every path is there once): no scratch copy of 100,000 files' ops.
        plan.files.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        plan.meta.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        plan.remove.sort();
        plan.remove_first.sort();
        plan.symlinks.sort_by(|a, b| a.0.cmp(&b.0));
        plan.links.sort();
        // A first copy's 100,000 files held through the send: not the doubling's spare quarter.
        plan.files.shrink_to_fit();
        plan
    }
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

    /// With early sending: a rewrite of a file the target has and a new file in a folder the
    /// target has (also one whose bytes a spare holds) are set aside as the merge reaches them;
    /// what needs a folder made, something removed or the whole scan first stays in the plan.
    #[test]
    fn early_files_need_nothing_else_first() {
        let mut h1 = e("h1", FileType::File, 5, 2);
        h1.nlink = 2;
        h1.ino = 9;
        let mut h2 = h1.clone();
        h2.path = RelPath::new("h2").unwrap();
        let src = m(vec![
            e("", FileType::Dir, 0, 1),
            e("a", FileType::File, 3, 2),
            e("n", FileType::File, 4, 2),
            e("z", FileType::File, 0, 2),
            e("s", FileType::File, 3, 2),
            e("t", FileType::File, 3, 2),
            h1,
            h2,
            e("d", FileType::Dir, 0, 1),
            e("d/x", FileType::File, 7, 3),
            e("d/new", FileType::File, 8, 3),
            e("d/moved", FileType::File, 9, 3),
            e("nd", FileType::Dir, 0, 1),
            e("nd/f", FileType::File, 10, 3),
            e("nd/g", FileType::File, 11, 3),
        ]);
        let tgt = m(vec![
            e("", FileType::Dir, 0, 1),
            e("a", FileType::File, 2, 2),
            e("s", FileType::Symlink, 1, 2),
            e("t", FileType::Dir, 0, 2),
            e("d", FileType::Dir, 0, 1),
            e("d/x", FileType::File, 7, 2),
            e("old", FileType::Dir, 0, 1),
            e("old/moved", FileType::File, 9, 3),
            e("old/g", FileType::File, 11, 3),
        ]);
        let owners = OwnerMap::identity();
        let mut d = Differ::new(&owners).send_early();
        let mut early = Vec::new();
        feed(&src, &tgt, &mut d, |d| {
            while let Some(op) = d.take_early() {
                early.push(op);
            }
        });
        // One is given back (the early stream's queue was full): sent with the plan.
        let back = early.pop().unwrap();
        assert_eq!(back.path.to_string(), "d/x");
        d.send_later(back);
        let p = d.finish();
        assert_eq!(
            paths(early.iter().map(|f| &f.path)),
            ["a", "n", "z", "d/moved", "d/new"]
        );
        assert_eq!(
            paths(p.files.iter().map(|f| &f.path)),
            ["d/x", "h1", "nd/f", "s", "t"]
        );
        assert_eq!(
            p.bytes,
            7 + 5 + 10 + 3 + 3,
            "early files are not in the plan's bytes"
        );
        assert_eq!(
            p.links,
            [(RelPath::new("h2").unwrap(), RelPath::new("h1").unwrap())]
        );
        assert_eq!(paths(p.reuse.iter().map(|(f, _)| &f.path)), ["nd/g"]);
        assert_eq!(paths(p.remove_first.iter()), ["t"]);
        assert_eq!(paths(p.mkdir.iter().map(|(x, _)| x)), ["nd"]);
        // The folders written into get their mtime again at the end.
        assert!(
            p.dir_meta.iter().any(|m| m.path.to_string() == "d"),
            "{p:?}"
        );
        // Without early sending, the same files are all in the plan, and the moved file's
        // bytes are linked from its old name (sent early, it is sent).
        let all = diff(&src, &tgt, &owners);
        assert_eq!(
            paths(all.reuse.iter().map(|(f, _)| &f.path)),
            ["d/moved", "nd/g"]
        );
        assert_eq!(all.files.len(), 9);
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
        let e = |p: &str, ft: FileType, size: u64| super::walk_order_tests::e(p, ft, size, 0, 1);
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

#[cfg(test)]
mod walk_order_tests {
    use super::*;

    /// A scan entry for the tests (mode 0644, uid/gid 1, mtime 9.000000009).
    pub(super) fn e(p: &str, ft: FileType, size: u64, ino: u64, nlink: u64) -> Entry {
        Entry {
            path: RelPath::new(p).unwrap(),
            file_type: ft,
            mode: 0o644,
            uid: 1,
            gid: 1,
            size,
            mtime: Time { sec: 9, nsec: 9 },
            ctime: Time::default(),
            dev: 1,
            ino,
            nlink,
            target: vec![],
        }
    }

    /// Scan order is not path order: a group's leader (its first path) may come after its other
    /// names, and a renamed folder's old files after the new ones, or before them.
    #[test]
    fn links_and_spares_whatever_the_scan_order() {
        let d = |p: &str| e(p, FileType::Dir, 0, 0, 1);
        let src = Manifest::from_entries(vec![
            d(""),
            d("a"),
            e("a/x", FileType::File, 5, 7, 2),
            e("z", FileType::File, 5, 7, 2),
            d("a.new"),
            e("a.new/f", FileType::File, 3, 20, 1),
            d("b"),
            e("b/g", FileType::File, 4, 21, 1),
        ]);
        let tgt = Manifest::from_entries(vec![
            d(""),
            d("old"),
            e("old/f", FileType::File, 3, 50, 1),
            d("a"),
            d("zz"),
            d("zz/q"),
            e("zz/q/g", FileType::File, 4, 51, 1),
        ]);
        // the walk gives z before a/x, but a/x is the leader (first in path order)
        assert_eq!(
            walk_cmp(b"z", b"a/x"),
            Ordering::Less,
            "z is a child of the root"
        );
        let p = diff(&src, &tgt, &OwnerMap::identity());
        assert_eq!(
            p.files
                .iter()
                .map(|f| f.path.to_string())
                .collect::<Vec<_>>(),
            ["a/x"]
        );
        assert_eq!(
            p.links,
            vec![(RelPath::new("z").unwrap(), RelPath::new("a/x").unwrap())]
        );
        let reused: Vec<_> = p
            .reuse
            .iter()
            .map(|(f, o)| format!("{} <- {}", f.path, o))
            .collect();
        assert_eq!(reused, ["a.new/f <- old/f", "b/g <- zz/q/g"]);
        assert_eq!(
            p.remove,
            vec![RelPath::new("old").unwrap(), RelPath::new("zz").unwrap()]
        );
        // and the same with a source that could not read `zz`: nothing under it is removed or
        // reused, and b/g is sent
        let mut src2 = src.clone();
        src2.skipped.push(super::super::manifest::Skip {
            path: RelPath::new("zz").unwrap(),
            code: crate::agent::proto::ErrorCode::PermissionDenied,
            message: "no".into(),
        });
        let p = diff(&src2, &tgt, &OwnerMap::identity());
        assert_eq!(p.remove, vec![RelPath::new("old").unwrap()]);
        assert_eq!(
            p.files
                .iter()
                .map(|f| f.path.to_string())
                .collect::<Vec<_>>(),
            ["a/x", "b/g"]
        );
    }

    /// A source file where the target has a folder with content: the folder goes first, and
    /// its content is not listed again for removal.
    #[test]
    fn a_folder_in_the_way_covers_its_content() {
        let src = Manifest::from_entries(vec![
            e("", FileType::Dir, 0, 0, 1),
            e("x", FileType::File, 2, 3, 1),
            e("y", FileType::File, 2, 4, 2),
            e("y2", FileType::File, 2, 4, 2),
        ]);
        let tgt = Manifest::from_entries(vec![
            e("", FileType::Dir, 0, 0, 1),
            e("x", FileType::Dir, 0, 0, 1),
            e("x/in", FileType::File, 1, 5, 1),
            e("y", FileType::Dir, 0, 0, 1),
            e("y/in", FileType::File, 1, 6, 1),
        ]);
        let p = diff(&src, &tgt, &OwnerMap::identity());
        assert_eq!(
            p.remove_first,
            vec![RelPath::new("x").unwrap(), RelPath::new("y").unwrap()]
        );
        assert!(p.remove.is_empty(), "{:?}", p.remove);
        assert_eq!(
            p.files
                .iter()
                .map(|f| f.path.to_string())
                .collect::<Vec<_>>(),
            ["x", "y"]
        );
        assert_eq!(
            p.links,
            vec![(RelPath::new("y2").unwrap(), RelPath::new("y").unwrap())]
        );
    }
}
