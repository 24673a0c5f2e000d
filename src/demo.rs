//! `tapswitch demo` (filled in below).
pub async fn demo(_a: crate::cli::DemoArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
