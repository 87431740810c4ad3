//! berth-shim: one detached process per container. Arrives with the shim issue.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("berth-shim is not built yet")
}
