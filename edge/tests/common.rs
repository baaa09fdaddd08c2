//! Shared by the gateway's tests: where the built components and models are, and an in-process
//! gateway on a loopback port.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use squint_cloud::server::{serve, AppState, Backend, Limits};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A component built by `edge/build.sh` (`simd128`, `relaxed` or `hostile`).
pub fn component(variant: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    let path = target.join("edge").join(format!("squint-qa-{variant}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run edge/build.sh before these tests",
        path.display()
    );
    path
}

pub fn bundled_int8() -> PathBuf {
    repo().join("models/minilm-l6-squad-int8")
}

/// A file of the shared data folder (`SQUINT_DATA_DIR`, else `../shared/data` beside the
/// repository), if this machine has it; the test says when it skips.
pub fn shared(path: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("SQUINT_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/data"));
    let p = dir.join(path);
    if p.exists() {
        return Some(p);
    }
    eprintln!("SKIPPED the part that needs {}: not on this machine", p.display());
    None
}

pub const AMAZON: &str = "The Amazon rainforest (Portuguese: Floresta Amazônica or Amazônia; Spanish: Selva Amazónica, Amazonía or usually Amazonia; French: Forêt amazonienne; Dutch: Amazoneregenwoud), also known in English as Amazonia or the Amazon Jungle, is a moist broadleaf forest that covers most of the Amazon basin of South America.";
pub const QUESTION: &str = "Which name is also used to describe the Amazon rainforest in English?";

/// A server over `backend` on a loopback port; `url` is its base (`http://127.0.0.1:P`).
#[derive(Debug)]
pub struct Server {
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Server {
    pub async fn start<B: Backend>(backend: B) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            let _ = serve(
                listener,
                AppState::new(Limits::default()),
                move || Ok(backend),
                shutdown,
            )
            .await;
        });
        let client = reqwest::Client::new();
        for _ in 0..400 {
            if client
                .get(format!("{url}/ping"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Server {
                    url,
                    stop: Some(stop),
                };
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("server at {url} never became ready");
    }

    /// POSTs `body` to /invocations; the status and the body as JSON (or a string).
    pub async fn invoke(&self, body: &str) -> (u16, serde_json::Value) {
        self.invoke_as(body, "application/json").await
    }

    pub async fn invoke_as(&self, body: &str, content_type: &str) -> (u16, serde_json::Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/invocations", self.url))
            .header("content-type", content_type)
            .body(body.to_string())
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        (status, value)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
