//! `evaluate::predict`: batching windows of many questions never changes an answer, and on the
//! real fine-tuned model the FP32 answers are PyTorch transformers' answers under the SQuAD
//! scripts' evaluation settings (`fixtures/make_eval_fixture.py`).

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use squint_core::evaluate::{predict, score};
use squint_core::squad::{read_squad, Question};
use squint_core::{Pipeline, PipelineOptions};

/// Questions over contexts of very different lengths (one to several windows).
fn mixed_questions() -> Vec<Question> {
    let sentence = "The Amazon rainforest, also known in English as Amazonia, is a moist broadleaf \
tropical rainforest in the Amazon biome that covers most of the Amazon basin of South America. ";
    let asks = [
        "Which name is also used?",
        "  What does it cover?",
        "Where is the basin?",
        "What kind of forest is it?",
    ];
    let mut questions = Vec::new();
    for (i, repeat) in [1usize, 3, 9, 1, 14, 2, 5, 1, 20, 4].iter().enumerate() {
        questions.push(Question {
            id: format!("q{i}"),
            question: asks[i % asks.len()].into(),
            context: sentence.repeat(*repeat),
            answers: vec!["Amazonia".into()],
            article: 0,
        });
    }
    questions
}

#[test]
fn batching_windows_keeps_every_answer() {
    let questions = mixed_questions();
    let answers = |batch: usize| {
        let options = PipelineOptions {
            batch,
            threads: Some(2),
            ..PipelineOptions::default()
        };
        let pipeline = Pipeline::from_dir(&common::fixtures().join("tiny-qa"), options).unwrap();
        let mut calls = Vec::new();
        let answers = predict(&pipeline, &questions, batch, &mut |done| calls.push(done)).unwrap();
        assert_eq!(calls.last(), Some(&questions.len()), "progress reaches the end");
        answers
    };
    let one = answers(1);
    assert_eq!(one.len(), questions.len());
    assert!(one.iter().any(|a| !a.is_empty()));
    for batch in [3, 8] {
        assert_eq!(answers(batch), one, "batch {batch} changed an answer");
    }
}

#[test]
fn unwindowable_question_names_itself() {
    let mut questions = mixed_questions();
    questions[2].question = "what ".repeat(500);
    questions[2].id = "too-long".into();
    let pipeline =
        Pipeline::from_dir(&common::fixtures().join("tiny-qa"), PipelineOptions::default()).unwrap();
    let e = predict(&pipeline, &questions, 4, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("too-long") && e.contains("max_seq_len"), "{e}");
}

#[test]
fn minilm_squad_fp32_answers_match_pytorch_eval() {
    let Some(data) = common::data_dir().filter(|d| d.join("models/minilm-l6-squad").is_dir()) else {
        return common::skip(
            "minilm_squad_fp32_answers_match_pytorch_eval",
            "../shared/data/models/minilm-l6-squad not found",
        );
    };
    let fixture: serde_json::Value = serde_json::from_slice(
        &std::fs::read(common::fixtures().join("minilm_squad_eval_golden.json")).unwrap(),
    )
    .unwrap();
    let expected = fixture["predictions"].as_object().unwrap();
    let bytes = std::fs::read(data.join("squad-dev-v1.1-public.json")).unwrap();
    let mut questions = read_squad("dev", &bytes).unwrap();
    questions.truncate(expected.len());
    let options = PipelineOptions {
        batch: 4,
        ..PipelineOptions::default()
    };
    let pipeline = Pipeline::from_dir(&data.join("models/minilm-l6-squad"), options).unwrap();
    let answers = predict(&pipeline, &questions, 4, &mut |_| {}).unwrap();
    let mut differ = Vec::new();
    for (q, a) in questions.iter().zip(&answers) {
        let want = expected[&q.id].as_str().unwrap();
        if a != want {
            differ.push(format!("{}: ours {a:?}, PyTorch {want:?}", q.id));
        }
    }
    let theirs: Vec<String> = questions
        .iter()
        .map(|q| expected[&q.id].as_str().unwrap().to_string())
        .collect();
    let (ours, reference) = (score(&questions, &answers), score(&questions, &theirs));
    eprintln!(
        "{} of {} answers equal PyTorch's; EM/F1 ours {:.2}/{:.2}, PyTorch {:.2}/{:.2}",
        answers.len() - differ.len(),
        answers.len(),
        ours.exact_match,
        ours.f1,
        reference.exact_match,
        reference.f1
    );
    assert!(
        differ.len() <= 3,
        "{} answers differ:\n{}",
        differ.len(),
        differ.join("\n")
    );
}
