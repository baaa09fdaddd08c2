//! Windowing and span decoding on hand-made logits: long contexts, answers in the overlap of
//! two windows, answers at the edges of the context, Unicode offsets, and input validation.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use squint_core::decode::{decode, WindowLogits};
use squint_core::params::Resolved;
use squint_core::window::Windows;
use squint_core::{Pipeline, PipelineOptions, QaParams, QaTokenizer};

fn tokenizer() -> QaTokenizer {
    let files = squint_core::ModelFiles::from_dir(&common::fixtures().join("tiny-qa")).unwrap();
    QaTokenizer::from_files(&files.tokenizer).unwrap()
}

fn resolved(max_seq_len: usize, doc_stride: usize) -> Resolved {
    QaParams {
        max_seq_len: Some(max_seq_len),
        doc_stride: Some(doc_stride),
        max_answer_len: 30,
        ..QaParams::default()
    }
    .resolve(512)
    .unwrap()
}

/// Logits that point every window holding context tokens `start..=end` at that span.
fn logits_for(windows: &Windows, start: usize, end: usize) -> Vec<(Vec<f32>, Vec<f32>)> {
    (0..windows.len())
        .map(|w| {
            let n = windows.seq_len(w);
            let (mut s, mut e) = (vec![0.0f32; n], vec![0.0f32; n]);
            let slice = windows.slice(w);
            if slice.contains(&start) && slice.contains(&end) {
                s[windows.context_offset() + start - slice.start] = 12.0;
                e[windows.context_offset() + end - slice.start] = 12.0;
            }
            (s, e)
        })
        .collect()
}

fn answer(
    windows: &Windows,
    context: &str,
    params: &Resolved,
    start: usize,
    end: usize,
) -> Vec<squint_core::Answer> {
    let raw = logits_for(windows, start, end);
    let logits: Vec<WindowLogits<'_>> = raw
        .iter()
        .map(|(s, e)| WindowLogits { start: s, end: e })
        .collect();
    decode(windows, &logits, context, params)
}

fn long_context() -> String {
    (0..120)
        .map(|i| format!("the river flows north in year {i}."))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn long_context_windows_overlap_by_stride() {
    let t = tokenizer();
    let context = long_context();
    let params = resolved(128, 32);
    let w = Windows::plan(&t, "where does the river flow?", &context, &params).unwrap();
    assert!(w.len() > 3, "expected more than 3 windows, got {}", w.len());
    for i in 0..w.len() {
        assert!(w.seq_len(i) <= 128);
    }
    for i in 1..w.len() {
        assert_eq!(
            w.slice(i - 1).end - w.slice(i).start,
            32,
            "consecutive windows share doc_stride tokens"
        );
    }
    assert_eq!(w.slice(0).start, 0);
    assert_eq!(w.slice(w.len() - 1).end, w.context().ids.len());
}

#[test]
fn answer_in_the_overlap_is_found_once_with_both_windows_scores() {
    let t = tokenizer();
    let context = long_context();
    let params = resolved(128, 32);
    let w = Windows::plan(&t, "where does the river flow?", &context, &params).unwrap();
    // Two single-token words inside the overlap of windows 1 and 2.
    let words = &w.context().words;
    let single = |g: usize| words[g - 1] != words[g] && words[g + 1] != words[g];
    let target = (w.slice(2).start + 1..w.slice(1).end - 2)
        .find(|&g| single(g) && single(g + 1))
        .unwrap();
    assert!(w.slice(1).contains(&target) && w.slice(2).contains(&target));
    let answers = answer(&w, &context, &params, target, target + 1);
    let (cs, ce) = (w.context().offsets[target].0, w.context().offsets[target + 1].1);
    let want: String = context.chars().skip(cs).take(ce - cs).collect();
    assert_eq!(answers[0].answer, want);
    assert_eq!((answers[0].start, answers[0].end), (cs, ce));
    // Seen from two windows, the same text's probabilities add up (the pipeline's rule).
    assert!(
        answers[0].score > 1.0,
        "score {} should sum two windows",
        answers[0].score
    );
}

#[test]
fn answers_at_the_first_and_last_context_token() {
    let t = tokenizer();
    let context = "zürich is a city. the lake is called lake geneva";
    let params = resolved(384, 128);
    let w = Windows::plan(&t, "which lake?", context, &params).unwrap();
    let last = w.context().ids.len() - 1;
    assert_eq!(answer(&w, context, &params, 0, 0)[0].answer, "zürich");
    assert_eq!(answer(&w, context, &params, 0, 0)[0].start, 0);
    let end = answer(&w, context, &params, last, last);
    assert_eq!(end[0].answer, "geneva");
    assert_eq!(end[0].end, context.chars().count());
}

#[test]
fn unicode_and_whitespace_offsets_are_characters() {
    let t = tokenizer();
    let context = "  Zürich \t  café\n\n😀  Naïve   東京 paris ";
    let params = resolved(384, 128);
    let w = Windows::plan(&t, "what?", context, &params).unwrap();
    let chars: Vec<char> = context.chars().collect();
    for g in 0..w.context().ids.len() {
        let a = &answer(&w, context, &params, g, g)[0];
        let want: String = chars[a.start..a.end].iter().collect();
        assert_eq!(a.answer, want, "token {g}");
        assert!(
            !a.answer.trim().is_empty() && a.answer.trim() == a.answer,
            "token {g}: {:?}",
            a.answer
        );
    }
    let texts: Vec<String> = (0..w.context().ids.len())
        .map(|g| answer(&w, context, &params, g, g)[0].answer.clone())
        .collect();
    for word in ["Zürich", "café", "😀", "Naïve", "東", "京", "paris"] {
        assert!(texts.iter().any(|t| t == word), "{word} not among {texts:?}");
    }
}

#[test]
fn bad_inputs_are_clear_errors() {
    let p = Pipeline::from_dir(&common::fixtures().join("tiny-qa"), PipelineOptions::default()).unwrap();
    let ok = QaParams::default();
    let msg = |r: squint_core::Result<Vec<squint_core::Answer>>| r.unwrap_err().to_string();
    assert!(msg(p.answer("", "some context", &ok)).contains("question is empty"));
    assert!(msg(p.answer("what?", "  \n ", &ok)).contains("context is empty"));
    assert!(msg(p.answer(
        "what?",
        "ctx",
        &QaParams {
            doc_stride: Some(400),
            ..ok.clone()
        }
    ))
    .contains("`doc_stride`"));
    let long = long_context();
    let tight = QaParams {
        max_seq_len: Some(40),
        doc_stride: Some(30),
        ..ok.clone()
    };
    let err = msg(p.answer("where does the river flow north every year?", &long, &tight));
    assert!(err.contains("`doc_stride`") && err.contains("room left"), "{err}");
    let huge_question = "river ".repeat(100);
    let small = QaParams {
        max_seq_len: Some(32),
        max_question_len: 64,
        ..ok.clone()
    };
    assert!(msg(p.answer(&huge_question, "the river", &small)).contains("`max_seq_len`"));
    // A long question is cut to max_question_len and still answered.
    assert!(p.answer(&huge_question, "the river flows", &ok).is_ok());
    assert!(msg(p.answer("q", "c", &QaParams { top_k: 0, ..ok })).contains("`top_k`"));
}

#[test]
fn top_k_returns_sorted_distinct_answers() {
    let p = Pipeline::from_dir(&common::fixtures().join("tiny-qa"), PipelineOptions::default()).unwrap();
    let answers = p
        .answer(
            "what flows?",
            &long_context(),
            &QaParams {
                top_k: 7,
                ..QaParams::default()
            },
        )
        .unwrap();
    assert_eq!(answers.len(), 7);
    for pair in answers.windows(2) {
        assert!(pair[0].score >= pair[1].score);
    }
    let mut texts: Vec<String> = answers.iter().map(|a| a.answer.to_lowercase()).collect();
    texts.dedup();
    assert_eq!(texts.len(), 7, "answers with the same text are merged");
}
