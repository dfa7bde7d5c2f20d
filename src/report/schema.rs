//! Stage: results (the schema). The one definition of every result file,
//! as Rust types: summary.json of each workload (and summary.csv, its rows
//! flat), with each case's `.hgrm` file named in it, and the summary.json
//! that `scripts/webbench` writes for nginx → gunicorn, which follows the
//! same schema. `docs/results-schema.md` and `docs/results-schema.json` are
//! generated from these types (`tests/schema.rs` fails when they are stale,
//! and writes them anew with `SOCKBENCH_BLESS=1`); the Python loader checks
//! its columns against the JSON.

use schemars::JsonSchema;
use serde_json::Value;

use super::{CaseRow, RatioRow, Report, ThroughputRow};

/// Version of the results schema, written into every summary.json. 2: the
/// per-trial start/end, timed seconds, TIME_WAIT per side, idle-ended
/// trials, the .hgrm file name per case; p50/mean are per-trial statistics.
/// 3: a ratio's CI is null below 5 rounds and every ratio has a verdict
/// (transport ratios too); throughput ratios divide time per byte
/// (`ns_per_byte`, below 1 faster) instead of bytes/s; trials may carry
/// `stamps`; the explained estimates' `split_us`/`agree` may be null.
pub const SCHEMA_VERSION: u32 = 3;

/// Every result file sockbench and its scripts write.
#[derive(JsonSchema)]
pub struct ResultFiles {
    /// summary.json of `sockbench latency`, `rr` or `connect`.
    pub latency: Report<CaseRow>,
    /// summary.json of `sockbench throughput`.
    pub throughput: Report<ThroughputRow>,
    /// summary.json of `scripts/webbench` (nginx → gunicorn).
    pub web: WebReport,
}

/// summary.json of `scripts/webbench`: wrk → nginx → gunicorn over TCP and
/// over a Unix socket, with upstream keepalive off and on.
#[derive(JsonSchema)]
pub struct WebReport {
    /// Version of this schema (see `SCHEMA_VERSION`).
    pub schema_version: u32,
    /// `sockbench webbench`.
    pub tool: String,
    /// `http`.
    pub workload: String,
    /// The command as given.
    pub command: Vec<String>,
    /// Connections, durations, placement and the servers' settings.
    pub settings: serde_json::Map<String, Value>,
    /// Wall time of the run, s.
    pub elapsed_s: f64,
    /// One per (variant, body size, application work).
    pub cases: Vec<WebRow>,
    /// UDS ÷ TCP per body size, application work and metric.
    pub ratios: Vec<RatioRow>,
    /// Always empty: webbench has no result-quality checks of its own.
    pub warnings: Vec<super::Warning>,
    /// The machine (`sockbench env`).
    pub env: super::Fingerprint,
}

/// One nginx → gunicorn case: medians over the A B B A rounds of wrk.
#[derive(JsonSchema)]
pub struct WebRow {
    /// `http-close-app<W>us` or `http-keepalive-app<W>us`.
    pub workload: String,
    /// The upstream: `tcp4` (127.0.0.1) or `uds-stream` (a socket file).
    pub transport: String,
    /// Response body, bytes.
    pub size_bytes: u64,
    /// The same as `size_bytes`.
    pub response_bytes: u64,
    /// wrk's connections (requests in flight).
    pub depth: u64,
    /// Always 1.
    pub pairs: u64,
    /// `tcp`, `uds`, `tcp-ka` or `uds-ka`.
    pub variant: String,
    /// nginx keeps its upstream connections alive.
    pub upstream_keepalive: bool,
    /// CPU the application burns per request, µs.
    pub app_work_us: u64,
    /// wrk's connections.
    pub connections: u64,
    /// Median over rounds of wrk's p50, ns; its 95% bootstrap CI.
    pub p50_ns: f64,
    /// Low end of the p50's 95% bootstrap CI over rounds.
    pub p50_ci_low_ns: f64,
    /// High end of that CI.
    pub p50_ci_high_ns: f64,
    /// Medians over rounds of wrk's percentiles and mean, ns.
    pub p90_ns: f64,
    /// Median over rounds of wrk's p99, ns.
    pub p99_ns: f64,
    /// Median over rounds of wrk's p99.9, ns.
    pub p999_ns: f64,
    /// Median over rounds of wrk's mean, ns.
    pub mean_ns: f64,
    /// The largest latency of any round, ns.
    pub max_ns: f64,
    /// Median over rounds of requests per second.
    pub ops_per_s: f64,
    /// Requests over all rounds.
    pub requests: u64,
    /// Rounds.
    pub trials: u64,
    /// Each round's figures.
    pub trial_points: Vec<WebTrialPoint>,
}

/// One wrk run of a web case.
#[derive(JsonSchema)]
pub struct WebTrialPoint {
    /// Round (0-based): the rounds of the four variants are paired.
    pub round: u32,
    /// wrk's p50, p99 and mean of the round, ns.
    pub p50_ns: f64,
    /// Median over rounds of wrk's p99, ns.
    pub p99_ns: f64,
    /// Median over rounds of wrk's mean, ns.
    pub mean_ns: f64,
    /// Requests per second of the round.
    pub ops_per_s: f64,
}

/// The JSON Schema of every result file (draft 2020-12), from the types.
pub fn json_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(ResultFiles)).expect("a schema is JSON")
}

/// The type of a schema node, as people read it.
/// A definition's heading in words where its Rust name is not one (the
/// generic reports and cases), else the name itself.
fn title(name: &str) -> &str {
    match name {
        "ResultFiles" => "The result files",
        "Report_for_CaseRow" => "summary.json of latency, rr, connect and load",
        "Report_for_ThroughputRow" => "summary.json of throughput",
        "CaseJson_for_CaseRow" => "A case of latency, rr, connect or load",
        "CaseJson_for_ThroughputRow" => "A case of throughput",
        other => other,
    }
}

fn type_of(node: &Value) -> String {
    if let Some(r) = node.get("$ref").and_then(Value::as_str) {
        return format!("[{0}](#{1})", title(short(r)), short(r).to_lowercase());
    }
    if let Some(items) = node.get("items") {
        return format!("list of {}", type_of(items));
    }
    if let Some(c) = node.get("const").and_then(Value::as_str) {
        // A documented enum variant: its value, and what it means.
        return match node.get("description").and_then(Value::as_str) {
            Some(d) => format!("`{c}` ({})", line(d)),
            None => format!("`{c}`"),
        };
    }
    if let Some(variants) = node.get("enum").and_then(Value::as_array) {
        let v: Vec<String> = variants
            .iter()
            .map(|x| format!("`{}`", x.as_str().unwrap_or("?")))
            .collect();
        return v.join(", ");
    }
    if let Some(any) = node
        .get("anyOf")
        .or_else(|| node.get("oneOf"))
        .and_then(Value::as_array)
    {
        let v: Vec<String> = any.iter().map(type_of).collect();
        let all_consts = any.iter().all(|x| x.get("const").is_some());
        return v.join(if all_consts { ", " } else { " or " });
    }
    match node.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ if node.get("additionalProperties").is_some() => "object".into(),
        _ => "any".into(),
    }
}

fn short(r: &str) -> &str {
    r.rsplit('/').next().unwrap_or(r)
}

/// One line of Markdown: a description, folded.
fn line(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// `docs/results-schema.md`: every type of [`ResultFiles`], a table of
/// its fields each (name, type, meaning), from the types' doc comments.
pub fn markdown() -> String {
    let schema = json_schema();
    let mut out = vec![
        "# Results schema".to_string(),
        String::new(),
        format!(
            "Generated from the Rust types in `src/report/` (`tests/schema.rs`; regenerate with \
             `SOCKBENCH_BLESS=1 cargo test --test schema`). Schema version {SCHEMA_VERSION}, written \
             into every summary.json as `schema_version`. The JSON Schema is in \
             [results-schema.json](results-schema.json)."
        ),
        String::new(),
        "Files of a run directory (`sockbench <workload> --out DIR`): `summary.json` (below), \
         `summary.csv` (the case rows without their trial points, one line each, columns in the \
         order below), `env.json` (the [Fingerprint](#fingerprint)), and one HdrHistogram \
         percentile file per latency case, named in the case's `hgrm_file` (values in µs). \
         Times are ns unless a name says otherwise; latencies of `latency` are round trips."
            .to_string(),
        String::new(),
    ];
    let defs = schema
        .get("$defs")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut names: Vec<&String> = defs.keys().collect();
    // The top level first, then the rest in name order.
    names.sort_by_key(|n| (!n.starts_with("Report"), n.to_lowercase()));
    let root = [("ResultFiles".to_string(), schema.clone())];
    for (name, def) in root
        .iter()
        .map(|(n, d)| (n, d))
        .chain(names.into_iter().map(|n| (n, &defs[n])))
    {
        // The anchor stays the type's name (links elsewhere use it).
        if title(name) == name.as_str() {
            out.push(format!("## {name}"));
        } else {
            out.push(format!("<a id=\"{}\"></a>", name.to_lowercase()));
            out.push(String::new());
            out.push(format!("## {} (`{name}`)", title(name)));
        }
        out.push(String::new());
        if let Some(d) = def.get("description").and_then(Value::as_str) {
            out.push(line(d));
            out.push(String::new());
        }
        if let Some(props) = def.get("properties").and_then(Value::as_object) {
            out.push("| field | type | meaning |".into());
            out.push("|---|---|---|".into());
            for (k, v) in props {
                let d = v.get("description").and_then(Value::as_str).unwrap_or("");
                out.push(format!("| `{k}` | {} | {} |", type_of(v), line(d)));
            }
            out.push(String::new());
        } else {
            out.push(format!("One of: {}.", type_of(def)));
            out.push(String::new());
        }
    }
    out.join("\n")
}
