//! gzip compression of a rotated file that survives being killed at any point:
//! `X` → `X.gz.tmp` (fsync) → rename to `X.gz` → unlink `X`. A stale `.gz.tmp` is garbage; `X`
//! beside a complete `X.gz` is a leftover. Both are cleaned up by the next run.

use crate::names::with_suffix;
use kyb_core::dir::DirHandle;
use kyb_core::gzip::{Header, gzip};
use rustix::fs::{OFlags, Timespec, Timestamps};
use std::ffi::OsStr;
use std::io;

/// Bytes in and out of one compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Compressed {
    /// Size of the source.
    pub(crate) in_bytes: u64,
    /// Size of the `.gz`.
    pub(crate) out_bytes: u64,
}

/// Compresses `name` in `dir` to `name.gz` at `level` (0-9), keeping owner, mode and mtime, then
/// removes `name`. The source must be a regular file with one link.
pub(crate) fn compress(dir: &DirHandle, name: &OsStr, level: u32) -> io::Result<Compressed> {
    let mut src = dir.open_file(name, OFlags::RDONLY)?;
    let st = rustix::fs::fstat(&src)?;
    if kyb_core::dir::kind(&st) != rustix::fs::FileType::RegularFile || st.st_nlink != 1 {
        return Err(io::Error::other("not a regular file with a single link"));
    }
    let tmp = with_suffix(name, ".gz.tmp");
    let gz = with_suffix(name, ".gz");
    let out = dir.create_new(&tmp, 0o600)?;
    let result = (|| {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let header = Header { name: name.as_encoded_bytes(), mtime: u32::try_from(st.st_mtime).unwrap_or(0) };
        let mut writer = io::BufWriter::with_capacity(1 << 20, out);
        let (in_bytes, _) = gzip(&mut src, &mut writer, level, threads, &header)?;
        let out = writer.into_inner().map_err(|e| e.into_error())?;
        // A writer this run could not see in /proc (another user's, another PID namespace)
        // may still be appending: then the source must stay.
        let now = rustix::fs::fstat(&src)?;
        if now.st_size as u64 != in_bytes
            || (now.st_mtime, now.st_mtime_nsec) != (st.st_mtime, st.st_mtime_nsec)
        {
            return Err(io::Error::other(
                "it changed while being compressed (a writer still has it open); kept as it is",
            ));
        }
        let mine = rustix::fs::fstat(&out)?;
        if (mine.st_uid, mine.st_gid) != (st.st_uid, st.st_gid) {
            let (uid, gid) = (rustix::fs::Uid::from_raw(st.st_uid), rustix::fs::Gid::from_raw(st.st_gid));
            rustix::fs::fchown(&out, Some(uid), Some(gid))?;
        }
        rustix::fs::fchmod(&out, rustix::fs::Mode::from_raw_mode(st.st_mode & 0o7777))?;
        let times = Timestamps {
            last_access: Timespec { tv_sec: st.st_atime as _, tv_nsec: st.st_atime_nsec as _ },
            last_modification: Timespec { tv_sec: st.st_mtime as _, tv_nsec: st.st_mtime_nsec as _ },
        };
        rustix::fs::futimens(&out, &times)?;
        out.sync_all()?;
        let out_bytes = out.metadata()?.len();
        Ok(Compressed { in_bytes, out_bytes })
    })();
    let done = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = dir.unlink(&tmp);
            return Err(e);
        }
    };
    if let Err(e) = dir.rename_noreplace(&tmp, &gz) {
        let _ = dir.unlink(&tmp);
        return Err(e);
    }
    dir.sync()?;
    dir.unlink(name)?;
    dir.sync()?;
    Ok(done)
}

/// Whether `gz_name` is the finished compression of a `plain_bytes`-long file: a regular file with
/// one link whose gzip trailer records that length (mod 2^32). Anything else (a link, a
/// directory, a truncated or foreign file) is not proof, and the plain file must stay.
pub(crate) fn completes(dir: &DirHandle, gz_name: &OsStr, plain_bytes: u64) -> bool {
    let Ok(file) = dir.open_file(gz_name, OFlags::RDONLY) else { return false };
    let Ok(st) = rustix::fs::fstat(&file) else { return false };
    if kyb_core::dir::kind(&st) != rustix::fs::FileType::RegularFile || st.st_nlink != 1 || st.st_size < 18 {
        return false;
    }
    let mut trailer = [0u8; 4];
    match rustix::io::pread(&file, &mut trailer, st.st_size as u64 - 4) {
        Ok(4) => u32::from_le_bytes(trailer) == plain_bytes as u32,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn round_trip_keeps_mtime_and_mode() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("app.log-20261126-020000");
        let text: String = (0..10_000).map(|i| format!("{{\"n\":{i},\"msg\":\"hello\"}}\n")).collect();
        std::fs::write(&src, &text).unwrap();
        std::fs::set_permissions(&src, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
        let mtime = std::fs::metadata(&src).unwrap().mtime();
        let dir = DirHandle::open(tmp.path()).unwrap();
        let c = compress(&dir, OsStr::new("app.log-20261126-020000"), 6).unwrap();
        assert_eq!(c.in_bytes, text.len() as u64);
        assert!(c.out_bytes < c.in_bytes / 4);
        assert!(!src.exists());
        let gz = tmp.path().join("app.log-20261126-020000.gz");
        let meta = std::fs::metadata(&gz).unwrap();
        assert_eq!((meta.mtime(), meta.mode() & 0o777), (mtime, 0o640));
        let mut back = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&gz).unwrap()).read_to_string(&mut back).unwrap();
        assert_eq!(back, text);
    }

    #[test]
    fn refuses_hard_links_and_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::write(&outside, "secret").unwrap();
        std::fs::hard_link(&outside, tmp.path().join("hard")).unwrap();
        std::os::unix::fs::symlink(&outside, tmp.path().join("soft")).unwrap();
        let dir = DirHandle::open(tmp.path()).unwrap();
        assert!(compress(&dir, OsStr::new("hard"), 6).is_err());
        assert!(compress(&dir, OsStr::new("soft"), 6).is_err());
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "secret");
        assert!(!tmp.path().join("hard.gz").exists() && !tmp.path().join("hard.gz.tmp").exists());
    }
}
