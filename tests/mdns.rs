//! The mDNS announcement is discoverable by a real mdns-sd browser, over the machine's own
//! multicast-capable interfaces (loopback has no multicast). Without any such interface the test
//! is skipped locally and fails under CI.

use std::time::{Duration, Instant};

use mdns_sd::{ServiceDaemon, ServiceEvent};

fn discover(instance: &str, port: u16) -> Result<Vec<std::net::IpAddr>, String> {
    let browser = ServiceDaemon::new().map_err(|e| e.to_string())?;
    let rx = browser
        .browse(kekeli::net::mdns::SERVICE_TYPE)
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(ServiceEvent::ServiceResolved(info)) if info.fullname.starts_with(instance) => {
                let _ = browser.shutdown();
                assert_eq!(info.port, port);
                assert_eq!(info.host, format!("{instance}.local."));
                return Ok(info.addresses.iter().map(|a| a.to_ip_addr()).collect());
            }
            _ => {}
        }
    }
    let _ = browser.shutdown();
    Err("not discovered within 15 s".into())
}

#[test]
fn the_box_is_discoverable_by_mdns() {
    let instance = format!("kekeli-test-{}", std::process::id());
    let names = kekeli::net::tls::Names::of_this_box(&instance);
    let usable: Vec<_> = names
        .ips
        .iter()
        .copied()
        .filter(|ip| !ip.is_loopback())
        .collect();
    if usable.is_empty() {
        // No interface but loopback: nothing to announce on. CI machines have one.
        assert!(
            std::env::var("CI").is_err(),
            "no network interface to test mDNS on"
        );
        eprintln!("skipped: no non-loopback interface");
        return;
    }
    let announcement = kekeli::net::mdns::announce(&instance, 18443, &usable).expect("announce");
    let found = discover(&instance, 18443).expect("discovered");
    assert!(
        found.iter().any(|a| usable.contains(a)),
        "{found:?} vs {usable:?}"
    );
    drop(announcement);
}
