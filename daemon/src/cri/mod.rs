//! Kubernetes CRI v1 on berthd's socket. Every CRI object lives in the `k8s.io` namespace.

pub mod image;
pub mod image_service;

/// The namespace of everything CRI creates.
pub const NAMESPACE: &str = "k8s.io";
