//! Reaching the cluster as kubectl does (`--kubeconfig`, `$KUBECONFIG`, `--context`), for the
//! subcommands that read it. The rest of the plugin is synchronous; each call here runs its
//! own small runtime.

use std::future::Future;

use mesh_kube::list::Listed;
use mesh_kube::Values;

use crate::cli::Global;

/// Run `f` to completion on a runtime of the calling thread.
pub fn block_on<T>(f: impl Future<Output = T>) -> Result<T, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    Ok(runtime.block_on(f))
}

/// A client of the cluster the flags name.
pub async fn client(global: &Global) -> Result<kube::Client, String> {
    let path = global.kubeconfig.as_deref().map(std::path::Path::new);
    mesh_kube::client::connect(path, global.context.as_deref())
        .await
        .map_err(|e| e.to_string())
}

/// Every object of the model's kinds on the cluster (key names only of Secrets and
/// ConfigMaps: a report never needs their values).
pub fn read(global: &Global) -> Result<Listed, String> {
    block_on(async {
        let client = client(global).await?;
        mesh_kube::list::all(&client, Values::Names)
            .await
            .map_err(|e| format!("{e} (is the cluster reachable, and may you list it?)"))
    })?
}
