//! Generates the Rust code of Berth's protobuf APIs (needs `protoc`, from protobuf-compiler).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let shim = root.join("berth/shim/v1/shim.proto");
    let api: Vec<_> = [
        "containers",
        "tasks",
        "images",
        "events",
        "namespaces",
        "networks",
        "version",
        "types",
        "maintenance",
    ]
    .iter()
    .map(|f| root.join(format!("berth/v1/{f}.proto")))
    .collect();
    println!("cargo:rerun-if-changed={}", root.display());
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_protos(&[vec![shim], api].concat(), &[root])?;
    Ok(())
}
