//! berth.v1.Images: records over the content store, pull with progress, import/export,
//! commit and diff of containers.

use std::io::Write;
use std::sync::Arc;

use berth_images::{commit_image, export_archive, import_archive, normalize, Digest, ImageChanges};
use berth_proto::v1::images_server::Images;
use berth_proto::v1::{
    CommitRequest, DeleteImageRequest, DiffEntry, DiffRequest, DiffResponse, Empty, ExportChunk,
    ExportRequest, GetImageRequest, Image, ImportChunk, ImportResponse, ListImagesRequest,
    ListImagesResponse, PullProgress, PullRequest,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Streaming};

use super::{BoxStream, Reply};
use crate::daemon::{namespace, Daemon, Shared};
use crate::error::{ApiError, ApiResult};
use crate::images::{find, full_name, image_error, pull_image, record};

pub struct ImagesService(pub Shared);

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal("worker", e))?
}

#[tonic::async_trait]
impl Images for ImagesService {
    async fn list(&self, req: Request<ListImagesRequest>) -> Reply<ListImagesResponse> {
        let ns = namespace(&self.0, &req)?;
        let filter = req.into_inner().name;
        let mut images = self.0.store.images(&ns).map_err(ApiError::from)?;
        images.retain(|i| filter.is_empty() || i.name.contains(&filter));
        Ok(tonic::Response::new(ListImagesResponse { images }))
    }

    async fn get(&self, req: Request<GetImageRequest>) -> Reply<Image> {
        let ns = namespace(&self.0, &req)?;
        Ok(tonic::Response::new(find(
            &self.0,
            &ns,
            &req.into_inner().name,
        )?))
    }

    async fn delete(&self, req: Request<DeleteImageRequest>) -> Reply<Empty> {
        let ns = namespace(&self.0, &req)?;
        let img = find(&self.0, &ns, &req.into_inner().name)?;
        self.0
            .store
            .delete_image(&ns, &img.name)
            .map_err(ApiError::from)?;
        self.0.bus.publish(&ns, "/images/delete", &img.name, &[]);
        crate::images::gc(&self.0).await?;
        Ok(tonic::Response::new(Empty {}))
    }

    type PullStream = BoxStream<PullProgress>;

    async fn pull(&self, req: Request<PullRequest>) -> Reply<Self::PullStream> {
        let ns = namespace(&self.0, &req)?;
        let r = req.into_inner();
        let reference = normalize(&r.reference)
            .map_err(|e| ApiError::InvalidArgument(format!("image {:?}: {e}", r.reference)))?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<PullProgress, tonic::Status>>(64);
        let d = self.0.clone();
        tokio::spawn(async move {
            let mut registry = d.images.registry.clone();
            if !r.platform.is_empty() {
                registry.platform = Some(r.platform.clone());
            }
            let progress_tx = tx.clone();
            let result = pull_image(&d, &ns, &reference, &registry, move |p| {
                let _ = progress_tx.try_send(Ok(PullProgress {
                    status: format!("{:?}", p.status).to_lowercase(),
                    layer: p.digest.map(|d| d.to_string()).unwrap_or_default(),
                    current: p.done,
                    total: p.total,
                    image: None,
                }));
            })
            .await;
            let done = result.map(|(img, _)| PullProgress {
                status: "done".into(),
                image: Some(img),
                ..Default::default()
            });
            let _ = tx.send(done.map_err(tonic::Status::from)).await;
        });
        Ok(tonic::Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn import(&self, req: Request<Streaming<ImportChunk>>) -> Reply<ImportResponse> {
        let ns = namespace(&self.0, &req)?;
        let mut chunks = req.into_inner();
        let tmp_dir = self.0.cfg.root.join("tmp");
        std::fs::create_dir_all(&tmp_dir).map_err(|e| ApiError::internal("tmp dir", e))?;
        let mut file = tempfile::NamedTempFile::new_in(&tmp_dir)
            .map_err(|e| ApiError::internal("temp file", e))?;
        let mut default_name = String::new();
        while let Some(c) = chunks.message().await? {
            if default_name.is_empty() && !c.name.is_empty() {
                default_name = c.name;
            }
            file.write_all(&c.data)
                .map_err(|e| ApiError::internal("spooling the archive", e))?;
        }
        let d = self.0.clone();
        let _gc = d.images.gc_lock.read().await;
        let d2 = d.clone();
        let path = file.path().to_path_buf();
        let imported = blocking(move || {
            let f = std::fs::File::open(&path).map_err(|e| ApiError::internal("archive", e))?;
            import_archive(&d2.images.content, std::io::BufReader::new(f)).map_err(image_error)
        })
        .await?;
        let mut images = Vec::new();
        for (i, im) in imported.iter().enumerate() {
            let name = match (&im.name, default_name.is_empty()) {
                (Some(n), _) => n.clone(),
                (None, false) if i == 0 => full_name(&default_name)?,
                (None, _) => format!("import-{}", &im.manifest.hex()[..12]),
            };
            let img = record(&d, &ns, &name, &im.manifest)?;
            d.bus.publish(
                &ns,
                "/images/import",
                &img.name,
                &[("digest", img.digest.clone())],
            );
            images.push(img);
        }
        Ok(tonic::Response::new(ImportResponse { images }))
    }

    type ExportStream = BoxStream<ExportChunk>;

    async fn export(&self, req: Request<ExportRequest>) -> Reply<Self::ExportStream> {
        let ns = namespace(&self.0, &req)?;
        let mut list = Vec::new();
        for name in req.into_inner().names {
            let img = find(&self.0, &ns, &name)?;
            list.push((
                img.name.clone(),
                Digest::parse(&img.digest).map_err(image_error)?,
            ));
        }
        let d = self.0.clone();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<ExportChunk, tonic::Status>>(8);
        tokio::task::spawn_blocking(move || {
            let writer = ChunkWriter { tx: tx.clone() };
            if let Err(e) = export_archive(
                &d.images.content,
                &list,
                std::io::BufWriter::with_capacity(256 * 1024, writer),
            ) {
                let _ = tx.blocking_send(Err(image_error(e).into()));
            }
        });
        Ok(tonic::Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn commit(&self, req: Request<CommitRequest>) -> Reply<Image> {
        let ns = namespace(&self.0, &req)?;
        let r = req.into_inner();
        crate::ids::validate("container id", &r.container)?;
        let c = self
            .0
            .store
            .find_container(&ns, &r.container)
            .map_err(ApiError::from)?;
        if c.snapshot_key.is_empty() {
            return Err(ApiError::FailedPrecondition(format!(
                "container {:?} does not run from an image",
                c.id
            ))
            .into());
        }
        let name = full_name(&r.name)?;
        let base = Digest::parse(&c.image_digest).map_err(image_error)?;
        let d = self.0.clone();
        let _gc = d.images.gc_lock.read().await;
        let d2 = d.clone();
        let comment = r.message.clone();
        let manifest = blocking(move || {
            let layer = d2
                .images
                .snapshots
                .commit(&c.snapshot_key, &d2.images.content)
                .map_err(image_error)?;
            let changes = ImageChanges {
                comment: (!comment.is_empty()).then_some(comment),
                ..Default::default()
            };
            commit_image(&d2.images.content, &base, &layer, Some(&changes)).map_err(image_error)
        })
        .await?;
        let img = record(&d, &ns, &name, &manifest)?;
        d.bus.publish(
            &ns,
            "/images/commit",
            &img.name,
            &[("digest", img.digest.clone())],
        );
        Ok(tonic::Response::new(img))
    }

    async fn diff(&self, req: Request<DiffRequest>) -> Reply<DiffResponse> {
        let ns = namespace(&self.0, &req)?;
        let r = req.into_inner();
        crate::ids::validate("container id", &r.container)?;
        let c = self
            .0
            .store
            .find_container(&ns, &r.container)
            .map_err(ApiError::from)?;
        if c.snapshot_key.is_empty() {
            return Err(ApiError::FailedPrecondition(format!(
                "container {:?} does not run from an image",
                c.id
            ))
            .into());
        }
        let d: Arc<Daemon> = self.0.clone();
        let changes = blocking(move || {
            d.images
                .snapshots
                .diff(&c.snapshot_key)
                .map_err(image_error)
        })
        .await?;
        let entries = changes
            .into_iter()
            .map(|ch| DiffEntry {
                kind: match ch.kind {
                    berth_images::ChangeKind::Added => "A",
                    berth_images::ChangeKind::Modified => "C",
                    berth_images::ChangeKind::Deleted => "D",
                }
                .into(),
                path: ch.path,
            })
            .collect();
        Ok(tonic::Response::new(DiffResponse { entries }))
    }
}

/// `Write` into the export stream (blocking sends from the export worker).
struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<Result<ExportChunk, tonic::Status>>,
}

impl Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Ok(ExportChunk { data: buf.to_vec() }))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
