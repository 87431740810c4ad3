//! CRI v1 ImageService: PullImage (request auth, configured mirrors) through the daemon's one
//! pull path, ListImages, ImageStatus (verbose too), RemoveImage (idempotent) and ImageFsInfo.
//! Images live in the `k8s.io` namespace; see `image/catalog.rs` for how records become CRI
//! images.

use berth_images::{normalize, RegistryConfig};
use k8s_cri::v1::image_service_server::ImageService;
use k8s_cri::v1::{
    ImageFsInfoRequest, ImageFsInfoResponse, ImageStatusRequest, ImageStatusResponse,
    ListImagesRequest, ListImagesResponse, PullImageRequest, PullImageResponse, RemoveImageRequest,
    RemoveImageResponse,
};
use tonic::{Request, Response, Status};

use super::image::{auth, catalog, fs_info};
use super::records::NS as NAMESPACE;
use crate::daemon::Shared;
use crate::error::{ApiError, ApiResult};

pub struct CriImageService {
    d: Shared,
    /// The daemon's registry hosts plus the `[cri.registry]` mirrors and credentials.
    registry: RegistryConfig,
}

impl CriImageService {
    pub fn new(d: Shared) -> anyhow::Result<CriImageService> {
        let registry = d.cfg.cri.registry.apply(&d.images.registry)?;
        Ok(CriImageService { d, registry })
    }

    fn namespace(&self) -> ApiResult<&'static str> {
        self.d.store.ensure_namespace(NAMESPACE)?;
        Ok(NAMESPACE)
    }
}

type Reply<T> = Result<Response<T>, Status>;

fn image_name(spec: Option<&k8s_cri::v1::ImageSpec>) -> ApiResult<&str> {
    spec.map(|s| s.image.as_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::InvalidArgument("no image given".into()))
}

#[tonic::async_trait]
impl ImageService for CriImageService {
    async fn list_images(&self, req: Request<ListImagesRequest>) -> Reply<ListImagesResponse> {
        let ns = self.namespace()?;
        let filter = req
            .into_inner()
            .filter
            .and_then(|f| f.image)
            .map(|s| s.image)
            .unwrap_or_default();
        let found = if filter.is_empty() {
            catalog::all(&self.d, ns)?
        } else {
            catalog::find(&self.d, ns, &filter)?.into_iter().collect()
        };
        let mut images = Vec::with_capacity(found.len());
        for img in &found {
            images.push(img.to_cri(&self.d)?);
        }
        Ok(Response::new(ListImagesResponse { images }))
    }

    async fn image_status(&self, req: Request<ImageStatusRequest>) -> Reply<ImageStatusResponse> {
        let ns = self.namespace()?;
        let r = req.into_inner();
        let name = image_name(r.image.as_ref())?;
        // A missing image is not an error: the response has no image.
        let Some(found) = catalog::find(&self.d, ns, name)? else {
            return Ok(Response::new(ImageStatusResponse::default()));
        };
        let info = if r.verbose {
            found.verbose_info(&self.d)?
        } else {
            Default::default()
        };
        Ok(Response::new(ImageStatusResponse {
            image: Some(found.to_cri(&self.d)?),
            info,
        }))
    }

    async fn pull_image(&self, req: Request<PullImageRequest>) -> Reply<PullImageResponse> {
        let ns = self.namespace()?;
        let r = req.into_inner();
        let name = image_name(r.image.as_ref())?;
        let reference = normalize(name)
            .map_err(|e| ApiError::InvalidArgument(format!("image {name:?}: {e}")))?;
        let mut registry = self.registry.clone();
        if let Some(creds) = auth::credentials(r.auth.as_ref(), &reference.registry)? {
            registry
                .hosts
                .entry(reference.registry.clone())
                .or_default()
                .auth = Some(creds);
        }
        let (img, pulled) =
            crate::images::pull_image(&self.d, ns, &reference, &registry, |_| {}).await?;
        tracing::info!(image = img.name, id = %pulled.config, "CRI image pulled");
        Ok(Response::new(PullImageResponse {
            image_ref: pulled.config.to_string(),
        }))
    }

    async fn remove_image(&self, req: Request<RemoveImageRequest>) -> Reply<RemoveImageResponse> {
        let ns = self.namespace()?;
        let r = req.into_inner();
        let name = image_name(r.image.as_ref())?;
        // Removing what is not there succeeds (kubelet retries removals).
        let Some(found) = catalog::find(&self.d, ns, name)? else {
            return Ok(Response::new(RemoveImageResponse {}));
        };
        // Like containerd: every name of the image goes, whichever one was given.
        for rec in &found.records {
            if self
                .d
                .store
                .delete_image(ns, &rec.name)
                .map_err(ApiError::from)?
            {
                self.d.bus.publish(ns, "/images/delete", &rec.name, &[]);
            }
        }
        crate::images::gc(&self.d).await?;
        Ok(Response::new(RemoveImageResponse {}))
    }

    async fn image_fs_info(&self, _req: Request<ImageFsInfoRequest>) -> Reply<ImageFsInfoResponse> {
        let d = self.d.clone();
        let usage = tokio::task::spawn_blocking(move || d.images.snapshots.disk_usage())
            .await
            .map_err(|e| ApiError::internal("image fs usage", e))?;
        let fs = fs_info::usage(
            &self.d.cfg.root.join("snapshots"),
            usage.bytes,
            usage.inodes,
        );
        // Containers' writable layers are on the same filesystem (no split image fs).
        Ok(Response::new(ImageFsInfoResponse {
            image_filesystems: vec![fs.clone()],
            container_filesystems: vec![fs],
        }))
    }
}
