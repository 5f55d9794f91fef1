import re,sys
src=open('bpf/vmlinux.h').read()
def grab(enum,prefix):
    body=re.search(r'enum '+enum+r' \{(.*?)\};',src,re.S).group(1)
    out={}
    for m in re.finditer(prefix+r'(\w+) = (\d+),',body):
        n,v=m.group(1),int(m.group(2))
        if n.startswith('_') or n.endswith('_DEPRECATED'): continue
        out.setdefault(v,n)
    n=max(out)+1
    assert sorted(out)==list(range(n)), enum
    return [out[i] for i in range(n)]
maps=grab('bpf_map_type','BPF_MAP_TYPE_')
funcs=grab('bpf_func_id','BPF_FUNC_')
print(len(maps),len(funcs),file=sys.stderr)
f=sys.stdout
f.write('''//! Names of kernel UAPI enumerations, as of Linux 6.18.
//!
//! Generated from `enum bpf_map_type` and `enum bpf_func_id` in `bpf/vmlinux.h` (this kernel's
//! BTF) by `bpf/gen_uapi.py`.

/// `BPF_MAP_TYPE_*` names, lower case without the prefix, indexed by value.
pub const MAP_TYPES: &[&str] = &[
''')
for n in maps: f.write(f'    "{n.lower()}",\n')
f.write('''];

/// Helper C names (`bpf_` + the `BPF_FUNC_*` suffix), indexed by helper id; 0 is `unspec`.
pub const HELPERS: &[&str] = &[
''')
for n in funcs: f.write(f'    "bpf_{n}",\n' if n!='unspec' else '    "unspec",\n')
f.write('''];

/// The name of a map type, or `None` for a value this kernel does not know.
pub fn map_type_name(t: u32) -> Option<&'static str> {
    MAP_TYPES.get(t as usize).copied()
}

/// The C name of a helper (`bpf_setsockopt`), or `None` for an id this kernel does not know.
pub fn helper_name(id: i32) -> Option<&'static str> {
    usize::try_from(id).ok().and_then(|i| HELPERS.get(i)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_values() {
        assert_eq!(map_type_name(3), Some("prog_array"));
        assert_eq!(map_type_name(19), Some("cgroup_storage"));
        assert_eq!(map_type_name(24), Some("sk_storage"));
        assert_eq!(helper_name(12), Some("bpf_tail_call"));
        assert_eq!(helper_name(49), Some("bpf_setsockopt"));
        assert_eq!(helper_name(59), Some("bpf_sock_ops_cb_flags_set"));
        assert_eq!(helper_name(-1), None);
        assert_eq!(helper_name(100_000), None);
    }
}
''')
