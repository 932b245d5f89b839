//! How to reach a PostgreSQL store: the connection string (a URL or `key=value` words) read
//! by the `postgres` crate's own `Config`, plus the TLS settings libpq users know
//! (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`), which that crate does not read and which
//! are taken out first. TLS is rustls (as for MESH) through `tokio-postgres-rustls`.
//!
//! Without `sslmode`, a store on a loopback address or a Unix socket is reached in clear and
//! any other with `verify-full`: patient data never crosses a network unencrypted unless
//! the operator wrote `sslmode=disable`. `prefer` and `allow`, which fall back to clear text
//! when an attacker on the path refuses TLS, are refused.

use anyhow::{anyhow, bail, Context, Result};
use postgres::config::Host;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// In clear (the default on loopback and Unix sockets only).
    Disable,
    /// Encrypted; the server's certificate is checked against `sslrootcert` if one is given.
    Require,
    /// Encrypted, the certificate signed by the `sslrootcert` CA (any host name).
    VerifyCa,
    /// Encrypted, the certificate signed by the CA and naming the host (the default
    /// elsewhere).
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// A PostgreSQL store's address, parsed: never shown with its password.
#[derive(Clone)]
pub struct Target {
    config: postgres::Config,
    pub mode: SslMode,
    root_cert: Option<PathBuf>,
    client_cert: Option<(PathBuf, PathBuf)>,
    /// How long this connection waits for a lock, and how long the server lets one of its
    /// transactions sit idle (a node frozen inside a transaction) before ending it: the
    /// lease period, so that no node can hold the others up for longer.
    pub session_limit: Option<std::time::Duration>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

/// The TLS keys libpq reads and the `postgres` crate does not.
const TLS_KEYS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

impl Target {
    /// Parses a connection string; relative certificate paths start at `base`. The error
    /// never repeats the string (it may hold a password).
    pub fn parse(text: &str, base: &Path) -> Result<Target> {
        let text = text.trim();
        let (rest, tls) = if text.contains("://") {
            split_url(text)?
        } else {
            split_words(text)?
        };
        let config: postgres::Config = rest.parse().map_err(|e| {
            anyhow!("not a PostgreSQL connection string (postgres://user@host:port/database): {e}")
        })?;
        if config.get_hosts().is_empty() {
            bail!("the PostgreSQL connection string names no host");
        }
        let get = |key: &str| {
            tls.iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        let path = |key: &str| get(key).filter(|v| !v.is_empty()).map(|v| base.join(v));
        let root_cert = path("sslrootcert");
        let client_cert = match (path("sslcert"), path("sslkey")) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => bail!("sslcert and sslkey go together: give both or neither"),
        };
        let mode = match get("sslmode").as_deref() {
            None if local_only(&config) => SslMode::Disable,
            None => SslMode::VerifyFull,
            Some("disable") => SslMode::Disable,
            Some("require") => SslMode::Require,
            Some("verify-ca") => SslMode::VerifyCa,
            Some("verify-full") => SslMode::VerifyFull,
            Some(m @ ("allow" | "prefer")) => bail!(
                "sslmode={m} falls back to clear text whenever someone on the path refuses TLS: use verify-full (or require, verify-ca), or disable on a loopback address"
            ),
            Some(other) => bail!(
                "sslmode={other:?} is not one of disable, require, verify-ca, verify-full"
            ),
        };
        if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && root_cert.is_none() {
            bail!(
                "sslmode={} needs sslrootcert=<the CA's certificate file (PEM)> to check the server against{}",
                mode.as_str(),
                if get("sslmode").is_none() {
                    " (verify-full is the default for a store that is not on this machine)"
                } else {
                    ""
                }
            );
        }
        if mode == SslMode::Disable && client_cert.is_some() {
            bail!("sslcert and sslkey need TLS: not with sslmode=disable");
        }
        Ok(Target {
            config,
            mode,
            root_cert,
            client_cert,
            session_limit: None,
        })
    }

    /// `postgres://user@host:port/database`: host, port, database and user only.
    pub fn shown(&self) -> String {
        let c = &self.config;
        let hosts: Vec<String> = c
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let host = match h {
                    Host::Tcp(name) if name.contains(':') => format!("[{name}]"),
                    Host::Tcp(name) => name.clone(),
                    Host::Unix(path) => path.display().to_string(),
                };
                match c.get_ports().get(i).or(c.get_ports().first()) {
                    Some(port) => format!("{host}:{port}"),
                    None => host,
                }
            })
            .collect();
        let addrs: Vec<String> = c.get_hostaddrs().iter().map(ToString::to_string).collect();
        format!(
            "postgres://{}{}/{}{}",
            c.get_user().map(|u| format!("{u}@")).unwrap_or_default(),
            hosts.join(","),
            c.get_dbname().unwrap_or(""),
            if addrs.is_empty() {
                String::new()
            } else {
                format!(" (dialling {})", addrs.join(","))
            }
        )
    }

    /// The `postgres` crate's settings (timeouts are added to them by the caller).
    pub fn config(&self) -> &postgres::Config {
        &self.config
    }

    /// Connects with the TLS this target asks for.
    pub fn connect(&self, config: &postgres::Config) -> Result<postgres::Client> {
        let mut config = config.clone();
        // Statements are prepared once per connection; PostgreSQL's own choice between a
        // plan for each execution's values and one cached for all (`plan_cache_mode =
        // auto`) stands: no statement that reads a table runs once per row against a
        // table its own transaction is growing (an attendance file's look-ups are read
        // ahead, its rows written at commit), and a cached plan is made again whenever a
        // table it reads is analyzed, which the store does as its tables grow
        // (`store::statistics`). Forcing a plan per execution cost a daily refresh 30 % of
        // its server time in planning.
        let mut ours = String::new();
        if let Some(limit) = self.session_limit {
            // Server-side: a lock is never waited for, nor a transaction left idle, for
            // longer than this (lock_timeout, idle_in_transaction_session_timeout).
            let ms = limit.as_millis().max(1);
            ours.push_str(&format!(
                " -c lock_timeout={ms} -c idle_in_transaction_session_timeout={ms}"
            ));
        }
        // Random reads of the store cost about what sequential ones do (the database's
        // cache, an SSD); PostgreSQL's default cost for them (4) is for spinning disks, and
        // with it a large store's open records are read by scanning every record it ever
        // held rather than through the index of open ones. Before the operator's own
        // options, which win.
        let defaults = "-c random_page_cost=1.1";
        let options = match config.get_options() {
            Some(theirs) => format!("{defaults} {theirs} {ours}"),
            None => format!("{defaults} {ours}"),
        };
        config.options(&options);
        let client = if self.mode == SslMode::Disable {
            config.connect(postgres::NoTls)
        } else {
            config.ssl_mode(postgres::config::SslMode::Require);
            config.connect(tokio_postgres_rustls::MakeRustlsConnect::new(
                self.tls_config()?,
            ))
        };
        client.map_err(|e| {
            anyhow::Error::new(e).context(format!(
                "cannot connect to the PostgreSQL store {} (sslmode {})",
                self.shown(),
                self.mode.as_str()
            ))
        })
    }

    fn tls_config(&self) -> Result<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let verifier: Arc<dyn ServerCertVerifier> = match &self.root_cert {
            None => Arc::new(AnyCertificate(provider)),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(ca)
                    .with_context(|| format!("cannot read sslrootcert {}", ca.display()))?
                {
                    let cert =
                        cert.with_context(|| format!("sslrootcert {} is not PEM", ca.display()))?;
                    roots.add(cert).with_context(|| {
                        format!("sslrootcert {}: a certificate is unusable", ca.display())
                    })?;
                }
                if roots.is_empty() {
                    bail!("sslrootcert {} holds no certificate", ca.display());
                }
                let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()?;
                match self.mode {
                    SslMode::VerifyFull => webpki,
                    _ => Arc::new(AnyName(webpki)),
                }
            }
        };
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        Ok(match &self.client_cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let certs = CertificateDer::pem_file_iter(cert)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .with_context(|| format!("cannot read sslcert {}", cert.display()))?;
                // The key's path may be named; its content never is.
                let key = PrivateKeyDer::from_pem_file(key).map_err(|_| {
                    anyhow!("cannot read a private key from sslkey {}", key.display())
                })?;
                builder
                    .with_client_auth_cert(certs, key)
                    .context("sslcert and sslkey do not go together")?
            }
        })
    }
}

/// Whether every host is this machine: a Unix socket or a loopback address (and every
/// `hostaddr`, which is what is dialled when given, a loopback address).
fn local_only(config: &postgres::Config) -> bool {
    config.get_hostaddrs().iter().all(|ip| ip.is_loopback())
        && config.get_hosts().iter().all(|h| match h {
            Host::Unix(_) => true,
            Host::Tcp(name) => {
                name.starts_with('/')
                    || name.eq_ignore_ascii_case("localhost")
                    || name
                        .trim_matches(['[', ']'])
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
        })
}

/// A URL without its TLS parameters, and those parameters (percent-decoded).
fn split_url(url: &str) -> Result<(String, Vec<(String, String)>)> {
    let Some((head, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), Vec::new()));
    };
    let mut kept = Vec::new();
    let mut tls = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if TLS_KEYS.contains(&k) {
            tls.push((k.to_owned(), percent_decode(v)?));
        } else {
            kept.push(pair);
        }
    }
    Ok(if kept.is_empty() {
        (head.to_owned(), tls)
    } else {
        (format!("{head}?{}", kept.join("&")), tls)
    })
}

fn percent_decode(text: &str) -> Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| anyhow!("a TLS parameter of the URL has a bad %-escape"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| anyhow!("a TLS parameter of the URL is not UTF-8"))
}

/// `key=value` words without the TLS ones (libpq's quoting: 'a b', \' and \\), and those.
fn split_words(text: &str) -> Result<(String, Vec<(String, String)>)> {
    let mut kept = Vec::new();
    let mut tls = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut word = String::new();
        let mut key = String::new();
        let mut value = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        if key.is_empty() {
            break;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            bail!("not a PostgreSQL connection string: {key:?} has no value");
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        word.push_str(&key);
        word.push('=');
        if chars.next_if_eq(&'\'').is_some() {
            word.push('\'');
            loop {
                match chars.next() {
                    Some('\\') => {
                        let c = chars.next().ok_or_else(|| anyhow!("unterminated quote"))?;
                        value.push(c);
                        word.push('\\');
                        word.push(c);
                    }
                    Some('\'') => break,
                    Some(c) => {
                        value.push(c);
                        word.push(c);
                    }
                    None => bail!("not a PostgreSQL connection string: an unterminated quote"),
                }
            }
            word.push('\'');
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                value.push(c);
                word.push(c);
            }
        }
        if TLS_KEYS.contains(&key.as_str()) {
            tls.push((key, value));
        } else {
            kept.push(word);
        }
    }
    Ok((kept.join(" "), tls))
}

/// `verify-ca`: the chain must lead to the CA; the name is not checked.
#[derive(Debug)]
struct AnyName(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `require` without `sslrootcert` (as libpq): encrypted, the certificate not checked.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Target> {
        Target::parse(text, Path::new("/etc/cpis"))
    }

    #[test]
    fn shown_without_the_password_in_any_form() {
        for (text, shown) in [
            (
                "postgres://cpis:s3cret@db.example:5433/cpis?sslrootcert=ca.pem",
                "postgres://cpis@db.example:5433/cpis",
            ),
            (
                "postgres://cpis:pa?ss@127.0.0.1/cpis",
                "postgres://cpis@127.0.0.1:5432/cpis",
            ),
            (
                "postgres://cpis@127.0.0.1/cpis?password=s3cret",
                "postgres://cpis@127.0.0.1:5432/cpis",
            ),
            (
                "host=127.0.0.1 port=5433 user=cpis password=s3cret dbname=cpis",
                "postgres://cpis@127.0.0.1:5433/cpis",
            ),
            (
                "host=/run/postgresql user=cpis password='s3 cret' dbname=cpis",
                "postgres://cpis@/run/postgresql/cpis",
            ),
        ] {
            let target = parse(text).unwrap_or_else(|e| panic!("{text}: {e:#}"));
            assert_eq!(target.shown(), shown);
            assert!(!format!("{target:?}").contains("s3"), "{target:?}");
        }
        let e = format!("{:#}", parse("host=h password=s3cret bogus=1").unwrap_err());
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[test]
    fn tls_by_default_off_this_machine() {
        let mode = |text: &str| parse(text).map(|t| t.mode);
        assert_eq!(mode("postgres://u@127.0.0.1/d").unwrap(), SslMode::Disable);
        // hostaddr is what is dialled: a far one needs TLS whatever the host's name.
        assert!(mode("postgres://u@localhost/d?hostaddr=192.0.2.2").is_err());
        assert_eq!(
            mode("postgres://u@localhost/d?hostaddr=127.0.0.1").unwrap(),
            SslMode::Disable
        );
        let far = parse("postgres://u@localhost/d?hostaddr=192.0.2.2&sslrootcert=ca.pem").unwrap();
        assert!(far.shown().contains("192.0.2.2"), "{}", far.shown());
        assert_eq!(mode("postgres://u@localhost/d").unwrap(), SslMode::Disable);
        assert_eq!(
            mode("host=/run/postgresql dbname=d").unwrap(),
            SslMode::Disable
        );
        let far = format!("{:#}", mode("postgres://u@db.example/d").unwrap_err());
        assert!(
            far.contains("sslrootcert") && far.contains("default"),
            "{far}"
        );
        assert_eq!(
            mode("postgres://u@db.example/d?sslrootcert=ca.pem").unwrap(),
            SslMode::VerifyFull
        );
        assert_eq!(
            mode("postgres://u@db.example/d?sslmode=require").unwrap(),
            SslMode::Require
        );
        assert_eq!(
            mode("host=db.example sslmode=verify-ca sslrootcert='/etc/ca dir/ca.pem'").unwrap(),
            SslMode::VerifyCa
        );
        assert_eq!(
            mode("postgres://u@db.example/d?sslmode=disable").unwrap(),
            SslMode::Disable
        );
        for bad in [
            "postgres://u@db.example/d?sslmode=prefer",
            "postgres://u@127.0.0.1/d?sslmode=allow",
            "postgres://u@db.example/d?sslmode=verify-ca",
            "postgres://u@db.example/d?sslrootcert=ca.pem&sslcert=c.pem",
            "postgres://u@127.0.0.1/d?sslmode=bogus",
        ] {
            assert!(mode(bad).is_err(), "{bad}");
        }
        let t = parse("postgres://u@db.example/d?sslrootcert=ca%20dir/ca.pem&application_name=x")
            .unwrap();
        assert_eq!(t.root_cert.unwrap(), Path::new("/etc/cpis/ca dir/ca.pem"));
        assert_eq!(t.config.get_application_name(), Some("x"));
    }
}
