//! Times one encoder pass inside a wasmtime instance (no tokenizer, no HTTP):
//! `cargo run --release -p squint-edge --example guest_forward -- COMPONENT MODEL_DIR [SEQ] [ITERS]`.

use std::path::PathBuf;
use std::time::Instant;

use squint_cloud::wire::Version;
use squint_edge::instance::{Instance, Limits};
use squint_edge::runtime::Runtime;
use squint_edge::ModelFiles;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(component), Some(model)) = (args.get(1), args.get(2)) else {
        anyhow::bail!("usage: guest_forward COMPONENT MODEL_DIR [SEQ] [ITERS]");
    };
    let seq: usize = args.get(3).map_or(Ok(384), |s| s.parse())?;
    let iters: usize = args.get(4).map_or(Ok(10), |s| s.parse())?;
    let cache = std::env::temp_dir().join("squint-edge-example-cache");
    let runtime = Runtime::load(&PathBuf::from(component), &cache)?;
    let files = ModelFiles::read(&PathBuf::from(model))?;
    let mut instance = Instance::start(&runtime, &[files], Limits::default())?;
    let version = instance.models()[0].version;
    let kernel = instance.models()[0].kernel.clone();
    instance.forward(version, seq)?;
    let mut times: Vec<f64> = (0..iters)
        .map(|_| {
            let start = Instant::now();
            instance
                .forward(version, seq)
                .map(|()| start.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<Result<_, _>>()?;
    times.sort_by(f64::total_cmp);
    println!(
        "{} {kernel} seq {seq}: median {:.1} ms (min {:.1}) over {iters}",
        version.label(),
        times[times.len() / 2],
        times[0]
    );
    let _ = Version::Int8;
    Ok(())
}
