//! `osips`: the command-line front end of OSIPS.
//!
//! It trains (`osips train`, the same flags as `cargo run -p trainer`), swaps faces and
//! samples new faces of an identity with a trained checkpoint (`osips swap`, `osips
//! sample`), morphs, frontalizes, detects adversarial faces, evaluates checkpoints,
//! describes checkpoints and data sources, and converts between data formats.

mod infer;
mod tools;

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
    /// Morph a face's attributes from one image's to another's: a strip PNG and a GIF.
    Morph(tools::MorphArgs),
    /// Put faces into the pose, expression and light of one frontal face.
    Frontalize(tools::FrontalizeArgs),
    /// Flag images whose identity does not survive reconstruction (the paper's check for
    /// adversarial examples), with a threshold calibrated on real faces.
    Detect(tools::DetectArgs),
    /// Evaluate a checkpoint on synthetic identities never seen in training.
    Eval(tools::EvalArgs),
    /// Data sources: convert between formats.
    #[command(subcommand)]
    Data(DataCommand),
    /// Describe a checkpoint (preset, step, parameters, config) or a data source (images,
    /// identities, bad records).
    #[command(subcommand)]
    Inspect(Inspect),
}

#[derive(Subcommand)]
enum DataCommand {
    /// Convert a face source to a folder tree, an MS-Celeb-1M TSV or an insightface pack.
    Convert(tools::ConvertArgs),
}

#[derive(Subcommand)]
enum Inspect {
    /// A checkpoint (or a run directory's newest): preset, step, parameter counts, config.
    Checkpoint {
        /// The checkpoint or run directory.
        path: std::path::PathBuf,
    },
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
    trainer::configure_process();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => train(&args),
        Command::Swap(args) => infer::swap(&args),
        Command::Sample(args) => infer::sample(&args),
        Command::Morph(args) => tools::morph(&args),
        Command::Frontalize(args) => tools::frontalize(&args),
        Command::Detect(args) => tools::detect(&args),
        Command::Eval(args) => tools::eval(&args),
        Command::Data(DataCommand::Convert(args)) => tools::convert(&args),
        Command::Inspect(Inspect::Checkpoint { path }) => tools::inspect_checkpoint(&path),
        Command::Inspect(Inspect::Data {
            source,
            unlabeled,
            show_bad,
        }) => inspect_data(&source, unlabeled, show_bad),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", trainer::error_line(err.as_ref()));
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
    let config = DataConfig::for_reading(SourceSpec::parse(source)?, unlabeled);
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
