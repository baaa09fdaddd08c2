//! The gateway over HTTP: the cloud server's answers and errors, parallel clients, and the
//! sandbox's limits met by a deliberately hostile guest (the `hostile` build: magic questions
//! that spin, allocate without bound, or trap).

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use squint_cloud::server::{load_models, ModelSpec};
use squint_edge::instance::Limits;
use squint_edge::pool::Pool;
use squint_edge::runtime::Runtime;
use squint_edge::ModelFiles;

fn pool(variant: &str, instances: usize, limits: Limits) -> Pool {
    let cache = std::env::temp_dir().join("squint-edge-test-cache");
    let runtime = Runtime::load(&component(variant), &cache).expect("component loads");
    let files = ModelFiles::read(&bundled_int8()).expect("model files");
    let pool = Pool::start(runtime, vec![files], limits, instances).expect("pool starts");
    let until = Instant::now() + Duration::from_secs(60);
    while pool.idle() < instances && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(pool.idle(), instances, "every instance started");
    pool
}

fn ask(question: &str, context: &str) -> String {
    json!({"inputs": {"question": question, "context": context}}).to_string()
}

fn native_server_models() -> Vec<squint_cloud::server::LoadedModel> {
    load_models(
        &[ModelSpec {
            dir: bundled_int8(),
            precision: None,
        }],
        Some(1),
    )
    .expect("native loads")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn answers_and_errors_match_the_cloud_server() {
    let edge = Server::start(pool("relaxed", 2, Limits::default())).await;
    let native = Server::start(native_server_models()).await;
    let bodies = [
        ask(QUESTION, AMAZON),
        json!({"question": QUESTION, "context": AMAZON, "parameters": {"top_k": 3}}).to_string(),
        json!({"inputs": [{"question": QUESTION, "context": AMAZON}, {"question": "What does it cover?", "context": AMAZON}]}).to_string(),
        // Client errors: every one must get the same status and message from both.
        "not json".to_string(),
        "{}".to_string(),
        json!({"question": "", "context": AMAZON}).to_string(),
        json!({"question": QUESTION, "context": AMAZON, "parameters": {"top_k": 0}}).to_string(),
        json!({"question": QUESTION, "context": AMAZON, "parameters": {"max_seq_len": 100000}}).to_string(),
        json!({"question": QUESTION, "context": AMAZON, "parameters": {"doc_stride": 500}}).to_string(),
        json!({"question": QUESTION, "context": AMAZON, "parameters": {"colour": 1}}).to_string(),
        json!({"question": QUESTION, "context": AMAZON, "version": "FP32"}).to_string(),
        json!({"inputs": [{"question": QUESTION, "context": AMAZON}, {"question": QUESTION, "context": "   "}]}).to_string(),
    ];
    for body in &bodies {
        let (edge_status, edge_body) = edge.invoke(body).await;
        let (native_status, native_body) = native.invoke(body).await;
        assert_eq!(edge_status, native_status, "{body}: {edge_body} vs {native_body}");
        assert_eq!(edge_body, native_body, "{body}");
    }
    let (status, answer) = edge.invoke(&bodies[0]).await;
    assert_eq!(status, 200);
    assert!(
        answer["answer"].as_str().unwrap_or("").starts_with("Amazonia"),
        "{answer}"
    );
    // JSON Lines and an unsupported type, as the cloud server answers them.
    let lines = format!(
        "{}\n{}\n",
        ask(QUESTION, AMAZON),
        ask("What does it cover?", AMAZON)
    );
    assert_eq!(
        edge.invoke_as(&lines, "application/jsonlines").await,
        native.invoke_as(&lines, "application/jsonlines").await
    );
    let (status, _) = edge.invoke_as(&bodies[0], "text/csv").await;
    assert_eq!(status, 415);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_clients_all_get_the_native_answer() {
    let edge = Server::start(pool("simd128", 2, Limits::default())).await;
    let native = native_server_models();
    let questions = [
        QUESTION,
        "What does the Amazon rainforest cover?",
        "What kind of forest is the Amazon?",
        "What is the Amazon rainforest called in Dutch?",
    ];
    let edge = std::sync::Arc::new(edge);
    let mut tasks = Vec::new();
    for client in 0..8 {
        let edge = edge.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for round in 0..3 {
                let q = questions[(client + round) % questions.len()];
                let (status, body) = edge.invoke(&ask(q, AMAZON)).await;
                assert_eq!(status, 200, "{body}");
                got.push((q, body));
            }
            got
        }));
    }
    for task in tasks {
        for (q, body) in task.await.expect("client") {
            let want = native[0]
                .pipeline
                .answer(q, AMAZON, &Default::default())
                .expect("native");
            assert_eq!(body["answer"], json!(want[0].answer), "{q}");
            assert_eq!(body["start"], json!(want[0].start), "{q}");
            assert_eq!(body["score"], json!(want[0].score), "{q}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hostile_guest_is_stopped_and_replaced_while_the_gateway_keeps_serving() {
    let limits = Limits {
        memory: 256 << 20,
        deadline: Duration::from_millis(1500),
        ..Limits::default()
    };
    let pool = pool("hostile", 2, limits);
    let watch = pool.clone();
    let edge = Server::start(pool).await;
    let healthy = |body: &Value| body["answer"].as_str().unwrap_or("").starts_with("Amazonia");

    // A runaway call: stopped at the deadline with a 504; the other instance answers meanwhile.
    let spin = {
        let url = edge.url.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let response = reqwest::Client::new()
                .post(format!("{url}/invocations"))
                .header("content-type", "application/json")
                .body(ask("squint-test: spin", AMAZON))
                .send()
                .await
                .expect("request");
            let status = response.status().as_u16();
            let body: Value = response.json().await.expect("json");
            (status, body, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = edge.invoke(&ask(QUESTION, AMAZON)).await;
    assert!(status == 200 && healthy(&body), "{status} {body}");
    let (status, body, took) = spin.await.expect("spin");
    assert_eq!(status, 504, "{body}");
    assert!(
        body["error"].as_str().unwrap_or("").contains("deadline"),
        "{body}"
    );
    assert!(took < Duration::from_secs(10), "stopped after {took:?}");

    // Unbounded allocation: refused at the memory cap, 413.
    let (status, body) = edge.invoke(&ask("squint-test: hog", AMAZON)).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["error"].as_str().unwrap_or("").contains("256 MiB"), "{body}");

    // A panic: 500 with the guest's own message; the host is fine.
    let (status, body) = edge.invoke(&ask("squint-test: trap", AMAZON)).await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body["error"].as_str().unwrap_or("").contains("a deliberate trap"),
        "{body}"
    );

    // Three instances replaced; the gateway answers on every instance afterwards.
    assert_eq!(watch.replaced(), 3);
    for _ in 0..6 {
        let (status, body) = edge.invoke(&ask(QUESTION, AMAZON)).await;
        assert!(status == 200 && healthy(&body), "{status} {body}");
    }
    let until = Instant::now() + Duration::from_secs(30);
    while watch.idle() < 2 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(watch.idle(), 2, "the pool is back to full strength");
    let ping = reqwest::get(format!("{}/ping", edge.url)).await.expect("ping");
    assert_eq!(ping.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_real_request_past_a_tight_deadline_gets_504_and_the_next_one_is_answered() {
    let limits = Limits {
        deadline: Duration::from_millis(5),
        ..Limits::default()
    };
    let pool = pool("simd128", 1, limits);
    let watch = pool.clone();
    let edge = Server::start(pool).await;
    let long = vec![AMAZON; 40].join(" ");
    let (status, body) = edge.invoke(&ask(QUESTION, &long)).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(watch.replaced(), 1);
    // The replacement instance takes the next request (which also runs past 5 ms: 504 again,
    // but served, not hung).
    let (status, _) = edge.invoke(&ask(QUESTION, &long)).await;
    assert_eq!(status, 504);
}
