//! Hugging Face oracle: a tiny random BertForQuestionAnswering saved by transformers, with the
//! pipeline's answers and the model's own logits recorded by `fixtures/make_fixtures.py`.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::path::PathBuf;

use serde_json::Value;
use squint_core::{Pipeline, PipelineOptions, QaParams};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn golden() -> Value {
    let text = std::fs::read_to_string(fixtures().join("golden.json")).expect("golden.json");
    serde_json::from_str(&text).expect("golden.json parses")
}

fn params(case: &Value) -> QaParams {
    serde_json::from_value(case["params"].clone()).expect("case params")
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

fn check_logits(pipeline: &Pipeline, label: &str) {
    let mut worst = 0.0f32;
    for case in golden()["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let question = case["question"].as_str().unwrap();
        let context = case["context"].as_str().unwrap();
        let out = pipeline.window_logits(question, context, &params(case)).unwrap();
        let windows = case["windows"].as_array().unwrap();
        assert_eq!(out.windows.len(), windows.len(), "{label}/{name}: window count");
        for (w, want) in windows.iter().enumerate() {
            let want_ids: Vec<u32> = want["input_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect();
            let mut ids = vec![0u32; out.windows.seq_len(w)];
            let mut types = vec![0u32; ids.len()];
            out.windows.fill(w, &mut ids, &mut types);
            assert_eq!(ids, want_ids, "{label}/{name}: window {w} token ids");
            let (start, end) = &out.logits[w];
            for (got, want) in [
                (start, floats(&want["start_logits"])),
                (end, floats(&want["end_logits"])),
            ] {
                assert_eq!(got.len(), want.len());
                for (g, x) in got.iter().zip(&want) {
                    worst = worst.max((g - x).abs());
                }
            }
        }
    }
    eprintln!("{label}: max |logit - transformers| = {worst:e}");
    assert!(
        worst <= 1e-4,
        "{label}: logits differ from transformers by {worst}"
    );
}

fn check_answers(pipeline: &Pipeline, label: &str) {
    for case in golden()["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let got = pipeline
            .answer(
                case["question"].as_str().unwrap(),
                case["context"].as_str().unwrap(),
                &params(case),
            )
            .unwrap();
        let want = case["answers"].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{label}/{name}: number of answers");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(
                g.answer,
                w["answer"].as_str().unwrap(),
                "{label}/{name}: answer text"
            );
            assert_eq!(
                g.start as u64,
                w["start"].as_u64().unwrap(),
                "{label}/{name}: start"
            );
            assert_eq!(g.end as u64, w["end"].as_u64().unwrap(), "{label}/{name}: end");
            let ws = w["score"].as_f64().unwrap();
            assert!(
                (g.score - ws).abs() <= 1e-4,
                "{label}/{name}: score {} vs {ws}",
                g.score
            );
            assert!(
                (g.score - ws).abs() <= 1e-3 * ws.abs().max(1e-12),
                "{label}/{name}: relative score {} vs {ws}",
                g.score
            );
        }
    }
}

#[test]
fn safetensors_and_tokenizer_json_match_transformers() {
    let p = Pipeline::from_dir(&fixtures().join("tiny-qa"), PipelineOptions::default()).unwrap();
    check_logits(&p, "safetensors");
    check_answers(&p, "safetensors");
}

#[test]
fn pytorch_bin_and_vocab_txt_match_transformers() {
    let p = Pipeline::from_dir(&fixtures().join("tiny-qa-bin"), PipelineOptions::default()).unwrap();
    check_logits(&p, "pytorch_model.bin");
    check_answers(&p, "pytorch_model.bin");
}

#[test]
fn batch_size_and_threads_do_not_change_answers() {
    let one = Pipeline::from_dir(
        &fixtures().join("tiny-qa"),
        PipelineOptions {
            threads: Some(1),
            batch: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let many = Pipeline::from_dir(
        &fixtures().join("tiny-qa"),
        PipelineOptions {
            threads: Some(2),
            batch: 5,
            ..Default::default()
        },
    )
    .unwrap();
    for case in golden()["cases"].as_array().unwrap() {
        let (q, c) = (
            case["question"].as_str().unwrap(),
            case["context"].as_str().unwrap(),
        );
        let a = one.window_logits(q, c, &params(case)).unwrap();
        let b = many.window_logits(q, c, &params(case)).unwrap();
        for ((s1, e1), (s2, e2)) in a.logits.iter().zip(&b.logits) {
            for (x, y) in s1.iter().chain(e1).zip(s2.iter().chain(e2)) {
                assert!((x - y).abs() < 1e-5, "batched/padded logits differ: {x} vs {y}");
            }
        }
    }
}
