//! A local port that reaches a pod's port through the API server (`kubectl port-forward`), so
//! that any HTTP client can talk to a mesh-agent's admin API on a node.

use std::net::SocketAddr;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use tokio::net::TcpListener;

/// A forward from `local` to `port` of a pod, for as long as the runtime it was started on
/// runs. Each local connection gets its own stream (as kubectl does), so concurrent requests
/// do not share one.
pub struct Forward {
    pub local: SocketAddr,
}

/// Listen on a free loopback port and forward each connection to `port` of the pod.
pub async fn start(
    client: kube::Client,
    namespace: &str,
    pod: &str,
    port: u16,
) -> std::io::Result<Forward> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let local = listener.local_addr()?;
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    let pod = pod.to_string();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let (pods, pod) = (pods.clone(), pod.clone());
            tokio::spawn(async move {
                let mut forwarder = match pods.portforward(&pod, &[port]).await {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::warn!(pod, port, error = %e, "port-forward refused");
                        return;
                    }
                };
                let Some(mut upstream) = forwarder.take_stream(port) else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tcp, &mut upstream).await;
                drop(upstream);
                let _ = forwarder.join().await;
            });
        }
    });
    Ok(Forward { local })
}
