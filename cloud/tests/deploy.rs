//! The deployment kit without AWS: every script passes `shellcheck` and, in a dry run, makes the
//! calls of the reference deployment (ECR push, model.tar.gz upload, create-model x2, an
//! endpoint config with INT8 and FP32 variants on ml.c6i.2xlarge, autoscaling, batch
//! transform, cleanup) without touching the network.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::path::PathBuf;
use std::process::Command;

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn scripts() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(deploy_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sh"))
        .collect();
    found.sort();
    found
}

fn dry_run(script: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("bash")
        .arg(deploy_dir().join(script))
        .args(args)
        .env("DRY_RUN", "1")
        .env_remove("BUCKET")
        .env_remove("ROLE_ARN")
        // No AWS credentials or CLI are needed in a dry run: make sure none is used.
        .env("PATH", "/usr/bin:/bin")
        .env("AWS_ACCESS_KEY_ID", "")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn scripts_pass_shellcheck() {
    let available = Command::new("shellcheck").arg("--version").output().is_ok();
    if !available {
        assert!(
            std::env::var("SQUINT_REQUIRE_ASSETS").is_err(),
            "shellcheck is required in CI (.ci/run installs it)"
        );
        eprintln!("SKIPPED shellcheck: not installed (apt-get install shellcheck)");
        return;
    }
    let out = Command::new("shellcheck")
        .arg("-x")
        .current_dir(deploy_dir())
        .args(scripts().iter().map(|p| p.file_name().unwrap().to_owned()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    for script in scripts() {
        let text = std::fs::read_to_string(&script).unwrap();
        assert!(text.contains("set -euo pipefail"), "{}", script.display());
    }
}

#[test]
fn dry_runs_make_the_reference_calls() {
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/minilm-l6-squad-int8");
    let cases: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
        (
            "push-image.sh",
            vec![],
            vec![
                "aws ecr create-repository",
                "docker build -f",
                "cloud/Dockerfile",
                "docker push 123456789012.dkr.ecr.us-east-1.amazonaws.com/squint:latest",
            ],
        ),
        (
            "upload-model.sh",
            vec![model.to_str().unwrap(), "int8"],
            vec!["tar -czf", "aws s3 cp", "/int8/model.tar.gz"],
        ),
        (
            "create-endpoint.sh",
            vec![],
            vec![
                "create-model --region us-east-1 --model-name squint-qa-int8",
                "--model-name squint-qa-fp32",
                "ModelDataUrl=s3://",
                "create-endpoint-config",
                "VariantName=INT8",
                "VariantName=FP32",
                "InstanceType=ml.c6i.2xlarge",
                "create-endpoint --region",
                "wait endpoint-in-service",
            ],
        ),
        (
            "autoscale.sh",
            vec![],
            vec![
                "register-scalable-target",
                "sagemaker:variant:DesiredInstanceCount",
                "SageMakerVariantInvocationsPerInstance",
                "variant/FP32",
            ],
        ),
        (
            "batch-transform.sh",
            vec!["s3://b/in.jsonl", "s3://b/out/"],
            vec![
                "create-transform-job",
                "SplitType=Line",
                "application/jsonlines",
                "MultiRecord",
            ],
        ),
        (
            "invoke.sh",
            vec!["Who?", "Some text."],
            vec!["invoke-endpoint", "--target-variant INT8", "--custom-attributes"],
        ),
        (
            "cleanup.sh",
            vec![],
            vec![
                "deregister-scalable-target",
                "delete-endpoint --region",
                "delete-endpoint-config",
                "delete-model",
            ],
        ),
    ];
    for (script, args, needles) in cases {
        let (ok, text) = dry_run(script, &args);
        assert!(ok, "{script} failed:\n{text}");
        for needle in needles {
            assert!(text.contains(needle), "{script}: {needle:?} not in\n{text}");
        }
    }
    // Wrong usage is refused with a message.
    let (ok, text) = dry_run("upload-model.sh", &["only-one-arg"]);
    assert!(!ok && text.contains("usage"), "{text}");
}
