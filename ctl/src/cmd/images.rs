//! images, pull, import, save, rmi, commit, diff.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use berth_proto::v1::{
    CommitRequest, DeleteImageRequest, DiffRequest, ExportRequest, ImportChunk, ListImagesRequest,
    PullRequest,
};
use serde_json::json;

use crate::client::Clients;
use crate::output::{self, Format};

#[derive(clap::Args)]
pub struct ImagesArgs {
    /// Only ids... names.
    #[arg(short = 'q', long)]
    quiet: bool,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(clap::Args)]
pub struct PullArgs {
    /// os/arch[/variant]
    #[arg(long)]
    platform: Option<String>,
    /// No progress bars.
    #[arg(short = 'q', long)]
    quiet: bool,
    reference: String,
}

#[derive(clap::Args)]
pub struct ImportArgs {
    /// Name for an image the archive leaves unnamed.
    #[arg(long)]
    name: Option<String>,
    /// The archive (OCI layout or `docker save` tar); `-` reads stdin.
    file: String,
}

#[derive(clap::Args)]
pub struct SaveArgs {
    /// Write to this file instead of stdout.
    #[arg(short = 'o', long)]
    output: Option<String>,
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(clap::Args)]
pub struct RmiArgs {
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(clap::Args)]
pub struct CommitArgs {
    /// Commit message.
    #[arg(short = 'm', long)]
    message: Option<String>,
    container: String,
    image: String,
}

#[derive(clap::Args)]
pub struct DiffArgs {
    container: String,
}

pub async fn images(c: Clients, a: ImagesArgs) -> anyhow::Result<i32> {
    let list = c
        .images
        .clone()
        .list(ListImagesRequest::default())
        .await?
        .into_inner()
        .images;
    if a.quiet {
        for i in &list {
            println!("{}", i.name);
        }
        return Ok(0);
    }
    match a.format {
        Format::Json => output::json(
            &list
                .iter()
                .map(|i| json!({"name": i.name, "digest": i.digest, "size": i.size, "created_at_ns": i.created_at_ns}))
                .collect::<Vec<_>>(),
        )?,
        Format::Table => {
            let rows: Vec<_> = list
                .iter()
                .map(|i| {
                    vec![
                        i.name.clone(),
                        i.digest.trim_start_matches("sha256:").chars().take(12).collect(),
                        output::ago(i.created_at_ns),
                        output::bytes(i.size),
                    ]
                })
                .collect();
            output::table(&["REPOSITORY:TAG", "DIGEST", "CREATED", "SIZE"], &rows);
        }
    }
    Ok(0)
}

pub async fn pull(c: Clients, a: PullArgs) -> anyhow::Result<i32> {
    let mut stream = c
        .images
        .clone()
        .pull(PullRequest {
            reference: a.reference.clone(),
            platform: a.platform.unwrap_or_default(),
        })
        .await?
        .into_inner();
    let tty = nix::unistd::isatty(std::io::stderr()).unwrap_or(false) && !a.quiet;
    let mut layers: BTreeMap<String, (String, u64, u64)> = BTreeMap::new();
    let mut drawn = 0usize;
    let mut err = std::io::stderr();
    while let Some(p) = stream.message().await? {
        if let Some(img) = p.image {
            if tty {
                redraw(&mut err, &layers, &mut drawn);
            }
            println!("{} {}", img.name, img.digest);
            return Ok(0);
        }
        if p.layer.is_empty() {
            continue;
        }
        layers.insert(p.layer.clone(), (p.status.clone(), p.current, p.total));
        if tty {
            redraw(&mut err, &layers, &mut drawn);
        } else if !a.quiet && (p.status == "done" || p.status == "exists") {
            let _ = writeln!(err, "{} {}", short(&p.layer), p.status);
        }
    }
    anyhow::bail!("the pull ended without an image")
}

fn short(digest: &str) -> String {
    digest
        .trim_start_matches("sha256:")
        .chars()
        .take(12)
        .collect()
}

/// One progress bar per blob, redrawn in place.
fn redraw(w: &mut impl Write, layers: &BTreeMap<String, (String, u64, u64)>, drawn: &mut usize) {
    if *drawn > 0 {
        let _ = write!(w, "\x1b[{}A", drawn);
    }
    for (digest, (status, cur, total)) in layers {
        let width = 30usize;
        let filled = if *total > 0 {
            ((*cur as f64 / *total as f64) * width as f64) as usize
        } else {
            0
        };
        let bar = format!(
            "{}{}",
            "=".repeat(filled.min(width)),
            " ".repeat(width - filled.min(width))
        );
        let _ = writeln!(
            w,
            "\x1b[2K{} [{bar}] {:>10} / {:<10} {status}",
            short(digest),
            output::bytes(*cur),
            output::bytes(*total)
        );
    }
    *drawn = layers.len();
    let _ = w.flush();
}

pub async fn import(c: Clients, a: ImportArgs) -> anyhow::Result<i32> {
    let mut reader: Box<dyn Read + Send> = if a.file == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(&a.file).map_err(|e| anyhow::anyhow!("{}: {e}", a.file))?)
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<ImportChunk>(8);
    let name = a.name.unwrap_or_default();
    let total = std::fs::metadata(&a.file).map(|m| m.len()).unwrap_or(0);
    let reading = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut buf = vec![0u8; 256 * 1024];
        let mut first = true;
        let mut sent = 0u64;
        let tty = nix::unistd::isatty(std::io::stderr()).unwrap_or(false);
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            sent += n as u64;
            if tty && total > 0 {
                eprint!(
                    "\r\x1b[2Kimporting {} / {}",
                    output::bytes(sent),
                    output::bytes(total)
                );
            }
            let chunk = ImportChunk {
                data: buf[..n].to_vec(),
                name: if first { name.clone() } else { String::new() },
            };
            first = false;
            if tx.blocking_send(chunk).is_err() {
                break;
            }
        }
        if tty && total > 0 {
            eprintln!();
        }
        Ok(())
    });
    let resp = c
        .images
        .clone()
        .import(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await;
    reading.await??;
    for img in resp?.into_inner().images {
        println!("{} {}", img.name, img.digest);
    }
    Ok(0)
}

pub async fn save(c: Clients, a: SaveArgs) -> anyhow::Result<i32> {
    let mut stream = c
        .images
        .clone()
        .export(ExportRequest { names: a.images })
        .await?
        .into_inner();
    let mut out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(std::fs::File::create(p).map_err(|e| anyhow::anyhow!("{p}: {e}"))?),
        None => {
            anyhow::ensure!(
                !nix::unistd::isatty(std::io::stdout()).unwrap_or(false),
                "refusing to write an archive to a terminal: use -o FILE or redirect"
            );
            Box::new(std::io::stdout())
        }
    };
    while let Some(chunk) = stream.message().await? {
        out.write_all(&chunk.data)?;
    }
    out.flush()?;
    Ok(0)
}

pub async fn rmi(c: Clients, a: RmiArgs) -> anyhow::Result<i32> {
    for name in a.images {
        c.images
            .clone()
            .delete(DeleteImageRequest { name: name.clone() })
            .await?;
        println!("{name}");
    }
    Ok(0)
}

pub async fn commit(c: Clients, a: CommitArgs) -> anyhow::Result<i32> {
    let img = c
        .images
        .clone()
        .commit(CommitRequest {
            container: a.container,
            name: a.image,
            message: a.message.unwrap_or_default(),
        })
        .await?
        .into_inner();
    println!("{} {}", img.name, img.digest);
    Ok(0)
}

pub async fn diff(c: Clients, a: DiffArgs) -> anyhow::Result<i32> {
    let entries = c
        .images
        .clone()
        .diff(DiffRequest {
            container: a.container,
        })
        .await?
        .into_inner()
        .entries;
    for e in entries {
        println!("{} {}", e.kind, e.path);
    }
    Ok(0)
}
