//! SQuAD v1.1 evaluation: every question answered the way the standard fine-tuning scripts
//! evaluate (windows of 384 tokens, stride 128, n-best 20, answers up to 30 tokens, score =
//! start logit + end logit), scored with the official v1.1 exact match and token F1.

use std::collections::HashMap;

use crate::decode::{best_span_by_logits, WindowLogits};
use crate::error::Result;
use crate::params::QaParams;
use crate::pipeline::Pipeline;
use crate::squad::Question;

/// Candidates per window for start and for end.
pub const N_BEST: usize = 20;
/// Longest answer, in tokens.
pub const MAX_ANSWER_LEN: usize = 30;

/// Windowing of the fine-tuning scripts: 384 tokens (or the model's maximum if smaller),
/// stride 128, and the question never cut (their truncation is `only_second`).
pub fn eval_params() -> QaParams {
    QaParams {
        max_seq_len: None,
        doc_stride: Some(128),
        max_question_len: usize::MAX,
        ..QaParams::default()
    }
}

/// Exact match and F1 in percent over `questions` answers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score {
    pub exact_match: f64,
    pub f1: f64,
    pub questions: usize,
}

/// Answers `questions` in groups of `group` (their windows, sorted by length, share forward
/// passes; a group of 8 × the pipeline's batch pads little), calling
/// `progress(done)` after each group. A question with no valid span gets the empty answer
/// (scored 0); one whose text cannot be windowed is an error naming it.
pub fn predict(
    pipeline: &Pipeline,
    questions: &[Question],
    group: usize,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<String>> {
    let params = eval_params();
    let mut answers = Vec::with_capacity(questions.len());
    for chunk in questions.chunks(group.max(1)) {
        // The scripts strip the question's leading whitespace.
        let items: Vec<(&str, &str)> = chunk
            .iter()
            .map(|q| (q.question.trim_start(), q.context.as_str()))
            .collect();
        for (q, result) in chunk.iter().zip(pipeline.window_logits_many(&items, &params)?) {
            let forward = result.map_err(|e| {
                crate::error::Error::Input(format!("article {}, question {:?}: {e}", q.article, q.id))
            })?;
            let logits: Vec<WindowLogits<'_>> = forward
                .logits
                .iter()
                .map(|(start, end)| WindowLogits { start, end })
                .collect();
            let best = best_span_by_logits(&forward.windows, &logits, &q.context, N_BEST, MAX_ANSWER_LEN);
            answers.push(best.map(|a| a.answer).unwrap_or_default());
        }
        progress(answers.len());
    }
    Ok(answers)
}

/// The official v1.1 score of `predictions` (one per question, in order).
pub fn score(questions: &[Question], predictions: &[String]) -> Score {
    let n = questions.len().min(predictions.len());
    let (mut em, mut f1) = (0.0, 0.0);
    for (q, p) in questions.iter().zip(predictions) {
        em += exact_match(p, &q.answers);
        f1 += f1_score(p, &q.answers);
    }
    let percent = |x: f64| if n == 0 { 0.0 } else { 100.0 * x / n as f64 };
    Score {
        exact_match: percent(em),
        f1: percent(f1),
        questions: n,
    }
}

/// 1 when the normalized prediction equals any normalized reference, else 0.
pub fn exact_match(prediction: &str, references: &[String]) -> f64 {
    let p = normalize_answer(prediction);
    let hit = references.iter().any(|r| normalize_answer(r) == p);
    if hit {
        1.0
    } else {
        0.0
    }
}

/// The best token-overlap F1 of the prediction against the references (v1.1: 0 when nothing
/// is shared, an empty prediction included).
pub fn f1_score(prediction: &str, references: &[String]) -> f64 {
    let pred = normalize_answer(prediction);
    let pred: Vec<&str> = pred.split(' ').filter(|t| !t.is_empty()).collect();
    references
        .iter()
        .map(|r| {
            let reference = normalize_answer(r);
            let gold: Vec<&str> = reference.split(' ').filter(|t| !t.is_empty()).collect();
            token_f1(&pred, &gold)
        })
        .fold(0.0, f64::max)
}

fn token_f1(pred: &[&str], gold: &[&str]) -> f64 {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for t in gold {
        *counts.entry(t).or_default() += 1;
    }
    let mut same = 0usize;
    for t in pred {
        if let Some(c) = counts.get_mut(t).filter(|c| **c > 0) {
            *c -= 1;
            same += 1;
        }
    }
    if same == 0 {
        return 0.0;
    }
    let precision = same as f64 / pred.len() as f64;
    let recall = same as f64 / gold.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// The official normalization: lower case, drop ASCII punctuation, drop the articles a/an/the
/// as whole words, collapse whitespace. Returns the words joined by single spaces.
pub fn normalize_answer(text: &str) -> String {
    let lowered = text.to_lowercase();
    let no_punct: String = lowered.chars().filter(|c| !c.is_ascii_punctuation()).collect();
    // Articles are whole runs of word characters (Python's Unicode `\w`), replaced by a space.
    let mut no_articles = String::with_capacity(no_punct.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if matches!(word.as_str(), "a" | "an" | "the") {
            out.push(' ');
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in no_punct.chars() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut no_articles);
            no_articles.push(c);
        }
    }
    flush(&mut word, &mut no_articles);
    no_articles
        .split(is_python_space)
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Python's `str.split()` separators: Unicode whitespace plus the ASCII file/group/record/unit
/// separators.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn normalization_follows_the_official_script() {
        assert_eq!(normalize_answer("The  Amazon, Rainforest!"), "amazon rainforest");
        assert_eq!(normalize_answer("an apple a day"), "apple day");
        assert_eq!(normalize_answer("theory of a-theism"), "theory of atheism");
        assert_eq!(normalize_answer("Théâtre"), "théâtre");
        assert_eq!(normalize_answer("  "), "");
        // "the_" is one word to `\b`, but `_` is punctuation and goes first.
        assert_eq!(normalize_answer("the_"), "");
    }

    #[test]
    fn hand_made_cases() {
        // Articles, case and punctuation do not matter for exact match.
        assert_eq!(exact_match("the Amazon.", &refs(&["Amazon"])), 1.0);
        // Best reference wins.
        assert_eq!(exact_match("Amazonia", &refs(&["Amazon", "Amazonia"])), 1.0);
        assert_eq!(
            f1_score("Amazon basin", &refs(&["basin", "Amazon basin of"])),
            0.8
        );
        // Partial overlap: precision 1/2, recall 1/1.
        let f = f1_score("South America", &refs(&["America"]));
        assert!((f - 2.0 / 3.0).abs() < 1e-12);
        // Repeated tokens are counted with multiplicity.
        let f = f1_score("the the cat cat", &refs(&["cat"]));
        assert!((f - 2.0 / 3.0).abs() < 1e-12, "{f}");
        // Empty prediction, and a prediction that normalizes to nothing, score 0.
        assert_eq!(f1_score("", &refs(&["Amazon"])), 0.0);
        assert_eq!(exact_match("", &refs(&["Amazon"])), 0.0);
        assert_eq!(f1_score("the", &refs(&["Amazon"])), 0.0);
        let questions = vec![
            Question {
                id: "a".into(),
                question: "q".into(),
                context: "c".into(),
                answers: refs(&["Amazon"]),
                article: 0,
            },
            Question {
                id: "b".into(),
                question: "q".into(),
                context: "c".into(),
                answers: refs(&["South America"]),
                article: 0,
            },
        ];
        let s = score(&questions, &refs(&["amazon", "America"]));
        assert_eq!(s.questions, 2);
        assert!((s.exact_match - 50.0).abs() < 1e-12);
        assert!((s.f1 - 100.0 * (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-9);
    }
}
