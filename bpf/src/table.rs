//! What the maps should hold, computed from the Plan: one entry per Service frontend
//! (ClusterIP, port, transport) with its backends and their weights, or the agent's outbound
//! entry for a frontend with mesh routes. Pure, so the plugin, the agent and the tests agree.

use std::net::{IpAddr, SocketAddr};

use mesh_model::plan::services::Transport;
use mesh_model::plan::Plan;

/// A backend of a frontend and its weight (its share of the frontend's slots).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Backend {
    pub addr: SocketAddr,
    pub weight: u32,
}

/// One frontend as the programs serve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub frontend: SocketAddr,
    pub transport: Transport,
    /// `namespace/name` of the Service.
    pub service: String,
    /// Connections go to the agent's outbound entry (the only backend).
    pub l7: bool,
    /// Empty: the Service has no ready endpoint, and connects are refused as kube-proxy
    /// refuses them.
    pub backends: Vec<Backend>,
}

/// The table for a Plan. `redirect` is where L7 frontends go (the agent's outbound entry as
/// clients reach it); a frontend of the other address family than `redirect`, or every L7
/// frontend when it is `None`, is balanced to its endpoints instead (its routes then do not
/// apply to socket-balanced traffic, which [`Table::unrouted`] reports).
pub fn table(plan: &Plan, redirect: Option<SocketAddr>) -> Table {
    let mut entries = Vec::new();
    let mut unrouted = Vec::new();
    for s in plan.services.iter() {
        // Ready endpoints; while there is none, those still serving as they terminate.
        let ready = plan.clusters.get(&s.cluster).map(|c| &c.endpoints[..]);
        let endpoints: Vec<Backend> = ready
            .filter(|r| !r.is_empty())
            .unwrap_or(&s.terminating)
            .iter()
            .filter_map(|e| {
                let ip: IpAddr = e.address.parse().ok()?;
                Some(Backend {
                    addr: SocketAddr::new(ip, e.port),
                    weight: 1,
                })
            })
            .collect();
        for &ip in &s.addresses {
            let frontend = SocketAddr::new(ip, s.port);
            let to_proxy = redirect.filter(|r| s.l7 && r.is_ipv4() == ip.is_ipv4());
            if s.l7 && to_proxy.is_none() {
                unrouted.push(frontend);
            }
            // Each frontend balances to endpoints of its own family.
            let backends = match to_proxy {
                Some(r) => vec![Backend { addr: r, weight: 1 }],
                None => endpoints
                    .iter()
                    .filter(|b| b.addr.is_ipv4() == ip.is_ipv4())
                    .copied()
                    .collect(),
            };
            entries.push(Entry {
                frontend,
                transport: s.transport,
                service: s.service.clone(),
                l7: to_proxy.is_some(),
                backends,
            });
        }
    }
    entries.sort_by_key(|a| (a.frontend, a.transport));
    entries.dedup_by(|a, b| (a.frontend, a.transport) == (b.frontend, b.transport));
    Table { entries, unrouted }
}

/// The table for a Plan, and what it could not honour.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Table {
    /// Sorted by frontend; one entry per frontend and transport (the first Service wins
    /// when two claim one ClusterIP, which the API server does not allow).
    pub entries: Vec<Entry>,
    /// L7 frontends balanced at L4 because the outbound entry has no address of their family.
    pub unrouted: Vec<SocketAddr>,
}

/// The slots of a frontend: each backend repeated in proportion to its weight, reduced by
/// the weights' greatest common divisor (equal weights give one slot each), at most `max`
/// slots (weights then scaled down by largest remainder, every weighted backend keeping one
/// slot; past `max` backends, the first `max`). A uniformly random slot is then a backend
/// chosen by weight, which is all the program does.
pub fn slots(backends: &[Backend], max: usize) -> Vec<SocketAddr> {
    let weighted: Vec<&Backend> = backends.iter().filter(|b| b.weight > 0).collect();
    if weighted.is_empty() || max == 0 {
        return Vec::new();
    }
    if weighted.len() >= max {
        return weighted.iter().take(max).map(|b| b.addr).collect();
    }
    let divisor = weighted
        .iter()
        .fold(0u64, |g, b| gcd(g, u64::from(b.weight)));
    let reduced: Vec<u64> = weighted
        .iter()
        .map(|b| u64::from(b.weight) / divisor)
        .collect();
    let total: u64 = reduced.iter().sum();
    let counts: Vec<u64> = if total <= max as u64 {
        reduced
    } else {
        // One slot each first, then the rest shared by weight (largest remainder).
        let spare = (max - weighted.len()) as u64;
        let mut counts: Vec<u64> = vec![1; weighted.len()];
        let mut remainders = Vec::with_capacity(weighted.len());
        let mut given = 0u64;
        for (i, w) in reduced.iter().enumerate() {
            let share = w * spare;
            counts[i] += share / total;
            given += share / total;
            remainders.push((share % total, i));
        }
        remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, i) in remainders.into_iter().take((spare - given) as usize) {
            counts[i] += 1;
        }
        counts
    };
    weighted
        .iter()
        .zip(counts)
        .flat_map(|(b, n)| std::iter::repeat_n(b.addr, n as usize))
        .collect()
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn b(port: u16, weight: u32) -> Backend {
        Backend {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            weight,
        }
    }

    fn share(s: &[SocketAddr], port: u16) -> usize {
        s.iter().filter(|a| a.port() == port).count()
    }

    #[test]
    fn equal_weights_give_one_slot_each_and_weights_are_reduced() {
        assert_eq!(slots(&[b(1, 1), b(2, 1), b(3, 1)], 100).len(), 3);
        let s = slots(&[b(1, 80), b(2, 20)], 100);
        assert_eq!((share(&s, 1), share(&s, 2)), (4, 1));
        assert!(slots(&[b(1, 0)], 100).is_empty());
        assert_eq!(slots(&[b(1, 0), b(2, 3)], 100), vec![b(2, 1).addr]);
    }

    #[test]
    fn past_the_limit_weights_are_scaled_and_no_backend_is_lost() {
        let s = slots(&[b(1, 997), b(2, 1), b(3, 2)], 10);
        assert_eq!(s.len(), 10);
        assert_eq!((share(&s, 1), share(&s, 2), share(&s, 3)), (8, 1, 1));
    }

    /// The table from a Plan: one entry per ClusterIP, its ready endpoints as backends, else
    /// those serving while terminating; an L7 frontend goes to the redirect of its family, or
    /// to its endpoints (reported) when there is none.
    #[test]
    fn table_from_a_plan() {
        let plan = mesh_model::testing::plan_of(
            "
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {clusterIP: 10.96.0.20, clusterIPs: [10.96.0.20, 'fd00::20'], ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [10.0.0.1], conditions: {ready: false, serving: true, terminating: true}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: default}
spec:
  parentRefs: [{group: '', kind: Service, name: web, port: 80}]
  rules: [{backendRefs: [{name: web, port: 80}]}]
",
        );
        let redirect: SocketAddr = "192.0.2.1:15001".parse().unwrap();
        let t = table(&plan, Some(redirect));
        assert_eq!(t.entries.len(), 2);
        let v4 = &t.entries[0];
        assert_eq!(v4.frontend, "10.96.0.20:80".parse().unwrap());
        assert!(v4.l7);
        assert_eq!(
            v4.backends,
            vec![Backend {
                addr: redirect,
                weight: 1
            }]
        );
        // No IPv6 redirect: the IPv6 frontend is balanced to its (IPv6) endpoints: none here.
        let v6 = &t.entries[1];
        assert!(!v6.l7 && v6.backends.is_empty());
        assert_eq!(t.unrouted, vec!["[fd00::20]:80".parse().unwrap()]);

        let t = table(&plan, None);
        assert_eq!(
            t.entries[0].backends,
            vec![Backend {
                addr: "10.0.0.1:8080".parse().unwrap(),
                weight: 1
            }],
            "the terminating endpoint, while none is ready"
        );
    }

    proptest! {
        /// Never more than `max` slots; every weighted backend has a slot while they fit;
        /// each backend's share is its weight's share, off by at most the one slot every
        /// backend is guaranteed plus one of rounding when scaled down.
        #[test]
        fn slots_follow_weights(weights in prop::collection::vec(0u32..1000, 1..20), max in 1usize..200) {
            let backends: Vec<Backend> = weights.iter().enumerate().map(|(i, &w)| b(i as u16, w)).collect();
            let s = slots(&backends, max);
            prop_assert!(s.len() <= max);
            let weighted: Vec<&Backend> = backends.iter().filter(|b| b.weight > 0).collect();
            if weighted.is_empty() {
                prop_assert!(s.is_empty());
            } else if weighted.len() < max {
                let total: f64 = weighted.iter().map(|b| f64::from(b.weight)).sum();
                for w in &weighted {
                    let n = share(&s, w.addr.port());
                    prop_assert!(n >= 1);
                    let ideal = f64::from(w.weight) / total * s.len() as f64;
                    let bound = 2.0 + weighted.len() as f64 * f64::from(w.weight) / total;
                    prop_assert!((n as f64 - ideal).abs() <= bound,
                        "backend {} got {n} of {} slots, ideal {ideal:.2}", w.addr, s.len());
                }
            }
        }
    }
}
