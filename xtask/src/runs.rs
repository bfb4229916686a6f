//! `cargo xtask train | sweep | report`. (Being written: issue 6.)

#[derive(clap::Args)]
pub struct TrainArgs {}
#[derive(clap::Args)]
pub struct SweepArgs {}
#[derive(clap::Args)]
pub struct ReportArgs {}

pub fn train(_args: TrainArgs) -> anyhow::Result<()> {
    anyhow::bail!("xtask train is not written yet (issue 6)")
}
pub fn sweep(_args: SweepArgs) -> anyhow::Result<()> {
    anyhow::bail!("xtask sweep is not written yet (issue 6)")
}
pub fn report(_args: ReportArgs) -> anyhow::Result<()> {
    anyhow::bail!("xtask report is not written yet (issue 6)")
}
