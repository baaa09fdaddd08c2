//! The INT8 artifact on the tiny fixture model: quantize (both recipes) -> directory ->
//! load gives the same logits as quantizing in memory; metadata survives; truncated,
//! tampered, foreign or inconsistent files are refused with a message naming what is wrong.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::path::Path;

use squint_core::artifact::{Int8Artifact, Int8Metadata, Recipe, INT8_FILE};
use squint_core::calibrate::Observer;
use squint_core::manifest::{Manifest, MANIFEST_FILE};
use squint_core::quant::WeightBits;
use squint_core::quantize::{default_per_token, quantize_model, write_dir, CalibrationData, QuantizeOptions};
use squint_core::weights::SafetensorsSource;
use squint_core::{ModelFiles, Pipeline, PipelineOptions, Precision, QaParams};
use squint_kernels::attention::Numerics;

const CONTEXT: &str = "The Amazon rainforest, also known in English as Amazonia, is a moist broadleaf \
tropical rainforest that covers most of the Amazon basin of South America.";

/// A small SQuAD v1.1 file for calibration (the tiny model is random; any text works).
fn calib_json() -> Vec<u8> {
    let qas: Vec<serde_json::Value> = (0..6)
        .map(|i| {
            serde_json::json!({"id": format!("q{i}"), "question": format!("What is item {i} about?"),
                "answers": [{"text": "Amazon", "answer_start": 4}]})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({"version": "1.1", "data": [{"title": "t",
        "paragraphs": [{"context": CONTEXT, "qas": qas}]}]}))
    .unwrap()
}

fn quantize(recipe: Recipe, out: &Path) -> Vec<(String, Vec<u8>)> {
    quantize_with(recipe, WeightBits::Eight, out)
}

fn quantize_with(recipe: Recipe, weight_bits: WeightBits, out: &Path) -> Vec<(String, Vec<u8>)> {
    let files = ModelFiles::from_dir(&common::fixtures().join("tiny-qa")).unwrap();
    let bytes = calib_json();
    let questions = squint_core::squad::read_squad("calib.json", &bytes).unwrap();
    let options = QuantizeOptions {
        recipe,
        per_token: default_per_token(),
        calibration: (recipe == Recipe::Static).then(|| CalibrationData {
            name: "calib.json".into(),
            bytes: &bytes,
            questions: &questions,
            samples: 4,
            seed: 3,
            observer: Observer::MinMax,
        }),
        threads: Some(1),
        attention: Numerics::Int16,
        weight_bits,
    };
    let mut calls = 0;
    let written = quantize_model(&files, &options, &mut |_, _| calls += 1).unwrap();
    assert_eq!(calls, if recipe == Recipe::Static { 4 } else { 0 });
    write_dir(out, &written).unwrap();
    written
}

fn logits(p: &Pipeline) -> Vec<(Vec<f32>, Vec<f32>)> {
    p.window_logits(
        "Which name is also used for the Amazon rainforest?",
        CONTEXT,
        &QaParams::default(),
    )
    .unwrap()
    .logits
}

#[test]
fn round_trip_both_recipes() {
    let fp32 = Pipeline::from_dir(&common::fixtures().join("tiny-qa"), PipelineOptions::default()).unwrap();
    for recipe in [Recipe::Dynamic, Recipe::Static] {
        let dir = tempfile::tempdir().unwrap();
        let written = quantize(recipe, dir.path());
        let names: Vec<&str> = written.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["config.json", "tokenizer.json", INT8_FILE, MANIFEST_FILE]);
        // Reproducible: the same model and recipe give the same bytes (so the same sha256).
        let other = tempfile::tempdir().unwrap();
        for ((name, a), (_, b)) in written.iter().zip(quantize(recipe, other.path())) {
            assert!(
                *a == b,
                "{}: {name} differs between two identical runs",
                recipe.name()
            );
        }
        let int8 = Pipeline::from_dir(dir.path(), PipelineOptions::default()).unwrap();
        assert_eq!(int8.model().precision(), recipe.precision());
        // Same artifact, loaded twice: identical logits; and close to FP32.
        let again = Pipeline::from_dir(dir.path(), PipelineOptions::default()).unwrap();
        assert_eq!(logits(&int8), logits(&again));
        let (a, b) = (logits(&fp32), logits(&int8));
        let worst = a[0]
            .0
            .iter()
            .zip(&b[0].0)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        let range = a[0].0.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(
            worst < 0.1 * range,
            "{}: INT8 start logits differ from FP32 by {worst} (logits up to {range})",
            recipe.name()
        );
        // The dynamic artifact equals quantizing the checkpoint at load.
        if recipe == Recipe::Dynamic {
            let options = PipelineOptions {
                precision: Some(Precision::Int8Dynamic),
                ..PipelineOptions::default()
            };
            let in_memory = Pipeline::from_dir(&common::fixtures().join("tiny-qa"), options).unwrap();
            assert_eq!(logits(&in_memory), logits(&int8));
        }
        // Metadata survives.
        let bytes = std::fs::read(dir.path().join(INT8_FILE)).unwrap();
        let src = SafetensorsSource::new(INT8_FILE, bytes).unwrap();
        let meta: Int8Metadata = Int8Artifact::open(&src).unwrap().unwrap().metadata().clone();
        assert_eq!(meta.recipe, recipe);
        assert_eq!(meta.attention, Numerics::Int16);
        assert_eq!(meta.source_file, "model.safetensors");
        let source = std::fs::read(common::fixtures().join("tiny-qa/model.safetensors")).unwrap();
        assert_eq!(
            meta.source_sha256,
            Some(squint_core::manifest::sha256_hex(&source))
        );
        if let Some(c) = meta.calibration {
            assert_eq!((c.samples, c.seed, c.observer.as_str()), (4, 3, "minmax"));
            assert_eq!(c.data_sha256, squint_core::manifest::sha256_hex(&calib_json()));
        }
        // Asking an INT8 artifact for another precision is refused.
        let options = PipelineOptions {
            precision: Some(Precision::Fp32),
            ..PipelineOptions::default()
        };
        let e = Pipeline::from_dir(dir.path(), options).unwrap_err().to_string();
        assert!(e.contains("is an INT8 artifact") && e.contains("fp32"), "{e}");
    }
}

fn error_of(dir: &Path) -> String {
    Pipeline::from_dir(dir, PipelineOptions::default())
        .unwrap_err()
        .to_string()
}

#[test]
fn truncated_tampered_and_unlisted_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    quantize(Recipe::Static, dir.path());
    let path = dir.path().join(INT8_FILE);
    let good = std::fs::read(&path).unwrap();

    let mut flipped = good.clone();
    let at = flipped.len() - 100;
    flipped[at] ^= 0x40;
    std::fs::write(&path, &flipped).unwrap();
    let e = error_of(dir.path());
    assert!(
        e.contains(INT8_FILE) && e.contains("sha256") && e.contains("modified"),
        "{e}"
    );

    // A tampered file that also breaks the build (the safetensors header, a config value):
    // the digest, checked beside the build, is what the error names.
    let mut header = good.clone();
    header[10] ^= 0x20;
    std::fs::write(&path, &header).unwrap();
    let unchecked = ModelFiles::open_unchecked(dir.path()).unwrap();
    let e = unchecked.verify().unwrap_err().to_string();
    assert!(e.contains(INT8_FILE) && e.contains("modified"), "{e}");
    let e = error_of(dir.path());
    assert!(e.contains(INT8_FILE) && e.contains("modified"), "{e}");
    std::fs::write(&path, &good).unwrap();
    let config_path = dir.path().join("config.json");
    let config = std::fs::read_to_string(&config_path).unwrap();
    let broken = config.replacen("\"num_hidden_layers\"", "\"num_hidden_layerz\"", 1);
    assert_ne!(broken, config);
    std::fs::write(&config_path, broken).unwrap();
    let e = error_of(dir.path());
    assert!(e.contains("config.json") && e.contains("modified"), "{e}");
    std::fs::write(&config_path, config).unwrap();
    assert!(Pipeline::from_dir(dir.path(), PipelineOptions::default()).is_ok());

    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    let e = error_of(dir.path());
    assert!(e.contains(INT8_FILE) && e.contains("truncated"), "{e}");

    std::fs::write(&path, &good).unwrap();
    std::fs::remove_file(dir.path().join(MANIFEST_FILE)).unwrap();
    let e = error_of(dir.path());
    assert!(e.contains("manifest.json") && e.contains("missing"), "{e}");
}

/// Rewrites the artifact with `edit` applied to its tensors and metadata, with a matching
/// manifest (as a careless tool would), so only the loader's own validation can catch it.
fn rewrite(
    dir: &Path,
    edit: impl FnOnce(
        &mut Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>,
        &mut std::collections::HashMap<String, String>,
    ),
) {
    let path = dir.join(INT8_FILE);
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = header.metadata().clone().unwrap();
    edit(&mut tensors, &mut meta);
    let views: Vec<_> = tensors
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let out = safetensors::serialize(views, Some(meta)).unwrap();
    std::fs::write(&path, &out).unwrap();
    let names = ["config.json", "tokenizer.json", INT8_FILE];
    let contents: Vec<Vec<u8>> = names
        .iter()
        .map(|n| std::fs::read(dir.join(n)).unwrap())
        .collect();
    let manifest = Manifest::of(names.iter().copied().zip(contents.iter().map(Vec::as_slice)));
    std::fs::write(dir.join(MANIFEST_FILE), manifest.to_json()).unwrap();
}

#[test]
fn inconsistent_artifacts_are_refused() {
    type Edit = Box<
        dyn FnOnce(
            &mut Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>,
            &mut std::collections::HashMap<String, String>,
        ),
    >;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "future version",
            Box::new(|_, m| {
                m.insert("format_version".into(), "99".into());
            }),
            "format version 99 is not supported",
        ),
        (
            "unknown recipe",
            Box::new(|_, m| {
                m.insert("recipe".into(), "magic".into());
            }),
            "unknown recipe",
        ),
        (
            "unknown attention",
            Box::new(|_, m| {
                m.insert("attention".into(), "int4".into());
            }),
            "unknown attention \"int4\" (f32, int16, int8)",
        ),
        (
            "unknown weight grid",
            Box::new(|_, m| {
                m.insert("weight_bits".into(), "4".into());
            }),
            "unknown weight_bits \"4\" (8, 7)",
        ),
        (
            "8-bit weights labelled 7-bit",
            Box::new(|_, m| {
                m.insert("weight_bits".into(), "7".into());
            }),
            "7-bit weights are symmetric in [-63, 63]",
        ),
        (
            "missing calibration provenance",
            Box::new(|_, m| {
                m.remove("calibration_data_sha256");
            }),
            "lacks `calibration_data_sha256`",
        ),
        (
            "extra tensor",
            Box::new(|t, _| {
                t.push((
                    "encoder.layer.9.bogus".into(),
                    safetensors::Dtype::F32,
                    vec![1],
                    vec![0; 4],
                ))
            }),
            "encoder.layer.9.bogus",
        ),
        (
            "weights stored as f32",
            Box::new(|t, _| {
                let w = t
                    .iter_mut()
                    .find(|x| x.0 == "encoder.layer.0.attention.self.qkv.weight")
                    .unwrap();
                w.1 = safetensors::Dtype::U8;
            }),
            "expected I8",
        ),
        (
            "negative weight scale",
            Box::new(|t, _| {
                let s = t
                    .iter_mut()
                    .find(|x| x.0 == "encoder.layer.0.output.dense.weight_scale")
                    .unwrap();
                s.3[..4].copy_from_slice(&(-1.0f32).to_le_bytes());
            }),
            "positive finite",
        ),
        (
            "missing input scale",
            Box::new(|t, _| t.retain(|x| x.0 != "encoder.layer.0.attention.self.qkv.input_scale")),
            "encoder.layer.0.attention.self.qkv.input_scale`: missing",
        ),
    ];
    for (what, edit, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        quantize(Recipe::Static, dir.path());
        rewrite(dir.path(), edit);
        let e = error_of(dir.path());
        assert!(e.contains(want), "{what}: {e}");
    }
}

#[test]
fn artifacts_without_the_attention_field_keep_f32_attention() {
    // Files written before integer attention existed say nothing about it: they must keep
    // computing as before, and the metadata must say so.
    let dir = tempfile::tempdir().unwrap();
    quantize(Recipe::Static, dir.path());
    let open = |dir: &Path| Pipeline::from_dir(dir, PipelineOptions::default()).unwrap();
    let int16 = logits(&open(dir.path()));
    rewrite(dir.path(), |_, m| {
        m.remove("attention");
    });
    let bytes = std::fs::read(dir.path().join(INT8_FILE)).unwrap();
    let src = SafetensorsSource::new(INT8_FILE, bytes).unwrap();
    let meta = Int8Artifact::open(&src).unwrap().unwrap().metadata().clone();
    assert_eq!(meta.attention, Numerics::F32);
    let old = open(dir.path());
    assert_eq!(old.model().attention_numerics(), Numerics::F32);
    let f32_logits = logits(&old);
    assert_ne!(f32_logits, int16, "the attention field changed nothing");
    let worst = f32_logits
        .iter()
        .zip(&int16)
        .flat_map(|(a, b)| a.0.iter().zip(&b.0).map(|(x, y)| (x - y).abs()))
        .fold(0.0f32, f32::max);
    assert!(worst < 0.05, "int16 attention moved a start logit by {worst}");
}

#[test]
fn seven_bit_weights_stay_on_their_grid_and_near_fp32() {
    let fp32 = Pipeline::from_dir(&common::fixtures().join("tiny-qa"), PipelineOptions::default()).unwrap();
    let (eight, seven) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    quantize(Recipe::Static, eight.path());
    quantize_with(Recipe::Static, WeightBits::Seven, seven.path());
    let bytes = std::fs::read(seven.path().join(INT8_FILE)).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut linear = 0;
    for (name, view) in st.tensors() {
        if name.starts_with("encoder.") && name.ends_with(".weight") && view.dtype() == safetensors::Dtype::I8
        {
            linear += 1;
            let max = view
                .data()
                .iter()
                .map(|&b| (b as i8).unsigned_abs())
                .max()
                .unwrap();
            assert_eq!(max, 63, "{name}: every row's largest weight maps to 63");
        }
    }
    assert_eq!(linear, 4 * fp32.model().config().num_hidden_layers);
    let src = SafetensorsSource::new(INT8_FILE, bytes).unwrap();
    let meta = Int8Artifact::open(&src).unwrap().unwrap().metadata().clone();
    assert_eq!(meta.weight_bits, WeightBits::Seven);
    let open = |dir: &Path| logits(&Pipeline::from_dir(dir, PipelineOptions::default()).unwrap());
    let (a, b8, b7) = (logits(&fp32), open(eight.path()), open(seven.path()));
    assert_ne!(b7, b8, "the weight grid changed nothing");
    let err = |b: &[(Vec<f32>, Vec<f32>)]| {
        a[0].0
            .iter()
            .zip(&b[0].0)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max)
    };
    let range = a[0].0.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    assert!(
        err(&b7) < 0.1 * range,
        "7-bit start logits differ from FP32 by {} (8-bit: {}, logits up to {range})",
        err(&b7),
        err(&b8)
    );
    // Files written before the field existed hold 8-bit weights and must still load as such.
    rewrite(eight.path(), |_, m| {
        m.remove("weight_bits");
    });
    assert_eq!(open(eight.path()), b8);
}

/// The bundled INT8 model (static recipe, real weights), committed in the repository.
fn bundled_model() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/minilm-l6-squad-int8")
}

/// Child half of `logits_are_bit_identical_on_every_kernel`: runs only when the parent sets
/// `SQUINT_ISA_CHILD_OUT` (the ISA is chosen once per process, so each kernel needs its own).
#[test]
fn isa_child() {
    let Ok(out) = std::env::var("SQUINT_ISA_CHILD_OUT") else {
        return;
    };
    let p = Pipeline::from_dir(&bundled_model(), PipelineOptions::default()).unwrap();
    let context =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/amazon.txt"))
            .unwrap();
    let logits = p
        .window_logits(
            "Which name is also used to describe the Amazon rainforest in English?",
            &context,
            &QaParams::default(),
        )
        .unwrap()
        .logits;
    let mut bytes: Vec<u8> = logits
        .iter()
        .flat_map(|(s, e)| s.iter().chain(e))
        .flat_map(|v| v.to_le_bytes())
        .collect();
    // The same weights with int8 attention (quantized in memory), on 200 fixed tokens.
    let files = ModelFiles::from_dir(&bundled_model()).unwrap();
    let config = squint_core::BertConfig::from_json(&files.config, "config.json").unwrap();
    let model = squint_core::pipeline::load_model_as(&config, &files.weights, None)
        .unwrap()
        .with_attention(Numerics::Int8)
        .unwrap();
    let ids: Vec<u32> = (0..200).map(|i| (1000 + i * 7919) % 30522).collect();
    let types: Vec<u32> = (0..200).map(|i| (i >= 40) as u32).collect();
    let batch = squint_core::Batch {
        ids: &ids,
        types: &types,
        lengths: &[200],
        seq_len: 200,
    };
    let exec = squint_core::Executor::new(Some(1)).unwrap();
    let (start, end) = model
        .qa_logits(&batch, &mut squint_core::Workspace::default(), &exec)
        .unwrap();
    bytes.extend(start.iter().chain(&end).flat_map(|v| v.to_le_bytes()));
    // 7-bit weights take AVX2's one-instruction path: random MiniLM-shaped weights, dynamic
    // (a static model calibrated here would run the FP32 model, whose FMA kernels are not
    // bit-identical across ISAs, so each child would get slightly different scales).
    let config = squint_core::BertConfig::shape("minilm-l6").unwrap();
    let model = squint_core::random::random_model_with(&config, 7, Precision::Int8Dynamic, WeightBits::Seven)
        .unwrap();
    let (start, end) = model
        .qa_logits(&batch, &mut squint_core::Workspace::default(), &exec)
        .unwrap();
    bytes.extend(start.iter().chain(&end).flat_map(|v| v.to_le_bytes()));
    std::fs::write(format!("{out}.{}", squint_kernels::isa().name()), bytes).unwrap();
}

#[test]
fn logits_are_bit_identical_on_every_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("logits");
    let mut results = Vec::new();
    for isa in squint_kernels::Isa::available() {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "isa_child", "--nocapture", "--test-threads", "1"])
            .env("SQUINT_ISA", isa.name())
            .env("SQUINT_ISA_CHILD_OUT", &out)
            .status()
            .unwrap();
        assert!(status.success(), "child for {}", isa.name());
        let bytes = std::fs::read(format!("{}.{}", out.display(), isa.name())).unwrap();
        assert!(bytes.len() > 1000);
        results.push((isa, bytes));
    }
    let (first, want) = &results[0];
    for (isa, got) in &results[1..] {
        assert!(
            got == want,
            "INT8 logits on {} differ from {}",
            isa.name(),
            first.name()
        );
    }
    eprintln!(
        "bundled INT8 model (int16 and int8 attention) and 7-bit weights: logits bit-identical on {}",
        results
            .iter()
            .map(|(i, _)| i.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
}
