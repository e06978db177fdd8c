//! gzip on every core, the way pigz does it: the input is cut into 1 MiB chunks, each deflated
//! on its own with the previous chunk's last 32 KiB as its dictionary and ended with a sync
//! flush, and the pieces are written in order as one ordinary gzip member that any gunzip reads.

use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};

const CHUNK_BYTES: usize = 1 << 20;
const DICT_BYTES: usize = 32 * 1024;

/// gzip header fields.
#[derive(Debug, Clone, Copy)]
pub struct Header<'a> {
    /// Original file name, stored as gzip does.
    pub name: &'a [u8],
    /// Modification time, seconds since the epoch.
    pub mtime: u32,
}

struct Job {
    seq: u64,
    data: Arc<Vec<u8>>,
    dict: Option<Arc<Vec<u8>>>,
    last: bool,
}

/// Compresses all of `input` into `output` at `level` with `threads` workers. Returns bytes in
/// and bytes out.
pub fn gzip<R: Read, W: Write + Send>(
    mut input: R,
    output: W,
    level: u32,
    threads: usize,
    header: &Header<'_>,
) -> io::Result<(u64, u64)> {
    let threads = threads.max(1);
    let (job_tx, job_rx) = sync_channel::<Job>(threads * 2);
    // Shared by the workers only: when they all stop (the writer failed), the receiver goes with
    // them and the reader's next send fails instead of blocking forever.
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (done_tx, done_rx) = sync_channel::<(u64, io::Result<Vec<u8>>)>(threads * 2);
    let mut crc = Crc::new();
    let mut in_bytes = 0u64;
    let (output, mut out_bytes, read_result) = std::thread::scope(|s| {
        for _ in 0..threads {
            let (rx, tx) = (Arc::clone(&job_rx), done_tx.clone());
            s.spawn(move || worker(&rx, &tx, level));
        }
        drop(done_tx);
        drop(job_rx);
        let writer = s.spawn(move || write_in_order(output, done_rx, header));
        let read_result = (|| -> io::Result<()> {
            let mut seq = 0;
            let mut current = read_chunk(&mut input)?;
            let mut dict: Option<Arc<Vec<u8>>> = None;
            loop {
                crc.update(&current);
                in_bytes += current.len() as u64;
                let next = if current.len() < CHUNK_BYTES { Vec::new() } else { read_chunk(&mut input)? };
                let last = next.is_empty();
                let data = Arc::new(current);
                let job = Job { seq, data: Arc::clone(&data), dict: dict.take(), last };
                // A closed channel means the writer failed; its error is the one to report.
                if job_tx.send(job).is_err() || last {
                    break;
                }
                dict = Some(data);
                current = next;
                seq += 1;
            }
            Ok(())
        })();
        drop(job_tx);
        let (output, out_bytes) = match writer.join() {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => return (None, 0, Err(e)),
            Err(_) => return (None, 0, Err(io::Error::other("gzip writer thread panicked"))),
        };
        (Some(output), out_bytes, read_result)
    });
    read_result?;
    let mut output = output.ok_or_else(|| io::Error::other("gzip output lost"))?;
    let mut trailer = [0u8; 8];
    trailer[..4].copy_from_slice(&crc.sum().to_le_bytes());
    trailer[4..].copy_from_slice(&(in_bytes as u32).to_le_bytes());
    output.write_all(&trailer)?;
    output.flush()?;
    out_bytes += 8;
    Ok((in_bytes, out_bytes))
}

fn read_chunk<R: Read>(input: &mut R) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; CHUNK_BYTES];
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

fn worker(
    jobs: &Mutex<Receiver<Job>>,
    done: &std::sync::mpsc::SyncSender<(u64, io::Result<Vec<u8>>)>,
    level: u32,
) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let dict = job.dict.as_deref().map(|d| &d[d.len().saturating_sub(DICT_BYTES)..]);
        if done.send((job.seq, deflate(&job.data, dict, level, job.last))).is_err() {
            return;
        }
    }
}

/// Raw deflate of one chunk: a sync flush (byte-aligned, not final) unless it is the last one.
fn deflate(input: &[u8], dict: Option<&[u8]>, level: u32, last: bool) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(Compression::new(level), false);
    if let Some(d) = dict {
        c.set_dictionary(d).map_err(io::Error::other)?;
    }
    let flush = if last { FlushCompress::Finish } else { FlushCompress::Sync };
    let mut out = Vec::with_capacity(input.len() / 2 + 4096);
    loop {
        if out.capacity() - out.len() < 4096 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let consumed = usize::try_from(c.total_in()).unwrap_or(usize::MAX).min(input.len());
        let status = c.compress_vec(&input[consumed..], &mut out, flush).map_err(io::Error::other)?;
        let all_in = c.total_in() as usize == input.len();
        match status {
            Status::StreamEnd => return Ok(out),
            // The flush is complete once deflate stopped with room to spare.
            Status::Ok | Status::BufError if !last && all_in && out.len() < out.capacity() => return Ok(out),
            Status::Ok | Status::BufError => {}
        }
    }
}

fn write_in_order<W: Write>(
    mut output: W,
    done: Receiver<(u64, io::Result<Vec<u8>>)>,
    header: &Header<'_>,
) -> io::Result<(W, u64)> {
    let mut head = vec![0x1f, 0x8b, 8, if header.name.is_empty() { 0 } else { 0x08 }];
    head.extend_from_slice(&header.mtime.to_le_bytes());
    head.extend_from_slice(&[0, 3]);
    if !header.name.is_empty() {
        head.extend(header.name.iter().filter(|b| **b != 0));
        head.push(0);
    }
    output.write_all(&head)?;
    let mut written = head.len() as u64;
    let mut pending = BTreeMap::new();
    let mut next = 0u64;
    for (seq, piece) in done {
        pending.insert(seq, piece);
        while let Some(piece) = pending.remove(&next) {
            let piece = piece?;
            output.write_all(&piece)?;
            written += piece.len() as u64;
            next += 1;
        }
    }
    Ok((output, written))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(data: &[u8], threads: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let header = Header { name: b"app.log-20261126-020000", mtime: 1_795_658_400 };
        let (i, o) = gzip(data, &mut out, 6, threads, &header).unwrap();
        assert_eq!((i, o), (data.len() as u64, out.len() as u64));
        // One member: a plain (not multi-member) decoder must read it all and check the CRC.
        let mut back = Vec::new();
        let mut dec = flate2::read::GzDecoder::new(&out[..]);
        dec.read_to_end(&mut back).unwrap();
        assert_eq!(dec.header().unwrap().filename(), Some(&b"app.log-20261126-020000"[..]));
        assert_eq!(dec.header().unwrap().mtime(), 1_795_658_400);
        back
    }

    fn log_lines(bytes: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes + 200);
        let mut n = 0u64;
        while out.len() < bytes {
            out.extend_from_slice(
                format!("{{\"n\":{n},\"path\":\"/api/v1/companies/{}\",\"ms\":{}}}\n", n * 31 % 977, n % 89)
                    .as_bytes(),
            );
            n += 1;
        }
        out
    }

    #[test]
    fn round_trips_at_every_size_and_thread_count() {
        for size in [0, 1, 1000, CHUNK_BYTES, CHUNK_BYTES + 1, 3 * CHUNK_BYTES + 12_345] {
            let data = log_lines(size);
            for threads in [1, 2, 4] {
                assert_eq!(roundtrip(&data, threads), data, "size {size}, {threads} threads");
            }
        }
    }

    /// A writer that fails after a few bytes, as a full disk does.
    struct FullDisk(usize);

    impl Write for FullDisk {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::new(io::ErrorKind::StorageFull, "no space left on device"));
            }
            let n = buf.len().min(self.0);
            self.0 -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failing_writer_ends_the_run_with_its_error() {
        let data = log_lines(20 * CHUNK_BYTES);
        let err = gzip(&data[..], FullDisk(100_000), 6, 2, &Header { name: b"", mtime: 0 }).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
    }

    #[test]
    fn the_dictionary_keeps_the_ratio_close_to_one_stream() {
        let data = log_lines(4 * CHUNK_BYTES);
        let mut parallel = Vec::new();
        gzip(&data[..], &mut parallel, 6, 2, &Header { name: b"", mtime: 0 }).unwrap();
        let mut single = flate2::write::GzEncoder::new(Vec::new(), Compression::new(6));
        single.write_all(&data).unwrap();
        let single = single.finish().unwrap();
        let ratio = parallel.len() as f64 / single.len() as f64;
        assert!(ratio < 1.02, "parallel output is {ratio:.3}x the single-stream size");
    }
}
