//! `/metrics` in the Prometheus text format: reviews by kind, operation and verdict, review
//! latency, and the size of the cluster cache.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReviewLabels {
    pub endpoint: &'static str,
    pub kind: &'static str,
    pub operation: String,
    pub verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub reviews: Family<ReviewLabels, Counter>,
    pub latency: Family<EndpointLabels, Histogram>,
    pub cache_objects: Gauge,
}

fn latency_histogram() -> Histogram {
    // 50µs .. ~1.6s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("mesh_webhook");
        let reviews = Family::<ReviewLabels, Counter>::default();
        let latency = Family::<EndpointLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let cache_objects = Gauge::default();
        registry.register(
            "reviews",
            "Admission reviews answered, by endpoint, kind, operation and verdict",
            reviews.clone(),
        );
        registry.register(
            "review_duration_seconds",
            "Time to answer a review",
            latency.clone(),
        );
        registry.register(
            "cache_objects",
            "Objects in the cluster cache",
            cache_objects.clone(),
        );
        Metrics {
            registry,
            reviews,
            latency,
            cache_objects,
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
