//! A client of the API server, found as kubectl finds it.

use std::path::Path;

/// Why no client could be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot read the kubeconfig {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("cannot use the kubeconfig{context}: {source}")]
    Use {
        context: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("no cluster to talk to: not in a cluster and no kubeconfig ({0}); pass --kubeconfig or set KUBECONFIG")]
    Infer(#[source] kube::config::InferConfigError),
    #[error("cannot make a Kubernetes client: {0}")]
    Client(#[source] kube::Error),
}

/// A client from `kubeconfig` (else in-cluster, else `$KUBECONFIG` or `~/.kube/config`), at
/// `context` (else the kubeconfig's current context).
pub async fn connect(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<kube::Client, ConnectError> {
    let options = kube::config::KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let in_context = || {
        context
            .map(|c| format!(" (context {c})"))
            .unwrap_or_default()
    };
    let config = match (kubeconfig, context) {
        (Some(path), _) => {
            let file =
                kube::config::Kubeconfig::read_from(path).map_err(|source| ConnectError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|source| ConnectError::Use {
                    context: in_context(),
                    source,
                })?
        }
        (None, Some(_)) => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|source| ConnectError::Use {
                context: in_context(),
                source,
            })?,
        (None, None) => kube::Config::infer().await.map_err(ConnectError::Infer)?,
    };
    kube::Client::try_from(config).map_err(ConnectError::Client)
}
