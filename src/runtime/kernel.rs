//! Simulated kernel objects and CO-RE.
//!
//! Programs reach kernel structs that are not UAPI (`bpf_sock_ops_kern` through
//! `bpf_cast_to_kern_ctx`, `sk_buff`, `skb_shared_info`, `tcp_sock` through
//! `bpf_skc_to_tcp_sock`) with CO-RE field accesses that libbpf resolves against the running
//! kernel's BTF at load time. The runtime does the same: [`KernelLayout`] holds the offsets of
//! the kernel's fields, taken from `/sys/kernel/btf/vmlinux` when it is readable and otherwise
//! from [`COMMITTED`] (this machine's 6.18.44 layout, checked against vmlinux BTF by a test);
//! the simulated objects are laid out with the same offsets, and [`apply_core`] patches every
//! `FIELD_BYTE_OFFSET`/`TYPE_ID_*` relocation of a function with them.

use std::collections::BTreeMap;

use crate::btf::{Btf, CoreReloKind, TypeId, TypeKind};
use crate::insn::{Insn, LdImm64, Src};

/// A field of a simulated kernel struct: byte offset and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldAt {
    pub offset: u32,
    pub size: u32,
}

/// Where the layout came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutSource {
    Vmlinux,
    Committed,
}

/// Struct sizes and field offsets of the kernel, as far as the runtime needs them.
#[derive(Debug)]
pub struct KernelLayout {
    pub source: LayoutSource,
    /// The kernel BTF, when read: any CO-RE access resolves against it.
    btf: Option<Btf>,
    sizes: BTreeMap<&'static str, u32>,
    fields: BTreeMap<(&'static str, &'static str), FieldAt>,
}

/// (struct, size, [(field path, offset, size)]): the modelled fields on 6.18.44. A path joins
/// named members with `.`; anonymous unions and structs are transparent, as in CO-RE.
pub type CommittedStruct = (&'static str, u32, &'static [(&'static str, u32, u32)]);

/// This kernel's layout of the simulated objects (from `/sys/kernel/btf/vmlinux`, 6.18.44).
pub const COMMITTED: &[CommittedStruct] = &[
    (
        "bpf_sock_ops_kern",
        64,
        &[
            ("sk", 0, 8),
            ("args", 8, 16),
            ("reply", 8, 4),
            ("syn_skb", 24, 8),
            ("skb", 32, 8),
            ("skb_data_end", 40, 8),
            ("op", 48, 1),
            ("is_fullsock", 49, 1),
            ("is_locked_tcp_sock", 50, 1),
            ("remaining_opt_len", 51, 1),
        ],
    ),
    (
        "sk_buff",
        224,
        &[
            ("len", 112, 4),
            ("data_len", 116, 4),
            ("tail", 184, 4),
            ("end", 188, 4),
            ("head", 192, 8),
            ("data", 200, 8),
        ],
    ),
    (
        "skb_shared_info",
        320,
        &[("tx_flags", 3, 1), ("hwtstamps", 16, 8), ("tskey", 28, 4)],
    ),
    (
        "tcp_sock",
        2304,
        &[
            ("snd_cwnd", 1444, 4),
            ("srtt_us", 1680, 4),
            ("snd_ssthresh", 1492, 4),
            ("rcv_nxt", 1664, 4),
            ("snd_nxt", 1668, 4),
            ("snd_una", 1672, 4),
            ("mss_cache", 1440, 4),
            ("packets_out", 1684, 4),
            ("retrans_out", 1480, 4),
            ("total_retrans", 2200, 4),
            ("segs_in", 1760, 4),
            ("segs_out", 1536, 4),
            ("bytes_received", 1752, 8),
            ("bytes_acked", 1824, 8),
            ("bpf_sock_ops_cb_flags", 2232, 1),
        ],
    ),
];

/// The layout every machine uses, detected once per process.
pub fn layout() -> &'static KernelLayout {
    static LAYOUT: std::sync::OnceLock<KernelLayout> = std::sync::OnceLock::new();
    LAYOUT.get_or_init(KernelLayout::detect)
}

impl KernelLayout {
    /// The running kernel's layout when `/sys/kernel/btf/vmlinux` parses, else the committed one.
    pub fn detect() -> KernelLayout {
        std::fs::read("/sys/kernel/btf/vmlinux")
            .ok()
            .and_then(|b| Btf::parse(&b).ok())
            .and_then(|btf| KernelLayout::from_btf(btf).ok())
            .unwrap_or_else(KernelLayout::committed)
    }

    /// The committed table.
    pub fn committed() -> KernelLayout {
        let mut sizes = BTreeMap::new();
        let mut fields = BTreeMap::new();
        for (s, size, fs) in COMMITTED {
            sizes.insert(*s, *size);
            for (f, offset, size) in fs.iter() {
                fields.insert(
                    (*s, *f),
                    FieldAt {
                        offset: *offset,
                        size: *size,
                    },
                );
            }
        }
        KernelLayout {
            source: LayoutSource::Committed,
            btf: None,
            sizes,
            fields,
        }
    }

    /// The modelled fields' offsets read from a kernel BTF.
    pub fn from_btf(btf: Btf) -> Result<KernelLayout, String> {
        let mut sizes = BTreeMap::new();
        let mut fields = BTreeMap::new();
        for (s, _, fs) in COMMITTED {
            let id = struct_id(&btf, s)?;
            let (_, c) = btf.composite(id).map_err(|e| e.to_string())?;
            sizes.insert(*s, c.size);
            for (f, ..) in fs.iter() {
                let (offset, size) = field_path(&btf, id, f)?;
                fields.insert((*s, *f), FieldAt { offset, size });
            }
        }
        Ok(KernelLayout {
            source: LayoutSource::Vmlinux,
            btf: Some(btf),
            sizes,
            fields,
        })
    }

    /// Offset and size of a modelled field. Panics on a field the model does not list, which
    /// is a bug in the runtime, not an input error.
    pub fn field(&self, s: &str, f: &str) -> FieldAt {
        *self
            .fields
            .iter()
            .find(|((a, b), _)| *a == s && *b == f)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("kernel field {s}.{f} is not modelled"))
    }

    pub fn size(&self, s: &str) -> u32 {
        self.sizes.get(s).copied().unwrap_or(0)
    }

    /// A zeroed object of struct `s`.
    pub fn object(&self, s: &str) -> Vec<u8> {
        vec![0; self.size(s) as usize]
    }

    /// Writes `value` (little-endian, the field's size) into an object of struct `s`.
    pub fn put(&self, obj: &mut [u8], s: &str, f: &str, value: u64) {
        let at = self.field(s, f);
        let (o, n) = (at.offset as usize, at.size.min(8) as usize);
        if let Some(dst) = obj.get_mut(o..o + n) {
            dst.copy_from_slice(&value.to_le_bytes()[..n]);
        }
    }

    /// Resolves a target field path of struct `s` (for CO-RE).
    fn resolve(&self, s: &str, path: &[String]) -> Result<FieldAt, String> {
        let joined = path.join(".");
        self.fields
            .iter()
            .find(|((a, b), _)| *a == s && *b == joined)
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                format!(
                    "{s}.{joined} is not in the committed kernel layout (no /sys/kernel/btf/vmlinux)"
                )
            })
    }

    /// A kernel type id for `TYPE_ID_TARGET` relocations: the vmlinux id when known.
    fn type_id(&self, name: &str) -> u32 {
        self.btf
            .as_ref()
            .and_then(|b| struct_id(b, name).ok())
            .unwrap_or(1)
    }
}

fn struct_id(btf: &Btf, name: &str) -> Result<TypeId, String> {
    (1..btf.len() as TypeId)
        .find(|&id| {
            btf.name_of(id) == Some(name)
                && matches!(
                    btf.type_by_id(id).map(|t| &t.kind),
                    Some(TypeKind::Struct(_) | TypeKind::Union(_))
                )
        })
        .ok_or_else(|| format!("kernel BTF has no struct {name}"))
}

/// Finds member `name` of composite `id`, looking through anonymous members: (offset, type).
fn find_member(btf: &Btf, id: TypeId, name: &str, depth: u32) -> Option<(u32, TypeId)> {
    if depth > 8 {
        return None;
    }
    let (_, c) = btf.composite(id).ok()?;
    for m in &c.members {
        let mname = btf.str_at(m.name_off).unwrap_or("");
        if mname == name {
            return Some((m.bit_offset / 8, m.type_id));
        }
        if mname.is_empty()
            && let Some((o, t)) = find_member(btf, m.type_id, name, depth + 1)
        {
            return Some((m.bit_offset / 8 + o, t));
        }
    }
    None
}

/// Offset and size of a `.`-joined member path of composite `id`.
fn field_path(btf: &Btf, id: TypeId, path: &str) -> Result<(u32, u32), String> {
    let mut cur = id;
    let mut off = 0;
    for part in path.split('.') {
        let (o, t) = find_member(btf, cur, part, 0).ok_or_else(|| {
            format!(
                "kernel BTF: {} has no field {part}",
                btf.name_of(cur).unwrap_or("?")
            )
        })?;
        off += o;
        cur = t;
    }
    let size = btf.resolve_size(cur).map_err(|e| e.to_string())?;
    Ok((off, size))
}

/// One step of a CO-RE access below the root: a named member (anonymous ones are transparent)
/// or an array element.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Field(String),
    Index(u32),
}

/// A CO-RE access on the program's side: root struct name, the steps, and the local offset and
/// size (what the compiler assumed).
fn local_access(
    btf: &Btf,
    root: TypeId,
    spec: &str,
) -> Result<(String, Vec<Step>, u32, u32), String> {
    let mut idx = spec.split(':').map(|s| {
        s.parse::<u32>()
            .map_err(|_| format!("bad CO-RE access spec `{spec}`"))
    });
    let first = idx.next().ok_or("empty CO-RE access spec")??;
    if first != 0 {
        return Err(format!(
            "CO-RE access `{spec}` indexes an array of the root type"
        ));
    }
    let rid = btf
        .skip_mods_and_typedefs(root)
        .map_err(|e| e.to_string())?;
    let name = btf.name_of(rid).unwrap_or("").to_string();
    let mut cur = rid;
    let mut off = 0u32;
    let mut steps = Vec::new();
    for i in idx {
        let i = i?;
        let t = btf.skip_mods_and_typedefs(cur).map_err(|e| e.to_string())?;
        match &btf.get(t).map_err(|e| e.to_string())?.kind {
            TypeKind::Struct(c) | TypeKind::Union(c) => {
                let m = c
                    .members
                    .get(i as usize)
                    .ok_or_else(|| format!("CO-RE access `{spec}`: no member {i}"))?;
                if m.bitfield_size != 0 {
                    return Err(format!(
                        "CO-RE access `{spec}` of {name} is a bitfield (not modelled)"
                    ));
                }
                let mname = btf.str_at(m.name_off).unwrap_or("");
                if !mname.is_empty() {
                    steps.push(Step::Field(mname.to_string()));
                }
                off += m.bit_offset / 8;
                cur = m.type_id;
            }
            TypeKind::Array(a) => {
                let es = btf.resolve_size(a.elem_type).map_err(|e| e.to_string())?;
                steps.push(Step::Index(i));
                off += es * i;
                cur = a.elem_type;
            }
            _ => {
                return Err(format!(
                    "CO-RE access `{spec}` of {name} goes through a scalar"
                ));
            }
        }
    }
    let size = btf.resolve_size(cur).map_err(|e| e.to_string())?;
    Ok((name, steps, off, size))
}

/// Resolves access steps of struct `root` against a kernel BTF.
fn target_access(btf: &Btf, root: &str, steps: &[Step]) -> Result<FieldAt, String> {
    let mut cur = struct_id(btf, root)?;
    let mut off = 0;
    for st in steps {
        match st {
            Step::Field(n) => {
                let (o, t) = find_member(btf, cur, n, 0).ok_or_else(|| {
                    format!(
                        "kernel BTF: {} has no field {n}",
                        btf.name_of(cur).unwrap_or("?")
                    )
                })?;
                off += o;
                cur = t;
            }
            Step::Index(i) => {
                let t = btf.skip_mods_and_typedefs(cur).map_err(|e| e.to_string())?;
                let TypeKind::Array(a) = &btf.get(t).map_err(|e| e.to_string())?.kind else {
                    return Err(format!("kernel BTF: {root}: indexing a non-array"));
                };
                off += btf.resolve_size(a.elem_type).map_err(|e| e.to_string())? * i;
                cur = a.elem_type;
            }
        }
    }
    let size = btf.resolve_size(cur).map_err(|e| e.to_string())?;
    Ok(FieldAt { offset: off, size })
}

impl KernelLayout {
    /// Where the kernel has the field of a CO-RE access. Structs the runtime does not simulate
    /// (the UAPI context types) keep their local layout when no kernel BTF is at hand: their
    /// layout is ABI.
    fn resolve_access(
        &self,
        root: &str,
        steps: &[Step],
        local: FieldAt,
    ) -> Result<FieldAt, String> {
        if let Some(btf) = &self.btf {
            return target_access(btf, root, steps);
        }
        if !self.sizes.contains_key(root) {
            return Ok(local);
        }
        let mut path = Vec::new();
        for s in steps {
            match s {
                Step::Field(n) => path.push(n.clone()),
                Step::Index(_) => {
                    return Err(format!(
                        "{root}: array access not in the committed kernel layout"
                    ));
                }
            }
        }
        self.resolve(root, &path)
    }
}

/// Applies the object's CO-RE relocations of one function (slots from the function start) to
/// its instructions, as libbpf does at load time.
pub fn apply_core(
    layout: &KernelLayout,
    btf: &Btf,
    relos: &[(usize, crate::btf::CoreRelo)],
    insns: &mut [crate::insn::SlotInsn],
) -> Result<(), (usize, String)> {
    for (slot, r) in relos {
        let Some(si) = insns.iter_mut().find(|i| i.slot == *slot) else {
            return Err((*slot, "CO-RE relocation on no instruction".into()));
        };
        let spec = btf.str_at(r.access_str_off).unwrap_or("");
        let value: u64 = match r.kind {
            CoreReloKind::FieldByteOffset
            | CoreReloKind::FieldByteSize
            | CoreReloKind::FieldExists => {
                let (root, steps, offset, size) =
                    local_access(btf, r.type_id, spec).map_err(|e| (*slot, e))?;
                let at = layout.resolve_access(&root, &steps, FieldAt { offset, size });
                match r.kind {
                    CoreReloKind::FieldExists => u64::from(at.is_ok()),
                    CoreReloKind::FieldByteOffset => at.map_err(|e| (*slot, e))?.offset.into(),
                    _ => at.map_err(|e| (*slot, e))?.size.into(),
                }
            }
            CoreReloKind::TypeIdLocal => r.type_id.into(),
            CoreReloKind::TypeIdTarget => {
                let rid = btf.skip_mods_and_typedefs(r.type_id).unwrap_or(r.type_id);
                layout.type_id(btf.name_of(rid).unwrap_or("")).into()
            }
            CoreReloKind::TypeExists | CoreReloKind::TypeMatches => 1,
            other => {
                return Err((
                    *slot,
                    format!("CO-RE relocation {other:?} is not modelled by the runtime"),
                ));
            }
        };
        match &mut si.insn {
            Insn::Load { off, .. }
            | Insn::LoadSx { off, .. }
            | Insn::Store { off, .. }
            | Insn::Atomic { off, .. } => {
                *off = i16::try_from(value).map_err(|_| (*slot, "offset too large".into()))?;
            }
            Insn::Alu {
                src: Src::Imm(imm), ..
            } => *imm = value as i32,
            Insn::LdImm64 {
                value: LdImm64::Imm(v),
                ..
            } => *v = value as i64,
            other => {
                return Err((
                    *slot,
                    format!("CO-RE relocation on an instruction it cannot patch: {other:?}"),
                ));
            }
        }
    }
    Ok(())
}
