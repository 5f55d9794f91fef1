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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let exit = match cli.command {
        Command::Dump { files, disasm } => dump(&files, disasm),
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
