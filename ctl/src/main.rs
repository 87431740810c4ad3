//! berthctl: Berth's CLI. Arrives with the daemon issue.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("berthctl is not built yet: use berth-oci to run OCI bundles")
}
