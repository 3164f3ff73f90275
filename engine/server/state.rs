//! The gateway's live state: the one atomic root holding the current pipeline, and the
//! record of the last reload. Everything that must survive a reload lives here, outside
//! the pipeline.

use crate::compile::{self, Compiled};
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::pipeline::Pipeline;
use crate::policy::PolicyVersion;
use crate::state::Stores;
use crate::upstream::ClientCache;
use arc_swap::ArcSwap;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Settings given on the command line that override gateway.toml on every load.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
}

/// What started a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Startup,
    Watch,
    Signal,
    Admin,
}

/// How a reload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The new pipeline is serving.
    Applied,
    /// The files are byte-for-byte what is already serving.
    Unchanged,
    /// The policy set failed to compile, or changed a setting that cannot change live;
    /// the previous pipeline keeps serving.
    Rejected,
}

/// The record of one reload attempt, as shown by /admin/status.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    pub trigger: Trigger,
    pub outcome: Outcome,
    #[serde(serialize_with = "rfc3339")]
    pub at: SystemTime,
    /// The version of the policy set that was tried.
    pub policy_version: Option<PolicyVersion>,
    pub diagnostics: Diagnostics,
}

fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*t))
}

/// The serving pipeline with when it was loaded.
#[derive(Debug)]
pub struct Active {
    pub pipeline: Arc<Pipeline>,
    pub loaded_at: SystemTime,
}

/// Shared by listeners, the admin endpoint, the watcher and signal handlers.
pub struct GatewayState {
    /// The one atomic root: a request loads it once and keeps that snapshot.
    current: ArcSwap<Pipeline>,
    loaded_at: Mutex<SystemTime>,
    last_reload: Mutex<ReloadReport>,
    /// Serialises reloads so two triggers never race to swap.
    reload_lock: tokio::sync::Mutex<()>,
    pub clients: Arc<ClientCache>,
    /// Stores that outlive reloads (replay guard, later counters and ledgers).
    pub stores: Stores,
    pub root: PathBuf,
    pub overrides: Overrides,
}

impl std::fmt::Debug for GatewayState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayState")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl GatewayState {
    /// Compiles the policy set for the first time.
    pub fn load(root: PathBuf, overrides: Overrides) -> Result<(GatewayState, Diagnostics), Diagnostics> {
        let clients = Arc::new(ClientCache::default());
        let Compiled { mut pipeline, warnings } = compile::build(&root, &clients)?;
        apply_overrides(&mut pipeline, &overrides)?;
        let version = pipeline.version.clone();
        let mut stores = Stores::new(&pipeline.traffic.state).map_err(|error| {
            Diagnostics(vec![Diagnostic::error(
                "invalid-url",
                format!("the state store cannot be set up: {error}"),
            )
            .at(crate::diagnostics::Location::file(crate::policy::GATEWAY_FILE))
            .help("check [state] url in policies/gateway.toml")])
        })?;
        if let Some(pricing) = &pipeline.pricing {
            let meter = crate::meter::Meter::start(pricing.ledger.clone()).map_err(|error| {
                Diagnostics(vec![Diagnostic::error("ledger-unavailable", error.to_string())
                    .at(crate::diagnostics::Location::file(crate::policy::GATEWAY_FILE))
                    .help(
                        "check [billing] in policies/gateway.toml: the ledger's path or PostgreSQL server",
                    )])
            })?;
            meter.publish(&pricing.version, &pricing.book);
            stores.meter = Some(meter);
        }
        let now = SystemTime::now();
        let state = GatewayState {
            current: ArcSwap::from_pointee(pipeline),
            loaded_at: Mutex::new(now),
            last_reload: Mutex::new(ReloadReport {
                trigger: Trigger::Startup,
                outcome: Outcome::Applied,
                at: now,
                policy_version: Some(version),
                diagnostics: warnings.clone(),
            }),
            reload_lock: tokio::sync::Mutex::new(()),
            clients,
            stores,
            root,
            overrides,
        };
        Ok((state, warnings))
    }

    /// The pipeline serving now. Hold the returned Arc for a whole request.
    pub fn pipeline(&self) -> Arc<Pipeline> {
        self.current.load_full()
    }

    pub fn active(&self) -> Active {
        Active {
            pipeline: self.pipeline(),
            loaded_at: *lock(&self.loaded_at),
        }
    }

    pub fn last_reload(&self) -> ReloadReport {
        lock(&self.last_reload).clone()
    }

    /// Recompiles the policy set off the request path and swaps it in if it is good.
    pub async fn reload(self: &Arc<Self>, trigger: Trigger) -> ReloadReport {
        let _serialised = self.reload_lock.lock().await;
        let this = Arc::clone(self);
        let built = tokio::task::spawn_blocking(move || compile::build(&this.root, &this.clients)).await;
        let current = self.pipeline();
        let report = match built {
            Err(join_error) => self.report(
                trigger,
                Outcome::Rejected,
                None,
                Diagnostics(vec![Diagnostic::error(
                    "internal",
                    format!("the compiler stopped unexpectedly: {join_error}"),
                )
                .help(
                    "the previous policy keeps serving; this is a bug in tollgate, please report it",
                )]),
            ),
            Ok(Err(diagnostics)) => self.report(trigger, Outcome::Rejected, None, diagnostics),
            Ok(Ok(Compiled { mut pipeline, warnings })) => {
                let version = Some(pipeline.version.clone());
                if let Err(refused) = apply_overrides(&mut pipeline, &self.overrides) {
                    self.report(trigger, Outcome::Rejected, version, refused)
                } else if pipeline.version == current.version && pipeline.material_digest == current.material_digest {
                    self.report(trigger, Outcome::Unchanged, version, warnings)
                } else if let Err(refused) = check_live_change(&current, &pipeline)
                    .and_then(|()| check_ledger_change(self.stores.meter.as_ref(), &pipeline))
                {
                    self.report(trigger, Outcome::Rejected, version, refused)
                } else {
                    if let (Some(meter), Some(pricing)) = (&self.stores.meter, &pipeline.pricing) {
                        // Stored before the first call of this version can be metered:
                        // the writer takes the queue in order.
                        let (meter, pricing) = (meter.clone(), Arc::clone(pricing));
                        let _ =
                            tokio::task::spawn_blocking(move || meter.publish(&pricing.version, &pricing.book)).await;
                    }
                    self.current.store(Arc::new(pipeline));
                    *lock(&self.loaded_at) = SystemTime::now();
                    self.report(trigger, Outcome::Applied, version, warnings)
                }
            }
        };
        log_report(&report);
        *lock(&self.last_reload) = report.clone();
        report
    }

    fn report(
        &self,
        trigger: Trigger,
        outcome: Outcome,
        version: Option<PolicyVersion>,
        diagnostics: Diagnostics,
    ) -> ReloadReport {
        ReloadReport {
            trigger,
            outcome,
            at: SystemTime::now(),
            policy_version: version,
            diagnostics,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Applies command-line overrides to a freshly compiled pipeline.
fn apply_overrides(pipeline: &mut Pipeline, overrides: &Overrides) -> Result<(), Diagnostics> {
    if let Some(listen) = overrides.listen {
        if pipeline.settings.listeners.len() != 1 {
            return Err(Diagnostics(vec![Diagnostic::error(
                "listen-override",
                format!(
                    "--listen needs exactly one listener in gateway.toml, found {}",
                    pipeline.settings.listeners.len()
                ),
            )
            .help("set each listener's address in policies/gateway.toml instead")]));
        }
        pipeline.settings.listeners[0].address = listen;
    }
    if let Some(admin) = overrides.admin {
        pipeline.settings.admin = admin;
    }
    Ok(())
}

/// Refuses changes to settings bound at startup; they need a restart.
fn check_live_change(current: &Pipeline, next: &Pipeline) -> Result<(), Diagnostics> {
    let mut refused = Diagnostics::default();
    let file = crate::policy::GATEWAY_FILE;
    if current.settings.listeners != next.settings.listeners {
        let describe = |p: &Pipeline| {
            p.settings
                .listeners
                .iter()
                .map(|l| format!("{}={}", l.name, l.address))
                .collect::<Vec<_>>()
                .join(", ")
        };
        refused.push(
            Diagnostic::error(
                "restart-required",
                format!(
                    "listeners cannot change while tollgate runs (serving {}, file says {})",
                    describe(current),
                    describe(next)
                ),
            )
            .at(crate::diagnostics::Location::file(file))
            .help("restore the listeners to apply the rest of the change now, and restart tollgate to move a listener"),
        );
    }
    if current.settings.admin != next.settings.admin {
        refused.push(
            Diagnostic::error(
                "restart-required",
                format!(
                    "the admin address cannot change while tollgate runs (serving {}, file says {})",
                    current.settings.admin, next.settings.admin
                ),
            )
            .at(crate::diagnostics::Location::file(file))
            .help("restore [admin] address, and restart tollgate to move it"),
        );
    }
    if current.traffic.state != next.traffic.state {
        refused.push(
            Diagnostic::error(
                "restart-required",
                "the state store ([state]) cannot change while tollgate runs: counters and idempotency records live in it",
            )
            .at(crate::diagnostics::Location::file(file))
            .help("restore [state] to apply the rest of the change now, and restart tollgate to move the store"),
        );
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(refused)
    }
}

/// The ledger is opened once, at start: billing cannot be switched on, off or moved live.
fn check_ledger_change(meter: Option<&crate::meter::Meter>, next: &Pipeline) -> Result<(), Diagnostics> {
    let next_ledger = next.pricing.as_ref().map(|p| &p.ledger);
    let same = match (meter.map(|m| m.settings()), next_ledger) {
        (None, None) => true,
        (Some(running), Some(next)) => running == next,
        // Switching billing off keeps the writer until restart; nothing is metered meanwhile.
        (Some(_), None) => true,
        (None, Some(_)) => false,
    };
    if same {
        return Ok(());
    }
    Err(Diagnostics(vec![Diagnostic::error(
        "restart-required",
        "the usage ledger ([billing], or billing switched on by policies/pricing.toml) cannot change while tollgate runs",
    )
    .at(crate::diagnostics::Location::file(crate::policy::GATEWAY_FILE))
    .help("restart tollgate to open the new ledger; the previous policy keeps serving")]))
}

fn log_report(report: &ReloadReport) {
    let version = report
        .policy_version
        .as_ref()
        .map(|v| v.to_string())
        .unwrap_or_default();
    match report.outcome {
        Outcome::Applied => {
            tracing::info!(trigger = ?report.trigger, policy_version = %version, warnings = report.diagnostics.0.len(), "policy reloaded")
        }
        Outcome::Unchanged => {
            tracing::debug!(trigger = ?report.trigger, policy_version = %version, "policy unchanged")
        }
        Outcome::Rejected => {
            tracing::error!(
                trigger = ?report.trigger,
                errors = report.diagnostics.error_count(),
                "policy reload rejected; the previous policy keeps serving"
            );
            for d in report.diagnostics.iter() {
                let at = d.location.as_ref().map(|l| l.to_string()).unwrap_or_default();
                let help = d.help.as_deref().unwrap_or("");
                if d.is_error() {
                    tracing::error!(code = d.code, at = %at, help, "{}", d.message);
                } else {
                    tracing::warn!(code = d.code, at = %at, help, "{}", d.message);
                }
            }
        }
    }
}
