//! This process's name as a node of a cluster (`host:pid`), whether a process of this
//! machine is (still) a running gateway, and whether this one may use two cores.

/// The environment variable naming this node (default: the machine's name), for
/// machines that share a name, or several nodes on one machine.
pub const NODE_ENV: &str = "CPIS_GATEWAY_NODE";

/// This node's name without its pid: [`NODE_ENV`], else the machine's name.
fn hostname() -> String {
    std::env::var(NODE_ENV)
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().replace(':', "-"))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether `node` (`host:pid`) was a gateway of this machine (of this node name) that is
/// no longer running (its pid gone, or now another program's).
pub fn died_here(node: &str) -> bool {
    let Some((host, pid)) = node.rsplit_once(':') else {
        return false;
    };
    if host != hostname() || pid == std::process::id().to_string() {
        return false;
    }
    !pid.parse().is_ok_and(is_gateway)
}

/// Whether process `pid` is running and is a gateway (a pid can be another program's
/// once its gateway has gone).
pub fn is_gateway(pid: u32) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| {
        exe.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("cpis-gateway"))
    })
}

/// This process's name as a node: `host:pid`.
pub fn node_name() -> String {
    format!("{}:{}", hostname(), std::process::id())
}

/// Whether this process may use two cores at once (its CPU affinity and quota allow it):
/// read once.
pub fn two_cores() -> bool {
    static TWO: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TWO.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() > 1))
}
