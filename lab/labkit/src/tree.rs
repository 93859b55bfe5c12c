//! The files of a test instance, as an in-memory tree per storage (a user's home, or the data
//! directory itself for the `local::` storage), made from the seed, then written to disk with their
//! mtimes (nanoseconds included) and summarised as `oc_filecache` rows.

use crate::rng::Rng;
use std::collections::HashSet;
use std::fs::{self, File, FileTimes, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

/// The instance's "now": 2026-11-01T00:00:00Z. Fixed, so the output depends on the seed only.
pub const NOW: i64 = 1_793_491_200;
/// Oldest file mtime: about eight years before NOW.
pub const OLDEST: i64 = NOW - 8 * 365 * 86_400;

#[derive(Clone, Debug)]
pub enum Content {
    /// Pseudo-random bytes from this seed, after an optional magic prefix (JPEG, PNG, PDF, …).
    Binary { seed: u64, magic: &'static [u8] },
    /// Lines of words from this seed.
    Text { seed: u64 },
    /// Exactly these bytes.
    Fixed(Vec<u8>),
}

#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    /// Path relative to the storage root ("" for the root itself).
    pub path: String,
    pub parent: Option<usize>,
    pub children: Vec<usize>,
    pub is_dir: bool,
    pub size: u64,
    pub mtime: i64,
    pub mtime_ns: u32,
    pub content: Content,
    /// Whether this node has an `oc_filecache` row.
    pub cached: bool,
    pub fileid: i64,
    pub etag: String,
    pub checksum: Option<String>,
    pub mime: &'static str,
    /// Marked as a large file when sizes are handed out.
    pub big: bool,
}

/// One storage's tree; index 0 is the root.
#[derive(Clone, Debug)]
pub struct Tree {
    pub nodes: Vec<Node>,
    names: HashSet<(usize, String)>,
}

impl Tree {
    pub fn new(root_mtime_seed: u64) -> Tree {
        let root = Node {
            name: String::new(),
            path: String::new(),
            parent: None,
            children: vec![],
            is_dir: true,
            size: 0,
            mtime: 0,
            mtime_ns: 0,
            content: Content::Fixed(vec![]),
            cached: true,
            fileid: 0,
            etag: String::new(),
            checksum: None,
            mime: DIR_MIME,
            big: false,
        };
        let _ = root_mtime_seed;
        Tree {
            nodes: vec![root],
            names: HashSet::new(),
        }
    }

    /// Whether `parent` already has a child called `name`.
    pub fn has(&self, parent: usize, name: &str) -> bool {
        self.names.contains(&(parent, name.to_string()))
    }

    /// A name not yet used in `parent`: `name`, else `name (2)`, `name (3)`, … before the extension.
    pub fn free_name(&self, parent: usize, name: &str) -> String {
        if !self.has(parent, name) {
            return name.to_string();
        }
        let (stem, ext) = match name.rfind('.') {
            Some(i) if i > 0 => (&name[..i], &name[i..]),
            _ => (name, ""),
        };
        (2..)
            .map(|n| format!("{stem} ({n}){ext}"))
            .find(|c| !self.has(parent, c))
            .unwrap()
    }

    fn add(&mut self, parent: usize, name: &str, is_dir: bool, content: Content) -> usize {
        assert!(!self.has(parent, name), "duplicate name {name:?}");
        let path = if self.nodes[parent].path.is_empty() {
            name.to_string()
        } else {
            format!("{}/{}", self.nodes[parent].path, name)
        };
        let idx = self.nodes.len();
        let cached = self.nodes[parent].cached;
        self.nodes.push(Node {
            name: name.to_string(),
            path,
            parent: Some(parent),
            children: vec![],
            is_dir,
            size: 0,
            mtime: 0,
            mtime_ns: 0,
            content,
            cached,
            fileid: 0,
            etag: String::new(),
            checksum: None,
            mime: if is_dir { DIR_MIME } else { mime_of(name) },
            big: false,
        });
        self.nodes[parent].children.push(idx);
        self.names.insert((parent, name.to_string()));
        idx
    }

    pub fn dir(&mut self, parent: usize, name: &str) -> usize {
        self.add(parent, name, true, Content::Fixed(vec![]))
    }

    /// The child folder `name` of `parent`, made when missing.
    pub fn dir_path(&mut self, parent: usize, name: &str) -> usize {
        if let Some(&c) = self.nodes[parent]
            .children
            .iter()
            .find(|&&c| self.nodes[c].name == name)
        {
            return c;
        }
        self.dir(parent, name)
    }

    pub fn file(&mut self, parent: usize, name: &str, content: Content) -> usize {
        self.add(parent, name, false, content)
    }

    /// A file whose size is set now (not by the size budget).
    pub fn file_sized(&mut self, parent: usize, name: &str, content: Content, size: u64) -> usize {
        let i = self.file(parent, name, content);
        self.nodes[i].size = size;
        i
    }

    pub fn depth(&self, mut i: usize) -> usize {
        let mut d = 0;
        while let Some(p) = self.nodes[i].parent {
            d += 1;
            i = p;
        }
        d
    }

    /// Nodes in pre-order (parents before children).
    pub fn preorder(&self) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.nodes.len());
        let mut stack = vec![0];
        while let Some(i) = stack.pop() {
            out.push(i);
            for &c in self.nodes[i].children.iter().rev() {
                stack.push(c);
            }
        }
        out
    }

    /// Folder sizes (sum of cached children) and mtimes (a little after the newest child), bottom up.
    /// Folders that already have an mtime keep it.
    pub fn settle_folders(&mut self, rng: &mut Rng) {
        let order = self.preorder();
        for &i in order.iter().rev() {
            if !self.nodes[i].is_dir {
                continue;
            }
            let mut size = 0;
            let mut newest: Option<(i64, u32)> = None;
            for &c in &self.nodes[i].children {
                let n = &self.nodes[c];
                if n.cached {
                    size += n.size;
                }
                let t = (n.mtime, n.mtime_ns);
                if newest.is_none_or(|m| t > m) {
                    newest = Some(t);
                }
            }
            self.nodes[i].size = size;
            if self.nodes[i].mtime == 0 {
                let (s, ns) = match newest {
                    Some((s, _)) => (
                        (s + rng.range(0, 3600)).min(NOW),
                        rng.below(1_000_000_000) as u32,
                    ),
                    None => (rng.range(OLDEST, NOW), rng.below(1_000_000_000) as u32),
                };
                self.nodes[i].mtime = s;
                self.nodes[i].mtime_ns = ns;
            }
        }
    }
}

pub const DIR_MIME: &str = "httpd/unix-directory";

/// The mimetype ownCloud gives a name (by its extension).
pub fn mime_of(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "log" => "text/plain",
        "md" => "text/markdown",
        "csv" => "text/csv",
        "css" => "text/css",
        "js" => "application/javascript",
        "json" => "application/json",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "pdf" => "application/pdf",
        "odt" => "application/vnd.oasis.opendocument.text",
        "ods" => "application/vnd.oasis.opendocument.spreadsheet",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "zip" => "application/zip",
        "mp4" => "video/mp4",
        "mp3" => "audio/mpeg",
        _ => "application/octet-stream",
    }
}

/// Whether content of this name is text (lines of words) rather than binary.
pub fn is_text(name: &str) -> bool {
    mime_of(name).starts_with("text/") || name.ends_with(".js") || name.ends_with(".json")
}

pub fn magic_of(name: &str) -> &'static [u8] {
    match mime_of(name) {
        "image/jpeg" => b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
        "image/png" => b"\x89PNG\r\n\x1a\n",
        "application/pdf" => b"%PDF-1.4\n",
        "application/zip"
        | "application/vnd.oasis.opendocument.text"
        | "application/vnd.oasis.opendocument.spreadsheet"
        | "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => {
            b"PK\x03\x04"
        }
        "video/mp4" => b"\x00\x00\x00\x20ftypisom",
        "audio/mpeg" => b"ID3\x03\x00",
        _ => b"",
    }
}

pub fn content_for(name: &str, seed: u64) -> Content {
    if is_text(name) {
        Content::Text { seed }
    } else {
        Content::Binary {
            seed,
            magic: magic_of(name),
        }
    }
}

const WORDS: &[&str] = &[
    "the",
    "migration",
    "server",
    "cloud",
    "files",
    "meeting",
    "budget",
    "report",
    "holiday",
    "project",
    "draft",
    "invoice",
    "notes",
    "backup",
    "family",
    "photo",
    "garden",
    "kitchen",
    "weekend",
    "contract",
    "Müller",
    "über",
    "café",
    "naïve",
    "Ελλάδα",
    "данные",
    "日本",
    "ok",
    "and",
    "with",
    "for",
    "of",
    "quarterly",
    "review",
    "agenda",
    "summary",
    "ticket",
    "release",
    "version",
    "check",
    "list",
    "todo",
];

/// Fill `buf` (its whole length) with the bytes of `content`, starting at byte `offset` of it.
/// Text is generated line by line from the seed, so a chunk is the same whatever the chunking is
/// only when generated in order: callers generate sequentially from offset 0.
pub struct ContentStream {
    content: Content,
    rng: Rng,
    pos: u64,
    pending: Vec<u8>,
}

impl ContentStream {
    pub fn new(content: &Content) -> ContentStream {
        let seed = match content {
            Content::Binary { seed, .. } | Content::Text { seed } => *seed,
            Content::Fixed(_) => 0,
        };
        ContentStream {
            content: content.clone(),
            rng: Rng::new(seed),
            pos: 0,
            pending: vec![],
        }
    }

    /// The next `buf.len()` bytes.
    pub fn read(&mut self, buf: &mut [u8]) {
        match &self.content {
            Content::Fixed(bytes) => {
                let start = self.pos as usize;
                buf.copy_from_slice(&bytes[start..start + buf.len()]);
            }
            Content::Binary { magic, .. } => {
                let mut done = 0;
                while (self.pos as usize + done) < magic.len() && done < buf.len() {
                    buf[done] = magic[self.pos as usize + done];
                    done += 1;
                }
                self.rng.fill(&mut buf[done..]);
            }
            Content::Text { .. } => {
                let mut done = 0;
                while done < buf.len() {
                    if self.pending.is_empty() {
                        let words = 3 + self.rng.below(12) as usize;
                        let mut line = String::new();
                        for w in 0..words {
                            if w > 0 {
                                line.push(' ');
                            }
                            line.push_str(self.rng.pick::<&str>(WORDS));
                        }
                        line.push('\n');
                        self.pending = line.into_bytes();
                        self.pending.reverse();
                    }
                    while done < buf.len() {
                        match self.pending.pop() {
                            Some(b) => {
                                buf[done] = b;
                                done += 1;
                            }
                            None => break,
                        }
                    }
                }
            }
        }
        self.pos += buf.len() as u64;
    }
}

/// ownCloud's Adler-32.
#[derive(Clone, Copy)]
pub struct Adler32 {
    a: u32,
    b: u32,
}

impl Adler32 {
    pub fn new() -> Adler32 {
        Adler32 { a: 1, b: 0 }
    }
    pub fn update(&mut self, data: &[u8]) {
        const MOD: u32 = 65521;
        for chunk in data.chunks(5552) {
            for &x in chunk {
                self.a += x as u32;
                self.b += self.a;
            }
            self.a %= MOD;
            self.b %= MOD;
        }
    }
    pub fn value(&self) -> u32 {
        (self.b << 16) | self.a
    }
}

impl Default for Adler32 {
    fn default() -> Self {
        Adler32::new()
    }
}

fn system_time(s: i64, ns: u32) -> std::time::SystemTime {
    if s >= 0 {
        UNIX_EPOCH + Duration::new(s as u64, ns)
    } else {
        UNIX_EPOCH - Duration::from_secs((-s) as u64) + Duration::from_nanos(ns as u64)
    }
}

/// Set a path's atime and mtime (to the nanosecond), without following nothing but the path.
pub fn set_mtime(f: &File, s: i64, ns: u32) -> io::Result<()> {
    let t = system_time(s, ns);
    f.set_times(FileTimes::new().set_accessed(t).set_modified(t))
}

/// Write the tree under `root` (which is made, with `root_mode`). Files are written with their
/// content and mtime; with `checksums` each file's `checksum` is set the way ownCloud stores it.
/// Folder mtimes are NOT set here (see [`Tree::set_folder_mtimes`]): other trees may still be
/// written inside them.
pub fn write_tree(tree: &mut Tree, root: &Path, root_mode: u32, checksums: bool) -> io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    for i in tree.preorder() {
        let full = if tree.nodes[i].path.is_empty() {
            root.to_path_buf()
        } else {
            root.join(&tree.nodes[i].path)
        };
        if tree.nodes[i].is_dir {
            let mode = if i == 0 { root_mode } else { 0o755 };
            match fs::DirBuilder::new().mode(mode).create(&full) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && i == 0 => {}
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("mkdir {}: {e}", full.display()),
                    ))
                }
            }
            fs::set_permissions(&full, fs::Permissions::from_mode(mode))?;
            continue;
        }
        let node = &tree.nodes[i];
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&full)
            .map_err(|e| io::Error::new(e.kind(), format!("create {}: {e}", full.display())))?;
        let mut stream = ContentStream::new(&node.content);
        let (mut sha1, mut md5, mut adler) =
            (sha1_smol::Sha1::new(), md5::Context::new(), Adler32::new());
        let mut left = node.size;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            stream.read(&mut buf[..n]);
            f.write_all(&buf[..n])?;
            if checksums {
                sha1.update(&buf[..n]);
                md5.consume(&buf[..n]);
                adler.update(&buf[..n]);
            }
            left -= n as u64;
        }
        f.set_permissions(fs::Permissions::from_mode(0o644))?;
        set_mtime(&f, node.mtime, node.mtime_ns)?;
        if checksums && node.cached {
            tree.nodes[i].checksum = Some(format!(
                "SHA1:{} MD5:{:x} ADLER32:{:08x}",
                sha1.digest(),
                md5.finalize(),
                adler.value()
            ));
        }
    }
    Ok(())
}

impl Tree {
    /// Set every folder's mtime, deepest first (the root last), once all content is written.
    pub fn set_folder_mtimes(&self, root: &Path) -> io::Result<()> {
        for &i in self.preorder().iter().rev() {
            let n = &self.nodes[i];
            if n.is_dir {
                let full = if n.path.is_empty() {
                    root.to_path_buf()
                } else {
                    root.join(&n.path)
                };
                let f = File::open(&full)?;
                set_mtime(&f, n.mtime, n.mtime_ns)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adler32_known_value() {
        let mut a = Adler32::new();
        a.update(b"Wikipedia");
        assert_eq!(a.value(), 0x11E60398);
    }

    #[test]
    fn free_names_and_sizes() {
        let mut t = Tree::new(0);
        let d = t.dir(0, "A");
        t.file_sized(d, "x.txt", Content::Text { seed: 1 }, 10);
        assert_eq!(t.free_name(d, "x.txt"), "x (2).txt");
        assert_eq!(t.free_name(d, "y.txt"), "y.txt");
        t.file_sized(
            0,
            "b.bin",
            Content::Binary {
                seed: 2,
                magic: b"",
            },
            5,
        );
        let mut r = Rng::new(1);
        t.settle_folders(&mut r);
        assert_eq!(t.nodes[0].size, 15);
        assert_eq!(t.nodes[d].size, 10);
        assert_eq!(t.nodes[d].path, "A");
        assert_eq!(t.nodes[2].path, "A/x.txt");
    }

    #[test]
    fn text_content_is_deterministic_and_exact() {
        let c = Content::Text { seed: 9 };
        let mut a = vec![0u8; 1000];
        let mut b = vec![0u8; 1000];
        ContentStream::new(&c).read(&mut a);
        let mut s = ContentStream::new(&c);
        s.read(&mut b[..300]);
        s.read(&mut b[300..]);
        assert_eq!(a, b);
        assert!(std::str::from_utf8(&a[..100]).is_ok() || a.contains(&b'\n'));
    }
}
