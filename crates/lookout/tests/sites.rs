//! A central and two site gateways as real processes on loopback ports: the gateways take
//! their lists, accounts and policy from the central, keep filtering with the last good copy
//! while it is down, and every event reaches it, once, across a central outage and a gateway
//! restart.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use common::server::{
    lookout, risky_search, setup, setup_on_test_store, signed_in, start, terminate, text, through,
};

/// A site's folder: its own configuration (listeners, networks) and the gateway token.
fn site(name: &str, token: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(format!("{name}.token")),
        format!("{token}\n"),
    )
    .unwrap();
    let config = dir.path().join("site.toml");
    std::fs::write(
        &config,
        r#"
[serve]
data_dir = "data"

[proxy]
listen = "127.0.0.1:0"

[[proxy.internal]]
cidr = "127.0.0.1/32"

[dns]
listen = "127.0.0.1:0"
upstreams = ["127.0.0.1:9"]
timeout_ms = 200

[proxy.hosts]
"www.google.com" = "127.0.0.1"

# The groups the site's networks name are the central's.
[[networks]]
cidr = "127.0.0.0/8"
group = "learners-u18"
"#,
    )
    .unwrap();
    (dir, config)
}

/// `lookout serve --role gateway` arguments: the central, the token file, `extra` (such as
/// `--central-ca FILE`), the configuration.
fn gateway_args<'a>(
    central: &'a str,
    token: &'a str,
    config: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "serve",
        "--role",
        "gateway",
        "--central",
        central,
        "--token-file",
        token,
    ];
    args.extend_from_slice(extra);
    args.extend(["-c", config]);
    args
}

fn gateway(dir: &Path, config: &Path, name: &str, central: &str) -> (Child, SocketAddr) {
    let token = dir.join(format!("{name}.token"));
    let (child, at) = start(
        dir,
        &gateway_args(
            central,
            token.to_str().unwrap(),
            config.to_str().unwrap(),
            &[],
        ),
    );
    assert!(at.console.is_none(), "a gateway runs no console");
    (child, at.proxy.expect("proxy address"))
}

/// Events the central holds from `site`.
fn central_events(dir: &Path, config: &str, site: &str) -> Vec<serde_json::Value> {
    let o = lookout(
        dir,
        &[
            "log", "search", "--site", site, "--limit", "10000", "--json", "-c", config,
        ],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn status(proxy: SocketAddr) -> serde_json::Value {
    through(proxy)
        .get("http://lookout.invalid/status")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `n` page requests through `proxy` to the origin, each allowed.
async fn browse(proxy: SocketAddr, origin: SocketAddr, tag: &str, n: usize) {
    let device = through(proxy);
    for i in 0..n {
        let r = device
            .get(format!("http://{origin}/{tag}/{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{tag}/{i}");
    }
}

#[test]
fn two_gateways_send_every_event_to_the_central_across_outages_and_restarts() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (origin, _requests) = runtime.block_on(lookout_testkit::http_sink());

    // The central: the lists, the groups (the defaults) and the accounts live here (on
    // PostgreSQL when LOOKOUT_TEST_POSTGRES names a server).
    let (cdir, config, db) = runtime.block_on(setup_on_test_store());
    let cd = cdir.path();
    let c = config.to_str().unwrap();
    // The central must come back on the same address.
    let port = lookout_testkit::free_port();
    let mut text_config = std::fs::read_to_string(&config).unwrap();
    text_config = text_config.replace(
        "[console]\nlisten = \"127.0.0.1:0\"",
        &format!("[console]\nlisten = \"127.0.0.1:{port}\"\nurl = \"http://127.0.0.1:{port}\""),
    );
    std::fs::write(&config, &text_config).unwrap();
    // The central forwards every event, its sites' too, to a SIEM.
    let siem = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    siem.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    text_config.push_str(&format!(
        "\n[log.syslog]\nserver = \"{}\"\nprotocol = \"udp\"\n",
        siem.local_addr().unwrap()
    ));
    std::fs::write(&config, &text_config).unwrap();
    let central = format!("http://127.0.0.1:{port}");
    let mut tokens = Vec::new();
    for name in ["north", "south"] {
        let o = lookout(
            cd,
            &["token", "add", name, "--scope", "gateway", "-c", c],
            None,
        );
        assert!(o.status.success(), "{}", text(&o));
        tokens.push(String::from_utf8_lossy(&o.stdout).trim().to_owned());
    }
    let o = lookout(
        cd,
        &["token", "add", "dsl-tool", "--scope", "alerts", "-c", c],
        None,
    );
    let dsl = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    // A site's name is a plain word.
    let o = lookout(
        cd,
        &["token", "add", "a b", "--scope", "gateway", "-c", c],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // A gateway cannot start with no central and no last good copy, and says why.
    let (ndir, nconfig) = site("north", &tokens[0]);
    let o = lookout(
        ndir.path(),
        &gateway_args(&central, "north.token", nconfig.to_str().unwrap(), &[]),
        None,
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains("there is no last good copy"),
        "{}",
        text(&o)
    );

    let (central_child, _) = start(cd, &["serve", "--config", c]);
    let (north, north_proxy) = gateway(ndir.path(), &nconfig, "north", &central);
    let (sdir, sconfig) = site("south", &tokens[1]);
    let (south, south_proxy) = gateway(sdir.path(), &sconfig, "south", &central);

    runtime.block_on(async {
        // The central's list blocks at both sites; the sites' own groups are gone.
        for proxy in [north_proxy, south_proxy] {
            let r = through(proxy)
                .get("http://casino.test/")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403);
            let s = status(proxy).await;
            assert_eq!(s["central"]["policy_from_last_good_copy"], false, "{s}");
            assert!(s["central"]["error"].is_null(), "{s}");
        }
        browse(north_proxy, origin, "north-a", 20).await;
        browse(south_proxy, origin, "south-a", 10).await;

        // A learner's risky search at a site reaches the DSL team's live inbox at the central,
        // marked with the site.
        let stream = reqwest::Client::new()
            .get(format!("{central}/api/v1/alerts/stream"))
            .bearer_auth(&dsl)
            .send()
            .await
            .unwrap();
        let mut live = lookout_testkit::sse_events(stream);
        assert_eq!(live.recv().await.unwrap().0, "ready");
        let sent = Instant::now();
        risky_search(north_proxy, origin.port()).await;
        let (event, alert) = tokio::time::timeout(Duration::from_secs(20), live.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(event, "alert");
        assert_eq!(alert["category"], "suicide");
        assert_eq!(alert["site"], "north", "{alert}");
        assert_eq!(alert["group"], "learners-u18");
        eprintln!(
            "a search at a site reached the central's live inbox in {:?}",
            sent.elapsed()
        );
    });
    // 22 and 11 events (the casino block and the search too), each once.
    wait_for(
        "the first events at the central",
        Duration::from_secs(20),
        || central_events(cd, c, "north").len() == 22 && central_events(cd, c, "south").len() == 11,
    );

    let mut datagram = [0u8; 9000];
    let mut from_sites = 0;
    // Until all have come (10 s at most), then half a second more for any repeat.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut quiet_until = None;
    loop {
        if let Ok(n) = siem.recv(&mut datagram) {
            let m = String::from_utf8_lossy(&datagram[..n]);
            if m.contains("cs5Label=site cs5=north") || m.contains("cs5Label=site cs5=south") {
                from_sites += 1;
            }
        }
        if from_sites >= 33 && quiet_until.is_none() {
            quiet_until = Some(Instant::now() + Duration::from_millis(500));
        }
        if quiet_until.is_some_and(|t| Instant::now() > t) || Instant::now() > deadline {
            break;
        }
    }
    assert_eq!(
        from_sites, 33,
        "each site event once at the SIEM, named with its site"
    );

    // The lists route: the list with its version, 304 when the gateway has it, a gateway
    // token needed, unknown names named.
    runtime.block_on(async {
        let http = reqwest::Client::new();
        let url = format!("{central}/api/v1/gateway/lists/gambling");
        let r = http.get(&url).bearer_auth(&tokens[0]).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let etag = r.headers()["etag"].to_str().unwrap().to_owned();
        assert_eq!(r.text().await.unwrap(), "casino.test\n");
        let r = http
            .get(&url)
            .bearer_auth(&tokens[0])
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 304);
        let r = http.get(&url).bearer_auth(&dsl).send().await.unwrap();
        assert_eq!(r.status(), 403, "an alerts token is not a gateway's");
        let r = http
            .get(format!("{central}/api/v1/gateway/lists/nope"))
            .bearer_auth(&tokens[0])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    });

    // The central stops: the sites keep filtering and keep their events.
    terminate(central_child);
    runtime.block_on(async {
        browse(north_proxy, origin, "north-b", 15).await;
        browse(south_proxy, origin, "south-b", 5).await;
        let r = through(north_proxy)
            .get("http://casino.test/b")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
    });
    let started = Instant::now();
    loop {
        let s = runtime.block_on(status(north_proxy));
        if s["central"]["backlog"].as_i64() == Some(16) && !s["central"]["error"].is_null() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{s}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // North restarts while the central is down: it serves with the last good copy and says so.
    terminate(north);
    let (north, north_proxy) = gateway(ndir.path(), &nconfig, "north", &central);
    runtime.block_on(async {
        let s = status(north_proxy).await;
        assert_eq!(s["central"]["policy_from_last_good_copy"], true, "{s}");
        let r = through(north_proxy)
            .get("http://casino.test/c")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "the lists are kept too");
        browse(north_proxy, origin, "north-c", 5).await;
    });

    // The central comes back on the same address: everything arrives, once.
    let (central_child, _) = start(cd, &["serve", "--config", c]);
    wait_for(
        "the backlog at the central",
        Duration::from_secs(30),
        || {
            central_events(cd, c, "north").len() == 22 + 16 + 6
                && central_events(cd, c, "south").len() == 11 + 5
        },
    );
    let north_events = central_events(cd, c, "north");
    let mut paths: Vec<&str> = north_events
        .iter()
        .map(|e| e["url"].as_str().unwrap())
        .collect();
    paths.sort_unstable();
    paths.dedup();
    assert_eq!(paths.len(), 22 + 16 + 6, "no event twice");
    assert!(north_events.iter().all(|e| e["site"] == "north"));
    // The IT team's monitoring sees each site.
    let metrics = runtime.block_on(async {
        reqwest::get(format!("{central}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    for want in [
        "lookout_site_events_received_total{site=\"north\"} 44",
        "lookout_site_events_received_total{site=\"south\"} 16",
        "lookout_site_backlog{site=\"north\"}",
        "lookout_site_last_seen_seconds{site=\"south\"}",
    ] {
        assert!(metrics.contains(want), "{want}: {metrics}");
    }

    // A second box given north's token is refused while north calls (the two would number
    // their events alike)...
    let (n2dir, n2config) = site("north", &tokens[0]);
    let o = lookout(
        n2dir.path(),
        &gateway_args(&central, "north.token", n2config.to_str().unwrap(), &[]),
        None,
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains("site `north` is served by another gateway"),
        "{}",
        text(&o)
    );
    // ...and north reinstalled (a new data folder, its rows numbered from 1 again) takes the
    // site over once the old one has gone quiet: its events are stored as new, not dropped as
    // repeats of the old box's numbers.
    terminate(north);
    std::fs::remove_dir_all(ndir.path().join("data")).unwrap();
    std::thread::sleep(Duration::from_millis(
        lookout_store::INSTANCE_SILENT_MS as u64 + 500,
    ));
    let (north, north_proxy) = gateway(ndir.path(), &nconfig, "north", &central);
    runtime.block_on(browse(north_proxy, origin, "north-d", 3));
    wait_for(
        "the reinstalled gateway's events",
        Duration::from_secs(20),
        || central_events(cd, c, "north").len() == 22 + 16 + 6 + 3,
    );

    // An account added at the central signs in at the sites within seconds.
    let o = lookout(
        cd,
        &[
            "user",
            "add",
            "bob",
            "--group",
            "staff",
            "--password-stdin",
            "-c",
            c,
        ],
        Some("correct horse battery\n"),
    );
    assert!(o.status.success(), "{}", text(&o));
    let started = Instant::now();
    runtime.block_on(async {
        loop {
            let r = signed_in(south_proxy, Some(("bob", "correct horse battery")))
                .get(format!("http://{origin}/bob"))
                .send()
                .await
                .unwrap();
            if r.status() == 204 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "{}",
                r.status()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    eprintln!(
        "a new account signed in at a site {:?} after it was added",
        started.elapsed()
    );
    wait_for(
        "bob's request at the central",
        Duration::from_secs(20),
        || {
            central_events(cd, c, "south")
                .iter()
                .any(|e| e["user"] == "bob" && e["group"] == "staff")
        },
    );

    // South is killed (kill -9) and starts again: the gap in its activity log is on record at
    // the central, naming the site.
    let mut south = south;
    south.kill().unwrap();
    south.wait().unwrap();
    let (south, south_proxy) = gateway(sdir.path(), &sconfig, "south", &central);
    let store = runtime.block_on(db.open()).unwrap();
    wait_for(
        "south's gap at the central",
        Duration::from_secs(20),
        || {
            runtime.block_on(store.log_gaps()).unwrap().iter().any(|g| {
                g.cause
                    .starts_with("site south: Lookout's run has no clean stop")
            })
        },
    );
    runtime.block_on(store.close());

    // A revoked token is refused at once.
    let o = lookout(cd, &["token", "revoke", "south", "-c", c], None);
    assert!(o.status.success(), "{}", text(&o));
    runtime.block_on(async {
        let started = Instant::now();
        loop {
            browse(south_proxy, origin, "south-d", 1).await;
            let s = status(south_proxy).await;
            if s["central"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("refused this gateway's token"))
            {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "{s}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    terminate(south);

    // The central comes back with groups this site's networks do not name: north refuses
    // that policy, says why, and goes on with the one it has (still its last good copy).
    terminate(central_child);
    let before = runtime.block_on(status(north_proxy))["central"]["policy_version"].clone();
    std::fs::write(
        &config,
        format!(
            "{text_config}\n[groups.staff]\nblock = [\"gambling\"]\n\n[[networks]]\ncidr = \"127.0.0.0/8\"\ngroup = \"staff\"\n"
        ),
    )
    .unwrap();
    let (central_child, _) = start(cd, &["serve", "--config", c]);
    let started = Instant::now();
    loop {
        let s = runtime.block_on(status(north_proxy));
        if s["central"]["policy_refused"]
            .as_str()
            .is_some_and(|e| e.contains("do not fit this site"))
        {
            assert_eq!(s["central"]["policy_version"], before, "{s}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{s}");
        std::thread::sleep(Duration::from_millis(200));
    }
    runtime.block_on(async {
        let r = through(north_proxy)
            .get("http://casino.test/e")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "still filtering with the policy it had");
        // Events still go to the central meanwhile; the refusal stays shown.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let s = status(north_proxy).await;
        assert!(s["central"]["policy_refused"].is_string(), "{s}");
        assert!(s["central"]["error"].is_null(), "{s}");
    });
    let copy =
        std::fs::read_to_string(ndir.path().join("data").join("central-policy.json")).unwrap();
    assert!(
        copy.contains(before.as_str().unwrap()),
        "the last good copy is kept"
    );
    terminate(north);
    terminate(central_child);
}

/// Site to central over HTTPS: the central serves its console with `[console] tls_cert`, the
/// gateway trusts its CA (`--central-ca`) and works; a gateway that does not trust it gets
/// nothing and says why; plain http to another machine is refused before anything is sent.
#[test]
fn a_gateway_reaches_its_central_over_https_with_the_central_s_certificate() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (origin, _requests) = runtime.block_on(lookout_testkit::http_sink());
    let (cdir, config) = setup();
    let cd = cdir.path();
    let c = config.to_str().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    std::fs::write(cd.join("console.pem"), cert.cert.pem()).unwrap();
    std::fs::write(cd.join("console.key"), cert.key_pair.serialize_pem()).unwrap();
    let port = lookout_testkit::free_port();
    let mut text_config = std::fs::read_to_string(&config).unwrap();
    text_config = text_config.replace(
        "[console]\nlisten = \"127.0.0.1:0\"",
        &format!(
            "[console]\nlisten = \"127.0.0.1:{port}\"\nurl = \"https://localhost:{port}\"\ntls_cert = \"console.pem\"\ntls_key = \"console.key\""
        ),
    );
    std::fs::write(&config, &text_config).unwrap();
    let o = lookout(
        cd,
        &["token", "add", "west", "--scope", "gateway", "-c", c],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    let token = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    let (central_child, at) = start(cd, &["serve", "--config", c]);
    assert!(at
        .stderr
        .lock()
        .unwrap()
        .contains("(HTTPS; safeguarding console"));
    let central = format!("https://localhost:{port}");

    let (wdir, wconfig) = site("west", &token);
    let w = wdir.path();
    let wc = wconfig.to_str().unwrap();
    std::fs::copy(cd.join("console.pem"), w.join("central-ca.pem")).unwrap();
    // Not trusted: no policy, no start, and the reason.
    let o = lookout(w, &gateway_args(&central, "west.token", wc, &[]), None);
    assert!(!o.status.success());
    assert!(text(&o).contains("certificate"), "{}", text(&o));
    // Plain http to another machine: refused at once.
    let o = lookout(
        w,
        &gateway_args("http://192.0.2.1:8080", "west.token", wc, &[]),
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("use https://"), "{}", text(&o));
    // A portal network at a site is refused (the briefing lives at the central), not skipped;
    // so are groups of the site's own (they are the central's).
    let site_text = std::fs::read_to_string(&wconfig).unwrap();
    for (file, text_in, want) in [
        (
            "portal.toml",
            site_text.replace(
                "group = \"learners-u18\"",
                "group = \"learners-u18\"\nlogin = \"portal\"",
            ),
            "login = \"portal\", which a site gateway does not offer yet",
        ),
        (
            "groups.toml",
            format!("{site_text}\n[groups.mine]\nblock = [\"gambling\"]\n"),
            "[groups] comes from the central at a site gateway",
        ),
    ] {
        std::fs::write(w.join(file), text_in).unwrap();
        let o = lookout(
            w,
            &gateway_args(
                &central,
                "west.token",
                file,
                &["--central-ca", "central-ca.pem"],
            ),
            None,
        );
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(text(&o).contains(want), "{want}: {}", text(&o));
    }

    let (west, west_proxy) = {
        let (child, at) = start(
            w,
            &gateway_args(
                &central,
                "west.token",
                wc,
                &["--central-ca", "central-ca.pem"],
            ),
        );
        (child, at.proxy.unwrap())
    };
    runtime.block_on(async {
        let r = through(west_proxy)
            .get("http://casino.test/")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "the central's list, fetched over HTTPS");
        browse(west_proxy, origin, "west", 3).await;
    });
    wait_for(
        "west's events at the central",
        Duration::from_secs(20),
        || central_events(cd, c, "west").len() == 4,
    );
    terminate(west);
    terminate(central_child);
}
