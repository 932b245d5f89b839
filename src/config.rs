//! `config.toml` → a validated [`Config`] (SPEC 8). The only place that reads it.
//!
//! Every key is optional (a default, or none: the feature is off); an unknown key or a bad value is an error naming the key. Paths
//! are relative to the config file's folder. Without `--config`, `./config.toml` is used if
//! it exists, otherwise the built-in defaults (root `var` under the current folder).

use crate::core::ids::{local_authorities, LaCode, MailboxId, OdsCode};
use crate::core::mesh::{MAX_CHUNK as MESH_MAX_CHUNK, MIN_CHUNK as MESH_MIN_CHUNK};
use anyhow::{Context, Result};
use chrono::NaiveTime;
use chrono_tz::Tz;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    gateway: RawGateway,
    #[serde(default)]
    health_org: Vec<RawHealthOrg>,
    #[serde(default)]
    la: Vec<RawLa>,
    #[serde(default)]
    sftp: Vec<RawSftp>,
    mesh: Option<RawMesh>,
    api: Option<RawApi>,
    #[serde(default)]
    retention: RawRetention,
    #[serde(default)]
    store: RawStore,
}

/// `[store]`: where the store is. No `url`: SQLite under the root.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    url: Option<String>,
    /// How long a node's lease on a piece of work lasts unless renewed (PostgreSQL only).
    lease_s: Option<u64>,
}

/// The environment variable that gives the store's URL instead of `[store] url` (so that
/// its password need not be written in config.toml).
pub const STORE_URL_ENV: &str = "CPIS_GATEWAY_STORE_URL";

/// `[retention]`: how many days each kind of file is kept (record history and the access
/// log are never pruned).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRetention {
    pub archive_days: u32,
    pub sent_days: u32,
    pub reports_days: u32,
    pub rejected_days: u32,
}

impl Default for RawRetention {
    fn default() -> Self {
        RawRetention {
            archive_days: 90,
            sent_days: 30,
            reports_days: 400,
            rejected_days: 30,
        }
    }
}

/// How long files are kept.
pub type Retention = RawRetention;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawGateway {
    root: String,
    settle_ms: u64,
    max_file_bytes: u64,
    max_error_share: f64,
    max_closure_share: f64,
    notify_interval_s: u64,
    report_time: String,
    timezone: String,
    overdue_hours: u32,
    attendance_max_age_days: u32,
    local_authorities: Option<Vec<String>>,
    asid: Option<String>,
}

impl Default for RawGateway {
    fn default() -> Self {
        RawGateway {
            root: "var".into(),
            settle_ms: 500,
            max_file_bytes: 512 * 1024 * 1024,
            max_error_share: 0.5,
            max_closure_share: 0.2,
            notify_interval_s: 300,
            report_time: "02:00".into(),
            timezone: "Europe/London".into(),
            overdue_hours: 36,
            attendance_max_age_days: 7,
            local_authorities: None,
            asid: None,
        }
    }
}

/// `[[la]]`: what one LA wants that differs from the defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLa {
    code: String,
    #[serde(default)]
    notify_format: NotifyFormat,
}

/// How an LA's attendance notifications are written (interface 11.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyFormat {
    /// `CPIS_NOTIFY_<la>_<stamp>.csv`.
    #[default]
    Csv,
    /// CP-IS's own `CP-ISAccessToServiceNotification`, `CPIS_NOTIFY_<la>_<stamp>.xml`.
    Cpis,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealthOrg {
    ods: String,
    name: String,
    #[serde(default)]
    api_token_sha256: Vec<String>,
}

/// `[api]`: the FHIR R4 API for clinical systems (issue 24).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    listen: String,
    #[serde(default = "default_api_base")]
    base: String,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    client_ca: Option<String>,
}

fn default_api_base() -> String {
    "/cpis/FHIR/R4".into()
}

/// The FHIR API's listener.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub listen: std::net::SocketAddr,
    /// Where the API's paths start (`/cpis/FHIR/R4`).
    pub base: String,
    /// HTTPS (required unless `listen` is a loopback address).
    pub tls: Option<ApiTls>,
}

/// The API's certificate and key, and the CA its clients' certificates must chain to, if
/// they must present one.
#[derive(Debug, Clone)]
pub struct ApiTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSftp {
    mailbox: String,
    host: String,
    #[serde(default = "default_ssh_port")]
    port: u16,
    user: String,
    key: String,
    known_hosts: String,
    remote_in: String,
    remote_out: String,
    /// Where taken files go on the remote (deleted when absent).
    remote_done: Option<String>,
    #[serde(default = "default_poll_s")]
    poll_s: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMesh {
    url: String,
    mesh_mailbox: String,
    password: String,
    shared_key: String,
    ca: Option<String>,
    client_cert: Option<String>,
    client_key: Option<String>,
    #[serde(default = "default_mesh_poll_s")]
    poll_s: u64,
    #[serde(default = "default_chunk_bytes")]
    chunk_bytes: u64,
    #[serde(default)]
    partner: Vec<RawMeshPartner>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeshPartner {
    mailbox: String,
    mesh_mailbox: String,
}

fn default_ssh_port() -> u16 {
    22
}
fn default_poll_s() -> u64 {
    60
}
/// The service's guidance: poll a MESH mailbox no more often than every 5 minutes.
fn default_mesh_poll_s() -> u64 {
    300
}
fn default_chunk_bytes() -> u64 {
    20 * 1024 * 1024
}

/// A health organisation that may send attendance files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthOrg {
    pub ods: OdsCode,
    pub name: String,
    /// The SHA-256 (lower-case hex) of each bearer token the organisation's systems use
    /// with the API (never the token).
    pub api_token_sha256: Vec<String>,
}

/// One SFTP remote (used by the SFTP transport).
#[derive(Debug, Clone)]
pub struct SftpRemote {
    pub mailbox: MailboxId,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub key: PathBuf,
    pub known_hosts: PathBuf,
    pub remote_in: String,
    pub remote_out: String,
    pub remote_done: Option<String>,
    pub poll: Duration,
    /// `gateway.max_file_bytes`: a larger remote file is not fetched.
    pub max_file_bytes: u64,
}

/// The gateway's own MESH mailbox (used by the MESH transport). Its `Debug` leaves the
/// password and shared key out.
#[derive(Clone)]
pub struct MeshConfig {
    pub url: String,
    pub mesh_mailbox: String,
    pub password: String,
    pub shared_key: String,
    pub ca: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub poll: Duration,
    pub chunk_bytes: u64,
    pub partners: Vec<(MailboxId, String)>,
    /// `gateway.max_file_bytes`: a message larger than this (unzipped) is refused unkept.
    pub max_message_bytes: u64,
}

impl std::fmt::Debug for MeshConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshConfig")
            .field("url", &self.url)
            .field("mesh_mailbox", &self.mesh_mailbox)
            .field("password", &"(secret)")
            .field("shared_key", &"(secret)")
            .field("ca", &self.ca)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .field("poll", &self.poll)
            .field("chunk_bytes", &self.chunk_bytes)
            .field("partners", &self.partners)
            .field("max_message_bytes", &self.max_message_bytes)
            .finish()
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Which configuration this is: the file's path, or the built-in defaults.
    pub origin: String,
    /// Where the config file lives (or the current folder): relative paths start here.
    pub base_dir: PathBuf,
    pub root: PathBuf,
    pub settle: Duration,
    pub max_file_bytes: u64,
    pub max_error_share: f64,
    pub max_closure_share: f64,
    pub notify_interval: Duration,
    pub report_time: NaiveTime,
    pub timezone: Tz,
    pub overdue_hours: u32,
    /// How far back (days before the file, or before now for `query`) an attendance may be.
    pub attendance_max_age_days: u32,
    pub local_authorities: Vec<LaCode>,
    /// `[[la]] notify_format = "cpis"`: the LAs told of attendances in CP-IS's own message.
    pub notify_cpis: Vec<LaCode>,
    /// `gateway.asid`: the gateway's accredited system id (12 digits), which CP-IS's
    /// attendance notification names as the system each look-up came through.
    pub asid: Option<String>,
    pub health_orgs: Vec<HealthOrg>,
    pub sftp: Vec<SftpRemote>,
    pub mesh: Option<MeshConfig>,
    /// `[api]`: the FHIR API's listener, if it is served.
    pub api: Option<ApiConfig>,
    pub retention: Retention,
    /// `[store] url` (or [`STORE_URL_ENV`]): a PostgreSQL store shared by every node.
    pub postgres: Option<crate::store::Target>,
    /// `[store] lease_s`: a lease's lifetime; a dead or frozen node's work is taken over
    /// within a lease period and a third.
    pub lease: Duration,
}

impl Config {
    /// Where the store is: PostgreSQL at `postgres`, else `store/cpis.sqlite` under the root.
    pub fn store_location(&self) -> crate::store::Location {
        match &self.postgres {
            Some(target) => crate::store::Location::Postgres(Box::new(target.clone())),
            None => {
                crate::store::Location::Sqlite(crate::sys::layout::Layout::new(&self.root).store())
            }
        }
    }

    /// Loads `path`, or `./config.toml` if it exists, or the defaults; then the store URL
    /// from the environment, if set there.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let mut config = Config::load_file(path)?;
        if let Some(url) = std::env::var(STORE_URL_ENV)
            .ok()
            .filter(|u| !u.trim().is_empty())
        {
            let mut target =
                check_store_url(&url, STORE_URL_ENV, "the environment", &config.base_dir)?;
            target.session_limit = Some(config.lease);
            config.postgres = Some(target);
        }
        Ok(config)
    }

    fn load_file(path: Option<&Path>) -> Result<Config> {
        let (path, must_exist) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from("config.toml"), false),
        };
        if !must_exist && !path.exists() {
            return Config::parse(
                "",
                &std::env::current_dir()?,
                "built-in defaults (no ./config.toml)",
            );
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        let shown = std::path::absolute(&path).unwrap_or(path);
        Config::parse(&text, &dir, &shown.display().to_string())
    }

    /// Parses config text; `origin` names it in errors.
    pub fn parse(text: &str, base_dir: &Path, origin: &str) -> Result<Config> {
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| anyhow::anyhow!("{origin}: {}", e.to_string().trim_end()))?;
        let g = raw.gateway;
        let bad = |key: &str, why: String| anyhow::anyhow!("{origin}: {key}: {why}");
        let share = |key: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(v)
            } else {
                Err(bad(key, format!("{v} must be a share between 0 and 1")))
            }
        };
        let max_error_share = share("gateway.max_error_share", g.max_error_share)?;
        let max_closure_share = share("gateway.max_closure_share", g.max_closure_share)?;
        if g.max_file_bytes == 0 {
            return Err(bad("gateway.max_file_bytes", "must be more than 0".into()));
        }
        if g.notify_interval_s == 0 {
            return Err(bad(
                "gateway.notify_interval_s",
                "must be at least 1".into(),
            ));
        }
        if !(1..=366).contains(&g.attendance_max_age_days) {
            return Err(bad(
                "gateway.attendance_max_age_days",
                format!("{} must be 1 to 366 (days)", g.attendance_max_age_days),
            ));
        }
        if g.root.trim().is_empty() {
            return Err(bad("gateway.root", "must name a folder".into()));
        }
        let report_time = NaiveTime::parse_from_str(&g.report_time, "%H:%M").map_err(|_| {
            bad(
                "gateway.report_time",
                format!("{:?} is not a time written HH:MM", g.report_time),
            )
        })?;
        let timezone: Tz = g.timezone.parse().map_err(|_| {
            bad(
                "gateway.timezone",
                format!(
                    "{:?} is not an IANA time zone such as Europe/London",
                    g.timezone
                ),
            )
        })?;
        let local_authorities = match g.local_authorities {
            None => local_authorities().iter().map(|la| la.code).collect(),
            Some(codes) => {
                let mut out = Vec::new();
                for code in codes {
                    let la = LaCode::parse(&code)
                        .map_err(|e| bad("gateway.local_authorities", e.to_string()))?;
                    if out.contains(&la) {
                        return Err(bad(
                            "gateway.local_authorities",
                            format!("{la} is listed twice"),
                        ));
                    }
                    out.push(la);
                }
                out
            }
        };
        let mut notify_cpis = Vec::new();
        let mut las_listed = Vec::new();
        for (i, la) in raw.la.iter().enumerate() {
            let key = format!("la[{i}].code");
            let code = LaCode::parse(&la.code).map_err(|e| bad(&key, e.to_string()))?;
            if !local_authorities.contains(&code) {
                return Err(bad(
                    &key,
                    format!("{code} is not in gateway.local_authorities"),
                ));
            }
            if las_listed.contains(&code) {
                return Err(bad(&key, format!("{code} is listed twice")));
            }
            las_listed.push(code);
            if la.notify_format == NotifyFormat::Cpis {
                notify_cpis.push(code);
            }
        }
        let asid = g.asid.clone();
        match &asid {
            Some(a) if a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(bad(
                    "gateway.asid",
                    format!("{a:?} is not an accredited system id (12 digits)"),
                ))
            }
            None if !notify_cpis.is_empty() => {
                return Err(bad(
                    "gateway.asid",
                    "is required when an [[la]] has notify_format = \"cpis\": CP-IS's notification names the system each look-up came through".into(),
                ))
            }
            _ => {}
        }
        let mut health_orgs = Vec::new();
        for (i, org) in raw.health_org.into_iter().enumerate() {
            let ods = OdsCode::parse(&org.ods).ok_or_else(|| {
                bad(
                    &format!("health_org[{i}].ods"),
                    format!(
                        "{:?} is not an ODS code (3 to 10 upper-case letters and digits)",
                        org.ods
                    ),
                )
            })?;
            if health_orgs.iter().any(|h: &HealthOrg| h.ods == ods) {
                return Err(bad(
                    &format!("health_org[{i}].ods"),
                    format!("{ods} is listed twice"),
                ));
            }
            for (k, hash) in org.api_token_sha256.iter().enumerate() {
                if health_orgs
                    .iter()
                    .any(|h: &HealthOrg| h.api_token_sha256.contains(hash))
                    || org.api_token_sha256[..k].contains(hash)
                {
                    return Err(bad(
                        &format!("health_org[{i}].api_token_sha256[{k}]"),
                        "is listed already: a token belongs to one organisation, which every look-up made with it is recorded for".into(),
                    ));
                }
                if hash.len() != 64 || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                {
                    return Err(bad(
                        &format!("health_org[{i}].api_token_sha256[{k}]"),
                        "is not a SHA-256 in lower-case hex (64 characters): `printf %s TOKEN | sha256sum` gives it".into(),
                    ));
                }
            }
            health_orgs.push(HealthOrg {
                ods,
                name: org.name,
                api_token_sha256: org.api_token_sha256,
            });
        }
        let api = match raw.api {
            None => None,
            Some(a) => {
                let listen: std::net::SocketAddr = a.listen.parse().map_err(|_| {
                    bad(
                        "api.listen",
                        format!("{:?} is not an address and port (127.0.0.1:8443)", a.listen),
                    )
                })?;
                let tls = match (&a.tls_cert, &a.tls_key) {
                    (Some(cert), Some(key)) => Some(ApiTls {
                        cert: base_dir.join(cert),
                        key: base_dir.join(key),
                        client_ca: a.client_ca.as_ref().map(|c| base_dir.join(c)),
                    }),
                    (None, None) if a.client_ca.is_some() => {
                        return Err(bad(
                            "api.client_ca",
                            "needs api.tls_cert and api.tls_key: client certificates are asked for over TLS".into(),
                        ))
                    }
                    (None, None) => None,
                    _ => {
                        return Err(bad(
                            "api.tls_cert",
                            "api.tls_cert and api.tls_key go together: give both or neither".into(),
                        ))
                    }
                };
                if tls.is_none() && !listen.ip().is_loopback() {
                    return Err(bad(
                        "api.listen",
                        format!("{listen} is not a loopback address: the API is served over plain HTTP only to this machine; give api.tls_cert and api.tls_key"),
                    ));
                }
                let ok = a.base.starts_with('/')
                    && !a.base.ends_with('/')
                    && a.base[1..].split('/').all(|p| {
                        !p.is_empty()
                            && p.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                    });
                if !ok {
                    return Err(bad(
                        "api.base",
                        format!("{:?} is not a path such as /cpis/FHIR/R4", a.base),
                    ));
                }
                Some(ApiConfig {
                    listen,
                    base: a.base,
                    tls,
                })
            }
        };
        let resolve = |p: &str| base_dir.join(p);
        let mut sftp = Vec::new();
        for (i, s) in raw.sftp.into_iter().enumerate() {
            let mailbox =
                MailboxId::parse(&s.mailbox).map_err(|e| bad(&format!("sftp[{i}].mailbox"), e))?;
            if s.poll_s == 0 {
                return Err(bad(
                    &format!("sftp[{i}].poll_s"),
                    "must be at least 1".into(),
                ));
            }
            sftp.push(SftpRemote {
                mailbox,
                host: s.host,
                port: s.port,
                user: s.user,
                key: resolve(&s.key),
                known_hosts: resolve(&s.known_hosts),
                remote_in: s.remote_in,
                remote_out: s.remote_out,
                remote_done: s.remote_done,
                poll: Duration::from_secs(s.poll_s),
                max_file_bytes: g.max_file_bytes,
            });
        }
        let mesh = match raw.mesh {
            None => None,
            Some(m) => {
                let mut partners = Vec::new();
                for (i, p) in m.partner.into_iter().enumerate() {
                    let mailbox = MailboxId::parse(&p.mailbox)
                        .map_err(|e| bad(&format!("mesh.partner[{i}].mailbox"), e))?;
                    partners.push((mailbox, p.mesh_mailbox));
                }
                let tls = crate::core::mesh::uses_tls(&m.url).map_err(|e| bad("mesh.url", e))?;
                // Plain HTTP is for a local sandbox, which takes chunks of any size.
                let min = if tls { MESH_MIN_CHUNK } else { 1 };
                if !(min..=MESH_MAX_CHUNK).contains(&m.chunk_bytes) {
                    return Err(bad(
                        "mesh.chunk_bytes",
                        format!("must be from {min} to {MESH_MAX_CHUNK} bytes (MESH refuses chunks under 5 MiB or over 100 MiB)"),
                    ));
                }
                Some(MeshConfig {
                    url: m.url,
                    mesh_mailbox: m.mesh_mailbox,
                    password: m.password,
                    shared_key: m.shared_key,
                    ca: m.ca.as_deref().map(resolve),
                    client_cert: m.client_cert.as_deref().map(resolve),
                    client_key: m.client_key.as_deref().map(resolve),
                    poll: Duration::from_secs(m.poll_s.max(1)),
                    chunk_bytes: m.chunk_bytes,
                    partners,
                    max_message_bytes: g.max_file_bytes,
                })
            }
        };
        let r = raw.retention;
        for (key, days) in [
            ("retention.archive_days", r.archive_days),
            ("retention.sent_days", r.sent_days),
            ("retention.reports_days", r.reports_days),
            ("retention.rejected_days", r.rejected_days),
        ] {
            if days == 0 {
                return Err(bad(key, "must be at least 1 (days)".into()));
            }
        }
        let lease_s = raw.store.lease_s.unwrap_or(30);
        if !(1..=3600).contains(&lease_s) {
            return Err(bad(
                "store.lease_s",
                format!("{lease_s} must be 1 to 3600 (seconds)"),
            ));
        }
        let postgres = raw
            .store
            .url
            .map(|url| check_store_url(&url, "store.url", origin, base_dir))
            .transpose()?;
        let lease = Duration::from_secs(lease_s);
        let config = Config {
            postgres: postgres.map(|mut t| {
                t.session_limit = Some(lease);
                t
            }),
            lease,
            retention: r,
            origin: origin.to_owned(),
            root: resolve(&g.root),
            base_dir: base_dir.to_path_buf(),
            settle: Duration::from_millis(g.settle_ms),
            max_file_bytes: g.max_file_bytes,
            max_error_share,
            max_closure_share,
            notify_interval: Duration::from_secs(g.notify_interval_s),
            report_time,
            timezone,
            overdue_hours: g.overdue_hours,
            attendance_max_age_days: g.attendance_max_age_days,
            local_authorities,
            notify_cpis,
            asid,
            health_orgs,
            sftp,
            mesh,
            api,
        };
        // Each transport's mailboxes are parties (else what they bring in is never read).
        // A party may have both SFTP and MESH (SPEC 8's example): they take turns on its
        // out/ (`Layout::out_lock`).
        let sftp_mailboxes = config
            .sftp
            .iter()
            .map(|s| ("sftp.mailbox".to_owned(), &s.mailbox));
        let mesh_mailboxes = config
            .mesh
            .iter()
            .flat_map(|m| &m.partners)
            .enumerate()
            .map(|(i, (mailbox, _))| (format!("mesh.partner[{i}].mailbox"), mailbox));
        for (key, mailbox) in sftp_mailboxes.chain(mesh_mailboxes) {
            if !config.is_party(mailbox) {
                return Err(bad(&key, format!("{mailbox} is not a configured party (gateway.local_authorities or [[health_org]])")));
            }
        }
        Ok(config)
    }

    /// Whether a mailbox belongs to a configured party.
    pub fn is_party(&self, mailbox: &MailboxId) -> bool {
        match mailbox {
            MailboxId::La(la) => self.local_authorities.contains(la),
            MailboxId::Health(ods) => self.health_orgs.iter().any(|h| &h.ods == ods),
        }
    }
}

/// A store URL must be PostgreSQL's (the password is never repeated in an error);
/// certificate paths in it start at `base`.
fn check_store_url(
    url: &str,
    key: &str,
    origin: &str,
    base: &Path,
) -> Result<crate::store::Target> {
    let url = url.trim();
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        anyhow::bail!(
            "{origin}: {key}: not a PostgreSQL URL (postgres://user@host:port/database); leave it out for the SQLite store under the root"
        );
    }
    crate::store::Target::parse(url, base).map_err(|e| anyhow::anyhow!("{origin}: {key}: {e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("/srv/cpis"), "config.toml")
    }

    fn error(text: &str) -> String {
        format!("{:#}", parse(text).unwrap_err())
    }

    #[test]
    fn defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.root, Path::new("/srv/cpis/var"));
        assert_eq!(c.settle, Duration::from_millis(500));
        assert_eq!(c.max_file_bytes, 536_870_912);
        assert_eq!(c.max_error_share, 0.5);
        assert_eq!(c.local_authorities.len(), 153);
        assert_eq!(c.timezone, chrono_tz::Europe::London);
        assert_eq!(c.report_time, NaiveTime::from_hms_opt(2, 0, 0).unwrap());
    }

    #[test]
    fn full_example_parses() {
        let c = parse(
            r#"
[gateway]
root = "data"
local_authorities = ["919", "202"]
[[health_org]]
ods = "RWG"
name = "West Hertfordshire Teaching Hospitals NHS Trust"
[[sftp]]
mailbox = "LA919"
host = "sftp.example.org"
user = "cpis"
key = "keys/la919"
known_hosts = "keys/known_hosts"
remote_in = "/outbound"
remote_out = "/inbound"
[mesh]
url = "https://localhost:8700"
mesh_mailbox = "X26GW001"
password = "p"
shared_key = "k"
[[mesh.partner]]
mailbox = "LA919"
mesh_mailbox = "X26LA919"
"#,
        )
        .unwrap();
        assert_eq!(c.local_authorities.len(), 2);
        assert_eq!(c.sftp[0].port, 22);
        assert_eq!(c.sftp[0].key, Path::new("/srv/cpis/keys/la919"));
        assert_eq!(c.mesh.unwrap().partners.len(), 1);
        assert_eq!(c.health_orgs[0].ods.as_str(), "RWG");
    }

    #[test]
    fn errors_name_the_key() {
        assert!(error("[gateway]\nsettle = 5").contains("settle"));
        assert!(error("[gatway]\n").contains("gatway"));
        assert!(error("[gateway]\nmax_error_share = 1.5").contains("gateway.max_error_share"));
        assert!(error("[gateway]\nsettle_ms = \"fast\"").contains("settle_ms"));
        assert!(error("[gateway]\nreport_time = \"25:00\"").contains("gateway.report_time"));
        assert!(error("[gateway]\ntimezone = \"Mars/Olympus\"").contains("gateway.timezone"));
        assert!(
            error("[gateway]\nlocal_authorities = [\"999\"]").contains("gateway.local_authorities")
        );
        assert!(error("[[health_org]]\nods = \"x\"\nname = \"n\"").contains("health_org[0].ods"));
        let mesh = "[mesh]\nmesh_mailbox = \"X\"\npassword = \"pw\"\nshared_key = \"sk\"\n";
        let small = format!("{mesh}url = \"https://mesh.example\"\nchunk_bytes = 1000\n");
        assert!(error(&small).contains("mesh.chunk_bytes"));
        let far = format!("{mesh}url = \"http://mesh.example\"\n");
        assert!(error(&far).contains("mesh.url"));
        let ok = format!("{mesh}url = \"http://127.0.0.1:1\"\nchunk_bytes = 1000\n");
        let c = parse(&ok).unwrap();
        let shown = format!("{:?}", c.mesh.unwrap());
        let partner = |mailbox: &str| {
            format!("{ok}[[mesh.partner]]\nmailbox = \"{mailbox}\"\nmesh_mailbox = \"X1\"\n")
        };
        assert!(error(&format!(
            "[gateway]\nlocal_authorities = [\"919\"]\n{}",
            partner("LA202")
        ))
        .contains("LA202 is not a configured party"));

        assert!(!shown.contains("pw") && !shown.contains("sk"), "{shown}");
    }
}
