//! `opsplit load` and `opsplit unload` (docs/LOADING.md).
//!
//! Output goes to `out`; the line starting with `attached:` is printed (and flushed) once every
//! program is attached, so scripts can wait for it. Errors go to stderr as `opsplit: …`.

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use libbpf_rs::MapCore;

use crate::cli::Exit;
use crate::load::kernel::{self, RunStats};
use crate::load::pins::{self, Attached, Attachment, Manifest};
use crate::load::{Loaded, Rejection};

/// Which attached program `--replace` swaps out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replace {
    /// `--replace PROG_ID`.
    ProgId(u32),
    /// `--replace-pinned PATH`: a pinned program or a pinned cgroup link.
    Pinned(PathBuf),
}

#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub file: PathBuf,
    /// Required unless `dry_run`.
    pub cgroup: Option<PathBuf>,
    pub pin: Option<PathBuf>,
    pub replace: Option<Replace>,
    pub dry_run: bool,
    /// Foreground runs stop after this long even without a signal.
    pub duration: Option<Duration>,
}

/// A failure already explained to the user.
struct Failed(Exit);

fn fail(msg: impl std::fmt::Display) -> Failed {
    eprintln!("opsplit: {msg}");
    Failed(Exit::Input)
}

pub fn run(opts: &LoadOptions, out: &mut dyn Write) -> Exit {
    match run_inner(opts, out) {
        Ok(()) => Exit::Ok,
        Err(Failed(e)) => e,
    }
}

fn run_inner(opts: &LoadOptions, out: &mut dyn Write) -> Result<(), Failed> {
    let name = opts.file.display().to_string();
    let bytes = std::fs::read(&opts.file).map_err(|e| fail(format!("{name}: {e}")))?;
    let bytes = crate::load::convert_if_legacy(&bytes).map_err(|e| fail(format!("{name}: {e}")))?;
    // Signals are blocked before anything is attached, so a SIGINT/SIGTERM at any later point is
    // picked up by the wait below and never kills the process between attach and clean-up.
    let signals = if !opts.dry_run && opts.pin.is_none() && opts.replace.is_none() {
        Some(SignalGuard::block().map_err(|e| fail(format!("blocking SIGINT/SIGTERM: {e}")))?)
    } else {
        None
    };
    let loaded = match Loaded::load(&bytes, &name) {
        Ok(l) => l,
        Err(r) => {
            report_rejection(&r, out);
            return Err(Failed(Exit::Input));
        }
    };
    report_programs(&loaded, out);
    if opts.dry_run {
        let _ = writeln!(
            out,
            "dry run: {name} loaded and verified; everything released"
        );
        return Ok(());
    }
    let cgroup = opts
        .cgroup
        .as_deref()
        .ok_or_else(|| fail("--cgroup PATH is required unless --dry-run"))?;
    let cg = kernel::open_cgroup(cgroup)
        .map_err(|e| fail(format!("cgroup {}: {e}", cgroup.display())))?;
    let sockops: Vec<String> = loaded
        .sockops_programs()
        .iter()
        .map(|p| p.name().to_string_lossy().into_owned())
        .collect();
    if sockops.is_empty() {
        return Err(fail(format!("{name}: no sock_ops program to attach")));
    }
    if let Some(r) = &opts.replace {
        return replace(opts, &loaded, &sockops, cgroup, cg.as_fd(), r, out);
    }
    if let Some(dir) = &opts.pin {
        return pin_and_attach(opts, &loaded, &sockops, cgroup, cg.as_fd(), dir, out);
    }
    foreground(
        opts,
        &loaded,
        cgroup,
        cg.as_fd(),
        signals.expect("blocked for foreground runs"),
        out,
    )
}

fn report_programs(loaded: &Loaded, out: &mut dyn Write) {
    let _ = writeln!(
        out,
        "{}: {} program(s) loaded",
        loaded.name,
        loaded.report.programs.len()
    );
    for p in &loaded.report.programs {
        let tag: String = p.tag.iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(
            out,
            "  {:<24} {:<14} verified  verified_insns={} insns={} tag={} id={}",
            p.name, p.section, p.verified_insns, p.insns, tag, p.id
        );
    }
}

fn report_rejection(r: &Rejection, out: &mut dyn Write) {
    let _ = writeln!(out, "{}: REJECTED", r.object);
    if let Some(p) = &r.program {
        let _ = write!(out, "  program {p}: rejected by the verifier");
        if let Some(i) = r.insn {
            let _ = write!(out, " at instruction {i}");
        }
        let _ = writeln!(out);
        if let Some(s) = &r.source {
            let _ = writeln!(out, "  source: {s}");
        }
        if let Some(o) = &r.ops {
            let _ = writeln!(out, "  ops: {o}");
        }
    }
    let _ = writeln!(out, "  error: {}", r.message);
    let _ = writeln!(out, "--- libbpf/verifier log (tail) ---\n{}", r.log_tail);
    eprintln!("opsplit: {}: {}", r.object, {
        let mut s = String::from("kernel refused the object");
        if let Some(p) = &r.program {
            s.push_str(&format!(" (program `{p}`"));
            if let Some(src) = &r.source {
                s.push_str(&format!(", {src}"));
            }
            s.push(')');
        }
        s
    });
}

/// Foreground: attach with process-owned links, wait for SIGINT/SIGTERM (or `--duration`), print
/// run-time statistics, release. The links are fds: if the process dies in any way, the kernel
/// closes them and detaches the programs.
fn foreground(
    opts: &LoadOptions,
    loaded: &Loaded,
    cgroup: &Path,
    cg: BorrowedFd<'_>,
    signals: SignalGuard,
    out: &mut dyn Write,
) -> Result<(), Failed> {
    let stats_fd: Option<OwnedFd> = match kernel::enable_run_time_stats() {
        Ok(fd) => Some(fd),
        Err(e) => {
            eprintln!("opsplit: warning: BPF_ENABLE_STATS failed ({e}); no run-time statistics");
            None
        }
    };
    let links = loaded.attach_links(cg).map_err(fail)?;
    let progs: Vec<_> = links
        .iter()
        .map(|(n, _)| loaded.program(n).expect("attached program exists"))
        .collect();
    let before: Vec<RunStats> = progs
        .iter()
        .map(|p| RunStats::of(p.as_fd()).unwrap_or_default())
        .collect();
    let names: Vec<&str> = links.iter().map(|(n, _)| n.as_str()).collect();
    let _ = writeln!(
        out,
        "attached: {} to {} (bpf_link, run in this order); stop with SIGINT/SIGTERM{}",
        names.join(", "),
        cgroup.display(),
        opts.duration
            .map(|d| format!(" or after {}s", d.as_secs_f64()))
            .unwrap_or_default()
    );
    let _ = out.flush();
    let why = signals.wait(opts.duration);
    let _ = writeln!(out, "stopping ({why})");
    if stats_fd.is_some() {
        let _ = writeln!(
            out,
            "run-time statistics (BPF_ENABLE_STATS) while attached:"
        );
        for (p, b) in progs.iter().zip(&before) {
            let s = RunStats::of(p.as_fd()).unwrap_or_default().since(*b);
            let _ = writeln!(
                out,
                "  {:<24} runs={} avg_ns={}",
                p.name().to_string_lossy(),
                s.run_cnt,
                s.avg_ns().map_or("-".into(), |a| format!("{a:.1}"))
            );
        }
    }
    drop(links);
    let _ = writeln!(out, "detached and released");
    drop(stats_fd);
    Ok(())
}

fn pin_and_attach(
    opts: &LoadOptions,
    loaded: &Loaded,
    sockops: &[String],
    cgroup: &Path,
    cg: BorrowedFd<'_>,
    dir: &Path,
    out: &mut dyn Write,
) -> Result<(), Failed> {
    let attached = sockops
        .iter()
        .map(|p| Attached {
            program: p.clone(),
            how: Attachment::Link,
        })
        .collect();
    start_pins(opts, loaded, cgroup, dir, attached)?;
    let result = (|| -> Result<(), String> {
        pin_objects(loaded, dir)?;
        std::fs::create_dir(dir.join("links")).map_err(|e| format!("links/: {e}"))?;
        let links = loaded.attach_links(cg).map_err(|e| e.to_string())?;
        for (name, mut link) in links {
            let path = dir.join("links").join(&name);
            link.pin(&path)
                .map_err(|e| format!("pinning link {}: {e}", path.display()))?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        rollback(dir);
        return Err(fail(format!(
            "--pin {}: {e}; nothing left pinned",
            dir.display()
        )));
    }
    let _ = writeln!(
        out,
        "attached: {} to {} (pinned bpf_links under {}/links); `opsplit unload {}` detaches and removes them",
        sockops.join(", "),
        cgroup.display(),
        dir.display(),
        dir.display()
    );
    Ok(())
}

/// Checks DIR, creates it if needed and writes the manifest of everything about to be pinned.
fn start_pins(
    opts: &LoadOptions,
    loaded: &Loaded,
    cgroup: &Path,
    dir: &Path,
    attached: Vec<Attached>,
) -> Result<(), Failed> {
    let create = pins::check_pin_dir(dir).map_err(fail)?;
    if create {
        std::fs::create_dir(dir).map_err(|e| fail(format!("--pin {}: {e}", dir.display())))?;
    }
    let manifest = Manifest {
        object: opts.file.display().to_string(),
        cgroup: cgroup.to_path_buf(),
        created_dir: create,
        progs: loaded
            .report
            .programs
            .iter()
            .map(|p| p.name.clone())
            .collect(),
        maps: loaded
            .object
            .maps()
            .map(|m| pins::pin_name(&m.name().to_string_lossy()))
            .collect(),
        attached,
    };
    if let Err(e) = pins::write_manifest(dir, &manifest) {
        if create {
            let _ = std::fs::remove_dir(dir);
        }
        return Err(fail(e));
    }
    Ok(())
}

fn pin_objects(loaded: &Loaded, dir: &Path) -> Result<(), String> {
    std::fs::create_dir(dir.join("progs")).map_err(|e| format!("progs/: {e}"))?;
    std::fs::create_dir(dir.join("maps")).map_err(|e| format!("maps/: {e}"))?;
    for mut p in loaded.object.progs_mut() {
        let path = dir.join("progs").join(p.name());
        p.pin(&path)
            .map_err(|e| format!("pinning program {}: {e}", path.display()))?;
    }
    for m in loaded.object.maps() {
        let path = dir
            .join("maps")
            .join(pins::pin_name(&m.name().to_string_lossy()));
        kernel::obj_pin(m.as_fd(), &path)
            .map_err(|e| format!("pinning map {}: {e}", path.display()))?;
    }
    Ok(())
}

fn rollback(dir: &Path) {
    match pins::unload(dir) {
        Ok(u) => {
            for p in u.problems {
                eprintln!("opsplit: rollback: {p}");
            }
        }
        Err(e) => eprintln!("opsplit: rollback of {}: {e}", dir.display()),
    }
}

/// What `--replace` swaps out.
enum Target {
    /// A cgroup link running the old program.
    Link { link: OwnedFd, old: OwnedFd },
    /// A persistent `BPF_PROG_ATTACH` attachment of the old program.
    Attach { old: OwnedFd },
}

fn resolve_target(r: &Replace, cgroup: &Path, cg: BorrowedFd<'_>) -> Result<(Target, u32), String> {
    let cg_id = kernel::cgroup_id(cgroup).map_err(|e| format!("{}: {e}", cgroup.display()))?;
    let old = match r {
        Replace::ProgId(id) => {
            kernel::prog_fd_by_id(*id).map_err(|e| format!("program id {id}: {e}"))?
        }
        Replace::Pinned(path) => {
            let fd = kernel::obj_get(path).map_err(|e| format!("{}: {e}", path.display()))?;
            if let Some(info) = kernel::link_info(fd.as_fd()) {
                // SAFETY: union member read only after checking the link type.
                let ok = info.type_ == libbpf_rs::libbpf_sys::BPF_LINK_TYPE_CGROUP && {
                    let c = unsafe { info.__bindgen_anon_1.cgroup };
                    c.cgroup_id == cg_id
                        && c.attach_type == libbpf_rs::libbpf_sys::BPF_CGROUP_SOCK_OPS
                };
                if !ok {
                    return Err(format!(
                        "{} is not a sock_ops cgroup link of {}",
                        path.display(),
                        cgroup.display()
                    ));
                }
                let old = kernel::prog_fd_by_id(info.prog_id)
                    .map_err(|e| format!("program id {}: {e}", info.prog_id))?;
                return Ok((Target::Link { link: fd, old }, info.prog_id));
            }
            fd
        }
    };
    let id = kernel::prog_id(old.as_fd()).map_err(|e| format!("not a BPF program: {e}"))?;
    if let Some(link) = kernel::find_cgroup_link(id, cg_id).map_err(|e| e.to_string())? {
        return Ok((Target::Link { link, old }, id));
    }
    let attached = kernel::query_sockops(cg).map_err(|e| format!("querying cgroup: {e}"))?;
    if attached.contains(&id) {
        Ok((Target::Attach { old }, id))
    } else {
        Err(format!(
            "program id {id} is not attached to {} for sock_ops (attached there: {attached:?})",
            cgroup.display()
        ))
    }
}

fn replace(
    opts: &LoadOptions,
    loaded: &Loaded,
    sockops: &[String],
    cgroup: &Path,
    cg: BorrowedFd<'_>,
    r: &Replace,
    out: &mut dyn Write,
) -> Result<(), Failed> {
    if sockops.len() != 1 {
        return Err(fail(format!(
            "{}: --replace needs exactly one sock_ops program, this object has {} ({}). The kernel \
             swaps one attached program for one new program atomically; several programs cannot be \
             swapped in one step, and detaching and attaching them one by one would leave a window \
             where sockets run an incomplete set. Attach the object alongside the old program \
             without --replace, then detach the old one. Nothing was changed.",
            loaded.name,
            sockops.len(),
            sockops.join(", ")
        )));
    }
    let new_name = &sockops[0];
    let new_prog = loaded.program(new_name).expect("listed program exists");
    let (target, old_id) = resolve_target(r, cgroup, cg)
        .map_err(|e| fail(format!("--replace: {e}; nothing was changed")))?;
    if let Some(dir) = &opts.pin {
        let how = match target {
            Target::Link { .. } => Attachment::ForeignLink,
            Target::Attach { .. } => Attachment::ProgAttach,
        };
        // The manifest lists no attachment until the swap succeeds: a failed replace must not
        // let the rollback detach anything.
        start_pins(opts, loaded, cgroup, dir, Vec::new())?;
        if let Err(e) = pin_objects(loaded, dir) {
            rollback(dir);
            return Err(fail(format!(
                "--pin {}: {e}; nothing was changed",
                dir.display()
            )));
        }
        let result = swap(&target, new_prog.as_fd(), cg);
        if let Err(e) = result {
            rollback(dir);
            return Err(fail(format!(
                "--replace of program id {old_id} failed: {e}; nothing was changed, the old program stays attached"
            )));
        }
        let mut m = pins::read_manifest(dir).map_err(fail)?;
        m.attached = vec![Attached {
            program: new_name.clone(),
            how,
        }];
        pins::write_manifest(dir, &m).map_err(fail)?;
    } else if let Err(e) = swap(&target, new_prog.as_fd(), cg) {
        return Err(fail(format!(
            "--replace of program id {old_id} failed: {e}; nothing was changed, the old program stays attached"
        )));
    }
    let new_id = loaded.report.program(new_name).map_or(0, |p| p.id);
    match target {
        Target::Link { link, .. } => {
            let link_id = kernel::link_info(link.as_fd()).map_or(0, |i| i.id);
            let _ = writeln!(
                out,
                "replaced: program id {old_id} -> {new_name} (id {new_id}) in bpf_link id {link_id} on {}; \
                 the link's owner keeps it attached (it goes away with that link)",
                cgroup.display()
            );
        }
        Target::Attach { .. } => {
            let _ = writeln!(
                out,
                "replaced: program id {old_id} -> {new_name} (id {new_id}) on {} with BPF_F_REPLACE",
                cgroup.display()
            );
            let _ = writeln!(
                out,
                "note: this is a persistent attachment (not a bpf_link): it stays after opsplit exits; {}",
                match &opts.pin {
                    Some(d) => format!("`opsplit unload {}` detaches it", d.display()),
                    None => format!(
                        "detach it with `bpftool cgroup detach {} sock_ops id {new_id}`",
                        cgroup.display()
                    ),
                }
            );
        }
    }
    Ok(())
}

fn swap(target: &Target, new: BorrowedFd<'_>, cg: BorrowedFd<'_>) -> std::io::Result<()> {
    match target {
        Target::Link { link, old } => kernel::link_update(link.as_fd(), new, old.as_fd()),
        Target::Attach { old } => kernel::prog_attach_replace(new, cg, old.as_fd()),
    }
}

pub fn unload(dir: &Path, out: &mut dyn Write) -> Exit {
    match crate::load::pins::unload(dir) {
        Ok(u) => {
            for d in &u.detached {
                let _ = writeln!(out, "detached {d}");
            }
            let _ = writeln!(
                out,
                "removed {} pin(s)/dir(s) under {}",
                u.removed.len(),
                dir.display()
            );
            for l in &u.left {
                let _ = writeln!(out, "left alone (not created by opsplit): {}", l.display());
            }
            for p in &u.problems {
                eprintln!("opsplit: {p}");
            }
            // A ForeignLink note is information, not failure; everything else is.
            if u.problems.iter().any(|p| !p.contains("did not create")) {
                Exit::Input
            } else {
                Exit::Ok
            }
        }
        Err(e) => {
            eprintln!("opsplit: {e}");
            Exit::Input
        }
    }
}

/// SIGINT and SIGTERM blocked for this thread, then received synchronously with `sigtimedwait`:
/// no handler runs at an arbitrary point, and clean-up happens in normal control flow.
struct SignalGuard {
    old: libc::sigset_t,
}

impl SignalGuard {
    fn set() -> libc::sigset_t {
        // SAFETY: sigemptyset/sigaddset initialise the set in place.
        unsafe {
            let mut s: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut s);
            libc::sigaddset(&mut s, libc::SIGINT);
            libc::sigaddset(&mut s, libc::SIGTERM);
            s
        }
    }

    fn block() -> std::io::Result<SignalGuard> {
        let set = Self::set();
        // SAFETY: valid sets; affects only this thread (opsplit's CLI is single-threaded).
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) };
        if r != 0 {
            return Err(std::io::Error::from_raw_os_error(r));
        }
        Ok(SignalGuard { old })
    }

    /// Waits for SIGINT/SIGTERM or the deadline; returns what happened.
    fn wait(&self, duration: Option<Duration>) -> String {
        let set = Self::set();
        let deadline = duration.map(|d| Instant::now() + d);
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                return "duration elapsed".into();
            }
            // Wake at least every second so a deadline is honoured even without a timeout arg.
            let step = left
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1));
            let ts = libc::timespec {
                tv_sec: step.as_secs() as libc::time_t,
                tv_nsec: step.subsec_nanos() as libc::c_long,
            };
            // SAFETY: valid set and timespec; no siginfo requested.
            let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) };
            match sig {
                libc::SIGINT => return "SIGINT".into(),
                libc::SIGTERM => return "SIGTERM".into(),
                _ => continue, // timeout or EINTR
            }
        }
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved in `block`.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut());
        }
    }
}
