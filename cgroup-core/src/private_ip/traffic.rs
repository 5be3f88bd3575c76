//! Per-customer traffic counters (bpf/net_traffic.bpf.c): what the two cgroup_skb programs
//! count per uid, read back from their pinned per-CPU map and summed over CPUs.
//!
//! The types are plain data, always compiled (stats and JSON carry them); reading the map
//! needs the `bpf` feature (libbpf-rs), which cgroupctl has and pam_cgroup.so has not: the
//! PAM module never reads counters.

use serde::Serialize;

/// File name of the counters map's pin in the tree's pin directory.
pub const TRAFFIC_MAP_PIN: &str = "traffic";

/// Bytes and packets of one scope, both directions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Flow {
    pub receive_bytes: u64,
    pub receive_packets: u64,
    pub transmit_bytes: u64,
    pub transmit_packets: u64,
}

impl Flow {
    pub fn plus(&self, o: &Flow) -> Flow {
        Flow {
            receive_bytes: self.receive_bytes.wrapping_add(o.receive_bytes),
            receive_packets: self.receive_packets.wrapping_add(o.receive_packets),
            transmit_bytes: self.transmit_bytes.wrapping_add(o.transmit_bytes),
            transmit_packets: self.transmit_packets.wrapping_add(o.transmit_packets),
        }
    }
}

/// A user's traffic since its first counted packet after the map was made: `loopback`
/// through a loopback device (never left the host's network namespace), `external` through
/// any other device. Bytes are IP-layer bytes (IP and transport headers included, no link
/// layer); packets count GSO segments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Traffic {
    pub loopback: Flow,
    pub external: Flow,
}

impl Traffic {
    /// Size of `struct traffic` in the C file: u64 bytes[2][2], u64 packets[2][2].
    pub const C_SIZE: usize = 64;

    /// Decodes one CPU's `struct traffic` (`[direction][scope]`, direction 0 = receive,
    /// scope 0 = loopback). None when the slice is too short.
    pub fn from_c_bytes(b: &[u8]) -> Option<Traffic> {
        let word = |i: usize| -> Option<u64> {
            let chunk = b.get(i * 8..i * 8 + 8)?;
            Some(u64::from_ne_bytes(chunk.try_into().ok()?))
        };
        // bytes[dir][scope] at 0..4, packets[dir][scope] at 4..8.
        let flow = |scope: usize| -> Option<Flow> {
            Some(Flow {
                receive_bytes: word(scope)?,
                transmit_bytes: word(2 + scope)?,
                receive_packets: word(4 + scope)?,
                transmit_packets: word(6 + scope)?,
            })
        };
        Some(Traffic {
            loopback: flow(0)?,
            external: flow(1)?,
        })
    }

    pub fn plus(&self, o: &Traffic) -> Traffic {
        Traffic {
            loopback: self.loopback.plus(&o.loopback),
            external: self.external.plus(&o.external),
        }
    }
}

#[cfg(feature = "bpf")]
pub use reader::{forget_user_traffic, read_all_traffic, read_user_traffic, TrafficReader};

#[cfg(feature = "bpf")]
mod reader {
    use std::collections::HashMap;
    use std::path::Path;

    use libbpf_rs::{MapCore, MapFlags, MapHandle};

    use super::{Traffic, TRAFFIC_MAP_PIN};
    use crate::error::{Error, Result};
    use crate::private_ip::{pins, DEFAULT_BPFFS};
    use crate::tree::Tree;

    fn bpf_err(op: &'static str, target: &Path, e: impl std::fmt::Display) -> Error {
        Error::Bpf {
            op,
            target: target.display().to_string(),
            reason: e.to_string(),
        }
    }

    /// The pinned map of a tree; None when there is none (`cgroupctl init` has not run with
    /// private IPs enabled: nothing is counted, which is not 0).
    fn open(tree: &Tree) -> Result<Option<(MapHandle, std::path::PathBuf)>> {
        let pin = pins::pin_dir(Path::new(DEFAULT_BPFFS), &tree.root)?.join(TRAFFIC_MAP_PIN);
        if !pin.exists() {
            return Ok(None);
        }
        let map = MapHandle::from_pinned_path(&pin).map_err(|e| bpf_err("open", &pin, e))?;
        Ok(Some((map, pin)))
    }

    fn sum(map: &MapHandle, pin: &Path, key: &[u8]) -> Result<Option<Traffic>> {
        let per_cpu = map
            .lookup_percpu(key, MapFlags::ANY)
            .map_err(|e| bpf_err("read", pin, e))?;
        Ok(per_cpu.map(|cpus| {
            cpus.iter()
                .filter_map(|b| Traffic::from_c_bytes(b))
                .fold(Traffic::default(), |a, t| a.plus(&t))
        }))
    }

    /// One user's counters: None when the tree has no counters map, zeros when the user has
    /// sent and received nothing since the map was made.
    pub fn read_user_traffic(tree: &Tree, uid: u32) -> Result<Option<Traffic>> {
        let Some((map, pin)) = open(tree)? else {
            return Ok(None);
        };
        Ok(Some(
            sum(&map, &pin, &uid.to_ne_bytes())?.unwrap_or_default(),
        ))
    }

    /// Reads users' counters by their `users/<user>` directory: its cgroup id, looked up in
    /// the fence map, gives the uid the programs count under. No NSS look-up (cgroupctl stats
    /// at 10,000 users must not resolve 10,000 names), and the same answer the programs give:
    /// a directory not registered as a fence is not counted (None), whoever it is named for.
    pub struct TrafficReader {
        fences: MapHandle,
        fence_pin: std::path::PathBuf,
        all: HashMap<u32, Traffic>,
    }

    impl TrafficReader {
        /// None when the tree has no counters map (or no fence map).
        pub fn open(tree: &Tree) -> Result<Option<TrafficReader>> {
            let Some(all) = read_all_traffic(tree)? else {
                return Ok(None);
            };
            let fence_pin = crate::private_ip::fence_map_pin(tree)?;
            if !fence_pin.exists() {
                return Ok(None);
            }
            let fences = MapHandle::from_pinned_path(&fence_pin)
                .map_err(|e| bpf_err("open", &fence_pin, e))?;
            Ok(Some(TrafficReader {
                fences,
                fence_pin,
                all,
            }))
        }

        /// The counters of the user whose fence is `user_dir`: zeros when it has had no
        /// traffic since the map was made, None when the directory is not a registered fence.
        pub fn of_user_dir(&self, user_dir: &Path) -> Result<Option<Traffic>> {
            let id = crate::private_ip::cgroup_id(user_dir)?;
            let value = self
                .fences
                .lookup(&id.to_ne_bytes(), MapFlags::ANY)
                .map_err(|e| bpf_err("read", &self.fence_pin, e))?;
            // struct fence: ip4, kind, uid (u32 each); an older 8-byte entry has no uid.
            let uid = value.as_deref().and_then(|v| {
                let kind = u32::from_ne_bytes(v.get(4..8)?.try_into().ok()?);
                let uid = u32::from_ne_bytes(v.get(8..12)?.try_into().ok()?);
                (kind == crate::private_ip::fence::KIND_FENCE).then_some(uid)
            });
            Ok(uid.map(|uid| self.all.get(&uid).copied().unwrap_or_default()))
        }
    }

    /// Drops the counters of `uid` (`cgroupctl remove`: a uid given to a new account later
    /// must not start with the removed customer's counts). No map, or no entry: nothing to do.
    /// Returns whether an entry was there.
    pub fn forget_user_traffic(tree: &Tree, uid: u32) -> Result<bool> {
        let Some((map, pin)) = open(tree)? else {
            return Ok(false);
        };
        let key = uid.to_ne_bytes();
        if sum(&map, &pin, &key)?.is_none() {
            return Ok(false);
        }
        map.delete(&key).map_err(|e| bpf_err("delete", &pin, e))?;
        Ok(true)
    }

    impl TrafficReader {
        /// The uid the programs count `user_dir`'s sockets under (its fence entry); None when
        /// it is not a registered fence.
        pub fn fence_uid(&self, user_dir: &Path) -> Result<Option<u32>> {
            let id = crate::private_ip::cgroup_id(user_dir)?;
            let value = self
                .fences
                .lookup(&id.to_ne_bytes(), MapFlags::ANY)
                .map_err(|e| bpf_err("read", &self.fence_pin, e))?;
            Ok(value.as_deref().and_then(|v| {
                let kind = u32::from_ne_bytes(v.get(4..8)?.try_into().ok()?);
                let uid = u32::from_ne_bytes(v.get(8..12)?.try_into().ok()?);
                (kind == crate::private_ip::fence::KIND_FENCE).then_some(uid)
            }))
        }
    }

    /// Every uid's counters; None when the tree has no counters map.
    pub fn read_all_traffic(tree: &Tree) -> Result<Option<HashMap<u32, Traffic>>> {
        let Some((map, pin)) = open(tree)? else {
            return Ok(None);
        };
        let mut out = HashMap::new();
        for key in map.keys() {
            let Ok(raw) = <[u8; 4]>::try_from(key.as_slice()) else {
                continue;
            };
            // A key that vanished meanwhile has nothing to report.
            if let Some(t) = sum(&map, &pin, &key)? {
                out.insert(u32::from_ne_bytes(raw), t);
            }
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_c_layout() {
        let words: [u64; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let t = Traffic::from_c_bytes(&bytes).unwrap();
        assert_eq!(
            t.loopback,
            Flow {
                receive_bytes: 1,
                transmit_bytes: 3,
                receive_packets: 5,
                transmit_packets: 7
            }
        );
        assert_eq!(
            t.external,
            Flow {
                receive_bytes: 2,
                transmit_bytes: 4,
                receive_packets: 6,
                transmit_packets: 8
            }
        );
        assert!(Traffic::from_c_bytes(&bytes[..60]).is_none());
        assert_eq!(t.plus(&t).external.transmit_packets, 16);
    }
}
