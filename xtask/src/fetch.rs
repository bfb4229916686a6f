//! `cargo xtask fetch-weights`. (Being written: issue 6.)

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("fetch-weights is not written yet (issue 6)")
}
