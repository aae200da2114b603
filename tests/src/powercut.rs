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
//! Memory: only what is written and not yet synced is held, as extents over the backing
//! file (bounded by [`MAX_HELD`]); a sync writes them out and forgets them.

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

/// What a file holds beyond its backing file: writes not synced yet, and its length.
struct Held {
    /// Non-overlapping extents by offset.
    extents: std::collections::BTreeMap<u64, Vec<u8>>,
    /// The file's length as the writer sees it.
    len: u64,
    /// The backing file's bytes past this offset are not the file's (a truncate not synced):
    /// they read as zeros up to `len`.
    base_len: u64,
}

impl Held {
    fn bytes(&self) -> usize {
        self.extents.values().map(Vec::len).sum()
    }

    /// Writes `data` at `at`, over whatever extents it covers.
    fn write(&mut self, at: u64, data: &[u8]) {
        let end = at + data.len() as u64;
        let mut merged = data.to_vec();
        let mut start = at;
        // Extents that touch or overlap [at, end) are merged into one.
        let touching: Vec<u64> =
            self.extents.range(..=end).filter(|(o, v)| **o + v.len() as u64 >= at).map(|(o, _)| *o).collect();
        for o in touching {
            let Some(v) = self.extents.remove(&o) else { continue };
            let v_end = o + v.len() as u64;
            if o < start {
                let mut head = v[..(start - o) as usize].to_vec();
                head.extend_from_slice(&merged);
                merged = head;
                start = o;
            }
            let m_end = start + merged.len() as u64;
            if v_end > m_end {
                merged.extend_from_slice(&v[(m_end - o) as usize..]);
            }
        }
        self.extents.insert(start, merged);
        self.len = self.len.max(end);
    }

    /// Truncates (or extends with zeros) to `len`.
    fn set_len(&mut self, len: u64) {
        if len < self.len {
            self.extents.retain(|o, _| *o < len);
            if let Some((o, v)) = self.extents.iter_mut().next_back()
                && *o + v.len() as u64 > len
            {
                v.truncate((len - *o) as usize);
            }
            self.base_len = self.base_len.min(len);
        }
        self.len = len;
    }

    /// Lays the extents over `buf`, which holds the file's bytes from `off`.
    fn overlay(&self, off: u64, buf: &mut [u8]) {
        let end = off + buf.len() as u64;
        for (o, v) in self.extents.range(..end) {
            let v_end = *o + v.len() as u64;
            if v_end <= off {
                continue;
            }
            let from = off.max(*o);
            let to = end.min(v_end);
            buf[(from - off) as usize..(to - off) as usize].copy_from_slice(&v[(from - o) as usize..(to - o) as usize]);
        }
    }
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
        let mut files = 0u64;
        let mut bytes = 0u64;
        for (_, h) in g.held.drain() {
            files += 1;
            bytes += h.bytes() as u64;
        }
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
        self.held.values().map(Held::bytes).sum()
    }
}

impl PowerCut {
    fn attr(&self, g: &Inner, ino: u64, m: &fs::Metadata) -> FileAttr {
        let size = g.held.get(&ino).map_or(m.len(), |h| h.len);
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

    /// What the file holds beyond its backing file (made on its first unsynced change).
    fn load<'a>(&self, g: &'a mut Inner, ino: u64) -> Result<&'a mut Held, Errno> {
        if !g.held.contains_key(&ino) {
            let rel = g.path(ino)?;
            let len = match fs::metadata(self.real(&rel)) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
                Err(e) => return Err(errno(e)),
            };
            g.held.insert(ino, Held { extents: Default::default(), len, base_len: len });
        }
        g.held.get_mut(&ino).ok_or(Errno::EIO)
    }

    fn set_len(&self, g: &mut Inner, ino: u64, len: u64) -> Result<(), Errno> {
        self.load(g, ino)?.set_len(len);
        Ok(())
    }

    /// fsync: what the writer wrote reaches the backing file (and its disk), and is
    /// forgotten here.
    fn sync(&self, g: &mut Inner, ino: u64) -> Result<(), Errno> {
        let Some(rel) = g.paths.get(&ino).cloned() else {
            g.held.remove(&ino);
            return Ok(());
        };
        let Some(h) = g.held.get(&ino) else { return Ok(()) };
        let f = OpenOptions::new().write(true).open(self.real(&rel)).map_err(errno)?;
        if h.base_len < h.len {
            // A truncate not synced: the bytes past it were cut, whatever the disk holds.
            f.set_len(h.base_len).map_err(errno)?;
        }
        let mut n = 0u64;
        for (o, v) in &h.extents {
            f.write_all_at(v, *o).map_err(errno)?;
            n += v.len() as u64;
        }
        f.set_len(h.len).map_err(errno)?;
        f.sync_data().map_err(errno)?;
        g.held.remove(&ino);
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
                if let Some(i) = g.inodes.get(&rel).copied() {
                    g.held.remove(&i);
                }
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
        let rel = match g.path(ino.0) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let held = g.held.get(&ino.0);
        let len = match held {
            Some(h) => h.len,
            None => match fs::metadata(self.real(&rel)) {
                Ok(m) => m.len(),
                Err(e) => return reply.error(errno(e)),
            },
        };
        if offset >= len {
            return reply.data(&[]);
        }
        let want = (size as u64).min(len - offset) as usize;
        let mut buf = vec![0u8; want];
        // From the backing file, as far as it is still the file's.
        let base = held.map_or(len, |h| h.base_len);
        if offset < base {
            let f = match File::open(self.real(&rel)) {
                Ok(f) => f,
                Err(e) => return reply.error(errno(e)),
            };
            let upto = ((base - offset) as usize).min(want);
            let mut got = 0;
            while got < upto {
                match f.read_at(&mut buf[got..upto], offset + got as u64) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return reply.error(errno(e)),
                }
            }
        }
        if let Some(h) = held {
            h.overlay(offset, &mut buf);
        }
        reply.data(&buf);
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
        match self.load(&mut g, ino.0) {
            Ok(h) => h.write(offset, data),
            Err(e) => return reply.error(e),
        }
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

#[cfg(test)]
mod tests {
    use super::Held;

    /// Extents against a plain byte vector: random writes and truncates over a base read
    /// the same through the overlay.
    #[test]
    fn extents_read_as_the_bytes_written() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n.max(1)
        };
        for _ in 0..200 {
            let base: Vec<u8> = (0..next(64)).map(|i| i as u8).collect();
            let mut model = base.clone();
            let mut h = Held { extents: Default::default(), len: base.len() as u64, base_len: base.len() as u64 };
            for _ in 0..20 {
                if next(5) == 0 {
                    let len = next(80);
                    model.resize(len as usize, 0);
                    h.set_len(len);
                } else {
                    let at = next(80);
                    let data: Vec<u8> = (0..1 + next(20)).map(|_| 100 + next(100) as u8).collect();
                    let end = at as usize + data.len();
                    if model.len() < end {
                        model.resize(end, 0);
                    }
                    model[at as usize..end].copy_from_slice(&data);
                    h.write(at, &data);
                }
                assert_eq!(h.len as usize, model.len());
                let mut buf = vec![0u8; model.len()];
                let keep = (h.base_len as usize).min(base.len()).min(buf.len());
                buf[..keep].copy_from_slice(&base[..keep]);
                h.overlay(0, &mut buf);
                assert_eq!(buf, model);
                let spans: Vec<(u64, u64)> = h.extents.iter().map(|(o, v)| (*o, *o + v.len() as u64)).collect();
                assert!(spans.windows(2).all(|w| w[0].1 < w[1].0), "extents stay apart: {spans:?}");
            }
        }
    }
}
