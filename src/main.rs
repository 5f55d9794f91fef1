use clap::{Parser, Subcommand};

/// opsplit: migrate legacy sock_ops BPF objects to per-op struct_ops programs.
#[derive(Parser)]
#[command(name = "opsplit", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {}

fn main() {
    let cli = Cli::parse();
    match cli.command {}
}
