//! CNI invocation (spec 1.0.0, also 0.3.x/0.4.0 configurations and results): ADD, CHECK and DEL
//! of a network configuration list on a container's network namespace, with the ADD cached per
//! attachment for DEL and CHECK. Async: plugins run as `tokio::process` children.

mod cache;
mod config;
mod error;
mod exec;
mod result;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

pub use cache::CachedAttachment;
pub use config::{find_network, load_file, load_networks, NetworkConfigList};
pub use error::CniError;
pub use result::{CniResult, Dns, Interface, IpConfig, IpNet, IpNetParseError, Route};

use exec::{Invocation, Op};

/// The default plugin search path.
pub const DEFAULT_PLUGIN_DIRS: [&str; 2] = ["/usr/lib/cni", "/opt/cni/bin"];
/// The default configuration directory.
pub const DEFAULT_CONF_DIR: &str = "/etc/cni/net.d";

/// One container interface on one network: what the plugins are told besides the config.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    /// The container ID (`CNI_CONTAINERID`); a safe file name.
    pub container_id: String,
    /// The network namespace path (`CNI_NETNS`).
    pub netns: PathBuf,
    /// The interface name inside the container (`CNI_IFNAME`).
    pub ifname: String,
    /// `CNI_ARGS` pairs (`IgnoreUnknown=1`, `IP=...`).
    pub args: Vec<(String, String)>,
    /// Capability arguments (`portMappings`, ...), given as `runtimeConfig` to the plugins that
    /// declare them in their `capabilities`.
    pub runtime_config: Map<String, Value>,
}

impl Attachment {
    /// An attachment with no CNI_ARGS and no runtime config.
    pub fn new(container_id: &str, netns: &Path, ifname: &str) -> Self {
        Attachment {
            container_id: container_id.to_string(),
            netns: netns.to_path_buf(),
            ifname: ifname.to_string(),
            args: Vec::new(),
            runtime_config: Map::new(),
        }
    }
}

/// Runs CNI plugins from a search path and caches ADD results under a cache directory.
#[derive(Debug, Clone)]
pub struct Cni {
    plugin_dirs: Vec<PathBuf>,
    cache_dir: PathBuf,
    timeout: Duration,
}

impl Cni {
    /// A client searching `plugin_dirs` in order and caching under `cache_dir/results`.
    pub fn new(plugin_dirs: Vec<PathBuf>, cache_dir: PathBuf) -> Self {
        Cni {
            plugin_dirs,
            cache_dir,
            timeout: Duration::from_secs(60),
        }
    }

    /// Sets how long one plugin may run before it is killed (default 60 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// ADD: runs the plugins in order, each getting the previous one's result as
    /// `prevResult`, and caches the final result. The attachment is cached before the first
    /// plugin runs and the result after each plugin, so a failed or interrupted ADD can still
    /// be undone with [`Cni::del`] (DEL then gets the last result reached as `prevResult`).
    pub async fn add(
        &self,
        net: &NetworkConfigList,
        att: &Attachment,
    ) -> Result<CniResult, CniError> {
        validate_attachment(att)?;
        let mut entry = CachedAttachment {
            kind: cache::CACHE_KIND.to_string(),
            container_id: att.container_id.clone(),
            if_name: att.ifname.clone(),
            network_name: net.name.clone(),
            netns: att.netns.clone(),
            config: net.to_json(),
            cni_args: att.args.clone(),
            runtime_config: att.runtime_config.clone(),
            result: Value::Null,
        };
        cache::write(&self.cache_dir, &entry)?;
        let inv = self.invocation(Op::Add, att);
        let mut prev: Option<Value> = None;
        for (index, plugin) in net.plugin_types().into_iter().enumerate() {
            let stdin = net
                .plugin_stdin(index, &att.runtime_config, prev.as_ref())
                .unwrap_or(Value::Null);
            prev = exec::run_plugin(plugin, &stdin, &inv).await?;
            // Keep the result so far: if a later plugin fails (or we crash), DEL gets the
            // addresses as prevResult, which plugins like firewall need to undo their rules.
            entry.result = prev.clone().unwrap_or(Value::Null);
            cache::write(&self.cache_dir, &entry)?;
        }
        let last = net.plugin_types().last().copied().unwrap_or_default();
        let raw = prev.ok_or_else(|| CniError::InvalidResult {
            plugin: last.to_string(),
            reason: "no result".into(),
        })?;
        let result = CniResult::from_value(&raw).map_err(|e| CniError::InvalidResult {
            plugin: last.to_string(),
            reason: e.to_string(),
        })?;
        Ok(result)
    }

    /// CHECK: runs the plugins in order with the cached result as `prevResult`. Does nothing
    /// for networks older than 0.4.0 or with `disableCheck`.
    pub async fn check(&self, net: &NetworkConfigList, att: &Attachment) -> Result<(), CniError> {
        validate_attachment(att)?;
        if !net.supports_check() || net.disable_check {
            return Ok(());
        }
        let cached = cache::read(&self.cache_dir, &net.name, &att.container_id, &att.ifname)?
            .filter(|c| !c.result.is_null())
            .ok_or_else(|| CniError::NotAttached {
                network: net.name.clone(),
                container_id: att.container_id.clone(),
            })?;
        let inv = self.invocation(Op::Check, att);
        for (index, plugin) in net.plugin_types().into_iter().enumerate() {
            let stdin = net
                .plugin_stdin(index, &att.runtime_config, Some(&cached.result))
                .unwrap_or(Value::Null);
            exec::run_plugin(plugin, &stdin, &inv).await?;
        }
        Ok(())
    }

    /// DEL: runs the plugins in reverse order. When the attachment is cached, the cached
    /// config, CNI_ARGS, runtime config and result (as `prevResult`) are used instead of `net`
    /// and `att`'s, so DEL undoes exactly what ADD did. Every plugin is run even when one
    /// fails; the first error is returned and the cache kept for a retry. A plugin that is
    /// not installed is skipped.
    pub async fn del(&self, net: &NetworkConfigList, att: &Attachment) -> Result<(), CniError> {
        validate_attachment(att)?;
        match cache::read(&self.cache_dir, &net.name, &att.container_id, &att.ifname)? {
            Some(cached) => self.del_with(cached).await,
            None => self.run_del(net, att, None).await,
        }
    }

    /// DEL from the cache alone (for teardown after a crash, when the network's file may be
    /// gone). Returns `false` when nothing is cached for this attachment.
    pub async fn del_cached(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<bool, CniError> {
        match cache::read(&self.cache_dir, network, container_id, ifname)? {
            Some(cached) => self.del_with(cached).await.map(|()| true),
            None => Ok(false),
        }
    }

    /// The cached ADD of an attachment, if any.
    pub fn cached(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<Option<CachedAttachment>, CniError> {
        cache::read(&self.cache_dir, network, container_id, ifname)
    }

    async fn del_with(&self, cached: CachedAttachment) -> Result<(), CniError> {
        let net = NetworkConfigList::from_list_json(cached.config.to_string().as_bytes(), None)?;
        let att = Attachment {
            container_id: cached.container_id.clone(),
            netns: cached.netns.clone(),
            ifname: cached.if_name.clone(),
            args: cached.cni_args.clone(),
            runtime_config: cached.runtime_config.clone(),
        };
        validate_attachment(&att)?;
        let prev = Some(cached.result).filter(|r| !r.is_null());
        self.run_del(&net, &att, prev.as_ref()).await
    }

    async fn run_del(
        &self,
        net: &NetworkConfigList,
        att: &Attachment,
        prev: Option<&Value>,
    ) -> Result<(), CniError> {
        let inv = self.invocation(Op::Del, att);
        let mut first_error = None;
        let plugins = net.plugin_types();
        for index in (0..plugins.len()).rev() {
            let stdin = net
                .plugin_stdin(index, &att.runtime_config, prev)
                .unwrap_or(Value::Null);
            match exec::run_plugin(plugins[index], &stdin, &inv).await {
                // A missing plugin cannot undo anything (and most often never ran: the ADD
                // failed on it); refusing would make the DEL fail forever.
                Ok(_) | Err(CniError::PluginNotFound { .. }) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => cache::remove(&self.cache_dir, &net.name, &att.container_id, &att.ifname),
        }
    }

    fn invocation<'a>(&'a self, op: Op, att: &'a Attachment) -> Invocation<'a> {
        Invocation {
            op,
            container_id: &att.container_id,
            netns: &att.netns,
            ifname: &att.ifname,
            args: &att.args,
            plugin_dirs: &self.plugin_dirs,
            timeout: self.timeout,
        }
    }
}

fn validate_attachment(att: &Attachment) -> Result<(), CniError> {
    let invalid = |reason: String| CniError::InvalidConfig {
        source_file: None,
        reason,
    };
    if !crate::fsutil::is_safe_name(&att.container_id) {
        return Err(invalid(format!(
            "invalid container id {:?}",
            att.container_id
        )));
    }
    let ifname_ok = !att.ifname.is_empty()
        && att.ifname.len() <= 15
        && crate::fsutil::is_safe_name(&att.ifname);
    if !ifname_ok {
        return Err(invalid(format!("invalid interface name {:?}", att.ifname)));
    }
    Ok(())
}
