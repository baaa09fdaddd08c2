//! The `squint` binary end to end: answers in the wire API's JSON shape, clear errors, bench.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::path::PathBuf;
use std::process::Command;

fn squint() -> Command {
    Command::new(env!("CARGO_BIN_EXE_squint"))
}

fn tiny_model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../squint-core/tests/fixtures/tiny-qa")
}

fn golden_case(name: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../squint-core/tests/fixtures/golden.json");
    let golden: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    golden["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()
        .clone()
}

#[test]
fn ask_json_is_the_pipeline_response_shape() {
    let case = golden_case("amazon");
    let out = squint()
        .args(["ask", "--json", "--threads", "1", "--model"])
        .arg(tiny_model())
        .args([
            "--question",
            case["question"].as_str().unwrap(),
            "--context",
            case["context"].as_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let want = &case["answers"][0];
    assert!(got.is_object(), "one answer is an object: {got}");
    assert_eq!(got["answer"], want["answer"]);
    assert_eq!(got["start"], want["start"]);
    assert_eq!(got["end"], want["end"]);
    assert!((got["score"].as_f64().unwrap() - want["score"].as_f64().unwrap()).abs() < 1e-4);
    let keys: Vec<&String> = got.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 4);
}

#[test]
fn ask_top_k_from_a_context_file_is_a_list() {
    let case = golden_case("long");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("context.txt");
    std::fs::write(&file, case["context"].as_str().unwrap()).unwrap();
    let out = squint()
        .args(["ask", "--json", "--top-k", "3", "--model"])
        .arg(tiny_model())
        .args(["--question", case["question"].as_str().unwrap(), "--context-file"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let got = got.as_array().unwrap();
    assert_eq!(got.len(), 3);
    for (g, w) in got.iter().zip(case["answers"].as_array().unwrap()) {
        assert_eq!(g["answer"], w["answer"]);
    }
}

#[test]
fn bad_input_is_a_clear_error_not_a_panic() {
    let run = |args: &[&str]| {
        let out = squint().args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let model = tiny_model().display().to_string();
    let (code, err) = run(&["ask", "--model", &model, "--question", "", "--context", "text"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("question is empty") && !err.contains("panicked"),
        "{err}"
    );
    let (code, err) = run(&[
        "ask",
        "--model",
        "/nonexistent/model",
        "--question",
        "q",
        "--context",
        "c",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("/nonexistent/model"), "{err}");
    let (code, err) = run(&[
        "ask",
        "--model",
        &model,
        "--question",
        "q",
        "--context",
        "c",
        "--doc-stride",
        "500",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("`doc_stride`"), "{err}");
    let (code, err) = run(&[
        "ask",
        "--model",
        &model,
        "--question",
        "q",
        "--context-file",
        "/nonexistent.txt",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("/nonexistent.txt"), "{err}");
    let (code, err) = run(&[
        "ask",
        "--model",
        &model,
        "--question",
        "q",
        "--context",
        "c",
        "--precision",
        "int4",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("unknown --precision"), "{err}");
    let (code, err) = run(&["bench", "--gemm", "--shape", "bert-base", "--seq", "100000"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--seq 100000 is outside"), "{err}");
    let (code, err) = run(&["bench", "--shape", "gpt-9"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("unknown --shape"), "{err}");
}

#[test]
fn bench_reports_each_configuration() {
    let out = squint()
        .args(["bench", "--model"])
        .arg(tiny_model())
        .args([
            "--seq",
            "8,32",
            "--threads",
            "1,2",
            "--iters",
            "2",
            "--warmup",
            "0",
            "--json",
            "--precision",
            "fp32,int8-dynamic",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 8);
    assert_eq!(results[0]["precision"], "fp32");
    assert_eq!(results[7]["precision"], "int8-dynamic");
    for r in results {
        assert!(r["median_ms"].as_f64().unwrap() > 0.0);
        assert!(r["p90_ms"].as_f64().unwrap() >= r["median_ms"].as_f64().unwrap());
    }
    assert!(report["kernel"].is_string());
}

#[test]
fn ask_without_model_uses_the_bundled_int8_model() {
    let context =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/amazon.txt"))
            .unwrap();
    let out = squint()
        .env_remove("SQUINT_MODEL_DIR")
        .args(["ask", "--json", "--threads", "1", "--question"])
        .arg("Which name is also used to describe the Amazon rainforest in English?")
        .args(["--context", &context])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["answer"], "Amazonia");
    assert_eq!(
        (got["start"].as_u64(), got["end"].as_u64()),
        (Some(201), Some(209))
    );
}

#[test]
fn quantize_then_ask_and_clear_quantize_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("int8");
    let out = squint()
        .args(["quantize", "--recipe", "dynamic", "--model"])
        .arg(tiny_model())
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("dynamic recipe"));
    for file in [
        "config.json",
        "tokenizer.json",
        "model.int8.safetensors",
        "manifest.json",
    ] {
        assert!(out_dir.join(file).is_file(), "{file}");
    }
    let out = squint()
        .args([
            "ask",
            "--threads",
            "1",
            "--question",
            "Who?",
            "--context",
            "Ann met Bob.",
            "--model",
        ])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let model = tiny_model().display().to_string();
    let out_s = out_dir.display().to_string();
    for (args, want) in [
        (vec!["--recipe", "static"], "needs --calib"),
        (vec!["--recipe", "fancy"], "unknown --recipe"),
        (
            vec!["--recipe", "static", "--calib", "/nonexistent.json"],
            "/nonexistent.json",
        ),
        (vec!["--observer", "p99"], "unknown --observer"),
        (vec!["--per-token", "ffn"], "unknown --per-token layer"),
    ] {
        let out = squint()
            .args(["quantize", "--model", &model, "--out", &out_s])
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
