//! The `--pin DIR` layout and `opsplit unload DIR`.
//!
//! ```text
//! DIR/opsplit_manifest   the manifest (below)
//! DIR/progs/<program>    every program of the object
//! DIR/maps/<map>         every map, `.` in names as `_` (a PROG_ARRAY stays pinned, so the
//!                        kernel never clears it)
//! DIR/links/<program>    the cgroup link of each attached sock_ops program
//! ```
//!
//! bpffs holds only BPF objects and directories, so the manifest is itself a pinned BPF object: a
//! one-element ARRAY map named [`MANIFEST_MAP_NAME`] whose value is a magic word, a length and the
//! JSON [`Manifest`]. It is written before anything else is pinned, listing what will be created,
//! so that a run that dies half-way leaves a directory `unload` can still clean up. `unload`
//! removes exactly what the manifest lists (missing entries are fine) and refuses a directory
//! without a manifest: it never deletes pins opsplit did not make.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use libbpf_rs::{MapCore, MapFlags, MapHandle, MapType};
use serde::{Deserialize, Serialize};

use super::kernel;
use crate::Error;

pub const MANIFEST_FILE: &str = "opsplit_manifest";
/// Kernel map names are at most 15 bytes.
pub const MANIFEST_MAP_NAME: &str = "opsplit_manif";
const MAGIC: &[u8; 8] = b"OPSPLIT1";
const MANIFEST_VALUE_SIZE: u32 = 16 * 1024;
/// `statfs.f_type` of bpffs.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// How a program is attached, for `unload` to undo it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attachment {
    /// A cgroup bpf_link pinned at `links/<program>`: unpinning and detaching it undoes it.
    Link,
    /// A persistent `BPF_PROG_ATTACH` attachment (left by `--replace` of such an attachment):
    /// undone with `BPF_PROG_DETACH` on the cgroup.
    ProgAttach,
    /// An existing link of someone else now runs this program (`--replace` of a link): `unload`
    /// cannot detach it, only remove the pins.
    ForeignLink,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attached {
    pub program: String,
    pub how: Attachment,
}

/// What one `opsplit load --pin` created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The object file that was loaded.
    pub object: String,
    pub cgroup: PathBuf,
    /// Whether `load` created DIR itself (then `unload` removes it).
    pub created_dir: bool,
    pub progs: Vec<String>,
    pub maps: Vec<String>,
    pub attached: Vec<Attached>,
}

/// The file name a map or program is pinned under. bpffs refuses names with a dot, and libbpf
/// names global data maps `<prefix>.bss`/`.data`/`.rodata`/`.kconfig`, so dots become `_` (as
/// libbpf's own pinning does).
pub fn pin_name(name: &str) -> String {
    name.replace('.', "_")
}

/// Checks that `dir` can hold opsplit's pins: on bpffs, and empty or not yet existing. Returns
/// whether it must be created.
pub fn check_pin_dir(dir: &Path) -> Result<bool, Error> {
    let (probe, create) = if dir.exists() {
        let mut entries = std::fs::read_dir(dir)
            .map_err(|e| Error::Unsupported(format!("--pin {}: {e}", dir.display())))?;
        if entries.next().is_some() {
            return Err(Error::Unsupported(format!(
                "--pin {}: directory is not empty (opsplit pins only into a new or empty directory)",
                dir.display()
            )));
        }
        (dir.to_path_buf(), false)
    } else {
        let parent = dir.parent().unwrap_or(Path::new("/"));
        (parent.to_path_buf(), true)
    };
    if !is_bpffs(&probe)? {
        return Err(Error::Unsupported(format!(
            "--pin {}: {} is not on a bpf filesystem (mount -t bpf bpf /sys/fs/bpf)",
            dir.display(),
            probe.display()
        )));
    }
    Ok(create)
}

fn is_bpffs(path: &Path) -> Result<bool, Error> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::Unsupported("path contains NUL".into()))?;
    // SAFETY: zeroed statfs is a valid out-buffer; `c` is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: see above.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(Error::Io(std::io::Error::last_os_error()));
    }
    Ok(st.f_type as i64 == BPF_FS_MAGIC)
}

/// Pins the manifest map into `dir` (which must exist).
pub fn write_manifest(dir: &Path, m: &Manifest) -> Result<(), Error> {
    let json = serde_json::to_vec(m).map_err(|e| Error::Write(e.to_string()))?;
    let mut value = vec![0u8; MANIFEST_VALUE_SIZE as usize];
    if json.len() + 12 > value.len() {
        return Err(Error::Unsupported(format!(
            "manifest of {} bytes does not fit the {MANIFEST_VALUE_SIZE}-byte manifest map",
            json.len()
        )));
    }
    value[..8].copy_from_slice(MAGIC);
    value[8..12].copy_from_slice(&(json.len() as u32).to_le_bytes());
    value[12..12 + json.len()].copy_from_slice(&json);
    let opts = libbpf_rs::libbpf_sys::bpf_map_create_opts {
        sz: std::mem::size_of::<libbpf_rs::libbpf_sys::bpf_map_create_opts>() as _,
        ..Default::default()
    };
    let kerr = |what: &str, e: libbpf_rs::Error| Error::Kernel {
        object: dir.display().to_string(),
        message: format!("{what}: {e}"),
        log_tail: String::new(),
    };
    let mut map = MapHandle::create(
        MapType::Array,
        Some(MANIFEST_MAP_NAME),
        4,
        MANIFEST_VALUE_SIZE,
        1,
        &opts,
    )
    .map_err(|e| kerr("creating the manifest map", e))?;
    map.update(&0u32.to_le_bytes(), &value, MapFlags::ANY)
        .map_err(|e| kerr("writing the manifest", e))?;
    let path = dir.join(MANIFEST_FILE);
    if path.exists() {
        std::fs::remove_file(&path)?;
    }
    map.pin(&path)
        .map_err(|e| kerr("pinning the manifest", e))?;
    Ok(())
}

/// Reads the manifest of an opsplit pin directory.
pub fn read_manifest(dir: &Path) -> Result<Manifest, Error> {
    let path = dir.join(MANIFEST_FILE);
    let not_ours = |why: String| {
        Error::Unsupported(format!(
            "{} does not look like an opsplit pin directory ({why}); nothing removed",
            dir.display()
        ))
    };
    if !path.exists() {
        return Err(not_ours(format!("no {MANIFEST_FILE}")));
    }
    let map = MapHandle::from_pinned_path(&path).map_err(|e| not_ours(e.to_string()))?;
    if map.name() != MANIFEST_MAP_NAME
        || map.map_type() != MapType::Array
        || map.value_size() != MANIFEST_VALUE_SIZE
    {
        return Err(not_ours(format!(
            "{MANIFEST_FILE} is not opsplit's manifest map"
        )));
    }
    let value = map
        .lookup(&0u32.to_le_bytes(), MapFlags::ANY)
        .map_err(|e| not_ours(e.to_string()))?
        .ok_or_else(|| not_ours("empty manifest".into()))?;
    if &value[..8] != MAGIC {
        return Err(not_ours("bad manifest magic".into()));
    }
    let len = u32::from_le_bytes(value[8..12].try_into().expect("4 bytes")) as usize;
    let json = value
        .get(12..12 + len)
        .ok_or_else(|| not_ours("manifest length out of range".into()))?;
    serde_json::from_slice(json).map_err(|e| not_ours(format!("manifest: {e}")))
}

/// What `unload` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unloaded {
    pub detached: Vec<String>,
    pub removed: Vec<PathBuf>,
    /// Entries in DIR that opsplit did not create and therefore left alone.
    pub left: Vec<PathBuf>,
    /// Problems that did not stop the rest of the clean-up.
    pub problems: Vec<String>,
}

/// Detaches and removes everything the manifest in `dir` lists, then the manifest, the
/// sub-directories and `dir` itself when opsplit created them and they are empty.
pub fn unload(dir: &Path) -> Result<Unloaded, Error> {
    let m = read_manifest(dir)?;
    let mut out = Unloaded::default();
    // Detach first: once links are gone no program runs, so removing maps cannot race a program.
    for a in &m.attached {
        match a.how {
            Attachment::Link => {
                let p = dir.join("links").join(&a.program);
                if !p.exists() {
                    continue;
                }
                match kernel::obj_get(&p).and_then(|fd| kernel::link_detach(fd.as_fd())) {
                    Ok(()) => out.detached.push(a.program.clone()),
                    Err(e) => out
                        .problems
                        .push(format!("detaching link {}: {e}", p.display())),
                }
            }
            Attachment::ProgAttach => {
                let p = dir.join("progs").join(&a.program);
                let r = kernel::obj_get(&p).and_then(|prog| {
                    let cg = kernel::open_cgroup(&m.cgroup)?;
                    kernel::prog_detach(prog.as_fd(), cg.as_fd())
                });
                match r {
                    Ok(()) => out.detached.push(a.program.clone()),
                    Err(e) => out.problems.push(format!(
                        "detaching {} from {}: {e}",
                        a.program,
                        m.cgroup.display()
                    )),
                }
            }
            Attachment::ForeignLink => out.problems.push(format!(
                "{} runs in a link opsplit did not create (it replaced that link's program); \
                 the link keeps it attached until its owner releases it",
                a.program
            )),
        }
    }
    let mut remove = |p: PathBuf| {
        if p.exists() {
            match std::fs::remove_file(&p) {
                Ok(()) => out.removed.push(p),
                Err(e) => out.problems.push(format!("removing {}: {e}", p.display())),
            }
        }
    };
    for a in &m.attached {
        if a.how == Attachment::Link {
            remove(dir.join("links").join(&a.program));
        }
    }
    for p in &m.progs {
        remove(dir.join("progs").join(p));
    }
    for p in &m.maps {
        remove(dir.join("maps").join(p));
    }
    remove(dir.join(MANIFEST_FILE));
    for sub in ["links", "progs", "maps"] {
        let p = dir.join(sub);
        if p.exists() {
            remove_dir_if_empty(&p, &mut out);
        }
    }
    if m.created_dir {
        remove_dir_if_empty(dir, &mut out);
    } else if let Ok(rd) = std::fs::read_dir(dir) {
        out.left.extend(rd.filter_map(|e| e.ok().map(|e| e.path())));
    }
    Ok(out)
}

fn remove_dir_if_empty(p: &Path, out: &mut Unloaded) {
    match std::fs::read_dir(p) {
        Ok(rd) => {
            let rest: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            if rest.is_empty() {
                match std::fs::remove_dir(p) {
                    Ok(()) => out.removed.push(p.to_path_buf()),
                    Err(e) => out.problems.push(format!("removing {}: {e}", p.display())),
                }
            } else {
                out.left.extend(rest);
            }
        }
        Err(e) => out.problems.push(format!("reading {}: {e}", p.display())),
    }
}
