//! `lookout check`: one decision per URL, for people (a line each), programs (`--json`) or
//! Squid (`--squid`: the URL-rewrite helper protocol squidGuard speaks, so Lookout can take
//! squidGuard's place behind an existing Squid).

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{Datelike, Timelike};
use lookout_lists::blocks::{self, u8x16};
use lookout_lists::{Index, NormUrl};
use lookout_policy::{Action, Decision, GroupId, LocalTime, Networks, Policy, Reason, Weekday};

use crate::UsageError;

#[derive(clap::Args)]
pub(crate) struct CheckArgs {
    /// Configuration file (default: built-in groups, no lists).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The group asking, e.g. `learners-u18`. With `--squid`: the group of clients outside
    /// every configured `[[networks]]` range (without it, their requests are refused).
    #[arg(long, short, required_unless_present = "squid")]
    group: Option<String>,
    /// Fail on any malformed list line (overrides `lists.strict`).
    #[arg(long)]
    strict: bool,
    /// Print one JSON object per line.
    #[arg(long, conflicts_with = "squid")]
    json: bool,
    /// Answer as a Squid URL-rewrite helper (`url_rewrite_program`), as squidGuard does:
    /// `ERR` lets a request through, `OK status=302 url="..."` sends the browser to
    /// `--redirect`; each client's group comes from its `[[networks]]` range. Lines may
    /// start with Squid's channel ID (`url_rewrite_children ... concurrency=N`).
    #[arg(long, requires = "redirect")]
    squid: bool,
    /// With `--squid`: where refused requests go. `%u` (the request's URL), `%t` (the
    /// category, or the rule: `download`, `deny-list`, `invalid-url`...), `%a` (the client's
    /// address) and `%g` (its group) are replaced, percent-encoded; `%%` is a `%`.
    #[arg(long, value_name = "URL", requires = "squid")]
    redirect: Option<String>,
    /// Decide as at this local time, e.g. `fri 17:30` (default: now).
    #[arg(long, value_name = "DAY HH:MM")]
    at: Option<String>,
    /// Threads loading the lists and deciding on standard input (default: one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// URLs or hosts; `-` reads one request a line from standard input (the first word of
    /// each line, so squidGuard-style `URL ip/fqdn ident method` lines work too).
    #[arg(required = true)]
    urls: Vec<String>,
}

pub(crate) fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let mut config = crate::load_config(args.config.as_deref())?;
    config.lists.strict |= args.strict;
    let policy = config.policy()?;
    let group = match &args.group {
        Some(name) => Some(policy.group_id(name).ok_or_else(|| {
            let names: Vec<&str> = policy.groups().iter().map(|g| g.name()).collect();
            UsageError(format!(
                "no group `{name}`; the configured groups are: {}",
                names.join(", ")
            ))
        })?),
        None => None,
    };
    let format = match (&args.redirect, group) {
        (Some(template), fallback) => Format::Squid {
            redirect: Redirect::parse(template)?,
            clients: crate::serve::client_networks(&config, &policy, |g, _| g),
            fallback,
        },
        (None, Some(group)) if args.json => Format::Json(group),
        (None, Some(group)) => Format::Text(group),
        (None, None) => {
            return Err(UsageError("--group is needed (but with --squid)".into()).into())
        }
    };
    let at = match &args.at {
        Some(s) => Some(parse_at(s).ok_or_else(|| {
            UsageError(format!(
                "--at `{s}`: expected a day and a time, e.g. `fri 17:30`"
            ))
        })?),
        None => None,
    };
    // Without `--at`, the time of day is read for every batch: a Squid helper runs for days,
    // and schedules (lunchtime, after hours) must follow the clock.
    let clock = move || at.unwrap_or_else(now);
    // `--threads` bounds the whole run, loading included.
    let loaded = crate::lists::load_available(&config.lists, args.threads)?;
    if loaded.rejected() > 0 {
        eprintln!(
            "warning: {} malformed list line(s) skipped; `lookout lists stats` shows where",
            loaded.rejected()
        );
    }
    let out = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, out.lock());
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    if let Format::Squid { fallback: None, .. } = &format {
        eprintln!(
            "note: requests from clients outside every [[networks]] range are refused (--group gives them a group)"
        );
    }
    let checker = Checker::new(&policy, &loaded.index, &clock, &format);
    let mut url = NormUrl::default();
    let mut buf = Vec::new();
    for arg in &args.urls {
        if arg == "-" {
            // Big enough that a batch from a file or pipe is worth spreading over cores.
            let stdin = BufReader::with_capacity(1 << 20, std::io::stdin().lock());
            checker.stream(stdin, threads, &mut out)?;
        } else {
            buf.clear();
            match &format {
                // A URL given as an argument is the whole argument, spaces and all.
                &Format::Text(group) | &Format::Json(group) => {
                    checker.check(arg, group, &mut url, &mut buf)?
                }
                Format::Squid { .. } => checker.answer(arg, &mut url, &mut buf)?,
            }
            out.write_all(&buf)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// A batch stops growing at this many bytes of input (about 14,000 Squid lines).
const BATCH_BYTES: usize = 1 << 20;

/// How answers are written.
enum Format {
    /// A line for people: action, URL, categories, reason; as the group would see it.
    Text(GroupId),
    Json(GroupId),
    /// Squid's URL-rewrite helper protocol; `fallback` is the group of clients in no network.
    Squid {
        redirect: Redirect,
        clients: Networks<GroupId>,
        fallback: Option<GroupId>,
    },
}

#[derive(Clone, Copy)]
struct Checker<'a> {
    policy: &'a Policy,
    index: &'a Index,
    /// The time of day decisions are made as, read again for each batch of standard input.
    clock: &'a (dyn Fn() -> LocalTime + Sync),
    at: LocalTime,
    format: &'a Format,
}

impl<'a> Checker<'a> {
    /// A checker deciding as at the time `clock` reads now (and reads again for each batch).
    fn new(
        policy: &'a Policy,
        index: &'a Index,
        clock: &'a (dyn Fn() -> LocalTime + Sync),
        format: &'a Format,
    ) -> Checker<'a> {
        Checker {
            policy,
            index,
            clock,
            at: clock(),
            format,
        }
    }

    /// Answers one input line (a URL and, for Squid, what it sends with it) on `out`. Apart
    /// from Squid's, an empty line gets no answer.
    fn answer(&self, line: &str, url: &mut NormUrl, out: &mut Vec<u8>) -> std::io::Result<()> {
        match self.format {
            Format::Squid {
                redirect,
                clients,
                fallback,
            } => {
                self.squid(redirect, clients, *fallback, line, url, out);
                Ok(())
            }
            &Format::Text(group) | &Format::Json(group) => match line.split_whitespace().next() {
                Some(word) => self.check(word, group, url, out),
                None => Ok(()),
            },
        }
    }

    fn decide(&self, input: &str, group: GroupId, url: &mut NormUrl) -> Decision {
        match url.parse_into(input) {
            // Squid's answer names the category, never the list entry.
            Ok(()) if matches!(self.format, Format::Squid { .. }) => {
                self.policy.decide_briefly(self.index, group, url, self.at)
            }
            Ok(()) => self.policy.decide(self.index, group, url, self.at),
            Err(e) => Policy::decide_invalid(e),
        }
    }

    /// One Squid request line, `[channel-ID] URL [client-ip/fqdn user method ...]`, answered
    /// `[channel-ID] ERR` (unchanged) or `[channel-ID] OK status=302 url="..."`. Every line
    /// gets exactly one answer, in order, so Squid's answers never shift. Warnings redirect
    /// too: a helper cannot offer the click-through.
    fn squid(
        &self,
        redirect: &Redirect,
        clients: &Networks<GroupId>,
        fallback: Option<GroupId>,
        line: &str,
        url: &mut NormUrl,
        out: &mut Vec<u8>,
    ) {
        let (mut first, rest) = first_word(line);
        let (mut second, rest) = first_word(rest);
        if let (Some(id), Some(_)) = (first, second) {
            if id.bytes().all(|b| b.is_ascii_digit()) {
                out.extend_from_slice(id.as_bytes());
                out.push(b' ');
                first = second;
                second = first_word(rest).0;
            }
        }
        let Some(request) = first else {
            out.extend_from_slice(b"ERR\n");
            return;
        };
        // Squid's first extra is `client-ip/fqdn`; read only when something needs it.
        let client = (!clients.is_empty() || redirect.wants_client())
            .then(|| second.and_then(|w| w.split('/').next()?.parse::<IpAddr>().ok()))
            .flatten();
        let group = client.and_then(|ip| clients.get(ip).copied()).or(fallback);
        let (decision, group_name) = match group {
            Some(g) => (self.decide(request, g, url), self.policy.group(g).name()),
            None => {
                out.extend_from_slice(b"OK status=302 url=\"");
                redirect.write(request, "unknown-client", client, "", out);
                out.extend_from_slice(b"\"\n");
                return;
            }
        };
        if decision.action == Action::Allow {
            out.extend_from_slice(b"ERR\n");
            return;
        }
        let why = match &decision.reason {
            Reason::Illegal { category, .. } | Reason::Category { category, .. } => category.slug(),
            other => other.rule(),
        };
        out.extend_from_slice(b"OK status=302 url=\"");
        redirect.write(request, why, client, group_name, out);
        out.extend_from_slice(b"\"\n");
    }

    /// Decides on one request and appends its line to `out`.
    fn check(
        &self,
        input: &str,
        group: GroupId,
        url: &mut NormUrl,
        out: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        let decision = self.decide(input, group, url);
        if matches!(self.format, Format::Json(_)) {
            serde_json::to_writer(&mut *out, &json(input, &decision))?;
            out.push(b'\n');
            return Ok(());
        }
        let action = decision.action.as_str();
        out.extend_from_slice(action.as_bytes());
        out.extend_from_slice(&b"      "[..6 - action.len().min(5)]);
        out.extend_from_slice(input.as_bytes());
        out.extend_from_slice(b" [");
        for (i, c) in decision.categories.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(c.slug().as_bytes());
        }
        writeln!(out, "] {}", decision.reason)
    }

    /// Decides on every line of `input`, in batches spread over `threads`, writing the answers
    /// in input order. A batch ends when no more input is buffered, so a caller feeding one
    /// line at a time gets each answer at once.
    fn stream(
        &self,
        mut input: BufReader<impl Read>,
        threads: usize,
        out: &mut impl Write,
    ) -> anyhow::Result<()> {
        let mut bytes: Vec<u8> = Vec::new();
        let mut lines: Vec<(usize, usize)> = Vec::new();
        let mut outputs: Vec<Vec<u8>> = vec![Vec::new(); threads];
        let mut urls: Vec<NormUrl> = vec![NormUrl::default(); threads];
        loop {
            bytes.clear();
            lines.clear();
            let mut eof = false;
            loop {
                // Every whole line buffered at once; a line cut by the buffer's end is read
                // on to its newline.
                let buffered = input.fill_buf().context("reading standard input")?;
                match memchr::memrchr(b'\n', buffered) {
                    Some(last) => {
                        bytes.extend_from_slice(&buffered[..=last]);
                        input.consume(last + 1);
                    }
                    None if buffered.is_empty() => eof = true,
                    None => {
                        input
                            .read_until(b'\n', &mut bytes)
                            .context("reading standard input")?;
                    }
                }
                // `buffer()` looks without reading (`fill_buf` would wait for the next line):
                // when nothing more is waiting, answer what we have.
                if eof || bytes.len() >= BATCH_BYTES || input.buffer().is_empty() {
                    break;
                }
            }
            // Bytes that are not UTF-8 read as U+FFFD (the line is still answered, as an
            // invalid URL where the host holds them), never a reason to stop the stream. The
            // strict check first: it is the fast one, and input almost always passes it.
            let text = match std::str::from_utf8(&bytes) {
                Ok(t) => std::borrow::Cow::Borrowed(t),
                Err(_) => String::from_utf8_lossy(&bytes),
            };
            let mut start = 0;
            for end in memchr::memchr_iter(b'\n', text.as_bytes()) {
                lines.push((start, end));
                start = end + 1;
            }
            if start < text.len() {
                lines.push((start, text.len())); // the last line, without its newline
            }
            let batch: Vec<&str> = lines.iter().map(|&(a, b)| &text[a..b]).collect();
            let checker = Checker {
                at: (self.clock)(),
                ..*self
            };
            let parts = if batch.len() >= 2048 { threads } else { 1 };
            let chunk = batch.len().div_ceil(parts).max(1);
            let used = batch.len().div_ceil(chunk);
            std::thread::scope(|scope| -> std::io::Result<()> {
                let mut jobs = Vec::new();
                for ((lines, buf), url) in batch
                    .chunks(chunk)
                    .zip(outputs.iter_mut())
                    .zip(urls.iter_mut())
                {
                    buf.clear();
                    jobs.push(
                        scope.spawn(move || {
                            lines.iter().try_for_each(|l| checker.answer(l, url, buf))
                        }),
                    );
                }
                for job in jobs {
                    job.join()
                        .map_err(|_| std::io::Error::other("a deciding thread panicked"))??;
                }
                Ok(())
            })?;
            for buf in &outputs[..used] {
                out.write_all(buf)?;
            }
            out.flush()?;
            if eof {
                return Ok(());
            }
        }
    }
}

/// The first word of `s` and what follows it, words being split on ASCII whitespace as
/// `str::split_ascii_whitespace` splits them; `None` when `s` is all whitespace. Squid's
/// lines are read a word or two at a time, and the URL is most of the line: its end is looked
/// for 16 bytes at a time (`lookout_lists::blocks`). Checked by blocks with a fold the
/// compiler vectorised, then byte by byte in the block with a space, the words read of a line
/// cost ~340 instructions, ~240 now (callgrind, `lookout check --threads 1 --squid` on the
/// lookup bench's lines).
fn first_word(s: &str) -> (Option<&str>, &str) {
    let b = s.as_bytes();
    let Some(start) = b.iter().position(|c| !c.is_ascii_whitespace()) else {
        return (None, "");
    };
    match blocks::find(&b[start..], ascii_whitespace) {
        Some(i) => {
            let end = start + i;
            // Both ends sit next to ASCII bytes, so they are character boundaries.
            (Some(&s[start..end]), &s[end..])
        }
        None => (Some(&s[start..]), ""),
    }
}

/// The bytes `u8::is_ascii_whitespace` holds: space, tab, line feed, form feed, return.
fn ascii_whitespace(v: u8x16) -> u8x16 {
    [b' ', b'\t', b'\n', 0x0c, b'\r']
        .map(|c| blocks::byte(c)(v))
        .into_iter()
        .fold(u8x16::default(), |m, c| m | c)
}

fn json(input: &str, d: &Decision) -> serde_json::Value {
    let category = match &d.reason {
        Reason::Illegal { category, .. } | Reason::Category { category, .. } => {
            Some(category.slug())
        }
        _ => None,
    };
    let schedule = match &d.reason {
        Reason::Category { schedule, .. } => schedule.clone(),
        _ => None,
    };
    let matched = d.reason.matched();
    serde_json::json!({
        "url": input,
        "action": d.action.as_str(),
        "categories": d.categories.iter().map(|c| c.slug()).collect::<Vec<_>>(),
        "reason": d.reason.to_string(),
        "rule": d.reason.rule(),
        "category": category,
        "source": matched.map(|m| &*m.source),
        "entry": matched.map(|m| m.entry.as_str()),
        "schedule": schedule,
    })
}

fn parse_at(s: &str) -> Option<LocalTime> {
    let (day, time) = s.trim().split_once(' ')?;
    let minute = LocalTime::parse_hhmm(time)?;
    (minute < 1440).then_some(())?;
    Some(LocalTime {
        weekday: Weekday::parse(day)?,
        minute,
    })
}

pub(crate) fn now() -> LocalTime {
    let now = chrono::Local::now();
    LocalTime {
        weekday: Weekday::from_monday0(now.weekday().num_days_from_monday()),
        minute: (now.hour() * 60 + now.minute()) as u16,
    }
}

/// What `--redirect` writes for each byte of a value: the byte itself for RFC 3986's
/// unreserved characters, `%XX` for every other byte, so the value is safe in any part of the
/// URL and inside Squid's quotes. Packed little-endian: up to three bytes, then how many.
/// (The percent-encoding crate's iterator gives the same bytes for 4x the instructions: it
/// yields each run and each escape as a piece to copy; two thirds of the benchmark's lines
/// are refused and write one.)
const ENCODED: [u32; 256] = {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut t = [0u32; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
            c as u32 | 1 << 24
        } else {
            b'%' as u32 | (HEX[b >> 4] as u32) << 8 | (HEX[b & 15] as u32) << 16 | 3 << 24
        };
        b += 1;
    }
    t
};

/// Appends `value` percent-encoded (see [`ENCODED`]). Each byte's encoding is stored whole
/// (four bytes) into a buffer on the stack and the end moved on by its length: no branch per
/// byte (and no zeroing of `out`'s spare room, which `Vec::resize` does a byte at a time).
fn percent_encode(value: &str, out: &mut Vec<u8>) {
    const CHUNK: usize = 64;
    for chunk in value.as_bytes().chunks(CHUNK) {
        let mut buf = [0u8; 3 * CHUNK + 1];
        let mut n = 0;
        for &b in chunk {
            let e = ENCODED[usize::from(b)];
            buf[n..n + 4].copy_from_slice(&e.to_le_bytes());
            n += (e >> 24) as usize;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// `--redirect`: a URL with placeholders, checked once at start.
#[derive(Debug, PartialEq, Eq)]
struct Redirect {
    parts: Vec<Part>,
}

#[derive(Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    /// `%u`
    Url,
    /// `%t`
    Why,
    /// `%a`
    Client,
    /// `%g`
    Group,
}

impl Redirect {
    /// Splits the template; refuses an unknown placeholder, and anything that is not an
    /// `http`/`https` URL or that would break Squid's quoted answer.
    fn parse(template: &str) -> Result<Redirect, UsageError> {
        let bad = |why: &str| UsageError(format!("--redirect `{template}`: {why}"));
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut sample = String::new();
        let mut chars = template.chars();
        while let Some(c) = chars.next() {
            if c == '%' {
                let part = match chars.next() {
                    Some('%') => {
                        text.push('%');
                        sample.push('%');
                        continue;
                    }
                    Some('u') => Part::Url,
                    Some('t') => Part::Why,
                    Some('a') => Part::Client,
                    Some('g') => Part::Group,
                    Some(other) => {
                        return Err(bad(&format!(
                            "unknown placeholder `%{other}` (known: %u URL, %t category or rule, %a client address, %g group, %% a percent sign)"
                        )))
                    }
                    None => return Err(bad("ends with a lone `%` (write `%%` for a percent sign)")),
                };
                if !text.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut text)));
                }
                parts.push(part);
                sample.push('x');
            } else if c.is_whitespace() || c.is_control() || c == '"' || c == '\\' {
                return Err(bad(
                    "has a space, a quote or a backslash, which Squid's answer cannot carry",
                ));
            } else {
                text.push(c);
                sample.push(c);
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        match url::Url::parse(&sample) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => return Err(bad("is not an http:// or https:// URL")),
        }
        Ok(Redirect { parts })
    }

    /// Whether `%a` is used.
    fn wants_client(&self) -> bool {
        self.parts.contains(&Part::Client)
    }

    /// Appends the redirect for one refused request.
    fn write(&self, url: &str, why: &str, client: Option<IpAddr>, group: &str, out: &mut Vec<u8>) {
        let encode = percent_encode;
        for part in &self.parts {
            match part {
                Part::Text(t) => out.extend_from_slice(t.as_bytes()),
                Part::Url => encode(url, out),
                Part::Why => encode(why, out),
                Part::Client => encode(&client.map(|ip| ip.to_string()).unwrap_or_default(), out),
                Part::Group => encode(group, out),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads one line per `read`, as Squid writes requests: each line is a batch of its own.
    struct OneLineAtATime(Vec<&'static str>);

    impl Read for OneLineAtATime {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Ok(0);
            }
            let line = self.0.remove(0).as_bytes();
            buf[..line.len()].copy_from_slice(line);
            Ok(line.len())
        }
    }

    /// A Squid helper's setting: a `games.example` list, group `g` blocking games (plus
    /// `extra` configuration), every client in `g`, refusals to `http://b.example/%t`.
    fn games_helper(extra: &str) -> (tempfile::TempDir, Policy, lookout_loader::Loaded, Format) {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("games.domains"), "games.example\n").expect("list");
        let config = lookout_config::Config::from_toml(&format!(
            "[[lists.source]]\nname = \"games\"\npath = \"{}/games.domains\"\nformat = \"domains\"\n\
             categories = [\"games\"]\n[groups.g]\nblock = [\"games\"]\n{extra}",
            dir.path().display()
        ))
        .expect("config");
        let policy = config.policy().expect("policy");
        let loaded = crate::lists::load_available(&config.lists, None).expect("lists");
        let format = Format::Squid {
            redirect: Redirect::parse("http://b.example/%t").expect("template"),
            clients: Networks::default(),
            fallback: policy.group_id("g"),
        };
        (dir, policy, loaded, format)
    }

    #[test]
    fn a_long_running_helper_follows_the_clock() {
        let (_dir, policy, loaded, format) = games_helper(
            "[[groups.g.schedule]]\nname = \"lunch\"\nfrom = \"12:00\"\nto = \"13:00\"\n\
             action = \"allow\"\ncategories = [\"games\"]\n",
        );
        // The clock says 11:00 at start and for the first request, then 12:30 (lunch).
        let reads = std::sync::atomic::AtomicUsize::new(0);
        let clock = || LocalTime {
            weekday: Weekday::Wed,
            minute: match reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed) {
                0 | 1 => 11 * 60,
                _ => 12 * 60 + 30,
            },
        };
        let checker = Checker::new(&policy, &loaded.index, &clock, &format);
        let input = OneLineAtATime(vec![
            "1 http://games.example/\n",
            "2 http://games.example/\n",
        ]);
        let mut out = Vec::new();
        checker
            .stream(BufReader::new(input), 1, &mut out)
            .expect("stream");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "1 OK status=302 url=\"http://b.example/games\"\n2 ERR\n"
        );
    }

    /// Reads `chunk` bytes at a time, cutting lines anywhere.
    struct Chunks(Vec<u8>, usize);

    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.1.min(self.0.len()).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0.drain(..n);
            Ok(n)
        }
    }

    /// Lines cut by a read (and by the reader's buffer) are answered whole, once each, in
    /// order, with a last line that has no newline; the same answers however input arrives.
    #[test]
    fn lines_cut_across_reads_are_answered_whole() {
        let (_dir, policy, loaded, format) = games_helper("");
        let clock = || LocalTime {
            weekday: Weekday::Wed,
            minute: 600,
        };
        let checker = Checker::new(&policy, &loaded.index, &clock, &format);
        let mut input = String::new();
        let mut want = String::new();
        for i in 0..500 {
            let (host, answer) = match i % 3 {
                0 => (
                    "games.example",
                    "OK status=302 url=\"http://b.example/games\"",
                ),
                _ => ("other.example", "ERR"),
            };
            input.push_str(&format!(
                "{i} http://www.{host}/page{i}.html 10.0.0.1/- - GET\n"
            ));
            want.push_str(&format!("{i} {answer}\n"));
        }
        input.pop(); // the last line ends without a newline
        for chunk in [1, 7, 64, 4096] {
            for capacity in [16, 100, 1 << 20] {
                let reader =
                    BufReader::with_capacity(capacity, Chunks(input.clone().into(), chunk));
                let mut out = Vec::new();
                checker.stream(reader, 2, &mut out).expect("stream");
                assert_eq!(
                    String::from_utf8_lossy(&out),
                    want,
                    "chunk {chunk}, buffer {capacity}"
                );
            }
        }
    }

    #[test]
    fn redirect_templates() {
        // (template, Ok(expansion for url `http://a.example/x?y=1 z`, why `gambling`,
        // client 10.0.0.7, group `learners`) | Err(part of the message))
        let table: &[(&str, Result<&str, &str>)] = &[
            (
                "http://block.example/?u=%u&c=%t&ip=%a&g=%g",
                Ok("http://block.example/?u=http%3A%2F%2Fa.example%2Fx%3Fy%3D1%20z&c=gambling&ip=10.0.0.7&g=learners"),
            ),
            ("https://b.example/100%%/%t", Ok("https://b.example/100%/gambling")),
            ("http://b.example/", Ok("http://b.example/")),
            ("http://b.example/?%x", Err("unknown placeholder `%x`")),
            ("http://b.example/%", Err("lone `%`")),
            ("http://b.example/a b", Err("a space, a quote or a backslash")),
            ("http://b.example/\"", Err("a space, a quote or a backslash")),
            ("ftp://b.example/", Err("not an http:// or https:// URL")),
            ("/blocked?u=%u", Err("not an http:// or https:// URL")),
        ];
        for (template, want) in table {
            let got = Redirect::parse(template).map(|r| {
                let mut out = Vec::new();
                let ip = "10.0.0.7".parse().ok();
                r.write(
                    "http://a.example/x?y=1 z",
                    "gambling",
                    ip,
                    "learners",
                    &mut out,
                );
                String::from_utf8(out).unwrap_or_default()
            });
            match (want, got) {
                (Ok(w), Ok(g)) => assert_eq!(&g, w, "{template}"),
                (Err(w), Err(e)) => assert!(e.0.contains(w), "{template}: {}", e.0),
                (w, g) => panic!("{template}: want {w:?}, got {g:?}"),
            }
        }
    }

    /// The table encoder writes what the percent-encoding crate writes with RFC 3986's
    /// unreserved set: every character up to U+FFFF and some beyond, alone and in runs,
    /// appended after what the buffer already holds.
    #[test]
    fn percent_encode_agrees_with_the_percent_encoding_crate() {
        const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~');
        let chars: Vec<char> = (0..0x1_0000)
            .chain(0x1_F600..0x1_F700)
            .filter_map(char::from_u32)
            .collect();
        let mut texts: Vec<String> = chars.iter().map(char::to_string).collect();
        texts.extend(chars.chunks(37).map(|c| c.iter().collect::<String>()));
        texts.push(String::new());
        texts.push("http://a.example/x?y=1 z&q=caf\u{e9}#f".into());
        for t in texts {
            let mut out = b"kept".to_vec();
            percent_encode(&t, &mut out);
            let want = format!(
                "kept{}",
                percent_encoding::utf8_percent_encode(&t, UNRESERVED)
            );
            assert_eq!(String::from_utf8(out).expect("ASCII"), want, "{t:?}");
        }
    }

    /// `first_word` splits as `split_ascii_whitespace` does, control characters and all.
    #[test]
    fn first_word_splits_as_the_standard_library() {
        let lines = [
            "",
            "   ",
            "http://a.example/ 10.0.0.1/- - GET",
            "  7 http://a.example/\t10.0.0.1/-\r",
            "a\x01b c",
            "\x0cform\x0bfeed\x0c x",
            "caf\u{e9} \u{a0}nbsp next",
            "one",
            "trailing ",
            "sixteen-byte-url sixteen-byte-url\x01sixteen-byte-url\tx",
            "a-long-url-of-thirty-one-bytes\x02 x",
        ];
        for line in lines {
            let want: Vec<&str> = line.split_ascii_whitespace().collect();
            let mut got = Vec::new();
            let mut rest = line;
            while let (Some(word), after) = first_word(rest) {
                got.push(word);
                rest = after;
            }
            assert_eq!(got, want, "{line:?}");
        }
    }
}
