//! Stage: entry point. argv → plan → the run's directories → run → report;
//! prints `error: …` on stderr and sets the exit status (2 bad input, 1
//! failed run or output, 130 interrupted). Every write to stdout and stderr
//! is checked: a full disk, a closed pipe or a closed descriptor ends the
//! program with a status, never a panic.

mod progress;

use std::io::Write;
use std::process::ExitCode;

use clap::error::ErrorKind;
use std::io::IsTerminal;

use sockbench::cli::{Command, Format, Progress};
use sockbench::plan::Plan;
use sockbench::report::files::{Staging, estimate_bytes, stdout_bytes, write_fallback};
use sockbench::report::{self, AnyReport, Fingerprint};
use sockbench::transport::SocketDir;
use sockbench::{Error, Result, cleanup, host_sysctl, workload};

fn main() -> ExitCode {
    sockbench::sys::process::ignore_file_size_signal();
    if sockbench::sys::io::stdout_was_closed() {
        STDOUT_CLOSED.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let cli = match sockbench::cli::parse_from(std::env::args_os()) {
        Ok(c) => c,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            return match e.print() {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::from(1),
            };
        }
        // Bare `sockbench`: the usage with its subcommands, on stderr.
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return ExitCode::from(2);
        }
        Err(e) => {
            // One line naming the flag, the value and what is allowed: clap's
            // message up to its usage block, folded, its tips ("a similar
            // argument exists") kept.
            let text = e.to_string();
            let line: Vec<&str> = text
                .lines()
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            say(&line.join(" "));
            return ExitCode::from(2);
        }
    };
    let plan = match cli.command {
        Command::Latency(a) | Command::Explain(a) => Plan::latency(&a),
        Command::Rr(a) => Plan::rr(&a),
        Command::Connect(a) => Plan::connect(&a),
        Command::Throughput(a) => Plan::throughput(&a),
        Command::Load(a) => Plan::load(&a),
        Command::RestoreSysctl => {
            let (line, ok) = host_sysctl::restore_command();
            say(&line);
            return if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            };
        }
        Command::Env => {
            let text = serde_json::to_string_pretty(&Fingerprint::take()).expect("serialises");
            return match stdout(&(text + "\n")) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    if e.kind() != std::io::ErrorKind::BrokenPipe {
                        say(&format!("error: write stdout: {e}"));
                    }
                    ExitCode::from(1)
                }
            };
        }
    };
    let outcome = plan.and_then(|mut p| measure(&mut p));
    // A SIGTERM's abort under way ends the process with 130 itself; an error
    // its killed servers caused here must not end it first with 1.
    cleanup::wait_for_abort();
    match outcome {
        Ok(code) => code,
        Err(e) => {
            if let Some(host) = cleanup::run_all() {
                say(&format!(
                    "error: host sysctls NOT restored ({host}): run `sockbench restore-sysctl`"
                ));
            }
            say(&format!("error: {e}"));
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

fn measure(plan: &mut Plan) -> Result<ExitCode> {
    // The safety net first: the reaper exists before anything is made (it
    // learns of each directory before it exists, of the host's journal
    // before it appears), and the signal handler cleans up what is made.
    cleanup::start_reaper().map_err(|e| Error::Setup {
        op: "fork",
        target: "cleanup reaper".into(),
        transport: "-",
        size: 0,
        source: e,
    })?;
    cleanup::install_signal_handler(cleanup::OnInterrupt::Finish);
    // Host sysctls a killed run left changed: restored (root) or named,
    // before anything is measured under them.
    if let Some(line) = host_sysctl::recover_before_run(plan)? {
        say(&line);
    }
    check_stdout_room(plan)?;
    // What the run makes on disk is made before any timed work: a bad place
    // is bad input (exit 2).
    let dir = if plan.cases.iter().any(|c| c.transport.needs_dir()) {
        Some(SocketDir::new()?)
    } else {
        None
    };
    let staging = match &plan.out {
        Some(out) => Some(Staging::prepare(
            out,
            estimate_bytes(
                plan.cases.len()
                    * if plan.workload.sweeps() {
                        workload::sweep::MAX_STEPS
                    } else {
                        1
                    },
                plan.trials,
            ),
        )?),
        None => None,
    };
    // Host-wide sysctls (`--allow-host-sysctl`): journaled before the first
    // change (the reaper restores them even after a SIGKILL), each value
    // tried and read back.
    host_sysctl::hold(plan)?;
    let plan: &Plan = plan;
    for note in &plan.notes {
        say(note);
    }
    let env = Fingerprint::take();
    let watch = std::sync::Arc::new(workload::run::Watch::new(plan.cases.len()));
    let shown = match plan.progress {
        Progress::Auto => std::io::stderr().is_terminal(),
        Progress::Always => true,
        Progress::Never => false,
    };
    let run = if plan.workload.sweeps() {
        // Its steps are found as it goes: a line per step instead of a bar.
        workload::sweep::sweep(plan, dir.as_ref(), None, &mut |line| {
            if !matches!(plan.progress, Progress::Never) {
                say(line)
            }
        })?
    } else {
        let _drawing = shown.then(|| progress::Drawing::start(plan, watch.clone()));
        // `--precision`'s check runs on the (pinned) client thread between
        // rounds: its bootstraps in a one-thread rayon pool made of that
        // thread, so no unpinned worker wakes beside the next trial.
        let widest = |cases: &[workload::run::CaseOutcome]| {
            thread_local! {
                static HERE: Option<rayon::ThreadPool> = rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .use_current_thread()
                    .build()
                    .ok();
            }
            HERE.with(|pool| match pool {
                Some(p) => p.install(|| report::widest(plan, cases)),
                None => report::widest(plan, cases),
            })
        };
        workload::run::run(plan, dir.as_ref(), Some(&watch), Some(&widest))?
    };
    if let Err(e) = cleanup::release_host() {
        say(&format!(
            "error: restoring host sysctls: {e}; the journal {} stays for `sockbench restore-sysctl`",
            sockbench::sys::sysctl::journal_path().display()
        ));
    }
    if run.rounds == 0 {
        return Err(Error::Interrupted); // stopped before a round was complete: nothing to keep
    }
    // The command as given; a non-UTF-8 argument is recorded with U+FFFD.
    let argv = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let report = report::build(plan, &run, argv, env);
    if !plan.quiet {
        // On a terminal, each warning wrapped to its width at word
        // boundaries; to a file or a pipe, one line each (for grep).
        let width = console::Term::stderr()
            .size_checked()
            .map(|(_, c)| usize::from(c));
        for w in report.warnings() {
            if !plan.no_warn.contains(&w.code) {
                let line = format!("warning: {} ({})", w.message, w.fix);
                say(&match width {
                    Some(c) => report::text::wrap(&line, c.saturating_sub(1).max(20), 2),
                    None => line,
                });
            }
        }
    }
    let mut code = ExitCode::SUCCESS;
    let printed = results(plan, &report).and_then(|text| {
        stdout(&text).map_err(|e| Error::File {
            op: "write",
            path: "stdout".into(),
            source: e,
        })
    });
    // A finished measurement is never lost: if stdout failed (but for a
    // reader that went away) and there is no --out, keep a copy.
    if let Err(e) = printed {
        code = ExitCode::from(1);
        match &e {
            Error::File { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe => {}
            _ if staging.is_none() => keep_copy(&report, &run, &e.to_string()),
            _ => say(&format!("error: {e}")),
        }
    }
    if let Some(st) = staging {
        let out = st.out().display().to_string();
        if let Err(e) = st.commit(&report, &run) {
            keep_copy(&report, &run, &format!("could not write --out {out}: {e}"));
            code = ExitCode::from(1);
        }
    }
    if run.rounds < plan.trials {
        // Stopped by a first Ctrl-C: what was kept is out, and marked so.
        return Ok(ExitCode::from(130));
    }
    Ok(code)
}

/// stdout sent to a regular file under a file size limit (`ulimit -f`)
/// too small for the results is bad input, before anything is measured.
fn check_stdout_room(plan: &Plan) -> Result<()> {
    let Some(limit) = sockbench::sys::fs::file_size_limit() else {
        return Ok(());
    };
    let stdout = std::io::stdout();
    let Some(at) = sockbench::sys::fs::regular_file_offset(std::os::fd::AsFd::as_fd(&stdout))
    else {
        return Ok(());
    };
    let need = at + stdout_bytes(plan.format, plan.cases.len(), plan.trials);
    if limit >= need {
        return Ok(());
    }
    let format = match plan.format {
        Format::Table => "table",
        Format::Json => "json",
        Format::Csv => "csv",
    };
    Err(Error::config(
        "--format",
        format,
        format!(
            "stdout is a file and the file size limit (ulimit -f) is {limit} B; the results may need up to \
             {need} B: raise it (ulimit -f unlimited) or give --out"
        ),
    ))
}

/// The results as the format asks.
fn results(plan: &Plan, report: &AnyReport) -> Result<String> {
    Ok(match plan.format {
        Format::Table => report::table::render(report, plan.wide),
        Format::Json => report::files::json_string(report),
        Format::Csv => report::files::csv_string(report)?,
    })
}

/// Write a copy of the results under $TMPDIR and say where (or that even
/// that failed), after `why`.
fn keep_copy(report: &AnyReport, run: &workload::run::Run, why: &str) {
    match write_fallback(report, run) {
        Ok(p) => say(&format!(
            "error: {why}; the results are kept in {}",
            p.display()
        )),
        Err(e2) => say(&format!(
            "error: {why}; no copy could be kept either ({e2})"
        )),
    }
}

/// stdout was closed when the program started (Rust pointed it at /dev/null).
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Write all of `text` to stdout and flush.
fn stdout(text: &str) -> std::io::Result<()> {
    if STDOUT_CLOSED.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(std::io::Error::from_raw_os_error(libc::EBADF));
    }
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// One line on stderr. If stderr itself cannot be written (a full disk, a
/// closed descriptor) there is nowhere left to say so: the line is dropped,
/// and the exit status still tells.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
