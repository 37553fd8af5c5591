//! `tickwatch state list|show|export|import|reset`: persisted node state,
//! readable whether or not the node is running. A stopped node's database is
//! opened directly; a running node (its database locked by the serving
//! process) is asked through its control socket, read-only. Changes (import,
//! reset) refuse a running node.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde::Serialize;
use tickwatch_state::store::move_aside;
use tickwatch_state::{FieldState, NodeMeta, StateError, StateStore, StoreOptions, layout};

use crate::cli::{PluginDirArg, StateDirArg};
use crate::control;
use crate::inspect::{self, Export, FieldRow};
use crate::options::options_from_fingerprint;
use crate::plugin::{Plugin, Registry};

/// `tickwatch state` flags.
#[derive(Debug, clap::Args)]
pub struct StateArgs {
    #[command(flatten)]
    state: StateDirArg,
    #[command(flatten)]
    plugins: PluginDirArg,
    #[command(subcommand)]
    cmd: StateCmd,
}

#[derive(Debug, clap::Args)]
struct Select {
    /// Task id.
    #[arg(long)]
    task: String,
    /// Node id (e.g. tTest2).
    #[arg(long)]
    node: String,
    /// Only this group id ("" for ungrouped data).
    #[arg(long)]
    group: Option<String>,
    /// Only this field.
    #[arg(long)]
    field: Option<String>,
}

impl Select {
    fn matches(&self, f: &FieldState) -> bool {
        self.group.as_ref().is_none_or(|g| *g == f.group)
            && self.field.as_ref().is_none_or(|x| *x == f.field)
    }
}

#[derive(Debug, clap::Subcommand)]
enum StateCmd {
    /// Every task/node with its fields, groups, detector and last batch time.
    List {
        /// JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Per (group, field): detector, last batch time and the detector's own
    /// description of its state.
    Show {
        #[command(flatten)]
        sel: Select,
        /// JSON for scripts: an array of objects with task, node, group,
        /// field, detector, last_time, last_time_ns, summary.
        #[arg(long)]
        json: bool,
    },
    /// State kept aside for inspection: not applied (another detector, state
    /// format or options) or reset by a user.
    Aside {
        /// Task id.
        #[arg(long)]
        task: String,
        /// Node id.
        #[arg(long)]
        node: String,
        /// JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// A node's exact state as JSON (stdout, or --output FILE).
    Export {
        /// Task id.
        #[arg(long)]
        task: String,
        /// Node id.
        #[arg(long)]
        node: String,
        /// Write here instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Loads an export back, exactly (the node must not be running).
    Import {
        /// The export file.
        file: PathBuf,
        /// Task id to import into (default: the export's).
        #[arg(long)]
        task: Option<String>,
        /// Node id to import into (default: the export's).
        #[arg(long)]
        node: Option<String>,
    },
    /// Resets a field (its state is set aside) or, without --group/--field, a
    /// whole node (its directory, even a corrupt one, is moved aside). Nothing
    /// is deleted. The node must not be running.
    Reset {
        #[command(flatten)]
        sel: Select,
    },
}

/// How a node's state is reached.
enum Access {
    /// Stopped: its database, opened by us.
    Disk(StateStore),
    /// Running: its control socket.
    Live(PathBuf),
}

fn no_wait() -> StoreOptions {
    StoreOptions { wait: Duration::ZERO, group_commit_ms: None }
}

fn access(state_dir: &Path, dir: &Path, meta: &NodeMeta) -> anyhow::Result<Access> {
    match StateStore::open_dir(dir, no_wait()) {
        Ok(s) => Ok(Access::Disk(s)),
        Err(StateError::Locked { .. }) => {
            Ok(Access::Live(layout::control_socket(state_dir, &meta.task, &meta.node)))
        }
        Err(e) => Err(e.into()),
    }
}

fn ask(path: &Path, op: &str) -> anyhow::Result<inspect::ControlResponse> {
    let resp = control::query(path, op).map_err(|e| anyhow!(e))?.ok_or_else(|| {
        anyhow!("the node is running but its control socket {} does not answer", path.display())
    })?;
    if let Some(e) = resp.error {
        bail!("the running node answered: {e}");
    }
    Ok(resp)
}

fn fields(access: &mut Access) -> anyhow::Result<(Vec<FieldState>, bool)> {
    match access {
        Access::Disk(s) => Ok((s.load()?, false)),
        Access::Live(path) => {
            let export =
                ask(path, "export")?.export.ok_or_else(|| anyhow!("empty control answer"))?;
            Ok((inspect::import(&export).map_err(|e| anyhow!(e))?, true))
        }
    }
}

fn find_node(state_dir: &Path, task: &str, node: &str) -> anyhow::Result<(PathBuf, NodeMeta)> {
    let dir = layout::node_dir(state_dir, task, node);
    if !dir.exists() {
        bail!("no state for task {task:?} node {node:?} in {}", state_dir.display());
    }
    let meta = layout::read_meta(&dir)?;
    Ok((dir, meta))
}

/// Left-aligned columns.
fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = width[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(head.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

fn group_text(g: &str) -> String {
    if g.is_empty() { "(ungrouped)".into() } else { g.replace('\n', " ") }
}

#[derive(Serialize)]
struct ListedField {
    group: String,
    field: String,
    last_time: String,
    last_time_ns: i64,
}

#[derive(Serialize)]
struct ListedNode {
    task: String,
    node: String,
    running: bool,
    detector: String,
    fields: Vec<ListedField>,
    error: Option<String>,
}

fn list(state_dir: &Path, json: bool) -> anyhow::Result<()> {
    let mut nodes = Vec::new();
    for (dir, meta) in layout::list_nodes(state_dir)? {
        let listed = meta.map_err(anyhow::Error::from).and_then(|meta| {
            let mut acc = access(state_dir, &dir, &meta)?;
            let (fs, running) = fields(&mut acc)?;
            Ok(ListedNode {
                task: meta.task,
                node: meta.node,
                running,
                detector: meta.detector,
                fields: fs
                    .iter()
                    .map(|f| ListedField {
                        group: f.group.clone(),
                        field: f.field.clone(),
                        last_time: inspect::rfc3339(f.last_time),
                        last_time_ns: f.last_time,
                    })
                    .collect(),
                error: None,
            })
        });
        let ids = layout::read_meta(&dir).ok();
        nodes.push(listed.unwrap_or_else(|e| ListedNode {
            task: ids.as_ref().map(|m| m.task.clone()).unwrap_or_default(),
            node: ids.as_ref().map_or_else(|| dir.display().to_string(), |m| m.node.clone()),
            running: false,
            detector: String::new(),
            fields: Vec::new(),
            error: Some(format!("{e:#}")),
        }));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&nodes)?);
        return Ok(());
    }
    if nodes.is_empty() {
        println!("no node state in {}", state_dir.display());
        return Ok(());
    }
    let mut rows = Vec::new();
    for n in &nodes {
        if let Some(e) = &n.error {
            rows.push(vec![
                n.task.clone(),
                n.node.clone(),
                "unreadable".into(),
                String::new(),
                e.clone(),
                String::new(),
                String::new(),
            ]);
            continue;
        }
        let status = if n.running { "running" } else { "stopped" }.to_string();
        if n.fields.is_empty() {
            rows.push(vec![
                n.task.clone(),
                n.node.clone(),
                status.clone(),
                n.detector.clone(),
                "(no fields yet)".into(),
                String::new(),
                String::new(),
            ]);
        }
        for f in &n.fields {
            rows.push(vec![
                n.task.clone(),
                n.node.clone(),
                status.clone(),
                n.detector.clone(),
                f.field.clone(),
                group_text(&f.group),
                f.last_time.clone(),
            ]);
        }
    }
    print!(
        "{}",
        table(&["TASK", "NODE", "STATUS", "DETECTOR", "FIELD", "GROUP", "LAST BATCH"], &rows)
    );
    Ok(())
}

fn show(state_dir: &Path, plugin_dirs: &[PathBuf], sel: &Select, json: bool) -> anyhow::Result<()> {
    let (dir, meta) = find_node(state_dir, &sel.task, &sel.node)?;
    let mut rows: Vec<FieldRow> = match access(state_dir, &dir, &meta)? {
        Access::Live(path) => ask(&path, "show")?.rows.unwrap_or_default(),
        Access::Disk(mut store) => {
            let fs = store.load()?;
            let registry = Registry::discover(plugin_dirs);
            let mut plugins: HashMap<String, Option<Arc<Plugin>>> = HashMap::new();
            fs.iter()
                .map(|f| {
                    let plugin = plugins
                        .entry(f.detector.clone())
                        .or_insert_with(|| registry.get(&f.detector).cloned());
                    let summary = match plugin {
                        Some(p) => match options_from_fingerprint(&f.options, p.options()) {
                            Ok(opts) => inspect::describe(p, &opts, f),
                            Err(e) => {
                                tracing::warn!("{e}");
                                serde_json::Value::Null
                            }
                        },
                        None => {
                            tracing::warn!(
                                "detector {} not found in the plugin directories: no summary",
                                f.detector
                            );
                            serde_json::Value::Null
                        }
                    };
                    inspect::row(&meta.task, &meta.node, f, summary)
                })
                .collect()
        }
    };
    rows.retain(|r| {
        sel.group.as_ref().is_none_or(|g| *g == r.group)
            && sel.field.as_ref().is_none_or(|f| *f == r.field)
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no matching field state for task {:?} node {:?}", sel.task, sel.node);
        return Ok(());
    }
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let summary = match &r.summary {
                serde_json::Value::Object(m) => m
                    .iter()
                    .map(|(k, v)| match v {
                        serde_json::Value::Number(n) => match n.as_f64() {
                            Some(x) if n.is_f64() => format!("{k}={x:.6}"),
                            _ => format!("{k}={n}"),
                        },
                        other => format!("{k}={other}"),
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => "(no summary)".into(),
            };
            vec![
                group_text(&r.group),
                r.field.clone(),
                r.detector.clone(),
                r.last_time.clone(),
                summary,
            ]
        })
        .collect();
    println!("task {} node {}", sel.task, sel.node);
    print!("{}", table(&["GROUP", "FIELD", "DETECTOR", "LAST BATCH", "STATE"], &table_rows));
    Ok(())
}

fn aside(state_dir: &Path, task: &str, node: &str, json: bool) -> anyhow::Result<()> {
    let (dir, meta) = find_node(state_dir, task, node)?;
    let rows = match access(state_dir, &dir, &meta)? {
        Access::Live(path) => ask(&path, "aside")?.aside.unwrap_or_default(),
        Access::Disk(store) => inspect::aside_rows(&store.reader().aside()?),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no state set aside for task {task:?} node {node:?}");
        return Ok(());
    }
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                group_text(&r.group),
                r.field.clone(),
                format!("{} {} (state {})", r.detector, r.detector_version, r.state_version),
                r.options.clone(),
                r.last_time.clone(),
                r.set_aside_at.clone(),
                r.reason.clone(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &["GROUP", "FIELD", "DETECTOR", "OPTIONS", "LAST BATCH", "SET ASIDE", "WHY"],
            &table_rows
        )
    );
    Ok(())
}

fn export(state_dir: &Path, task: &str, node: &str, output: Option<&Path>) -> anyhow::Result<()> {
    let (dir, meta) = find_node(state_dir, task, node)?;
    let export: Export = match access(state_dir, &dir, &meta)? {
        Access::Live(path) => {
            ask(&path, "export")?.export.ok_or_else(|| anyhow!("empty control answer"))?
        }
        Access::Disk(mut store) => inspect::export(&meta.task, &meta.node, &store.load()?),
    };
    let text = serde_json::to_string_pretty(&export)? + "\n";
    match output {
        Some(p) => std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?,
        None => print!("{text}"),
    }
    Ok(())
}

fn refuse_running(e: StateError) -> anyhow::Error {
    match e {
        StateError::Locked { holder, .. } => {
            anyhow!("the node is running ({holder}); stop its task first")
        }
        e => e.into(),
    }
}

fn import(
    state_dir: &Path,
    file: &Path,
    task: Option<&str>,
    node: Option<&str>,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let export: Export =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
    let states = inspect::import(&export).map_err(|e| anyhow!(e))?;
    let meta = NodeMeta {
        task: task.unwrap_or(&export.task).to_string(),
        node: node.unwrap_or(&export.node).to_string(),
        detector: states.first().map(|s| s.detector.clone()).unwrap_or_default(),
    };
    let mut store = StateStore::open(state_dir, &meta, no_wait()).map_err(refuse_running)?;
    store.load()?;
    store.commit(&states)?;
    println!("imported {} field state(s) into task {} node {}", states.len(), meta.task, meta.node);
    Ok(())
}

fn reset(state_dir: &Path, sel: &Select) -> anyhow::Result<()> {
    let (dir, _) = match find_node(state_dir, &sel.task, &sel.node) {
        Ok(found) => found,
        // A node whose meta.json is unreadable can still be moved aside.
        Err(_) if layout::node_dir(state_dir, &sel.task, &sel.node).exists() => (
            layout::node_dir(state_dir, &sel.task, &sel.node),
            NodeMeta { task: sel.task.clone(), node: sel.node.clone(), detector: String::new() },
        ),
        Err(e) => return Err(e),
    };
    if sel.group.is_none() && sel.field.is_none() {
        let to = move_aside(state_dir, &dir).map_err(refuse_running)?;
        println!("moved the state of task {} node {} to {}", sel.task, sel.node, to.display());
        return Ok(());
    }
    let mut store = StateStore::open_dir(&dir, no_wait()).map_err(refuse_running)?;
    let matching: Vec<FieldState> = store.load()?.into_iter().filter(|f| sel.matches(f)).collect();
    if matching.is_empty() {
        bail!("no matching field state for task {:?} node {:?}", sel.task, sel.node);
    }
    for f in &matching {
        store.put_aside(f, "reset by user")?;
        println!("reset field {} group {}: its state is set aside", f.field, group_text(&f.group));
    }
    Ok(())
}

/// Runs `tickwatch state …`.
pub fn run(args: &StateArgs) -> anyhow::Result<()> {
    let state_dir = args.state.resolve().ok_or_else(|| {
        anyhow!("no state directory: pass --state-dir or set TICKWATCH_STATE_DIR")
    })?;
    match &args.cmd {
        StateCmd::List { json } => list(&state_dir, *json),
        StateCmd::Show { sel, json } => show(&state_dir, &args.plugins.resolve(), sel, *json),
        StateCmd::Aside { task, node, json } => aside(&state_dir, task, node, *json),
        StateCmd::Export { task, node, output } => {
            export(&state_dir, task, node, output.as_deref())
        }
        StateCmd::Import { file, task, node } => {
            import(&state_dir, file, task.as_deref(), node.as_deref())
        }
        StateCmd::Reset { sel } => reset(&state_dir, sel),
    }
}
