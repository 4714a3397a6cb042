//! `mnist serve`: a page to draw a digit on, and the JSON API behind it.
//!
//! `GET /` is the page (`serve.html`, built in); `GET /model` describes the
//! model; `POST /predict` takes a PNG or JPEG picture as the body and
//! answers with one entry of `mnist predict --json`, plus the 28 x 28 image
//! the model read (`pixels`). Every refusal is a 4xx with a JSON body
//! `{"error": "..."}`, and the server goes on.

use std::io::Read;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use clap::Args;
use mnist_data::Preprocess;
use mnist_model::Model;
use ndarray::Array2;
use serde::Serialize;
use tiny_http::{Header, Method, Request, Response, Server};

use crate::data::DatasetInfo;
use crate::digitize::SIDE;
use crate::paths::Files;
use crate::predict::{decode_picture, PictureError, Prediction, Source};

/// Arguments of `mnist serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The model file written by `mnist train --save` (JSON), or its
    /// safetensors export.
    #[arg(long, value_name = "MODEL.json")]
    pub model: PathBuf,
    /// The port to listen on (0: any free port, printed at the start).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// The address to listen on: loopback unless told otherwise (e.g.
    /// `0.0.0.0` for every interface).
    #[arg(long, value_name = "ADDRESS", default_value = "127.0.0.1")]
    pub bind: IpAddr,
}

/// The page, with its script and style: no file or network is needed.
const PAGE: &str = include_str!("serve.html");

/// The largest request body: 8 MiB, far more than any drawing or photo of
/// a digit needs.
pub const MAX_BODY: usize = 8 << 20;

/// The most pixels a picture sent to the server may have: 4096 x 4096
/// (64 MiB as RGBA with 8 bits a channel). Lower than `predict`'s limit,
/// since several requests are decoded at once.
pub const MAX_SERVED_PIXELS: u64 = 4096 * 4096;

/// Requests handled at once (each may decode a picture).
const WORKERS: usize = 4;

/// What the handlers share.
struct State {
    model: Model,
    names: Vec<String>,
    pre: Preprocess,
    info: String,
}

#[derive(Debug, Serialize)]
struct ModelInfo<'a> {
    model: &'a str,
    output_kind: &'static str,
    classes: &'a [String],
    max_body_bytes: usize,
    max_pixels: u64,
}

/// Runs `mnist serve` until the process is stopped.
pub fn run(args: &ServeArgs) -> Result<()> {
    let mut files = Files::new();
    files.input("--model", &args.model)?;
    let (model, metadata) = Model::load_with_metadata(&args.model)?;
    let pre = Preprocess::default();
    if model.features() != pre.features(SIDE * SIDE) {
        bail!(
            "--model {}: the model takes {} features, but pictures are digitised to 28 x 28 \
             images, which give {}",
            args.model.display(),
            model.features(),
            pre.features(SIDE * SIDE)
        );
    }
    let names = DatasetInfo::from_metadata(&metadata).map_or_else(
        || (0..model.classes()).map(|c| c.to_string()).collect(),
        |info| info.class_names,
    );
    let state = State {
        info: serde_json::to_string(&ModelInfo {
            model: &model.describe(),
            output_kind: model.output_kind(),
            classes: &names,
            max_body_bytes: MAX_BODY,
            max_pixels: MAX_SERVED_PIXELS,
        })?,
        model,
        names,
        pre,
    };
    let server = Server::http((args.bind, args.port)).map_err(|e| {
        anyhow!(
            "--bind {} --port {}: cannot listen there: {e}",
            args.bind,
            args.port
        )
    })?;
    let address = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| anyhow!("the server has no IP address"))?;
    say!(
        "serving {} on http://{address}/ (stop with Ctrl-C)",
        state.model.describe()
    );
    let (server, state) = (Arc::new(server), Arc::new(state));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (server, state) = (Arc::clone(&server), Arc::clone(&state));
            std::thread::spawn(move || {
                // `recv` fails only when the server is shutting down.
                while let Ok(request) = server.recv() {
                    handle(&state, request);
                }
            })
        })
        .collect();
    for worker in workers {
        if worker.join().is_err() {
            bail!("a request handler panicked");
        }
    }
    Ok(())
}

fn header(name: &str, value: &str) -> Option<Header> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

fn reply(request: Request, status: u16, content_type: &str, body: String, extra: Option<Header>) {
    let mut response = Response::from_string(body).with_status_code(status);
    // The headers are fixed ASCII text: `header` gives them all.
    let headers = [
        header("Content-Type", content_type),
        header("Cache-Control", "no-store"),
        extra,
    ];
    for h in headers.into_iter().flatten() {
        response.add_header(h);
    }
    // A client that went away cannot be told anything.
    let _ = request.respond(response);
}

fn json(request: Request, status: u16, body: String) {
    reply(request, status, "application/json", body, None);
}

fn error(request: Request, status: u16, message: &str) {
    let body = serde_json::json!({ "error": message }).to_string();
    json(request, status, body);
}

fn handle(state: &State, request: Request) {
    let path = request.url().split('?').next().unwrap_or("").to_string();
    let method = request.method().clone();
    let allowed = match path.as_str() {
        "/" | "/index.html" | "/model" => "GET",
        "/predict" => "POST",
        _ => return error(request, 404, &format!("no such page: {path}")),
    };
    let wanted = if allowed == "GET" {
        Method::Get
    } else {
        Method::Post
    };
    if method != wanted {
        let message = format!("{path} takes {allowed}, not {method}");
        let body = serde_json::json!({ "error": message }).to_string();
        return reply(
            request,
            405,
            "application/json",
            body,
            header("Allow", allowed),
        );
    }
    match path.as_str() {
        "/model" => json(request, 200, state.info.clone()),
        "/predict" => predict(state, request),
        _ => reply(
            request,
            200,
            "text/html; charset=utf-8",
            PAGE.to_string(),
            None,
        ),
    }
}

fn predict(state: &State, mut request: Request) {
    if request.body_length().is_some_and(|n| n > MAX_BODY) {
        let message = format!("the body is larger than the limit of {MAX_BODY} bytes");
        return error(request, 413, &message);
    }
    let mut body = Vec::new();
    let limit = MAX_BODY as u64 + 1;
    if let Err(e) = request.as_reader().take(limit).read_to_end(&mut body) {
        return error(request, 400, &format!("cannot read the body: {e}"));
    }
    if body.len() > MAX_BODY {
        let message = format!("the body is larger than the limit of {MAX_BODY} bytes");
        return error(request, 413, &message);
    }
    if body.is_empty() {
        return error(
            request,
            400,
            "the body is empty: send a PNG or JPEG picture",
        );
    }
    let pixels = match decode_picture(&body, MAX_SERVED_PIXELS) {
        Ok(pixels) => pixels,
        Err(e @ PictureError::TooLarge(_)) => return error(request, 413, &e.to_string()),
        Err(e) => return error(request, 400, &e.to_string()),
    };
    let mut x = Array2::<f32>::zeros((1, state.model.features()));
    let Some(row) = x.as_slice_mut() else {
        return error(request, 500, "feature row is not contiguous");
    };
    state.pre.apply_into(&pixels, row);
    match state.model.predict_proba(x.view()) {
        Ok(proba) => {
            let mut p = Prediction::new(Source::Upload, proba.row(0).to_vec(), None, &state.names);
            p.pixels = Some(pixels.to_vec());
            match serde_json::to_string(&p) {
                Ok(body) => json(request, 200, body),
                Err(e) => error(request, 500, &e.to_string()),
            }
        }
        Err(e) => error(request, 500, &e.to_string()),
    }
}
