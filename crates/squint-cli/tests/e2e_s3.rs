//! End to end through the binaries: quantize -> `artifacts push` to a real S3-compatible server
//! (s3s-fs on loopback) -> `serve` pulls the model at start (SQUINT_MODEL_S3_URI) -> the three
//! request shapes answer exactly what `ask --json` answers in process.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use common::{free_port, wait_port};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn squint() -> Command {
    Command::new(env!("CARGO_BIN_EXE_squint"))
}

fn post(port: u16, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).unwrap().parse().unwrap();
    (status, out.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
}

#[test]
fn quantize_push_serve_from_s3_and_invoke() {
    let bin = std::env::var("S3S_FS").map(PathBuf::from).unwrap_or_else(|_| {
        PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo/bin/s3s-fs")
    });
    if !bin.is_file() {
        assert!(
            std::env::var("SQUINT_REQUIRE_ASSETS").is_err(),
            "s3s-fs is required in CI"
        );
        eprintln!("SKIPPED e2e S3 test: s3s-fs not installed");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (ak, sk) = ("e2e-key", "e2e-secret");
    let s3_port = free_port();
    std::fs::create_dir_all(work.path().join("s3/models")).unwrap();
    let mut s3 = Command::new(bin)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &s3_port.to_string(),
            "--access-key",
            ak,
            "--secret-key",
            sk,
        ])
        .arg(work.path().join("s3"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_port(s3_port);
    let endpoint = format!("http://127.0.0.1:{s3_port}");
    let aws = |c: &mut Command| {
        c.env("AWS_ACCESS_KEY_ID", ak)
            .env("AWS_SECRET_ACCESS_KEY", sk)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL_S3", &endpoint)
            .env_remove("AWS_PROFILE");
    };
    // Quantize the tiny model, push it.
    let tiny = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../squint-core/tests/fixtures/tiny-qa");
    let int8 = work.path().join("int8");
    let out = squint()
        .args(["quantize", "--recipe", "dynamic", "--model"])
        .arg(&tiny)
        .arg("--out")
        .arg(&int8)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut push = squint();
    push.args(["artifacts", "push"]).arg(&int8).arg("s3://models/qa/");
    aws(&mut push);
    let out = push.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Serve from an empty model directory: it pulls first.
    let port = free_port();
    let model_dir = work.path().join("opt-ml-model");
    let mut serve = squint();
    serve
        .args(["serve", "--threads", "1", "--bind"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--model")
        .arg(&model_dir)
        .env("SQUINT_MODEL_S3_URI", "s3://models/qa/")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    aws(&mut serve);
    let mut server = serve.spawn().unwrap();
    wait_port(port);
    let start = Instant::now();
    loop {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(s, "GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        if out.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never became ready: {out}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (question, context) = ("Which name is also used?", "The Amazon rainforest, also known in English as Amazonia, is a moist broadleaf forest in South America.");
    let expected: serde_json::Value = serde_json::from_slice(
        &squint()
            .args(["ask", "--json", "--threads", "1", "--model"])
            .arg(&int8)
            .args(["-q", question, "-c", context])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let shapes = [
        serde_json::json!({"inputs": {"question": question, "context": context}}),
        serde_json::json!({"question": question, "context": context}),
        serde_json::json!({"context": context, "question": question, "version": "INT8"}),
    ];
    for shape in shapes {
        let (status, body) = post(port, &shape.to_string());
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap(),
            expected,
            "{shape}"
        );
    }
    assert!(
        model_dir.join("model.int8.safetensors").is_file(),
        "the pulled model is in place"
    );
    let _ = server.kill();
    let _ = server.wait();
    let _ = s3.kill();
    let _ = s3.wait();
}
