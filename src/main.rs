//! Stage: entry point. argv → plan → run → report; prints `error: …` on
//! stderr and sets the exit status (2 bad input, 1 failed run, 130 interrupted).

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use sockbench::cli::{Cli, Command, Format};
use sockbench::plan::Plan;
use sockbench::report::{self, Fingerprint};
use sockbench::{Result, cleanup, workload};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line naming the flag, the value and what is allowed: clap's
            // message up to its usage block, folded, without tips.
            let text = e.to_string();
            let line: Vec<&str> = text
                .lines()
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
                .collect();
            eprintln!("{}", line.join(" "));
            return ExitCode::from(2);
        }
    };
    cleanup::install_signal_handler();
    let result = match cli.command {
        Command::Latency(a) => Plan::latency(&a).and_then(|p| measure(&p)),
        Command::Rr(a) => Plan::rr(&a).and_then(|p| measure(&p)),
        Command::Connect(a) => Plan::connect(&a).and_then(|p| measure(&p)),
        Command::Throughput(a) => Plan::throughput(&a).and_then(|p| measure(&p)),
        Command::Env => {
            println!(
                "{}",
                serde_json::to_string_pretty(&Fingerprint::take()).expect("serialises")
            );
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            cleanup::run_all();
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

fn measure(plan: &Plan) -> Result<()> {
    let env = Fingerprint::take();
    let run = workload::run::run(plan)?;
    // The command as given; a non-UTF-8 argument is recorded with U+FFFD.
    let argv = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let report = report::build(plan, &run, argv, env);
    if let Some(out) = &plan.out {
        report::files::write_run_dir(out, &report, &run)?;
    }
    for w in report.warnings() {
        eprintln!("warning: {} ({})", w.message, w.fix);
    }
    match plan.format {
        Format::Table => print!("{}", report::table::render(&report)),
        Format::Json => print!("{}", report::files::json_string(&report)),
        Format::Csv => print!("{}", report::files::csv_string(&report)?),
    }
    Ok(())
}
