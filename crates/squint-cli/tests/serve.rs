//! `squint serve` as SageMaker runs it: port from SAGEMAKER_BIND_TO_PORT, model from
//! SQUINT_MODEL_DIR, /ping then /invocations over a real socket, and SIGTERM ending the process
//! with exit code 0.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use common::free_port;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn tiny_model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../squint-core/tests/fixtures/tiny-qa")
}

/// One HTTP/1.1 exchange with `Connection: close`; returns (status, body).
fn http(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    Some((status, body))
}

#[cfg(unix)]
#[test]
fn serve_follows_the_container_contract_and_stops_on_sigterm() {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_squint"))
        .args(["serve", "--bind"])
        .arg(format!("127.0.0.1:{port}"))
        .env("SQUINT_MODEL_DIR", tiny_model())
        .env("SQUINT_PRECISION", "int8-dynamic")
        .env("SAGEMAKER_MAX_PAYLOAD_IN_MB", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some((200, body)) = http(port, "GET", "/ping", "") {
            assert!(body.is_empty());
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let ask = r#"{"question": "Which name is also used?", "context": "The Amazon rainforest, also known in English as Amazonia, is a moist broadleaf forest."}"#;
    let (status, body) = http(port, "POST", "/invocations", ask).unwrap();
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        answer["answer"].is_string() && answer["score"].is_number(),
        "{answer}"
    );
    let (status, body) = http(port, "GET", "/execution-parameters", "").unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("\"MaxPayloadInMB\":1"), "{body}");
    // SIGTERM: stop accepting, exit 0.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "still running 20 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut log = String::new();
    child.stdout.take().unwrap().read_to_string(&mut log).unwrap();
    assert!(status.success(), "exit {status:?}; log:\n{log}");
    assert!(
        log.contains("invocation") && log.contains("windows=1"),
        "one log line per request:\n{log}"
    );
    assert!(log.contains("shutting down"), "{log}");
}

#[test]
fn serve_reports_a_missing_model_and_exits_1() {
    let port = free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_squint"))
        .args(["serve", "--model", "/nonexistent/squint-model", "--bind"])
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/squint-model"), "{err}");
}

#[test]
fn loadtest_measures_a_running_server() {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_squint"))
        .args(["serve", "--threads", "1", "--bind"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--model")
        .arg(tiny_model())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while http(port, "GET", "/ping", "").map(|r| r.0) != Some(200) {
        assert!(start.elapsed() < Duration::from_secs(30), "never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dev.json");
    let qa = |i: usize| {
        serde_json::json!({"id": format!("q{i}"), "question": format!("What is thing {i}?"),
        "answers": [{"text": "Amazonia", "answer_start": 0}]})
    };
    let squad = serde_json::json!({"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context":
        "The Amazon rainforest, also known in English as Amazonia, is a moist broadleaf forest.",
        "qas": (0..5).map(qa).collect::<Vec<_>>()}]}]});
    std::fs::write(&data, squad.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_squint"))
        .args([
            "loadtest",
            "--requests",
            "20",
            "--concurrency",
            "1,2",
            "--json",
            "--url",
        ])
        .arg(format!("http://127.0.0.1:{port}"))
        .arg("--data")
        .arg(&data)
        .arg("--in-process")
        .arg(tiny_model())
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for run in runs {
        assert_eq!(run["ok"], 20, "{run}");
        assert!(run["errors"].as_object().unwrap().is_empty(), "{run}");
        let (p50, p99) = (run["p50_ms"].as_f64().unwrap(), run["p99_ms"].as_f64().unwrap());
        assert!(p50 > 0.0 && p50 <= p99, "{run}");
        assert!(run["usd_per_million_queries"].as_f64().unwrap() > 0.0);
    }
    assert!(runs[0]["in_process_p50_ms"].as_f64().unwrap() > 0.0);
    // A server that is not there: every request is a counted error, not a crash.
    let out = Command::new(env!("CARGO_BIN_EXE_squint"))
        .args(["loadtest", "--requests", "3", "--warmup", "0", "--json", "--url"])
        .arg(format!("http://127.0.0.1:{}", free_port()))
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs[0]["ok"], 0);
    assert_eq!(runs[0]["errors"]["connect"], 3, "{runs}");
}
