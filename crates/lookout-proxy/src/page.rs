//! Page text for the monitoring: the first bytes of HTML and plain-text responses, copied as
//! they are relayed (never delaying them), turned into title and text when the body ends.

use std::io::Read;
use std::sync::Arc;

use flate2::read::GzDecoder;
use lookout_http::html_text;

/// A page's text and who read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageCapture {
    pub at_ms: i64,
    pub url: String,
    pub username: Option<String>,
    pub client_ip: String,
    pub group: String,
    pub title: String,
    pub text: String,
}

/// Where captured pages go (the monitoring's queue); must not block.
#[derive(Clone)]
pub struct PageSink(pub Arc<dyn Fn(PageCapture) + Send + Sync>);

impl std::fmt::Debug for PageSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageSink")
    }
}

/// How a captured body is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Encoding {
    Identity,
    Gzip,
}

/// A body being copied (up to `limit` bytes) for its text.
pub(crate) struct Capture {
    pub(crate) buf: Vec<u8>,
    pub(crate) limit: usize,
    pub(crate) encoding: Encoding,
    pub(crate) html: bool,
    pub(crate) meta: PageCapture,
    pub(crate) sink: PageSink,
}

impl Capture {
    pub(crate) fn push(&mut self, data: &[u8]) {
        let room = self.limit.saturating_sub(self.buf.len());
        self.buf.extend_from_slice(&data[..data.len().min(room)]);
    }

    /// Decodes what was copied and hands the text to the sink.
    pub(crate) fn finish(mut self) {
        let raw = match self.encoding {
            Encoding::Identity => std::mem::take(&mut self.buf),
            Encoding::Gzip => {
                let mut out = Vec::new();
                // A cut-off gzip stream still yields what came before the cut.
                let _ = GzDecoder::new(&self.buf[..])
                    .take(self.limit as u64)
                    .read_to_end(&mut out);
                out
            }
        };
        if raw.is_empty() {
            return;
        }
        let (title, text) = if self.html {
            let p = html_text(&raw);
            (p.title, p.text)
        } else {
            (String::new(), lookout_http::lossy_text(raw))
        };
        if title.is_empty() && text.trim().is_empty() {
            return;
        }
        self.meta.title = title;
        self.meta.text = text;
        (self.sink.0)(self.meta);
    }
}
