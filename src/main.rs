use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use opsplit::cli::{self, Exit};

/// opsplit: migrate legacy sock_ops BPF objects to per-op struct_ops programs.
#[derive(Parser)]
#[command(name = "opsplit", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what opsplit reads from objects: programs, maps, externs, and (--disasm) code with
    /// source lines. A directory stands for the *.o files in it.
    Dump {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Disassemble every function (llvm-objdump syntax, BTF line info as `; source`).
        #[arg(long)]
        disasm: bool,
    },
    /// Per sock_ops program: what every op runs and touches, its bpf_tcp_ops member (or
    /// residual), and migration findings. A directory stands for the *.o files in it.
    Inspect {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// JSON output (schema: docs/INSPECT_JSON.md).
        #[arg(long)]
        json: bool,
        /// Only the program with this name.
        #[arg(long)]
        program: Option<String>,
        /// Only this op: a number, BPF_SOCK_OPS_RTT_CB, RTT_CB or the member name (rtt).
        #[arg(long, value_parser = parse_op)]
        op: Option<u8>,
        /// Every function's instructions with the ops that run them.
        #[arg(long)]
        disasm: bool,
    },
    /// Split every sock_ops program per op: per-op programs behind a PROG_ARRAY dispatcher that
    /// keeps the original name and section (docs/SPLIT.md). Prints a report per program and op.
    Convert {
        file: PathBuf,
        /// Output object.
        #[arg(short = 'o', long = "output", value_name = "OUT.o")]
        output: PathBuf,
        /// Output form; `split` is the only one so far.
        #[arg(long, value_parser = ["split"], default_value = "split")]
        target: String,
        /// Also write the report as JSON to FILE.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Skip the check that runs original and output side by side in the embedded runtime on
        /// every built-in scenario (as `opsplit verify` does; exit 3 when they differ).
        #[arg(long)]
        no_verify: bool,
    },
    /// Load an object into the kernel (verifier result and verified_insns per program) and
    /// attach its sock_ops programs to a cgroup v2: in the foreground with process-owned
    /// bpf_links (released on exit), or pinned under --pin DIR. See docs/LOADING.md.
    Load {
        file: PathBuf,
        /// cgroup v2 directory to attach to (required unless --dry-run).
        #[arg(long, required_unless_present = "dry_run")]
        cgroup: Option<PathBuf>,
        /// Pin programs, maps and links under DIR (bpffs, new or empty) and return.
        #[arg(long, value_name = "DIR")]
        pin: Option<PathBuf>,
        /// Swap this attached program (id) for the object's single sock_ops program atomically.
        #[arg(long, value_name = "PROG_ID", conflicts_with = "replace_pinned")]
        replace: Option<u32>,
        /// Like --replace, naming a pinned program or pinned cgroup link.
        #[arg(long, value_name = "PATH")]
        replace_pinned: Option<PathBuf>,
        /// Load and verify, then release everything (CI mode).
        #[arg(long, conflicts_with_all = ["pin", "replace", "replace_pinned"])]
        dry_run: bool,
        /// Foreground runs stop after SECS seconds (as if SIGTERM arrived).
        #[arg(long, value_name = "SECS", conflicts_with_all = ["pin", "replace", "replace_pinned", "dry_run"])]
        duration: Option<f64>,
    },
    /// Detach and remove everything `opsplit load --pin DIR` created in DIR (and nothing else).
    Unload { dir: PathBuf },
    /// Run ORIGINAL and CANDIDATE in the embedded runtime on the same scenario events and
    /// compare everything observable (docs/SCENARIOS.md). Exit 3 on any difference.
    Verify {
        original: PathBuf,
        candidate: PathBuf,
        /// One built-in scenario (default: all of them).
        #[arg(long, conflicts_with = "trace")]
        scenario: Option<String>,
        /// Events from a JSON Lines file.
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

fn parse_op(s: &str) -> Result<u8, String> {
    opsplit::optable::parse_op(s)
        .ok_or_else(|| format!("unknown op `{s}` (0..=255 or a BPF_SOCK_OPS_* name)"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let exit = match cli.command {
        Command::Dump { files, disasm } => dump(&files, disasm),
        Command::Inspect {
            files,
            json,
            program,
            op,
            disasm,
        } => inspect(
            &files,
            json,
            &cli::inspect::InspectOptions {
                program,
                op,
                disasm,
            },
        ),
        Command::Convert {
            file,
            output,
            target: _,
            report,
            no_verify,
        } => convert(
            &file,
            &cli::convert::ConvertOptions {
                output,
                target: cli::convert::Target::Split,
                report,
                no_verify,
            },
        ),
        Command::Load {
            file,
            cgroup,
            pin,
            replace,
            replace_pinned,
            dry_run,
            duration,
        } => {
            let duration = match duration {
                Some(s) if !(s.is_finite() && s >= 0.0) => {
                    eprintln!("opsplit: --duration must be a non-negative number of seconds");
                    return ExitCode::from(Exit::Usage as u8);
                }
                d => d.map(std::time::Duration::from_secs_f64),
            };
            let replace = replace
                .map(cli::load::Replace::ProgId)
                .or(replace_pinned.map(cli::load::Replace::Pinned));
            cli::load::run(
                &cli::load::LoadOptions {
                    file,
                    cgroup,
                    pin,
                    replace,
                    dry_run,
                    duration,
                },
                &mut std::io::stdout(),
            )
        }
        Command::Unload { dir } => cli::load::unload(&dir, &mut std::io::stdout()),
        Command::Verify {
            original,
            candidate,
            scenario,
            trace,
            json,
        } => {
            let opts = cli::verify::VerifyOptions {
                scenario,
                trace,
                json,
            };
            match cli::verify::run(&original, &candidate, &opts, &mut std::io::stdout()) {
                Ok(exit) => exit,
                Err(e) => {
                    eprintln!("opsplit: {e}");
                    Exit::Input
                }
            }
        }
    };
    ExitCode::from(exit as u8)
}

fn dump(files: &[PathBuf], disasm: bool) -> Exit {
    let files = match cli::expand_inputs(files) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("opsplit: {e}");
            return Exit::Input;
        }
    };
    let mut exit = Exit::Ok;
    for path in &files {
        match cli::read_object(path) {
            Ok(obj) => {
                if files.len() > 1 {
                    println!("==> {} <==", path.display());
                }
                print!(
                    "{}",
                    cli::dump::render(&obj, cli::dump::DumpOptions { disasm })
                );
            }
            Err(e) => {
                eprintln!("opsplit: {e}");
                exit = Exit::Input;
            }
        }
    }
    exit
}

fn inspect(files: &[PathBuf], json: bool, opts: &cli::inspect::InspectOptions) -> Exit {
    let files = match cli::expand_inputs(files) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("opsplit: {e}");
            return Exit::Input;
        }
    };
    let report = cli::inspect::run(&files, opts);
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("opsplit: {e}");
                return Exit::Input;
            }
        }
    } else {
        print!("{}", cli::inspect::render_text(&report, opts));
    }
    for f in &report.files {
        if let Some(e) = &f.error {
            eprintln!("opsplit: {e}");
        }
    }
    for p in &report.programs {
        if let Some(e) = &p.error {
            eprintln!("opsplit: {}: {e}", p.file);
        }
    }
    if cli::inspect::has_errors(&report) {
        Exit::Input
    } else {
        Exit::Ok
    }
}

fn convert(file: &std::path::Path, opts: &cli::convert::ConvertOptions) -> Exit {
    match cli::convert::run(file, opts) {
        Ok(doc) => print!("{}", cli::convert::render_text(&doc)),
        Err(e) => {
            eprintln!("opsplit: {e}");
            return Exit::Input;
        }
    }
    if opts.no_verify {
        println!("\nruntime verification skipped (--no-verify)");
        return Exit::Ok;
    }
    match cli::convert::verify_output(file, &opts.output) {
        Ok(report) => {
            println!("\nruntime verification (embedded runtime, original vs output):");
            print!("{}", cli::verify::render_text(&report));
            if report.equal() {
                Exit::Ok
            } else {
                eprintln!(
                    "opsplit: {} behaves differently from {} in the embedded runtime",
                    opts.output.display(),
                    file.display()
                );
                Exit::Differs
            }
        }
        Err(e) => {
            eprintln!("opsplit: {e}");
            Exit::Input
        }
    }
}
