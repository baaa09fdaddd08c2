//! SQuAD v1.1 data files: parsed and checked, flattened into questions. Calibration draws
//! from them; evaluation scores against them.

use serde::Deserialize;

use crate::error::{Error, Result};

/// One question with its context and reference answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    pub id: String,
    pub question: String,
    pub context: String,
    pub answers: Vec<String>,
    /// Index of the article (`data[i]`) it came from, for error messages and reports.
    pub article: usize,
}

#[derive(Deserialize)]
struct File {
    version: Option<String>,
    data: Vec<Article>,
}

#[derive(Deserialize)]
struct Article {
    title: Option<String>,
    paragraphs: Vec<Paragraph>,
}

#[derive(Deserialize)]
struct Paragraph {
    context: String,
    qas: Vec<Qa>,
}

#[derive(Deserialize)]
struct Qa {
    id: String,
    question: String,
    #[serde(default)]
    answers: Option<Vec<AnswerRef>>,
    #[serde(default)]
    is_impossible: Option<bool>,
}

#[derive(Deserialize)]
struct AnswerRef {
    text: String,
}

/// Parses a SQuAD v1.1 file. Errors name the file and the article/question that is wrong;
/// SQuAD 2.0 unanswerable questions are refused as unsupported rather than mis-scored.
pub fn read_squad(file: &str, bytes: &[u8]) -> Result<Vec<Question>> {
    let bad = |message: String| Error::Checkpoint {
        file: file.to_string(),
        message,
    };
    let parsed: File =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("not a SQuAD JSON file: {e}")))?;
    match parsed.version.as_deref() {
        Some("1.1") | Some("v1.1") => {}
        other => {
            return Err(bad(format!(
                "version {other:?} is not SQuAD v1.1 (SQuAD 2.0 unanswerable questions are not supported)"
            )))
        }
    }
    let mut out = Vec::new();
    for (a, article) in parsed.data.iter().enumerate() {
        let title = article.title.as_deref().unwrap_or("untitled");
        for paragraph in &article.paragraphs {
            for qa in &paragraph.qas {
                let at = || format!("article {a} ({title:?}), question {:?}", qa.id);
                if qa.is_impossible == Some(true) {
                    return Err(bad(format!(
                        "{}: unanswerable (SQuAD 2.0) questions are not supported",
                        at()
                    )));
                }
                let answers: Vec<String> = qa
                    .answers
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .map(|r| r.text.clone())
                    .collect();
                if answers.is_empty() {
                    return Err(bad(format!("{}: has no reference answers", at())));
                }
                if qa.question.trim().is_empty() {
                    return Err(bad(format!("{}: the question is empty", at())));
                }
                out.push(Question {
                    id: qa.id.clone(),
                    question: qa.question.clone(),
                    context: paragraph.context.clone(),
                    answers,
                    article: a,
                });
            }
        }
    }
    if out.is_empty() {
        return Err(bad("holds no questions".into()));
    }
    Ok(out)
}

/// `n` distinct indices of `0..len`, drawn with a fixed seed (a partial Fisher–Yates shuffle
/// driven by SplitMix64), so calibration sets are reproducible.
pub fn sample_indices(len: usize, n: usize, seed: u64) -> Vec<usize> {
    let mut rng = crate::random::SplitMix(seed);
    let mut idx: Vec<usize> = (0..len).collect();
    let n = n.min(len);
    for i in 0..n {
        let j = i + (rng.next() % (len - i) as u64) as usize;
        idx.swap(i, j);
    }
    idx.truncate(n);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_flattens() {
        let json = br#"{"version":"1.1","data":[{"title":"T","paragraphs":[{"context":"abc","qas":[
            {"id":"q1","question":"what?","answers":[{"text":"a","answer_start":0},{"text":"ab","answer_start":0}]}]}]}]}"#;
        let q = read_squad("d.json", json).unwrap();
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].answers, vec!["a", "ab"]);
        assert_eq!(q[0].context, "abc");
    }

    #[test]
    fn clear_errors() {
        let e = read_squad("d.json", b"nope").unwrap_err().to_string();
        assert!(e.starts_with("d.json: not a SQuAD JSON file"), "{e}");
        let e = read_squad("d.json", br#"{"version":"v2.0","data":[]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not SQuAD v1.1"), "{e}");
        let json = br#"{"version":"1.1","data":[{"title":"T","paragraphs":[{"context":"abc","qas":[{"id":"q9","question":"x?","answers":[]}]}]}]}"#;
        let e = read_squad("d.json", json).unwrap_err().to_string();
        assert!(
            e.contains("article 0 (\"T\"), question \"q9\": has no reference answers"),
            "{e}"
        );
        let json = br#"{"version":"1.1","data":[{"title":"T","paragraphs":[{"context":"abc","qas":[{"id":"q9","question":"x?","answers":[],"is_impossible":true}]}]}]}"#;
        assert!(read_squad("d.json", json)
            .unwrap_err()
            .to_string()
            .contains("unanswerable"));
    }

    #[test]
    fn sampling_is_reproducible_and_distinct() {
        let a = sample_indices(1000, 50, 7);
        assert_eq!(a, sample_indices(1000, 50, 7));
        assert_ne!(a, sample_indices(1000, 50, 8));
        let mut s = a.clone();
        s.sort_unstable();
        s.dedup();
        assert_eq!(s.len(), 50);
        assert_eq!(sample_indices(3, 10, 1).len(), 3);
    }
}
