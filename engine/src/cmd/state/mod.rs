//! `tickwatch state list|show|aside|export|import|reset|adopt`: persisted node state,
//! readable whether or not the node is running. A stopped node's database is
//! opened directly; a running node (its database locked by the serving
//! process) is asked through its control socket, read-only. Changes (import,
//! reset, adopt) refuse a running node: its worker owns the database and
//! its detectors, and a change behind its back would be overwritten by its
//! next commit.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde::Serialize;
use tickwatch_state::store::{AsideRecord, move_aside};
use tickwatch_state::{FieldState, NodeMeta, StateError, StateStore, StoreOptions, layout};

use crate::cmd::{out, outln};
use crate::control::{self, Request, Response};
use crate::inspect::{self, AsideRow, Export, FieldRow};
use crate::kapacitor::group_label;
use crate::node::DetectorFactory;
use crate::node::config::{
    DEFAULT_FIELD_TAG, NodeConfig, describing_options, fingerprint, options_from_json,
};
use crate::plugin::{Plugin, Registry};

/// Which node, and optionally which group and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Task id.
    pub task: String,
    /// Node id.
    pub node: String,
    /// Only this group id.
    pub group: Option<String>,
    /// Only this field.
    pub field: Option<String>,
}

impl Selection {
    fn matches(&self, group: &str, field: &str) -> bool {
        self.group.as_ref().is_none_or(|g| g == group)
            && self.field.as_ref().is_none_or(|f| f == field)
    }
}

/// A `tickwatch state` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateCommand {
    /// Every node with its fields.
    List {
        /// JSON output.
        json: bool,
    },
    /// Per (group, field) summaries.
    Show {
        /// Which node and fields.
        sel: Selection,
        /// JSON output.
        json: bool,
    },
    /// State kept aside.
    Aside {
        /// Task id.
        task: String,
        /// Node id.
        node: String,
        /// JSON output.
        json: bool,
    },
    /// Exact state as JSON.
    Export {
        /// Task id.
        task: String,
        /// Node id.
        node: String,
        /// Output file (stdout when `None`).
        output: Option<PathBuf>,
    },
    /// Load an export back.
    Import {
        /// The export file.
        file: PathBuf,
        /// Task id to import into (default: the export's).
        task: Option<String>,
        /// Node id to import into (default: the export's).
        node: Option<String>,
    },
    /// Reset a field or a whole node.
    Reset {
        /// Which node and fields.
        sel: Selection,
    },
    /// Bring compatible state set aside back.
    Adopt {
        /// Which node and fields.
        sel: Selection,
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

fn ask(path: &Path, request: Request) -> anyhow::Result<Response> {
    let resp = control::query(path, request)?.ok_or_else(|| {
        anyhow!("the node is running but its control socket {} does not answer", path.display())
    })?;
    if let Response::Error(e) = resp {
        bail!("the running node answered: {e}");
    }
    Ok(resp)
}

fn unexpected(r: &Response) -> anyhow::Error {
    anyhow!("the running node answered another question: {r:?}")
}

fn ask_export(path: &Path) -> anyhow::Result<Export> {
    match ask(path, Request::Export)? {
        Response::Export(e) => Ok(e),
        other => Err(unexpected(&other)),
    }
}

fn fields(access: &mut Access) -> anyhow::Result<(Vec<FieldState>, bool)> {
    match access {
        Access::Disk(s) => Ok((s.load()?, false)),
        Access::Live(path) => Ok((inspect::import(&ask_export(path)?)?, true)),
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

/// Left-aligned columns (see [`crate::cmd::table`]).
fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    crate::cmd::table::render(head, rows, &[])
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
                        last_time: inspect::rfc3339(f.provenance.last_time),
                        last_time_ns: f.provenance.last_time,
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
        outln!("{}", serde_json::to_string_pretty(&nodes)?);
        return Ok(());
    }
    if nodes.is_empty() {
        outln!("no node state in {}", state_dir.display());
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
                group_label(&f.group),
                f.last_time.clone(),
            ]);
        }
    }
    out!(
        "{}",
        table(&["TASK", "NODE", "STATUS", "DETECTOR", "FIELD", "GROUP", "LAST BATCH"], &rows)
    );
    Ok(())
}

fn show(
    state_dir: &Path,
    plugin_dirs: &[PathBuf],
    sel: &Selection,
    json: bool,
) -> anyhow::Result<()> {
    let (dir, meta) = find_node(state_dir, &sel.task, &sel.node)?;
    let mut rows: Vec<FieldRow> = match access(state_dir, &dir, &meta)? {
        Access::Live(path) => match ask(&path, Request::Show)? {
            Response::Rows(rows) => rows,
            other => return Err(unexpected(&other)),
        },
        Access::Disk(mut store) => {
            let fs = store.load()?;
            let registry = Registry::discover(plugin_dirs);
            let mut plugins: HashMap<String, Option<Arc<Plugin>>> = HashMap::new();
            fs.iter()
                .map(|f| {
                    let detector = &f.provenance.detector;
                    let plugin = plugins
                        .entry(detector.clone())
                        .or_insert_with(|| registry.get(detector).cloned());
                    let summary = match plugin {
                        Some(p) => {
                            let recorded = meta
                                .options
                                .as_ref()
                                .and_then(|o| options_from_json(o, p.options()).ok());
                            match describing_options(
                                &f.provenance.options,
                                p.options(),
                                recorded.as_ref(),
                            ) {
                                Ok(opts) => inspect::describe(p.as_ref(), &opts, f),
                                Err(e) => {
                                    tracing::warn!("{e}");
                                    serde_json::Value::Null
                                }
                            }
                        }
                        None => {
                            tracing::warn!(
                                "detector {} not found in the plugin directories: no summary",
                                detector
                            );
                            serde_json::Value::Null
                        }
                    };
                    inspect::row(&meta.task, &meta.node, f, summary)
                })
                .collect()
        }
    };
    rows.retain(|r| sel.matches(&r.group, &r.field));
    if json {
        outln!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        outln!("no matching field state for task {:?} node {:?}", sel.task, sel.node);
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
                group_label(&r.group),
                r.field.clone(),
                r.detector.clone(),
                r.last_time.clone(),
                summary,
            ]
        })
        .collect();
    outln!("task {} node {}", sel.task, sel.node);
    out!("{}", table(&["GROUP", "FIELD", "DETECTOR", "LAST BATCH", "STATE"], &table_rows));
    Ok(())
}

fn aside(state_dir: &Path, task: &str, node: &str, json: bool) -> anyhow::Result<()> {
    let (dir, meta) = find_node(state_dir, task, node)?;
    let rows: Vec<AsideRow> = match access(state_dir, &dir, &meta)? {
        Access::Live(path) => match ask(&path, Request::Aside)? {
            Response::Aside(rows) => rows,
            other => return Err(unexpected(&other)),
        },
        Access::Disk(store) => inspect::aside_rows(&store.reader().aside()?),
    };
    let rows: Vec<inspect::AsideOut> = rows.iter().map(inspect::AsideOut::from).collect();
    if json {
        outln!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        outln!("no state set aside for task {task:?} node {node:?}");
        return Ok(());
    }
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                group_label(&r.group),
                r.field.clone(),
                format!(
                    "{} {} (state {})",
                    r.provenance.detector,
                    r.provenance.detector_version,
                    r.provenance.state_version
                ),
                r.provenance.options.to_string(),
                r.provenance.last_time.clone(),
                r.set_aside_at.clone(),
                r.reason.clone(),
            ]
        })
        .collect();
    out!(
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
        Access::Live(path) => ask_export(&path)?,
        Access::Disk(mut store) => inspect::export(&meta.task, &meta.node, &store.load()?),
    };
    let text = serde_json::to_string_pretty(&inspect::export_file(&export))? + "\n";
    match output {
        Some(p) => std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?,
        None => out!("{text}"),
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
        inspect::parse_export(&text).with_context(|| format!("reading {}", file.display()))?;
    let states = inspect::import(&export)?;
    let (task, node) = (task.unwrap_or(&export.task), node.unwrap_or(&export.node));
    let detector = states.first().map(|s| s.provenance.detector.clone()).unwrap_or_default();
    // The node's recorded configuration, if it has one, stays: importing
    // state does not change how the node is configured.
    let recorded = layout::read_meta(&layout::node_dir(state_dir, task, node))
        .ok()
        .filter(|m| m.detector == detector);
    let meta = NodeMeta {
        options: recorded.as_ref().and_then(|m| m.options.clone()),
        fields: recorded.map(|m| m.fields).unwrap_or_default(),
        ..NodeMeta::new(task, node, &detector)
    };
    let mut store = StateStore::open(state_dir, &meta, no_wait()).map_err(refuse_running)?;
    store.commit(&states)?;
    outln!("imported {} field state(s) into task {} node {}", states.len(), meta.task, meta.node);
    Ok(())
}

fn reset(state_dir: &Path, sel: &Selection) -> anyhow::Result<()> {
    let (dir, _) = match find_node(state_dir, &sel.task, &sel.node) {
        Ok(found) => found,
        // A node whose meta.json is unreadable can still be moved aside.
        Err(_) if layout::node_dir(state_dir, &sel.task, &sel.node).exists() => (
            layout::node_dir(state_dir, &sel.task, &sel.node),
            NodeMeta::new(&sel.task, &sel.node, ""),
        ),
        Err(e) => return Err(e),
    };
    if sel.group.is_none() && sel.field.is_none() {
        let to = move_aside(state_dir, &dir).map_err(refuse_running)?;
        outln!("moved the state of task {} node {} to {}", sel.task, sel.node, to.display());
        return Ok(());
    }
    let mut store = StateStore::open_dir(&dir, no_wait()).map_err(refuse_running)?;
    let matching: Vec<FieldState> =
        store.load()?.into_iter().filter(|f| sel.matches(&f.group, &f.field)).collect();
    if matching.is_empty() {
        bail!("no matching field state for task {:?} node {:?}", sel.task, sel.node);
    }
    for f in &matching {
        store.put_aside(f, "reset by user")?;
        outln!("reset field {} group {}: its state is set aside", f.field, group_label(&f.group));
    }
    Ok(())
}

/// The node as it was last configured (from its `meta.json`), to judge
/// state against.
fn configured_node(
    meta: &NodeMeta,
    plugin_dirs: &[PathBuf],
) -> anyhow::Result<(crate::node::Node, Arc<Plugin>)> {
    let Some(options) = &meta.options else {
        bail!(
            "the options of task {:?} node {:?} are not recorded (it last ran under an older \
             tickwatch); run its task once, stop it, then adopt",
            meta.task,
            meta.node
        );
    };
    let plugin = Registry::require(&meta.detector, plugin_dirs)?;
    let detector_options = options_from_json(options, plugin.options())
        .with_context(|| format!("reading the node's options {options}"))?;
    let config = NodeConfig {
        fields: meta.fields.clone(),
        field_tag: DEFAULT_FIELD_TAG.to_string(),
        // Neither shapes a detector's state: adopt only asks whether the
        // set-aside state fits the detector.
        window: None,
        pass_through: false,
        fingerprint: fingerprint(&detector_options, plugin.options()),
        detector_options,
    };
    let factory: crate::node::Factory = plugin.clone();
    let label = format!("task {} node {}", meta.task, meta.node);
    let node = crate::node::Node::new(factory, config, &label)
        .context("the node's recorded options no longer build its detector")?;
    Ok((node, plugin))
}

fn adopt(state_dir: &Path, plugin_dirs: &[PathBuf], sel: &Selection) -> anyhow::Result<()> {
    let (dir, meta) = find_node(state_dir, &sel.task, &sel.node)?;
    let mut store = StateStore::open_dir(&dir, no_wait()).map_err(|e| match e {
        StateError::Locked { holder, .. } => anyhow!(
            "the node is running ({holder}); adopt changes the state its running process owns: \
             stop its task (kapacitor disable), adopt, then enable it"
        ),
        e => e.into(),
    })?;
    let (node, _plugin) = configured_node(&meta, plugin_dirs)?;
    let records: Vec<(Vec<u8>, AsideRecord)> = store
        .reader()
        .aside_keyed()?
        .into_iter()
        .filter(|(_, r)| sel.matches(&r.state.group, &r.state.field))
        .collect();
    if records.is_empty() {
        bail!("no state set aside for task {:?} node {:?} matches", sel.task, sel.node);
    }
    // Per (group, field), the newest compatible record (by its last batch,
    // then by when it was set aside).
    let mut chosen: BTreeMap<(String, String), (Vec<u8>, AsideRecord)> = BTreeMap::new();
    let mut refused = Vec::new();
    for (key, r) in records {
        if let Some(why) = node.judge(&r.state) {
            refused.push(format!(
                "field {} group {} (set aside {}): {why}",
                r.state.field,
                group_label(&r.state.group),
                inspect::rfc3339_ms(r.at_ms)
            ));
            continue;
        }
        let k = (r.state.group.clone(), r.state.field.clone());
        let newer = |old: &AsideRecord| {
            (r.state.provenance.last_time, r.at_ms) > (old.state.provenance.last_time, old.at_ms)
        };
        if chosen.get(&k).is_none_or(|(_, old)| newer(old)) {
            chosen.insert(k, (key, r));
        }
    }
    if chosen.is_empty() {
        bail!(
            "no state set aside for task {:?} node {:?} is compatible with its current \
             configuration ({} {}):\n  {}",
            sel.task,
            sel.node,
            meta.detector,
            meta.options.as_ref().map(|o| o.to_string()).unwrap_or_default(),
            refused.join("\n  ")
        );
    }
    for why in &refused {
        tracing::warn!("not adopted: {why}");
    }
    let current: HashMap<(String, String), FieldState> =
        store.load()?.into_iter().map(|f| ((f.group.clone(), f.field.clone()), f)).collect();
    for ((group, field), (key, record)) in &chosen {
        let replaced = current.get(&(group.clone(), field.clone()));
        store.adopt_aside(key, record, replaced, "replaced by state adopt")?;
        outln!(
            "adopted field {field} group {}: state with last batch at {}, set aside {} ({}){}",
            group_label(group),
            inspect::rfc3339(record.state.provenance.last_time),
            inspect::rfc3339_ms(record.at_ms),
            record.reason,
            if replaced.is_some() { "; the field's newer state is set aside" } else { "" }
        );
    }
    Ok(())
}

/// Runs `tickwatch state …` on `state_dir`.
pub fn run(state_dir: &Path, plugin_dirs: &[PathBuf], cmd: StateCommand) -> anyhow::Result<()> {
    match cmd {
        StateCommand::List { json } => list(state_dir, json),
        StateCommand::Show { sel, json } => show(state_dir, plugin_dirs, &sel, json),
        StateCommand::Aside { task, node, json } => aside(state_dir, &task, &node, json),
        StateCommand::Export { task, node, output } => {
            export(state_dir, &task, &node, output.as_deref())
        }
        StateCommand::Import { file, task, node } => {
            import(state_dir, &file, task.as_deref(), node.as_deref())
        }
        StateCommand::Reset { sel } => reset(state_dir, &sel),
        StateCommand::Adopt { sel } => adopt(state_dir, plugin_dirs, &sel),
    }
}
