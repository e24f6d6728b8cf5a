//! Running `lookout serve` as a real process for the integration tests: a configuration with
//! every server on a free loopback port, the addresses it printed, and a clean stop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub(crate) fn lookout(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    super::lookout_in(dir, args, stdin)
}

pub(crate) fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub(crate) fn setup() -> (tempfile::TempDir, PathBuf) {
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

# The tests' origins run on 127.0.0.1, which the proxy reaches only when told (Lookout's own
# listeners there stay refused).
[[proxy.internal]]
cidr = "127.0.0.1/32"

[dns]
listen = "127.0.0.1:0"
upstreams = ["127.0.0.1:9"]
timeout_ms = 200

[console]
listen = "127.0.0.1:0"
"#,
    )
    .unwrap();
    (dir, config)
}

/// As [`setup`], with a real OpenID Provider (`lookout_testkit::OidcProvider`) knowing `people`
/// and Lookout as its client: the console on a free port fixed now, reached as
/// `http://{host}:{port}` (where the provider sends browsers back), and an `[oidc]` section
/// ending with `oidc` (more keys of it, its rules, and any tables after). Returns the folder,
/// the configuration, the provider and the console's address; `None` when the provider is not
/// installed (outside CI).
pub(crate) fn setup_with_provider(
    host: &str,
    people: &serde_json::Value,
    oidc: &str,
) -> Option<(
    tempfile::TempDir,
    PathBuf,
    lookout_testkit::OidcProvider,
    String,
)> {
    let port = lookout_testkit::free_port();
    let console = format!("http://{host}:{port}");
    let secret = "a-client-secret-for-tests";
    let idp = lookout_testkit::OidcProvider::start(
        people,
        &serde_json::json!({"client_id": "lookout", "client_secret": secret,
            "redirect_uris": [format!("{console}/sign-in/oidc/callback")]}),
    )?;
    let (dir, config) = setup();
    std::fs::write(dir.path().join("oidc-secret"), format!("{secret}\n")).unwrap();
    let base = std::fs::read_to_string(&config).unwrap().replace(
        "[console]\nlisten = \"127.0.0.1:0\"\n",
        &format!("[console]\nlisten = \"127.0.0.1:{port}\"\nurl = \"{console}\"\norganisation = \"Example College\"\n"),
    );
    std::fs::write(
        &config,
        format!(
            "{base}\n[oidc]\nissuer = \"{}\"\nclient_id = \"lookout\"\nclient_secret_file = \"oidc-secret\"\n\
             label = \"College 365\"\ndefault_group = \"staff\"\n{oidc}",
            idp.issuer
        ),
    )
    .unwrap();
    Some((dir, config, idp, console))
}

/// As [`setup`], with the records on the test database of `dir/data`
/// ([`lookout_store::testing::TestDb`]): the SQLite file there, or a PostgreSQL database of
/// its own when `LOOKOUT_TEST_POSTGRES` names a server (`[store] url`).
pub(crate) async fn setup_on_test_store(
) -> (tempfile::TempDir, PathBuf, lookout_store::testing::TestDb) {
    let (dir, config) = setup();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let db = lookout_store::testing::TestDb::new(&data).await.unwrap();
    if let lookout_store::testing::TestDb::Postgres(url) = &db {
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str(&format!("\n[store]\nurl = \"{url}\"\n"));
        std::fs::write(&config, text).unwrap();
    }
    (dir, config, db)
}

/// What `lookout serve` printed it listens on.
pub(crate) struct Listening {
    pub(crate) proxy: SocketAddr,
    pub(crate) dns: SocketAddr,
    pub(crate) console: SocketAddr,
    /// The portal's plain-HTTP listener, when `[portal] listen` is set.
    pub(crate) portal: Option<SocketAddr>,
    /// Everything printed on standard output so far (the first-run password).
    pub(crate) stdout: std::sync::Arc<std::sync::Mutex<String>>,
}

/// Starts `lookout serve` and returns it with the addresses it printed.
pub(crate) fn serve(dir: &Path, config: &Path) -> (Child, Listening) {
    let (child, at) = start(dir, &["serve", "--config", config.to_str().unwrap()]);
    let listening = Listening {
        proxy: at.proxy.expect("proxy address"),
        dns: at.dns.expect("dns address"),
        console: at.console.expect("console address"),
        portal: at.portal,
        stdout: at.stdout,
    };
    (child, listening)
}

/// What a `lookout serve` started with any arguments printed it listens on.
pub(crate) struct Started {
    pub(crate) proxy: Option<SocketAddr>,
    pub(crate) dns: Option<SocketAddr>,
    pub(crate) console: Option<SocketAddr>,
    pub(crate) portal: Option<SocketAddr>,
    pub(crate) stdout: std::sync::Arc<std::sync::Mutex<String>>,
    /// Every line it wrote on standard error so far.
    pub(crate) stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

/// Runs `lookout ARGS` in `dir` until it says it is running (panics with what it said if it
/// exits first).
pub(crate) fn start(dir: &Path, args: &[&str]) -> (Child, Started) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let out = BufReader::new(child.stdout.take().unwrap());
    let collected = stdout.clone();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            let mut s = collected.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut proxy, mut dns, mut console, mut portal) = (None, None, None, None);
    let mut running = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        {
            let mut s = stderr.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
        if let Some(rest) = line.strip_prefix("proxy: listening on ") {
            proxy = rest.parse().ok();
        }
        if let Some(rest) = line.strip_prefix("dns: listening on ") {
            dns = rest.split(' ').next().and_then(|a| a.parse().ok());
        }
        if let Some(rest) = line.strip_prefix("portal: listening on ") {
            portal = rest.split(' ').next().and_then(|a| a.parse().ok());
        }
        if let Some(rest) = line.strip_prefix("console: listening on ") {
            console = rest.split(' ').next().and_then(|a| a.parse().ok());
        }
        if line.starts_with("Lookout is running") {
            running = true;
            break;
        }
    }
    assert!(
        running,
        "lookout {args:?} stopped before it ran:\n{}",
        stderr.lock().unwrap()
    );
    // Keep draining stderr so the server never blocks on a full pipe.
    let collected = stderr.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let mut s = collected.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    let started = Started {
        proxy,
        dns,
        console,
        portal,
        stdout,
        stderr,
    };
    (child, started)
}

/// SIGTERM, as a service manager sends it (the shell's built-in `kill`: no procps needed),
/// then checks the server exits cleanly.
pub(crate) fn terminate(mut child: Child) {
    let killed = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", child.id())])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// The form field `name`'s value in a page.
pub(crate) fn form_field(html: &str, name: &str) -> String {
    let key = format!("name=\"{name}\" value=\"");
    let start = html.find(&key).expect("field") + key.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// A device whose HTTP goes through the proxy at `proxy`.
pub(crate) fn through(proxy: SocketAddr) -> reqwest::Client {
    signed_in(proxy, None)
}

/// A device whose HTTP goes through the proxy, sending `login` (user, password) with Basic.
pub(crate) fn signed_in(proxy: SocketAddr, login: Option<(&str, &str)>) -> reqwest::Client {
    let mut p = reqwest::Proxy::all(format!("http://{proxy}")).unwrap();
    if let Some((u, pw)) = login {
        p = p.basic_auth(u, pw);
    }
    reqwest::Client::builder().proxy(p).build().unwrap()
}

/// A learner's device searching for something risky through the proxy (the search engine's
/// name is pointed at a local origin by `[proxy.hosts]`).
pub(crate) async fn risky_search(proxy: SocketAddr, origin_port: u16) -> reqwest::Response {
    let device = through(proxy);
    let r = device
        .get(format!(
            "http://www.google.com:{origin_port}/search?q=how+many+paracetamol+to+die"
        ))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    r
}
