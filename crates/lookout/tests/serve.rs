//! `lookout serve`, `lookout user` and `lookout log` as real processes: users added and
//! imported, a client through the proxy and a DNS query, SIGTERM, then the stored events.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

fn lookout(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    common::lookout_in(dir, args, stdin)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gambling.txt"), "casino.test\n").unwrap();
    let config = dir.path().join("lookout.toml");
    std::fs::write(
        &config,
        r#"
[[lists.source]]
name = "gambling"
path = "gambling.txt"
categories = ["gambling"]

[serve]
data_dir = "data"

[proxy]
listen = "127.0.0.1:0"

[dns]
listen = "127.0.0.1:0"
upstreams = ["127.0.0.1:9"]
timeout_ms = 200
"#,
    )
    .unwrap();
    (dir, config)
}

/// Starts `lookout serve` and returns it with the proxy and DNS addresses it printed.
fn serve(dir: &Path, config: &Path) -> (Child, SocketAddr, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut proxy, mut dns) = (None, None);
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("proxy: listening on ") {
            proxy = rest.parse().ok();
        }
        if let Some(rest) = line.strip_prefix("dns: listening on ") {
            dns = rest.split(' ').next().and_then(|a| a.parse().ok());
        }
        if line.starts_with("Lookout is running") {
            break;
        }
    }
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (
        child,
        proxy.expect("proxy address"),
        dns.expect("dns address"),
    )
}

#[test]
fn users_are_added_imported_and_listed() {
    let (dir, config) = setup();
    let c = config.to_str().unwrap();
    let d = dir.path();
    let o = lookout(
        d,
        &[
            "user",
            "add",
            "Amy",
            "--group",
            "learners",
            "--name",
            "Amy Smith",
            "--password-stdin",
            "-c",
            c,
        ],
        Some("amys-password\n"),
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = lookout(
        d,
        &["user", "add", "amy", "--group", "learners", "-c", c],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("a user named `amy` already exists"));
    let o = lookout(
        d,
        &["user", "add", "bob", "--group", "teachers", "-c", c],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("no group is named `teachers`"),
        "{}",
        text(&o)
    );

    std::fs::write(
        d.join("bad.csv"),
        "Username,Full Name,Group\nben,Ben B,learners\ncat,Cat C,wizards\nben,Ben Again,staff\nd e,D,staff\n",
    )
    .unwrap();
    let o = lookout(d, &["user", "import", "bad.csv", "-c", c], None);
    assert_eq!(o.status.code(), Some(2));
    let t = text(&o);
    assert!(t.contains("nothing was imported: 3 problem(s)"), "{t}");
    assert!(t.contains("bad.csv:3: no group is named `wizards`"), "{t}");
    assert!(t.contains("bad.csv:4: `ben` is also on line 2"), "{t}");
    assert!(t.contains("bad.csv:5: user name `d e` is not valid"), "{t}");

    std::fs::write(
        d.join("good.csv"),
        "username,group,name\nben,learners,Ben B\namy,staff,Amy Smith\n",
    )
    .unwrap();
    let o = lookout(d, &["user", "import", "good.csv", "-c", c], None);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("1 user(s) added, 1 updated"),
        "{}",
        text(&o)
    );

    let o = lookout(d, &["user", "disable", "ben", "-c", c], None);
    assert!(o.status.success());
    let o = lookout(d, &["user", "list", "-c", c], None);
    let t = text(&o);
    assert!(
        t.contains("amy") && t.contains("staff") && t.contains("active"),
        "{t}"
    );
    assert!(t.contains("ben") && t.contains("disabled"), "{t}");
    assert!(t.contains("2 user(s)"));
}

fn dns_query(server: SocketAddr, name: &str) -> Message {
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket.send_to(&m.to_vec().unwrap(), server).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = socket.recv_from(&mut buf).unwrap();
    Message::from_vec(&buf[..n]).unwrap()
}

#[test]
fn serve_filters_logs_and_stops_gracefully() {
    let (dir, config) = setup();
    let d = dir.path();
    let c = config.to_str().unwrap();
    let o = lookout(
        d,
        &[
            "user",
            "add",
            "amy",
            "--group",
            "staff",
            "--password-stdin",
            "-c",
            c,
        ],
        Some("amys-password\n"),
    );
    assert!(o.status.success(), "{}", text(&o));

    let (mut child, proxy, dns) = serve(d, &config);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = |login: Option<(&str, &str)>| {
            let mut p = reqwest::Proxy::all(format!("http://{proxy}")).unwrap();
            if let Some((u, pw)) = login {
                p = p.basic_auth(u, pw);
            }
            reqwest::Client::builder().proxy(p).build().unwrap()
        };
        let r = client(None)
            .get("http://www.casino.test/")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403);
        let body = r.text().await.unwrap();
        assert!(
            body.contains("This page is blocked") && body.contains("learners-u18"),
            "{body}"
        );
        let r = client(Some(("amy", "amys-password")))
            .get("http://casino.test/?q=1")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403);
        assert!(r.text().await.unwrap().contains("amy (staff)"));
        let r = client(None)
            .get(format!("http://{proxy}/status"))
            .send()
            .await
            .unwrap();
        assert!(r
            .text()
            .await
            .unwrap()
            .contains("\"log\":{\"enabled\":true"));
    });

    let answer = dns_query(dns, "casino.test.");
    assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
    // The upstream (port 9, discard) never answers: SERVFAIL, quickly.
    let answer = dns_query(dns, "allowed.test.");
    assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);

    // SIGTERM, as a service manager sends it (the shell's built-in `kill`: no procps needed).
    let killed = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", child.id())])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");

    let o = lookout(
        d,
        &["log", "search", "--action", "block", "--json", "-c", c],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary: Vec<(String, String, String)> = events
        .iter()
        .map(|e| {
            (
                e["service"].as_str().unwrap().to_owned(),
                e["host"].as_str().unwrap().to_owned(),
                e["user"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("dns".to_owned(), "casino.test".to_owned(), "-".to_owned()),
            (
                "proxy".to_owned(),
                "casino.test".to_owned(),
                "amy".to_owned()
            ),
            (
                "proxy".to_owned(),
                "www.casino.test".to_owned(),
                "-".to_owned()
            ),
        ]
    );
    assert_eq!(events[1]["categories"][0], "gambling");

    let o = lookout(d, &["log", "tail", "-n", "4", "-c", c], None);
    let t = text(&o);
    assert!(
        t.contains("block") && t.contains("casino.test") && t.contains("LK-"),
        "{t}"
    );
    let o = lookout(d, &["log", "search", "--since", "yesterday", "-c", c], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("--since `yesterday`"), "{}", text(&o));
}
