//! The storage-hook chain: the hooks named in `[hooks] chain`, in order,
//! each fed the previous one's output (`sealmail-plugin-api`).

use std::sync::Arc;

use sealmail_plugin_api::{HookError, IncomingMessage, StorageHook, Verdict};

use super::encrypt_hook::EncryptAtRest;

/// A hook name in the config that no hook answers to.
#[derive(Debug, thiserror::Error)]
#[error("unknown storage hook {name:?} in [hooks] chain; built-in hooks: {builtin}")]
pub struct UnknownHook {
    /// The name as configured.
    pub name: String,
    /// The names that exist.
    pub builtin: String,
}

/// Names of the built-in hooks.
const BUILTIN: [&str; 1] = [EncryptAtRest::NAME];

/// The configured chain.
#[derive(Debug, Clone)]
pub struct HookChain {
    hooks: Vec<Arc<dyn StorageHook>>,
}

impl HookChain {
    /// The chain named by `names`, in order.
    pub fn from_names(names: &[String]) -> Result<Self, UnknownHook> {
        let hooks = names
            .iter()
            .map(|name| match name.as_str() {
                EncryptAtRest::NAME => Ok(Arc::new(EncryptAtRest) as Arc<dyn StorageHook>),
                _ => Err(UnknownHook {
                    name: name.clone(),
                    builtin: BUILTIN.join(", "),
                }),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { hooks })
    }

    /// A chain of the given hooks (plugins, tests).
    pub fn new(hooks: Vec<Arc<dyn StorageHook>>) -> Self {
        Self { hooks }
    }

    /// Whether the encrypt-at-rest hook is in the chain.
    pub fn encrypts(&self) -> bool {
        self.hooks.iter().any(|h| h.name() == EncryptAtRest::NAME)
    }

    /// Runs every hook on `msg` and returns the bytes to store. Blocking:
    /// call it on the blocking pool.
    pub fn run(&self, mut msg: IncomingMessage<'_>) -> Result<Vec<u8>, HookError> {
        for hook in &self.hooks {
            match hook.before_store(&msg)? {
                Verdict::Replace(bytes) => msg.raw = bytes.into(),
                Verdict::Accept => {}
                other => {
                    tracing::warn!(hook = hook.name(), verdict = ?other, "unknown hook verdict; treated as accept");
                }
            }
        }
        Ok(msg.raw.into_owned())
    }
}
