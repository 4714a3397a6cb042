//! `mnist serve` in a real browser: headless Chromium, driven over
//! WebDriver by chromedriver (Debian's `chromium` and `chromium-driver`),
//! draws digits as strokes on the page's canvas and reads the prediction
//! from the page. The W3C WebDriver endpoints are called as plain HTTP with
//! JSON (ureq, already a dependency of the workspace) rather than through
//! a client crate, whose async stack would add about 30 to 110 crates.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use base64::Engine as _;
use mnist_e2e::{mnist_binary, real_mnist_dir, stderr, workspace_root};
use serde_json::{json, Value};

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A child process of this test, ended when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The first of `names` found in the `PATH`.
fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// A WebDriver session on chromedriver.
struct Session {
    base: String,
    id: String,
}

impl Session {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.id);
        send(method, &url, body)
    }

    fn script(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    fn element(&self, css: &str) -> String {
        let found = self.call(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        );
        found[ELEMENT].as_str().unwrap().to_string()
    }

    /// Draws `strokes` (points relative to the centre of `element`, in CSS
    /// pixels) with a pointer of `kind` (`mouse` or `touch`), each segment
    /// in small steps so that the page sees the pointer move.
    fn draw(&self, element: &str, kind: &str, strokes: &[&[(i64, i64)]]) {
        let origin = json!({ ELEMENT: element });
        let mut actions = Vec::new();
        for stroke in strokes {
            let (x0, y0) = stroke[0];
            actions.push(
                json!({"type": "pointerMove", "origin": origin, "x": x0, "y": y0, "duration": 0}),
            );
            actions.push(json!({"type": "pointerDown", "button": 0}));
            for pair in stroke.windows(2) {
                let ((xa, ya), (xb, yb)) = (pair[0], pair[1]);
                for step in 1..=12 {
                    let x = xa + (xb - xa) * step / 12;
                    let y = ya + (yb - ya) * step / 12;
                    actions.push(json!({"type": "pointerMove", "origin": origin, "x": x, "y": y, "duration": 15}));
                }
            }
            actions.push(json!({"type": "pointerUp", "button": 0}));
        }
        let body = json!({"actions": [{
            "type": "pointer",
            "id": format!("{kind}-pointer"),
            "parameters": {"pointerType": kind},
            "actions": actions,
        }]});
        self.call("POST", "/actions", Some(body));
        self.call("DELETE", "/actions", None);
    }

    /// What the page shows once the prediction of the last stroke is in:
    /// the predicted class, the highlighted bar's class, the number of
    /// bars and the ink in the 28 x 28 image. Polls the page (the
    /// prediction arrives asynchronously), failing after about 30 s.
    fn shown(&self) -> Value {
        let script = "const c = document.getElementById('digitized').getContext('2d');\
            const ink = c.getImageData(0, 0, 28, 28).data.reduce((s, v, i) => i % 4 == 0 ? s + v : s, 0);\
            const top = document.querySelector('.bar.top');\
            return { done: !busy && !dirty && document.getElementById('status').dataset.state == 'ready',\
                     predicted: document.getElementById('predicted').textContent,\
                     top: top ? top.id : null, bars: document.querySelectorAll('.bar').length, ink: ink,\
                     status: document.getElementById('status').textContent };";
        let mut last = Value::Null;
        for _ in 0..300 {
            last = self.script(script);
            if last["done"] == true && last["predicted"] != "" {
                return last;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("the page showed no prediction: {last}");
    }
}

fn send(method: &str, url: &str, body: Option<Value>) -> Value {
    let request = ureq::request(method, url);
    let result = match body {
        Some(body) => request
            .set("Content-Type", "application/json")
            .send_string(&body.to_string()),
        None => request.call(),
    };
    match result {
        Ok(r) => serde_json::from_str::<Value>(&r.into_string().unwrap()).unwrap()["value"].clone(),
        Err(ureq::Error::Status(code, r)) => {
            panic!(
                "{method} {url}: {code} {}",
                r.into_string().unwrap_or_default()
            )
        }
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

/// `mnist serve` on a free port; its URL.
fn serve(model: &Path) -> (Running, String) {
    let mut child = Command::new(mnist_binary().unwrap())
        .args(["serve", "--port", "0", "--model"])
        .arg(model)
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
        .to_string();
    (Running(child), url)
}

/// chromedriver on a free port, once it says it is ready; its URL. Its
/// profile and Chromium's scratch files go under `tmp`, removed with it.
fn chromedriver(driver: &Path, tmp: &Path) -> (Running, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Ended by `Running`'s drop, whichever way this function leaves.
    let running = Running(
        Command::new(driver)
            .arg(format!("--port={port}"))
            .env("TMPDIR", tmp)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if let Ok(r) = ureq::get(&format!("{base}/status")).call() {
            if serde_json::from_str::<Value>(&r.into_string().unwrap_or_default())
                .is_ok_and(|v| v["value"]["ready"] == true)
            {
                return (running, base);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("chromedriver on port {port} did not become ready");
}

/// A digit drawn with the mouse and one drawn with a finger are read by
/// the page as the model reads them: a 7 and a 1; so is a picture of a 7
/// dropped on the page. With `MNIST_SCREENSHOT`
/// set to a path, the page with the 7 is saved there as PNG.
#[test]
#[ignore = "trains on the MNIST data: `cargo xtask ci` runs it"]
fn a_digit_drawn_in_chromium_is_predicted_on_the_page() {
    let data = real_mnist_dir();
    let (Some(driver), Some(browser)) = (
        on_path(&["chromedriver"]),
        on_path(&["chromium", "chromium-browser", "google-chrome"]),
    ) else {
        let why = "chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("the browser test cannot run in CI: {why}");
        }
        eprintln!("NOT CHECKED (this test passes without checking): {why}");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("mlp.json");
    let o = Command::new(mnist_binary().unwrap())
        .args([
            "train",
            "--quiet",
            "--preset",
            "mlp",
            "--epochs",
            "2",
            "--data-dir",
        ])
        .arg(&data)
        .arg("--save")
        .arg(&model)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let (_server, url) = serve(&model);
    let (_driver, base) = chromedriver(&driver, dir.path());
    let created = send(
        "POST",
        &format!("{base}/session"),
        Some(json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": browser,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=900,720"],
            },
        }}})),
    );
    let session = Session {
        base,
        id: created["sessionId"].as_str().unwrap().to_string(),
    };
    session.call("POST", "/url", Some(json!({ "url": url })));
    let pad = session.element("#pad");

    // A 7 with the mouse: the bar, then the stem.
    session.draw(&pad, "mouse", &[&[(-70, -85), (70, -85), (-10, 95)]]);
    let shown = session.shown();
    assert_eq!(shown["predicted"], "7", "{shown}");
    assert_eq!(shown["top"], "bar-7", "{shown}");
    assert_eq!(shown["bars"], 10, "{shown}");
    assert!(shown["ink"].as_u64() > Some(10_000), "{shown}");
    let png = base64::engine::general_purpose::STANDARD
        .decode(session.call("GET", "/screenshot", None).as_str().unwrap())
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    std::fs::write(workspace_root().join("target/serve-page.png"), &png).unwrap();
    if let Some(path) = std::env::var_os("MNIST_SCREENSHOT") {
        std::fs::write(path, &png).unwrap();
    }

    // Cleared, then a 1 with a finger.
    let clear = session.element("#clear");
    session.call("POST", &format!("/element/{clear}/click"), Some(json!({})));
    let cleared = session.script("return document.getElementById('predicted').textContent;");
    assert_eq!(cleared, "");
    session.draw(&pad, "touch", &[&[(5, -95), (0, 95)]]);
    let shown = session.shown();
    assert_eq!(shown["predicted"], "1", "{shown}");

    // A picture dropped on the page: a 7 drawn on a canvas of its own,
    // dropped as a PNG file.
    let drop = "const done = arguments[arguments.length - 1];\
        const c = document.createElement('canvas'); c.width = 200; c.height = 200;\
        const g = c.getContext('2d'); g.fillStyle = '#fff'; g.fillRect(0, 0, 200, 200);\
        g.strokeStyle = '#000'; g.lineWidth = 14; g.lineCap = 'round'; g.lineJoin = 'round';\
        g.beginPath(); g.moveTo(50, 40); g.lineTo(150, 40); g.lineTo(90, 170); g.stroke();\
        c.toBlob(blob => {\
          const dt = new DataTransfer();\
          dt.items.add(new File([blob], 'seven.png', { type: 'image/png' }));\
          document.getElementById('pad').dispatchEvent(\
            new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));\
          done(busy);\
        }, 'image/png');";
    let sent = session.call(
        "POST",
        "/execute/async",
        Some(json!({ "script": drop, "args": [] })),
    );
    assert_eq!(sent, true, "the drop sent no request");
    let shown = session.shown();
    assert_eq!(shown["predicted"], "7", "{shown}");

    session.call("DELETE", "", None);
}
