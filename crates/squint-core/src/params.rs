//! Question-answering parameters, with the defaults and names of the transformers pipeline.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Caller-facing parameters (the wire API's `parameters` object). `None` means the pipeline's
/// default: `max_seq_len` = min(model maximum, 384), `doc_stride` = min(max_seq_len / 2, 128).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QaParams {
    /// How many answers to return (best first). `topk` is the pipeline's legacy name.
    #[serde(alias = "topk")]
    pub top_k: usize,
    /// Longest answer, in tokens.
    pub max_answer_len: usize,
    /// Window length in tokens, special tokens included.
    pub max_seq_len: Option<usize>,
    /// Tokens shared by consecutive windows of a long context.
    pub doc_stride: Option<usize>,
    /// Questions are cut to this many tokens.
    pub max_question_len: usize,
    /// Also consider "no answer" (score from the [CLS] token), returned as an empty answer.
    pub handle_impossible_answer: bool,
    /// Widen answers to whole words (the pipeline's default).
    pub align_to_words: bool,
}

impl Default for QaParams {
    fn default() -> Self {
        QaParams {
            top_k: 1,
            max_answer_len: 15,
            max_seq_len: None,
            doc_stride: None,
            max_question_len: 64,
            handle_impossible_answer: false,
            align_to_words: true,
        }
    }
}

/// Parameters after defaults and validation against a model's position limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub top_k: usize,
    pub max_answer_len: usize,
    pub max_seq_len: usize,
    pub doc_stride: usize,
    pub max_question_len: usize,
    pub handle_impossible_answer: bool,
    pub align_to_words: bool,
}

/// More answers than this is never useful and would only cost memory.
const MAX_TOP_K: usize = 1000;

impl QaParams {
    /// Applies defaults and checks every value; `max_positions` is the model's
    /// `max_position_embeddings`.
    pub fn resolve(&self, max_positions: usize) -> Result<Resolved> {
        if self.top_k == 0 || self.top_k > MAX_TOP_K {
            return Err(Error::parameter(
                "top_k",
                format!("must be between 1 and {MAX_TOP_K}, got {}", self.top_k),
            ));
        }
        if self.max_answer_len == 0 {
            return Err(Error::parameter("max_answer_len", "must be at least 1"));
        }
        let max_seq_len = self.max_seq_len.unwrap_or(max_positions.min(384));
        if max_seq_len > max_positions {
            return Err(Error::parameter(
                "max_seq_len",
                format!("{max_seq_len} is more than the model's {max_positions} positions"),
            ));
        }
        if max_seq_len < 5 {
            return Err(Error::parameter(
                "max_seq_len",
                format!("must be at least 5, got {max_seq_len}"),
            ));
        }
        if self.max_question_len == 0 {
            return Err(Error::parameter("max_question_len", "must be at least 1"));
        }
        let doc_stride = self.doc_stride.unwrap_or((max_seq_len / 2).min(128));
        if doc_stride >= max_seq_len {
            return Err(Error::parameter(
                "doc_stride",
                format!("{doc_stride} must be smaller than max_seq_len ({max_seq_len})"),
            ));
        }
        Ok(Resolved {
            top_k: self.top_k,
            max_answer_len: self.max_answer_len,
            max_seq_len,
            doc_stride,
            max_question_len: self.max_question_len,
            handle_impossible_answer: self.handle_impossible_answer,
            align_to_words: self.align_to_words,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_pipeline() {
        let r = QaParams::default().resolve(512).unwrap();
        assert_eq!(
            (r.max_seq_len, r.doc_stride, r.max_answer_len, r.top_k),
            (384, 128, 15, 1)
        );
        let small = QaParams {
            max_seq_len: Some(64),
            ..QaParams::default()
        };
        assert_eq!(small.resolve(512).unwrap().doc_stride, 32);
        assert_eq!(QaParams::default().resolve(128).unwrap().max_seq_len, 128);
    }

    #[test]
    fn invalid_values_name_the_parameter() {
        let check = |p: QaParams, name: &str| {
            let err = p.resolve(512).unwrap_err().to_string();
            assert!(err.contains(&format!("`{name}`")), "{err}");
        };
        check(
            QaParams {
                top_k: 0,
                ..Default::default()
            },
            "top_k",
        );
        check(
            QaParams {
                max_answer_len: 0,
                ..Default::default()
            },
            "max_answer_len",
        );
        check(
            QaParams {
                max_seq_len: Some(1024),
                ..Default::default()
            },
            "max_seq_len",
        );
        check(
            QaParams {
                doc_stride: Some(384),
                ..Default::default()
            },
            "doc_stride",
        );
        check(
            QaParams {
                doc_stride: Some(500),
                max_seq_len: Some(256),
                ..Default::default()
            },
            "doc_stride",
        );
        check(
            QaParams {
                max_question_len: 0,
                ..Default::default()
            },
            "max_question_len",
        );
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = serde_json::from_str::<QaParams>(r#"{"top_p": 2}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("top_p"), "{err}");
        assert_eq!(
            serde_json::from_str::<QaParams>(r#"{"topk": 2}"#).unwrap().top_k,
            2
        );
        let p: QaParams = serde_json::from_str(r#"{"top_k": 3, "doc_stride": 64}"#).unwrap();
        assert_eq!((p.top_k, p.doc_stride), (3, Some(64)));
    }
}
