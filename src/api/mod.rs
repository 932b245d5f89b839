//! The FHIR R4 API for clinical systems (issue 24; docs/api.md): CP-IS's CareTeam and
//! AuditEvent searches over the store, on the gateway's own listener. HTTP is hyper's
//! (through axum's router) on tokio; every look-up goes to a worker thread that owns a
//! store connection and runs it as `query` does, so the API keeps every rule of the file
//! and `query` paths. What a request asks and who asks it is read by
//! `core::api_request`; the bodies are `core::fhir`'s.

mod metrics;

use crate::config::{ApiConfig, ApiTls, Config};
use crate::core::api_request::{self, Looker, Refusal};
use crate::core::attendance::Attendance;
use crate::core::fhir::{self, SpineError};
use crate::core::ids::OdsCode;
use crate::core::nhs::NhsNumber;
use crate::pipeline::health::{Lookup, Recorded};
use crate::pipeline::ingest::Gateway;
use crate::sys::clock::Clock;
use crate::sys::pem;
use anyhow::{anyhow, Context, Result};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// A client that has not sent its request's headers within this is cut off.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// A TLS handshake not finished within this is cut off (the headers' time starts after).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; past them a client is told 503 at once (up to
/// [`MAX_TURNED_AWAY`] at a time; past those, closed).
const MAX_CONNECTIONS: usize = 1024;
const MAX_TURNED_AWAY: usize = 64;
/// Look-ups queued for the worker at most.
const QUEUE: usize = 256;

/// What the worker does for a request.
enum Job {
    /// A look-up as `who` (its time is set when it runs), leaving behind `recorded`.
    Look {
        who: Attendance,
        recorded: Recorded,
        reply: oneshot::Sender<Result<Lookup>>,
    },
    /// Whether the store answers.
    Health { reply: oneshot::Sender<bool> },
}

/// A health organisation the API knows by one of its tokens.
struct Org {
    ods: OdsCode,
    name: String,
    token_sha256: Vec<String>,
}

struct Shared {
    orgs: Vec<Org>,
    jobs: mpsc::Sender<Job>,
    base: String,
    metrics: metrics::Metrics,
    /// This process's key for resource ids.
    ids: fhir::IdKey,
}

/// 32 random bytes (two version-4 UUIDs' worth of the operating system's randomness).
fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    key
}

/// Serves the API until `stop` is set; `ready` is told the address once it listens.
pub fn serve(
    config: &Config,
    clock: &dyn Clock,
    ready: &mut dyn FnMut(SocketAddr),
    stop: Arc<AtomicBool>,
) -> Result<()> {
    let api = config.api.as_ref().ok_or_else(|| {
        anyhow!(
            "no [api] in the configuration ({}): nothing to serve",
            config.origin
        )
    })?;
    raise_open_files();
    let (jobs, queue) = mpsc::channel(QUEUE);
    let queue = std::sync::Mutex::new(queue);
    // SQLite has one writer: one worker. On PostgreSQL the store's write lock orders the
    // look-ups (and the access log's chain); four workers keep it busy while others wait
    // on the network.
    let workers = if config.postgres.is_some() { 4 } else { 1 };
    std::thread::scope(|scope| {
        let (opened, started) = std::sync::mpsc::channel();
        let queue = &queue;
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let opened = opened.clone();
                scope.spawn(move || work(config, clock, queue, opened))
            })
            .collect();
        drop(opened);
        for _ in 0..workers {
            started
                .recv()
                .map_err(|_| anyhow!("an API worker stopped before opening the store"))??;
        }
        let shared = Arc::new(Shared {
            orgs: config
                .health_orgs
                .iter()
                .map(|h| Org {
                    ods: h.ods.clone(),
                    name: h.name.clone(),
                    token_sha256: h.api_token_sha256.clone(),
                })
                .collect(),
            jobs,
            base: api.base.clone(),
            metrics: metrics::Metrics::default(),
            ids: fhir::IdKey(random_key()),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the API's runtime")?;
        let served = runtime.block_on(listen(api, shared, ready, stop));
        // Dropping the runtime drops the last sender: the worker's queue ends.
        drop(runtime);
        let mut worked = Ok(());
        for handle in handles {
            let result = handle
                .join()
                .map_err(|_| anyhow!("an API worker panicked"))?;
            worked = worked.and(result);
        }
        served.and(worked)
    })
}

/// Lets this process hold as many files as its hard limit allows (the soft limit is often
/// 1,024, which the connection slots alone would reach).
fn raise_open_files() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// A worker: opens the store, says so, then runs the jobs it takes in turn.
fn work(
    config: &Config,
    clock: &dyn Clock,
    queue: &std::sync::Mutex<mpsc::Receiver<Job>>,
    opened: std::sync::mpsc::Sender<Result<()>>,
) -> Result<()> {
    let mut gateway = match Gateway::open_existing(config, clock) {
        Ok(g) => {
            let _ = opened.send(Ok(()));
            g
        }
        Err(e) => {
            let _ = opened.send(Err(e));
            return Ok(());
        }
    };
    // One worker at a time waits on the queue; the job taken, the next waits.
    let next = || queue.lock().ok().and_then(|mut q| q.blocking_recv());
    while let Some(job) = next() {
        match job {
            Job::Look {
                mut who,
                recorded,
                reply,
            } => {
                who.attended_at = gateway.clock.now();
                let _ = reply.send(gateway.query_as(&who, recorded));
            }
            Job::Health { reply } => {
                let _ = reply.send(gateway.store.pending_notifications().is_ok());
            }
        }
    }
    Ok(())
}

/// HTTPS as `tls` says: TLS 1.2 or 1.3, HTTP/1.1, and a client certificate chaining to
/// `client_ca` when one is configured.
fn tls_acceptor(tls: &ApiTls) -> Result<tokio_rustls::TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &tls.client_ca {
        Some(ca) => {
            let roots = Arc::new(pem::roots(ca, "api.client_ca")?);
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider)
                    .build()
                    .context("api.client_ca cannot check client certificates")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(
            pem::certificates(&tls.cert, "api.tls_cert")?,
            pem::private_key(&tls.key, "api.tls_key")?,
        )
        .context("api.tls_cert and api.tls_key do not go together")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

async fn listen(
    api: &ApiConfig,
    shared: Arc<Shared>,
    ready: &mut dyn FnMut(SocketAddr),
    stop: Arc<AtomicBool>,
) -> Result<()> {
    let acceptor = api.tls.as_ref().map(tls_acceptor).transpose()?;
    let listener = tokio::net::TcpListener::bind(api.listen)
        .await
        .with_context(|| format!("listening on {}", api.listen))?;
    let local = listener.local_addr()?;
    let base = &api.base;
    let router = Router::new()
        .route(&format!("{base}/metadata"), get(metadata))
        .route(&format!("{base}/CareTeam"), get(care_team))
        .route(&format!("{base}/AuditEvent"), get(audit_event))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .method_not_allowed_fallback(not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&shared),
            measured,
        ))
        .with_state(Arc::clone(&shared));
    let busy = Router::new().fallback(busy).with_state(Arc::clone(&shared));
    tracing::info!(address = %local, base = %base, "FHIR API listening");
    ready(local);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let turned_away = Arc::new(tokio::sync::Semaphore::new(MAX_TURNED_AWAY));
    let mut stop = std::pin::pin!(stopped(stop));
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "API connection not accepted");
                    continue;
                }
            },
            () = &mut stop => return Ok(()),
        };
        // A slot, or (all taken) a 503; past the turned-away ones too, the connection closes.
        let (slot, router) = match slots.clone().try_acquire_owned() {
            Ok(slot) => (slot, router.clone()),
            Err(_) => match turned_away.clone().try_acquire_owned() {
                Ok(slot) => (slot, busy.clone()),
                Err(_) => continue,
            },
        };
        let service = hyper_util::service::TowerToHyperService::new(router);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(64 * 1024);
            match acceptor {
                None => {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = http.serve_connection(io, service).await;
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    if let Ok(Ok(tls)) = handshake.await {
                        let io = hyper_util::rt::TokioIo::new(tls);
                        let _ = http.serve_connection(io, service).await;
                    }
                }
            }
        });
    }
}

/// Resolves once `stop` is set (by SIGTERM or SIGINT, or by the daemon stopping).
async fn stopped(stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A FHIR JSON answer, with the request's trace id.
fn fhir_reply(status: StatusCode, body: &Value, trace: &str) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/fhir+json; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(trace) {
        headers.insert("TraceID", value);
    }
    response
}

fn refusal(status: StatusCode, (error, why): Refusal, trace: &str) -> Response {
    fhir_reply(status, &fhir::operation_outcome(error, &why), trace)
}

/// The request's trace id, or a new one.
fn trace_of(headers: &HeaderMap) -> String {
    api_request::trace_id(one_header(headers, "TraceID").as_deref())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// A header given once, as text.
fn one_header(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    // UTF-8, not only visible ASCII: people's names have accents.
    String::from_utf8(first.as_bytes().to_vec()).ok()
}

fn takes_json(headers: &HeaderMap, query: Option<&str>) -> bool {
    api_request::takes_fhir_json(one_header(headers, "accept").as_deref(), query)
}

async fn metadata(headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let trace = trace_of(&headers);
    if !takes_json(&headers, query.as_deref()) {
        return not_acceptable(&trace);
    }
    fhir_reply(StatusCode::OK, &fhir::capability_statement(), &trace)
}

fn not_acceptable(trace: &str) -> Response {
    refusal(
        StatusCode::NOT_ACCEPTABLE,
        (
            SpineError::NotAcceptable,
            "the API answers in FHIR JSON only (Accept: application/fhir+json)".into(),
        ),
        trace,
    )
}

/// The organisation a request's bearer token is of.
fn authenticate<'a>(
    shared: &'a Shared,
    headers: &HeaderMap,
    trace: &str,
) -> Result<&'a Org, Response> {
    let authorization = one_header(headers, "authorization");
    let Some(token) = api_request::bearer(authorization.as_deref()) else {
        return Err(refusal(
            StatusCode::UNAUTHORIZED,
            (
                SpineError::AccessDenied,
                "no bearer token: send Authorization: Bearer <your organisation's token>".into(),
            ),
            trace,
        ));
    };
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    shared
        .orgs
        .iter()
        .find(|o| o.token_sha256.contains(&hash))
        .ok_or_else(|| {
            refusal(
                StatusCode::FORBIDDEN,
                (
                    SpineError::AccessDenied,
                    "the token is not one the gateway knows".into(),
                ),
                trace,
            )
        })
}

/// What a search asks, checked in order: who (401/403), the format (406), the child and
/// the person looking (400).
fn search_request(
    shared: &Shared,
    headers: &HeaderMap,
    query: Option<&str>,
    trace: &str,
) -> Result<(NhsNumber, Attendance, bool), Response> {
    let org = authenticate(shared, headers, trace)?;
    if !takes_json(headers, query) {
        return Err(not_acceptable(trace));
    }
    let nhs =
        api_request::patient(query).map_err(|r| refusal(StatusCode::BAD_REQUEST, r, trace))?;
    // A header given twice is not taken as absent (a second IsUnscheduledAccessEvent
    // must not turn a silent read into a notifying one).
    for name in api_request::LOOKER_HEADERS {
        if headers.get_all(name).iter().count() > 1 {
            return Err(refusal(
                StatusCode::BAD_REQUEST,
                (
                    SpineError::PreconditionFailed,
                    format!("the {name} header is given more than once"),
                ),
                trace,
            ));
        }
    }
    let Looker {
        user,
        role,
        setting,
        unscheduled,
    } = api_request::looker(&|name| one_header(headers, name))
        .map_err(|r| refusal(StatusCode::BAD_REQUEST, r, trace))?;
    let who = Attendance {
        row: 0,
        nhs,
        attended_at: chrono::DateTime::UNIX_EPOCH,
        org_ods: org.ods.to_string(),
        org_name: org.name.clone(),
        setting,
        user_name: user,
        user_role: role,
    };
    Ok((nhs, who, unscheduled))
}

/// Runs a look-up on the worker.
async fn look(
    shared: &Shared,
    who: Attendance,
    recorded: Recorded,
    trace: &str,
) -> Result<Lookup, Response> {
    let unavailable = || {
        refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            (
                SpineError::ServiceUnavailable,
                "the gateway cannot look children up just now: try again".into(),
            ),
            trace,
        )
    };
    let (reply, answer) = oneshot::channel();
    shared
        .jobs
        .send(Job::Look {
            who,
            recorded,
            reply,
        })
        .await
        .map_err(|_| unavailable())?;
    match answer.await {
        Ok(Ok(found)) => Ok(found),
        Ok(Err(e)) => {
            shared.metrics.store_error();
            tracing::error!(trace = %trace, error = %format!("{e:#}"), "API look-up failed");
            Err(unavailable())
        }
        Err(_) => Err(unavailable()),
    }
}

async fn care_team(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let trace = trace_of(&headers);
    let (nhs, who, unscheduled) = match search_request(&shared, &headers, query.as_deref(), &trace)
    {
        Ok(r) => r,
        Err(response) => return response,
    };
    let recorded = if unscheduled {
        Recorded::AsSetting
    } else {
        Recorded::SilentRead
    };
    match look(&shared, who, recorded, &trace).await {
        Ok(found) => {
            shared.metrics.looked_up(found.flagged);
            let number = nhs.full();
            let teams = found
                .flags
                .iter()
                .map(|f| fhir::care_team(&shared.ids, &number, f))
                .collect();
            // Nothing of the child in the log: whether it was flagged is a trace of it.
            tracing::info!(trace = %trace, "CareTeam search answered");
            fhir_reply(StatusCode::OK, &fhir::search_bundle(teams), &trace)
        }
        Err(response) => response,
    }
}

async fn audit_event(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let trace = trace_of(&headers);
    let (nhs, who, _) = match search_request(&shared, &headers, query.as_deref(), &trace) {
        Ok(r) => r,
        Err(response) => return response,
    };
    match look(&shared, who, Recorded::SilentRead, &trace).await {
        Ok(found) => {
            let number = nhs.full();
            let events = found
                .presentations
                .iter()
                .map(|p| fhir::audit_event(&shared.ids, &number, p))
                .collect();
            tracing::info!(trace = %trace, "AuditEvent search answered");
            fhir_reply(StatusCode::OK, &fhir::search_bundle(events), &trace)
        }
        Err(response) => response,
    }
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    let (reply, answer) = oneshot::channel();
    let ok = shared.jobs.send(Job::Health { reply }).await.is_ok() && answer.await == Ok(true);
    if ok {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the store does not answer\n",
        )
            .into_response()
    }
}

/// Times and counts every request, by endpoint and status.
async fn measured(
    State(shared): State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let endpoint = metrics::endpoint(request.uri().path(), &shared.base);
    let started = std::time::Instant::now();
    // GET only: the router would also answer HEAD with a GET's work (a look-up).
    let response = if request.method() == axum::http::Method::GET {
        next.run(request).await
    } else {
        not_allowed(request.headers().clone()).await
    };
    shared
        .metrics
        .request(endpoint, response.status().as_u16(), started.elapsed());
    response
}

async fn metrics_text(State(shared): State<Arc<Shared>>) -> Response {
    let mut response = shared.metrics.text().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// Every connection slot is taken: 503 now rather than a wait.
async fn busy(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    shared.metrics.request(
        "busy",
        StatusCode::SERVICE_UNAVAILABLE.as_u16(),
        Duration::ZERO,
    );
    let mut response = refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        (
            SpineError::ServiceUnavailable,
            "the gateway is serving as many connections as it can: try again in a moment".into(),
        ),
        &trace_of(&headers),
    );
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

async fn not_found(headers: HeaderMap) -> Response {
    refusal(
        StatusCode::NOT_FOUND,
        (
            SpineError::NotFound,
            "no such path: the API serves metadata, CareTeam and AuditEvent under its base".into(),
        ),
        &trace_of(&headers),
    )
}

async fn not_allowed(headers: HeaderMap) -> Response {
    refusal(
        StatusCode::METHOD_NOT_ALLOWED,
        (SpineError::NotSupported, "the API answers GET only".into()),
        &trace_of(&headers),
    )
}
