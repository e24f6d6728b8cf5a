//! Running the `lookout` binary from the integration tests.

// Not every test file uses every helper.
#[allow(dead_code)]
pub(crate) mod server;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `lookout args` in `dir`, writing `stdin` (then closing it), and waits for it.
pub(crate) fn lookout_in(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lookout");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("run lookout")
}
