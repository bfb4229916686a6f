//! `osips`: the command-line front end of OSIPS.
//!
//! It trains (`osips train`, the same flags as `cargo run -p trainer`), swaps faces and
//! samples new faces of an identity with a trained checkpoint (`osips swap`, `osips
//! sample`), and describes data sources (`osips inspect data KIND:PATH`).

mod infer;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use osips_data::{DataConfig, Dataset, SourceSpec};
use trainer::cli::TrainArgs;

#[derive(Parser)]
#[command(
    name = "osips",
    version,
    about = "Open-set identity-preserving face synthesis (Bao et al., CVPR 2018)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model (the same as `cargo run --release -p trainer`).
    ///
    /// With no flags: the tiny preset on synthetic faces for 20 minutes, then an
    /// evaluation on 200 identities never seen in training.
    Train(TrainArgs),
    /// Put the identity of one face on the pose, expression, light and background of
    /// another.
    ///
    /// IDENTITY and ATTRIBUTE are image files or folders of them; with folders the output
    /// is a grid: identities as rows, attributes as columns, the inputs along the edges.
    Swap(infer::SwapArgs),
    /// Synthesize new faces of a person, with random attributes (open-set synthesis).
    Sample(infer::SampleArgs),
    /// Describe something.
    #[command(subcommand)]
    Inspect(Inspect),
}

#[derive(Subcommand)]
enum Inspect {
    /// A data source: images, identities, and the bad records found while indexing it.
    Data {
        /// synthetic:N, folder:PATH (one sub-folder per identity), tsv:PATH (MS-Celeb-1M),
        /// recordio:PATH (insightface train.rec + train.idx).
        #[arg(value_name = "KIND:PATH")]
        source: String,
        /// A folder of extra face images without identity labels.
        #[arg(long, value_name = "PATH")]
        unlabeled: Option<std::path::PathBuf>,
        /// How many bad records to list.
        #[arg(long, default_value_t = 20)]
        show_bad: usize,
    },
}

fn main() -> ExitCode {
    trainer::configure_cpu_threads();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => train(&args),
        Command::Swap(args) => infer::swap(&args),
        Command::Sample(args) => infer::sample(&args),
        Command::Inspect(Inspect::Data {
            source,
            unlabeled,
            show_bad,
        }) => inspect_data(&source, unlabeled, show_bad),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn train(args: &TrainArgs) -> Result<()> {
    let config = args.resolve()?;
    if args.dry_run {
        print!("{}", config.to_toml()?);
        return Ok(());
    }
    let summary = trainer::run(config, &args.options()?)?;
    print!("{}", summary.report());
    Ok(())
}

fn inspect_data(
    source: &str,
    unlabeled: Option<std::path::PathBuf>,
    show_bad: usize,
) -> Result<()> {
    let config = DataConfig {
        source: SourceSpec::parse(source)?,
        unlabeled,
        image_size: 64,
        batch_size: 1,
        flip: false,
        prefetch: 0,
        seed: 0,
    };
    let dataset = Dataset::open(&config)?;
    println!("source:      {}", dataset.describe());
    println!("images:      {}", dataset.len());
    println!("identities:  {}", dataset.n_identities());
    let report = dataset.report();
    println!("bad records: {}", report.n_bad());
    if report.n_bad() > 0 {
        println!("{}", report.summary(show_bad));
    }
    Ok(())
}
