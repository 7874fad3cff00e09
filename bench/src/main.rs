//! `mesh-bench`: how `kubectl mesh analyze` scales with the number of objects.
//!
//! Generates corpora of routes over many Gateways, Services with EndpointSlices,
//! ReferenceGrants and CiliumEnvoyConfigs, writes them as YAML files, and times loading plus
//! every rule (what `analyze` does, minus printing). Reports the median of several runs and
//! the cost per object, so growth that is not linear shows up as a rising per-object figure.
//!
//! `--sizes 1000,10000` picks the corpus sizes, `--runs N` the repetitions, `--shape mixed`
//! (the default, a realistic mix), `--shape contended` (every route fighting for one
//! listener and one match: the worst case for the conflict rules) or `--shape envoy` (rich
//! CiliumEnvoyConfigs only: Envoy's constraints and checks at scale).

/// The allocator kubectl-mesh uses, so the figures are analyze's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use mesh_bench::corpus::{contended_unit, envoy_unit, unit};
use mesh_model::load::{FileSource, Input, LoadOptions, ObjectSource};
use mesh_model::{rules, Snapshot};

/// Write a corpus of about `size` objects into `dir`, 500 objects per file.
fn generate(size: usize, dir: &std::path::Path, unit: fn(usize, &mut String) -> usize) -> usize {
    std::fs::create_dir_all(dir).expect("bench dir");
    let (mut total, mut file, mut k, mut text) = (0, 0, 0, String::new());
    while total < size {
        total += unit(k, &mut text);
        k += 1;
        if text.len() > 200_000 || total >= size {
            std::fs::write(dir.join(format!("corpus-{file:04}.yaml")), &text)
                .expect("write corpus");
            text.clear();
            file += 1;
        }
    }
    total
}

fn run(dir: &std::path::Path) -> (Duration, usize, usize) {
    let start = Instant::now();
    let source = FileSource {
        inputs: vec![Input::Path(dir.to_path_buf())],
    };
    let (objects, errors) = source.objects(&LoadOptions::default());
    assert!(errors.is_empty(), "{errors:?}");
    let n = objects.len();
    let snap = Snapshot::new(objects);
    let findings = rules::check(&snap);
    (start.elapsed(), n, findings.len())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sizes: Vec<usize> = args
        .iter()
        .position(|a| a == "--sizes")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000, 50_000]);
    let shape = args
        .iter()
        .position(|a| a == "--shape")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
        .unwrap_or("mixed");
    let unit: fn(usize, &mut String) -> usize = match shape {
        "contended" => contended_unit,
        "envoy" => envoy_unit,
        "mixed" => unit,
        other => {
            eprintln!("unknown --shape {other:?}: use mixed, contended or envoy");
            std::process::exit(64);
        }
    };
    println!("shape: {shape}\n");
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let base = std::env::temp_dir().join(format!("mesh-bench-{}", std::process::id()));
    println!("| objects | files | findings | median (ms) | min (ms) | max (ms) | µs per object |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for size in sizes {
        let dir = base.join(size.to_string());
        generate(size, &dir, unit);
        let files = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        let mut times = Vec::new();
        let (mut n, mut f) = (0, 0);
        for _ in 0..runs {
            let (t, objects, findings) = run(&dir);
            times.push(t);
            n = objects;
            f = findings;
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let median = times[times.len() / 2];
        println!(
            "| {n} | {files} | {f} | {:.0} | {:.0} | {:.0} | {:.1} |",
            ms(median),
            ms(times[0]),
            ms(times[times.len() - 1]),
            median.as_secs_f64() * 1e6 / n as f64
        );
    }
    if std::env::var_os("MESH_BENCH_KEEP").is_some() {
        eprintln!("corpora kept in {}", base.display());
    } else {
        let _ = std::fs::remove_dir_all(&base);
    }
}
