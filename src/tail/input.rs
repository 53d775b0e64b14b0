//! Opening a log file for reading, plain or gzip-compressed (logrotate's and
//! exicyclog's `mainlog.N.gz`), recognised by its magic bytes rather than
//! its name.

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

impl LogInput {
    /// Opens `path`, decompressing when it starts with the gzip magic, and
    /// positions the stream at `offset` (of the decompressed content).
    pub fn open(path: &Path, offset: u64) -> io::Result<LogInput> {
        let mut file = File::open(path)?;
        let mut magic = [0u8; 2];
        let magic_len = read_up_to(&mut file, &mut magic)?;
        let compressed = magic_len == 2 && magic == [0x1f, 0x8b];
        file.seek(SeekFrom::Start(0))?;
        let mut reader: Box<dyn BufRead + Send> = if compressed {
            let decoder = MultiGzDecoder::new(BufReader::with_capacity(READ_BUFFER_BYTES, file));
            Box::new(BufReader::with_capacity(READ_BUFFER_BYTES, decoder))
        } else {
            file.seek(SeekFrom::Start(offset))?;
            Box::new(BufReader::with_capacity(READ_BUFFER_BYTES, file))
        };
        if compressed && offset > 0 {
            // A gzip stream cannot seek: decompress and discard up to offset.
            let skipped = io::copy(&mut (&mut reader).take(offset), &mut io::sink())?;
            if skipped < offset {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "{} has only {skipped} bytes, fewer than the offset {offset}",
                        path.display()
                    ),
                ));
            }
        }
        Ok(LogInput { reader, compressed })
    }

    /// The buffered stream.
    pub fn into_reader(self) -> Box<dyn BufRead + Send> {
        self.reader
    }
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
