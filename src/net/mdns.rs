//! mDNS announcement: the box answers as `<name>.local` and advertises `_https._tcp`, so phones
//! and laptops find it without DNS. Switchable off in the configuration.

use std::net::IpAddr;

use mdns_sd::{ServiceDaemon, ServiceInfo};

pub const SERVICE_TYPE: &str = "_https._tcp.local.";

/// A running announcement; dropping it withdraws the service.
pub struct Announcement {
    daemon: ServiceDaemon,
    fullname: String,
}

/// Announce `name` (instance and host `<name>.local`) on `port` with `addrs`.
pub fn announce(name: &str, port: u16, addrs: &[IpAddr]) -> Result<Announcement, mdns_sd::Error> {
    let daemon = ServiceDaemon::new()?;
    let host = format!("{name}.local.");
    let addrs: Vec<IpAddr> = addrs.iter().copied().filter(|a| !a.is_loopback()).collect();
    let info = ServiceInfo::new(
        SERVICE_TYPE,
        name,
        &host,
        &addrs[..],
        port,
        &[("path", "/"), ("product", "kekeli")][..],
    )?;
    // With no address given, let the daemon publish every interface's address and follow changes.
    let info = if addrs.is_empty() {
        info.enable_addr_auto()
    } else {
        info
    };
    let fullname = info.get_fullname().to_string();
    daemon.register(info)?;
    tracing::info!(%host, port, "announced on mDNS");
    Ok(Announcement { daemon, fullname })
}

impl Drop for Announcement {
    fn drop(&mut self) {
        let _ = self.daemon.unregister(&self.fullname);
        let _ = self.daemon.shutdown();
    }
}
