//! `cargo xtask bench`. (Being written: issue 7.)

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("bench is not written yet (issue 7)")
}
