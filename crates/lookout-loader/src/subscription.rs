//! List subscriptions: sources kept up to date from a URL.
//!
//! A source with a `url` is read from its local copy (`path`) like any other source; this
//! module keeps that copy current. A refresh asks the server with the copy's ETag and date
//! (`If-None-Match`, `If-Modified-Since`), so an unchanged list costs one small request. A new
//! download is unpacked beside the copy (`.gz`; a folder source arrives as a `.tar`/`.tar.gz`
//! of the folder), loaded on its own as a check, and only then put in place with a rename:
//! a download that is cut short, is not a list (an error page), has malformed lines in a
//! strict source, or holds under half the entries of the copy in use is refused and the copy
//! in use stays. What was fetched when is kept next to the copy in `<path>.subscription.json`.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lookout_config::{ListsConfig, SourceConfig};
use serde::{Deserialize, Serialize};

/// Largest download accepted (compressed).
pub const MAX_DOWNLOAD: u64 = 512 << 20;
/// Largest unpacked copy accepted (all files together).
pub const MAX_UNPACKED: u64 = 4 << 30;
/// Most entries (files and folders) in an archive.
const MAX_ARCHIVE_ENTRIES: usize = 100_000;

/// Why a subscription could not be refreshed. The copy in use, if any, is unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The HTTP client could not be set up.
    #[error("cannot set up downloads: {0}")]
    Client(String),
    /// The request failed (name, connection, TLS, timeout, cut short).
    #[error("cannot download {url}: {error}")]
    Http { url: String, error: String },
    /// The server answered something other than the list.
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    /// More than [`MAX_DOWNLOAD`] or, unpacked, [`MAX_UNPACKED`].
    #[error("{url}: the download is larger than {} MiB; refused", .limit >> 20)]
    TooBig { url: String, limit: u64 },
    /// The download is not a list this source can use.
    #[error("{url}: the download is not a usable list: {reason}")]
    Bad { url: String, reason: String },
    /// The new copy is much smaller than the one in use: probably cut short upstream.
    #[error("{url}: the new copy has {new} entries, under half of the {old} in the copy in use; kept the copy in use (if the list really shrank, delete {} and refresh)", path.display())]
    Shrank {
        url: String,
        new: u64,
        old: u64,
        path: PathBuf,
    },
    /// The copy could not be written.
    #[error("cannot write the list copy {}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// What a refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    /// The server says the copy in use is current.
    Unchanged,
    /// A new copy is in place.
    Updated {
        /// Entries accepted from the new copy.
        entries: u64,
        /// Bytes downloaded.
        bytes: u64,
    },
}

/// What is known about a subscription's copy, kept in `<path>.subscription.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The address the copy came from (a changed `url` downloads afresh).
    pub url: String,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// When the copy in use was downloaded (ms since the Unix epoch).
    pub fetched_at_ms: i64,
    /// When the server last confirmed the copy or sent a new one.
    pub checked_at_ms: i64,
    /// Entries accepted from the copy.
    pub entries: u64,
    /// Bytes downloaded.
    pub bytes: u64,
}

/// Where a copy's [`Meta`] is kept.
pub fn meta_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".subscription.json");
    path.with_file_name(name)
}

/// The copy's [`Meta`], if the copy and its record exist.
pub fn read_meta(path: &Path) -> Option<Meta> {
    if !path.exists() {
        return None;
    }
    let text = std::fs::read(meta_path(path)).ok()?;
    serde_json::from_slice(&text).ok()
}

fn write_meta(path: &Path, meta: &Meta) -> Result<(), FetchError> {
    let file = meta_path(path);
    let io = |error| FetchError::Io {
        path: file.clone(),
        error,
    };
    let tmp = scratch_path(path, "meta");
    let text = serde_json::to_vec_pretty(meta).map_err(|e| io(std::io::Error::other(e)))?;
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, &file).map_err(io)
}

/// Downloads list subscriptions.
#[derive(Debug, Clone)]
pub struct Subscriber {
    client: reqwest::Client,
    /// `Authorization: Bearer` for addresses starting with the first string (a site
    /// gateway's lists, from its central).
    bearer: Option<(String, String)>,
}

impl Subscriber {
    /// A client trusting the public roots and the system's certificate store (which honours
    /// `SSL_CERT_FILE`), following up to five redirects, never from https to plain http.
    pub fn new() -> Result<Subscriber, FetchError> {
        Subscriber::with_options(&[], None)
    }

    /// As [`Subscriber::new`], also trusting `extra_roots` (DER certificates), and sending
    /// `bearer.1` as a bearer token to addresses that start with `bearer.0` (and only those;
    /// redirects elsewhere do not carry it).
    pub fn with_options(
        extra_roots: &[Vec<u8>],
        bearer: Option<(String, String)>,
    ) -> Result<Subscriber, FetchError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!(
                "Lookout/",
                env!("CARGO_PKG_VERSION"),
                " (list subscription)"
            ))
            .connect_timeout(Duration::from_secs(20))
            .read_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                if attempt.previous().len() >= 5 {
                    attempt.error("more than five redirects")
                } else if attempt.url().scheme() == "https"
                    || lookout_config::is_loopback_host(attempt.url())
                {
                    attempt.follow()
                } else {
                    attempt.error("refused a redirect to a plain http address")
                }
            }));
        for cert in rustls_native_certs::load_native_certs().certs {
            if let Ok(c) = reqwest::Certificate::from_der(&cert) {
                builder = builder.add_root_certificate(c);
            }
        }
        for der in extra_roots {
            let c = reqwest::Certificate::from_der(der)
                .map_err(|e| FetchError::Client(e.to_string()))?;
            builder = builder.add_root_certificate(c);
        }
        let client = builder
            .build()
            .map_err(|e| FetchError::Client(e.to_string()))?;
        Ok(Subscriber { client, bearer })
    }

    /// Asks for a new copy of `source` (which must have a `url`) and puts it in place if the
    /// server has one and it checks out. `strict` refuses a copy with any malformed line.
    pub async fn refresh(
        &self,
        source: &SourceConfig,
        strict: bool,
        now_ms: i64,
    ) -> Result<Refreshed, FetchError> {
        let url = source
            .url
            .as_ref()
            .map(|u| u.get_ref().clone())
            .unwrap_or_default();
        let path = source.path.get_ref().clone();
        let request = self.client.get(&url);
        let meta = read_meta(&path).filter(|m| m.url == url);
        // Messages name the address without credentials (user, password, query).
        let url = shown(&url);
        let http = |e: reqwest::Error| FetchError::Http {
            url: url.clone(),
            error: error_chain(&e.without_url()),
        };
        let mut request = request;
        if let Some((prefix, token)) = &self.bearer {
            if source
                .url
                .as_ref()
                .is_some_and(|u| u.get_ref().starts_with(prefix.as_str()))
            {
                let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|e| FetchError::Client(e.to_string()))?;
                value.set_sensitive(true);
                request = request.header(reqwest::header::AUTHORIZATION, value);
            }
        }
        if let Some(m) = &meta {
            if let Some(etag) = &m.etag {
                request = request.header(reqwest::header::IF_NONE_MATCH, etag);
            }
            if let Some(date) = &m.last_modified {
                request = request.header(reqwest::header::IF_MODIFIED_SINCE, date);
            }
        }
        let mut response = request.send().await.map_err(http)?;
        let status = response.status();
        if let (reqwest::StatusCode::NOT_MODIFIED, Some(m)) = (status, &meta) {
            write_meta(
                &path,
                &Meta {
                    checked_at_ms: now_ms,
                    ..m.clone()
                },
            )?;
            return Ok(Refreshed::Unchanged);
        }
        if status != reqwest::StatusCode::OK {
            return Err(FetchError::Status {
                url,
                status: status.as_u16(),
            });
        }
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let etag = header(reqwest::header::ETAG);
        let last_modified = header(reqwest::header::LAST_MODIFIED);
        let too_big = || FetchError::TooBig {
            url: url.clone(),
            limit: MAX_DOWNLOAD,
        };
        if response.content_length().is_some_and(|n| n > MAX_DOWNLOAD) {
            return Err(too_big());
        }
        let parent = parent_of(&path);
        std::fs::create_dir_all(&parent).map_err(|error| FetchError::Io {
            path: parent.clone(),
            error,
        })?;
        let download = Scratch(scratch_path(&path, "download"));
        let io = |error| FetchError::Io {
            path: download.0.clone(),
            error,
        };
        let mut file = std::fs::File::create(&download.0).map_err(io)?;
        let mut bytes = 0u64;
        while let Some(chunk) = response.chunk().await.map_err(http)? {
            bytes += chunk.len() as u64;
            if bytes > MAX_DOWNLOAD {
                return Err(too_big());
            }
            file.write_all(&chunk).map_err(io)?;
        }
        file.sync_all().map_err(io)?;
        drop(file);
        let old = meta.map_or(0, |m| m.entries);
        let checked = source.clone();
        let from = download.0.clone();
        let entries = tokio::task::spawn_blocking(move || install(&from, &checked, strict, old))
            .await
            .map_err(|e| FetchError::Bad {
                url: url.clone(),
                reason: format!("checking the download stopped: {e}"),
            })??;
        write_meta(
            &path,
            &Meta {
                url: source
                    .url
                    .as_ref()
                    .map(|u| u.get_ref().clone())
                    .unwrap_or_default(),
                etag,
                last_modified,
                fetched_at_ms: now_ms,
                checked_at_ms: now_ms,
                entries,
                bytes,
            },
        )?;
        Ok(Refreshed::Updated { entries, bytes })
    }
}

/// `url` as shown in messages and on status pages: no user, password or query (a token in
/// the address stays out of logs).
pub fn shown(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            if u.query().is_some() {
                u.set_query(Some("…"));
            }
            u.to_string()
        }
        Err(_) => "(not a web address)".to_owned(),
    }
}

/// The error and its causes on one line (reqwest's own message hides the cause).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// A file or folder beside `path` for work in progress: same folder, so a rename puts it in
/// place at once; named for this process and attempt, so two never share one.
fn scratch_path(path: &Path, what: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    parent_of(path).join(format!(".{name}.{}.{n}.{what}", std::process::id()))
}

/// Removes a scratch file or folder when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.0.is_dir() {
            let _ = std::fs::remove_dir_all(&self.0);
        } else {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// Unpacks the downloaded file `download` for `source`, checks it loads as the source's
/// lists (`strict`: no malformed line) with at least half of `old_entries`, and puts it at
/// the source's path. Returns the entries accepted. On any error nothing at the path changes.
pub fn install(
    download: &Path,
    source: &SourceConfig,
    strict: bool,
    old_entries: u64,
) -> Result<u64, FetchError> {
    let path = source.path.get_ref();
    let url = source
        .url
        .as_ref()
        .map_or_else(|| download.display().to_string(), |u| shown(u.get_ref()));
    let bad = |reason: String| FetchError::Bad {
        url: url.clone(),
        reason,
    };
    let io = |p: &Path| {
        let p = p.to_owned();
        move |error| FetchError::Io { path: p, error }
    };
    let mut head = [0u8; 2];
    let mut file = std::fs::File::open(download).map_err(io(download))?;
    let n = file.read(&mut head).map_err(io(download))?;
    drop(file);
    let reader = || -> Result<Box<dyn Read>, FetchError> {
        let f = std::fs::File::open(download).map_err(io(download))?;
        let r: Box<dyn Read> = if n == 2 && head == [0x1f, 0x8b] {
            Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(
                f,
            )))
        } else {
            Box::new(std::io::BufReader::new(f))
        };
        Ok(Box::new(r.take(MAX_UNPACKED + 1)))
    };
    let parent = parent_of(path);
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    let staged = Scratch(scratch_path(path, "staging"));
    let root = if source.format.is_folder() {
        std::fs::create_dir(&staged.0).map_err(io(&staged.0))?;
        unpack_tar(reader()?, &staged.0).map_err(|e| match e {
            Unpack::Io(p, error) => FetchError::Io { path: p, error },
            Unpack::Bad(reason) => bad(reason),
            Unpack::TooBig => FetchError::TooBig {
                url: url.clone(),
                limit: MAX_UNPACKED,
            },
        })?;
        single_folder(&staged.0).map_err(io(&staged.0))?
    } else {
        let mut out = std::fs::File::create(&staged.0).map_err(io(&staged.0))?;
        let copied = std::io::copy(&mut reader()?, &mut out)
            .map_err(|e| bad(format!("cannot unpack it: {e}")))?;
        if copied > MAX_UNPACKED {
            return Err(FetchError::TooBig {
                url,
                limit: MAX_UNPACKED,
            });
        }
        out.sync_all().map_err(io(&staged.0))?;
        if is_tar(&staged.0) {
            return Err(bad("it is an archive; a single list is downloaded as a list file (or a .gz of one), a folder of lists with format = \"ut1\" or \"blocklistproject\"".into()));
        }
        staged.0.clone()
    };
    let check = ListsConfig {
        strict,
        sources: vec![source.at(root.clone())],
        // The check's index is dropped as soon as its entries are counted.
        host_cache: None,
    };
    let loaded = crate::load(&check).map_err(|e| bad(e.to_string()))?;
    let (accepted, rejected) = (loaded.accepted(), loaded.rejected());
    drop(loaded);
    if accepted == 0 {
        return Err(bad("it has no list entries".into()));
    }
    if rejected > accepted {
        return Err(bad(format!(
            "{rejected} of its {} lines are not list entries (an error page?)",
            accepted + rejected
        )));
    }
    if accepted < old_entries / 2 {
        return Err(FetchError::Shrank {
            url,
            new: accepted,
            old: old_entries,
            path: path.clone(),
        });
    }
    put_in_place(&root, path).map_err(io(path))?;
    Ok(accepted)
}

/// Moves `new` to `path`: one rename for a file; for a folder, the old one aside, the new
/// one in, then the old one removed (put back if the new one cannot go in).
fn put_in_place(new: &Path, path: &Path) -> std::io::Result<()> {
    if new.is_dir() && path.exists() {
        let old = scratch_path(path, "old");
        std::fs::rename(path, &old)?;
        if let Err(e) = std::fs::rename(new, path) {
            let _ = std::fs::rename(&old, path);
            return Err(e);
        }
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(new, path)?;
    }
    if let Ok(dir) = std::fs::File::open(parent_of(path)) {
        let _ = dir.sync_all();
    }
    Ok(())
}

fn is_tar(file: &Path) -> bool {
    let mut buf = [0u8; 262];
    std::fs::File::open(file)
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok()
        && &buf[257..262] == b"ustar"
}

/// A folder archive usually holds one top folder (`blacklists/...`): that is the copy.
fn single_folder(dir: &Path) -> std::io::Result<PathBuf> {
    let entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    match entries.as_slice() {
        [one] if one.file_type()?.is_dir() => Ok(one.path()),
        _ => Ok(dir.to_owned()),
    }
}

enum Unpack {
    Io(PathBuf, std::io::Error),
    Bad(String),
    TooBig,
}

/// Unpacks a tar stream into `dir`: folders and regular files only, every path inside `dir`
/// (no absolute paths, no `..`). A symbolic link to a sibling folder (UT1's aliases,
/// `porn -> adult`) is written as a small file holding the target's name, which the loader
/// follows; other links, devices and the like are skipped.
fn unpack_tar(reader: impl Read, dir: &Path) -> Result<(), Unpack> {
    let bad = |what: &str, e: std::io::Error| Unpack::Bad(format!("{what}: {e}"));
    let mut archive = tar::Archive::new(reader);
    let mut total = 0u64;
    let entries = archive.entries().map_err(|e| bad("not a tar archive", e))?;
    for (count, entry) in entries.enumerate() {
        if count == MAX_ARCHIVE_ENTRIES {
            return Err(Unpack::Bad(format!(
                "more than {MAX_ARCHIVE_ENTRIES} files in the archive"
            )));
        }
        let mut entry = entry.map_err(|e| match count {
            0 => bad(
                "it is not a tar archive (a folder of lists is downloaded as a .tar or .tar.gz of the folder)",
                e,
            ),
            _ => bad("the archive is damaged", e),
        })?;
        let name = entry
            .path()
            .map_err(|e| bad("a name in the archive", e))?
            .into_owned();
        let mut rel = PathBuf::new();
        for c in name.components() {
            match c {
                Component::Normal(part) => rel.push(part),
                Component::CurDir => {}
                _ => {
                    return Err(Unpack::Bad(format!(
                        "the archive names a file outside its folder: {}",
                        name.display()
                    )))
                }
            }
        }
        if rel.as_os_str().is_empty() {
            continue;
        }
        let target = dir.join(&rel);
        let io = |p: &Path| {
            let p = p.to_owned();
            move |e| Unpack::Io(p, e)
        };
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            std::fs::create_dir_all(&target).map_err(io(&target))?;
            continue;
        }
        let parent = parent_of(&target);
        if kind.is_file() {
            total += entry.size();
            if total > MAX_UNPACKED {
                return Err(Unpack::TooBig);
            }
            std::fs::create_dir_all(&parent).map_err(io(&parent))?;
            let mut out = std::fs::File::create(&target).map_err(io(&target))?;
            std::io::copy(&mut entry, &mut out).map_err(|e| bad("the archive is cut short", e))?;
            out.sync_all().map_err(io(&target))?;
        } else if kind.is_symlink() {
            let link = entry
                .link_name()
                .map_err(|e| bad("a link in the archive", e))?;
            let plain =
                link.as_deref()
                    .and_then(|l| match l.components().collect::<Vec<_>>()[..] {
                        [Component::Normal(n)] => n.to_str().map(str::to_owned),
                        _ => None,
                    });
            if let Some(sibling) = plain {
                std::fs::create_dir_all(&parent).map_err(io(&parent))?;
                std::fs::write(&target, sibling).map_err(io(&target))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
