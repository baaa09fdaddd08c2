//! The SageMaker bring-your-own-container HTTP contract on axum: `GET /ping`, `POST
//! /invocations`, `GET /execution-parameters`. Inference runs on a [`Backend`] (native models
//! here, sandboxed wasm instances in the edge gateway) at most [`Backend::concurrency`] requests
//! at a time, behind a bounded queue that sheds load with 503.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::body::{to_bytes, Body};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use squint_core::{Answer, Pipeline, PipelineOptions, Precision, QaParams};
use tokio::sync::Semaphore;

use crate::wire::{self, Version, WireError};

/// The header SageMaker passes through from `InvokeEndpoint` and back.
pub const CUSTOM_ATTRIBUTES: &str = "x-amzn-sagemaker-custom-attributes";
/// SageMaker's real-time payload limit.
pub const DEFAULT_MAX_PAYLOAD_MB: usize = 6;

/// A model directory to serve, and the precision to run it at (`None`: as stored).
#[derive(Debug, Clone)]
pub struct ModelSpec {
    pub dir: PathBuf,
    pub precision: Option<Precision>,
}

/// A loaded model and the `version` label (`INT8` or `FP32`) requests select it by.
#[derive(Debug)]
pub struct LoadedModel {
    pub version: Version,
    pub pipeline: Pipeline,
}

impl LoadedModel {
    pub fn format(&self) -> &'static str {
        self.pipeline.model().precision().name()
    }
}

/// Why a backend could not answer; each maps to one HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The question, context or parameters are wrong: 400.
    #[error("{0}")]
    BadInput(String),
    /// The request needs more than the backend allows (a sandbox's memory cap): 413.
    #[error("{0}")]
    TooLarge(String),
    /// The request ran past its deadline: 504.
    #[error("{0}")]
    Deadline(String),
    /// Anything else: 500.
    #[error("{0}")]
    Internal(String),
}

impl Failure {
    pub fn status(&self) -> StatusCode {
        match self {
            Failure::BadInput(_) => StatusCode::BAD_REQUEST,
            Failure::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Failure::Deadline(_) => StatusCode::GATEWAY_TIMEOUT,
            Failure::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// What answers questions behind the HTTP contract.
pub trait Backend: Send + Sync + 'static {
    /// The loaded models' versions with their formats (`int8-static`, `fp32`), default first.
    fn models(&self) -> Vec<(Version, &'static str)>;
    /// How many requests may run at once.
    fn concurrency(&self) -> usize;
    /// The answers (best first) to one query on the model `version`, and the windows it took.
    fn answer(
        &self,
        version: Version,
        question: &str,
        context: &str,
        params: &QaParams,
    ) -> Result<(Vec<Answer>, usize), Failure>;
}

/// Native models, one request at a time on their own thread pool (no oversubscription).
impl Backend for Vec<LoadedModel> {
    fn models(&self) -> Vec<(Version, &'static str)> {
        self.iter().map(|m| (m.version, m.format())).collect()
    }

    fn concurrency(&self) -> usize {
        1
    }

    fn answer(
        &self,
        version: Version,
        question: &str,
        context: &str,
        params: &QaParams,
    ) -> Result<(Vec<Answer>, usize), Failure> {
        let model = self
            .iter()
            .find(|m| m.version == version)
            .ok_or_else(|| Failure::Internal(format!("{} is not loaded", version.label())))?;
        model
            .pipeline
            .answer_counted(question, context, params)
            .map_err(|e| match e {
                squint_core::Error::Input(_) | squint_core::Error::Parameter { .. } => {
                    Failure::BadInput(e.to_string())
                }
                other => Failure::Internal(other.to_string()),
            })
    }
}

/// Loads every model (the first is the default); two models must differ in version.
pub fn load_models(specs: &[ModelSpec], threads: Option<usize>) -> Result<Vec<LoadedModel>, String> {
    let mut models: Vec<LoadedModel> = Vec::new();
    for spec in specs {
        let options = PipelineOptions {
            threads,
            precision: spec.precision,
            ..PipelineOptions::default()
        };
        let pipeline = Pipeline::from_dir(&spec.dir, options)
            .map_err(|e| format!("loading {}: {e}", spec.dir.display()))?;
        let version = match pipeline.model().precision() {
            Precision::Fp32 => Version::Fp32,
            Precision::Int8Dynamic | Precision::Int8Static => Version::Int8,
        };
        if let Some(other) = models.iter().find(|m| m.version == version) {
            return Err(format!(
                "{} and another model are both {}: give one INT8 and one FP32 model",
                spec.dir.display(),
                other.version.label()
            ));
        }
        models.push(LoadedModel { version, pipeline });
    }
    if models.is_empty() {
        return Err("no model to serve".into());
    }
    Ok(models)
}

/// Limits of the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body, in bytes.
    pub max_payload: usize,
    /// Requests waiting or running at once; more are refused with 503.
    pub queue: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_payload: DEFAULT_MAX_PAYLOAD_MB * 1024 * 1024,
            queue: 32,
        }
    }
}

/// Shared server state: the backend once loaded, the inference gate and the queue count.
pub struct AppState {
    backend: OnceLock<Box<dyn Backend>>,
    gate: Arc<Semaphore>,
    admitted: AtomicUsize,
    limits: Limits,
}

impl AppState {
    pub fn new(limits: Limits) -> Arc<AppState> {
        Arc::new(AppState {
            backend: OnceLock::new(),
            gate: Arc::new(Semaphore::new(0)),
            admitted: AtomicUsize::new(0),
            limits,
        })
    }

    /// Makes the backend available; `/ping` turns 200 from here on. Only the first call counts.
    pub fn set_backend(&self, backend: impl Backend) {
        let permits = backend.concurrency().max(1);
        if self.backend.set(Box::new(backend)).is_ok() {
            self.gate.add_permits(permits);
        }
    }

    pub fn backend(&self) -> Option<&dyn Backend> {
        self.backend.get().map(|b| b.as_ref())
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("models", &self.backend().map(|b| b.models()))
            .field("limits", &self.limits)
            .finish()
    }
}

/// The routes, over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/ping", get(ping))
        .route("/invocations", post(invocations))
        .route("/execution-parameters", get(execution_parameters))
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// Serves `router(state)` on `listener` while `load` runs on a blocking thread; stops accepting
/// at `shutdown` (or when loading fails) and returns once in-flight requests are answered.
pub async fn serve<B: Backend>(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    load: impl FnOnce() -> Result<B, String> + Send + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<String>();
    let loader_state = state.clone();
    tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        match load() {
            Ok(backend) => {
                for (version, format) in backend.models() {
                    tracing::info!(version = version.label(), format, "model loaded");
                }
                tracing::info!(
                    ms = start.elapsed().as_millis() as u64,
                    concurrency = backend.concurrency(),
                    "ready"
                );
                loader_state.set_backend(backend);
            }
            Err(e) => {
                let _ = failed_tx.send(e);
            }
        }
    });
    let failure = Arc::new(std::sync::Mutex::new(None::<String>));
    let failure_slot = failure.clone();
    let stop = async move {
        tokio::select! {
            () = shutdown => tracing::info!("shutting down: finishing in-flight requests"),
            Ok(e) = failed_rx => {
                tracing::error!(error = %e, "model load failed");
                if let Ok(mut slot) = failure_slot.lock() {
                    *slot = Some(e);
                }
            }
        }
    };
    axum::serve(listener, router(state))
        .with_graceful_shutdown(stop)
        .await
        .map_err(|e| format!("server: {e}"))?;
    let failed = failure.lock().ok().and_then(|mut slot| slot.take());
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// SIGTERM (what SageMaker and Docker send) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

async fn ping(State(state): State<Arc<AppState>>) -> Response {
    match state.backend() {
        Some(_) => StatusCode::OK.into_response(),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "the model is still loading").into_response(),
    }
}

async fn execution_parameters(State(state): State<Arc<AppState>>) -> Response {
    let body = json!({
        "MaxConcurrentTransforms": state.backend().map_or(1, |b| b.concurrency()),
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": (state.limits.max_payload / (1024 * 1024)).max(1),
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// A refused or failed request: its status and a message for the JSON body `{"error": ...}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({ "error": self.message }))).into_response()
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        message: message.into(),
    }
}

/// Request and response bodies the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    JsonLines,
}

impl Format {
    fn of(mime: &str) -> Option<Format> {
        let essence = mime.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/json" => Some(Format::Json),
            "application/jsonlines" | "application/x-jsonlines" | "application/jsonl" => {
                Some(Format::JsonLines)
            }
            _ => None,
        }
    }

    fn mime(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::JsonLines => "application/jsonlines",
        }
    }
}

/// The request's body format from `Content-Type` (absent: JSON).
fn content_format(headers: &HeaderMap) -> Result<Format, ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(Format::Json);
    };
    let mime = value.to_str().unwrap_or("");
    Format::of(mime).ok_or_else(|| {
        error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type {mime:?} is not supported: send application/json or application/jsonlines"),
        )
    })
}

/// The response format from `Accept` (absent or `*/*`: JSON; the first supported type wins).
fn accept_format(headers: &HeaderMap) -> Result<Format, ApiError> {
    let Some(value) = headers.get(header::ACCEPT) else {
        return Ok(Format::Json);
    };
    let accept = value.to_str().unwrap_or("");
    for item in accept.split(',') {
        let essence = item.split(';').next().unwrap_or("").trim();
        if essence.is_empty() || essence == "*/*" || essence == "application/*" {
            return Ok(Format::Json);
        }
        if let Some(f) = Format::of(essence) {
            return Ok(f);
        }
    }
    Err(error(
        StatusCode::NOT_ACCEPTABLE,
        format!("Accept {accept:?}: this server answers application/json or application/jsonlines"),
    ))
}

/// Counts a request as admitted (waiting or running) until dropped.
struct Admission<'a>(&'a AtomicUsize);

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn invocations(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let start = Instant::now();
    let (parts, body) = request.into_parts();
    let attributes = parts.headers.get(CUSTOM_ATTRIBUTES).cloned();
    let mut response = match handle(&state, &parts.headers, body).await {
        Ok((response, stats)) => {
            tracing::info!(
                status = 200,
                ms = millis(start),
                queries = stats.queries,
                windows = stats.windows,
                model = stats.model,
                "invocation"
            );
            response
        }
        Err(refused) => {
            tracing::info!(
                status = refused.status.as_u16(),
                ms = millis(start),
                error = %refused.message,
                "invocation refused"
            );
            refused.into_response()
        }
    };
    if let Some(value) = attributes {
        response.headers_mut().insert(CUSTOM_ATTRIBUTES, value);
    }
    response
}

/// Milliseconds since `start`, to 0.01 ms.
fn millis(start: Instant) -> f64 {
    (start.elapsed().as_secs_f64() * 1e5).round() / 100.0
}

/// What one invocation did, for its log line.
struct Stats {
    queries: usize,
    windows: usize,
    model: &'static str,
}

async fn handle(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Response, Stats), ApiError> {
    let limit = state.limits.max_payload;
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is over the {limit}-byte limit (SAGEMAKER_MAX_PAYLOAD_IN_MB)"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let input = content_format(headers)?;
    let output = accept_format(headers)?;
    let Some(backend) = state.backend() else {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the model is still loading",
        ));
    };
    let bytes = to_bytes(body, limit).await.map_err(|_| too_large())?;
    let bad = |e: WireError| error(StatusCode::BAD_REQUEST, e.to_string());
    let requests = match input {
        Format::Json => vec![wire::parse_json(&bytes).map_err(bad)?],
        Format::JsonLines => wire::parse_jsonlines(&bytes).map_err(bad)?,
    };
    // Every request names a loaded model, or the default (first) one.
    let models = backend.models();
    let mut chosen = Vec::with_capacity(requests.len());
    for request in &requests {
        let model = match request.version {
            None => models
                .first()
                .ok_or_else(|| error(StatusCode::SERVICE_UNAVAILABLE, "no model is loaded"))?,
            Some(v) => models.iter().find(|m| m.0 == v).ok_or_else(|| {
                let loaded: Vec<&str> = models.iter().map(|m| m.0.label()).collect();
                error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "version: {} is not loaded here (loaded: {})",
                        v.label(),
                        loaded.join(", ")
                    ),
                )
            })?,
        };
        chosen.push(model.0);
    }
    // Admission: bounded queue, then one inference at a time.
    if state.admitted.fetch_add(1, Ordering::SeqCst) >= state.limits.queue {
        state.admitted.fetch_sub(1, Ordering::SeqCst);
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "busy: {} requests are already queued; retry later",
                state.limits.queue
            ),
        ));
    }
    let _admission = Admission(&state.admitted);
    let permit = state
        .gate
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| error(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down"))?;
    let worker_state = state.clone();
    let work = tokio::task::spawn_blocking(move || {
        // The permit lives as long as the work, even if the client goes away.
        let _permit = permit;
        run(&worker_state, &requests, &chosen).map(|(answers, windows)| (requests, chosen, answers, windows))
    });
    let (requests, chosen, answers, windows) = work.await.map_err(|e| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("inference task failed: {e}"),
        )
    })??;
    let rendered: Vec<Value> = requests
        .iter()
        .zip(answers)
        .map(|(request, answers)| wire::render(request, answers))
        .collect();
    let body = match (input, output) {
        (Format::Json, Format::Json) => rendered.into_iter().next().unwrap_or(Value::Null).to_string(),
        (Format::JsonLines, Format::Json) => Value::Array(rendered).to_string(),
        (_, Format::JsonLines) => rendered.iter().map(|v| v.to_string() + "\n").collect(),
    };
    let mut response = (StatusCode::OK, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(output.mime()));
    let stats = Stats {
        queries: requests.iter().map(|r| r.queries.len()).sum(),
        windows,
        model: chosen.first().map_or("", |v| v.label()),
    };
    Ok((response, stats))
}

/// The answers (best first) of each query of one request.
type RequestAnswers = Vec<Vec<Answer>>;

/// Answers every query of every request on its chosen model; failures name the query.
fn run(
    state: &AppState,
    requests: &[wire::Request],
    chosen: &[Version],
) -> Result<(Vec<RequestAnswers>, usize), ApiError> {
    let backend = state
        .backend()
        .ok_or_else(|| error(StatusCode::SERVICE_UNAVAILABLE, "the model is still loading"))?;
    let mut windows = 0;
    let mut all = Vec::with_capacity(requests.len());
    for (r, (request, version)) in requests.iter().zip(chosen).enumerate() {
        let mut answers = Vec::with_capacity(request.queries.len());
        for (i, query) in request.queries.iter().enumerate() {
            let (found, n) = backend
                .answer(*version, &query.question, &query.context, &request.params)
                .map_err(|e| {
                    let at = match (requests.len() > 1, request.batch) {
                        (true, true) => format!("line {}: inputs[{i}]: ", r + 1),
                        (true, false) => format!("line {}: ", r + 1),
                        (false, true) => format!("inputs[{i}]: "),
                        (false, false) => String::new(),
                    };
                    error(e.status(), format!("{at}{e}"))
                })?;
            windows += n;
            answers.push(found);
        }
        all.push(answers);
    }
    Ok((all, windows))
}
