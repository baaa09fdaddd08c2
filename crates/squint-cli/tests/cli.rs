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

/// A small SQuAD v1.1 file: three questions whose reference answers are in the context.
fn squad_file(dir: &std::path::Path) -> PathBuf {
    let case = golden_case("amazon");
    let context = case["context"].as_str().unwrap();
    let qa = |id: &str, q: &str, a: &str| serde_json::json!({"id": id, "question": q, "answers": [{"text": a, "answer_start": 0}]});
    let data = serde_json::json!({"version": "1.1", "data": [{"title": "Amazon", "paragraphs": [{"context": context, "qas": [
        qa("q1", case["question"].as_str().unwrap(), "Amazonia"),
        qa("q2", "What does the forest cover?", "most of the Amazon basin"),
        qa("q3", "Which continent?", "South America"),
    ]}]}]});
    let path = dir.join("dev.json");
    std::fs::write(&path, serde_json::to_vec(&data).unwrap()).unwrap();
    path
}

#[test]
fn eval_reports_scores_and_writes_official_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let data = squad_file(dir.path());
    let preds = dir.path().join("predictions.json");
    let out = squint()
        .args(["eval", "--json", "--threads", "1", "--batch", "2", "--model"])
        .arg(tiny_model())
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&preds)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "exact_match",
        "f1",
        "questions",
        "seconds",
        "format",
        "kernel",
        "questions_per_second",
    ] {
        assert!(report.get(key).is_some(), "{key} missing from {report}");
    }
    assert_eq!(report["questions"], 3);
    assert_eq!(report["format"], "fp32");
    let f1 = report["f1"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&f1) && report["exact_match"].as_f64().unwrap() <= f1);
    // The official predictions shape: {id: answer text}, every answer a piece of the context.
    let predictions: serde_json::Value = serde_json::from_slice(&std::fs::read(&preds).unwrap()).unwrap();
    let map = predictions.as_object().unwrap();
    assert_eq!(map.keys().collect::<Vec<_>>(), ["q1", "q2", "q3"]);
    let context = golden_case("amazon")["context"].as_str().unwrap().to_string();
    assert!(map.values().all(|a| context.contains(a.as_str().unwrap())));

    // Comparing a model with its dynamic INT8 self: both scored, delta and differing share.
    let out = squint()
        .args([
            "eval",
            "--json",
            "--threads",
            "1",
            "--precision",
            "fp32,int8-dynamic",
            "--compare",
        ])
        .arg(tiny_model())
        .arg(tiny_model())
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["a"]["format"], "fp32");
    assert_eq!(report["b"]["format"], "int8-dynamic");
    let delta = report["b"]["f1"].as_f64().unwrap() - report["a"]["f1"].as_f64().unwrap();
    assert!((report["delta_f1"].as_f64().unwrap() - delta).abs() < 1e-9);
    let share = report["answers_differ_share"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&share));
}

#[test]
fn eval_refuses_bad_data_files_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &[&str]); 4] = [
        ("not-json.json", "this is not JSON", &["not a SQuAD JSON file"]),
        (
            "v2.json",
            r#"{"version": "v2.0", "data": []}"#,
            &["v2.0", "not SQuAD v1.1"],
        ),
        (
            "no-answers.json",
            r#"{"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": "c", "qas": [{"id": "x7", "question": "q?", "answers": []}]}]}]}"#,
            &["x7", "article 0", "no reference answers"],
        ),
        (
            "impossible.json",
            r#"{"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": "c", "qas": [{"id": "u1", "question": "q?", "answers": [], "is_impossible": true}]}]}]}"#,
            &["u1", "unanswerable", "not supported"],
        ),
    ];
    for (name, text, needles) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = squint()
            .args(["eval", "--model"])
            .arg(tiny_model())
            .arg("--data")
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        for needle in needles {
            assert!(err.contains(needle), "{name}: {needle:?} not in {err}");
        }
    }
}

#[test]
fn logits_writes_bits_per_question_and_web_refuses_bad_setups() {
    let dir = tempfile::tempdir().unwrap();
    let data = squad_file(dir.path());
    let out = squint()
        .args(["logits", "--every", "2", "--limit", "5", "--model"])
        .arg(tiny_model())
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Every 2nd of 3 questions: q1 and q3; 8 hex digits per float, start and end per token.
    assert_eq!(
        lines
            .iter()
            .map(|l| l["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["q1", "q3"]
    );
    let bits = lines[0]["bits"].as_str().unwrap();
    assert!(!bits.is_empty() && bits.len().is_multiple_of(16) && bits.chars().all(|c| c.is_ascii_hexdigit()));

    let web = |args: &[&str]| {
        let out = squint().arg("web").args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let root = dir.path().join("www");
    std::fs::create_dir_all(&root).unwrap();
    let root_s = root.display().to_string();
    let (code, err) = web(&["--root", &root_s]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no index.html"), "{err}");
    std::fs::write(root.join("index.html"), "<!doctype html>").unwrap();
    let (code, err) = web(&["--root", &root_s]);
    assert!(code == Some(1) && err.contains("web/build.sh"), "{err}");
    std::fs::create_dir_all(root.join("pkg")).unwrap();
    let bundled = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/minilm-l6-squad-int8");
    let b = bundled.display().to_string();
    let (code, err) = web(&["--root", &root_s, "--model", &b, "--model", &b]);
    assert!(
        code == Some(1) && err.contains("both --model directories are int8-static"),
        "{err}"
    );
    let (code, err) = web(&["--root", &root_s, "--model", "/nonexistent/model"]);
    assert!(
        code == Some(1) && err.contains("/nonexistent/model") && !err.contains("panicked"),
        "{err}"
    );
}
