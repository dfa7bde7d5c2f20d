//! Stage: results. Writers: summary.json, summary.csv, env.json and one
//! HdrHistogram percentile-distribution (.hgrm) file per case. A run
//! directory is written into a hidden staging directory next to it and
//! renamed into place, so it is complete or absent.

use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;

use super::AnyReport;
use crate::cleanup;
use crate::error::{Error, Result};
use crate::workload::run::Run;

fn file_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::File { op, path, source }
}

/// summary.csv's content: a header and one row per case.
pub fn csv_string(report: &AnyReport) -> Result<String> {
    match report {
        AnyReport::Latency(r) => csv_rows(r.cases.iter().map(|c| &c.row)),
        AnyReport::Throughput(r) => csv_rows(r.cases.iter().map(|c| &c.row)),
    }
}

/// Rows → CSV via their JSON form, so flattened structs work and the
/// header follows field order (`serde_json`'s `preserve_order`).
fn csv_rows<'a, R: serde::Serialize + 'a>(rows: impl IntoIterator<Item = &'a R>) -> Result<String> {
    let fail =
        |e: String| file_err("write csv", Path::new("summary.csv"))(std::io::Error::other(e));
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header_written = false;
    for r in rows {
        let serde_json::Value::Object(map) =
            serde_json::to_value(r).map_err(|e| fail(e.to_string()))?
        else {
            return Err(fail("a row is not a JSON object".into()));
        };
        if !header_written {
            w.write_record(map.keys())
                .map_err(|e| fail(e.to_string()))?;
            header_written = true;
        }
        let cells = map.values().map(|v| match v {
            serde_json::Value::Null => String::new(),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        w.write_record(cells).map_err(|e| fail(e.to_string()))?;
    }
    let bytes = w.into_inner().map_err(|e| fail(e.to_string()))?;
    Ok(String::from_utf8(bytes).expect("csv is UTF-8"))
}

/// summary.json's content.
pub fn json_string(report: &AnyReport) -> String {
    let s = match report {
        AnyReport::Latency(r) => serde_json::to_string_pretty(r),
        AnyReport::Throughput(r) => serde_json::to_string_pretty(r),
    };
    s.expect("report serialises") + "\n"
}

/// A histogram of ns values as HdrHistogram's percentile distribution text,
/// values in microseconds (`.hgrm`, readable by HdrHistogram's plotter).
pub fn hgrm_string(h: &Histogram<u64>) -> String {
    const SCALE: f64 = 1000.0; // ns → µs
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let value = v.value_iterated_to() as f64 / SCALE;
        if q < 1.0 {
            let _ = writeln!(
                s,
                "{value:12.3} {q:2.12} {total:10} {:14.2}",
                1.0 / (1.0 - q)
            );
        } else {
            let _ = writeln!(s, "{value:12.3} {q:2.12} {total:10}");
        }
    }
    let _ = writeln!(
        s,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        h.mean() / SCALE,
        h.stdev() / SCALE
    );
    let _ = writeln!(
        s,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max() as f64 / SCALE,
        h.len()
    );
    let _ = writeln!(
        s,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        h.distinct_values()
    );
    s
}

/// Write the run directory `out` atomically: stage everything in
/// `.<name>.partial-<pid>` beside it, then rename. `out` may be absent or an
/// empty directory. On any failure (or Ctrl-C) the staging directory is removed.
pub fn write_run_dir(out: &Path, report: &AnyReport, run: &Run) -> Result<()> {
    let name = out.file_name().ok_or_else(|| {
        Error::config(
            "--out",
            out.display(),
            "has no final component; name a directory",
        )
    })?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let stage = parent.join(format!(
        ".{}.partial-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    fs::create_dir(&stage).map_err(file_err("create", &stage))?;
    cleanup::add_tree(&stage);
    // `out` is absent or empty (checked by the plan); rename(2) replaces an
    // empty directory.
    let result = fill(&stage, report, run).and_then(|()| {
        fs::rename(&stage, out).map_err(file_err("rename staging directory to", out))
    });
    if result.is_err() {
        let _ = fs::remove_dir_all(&stage);
    }
    cleanup::remove_tree(&stage);
    result
}

fn fill(stage: &Path, report: &AnyReport, run: &Run) -> Result<()> {
    let put = |name: &str, body: &str| -> Result<()> {
        let p = stage.join(name);
        let mut f = fs::File::create(&p).map_err(file_err("create", &p))?;
        f.write_all(body.as_bytes())
            .map_err(file_err("write", &p))?;
        f.sync_all().map_err(file_err("sync", &p))
    };
    put("summary.json", &json_string(report))?;
    put("summary.csv", &csv_string(report)?)?;
    put(
        "env.json",
        &(serde_json::to_string_pretty(report.env()).expect("fingerprint serialises") + "\n"),
    )?;
    for c in run.cases.iter().filter(|c| !c.hist.is_empty()) {
        put(
            &format!("{}.hgrm", super::case_stem(c.case.transport, &c.case)),
            &hgrm_string(&c.hist),
        )?;
    }
    Ok(())
}
