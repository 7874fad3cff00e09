//! Hostile clients and hostile files: every one is refused or timed out cleanly, and the agent
//! keeps serving everyone else.

mod support;

use std::time::Duration;

use support::{backend, closed_within, cpu_time, gateway_with_route, get, spawn, spawn_limited};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Each test has its own Gateway address, so they can run side by side.
async fn agent_on(
    ip: &str,
    backend_addr: &str,
    extra: &[&str],
    nofile: Option<u64>,
) -> support::Agent {
    let (host, port) = backend_addr.rsplit_once(':').unwrap();
    backend(backend_addr, "echo", "default").await;
    let dir = support::folder(&format!("hostile-{ip}"));
    std::fs::write(
        dir.join("config.yaml"),
        gateway_with_route(8080, host, port.parse().unwrap()),
    )
    .unwrap();
    let mut args = vec!["--gateway-addr", ip];
    args.extend_from_slice(extra);
    let agent = spawn_limited(&dir, &args, nofile).await;
    agent.loaded().await;
    agent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_silent_and_idle_clients_are_closed() {
    let ip = "127.0.0.41";
    let _agent = agent_on(
        ip,
        "127.0.1.41:9000",
        &["--request-headers-timeout", "1s", "--idle-timeout", "2s"],
        None,
    )
    .await;
    assert_eq!(
        get(&format!("http://{ip}:8080/"), "example.com").await.0,
        200
    );

    // Silent: connects and never sends a byte.
    let mut silent = TcpStream::connect((ip, 8080)).await.unwrap();
    // Slowloris: a request head one byte at a time, never finished.
    let mut slow = TcpStream::connect((ip, 8080)).await.unwrap();
    let trickle = tokio::spawn(async move {
        for b in b"GET / HTTP/1.1\r\nHost: example.com\r\nX-Slow: "
            .iter()
            .cycle()
            .take(60)
        {
            if slow.write_all(&[*b]).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        closed_within(&mut slow, Duration::from_millis(10)).await
    });
    // Idle: one request, then nothing on the kept-alive connection.
    let mut idle = TcpStream::connect((ip, 8080)).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
        .await
        .unwrap();
    // HTTP/2 with prior knowledge: the preface and SETTINGS, then no request.
    let mut h2 = TcpStream::connect((ip, 8080)).await.unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();

    // Generous bounds: the point is that they end, not how fast.
    let bound = Duration::from_secs(15);
    assert!(
        closed_within(&mut silent, bound).await,
        "a silent connection stays open"
    );
    assert!(
        closed_within(&mut idle, bound).await,
        "an idle keep-alive connection stays open"
    );
    assert!(
        closed_within(&mut h2, bound).await,
        "an idle HTTP/2 connection stays open"
    );
    assert!(
        trickle.await.unwrap(),
        "a slowloris request head was never cut off"
    );
    assert_eq!(
        get(&format!("http://{ip}:8080/"), "example.com").await.0,
        200,
        "others are served"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_never_answers_meets_the_default_route_timeout() {
    let ip = "127.0.0.42";
    // A backend that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.1.42:9000")
        .await
        .unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let dir = support::folder("hostile-timeout");
    std::fs::write(
        dir.join("config.yaml"),
        gateway_with_route(8080, "127.0.1.42", 9000),
    )
    .unwrap();
    let agent = spawn(
        &dir,
        &["--gateway-addr", ip, "--default-route-timeout", "1s"],
    )
    .await;
    agent.loaded().await;
    let (code, body) = get(&format!("http://{ip}:8080/"), "example.com").await;
    assert_eq!(code, 504, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_connection_budget_clients_are_closed_and_the_admin_api_answers() {
    let ip = "127.0.0.43";
    let agent = agent_on(
        ip,
        "127.0.1.43:9000",
        &["--max-connections", "8", "--request-headers-timeout", "30s"],
        None,
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(TcpStream::connect((ip, 8080)).await.unwrap());
    }
    // Let the agent accept them all.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut extra = TcpStream::connect((ip, 8080)).await.unwrap();
    assert!(
        closed_within(&mut extra, Duration::from_secs(5)).await,
        "over budget, yet kept open"
    );
    assert_eq!(
        agent.ready().await.0,
        200,
        "the admin API has its own budget"
    );
    let stats = agent.stats().await;
    assert!(
        stats
            .lines()
            .any(|l| l.starts_with("envoy_listener_downstream_cx_overflow") && !l.ends_with(" 0")),
        "{stats}"
    );
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        get(&format!("http://{ip}:8080/"), "example.com").await.0,
        200,
        "served again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_the_accept_loop_backs_off() {
    let ip = "127.0.0.44";
    // A budget the descriptor limit cannot honour: accept itself fails with EMFILE.
    let agent = agent_on(
        ip,
        "127.0.1.44:9000",
        &[
            "--max-connections",
            "10000",
            "--request-headers-timeout",
            "30s",
        ],
        Some(96),
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..150 {
        match TcpStream::connect((ip, 8080)).await {
            Ok(s) => held.push(s),
            Err(_) => break,
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = agent.child.id();
    let before = cpu_time(pid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_time(pid) - before;
    // A spinning accept loop burns all of a core (2 s here); backing off, almost nothing.
    assert!(
        used < Duration::from_millis(800),
        "accept loop used {used:?} of CPU in 2 s"
    );
    drop(held);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        get(&format!("http://{ip}:8080/"), "example.com").await.0,
        200,
        "served again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_files_in_the_folder_do_not_stop_the_agent() {
    use std::os::unix::fs::symlink;
    let ip = "127.0.0.45";
    let agent = agent_on(
        ip,
        "127.0.1.45:9000",
        &["--concurrency", "1", "--max-file-size", "1Mi"],
        None,
    )
    .await;
    let dir = agent.dir.clone();
    // A FIFO nobody writes, a link to /dev/zero, two directory loops, a big file, an alias
    // bomb: each would once block, loop or exhaust the agent.
    let fifo = std::ffi::CString::new(dir.join("fifo.yaml").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo only reads the path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    symlink("/dev/zero", dir.join("zero.yaml")).unwrap();
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    symlink(&dir, dir.join("sub/loop1")).unwrap();
    symlink(dir.join("sub"), dir.join("sub/loop2")).unwrap();
    std::fs::write(dir.join("big.yaml"), "#".repeat(2 << 20)).unwrap();
    let mut bomb = String::from("a0: &a0 [lol]\n");
    for i in 1..10 {
        let refs: Vec<String> = (0..10).map(|_| format!("*a{}", i - 1)).collect();
        bomb.push_str(&format!("a{i}: &a{i} [{}]\n", refs.join(", ")));
    }
    let info = agent.write("bomb.yaml", &bomb).await;
    // Still answering on its only thread, and still serving.
    assert_eq!(
        get(&format!("http://{ip}:8080/"), "example.com").await.0,
        200,
        "{info}"
    );
    let left = info["left_out"].to_string();
    assert!(left.contains("excessive aliasing"), "{info}");
    assert!(
        left.contains("big.yaml") && left.contains("larger than"),
        "{info}"
    );
    // A further change is still seen.
    let info = agent
        .write("config.yaml", &gateway_with_route(8081, "127.0.1.45", 9000))
        .await;
    assert_eq!(
        get(&format!("http://{ip}:8081/"), "example.com").await.0,
        200,
        "{info}"
    );
}
