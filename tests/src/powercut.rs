//! A file system that loses what a power cut loses: a FUSE layer over a backing directory
//! that holds every file's written data in memory until that file is fsynced (or
//! fdatasynced), and drops all of it on command ([`PowerCut::cut`]).
//!
//! It behaves as LazyFS does in the measurements of shared/reference/build-facts.md
//! ("Power cuts"), which is what a drive's volatile state does when the power goes:
//! - data written and then fsynced is kept;
//! - data written without fsync is gone after a cut: a new file survives empty, an
//!   appended file survives at its last synced length;
//! - creations, removals, renames and directory changes reach the backing directory at once
//!   (a file written without fsync and renamed over another survives renamed, but empty);
//! - a truncate (or `O_TRUNC`) is data: it too waits for the file's fsync.
//!
//! What it does not model: torn sector writes within one fsync, and the reordering of
//! metadata against data (LazyFS does neither by default).
//!
//! The kernel must not keep its own copy of the data, or a cut would not show: every file is
//! opened with `FOPEN_DIRECT_IO` and attributes and entries are never cached (TTL 0).
//! Memory: each file written since the layer started is held whole (fine for a test data
//! dir of tens of megabytes; a bound is checked, see [`MAX_HELD`]).

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Most bytes held in memory for all files together; past it, writes fail with ENOSPC
/// (a test that writes this much without fsync is a test to look at).
pub const MAX_HELD: usize = 2 << 30;

const TTL: Duration = Duration::ZERO;
const ROOT: u64 = 1;

/// A file's content as the writer sees it, and whether it differs from the backing file.
struct Held {
    data: Vec<u8>,
    /// Bytes from here on may differ from the backing file (None: all synced).
    dirty_from: Option<usize>,
    /// The backing file may be longer than `data` (a truncate not synced yet).
    shrunk: bool,
}

#[derive(Default)]
struct Inner {
    /// inode → path relative to the backing directory ("" is the root).
    paths: HashMap<u64, PathBuf>,
    inodes: HashMap<PathBuf, u64>,
    next_ino: u64,
    held: HashMap<u64, Held>,
    handles: HashMap<u64, u64>,
    next_fh: u64,
    stats: Stats,
}

/// What the layer has done since it started.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub syncs: u64,
    pub synced_bytes: u64,
    pub cuts: u64,
    pub dropped_files: u64,
    pub dropped_bytes: u64,
}

/// The layer: a backing directory and what is written to it but not yet synced.
#[derive(Clone)]
pub struct PowerCut {
    backing: PathBuf,
    inner: Arc<Mutex<Inner>>,
}

impl PowerCut {
    pub fn new(backing: &Path) -> io::Result<PowerCut> {
        let backing = fs::canonicalize(backing)?;
        let mut inner = Inner { next_ino: ROOT + 1, next_fh: 1, ..Inner::default() };
        inner.paths.insert(ROOT, PathBuf::new());
        inner.inodes.insert(PathBuf::new(), ROOT);
        Ok(PowerCut { backing, inner: Arc::new(Mutex::new(inner)) })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The power goes: every byte not synced is dropped. Returns (files, bytes) dropped.
    pub fn cut(&self) -> (u64, u64) {
        let mut g = self.lock();
        let mut files = 0;
        let mut bytes = 0;
        g.held.retain(|_, h| match h.dirty_from {
            Some(from) => {
                files += 1;
                bytes += h.data.len().saturating_sub(from) as u64;
                false
            }
            None if h.shrunk => {
                files += 1;
                false
            }
            None => true,
        });
        g.stats.cuts += 1;
        g.stats.dropped_files += files;
        g.stats.dropped_bytes += bytes;
        (files, bytes)
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats
    }

    fn real(&self, rel: &Path) -> PathBuf {
        self.backing.join(rel)
    }
}

fn errno(e: io::Error) -> Errno {
    Errno::from(e)
}

fn kind_of(m: &fs::Metadata) -> FileType {
    let t = m.file_type();
    if t.is_dir() {
        FileType::Directory
    } else if t.is_symlink() {
        FileType::Symlink
    } else {
        FileType::RegularFile
    }
}

fn time(secs: i64, nanos: i64) -> SystemTime {
    if secs >= 0 { UNIX_EPOCH + Duration::new(secs as u64, nanos.clamp(0, 999_999_999) as u32) } else { UNIX_EPOCH }
}

impl Inner {
    fn path(&self, ino: u64) -> Result<PathBuf, Errno> {
        self.paths.get(&ino).cloned().ok_or(Errno::ENOENT)
    }

    fn ino_for(&mut self, rel: &Path) -> u64 {
        if let Some(i) = self.inodes.get(rel) {
            return *i;
        }
        let i = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(rel.to_path_buf(), i);
        self.paths.insert(i, rel.to_path_buf());
        i
    }

    fn forget_path(&mut self, rel: &Path) {
        if let Some(i) = self.inodes.remove(rel) {
            self.paths.remove(&i);
        }
    }

    /// A path and everything under it moves (a rename).
    fn move_path(&mut self, from: &Path, to: &Path) {
        let moved: Vec<(PathBuf, u64)> =
            self.inodes.iter().filter(|(p, _)| p.starts_with(from)).map(|(p, i)| (p.clone(), *i)).collect();
        for (p, i) in moved {
            self.inodes.remove(&p);
            let rest = p.strip_prefix(from).map(Path::to_path_buf).unwrap_or_default();
            let np = if rest.as_os_str().is_empty() { to.to_path_buf() } else { to.join(rest) };
            self.inodes.insert(np.clone(), i);
            self.paths.insert(i, np);
        }
    }

    fn held_bytes(&self) -> usize {
        self.held.values().map(|h| h.data.len()).sum()
    }
}

impl PowerCut {
    fn attr(&self, g: &Inner, ino: u64, m: &fs::Metadata) -> FileAttr {
        let size = g.held.get(&ino).map_or(m.len(), |h| h.data.len() as u64);
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: time(m.atime(), m.atime_nsec()),
            mtime: time(m.mtime(), m.mtime_nsec()),
            ctime: time(m.ctime(), m.ctime_nsec()),
            crtime: UNIX_EPOCH,
            kind: kind_of(m),
            perm: (m.mode() & 0o7777) as u16,
            nlink: m.nlink() as u32,
            uid: m.uid(),
            gid: m.gid(),
            rdev: m.rdev() as u32,
            blksize: 4096,
            flags: 0,
        }
    }

    fn entry(&self, rel: &Path, reply: ReplyEntry) {
        match fs::symlink_metadata(self.real(rel)) {
            Ok(m) => {
                let mut g = self.lock();
                let ino = g.ino_for(rel);
                let a = self.attr(&g, ino, &m);
                reply.entry(&TTL, &a, Generation(0));
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    /// The file's content in memory, loaded from the backing file on first use.
    fn load<'a>(&self, g: &'a mut Inner, ino: u64) -> Result<&'a mut Held, Errno> {
        if !g.held.contains_key(&ino) {
            let rel = g.path(ino)?;
            let data = match fs::read(self.real(&rel)) {
                Ok(d) => d,
                Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(errno(e)),
            };
            g.held.insert(ino, Held { data, dirty_from: None, shrunk: false });
        }
        g.held.get_mut(&ino).ok_or(Errno::EIO)
    }

    fn set_len(&self, g: &mut Inner, ino: u64, len: u64) -> Result<(), Errno> {
        let h = self.load(g, ino)?;
        let len = len as usize;
        if len < h.data.len() {
            h.shrunk = true;
        }
        let from = h.data.len().min(len);
        h.data.resize(len, 0);
        h.dirty_from = Some(h.dirty_from.map_or(from, |d| d.min(from)));
        Ok(())
    }

    /// fsync: what the writer wrote reaches the backing file (and its disk).
    fn sync(&self, g: &mut Inner, ino: u64) -> Result<(), Errno> {
        let Some(rel) = g.paths.get(&ino).cloned() else { return Ok(()) };
        let Some(h) = g.held.get_mut(&ino) else { return Ok(()) };
        if h.dirty_from.is_none() && !h.shrunk {
            return Ok(());
        }
        let from = h.dirty_from.unwrap_or(h.data.len()).min(h.data.len());
        let f = OpenOptions::new().write(true).open(self.real(&rel)).map_err(errno)?;
        f.write_all_at(&h.data[from..], from as u64).map_err(errno)?;
        f.set_len(h.data.len() as u64).map_err(errno)?;
        f.sync_data().map_err(errno)?;
        let n = (h.data.len() - from) as u64;
        h.dirty_from = None;
        h.shrunk = false;
        g.stats.syncs += 1;
        g.stats.synced_bytes += n;
        Ok(())
    }
}

impl Filesystem for PowerCut {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let rel = match self.lock().path(parent.0) {
            Ok(p) => p.join(name),
            Err(e) => return reply.error(e),
        };
        self.entry(&rel, reply);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let g = self.lock();
        let rel = match g.path(ino.0) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        match fs::symlink_metadata(self.real(&rel)) {
            Ok(m) => reply.attr(&TTL, &self.attr(&g, ino.0, &m)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut g = self.lock();
        let rel = match g.path(ino.0) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        if let Some(mode) = mode
            && let Err(e) = fs::set_permissions(self.real(&rel), fs::Permissions::from_mode(mode & 0o7777))
        {
            return reply.error(errno(e));
        }
        if let Some(len) = size
            && let Err(e) = self.set_len(&mut g, ino.0, len)
        {
            return reply.error(e);
        }
        match fs::symlink_metadata(self.real(&rel)) {
            Ok(m) => reply.attr(&TTL, &self.attr(&g, ino.0, &m)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let rel = match self.lock().path(ino.0) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        match fs::read_link(self.real(&rel)) {
            Ok(t) => reply.data(t.as_os_str().as_encoded_bytes()),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn mkdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let rel = match self.lock().path(parent.0) {
            Ok(p) => p.join(name),
            Err(e) => return reply.error(e),
        };
        if let Err(e) = fs::create_dir(self.real(&rel)) {
            return reply.error(errno(e));
        }
        let _ = fs::set_permissions(self.real(&rel), fs::Permissions::from_mode(mode & !umask & 0o7777));
        self.entry(&rel, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut g = self.lock();
        let rel = match g.path(parent.0) {
            Ok(p) => p.join(name),
            Err(e) => return reply.error(e),
        };
        match fs::remove_file(self.real(&rel)) {
            Ok(()) => {
                g.forget_path(&rel);
                reply.ok()
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut g = self.lock();
        let rel = match g.path(parent.0) {
            Ok(p) => p.join(name),
            Err(e) => return reply.error(e),
        };
        match fs::remove_dir(self.real(&rel)) {
            Ok(()) => {
                g.forget_path(&rel);
                reply.ok()
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn symlink(&self, _req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        let rel = match self.lock().path(parent.0) {
            Ok(p) => p.join(link_name),
            Err(e) => return reply.error(e),
        };
        if let Err(e) = std::os::unix::fs::symlink(target, self.real(&rel)) {
            return reply.error(errno(e));
        }
        self.entry(&rel, reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.bits() != 0 {
            return reply.error(Errno::EINVAL);
        }
        let mut g = self.lock();
        let (from, to) = match (g.path(parent.0), g.path(newparent.0)) {
            (Ok(a), Ok(b)) => (a.join(name), b.join(newname)),
            (Err(e), _) | (_, Err(e)) => return reply.error(e),
        };
        match fs::rename(self.real(&from), self.real(&to)) {
            Ok(()) => {
                // The file renamed over is gone; its held data with it.
                if let Some(old) = g.inodes.get(&to).copied() {
                    g.held.remove(&old);
                    g.forget_path(&to);
                }
                g.move_path(&from, &to);
                reply.ok()
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mut g = self.lock();
        if flags.0 & libc::O_TRUNC != 0
            && let Err(e) = self.set_len(&mut g, ino.0, 0)
        {
            return reply.error(e);
        }
        let fh = g.next_fh;
        g.next_fh += 1;
        g.handles.insert(fh, ino.0);
        reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO);
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut g = self.lock();
        let rel = match g.path(parent.0) {
            Ok(p) => p.join(name),
            Err(e) => return reply.error(e),
        };
        let mut o = OpenOptions::new();
        o.write(true).create(true);
        if flags & libc::O_EXCL != 0 {
            o.create_new(true);
        }
        if let Err(e) = o.open(self.real(&rel)) {
            return reply.error(errno(e));
        }
        let _ = fs::set_permissions(self.real(&rel), fs::Permissions::from_mode(mode & !umask & 0o7777));
        let ino = g.ino_for(&rel);
        if flags & libc::O_TRUNC != 0
            && let Err(e) = self.set_len(&mut g, ino, 0)
        {
            return reply.error(e);
        }
        let m = match fs::symlink_metadata(self.real(&rel)) {
            Ok(m) => m,
            Err(e) => return reply.error(errno(e)),
        };
        let a = self.attr(&g, ino, &m);
        let fh = g.next_fh;
        g.next_fh += 1;
        g.handles.insert(fh, ino);
        reply.created(&TTL, &a, Generation(0), FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let g = self.lock();
        if let Some(h) = g.held.get(&ino.0) {
            let start = (offset as usize).min(h.data.len());
            let end = start.saturating_add(size as usize).min(h.data.len());
            return reply.data(&h.data[start..end]);
        }
        let rel = match g.path(ino.0) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let f = match File::open(self.real(&rel)) {
            Ok(f) => f,
            Err(e) => return reply.error(errno(e)),
        };
        let mut buf = vec![0u8; size as usize];
        let mut got = 0;
        while got < buf.len() {
            match f.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return reply.error(errno(e)),
            }
        }
        reply.data(&buf[..got]);
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut g = self.lock();
        if g.held_bytes() + data.len() > MAX_HELD {
            return reply.error(Errno::ENOSPC);
        }
        let h = match self.load(&mut g, ino.0) {
            Ok(h) => h,
            Err(e) => return reply.error(e),
        };
        let at = offset as usize;
        let end = at + data.len();
        if h.data.len() < end {
            h.data.resize(end, 0);
        }
        h.data[at..end].copy_from_slice(data);
        h.dirty_from = Some(h.dirty_from.map_or(at, |d| d.min(at)));
        reply.written(data.len() as u32);
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        // close(2) is not a sync.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.lock().handles.remove(&fh.0);
        reply.ok();
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let mut g = self.lock();
        match self.sync(&mut g, ino.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::empty());
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let mut g = self.lock();
        let rel = match g.path(ino.0) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let rd = match fs::read_dir(self.real(&rel)) {
            Ok(rd) => rd,
            Err(e) => return reply.error(errno(e)),
        };
        let mut entries: Vec<(u64, FileType, std::ffi::OsString)> =
            vec![(ino.0, FileType::Directory, ".".into()), (ROOT, FileType::Directory, "..".into())];
        let mut names: Vec<(std::ffi::OsString, FileType)> = rd
            .flatten()
            .map(|e| {
                let k = e.file_type().map_or(FileType::RegularFile, |t| {
                    if t.is_dir() {
                        FileType::Directory
                    } else if t.is_symlink() {
                        FileType::Symlink
                    } else {
                        FileType::RegularFile
                    }
                });
                (e.file_name(), k)
            })
            .collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        for (n, k) in names {
            let i = g.ino_for(&rel.join(&n));
            entries.push((i, k, n));
        }
        for (i, (ino, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(ino), (i + 1) as u64, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        // Directory changes reach the backing directory at once.
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match nix::sys::statvfs::statvfs(&self.backing) {
            Ok(s) => reply.statfs(
                s.blocks(),
                s.blocks_free(),
                s.blocks_available(),
                s.files(),
                s.files_free(),
                s.fragment_size() as u32,
                s.name_max() as u32,
                s.fragment_size() as u32,
            ),
            Err(e) => reply.error(Errno::from_i32(e as i32)),
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        match self.lock().path(ino.0) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}
