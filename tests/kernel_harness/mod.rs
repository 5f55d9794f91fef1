//! Kernel test harness: scratch cgroups, network namespaces and bpffs directories that clean up
//! after themselves, a fixed TCP workload run by a forked child inside them, and the
//! differential comparison of two objects' maps after that workload.
//!
//! Everything this harness creates carries the prefix [`PREFIX`] (`opsplit-test-<pid>-<n>-<tag>`),
//! is removed by a Drop guard on success and failure, and [`Session::start`] first removes
//! leftovers of earlier crashed runs with that prefix — and nothing else. Kernel tests are
//! serialised through [`Session`]: an in-process mutex plus a file lock across test binaries.
#![allow(dead_code)]

pub mod diff;
pub mod workload;

use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const PREFIX: &str = "opsplit-test-";
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup/unified";
pub const BPFFS: &str = "/sys/fs/bpf";
const LOCK_FILE: &str = "/run/lock/opsplit-kernel-tests.lock";

static IN_PROCESS: Mutex<()> = Mutex::new(());
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique name with opsplit's test prefix.
pub fn unique(tag: &str) -> String {
    format!(
        "{PREFIX}{}-{}-{tag}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Held for the whole of one kernel test.
pub struct Session {
    _file: std::fs::File,
    _guard: std::sync::MutexGuard<'static, ()>,
}

impl Session {
    pub fn start() -> Session {
        let guard = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
        let _ = std::fs::create_dir_all("/run/lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(LOCK_FILE)
            .expect("open the kernel test lock file");
        // SAFETY: valid fd; blocks until the other test binary releases the lock.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(r, 0, "flock {LOCK_FILE}");
        cleanup_leftovers();
        Session {
            _file: file,
            _guard: guard,
        }
    }
}

fn ours(name: &str) -> bool {
    name.starts_with(PREFIX)
}

/// Removes what earlier crashed runs of these tests left: only names with [`PREFIX`]. Runs under
/// the lock, so nothing it sees belongs to a live test.
pub fn cleanup_leftovers() {
    if let Ok(rd) = std::fs::read_dir(BPFFS) {
        for e in rd.flatten() {
            if ours(&e.file_name().to_string_lossy()) {
                remove_pin_dir(&e.path());
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(CGROUP_ROOT) {
        for e in rd.flatten() {
            if ours(&e.file_name().to_string_lossy()) {
                remove_cgroup(&e.path());
            }
        }
    }
    if let Ok(out) = Command::new("ip").args(["netns", "list"]).output() {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            if ours(name) {
                let _ = Command::new("ip").args(["netns", "del", name]).status();
            }
        }
    }
}

/// Detaches (through opsplit's own unload when a manifest is there) and removes a bpffs dir.
fn remove_pin_dir(p: &Path) {
    let _ = opsplit::load::pins::unload(p);
    // Links pinned without a manifest would stay attached if only unpinned while someone holds
    // them; detaching explicitly makes removal final.
    for sub in ["links"] {
        if let Ok(rd) = std::fs::read_dir(p.join(sub)) {
            for e in rd.flatten() {
                if let Ok(fd) = opsplit::load::kernel::obj_get(&e.path()) {
                    let _ = opsplit::load::kernel::link_detach(fd.as_fd());
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(p);
}

/// Detaches every sock_ops program still attached directly to the cgroup (only ever ours: the
/// cgroup is ours), kills its processes and removes it.
fn remove_cgroup(p: &Path) {
    if let Ok(cg) = opsplit::load::kernel::open_cgroup(p)
        && let Ok(ids) = opsplit::load::kernel::query_sockops(cg.as_fd())
    {
        for id in ids {
            if let Ok(prog) = opsplit::load::kernel::prog_fd_by_id(id) {
                let _ = opsplit::load::kernel::prog_detach(prog.as_fd(), cg.as_fd());
            }
        }
    }
    if let Ok(procs) = std::fs::read_to_string(p.join("cgroup.procs")) {
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            // SAFETY: signalling a pid that lives in our own scratch cgroup.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::remove_dir(p).is_err() && p.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A scratch cgroup v2 directory.
pub struct Cgroup {
    pub path: PathBuf,
}

impl Cgroup {
    pub fn new(tag: &str) -> Cgroup {
        let path = Path::new(CGROUP_ROOT).join(unique(tag));
        std::fs::create_dir(&path).expect("create scratch cgroup");
        Cgroup { path }
    }

    pub fn fd(&self) -> std::os::fd::OwnedFd {
        opsplit::load::kernel::open_cgroup(&self.path).expect("open scratch cgroup")
    }

    /// Program ids attached directly to this cgroup for sock_ops, in run order.
    pub fn attached(&self) -> Vec<u32> {
        opsplit::load::kernel::query_sockops(self.fd().as_fd()).expect("query cgroup")
    }

    /// Polls until the attached set is empty (link release after process death is prompt, but
    /// the process's exit itself is asynchronous to us).
    pub fn wait_empty(&self, timeout: Duration) -> Vec<u32> {
        let deadline = Instant::now() + timeout;
        loop {
            let a = self.attached();
            if a.is_empty() || Instant::now() > deadline {
                return a;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        remove_cgroup(&self.path);
    }
}

/// A scratch directory name on bpffs (not created: `opsplit load --pin` creates it).
pub struct PinDir {
    pub path: PathBuf,
}

impl PinDir {
    pub fn new(tag: &str) -> PinDir {
        PinDir {
            path: Path::new(BPFFS).join(unique(tag)),
        }
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        if self.path.exists() {
            remove_pin_dir(&self.path);
        }
    }
}

/// A named network namespace with loopback up and the workload's loss rules.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = unique(tag);
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        run(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]));
        let mut nft = Command::new("ip");
        nft.args(["netns", "exec", &ns.name, "nft", "-f", "-"]);
        run_with_stdin(&mut nft, &workload::nft_rules());
        ns
    }

    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run helper command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_with_stdin(cmd: &mut Command, input: &str) {
    use std::io::Write;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn helper command");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait helper command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The opsplit binary under test.
pub fn opsplit_bin() -> &'static str {
    env!("CARGO_BIN_EXE_opsplit")
}
