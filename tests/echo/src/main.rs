//! `mesh-echo`: the test and demo backend (see the library's documentation).
//!
//! `mesh-echo --listen ADDR --pod NAME --namespace NS` serves one backend;
//! `mesh-echo --endpoints-from DIR` serves every ready endpoint of the EndpointSlices in a folder
//! of YAML (each as its targetRef pod, or the Service name), which is how the demo wires real
//! backends to the examples; `mesh-echo client URL` is the mesh conformance tests' client
//! (`mesh_echo::client`).

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "mesh-echo",
    about = "Answers with JSON describing the request it received",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    one: Option<mesh_echo::Args>,
    /// Serve every EndpointSlice endpoint of the YAML in this folder.
    #[arg(long, conflicts_with = "listen")]
    endpoints_from: Option<std::path::PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Request URL and print the answers as the mesh conformance tests' client does.
    Client(mesh_echo::client::Options),
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    if let Some(Command::Client(opts)) = cli.command {
        if let Err(e) = mesh_echo::client::run(opts).await {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
        return;
    }
    let backends: Vec<mesh_echo::Args> = match (cli.one, cli.endpoints_from) {
        (_, Some(dir)) => mesh_echo::endpoints_from(&dir),
        (Some(one), None) => vec![one],
        (None, None) => {
            eprintln!("error: give --listen ADDR (one backend) or --endpoints-from DIR");
            std::process::exit(64);
        }
    };
    let mut running = Vec::new();
    for args in backends {
        let (pod, listen) = (args.pod.clone(), args.listen);
        match mesh_echo::serve(args).await {
            Ok(run) => {
                eprintln!("mesh-echo {pod} listening on {listen}");
                running.push(tokio::spawn(run));
            }
            Err(e) => {
                eprintln!("error: cannot listen on {listen} for {pod}: {e}");
                std::process::exit(1);
            }
        }
    }
    for r in running {
        let _ = r.await;
    }
}
