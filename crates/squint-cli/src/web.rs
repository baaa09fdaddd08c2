//! `squint web`: serves the browser demo (web/www, built by web/build.sh) and model directories
//! as static files on loopback. Inference happens in the page, not here.

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clap::Args;

#[derive(Args, Debug)]
pub struct WebArgs {
    /// Port on 127.0.0.1 (use --bind for another address).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Address to listen on (overrides --port).
    #[arg(long)]
    bind: Option<SocketAddr>,
    /// Model directory offered to the page; give it twice for the INT8/FP32 toggle.
    /// Default: the bundled INT8 model.
    #[arg(long)]
    model: Vec<PathBuf>,
    /// The page's directory. Default: web/www of this checkout.
    #[arg(long)]
    root: Option<PathBuf>,
}

/// One model as the page sees it: `/models/<id>/<file>`.
#[derive(Clone, Debug, serde::Serialize)]
struct Offered {
    id: String,
    precision: String,
    weights: String,
    files: Vec<String>,
    #[serde(skip)]
    dir: PathBuf,
}

#[derive(Clone, Debug)]
struct Site {
    root: PathBuf,
    models: Vec<Offered>,
}

pub fn run(args: WebArgs) -> Result<()> {
    let root = match args.root {
        Some(root) => root,
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/www")),
    };
    if !root.join("index.html").is_file() {
        bail!("{} has no index.html", root.display());
    }
    if !root.join("pkg").is_dir() {
        bail!(
            "{} has no pkg/ (the WebAssembly build): run web/build.sh first",
            root.display()
        );
    }
    let dirs = if args.model.is_empty() {
        vec![crate::default_model()?]
    } else {
        args.model
    };
    let models = dirs.iter().map(|d| describe(d)).collect::<Result<Vec<_>>>()?;
    if models.len() == 2 && models[0].id == models[1].id {
        bail!(
            "both --model directories are {}: give one INT8 and one FP32 model for the toggle",
            models[0].id
        );
    }
    if models.len() > 2 {
        bail!("--model at most twice (one INT8, one FP32)");
    }
    let addr = args.bind.unwrap_or(SocketAddr::from(([127, 0, 0, 1], args.port)));
    let site = Site { root, models };
    crate::async_runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let bound = listener.local_addr()?;
        for m in &site.models {
            println!("model {} ({}) from {}", m.id, m.precision, m.dir.display());
        }
        println!("squint web: http://{bound}/");
        let app = Router::new()
            .route("/models/index.json", get(index))
            .route("/models/{id}/{file}", get(model_file))
            .route(
                "/",
                get(|State(site): State<Site>, request: HeaderMap| async move {
                    send(&site.root.join("index.html"), &request).await
                }),
            )
            .route("/{*path}", get(page_file))
            .with_state(site);
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("serving")
    })
}

/// Reads what the page needs to know about a model directory (from its config and files).
fn describe(dir: &Path) -> Result<Offered> {
    let files = squint_core::ModelFiles::from_dir(dir).with_context(|| format!("model {}", dir.display()))?;
    // The precision is in the weights' header: an INT8 artifact's metadata names its recipe.
    let (weights, precision) = match &files.weights {
        squint_core::WeightsFile::Safetensors { name, bytes } => {
            let source = squint_core::weights::SafetensorsSource::new(name, bytes.as_ref())?;
            let precision = match squint_core::artifact::Int8Artifact::open(&source)? {
                Some(artifact) => artifact.metadata().recipe.precision(),
                None => squint_core::Precision::Fp32,
            };
            (name.clone(), precision.name().to_string())
        }
        _ => bail!("{}: the browser loads safetensors weights only", dir.display()),
    };
    if !dir.join("tokenizer.json").is_file() {
        bail!("{}: the browser needs tokenizer.json", dir.display());
    }
    let mut list = vec![
        "config.json".to_string(),
        "tokenizer.json".to_string(),
        weights.clone(),
    ];
    if dir.join("manifest.json").is_file() {
        list.push("manifest.json".into());
    }
    Ok(Offered {
        id: precision.clone(),
        precision,
        weights,
        files: list,
        dir: dir.to_path_buf(),
    })
}

async fn index(State(site): State<Site>) -> Json<Vec<Offered>> {
    Json(site.models)
}

async fn model_file(
    State(site): State<Site>,
    UrlPath((id, file)): UrlPath<(String, String)>,
    request: HeaderMap,
) -> Response {
    match site.models.iter().find(|m| m.id == id) {
        Some(m) if m.files.contains(&file) => send(&m.dir.join(&file), &request).await,
        _ => (StatusCode::NOT_FOUND, format!("no model file {id}/{file}")).into_response(),
    }
}

async fn page_file(State(site): State<Site>, UrlPath(path): UrlPath<String>, request: HeaderMap) -> Response {
    // Only plain relative paths under the root: no `..`, no absolute paths.
    let rel = Path::new(&path);
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return (StatusCode::BAD_REQUEST, "bad path").into_response();
    }
    send(&site.root.join(rel), &request).await
}

/// A file with its content type (`application/wasm` matters: browsers stream-compile only that)
/// and an ETag, answering 304 when the browser's copy is current. Revalidated on every use
/// (`no-cache`), so an edited file is seen at once; the 304 keeps the browser's cache entry, and
/// with it Chromium's cache of the compiled WebAssembly (no recompilation on reload).
async fn send(path: &Path, request: &HeaderMap) -> Response {
    let kind = match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("wasm") => "application/wasm",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    };
    let not_found = || (StatusCode::NOT_FOUND, "not found").into_response();
    let Ok(meta) = tokio::fs::metadata(path).await else {
        return not_found();
    };
    let tag = etag(&meta);
    let cache = [(header::CACHE_CONTROL, "no-cache")];
    if request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .any(|v| matches_etag(v, &tag))
    {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, tag)], cache).into_response();
    }
    match tokio::fs::read(path).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, kind), (header::ETAG, &tag)], cache, bytes).into_response(),
        Err(_) => not_found(),
    }
}

/// A weak validator from the file's size and modification time (what static servers use:
/// changes whenever the file is rewritten, costs no read).
fn etag(meta: &std::fs::Metadata) -> String {
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("W/\"{:x}-{:x}\"", meta.len(), modified)
}

/// Whether an `If-None-Match` header value names `tag` (a list, `*`, weak comparison).
fn matches_etag(value: &HeaderValue, tag: &str) -> bool {
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let Ok(list) = value.to_str() else {
        return false;
    };
    let want = strip(tag);
    list.split(',').any(|t| t.trim() == "*" || strip(t) == want)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists() {
        let tag = r#"W/"10-abc""#;
        let check = |v: &str| {
            matches_etag(
                &HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")),
                tag,
            )
        };
        assert!(check(r#"W/"10-abc""#));
        assert!(check(r#""10-abc""#));
        assert!(check(r#""x", W/"10-abc""#));
        assert!(check("*"));
        assert!(!check(r#"W/"10-abd""#));
        assert!(!check(""));
    }
}
