//! From start/end logits to answers, with the scoring of the transformers QA pipeline (4.x):
//! per window, softmax over the context tokens (and [CLS]) separately for start and end; a
//! span's score is p_start · p_end; spans need end ≥ start and at most `max_answer_len` tokens.
//! Each window offers its best `2·top_k + 10` spans (`top_k` without word alignment); spans
//! whose text is the same (ignoring case) are one answer whose score is the sum.

use serde::{Deserialize, Serialize};

use crate::params::Resolved;
use crate::window::Windows;

/// One answer: the wire API's object. `start`/`end` are character offsets into the context
/// (`end` exclusive) and `answer == context[start..end]` in characters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub score: f64,
    pub start: usize,
    pub end: usize,
    pub answer: String,
}

/// Logits of one window: `start[i]`, `end[i]` for each of its tokens (no padding).
#[derive(Clone, Copy, Debug)]
pub struct WindowLogits<'a> {
    pub start: &'a [f32],
    pub end: &'a [f32],
}

/// A span inside one window, in window token positions.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Span {
    window: usize,
    start: usize,
    end: usize,
    score: f32,
}

/// Probabilities of start or end over a window: masked positions (question, separators) are
/// excluded as if their logit were -10000, [CLS] (position 0) is kept.
fn window_probs(logits: &[f32], context: std::ops::Range<usize>) -> Vec<f32> {
    let kept = |i: usize| i == 0 || context.contains(&i);
    let max = (0..logits.len())
        .filter(|&i| kept(i))
        .map(|i| logits[i])
        .fold(f32::NEG_INFINITY, f32::max);
    let mut probs: Vec<f32> = (0..logits.len())
        .map(|i| if kept(i) { (logits[i] - max).exp() } else { 0.0 })
        .collect();
    let sum: f32 = probs.iter().sum();
    for p in &mut probs {
        *p /= sum;
    }
    probs
}

/// The best `top_k` spans of one window (ties: earlier start, then earlier end, first) and the
/// window's "no answer" score p_start[CLS] · p_end[CLS].
fn window_spans(
    w: usize,
    logits: WindowLogits<'_>,
    context: std::ops::Range<usize>,
    max_answer_len: usize,
    keep: usize,
) -> (Vec<Span>, f32) {
    let p_start = window_probs(logits.start, context.clone());
    let p_end = window_probs(logits.end, context.clone());
    let null = p_start[0] * p_end[0];
    let mut spans = Vec::new();
    for s in context.clone() {
        let last = (s + max_answer_len).min(context.end);
        for (e, p_e) in p_end.iter().enumerate().take(last).skip(s) {
            spans.push(Span {
                window: w,
                start: s,
                end: e,
                score: p_start[s] * p_e,
            });
        }
    }
    // Stable sort keeps (start, end) order among equal scores, like the pipeline's argmax.
    spans.sort_by(|a, b| b.score.total_cmp(&a.score));
    spans.truncate(keep);
    (spans, null)
}

/// Decodes the answers of a question from the logits of all its windows.
pub fn decode(
    windows: &Windows,
    logits: &[WindowLogits<'_>],
    context: &str,
    params: &Resolved,
) -> Vec<Answer> {
    let offset = windows.context_offset();
    // Word alignment can map several spans to one text: look further, as the pipeline does.
    let keep = if params.align_to_words {
        params.top_k * 2 + 10
    } else {
        params.top_k
    };
    let char_bytes = CharIndex::new(context);
    let mut answers: Vec<Answer> = Vec::new();
    let mut lowered: Vec<String> = Vec::new();
    let mut min_null = f32::INFINITY;
    for (w, window_logits) in logits.iter().enumerate() {
        let slice = windows.slice(w);
        let in_window = offset..offset + slice.len();
        let (best, null) = window_spans(w, *window_logits, in_window, params.max_answer_len, keep);
        min_null = min_null.min(null);
        for span in best {
            let (start, end) = char_span(windows, &span, params.align_to_words);
            let text = &context[char_bytes.byte(start)..char_bytes.byte(end)];
            let key = text.to_lowercase();
            match lowered.iter().position(|k| *k == key) {
                Some(i) => answers[i].score += span.score as f64,
                None => {
                    answers.push(Answer {
                        score: span.score as f64,
                        start,
                        end,
                        answer: text.to_string(),
                    });
                    lowered.push(key);
                }
            }
        }
    }
    if params.handle_impossible_answer && min_null.is_finite() {
        answers.push(Answer {
            score: min_null as f64,
            start: 0,
            end: 0,
            answer: String::new(),
        });
    }
    // Stable: equal scores keep window order, as Python's `sorted` does.
    answers.sort_by(|a, b| b.score.total_cmp(&a.score));
    answers.truncate(params.top_k);
    answers
}

/// The answer the SQuAD fine-tuning scripts' post-processing picks (`run_qa.py`): in each window
/// the `n_best` highest start and `n_best` highest end logits over all its tokens; a pair counts
/// when both lie in the context, end ≥ start and it spans at most `max_answer_len` tokens; its
/// score is start logit + end logit; the best over all windows wins (first one on ties). The
/// text is the context from the start token's first character to the end token's last, with
/// no widening to whole words. `None` when no window has a valid pair.
pub fn best_span_by_logits(
    windows: &Windows,
    logits: &[WindowLogits<'_>],
    context: &str,
    n_best: usize,
    max_answer_len: usize,
) -> Option<Answer> {
    let offset = windows.context_offset();
    let mut best: Option<Span> = None;
    for (w, window) in logits.iter().enumerate() {
        let in_context = offset..offset + windows.slice(w).len();
        let starts = top_positions(window.start, n_best);
        let ends = top_positions(window.end, n_best);
        for &s in &starts {
            for &e in &ends {
                if !in_context.contains(&s) || !in_context.contains(&e) || e < s || e - s + 1 > max_answer_len
                {
                    continue;
                }
                let score = window.start[s] + window.end[e];
                if best.is_none_or(|b| score > b.score) {
                    best = Some(Span {
                        window: w,
                        start: s,
                        end: e,
                        score,
                    });
                }
            }
        }
    }
    let span = best?;
    let (start, end) = char_span(windows, &span, false);
    let chars = CharIndex::new(context);
    Some(Answer {
        score: span.score as f64,
        start,
        end,
        answer: context[chars.byte(start)..chars.byte(end)].to_string(),
    })
}

/// Positions of the `n` largest values, largest first (earlier position first on ties).
fn top_positions(values: &[f32], n: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    idx.truncate(n);
    idx
}

/// Character offsets of a span. With `align_to_words`, the start moves to the beginning of its
/// word and the end to the end of its word, as far as the word lies inside the window.
fn char_span(windows: &Windows, span: &Span, align_to_words: bool) -> (usize, usize) {
    let ctx = windows.context();
    let slice = windows.slice(span.window);
    let to_global = |pos: usize| slice.start + pos - windows.context_offset();
    let (mut s, mut e) = (to_global(span.start), to_global(span.end));
    if align_to_words {
        if let (Some(ws), Some(we)) = (ctx.words[s], ctx.words[e]) {
            while s > slice.start && ctx.words[s - 1] == Some(ws) {
                s -= 1;
            }
            while e + 1 < slice.end && ctx.words[e + 1] == Some(we) {
                e += 1;
            }
        }
    }
    (ctx.offsets[s].0, ctx.offsets[e].1)
}

/// Character index to byte index, for slicing answers out of the context.
struct CharIndex {
    bytes: Vec<usize>,
}

impl CharIndex {
    fn new(text: &str) -> Self {
        let mut bytes: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
        bytes.push(text.len());
        CharIndex { bytes }
    }

    fn byte(&self, char_index: usize) -> usize {
        self.bytes[char_index.min(self.bytes.len() - 1)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_ignore_masked_positions() {
        let p = window_probs(&[0.0, 100.0, 1.0, 1.0], 2..4);
        assert_eq!(p[1], 0.0);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((p[2] - p[3]).abs() < 1e-7);
    }

    #[test]
    fn spans_respect_order_and_length() {
        // start peaks at 3, end peaks at 2 (before start) and 6.
        let start = [0.0, -9.0, -9.0, 5.0, 0.0, 0.0, 0.0, -9.0];
        let end = [0.0, -9.0, 4.0, 0.0, 1.0, 0.0, 3.0, -9.0];
        let logits = WindowLogits {
            start: &start,
            end: &end,
        };
        let (spans, null) = window_spans(0, logits, 2..7, 10, 1);
        assert_eq!((spans[0].start, spans[0].end), (3, 6));
        assert!(null > 0.0);
        let (spans, _) = window_spans(0, logits, 2..7, 2, 1);
        assert_eq!((spans[0].start, spans[0].end), (3, 4), "length limit 2 tokens");
        let (spans, _) = window_spans(0, logits, 2..7, 30, 3);
        assert_eq!(spans.len(), 3);
        assert!(spans[0].score >= spans[1].score && spans[1].score >= spans[2].score);
    }

    #[test]
    fn top_positions_are_largest_first() {
        assert_eq!(top_positions(&[1.0, 5.0, 3.0, 5.0, -1.0], 3), vec![1, 3, 2]);
        assert_eq!(top_positions(&[1.0], 20), vec![0]);
    }

    #[test]
    fn char_index_handles_multibyte() {
        let idx = CharIndex::new("aé😀b");
        assert_eq!(idx.byte(1), 1);
        assert_eq!(idx.byte(2), 3);
        assert_eq!(idx.byte(3), 7);
        assert_eq!(idx.byte(4), 8);
    }
}
