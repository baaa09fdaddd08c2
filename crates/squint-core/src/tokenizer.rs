//! WordPiece tokenization for QA: questions to ids, contexts to ids with character offsets and
//! word indices, via the Hugging Face `tokenizers` crate. Truncation and padding stored in a
//! `tokenizer.json` are switched off: squint makes its own windows.

use std::collections::HashMap;

use serde::Deserialize;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::Tokenizer;

use crate::error::{Error, Result};
use crate::files::TokenizerFiles;

/// A tokenized context: one entry per token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextTokens {
    pub ids: Vec<u32>,
    /// `[start, end)` character offsets of each token in the context.
    pub offsets: Vec<(usize, usize)>,
    /// The pre-tokenizer word each token belongs to (for aligning answers to whole words).
    pub words: Vec<Option<u32>>,
}

/// The special tokens a BERT QA window needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpecialTokens {
    pub cls: u32,
    pub sep: u32,
    pub pad: u32,
}

/// The tokenizer of a BERT QA model.
#[derive(Clone, Debug)]
pub struct QaTokenizer {
    inner: Tokenizer,
    special: SpecialTokens,
    file: String,
}

#[derive(Deserialize, Default)]
struct TokenizerConfig {
    do_lower_case: Option<bool>,
    strip_accents: Option<bool>,
    tokenize_chinese_chars: Option<bool>,
}

impl QaTokenizer {
    /// The tokenizer as a `tokenizer.json` (with truncation and padding off), for model
    /// directories that only had `vocab.txt`.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        self.inner
            .to_string(false)
            .map(String::into_bytes)
            .map_err(|e| Error::Tokenizer {
                file: self.file.clone(),
                message: format!("serializing: {e}"),
            })
    }

    /// Builds the tokenizer from a model directory's tokenizer files.
    pub fn from_files(files: &TokenizerFiles) -> Result<QaTokenizer> {
        match files {
            TokenizerFiles::Json(bytes) => Self::from_json(bytes),
            TokenizerFiles::Vocab {
                vocab,
                tokenizer_config,
            } => Self::from_vocab(vocab, tokenizer_config.as_deref()),
        }
    }

    /// From `tokenizer.json` bytes.
    pub fn from_json(bytes: &[u8]) -> Result<QaTokenizer> {
        let file = "tokenizer.json";
        let mut inner = Tokenizer::from_bytes(bytes).map_err(|e| Error::Tokenizer {
            file: file.into(),
            message: e.to_string(),
        })?;
        inner.with_truncation(None).map_err(|e| Error::Tokenizer {
            file: file.into(),
            message: e.to_string(),
        })?;
        inner.with_padding(None);
        Self::finish(inner, file)
    }

    /// From `vocab.txt` (one token per line) and the optional `tokenizer_config.json`
    /// (`do_lower_case` defaults to true, as for `bert-base-uncased`).
    pub fn from_vocab(vocab: &[u8], tokenizer_config: Option<&[u8]>) -> Result<QaTokenizer> {
        let file = "vocab.txt";
        let text = std::str::from_utf8(vocab).map_err(|e| Error::Tokenizer {
            file: file.into(),
            message: format!("not UTF-8: {e}"),
        })?;
        let mut map = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let token = line.trim_end_matches('\r');
            if !token.is_empty() {
                map.entry(token.to_string()).or_insert(i as u32);
            }
        }
        if map.is_empty() {
            return Err(Error::Tokenizer {
                file: file.into(),
                message: "empty vocabulary".into(),
            });
        }
        let config: TokenizerConfig = match tokenizer_config {
            Some(bytes) => serde_json::from_slice(bytes).map_err(|e| Error::Tokenizer {
                file: "tokenizer_config.json".into(),
                message: format!("not valid JSON: {e}"),
            })?,
            None => TokenizerConfig::default(),
        };
        let lowercase = config.do_lower_case.unwrap_or(true);
        let wordpiece = WordPiece::builder()
            .vocab(map.into_iter().collect::<ahash::AHashMap<String, u32>>())
            .unk_token("[UNK]".into())
            .continuing_subword_prefix("##".into())
            .max_input_chars_per_word(100)
            .build()
            .map_err(|e| Error::Tokenizer {
                file: file.into(),
                message: e.to_string(),
            })?;
        let mut inner = Tokenizer::new(wordpiece);
        inner.with_normalizer(Some(BertNormalizer::new(
            true,
            config.tokenize_chinese_chars.unwrap_or(true),
            config.strip_accents,
            lowercase,
        )));
        inner.with_pre_tokenizer(Some(BertPreTokenizer));
        Self::finish(inner, file)
    }

    fn finish(inner: Tokenizer, file: &str) -> Result<QaTokenizer> {
        let id = |token: &str| {
            inner.token_to_id(token).ok_or_else(|| Error::Tokenizer {
                file: file.into(),
                message: format!("the vocabulary has no {token} token"),
            })
        };
        let special = SpecialTokens {
            cls: id("[CLS]")?,
            sep: id("[SEP]")?,
            pad: id("[PAD]")?,
        };
        Ok(QaTokenizer {
            inner,
            special,
            file: file.to_string(),
        })
    }

    pub fn special(&self) -> SpecialTokens {
        self.special
    }

    /// The largest token id the tokenizer can produce (checked against the embedding table).
    pub fn max_token_id(&self) -> u32 {
        self.inner.get_vocab(true).values().copied().max().unwrap_or(0)
    }

    /// Token ids of a question, without special tokens.
    pub fn encode_question(&self, question: &str) -> Result<Vec<u32>> {
        let encoding = self.inner.encode(question, false).map_err(|e| Error::Tokenizer {
            file: self.file.clone(),
            message: e.to_string(),
        })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Token ids of a context with character offsets and word indices, without special tokens.
    pub fn encode_context(&self, context: &str) -> Result<ContextTokens> {
        let encoding = self
            .inner
            .encode_char_offsets(context, false)
            .map_err(|e| Error::Tokenizer {
                file: self.file.clone(),
                message: e.to_string(),
            })?;
        Ok(ContextTokens {
            ids: encoding.get_ids().to_vec(),
            offsets: encoding.get_offsets().to_vec(),
            words: encoding.get_word_ids().to_vec(),
        })
    }
}
