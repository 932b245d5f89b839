//! The store the tests run against. SQLite under each test's root by default; with
//! `CPIS_TEST_STORE=postgres` a real PostgreSQL server (Debian's `postgresql`), started once
//! for the test process on a free 127.0.0.1 port and stopped when the process ends, with a
//! database of its own for each test's folder, given to every gateway run through
//! `CPIS_GATEWAY_STORE_URL`. `scripts/test.sh` runs the store, health and report tests both
//! ways: one list of tests, so no behaviour is checked on one backend alone.
//!
//! What a test reads or alters behind the gateway's back goes through [`sql`], [`tamper`]
//! and [`dump`], which speak to whichever store the test has.

use std::collections::HashSet;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// Whether this test process runs against PostgreSQL.
pub fn postgres() -> bool {
    std::env::var("CPIS_TEST_STORE").is_ok_and(|v| v == "postgres")
}

/// A PostgreSQL server in a temporary folder, on a free loopback port.
pub struct Postgres {
    dir: PathBuf,
    pub port: u16,
    bin: PathBuf,
    /// Stop it and delete its folder when dropped (the per-test servers).
    owned: bool,
}

impl Postgres {
    /// A server for one test, stopped when dropped.
    pub fn start() -> Postgres {
        let dir = tempfile::tempdir().expect("temporary folder").keep();
        let mut pg = Postgres::start_in(dir, |_| {});
        pg.owned = true;
        pg
    }

    /// A server for one test that takes only TLS connections over TCP, with `pki`'s
    /// server certificate; database `certdb` also wants a client certificate signed by
    /// `pki`'s CA naming the user. Stopped when dropped.
    pub fn start_tls(pki: &crate::helpers::Pki) -> Postgres {
        let dir = tempfile::tempdir().expect("temporary folder").keep();
        let mut pg = Postgres::start_in(dir, |data| {
            for name in ["server.pem", "server.key", "ca.pem"] {
                let to = data.join(name);
                fs::copy(pki.path(name), &to).unwrap();
                let mode = std::os::unix::fs::PermissionsExt::from_mode(0o600);
                fs::set_permissions(&to, mode).unwrap();
                Command::new("chown")
                    .arg("postgres")
                    .arg(&to)
                    .status()
                    .unwrap();
            }
            let mut conf = fs::read_to_string(data.join("postgresql.conf")).unwrap();
            conf.push_str("\nssl = on\nssl_cert_file = 'server.pem'\nssl_key_file = 'server.key'\nssl_ca_file = 'ca.pem'\n");
            fs::write(data.join("postgresql.conf"), conf).unwrap();
            fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostnossl all all 0.0.0.0/0 reject\nhostssl certdb all 127.0.0.1/32 cert\nhostssl all all 127.0.0.1/32 trust\n",
            )
            .unwrap();
        });
        pg.owned = true;
        pg
    }

    /// Initialises a server in `dir`, lets `setup` change its data folder, starts it.
    fn start_in(dir: PathBuf, setup: impl FnOnce(&Path)) -> Postgres {
        let bin = fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is needed for this test: apt-get install postgresql (scripts/test.sh does)")
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").is_file())
            .max()
            .expect("no initdb under /usr/lib/postgresql/*/bin");
        // The server refuses to run as root: its folder belongs to the postgres user.
        let chown = Command::new("chown")
            .args(["-R", "postgres"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(chown.success());
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = Postgres {
            dir,
            port,
            bin,
            owned: false,
        };
        let data = pg.data();
        pg.as_postgres(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        setup(&data);
        pg.pg_ctl("start");
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn as_postgres(&self, program: &str, args: &[&str]) {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(program))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{program}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `pg_ctl start`, `stop` (immediate: as a crash) or `restart`.
    pub fn pg_ctl(&self, action: &str) {
        let data = self.data();
        let options = format!(
            "-p {} -k {} -h 127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log");
        self.as_postgres(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                action,
            ],
        );
    }

    /// The URL of database `db`.
    pub fn url_of(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    pub fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// `psql` on database `db` (through the server's Unix socket): its output (rows
    /// `|`-separated), or its error.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .arg("-h")
            .arg(&self.dir)
            .args(["-p", &self.port.to_string()])
            .args(["-U", "postgres", "-d", db, "-X", "-q", "-tA"])
            .args(["-c", sql])
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    }

    /// One value from a query on the `postgres` database.
    pub fn query(&self, sql: &str) -> String {
        self.psql("postgres", sql)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.owned {
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"))
                .args(["-D", self.data().to_str().unwrap()])
                .args(["-m", "immediate", "stop"])
                .output();
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The server every test of a PostgreSQL run shares. A watchdog (its own session, so a
/// Ctrl-C of the tests does not skip it) stops it and deletes its folder once this process
/// has ended, however it ended.
fn shared() -> &'static Postgres {
    static SHARED: OnceLock<Postgres> = OnceLock::new();
    SHARED.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary folder").keep();
        let pg = Postgres::start_in(dir, |_| {});
        let watchdog = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             runuser -u postgres -- {pg_ctl} -D {data} -m immediate stop; rm -rf {dir}",
            pid = std::process::id(),
            pg_ctl = pg.bin.join("pg_ctl").display(),
            data = pg.data().display(),
            dir = pg.dir.display()
        );
        let started = Command::new("setsid")
            .args(["-f", "sh", "-c", &watchdog])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("setsid (util-linux) starts the server's watchdog");
        assert!(started.success());
        pg
    })
}

/// The database of the test working in `dir` (created on first use).
fn database(dir: &Path) -> String {
    use std::hash::{Hash, Hasher};
    static MADE: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    dir.canonicalize()
        .unwrap_or_else(|_| dir.to_path_buf())
        .hash(&mut h);
    let name = format!("t{:016x}", h.finish());
    let mut made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    if made.get_or_insert_with(HashSet::new).insert(name.clone()) {
        let out = shared().psql("postgres", &format!("CREATE DATABASE {name}"));
        assert!(out.is_empty(), "CREATE DATABASE {name}: {out}");
    }
    name
}

/// The store URL a gateway run in `dir` is given (PostgreSQL runs only).
pub fn store_url(dir: &Path) -> Option<String> {
    postgres().then(|| shared().url_of(&database(dir)))
}

/// Gives a command run in `dir` its store.
pub fn with_store(cmd: &mut Command, dir: &Path) {
    if let Some(url) = store_url(dir) {
        cmd.env("CPIS_GATEWAY_STORE_URL", url);
    }
}

/// The SQLite store of a test rooted in `dir` (`root = "var"`).
pub fn sqlite_path(dir: &Path) -> PathBuf {
    dir.join("var/store/cpis.sqlite")
}

/// Rows of a query on the store of the test in `dir`, each `|`-separated.
pub fn sql(dir: &Path, sql: &str) -> Vec<String> {
    let text = if postgres() {
        shared().psql(&database(dir), sql)
    } else {
        let out = Command::new("sqlite3")
            .arg(sqlite_path(dir))
            .arg(sql)
            .output()
            .expect(
                "sqlite3 is needed for this test: apt-get install sqlite3 (scripts/test.sh does)",
            );
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    };
    text.lines().map(str::to_owned).collect()
}

/// One integer from a query.
pub fn count(dir: &Path, query: &str) -> i64 {
    let rows = sql(dir, query);
    rows.first()
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("{query}: {rows:?}"))
}

/// What the store says to a statement run behind the gateway's back (its error, if any).
pub fn try_sql(dir: &Path, statement: &str) -> String {
    sql(dir, statement).join("\n")
}

/// Alters `table` behind the gateway's back, as an attacker with the database's owner
/// rights would: its append-only triggers set aside for `statement`.
pub fn tamper(dir: &Path, table: &str, statement: &str) {
    let script = if postgres() {
        format!(
            "ALTER TABLE {table} DISABLE TRIGGER USER; {statement}; ALTER TABLE {table} ENABLE TRIGGER USER;"
        )
    } else {
        format!(
            "DROP TRIGGER IF EXISTS {table}_no_update; DROP TRIGGER IF EXISTS {table}_no_delete; {statement};"
        )
    };
    let out = try_sql(dir, &script);
    assert!(!out.to_lowercase().contains("error"), "{statement}: {out}");
}

/// Everything the store holds, as text (to search for what must not be there).
pub fn dump(dir: &Path) -> String {
    let out = if postgres() {
        let pg = shared();
        Command::new(pg.bin.join("pg_dump"))
            .args(["-h", "127.0.0.1", "-p", &pg.port.to_string()])
            .args(["-U", "postgres", "-d", &database(dir)])
            .output()
            .expect("pg_dump")
    } else {
        Command::new("sqlite3")
            .arg(sqlite_path(dir))
            .arg(".dump")
            .output()
            .expect(
                "sqlite3 is needed for this test: apt-get install sqlite3 (scripts/test.sh does)",
            )
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
