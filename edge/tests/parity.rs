//! The wasm guest inside wasmtime against the native build: kernels exact in the engine, and
//! INT8 logits bit-identical to native `squint ask`'s pipeline on 200 public-dev questions.

mod common;

use common::*;
use squint_cloud::wire::Version;
use squint_core::{Pipeline, PipelineOptions, QaParams};
use squint_edge::instance::{Instance, Limits};
use squint_edge::runtime::Runtime;
use squint_edge::ModelFiles;

fn instance(variant: &str, cache: &std::path::Path) -> Instance {
    let runtime = Runtime::load(&component(variant), cache).expect("component loads");
    let files = ModelFiles::read(&bundled_int8()).expect("model files");
    Instance::start(&runtime, &[files], Limits::default()).expect("instance starts")
}

#[test]
fn int8_kernels_are_exact_inside_wasmtime() {
    let cache = tempfile::tempdir().expect("tempdir");
    for (variant, kernel) in [("simd128", "simd128"), ("relaxed", "relaxed-simd")] {
        let mut guest = instance(variant, cache.path());
        let checked = guest
            .self_test(60, 11)
            .expect("kernels agree with the scalar reference");
        assert!(
            checked.iter().any(|k| k == kernel),
            "{variant}: checked {checked:?}"
        );
        assert_eq!(guest.models()[0].kernel, kernel);
    }
}

/// The default (simd128) build on 200 questions, the relaxed-SIMD build on the first 30.
#[test]
fn int8_logits_and_answers_are_bit_identical_to_native_on_200_questions() {
    let Some(data) = shared("squad-dev-v1.1-public.json") else {
        return;
    };
    let bytes = std::fs::read(&data).expect("dev set");
    let questions = squint_core::squad::read_squad("dev", &bytes).expect("parses");
    let native = Pipeline::from_dir(
        &bundled_int8(),
        PipelineOptions {
            threads: Some(1),
            ..Default::default()
        },
    )
    .expect("native loads");
    let cache = tempfile::tempdir().expect("tempdir");
    let params = QaParams::default();
    for (variant, count) in [("simd128", 200), ("relaxed", 30)] {
        let mut guest = instance(variant, cache.path());
        let mut compared = 0;
        for q in questions.iter().step_by(10).take(count) {
            let want = native
                .window_logits(&q.question, &q.context, &params)
                .expect("native logits")
                .concatenated();
            let got = guest
                .logits(Version::Int8, &q.question, &q.context, &params)
                .expect("guest logits");
            assert_eq!(got.len(), want.len(), "{variant} {}: logit count", q.id);
            if let Some(at) = got
                .iter()
                .zip(&want)
                .position(|(g, w)| g.to_bits() != w.to_bits())
            {
                panic!(
                    "{variant} {}: logit {at}: wasm {} vs native {}",
                    q.id, got[at], want[at]
                );
            }
            let (answers, _) = guest
                .answer(Version::Int8, &q.question, &q.context, &params)
                .expect("guest answers");
            assert_eq!(
                answers,
                native
                    .answer(&q.question, &q.context, &params)
                    .expect("native answers"),
                "{variant} {}",
                q.id
            );
            compared += 1;
        }
        assert_eq!(compared, count, "{variant}");
        eprintln!("{variant}: {compared} questions, INT8 logits bit-identical to native");
    }
}

#[test]
fn the_compiled_component_is_cached_and_a_tampered_cache_is_recompiled() {
    use squint_edge::runtime::CodeSource;
    let cache = tempfile::tempdir().expect("tempdir");
    let wasm = component("simd128");
    let first = Runtime::load(&wasm, cache.path()).expect("compiles");
    assert_eq!(first.source(), CodeSource::Compiled);
    let cwasm = first.cwasm().to_path_buf();
    drop(first);
    let second = Runtime::load(&wasm, cache.path()).expect("loads from the cache");
    assert_eq!(second.source(), CodeSource::Cache);
    assert_eq!(second.cwasm(), cwasm);
    drop(second);
    // One flipped byte: refused by its digest, compiled again, and the cache repaired.
    let mut code = std::fs::read(&cwasm).expect("cwasm");
    let middle = code.len() / 2;
    code[middle] ^= 0x40;
    std::fs::write(&cwasm, code).expect("tamper");
    let third = Runtime::load(&wasm, cache.path()).expect("recompiles");
    assert_eq!(third.source(), CodeSource::Compiled);
    drop(third);
    assert_eq!(
        Runtime::load(&wasm, cache.path()).expect("cached again").source(),
        CodeSource::Cache
    );
    // A different component (the relaxed build) gets its own entry.
    let other = Runtime::load(&component("relaxed"), cache.path()).expect("compiles");
    assert_ne!(other.cwasm(), cwasm);
}
