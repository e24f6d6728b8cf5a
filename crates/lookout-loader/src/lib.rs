//! Reads the configured list sources from disk and compiles them into one [`Index`].
//!
//! This is the I/O half of the list engine: it expands folder sources (UT1, Block List
//! Project) into files, reads them, and feeds the sans-I/O parsers from `lookout-lists`, one
//! thread per core, into one index. Bad lines are reported per file; in strict mode any bad
//! line fails the load, and nothing is half-applied. It also reads the phrase libraries and
//! the model stage's encoder and classifier head.

mod model;
mod phrases;
pub mod subscription;

pub use model::{
    builtin_head_path, load_encoder, load_encoder_check, load_model, train_head, write_head,
    HeadSource, ModelLoadError,
};
pub use phrases::{load_phrases, PhraseLoadError};

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lookout_config::{ListsConfig, SourceConfig, SourceFormat};
use lookout_lists::{
    parse, Category, CategorySet, EntrySink, Format, Index, IndexBuilder, ParseReport, SourceInfo,
};

/// Why the lists could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A file or folder could not be read.
    #[error("list source `{source_name}`: cannot read {}: {error}", path.display())]
    Io {
        /// The configured source.
        source_name: String,
        /// The file or folder.
        path: PathBuf,
        /// The operating system's reason.
        error: std::io::Error,
    },
    /// A folder source holds no list Lookout can map to a category.
    #[error("list source `{source_name}`: no lists found in {} (is `format` right?)", path.display())]
    Empty {
        /// The configured source.
        source_name: String,
        /// The folder.
        path: PathBuf,
    },
    /// `include`, `exclude` or `map` names a list the folder does not have: a typo would
    /// otherwise leave a category silently unloaded.
    #[error("list source `{source_name}`: `{name}` is not a list in {} (it has: {available})", path.display())]
    UnknownList {
        /// The configured source.
        source_name: String,
        /// The name as written.
        name: String,
        /// The folder.
        path: PathBuf,
        /// The lists the folder has, comma-separated.
        available: String,
    },
    /// Strict mode is on and lists have malformed lines.
    #[error("strict mode: malformed lines in the lists, nothing loaded:{}", StrictList(.0))]
    Strict(Vec<FileReport>),
    /// More list files than one index can hold.
    #[error(transparent)]
    TooManySources(#[from] lookout_lists::index::TooManySources),
}

struct StrictList<'a>(&'a [FileReport]);

impl fmt::Display for StrictList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for file in self.0 {
            write!(
                f,
                "\n  {}: {} malformed line(s)",
                file.name, file.report.rejected
            )?;
            for line in file.rejected_lines() {
                write!(f, "\n    {line}")?;
            }
        }
        Ok(())
    }
}

/// One list file as loaded.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// The configured source it belongs to.
    pub source: String,
    /// Name used in explanations, e.g. `ut1/gambling/domains`.
    pub name: String,
    /// Where it was read from.
    pub path: PathBuf,
    /// The format it was parsed as.
    pub format: Format,
    /// The categories its entries carry.
    pub categories: CategorySet,
    /// Whether this file's source is strict.
    pub strict: bool,
    /// What the parser found.
    pub report: ParseReport,
}

impl FileReport {
    /// The kept rejected lines, each as `path:line: reason: text`.
    pub fn rejected_lines(&self) -> impl Iterator<Item = String> + '_ {
        self.report.samples.iter().map(|s| {
            format!(
                "{}:{}: {}: {}",
                self.path.display(),
                s.line,
                s.reason,
                s.text
            )
        })
    }
}

/// The outcome of a load.
#[derive(Debug)]
pub struct Loaded {
    /// The compiled index.
    pub index: Index,
    /// Every file, in source order.
    pub files: Vec<FileReport>,
    /// Wall-clock time to read, parse and compile.
    pub elapsed: Duration,
}

impl Loaded {
    /// Total entries accepted across files (before de-duplication).
    pub fn accepted(&self) -> u64 {
        self.files.iter().map(|f| f.report.accepted).sum()
    }

    /// Total malformed lines across files.
    pub fn rejected(&self) -> u64 {
        self.files.iter().map(|f| f.report.rejected).sum()
    }

    /// Distinct entries per category: `(category, hosts, urls)`.
    pub fn category_counts(&self) -> Vec<(Category, u64, u64)> {
        self.index
            .label_counts()
            .filter_map(|(bit, h, u)| {
                Category::all()
                    .find(|c| c.index() == bit as usize)
                    .map(|c| (c, h, u))
            })
            .collect()
    }
}

/// What reading and parsing one file gave.
type FileOutcome = Result<(Format, ParseReport), std::io::Error>;

/// How much of a list file is read at a time.
const READ_BLOCK: usize = 1 << 20;

/// At least how much of a list file's start its format is detected from (`parse::detect`
/// looks at up to 2,000 lines).
const DETECT_BYTES: usize = 64 << 10;

/// Reads and parses the list file at `path` about `block` bytes at a time, so that a list of
/// millions of lines (UT1's adult list is ~90 MB) is never held whole beside the index being
/// built; its format is `format`, or detected from the first block.
fn parse_file(
    path: &Path,
    format: Option<Format>,
    block: usize,
    mut emit: impl FnMut(lookout_lists::EntryKind, &lookout_lists::NormUrl),
) -> FileOutcome {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let first = block.max(DETECT_BYTES);
    let mut buf = Vec::with_capacity(first);
    // Up to `limit` more bytes onto the buffer: fewer only at the end of the file.
    let mut read_more = |buf: &mut Vec<u8>, limit: usize| -> std::io::Result<bool> {
        Ok((&mut file).take(limit as u64).read_to_end(buf)? == limit)
    };
    let mut more = read_more(&mut buf, first)?;
    let format = format.unwrap_or_else(|| parse::detect(&buf));
    let mut parser = parse::Parser::new(format);
    while more {
        // Whole lines go to the parser; a line cut short waits for the next block (a line
        // longer than a block grows the buffer until its end is read).
        if let Some(last) = buf.iter().rposition(|&b| b == b'\n') {
            parser.feed(&buf[..=last], &mut emit);
            buf.drain(..=last);
        }
        more = read_more(&mut buf, block)?;
    }
    Ok((format, parser.finish(&buf, &mut emit)))
}

/// A file to load.
struct Job {
    source: String,
    name: String,
    path: PathBuf,
    format: Option<Format>,
    categories: CategorySet,
    strict: bool,
}

/// Loads every configured source, one thread per core.
pub fn load(lists: &ListsConfig) -> Result<Loaded, LoadError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    load_with_threads(lists, cores)
}

/// Loads every configured source on at most `threads` threads (at least one).
pub fn load_with_threads(lists: &ListsConfig, threads: usize) -> Result<Loaded, LoadError> {
    let started = Instant::now();
    let mut jobs = Vec::new();
    for source in &lists.sources {
        expand(source, lists.strict || source.strict, &mut jobs)?;
    }
    let mut builder = IndexBuilder::new();
    builder.host_cache(lists.host_cache());
    let mut ids = Vec::with_capacity(jobs.len());
    for job in &jobs {
        ids.push(builder.add_source(SourceInfo {
            name: job.name.as_str().into(),
            labels: job.categories.bits(),
        })?);
    }

    let threads = threads.clamp(1, jobs.len().max(1));
    let next = AtomicUsize::new(0);
    // Biggest files first so that the threads finish together.
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    let sizes: Vec<u64> = jobs
        .iter()
        .map(|j| std::fs::metadata(&j.path).map_or(0, |m| m.len()))
        .collect();
    order.sort_by_key(|&i| std::cmp::Reverse(sizes[i]));

    let mut sinks = Vec::with_capacity(threads);
    let mut outcomes: Vec<Option<FileOutcome>> = (0..jobs.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut sink = EntrySink::new();
                    let mut done = Vec::new();
                    while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let job = &jobs[i];
                        let outcome = parse_file(&job.path, job.format, READ_BLOCK, |kind, url| {
                            sink.add(ids[i], kind, url)
                        });
                        done.push((i, outcome));
                    }
                    (sink, done)
                })
            })
            .collect();
        for handle in handles {
            // A parser that panicked leaves its files without an outcome, reported below.
            if let Ok((sink, done)) = handle.join() {
                sinks.push(sink);
                for (i, outcome) in done {
                    outcomes[i] = Some(outcome);
                }
            }
        }
    });

    let mut files = Vec::with_capacity(jobs.len());
    for (job, outcome) in jobs.into_iter().zip(outcomes) {
        let (format, report) = match outcome {
            Some(Ok(r)) => r,
            Some(Err(error)) => {
                return Err(LoadError::Io {
                    source_name: job.source,
                    path: job.path,
                    error,
                })
            }
            None => {
                let error = std::io::Error::other("the loading thread stopped");
                return Err(LoadError::Io {
                    source_name: job.source,
                    path: job.path,
                    error,
                });
            }
        };
        files.push(FileReport {
            source: job.source,
            name: job.name,
            path: job.path,
            format,
            categories: job.categories,
            strict: job.strict,
            report,
        });
    }
    let bad: Vec<FileReport> = files
        .iter()
        .filter(|f| f.strict && f.report.rejected > 0)
        .cloned()
        .collect();
    if !bad.is_empty() {
        return Err(LoadError::Strict(bad));
    }
    let index = builder.build(sinks);
    Ok(Loaded {
        index,
        files,
        elapsed: started.elapsed(),
    })
}

fn io_error(source: &SourceConfig, path: &Path, error: std::io::Error) -> LoadError {
    LoadError::Io {
        source_name: source.name.get_ref().clone(),
        path: path.to_owned(),
        error,
    }
}

fn expand(source: &SourceConfig, strict: bool, jobs: &mut Vec<Job>) -> Result<(), LoadError> {
    let name = source.name.get_ref();
    let root = source.path.get_ref();
    let before = jobs.len();
    let job = |list: String, path: PathBuf, format: Option<Format>, categories: CategorySet| Job {
        source: name.clone(),
        name: list,
        path,
        format,
        categories,
        strict,
    };
    let mut available = Vec::new();
    match source.format {
        SourceFormat::Ut1 => {
            for Ut1Folder {
                name: folder,
                dir,
                aliases,
            } in ut1_folders(root).map_err(|e| io_error(source, root, e))?
            {
                available.push(folder.clone());
                available.extend(aliases.iter().cloned());
                let mut names = vec![folder.as_str()];
                names.extend(aliases.iter().map(String::as_str));
                let Some(categories) = source.categories_for(&names) else {
                    continue;
                };
                for (file, format) in [("domains", Format::Domains), ("urls", Format::Urls)] {
                    let path = dir.join(file);
                    if path.is_file() {
                        jobs.push(job(
                            format!("{name}/{folder}/{file}"),
                            path,
                            Some(format),
                            categories,
                        ));
                    }
                }
            }
        }
        SourceFormat::Blocklistproject => {
            let mut files = txt_files(root).map_err(|e| io_error(source, root, e))?;
            let sub = root.join("domains-format");
            if sub.is_dir() {
                files.extend(txt_files(&sub).map_err(|e| io_error(source, &sub, e))?);
            }
            for path in files {
                let stem = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default()
                    .to_owned();
                available.push(stem.clone());
                let Some(categories) = source.categories_for(&[stem.as_str()]) else {
                    continue;
                };
                jobs.push(job(format!("{name}/{stem}"), path, None, categories));
            }
        }
        single => {
            if !root.is_file() {
                let error = std::fs::metadata(root).err().unwrap_or_else(|| {
                    std::io::Error::other(
                        "not a file (use format = \"ut1\" or \"blocklistproject\" for a folder)",
                    )
                });
                return Err(io_error(source, root, error));
            }
            jobs.push(job(
                name.clone(),
                root.clone(),
                single.file_format(),
                source.file_categories(),
            ));
        }
    }
    if let Some(list) = source
        .named_lists()
        .find(|n| !available.iter().any(|a| a == n))
    {
        return Err(LoadError::UnknownList {
            source_name: name.clone(),
            name: list.to_owned(),
            path: root.clone(),
            available: available.join(", "),
        });
    }
    if jobs.len() == before {
        return Err(LoadError::Empty {
            source_name: name.clone(),
            path: root.clone(),
        });
    }
    Ok(())
}

/// The category folders of a UT1 tree, by name, each loaded once. UT1 ships aliases
/// (`porn -> adult`) as symbolic links, which copies sometimes turn into small text files
/// holding the target's name; both are followed, and a folder reached under several names is
/// loaded once, under its own name.
fn ut1_folders(root: &Path) -> std::io::Result<Vec<Ut1Folder>> {
    let mut names: Vec<(String, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let path = entry.path();
        let target = if path.is_dir() {
            path
        } else {
            match alias_target(&path) {
                Some(t) => root.join(t),
                None => continue,
            }
        };
        if let Ok(canonical) = target.canonicalize() {
            if canonical.is_dir() {
                names.push((name, canonical));
            }
        }
    }
    // One entry per folder, under its own name, with the other names that reach it.
    let mut folders: Vec<Ut1Folder> = Vec::new();
    names.sort();
    for (name, dir) in names {
        let own = dir.file_name().and_then(|f| f.to_str()) == Some(name.as_str());
        match folders.iter_mut().find(|f| f.dir == dir) {
            Some(f) if own => f.aliases.push(std::mem::replace(&mut f.name, name)),
            Some(f) => f.aliases.push(name),
            None => folders.push(Ut1Folder {
                name,
                dir,
                aliases: Vec::new(),
            }),
        }
    }
    folders.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(folders)
}

/// A UT1 category folder and the aliases (links) that name it too.
struct Ut1Folder {
    name: String,
    dir: PathBuf,
    aliases: Vec<String>,
}

/// A small regular file holding one folder name: a symbolic link stored as text.
fn alias_target(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > 255 {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let t = text.trim();
    let plain = !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    (plain && t != "." && t != "..").then(|| t.to_owned())
}

fn txt_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "txt") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests;
