//! Model directories in S3, the way SageMaker wants them: `PREFIX/model.tar.gz` (its
//! `ModelDataUrl`) and `PREFIX/manifest.json` (every file's size and sha256, plus the tarball's).
//! Push skips the upload when the remote manifest already matches; pull verifies every byte and
//! swaps the new directory into place only when it is whole, so an interrupted or corrupted
//! transfer never leaves a half model where `serve` would load it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use sha2::{Digest, Sha256};
use squint_core::manifest::{sha256_hex, FileEntry, Manifest, MANIFEST_FILE};

/// The tarball's name, in S3 and in the manifest.
pub const TARBALL: &str = "model.tar.gz";

/// Everything that can go wrong moving a model, with the object or file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("{0}")]
    Uri(String),
    #[error("{path}: {message}")]
    Local { path: String, message: String },
    #[error("s3://{bucket}/{key}: {message}")]
    Remote {
        bucket: String,
        key: String,
        message: String,
    },
    #[error("{0}")]
    Verify(String),
}

type Result<T> = std::result::Result<T, ArtifactError>;

fn local(path: &Path, e: impl std::fmt::Display) -> ArtifactError {
    ArtifactError::Local {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// `s3://bucket/prefix/`: where one model directory lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Uri {
    pub bucket: String,
    /// Key prefix without a trailing slash (may be empty).
    pub prefix: String,
}

impl S3Uri {
    pub fn parse(uri: &str) -> Result<S3Uri> {
        let rest = uri
            .strip_prefix("s3://")
            .ok_or_else(|| ArtifactError::Uri(format!("{uri:?} is not an s3:// URI")))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(ArtifactError::Uri(format!("{uri:?} has no bucket")));
        }
        Ok(S3Uri {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        })
    }

    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }
}

/// How to reach S3: the standard AWS chain (environment, profile, instance role) unless
/// credentials are given; `endpoint_url` for S3-compatible stores (path-style addressing).
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    /// (access key id, secret access key).
    pub credentials: Option<(String, String)>,
}

/// An S3 client for `settings`. Checksums only when required: S3-compatible stores often do
/// not understand the aws-chunked trailers newer SDKs add by default.
pub async fn client(settings: &S3Settings) -> Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some((id, secret)) = &settings.credentials {
        loader = loader.credentials_provider(Credentials::new(id, secret, None, None, "squint"));
    }
    let shared = loader.load().await;
    let mut config = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(settings.endpoint_url.is_some())
        .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired);
    if shared.region().is_none() {
        config = config.region(Region::new("us-east-1"));
    }
    Client::from_conf(config.build())
}

/// Explains an SDK error; names bad credentials plainly.
fn remote<E, R>(uri: &S3Uri, key: &str, e: aws_sdk_s3::error::SdkError<E, R>) -> ArtifactError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = e.code().unwrap_or("").to_string();
    let message = match code.as_str() {
        "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AccessDenied" | "InvalidToken" | "ExpiredToken" => format!(
            "S3 refused the request ({code}): check the AWS credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_PROFILE) and their permissions"
        ),
        "NoSuchBucket" => format!("the bucket {} does not exist", uri.bucket),
        "NoSuchKey" => "no such object".to_string(),
        _ => DisplayErrorContext(&e).to_string(),
    };
    ArtifactError::Remote {
        bucket: uri.bucket.clone(),
        key: key.to_string(),
        message,
    }
}

/// The model files of `dir` (regular files; its own manifest.json left out), sorted.
fn model_files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| local(dir, e))? {
        let entry = entry.map_err(|e| local(dir, e))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if name == MANIFEST_FILE || name.starts_with('.') || !path.is_file() {
            continue;
        }
        files.push((name, std::fs::read(&path).map_err(|e| local(&path, e))?));
    }
    if !files.iter().any(|(n, _)| n == "config.json") {
        return Err(local(dir, "is not a model directory (no config.json)"));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

/// A gzipped tar of `files`, byte-for-byte the same for the same files (no times, owners).
fn tarball(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    let gz = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        tar.append_data(&mut header, name, bytes.as_slice())
            .map_err(|e| ArtifactError::Verify(format!("packing {name}: {e}")))?;
    }
    let gz = tar
        .into_inner()
        .map_err(|e| ArtifactError::Verify(format!("packing: {e}")))?;
    gz.finish()
        .map_err(|e| ArtifactError::Verify(format!("packing: {e}")))
}

/// The manifest pushed beside the tarball: every model file, plus the tarball itself.
fn remote_manifest(files: &[(String, Vec<u8>)], tar: &[u8]) -> Manifest {
    let mut manifest = Manifest::of(files.iter().map(|(n, b)| (n.as_str(), b.as_slice())));
    manifest.files.push(FileEntry {
        path: TARBALL.into(),
        size: tar.len() as u64,
        sha256: sha256_hex(tar),
    });
    manifest.files.sort_by(|a, b| a.path.cmp(&b.path));
    manifest
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    Uploaded { bytes: u64, multipart: bool },
    Unchanged,
}

/// Uploads `dir` as `model.tar.gz` + `manifest.json` under `uri`, multipart when the tarball is
/// larger than `multipart_threshold` (parts of that size); skipped when the remote manifest
/// equals ours. `progress(sent, total)` follows the bytes.
pub async fn push(
    s3: &Client,
    dir: &Path,
    uri: &S3Uri,
    multipart_threshold: usize,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<Pushed> {
    let files = model_files(dir)?;
    let tar = tarball(&files)?;
    let manifest = remote_manifest(&files, &tar);
    let manifest_key = uri.key(MANIFEST_FILE);
    if let Some(current) = fetch_manifest(s3, uri).await? {
        if current == manifest {
            return Ok(Pushed::Unchanged);
        }
    }
    let key = uri.key(TARBALL);
    let total = tar.len() as u64;
    let part_size = multipart_threshold.max(5 * 1024 * 1024);
    let multipart = tar.len() > multipart_threshold;
    if multipart {
        let created = s3
            .create_multipart_upload()
            .bucket(&uri.bucket)
            .key(&key)
            .content_type("application/gzip")
            .send()
            .await
            .map_err(|e| remote(uri, &key, e))?;
        let upload_id = created.upload_id().unwrap_or_default().to_string();
        let mut parts = Vec::new();
        let mut sent = 0u64;
        for (i, chunk) in tar.chunks(part_size).enumerate() {
            let number = i as i32 + 1;
            let part = s3
                .upload_part()
                .bucket(&uri.bucket)
                .key(&key)
                .upload_id(&upload_id)
                .part_number(number)
                .body(ByteStream::from(chunk.to_vec()))
                .send()
                .await;
            let part = match part {
                Ok(p) => p,
                Err(e) => {
                    let _ = s3
                        .abort_multipart_upload()
                        .bucket(&uri.bucket)
                        .key(&key)
                        .upload_id(&upload_id)
                        .send()
                        .await;
                    return Err(remote(uri, &key, e));
                }
            };
            parts.push(
                CompletedPart::builder()
                    .set_e_tag(part.e_tag().map(str::to_string))
                    .part_number(number)
                    .build(),
            );
            sent += chunk.len() as u64;
            progress(sent, total);
        }
        s3.complete_multipart_upload()
            .bucket(&uri.bucket)
            .key(&key)
            .upload_id(&upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(|e| remote(uri, &key, e))?;
    } else {
        s3.put_object()
            .bucket(&uri.bucket)
            .key(&key)
            .content_type("application/gzip")
            .body(ByteStream::from(tar))
            .send()
            .await
            .map_err(|e| remote(uri, &key, e))?;
        progress(total, total);
    }
    // The manifest goes last: a reader that sees it finds the tarball it describes.
    s3.put_object()
        .bucket(&uri.bucket)
        .key(&manifest_key)
        .content_type("application/json")
        .body(ByteStream::from(manifest.to_json().into_bytes()))
        .send()
        .await
        .map_err(|e| remote(uri, &manifest_key, e))?;
    Ok(Pushed::Uploaded {
        bytes: total,
        multipart,
    })
}

/// The remote manifest, or `None` when there is none yet.
pub async fn fetch_manifest(s3: &Client, uri: &S3Uri) -> Result<Option<Manifest>> {
    let key = uri.key(MANIFEST_FILE);
    let object = match s3.get_object().bucket(&uri.bucket).key(&key).send().await {
        Ok(o) => o,
        Err(e) if e.code() == Some("NoSuchKey") => return Ok(None),
        Err(e) => return Err(remote(uri, &key, e)),
    };
    let bytes = object
        .body
        .collect()
        .await
        .map_err(|e| ArtifactError::Remote {
            bucket: uri.bucket.clone(),
            key: key.clone(),
            message: format!("download interrupted: {e}"),
        })?
        .into_bytes();
    let manifest = Manifest::from_json(&bytes)
        .map_err(|e| ArtifactError::Verify(format!("s3://{}/{key}: {e}", uri.bucket)))?;
    if manifest.entry(TARBALL).is_none() {
        return Err(ArtifactError::Verify(format!(
            "s3://{}/{key} does not list {TARBALL}",
            uri.bucket
        )));
    }
    Ok(Some(manifest))
}

/// What a pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pulled {
    Installed { bytes: u64 },
    UpToDate,
}

/// Downloads `uri` into `dir`: the tarball is checked against the manifest, unpacked beside
/// `dir`, every file checked, and only then swapped in. Leftovers of an interrupted pull are
/// removed first; on any error the previous `dir` is untouched.
pub async fn pull(
    s3: &Client,
    uri: &S3Uri,
    dir: &Path,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<Pulled> {
    let manifest = fetch_manifest(s3, uri).await?.ok_or_else(|| {
        ArtifactError::Verify(format!(
            "s3://{}/{} does not exist: push the model first",
            uri.bucket,
            uri.key(MANIFEST_FILE)
        ))
    })?;
    if local_matches(dir, &manifest) {
        return Ok(Pulled::UpToDate);
    }
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    std::fs::create_dir_all(&parent).map_err(|e| local(&parent, e))?;
    let name = dir
        .file_name()
        .ok_or_else(|| local(dir, "needs a directory name"))?
        .to_string_lossy()
        .to_string();
    clean_leftovers(&parent, &name);
    let work = tempfile::Builder::new()
        .prefix(&format!(".squint-pull-{name}-"))
        .tempdir_in(&parent)
        .map_err(|e| local(&parent, e))?;
    let entry = manifest
        .entry(TARBALL)
        .ok_or_else(|| ArtifactError::Verify(format!("the manifest does not list {TARBALL}")))?
        .clone();
    let tar_path = work.path().join(TARBALL);
    download(s3, uri, &tar_path, entry.size, progress).await?;
    verify_file(&tar_path, &entry)?;
    let staged = work.path().join("model");
    unpack(&tar_path, &staged, &manifest)?;
    for file in manifest.files.iter().filter(|f| f.path != TARBALL) {
        verify_file(&staged.join(&file.path), file)?;
    }
    // Keep the manifest beside the model, so INT8 directories load with their check.
    let model_manifest = Manifest {
        files: manifest
            .files
            .iter()
            .filter(|f| f.path != TARBALL)
            .cloned()
            .collect(),
        ..manifest.clone()
    };
    if !staged.join(MANIFEST_FILE).exists() {
        std::fs::write(staged.join(MANIFEST_FILE), model_manifest.to_json())
            .map_err(|e| local(&staged, e))?;
    }
    swap_in(&staged, dir, work.path())?;
    Ok(Pulled::Installed { bytes: entry.size })
}

/// Whether `dir` already holds exactly the manifest's model files.
fn local_matches(dir: &Path, manifest: &Manifest) -> bool {
    manifest
        .files
        .iter()
        .filter(|f| f.path != TARBALL)
        .all(|f| verify_file(&dir.join(&f.path), f).is_ok())
}

/// Removes `.squint-pull-NAME-*` directories an interrupted pull left behind.
fn clean_leftovers(parent: &Path, name: &str) {
    let prefix = format!(".squint-pull-{name}-");
    if let Ok(entries) = std::fs::read_dir(parent) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

async fn download(
    s3: &Client,
    uri: &S3Uri,
    path: &Path,
    expected: u64,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<()> {
    let key = uri.key(TARBALL);
    let mut object = s3
        .get_object()
        .bucket(&uri.bucket)
        .key(&key)
        .send()
        .await
        .map_err(|e| remote(uri, &key, e))?;
    let mut file = std::fs::File::create(path).map_err(|e| local(path, e))?;
    let mut got = 0u64;
    loop {
        let chunk = object.body.try_next().await.map_err(|e| ArtifactError::Remote {
            bucket: uri.bucket.clone(),
            key: key.clone(),
            message: format!("download interrupted after {got} of {expected} bytes: {e}"),
        })?;
        let Some(chunk) = chunk else { break };
        file.write_all(&chunk).map_err(|e| local(path, e))?;
        got += chunk.len() as u64;
        progress(got, expected);
    }
    file.sync_all().map_err(|e| local(path, e))
}

/// Size first (names truncation), then sha256 (names tampering).
fn verify_file(path: &Path, entry: &FileEntry) -> Result<()> {
    let mut file = std::fs::File::open(path).map_err(|e| local(path, e))?;
    let size = file.metadata().map_err(|e| local(path, e))?.len();
    if size != entry.size {
        return Err(ArtifactError::Verify(format!(
            "{}: {size} bytes, the manifest says {} (truncated or replaced)",
            entry.path, entry.size
        )));
    }
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| local(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let digest: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    if digest != entry.sha256 {
        return Err(ArtifactError::Verify(format!(
            "{}: sha256 {digest} differs from the manifest's {} (corrupted or tampered)",
            entry.path, entry.sha256
        )));
    }
    Ok(())
}

/// Unpacks the tarball's regular files into `to`; only names the manifest lists, no paths.
fn unpack(tar_path: &Path, to: &Path, manifest: &Manifest) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| local(to, e))?;
    let file = std::fs::File::open(tar_path).map_err(|e| local(tar_path, e))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let bad = |e: std::io::Error| ArtifactError::Verify(format!("{TARBALL}: {e}"));
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let name = entry
            .path()
            .map_err(bad)?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        if name.is_empty() || entry.header().entry_type().is_dir() {
            continue;
        }
        let listed = manifest.entry(&name).is_some() || name == MANIFEST_FILE;
        if !entry.header().entry_type().is_file() || name.contains('/') || !listed {
            return Err(ArtifactError::Verify(format!(
                "{TARBALL}: unexpected entry {name:?} (not a file the manifest lists)"
            )));
        }
        let target = to.join(&name);
        let mut out = std::fs::File::create(&target).map_err(|e| local(&target, e))?;
        std::io::copy(&mut entry, &mut out).map_err(bad)?;
    }
    Ok(())
}

/// Moves `staged` to `dir`, replacing what was there; on failure the old directory is restored.
fn swap_in(staged: &Path, dir: &Path, work: &Path) -> Result<()> {
    if !dir.exists() {
        return std::fs::rename(staged, dir).map_err(|e| local(dir, e));
    }
    let old: PathBuf = work.join("previous");
    std::fs::rename(dir, &old).map_err(|e| local(dir, e))?;
    if let Err(e) = std::fs::rename(staged, dir) {
        let _ = std::fs::rename(&old, dir);
        return Err(local(dir, e));
    }
    Ok(())
}

/// Downloads the model at `uri` into `dir` (the standard AWS chain; `AWS_ENDPOINT_URL_S3` for
/// S3-compatible stores).
pub async fn pull_model(uri: &str, dir: &Path) -> Result<Pulled> {
    let settings = S3Settings {
        endpoint_url: std::env::var("AWS_ENDPOINT_URL_S3").ok(),
        ..S3Settings::default()
    };
    let uri = S3Uri::parse(uri)?;
    let s3 = client(&settings).await;
    tracing::info!(bucket = %uri.bucket, prefix = %uri.prefix, dir = %dir.display(), "pulling the model from S3");
    pull(&s3, &uri, dir, &|_, _| {}).await
}
