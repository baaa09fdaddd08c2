//! Windows over a long context: `[CLS] question [SEP] context-slice [SEP]`, consecutive slices
//! sharing `doc_stride` tokens, exactly as the tokenizer's `only_second` overflow makes them.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::params::Resolved;
use crate::tokenizer::{ContextTokens, QaTokenizer, SpecialTokens};

/// A question and a context cut into model-sized windows.
#[derive(Clone, Debug)]
pub struct Windows {
    question: Vec<u32>,
    context: ContextTokens,
    /// Each window's slice of the context tokens.
    slices: Vec<Range<usize>>,
    special: SpecialTokens,
}

impl Windows {
    /// Tokenizes and splits. Questions longer than `max_question_len` tokens are cut (as the
    /// SQuAD scripts do); empty questions or contexts are an error.
    pub fn plan(
        tokenizer: &QaTokenizer,
        question: &str,
        context: &str,
        params: &Resolved,
    ) -> Result<Windows> {
        if question.trim().is_empty() {
            return Err(Error::Input("the question is empty".into()));
        }
        if context.trim().is_empty() {
            return Err(Error::Input("the context is empty".into()));
        }
        let mut question_ids = tokenizer.encode_question(question)?;
        if question_ids.is_empty() {
            return Err(Error::Input("the question has no tokens".into()));
        }
        question_ids.truncate(params.max_question_len);
        if question_ids.len() + 4 > params.max_seq_len {
            return Err(Error::parameter(
                "max_seq_len",
                format!(
                    "a question of {} tokens leaves no room for the context in windows of {} tokens; raise max_seq_len or lower max_question_len",
                    question_ids.len(),
                    params.max_seq_len
                ),
            ));
        }
        let context = tokenizer.encode_context(context)?;
        if context.ids.is_empty() {
            return Err(Error::Input("the context has no tokens".into()));
        }
        let slices = slices(
            context.ids.len(),
            params.max_seq_len - question_ids.len() - 3,
            params.doc_stride,
        )?;
        Ok(Windows {
            question: question_ids,
            context,
            slices,
            special: tokenizer.special(),
        })
    }

    pub fn len(&self) -> usize {
        self.slices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slices.is_empty()
    }

    pub fn context(&self) -> &ContextTokens {
        &self.context
    }

    /// The context tokens window `w` covers.
    pub fn slice(&self, w: usize) -> Range<usize> {
        self.slices[w].clone()
    }

    /// Position of the first context token inside every window (after `[CLS] question [SEP]`).
    pub fn context_offset(&self) -> usize {
        self.question.len() + 2
    }

    /// Number of tokens of window `w`, special tokens included.
    pub fn seq_len(&self, w: usize) -> usize {
        self.slices[w].len() + self.question.len() + 3
    }

    /// The longest window.
    pub fn max_seq_len(&self) -> usize {
        (0..self.len()).map(|w| self.seq_len(w)).max().unwrap_or(0)
    }

    /// Writes window `w`'s token ids and token type ids into the front of `ids` / `types`.
    pub fn fill(&self, w: usize, ids: &mut [u32], types: &mut [u32]) {
        let s = self.special;
        let q = &self.question;
        let ctx = &self.context.ids[self.slices[w].clone()];
        let n = self.seq_len(w);
        let (ids, types) = (&mut ids[..n], &mut types[..n]);
        ids[0] = s.cls;
        ids[1..=q.len()].copy_from_slice(q);
        ids[q.len() + 1] = s.sep;
        ids[q.len() + 2..n - 1].copy_from_slice(ctx);
        ids[n - 1] = s.sep;
        types[..q.len() + 2].fill(0);
        types[q.len() + 2..].fill(1);
    }
}

/// Splits `len` context tokens into slices of at most `room` tokens, each starting
/// `room - stride` after the previous one, the last one ending at `len`.
fn slices(len: usize, room: usize, stride: usize) -> Result<Vec<Range<usize>>> {
    if len <= room {
        return Ok(std::iter::once(0..len).collect());
    }
    if stride >= room {
        return Err(Error::parameter(
            "doc_stride",
            format!(
                "{stride} must be smaller than the room left for the context in a window ({room} tokens = max_seq_len - question tokens - 3)"
            ),
        ));
    }
    let step = room - stride;
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        let end = (start + room).min(len);
        out.push(start..end);
        if end == len {
            return Ok(out);
        }
        start += step;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_overlap_by_stride_and_cover_everything() {
        assert_eq!(
            slices(10, 20, 5).unwrap(),
            std::iter::once(0..10).collect::<Vec<_>>()
        );
        let s = slices(1000, 317, 128).unwrap();
        assert_eq!(s[0], 0..317);
        assert_eq!(s[1], 189..506);
        assert_eq!(s.last().unwrap().end, 1000);
        for pair in s.windows(2) {
            assert_eq!(pair[0].end - pair[1].start, 128);
        }
        assert!(slices(100, 10, 10).is_err());
        assert!(slices(100, 10, 0).unwrap().len() == 10);
    }
}
