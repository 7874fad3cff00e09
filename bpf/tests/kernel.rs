//! The programs on this machine's kernel: loaded, attached to a cgroup made for the test,
//! and exercised by a client process in it. Every address is in 127.0.0.0/8, so a program
//! that did not attach makes the test fail and never sends a packet off the host.

#![cfg(target_os = "linux")]

use std::collections::BTreeMap;
use std::net::SocketAddr;

use mesh_bpf::datapath::{Datapath, Limits};
use mesh_bpf::table::{Backend, Entry, Table};
use mesh_bpf::testing::Sandbox;
use mesh_echo::probe::{self, Job};
use mesh_model::plan::services::Transport;

/// The child side of `probe::run_in_cgroup`.
#[test]
fn probe_child() {
    probe::child_main();
}

fn pods(results: &[serde_json::Value]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in results {
        assert!(r.get("error").is_none(), "exchange failed: {r}");
        *out.entry(r["pod"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_to_a_cluster_ip_reaches_backends_by_weight() {
    let Some(sandbox) = Sandbox::new("weights") else {
        return;
    };
    let port = mesh_model::testing::free_port();
    let backends: Vec<SocketAddr> = (21..24)
        .map(|i| format!("127.0.0.{i}:{port}").parse().unwrap())
        .collect();
    for (i, b) in backends.iter().enumerate() {
        mesh_echo::spawn(
            *b,
            &format!("pod-{i}"),
            "test",
            mesh_echo::EchoProtocol::Http,
        )
        .await
        .expect("backend address free");
    }
    let frontend: SocketAddr = "127.10.0.1:80".parse().unwrap();
    let mut dp = Datapath::load(&sandbox.pins, Limits::default()).expect("loading the programs");
    dp.attach(mesh_bpf::datapath::open_cgroup(&sandbox.cgroup).unwrap())
        .expect("attaching");
    let table = Table {
        entries: vec![Entry {
            frontend,
            transport: Transport::Tcp,
            service: "test/web".into(),
            l7: false,
            backends: vec![
                Backend {
                    addr: backends[0],
                    weight: 2,
                },
                Backend {
                    addr: backends[1],
                    weight: 1,
                },
                Backend {
                    addr: backends[2],
                    weight: 1,
                },
            ],
        }],
        unrouted: vec![],
    };
    let report = dp.sync(&table);
    assert_eq!(report.written, 1, "{report:?}");
    let cgroup = sandbox.cgroup.clone();
    let results = tokio::task::spawn_blocking(move || {
        probe::run_in_cgroup(
            Some(&cgroup),
            "probe_child",
            &Job::Http {
                addr: frontend,
                host: "web".into(),
                count: 400,
            },
        )
    })
    .await
    .unwrap();
    let pods = pods(&results);
    // getpeername answers the ClusterIP the client dialled, not the backend.
    assert!(
        results.iter().all(|r| r["peer"] == "127.10.0.1:80"),
        "{results:?}"
    );
    eprintln!("pods: {pods:?}");
    assert_eq!(pods.len(), 3, "{pods:?}");
    // weight 2 of 4: expect 200 of 400; 5 sigma is ±50.
    assert!((150..=250).contains(&pods["pod-0"]), "{pods:?}");
    // A process outside the cgroup is untouched: nothing listens on the ClusterIP.
    assert!(std::net::TcpStream::connect(frontend).is_err());
    let views = dp.services(&|_| Some("test/web".into()));
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].backends.len(), 3);
    let stats = dp.stats();
    assert!(
        stats
            .iter()
            .any(|c| c.name == "mesh_bpf_connect_tcp_total" && c.value >= 400),
        "{stats:?}"
    );
}
