//! The agent's side of the eBPF socket load balancer (`bpf/`): load and attach the programs
//! when `--bpf` allows, write the Plan's Service table into their maps at every Plan swap,
//! and serve what they hold (`/services`) and count (`/stats/prometheus`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use mesh_bpf::datapath::{self, Datapath, Limits, OriginalDestinations};
use mesh_bpf::table;
use mesh_bpf::view::{self, ServiceView};
use mesh_model::plan::Plan;

/// `--bpf`: whether to run the socket load balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// On when the kernel and the agent's privileges allow it; otherwise one log line says
    /// why and the proxy serves alone.
    Auto,
    /// On, or the agent exits with the reason.
    On,
    /// Off; programs a previous agent left attached under the pin folder are detached.
    Off,
}

/// The flags of the socket load balancer.
#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    /// The cgroup whose processes (and those of every cgroup below it) are balanced; the
    /// cgroup v2 root when unset.
    pub cgroup: Option<PathBuf>,
    pub pin_dir: PathBuf,
    /// Where frontends with mesh routes are sent: the outbound entry as clients reach it.
    pub redirect: Option<SocketAddr>,
    pub limits: Limits,
}

/// The socket load balancer, shared by the loader thread (sync) and the admin API (read):
/// the loaded programs, or none (off), in which case it shows what they would hold.
pub struct LoadBalancer {
    datapath: Option<Mutex<Datapath>>,
    redirect: Option<SocketAddr>,
    slots_per_service: usize,
}

/// Start the socket load balancer as `opts.mode` says: without programs when it is off (by
/// flag, or by `auto` where it cannot run), `Err` with the reason when `on` cannot.
pub fn start(opts: &Options) -> Result<LoadBalancer, String> {
    let mut lb = LoadBalancer {
        datapath: None,
        redirect: opts.redirect,
        slots_per_service: opts.limits.slots_per_service,
    };
    if opts.mode == Mode::Off {
        detach(&opts.pin_dir)?;
        return Ok(lb);
    }
    match load(opts) {
        Ok(dp) => lb.datapath = Some(Mutex::new(dp)),
        Err(e) if opts.mode == Mode::Auto => {
            tracing::warn!("eBPF socket load balancing is off: {e}; the proxy serves alone (--bpf on makes this an error)");
        }
        Err(e) => return Err(format!("eBPF socket load balancing (--bpf on): {e}")),
    }
    Ok(lb)
}

/// Detach the programs pinned under `pin_dir` and remove the pins (`--bpf off`,
/// `--bpf-uninstall`); whether there were any.
pub fn detach(pin_dir: &Path) -> Result<bool, String> {
    let detached =
        datapath::uninstall(pin_dir).map_err(|e| format!("detaching the eBPF programs: {e}"))?;
    if detached {
        tracing::info!(pins = %pin_dir.display(), "eBPF programs detached and their pins removed");
    }
    Ok(detached)
}

fn load(opts: &Options) -> Result<Datapath, datapath::Error> {
    let cgroup = match &opts.cgroup {
        Some(c) => c.clone(),
        None => datapath::cgroup2_root()?,
    };
    let file = datapath::open_cgroup(&cgroup)?;
    let mut dp = Datapath::load(&opts.pin_dir, opts.limits.clone())?;
    dp.attach(file)?;
    tracing::info!(cgroup = %cgroup.display(), pins = %dp.pin_dir().display(), redirect = ?opts.redirect, "eBPF socket load balancing on");
    Ok(dp)
}

impl LoadBalancer {
    fn lock(&self) -> Option<std::sync::MutexGuard<'_, Datapath>> {
        self.datapath
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Write the Plan's Service table into the maps; what cannot be written is logged, the
    /// rest is served.
    pub fn sync(&self, plan: &Plan) {
        let Some(mut dp) = self.lock() else {
            return;
        };
        let table = table::table(plan, self.redirect);
        for f in &table.unrouted {
            tracing::warn!(frontend = %f, "mesh routes of this Service do not apply to socket-balanced traffic: the outbound entry has no address of its family (--bpf-redirect-addr)");
        }
        let report = dp.sync(&table);
        if let Some(why) = &report.sock_ops {
            tracing::error!(error = %why, "cannot attach or detach the sock_ops program; connections redirected to the outbound entry are routed by their Host header meanwhile");
        }
        for (frontend, why) in &report.failed {
            tracing::error!(%frontend, error = %why, "cannot write the Service into the eBPF maps; its connections keep their previous backends");
        }
        tracing::debug!(?report, "eBPF maps synced");
    }

    /// `/services` on the admin API: `{"bpf": "on"|"off", "services": [...]}`, read from the
    /// kernel's maps when the programs run (each frontend named from the Plan), else what
    /// they would hold.
    pub fn services_json(&self, plan: &Plan) -> String {
        let (state, services): (&str, Vec<ServiceView>) = match self.lock() {
            Some(dp) => (
                "on",
                dp.services(&|f| {
                    plan.services
                        .find(f.socket_addr(), f.transport()?)
                        .map(|s| s.service.clone())
                }),
            ),
            None => (
                "off",
                view::planned(&table::table(plan, self.redirect), self.slots_per_service),
            ),
        };
        serde_json::json!({"bpf": state, "services": services}).to_string()
    }

    /// The programs' counters in Prometheus text format (nothing when they do not run).
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        for c in self.lock().iter().flat_map(|dp| dp.stats()) {
            out.push_str(&format!(
                "# HELP {} {}\n# TYPE {} counter\n{} {}\n",
                c.name, c.help, c.name, c.name, c.value
            ));
        }
        out
    }

    /// The original destinations of redirected connections, when the programs run.
    pub fn original_destinations(&self) -> Option<OriginalDestinations> {
        self.lock().map(|dp| dp.original_destinations())
    }
}
