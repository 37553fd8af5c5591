//! `ControlServer`: answers `tickwatch state` questions about one serving
//! node, on a thread of its own.
//!
//! It reads through a [`StoreReader`] (a clone of the node's sled trees) and
//! describes state with detector instances of its own, so it never blocks
//! or touches the node's worker.
#![deny(clippy::print_stdout)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tickwatch_plugin_api::Options;
use tickwatch_state::StoreReader;

use super::protocol::{
    Figures, MIN_VERSION, Request, RequestLine, Response, ResponseLine, VERSION,
};
use crate::inspect;
use crate::node::Factory;

/// The running query socket; closed and removed on drop.
#[derive(Debug)]
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
}

/// What the server answers from.
pub struct Source {
    /// The node's database, read-only.
    pub reader: StoreReader,
    /// Makes detectors to describe state with.
    pub factory: Factory,
    /// The node's detector options.
    pub options: Options,
    /// Kapacitor task id.
    pub task: String,
    /// Kapacitor node id.
    pub node: String,
    /// The node's counters, for `tickwatch exporter`.
    pub metrics: Option<Arc<crate::metrics::NodeMetrics>>,
}

/// Creates the directory holding control sockets: owner-only (0700), so the
/// sockets in it need no mode of their own. Made with its mode at creation
/// rather than by changing the process umask, which other threads (other
/// sessions in socket mode) share.
fn control_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let meta = std::fs::metadata(dir)?;
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

impl ControlServer {
    /// Binds `path` (replacing a stale socket: the caller holds the node's
    /// lock, so no live process can own it) and serves queries.
    pub fn start(path: &Path, source: Source) -> std::io::Result<ControlServer> {
        if let Some(dir) = path.parent() {
            control_dir(dir)?;
        }
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        std::thread::Builder::new().name("control".into()).spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = conn
                    && let Err(e) = answer(&source, stream)
                {
                    tracing::debug!("control query failed: {e}");
                }
            }
        })?;
        Ok(ControlServer { path: path.to_path_buf(), stop })
    }
}

/// The answer to one request line, in the version it was asked in.
pub fn respond(source: &Source, line: &str) -> ResponseLine {
    let (version, req) = match serde_json::from_str::<RequestLine>(line) {
        Ok(r) if (MIN_VERSION..=VERSION).contains(&r.version) => (r.version, r.request),
        Ok(r) => {
            let msg = format!(
                "control protocol version {} is not this node's {VERSION} (it answers \
                 {MIN_VERSION} to {VERSION}); use the tickwatch that serves the node",
                r.version
            );
            return ResponseLine { version: VERSION, response: Response::Error(msg) };
        }
        Err(e) => {
            let response = Response::Error(format!("bad request: {e}"));
            return ResponseLine { version: VERSION, response };
        }
    };
    let response = if req.since() > version {
        Response::Error(format!(
            "request {req:?} needs control protocol version {}; it was asked in {version}",
            req.since()
        ))
    } else {
        answer_request(source, req)
    };
    ResponseLine { version, response }
}

fn answer_request(source: &Source, req: Request) -> Response {
    if req == Request::Metrics {
        return match &source.metrics {
            Some(m) => Response::Metrics(Box::new(Figures {
                node: m.figures(),
                process: crate::metrics::process(),
            })),
            None => Response::Error("this node keeps no metrics".into()),
        };
    }
    let fields = match source.reader.fields() {
        Ok(f) => f,
        Err(e) => return Response::Error(e.to_string()),
    };
    match req {
        Request::Show => Response::Rows(
            fields
                .iter()
                .map(|f| {
                    let summary = inspect::describe(source.factory.as_ref(), &source.options, f);
                    inspect::row(&source.task, &source.node, f, summary)
                })
                .collect(),
        ),
        Request::Export => Response::Export(inspect::export(&source.task, &source.node, &fields)),
        Request::Aside => match source.reader.aside() {
            Ok(records) => Response::Aside(inspect::aside_rows(&records)),
            Err(e) => Response::Error(e.to_string()),
        },
        Request::Metrics => Response::Error("unreachable: answered above".into()),
    }
}

fn answer(source: &Source, stream: UnixStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    let resp = respond(source, &line);
    let mut out = serde_json::to_vec(&resp).map_err(std::io::Error::other)?;
    out.push(b'\n');
    (&stream).write_all(&out)
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so the thread sees the flag and ends.
        let _ = UnixStream::connect(&self.path);
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    use tickwatch_plugin_api::{Detector, OptionSpec, Options, Summary, Verdict};
    use tickwatch_state::{FieldState, NodeMeta, Provenance, StateStore, StoreOptions};

    use super::*;
    use crate::control::client::query;
    use crate::node::InProcess;

    /// Counts windows; enough to describe stored state.
    struct Count(u64);

    impl Detector for Count {
        const NAME: &'static str = "count";
        const VERSION: &'static str = "0.1.0";
        const STATE_VERSION: u32 = 1;
        fn options() -> Vec<OptionSpec> {
            Vec::new()
        }
        fn new(_: &Options) -> Result<Self, String> {
            Ok(Count(0))
        }
        fn score(&mut self, _: &[f64]) -> Option<Verdict> {
            self.0 += 1;
            None
        }
        fn save(&self) -> Vec<u8> {
            self.0.to_le_bytes().to_vec()
        }
        fn load(&mut self, s: &[u8]) -> Result<(), String> {
            self.0 = u64::from_le_bytes(s.try_into().map_err(|_| "need 8 bytes")?);
            Ok(())
        }
        fn describe(&self) -> Summary {
            Summary::new().int("windows", self.0 as i64)
        }
    }

    fn store(dir: &Path, node: &str) -> StateStore {
        let meta = NodeMeta::new("t", node, "count");
        let opts = StoreOptions { wait: Duration::from_secs(1), group_commit_ms: None };
        let mut s = StateStore::open(dir, &meta, opts).unwrap();
        s.commit(&[FieldState {
            group: String::new(),
            field: "f".into(),
            provenance: Provenance {
                detector: "count".into(),
                detector_version: "0.1.0".into(),
                state_version: 1,
                options: "{}".into(),
                last_time: 7,
            },
            state: 5u64.to_le_bytes().to_vec(),
        }])
        .unwrap();
        s
    }

    fn source(store: &StateStore, node: &str) -> Source {
        Source {
            reader: store.reader(),
            factory: InProcess::<Count>::factory(),
            options: Options::new(Vec::new()),
            task: "t".into(),
            node: node.into(),
            metrics: Some(Arc::new(crate::metrics::NodeMetrics::new(
                "t",
                node,
                "count",
                &["f".into()],
            ))),
        }
    }

    #[test]
    fn answers_each_request_over_a_real_socket() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), "n");
        let path = dir.path().join("control").join("n.sock");
        let server = ControlServer::start(&path, source(&s, "n")).unwrap();
        let Some(Response::Rows(rows)) = query(&path, Request::Show).unwrap() else {
            panic!("rows expected")
        };
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].summary, serde_json::json!({"windows": 5}));
        assert_eq!(rows[0].last_time_ns, 7);
        let Some(Response::Export(e)) = query(&path, Request::Export).unwrap() else {
            panic!("export expected")
        };
        assert_eq!(e.fields[0].provenance.detector, "count");
        assert!(
            matches!(query(&path, Request::Aside).unwrap(), Some(Response::Aside(a)) if a.is_empty())
        );
        drop(server);
        assert!(!path.exists(), "the socket is removed on drop");
        assert!(query(&path, Request::Show).unwrap().is_none());
    }

    #[test]
    fn refuses_another_protocol_version_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), "n");
        let src = source(&s, "n");
        let Response::Error(e) = respond(&src, r#"{"version":1,"request":"show"}"#).response else {
            panic!("error expected")
        };
        assert!(e.contains("version 1 is not this node's 3"), "{e}");
        assert!(
            matches!(respond(&src, r#"{"op":"show"}"#).response, Response::Error(e) if e.starts_with("bad request"))
        );
    }

    #[test]
    fn an_older_client_is_answered_in_its_version_and_metrics_need_3() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), "n");
        let src = source(&s, "n");
        let old = respond(&src, r#"{"version":2,"request":"show"}"#);
        assert_eq!(old.version, 2);
        assert!(matches!(old.response, Response::Rows(r) if r.len() == 1));
        let Response::Error(e) = respond(&src, r#"{"version":2,"request":"metrics"}"#).response
        else {
            panic!("error expected")
        };
        assert!(e.contains("needs control protocol version 3"), "{e}");
    }

    #[test]
    fn metrics_are_answered_over_a_real_socket() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), "n");
        let path = dir.path().join("control").join("n.sock");
        let src = source(&s, "n");
        let m = Arc::clone(src.metrics.as_ref().unwrap());
        let tally = [crate::node::FieldTally { values: 9, skipped: 2, ..Default::default() }];
        m.batch(11, &tally);
        let _server = ControlServer::start(&path, src).unwrap();
        let Some(Response::Metrics(f)) = query(&path, Request::Metrics).unwrap() else {
            panic!("metrics expected")
        };
        assert_eq!((f.node.task.as_str(), f.node.node.as_str()), ("t", "n"));
        assert_eq!((f.node.batches, f.node.points_in), (1, 11));
        assert_eq!((f.node.fields[0].values, f.node.fields[0].skipped), (9, 2));
        assert_eq!(f.process.pid, std::process::id());
    }

    /// Regression: starting a control socket used to swap the process-wide
    /// umask; concurrent starts (two sessions' Init in socket mode) could
    /// leave it at 0o177, and every directory made afterwards unusable.
    #[test]
    fn concurrent_starts_leave_the_process_umask_alone() {
        let dir = tempfile::tempdir().unwrap();
        let control = dir.path().join("control");
        let stores: Vec<StateStore> = (0..8).map(|i| store(dir.path(), &format!("n{i}"))).collect();
        let servers: Vec<ControlServer> = std::thread::scope(|s| {
            let handles: Vec<_> = stores
                .iter()
                .enumerate()
                .map(|(i, st)| {
                    let path = control.join(format!("{i}.sock"));
                    let src = source(st, &format!("n{i}"));
                    s.spawn(move || ControlServer::start(&path, src).unwrap())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&control), 0o700);
        assert_eq!(mode(&control.join("3.sock")), 0o600);
        // A directory made now gets the umask the process started with.
        let probe = dir.path().join("probe");
        std::fs::create_dir(&probe).unwrap();
        assert_ne!(mode(&probe) & 0o700, 0, "owner bits lost: umask was changed");
        assert_eq!(mode(&probe) & 0o700, 0o700);
        drop(servers);
    }
}
