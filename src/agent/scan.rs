//! The walk behind `Scan`: every entry under a path, `lstat`ed, never following a symlink, in a
//! fixed order (each directory's children sorted by name, a directory's children before its
//! subdirectories' contents, depth first), with directories listed and `lstat`ed ahead by a few
//! worker threads.
//!
//! Why threads: on a cold cache each `lstat` and `getdents` waits for the disk, and a data
//! directory has hundreds of thousands of them; several in flight keep the disk busy. The order
//! of the output does not depend on the threads: the walking thread consumes directory listings
//! in depth-first order and waits for (or makes itself) the one it needs next. Workers take the
//! most recently queued directory first (a stack), which is the one the walk needs soonest, and
//! stop prefetching when [`AHEAD_ENTRIES`] entries wait unconsumed, so memory stays bounded. A
//! directory with more than [`BIG_DIR`] names is not `lstat`ed ahead: the walking thread streams
//! it itself.

use super::fs::{self, Fail, Root};
use super::proto::{Entry, ErrorCode, FileType, RelPath};
use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::sync::{Condvar, Mutex};

/// Entries listed ahead of the walk, at most (about 10 MB).
pub const AHEAD_ENTRIES: usize = 50_000;
/// A directory with more names than this is streamed by the walking thread, not listed ahead.
pub const BIG_DIR: usize = 10_000;

/// The two bounds of a walk ([`BIG_DIR`] and [`AHEAD_ENTRIES`] outside tests).
#[derive(Debug, Clone, Copy)]
struct Limits {
    big: usize,
    ahead: usize,
}

impl Limits {
    const DEFAULT: Limits = Limits {
        big: BIG_DIR,
        ahead: AHEAD_ENTRIES,
    };
}

/// One item of a walk, in order.
#[derive(Debug)]
pub enum Item {
    Entry(Entry),
    /// Something that could not be read (a directory that cannot be listed, an entry that cannot
    /// be `lstat`ed, a name that is not a valid path component); the walk goes on.
    Skipped(RelPath, Fail),
}

/// A directory's children, `lstat`ed, and which of them are directories.
struct Listing {
    items: Vec<Item>,
    subdirs: Vec<RelPath>,
}

/// What a worker (or the walking thread) found for one directory.
enum Found {
    /// The directory itself could not be opened or read.
    Unreadable(Fail),
    Listed(Listing),
    /// Too many names to hold `lstat`ed: the names, sorted, for the walking thread to stream.
    Big(Vec<Vec<u8>>),
}

impl Found {
    fn weight(&self) -> usize {
        match self {
            Found::Unreadable(_) => 1,
            Found::Listed(l) => l.items.len() + 1,
            Found::Big(n) => n.len() / 8 + 1,
        }
    }
}

fn name_error(dir: &RelPath, name: &[u8], why: String) -> Item {
    let shown = String::from_utf8_lossy(name).into_owned();
    Item::Skipped(
        dir.clone(),
        Fail::new(ErrorCode::Io, format!("name {shown:?}: {why}")),
    )
}

/// List and `lstat` one directory (or, when it has more than `big` names, only list it).
///
/// The `lstat`s go in inode order, not name order: on a cold cache each one reads the block of
/// the inode table that holds its inode, and in inode order neighbours share blocks and the
/// file system's inode read-ahead, where name order jumps back and forth across the table.
fn list(root: &Root, dir: &RelPath, big: usize) -> Found {
    let listed = root
        .open_dir(dir)
        .and_then(|fd| fs::read_entries(&fd).map(|n| (fd, n)));
    let (fd, mut names) = match listed {
        Ok(x) => x,
        Err(f) => return Found::Unreadable(f),
    };
    names.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    if names.len() > big {
        return Found::Big(names.into_iter().map(|(n, _)| n).collect());
    }
    let mut by_inode: Vec<usize> = (0..names.len()).collect();
    by_inode.sort_unstable_by_key(|&i| names[i].1);
    let mut stated: Vec<Option<Item>> = (0..names.len()).map(|_| None).collect();
    for i in by_inode {
        stated[i] = Some(stat_child(fd.as_raw_fd(), dir, &names[i].0));
    }
    let mut items = Vec::with_capacity(names.len());
    let mut subdirs = Vec::new();
    for item in stated.into_iter().flatten() {
        if let Item::Entry(e) = &item {
            if e.file_type == FileType::Dir {
                subdirs.push(e.path.clone());
            }
        }
        items.push(item);
    }
    Found::Listed(Listing { items, subdirs })
}

/// The entry for one name in an open directory, or the item that says why not.
fn stat_child(dirfd: std::os::fd::RawFd, dir: &RelPath, name: &[u8]) -> Item {
    let rel = match dir.join(name) {
        Ok(p) => p,
        Err(why) => return name_error(dir, name, why),
    };
    let Ok(cname) = CString::new(name) else {
        return Item::Skipped(rel, Fail::new(ErrorCode::Io, "a name with a NUL byte"));
    };
    match fs::lstat_at(dirfd, &cname, rel.clone()) {
        Ok(e) => Item::Entry(e),
        Err(f) => Item::Skipped(rel, f),
    }
}

#[derive(Default)]
struct State {
    /// Directories to list, most urgent last; an entry no longer in `queued` was taken.
    stack: Vec<RelPath>,
    queued: HashSet<RelPath>,
    done: HashMap<RelPath, Found>,
    /// Entries in `done`, against [`AHEAD_ENTRIES`].
    ahead: usize,
    /// What tests check: the most `ahead` has been, and how many listings workers made.
    stats: Stats,
    stop: bool,
    /// The walking thread sleeps until this directory's listing is done.
    awaited: Option<RelPath>,
}

/// Two wake-up calls, so that neither side wakes the other for nothing (a shared one woke every
/// worker for each directory taken, and cost a fifth of a scan's CPU in `futex`).
struct Pool<'a> {
    root: &'a Root,
    limits: Limits,
    state: Mutex<State>,
    /// Workers wait here: signalled when directories are queued, when the walk takes enough
    /// back to go under [`AHEAD_ENTRIES`], and when it stops.
    work: Condvar,
    /// The walking thread waits here: signalled when the listing it awaits is done.
    ready: Condvar,
}

impl Pool<'_> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue directories; the last one is listed first.
    fn submit(&self, dirs: impl Iterator<Item = RelPath>) {
        let mut s = self.lock();
        let mut n = 0;
        for d in dirs {
            s.queued.insert(d.clone());
            s.stack.push(d);
            n += 1;
        }
        drop(s);
        match n {
            0 => {}
            1 => self.work.notify_one(),
            _ => self.work.notify_all(),
        }
    }

    /// The listing of `dir`: done by a worker, or made here when no worker has started it.
    fn take(&self, dir: &RelPath) -> Found {
        let mut s = self.lock();
        loop {
            if let Some(f) = s.done.remove(dir) {
                let was_full = s.ahead >= self.limits.ahead;
                s.ahead -= f.weight();
                let room = was_full && s.ahead < self.limits.ahead;
                drop(s);
                if room {
                    self.work.notify_all();
                }
                return f;
            }
            if s.queued.remove(dir) {
                drop(s);
                return list(self.root, dir, self.limits.big);
            }
            // A worker is listing it.
            s.awaited = Some(dir.clone());
            s = self.ready.wait(s).unwrap_or_else(|p| p.into_inner());
            s.awaited = None;
        }
    }

    fn work(&self) {
        let mut s = self.lock();
        loop {
            if s.stop {
                return;
            }
            if s.ahead < self.limits.ahead {
                if let Some(d) = s.stack.pop() {
                    if !s.queued.remove(&d) {
                        continue; // taken by the walking thread
                    }
                    drop(s);
                    let f = list(self.root, &d, self.limits.big);
                    s = self.lock();
                    s.ahead += f.weight();
                    s.stats.peak = s.stats.peak.max(s.ahead);
                    s.stats.by_workers += 1;
                    let awaited = s.awaited.as_ref() == Some(&d);
                    s.done.insert(d, f);
                    if awaited {
                        self.ready.notify_one();
                    }
                    continue;
                }
            }
            s = self.work.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// How many threads list ahead: a few even on one core, since they mostly wait for the disk.
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(3, 8)
}

/// Walk `start` (the entry itself first), giving every item to `emit` in order. `Err` when
/// `start` cannot be `lstat`ed, or with `emit`'s error.
pub fn walk<E>(
    root: &Root,
    start: &RelPath,
    workers: usize,
    emit: &mut dyn FnMut(Item) -> Result<(), E>,
) -> Result<(), WalkError<E>> {
    walk_limited(root, start, workers, Limits::DEFAULT, emit).map(|_| ())
}

/// How a walk went, for tests: the most entries listed ahead at once, and how many directories
/// the workers listed (the others the walking thread listed itself).
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    peak: usize,
    by_workers: usize,
}

/// [`walk`] within `limits`.
fn walk_limited<E>(
    root: &Root,
    start: &RelPath,
    workers: usize,
    limits: Limits,
    emit: &mut dyn FnMut(Item) -> Result<(), E>,
) -> Result<Stats, WalkError<E>> {
    let first = root.lstat(start).map_err(WalkError::Start)?;
    let is_dir = first.file_type == FileType::Dir;
    emit(Item::Entry(first)).map_err(WalkError::Emit)?;
    if !is_dir {
        return Ok(Stats::default());
    }
    let pool = Pool {
        root,
        limits,
        state: Mutex::new(State::default()),
        work: Condvar::new(),
        ready: Condvar::new(),
    };
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| pool.work());
        }
        let r = walk_with(&pool, start, emit);
        let mut s = pool.lock();
        s.stop = true;
        let stats = s.stats;
        drop(s);
        pool.work.notify_all();
        r.map(|()| stats)
    })
}

/// Why a walk ended early.
#[derive(Debug)]
pub enum WalkError<E> {
    /// The start path could not be read.
    Start(Fail),
    /// `emit` failed.
    Emit(E),
}

fn walk_with<E>(
    pool: &Pool<'_>,
    start: &RelPath,
    emit: &mut dyn FnMut(Item) -> Result<(), E>,
) -> Result<(), WalkError<E>> {
    pool.submit(std::iter::once(start.clone()));
    let mut stack = vec![start.clone()];
    while let Some(dir) = stack.pop() {
        let subdirs = match pool.take(&dir) {
            Found::Unreadable(f) => {
                emit(Item::Skipped(dir, f)).map_err(WalkError::Emit)?;
                continue;
            }
            Found::Listed(l) => {
                // Queue the children first, so workers start on them while we send.
                pool.submit(l.subdirs.iter().rev().cloned());
                for item in l.items {
                    emit(item).map_err(WalkError::Emit)?;
                }
                l.subdirs
            }
            Found::Big(names) => {
                let mut subdirs = Vec::new();
                match pool.root.open_dir(&dir) {
                    Err(f) => emit(Item::Skipped(dir, f)).map_err(WalkError::Emit)?,
                    Ok(fd) => {
                        for name in names {
                            let item = stat_child(fd.as_raw_fd(), &dir, &name);
                            if let Item::Entry(e) = &item {
                                if e.file_type == FileType::Dir {
                                    subdirs.push(e.path.clone());
                                }
                            }
                            emit(item).map_err(WalkError::Emit)?;
                        }
                    }
                }
                pool.submit(subdirs.iter().rev().cloned());
                subdirs
            }
        };
        // Sorted order: the first subdirectory is popped first.
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The order does not depend on the number of threads, and matches a plain depth-first walk.
    #[test]
    fn same_order_with_any_number_of_workers() {
        let t = tempfile::tempdir().unwrap();
        for a in 0..7 {
            for b in 0..5 {
                let d = t.path().join(format!("a{a}/b{b}"));
                std::fs::create_dir_all(&d).unwrap();
                for f in 0..(a * b) {
                    std::fs::write(d.join(format!("f{f}")), b"x").unwrap();
                }
            }
        }
        std::os::unix::fs::symlink("/", t.path().join("a1/root-link")).unwrap();
        let root = Root::open(t.path().as_os_str().as_encoded_bytes()).unwrap();
        let run = |workers, big| {
            let mut v = Vec::new();
            let limits = Limits {
                big,
                ..Limits::DEFAULT
            };
            walk_limited::<()>(&root, &RelPath::root(), workers, limits, &mut |i| {
                v.push(match i {
                    Item::Entry(e) => e.path,
                    Item::Skipped(p, _) => p,
                });
                Ok(())
            })
            .unwrap();
            v
        };
        let one = run(0, BIG_DIR);
        assert_eq!(
            one.len(),
            1 + 7 + 35 + (0..7).map(|a| a * 10).sum::<usize>() + 1
        );
        // children of a directory come sorted, before anything deeper
        let pos = |s: &str| {
            one.iter()
                .position(|p| p.as_bytes() == s.as_bytes())
                .unwrap()
        };
        assert!(pos("a0") < pos("a1") && pos("a6") < pos("a0/b0"));
        assert!(pos("a0/b4") < pos("a1/b0") && pos("a1/root-link") < pos("a1/b1/f0"));
        for w in [1, 3, 8] {
            assert_eq!(run(w, BIG_DIR), one, "{w} workers");
            // every directory with more than 3 names streamed by the walking thread
            assert_eq!(run(w, 3), one, "{w} workers, big directories");
        }
    }

    /// Workers stop listing ahead at the bound and start again when the walk has taken enough
    /// back; the order stays the same.
    #[test]
    fn listing_ahead_stops_at_the_bound_and_resumes() {
        let t = tempfile::tempdir().unwrap();
        for d in 0..40 {
            let d = t.path().join(format!("d{d:02}"));
            std::fs::create_dir(&d).unwrap();
            for f in 0..9 {
                std::fs::write(d.join(format!("f{f}")), b"x").unwrap();
            }
        }
        let root = Root::open(t.path().as_os_str().as_encoded_bytes()).unwrap();
        let run = |workers, ahead| {
            let mut v = Vec::new();
            let limits = Limits {
                big: BIG_DIR,
                ahead,
            };
            let stats = walk_limited::<()>(&root, &RelPath::root(), workers, limits, &mut |i| {
                // a slow consumer, so that the workers run ahead of it
                std::thread::sleep(std::time::Duration::from_micros(200));
                v.push(match i {
                    Item::Entry(e) => e.path,
                    Item::Skipped(p, _) => p,
                });
                Ok(())
            })
            .unwrap();
            (v, stats)
        };
        let (one, _) = run(0, AHEAD_ENTRIES);
        assert_eq!(one.len(), 1 + 40 * 10);
        for workers in [1, 3] {
            let (v, stats) = run(workers, 25);
            assert_eq!(v, one, "{workers} workers");
            // each directory weighs 10 (9 files and itself): the limit is reached, and passed by
            // at most one listing per worker
            assert!(
                (25..25 + 10 * workers).contains(&stats.peak),
                "{workers} workers: {stats:?}"
            );
            // and the workers went on once the walk took listings back (they would stop at the
            // third directory if nothing woke them), listing most of the 41 directories
            assert!(stats.by_workers >= 20, "{workers} workers: {stats:?}");
        }
        let (_, unbounded) = run(3, AHEAD_ENTRIES);
        assert!(unbounded.peak > 25 + 30, "without the bound: {unbounded:?}");
    }

    /// The transfer engine merges two scans in this order: its comparator must agree with the
    /// walk on names that sort differently as paths and as components (`a.b` < `a/x` as bytes,
    /// but the walk gives `a/x` after every child of the root only when `a` is a folder).
    #[test]
    fn the_order_is_walk_cmp() {
        let t = tempfile::tempdir().unwrap();
        for d in [
            "a/x",
            "a b/c",
            "a.b/y/z",
            "a-",
            "b",
            "\u{e9}t\u{e9}/q",
            "a/x/deep/er",
        ] {
            std::fs::create_dir_all(t.path().join(d)).unwrap();
        }
        for f in [
            "a.b/f",
            "a/x/f",
            "a0",
            "a/ab",
            "a/a.b",
            "a b/c/zz",
            "z",
            "a/x/deep/f",
            "\u{e9}",
        ] {
            std::fs::write(t.path().join(f), b"x").unwrap();
        }
        let root = Root::open(t.path().as_os_str().as_encoded_bytes()).unwrap();
        for big in [BIG_DIR, 2] {
            let mut v: Vec<Vec<u8>> = Vec::new();
            let limits = Limits {
                big,
                ..Limits::DEFAULT
            };
            walk_limited::<()>(&root, &RelPath::root(), 3, limits, &mut |i| {
                if let Item::Entry(e) = i {
                    v.push(e.path.as_bytes().to_vec());
                }
                Ok(())
            })
            .unwrap();
            assert_eq!(v.len(), 1 + 13 + 9, "{v:?}");
            for w in v.windows(2) {
                assert_eq!(
                    crate::transfer::manifest::walk_cmp(&w[0], &w[1]),
                    std::cmp::Ordering::Less,
                    "{:?} then {:?}",
                    String::from_utf8_lossy(&w[0]),
                    String::from_utf8_lossy(&w[1])
                );
            }
            let mut sorted = v.clone();
            sorted.sort_by(|a, b| crate::transfer::manifest::walk_cmp(a, b));
            assert_eq!(sorted, v);
        }
    }
}
