//! The MESH API v2 over HTTP(S): one call per method, a fresh `NHSMESH` token on every
//! request, TLS with the configured CA and client certificate (plain HTTP only to
//! loopback), and retries with back-off for everything but the first outbox POST.
//! Secrets (password, shared key, key file) never appear in an error or a log line.

use crate::config::MeshConfig;
use crate::core::mesh::{auth_token, excerpt, max_chunks, next_link, retryable, uses_tls};
use anyhow::{anyhow, bail, Context, Result};
use flate2::read::GzDecoder;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::io::{self, Read};
use std::sync::Arc;
use std::time::Duration;

const ACCEPT: &str = "application/vnd.mesh.v2+json";
/// Attempts for a call that may be retried, and the first pause (doubling, with jitter).
const ATTEMPTS: u32 = 4;
const FIRST_PAUSE: Duration = Duration::from_millis(500);
/// The most an inbox listing page may hold (a page of 500 ids is about 20 KB).
const MAX_LISTING_BYTES: u64 = 1024 * 1024;
/// The most pages one listing follows (`links.next`), so a server cannot keep it going.
const MAX_PAGES: usize = 200;
/// The most message ids one listing keeps (ten of MESH's pages): the rest are listed at
/// the next poll, so a server cannot fill memory with ids.
const MAX_IDS: usize = 5_000;
/// The most of a successful answer's body that is read (a message id, a tracking record).
const MAX_ANSWER_BYTES: u64 = 64 * 1024;
/// The longest one request may take, however the server drips its answer (a 100 MiB chunk
/// at 1 Mbit/s fits).
const REQUEST_LIMIT: Duration = Duration::from_secs(20 * 60);

/// Why a call failed.
#[derive(Debug)]
pub enum CallError {
    /// MESH (or a proxy in front of it) answered with this status.
    Status { status: u16, body: String },
    /// No answer: refused, reset, timed out, TLS failed.
    Transport(String),
}

impl CallError {
    /// Worth trying again after a pause.
    pub fn retryable(&self) -> bool {
        match self {
            CallError::Status { status, .. } => retryable(*status),
            CallError::Transport(_) => true,
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Status { status: 403, body } => write!(
                f,
                "MESH refused the mailbox's credentials (403 {}): check mesh.mesh_mailbox, mesh.password, mesh.shared_key and the client certificate",
                excerpt(body)
            ),
            CallError::Status { status, body } => write!(f, "MESH answered {status}: {}", excerpt(body)),
            CallError::Transport(why) => write!(f, "no answer from MESH: {why}"),
        }
    }
}

impl std::error::Error for CallError {}

/// The headers of a message (or chunk) downloaded, as the transport needs them.
#[derive(Debug, Clone, Default)]
pub struct MessageHeaders {
    pub message_type: String,
    pub from: String,
    pub file_name: Option<String>,
    pub workflow: Option<String>,
    pub local_id: Option<String>,
    pub linked_message_id: Option<String>,
    pub status_code: Option<String>,
    pub status_event: Option<String>,
    pub status_description: Option<String>,
    pub total_chunks: u32,
}

/// What a download brought.
#[derive(Debug)]
pub enum Downloaded {
    /// Every chunk, written out whole.
    Whole(MessageHeaders),
    /// Refused part way (what was written is to be thrown away): too many chunks, or more
    /// bytes (unzipped) than the gateway takes.
    Refused {
        headers: MessageHeaders,
        why: String,
    },
}

/// What one outbound chunk is.
pub struct Chunk<'a> {
    pub number: u32,
    pub total: u32,
    /// Already gzipped.
    pub body: &'a [u8],
}

/// What the first POST of a message says about it.
pub struct Envelope<'a> {
    pub to: &'a str,
    pub workflow: &'a str,
    pub file_name: &'a str,
    pub local_id: &'a str,
    pub subject: &'a str,
    pub checksum: &'a str,
}

pub struct Client {
    agent: ureq::Agent,
    base: String,
    mailbox: String,
    password: String,
    shared_key: String,
    /// Injected (tests): a pause between the chunks of a transfer.
    pub(crate) pause: Option<Duration>,
    /// Injected (tests): die once the first POST of a message has been answered.
    pub(crate) abort_after_post: bool,
}

impl Client {
    pub fn new(config: &MeshConfig) -> Result<Client> {
        let tls = uses_tls(&config.url).map_err(|e| anyhow!("mesh.url: {e}"))?;
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(20))
            .timeout_read(Duration::from_secs(120))
            .timeout_write(Duration::from_secs(120))
            .timeout(REQUEST_LIMIT)
            .user_agent(concat!("cpis-gateway/", env!("CARGO_PKG_VERSION")));
        if tls {
            builder = builder.tls_config(Arc::new(tls_config(config)?));
        }
        Ok(Client {
            agent: builder.build(),
            base: config.url.trim_end_matches('/').to_owned(),
            mailbox: config.mesh_mailbox.to_ascii_uppercase(),
            password: config.password.clone(),
            shared_key: config.shared_key.clone(),
            pause: None,
            abort_after_post: false,
        })
    }

    pub fn mailbox(&self) -> &str {
        &self.mailbox
    }

    fn url(&self, tail: &str) -> String {
        format!("{}/messageexchange/{}{tail}", self.base, self.mailbox)
    }

    /// A request with a fresh token (a new nonce every time: MESH refuses a reused one).
    fn request(&self, method: &str, url: &str) -> ureq::Request {
        let nonce = uuid::Uuid::new_v4().to_string();
        let token = auth_token(
            &self.mailbox,
            &self.password,
            &self.shared_key,
            &nonce,
            1,
            chrono::Utc::now(),
        );
        self.agent
            .request(method, url)
            .set("Authorization", &token)
            .set("Accept", ACCEPT)
    }

    /// One try; an error status is read into `CallError::Status`.
    fn send(
        &self,
        request: ureq::Request,
        body: Option<&[u8]>,
    ) -> Result<ureq::Response, CallError> {
        let result = match body {
            Some(bytes) => request.send_bytes(bytes),
            None => request.call(),
        };
        match result {
            Ok(response) => Ok(response),
            Err(ureq::Error::Status(status, response)) => {
                let mut body = String::new();
                let _ = response
                    .into_reader()
                    .take(16 * 1024)
                    .read_to_string(&mut body);
                Err(CallError::Status { status, body })
            }
            Err(ureq::Error::Transport(t)) => Err(CallError::Transport(t.to_string())),
        }
    }

    /// Tries `call` until it succeeds, fails for good, or `ATTEMPTS` are spent.
    fn retrying<T>(&self, what: &str, mut call: impl FnMut() -> Result<T, CallError>) -> Result<T> {
        let mut pause = FIRST_PAUSE;
        for attempt in 1..=ATTEMPTS {
            match call() {
                Ok(v) => return Ok(v),
                Err(e) if e.retryable() && attempt < ATTEMPTS => {
                    tracing::debug!(what, attempt, error = %e, "MESH call failed: trying again");
                    let jitter = 0.8 + f64::from(uuid::Uuid::new_v4().as_bytes()[0]) / 640.0;
                    std::thread::sleep(pause.mul_f64(jitter));
                    pause *= 2;
                }
                Err(e) => return Err(anyhow::Error::new(e).context(what.to_owned())),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// `POST /messageexchange/{mbx}`: says who we are; checks the credentials.
    pub fn handshake(&self) -> Result<()> {
        self.retrying("handshake", || {
            let r = self
                .request("POST", &self.url(""))
                .set(
                    "mex-ClientVersion",
                    concat!("cpis-gateway==", env!("CARGO_PKG_VERSION")),
                )
                .set("mex-OSName", std::env::consts::OS)
                .set("mex-OSArchitecture", std::env::consts::ARCH)
                .set("mex-OSVersion", "unknown")
                .set("mex-JavaVersion", "N/A");
            self.send(r, Some(b"")).map(|_| ())
        })
    }

    /// Every message id in the inbox, following `links.next`; a full page (the service's
    /// page limit reached) means more may be waiting: the caller lists again.
    pub fn list_inbox(&self) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut url = self.url("/inbox");
        for _ in 0..MAX_PAGES {
            let page: serde_json::Value = self.retrying("inbox listing", || {
                let response = self.send(self.request("GET", &url), None)?;
                let mut body = Vec::new();
                response
                    .into_reader()
                    .take(MAX_LISTING_BYTES + 1)
                    .read_to_end(&mut body)
                    .map_err(|e| CallError::Transport(format!("the inbox listing: {e}")))?;
                if body.len() as u64 > MAX_LISTING_BYTES {
                    return Err(CallError::Transport(format!(
                        "an inbox listing page is larger than {MAX_LISTING_BYTES} bytes"
                    )));
                }
                serde_json::from_slice(&body).map_err(|e| {
                    CallError::Transport(format!("the inbox listing is not JSON: {e}"))
                })
            })?;
            let messages = page["messages"]
                .as_array()
                .ok_or_else(|| anyhow!("the inbox listing has no \"messages\" array"))?;
            for id in messages.iter().filter_map(|m| m.as_str()) {
                // An id that could not name a file, or one seen already, is not kept.
                if id.len() <= 100 && crate::transport::movable(id) && seen.insert(id.to_owned()) {
                    ids.push(id.to_owned());
                }
                if ids.len() >= MAX_IDS {
                    return Ok(ids);
                }
            }
            match page["links"]["next"].as_str() {
                Some(next) => url = next_link(&self.base, next).map_err(|e| anyhow!(e))?,
                None => return Ok(ids),
            }
        }
        // As many as one poll takes: the rest are listed at the next.
        Ok(ids)
    }

    /// Downloads message `id` (every chunk, each gunzipped if sent gzipped) into `to`,
    /// returning its headers. A chunk that fails is fetched again; `to` is truncated back
    /// to where that chunk began. A message announcing more chunks than `max_bytes` could
    /// need, or holding more than `max_bytes` once unzipped, is refused as soon as that is
    /// known: reading stops there.
    pub fn download(&self, id: &str, to: &mut std::fs::File, max_bytes: u64) -> Result<Downloaded> {
        use std::io::{Seek, SeekFrom};
        let mut first: Option<MessageHeaders> = None;
        let mut chunk = 1;
        let most = max_chunks(max_bytes);
        loop {
            let start = to.stream_position()?;
            let tail = if chunk == 1 {
                format!("/inbox/{id}")
            } else {
                format!("/inbox/{id}/{chunk}")
            };
            let (got, refused) = self.retrying("download", || {
                to.set_len(start)
                    .and_then(|_| to.seek(SeekFrom::Start(start)))
                    .map_err(|e| CallError::Transport(format!("cannot rewind: {e}")))?;
                let response = self.send(
                    self.request("GET", &self.url(&tail))
                        .set("Accept-Encoding", "gzip"),
                    None,
                )?;
                let h = read_headers(&response);
                if chunk == 1 && h.total_chunks > most {
                    let why = format!(
                        "it comes in {} chunks, more than the {most} a file of at most {max_bytes} bytes (gateway.max_file_bytes) needs",
                        h.total_chunks
                    );
                    return Ok((h, Some(why)));
                }
                let gzip = response
                    .header("Content-Encoding")
                    .is_some_and(|e| e.eq_ignore_ascii_case("gzip"));
                let reader = response.into_reader();
                // One byte more than is left, to know when there is too much.
                let room = max_bytes.saturating_sub(start);
                let copied = if h.message_type.eq_ignore_ascii_case("REPORT") {
                    Ok(0)
                } else if gzip {
                    io::copy(&mut GzDecoder::new(reader).take(room + 1), to)
                } else {
                    io::copy(&mut reader.take(room + 1), to)
                };
                let n = copied.map_err(|e| CallError::Transport(format!("chunk {chunk}: {e}")))?;
                let why = (n > room).then(|| {
                    format!("it holds more than {max_bytes} bytes (gateway.max_file_bytes) once unzipped")
                });
                Ok((h, why))
            })?;
            let headers = first.get_or_insert(got);
            if let Some(why) = refused {
                return Ok(Downloaded::Refused {
                    headers: headers.clone(),
                    why,
                });
            }
            if chunk >= headers.total_chunks.max(1) {
                break;
            }
            chunk += 1;
            crate::sys::fault::pause_mesh_chunk(self.pause);
        }
        to.sync_all()?;
        Ok(Downloaded::Whole(first.expect("at least one chunk")))
    }

    /// `PUT …/inbox/{id}/status/acknowledged`.
    pub fn acknowledge(&self, id: &str) -> Result<()> {
        self.retrying("acknowledgement", || {
            self.send(
                self.request(
                    "PUT",
                    &self.url(&format!("/inbox/{id}/status/acknowledged")),
                ),
                Some(b""),
            )
            .map(|_| ())
        })
    }

    /// The first POST of a message: **one try only** (a retry after a lost answer would
    /// send the message twice). Returns MESH's message id.
    pub fn post_first(&self, e: &Envelope<'_>, first: &Chunk<'_>) -> Result<String, CallError> {
        let mut r = self
            .request("POST", &self.url("/outbox"))
            .set("Content-Type", "application/octet-stream")
            .set("Content-Encoding", "gzip")
            .set("mex-To", e.to)
            .set("mex-WorkflowID", e.workflow)
            .set("mex-FileName", e.file_name)
            .set("mex-LocalID", e.local_id)
            .set("mex-Subject", e.subject)
            .set("mex-Content-Compressed", "Y")
            .set("mex-Content-Checksum", e.checksum);
        if first.total > 1 {
            r = r.set("mex-Chunk-Range", &format!("1:{}", first.total));
        }
        let response = self.send(r, Some(first.body))?;
        if self.abort_after_post {
            tracing::error!("aborting after the first POST (injected)");
            std::process::abort();
        }
        let v: serde_json::Value =
            serde_json::from_reader(response.into_reader().take(MAX_ANSWER_BYTES))
                .map_err(|err| CallError::Transport(format!("the answer is not JSON: {err}")))?;
        v["message_id"]
            .as_str()
            .or_else(|| v["messageID"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| CallError::Transport("the answer has no message_id".into()))
    }

    /// A later chunk, to `…/outbox/{id}/{n}` (retried: the same chunk twice is harmless).
    pub fn post_chunk(&self, message_id: &str, chunk: &Chunk<'_>) -> Result<()> {
        self.retrying("chunk upload", || {
            let r = self
                .request(
                    "POST",
                    &self.url(&format!("/outbox/{message_id}/{}", chunk.number)),
                )
                .set("Content-Type", "application/octet-stream")
                .set("Content-Encoding", "gzip")
                .set(
                    "mex-Chunk-Range",
                    &format!("{}:{}", chunk.number, chunk.total),
                );
            self.send(r, Some(chunk.body)).map(|_| ())
        })
    }

    /// Whether MESH has a message we sent under `local_id` (its message id), `None` if it
    /// has none: how a POST whose answer was lost is settled without sending twice.
    pub fn find_by_local_id(&self, local_id: &str) -> Result<Option<String>> {
        let url = self.url(&format!("/outbox/tracking/{local_id}"));
        let found = self.retrying("tracking", || {
            match self.send(self.request("GET", &url), None) {
                Ok(response) => {
                    let v: serde_json::Value =
                        serde_json::from_reader(response.into_reader().take(MAX_ANSWER_BYTES))
                            .map_err(|e| {
                                CallError::Transport(format!("tracking is not JSON: {e}"))
                            })?;
                    // The (v1) tracking answer names the message `dtsId`.
                    ["dtsId", "messageID", "message_id"]
                        .iter()
                        .find_map(|k| v[*k].as_str())
                        .map(|id| Some(id.to_owned()))
                        .ok_or_else(|| {
                            CallError::Transport(
                                "MESH tracks a message with this local id but names no message id"
                                    .into(),
                            )
                        })
                }
                Err(CallError::Status { status: 404, .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        Ok(found)
    }
}

fn read_headers(r: &ureq::Response) -> MessageHeaders {
    let get = |name: &str| {
        r.header(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let total_chunks = get("Mex-Total-Chunks")
        .and_then(|t| t.parse().ok())
        .or_else(|| {
            get("Mex-Chunk-Range")
                .and_then(|c| crate::core::mesh::chunk_range(&c))
                .map(|(_, n)| n)
        })
        .unwrap_or(1);
    MessageHeaders {
        message_type: get("Mex-MessageType").unwrap_or_else(|| "DATA".into()),
        from: get("Mex-From").unwrap_or_default(),
        file_name: get("Mex-FileName"),
        workflow: get("Mex-WorkflowID"),
        local_id: get("Mex-LocalID"),
        linked_message_id: get("Mex-LinkedMsgID"),
        status_code: get("Mex-StatusCode"),
        status_event: get("Mex-StatusEvent"),
        status_description: get("Mex-StatusDescription"),
        total_chunks,
    }
}

/// TLS 1.2 or 1.3, trusting only the configured CA, with the client certificate when one is
/// configured (MESH requires one).
fn tls_config(config: &MeshConfig) -> Result<rustls::ClientConfig> {
    let ca = config
        .ca
        .as_ref()
        .ok_or_else(|| anyhow!("mesh.ca is required for an https url: MESH's certificates chain to the NHS's own CA, not the public web's"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("cannot read mesh.ca {}", ca.display()))?
    {
        let cert = cert.with_context(|| format!("mesh.ca {} is not PEM", ca.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("mesh.ca {}: a certificate is unusable", ca.display()))?;
    }
    if roots.is_empty() {
        bail!("mesh.ca {} holds no certificate", ca.display());
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots);
    Ok(match (&config.client_cert, &config.client_key) {
        (Some(cert), Some(key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .with_context(|| format!("cannot read mesh.client_cert {}", cert.display()))?;
            // The key's path may be named; its content never is.
            let key = PrivateKeyDer::from_pem_file(key).map_err(|_| {
                anyhow!(
                    "cannot read a private key from mesh.client_key {}",
                    key.display()
                )
            })?;
            builder
                .with_client_auth_cert(certs, key)
                .context("the client certificate and key do not go together")?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => bail!("mesh.client_cert and mesh.client_key go together: give both or neither"),
    })
}
