//! berthd: Berth's daemon. The API, metadata store and shim manager arrive with the daemon issue.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("berthd is not built yet: use berth-oci to run OCI bundles")
}
