//! The `lookout` command, run as a real process.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn lookout(args: &[&str], stdin: Option<&str>) -> Output {
    common::lookout_in(&repo(), args, stdin)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A folder with a `lookout.toml` keeping its data in `data/`, plus `extra` configuration.
fn data_dir(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("lookout.toml"),
        format!("[serve]\ndata_dir = \"data\"\n{extra}"),
    )
    .unwrap();
    dir
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("lookout-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, text).expect("write temp file");
    path
}

#[test]
fn config_example_is_valid_and_its_missing_lists_are_named() {
    let out = lookout(&["config", "example"], None);
    assert!(out.status.success());
    let path = temp_file("example.toml", &stdout(&out));
    // The example points at lists this machine does not have: the check says which.
    let check = lookout(&["config", "check", path.to_str().unwrap()], None);
    assert_eq!(check.status.code(), Some(2));
    let err = stderr(&check);
    assert!(
        err.contains("list source `ut1`: cannot read /var/lib/lookout/lists/ut1"),
        "{err}"
    );
}

#[test]
fn config_check_loads_the_lists() {
    let check = lookout(&["config", "check", "examples/college.toml"], None);
    assert!(check.status.success(), "{}", stderr(&check));
    let want = "OK (4 list source(s) in 4 file(s), 10 entries, 6 group(s))";
    assert!(stdout(&check).contains(want), "{}", stdout(&check));
}

#[test]
fn config_check_names_key_and_line_and_exits_2() {
    let path = temp_file(
        "bad.toml",
        "[groups.staff]\nblock = [\"games\"]\nwarn = [\"gamez\", \"illegal-terrorism\"]\n",
    );
    let out = lookout(&["config", "check", path.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("2 problems in the configuration"), "{err}");
    assert!(
        err.contains("line 3: groups.staff.warn: unknown category `gamez`"),
        "{err}"
    );
    assert!(
        err.contains("line 3: groups.staff.warn: `illegal-terrorism` is illegal content"),
        "{err}"
    );

    let path = temp_file("typo.toml", "[lists]\n\nstrikt = true\n");
    let out = lookout(&["config", "check", path.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("line 3"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unknown field `strikt`"),
        "{}",
        stderr(&out)
    );
    // Said once, not repeated as its own cause.
    assert_eq!(
        stderr(&out).matches("unknown field `strikt`").count(),
        1,
        "{}",
        stderr(&out)
    );
    let out = lookout(&["user", "list", "-c", path.to_str().unwrap()], None);
    assert_eq!(
        stderr(&out).matches("unknown field `strikt`").count(),
        1,
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_json_has_the_documented_fields() {
    let out = lookout(
        &[
            "check",
            "--config",
            "examples/college.toml",
            "--group",
            "learners-u18",
            "--json",
            "--at",
            "wed 12:00",
            "https://www.casino.example/roulette",
            "http://help.ads.example/",
            "not a url",
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 3);
    let casino = &lines[0];
    assert_eq!(casino["url"], "https://www.casino.example/roulette");
    assert_eq!(casino["action"], "block");
    assert_eq!(casino["categories"], serde_json::json!(["gambling"]));
    assert_eq!(casino["rule"], "category");
    assert_eq!(casino["source"], "sample-gambling");
    assert_eq!(casino["entry"], "casino.example");
    assert!(casino["reason"].as_str().unwrap().contains("Gambling"));
    // The adblock exception takes help.ads.example out of adverts.
    assert_eq!(lines[1]["action"], "allow");
    assert_eq!(lines[1]["categories"], serde_json::json!([]));
    assert_eq!(lines[2]["action"], "block");
    assert_eq!(lines[2]["rule"], "invalid-url");
}

#[test]
fn check_reads_squidguard_style_lines_from_stdin() {
    let input = "http://bet.example/ 10.0.0.1/- - GET\nhttp://ok.example/ 10.0.0.1/- - GET\n\nfree-host.example/abuse/x\n";
    let out = lookout(
        &[
            "check",
            "-c",
            "examples/college.toml",
            "-g",
            "it-staff",
            "-",
        ],
        Some(input),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let actions: Vec<&str> = text
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    // it-staff does not block gambling, but illegal content is blocked for everyone.
    assert_eq!(actions, ["allow", "allow", "block"], "{text}");
}

/// RFC 3986's unreserved characters kept, every other byte `%XX`.
fn percent_encode(s: &str) -> String {
    const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string()
}

/// A folder readable by everyone (Squid's helper runs as Squid's own user) holding
/// `lookout.toml`: examples/college.toml with its lists by absolute path, plus `networks`
/// (`(cidr, group)`).
fn college_with_networks(networks: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let lists = repo().join("examples/lists");
    let mut config = std::fs::read_to_string(repo().join("examples/college.toml"))
        .unwrap()
        .replace("path = \"lists/", &format!("path = \"{}/", lists.display()));
    for (cidr, group) in networks {
        config.push_str(&format!(
            "\n[[networks]]\ncidr = \"{cidr}\"\ngroup = \"{group}\"\n"
        ));
    }
    let path = dir.path().join("lookout.toml");
    std::fs::write(&path, config).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    (dir, path)
}

/// `lookout check --squid`: Squid's URL-rewrite helper protocol, as squidGuard speaks it.
#[test]
fn check_answers_squid_as_a_url_rewrite_helper() {
    let (dir, config) =
        college_with_networks(&[("10.1.0.0/16", "learners-u18"), ("10.2.0.0/16", "it-staff")]);
    let config = config.to_str().unwrap();
    let redirect = "http://lookout.example/blocked?u=%u&t=%t&a=%a&g=%g";
    let squid = |extra: &[&str], input: &str| {
        let mut args = vec!["check", "-c", config, "--squid", "--redirect", redirect];
        args.extend_from_slice(extra);
        args.push("-");
        let out = lookout(&args, Some(input));
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let blocked = |url: &str, why: &str, ip: &str, group: &str| {
        let u: String = percent_encode(url);
        format!(
            "OK status=302 url=\"http://lookout.example/blocked?u={u}&t={why}&a={ip}&g={group}\""
        )
    };
    // (request line, answer): the group comes from the client's network.
    let table = [
        (
            "http://bet.example/ 10.1.0.5/- - GET",
            blocked(
                "http://bet.example/",
                "gambling",
                "10.1.0.5",
                "learners-u18",
            ),
        ),
        ("http://bet.example/ 10.2.0.5/- - GET", "ERR".to_owned()),
        // Squid's channel IDs (concurrency) come back first.
        ("3 http://ok.example/ 10.1.0.5/- - GET", "3 ERR".to_owned()),
        (
            "4 bet.example:443 10.1.0.5/- - CONNECT",
            format!(
                "4 {}",
                blocked("bet.example:443", "gambling", "10.1.0.5", "learners-u18")
            ),
        ),
        // Illegal content is refused for every group; so are executables for learners.
        (
            "free-host.example/abuse/x 10.2.0.5/- - GET",
            blocked(
                "free-host.example/abuse/x",
                "illegal-child-abuse",
                "10.2.0.5",
                "it-staff",
            ),
        ),
        (
            "http://ok.example/setup.exe 10.1.0.5/- - GET",
            blocked(
                "http://ok.example/setup.exe",
                "download",
                "10.1.0.5",
                "learners-u18",
            ),
        ),
        (
            "http://[::1 10.1.0.5/- - GET",
            blocked("http://[::1", "invalid-url", "10.1.0.5", "learners-u18"),
        ),
        // A client in no network, without --group: refused, never waved through.
        (
            "http://ok.example/ 192.0.2.1/- - GET",
            blocked("http://ok.example/", "unknown-client", "192.0.2.1", ""),
        ),
        (
            "http://ok.example/",
            blocked("http://ok.example/", "unknown-client", "", ""),
        ),
        // Every line is answered, so Squid's answers never shift.
        ("", "ERR".to_owned()),
    ];
    let input: String = table.iter().map(|(l, _)| format!("{l}\n")).collect();
    let answers = squid(&[], &input);
    let got: Vec<&str> = answers.lines().collect();
    let want: Vec<&str> = table.iter().map(|(_, a)| a.as_str()).collect();
    assert_eq!(got, want, "{answers}");

    // `--group` is the group of clients in no network.
    let answers = squid(
        &["-g", "it-staff"],
        "http://bet.example/ 192.0.2.1/- - GET\n",
    );
    assert_eq!(answers, "ERR\n");

    // Many lines at once (from a file, so that one read holds them all) are decided on two
    // threads and answered in order.
    let input: String = (0..6000)
        .map(|i| {
            let host = if i % 3 == 0 {
                "bet.example"
            } else {
                "ok.example"
            };
            format!("{i} http://{host}/{i} 10.1.0.{}/- - GET\n", i % 250)
        })
        .collect();
    let file = dir.path().join("requests.txt");
    std::fs::write(&file, &input).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args([
            "check",
            "-c",
            config,
            "--squid",
            "--redirect",
            redirect,
            "--threads",
            "2",
            "-",
        ])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let answers = stdout(&out);
    let lines: Vec<&str> = answers.lines().collect();
    assert_eq!(lines.len(), 6000);
    for (i, line) in lines.iter().enumerate() {
        let (id, answer) = line.split_once(' ').unwrap();
        assert_eq!(id, i.to_string());
        assert_eq!(answer.starts_with("OK status=302"), i % 3 == 0, "{line}");
    }

    // Mistakes are named.
    for (args, message) in [
        (vec!["check", "-c", config, "--squid", "x"], "--redirect"),
        (
            vec![
                "check",
                "-c",
                config,
                "--squid",
                "--redirect",
                "http://b.example/%q",
                "x",
            ],
            "unknown placeholder `%q`",
        ),
        (
            vec![
                "check",
                "-c",
                config,
                "--json",
                "--squid",
                "--redirect",
                redirect,
                "x",
            ],
            "cannot be used with",
        ),
    ] {
        let out = lookout(&args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
}

/// Lookout in squidGuard's place: a real Squid runs `lookout check --squid` as its URL-rewrite
/// helper; a plain HTTP client asks Squid for pages.
#[test]
fn squid_sends_refused_requests_to_the_block_page() {
    let (_dir, config) = college_with_networks(&[("127.0.0.0/8", "learners-u18")]);
    let helper = format!(
        "{} check -c {} --squid --redirect http://lookout.example/blocked?u=%u&t=%t -",
        env!("CARGO_BIN_EXE_lookout"),
        config.display()
    );
    let Some(squid) = lookout_testkit::Squid::start(&helper, 4) else {
        return;
    };
    // The origin: answers every request with a page.
    let origin = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let origin_port = origin.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in origin.incoming().flatten() {
            let mut conn = conn;
            let mut request = [0u8; 4096];
            let _ = std::io::Read::read(&mut conn, &mut request);
            let _ = conn.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 21\r\nConnection: close\r\n\r\nhello from the origin",
            );
        }
    });
    let get = |url: &str| -> String {
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", squid.port)).unwrap();
        conn.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        let host = url.split('/').nth(2).unwrap();
        write!(
            conn,
            "GET {url} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        let _ = std::io::Read::read_to_string(&mut conn, &mut response);
        response
    };
    // Allowed: Squid fetches the page.
    let page = get(&format!("http://127.0.0.1:{origin_port}/lesson.html"));
    assert!(
        page.starts_with("HTTP/1.1 200") && page.ends_with("hello from the origin"),
        "{page}\n{}",
        squid.log()
    );
    // Refused: the browser is sent to the block page, saying why (no DNS needed).
    for (url, why) in [
        ("http://bet.example/roulette", "gambling"),
        (
            &format!("http://127.0.0.1:{origin_port}/setup.exe") as &str,
            "download",
        ),
        ("http://free-host.example/abuse/x", "illegal-child-abuse"),
    ] {
        let answer = get(url);
        let u: String = percent_encode(url);
        let location = format!("Location: http://lookout.example/blocked?u={u}&t={why}\r\n");
        assert!(
            answer.starts_with("HTTP/1.1 302") && answer.contains(&location),
            "{url}: {answer}\n{}",
            squid.log()
        );
    }
}

#[test]
fn stdin_line_that_is_not_utf8_is_answered_and_the_rest_still_are() {
    // A squid helper is fed raw request lines: one with bytes that are not UTF-8 must not
    // stop the stream (it used to end `check` with an error naming no line).
    let input = b"http://bet.example/ 10.0.0.1/- - GET\nhttp://caf\xe9.example/\xff 10.0.0.1/- - GET\nhttp://ok.example/ 10.0.0.1/- - GET\n";
    let out = common::lookout_bytes_in(
        &repo(),
        &[
            "check",
            "-c",
            "examples/college.toml",
            "-g",
            "learners-u18",
            "-",
        ],
        Some(input),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("block http://bet.example/"), "{text}");
    assert!(lines[1].contains("caf\u{fffd}.example"), "{text}");
    assert!(lines[2].starts_with("allow http://ok.example/"), "{text}");
}

#[test]
fn unknown_group_is_a_usage_error() {
    let out = lookout(&["check", "--group", "nobody", "x.example"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no group `nobody`; the configured groups are: customers, guests"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn lists_stats_reports_sources_categories_and_memory() {
    let out = lookout(
        &["lists", "stats", "--config", "examples/college.toml"],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for want in [
        "sample-gambling",
        "hosts",
        "adblock",
        "gambling",
        "load time",
        "index memory",
        "entries accepted      10",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
}

#[test]
fn category_docs_match_the_command() {
    let out = lookout(&["lists", "categories"], None);
    let docs =
        std::fs::read_to_string(repo().join("docs/categories.md")).expect("docs/categories.md");
    let fenced = docs
        .split("```text\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .unwrap_or("");
    assert_eq!(
        fenced,
        stdout(&out),
        "docs/categories.md is stale: regenerate it from `lookout lists categories`"
    );
}

#[test]
fn threaded_stdin_keeps_input_order() {
    let hosts = [
        "casino.example",
        "ok.example",
        "social.example",
        "free-host.example/abuse/x",
        "bad%20host",
    ];
    let input: String = (0..6000)
        .map(|i| format!("http://{}/{i}\n", hosts[i % hosts.len()]))
        .collect();
    let run = |threads: &str| {
        let out = lookout(
            &[
                "check",
                "-c",
                "examples/college.toml",
                "-g",
                "learners",
                "--threads",
                threads,
                "-",
            ],
            Some(&input),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let one = run("1");
    assert_eq!(one.lines().count(), 6000);
    for (i, line) in one.lines().enumerate() {
        assert!(
            line.contains(&format!("/{i} ")),
            "line {i} out of order: {line}"
        );
    }
    assert_eq!(run("2"), one);
    assert_eq!(run("3"), one);
}

#[test]
fn strict_flag_fails_on_bad_lines_and_names_them() {
    let list = temp_file("bad.domains", "ok.example\nbad line\n");
    let config = temp_file(
        "strict.toml",
        &format!(
            "[[lists.source]]\nname = \"local\"\npath = {:?}\ncategories = [\"adverts\"]\n",
            list
        ),
    );
    let config = config.to_str().unwrap();
    let lenient = lookout(&["lists", "stats", "-c", config], None);
    assert!(lenient.status.success(), "{}", stderr(&lenient));
    assert!(
        stdout(&lenient).contains("bad.domains:2: unexpected space inside an entry: bad line"),
        "{}",
        stdout(&lenient)
    );
    let strict = lookout(&["lists", "stats", "-c", config, "--strict"], None);
    assert_eq!(strict.status.code(), Some(1));
    assert!(
        stderr(&strict).contains("bad.domains:2: unexpected space inside an entry: bad line"),
        "{}",
        stderr(&strict)
    );
    let check = lookout(
        &[
            "check",
            "-c",
            config,
            "-g",
            "staff",
            "--strict",
            "ok.example",
        ],
        None,
    );
    assert_eq!(check.status.code(), Some(1));
    assert!(stdout(&check).is_empty());
}

#[test]
fn each_stdin_line_is_answered_before_the_next_arrives() {
    use std::io::{BufRead, BufReader};
    use std::sync::mpsc;
    use std::time::Duration;

    let mut child = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args([
            "check",
            "-c",
            "examples/college.toml",
            "-g",
            "learners",
            "-",
        ])
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start lookout");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    for (url, want) in [
        ("http://bet.example/", "block"),
        ("http://ok.example/", "allow"),
    ] {
        stdin
            .write_all(format!("{url} 10.0.0.1/- - GET\n").as_bytes())
            .expect("write");
        stdin.flush().expect("flush");
        // Stdin stays open: the answer must come without waiting for more input.
        let answer = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("an answer while stdin is still open");
        assert!(answer.starts_with(want) && answer.contains(url), "{answer}");
    }
    drop(stdin);
    assert!(child.wait().expect("wait").success());
}

#[test]
fn scan_prints_findings_with_evidence_and_json() {
    let out = lookout(&["scan", "honestly I want to K1LL  MYSELF"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("danger   Suicide (suicide, content)"),
        "{text}"
    );
    assert!(text.contains("\"K1LL MYSELF\""), "{text}");
    let out = lookout(&["scan", "--json", "-"], Some("kys nobody likes you"));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v[0]["category"], "bullying");
    assert_eq!(v[0]["severity"], "danger");
    assert_eq!(v[0]["matches"][0]["evidence"], "kys");
    let out = lookout(&["scan", "this maths exam is killing me"], None);
    assert_eq!(stdout(&out), "no findings\n");
}

#[test]
fn scan_uses_the_organisations_phrases_and_names_bad_lines() {
    let phrases = temp_file(
        "phrases.txt",
        "category: drugs\nlanguage: en\ncaution 50 blue pills | party pills\n",
    );
    let e2g = temp_file("weighted", "< sniff glue ><60>\n< glue stick ><-60>\n");
    let config = temp_file(
        "scan.toml",
        &format!(
            "[scan]\nphrases = [{:?}]\n[[scan.e2guardian]]\nfile = {:?}\ncategory = \"drugs\"\n",
            phrases, e2g
        ),
    );
    let c = config.to_str().unwrap();
    let out = lookout(&["scan", "-c", c, "who has party pills"], None);
    assert!(stdout(&out).contains("caution  Drugs"), "{}", stdout(&out));
    let out = lookout(&["scan", "-c", c, "they sniff glue behind the gym"], None);
    assert!(stdout(&out).contains("caution  Drugs"), "{}", stdout(&out));
    let out = lookout(&["scan", "stats", "-c", c], None);
    assert!(
        stdout(&out).contains("drugs              e2guardian     1"),
        "{}",
        stdout(&out)
    );

    std::fs::write(&phrases, "category: drugs\nlanguage: en\ncaution fifty x\n").unwrap();
    let out = lookout(&["scan", "-c", c, "text"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("phrases.txt:3: expected a weight from 1 to 1000"),
        "{}",
        stderr(&out)
    );
    let bad = temp_file(
        "bad-scan.toml",
        "[scan]\n[[scan.e2guardian]]\nfile = \"x\"\ncategory = \"drgs\"\n",
    );
    let out = lookout(&["scan", "-c", bad.to_str().unwrap(), "text"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("scan.e2guardian[0].category"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn scan_eval_reports_per_category_and_lists_mistakes() {
    let corpus = temp_file(
        "corpus.tsv",
        "en\tsuicide:danger\ti want to die\nen\tnone\tbreast cancer research\nen\tnone\tdrug dealer in the film\n",
    );
    let out = lookout(
        &["scan", "eval", "--mistakes", corpus.to_str().unwrap()],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("false alerts on innocent text: 1/2 =  0.500"),
        "{text}"
    );
    assert!(text.contains(":3    want none"), "{text}");
    let bad = temp_file("bad.tsv", "en\tsuicide\tx\n");
    let out = lookout(&["scan", "eval", bad.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("bad.tsv:1: expected category:advisory|caution|danger"));
}

#[test]
fn export_verify_accepts_a_signed_export_and_names_tampering() {
    let key = lookout_auth::SigningKey::generate();
    let document = serde_json::json!({
        "kind": lookout_console::EXPORT_KIND, "exported_by": "dee", "exported_ms": 1_800_000_000_000_i64,
        "incident": {"reference": "INC-2027-0003"}, "chronology": [],
    });
    let envelope = serde_json::json!({"document": document, "signature": {
        "signer": "dee", "key_id": 1, "public_key": key.public(),
        "value": key.sign(&lookout_auth::canonical_json(&document)),
    }});
    let text = serde_json::to_string_pretty(&envelope).unwrap();
    let good = temp_file("export-good.json", &text);
    let o = lookout(&["export", "verify", good.to_str().unwrap()], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("signature valid: incident INC-2027-0003"),
        "{}",
        stdout(&o)
    );
    let bad = temp_file(
        "export-bad.json",
        &text.replace("INC-2027-0003", "INC-2027-0004"),
    );
    let o = lookout(&["export", "verify", bad.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("NOT VALID"), "{}", stdout(&o));
    let o = lookout(&["export", "verify", "/nonexistent/export.json"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/export.json"));
}

#[test]
fn report_board_writes_a_self_contained_page_and_checks_its_dates() {
    let dir = data_dir("[console]\norganisation = \"Ixion Holdings\"\n");
    let run = |args: &[&str]| common::lookout_in(dir.path(), args, None);
    for (args, says) in [
        (
            ["--from", "2026-13-01", "--to", "2026-12-31"],
            "--from `2026-13-01` is not a date",
        ),
        (
            ["--from", "2026-12-31", "--to", "2026-09-01"],
            "--from 2026-12-31 is after --to 2026-09-01",
        ),
    ] {
        let o = run(&[
            "report",
            "board",
            args[0],
            args[1],
            args[2],
            args[3],
            "--out",
            "b.html",
            "-c",
            "lookout.toml",
        ]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains(says), "{}", stderr(&o));
    }
    let o = run(&[
        "report",
        "board",
        "--from",
        "2026-09-01",
        "--to",
        "2026-12-31",
        "--out",
        "b.html",
        "-c",
        "lookout.toml",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("written to b.html"), "{}", stdout(&o));
    let page = std::fs::read_to_string(dir.path().join("b.html")).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    assert!(
        page.contains("E-safety report for the Board — Ixion Holdings"),
        "{page}"
    );
    assert!(page.contains("@media print"), "{page}");
    assert!(
        !page.contains("<script") && !page.contains("src=\"http"),
        "self-contained"
    );
    let o = run(&[
        "audit",
        "list",
        "--action",
        "report.board",
        "-c",
        "lookout.toml",
    ]);
    assert!(stdout(&o).contains("report.board"), "{}", stdout(&o));
}

#[test]
fn retention_purge_runs_now_and_is_audited() {
    let dir = data_dir("[retention]\nactivity_days = 7\n");
    let run = |args: &[&str]| common::lookout_in(dir.path(), args, None);
    let o = run(&["retention", "purge", "-c", "lookout.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        "deleted 0 activity events, 0 DNS events, 0 alerts, 0 kept texts, 0 incidents"
    );
    let o = run(&[
        "audit",
        "list",
        "--action",
        "retention.",
        "-c",
        "lookout.toml",
    ]);
    assert!(stdout(&o).contains("retention.purge"), "{}", stdout(&o));
}

#[test]
fn privacy_export_writes_json_and_a_page_and_names_unknown_users() {
    let dir = data_dir("");
    let run = |args: &[&str], stdin: Option<&str>| common::lookout_in(dir.path(), args, stdin);
    let o = run(
        &[
            "user",
            "add",
            "amy",
            "-g",
            "learners-u18",
            "--password-stdin",
            "-c",
            "lookout.toml",
        ],
        Some("amy's long password"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(
        &[
            "privacy",
            "export",
            "nobody",
            "--out",
            "sar",
            "-c",
            "lookout.toml",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("there is no user called `nobody`"),
        "{}",
        stderr(&o)
    );
    let o = run(
        &[
            "privacy",
            "export",
            "Amy",
            "--out",
            "sar",
            "-c",
            "lookout.toml",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("review before release"),
        "{}",
        stdout(&o)
    );
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("sar/amy-data.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["records"][0]["rows"][0]["username"], "amy");
    let page = std::fs::read_to_string(dir.path().join("sar/amy-data.html")).unwrap();
    assert!(
        page.contains("Data held about amy") && !page.contains("argon2"),
        "{page}"
    );
    let o = run(
        &[
            "audit",
            "list",
            "--action",
            "privacy.",
            "-c",
            "lookout.toml",
        ],
        None,
    );
    assert!(stdout(&o).contains("privacy.export"), "{}", stdout(&o));
}

#[test]
fn backup_is_checked_and_restore_moves_the_current_database_aside() {
    let dir = data_dir("");
    let run = |args: &[&str], stdin: Option<&str>| common::lookout_in(dir.path(), args, stdin);
    let add = |name: &str| {
        let o = run(
            &[
                "user",
                "add",
                name,
                "-g",
                "staff",
                "--password-stdin",
                "-c",
                "lookout.toml",
            ],
            Some("a long enough password"),
        );
        assert!(o.status.success(), "{}", stderr(&o));
    };
    let users = || stdout(&run(&["user", "list", "-c", "lookout.toml"], None));
    add("amy");
    // A retention purge writes an audit row, so the chain has something to verify.
    assert!(run(&["retention", "purge", "-c", "lookout.toml"], None)
        .status
        .success());

    let o = run(&["backup", "--out", "b1.db", "-c", "lookout.toml"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("backup written to b1.db")
            && out.contains("SQLite integrity check: ok")
            && out.contains("audit log intact: "),
        "{out}"
    );
    // The copy and the data folder are their owner's alone.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| {
        std::fs::metadata(dir.path().join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("b1.db"), 0o600);
    assert_eq!(mode("data"), 0o700);
    // Never over an existing file.
    let o = run(&["backup", "--out", "b1.db", "-c", "lookout.toml"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("a file is already there"),
        "{}",
        stderr(&o)
    );

    add("bob");
    assert!(users().contains("bob"));
    // Restoring over a database needs --replace.
    let o = run(&["restore", "b1.db", "-c", "lookout.toml"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--replace"), "{}", stderr(&o));
    // A damaged backup is refused and nothing changes.
    std::fs::write(dir.path().join("junk.db"), b"not a database at all").unwrap();
    let o = run(
        &["restore", "junk.db", "--replace", "-c", "lookout.toml"],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("junk.db is not a usable backup")
            && stderr(&o).contains("nothing was restored"),
        "{}",
        stderr(&o)
    );
    assert!(users().contains("bob"));
    // So is an empty file (SQLite would take it as an empty database).
    std::fs::write(dir.path().join("empty.db"), b"").unwrap();
    let o = run(
        &["restore", "empty.db", "--replace", "-c", "lookout.toml"],
        None,
    );
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("empty.db is not a usable backup"),
        "{}",
        stderr(&o)
    );
    assert!(users().contains("bob"));
    // A backup whose audit log was altered is refused too.
    let tampered = dir.path().join("tampered.db");
    std::fs::copy(dir.path().join("b1.db"), &tampered).unwrap();
    {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            use sqlx::Connection;
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite:{}", tampered.display()))
                .await
                .unwrap();
            // The append-only trigger stands in the way of an UPDATE: drop it, as an insider
            // with the file would.
            let triggers: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_log'",
            )
            .fetch_all(&mut c)
            .await
            .unwrap();
            for t in triggers {
                sqlx::query(&format!("DROP TRIGGER {t}"))
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
            sqlx::query("UPDATE audit_log SET detail = 'nothing happened'")
                .execute(&mut c)
                .await
                .unwrap();
            c.close().await.unwrap();
        });
    }
    let o = run(
        &["restore", "tampered.db", "--replace", "-c", "lookout.toml"],
        None,
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stdout(&o).contains("audit log ALTERED"), "{}", stdout(&o));
    assert!(users().contains("bob"));

    let o = run(
        &["restore", "b1.db", "--replace", "-c", "lookout.toml"],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("the database it replaced is kept at"),
        "{}",
        stdout(&o)
    );
    let now = users();
    assert!(now.contains("amy") && !now.contains("bob"), "{now}");
    assert_eq!(mode("data/lookout.db"), 0o600);
    // The replaced database is still there, with bob in it.
    let aside: Vec<_> = std::fs::read_dir(dir.path().join("data"))
        .unwrap()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            // Its journal, if it had one then, moves with it.
            name.starts_with("lookout.db.before-restore-")
                && !name.ends_with("-wal")
                && !name.ends_with("-shm")
        })
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    // The backup file itself is unchanged by restoring it (a copy is checked and moved in).
    let before = std::fs::read(dir.path().join("b1.db")).unwrap();
    let o = run(
        &["restore", "b1.db", "--replace", "-c", "lookout.toml"],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(dir.path().join("b1.db")).unwrap(), before);
}

/// `packaging/install.sh` into a scratch root: the binary, the unit, the example configuration
/// (kept when one is there), the data folders; and systemd's own checker accepts the unit.
#[test]
fn install_script_lays_out_a_service_that_systemd_accepts() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let install = || {
        Command::new("bash")
            .arg(repo().join("packaging/install.sh"))
            .arg(env!("CARGO_BIN_EXE_lookout"))
            .env("DESTDIR", r)
            .output()
            .unwrap()
    };
    let o = install();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    for f in [
        "usr/local/bin/lookout",
        "etc/systemd/system/lookout.service",
        "etc/lookout/lookout.toml",
        "var/lib/lookout/lists",
    ] {
        assert!(r.join(f).exists(), "{f} was not installed");
    }
    let config = r.join("etc/lookout/lookout.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    // The unit's data folder is the configuration's.
    assert!(text.contains("data_dir = \"/var/lib/lookout\""), "{text}");
    let check = lookout(&["config", "check", config.to_str().unwrap()], None);
    assert_eq!(check.status.code(), Some(2));
    assert!(
        stderr(&check).contains("cannot read /var/lib/lookout/lists/ut1"),
        "{}",
        stderr(&check)
    );
    // An edited configuration is never overwritten.
    std::fs::write(&config, format!("# edited here\n{text}")).unwrap();
    let o = install();
    assert!(o.status.success());
    assert!(
        stdout(&o).contains("kept the existing configuration"),
        "{}",
        stdout(&o)
    );
    assert!(std::fs::read_to_string(&config)
        .unwrap()
        .starts_with("# edited here"));

    let unit = std::fs::read_to_string(r.join("etc/systemd/system/lookout.service")).unwrap();
    assert!(unit.contains("ReadWritePaths=/var/lib/lookout"));
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs systemd-analyze (Debian package systemd) to check the unit"
        );
        eprintln!("SKIPPED: systemd-analyze is not installed; the unit was not checked");
        return;
    }
    // The checker wants the ExecStart binaries to exist: point them at the installed one.
    let checked = r.join("lookout.service");
    let installed = r.join("usr/local/bin/lookout");
    std::fs::write(
        &checked,
        unit.replace("/usr/local/bin/lookout", installed.to_str().unwrap()),
    )
    .unwrap();
    let o = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&checked)
        .output()
        .unwrap();
    let said = format!("{}{}", stdout(&o), stderr(&o));
    assert!(o.status.success(), "{said}");
    // Unknown keys and bad values are only warnings to systemd: none is allowed here.
    assert!(
        !said.contains("ignoring") && !said.contains("Unknown"),
        "{said}"
    );
}

/// `lookout lists update` over HTTPS: the publisher's certificate trusted through the system
/// store's `SSL_CERT_FILE`; a second run asks with the ETag and changes nothing; an
/// untrusted certificate is refused, the copy kept.
#[test]
fn lists_update_downloads_over_https_and_checks_the_certificate() {
    use lookout_testkit::{ListReply, ListServer};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let publisher = runtime.block_on(ListServer::start(
        ListReply {
            status: 200,
            body: b"casino.test\npoker.test\n".to_vec(),
            etag: Some("\"abc\"".into()),
        },
        true,
    ));
    let dir = data_dir(&format!(
        "[[lists.source]]\nname = \"published\"\nurl = \"https://localhost:{}/gambling.txt\"\ncategories = [\"gambling\"]\n[groups.staff]\n",
        publisher.addr.port()
    ));
    let d = dir.path();
    let ca = d.join("publisher.pem");
    std::fs::write(&ca, publisher.cert_pem.as_deref().unwrap()).unwrap();
    let update = |trust: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_lookout"))
            .args(["lists", "update", "-c", "lookout.toml"])
            .env("SSL_CERT_FILE", trust)
            .current_dir(d)
            .output()
            .unwrap()
    };
    let o = update(&ca);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("published: downloaded 2 entries"),
        "{}",
        stdout(&o)
    );
    let copy = d.join("data/lists/published");
    assert_eq!(
        std::fs::read_to_string(&copy).unwrap(),
        "casino.test\npoker.test\n"
    );
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.join("data/lists/published.subscription.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(meta["etag"], "\"abc\"");
    assert_eq!(meta["entries"], 2);
    let o = update(&ca);
    assert!(stdout(&o).contains("published: current"), "{}", stdout(&o));
    assert_eq!(publisher.requests(), vec![None, Some("\"abc\"".into())]);
    // `check` reads the copy like any list.
    let o = common::lookout_in(
        d,
        &[
            "check",
            "-c",
            "lookout.toml",
            "--group",
            "staff",
            "poker.test",
        ],
        None,
    );
    assert!(stdout(&o).contains("block"), "{}", stdout(&o));
    // A certificate nobody trusts: refused, the copy stays, the exit code says so.
    let other = d.join("other.pem");
    std::fs::write(&other, another_certificate()).unwrap();
    publisher.set(ListReply {
        status: 200,
        body: b"changed.test\n".to_vec(),
        etag: Some("\"def\"".into()),
    });
    let o = update(&other);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("published: not updated: cannot download https://localhost:"),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).to_lowercase().contains("certificate"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        std::fs::read_to_string(&copy).unwrap(),
        "casino.test\npoker.test\n"
    );
}

/// Some other self-signed certificate (a second list server's), as PEM.
fn another_certificate() -> String {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let other = runtime.block_on(lookout_testkit::ListServer::start(
        lookout_testkit::ListReply {
            status: 404,
            body: Vec::new(),
            etag: None,
        },
        true,
    ));
    other.cert_pem.unwrap()
}

/// With the records on PostgreSQL, `backup` and `restore` say to use PostgreSQL's own tools and
/// touch nothing (they copy an SQLite file); the server is not even asked.
#[test]
fn backup_and_restore_point_to_pg_dump_for_a_postgresql_store() {
    let dir = data_dir("[store]\nurl = \"postgres://lookout@127.0.0.1:9/lookout\"\n");
    std::fs::write(dir.path().join("b1.db"), b"a backup").unwrap();
    for args in [
        &["backup", "--out", "b2.db", "-c", "lookout.toml"][..],
        &["restore", "b1.db", "--replace", "-c", "lookout.toml"][..],
    ] {
        let o = common::lookout_in(dir.path(), args, None);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("back them up with pg_dump and restore with pg_restore"),
            "{}",
            stderr(&o)
        );
    }
    assert!(!dir.path().join("b2.db").exists());
    assert!(!dir.path().join("data").exists(), "nothing was created");
}
