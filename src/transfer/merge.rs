//! The scans of both sides merged as they arrive, in the agents' scan order
//! ([`manifest::walk_cmp`]): a pass diffs as it scans and holds neither manifest.
//!
//! Each side's scan runs on a thread of its own and sends its entries in batches over a bounded
//! channel (at most [`QUEUED`] batches of [`BATCH`] entries wait on each side), tree after tree;
//! the pass's thread takes the next entry of whichever side comes first in scan order. A side
//! whose entries do not come strictly in that order stops the pass (a merge out of order would
//! take present files for extraneous ones).

use super::manifest::{self, walk_cmp, Manifest, Skip};
use super::trees::Tree;
use crate::agent::client::{AgentClient, AgentError, ScanItem};
use crate::agent::deploy;
use crate::agent::proto::{Entry, ErrorCode, FileType, RelPath, Target};
use crate::exit::Failure;
use std::cmp::Ordering;
use std::sync::mpsc::{Receiver, SyncSender};

/// Entries per message.
pub const BATCH: usize = 512;
/// Messages that may wait on a side's channel.
pub const QUEUED: usize = 4;

/// What a scan thread sends.
pub enum Msg {
    Entries(Vec<Entry>),
    Skipped(Skip),
    /// The tree is done; `Some` when its root could not be scanned (nothing was sent for it).
    End(Option<(ErrorCode, String)>),
}

/// A channel for one side's scan.
pub fn channel() -> (SyncSender<Msg>, Receiver<Msg>) {
    std::sync::mpsc::sync_channel(QUEUED)
}

/// Scan every tree of one side into `tx`, tree after tree (filtered by the tree's filter); a
/// tree with a manifest in `saved` is sent from it instead (the target as the last pass left it,
/// [`super::last_target`]; their indexes are returned). When the receiver is gone (the pass
/// stopped), the scans still run to their end, unsent.
pub fn scan_into(
    a: &mut AgentClient,
    trees: &[Tree],
    saved: &mut [Option<Manifest>],
    tx: &SyncSender<Msg>,
) -> Result<Vec<usize>, Failure> {
    let mut replayed = Vec::new();
    for (i, tree) in trees.iter().enumerate() {
        if let Some(m) = saved.get_mut(i).and_then(Option::take) {
            replay(&m, &tree.filter, tx);
            replayed.push(i);
            continue;
        }
        if let Some(Err((code, msg))) = a.welcome().roots.get(i) {
            let _ = tx.send(Msg::End(Some((*code, msg.clone()))));
            continue;
        }
        let mut buf: Vec<Entry> = Vec::with_capacity(BATCH);
        let mut open = true;
        let send = |m: Msg, open: &mut bool| {
            if *open && tx.send(m).is_err() {
                *open = false;
            }
        };
        let r = a.scan(Target::new(i as u16, RelPath::root()), |item| match item {
            ScanItem::Entry(e) => {
                if tree.filter.keep(e.path.as_bytes(), e.file_type) {
                    buf.push(e);
                    if buf.len() >= BATCH {
                        let full = std::mem::replace(&mut buf, Vec::with_capacity(BATCH));
                        send(Msg::Entries(full), &mut open);
                    }
                }
            }
            ScanItem::Skipped {
                path,
                code,
                message,
            } => {
                if tree.filter.keep(path.as_bytes(), FileType::Dir) {
                    let full = std::mem::take(&mut buf);
                    if !full.is_empty() {
                        send(Msg::Entries(full), &mut open);
                    }
                    send(
                        Msg::Skipped(Skip {
                            path,
                            code,
                            message,
                        }),
                        &mut open,
                    );
                }
            }
        });
        match r {
            Ok(_) => {
                if !buf.is_empty() {
                    send(Msg::Entries(buf), &mut open);
                }
                send(Msg::End(None), &mut open);
            }
            // The start path could not be read (before any entry).
            Err(AgentError::Failed { code, message, .. }) => {
                send(Msg::End(Some((code, message))), &mut open)
            }
            Err(e) => return Err(deploy::failure_of(e)),
        }
    }
    Ok(replayed)
}

/// A saved manifest's entries into `tx` as a scan of it would send them: in scan order, filtered.
fn replay(m: &Manifest, filter: &super::Filter, tx: &SyncSender<Msg>) {
    let mut buf: Vec<Entry> = Vec::with_capacity(BATCH);
    for e in m.walk_order() {
        if !filter.keep(e.path.as_bytes(), e.file_type) {
            continue;
        }
        buf.push(e.to_entry());
        if buf.len() >= BATCH {
            let full = std::mem::replace(&mut buf, Vec::with_capacity(BATCH));
            if tx.send(Msg::Entries(full)).is_err() {
                return;
            }
        }
    }
    if !buf.is_empty() && tx.send(Msg::Entries(buf)).is_err() {
        return;
    }
    let _ = tx.send(Msg::End(None));
}

/// Why a merge stopped.
#[derive(Debug)]
pub enum Stop {
    /// A side's scan ended before its trees did: its thread says why.
    Closed,
    /// A side's entries were not in scan order.
    Order(String),
}

/// One side's entries of the current tree, as they come.
pub struct Feed {
    rx: Receiver<Msg>,
    batch: std::vec::IntoIter<Entry>,
    head: Option<Entry>,
    /// The last entry taken's path (the order check).
    last: Option<Vec<u8>>,
    ended: bool,
    /// The target's side: our temporary files are set aside, not merged.
    target: bool,
    pub skipped: Vec<Skip>,
    pub root_error: Option<(ErrorCode, String)>,
    pub temporary: Vec<RelPath>,
    who: &'static str,
}

impl Feed {
    pub fn new(rx: Receiver<Msg>, target: bool) -> Feed {
        Feed {
            rx,
            batch: Vec::new().into_iter(),
            head: None,
            last: None,
            ended: false,
            target,
            skipped: Vec::new(),
            root_error: None,
            temporary: Vec::new(),
            who: if target { "target" } else { "source" },
        }
    }

    /// The next tree: what the last one set aside is cleared.
    pub fn next_tree(&mut self) {
        self.ended = false;
        self.last = None;
        self.head = None;
        self.skipped.clear();
        self.root_error = None;
        self.temporary.clear();
    }

    /// The next entry of this tree, without taking it (`None`: the tree is done).
    pub fn peek(&mut self) -> Result<Option<&Entry>, Stop> {
        while self.head.is_none() && !self.ended {
            if let Some(e) = self.batch.next() {
                if self.target
                    && e.file_type != FileType::Dir
                    && e.path
                        .as_bytes()
                        .rsplit(|&b| b == b'/')
                        .next()
                        .is_some_and(crate::agent::write::is_tmp_name)
                {
                    self.temporary.push(e.path);
                    continue;
                }
                if let Some(last) = &self.last {
                    if walk_cmp(last, e.path.as_bytes()) != Ordering::Less {
                        return Err(Stop::Order(format!(
                            "the {}'s scan gave {:?} after {:?}",
                            self.who,
                            e.path.to_string(),
                            String::from_utf8_lossy(last)
                        )));
                    }
                }
                self.head = Some(e);
                continue;
            }
            match self.rx.recv() {
                Ok(Msg::Entries(v)) => self.batch = v.into_iter(),
                Ok(Msg::Skipped(s)) => self.skipped.push(s),
                Ok(Msg::End(err)) => {
                    self.ended = true;
                    self.root_error = err;
                }
                Err(_) => return Err(Stop::Closed),
            }
        }
        Ok(self.head.as_ref())
    }

    /// Take the entry [`Feed::peek`] showed.
    pub fn take(&mut self) -> Option<Entry> {
        let e = self.head.take()?;
        match &mut self.last {
            Some(l) => {
                l.clear();
                l.extend_from_slice(e.path.as_bytes());
            }
            None => self.last = Some(e.path.as_bytes().to_vec()),
        }
        Some(e)
    }
}

/// Which side's entry comes first (both there: compared in scan order).
pub fn order(s: Option<&Entry>, t: Option<&Entry>) -> Option<Ordering> {
    match (s, t) {
        (None, None) => None,
        (Some(_), None) => Some(Ordering::Less),
        (None, Some(_)) => Some(Ordering::Greater),
        (Some(a), Some(b)) => Some(walk_cmp(a.path.as_bytes(), b.path.as_bytes())),
    }
}

/// The saved source manifest of a tree, written as the scan goes under the pass's id (errors
/// become a warning, and then no file of this pass is there to be used).
pub struct Saver {
    w: Option<manifest::Writer>,
    name: String,
    path: Option<std::path::PathBuf>,
    pub warning: Option<String>,
}

impl Saver {
    /// A saver into `manifests/<name>.source` of the folder given, under the pass's id; none:
    /// nothing saved.
    pub fn new(to: Option<(&std::path::Path, manifest::PassId)>, name: &str) -> Saver {
        let mut s = Saver {
            w: None,
            name: name.to_string(),
            path: None,
            warning: None,
        };
        if let Some((d, id)) = to {
            let path = d.join(format!("{name}.source"));
            match manifest::Writer::create(&path, id) {
                Ok(w) => {
                    s.w = Some(w);
                    s.path = Some(path);
                }
                Err(e) => s.fail(e),
            }
        }
        s
    }

    fn fail(&mut self, e: std::io::Error) {
        self.w = None;
        self.path = None;
        self.warning = Some(format!("cannot save the manifest of {}: {e}", self.name));
    }

    pub fn push(&mut self, e: &Entry) {
        if let Some(w) = &mut self.w {
            if let Err(err) = w.push(&manifest::EntryRef::of(e)) {
                self.fail(err);
            }
        }
    }

    /// Write what the scan could not read and give the file its name (only when the scan of the
    /// tree was complete): the saved file's path, or why there is none (`Ok(None)`: no folder
    /// to save into).
    pub fn finish(
        mut self,
        skipped: &[Skip],
        root_error: Option<&(ErrorCode, String)>,
    ) -> Result<Option<std::path::PathBuf>, String> {
        if let Some(mut w) = self.w.take() {
            let r = skipped
                .iter()
                .try_for_each(|s| w.skipped(s))
                .and_then(|()| match root_error {
                    Some((code, msg)) => w.root_error(*code, msg),
                    None => Ok(()),
                })
                .and_then(|()| w.finish());
            if let Err(e) = r {
                self.fail(e);
            }
        }
        match self.warning {
            Some(w) => Err(w),
            None => Ok(self.path),
        }
    }
}
