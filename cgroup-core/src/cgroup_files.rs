//! The kernel's core interface files of a cgroup v2 directory (Documentation/admin-guide/
//! cgroup-v2.rst, "Core Interface Files"), named once, and the one parser of `cgroup.events`.

pub const PROCS: &str = "cgroup.procs";
pub const THREADS: &str = "cgroup.threads";
pub const TYPE: &str = "cgroup.type";
pub const EVENTS: &str = "cgroup.events";
pub const FREEZE: &str = "cgroup.freeze";
pub const KILL: &str = "cgroup.kill";
pub const CONTROLLERS: &str = "cgroup.controllers";
pub const SUBTREE_CONTROL: &str = "cgroup.subtree_control";
pub const MAX_DESCENDANTS: &str = "cgroup.max.descendants";
pub const MAX_DEPTH: &str = "cgroup.max.depth";

/// The keys of `cgroup.events` (`populated 1\nfrozen 0\n`); `None` for a key the text lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CgroupEvents {
    /// Some process lives in the cgroup or a descendant.
    pub populated: Option<bool>,
    /// The cgroup is frozen (reached, not only requested through `cgroup.freeze`).
    pub frozen: Option<bool>,
}

impl CgroupEvents {
    pub fn parse(text: &str) -> CgroupEvents {
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
                .map(str::trim)
        };
        CgroupEvents {
            populated: value("populated").map(|v| v != "0"),
            frozen: value("frozen").map(|v| v == "1"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events() {
        let e = CgroupEvents::parse("populated 1\nfrozen 0\n");
        assert_eq!(e.populated, Some(true));
        assert_eq!(e.frozen, Some(false));
        let e = CgroupEvents::parse("populated 0\nfrozen 1\n");
        assert_eq!(e.populated, Some(false));
        assert_eq!(e.frozen, Some(true));
        assert_eq!(CgroupEvents::parse(""), CgroupEvents::default());
        // A key is the whole first word, not a prefix of another.
        assert_eq!(CgroupEvents::parse("populatedx 1\n").populated, None);
    }
}
