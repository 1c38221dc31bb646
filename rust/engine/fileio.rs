//! Positioned reads (`pread`) on every platform: the readers share one `File` between threads,
//! so a read never moves a shared cursor it depends on.

use std::fs::File;
use std::io;

/// Fill `buf` from `file` starting at byte `offset` (an `UnexpectedEof` error if the file ends
/// first).
#[cfg(unix)]
pub fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

/// Fill `buf` from `file` starting at byte `offset` (an `UnexpectedEof` error if the file ends
/// first). Windows has no `pread`: `seek_read` reads at the offset it is given (it also moves
/// the file's cursor, which no reader here uses), so concurrent calls stay correct.
#[cfg(windows)]
pub fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "failed to fill whole buffer",
                ))
            }
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
