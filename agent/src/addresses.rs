//! Gateway addresses: with `--gateway-address-pool`, each Gateway gets an address of its own
//! from a range, as a cluster's load-balancer controller gives each Gateway its own IP. Without
//! a pool every Gateway binds `--gateway-addr` and Gateways that share a port are told apart by
//! listener hostname alone, so two Gateways with catch-all listeners on one port cannot both be
//! reached; with a pool they can, and a route is reachable only at its own Gateway's address.
//!
//! An assignment holds for as long as the Gateway is in the configuration, across reloads, so
//! its sockets stay bound; a new Gateway takes the first free address (Gateways of the first
//! load in `namespace/name` order, so a restart with the same folder gives the same addresses).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use mesh_model::plan::Plan;

/// The pool and what it has handed out.
#[derive(Debug)]
pub struct Pool {
    net: IpNet,
    assigned: BTreeMap<String, IpAddr>,
}

impl Pool {
    pub fn new(net: IpNet) -> Pool {
        Pool {
            net,
            assigned: BTreeMap::new(),
        }
    }

    /// Give every Gateway of `plan` its address and write it on the Gateway's listeners.
    /// A Gateway left without one (the pool is used up) keeps the shared address, said in
    /// one log line.
    pub fn assign(&mut self, plan: &mut Plan) {
        let present: std::collections::BTreeSet<String> = plan
            .listeners
            .iter()
            .filter_map(|l| l.gateway().map(str::to_string))
            .collect();
        self.assigned.retain(|gw, _| present.contains(gw));
        for gw in &present {
            if self.assigned.contains_key(gw) {
                continue;
            }
            let taken: std::collections::HashSet<IpAddr> =
                self.assigned.values().copied().collect();
            match self.net.hosts().find(|a| !taken.contains(a)) {
                Some(a) => {
                    self.assigned.insert(gw.clone(), a);
                }
                None => tracing::error!(
                    gateway = %gw,
                    pool = %self.net,
                    "the gateway address pool is used up; this Gateway binds the shared \
                     --gateway-addr (give --gateway-address-pool a larger range)"
                ),
            }
        }
        for l in &mut plan.listeners {
            l.address = l.gateway().and_then(|gw| self.assigned.get(gw).copied());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_model::testing::plan_of;

    const TWO_GATEWAYS: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: b, namespace: ns}
spec:
  gatewayClassName: c
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: a, namespace: ns}
spec:
  gatewayClassName: c
  listeners: [{name: http, port: 80, protocol: HTTP}, {name: alt, port: 8080, protocol: HTTP}]
"#;

    fn addresses(plan: &Plan) -> BTreeMap<String, Option<IpAddr>> {
        plan.listeners
            .iter()
            .map(|l| (l.name.clone(), l.address))
            .collect()
    }

    #[test]
    fn each_gateway_gets_its_own_address_and_keeps_it() {
        let mut pool = Pool::new("127.0.10.0/30".parse().unwrap());
        let mut plan = plan_of(TWO_GATEWAYS);
        pool.assign(&mut plan);
        let a: Option<IpAddr> = Some("127.0.10.1".parse().unwrap());
        let b: Option<IpAddr> = Some("127.0.10.2".parse().unwrap());
        let got = addresses(&plan);
        assert_eq!(got["ns/a/http"], a, "{got:?}");
        assert_eq!(got["ns/a/alt"], a, "one address per Gateway: {got:?}");
        assert_eq!(got["ns/b/http"], b, "{got:?}");
        // Gateway a leaves, c arrives: b keeps its address, c takes the freed one.
        let mut next = plan_of(&TWO_GATEWAYS.replace("name: a,", "name: c,"));
        pool.assign(&mut next);
        let got = addresses(&next);
        assert_eq!(got["ns/b/http"], b, "{got:?}");
        assert_eq!(got["ns/c/http"], a, "{got:?}");
    }

    #[test]
    fn a_used_up_pool_leaves_the_shared_address() {
        // A /31 of loopback has two usable addresses; a /32 one.
        let mut pool = Pool::new("127.0.10.1/32".parse().unwrap());
        let mut plan = plan_of(TWO_GATEWAYS);
        pool.assign(&mut plan);
        let got = addresses(&plan);
        assert_eq!(got["ns/a/http"], Some("127.0.10.1".parse().unwrap()));
        assert_eq!(got["ns/b/http"], None, "{got:?}");
    }
}
