//! Loading objects into the running kernel with libbpf-rs (vendored libbpf 1.7).
//!
//! Everything loaded here is owned by the returned handles or released before returning: nothing is
//! attached or pinned by this module unless a caller asks for it explicitly.

use std::os::fd::{AsFd, AsRawFd};
use std::sync::Mutex;

use libbpf_rs::{ObjectBuilder, PrintLevel, ProgramAttachType, ProgramType};

use crate::Error;

/// One program as the kernel accepted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedProgram {
    pub name: String,
    pub section: String,
    /// libbpf's name for the program type (e.g. `SockOps`).
    pub prog_type: String,
    /// The kernel's program tag (SHA-1 prefix over the instructions with map fds zeroed).
    pub tag: [u8; 8],
    /// How many instructions the verifier processed (`bpf_prog_info.verified_insns`).
    pub verified_insns: u32,
    /// Instructions libbpf submitted after relocation.
    pub insns: usize,
}

/// The result of loading one object: every program it loaded, in libbpf's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    pub programs: Vec<LoadedProgram>,
}

impl LoadReport {
    pub fn program(&self, name: &str) -> Option<&LoadedProgram> {
        self.programs.iter().find(|p| p.name == name)
    }
}

// libbpf reports through a process-wide print callback (a plain fn pointer), so the log of the
// load in progress is collected here; LOAD_LOCK keeps concurrent loads from mixing their logs.
static LOG: Mutex<String> = Mutex::new(String::new());
static LOAD_LOCK: Mutex<()> = Mutex::new(());

fn collect_log(_level: PrintLevel, msg: String) {
    if let Ok(mut log) = LOG.lock() {
        log.push_str(&msg);
    }
}

/// Keeps the last `lines` lines: verifier logs can be megabytes, the end says why.
fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// Opens `bytes` with libbpf, creates its maps, loads (verifies) every program, reads back each
/// program's tag and verifier statistics, and releases everything again.
///
/// `name` identifies the object in errors (usually its file name).
pub fn load_object(bytes: &[u8], name: &str) -> Result<LoadReport, Error> {
    let _guard = LOAD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    LOG.lock().unwrap_or_else(|e| e.into_inner()).clear();
    let prev = libbpf_rs::set_print(Some((PrintLevel::Debug, collect_log)));
    let result = load_locked(bytes, name);
    libbpf_rs::set_print(prev);
    let log = std::mem::take(&mut *LOG.lock().unwrap_or_else(|e| e.into_inner()));
    result.map_err(|message| Error::Kernel {
        object: name.to_string(),
        message,
        log_tail: tail(&log, 40),
    })
}

fn load_locked(bytes: &[u8], name: &str) -> Result<LoadReport, String> {
    let mut builder = ObjectBuilder::default();
    let open = builder
        .name(sanitize_obj_name(name))
        .map_err(|e| format!("bad object name: {e}"))?
        .open_memory(bytes)
        .map_err(|e| format!("libbpf could not open the object: {e}"))?;
    let mut open = open;
    for mut prog in open.progs_mut() {
        if is_legacy_sockops_section(&prog.section().to_string_lossy()) {
            prog.set_prog_type(ProgramType::SockOps);
            prog.set_attach_type(ProgramAttachType::CgroupSockOps);
        }
    }
    let obj = open.load().map_err(|e| format!("load failed: {e}"))?;
    let mut programs = Vec::new();
    for prog in obj.progs() {
        let info = prog_info(prog.as_fd().as_raw_fd())
            .map_err(|e| format!("bpf_obj_get_info_by_fd on {:?}: {e}", prog.name()))?;
        programs.push(LoadedProgram {
            name: prog.name().to_string_lossy().into_owned(),
            section: prog.section().to_string_lossy().into_owned(),
            prog_type: format!("{:?}", prog.prog_type()),
            tag: info.tag,
            verified_insns: info.verified_insns,
            insns: prog.insn_cnt(),
        });
    }
    Ok(LoadReport { programs })
}

/// `sockops/<anything>` sections come from the libbpf 0.x era, which matched section names by
/// prefix; libbpf 1.x only knows the exact name `sockops`. Objects from that era are exactly what
/// opsplit migrates, so the loader types those programs itself instead of refusing them.
pub fn is_legacy_sockops_section(section: &str) -> bool {
    section.starts_with("sockops/")
}

/// libbpf derives map name prefixes from the object name; keep it a plain identifier.
fn sanitize_obj_name(name: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    let base = base.strip_suffix(".o").unwrap_or(base);
    base.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Reads `bpf_prog_info` for a program fd.
pub(crate) fn prog_info(fd: i32) -> std::io::Result<libbpf_rs::libbpf_sys::bpf_prog_info> {
    let mut info = libbpf_rs::libbpf_sys::bpf_prog_info::default();
    let mut len = std::mem::size_of_val(&info) as u32;
    // SAFETY: `info` is a properly sized, zeroed bpf_prog_info and `len` its size; the kernel
    // writes at most `len` bytes. No pointer fields are set, so no arrays are requested.
    let ret = unsafe {
        libbpf_rs::libbpf_sys::bpf_obj_get_info_by_fd(fd, (&raw mut info).cast(), &mut len)
    };
    if ret != 0 {
        return Err(std::io::Error::from_raw_os_error(-ret));
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_become_identifiers() {
        assert_eq!(
            sanitize_obj_name("fixtures/ref/syn-rto.op1.o"),
            "syn_rto_op1"
        );
    }

    #[test]
    fn only_prefixed_sockops_sections_are_legacy() {
        assert!(is_legacy_sockops_section("sockops/stats"));
        assert!(!is_legacy_sockops_section("sockops"));
        assert!(!is_legacy_sockops_section("sockopsx"));
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }

    #[test]
    fn garbage_is_a_load_error_naming_the_object() {
        let err = load_object(b"not an elf", "junk.o").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("junk.o"), "{msg}");
        assert!(msg.contains("could not open"), "{msg}");
    }
}
