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
        // Gateways that ask for addresses of their own take none from the pool.
        let present: std::collections::BTreeSet<String> = plan
            .listeners
            .iter()
            .filter(|l| l.requested_addresses.is_empty())
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
        for l in plan
            .listeners
            .iter_mut()
            .filter(|l| l.requested_addresses.is_empty())
        {
            l.address = l.gateway().and_then(|gw| self.assigned.get(gw).copied());
        }
    }
}

/// Gateways that ask for addresses (`spec.addresses` of type IPAddress) listen on the first
/// one `usable` accepts (one of this node's, which can be bound). A Gateway none of whose
/// addresses can be used is not served (the spec's Programmed=False, AddressNotUsable): its
/// listeners leave the Plan, and its name is returned with one error line each.
pub fn bind_requested(plan: &mut Plan, usable: impl Fn(IpAddr) -> bool) -> Vec<String> {
    let mut chosen: BTreeMap<String, Option<IpAddr>> = BTreeMap::new();
    for l in plan
        .listeners
        .iter()
        .filter(|l| !l.requested_addresses.is_empty())
    {
        let Some(gw) = l.gateway() else { continue };
        chosen
            .entry(gw.to_string())
            .or_insert_with(|| l.requested_addresses.iter().copied().find(|a| usable(*a)));
    }
    let unusable: Vec<String> = chosen
        .iter()
        .filter(|(_, a)| a.is_none())
        .map(|(gw, _)| gw.clone())
        .collect();
    for gw in &unusable {
        tracing::error!(gateway = %gw, "none of the Gateway's spec.addresses can be bound on this node: it is not served (AddressNotUsable)");
    }
    plan.listeners.retain(|l| {
        l.gateway()
            .is_none_or(|gw| !unusable.iter().any(|u| u == gw))
    });
    for l in &mut plan.listeners {
        if let Some(Some(a)) = l.gateway().and_then(|gw| chosen.get(gw)) {
            l.address = Some(*a);
        }
    }
    unusable
}

/// Whether this node can listen on `address` (it is one of its own).
pub fn bindable(address: IpAddr) -> bool {
    std::net::TcpListener::bind((address, 0)).is_ok()
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
    fn gateways_listen_on_the_first_of_their_addresses_that_can_be_bound() {
        let yaml = TWO_GATEWAYS.replace(
            "metadata: {name: a, namespace: ns}\nspec:\n",
            "metadata: {name: a, namespace: ns}\nspec:\n  addresses: [{value: 192.0.2.1}, {value: 127.0.10.9}]\n",
        );
        let usable = |a: IpAddr| a.is_loopback();
        let mut plan = plan_of(&yaml);
        assert!(bind_requested(&mut plan, usable).is_empty());
        let mut pool = Pool::new("127.0.10.0/30".parse().unwrap());
        pool.assign(&mut plan);
        let got = addresses(&plan);
        assert_eq!(got["ns/a/http"], Some("127.0.10.9".parse().unwrap()));
        assert_eq!(got["ns/a/alt"], Some("127.0.10.9".parse().unwrap()));
        assert_eq!(
            got["ns/b/http"],
            Some("127.0.10.1".parse().unwrap()),
            "{got:?}"
        );
        // None usable: the Gateway is not served, the other is.
        let mut plan = plan_of(&yaml.replace("127.0.10.9", "192.0.2.2"));
        assert_eq!(bind_requested(&mut plan, usable), vec!["ns/a".to_string()]);
        let got = addresses(&plan);
        assert!(!got.contains_key("ns/a/http"), "{got:?}");
        assert!(got.contains_key("ns/b/http"));
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
