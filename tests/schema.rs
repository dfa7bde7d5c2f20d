//! The one results schema: the committed `docs/results-schema.md` and
//! `.json` are what the Rust types generate, and what a real run writes
//! has exactly the keys the schema names. `SOCKBENCH_BLESS=1 cargo test
//! --test schema` writes the docs anew after a change of the types.

mod util;

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use sockbench::report::schema::{json_schema, markdown};
use util::{QUICK, private_tmp, run};

fn docs() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs")
}

#[test]
fn results_schema_docs_match_the_types() {
    let md = markdown() + "\n";
    let json = serde_json::to_string_pretty(&json_schema()).unwrap() + "\n";
    let (md_path, json_path) = (
        docs().join("results-schema.md"),
        docs().join("results-schema.json"),
    );
    if std::env::var_os("SOCKBENCH_BLESS").is_some() {
        std::fs::create_dir_all(docs()).unwrap();
        std::fs::write(&md_path, &md).unwrap();
        std::fs::write(&json_path, &json).unwrap();
        return;
    }
    for (path, want) in [(&md_path, &md), (&json_path, &json)] {
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            have == *want,
            "{} is stale: the result types changed; run `SOCKBENCH_BLESS=1 cargo test --test schema` and commit it",
            path.display()
        );
    }
}

/// The property names of definition `name` in the schema (flattened
/// fields included, as serde writes them).
fn props(schema: &Value, name: &str) -> BTreeSet<String> {
    schema["$defs"][name]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("no definition {name} in the schema"))
        .keys()
        .cloned()
        .collect()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

/// The definition a property refers to (`$ref`, possibly inside a list).
fn def_of(schema: &Value, holder: &str, field: &str) -> String {
    let node = &schema["$defs"][holder]["properties"][field];
    let r = node
        .get("$ref")
        .or_else(|| node["items"].get("$ref"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{holder}.{field} refers to no definition"));
    r.rsplit('/').next().unwrap().to_string()
}

/// Every run's files hold only fields the schema names, and every field the
/// schema names is written by some workload (`load`'s own columns by it alone).
#[test]
fn a_real_run_writes_exactly_what_the_schema_says() {
    let schema = json_schema();
    let tmp = private_tmp();
    let roots = [
        ("latency", "latency"),
        ("load", "latency"),
        ("throughput", "throughput"),
    ];
    let mut seen: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    let is_root = nix::unistd::geteuid().is_root();
    for (workload, root) in roots {
        // latency with a rung of the ladder: its report explains the layers.
        let transports = if workload == "latency" {
            "tcp4,uds-stream,futex"
        } else {
            "tcp4,uds-stream"
        };
        let mut args = vec![workload, "-t", transports, "--format", "json"];
        args.extend(QUICK);
        if workload == "load" {
            args.extend(["--rate", "2k", "--connections", "2"]);
        }
        if workload != "latency" {
            // How --precision's rounds ended (met at once: 50%).
            args.extend(["--precision", "50%"]);
        }
        if workload == "latency" {
            // Each trial's kernel events (root), its send call, its stamps.
            args.extend([
                "--trace",
                if is_root {
                    "off,count,split,stamp"
                } else {
                    "off,split,stamp"
                },
            ]);
        }
        let out = run(tmp.path(), &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        let report = schema["properties"][root]["$ref"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string();
        let case_def = def_of(&schema, &report, "cases");
        let point_def = def_of(&schema, &case_def, "trial_points");
        let cases = doc["cases"].as_array().unwrap();
        let last = cases.len() - 1;
        let stamped = cases
            .iter()
            .find(|c| c["trace"] == "stamp")
            .unwrap_or(&cases[0]);
        let parts = [
            (report.clone(), &doc),
            (case_def.clone(), &doc["cases"][0]),
            (point_def.clone(), &doc["cases"][0]["trial_points"][0]),
            // The last cases: split, and counted where the run counts.
            (point_def.clone(), &doc["cases"][last]["trial_points"][0]),
            (
                point_def.clone(),
                &doc["cases"][last.saturating_sub(1)]["trial_points"][0],
            ),
            (point_def, &stamped["trial_points"][0]),
            (def_of(&schema, &report, "ratios"), &doc["ratios"][0]),
            (def_of(&schema, &report, "env"), &doc["env"]),
        ];
        for (def, value) in parts {
            let (have, named) = (keys(value), props(&schema, &def));
            assert!(
                have.is_subset(&named),
                "{workload}: {def} has fields the schema does not name: {:?}",
                have.difference(&named).collect::<Vec<_>>()
            );
            seen.entry(def).or_default().extend(have);
        }
        assert_eq!(
            doc["schema_version"],
            sockbench::report::schema::SCHEMA_VERSION
        );
    }
    for (def, have) in seen {
        let mut named = props(&schema, &def);
        if def.contains("ThroughputRow") {
            // The ladder's layers are latency's alone.
            named.remove("explained");
        }
        if def == "TrialPoint" && !is_root {
            named.remove("events"); // --trace count needs root
        }
        assert_eq!(
            have, named,
            "{def}: fields the schema names but no run writes"
        );
    }
}
