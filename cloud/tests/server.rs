//! The SageMaker contract over real loopback sockets: /ping before and after loading, the three
//! request shapes answered exactly as the in-process pipeline answers, JSON Lines, headers,
//! every client error a 4xx with a JSON body naming the problem, load shedding with 503, and a
//! /ping that stays fast while inference saturates the CPU.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use squint_cloud::server::{load_models, serve, AppState, Limits, LoadedModel, ModelSpec};
use squint_core::{Pipeline, PipelineOptions, Precision, QaParams};

fn tiny() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crates/squint-core/tests/fixtures/tiny-qa")
}

const CONTEXT: &str = "The Amazon rainforest, also known in English as Amazonia, is a moist broadleaf \
tropical rainforest in the Amazon biome that covers most of the Amazon basin of South America.";
const QUESTION: &str = "Which name is also used for the Amazon rainforest?";

/// A running server on 127.0.0.1; stops (gracefully) when dropped.
struct Server {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<Result<(), String>>>,
}

impl Server {
    async fn start(
        limits: Limits,
        load: impl FnOnce() -> Result<Vec<LoadedModel>, String> + Send + 'static,
    ) -> (Server, Arc<AppState>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = AppState::new(limits);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(serve(listener, state.clone(), load, async move {
            let _ = stopped.await;
        }));
        let server = Server {
            url,
            stop: Some(stop),
            done: Some(done),
        };
        (server, state)
    }

    async fn tiny_pair(limits: Limits) -> Server {
        let specs = vec![
            ModelSpec {
                dir: tiny(),
                precision: Some(Precision::Int8Dynamic),
            },
            ModelSpec {
                dir: tiny(),
                precision: None,
            },
        ];
        let (server, _) = Server::start(limits, move || load_models(&specs, Some(1))).await;
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&self) {
        for _ in 0..200 {
            if let Ok(r) = reqwest::get(format!("{}/ping", self.url)).await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("server never became ready");
    }

    async fn shutdown(mut self) -> Result<(), String> {
        let _ = self.stop.take().unwrap().send(());
        self.done.take().unwrap().await.unwrap()
    }

    async fn post(
        &self,
        content_type: Option<&str>,
        accept: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (u16, String, reqwest::header::HeaderMap) {
        let mut request = reqwest::Client::new()
            .post(format!("{}/invocations", self.url))
            .body(body);
        if let Some(ct) = content_type {
            request = request.header("Content-Type", ct);
        }
        if let Some(a) = accept {
            request = request.header("Accept", a);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        (status, response.text().await.unwrap(), headers)
    }

    async fn post_json(&self, body: &Value) -> (u16, Value) {
        let (status, text, _) = self.post(Some("application/json"), None, body.to_string()).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The tiny model, FP32 only.
fn load_fp32() -> Result<Vec<LoadedModel>, String> {
    load_models(
        &[ModelSpec {
            dir: tiny(),
            precision: None,
        }],
        Some(1),
    )
}

fn in_process(precision: Option<Precision>, question: &str, context: &str, params: &QaParams) -> Value {
    let options = PipelineOptions {
        threads: Some(1),
        precision,
        ..PipelineOptions::default()
    };
    let pipeline = Pipeline::from_dir(&tiny(), options).unwrap();
    let answers = pipeline.answer(question, context, params).unwrap();
    if params.top_k == 1 {
        serde_json::to_value(&answers[0]).unwrap()
    } else {
        serde_json::to_value(&answers).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_is_503_until_the_model_is_loaded() {
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let (server, _) = Server::start(Limits::default(), move || {
        wait.recv().unwrap();
        load_fp32()
    })
    .await;
    let ping = reqwest::get(format!("{}/ping", server.url)).await.unwrap();
    assert_eq!(ping.status(), 503);
    let (status, body) = server
        .post_json(&json!({"question": QUESTION, "context": CONTEXT}))
        .await;
    assert_eq!(status, 503, "{body}");
    release.send(()).unwrap();
    server.wait_ready().await;
    let ping = reqwest::get(format!("{}/ping", server.url)).await.unwrap();
    assert_eq!(ping.status(), 200);
    assert!(
        ping.text().await.unwrap().is_empty(),
        "/ping answers with an empty body"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_load_stops_the_server_with_the_reason() {
    let missing = PathBuf::from("/nonexistent/model");
    let (server, _) = Server::start(Limits::default(), move || {
        load_models(
            &[ModelSpec {
                dir: missing,
                precision: None,
            }],
            Some(1),
        )
    })
    .await;
    let result = server.done_result().await;
    let e = result.unwrap_err();
    assert!(e.contains("/nonexistent/model"), "{e}");
}

impl Server {
    async fn done_result(mut self) -> Result<(), String> {
        tokio::time::timeout(Duration::from_secs(20), self.done.take().unwrap())
            .await
            .unwrap()
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_request_shapes_answer_like_the_pipeline() {
    let server = Server::tiny_pair(Limits::default()).await;
    let params = QaParams::default();
    let int8 = in_process(Some(Precision::Int8Dynamic), QUESTION, CONTEXT, &params);
    let fp32 = in_process(None, QUESTION, CONTEXT, &params);
    // Hugging Face toolkit shape, single.
    let (status, got) = server
        .post_json(&json!({"inputs": {"question": QUESTION, "context": CONTEXT}}))
        .await;
    assert_eq!(
        (status, &got),
        (200, &int8),
        "the first model (INT8) is the default"
    );
    // Shorthand.
    let (status, got) = server
        .post_json(&json!({"question": QUESTION, "context": CONTEXT}))
        .await;
    assert_eq!((status, &got), (200, &int8));
    // The reference sample's shape: version chooses the model.
    let (status, got) = server
        .post_json(&json!({"context": CONTEXT, "question": QUESTION, "version": "FP32"}))
        .await;
    assert_eq!((status, &got), (200, &fp32));
    let (status, got) = server
        .post_json(&json!({"context": CONTEXT, "question": QUESTION, "version": "INT8"}))
        .await;
    assert_eq!((status, &got), (200, &int8));
    // Batch with parameters: a list per input, top_k answers each.
    let top3 = QaParams {
        top_k: 3,
        ..QaParams::default()
    };
    let other = "What does the forest cover?";
    let (status, got) = server
        .post_json(&json!({"inputs": [{"question": QUESTION, "context": CONTEXT}, {"question": other, "context": CONTEXT}],
            "parameters": {"top_k": 3}}))
        .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(
        got,
        json!([
            in_process(Some(Precision::Int8Dynamic), QUESTION, CONTEXT, &top3),
            in_process(Some(Precision::Int8Dynamic), other, CONTEXT, &top3)
        ])
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_accept_and_custom_attributes() {
    let server = Server::tiny_pair(Limits::default()).await;
    let params = QaParams::default();
    let lines = format!(
        "{}\n{}\n",
        json!({"question": QUESTION, "context": CONTEXT}),
        json!({"question": "What does the forest cover?", "context": CONTEXT, "version": "FP32"})
    );
    let (status, text, headers) = server
        .post(
            Some("application/jsonlines"),
            Some("application/jsonlines"),
            lines.clone(),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(headers["content-type"], "application/jsonlines");
    let got: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(
        got,
        vec![
            in_process(Some(Precision::Int8Dynamic), QUESTION, CONTEXT, &params),
            in_process(None, "What does the forest cover?", CONTEXT, &params)
        ]
    );
    // JSON Lines in, JSON out: one array.
    let (status, text, _) = server
        .post(Some("application/jsonlines"), Some("application/json"), lines)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&text)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Custom attributes come back; */* and a charset are fine.
    let response = reqwest::Client::new()
        .post(format!("{}/invocations", server.url))
        .header("Content-Type", "application/json; charset=utf-8")
        .header("Accept", "*/*")
        .header("X-Amzn-SageMaker-Custom-Attributes", "trace-id=42")
        .body(json!({"question": QUESTION, "context": CONTEXT}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-amzn-sagemaker-custom-attributes"],
        "trace-id=42"
    );
    let params: Value = reqwest::get(format!("{}/execution-parameters", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(params["BatchStrategy"], "MULTI_RECORD");
    assert_eq!(params["MaxPayloadInMB"], 6);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_are_4xx_with_a_reason() {
    let limits = Limits {
        max_payload: 4096,
        ..Limits::default()
    };
    let server = Server::tiny_pair(limits).await;
    // (content type, accept, body, status, part of the error message)
    type Case<'a> = (Option<&'a str>, Option<&'a str>, String, u16, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            Some("application/json"),
            None,
            "{not json".into(),
            400,
            "body: not valid JSON",
        ),
        (
            Some("application/json"),
            None,
            json!({"inputs": {"question": QUESTION}}).to_string(),
            400,
            "inputs.context: missing",
        ),
        (
            Some("application/json"),
            None,
            json!({"question": "", "context": CONTEXT}).to_string(),
            400,
            "question: is empty",
        ),
        (
            Some("application/json"),
            None,
            json!({"question": QUESTION, "context": CONTEXT, "parameters": {"top_k": 0}}).to_string(),
            400,
            "top_k",
        ),
        (
            Some("application/json"),
            None,
            json!({"question": QUESTION, "context": CONTEXT, "parameters": {"max_seq_len": 100000}})
                .to_string(),
            400,
            "max_seq_len",
        ),
        (
            Some("application/json"),
            None,
            json!({"question": QUESTION, "context": CONTEXT, "version": "BF16"}).to_string(),
            400,
            "version",
        ),
        (
            Some("application/json"),
            None,
            json!({"question": "?!", "context": CONTEXT}).to_string(),
            200,
            "",
        ),
        (Some("text/csv"), None, "a,b".into(), 415, "text/csv"),
        (
            Some("application/json"),
            Some("text/html"),
            json!({"question": QUESTION, "context": CONTEXT}).to_string(),
            406,
            "text/html",
        ),
        (
            Some("application/json"),
            None,
            json!({"question": QUESTION, "context": "x ".repeat(5000)}).to_string(),
            413,
            "limit",
        ),
        (
            Some("application/jsonlines"),
            None,
            format!(
                "{}\n{{\"question\": 1}}",
                json!({"question": QUESTION, "context": CONTEXT})
            ),
            400,
            "line 2",
        ),
    ];
    for (ct, accept, body, want, needle) in cases {
        let (status, text, _) = server.post(ct, accept, body.clone()).await;
        assert_eq!(status, want, "{body:.80}: {text}");
        if want != 200 {
            let error: Value = serde_json::from_str(&text).unwrap();
            let message = error["error"].as_str().unwrap();
            assert!(message.contains(needle), "{needle:?} not in {message:?}");
        }
    }
    // A server with only an FP32 model refuses version INT8 by name.
    let (only_fp32, _) = Server::start(Limits::default(), load_fp32).await;
    only_fp32.wait_ready().await;
    let (status, body) = only_fp32
        .post_json(&json!({"question": QUESTION, "context": CONTEXT, "version": "INT8"}))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("INT8 is not loaded"),
        "{body}"
    );
    only_fp32.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
}

/// A context long enough that answering it keeps the CPU busy for a while (many windows).
fn long_context() -> String {
    CONTEXT.repeat(2500)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_sheds_load_and_ping_stays_fast() {
    let limits = Limits {
        queue: 2,
        ..Limits::default()
    };
    let server = Arc::new(Server::tiny_pair(limits).await);
    let body = json!({"question": QUESTION, "context": long_context()}).to_string();
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (server, body) = (server.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            server.post(Some("application/json"), None, body).await
        }));
    }
    // While those run, /ping must answer within SageMaker's 2 s.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ping = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap()
        .get(format!("{}/ping", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status(), 200);
    let mut statuses = Vec::new();
    for task in tasks {
        let (status, text, _) = task.await.unwrap();
        if status == 503 {
            assert!(text.contains("busy"), "{text}");
        }
        statuses.push(status);
    }
    statuses.sort();
    assert!(statuses.iter().all(|s| *s == 200 || *s == 503), "{statuses:?}");
    assert!(statuses.contains(&200) && statuses.contains(&503), "{statuses:?}");
    // Once the queue drains, requests are served again.
    let (status, _, _) = server.post(Some("application/json"), None, body).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_requests() {
    let server = Server::tiny_pair(Limits::default()).await;
    let url = server.url.clone();
    let body = json!({"question": QUESTION, "context": long_context()}).to_string();
    let in_flight = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("{url}/invocations"))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    server.shutdown().await.unwrap();
    assert_eq!(
        in_flight.await.unwrap().unwrap(),
        200,
        "the in-flight request was answered"
    );
}
