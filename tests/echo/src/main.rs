//! `mesh-echo`: the test and demo backend (see the library's documentation).

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = mesh_echo::Args::parse();
    let (pod, listen) = (args.pod.clone(), args.listen);
    match mesh_echo::serve(args).await {
        Ok(run) => {
            eprintln!("mesh-echo {pod} listening on {listen}");
            run.await
        }
        Err(e) => {
            eprintln!("error: cannot listen on {listen}: {e}");
            std::process::exit(1);
        }
    }
}
