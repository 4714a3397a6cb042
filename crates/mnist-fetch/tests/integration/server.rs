//! A tiny HTTP/1.1 server on 127.0.0.1 whose answers the test chooses,
//! including the broken ones real mirrors produce.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// How the server answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// `200` with `Content-Length`.
    Ok(Vec<u8>),
    /// This status with a short body.
    Status(u16),
    /// `200` announcing the full length, sends `sent` bytes, then closes.
    Cut { body: Vec<u8>, sent: usize },
    /// `200` announcing the full length, sends `sent` bytes, then goes
    /// silent, keeping the connection open until the client hangs up (see
    /// [`SILENCE`]).
    StallAfter { body: Vec<u8>, sent: usize },
    /// `200` without `Content-Length`: the body ends when the connection
    /// closes.
    Unsized(Vec<u8>),
    /// `200` announcing `announced` bytes, whatever the body is.
    Announce { announced: u64, body: Vec<u8> },
    /// Reads the request and says nothing until the client hangs up (see
    /// [`SILENCE`]).
    Silent,
}

/// How long a silent server waits at most for the client to hang up before
/// it closes the connection itself. A client that times out hangs up long
/// before; one that does not sees the connection closed, not a time-out,
/// and its test fails on the reason rather than waiting for ever.
pub const SILENCE: Duration = Duration::from_secs(60);

type Handler = dyn Fn(&str) -> Reply + Send + Sync;

/// A running server; it lives until the test process ends.
pub struct Server {
    base: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Serves `handler(path)` for every `GET /path`.
    pub fn start(handler: impl Fn(&str) -> Reply + Send + Sync + 'static) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let base = format!("http://{}/", listener.local_addr()?);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log = Arc::clone(&requests);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let handler = Arc::clone(&handler);
                let log = Arc::clone(&log);
                thread::spawn(move || {
                    // A client that hung up is not the server's problem.
                    let _ = serve(stream, &*handler, &log);
                });
            }
        });
        Ok(Self { base, requests })
    }

    /// A server that answers every path with `reply`.
    pub fn always(reply: Reply) -> io::Result<Self> {
        Self::start(move |_| reply.clone())
    }

    /// The base URL, ending in `/`.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The paths requested so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

fn serve(mut stream: TcpStream, handler: &Handler, log: &Mutex<Vec<String>>) -> io::Result<()> {
    let mut request = Vec::new();
    let mut byte = [0; 1];
    while !request.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Ok(());
        }
        request.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&request);
    let path = text
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .trim_start_matches('/')
        .to_owned();
    if let Ok(mut log) = log.lock() {
        log.push(path.clone());
    }
    let head = |status: &str, len: Option<u64>| {
        let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
        if let Some(len) = len {
            head.push_str(&format!("Content-Length: {len}\r\n"));
        }
        head.push_str("\r\n");
        head.into_bytes()
    };
    match handler(&path) {
        Reply::Ok(body) => {
            stream.write_all(&head("200 OK", Some(body.len() as u64)))?;
            stream.write_all(&body)?;
        }
        Reply::Status(code) => {
            let reason = match code {
                404 => "Not Found",
                500 => "Internal Server Error",
                _ => "Whatever",
            };
            let body = format!("{code} {reason}\n");
            stream.write_all(&head(&format!("{code} {reason}"), Some(body.len() as u64)))?;
            stream.write_all(body.as_bytes())?;
        }
        Reply::Cut { body, sent } => {
            stream.write_all(&head("200 OK", Some(body.len() as u64)))?;
            stream.write_all(&body[..sent])?;
        }
        Reply::StallAfter { body, sent } => {
            stream.write_all(&head("200 OK", Some(body.len() as u64)))?;
            stream.write_all(&body[..sent])?;
            stream.flush()?;
            wait_for_hang_up(&mut stream)?;
        }
        Reply::Unsized(body) => {
            stream.write_all(&head("200 OK", None))?;
            stream.write_all(&body)?;
        }
        Reply::Announce { announced, body } => {
            stream.write_all(&head("200 OK", Some(announced)))?;
            stream.write_all(&body)?;
        }
        Reply::Silent => wait_for_hang_up(&mut stream)?,
    }
    stream.flush()
}

/// Reads (and drops) whatever the client sends until it closes the
/// connection, or for [`SILENCE`] at most.
fn wait_for_hang_up(stream: &mut TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(SILENCE))?;
    let mut buf = [0; 256];
    while stream.read(&mut buf)? > 0 {}
    Ok(())
}
