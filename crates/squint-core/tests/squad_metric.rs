//! EM/F1 against numbers from the official formula: 50 dev questions with made-up
//! predictions of every kind (exact, case and articles, partial, extra words, empty, wrong,
//! non-ASCII punctuation, another reference, articles only, reordered), scored in Python by
//! `tests/fixtures/squad_metric/make_cases.py`.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use squint_core::evaluate::{exact_match, f1_score, score};
use squint_core::squad::Question;

#[test]
fn matches_the_official_script_on_fifty_cases() {
    let path = common::fixtures().join("squad_metric/cases.json");
    let fixture: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 50);
    let mut questions = Vec::new();
    let mut predictions = Vec::new();
    for case in cases {
        let references: Vec<String> = case["references"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect();
        let prediction = case["prediction"].as_str().unwrap().to_string();
        let (em, f1) = (
            case["exact_match"].as_f64().unwrap(),
            case["f1"].as_f64().unwrap(),
        );
        assert_eq!(
            exact_match(&prediction, &references),
            em,
            "EM of {prediction:?} vs {references:?}"
        );
        let ours = f1_score(&prediction, &references);
        assert!(
            (ours - f1).abs() < 1e-12,
            "F1 of {prediction:?} vs {references:?}: {ours} != {f1}"
        );
        questions.push(Question {
            id: case["id"].as_str().unwrap().into(),
            question: "?".into(),
            context: String::new(),
            answers: references,
            article: 0,
        });
        predictions.push(prediction);
    }
    let total = score(&questions, &predictions);
    assert_eq!(total.questions, 50);
    assert!((total.exact_match - fixture["total"]["exact_match"].as_f64().unwrap()).abs() < 1e-9);
    assert!((total.f1 - fixture["total"]["f1"].as_f64().unwrap()).abs() < 1e-9);
}
