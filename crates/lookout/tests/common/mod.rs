//! Running the `lookout` binary from the integration tests.

// Not every test file uses every helper.
#[allow(dead_code)]
pub(crate) mod server;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `lookout args` in `dir`, writing `stdin` (then closing it), and waits for it.
pub(crate) fn lookout_in(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    lookout_bytes_in(dir, args, stdin.map(str::as_bytes))
}

/// As [`lookout_in`], with standard input given as bytes (which need not be UTF-8).
pub(crate) fn lookout_bytes_in(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lookout");
    let mut input = child.stdin.take().expect("stdin");
    let text = stdin.unwrap_or_default().to_vec();
    // Written from a thread while the output is read: with both pipes' buffers full, writing
    // it all first would wait forever.
    let writer = std::thread::spawn(move || input.write_all(&text));
    let out = child.wait_with_output().expect("run lookout");
    // A run that exits before reading all of its input (a usage error) closes the pipe early:
    // the test then judges the output.
    let _ = writer.join().expect("stdin writer");
    out
}
