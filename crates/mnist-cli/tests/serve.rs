//! `mnist serve`: the JSON API answers like `mnist predict --json`, refuses
//! bad requests with a 4xx and a JSON error while it goes on serving, and
//! answers many requests at once.
#![allow(clippy::unwrap_used)] // Tests unwrap what they built themselves.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use mnist_e2e::{assert_error_line, png_declaring, stderr, write_synthetic};
use serde_json::Value;

/// A server on a free port of 127.0.0.1, stopped when dropped.
struct Served {
    child: Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        // The test's own child process.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(model: &Path, extra: &[&str]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mnist"))
        .args(["serve", "--port", "0", "--model"])
        .arg(model)
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .trim_end_matches('/')
        .to_string();
    Served { child, url }
}

/// A model trained on a small synthetic dataset, and the dataset.
fn trained(dir: &Path) -> PathBuf {
    let data = dir.join("d");
    write_synthetic(&data, 300, 60).unwrap();
    let model = dir.join("m.json");
    let o = Command::new(env!("CARGO_BIN_EXE_mnist"))
        .args([
            "train",
            "--quiet",
            "--epochs",
            "1",
            "--init",
            "zeros",
            "--data-dir",
        ])
        .arg(&data)
        .arg("--save")
        .arg(&model)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    model
}

/// A PNG of a bar, dark on light.
fn picture() -> Vec<u8> {
    let img = image::GrayImage::from_fn(60, 80, |x, y| {
        image::Luma([if (25..35).contains(&x) && (10..70).contains(&y) {
            0
        } else {
            255
        }])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    bytes.into_inner()
}

/// The status and JSON body of a request.
fn call(method: &str, url: &str, body: &[u8]) -> (u16, Value) {
    let request = ureq::request(method, url);
    let response = match request.send_bytes(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = response.status();
    let json: Value = serde_json::from_str(&response.into_string().unwrap()).unwrap();
    (status, json)
}

#[test]
fn the_api_answers_like_predict_and_bad_requests_get_a_json_4xx() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained(dir.path());
    let served = serve(&model, &[]);
    assert!(
        served.url.starts_with("http://127.0.0.1:"),
        "{}",
        served.url
    );
    let predict = format!("{}/predict", served.url);

    let pic = picture();
    let (status, answer) = call("POST", &predict, &pic);
    assert_eq!(status, 200, "{answer}");
    // The same entry as `mnist predict --json` gives for the same file.
    let file = dir.path().join("bar.png");
    std::fs::write(&file, &pic).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_mnist"))
        .args(["predict", "--json", "--model"])
        .arg(&model)
        .arg(&file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let printed: Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut entry = printed["predictions"][0].clone();
    entry["source"] = "upload".into();
    let mut without_pixels = answer.clone();
    let pixels = without_pixels
        .as_object_mut()
        .unwrap()
        .remove("pixels")
        .unwrap();
    assert_eq!(without_pixels, entry);
    assert_eq!(pixels.as_array().unwrap().len(), 784);
    assert!(pixels
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v.as_u64() > Some(200)));

    let too_big = vec![0u8; (8 << 20) + 1];
    let bomb = png_declaring(30_000, 30_000);
    let cases: [(&str, String, &[u8], u16, &str); 7] = [
        ("POST", predict.clone(), b"", 400, "the body is empty"),
        ("POST", predict.clone(), b"hello", 400, "not a PNG or JPEG image"),
        ("POST", predict.clone(), &too_big, 413, "larger than the limit of 8388608 bytes"),
        ("POST", predict.clone(), &bomb, 413, "the image is too large: 30000 x 30000 pixels, more than the limit of 16777216 pixels (4096 x 4096)"),
        ("GET", predict.clone(), b"", 405, "/predict takes POST, not GET"),
        ("DELETE", format!("{}/", served.url), b"", 405, "/ takes GET, not DELETE"),
        ("GET", format!("{}/nope", served.url), b"", 404, "no such page: /nope"),
    ];
    for (method, url, body, want, message) in cases {
        let (status, json) = call(method, &url, body);
        assert_eq!(status, want, "{method} {url}: {json}");
        let error = json["error"].as_str().unwrap_or_default();
        assert!(error.contains(message), "{method} {url}: {json}");
        // And the server goes on.
        assert_eq!(call("POST", &predict, &pic), (200, answer.clone()));
    }
    let blank = image::GrayImage::from_pixel(28, 28, image::Luma([255]));
    let mut bytes = std::io::Cursor::new(Vec::new());
    blank.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    let (status, json) = call("POST", &predict, bytes.get_ref());
    assert_eq!(
        (status, json["error"].as_str()),
        (400, Some("no ink found: the image is blank"))
    );

    let page = ureq::get(&served.url).call().unwrap();
    assert_eq!(page.content_type(), "text/html");
    assert!(page.into_string().unwrap().contains("<canvas id=\"pad\""));
    let (status, info) = call("GET", &format!("{}/model", served.url), b"");
    assert_eq!(status, 200);
    assert_eq!(info["output_kind"], "sigmoid");
    assert_eq!(info["classes"].as_array().unwrap().len(), 10);
}

#[test]
fn two_hundred_requests_at_once_are_all_answered() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(&trained(dir.path()), &[]);
    let predict = format!("{}/predict", served.url);
    let pic = picture();
    let threads: Vec<_> = (0..200)
        .map(|i| {
            let (predict, pic) = (predict.clone(), pic.clone());
            std::thread::spawn(move || {
                // Every fifth request is a bad one: refusals and answers mix.
                let body: &[u8] = if i % 5 == 0 { b"junk" } else { &pic };
                call("POST", &predict, body).0
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 160);
    assert_eq!(statuses.iter().filter(|&&s| s == 400).count(), 40);
}

#[test]
fn a_port_in_use_a_missing_model_and_a_bad_address_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained(dir.path());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let o = Command::new(env!("CARGO_BIN_EXE_mnist"))
        .args(["serve", "--port", &port, "--model"])
        .arg(&model)
        .output()
        .unwrap();
    assert_error_line(
        &o,
        &format!("--bind 127.0.0.1 --port {port}: cannot listen there: "),
    );
    let o = Command::new(env!("CARGO_BIN_EXE_mnist"))
        .args(["serve", "--model"])
        .arg(dir.path().join("absent.json"))
        .output()
        .unwrap();
    assert_error_line(&o, "absent.json: No such file or directory");
    let o = Command::new(env!("CARGO_BIN_EXE_mnist"))
        .args(["serve", "--bind", "localhost", "--model"])
        .arg(&model)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("invalid value 'localhost' for '--bind <ADDRESS>'"),
        "{}",
        stderr(&o)
    );
}
