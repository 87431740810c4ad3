//! berth-oci: a runc-compatible front end of berth-runtime.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
