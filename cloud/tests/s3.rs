//! `artifacts::push`/`pull` against a real S3-compatible server on loopback (s3s-fs, SigV4
//! checked): round trip, unchanged re-push skipped, multipart, wrong credentials named,
//! a tampered object caught by the manifest, and the server dying mid-download leaving the old
//! model intact.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use squint_cloud::artifacts::{
    client, pull, push, ArtifactError, Pulled, Pushed, S3Settings, S3Uri, TARBALL,
};

const AK: &str = "squint-test-key";
const SK: &str = "squint-test-secret";

fn s3s_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("S3S_FS") {
        return Some(PathBuf::from(p));
    }
    let home = PathBuf::from(std::env::var("HOME").ok()?).join(".cargo/bin/s3s-fs");
    if home.is_file() {
        return Some(home);
    }
    Command::new("s3s-fs")
        .arg("--help")
        .output()
        .ok()
        .map(|_| PathBuf::from("s3s-fs"))
}

/// s3s-fs on a free loopback port, serving a temporary directory; killed on drop.
struct S3Server {
    child: Arc<Mutex<Child>>,
    port: u16,
    _root: tempfile::TempDir,
}

impl S3Server {
    fn start() -> Option<S3Server> {
        let Some(bin) = s3s_binary() else {
            assert!(
                std::env::var("SQUINT_REQUIRE_ASSETS").is_err(),
                "s3s-fs is required in CI (.ci/run installs it)"
            );
            eprintln!("SKIPPED S3 tests: s3s-fs not installed (cargo install s3s-fs --version 0.14.1 --features binary)");
            return None;
        };
        let root = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(bin)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--access-key",
                AK,
                "--secret-key",
                SK,
            ])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "s3s-fs did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(S3Server {
            child: Arc::new(Mutex::new(child)),
            port,
            _root: root,
        })
    }

    fn settings(&self, port: u16, secret: &str) -> S3Settings {
        S3Settings {
            endpoint_url: Some(format!("http://127.0.0.1:{port}")),
            region: Some("us-east-1".into()),
            credentials: Some((AK.into(), secret.into())),
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Ok(mut c) = self.child.lock() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A copy of the tiny model with an incompressible `extra.bin` of `mb` MB (seeded).
fn model_dir(root: &Path, name: &str, mb: usize, seed: u64) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let tiny = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crates/squint-core/tests/fixtures/tiny-qa");
    for entry in std::fs::read_dir(tiny).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    let mut state = seed | 1;
    let bytes: Vec<u8> = (0..mb * 1024 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(dir.join("extra.bin"), bytes).unwrap();
    dir
}

fn same_files(a: &Path, b: &Path) {
    for entry in std::fs::read_dir(a).unwrap() {
        let entry = entry.unwrap();
        let other = std::fs::read(b.join(entry.file_name())).unwrap();
        assert!(
            std::fs::read(entry.path()).unwrap() == other,
            "{:?} differs",
            entry.file_name()
        );
    }
}

async fn bucket(s3: &aws_sdk_s3::Client, name: &str) {
    s3.create_bucket().bucket(name).send().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_skip_multipart_and_tamper() {
    let Some(server) = S3Server::start() else { return };
    let s3 = client(&server.settings(server.port, SK)).await;
    bucket(&s3, "models").await;
    let work = tempfile::tempdir().unwrap();
    let model = model_dir(work.path(), "model", 12, 7);
    let uri = S3Uri::parse("s3://models/qa/v1/").unwrap();
    let none = |_: u64, _: u64| {};
    // Multipart above 5 MB; the re-push is skipped.
    let first = push(&s3, &model, &uri, 5 * 1024 * 1024, &none).await.unwrap();
    assert!(
        matches!(first, Pushed::Uploaded { multipart: true, .. }),
        "{first:?}"
    );
    assert_eq!(
        push(&s3, &model, &uri, 5 * 1024 * 1024, &none).await.unwrap(),
        Pushed::Unchanged
    );
    // Pull, then pull again (nothing to do), and the model loads.
    let target = work.path().join("pulled");
    let seen = Arc::new(AtomicU64::new(0));
    let seen_in = seen.clone();
    let got = pull(&s3, &uri, &target, &move |n, _| {
        seen_in.store(n, Ordering::SeqCst)
    })
    .await
    .unwrap();
    assert!(matches!(got, Pulled::Installed { .. }));
    assert!(seen.load(Ordering::SeqCst) > 0, "progress was reported");
    same_files(&model, &target);
    assert_eq!(pull(&s3, &uri, &target, &none).await.unwrap(), Pulled::UpToDate);
    squint_core::ModelFiles::from_dir(&target).unwrap();
    // A changed local file is repaired by the next pull.
    std::fs::write(target.join("config.json"), b"{}").unwrap();
    assert!(matches!(
        pull(&s3, &uri, &target, &none).await.unwrap(),
        Pulled::Installed { .. }
    ));
    same_files(&model, &target);
    // Tampered tarball in the bucket: refused by the manifest, the local model untouched.
    let key = uri.key(TARBALL);
    let mut tampered = s3
        .get_object()
        .bucket("models")
        .key(&key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes()
        .to_vec();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x55;
    s3.put_object()
        .bucket("models")
        .key(&key)
        .body(ByteStream::from(tampered))
        .send()
        .await
        .unwrap();
    let fresh = work.path().join("fresh");
    let e = pull(&s3, &uri, &fresh, &none).await.unwrap_err();
    assert!(matches!(e, ArtifactError::Verify(_)), "{e}");
    assert!(
        e.to_string().contains("model.tar.gz") && e.to_string().contains("sha256"),
        "{e}"
    );
    assert!(!fresh.exists(), "nothing half-made where serve would look");
    same_files(&model, &target);
    // A small push is a single PUT.
    let small = S3Uri::parse("s3://models/qa/small").unwrap();
    let tiny = model_dir(work.path(), "small", 1, 3);
    let pushed = push(&s3, &tiny, &small, 64 * 1024 * 1024, &none).await.unwrap();
    assert!(
        matches!(pushed, Pushed::Uploaded { multipart: false, .. }),
        "{pushed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_and_missing_objects_are_named() {
    let Some(server) = S3Server::start() else { return };
    let good = client(&server.settings(server.port, SK)).await;
    bucket(&good, "models").await;
    let work = tempfile::tempdir().unwrap();
    let model = model_dir(work.path(), "model", 1, 1);
    let uri = S3Uri::parse("s3://models/qa").unwrap();
    let bad = client(&server.settings(server.port, "wrong-secret")).await;
    let e = push(&bad, &model, &uri, 64 << 20, &|_, _| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("credentials") && e.contains("s3://models/qa/"), "{e}");
    let e = pull(&good, &uri, &work.path().join("x"), &|_, _| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("push the model first"), "{e}");
    let e = push(&good, &work.path().join("nope"), &uri, 64 << 20, &|_, _| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope"), "{e}");
    assert!(S3Uri::parse("http://x/y").is_err() && S3Uri::parse("s3:///y").is_err());
}

/// Forwards loopback connections to `upstream`; once `limit` response bytes have passed,
/// kills the S3 server process and cuts every connection.
fn killing_proxy(upstream: u16, limit: u64, server: Arc<Mutex<Child>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sent = Arc::new(AtomicU64::new(0));
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
                continue;
            };
            let (mut client_r, mut up_w) = (client.try_clone().unwrap(), up.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut client_r, &mut up_w);
            });
            let (sent, server) = (sent.clone(), server.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                loop {
                    let n = match up.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if sent.fetch_add(n as u64, Ordering::SeqCst) + n as u64 > limit {
                        if let Ok(mut s) = server.lock() {
                            let _ = s.kill();
                        }
                        let _ = client.shutdown(std::net::Shutdown::Both);
                        break;
                    }
                    if client.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_mid_download_leaves_the_old_model() {
    let Some(server) = S3Server::start() else { return };
    let direct = client(&server.settings(server.port, SK)).await;
    bucket(&direct, "models").await;
    let work = tempfile::tempdir().unwrap();
    let uri = S3Uri::parse("s3://models/qa").unwrap();
    let old = model_dir(work.path(), "old", 1, 11);
    push(&direct, &old, &uri, 64 << 20, &|_, _| {}).await.unwrap();
    let target = work.path().join("serving");
    pull(&direct, &uri, &target, &|_, _| {}).await.unwrap();
    // A new, bigger version; the server dies 2 MB into its download.
    let new = model_dir(work.path(), "new", 8, 12);
    push(&direct, &new, &uri, 64 << 20, &|_, _| {}).await.unwrap();
    let proxy = killing_proxy(server.port, 2 * 1024 * 1024, server.child.clone());
    let through = client(&server.settings(proxy, SK)).await;
    let e = pull(&through, &uri, &target, &|_, _| {}).await.unwrap_err();
    assert!(matches!(e, ArtifactError::Remote { .. }), "{e}");
    same_files(&old, &target);
    squint_core::ModelFiles::from_dir(&target).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".squint-pull"))
        .collect();
    assert!(leftovers.is_empty(), "temporary download left behind");
}
