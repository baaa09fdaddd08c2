//! `squint web` over a real socket: the page's files and the model's with their content types,
//! ETags and 304s (what keeps the browser's copy, and Chromium's compiled WebAssembly, on
//! reload), and refusals of paths outside the page and files the model does not offer.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use common::{free_port, wait_port};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A response's status, headers (lower-case names) and body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One GET with `Connection: close` and extra request headers.
fn get(port: u16, path: &str, extra: &[(&str, &str)]) -> Reply {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in extra {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serves_page_and_model_with_etags_and_refuses_other_paths() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("www");
    std::fs::create_dir_all(root.join("pkg")).unwrap();
    std::fs::write(root.join("index.html"), "<!doctype html><title>squint</title>").unwrap();
    std::fs::write(root.join("pkg/module.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/minilm-l6-squad-int8");
    let port = free_port();
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_squint"))
            .args(["web", "--bind", &format!("127.0.0.1:{port}"), "--root"])
            .arg(&root)
            .arg("--model")
            .arg(&model)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(port);

    let page = get(port, "/", &[]);
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    let tag = page.header("etag").unwrap().to_string();
    assert!(tag.starts_with("W/\""), "{tag}");
    // The browser's revalidation: 304 with no body while the file is unchanged.
    let again = get(port, "/index.html", &[("If-None-Match", &tag)]);
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(tag.as_str()));
    assert_eq!(
        get(port, "/index.html", &[("If-None-Match", "W/\"0-0\"")]).status,
        200
    );
    // Rewritten (other size): a new tag and the new bytes.
    std::fs::write(
        root.join("index.html"),
        "<!doctype html><title>squint, edited</title>",
    )
    .unwrap();
    let edited = get(port, "/index.html", &[("If-None-Match", &tag)]);
    assert_eq!(edited.status, 200);
    assert_ne!(edited.header("etag"), Some(tag.as_str()));
    assert!(String::from_utf8_lossy(&edited.body).contains("edited"));

    let wasm = get(port, "/pkg/module.wasm", &[]);
    assert_eq!(
        (wasm.status, wasm.header("content-type")),
        (200, Some("application/wasm"))
    );

    let index: serde_json::Value =
        serde_json::from_slice(&get(port, "/models/index.json", &[]).body).unwrap();
    assert_eq!(index[0]["id"], "int8-static");
    let manifest = get(port, "/models/int8-static/manifest.json", &[]);
    assert_eq!(manifest.status, 200);
    assert_eq!(manifest.body, std::fs::read(model.join("manifest.json")).unwrap());
    let tag = manifest.header("etag").unwrap().to_string();
    assert_eq!(
        get(
            port,
            "/models/int8-static/manifest.json",
            &[("If-None-Match", &tag)]
        )
        .status,
        304
    );

    assert_eq!(get(port, "/models/int8-static/vocab.txt", &[]).status, 404);
    assert_eq!(get(port, "/models/fp32/config.json", &[]).status, 404);
    assert_eq!(get(port, "/missing.js", &[]).status, 404);
    assert_eq!(get(port, "/pkg/../index.html", &[]).status, 400);
}
