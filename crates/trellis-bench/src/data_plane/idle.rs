//! An idle sidecar holding the configuration of a large mesh: the memory a data plane
//! costs before it carries a single request.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde::Serialize;
use trellis_testkit::mesh::{self, MeshDir};
use trellis_testkit::wait_until;

use super::procstat;
use super::topology::{Binaries, CONVERGE, DataPlane, Workload, start_sidecar};
use crate::synthetic::{self, Shape};

/// One idle sidecar.
#[derive(Debug, Clone, Serialize)]
pub struct Idle {
    pub plane: DataPlane,
    pub services: usize,
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
}

const AT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 1, 3));
/// How long the sidecar rests after its config is ACKed before it is read.
const SETTLE: Duration = Duration::from_secs(5);

/// Measures one idle sidecar per data plane (the floor has none).
pub fn measure_all(
    bins: &Binaries,
    planes: &[DataPlane],
    services: usize,
) -> anyhow::Result<Vec<Idle>> {
    let shape = Shape {
        services,
        endpoints: 10,
    };
    let dir = MeshDir::new();
    for i in 0..services {
        dir.write(
            &format!("{}.yaml", synthetic::service_name(i)),
            &synthetic::service_yaml(shape, i, Default::default()),
        );
    }
    let (_cp, xds, debug) = mesh::control_plane(&bins.trellis, dir.path(), AT, CONVERGE);
    let mut out = Vec::new();
    for plane in planes.iter().filter(|p| **p != DataPlane::None) {
        eprintln!("== idle {} with {services} services", plane.name());
        let workload = Workload {
            name: "svc-0-idle",
            namespace: &synthetic::namespace(0),
            app: &synthetic::service_name(0),
            ip: AT,
        };
        let mut sidecar = start_sidecar(*plane, bins, &dir, xds, &workload)?;
        wait_until("the idle sidecar ACKs its config", CONVERGE * 3, || {
            mesh::synced(debug, workload.name)
        });
        std::thread::sleep(SETTLE);
        let reading = sidecar
            .pid()
            .and_then(procstat::read_tree)
            .unwrap_or_default();
        out.push(Idle {
            plane: *plane,
            services,
            rss_kib: reading.rss_kib,
            peak_rss_kib: reading.peak_rss_kib,
        });
        sidecar.terminate(Duration::from_secs(5));
    }
    Ok(out)
}
