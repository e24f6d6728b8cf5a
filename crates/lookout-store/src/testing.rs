//! Databases for tests, of this crate and of the crates above it: the same test runs on SQLite
//! or, when `LOOKOUT_TEST_POSTGRES` names a PostgreSQL server (a URL whose user may create
//! databases, e.g. `postgres://postgres@127.0.0.1:5432/postgres`), on a new database of its
//! own there. `.ci/run` runs the store, monitor and console suites both ways.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::{Dialect, Event, Store, StoreError};

/// The environment variable naming the PostgreSQL server tests run on.
pub const POSTGRES_ENV: &str = "LOOKOUT_TEST_POSTGRES";

/// One test's database.
#[derive(Debug, Clone)]
pub enum TestDb {
    /// A file.
    Sqlite(PathBuf),
    /// A database on a PostgreSQL server, by URL.
    Postgres(String),
}

impl TestDb {
    /// The database that belongs to the folder `dir`: `dir/lookout.db`, or a database on
    /// the server [`POSTGRES_ENV`] names, created the first time and named in
    /// `dir/lookout.postgres` so that a test that restarts finds it again.
    pub async fn new(dir: &Path) -> Result<TestDb, StoreError> {
        match std::env::var(POSTGRES_ENV) {
            Ok(admin) if !admin.is_empty() => {
                let io = |e: std::io::Error| StoreError::Query(sqlx::Error::Io(e));
                let marker = dir.join("lookout.postgres");
                if marker.exists() {
                    return Ok(TestDb::Postgres(
                        std::fs::read_to_string(&marker).map_err(io)?,
                    ));
                }
                let db = create_pg(&admin, None).await?;
                if let TestDb::Postgres(url) = &db {
                    std::fs::write(&marker, url).map_err(io)?;
                }
                Ok(db)
            }
            _ => Ok(TestDb::Sqlite(dir.join("lookout.db"))),
        }
    }

    /// Opens it (again): what was committed before is there.
    pub async fn open(&self) -> Result<Store, StoreError> {
        match self {
            TestDb::Sqlite(path) => Store::open(path).await,
            TestDb::Postgres(url) => Store::connect(url).await,
        }
    }

    /// Which server it is on.
    pub fn dialect(&self) -> Dialect {
        match self {
            TestDb::Sqlite(_) => Dialect::Sqlite,
            TestDb::Postgres(_) => Dialect::Postgres,
        }
    }

    /// A copy of it as it is now, under `name` (every store on it must be closed first):
    /// a file copy, or PostgreSQL's `CREATE DATABASE ... TEMPLATE`.
    pub async fn copy(&self, name: &str) -> Result<TestDb, StoreError> {
        match self {
            TestDb::Sqlite(path) => {
                let copy = path.with_file_name(format!("{name}.db"));
                let io = |e: std::io::Error| StoreError::Query(sqlx::Error::Io(e));
                std::fs::copy(path, &copy).map_err(io)?;
                let wal = path.with_extension("db-wal");
                if wal.exists() {
                    std::fs::copy(&wal, copy.with_extension("db-wal")).map_err(io)?;
                }
                Ok(TestDb::Sqlite(copy))
            }
            TestDb::Postgres(url) => create_pg(url, Some(url)).await,
        }
    }
}

/// The `i`th of a stream of realistic activity events (an allowed page; one in three with a
/// user name, 900 learners, 5,000 sites, 62,500 addresses), for benchmarks that fill a log.
pub fn sample_event(i: usize) -> Event {
    Event {
        at_ms: 1_796_000_000_000 + i as i64,
        reference: String::new(),
        service: "proxy",
        client_ip: format!("10.1.{}.{}", (i / 250) % 250, i % 250),
        username: (i % 3 == 0).then(|| format!("learner{}", i % 900)),
        group: "learners-u18".into(),
        method: "GET".into(),
        url: format!(
            "http://www{}.example.com/path/to/page{i}.html?q=1",
            i % 5000
        ),
        host: format!("www{}.example.com", i % 5000),
        search_term: None,
        categories: "".into(),
        action: "allow".into(),
        rule: "default".into(),
        reason: "".into(),
        status: Some(200),
        bytes: 2048,
    }
}

/// Opens the database of the folder `dir` (see [`TestDb::new`]).
pub async fn open_in(dir: &Path) -> Result<Store, StoreError> {
    TestDb::new(dir).await?.open().await
}

/// Creates a database named for this process and a counter on the server `admin` names
/// (copying `template`'s database if given) and returns its URL.
async fn create_pg(admin: &str, template: Option<&str>) -> Result<TestDb, StoreError> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let options = PgConnectOptions::from_str(admin)?;
    let name = format!(
        "lookout_test_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        crate::now_ms()
    );
    let mut conn = options.clone().database("postgres").connect().await?;
    let sql = match template {
        Some(t) => {
            let from = PgConnectOptions::from_str(t)?;
            let from = from.get_database().unwrap_or("postgres").replace('"', "");
            format!("CREATE DATABASE \"{name}\" TEMPLATE \"{from}\"")
        }
        None => format!("CREATE DATABASE \"{name}\""),
    };
    // The server ends a closed store's sessions a moment after they hang up, and a copy must
    // wait for them. A session the server still holds open is a leftover (every store on
    // the database was closed first; CI once hung here for 25 minutes behind one, each try
    // waiting the server's own 5 s): it is ended before each try.
    let template_name = template
        .and_then(|t| PgConnectOptions::from_str(t).ok())
        .and_then(|o| o.get_database().map(str::to_owned));
    let mut tries = 0;
    loop {
        if let Some(t) = &template_name {
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            )
            .bind(t)
            .execute(&mut conn)
            .await?;
        }
        match sqlx::Executor::execute(&mut conn, sql.as_str()).await {
            Ok(_) => break,
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55006") && tries < 20 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let _ = conn.close().await;
    Ok(TestDb::Postgres(
        options.database(&name).to_url_lossy().to_string(),
    ))
}
