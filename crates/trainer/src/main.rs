//! `cargo run --release -p trainer`: train the tiny preset on synthetic faces (see --help).

use std::process::ExitCode;

use clap::Parser;
use trainer::cli::TrainArgs;

#[derive(Parser)]
#[command(name = "trainer", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    args: TrainArgs,
}

fn main() -> ExitCode {
    trainer::configure_process();
    let cli = Cli::parse();
    match train(&cli.args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", trainer::error_line(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn train(args: &TrainArgs) -> anyhow::Result<()> {
    let config = args.resolve()?;
    if args.dry_run {
        print!("{}", config.to_toml()?);
        return Ok(());
    }
    let options = args.options()?;
    let summary = trainer::run(config, &options)?;
    print!("{}", summary.report());
    Ok(())
}
