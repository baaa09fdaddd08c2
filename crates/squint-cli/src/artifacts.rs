//! `squint artifacts push|pull`: model directories to and from S3 (model.tar.gz + manifest.json).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use squint_cloud::artifacts::{client, pull, push, Pulled, Pushed, S3Settings, S3Uri};

#[derive(Args, Debug)]
pub struct ArtifactsArgs {
    #[command(subcommand)]
    command: ArtifactsCommand,
    /// S3-compatible endpoint (path-style), e.g. http://127.0.0.1:9000. Credentials and region
    /// come from the standard AWS chain (environment, profile, instance role).
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL_S3")]
    endpoint_url: Option<String>,
}

#[derive(Subcommand, Debug)]
enum ArtifactsCommand {
    /// Upload DIR as s3://bucket/prefix/model.tar.gz + manifest.json (skipped when unchanged).
    Push {
        dir: PathBuf,
        uri: String,
        /// Upload in parts above this many MB (parts of this size, at least 5).
        #[arg(long, default_value_t = 64)]
        multipart_threshold_mb: usize,
    },
    /// Download s3://bucket/prefix/ into DIR, verified, swapped in only when whole.
    Pull { uri: String, dir: PathBuf },
}

fn bar(label: &str) -> Result<ProgressBar> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes}, {bytes_per_sec}, ETA {eta}")
            .context("progress bar template")?
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    Ok(bar)
}

pub fn run(args: ArtifactsArgs) -> Result<()> {
    let settings = S3Settings {
        endpoint_url: args.endpoint_url.clone(),
        ..S3Settings::default()
    };
    let runtime = crate::async_runtime()?;
    runtime.block_on(async move {
        let s3 = client(&settings).await;
        match args.command {
            ArtifactsCommand::Push {
                dir,
                uri,
                multipart_threshold_mb,
            } => {
                let uri = S3Uri::parse(&uri)?;
                let progress = bar("push")?;
                let tick = progress.clone();
                let done = push(
                    &s3,
                    &dir,
                    &uri,
                    multipart_threshold_mb.max(1) * 1024 * 1024,
                    &move |sent, total| {
                        tick.set_length(total);
                        tick.set_position(sent);
                    },
                )
                .await;
                progress.finish_and_clear();
                match done? {
                    Pushed::Unchanged => {
                        println!("s3://{}/{}: unchanged, nothing uploaded", uri.bucket, uri.prefix)
                    }
                    Pushed::Uploaded { bytes, multipart } => println!(
                        "uploaded {} ({bytes} bytes{}) and its manifest.json to s3://{}/{}",
                        squint_cloud::artifacts::TARBALL,
                        if multipart { ", multipart" } else { "" },
                        uri.bucket,
                        uri.prefix
                    ),
                }
            }
            ArtifactsCommand::Pull { uri, dir } => {
                let uri = S3Uri::parse(&uri)?;
                let progress = bar("pull")?;
                let tick = progress.clone();
                let done = pull(&s3, &uri, &dir, &move |got, total| {
                    tick.set_length(total);
                    tick.set_position(got);
                })
                .await;
                progress.finish_and_clear();
                match done? {
                    Pulled::UpToDate => println!("{}: already up to date", dir.display()),
                    Pulled::Installed { bytes } => {
                        println!(
                            "{}: installed from s3://{}/{} ({bytes} bytes, verified)",
                            dir.display(),
                            uri.bucket,
                            uri.prefix
                        )
                    }
                }
            }
        }
        Ok(())
    })
}
