//! `bpftool btf dump file <obj> format raw` text.
//!
//! Matches bpftool 7.1 (the version installed here) line for line, including its quirks (the
//! comma in `VAR ... type_id=N, linkage=...`, `(anon)` for unnamed entities, `ULL`/`LL` suffixes
//! on ENUM64 values, `encoding=` on ENUM/ENUM64). bpftool 7.1 predates the DECL_TAG/TYPE_TAG kind
//! flag (attribute tags, Linux 6.14+): like 7.1, this printer does not show it, whereas newer
//! bpftool releases may print more for those kinds.

use super::{Btf, IntEncoding, TypeId, TypeKind};
use std::fmt::Write as _;

impl Btf {
    /// The whole type table in bpftool's raw format, one type per line (members indented by a
    /// tab on their own lines), ending with a newline.
    pub fn dump_raw(&self) -> String {
        let mut s = String::new();
        for id in 1..self.types.len() {
            self.dump_type(&mut s, id as TypeId);
        }
        s
    }

    fn name_or_anon(&self, off: u32) -> String {
        if off == 0 {
            return "(anon)".into();
        }
        match self.strings.get_lossy(off) {
            Some(s) => s.into_owned(),
            None => "(invalid)".into(),
        }
    }

    /// Appends the raw-format lines of type `id` to `s`.
    pub fn dump_type(&self, s: &mut String, id: TypeId) {
        let Some(t) = self.type_by_id(id) else {
            let _ = writeln!(s, "[{id}] (invalid id)");
            return;
        };
        let _ = write!(
            s,
            "[{id}] {} '{}'",
            t.kind.kind().name(),
            self.name_or_anon(t.name_off)
        );
        match &t.kind {
            TypeKind::Void => {}
            TypeKind::Int(i) => {
                let enc = match i.encoding {
                    IntEncoding::None => "(none)",
                    IntEncoding::Signed => "SIGNED",
                    IntEncoding::Char => "CHAR",
                    IntEncoding::Bool => "BOOL",
                };
                let _ = write!(
                    s,
                    " size={} bits_offset={} nr_bits={} encoding={enc}",
                    i.size, i.offset, i.bits
                );
            }
            TypeKind::Ptr { type_id }
            | TypeKind::Const { type_id }
            | TypeKind::Volatile { type_id }
            | TypeKind::Restrict { type_id }
            | TypeKind::Typedef { type_id }
            | TypeKind::TypeTag { type_id, .. } => {
                let _ = write!(s, " type_id={type_id}");
            }
            TypeKind::Array(a) => {
                let _ = write!(
                    s,
                    " type_id={} index_type_id={} nr_elems={}",
                    a.elem_type, a.index_type, a.nelems
                );
            }
            TypeKind::Struct(c) | TypeKind::Union(c) => {
                let _ = write!(s, " size={} vlen={}", c.size, c.members.len());
                for m in &c.members {
                    let _ = write!(
                        s,
                        "\n\t'{}' type_id={} bits_offset={}",
                        self.name_or_anon(m.name_off),
                        m.type_id,
                        m.bit_offset
                    );
                    if m.bitfield_size != 0 {
                        let _ = write!(s, " bitfield_size={}", m.bitfield_size);
                    }
                }
            }
            TypeKind::Enum(e) => {
                let _ = write!(
                    s,
                    " encoding={} size={} vlen={}",
                    if e.signed { "SIGNED" } else { "UNSIGNED" },
                    e.size,
                    e.values.len()
                );
                for v in &e.values {
                    let _ = write!(
                        s,
                        "\n\t'{}' val={}",
                        self.name_or_anon(v.name_off),
                        v.value(e.signed)
                    );
                }
            }
            TypeKind::Enum64(e) => {
                let _ = write!(
                    s,
                    " encoding={} size={} vlen={}",
                    if e.signed { "SIGNED" } else { "UNSIGNED" },
                    e.size,
                    e.values.len()
                );
                for v in &e.values {
                    let name = self.name_or_anon(v.name_off);
                    if e.signed {
                        let _ = write!(s, "\n\t'{name}' val={}LL", v.val as i64);
                    } else {
                        let _ = write!(s, "\n\t'{name}' val={}ULL", v.val);
                    }
                }
            }
            TypeKind::Fwd { union } => {
                let _ = write!(s, " fwd_kind={}", if *union { "union" } else { "struct" });
            }
            TypeKind::Func { proto, linkage } => {
                let _ = write!(s, " type_id={proto} linkage={}", linkage.name());
            }
            TypeKind::FuncProto(p) => {
                let _ = write!(s, " ret_type_id={} vlen={}", p.ret, p.params.len());
                for prm in &p.params {
                    let _ = write!(
                        s,
                        "\n\t'{}' type_id={}",
                        self.name_or_anon(prm.name_off),
                        prm.type_id
                    );
                }
            }
            TypeKind::Var(v) => {
                let _ = write!(s, " type_id={}, linkage={}", v.type_id, v.linkage.name());
            }
            TypeKind::Datasec(d) => {
                let _ = write!(s, " size={} vlen={}", d.size, d.vars.len());
                for v in &d.vars {
                    let _ = write!(
                        s,
                        "\n\ttype_id={} offset={} size={}",
                        v.type_id, v.offset, v.size
                    );
                    if let Some(vt) = self.type_by_id(v.type_id) {
                        let _ = write!(
                            s,
                            " ({} '{}')",
                            vt.kind.kind().name(),
                            self.name_or_anon(vt.name_off)
                        );
                    }
                }
            }
            TypeKind::Float { size } => {
                let _ = write!(s, " size={size}");
            }
            TypeKind::DeclTag(d) => {
                let _ = write!(
                    s,
                    " type_id={} component_idx={}",
                    d.type_id, d.component_idx
                );
            }
        }
        s.push('\n');
    }
}
