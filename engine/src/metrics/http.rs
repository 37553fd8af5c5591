//! The `GET /metrics` endpoint of `serve --metrics-listen` and `tickwatch
//! exporter`: HTTP/1.1 over std's `TcpListener`, requests parsed by
//! httparse.
//!
//! Bounded, because it listens on a network port of a long-running UDF:
//! [`WORKERS`] threads answer (a scrape renders one page; Prometheus asks
//! every few seconds), at most [`BACKLOG`] accepted connections wait for
//! them and more are answered 503 at once; each connection gets
//! [`IO_TIMEOUT`] to send its request head (at most [`MAX_HEAD`] bytes) and
//! read the answer, and is closed after one response. Only `GET /metrics`
//! (any query string) is served; other paths get 404, other methods 405.
//! tiny_http was considered: it spawns a thread per connection without a
//! cap and has no read timeout, so a slow client could grow the process.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Threads answering requests.
pub const WORKERS: usize = 2;
/// Accepted connections waiting for a worker.
pub const BACKLOG: usize = 16;
/// How long a client may take to send its request, and to read the answer.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head read.
pub const MAX_HEAD: usize = 8 * 1024;

/// Renders the page on each scrape.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Binds `addr` (e.g. `127.0.0.1:9105`, `[::]:9105`; port 0 picks one) and
/// serves `GET /metrics` with `render` on threads of its own, for the life
/// of the process. Returns the address bound.
pub fn serve(addr: &str, render: Render) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    let (tx, rx) = sync_channel::<TcpStream>(BACKLOG);
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..WORKERS {
        let rx = Arc::clone(&rx);
        let render = Arc::clone(&render);
        std::thread::Builder::new()
            .name(format!("metrics-{i}"))
            .spawn(move || worker(&rx, &render))?;
    }
    std::thread::Builder::new()
        .name("metrics-accept".into())
        .spawn(move || accept(&listener, &tx))?;
    Ok(bound)
}

fn accept(listener: &TcpListener, tx: &SyncSender<TcpStream>) {
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                // Typically the fd limit: do not spin.
                tracing::debug!("metrics endpoint: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        match tx.try_send(stream) {
            Ok(()) => {}
            Err(TrySendError::Full(s)) => {
                let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
                let _ = respond(&s, 503, "text/plain", "busy: too many scrapes at once\n");
            }
            Err(TrySendError::Disconnected(_)) => return,
        }
    }
}

fn worker(rx: &Mutex<Receiver<TcpStream>>, render: &Render) {
    loop {
        let next = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(stream) = next else { return };
        if let Err(e) = answer(&stream, render) {
            tracing::debug!("metrics endpoint: {e}");
        }
    }
}

/// Reads one request head from `stream`: its method and path.
fn read_head(mut stream: &TcpStream) -> Result<Option<(String, String)>, u16> {
    let mut buf = vec![0u8; MAX_HEAD];
    let mut len = 0;
    loop {
        if len == buf.len() {
            return Err(431);
        }
        let n = match stream.read(&mut buf[len..]) {
            Ok(0) => return Ok(None),
            Ok(n) => n,
            Err(_) => return Ok(None),
        };
        len += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                let method = req.method.unwrap_or_default().to_string();
                let path = req.path.unwrap_or_default().to_string();
                return Ok(Some((method, path)));
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => return Err(431),
            Err(_) => return Err(400),
        }
    }
}

fn answer(stream: &TcpStream, render: &Render) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let (method, path) = match read_head(stream) {
        Ok(Some(head)) => head,
        Ok(None) => return Ok(()),
        Err(status) => return respond(stream, status, "text/plain", "bad request\n"),
    };
    let route = path.split('?').next().unwrap_or_default();
    if route != "/metrics" {
        return respond(stream, 404, "text/plain", "not found: metrics are at /metrics\n");
    }
    if method != "GET" {
        return respond(stream, 405, "text/plain", "only GET\n");
    }
    let page = render();
    respond(stream, 200, super::encode::CONTENT_TYPE, &page)
}

fn respond(
    mut stream: &TcpStream,
    status: u16,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n{}\r\n",
        body.len(),
        if status == 405 { "Allow: GET\r\n" } else { "" }
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(addr: SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn serves_get_metrics_only() {
        let addr = serve("127.0.0.1:0", Arc::new(|| "tickwatch_nodes 0\n".to_string())).unwrap();
        let ok = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("Content-Type: text/plain; version=0.0.4"), "{ok}");
        assert!(ok.ends_with("\r\n\r\ntickwatch_nodes 0\n"), "{ok}");
        let q = get(addr, "GET /metrics?x=1 HTTP/1.0\r\n\r\n");
        assert!(q.starts_with("HTTP/1.1 200 OK\r\n"), "{q}");
        assert!(get(addr, "GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
        assert!(get(addr, "POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));
        assert!(get(addr, "\x01\x02 nonsense\r\n\r\n").starts_with("HTTP/1.1 400 "));
        let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert!(get(addr, &huge).starts_with("HTTP/1.1 431 "));
    }

    #[test]
    fn a_silent_client_does_not_block_the_others_forever() {
        let addr = serve("127.0.0.1:0", Arc::new(|| "x\n".to_string())).unwrap();
        // Hold every worker with a connection that never sends a request.
        let idle: Vec<TcpStream> =
            (0..WORKERS).map(|_| TcpStream::connect(addr).unwrap()).collect();
        // A scrape is still answered, once the idle ones time out.
        let ok = get(addr, "GET /metrics HTTP/1.1\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
        drop(idle);
    }
}
