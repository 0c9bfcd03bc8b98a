//! Can runc see the cgroup hierarchies from this mount namespace?
//!
//! runc finds cgroups through `/proc/self/mountinfo`, not through
//! `/proc/cgroups`: a process started under `ip netns exec` (which mounts a
//! fresh `/sys`) still sees every controller in `/proc/cgroups`, but no
//! cgroup mount at all, and then every container fails late with runc's
//! "no cgroup mount found in mountinfo". The kubelet and `kelp check-config`
//! read mountinfo up front and say so plainly instead.

/// Controllers a pod's cgroup needs on a cgroup v1 (or hybrid) host.
pub const REQUIRED_V1_CONTROLLERS: [&str; 4] = ["cpu", "memory", "pids", "devices"];

/// What `/proc/self/mountinfo` shows of the cgroup filesystems.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CgroupMounts {
    /// Mount points of cgroup2 filesystems.
    pub v2: Vec<String>,
    /// v1 controllers that have a mounted hierarchy.
    pub v1_controllers: Vec<String>,
}

impl CgroupMounts {
    /// Reads this process's mountinfo.
    pub fn of_this_process() -> std::io::Result<Self> {
        Ok(Self::parse(&std::fs::read_to_string(
            "/proc/self/mountinfo",
        )?))
    }

    /// Parses mountinfo text (proc(5)): the fields after the ` - `
    /// separator are the filesystem type, the source and the super options;
    /// a v1 hierarchy's super options name its controllers.
    pub fn parse(mountinfo: &str) -> Self {
        let mut mounts = Self::default();
        for line in mountinfo.lines() {
            let Some((before, after)) = line.split_once(" - ") else {
                continue;
            };
            let mount_point = before.split(' ').nth(4).unwrap_or_default();
            let mut tail = after.split(' ');
            let (fstype, _source, options) = (tail.next(), tail.next(), tail.next());
            match fstype {
                Some("cgroup2") => mounts.v2.push(mount_point.to_string()),
                Some("cgroup") => {
                    for option in options.unwrap_or_default().split(',') {
                        if !mounts.v1_controllers.iter().any(|c| c == option) {
                            mounts.v1_controllers.push(option.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        mounts
    }

    /// Why runc could not place containers in cgroups from here, if it
    /// could not. A unified (v2) mount at `/sys/fs/cgroup` is enough;
    /// otherwise every required v1 controller needs a mounted hierarchy.
    pub fn problem(&self) -> Option<String> {
        if self.v2.iter().any(|m| m == "/sys/fs/cgroup") {
            return None;
        }
        let missing: Vec<&str> = REQUIRED_V1_CONTROLLERS
            .into_iter()
            .filter(|c| !self.v1_controllers.iter().any(|m| m == c))
            .collect();
        if missing.is_empty() {
            return None;
        }
        let what = if self.v1_controllers.is_empty() && self.v2.is_empty() {
            "no cgroup filesystem is mounted in this mount namespace".to_string()
        } else {
            format!("no cgroup hierarchy is mounted for {}", missing.join(", "))
        };
        Some(format!(
            "{what} (/proc/self/mountinfo), so runc cannot start containers; \
             mount cgroupfs at /sys/fs/cgroup, and do not start kelp under \
             `ip netns exec` (it remounts /sys): use `nsenter --net=/run/netns/NAME`"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
29 24 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
30 29 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
33 29 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
34 29 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
35 29 0:32 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,pids
36 29 0:33 / /sys/fs/cgroup/devices rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,devices
";

    #[test]
    fn hybrid_host_is_fine() {
        let m = CgroupMounts::parse(HYBRID);
        assert_eq!(m.v2, ["/sys/fs/cgroup/unified"]);
        assert!(m.v1_controllers.iter().any(|c| c == "cpuacct"));
        assert_eq!(m.problem(), None);
    }

    #[test]
    fn unified_host_is_fine() {
        let m = CgroupMounts::parse(
            "30 24 0:27 / /sys/fs/cgroup rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate\n",
        );
        assert_eq!(m.problem(), None);
    }

    #[test]
    fn fresh_sys_without_cgroups_is_reported() {
        let m = CgroupMounts::parse(
            "24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw\n",
        );
        let problem = m.problem().expect("a problem");
        assert!(
            problem.starts_with("no cgroup filesystem is mounted"),
            "{problem}"
        );
        assert!(problem.contains("ip netns exec"), "{problem}");
    }

    #[test]
    fn a_missing_v1_controller_is_named() {
        let without_pids: String = HYBRID
            .lines()
            .filter(|l| !l.contains("pids"))
            .collect::<Vec<_>>()
            .join("\n");
        let problem = CgroupMounts::parse(&without_pids)
            .problem()
            .expect("a problem");
        assert!(
            problem.starts_with("no cgroup hierarchy is mounted for pids"),
            "{problem}"
        );
    }
}
