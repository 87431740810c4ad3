//! Image references, normalized the way docker does: `busybox` is
//! `docker.io/library/busybox:latest`, `localhost:5000/x` keeps its registry, and a digest
//! (`name@sha256:...`) may replace or accompany the tag.

use std::fmt;

use crate::{Digest, ImageError};

/// The registry of names without one.
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// A fully qualified image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host (with port), e.g. `docker.io` or `localhost:5000`.
    pub registry: String,
    /// Repository path, e.g. `library/busybox`.
    pub repository: String,
    /// The tag, if any (`latest` when neither tag nor digest was given).
    pub tag: Option<String>,
    /// The digest, if any.
    pub digest: Option<Digest>,
}

impl Reference {
    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What a registry's manifest endpoint takes: the digest if any, else the tag.
    pub fn object(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = ImageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        normalize(s)
    }
}

/// Parses and normalizes a docker-style image reference.
pub fn normalize(s: &str) -> Result<Reference, ImageError> {
    let bad = |reason: &str| ImageError::InvalidReference {
        reference: s.to_string(),
        reason: reason.to_string(),
    };
    if s.is_empty() || s.len() > 4096 {
        return Err(bad("empty or too long"));
    }
    let (rest, digest) = match s.split_once('@') {
        Some((rest, d)) => (rest, Some(Digest::parse(d).map_err(|_| bad("bad digest"))?)),
        None => (s, None),
    };
    // The tag is after the last ':' of the last path component.
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (
            &rest[..last_slash + i],
            Some(rest[last_slash + i + 1..].to_string()),
        ),
        None => (rest, None),
    };
    if let Some(tag) = &tag {
        let ok = !tag.is_empty()
            && tag.len() <= 128
            && !tag.starts_with(['.', '-'])
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !ok {
            return Err(bad("bad tag"));
        }
    }
    let (registry, repository) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
    };
    let registry = match registry.as_str() {
        "index.docker.io" | "registry-1.docker.io" => DEFAULT_REGISTRY.to_string(),
        _ => registry,
    };
    if registry.is_empty()
        || !registry
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
    {
        return Err(bad("bad registry host"));
    }
    if let Some((_, port)) = registry.rsplit_once(':') {
        if !registry.ends_with(']')
            && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(bad("bad registry port"));
        }
    }
    let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository
    };
    let components_ok = repository.split('/').all(|c| {
        !c.is_empty()
            && c.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
            && c.as_bytes()[0].is_ascii_alphanumeric()
            && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
    });
    if !components_ok || repository.len() > 255 {
        return Err(bad("repository must be lowercase [a-z0-9._-] components"));
    }
    let tag = match (&tag, &digest) {
        (None, None) => Some("latest".to_string()),
        _ => tag,
    };
    Ok(Reference {
        registry,
        repository,
        tag,
        digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    #[test]
    fn docker_style_names() {
        let cases = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            ("user/app:v1", "docker.io/user/app:v1"),
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            ("index.docker.io/x/y", "docker.io/x/y:latest"),
            ("localhost:5000/x", "localhost:5000/x:latest"),
            ("localhost/x:t", "localhost/x:t"),
            ("127.0.0.1:5000/a/b/c:t-1.2", "127.0.0.1:5000/a/b/c:t-1.2"),
            ("quay.io/org/img", "quay.io/org/img:latest"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input).unwrap().to_string(), want, "{input}");
        }
        let r = normalize("localhost:5000/x").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("localhost:5000", "x")
        );
    }

    #[test]
    fn digests() {
        let r = normalize(&format!("busybox@{D}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_ref().unwrap().as_str(), D);
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{D}"));
        assert_eq!(r.object(), D);
        let r = normalize(&format!("localhost:5000/x:v2@{D}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("v2"));
        assert_eq!(r.object(), D);
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "Busybox",
            "busybox:",
            "busybox@sha256:abc",
            "a//b",
            "/abs",
            "x/../y",
            "busybox:bad/tag",
            "busybox:-x",
            "x y",
            "-x",
        ] {
            assert!(normalize(bad).is_err(), "{bad}");
        }
    }
}
