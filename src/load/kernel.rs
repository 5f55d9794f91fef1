//! The `bpf()` operations opsplit needs that libbpf-rs does not wrap: cgroup queries, attaching
//! with `BPF_F_REPLACE`, link updates, finding the link that holds a program, run-time statistics.
//!
//! Every function returns owned fds: whatever they open is closed when the caller drops it.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use libbpf_rs::libbpf_sys as sys;

/// libbpf's functions return `-errno`, or a negative value with `errno` set.
fn check(ret: i32) -> io::Result<i32> {
    if ret < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error().unwrap_or(0) != 0 {
            return Err(e);
        }
        return Err(io::Error::from_raw_os_error(-ret));
    }
    Ok(ret)
}

fn owned(ret: i32) -> io::Result<OwnedFd> {
    let fd = check(ret)?;
    // SAFETY: the kernel just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

/// Opens a cgroup v2 directory for attaching.
pub fn open_cgroup(path: &Path) -> io::Result<OwnedFd> {
    let c = cpath(path)?;
    // SAFETY: `c` is a valid NUL-terminated path.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    owned(fd)
}

/// The cgroup id the kernel reports in link info: on cgroup v2 it is the directory's inode number.
pub fn cgroup_id(path: &Path) -> io::Result<u64> {
    Ok(std::fs::metadata(path)?.ino())
}

/// Program ids attached directly to this cgroup for sock_ops (links included), in run order.
pub fn query_sockops(cgroup: BorrowedFd<'_>) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut opts = sys::bpf_prog_query_opts {
        sz: std::mem::size_of::<sys::bpf_prog_query_opts>() as _,
        prog_ids: ids.as_mut_ptr(),
        ..Default::default()
    };
    opts.__bindgen_anon_1.prog_cnt = ids.len() as u32;
    // SAFETY: `opts` points at a buffer of `prog_cnt` u32s that outlives the call.
    check(unsafe {
        sys::bpf_prog_query_opts(cgroup.as_raw_fd(), sys::BPF_CGROUP_SOCK_OPS, &mut opts)
    })?;
    // SAFETY: the kernel wrote the count back into the union's u32.
    let n = unsafe { opts.__bindgen_anon_1.prog_cnt } as usize;
    ids.truncate(n);
    Ok(ids)
}

/// An fd for a loaded program by id.
pub fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall wrapper.
    owned(unsafe { sys::bpf_prog_get_fd_by_id(id) })
}

/// An fd for a pinned object (program, map or link).
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let c = cpath(path)?;
    // SAFETY: `c` is a valid NUL-terminated path.
    owned(unsafe { sys::bpf_obj_get(c.as_ptr()) })
}

/// Pins any BPF object fd (program, map, link) at `path` on bpffs.
pub fn obj_pin(fd: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: valid fd and NUL-terminated path.
    check(unsafe { sys::bpf_obj_pin(fd.as_raw_fd(), c.as_ptr()) }).map(drop)
}

/// `bpf_link_info` of `fd`, or `None` if `fd` is not a link.
pub fn link_info(fd: BorrowedFd<'_>) -> Option<sys::bpf_link_info> {
    let mut info = sys::bpf_link_info::default();
    let mut len = std::mem::size_of_val(&info) as u32;
    // SAFETY: sized, zeroed buffer; no pointer fields requested.
    let ret = unsafe { sys::bpf_link_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
    (ret == 0).then_some(info)
}

/// The id of the program behind a program fd.
pub fn prog_id(fd: BorrowedFd<'_>) -> io::Result<u32> {
    Ok(super::prog_info(fd.as_raw_fd())?.id)
}

/// Finds the cgroup link that attaches program `prog_id` to the cgroup with id `cgroup_id`, by
/// walking every link in the system (links have no per-cgroup query on this kernel).
pub fn find_cgroup_link(prog_id: u32, cgroup_id: u64) -> io::Result<Option<OwnedFd>> {
    let mut id = 0u32;
    loop {
        let mut next = 0u32;
        // SAFETY: plain syscall wrapper writing one u32.
        if unsafe { sys::bpf_link_get_next_id(id, &mut next) } != 0 {
            return Ok(None);
        }
        id = next;
        // SAFETY: plain syscall wrapper.
        let Ok(fd) = owned(unsafe { sys::bpf_link_get_fd_by_id(id) }) else {
            continue; // gone meanwhile
        };
        let Some(info) = link_info(std::os::fd::AsFd::as_fd(&fd)) else {
            continue;
        };
        if info.type_ != sys::BPF_LINK_TYPE_CGROUP || info.prog_id != prog_id {
            continue;
        }
        // SAFETY: the union member matches the link type checked above.
        let cg = unsafe { info.__bindgen_anon_1.cgroup };
        if cg.cgroup_id == cgroup_id && cg.attach_type == sys::BPF_CGROUP_SOCK_OPS {
            return Ok(Some(fd));
        }
    }
}

/// Attaches a program the persistent (non-link) way with `BPF_F_ALLOW_MULTI`. The attachment
/// outlives every fd: it stays until [`prog_detach`].
pub fn prog_attach_multi(prog: BorrowedFd<'_>, cgroup: BorrowedFd<'_>) -> io::Result<()> {
    let opts = sys::bpf_prog_attach_opts {
        sz: std::mem::size_of::<sys::bpf_prog_attach_opts>() as _,
        flags: sys::BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    // SAFETY: valid fds and options struct.
    check(unsafe {
        sys::bpf_prog_attach_opts(
            prog.as_raw_fd(),
            cgroup.as_raw_fd(),
            sys::BPF_CGROUP_SOCK_OPS,
            &opts,
        )
    })
    .map(drop)
}

/// Atomically swaps `old` for `new` in the cgroup's program list (`BPF_F_REPLACE`, which the
/// kernel only allows together with `BPF_F_ALLOW_MULTI`). Fails, changing nothing, if `old` is not
/// attached there that way.
pub fn prog_attach_replace(
    new: BorrowedFd<'_>,
    cgroup: BorrowedFd<'_>,
    old: BorrowedFd<'_>,
) -> io::Result<()> {
    let mut opts = sys::bpf_prog_attach_opts {
        sz: std::mem::size_of::<sys::bpf_prog_attach_opts>() as _,
        flags: sys::BPF_F_ALLOW_MULTI | sys::BPF_F_REPLACE,
        ..Default::default()
    };
    opts.__bindgen_anon_1.replace_prog_fd = old.as_raw_fd();
    // SAFETY: valid fds and options struct.
    check(unsafe {
        sys::bpf_prog_attach_opts(
            new.as_raw_fd(),
            cgroup.as_raw_fd(),
            sys::BPF_CGROUP_SOCK_OPS,
            &opts,
        )
    })
    .map(drop)
}

/// Detaches a program attached with [`prog_attach_multi`] (or replaced in with
/// [`prog_attach_replace`]).
pub fn prog_detach(prog: BorrowedFd<'_>, cgroup: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: valid fds.
    check(unsafe {
        sys::bpf_prog_detach2(
            prog.as_raw_fd(),
            cgroup.as_raw_fd(),
            sys::BPF_CGROUP_SOCK_OPS,
        )
    })
    .map(drop)
}

/// Points a link at `new`, only if it still runs `old` (`BPF_F_REPLACE`): the swap is atomic.
pub fn link_update(
    link: BorrowedFd<'_>,
    new: BorrowedFd<'_>,
    old: BorrowedFd<'_>,
) -> io::Result<()> {
    let opts = sys::bpf_link_update_opts {
        sz: std::mem::size_of::<sys::bpf_link_update_opts>() as _,
        flags: sys::BPF_F_REPLACE,
        old_prog_fd: old.as_raw_fd() as u32,
        ..Default::default()
    };
    // SAFETY: valid fds and options struct.
    check(unsafe { sys::bpf_link_update(link.as_raw_fd(), new.as_raw_fd(), &opts) }).map(drop)
}

/// Detaches a link (its fd and pins stay valid but attach nothing).
pub fn link_detach(link: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: valid fd.
    check(unsafe { sys::bpf_link_detach(link.as_raw_fd()) }).map(drop)
}

/// Turns on run-time statistics (`run_cnt`, `run_time_ns` in `bpf_prog_info`) for as long as the
/// returned fd is open. Unlike the `kernel.bpf_stats_enabled` sysctl this is reference-counted:
/// it cannot be left on by a crashed process and does not fight other users of the sysctl.
pub fn enable_run_time_stats() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall wrapper.
    owned(unsafe { sys::bpf_enable_stats(sys::BPF_STATS_RUN_TIME) })
}

/// Run-time statistics of one program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunStats {
    pub run_cnt: u64,
    pub run_time_ns: u64,
}

impl RunStats {
    pub fn of(prog: BorrowedFd<'_>) -> io::Result<RunStats> {
        let info = super::prog_info(prog.as_raw_fd())?;
        Ok(RunStats {
            run_cnt: info.run_cnt,
            run_time_ns: info.run_time_ns,
        })
    }

    /// What happened between `earlier` and `self`.
    pub fn since(self, earlier: RunStats) -> RunStats {
        RunStats {
            run_cnt: self.run_cnt.saturating_sub(earlier.run_cnt),
            run_time_ns: self.run_time_ns.saturating_sub(earlier.run_time_ns),
        }
    }

    /// Average nanoseconds per run, `None` if it never ran.
    pub fn avg_ns(self) -> Option<f64> {
        (self.run_cnt > 0).then(|| self.run_time_ns as f64 / self.run_cnt as f64)
    }
}
