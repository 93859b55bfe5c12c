//! Manifests: every entry of a managed tree as one host sees it, from a scan through the agent.
//!
//! A manifest is sorted by path bytes (a parent sorts before everything under it), filtered by the
//! tree's [`Filter`], and keeps what could not be read (`skipped`): nothing under a skipped path
//! may be judged extraneous on the target. A pass saves the source's manifest in the state folder
//! as its scan streams (`manifests/<tree>.source`, a compact binary format below, with what the
//! scan could not read and the id of the pass that wrote it): the final sync's exit check
//! compares the target with it.

use super::trees::Filter;
use crate::agent::client::{AgentClient, AgentError, ScanItem};
use crate::agent::proto::{Entry, ErrorCode, FileType, RelPath, Target, Time};
use std::collections::HashMap;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// What could not be read during a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    pub path: RelPath,
    pub code: ErrorCode,
    pub message: String,
}

/// One tree on one host.
///
/// Compact, since the operator holds two of these per tree (100,000 entries each for a modest
/// instance): the paths and symlink targets of all entries in one byte buffer, and per entry
/// a fixed record of 72 bytes (no allocation of its own, no ctime). [`Manifest::get`] and
/// [`Manifest::iter`] give [`EntryRef`]s borrowing from it.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    /// Sorted by path bytes; the root itself (empty path) first.
    items: Vec<Item>,
    /// Every entry's path, then its symlink target, back to back.
    names: Vec<u8>,
    pub skipped: Vec<Skip>,
    /// The tree's root does not exist (or could not be opened): why.
    pub root_error: Option<(ErrorCode, String)>,
}

/// One entry, its bytes in `Manifest::names` (the path at `at`, then the target).
#[derive(Debug, Clone, Copy)]
struct Item {
    at: u64,
    size: u64,
    sec: i64,
    dev: u64,
    ino: u64,
    path_len: u32,
    target_len: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    nsec: u32,
    /// Saturated at `u32::MAX` (only 1 or more than 1 matters here).
    nlink: u32,
    file_type: FileType,
}

/// A path of a manifest entry (checked by the agent's protocol when it arrived).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MPath<'a>(&'a [u8]);

impl<'a> MPath<'a> {
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
    /// As an owned protocol path.
    pub fn to_rel(&self) -> RelPath {
        RelPath::new(self.0.to_vec()).expect("a manifest path is a valid RelPath")
    }
}

/// One entry of a manifest, borrowed: the fields of the protocol's `Entry` that a manifest keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef<'a> {
    pub path: MPath<'a>,
    pub file_type: FileType,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: Time,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    /// The symlink's target (empty for other types).
    pub target: &'a [u8],
}

impl<'a> EntryRef<'a> {
    /// A view of a protocol entry (as a scan delivers it).
    pub fn of(e: &'a Entry) -> EntryRef<'a> {
        EntryRef {
            path: MPath(e.path.as_bytes()),
            file_type: e.file_type,
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            size: e.size,
            mtime: e.mtime,
            dev: e.dev,
            ino: e.ino,
            nlink: e.nlink,
            target: &e.target,
        }
    }

    /// As an owned protocol entry (no ctime: a manifest keeps none).
    pub fn to_entry(&self) -> Entry {
        Entry {
            path: self.path.to_rel(),
            file_type: self.file_type,
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            size: self.size,
            mtime: self.mtime,
            ctime: Time::default(),
            dev: self.dev,
            ino: self.ino,
            nlink: self.nlink,
            target: self.target.to_vec(),
        }
    }
}

/// The order in which an agent's scan delivers a tree ([`crate::agent::scan`]): a folder
/// before its content, each folder's children by name, and all of a folder's children before
/// the content of its subfolders, depth first. It depends on the two paths only, so the scans
/// of both sides can be merged in it.
pub fn walk_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    fn comps(p: &[u8]) -> impl Iterator<Item = &[u8]> {
        p.split(|&c| c == b'/').filter(|c| !c.is_empty())
    }
    let (mut ia, mut ib) = (comps(a), comps(b));
    loop {
        match (ia.next(), ib.next()) {
            (None, None) => return Equal,
            // an ancestor first
            (None, Some(_)) => return Less,
            (Some(_), None) => return Greater,
            (Some(x), Some(y)) if x == y => continue,
            (Some(x), Some(y)) => {
                // children of the common folder before the content of its subfolders
                return match (ia.next().is_some(), ib.next().is_some()) {
                    (false, true) => Less,
                    (true, false) => Greater,
                    _ => x.cmp(y),
                };
            }
        }
    }
}

impl Manifest {
    /// Every entry in scan order ([`walk_cmp`]).
    pub fn walk_order(&self) -> Vec<EntryRef<'_>> {
        let mut v: Vec<EntryRef> = self.iter().collect();
        v.sort_by(|a, b| walk_cmp(a.path.as_bytes(), b.path.as_bytes()));
        v
    }

    /// A manifest of these entries (sorted here).
    pub fn from_entries(entries: impl IntoIterator<Item = Entry>) -> Manifest {
        let mut m = Manifest::default();
        for e in entries {
            m.push(&e);
        }
        m.sort();
        m
    }

    /// Add an entry (unsorted until [`Manifest::sort`]).
    pub fn push(&mut self, e: &Entry) {
        let at = self.names.len() as u64;
        self.names.extend_from_slice(e.path.as_bytes());
        self.names.extend_from_slice(&e.target);
        self.items.push(Item {
            at,
            size: e.size,
            sec: e.mtime.sec,
            dev: e.dev,
            ino: e.ino,
            path_len: e.path.as_bytes().len() as u32,
            target_len: e.target.len() as u32,
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            nsec: e.mtime.nsec,
            nlink: e.nlink.min(u32::MAX as u64) as u32,
            file_type: e.file_type,
        });
    }

    /// Sort by path bytes.
    pub fn sort(&mut self) {
        let names = &self.names;
        let path = |i: &Item| &names[i.at as usize..i.at as usize + i.path_len as usize];
        self.items.sort_unstable_by(|a, b| path(a).cmp(path(b)));
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn view(&self, i: &Item) -> EntryRef<'_> {
        let a = i.at as usize;
        let p = a + i.path_len as usize;
        EntryRef {
            path: MPath(&self.names[a..p]),
            file_type: i.file_type,
            mode: i.mode,
            uid: i.uid,
            gid: i.gid,
            size: i.size,
            mtime: Time {
                sec: i.sec,
                nsec: i.nsec,
            },
            dev: i.dev,
            ino: i.ino,
            nlink: i.nlink as u64,
            target: &self.names[p..p + i.target_len as usize],
        }
    }

    /// The entry at index `i` (in path order), if any.
    pub fn get(&self, i: usize) -> Option<EntryRef<'_>> {
        self.items.get(i).map(|it| self.view(it))
    }

    /// Every entry, in path order.
    pub fn iter(&self) -> impl Iterator<Item = EntryRef<'_>> + '_ {
        self.items.iter().map(|it| self.view(it))
    }

    /// The entry with this path (a binary search: the manifest is sorted).
    pub fn find(&self, path: &[u8]) -> Option<EntryRef<'_>> {
        let names = &self.names;
        self.items
            .binary_search_by(|i| {
                names[i.at as usize..i.at as usize + i.path_len as usize].cmp(path)
            })
            .ok()
            .map(|k| self.view(&self.items[k]))
    }

    /// Returns true if and only if an entry has this path.
    pub fn contains(&self, path: &[u8]) -> bool {
        self.find(path).is_some()
    }

    /// Regular files and their bytes.
    pub fn totals(&self) -> (u64, u64) {
        self.items
            .iter()
            .filter(|e| e.file_type == FileType::File)
            .fold((0, 0), |(n, b), e| (n + 1, b + e.size))
    }

    /// For every regular file that shares its inode with another file of this tree, the first
    /// path (in sort order) of its group; files alone in their group are not in the map.
    pub fn link_leaders(&self) -> HashMap<&[u8], &[u8]> {
        let mut first: HashMap<(u64, u64), &[u8]> = HashMap::new();
        let mut count: HashMap<(u64, u64), usize> = HashMap::new();
        let linked = || {
            self.iter()
                .filter(|e| e.file_type == FileType::File && e.nlink > 1)
        };
        for e in linked() {
            first.entry((e.dev, e.ino)).or_insert(e.path.as_bytes());
            *count.entry((e.dev, e.ino)).or_default() += 1;
        }
        linked()
            .filter(|e| count[&(e.dev, e.ino)] > 1)
            .map(|e| (e.path.as_bytes(), first[&(e.dev, e.ino)]))
            .collect()
    }

    /// Take our temporary files (any non-directory named like the agent's `Put` temporaries,
    /// left by an interrupted run) out of the entries and return their paths: the target's
    /// scan finds them, so no separate walk of the target is needed to remove them.
    pub fn take_temporary(&mut self) -> Vec<RelPath> {
        let mut tmp = Vec::new();
        let names = &self.names;
        self.items.retain(|i| {
            let p = &names[i.at as usize..i.at as usize + i.path_len as usize];
            let ours = i.file_type != FileType::Dir
                && p.rsplit(|&b| b == b'/')
                    .next()
                    .is_some_and(crate::agent::write::is_tmp_name);
            if ours {
                tmp.push(MPath(p).to_rel());
            }
            !ours
        });
        tmp
    }

    /// Returns true if and only if `path` is a skipped path or under one.
    pub fn under_skipped(&self, path: &[u8]) -> bool {
        self.skipped
            .iter()
            .any(|s| is_under(path, s.path.as_bytes()))
    }
}

/// Returns true if and only if `path` is `dir` or inside it.
pub fn is_under(path: &[u8], dir: &[u8]) -> bool {
    dir.is_empty()
        || path == dir
        || (path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/')
}

/// Scan root `root` of an agent into a manifest.
pub fn scan(client: &mut AgentClient, root: u16, filter: &Filter) -> Result<Manifest, AgentError> {
    let mut m = Manifest::default();
    if let Some(Err((code, msg))) = client.welcome().roots.get(root as usize) {
        m.root_error = Some((*code, msg.clone()));
        return Ok(m);
    }
    let r = client.scan(Target::new(root, RelPath::root()), |item| match item {
        ScanItem::Entry(e) => {
            if filter.keep(e.path.as_bytes(), e.file_type) {
                m.push(&e)
            }
        }
        ScanItem::Skipped {
            path,
            code,
            message,
        } => {
            if filter.keep(path.as_bytes(), FileType::Dir) {
                m.skipped.push(Skip {
                    path,
                    code,
                    message,
                })
            }
        }
    });
    match r {
        Ok(_) => {}
        Err(AgentError::Failed { code, message, .. }) => {
            m.root_error = Some((code, message));
            return Ok(m);
        }
        Err(e) => return Err(e),
    }
    m.sort();
    Ok(m)
}

const MAGIC: &[u8; 8] = b"OCMMAN2\n";

/// Which pass wrote a saved manifest: 16 bytes, new for every pass (process, clock, counter), so
/// a pass can tell its own file from one an earlier pass (or another run) left under the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassId(pub [u8; 16]);

impl PassId {
    pub fn new() -> PassId {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let mut h = blake3::Hasher::new();
        h.update(&std::process::id().to_le_bytes());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        h.update(&now.as_nanos().to_le_bytes());
        h.update(&COUNT.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        let mut id = [0u8; 16];
        id.copy_from_slice(&h.finalize().as_bytes()[..16]);
        PassId(id)
    }
}

impl Default for PassId {
    fn default() -> Self {
        PassId::new()
    }
}

// Record tags of the saved format.
const ENTRY: u8 = 0;
const SKIPPED: u8 = 1;
const ROOT_ERROR: u8 = 2;
const END: u8 = 0xff;

/// Write a manifest (with what its scan could not read) under `id`: see [`Writer`].
pub fn save(m: &Manifest, path: &Path, id: PassId) -> io::Result<()> {
    let mut w = Writer::create(path, id)?;
    for e in m.iter() {
        w.push(&e)?;
    }
    for s in &m.skipped {
        w.skipped(s)?;
    }
    if let Some((code, msg)) = &m.root_error {
        w.root_error(*code, msg)?;
    }
    w.finish()
}

/// A saved manifest, written record by record as a scan delivers them (in any order: [`load`]
/// sorts): `OCMMAN2\n`, the pass's id (16 bytes), then records, each a tag byte: an entry (0:
/// path (u32 length + bytes), type u8, mode, uid, gid (u32), size u64, mtime (i64 s, u32 ns),
/// dev, ino, nlink (u64), symlink target (u32 length + bytes)); a path the scan could not read
/// (1: path, code u16, message (u32 length + bytes)); the root's own error (2: code u16,
/// message); and last the end (0xff: entry count u64), without which the file is incomplete.
/// Integers little-endian. Written to a temporary name, then renamed.
pub struct Writer {
    w: BufWriter<std::fs::File>,
    tmp: std::path::PathBuf,
    path: std::path::PathBuf,
    entries: u64,
    /// Renamed to its name: the drop leaves it.
    named: bool,
}

/// A writer dropped before [`Writer::finish`] (given up, or an error on the way) removes its
/// temporary file: nothing half-written stays in the state folder.
impl Drop for Writer {
    fn drop(&mut self) {
        if !self.named {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

impl Writer {
    pub fn create(path: &Path, id: PassId) -> io::Result<Writer> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut w = BufWriter::new(file);
        w.write_all(MAGIC)?;
        w.write_all(&id.0)?;
        Ok(Writer {
            w,
            tmp,
            path: path.to_path_buf(),
            entries: 0,
            named: false,
        })
    }

    pub fn push(&mut self, e: &EntryRef) -> io::Result<()> {
        self.entries += 1;
        let w = &mut self.w;
        let p = e.path.as_bytes();
        w.write_all(&[ENTRY])?;
        w.write_all(&(p.len() as u32).to_le_bytes())?;
        w.write_all(p)?;
        w.write_all(&[e.file_type as u8])?;
        for v in [e.mode, e.uid, e.gid] {
            w.write_all(&v.to_le_bytes())?;
        }
        w.write_all(&e.size.to_le_bytes())?;
        w.write_all(&e.mtime.sec.to_le_bytes())?;
        w.write_all(&e.mtime.nsec.to_le_bytes())?;
        for v in [e.dev, e.ino, e.nlink] {
            w.write_all(&v.to_le_bytes())?;
        }
        w.write_all(&(e.target.len() as u32).to_le_bytes())?;
        w.write_all(e.target)
    }

    /// A path the scan could not read.
    pub fn skipped(&mut self, s: &Skip) -> io::Result<()> {
        let w = &mut self.w;
        let p = s.path.as_bytes();
        w.write_all(&[SKIPPED])?;
        w.write_all(&(p.len() as u32).to_le_bytes())?;
        w.write_all(p)?;
        w.write_all(&(s.code as u16).to_le_bytes())?;
        w.write_all(&(s.message.len() as u32).to_le_bytes())?;
        w.write_all(s.message.as_bytes())
    }

    /// The tree's root could not be scanned.
    pub fn root_error(&mut self, code: ErrorCode, message: &str) -> io::Result<()> {
        let w = &mut self.w;
        w.write_all(&[ROOT_ERROR])?;
        w.write_all(&(code as u16).to_le_bytes())?;
        w.write_all(&(message.len() as u32).to_le_bytes())?;
        w.write_all(message.as_bytes())
    }

    /// Entries pushed so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Give up: the temporary file is removed, nothing gets the name (as a drop does).
    pub fn abandon(self) {}

    /// The end record, flush, and give the file its name.
    pub fn finish(mut self) -> io::Result<()> {
        self.w.write_all(&[END])?;
        self.w.write_all(&self.entries.to_le_bytes())?;
        self.w.flush()?;
        std::fs::rename(&self.tmp, &self.path)?;
        self.named = true;
        Ok(())
    }
}

/// Read a manifest written by [`save`] or a [`Writer`]: the id of the pass that wrote it, and the
/// manifest (sorted, with its skipped paths and root error). A file without its end record, or
/// in another format, is an error.
pub fn load(path: &Path) -> io::Result<(PassId, Manifest)> {
    let (id, mut r) = Reader::open(path)?;
    let mut m = Manifest::default();
    while let Some(rec) = r.next_record()? {
        match rec {
            Record::Entry(e) => m.push(&e),
            Record::Skipped(s) => m.skipped.push(s),
            Record::RootError(code, message) => m.root_error = Some((code, message)),
        }
    }
    m.sort();
    Ok((id, m))
}

/// One record of a manifest file, in the order it was written.
#[derive(Debug)]
pub enum Record {
    Entry(Entry),
    Skipped(Skip),
    RootError(ErrorCode, String),
}

/// A manifest file read record by record, without holding it ([`load`] collects them).
pub struct Reader {
    r: BufReader<std::fs::File>,
    entries: u64,
    ended: bool,
}

fn bad(w: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("manifest: {w}"))
}

fn incomplete(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        bad("incomplete (no end record)")
    } else {
        e
    }
}

impl Reader {
    /// Open a manifest file: the id of the pass that wrote it, and its records to read.
    pub fn open(path: &Path) -> io::Result<(PassId, Reader)> {
        let mut r = BufReader::new(std::fs::File::open(path)?);
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(bad("not a manifest of this version"));
        }
        let mut id = [0u8; 16];
        r.read_exact(&mut id)?;
        let reader = Reader {
            r,
            entries: 0,
            ended: false,
        };
        Ok((PassId(id), reader))
    }

    fn u16(&mut self) -> io::Result<u16> {
        let mut b = [0u8; 2];
        self.r.read_exact(&mut b)?;
        Ok(u16::from_le_bytes(b))
    }
    fn u32(&mut self) -> io::Result<u32> {
        let mut b = [0u8; 4];
        self.r.read_exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn u64(&mut self) -> io::Result<u64> {
        let mut b = [0u8; 8];
        self.r.read_exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn bytes(&mut self) -> io::Result<Vec<u8>> {
        let n = self.u32()? as usize;
        if n > crate::agent::proto::MAX_PATH {
            return Err(bad("length out of range"));
        }
        let mut v = vec![0u8; n];
        self.r.read_exact(&mut v)?;
        Ok(v)
    }
    fn code(&mut self) -> io::Result<ErrorCode> {
        ErrorCode::from_u16(self.u16()?).ok_or_else(|| bad("error code"))
    }

    /// The next record; `None` once the end record is read (the entry count checked, and
    /// nothing after it).
    pub fn next_record(&mut self) -> io::Result<Option<Record>> {
        if self.ended {
            return Ok(None);
        }
        self.record().map_err(incomplete)
    }

    fn record(&mut self) -> io::Result<Option<Record>> {
        let mut tag = [0u8; 1];
        self.r.read_exact(&mut tag)?;
        match tag[0] {
            ENTRY => {
                self.entries += 1;
                self.entry().map(|e| Some(Record::Entry(e)))
            }
            SKIPPED => {
                let path = RelPath::new(self.bytes()?).map_err(|w| bad(&w))?;
                let code = self.code()?;
                let message = String::from_utf8_lossy(&self.bytes()?).into_owned();
                Ok(Some(Record::Skipped(Skip {
                    path,
                    code,
                    message,
                })))
            }
            ROOT_ERROR => {
                let code = self.code()?;
                let message = String::from_utf8_lossy(&self.bytes()?).into_owned();
                Ok(Some(Record::RootError(code, message)))
            }
            END => {
                if self.u64()? != self.entries {
                    return Err(bad("entry count does not match its end record"));
                }
                let mut rest = [0u8; 1];
                if self.r.read(&mut rest)? != 0 {
                    return Err(bad("bytes after the end record"));
                }
                self.ended = true;
                Ok(None)
            }
            _ => Err(bad("record type")),
        }
    }

    fn entry(&mut self) -> io::Result<Entry> {
        let path = RelPath::new(self.bytes()?).map_err(|w| bad(&w))?;
        let mut t = [0u8; 1];
        self.r.read_exact(&mut t)?;
        let file_type = FileType::from_u8(t[0]).ok_or_else(|| bad("file type"))?;
        let (mode, uid, gid) = (self.u32()?, self.u32()?, self.u32()?);
        let size = self.u64()?;
        let sec = self.u64()? as i64;
        let nsec = self.u32()?;
        let (dev, ino, nlink) = (self.u64()?, self.u64()?, self.u64()?);
        let target = self.bytes()?;
        Ok(Entry {
            path,
            file_type,
            mode,
            uid,
            gid,
            size,
            mtime: Time { sec, nsec },
            ctime: Time::default(),
            dev,
            ino,
            nlink,
            target,
        })
    }
}

/// [`load`], refused unless the file was written by the pass `id` (not an earlier pass's file
/// left under the same name).
pub fn load_of_pass(path: &Path, id: PassId) -> io::Result<Manifest> {
    let (got, m) = load(path)?;
    if got != id {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "manifest: written by another pass",
        ));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(p: &[u8], ft: FileType, ino: u64, nlink: u64) -> Entry {
        Entry {
            path: RelPath::new(p.to_vec()).unwrap(),
            file_type: ft,
            mode: 0o644,
            uid: 1,
            gid: 2,
            size: 3,
            mtime: Time {
                sec: -5,
                nsec: 999_999_999,
            },
            ctime: Time::default(),
            dev: 9,
            ino,
            nlink,
            target: if ft == FileType::Symlink {
                b"../x\n".to_vec()
            } else {
                vec![]
            },
        }
    }

    #[test]
    fn save_load_and_links() {
        let m = Manifest::from_entries(vec![
            e(b"", FileType::Dir, 1, 3),
            e(b"a", FileType::File, 7, 2),
            e(b"b\xff\n", FileType::Symlink, 8, 1),
            e(b"c/z", FileType::File, 7, 2),
            e(b"d", FileType::File, 10, 2),
        ]);
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("m");
        let id = PassId::new();
        save(&m, &p, id).unwrap();
        let (got, back) = load(&p).unwrap();
        assert_eq!(got, id);
        assert_eq!(back.len(), 5);
        for (a, b) in m.iter().zip(back.iter()) {
            assert_eq!(a, b);
        }
        assert_eq!(m.find(b"c/z").unwrap().ino, 7);
        assert!(m.find(b"c").is_none() && m.contains(b"") && m.get(5).is_none());
        let l = m.link_leaders();
        assert_eq!(l.len(), 2, "d's other link is outside the tree");
        assert_eq!(l[&b"c/z"[..]], b"a");
        std::fs::write(&p, b"garbage!").unwrap();
        assert!(load(&p).is_err());
        assert!(load_of_pass(&p, id).is_err());
        assert!(is_under(b"a/b", b"a") && is_under(b"a", b"a") && !is_under(b"ab", b"a"));
        assert!(is_under(b"x", b""));
    }

    /// A saved manifest carries what its scan could not read, and is taken only from the pass
    /// that wrote it and only when complete.
    #[test]
    fn saved_manifest_keeps_skips_and_its_pass() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("data.source");
        let id = PassId::new();
        let other = PassId::new();
        assert_ne!(id, other, "each pass its own id");
        let mut w = Writer::create(&p, id).unwrap();
        for x in [
            e(b"", FileType::Dir, 1, 2),
            e(b"b", FileType::File, 3, 1),
            e(b"a", FileType::File, 2, 1),
        ] {
            w.push(&EntryRef::of(&x)).unwrap();
        }
        w.skipped(&Skip {
            path: RelPath::new(b"locked".to_vec()).unwrap(),
            code: ErrorCode::PermissionDenied,
            message: "Permission denied (os error 13)".into(),
        })
        .unwrap();
        // Not renamed yet: nothing under the name.
        assert!(load(&p).is_err());
        w.finish().unwrap();
        let m = load_of_pass(&p, id).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m.get(1).unwrap().path.as_bytes(), b"a", "sorted");
        assert_eq!(m.skipped.len(), 1);
        assert_eq!(m.skipped[0].path.as_bytes(), b"locked");
        assert_eq!(m.skipped[0].code, ErrorCode::PermissionDenied);
        assert!(m.root_error.is_none());
        // Another pass's file under the same name: refused.
        let err = load_of_pass(&p, other).unwrap_err();
        assert!(err.to_string().contains("another pass"), "{err}");
        // Read record by record (what the target's patched save does): in the order written,
        // the skip in its place, nothing after the end record.
        let (got, mut r) = Reader::open(&p).unwrap();
        assert_eq!(got, id);
        let mut seen: Vec<Vec<u8>> = Vec::new();
        while let Some(rec) = r.next_record().unwrap() {
            seen.push(match rec {
                Record::Entry(e) => e.path.as_bytes().to_vec(),
                Record::Skipped(s) => [&b"skipped "[..], s.path.as_bytes()].concat(),
                Record::RootError(..) => b"root error".to_vec(),
            });
        }
        assert_eq!(seen, [&b""[..], b"b", b"a", b"skipped locked"]);
        assert!(r.next_record().unwrap().is_none(), "stays ended");
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, [&bytes[..], b"x"].concat()).unwrap();
        let err = load(&p).unwrap_err();
        assert!(err.to_string().contains("after the end record"), "{err}");
        std::fs::write(&p, &bytes).unwrap();
        // Cut short (no end record, or in the middle of a record): refused.
        let bytes = std::fs::read(&p).unwrap();
        for cut in [bytes.len() - 9, bytes.len() - 20, 30] {
            std::fs::write(&p, &bytes[..cut]).unwrap();
            assert!(load_of_pass(&p, id).is_err(), "cut at {cut}");
        }
        // A tree whose root could not be read.
        let r = Manifest {
            root_error: Some((ErrorCode::NotFound, "No such file or directory".into())),
            ..Manifest::default()
        };
        save(&r, &p, id).unwrap();
        let back = load_of_pass(&p, id).unwrap();
        assert!(back.is_empty());
        assert_eq!(back.root_error, r.root_error);
    }
}
