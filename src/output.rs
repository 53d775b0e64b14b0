//! Standard output for the commands that print. Writes are buffered and
//! their errors returned, never a panic: with `exim-pilot trace x | head -1`
//! the pipe closes early, and [`is_closed_pipe`] lets `main` end quietly
//! (as ripgrep does) instead of aborting with a message about it.

use std::io::{self, BufWriter, StdoutLock};

/// Buffered, locked standard output. Call [`std::io::Write::flush`] at the end:
/// an error on the last bytes must be seen too.
pub fn stdout() -> BufWriter<StdoutLock<'static>> {
    BufWriter::new(io::stdout().lock())
}

/// Whether an error ended the command because its output went away (a
/// closed pipe): not a failure to report.
pub fn is_closed_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}
