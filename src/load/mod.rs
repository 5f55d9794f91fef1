//! Loading objects into the running kernel with libbpf-rs (vendored libbpf 1.7).
//!
//! Everything loaded here is owned by the returned handles or released before returning: nothing is
//! attached or pinned by this module unless a caller asks for it explicitly ([`Loaded::attach_links`],
//! [`pins`]). Maps that ask for libbpf's automatic pinning (`LIBBPF_PIN_BY_NAME`) are not pinned
//! automatically either: a load must never leave files in `/sys/fs/bpf` behind the user's back.
//!
//! - [`load_object`]: load, verify, report, release (what `--dry-run` and the fixture tests use).
//! - [`Loaded`]: a loaded object kept alive, for attaching, pinning and dumping maps.
//! - [`kernel`]: the raw `bpf()` operations libbpf-rs does not wrap (replace, query, stats).
//! - [`pins`]: the `--pin DIR` layout and its manifest, and `unload`.
//! - [`dump`]: reading every map of a loaded object into plain data.

pub mod dump;
pub mod kernel;
pub mod pins;
pub mod verifier;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::Mutex;

use libbpf_rs::{AsRawLibbpf, ObjectBuilder, PrintLevel, ProgramAttachType, ProgramType};

use crate::Error;

pub use verifier::Rejection;

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
    /// The kernel's program id (valid while the program is loaded).
    pub id: u32,
}

impl LoadedProgram {
    pub fn is_sockops(&self) -> bool {
        self.prog_type == format!("{:?}", ProgramType::SockOps)
    }
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
    Loaded::load(bytes, name)
        .map(|l| l.report)
        .map_err(|r| Error::from(*r))
}

/// An object loaded into the kernel and kept: its maps and programs live as long as this value
/// (and whatever links or pins the caller creates from it).
pub struct Loaded {
    /// The object's name in messages.
    pub name: String,
    pub object: libbpf_rs::Object,
    pub report: LoadReport,
    /// Programs named in a PROG_ARRAY's initial values (`.values = { [i] = &prog }`): they run
    /// through tail calls and are never attached themselves.
    pub tail_call_targets: Vec<String>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("name", &self.name)
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

impl Loaded {
    /// Opens and loads `bytes`. On rejection the error names the program, the failing instruction
    /// and its source line where the verifier log and the object's line info allow.
    pub fn load(bytes: &[u8], name: &str) -> Result<Loaded, Box<Rejection>> {
        let _guard = LOAD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        LOG.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let prev = libbpf_rs::set_print(Some((PrintLevel::Debug, collect_log)));
        let result = load_locked(bytes, name);
        libbpf_rs::set_print(prev);
        let log = std::mem::take(&mut *LOG.lock().unwrap_or_else(|e| e.into_inner()));
        match result {
            Ok((object, report)) => Ok(Loaded {
                name: name.to_string(),
                object,
                report,
                tail_call_targets: tail_call_targets(bytes),
            }),
            Err(message) => Err(Box::new(Rejection::from_log(name, bytes, message, &log))),
        }
    }

    /// The sock_ops programs to attach, in program-name order (the order they are attached in);
    /// tail-call targets are left out.
    pub fn sockops_programs(&self) -> Vec<libbpf_rs::ProgramMut<'_>> {
        let mut v: Vec<_> = self
            .object
            .progs_mut()
            .filter(|p| {
                p.prog_type() == ProgramType::SockOps
                    && !self
                        .tail_call_targets
                        .iter()
                        .any(|t| p.name() == t.as_str())
            })
            .collect();
        v.sort_by(|a, b| a.name().cmp(b.name()));
        v
    }

    /// Attaches every sock_ops program to the cgroup with a bpf_link each (links always behave as
    /// `BPF_F_ALLOW_MULTI`), in program-name order, so they run in that order for sockets of that
    /// cgroup. On failure the links made so far are dropped, which detaches them.
    pub fn attach_links(
        &self,
        cgroup: BorrowedFd<'_>,
    ) -> Result<Vec<(String, libbpf_rs::Link)>, Error> {
        let mut links = Vec::new();
        for p in self.sockops_programs() {
            let pname = p.name().to_string_lossy().into_owned();
            let link = p
                .attach_cgroup(cgroup.as_raw_fd())
                .map_err(|e| Error::Kernel {
                    object: self.name.clone(),
                    message: format!("attaching program `{pname}` to the cgroup: {e}"),
                    log_tail: String::new(),
                })?;
            links.push((pname, link));
        }
        Ok(links)
    }

    /// The loaded program named `name`.
    pub fn program(&self, name: &str) -> Option<libbpf_rs::Program<'_>> {
        self.object.progs().find(|p| p.name() == name)
    }
}

fn tail_call_targets(bytes: &[u8]) -> Vec<String> {
    let Ok(obj) = crate::obj::Object::parse(bytes) else {
        return Vec::new();
    };
    obj.maps
        .iter()
        .flat_map(|m| &m.values)
        .filter_map(|v| match v {
            crate::obj::MapValue::Program { function, .. } => Some(function.clone()),
            crate::obj::MapValue::Map { .. } => None,
        })
        .collect()
}

/// Objects with legacy `maps` sections are refused by libbpf ≥ 1.0; opsplit's codec converts them
/// to BTF-defined maps. Returns the bytes to give libbpf: converted if needed, else the input.
pub fn convert_if_legacy(bytes: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, Error> {
    let obj = crate::obj::Object::parse(bytes)?;
    if obj
        .maps
        .iter()
        .any(|m| m.kind == crate::obj::MapKind::Legacy)
    {
        Ok(std::borrow::Cow::Owned(obj.write()?))
    } else {
        Ok(std::borrow::Cow::Borrowed(bytes))
    }
}

fn load_locked(bytes: &[u8], name: &str) -> Result<(libbpf_rs::Object, LoadReport), String> {
    let mut builder = ObjectBuilder::default();
    let mut open = builder
        .name(sanitize_obj_name(name))
        .map_err(|e| format!("bad object name: {e}"))?
        .open_memory(bytes)
        .map_err(|e| format!("libbpf could not open the object: {e}"))?;
    for mut prog in open.progs_mut() {
        if is_legacy_sockops_section(&prog.section().to_string_lossy()) {
            prog.set_prog_type(ProgramType::SockOps);
            prog.set_attach_type(ProgramAttachType::CgroupSockOps);
        }
    }
    for map in open.maps_mut() {
        // SAFETY: the pointer is a live bpf_map of the open object; a NULL path clears libbpf's
        // automatic pinning for this map (documented libbpf behaviour).
        let ret = unsafe {
            libbpf_rs::libbpf_sys::bpf_map__set_pin_path(
                map.as_libbpf_object().as_ptr(),
                std::ptr::null(),
            )
        };
        if ret != 0 {
            return Err(format!(
                "cannot clear automatic pinning of map {:?}",
                map.name()
            ));
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
            id: info.id,
        });
    }
    Ok((obj, LoadReport { programs }))
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
pub fn prog_info(fd: i32) -> std::io::Result<libbpf_rs::libbpf_sys::bpf_prog_info> {
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
