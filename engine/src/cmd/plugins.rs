//! `tickwatch plugins` (what is installed) and `tickwatch info` (how to use
//! one detector from a TICKscript and kapacitor.conf).

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;
use tickwatch_plugin_api::abi::ABI_VERSION;
use tickwatch_plugin_api::{OptionSpec, Value, ValueKind};

use crate::cmd::{out, outln, table};
use crate::node::DetectorFactory;
use crate::node::config::{DEFAULT_FIELD_TAG, FIELD_OPTION, FIELD_TAG_OPTION, value_json};
use crate::plugin::Registry;

/// What `tickwatch info` describes.
#[derive(Debug, Clone)]
pub struct InfoConfig {
    /// The detector.
    pub detector: String,
    /// The `--field-arity` it will be served with.
    pub field_arity: usize,
    /// Directories searched.
    pub plugin_dirs: Vec<PathBuf>,
    /// Directories the user named (they must reach the served process too).
    pub given_dirs: Vec<PathBuf>,
}

#[derive(Debug, Serialize)]
struct OptionOut {
    types: Vec<&'static str>,
    default: Option<serde_json::Value>,
    help: String,
    /// Whether the option shapes the detector's saved state (in the
    /// options fingerprint stored beside it).
    shapes_state: bool,
}

/// A JSON object whose keys keep their order (serde_json's own map sorts
/// them): options are shown in the order the detector declares them.
#[derive(Debug)]
struct Ordered<T>(Vec<(String, T)>);

impl<T: Serialize> Serialize for Ordered<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[derive(Debug, Serialize)]
struct PluginOut {
    name: Option<String>,
    version: Option<String>,
    abi: Option<u32>,
    path: PathBuf,
    options: Option<Ordered<OptionOut>>,
    error: Option<String>,
}

fn kind_name(k: ValueKind) -> &'static str {
    match k {
        ValueKind::Bool => "BOOL",
        ValueKind::Int => "INT",
        ValueKind::Double => "DOUBLE",
        ValueKind::String => "STRING",
        ValueKind::Duration => "DURATION",
    }
}

/// TICKscript literal for a value.
fn literal(v: &Value) -> String {
    match v {
        Value::Duration(ns) if *ns % 60_000_000_000 == 0 => format!("{}m", ns / 60_000_000_000),
        Value::Duration(ns) if *ns % 1_000_000_000 == 0 => format!("{}s", ns / 1_000_000_000),
        Value::Duration(ns) if *ns % 1_000_000 == 0 => format!("{}ms", ns / 1_000_000),
        Value::Duration(ns) => format!("{}u", ns / 1_000),
        other => other.to_string(),
    }
}

/// A value to show in a ready-to-paste snippet: the default, else a
/// plausible one for the printer scenario.
fn example(spec: &OptionSpec) -> String {
    if let Some(d) = &spec.default {
        return literal(d);
    }
    match (spec.kind, spec.name.as_str()) {
        (ValueKind::Int, "size") => "3600".into(),
        (ValueKind::Int, _) => "10".into(),
        (ValueKind::Double, "alpha") => "0.001".into(),
        (ValueKind::Double, _) => "1.0".into(),
        (ValueKind::Bool, _) => "TRUE".into(),
        (ValueKind::String, _) => "'value'".into(),
        (ValueKind::Duration, _) => "5m".into(),
    }
}

/// Runs `tickwatch plugins` over `dirs`.
pub fn plugins(dirs: &[PathBuf], json: bool) -> anyhow::Result<()> {
    let reg = Registry::discover(dirs);
    let mut out: Vec<PluginOut> = reg
        .plugins()
        .iter()
        .map(|p| PluginOut {
            name: Some(p.name().into()),
            version: Some(p.version().into()),
            abi: Some(ABI_VERSION),
            path: p.path().to_path_buf(),
            options: Some(Ordered(
                p.options()
                    .iter()
                    .map(|o| {
                        let v = OptionOut {
                            types: vec![kind_name(o.kind)],
                            default: o.default.as_ref().map(value_json),
                            help: o.help.clone(),
                            shapes_state: o.shapes_state,
                        };
                        (o.name.clone(), v)
                    })
                    .collect(),
            )),
            error: None,
        })
        .collect();
    out.extend(reg.failures().iter().map(|(path, e)| PluginOut {
        name: None,
        version: None,
        abi: None,
        path: path.clone(),
        options: None,
        error: Some(e.clone()),
    }));
    if json {
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if reg.plugins().is_empty() {
        let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        for (path, e) in reg.failures() {
            outln!("not loaded: {}: {e}", path.display());
        }
        anyhow::bail!(
            "no detector plugins found (searched {}); install the shipped plugins \
             (libtickwatch_*.so) into PREFIX/lib/tickwatch/plugins next to PREFIX/bin/tickwatch \
             (scripts/install.sh does), or point --plugin-dir or TICKWATCH_PLUGIN_DIR at them",
            dirs.join(", ")
        );
    }
    for p in reg.plugins() {
        outln!("{} {} (ABI {ABI_VERSION})  {}", p.name(), p.version(), p.path().display());
        let rows: Vec<Vec<String>> = p
            .options()
            .iter()
            .map(|o| {
                let default = o
                    .default
                    .as_ref()
                    .map_or("required".to_string(), |d| format!("default {}", literal(d)));
                let state = if o.shapes_state { "shapes state" } else { "scoring only" };
                vec![
                    format!("    {}", o.name),
                    kind_name(o.kind).to_string(),
                    default,
                    state.to_string(),
                    o.help.clone(),
                ]
            })
            .collect();
        out!("{}", table::render(&["    OPTION", "TYPE", "DEFAULT", "STATE", "HELP"], &rows, &[]));
    }
    for (path, e) in reg.failures() {
        outln!("not loaded: {}: {e}", path.display());
    }
    Ok(())
}

/// The text of `tickwatch info`.
pub fn info_text(
    name: &str,
    version: &str,
    path: &std::path::Path,
    specs: &[OptionSpec],
    field_arity: usize,
    exe: &str,
    plugin_dirs: Option<&str>,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "detector {name} {version} ({})\n", path.display());
    let _ = writeln!(s, "Options a TICKscript can use on @{name}():");
    let fields: Vec<String> = ["'hotend'", "'bed'", "'air'"]
        .iter()
        .map(|f| f.to_string())
        .chain(std::iter::repeat("''".to_string()))
        .take(field_arity)
        .collect();
    let field_call = format!(".{FIELD_OPTION}({})", fields.join(","));
    let mut rows = vec![
        (
            field_call.clone(),
            format!("STRING × {field_arity}"),
            "fields to track; exactly this many per call: pad with '' and call again for more"
                .to_string(),
        ),
        (
            format!(".{FIELD_TAG_OPTION}('{DEFAULT_FIELD_TAG}')"),
            "STRING".into(),
            format!(
                "tag that carries the field name on emitted points (default '{DEFAULT_FIELD_TAG}')"
            ),
        ),
    ];
    rows.push((
        ".period(5m).every(5m)".into(),
        "DURATION each".into(),
        "stream edges only: the windows tickwatch forms, as |window().period().every()".into(),
    ));
    rows.push((
        ".align()".into(),
        "no argument".into(),
        "stream edges only: window ends on multiples of every, as |window().align()".into(),
    ));
    rows.push((
        ".passThrough()".into(),
        "no argument".into(),
        "emit the input points with anomalous/pvalue added (field_-prefixed for several fields)"
            .into(),
    ));
    for o in specs {
        let req = if o.default.is_some() { "" } else { ", required" };
        rows.push((
            format!(".{}({})", o.name, example(o)),
            format!("{}{req}", kind_name(o.kind)),
            o.help.clone(),
        ));
    }
    let rows: Vec<Vec<String>> =
        rows.into_iter().map(|(a, b, c)| vec![format!("  {a}"), b, c]).collect();
    // The table's header is not part of the snippet: drop its first line.
    let text = table::render(&["", "", ""], &rows, &[]);
    s.push_str(text.split_once('\n').map_or("", |(_, rest)| rest));
    // The snippet sets the required options; the table above lists the rest.
    let chain: String = std::iter::once(field_call)
        .chain(
            specs
                .iter()
                .filter(|o| o.default.is_none())
                .map(|o| format!(".{}({})", o.name, example(o))),
        )
        .collect();
    let plugin_env =
        plugin_dirs.map(|d| format!("\n    TICKWATCH_PLUGIN_DIR = \"{d}\"")).unwrap_or_default();
    let arity_arg = if field_arity == 3 {
        String::new()
    } else {
        format!(", \"--field-arity\", \"{field_arity}\"")
    };
    let _ = writeln!(
        s,
        "\nkapacitor.conf (batch edges, after |window(); and stream edges, points \
         straight from |from()):\n\
         [udf.functions.{name}]\n  \
           prog = \"{exe}\"\n  \
           args = [\"serve\", \"--detector\", \"{name}\"{arity_arg}]\n  \
           timeout = \"10s\"\n  \
           [udf.functions.{name}.env]\n    \
             TICKWATCH_STATE_DIR = \"/var/lib/tickwatch\"{plugin_env}\n\
         [udf.functions.{name}Stream]\n  \
           prog = \"{exe}\"\n  \
           args = [\"serve\", \"--detector\", \"{name}\", \"--edge\", \"stream\"{arity_arg}]\n  \
           timeout = \"10s\"\n  \
           [udf.functions.{name}Stream.env]\n    \
             TICKWATCH_STATE_DIR = \"/var/lib/tickwatch\"{plugin_env}\n"
    );
    let alert = format!(
        "    |alert()\n        \
             .id('{{{{ index .Tags \"{DEFAULT_FIELD_TAG}\" }}}}')\n        \
             .message('{{{{ .ID }}}} p={{{{ index .Fields \"pvalue\" }}}}')\n        \
             .crit(lambda: \"anomalous\" == TRUE)\n        \
             .log('/var/log/kapacitor/{name}.log')"
    );
    let _ = writeln!(
        s,
        "TICKscript (batch edges):\n\
         dbrp \"printer\".\"autogen\"\n\n\
         stream\n    \
           |from()\n        .measurement('temperatures')\n    \
           |window()\n        .period(5m)\n        .every(5m)\n    \
           @{name}(){chain}\n\
         {alert}\n\n\
         TICKscript (stream edges: the same windows, formed by tickwatch):\n\
         dbrp \"printer\".\"autogen\"\n\n\
         stream\n    \
           |from()\n        .measurement('temperatures')\n    \
           @{name}Stream(){chain}\n        .period(5m)\n        .every(5m)\n\
         {alert}"
    );
    s
}

/// Runs `tickwatch info`.
pub fn info(args: &InfoConfig) -> anyhow::Result<()> {
    if args.field_arity == 0 {
        anyhow::bail!("--field-arity must be at least 1");
    }
    let plugin = Registry::require(&args.detector, &args.plugin_dirs)?;
    let exe = std::env::current_exe().context("cannot find the tickwatch binary")?;
    let exe = exe.canonicalize().unwrap_or(exe);
    // Plugin directories the user named must reach the served process too.
    let given_dirs = (!args.given_dirs.is_empty()).then(|| {
        let abs: Vec<String> = args
            .given_dirs
            .iter()
            .map(|d| d.canonicalize().unwrap_or_else(|_| d.clone()).display().to_string())
            .collect();
        abs.join(":")
    });
    out!(
        "{}",
        info_text(
            plugin.name(),
            plugin.version(),
            plugin.path(),
            plugin.options(),
            args.field_arity,
            &exe.display().to_string(),
            given_dirs.as_deref(),
        )
    );
    Ok(())
}
