//! Opening a log file for reading, plain or gzip-compressed (logrotate's and
//! exicyclog's `mainlog.N.gz`), recognised by its magic bytes rather than
//! its name, and checking that it still holds what was read before.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use flate2::bufread::MultiGzDecoder;

/// Read-buffer size: large enough that framing rarely crosses a refill.
const READ_BUFFER_BYTES: usize = 256 * 1024;

/// A log file's content as a buffered byte stream.
pub struct LogInput {
    reader: Box<dyn BufRead + Send>,
    /// Whether offsets refer to decompressed bytes.
    pub compressed: bool,
}

/// Whether a file still holds, just before an offset, the bytes read there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerCheck {
    /// The bytes match (or there was nothing to compare).
    Matches,
    /// The file is shorter than the offset: truncated, or another file.
    TooShort,
    /// Different bytes: the content was rewritten.
    Differs,
}

impl LogInput {
    /// Opens `path`, decompressing when it starts with the gzip magic, and
    /// positions the stream at `offset` (of the decompressed content).
    pub fn open(path: &Path, offset: u64) -> io::Result<LogInput> {
        Self::open_checked(path, offset, &[]).map(|(input, _)| input)
    }

    /// Like [`LogInput::open`], and compares the bytes just before `offset`
    /// with `marker`. On a mismatch the stream is positioned at 0.
    pub fn open_checked(
        path: &Path,
        offset: u64,
        marker: &[u8],
    ) -> io::Result<(LogInput, MarkerCheck)> {
        let mut file = open_regular(path)?;
        let compressed = is_gzip(&mut file)?;
        let marker_start = offset.saturating_sub(marker.len() as u64);
        let mut reader = Self::stream(file, compressed)?;
        // Skip to the marker (a gzip stream cannot seek: decompress and
        // discard), then read it and compare.
        let skipped = io::copy(&mut (&mut reader).take(marker_start), &mut io::sink())?;
        let mut found = vec![0u8; (offset - marker_start) as usize];
        let found_len = read_up_to(&mut reader, &mut found)?;
        let check = if skipped < marker_start || found_len < found.len() {
            MarkerCheck::TooShort
        } else if found != marker[marker.len() - found.len()..] {
            MarkerCheck::Differs
        } else {
            MarkerCheck::Matches
        };
        if check != MarkerCheck::Matches {
            let file = open_regular(path)?;
            return Ok((
                LogInput {
                    reader: Self::stream(file, compressed)?,
                    compressed,
                },
                check,
            ));
        }
        Ok((LogInput { reader, compressed }, check))
    }

    fn stream(mut file: File, compressed: bool) -> io::Result<Box<dyn BufRead + Send>> {
        file.seek(SeekFrom::Start(0))?;
        Ok(if compressed {
            let decoder = MultiGzDecoder::new(BufReader::with_capacity(READ_BUFFER_BYTES, file));
            Box::new(BufReader::with_capacity(READ_BUFFER_BYTES, decoder))
        } else {
            Box::new(BufReader::with_capacity(READ_BUFFER_BYTES, file))
        })
    }

    /// The buffered stream.
    pub fn into_reader(self) -> Box<dyn BufRead + Send> {
        self.reader
    }
}

/// Opens `path` for reading if it is a regular file, and refuses anything
/// else with an error that says what it is. A FIFO would block the open
/// until a writer comes and then hand its data to us alone, and a device
/// such as `/dev/zero` never ends: neither is a log. The file is opened
/// non-blocking (no effect on a regular file) in case a FIFO replaced it
/// between the check and the open.
pub fn open_regular(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    refuse_irregular(&std::fs::metadata(path)?)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    refuse_irregular(&file.metadata()?)?;
    Ok(file)
}

fn refuse_irregular(metadata: &std::fs::Metadata) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let kind = metadata.file_type();
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("not a regular file: it is {what}"),
    ))
}

fn is_gzip(file: &mut File) -> io::Result<bool> {
    let mut magic = [0u8; 2];
    let len = read_up_to(file, &mut magic)?;
    Ok(len == 2 && magic == [0x1f, 0x8b])
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
pub fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    #[allow(unsafe_code)] // mkfifo(3), to make the FIFO the test refuses
    fn only_regular_files_are_opened_and_a_fifo_never_blocks() {
        let dir = tempfile::TempDir::new().unwrap();
        let fifo = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        for (path, what) in [
            (fifo.as_path(), "a FIFO"),
            (dir.path(), "a directory"),
            (Path::new("/dev/zero"), "a character device"),
        ] {
            let err = LogInput::open(path, 0).err().expect("refused");
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            assert!(err.to_string().contains(what), "{err}");
        }
    }

    #[test]
    fn markers_are_checked_in_plain_and_gzip_files() {
        let dir = tempfile::TempDir::new().unwrap();
        let plain = dir.path().join("mainlog");
        std::fs::write(&plain, b"first line\nsecond line\n").unwrap();
        let gz = dir.path().join("mainlog.1.gz");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(b"first line\nsecond line\n").unwrap();
        std::fs::write(&gz, encoder.finish().unwrap()).unwrap();

        for path in [&plain, &gz] {
            let (input, check) = LogInput::open_checked(path, 11, b"line\n").unwrap();
            assert_eq!(check, MarkerCheck::Matches);
            let mut rest = String::new();
            input.into_reader().read_to_string(&mut rest).unwrap();
            assert_eq!(rest, "second line\n");

            let (input, check) = LogInput::open_checked(path, 11, b"LINE\n").unwrap();
            assert_eq!(check, MarkerCheck::Differs);
            let mut all = String::new();
            input.into_reader().read_to_string(&mut all).unwrap();
            assert_eq!(all, "first line\nsecond line\n", "a mismatch rewinds to 0");

            let (_, check) = LogInput::open_checked(path, 500, b"x\n").unwrap();
            assert_eq!(check, MarkerCheck::TooShort);
        }
    }
}
