pub fn daily() -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("later")
}
