//! Pods for real, as root: network namespaces on a bridge each test makes for itself
//! (its own bridge name and subnet, so tests run side by side), traffic between them, the
//! host's guard rules, the capture rules accepted by the kernel, crash recovery, and
//! nothing left behind afterwards. Without root every test prints why it is skipped.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use trellis_local::capture::{self, CaptureOptions, Selection};
use trellis_local::control_plane;
use trellis_local::exec;
use trellis_local::netns;
use trellis_local::network::{self, NetworkConfig};
use trellis_local::pod;
use trellis_local::process::ProcessRecord;
use trellis_local::state::StateDir;
use trellis_local::workload::in_pod;
use trellis_testkit::{Process, wait_until};

/// True as root with the tools; otherwise prints why the test is skipped.
fn can_run(test: &str) -> bool {
    match exec::preflight() {
        Ok(()) => true,
        Err(error) => {
            println!("skipped {test}: {error}");
            false
        }
    }
}

/// A state directory with its own bridge, torn down (`trellis down`) on drop, also when
/// the test fails.
struct Mesh {
    state: StateDir,
    network: NetworkConfig,
    _dir: tempfile::TempDir,
}

impl Mesh {
    fn new(bridge: &str, subnet: &str) -> Mesh {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path().join("state")).unwrap();
        let network = NetworkConfig {
            bridge: bridge.into(),
            subnet: subnet.parse().unwrap(),
        };
        let mesh = Mesh {
            state,
            network: network.clone(),
            _dir: dir,
        };
        network::ensure(&mesh.state, &network).unwrap();
        mesh
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        if let Err(error) = control_plane::down(&self.state) {
            eprintln!("cleanup failed: {error}");
        }
    }
}

fn iptables_save() -> String {
    exec::run("iptables-save", &[]).unwrap()
}

fn links() -> String {
    exec::run("ip", &["-o", "link"]).unwrap()
}

/// Asserts that nothing of `bridge`, its veths `veths` or the namespaces `netns` is left.
fn assert_nothing_left(bridge: &str, veths: &[String], netns: &[String]) {
    let names = pod::list_netns();
    for ns in netns {
        assert!(!names.contains(ns), "namespace {ns} left behind");
    }
    let links = links();
    assert!(
        !links.contains(&format!(": {bridge}:")),
        "bridge {bridge} left behind"
    );
    for veth in veths {
        assert!(!links.contains(veth.as_str()), "veth {veth} left behind");
    }
    assert!(
        !iptables_save().contains(bridge),
        "rules of {bridge} left behind"
    );
}

/// A tiny HTTP server inside a pod (`python3 -m http.server`), killed on drop.
fn http_server(netns: &str, port: u16, dir: &std::path::Path) -> Process {
    let args: Vec<String> = [
        "python3",
        "-m",
        "http.server",
        &port.to_string(),
        "--bind",
        "0.0.0.0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut command = in_pod(netns, None, &args);
    command.current_dir(dir);
    Process::start("http.server", command, &dir.join(format!("{netns}.log")))
}

#[test]
fn two_pods_reach_each_other_across_the_bridge_and_leave_nothing() {
    if !can_run("two_pods_reach_each_other_across_the_bridge_and_leave_nothing") {
        return;
    }
    let mesh = Mesh::new("trtpods0", "10.242.1.0/24");
    let a = pod::create(&mesh.state, &mesh.network, "tpods", "a").unwrap();
    let b = pod::create(&mesh.state, &mesh.network, "tpods", "b").unwrap();
    assert_eq!(a.ip, Ipv4Addr::new(10, 242, 1, 2));
    assert_eq!(b.ip, Ipv4Addr::new(10, 242, 1, 3));
    // The only routes: the pod subnet on eth0 and the default via the bridge address.
    let routes = exec::run("ip", &["-n", &a.netns, "route"]).unwrap();
    assert_eq!(
        routes.lines().map(str::trim).collect::<Vec<_>>(),
        [
            "default via 10.242.1.1 dev eth0",
            "10.242.1.0/24 dev eth0 proto kernel scope link src 10.242.1.2"
        ]
    );
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("hello.txt"), "hello from a").unwrap();
    let mut server = http_server(&a.netns, 8080, files.path());
    let target = SocketAddr::from((a.ip, 8080));
    let reply = wait_until("pod b reaches pod a", Duration::from_secs(15), || {
        if !server.running() {
            panic!("server exited\n{}", server.tail(20));
        }
        netns::request_in(
            &b.netns,
            "GET",
            target,
            "/hello.txt",
            &[],
            Duration::from_secs(2),
        )
        .map_err(|e| e.to_string())
    });
    assert_eq!((reply.status, reply.body.as_str()), (200, "hello from a"));
    let veths = vec![a.veth.clone(), b.veth.clone()];
    let names = vec![a.netns.clone(), b.netns.clone()];
    let server_pid = ProcessRecord::of("server", server.pid().unwrap());
    drop(server);
    drop(mesh);
    assert_nothing_left("trtpods0", &veths, &names);
    assert!(
        !server_pid.is_some_and(|p| p.alive()),
        "server still running"
    );
}

#[test]
fn capture_rules_are_accepted_by_the_kernel_inside_a_pod_only() {
    if !can_run("capture_rules_are_accepted_by_the_kernel_inside_a_pod_only") {
        return;
    }
    let mesh = Mesh::new("trtcap0", "10.242.4.0/24");
    let p = pod::create(&mesh.state, &mesh.network, "tcap", "p").unwrap();
    let host_nat = exec::run("iptables-save", &["-t", "nat"]).unwrap();
    let option_sets = [
        CaptureOptions::default(),
        CaptureOptions {
            include_inbound_ports: Selection::Only(vec![9080]),
            exclude_outbound_ports: vec![9090],
            exclude_outbound_ranges: vec!["10.0.0.0/8".parse().unwrap()],
            dns_capture_port: Some(capture::DNS_CAPTURE_PORT),
            ..CaptureOptions::default()
        },
        CaptureOptions {
            include_outbound_ranges: Selection::Only(vec!["240.240.0.0/16".parse().unwrap()]),
            include_outbound_ports: vec![5432],
            ..CaptureOptions::default()
        },
    ];
    for options in &option_sets {
        let rules = capture::rules(options).join("\n") + "\n";
        exec::run_with_input(
            "ip",
            &["netns", "exec", &p.netns, "iptables-restore"],
            Some(&rules),
        )
        .unwrap();
        let saved = exec::run(
            "ip",
            &["netns", "exec", &p.netns, "iptables-save", "-t", "nat"],
        )
        .unwrap();
        for line in capture::rules(options)
            .iter()
            .filter(|l| l.starts_with("-A "))
        {
            // iptables-save prints some matches in its own order; check the key parts.
            let chain = line.split_whitespace().nth(1).unwrap();
            assert!(
                saved.contains(&format!("-A {chain} ")),
                "{line} missing in\n{saved}"
            );
        }
        let appended = capture::rules(options)
            .iter()
            .filter(|l| l.starts_with("-A "))
            .count();
        let installed = saved.lines().filter(|l| l.starts_with("-A ")).count();
        assert_eq!(appended, installed, "{saved}");
    }
    exec::run_with_input(
        "ip",
        &["netns", "exec", &p.netns, "iptables-restore"],
        Some(&(capture::removal().join("\n") + "\n")),
    )
    .unwrap();
    let saved = exec::run(
        "ip",
        &["netns", "exec", &p.netns, "iptables-save", "-t", "nat"],
    )
    .unwrap();
    assert!(
        !saved.contains("ISTIO"),
        "capture left after removal:\n{saved}"
    );
    assert_eq!(
        exec::run("iptables-save", &["-t", "nat"])
            .unwrap()
            .contains("ISTIO"),
        host_nat.contains("ISTIO"),
        "capture rules leaked into the host's namespace"
    );
}

#[test]
fn a_crashed_pod_is_cleaned_up_and_names_in_use_are_refused() {
    if !can_run("a_crashed_pod_is_cleaned_up_and_names_in_use_are_refused") {
        return;
    }
    let mesh = Mesh::new("trtcrash0", "10.242.5.0/24");
    let first = pod::create(&mesh.state, &mesh.network, "tcrash", "p").unwrap();
    // Running (its supervisor, this test, is alive): the name is taken.
    let taken = pod::create(&mesh.state, &mesh.network, "tcrash", "p").unwrap_err();
    assert!(taken.to_string().contains("already running"), "{taken}");
    // Simulate a crash: the recorded supervisor is a process that has exited.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead = ProcessRecord::of("supervisor", gone.id());
    gone.wait().unwrap();
    mesh.state
        .update(|s| {
            let record = s.pods.get_mut("tcrash/p").unwrap();
            record.supervisor = dead.or(Some(ProcessRecord {
                role: "supervisor".into(),
                pid: u32::MAX,
                start_time: 0,
            }));
            Ok(())
        })
        .unwrap();
    let again = pod::create(&mesh.state, &mesh.network, "tcrash", "p").unwrap();
    assert_eq!(again.netns, first.netns);
    assert_eq!(
        pod::list_netns()
            .iter()
            .filter(|n| **n == first.netns)
            .count(),
        1
    );
    // A namespace nothing recorded is not taken over.
    exec::run("ip", &["netns", "add", "trellis-tcrash-ghost"]).unwrap();
    let ghost = pod::create(&mesh.state, &mesh.network, "tcrash", "ghost");
    exec::run("ip", &["netns", "del", "trellis-tcrash-ghost"]).unwrap();
    let message = ghost.unwrap_err().to_string();
    assert!(
        message.contains("ip netns del trellis-tcrash-ghost"),
        "{message}"
    );
    assert!(!mesh.state.load().unwrap().pods.contains_key("tcrash/ghost"));
    let veth = again.veth.clone();
    drop(mesh);
    assert_nothing_left("trtcrash0", &[veth], &[first.netns]);
}

/// A link and a namespace standing for "outside": a network the host routes to that is
/// not the bridge. Removed on drop.
struct Outside;

impl Outside {
    const NETNS: &'static str = "trellis-test-outside";
    const HOST_LINK: &'static str = "trtout0";

    fn new() -> Outside {
        let outside = Outside;
        let ns = Self::NETNS;
        exec::run("ip", &["netns", "add", ns]).unwrap();
        exec::run(
            "ip",
            &[
                "link",
                "add",
                Self::HOST_LINK,
                "type",
                "veth",
                "peer",
                "name",
                "trtout1",
            ],
        )
        .unwrap();
        exec::run("ip", &["link", "set", "trtout1", "netns", ns]).unwrap();
        exec::run(
            "ip",
            &["addr", "add", "203.0.113.1/24", "dev", Self::HOST_LINK],
        )
        .unwrap();
        exec::run("ip", &["link", "set", Self::HOST_LINK, "up"]).unwrap();
        exec::run(
            "ip",
            &["-n", ns, "addr", "add", "203.0.113.2/24", "dev", "trtout1"],
        )
        .unwrap();
        exec::run("ip", &["-n", ns, "link", "set", "trtout1", "up"]).unwrap();
        outside
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        exec::run_quietly("ip", &["link", "del", Self::HOST_LINK]);
        exec::run_quietly("ip", &["netns", "del", Self::NETNS]);
    }
}

/// The packet count of the rule of `chain` whose text contains `rule`.
fn counter(chain: &str, rule: &str) -> u64 {
    let listing = exec::run("iptables", &["-v", "-S", chain]).unwrap();
    let line = listing
        .lines()
        .find(|l| l.contains(rule))
        .unwrap_or_else(|| panic!("no rule {rule:?} in\n{listing}"));
    let mut words = line.split_whitespace().skip_while(|w| *w != "-c").skip(1);
    words.next().and_then(|n| n.parse().ok()).unwrap()
}

#[test]
fn nothing_leaves_the_bridge() {
    if !can_run("nothing_leaves_the_bridge") {
        return;
    }
    let mesh = Mesh::new("trtsafe0", "10.242.2.0/24");
    let outside = Outside::new();
    let p = pod::create(&mesh.state, &mesh.network, "tsafe", "p").unwrap();
    // Count what reaches the outside from the pod subnet (no target: counts only).
    exec::run(
        "ip",
        &[
            "netns",
            "exec",
            Outside::NETNS,
            "iptables",
            "-A",
            "INPUT",
            "-s",
            "10.242.2.0/24",
        ],
    )
    .unwrap();
    // Forwarding on for packets arriving on this bridge only (the global switch stays as
    // it is), so that the packet reaches the FORWARD chain rather than being refused by
    // routing: the guard rule, not the sysctl, must stop it.
    exec::run(
        "sysctl",
        &["-q", "-w", "net.ipv4.conf.trtsafe0.forwarding=1"],
    )
    .unwrap();
    let fwd = mesh.network.forward_chain();
    let input = mesh.network.input_chain();
    let dropped_before = counter(&fwd, "! -o trtsafe0");
    let input_before = counter(&input, "-j DROP");
    for target in ["203.0.113.2:80", "203.0.113.2:443"] {
        let result = netns::connect_in(&p.netns, target.parse().unwrap(), Duration::from_secs(1));
        assert!(result.is_err(), "the pod reached {target}");
    }
    // The host's own address on the other link is not the bridge address: refused too.
    let host = netns::connect_in(
        &p.netns,
        "203.0.113.1:22".parse().unwrap(),
        Duration::from_secs(1),
    );
    assert!(
        host.is_err(),
        "the pod reached the host's non-bridge address"
    );
    let dropped = counter(&fwd, "! -o trtsafe0") - dropped_before;
    let refused = counter(&input, "-j DROP") - input_before;
    assert!(
        dropped >= 2,
        "forwarded packets not dropped by {fwd}: {dropped}"
    );
    assert!(
        refused >= 1,
        "packets to the host's other address not dropped by {input}: {refused}"
    );
    let arrived = exec::run(
        "ip",
        &[
            "netns",
            "exec",
            Outside::NETNS,
            "iptables",
            "-v",
            "-S",
            "INPUT",
        ],
    )
    .unwrap();
    assert!(
        arrived.contains("-c 0 0"),
        "something arrived outside:\n{arrived}"
    );
    // No NAT for the pod subnet on the host.
    assert!(
        !exec::run("iptables-save", &["-t", "nat"])
            .unwrap()
            .contains("10.242.2.")
    );
    drop(outside);
    drop(mesh);
    assert_nothing_left("trtsafe0", &[p.veth], &[p.netns]);
}
