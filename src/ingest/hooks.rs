//! The storage-hook chain: the hooks named in `[hooks] chain`, in order,
//! each fed the previous one's output (`sealmail-plugin-api`).
//!
//! The chain fails closed. A hook that panics, one that takes longer than
//! the chain's time budget, and a verdict this host does not know all
//! refuse the copy with a temporary failure (`451 4.3.x`): nothing is
//! stored for that recipient and the MTA tries again later. A hook cannot
//! be stopped from outside (it is plain synchronous code on a blocking
//! thread), so its time is checked when it returns, and the async side
//! stops waiting after [`HookChain::wait_limit`] (see `budget.rs`).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// How long one hook may take for one copy.
///
/// why 30 s: the built-in hook encrypts a 50 MiB message (the size limit)
/// in well under a second, so 30 s leaves room for a loaded machine and
/// for plugins that do real work, while the host's whole wait
/// ([`HookChain::wait_limit`]) stays far inside the MTA's own patience
/// (Postfix waits 600 s for the replies after DATA): the MTA hears a
/// `451` and queues the message instead of timing out the connection.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(30);

/// Enhanced status (RFC 3463) for a hook that panicked or overran its
/// budget: X.3.0, "other or undefined mail system status" — the fault is
/// in this mail system, not in the message or the address; temporary
/// because the copy may well be stored once the operator fixes the hook.
const HOOK_FAILED: &str = "4.3.0";

/// Enhanced status for a verdict this host does not know: X.3.5, "system
/// incorrectly configured" — the chain holds a plugin built against a
/// newer plugin API than this host; the operator upgrades one or the other.
const UNKNOWN_VERDICT: &str = "4.3.5";

/// The configured chain.
#[derive(Debug, Clone)]
pub struct HookChain {
    hooks: Vec<Arc<dyn StorageHook>>,
    budget: Duration,
}

impl HookChain {
    /// The chain named by `names`, in order.
    pub fn from_names(names: &[String]) -> Result<Self, UnknownHook> {
        let hooks = names
            .iter()
            .map(|name| match name.as_str() {
                EncryptAtRest::NAME => {
                    Ok(Arc::new(EncryptAtRest::default()) as Arc<dyn StorageHook>)
                }
                _ => Err(UnknownHook {
                    name: name.clone(),
                    builtin: BUILTIN.join(", "),
                }),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self::new(hooks))
    }

    /// A chain of the given hooks (plugins, tests), with [`DEFAULT_BUDGET`].
    pub fn new(hooks: Vec<Arc<dyn StorageHook>>) -> Self {
        Self {
            hooks,
            budget: DEFAULT_BUDGET,
        }
    }

    /// The same chain with `budget` as the time one hook may take for one
    /// copy.
    #[must_use]
    pub fn with_budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    /// The time one hook may take for one copy.
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// How long the async side waits for one copy's blocking work: a
    /// budget per hook, and one more for loading the account and writing
    /// the copy.
    pub(crate) fn wait_limit(&self) -> Duration {
        let slots = u32::try_from(self.hooks.len().saturating_add(1)).unwrap_or(u32::MAX);
        self.budget.saturating_mul(slots)
    }

    /// Whether the encrypt-at-rest hook is in the chain.
    pub fn encrypts(&self) -> bool {
        self.hooks.iter().any(|h| h.name() == EncryptAtRest::NAME)
    }

    /// Runs every hook on `msg` and returns the bytes to store. Blocking:
    /// call it on the blocking pool.
    pub fn run(&self, mut msg: IncomingMessage<'_>) -> Result<Vec<u8>, HookError> {
        for hook in &self.hooks {
            match self.run_one(hook.as_ref(), &msg)? {
                Verdict::Replace(bytes) => msg.raw = bytes.into(),
                Verdict::Accept => {}
                // why: unreachable in-tree (the host knows every variant of
                // this plugin-api version), but `Verdict` is non_exhaustive:
                // a verdict we cannot honour must not store anything.
                other => {
                    tracing::error!(hook = hook.name(), verdict = ?other, "storage hook returned a verdict this host does not know; copy refused");
                    return Err(HookError::temporary(
                        UNKNOWN_VERDICT,
                        format!(
                            "storage hook {:?} returned a verdict this sealmail does not know; upgrade sealmail or the plugin",
                            hook.name()
                        ),
                    ));
                }
            }
        }
        Ok(msg.raw.into_owned())
    }

    /// One hook, with its panic caught and its time checked.
    fn run_one(
        &self,
        hook: &dyn StorageHook,
        msg: &IncomingMessage<'_>,
    ) -> Result<Verdict, HookError> {
        let started = Instant::now();
        // why AssertUnwindSafe: the hook sees `msg` read-only and the host
        // keeps nothing the hook could leave half-changed; a hook's own
        // state after a panic is the hook's affair (it fails closed again).
        let outcome = catch_unwind(AssertUnwindSafe(|| hook.before_store(msg)));
        let elapsed = started.elapsed();
        let Ok(result) = outcome else {
            // The panic payload is not logged: it may quote the message.
            tracing::error!(hook = hook.name(), "storage hook panicked; copy refused");
            return Err(HookError::temporary(
                HOOK_FAILED,
                format!(
                    "storage hook {:?} failed (panicked); nothing stored, fix or remove the hook",
                    hook.name()
                ),
            ));
        };
        if elapsed > self.budget {
            tracing::error!(
                hook = hook.name(),
                elapsed_ms = elapsed.as_millis(),
                budget_ms = self.budget.as_millis(),
                "storage hook overran its time budget; copy refused"
            );
            return Err(HookError::temporary(
                HOOK_FAILED,
                format!(
                    "storage hook {:?} took {} ms, over its budget of {} ms; nothing stored",
                    hook.name(),
                    elapsed.as_millis(),
                    self.budget.as_millis()
                ),
            ));
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealmail_plugin_api::Recipient;

    #[derive(Debug)]
    struct Panics;
    impl StorageHook for Panics {
        fn name(&self) -> &str {
            "panics"
        }
        fn before_store(&self, _msg: &IncomingMessage<'_>) -> Result<Verdict, HookError> {
            panic!("hook bug")
        }
    }

    #[derive(Debug)]
    struct Slow;
    impl StorageHook for Slow {
        fn name(&self) -> &str {
            "slow"
        }
        fn before_store(&self, _msg: &IncomingMessage<'_>) -> Result<Verdict, HookError> {
            std::thread::sleep(Duration::from_millis(50));
            Ok(Verdict::Accept)
        }
    }

    fn msg() -> IncomingMessage<'static> {
        IncomingMessage::new(
            Recipient::new("a@example.org"),
            &b"Subject: x\r\n\r\nhi"[..],
        )
    }

    #[test]
    fn a_panicking_hook_is_a_temporary_refusal() {
        let chain = HookChain::new(vec![Arc::new(Panics)]);
        let err = chain.run(msg()).unwrap_err();
        assert!(
            matches!(
                err,
                HookError::Temporary {
                    status: "4.3.0",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_hook_over_budget_is_refused_even_when_it_accepts() {
        let chain = HookChain::new(vec![Arc::new(Slow)]).with_budget(Duration::from_millis(1));
        let err = chain.run(msg()).unwrap_err();
        assert!(err.reason().contains("budget"), "{err}");
        let roomy = HookChain::new(vec![Arc::new(Slow)]);
        assert_eq!(roomy.run(msg()).unwrap(), b"Subject: x\r\n\r\nhi");
    }

    #[test]
    fn the_wait_covers_every_hook_and_the_store_write() {
        let chain = HookChain::new(vec![Arc::new(Slow), Arc::new(Slow)])
            .with_budget(Duration::from_secs(2));
        assert_eq!(chain.wait_limit(), Duration::from_secs(6));
    }
}
