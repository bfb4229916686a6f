//! A stand-in for the Hugging Face Hub on 127.0.0.1, a VGG16-shaped weight file, and a way
//! to run `xtask fetch-weights` against them.
//!
//! The server speaks the Hub's protocol as hf-hub 0.5 uses it:
//! - `GET /{owner}/{name}/resolve/{revision}/{file}` with `Range: bytes=0-0` for the
//!   metadata (on a client that does not follow redirects), then with `Range: bytes=N-`
//!   for the body (on one that does);
//! - for a Git-LFS file, like the real Hub: `302` to a CDN URL (absolute, another path on
//!   this server) with `X-Repo-Commit`, `X-Linked-Etag: "<sha256>"`, `X-Linked-Size` and a
//!   git `ETag`; the CDN answers `206` with `Content-Range: bytes a-b/total`;
//! - or (`redirect = false`) the bytes straight from `/resolve/` with `ETag: "<sha256>"`;
//! - `404` with `X-Error-Code: EntryNotFound` for anything it does not hold.
//!
//! It can cut a body transfer halfway (announcing the full `Content-Length`, or with no
//! length at all, close-delimited), and logs every request.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest, Sha256};

pub const REPO: &str = "timm/vgg16.tv_in1k";
pub const FILE: &str = "model.safetensors";
pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// f16 bits of 1.0.
const F16_ONE: [u8; 2] = 0x3C00u16.to_le_bytes();

/// A tensor of the test file: name, dtype, shape, raw little-endian bytes.
pub type RawTensor = (String, safetensors::Dtype, Vec<usize>, Vec<u8>);

/// timm's `vgg16.tv_in1k` layout with the exact shapes the import expects: conv weights in
/// f16 (all 1.0; 29 MB in all), biases in f32 (convolution i has bias i + 1), plus two
/// classifier tensors the import ignores. `edit` changes the list before serialising.
pub fn vgg16_bytes(edit: impl FnOnce(&mut Vec<RawTensor>)) -> Vec<u8> {
    let mut tensors: Vec<RawTensor> = Vec::new();
    for (i, (name, _, shape)) in osips_models::vgg::vgg16_mapping().into_iter().enumerate() {
        let n: usize = shape.iter().product();
        if name.ends_with(".weight") {
            tensors.push((name, safetensors::Dtype::F16, shape, F16_ONE.repeat(n)));
        } else {
            let value = (i / 2 + 1) as f32;
            tensors.push((
                name,
                safetensors::Dtype::F32,
                shape,
                value.to_le_bytes().repeat(n),
            ));
        }
    }
    for (name, n) in [("pre_logits.fc2.bias", 4096), ("head.fc.bias", 1000)] {
        tensors.push((
            name.into(),
            safetensors::Dtype::F32,
            vec![n],
            vec![0; 4 * n],
        ));
    }
    edit(&mut tensors);
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), data)
                .expect("consistent test tensor");
            (name.clone(), view)
        })
        .collect();
    safetensors::serialize(views, None).expect("serialise the test file")
}

/// The unedited file, built once per test binary.
pub fn good_file() -> Arc<Vec<u8>> {
    static FILE_BYTES: OnceLock<Arc<Vec<u8>>> = OnceLock::new();
    FILE_BYTES
        .get_or_init(|| Arc::new(vgg16_bytes(|_| {})))
        .clone()
}

/// One file the stand-in Hub serves.
#[derive(Clone)]
pub struct HubFile {
    pub data: Arc<Vec<u8>>,
    /// What `X-Linked-Etag` / `ETag` announce: the SHA-256 of `data`, unless a test lies.
    pub etag: String,
}

impl HubFile {
    pub fn new(data: Arc<Vec<u8>>) -> Self {
        let etag = sha256_hex(&data);
        HubFile { data, etag }
    }
}

#[derive(Default)]
struct State {
    /// `owner/name/file` → file.
    files: HashMap<String, HubFile>,
    /// `METHOD path [range]` of every request, in order.
    log: Vec<String>,
    /// Body transfers still to cut halfway.
    cuts_left: usize,
    /// Cut them close-delimited (no Content-Length) rather than short of the announced length.
    close_delimited: bool,
    /// Answer `/resolve/` with a redirect to `/cdn/`, like the Hub for LFS files.
    redirect: bool,
}

pub struct LocalHub {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl LocalHub {
    /// Serve `files` (`(repo, file, HubFile)`) on an ephemeral port of 127.0.0.1.
    pub fn start(files: Vec<(&str, &str, HubFile)>) -> LocalHub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let state = Arc::new(Mutex::new(State {
            files: files
                .into_iter()
                .map(|(repo, file, f)| (format!("{repo}/{file}"), f))
                .collect(),
            redirect: true,
            ..State::default()
        }));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || handle(stream, addr, &state));
            }
        });
        LocalHub { addr, state }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_redirect(&self, redirect: bool) {
        self.lock().redirect = redirect;
    }

    /// Cut the next `n` body transfers halfway.
    pub fn cut_next(&self, n: usize, close_delimited: bool) {
        let mut state = self.lock();
        state.cuts_left = n;
        state.close_delimited = close_delimited;
    }

    pub fn requests(&self) -> Vec<String> {
        self.lock().log.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn handle(stream: TcpStream, addr: SocketAddr, state: &Mutex<State>) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let range = headers.get("range").cloned();
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    state.log.push(format!(
        "{method} {path} {}",
        range.as_deref().unwrap_or("-")
    ));
    let mut out = stream;
    let head = method == "HEAD";

    // /{owner}/{name}/resolve/{revision}/{file}
    let segments: Vec<&str> = path.trim_start_matches('/').splitn(5, '/').collect();
    if segments.len() == 5 && segments[2] == "resolve" {
        let key = format!("{}/{}/{}", segments[0], segments[1], segments[4]);
        let Some(file) = state.files.get(&key).cloned() else {
            drop(state);
            let body = b"Entry not found";
            let _ = write!(
                out,
                "HTTP/1.1 404 Not Found\r\nX-Error-Code: EntryNotFound\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = out.write_all(body);
            return;
        };
        if state.redirect {
            drop(state);
            let _ = write!(
                out,
                "HTTP/1.1 302 Found\r\nLocation: http://{addr}/cdn/{etag}\r\nX-Repo-Commit: {COMMIT}\r\n\
                 X-Linked-Etag: \"{etag}\"\r\nX-Linked-Size: {size}\r\nETag: \"{git}\"\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n",
                etag = file.etag,
                size = file.data.len(),
                git = &COMMIT[..40],
            );
            return;
        }
        serve_bytes(out, state, &file, range.as_deref(), head, true);
        return;
    }
    // /cdn/{etag}
    if let Some(etag) = path.strip_prefix("/cdn/") {
        if let Some(file) = state.files.values().find(|f| f.etag == etag).cloned() {
            serve_bytes(out, state, &file, range.as_deref(), head, false);
            return;
        }
    }
    drop(state);
    let _ =
        out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

fn serve_bytes(
    mut out: TcpStream,
    mut state: std::sync::MutexGuard<'_, State>,
    file: &HubFile,
    range: Option<&str>,
    head: bool,
    hub_headers: bool,
) {
    let total = file.data.len();
    let (start, end) = match range.and_then(|r| r.strip_prefix("bytes=")) {
        Some(spec) => {
            let (a, b) = spec.split_once('-').unwrap_or((spec, ""));
            let a: usize = a.parse().unwrap_or(0);
            let b: usize = b
                .parse()
                .map_or(total.saturating_sub(1), |b: usize| b.min(total - 1));
            if a >= total {
                drop(state);
                let _ = write!(
                    out,
                    "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{total}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                return;
            }
            (a, b)
        }
        None => (0, total - 1),
    };
    let body = &file.data[start..=end];
    let cut = !head && body.len() > 1 && state.cuts_left > 0;
    if cut {
        state.cuts_left -= 1;
    }
    let close_delimited = cut && state.close_delimited;
    drop(state);

    let mut header = if range.is_some() {
        format!("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{end}/{total}\r\n")
    } else {
        "HTTP/1.1 200 OK\r\n".to_string()
    };
    if hub_headers {
        header.push_str(&format!(
            "X-Repo-Commit: {COMMIT}\r\nETag: \"{}\"\r\n",
            file.etag
        ));
    }
    if !close_delimited {
        header.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    header.push_str("Accept-Ranges: bytes\r\nConnection: close\r\n\r\n");
    if out.write_all(header.as_bytes()).is_err() || head {
        return;
    }
    let send = if cut { &body[..body.len() / 2] } else { body };
    let _ = out.write_all(send);
    let _ = out.flush();
    if cut {
        let _ = out.shutdown(Shutdown::Both);
    }
}

/// A manifest for the stand-in Hub's file.
pub fn write_manifest(
    dir: &Path,
    file: &str,
    size: Option<usize>,
    sha256: Option<&str>,
) -> PathBuf {
    let mut text = format!(
        "[vgg16]\nrepo = \"{REPO}\"\nrevision = \"main\"\nfile = \"{file}\"\nlayout = \"vgg16\"\n"
    );
    if let Some(size) = size {
        text.push_str(&format!("size = {size}\n"));
    }
    if let Some(sha) = sha256 {
        text.push_str(&format!("sha256 = \"{sha}\"\n"));
    }
    let path = dir.join("weights.toml");
    std::fs::write(&path, text).expect("write the test manifest");
    path
}

/// Run `xtask fetch-weights ARGS` with `HF_HOME=hf_home`, `HF_ENDPOINT=endpoint`, no proxy,
/// no token, nothing else from the caller's Hugging Face environment.
pub fn fetch(hf_home: &Path, endpoint: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.arg("fetch-weights").args(args);
    for var in [
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "HF_TOKEN",
        "HF_HUB_OFFLINE",
        "OSIPS_VGG16_WEIGHTS",
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HF_HOME", hf_home)
        .env("HF_ENDPOINT", endpoint)
        .env("NO_PROXY", "127.0.0.1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run the xtask binary")
}

pub fn text(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Every file or symlink under `dir` (not directories).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_dir = std::fs::symlink_metadata(&path)
            .map(|m| m.is_dir())
            .unwrap_or(false);
        if is_dir {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Where the trainer looks: `<HF_HOME>/hub/models--timm--vgg16.tv_in1k/...`.
pub fn repo_dir(hf_home: &Path) -> PathBuf {
    hf_home.join("hub").join("models--timm--vgg16.tv_in1k")
}
