//! The code shapes the corpus promises are really in the committed objects.
//!
//! Each row of [`SHAPES`] names a shape, the object and function that carry it, and a matcher over
//! that function's raw instruction slots. Clang is free to fold a shape away when the source or the
//! compiler changes; this test is what notices. The matchers track "the op" the way a reader of the
//! disassembly would: the value loaded from offset 0 of the context (r1 at program entry), through
//! register moves, stack spills and call arguments (see [`Flow`]).
//!
//! Negative control: every op-based row is also run against the object's per-op reference builds
//! (`fixtures/ref/<name>.op<K>.o`, where the op is a compile-time constant); there the matcher must
//! find nothing, which shows it keys on the op and not on incidental code.
//!
//! To add a row: append to `SHAPES`; write a new matcher only if no existing one fits.

#[path = "common/objsyms.rs"]
mod objsyms;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use objsyms::{Func, ObjFile};
use opsplit::insn::RawInsn;
use opsplit::insn::opcode::*;

/// One promised shape.
struct Row {
    shape: &'static str,
    /// Object file under `fixtures/`, e.g. `tcp_iw.o` or `rtt_stats.v4.o`.
    object: &'static str,
    /// Function symbol the shape lives in.
    function: &'static str,
    /// Returns evidence (slots, registers) when the shape is present, `None` when it is not.
    matcher: fn(&Subject) -> Option<String>,
    /// The shape is about the op: the per-op reference builds of the same source must not match.
    op_based: bool,
}

#[rustfmt::skip]
const SHAPES: &[Row] = &[
    // --- dispatch on the op --------------------------------------------------------------------
    Row { shape: "switch as jump chain", object: "syn_rto_rwnd.o", function: "syn_rto_rwnd", matcher: jump_chain, op_based: true },
    Row { shape: "switch as jump chain (v1: 64-bit compares)", object: "syn_rto_rwnd.v1.o", function: "syn_rto_rwnd", matcher: jump_chain, op_based: true },
    Row { shape: "switch as binary tree", object: "cc_choice.o", function: "cc_choice", matcher: binary_tree, op_based: true },
    Row { shape: "two dispatch trees chosen by a value loaded from a map", object: "cc_choice.o", function: "cc_choice", matcher: two_trees_by_map_value, op_based: true },
    Row { shape: "switch as range check (op - K < N)", object: "buf_clamp.o", function: "buf_clamp", matcher: range_check, op_based: true },
    Row { shape: "cases merged by (op & ~1) == K", object: "buf_clamp.o", function: "buf_clamp", matcher: and_merge, op_based: true },
    Row { shape: "(1 << op) & mask after a bound check", object: "tos_reflect.o", function: "tos_reflect", matcher: bit_test, op_based: true },
    Row { shape: "(1 << op) & mask after a bound check (v1)", object: "tos_reflect.v1.o", function: "tos_reflect", matcher: bit_test, op_based: true },
    Row { shape: "if/else chain on the op interleaved with other conditions", object: "tcp_iw.o", function: "tcp_iw", matcher: if_else_chain, op_based: true },
    // --- where the op lives ----------------------------------------------------------------------
    Row { shape: "op kept in a callee-saved register across helper calls", object: "tcp_iw.o", function: "tcp_iw", matcher: callee_saved_across_call, op_based: true },
    Row { shape: "op spilled to the stack and reloaded", object: "rtt_stats.o", function: "rtt_stats", matcher: spill_reload, op_based: true },
    Row { shape: "op as a map key", object: "sockmap_est.o", function: "sockmap_est", matcher: op_as_map_key, op_based: true },
    Row { shape: "op passed to a static noinline subprogram", object: "rto_retrans.o", function: "rto_retrans", matcher: op_to_static_subprog, op_based: true },
    Row { shape: "op passed to a global function", object: "rto_retrans.o", function: "rto_retrans", matcher: op_to_global_func, op_based: true },
    Row { shape: "op re-tested inside a subprogram", object: "rto_retrans.o", function: "rto_retrans", matcher: op_retested_in_callee, op_based: true },
    Row { shape: "op re-tested inside a subprogram (-O1)", object: "rto_retrans.O1.o", function: "rto_retrans", matcher: op_retested_in_callee, op_based: true },
    // --- program structure -----------------------------------------------------------------------
    Row { shape: "shared BPF-to-BPF subprogram called from several ops", object: "rto_retrans.o", function: "rto_retrans", matcher: shared_subprog, op_based: false },
    Row { shape: "program returning 0 for some ops", object: "syn_rto_rwnd.o", function: "syn_rto_rwnd", matcher: returns_zero, op_based: false },
    Row { shape: "reply written in several ops", object: "syn_rto_rwnd.o", function: "syn_rto_rwnd", matcher: reply_written_several, op_based: false },
    Row { shape: "bounded loop", object: "rtt_stats.o", function: "rtt_stats", matcher: bounded_loop, op_based: false },
    Row { shape: ".bss global", object: "rtt_stats.o", function: "rtt_stats", matcher: global_bss, op_based: false },
    Row { shape: ".data global", object: "rtt_stats.o", function: "rtt_stats", matcher: global_data, op_based: false },
    Row { shape: ".rodata const volatile config", object: "syn_rto_rwnd.o", function: "syn_rto_rwnd", matcher: global_rodata, op_based: false },
    Row { shape: ".kconfig extern (CONFIG_HZ)", object: "syn_rto_rwnd.o", function: "syn_rto_rwnd", matcher: kconfig_hz, op_based: false },
    // --- helpers that pin a program to its op ----------------------------------------------------
    Row { shape: "cb flags set with bpf_sock_ops_cb_flags_set", object: "rtt_stats.o", function: "rtt_stats", matcher: cb_flags_set_helper, op_based: false },
    Row { shape: "header options: reserve/store/load_hdr_opt and direct skb_data reads", object: "hdr_opt.o", function: "hdr_opt", matcher: hdr_opt_helpers, op_based: false },
    Row { shape: "sockhash insertion from sock_ops", object: "sockmap_est.o", function: "sockmap_est", matcher: sock_hash_update, op_based: false },
    Row { shape: "sk_msg program in the same object redirecting via the hash", object: "sockmap_est.o", function: "sockmap_redir", matcher: sk_msg_redirect, op_based: false },
    // --- ISA v4 -----------------------------------------------------------------------------------
    Row { shape: "v4: ldsx (sign-extending load)", object: "rtt_stats.v4.o", function: "rtt_stats", matcher: isa_ldsx, op_based: false },
    Row { shape: "v4: movsx", object: "rtt_stats.v4.o", function: "rtt_stats", matcher: isa_movsx, op_based: false },
    Row { shape: "v4: bswap", object: "rtt_stats.v4.o", function: "rtt_stats", matcher: isa_bswap, op_based: false },
    Row { shape: "v4: sdiv and smod", object: "rtt_stats.v4.o", function: "rtt_stats", matcher: isa_sdiv_smod, op_based: false },
    Row { shape: "v4: gotol (jump beyond 16-bit offsets)", object: "rtt_stats.v4.o", function: "rtt_stats", matcher: isa_gotol, op_based: false },
    // --- fixtures 10-18: state, timestamps, program structure, object format ---------------------
    Row { shape: "CO-RE reads through bpf_skc_to_tcp_sock", object: "sk_storage_state.o", function: "sk_storage_state", matcher: core_reads_via_skc_to_tcp_sock, op_based: false },
    Row { shape: "sk_txhash written", object: "sk_storage_state.o", function: "sk_storage_state", matcher: sk_txhash_written, op_based: false },
    Row { shape: "sk_storage get and delete on ctx->sk", object: "sk_storage_state.o", function: "sk_storage_state", matcher: sk_storage_get_delete, op_based: false },
    Row { shape: "kfuncs bpf_cast_to_kern_ctx and bpf_sock_ops_enable_tx_tstamp", object: "tx_tstamp.o", function: "tx_tstamp", matcher: tx_tstamp_kfuncs, op_based: false },
    Row { shape: "TX timestamping armed with setsockopt(SOL_SOCKET, SK_BPF_CB_FLAGS)", object: "tx_tstamp.o", function: "tx_tstamp", matcher: setsockopt_sk_bpf_cb_flags, op_based: false },
    Row { shape: "cb flags set both ways (cb_flags_set and setsockopt TCP_BPF_SOCK_OPS_CB_FLAGS)", object: "cb_flags_both.o", function: "cb_flags_both", matcher: cb_flags_both_ways, op_based: false },
    Row { shape: "ctx handed to a bpf_loop callback through a stack struct", object: "cb_flags_both.o", function: "cb_flags_both", matcher: loop_callback_reads_ctx, op_based: false },
    Row { shape: "ctx handed to a bpf_loop callback through a stack struct (v4)", object: "cb_flags_both.v4.o", function: "cb_flags_both", matcher: loop_callback_reads_ctx, op_based: false },
    Row { shape: "two sockops programs in one object in different sections", object: "multi_prog.o", function: "conn_stats", matcher: sockops_in_two_sections, op_based: false },
    Row { shape: "several programs in one section", object: "multi_prog.o", function: "tune_client", matcher: several_programs_in_section, op_based: false },
    Row { shape: "subprogram shared by several programs", object: "multi_prog.o", function: "tune_client", matcher: subprog_shared_by_programs, op_based: false },
    Row { shape: ".bss global (multi-program object)", object: "multi_prog.o", function: "conn_stats", matcher: global_bss, op_based: false },
    Row { shape: ".data global (multi-program object)", object: "multi_prog.o", function: "reply_for", matcher: global_data, op_based: false },
    Row { shape: ".rodata const volatile (multi-program object)", object: "multi_prog.o", function: "reply_for", matcher: global_rodata_hz, op_based: false },
    Row { shape: "tail call through a statically initialised PROG_ARRAY", object: "tail_call.o", function: "dispatch", matcher: tail_call_static_prog_array, op_based: false },
    Row { shape: "no BTF at all (built without -g)", object: "nobtf_basic.o", function: "nobtf_basic", matcher: no_btf, op_based: false },
    Row { shape: "legacy SEC(\"maps\") bpf_map_def and a version section", object: "legacy_maps.o", function: "legacy_clamp", matcher: legacy_maps_and_version, op_based: false },
    Row { shape: "struct bpf_sock fields read through ctx->sk", object: "listener_policy.o", function: "listener_policy", matcher: bpf_sock_reads, op_based: false },
];

/// Places a matcher must *not* fire: near misses that a sloppy matcher would take for the shape.
struct Absent {
    why: &'static str,
    object: &'static str,
    function: &'static str,
    matcher: fn(&Subject) -> Option<String>,
}

#[rustfmt::skip]
const ABSENT: &[Absent] = &[
    Absent { why: "leaves of a binary tree are short jeq chains, not a jump-chain switch", object: "cc_choice.o", function: "cc_choice", matcher: jump_chain },
    Absent { why: "a jump-chain switch has no ordered compare of the op", object: "syn_rto_rwnd.o", function: "syn_rto_rwnd", matcher: binary_tree },
    Absent { why: "a plain switch is not an if/else chain", object: "syn_rto_rwnd.o", function: "syn_rto_rwnd", matcher: if_else_chain },
    Absent { why: "backward jumps to shared tails are not loops", object: "syn_rto_rwnd.o", function: "syn_rto_rwnd", matcher: bounded_loop },
    Absent { why: "a range check and an (op & ~1) test are not a bit test", object: "buf_clamp.o", function: "buf_clamp", matcher: bit_test },
    Absent { why: "the op stays in r8 in tcp_iw", object: "tcp_iw.o", function: "tcp_iw", matcher: spill_reload },
    Absent { why: "-mcpu=v3 cannot encode gotol: the decay loop stays rolled", object: "rtt_stats.o", function: "rtt_stats", matcher: isa_gotol },
    Absent { why: "-mcpu=v3 has no signed division", object: "rtt_stats.o", function: "rtt_stats", matcher: isa_sdiv_smod },
    Absent { why: "the CONNECT-only specialization never samples the tcp_sock", object: "ref/sk_storage_state.op3.o", function: "sk_storage_state", matcher: core_reads_via_skc_to_tcp_sock },
    Absent { why: "sk_txhash is written only on ESTABLISHED", object: "ref/sk_storage_state.op10.o", function: "sk_storage_state", matcher: sk_txhash_written },
    Absent { why: "the ESTABLISHED-only specialization calls no kfunc", object: "ref/tx_tstamp.op4.o", function: "tx_tstamp", matcher: tx_tstamp_kfuncs },
    Absent { why: "RETRANS_CB only counts: no bpf_loop", object: "ref/cb_flags_both.op9.o", function: "cb_flags_both", matcher: loop_callback_reads_ctx },
    Absent { why: "tail_call.o keeps all its programs in one section", object: "tail_call.o", function: "dispatch", matcher: sockops_in_two_sections },
    Absent { why: "one program per section", object: "sk_storage_state.o", function: "sk_storage_state", matcher: several_programs_in_section },
    Absent { why: "ACTIVE_ESTABLISHED is handled inline, without a tail call", object: "ref/tail_call.op4.o", function: "dispatch", matcher: tail_call_static_prog_array },
    Absent { why: "built with -g: has BTF", object: "sk_storage_state.o", function: "sk_storage_state", matcher: no_btf },
    Absent { why: "BTF-defined maps are not legacy maps", object: "tail_call.o", function: "dispatch", matcher: legacy_maps_and_version },
];

// ================================================================================================
// Tests
// ================================================================================================

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

#[test]
fn every_listed_shape_is_present() {
    let mut missing = Vec::new();
    let mut cache: BTreeMap<&str, ObjFile> = BTreeMap::new();
    for row in SHAPES {
        let obj = cache
            .entry(row.object)
            .or_insert_with(|| ObjFile::open(&fixtures().join(row.object)));
        let Some(f) = obj.func(row.function) else {
            missing.push(format!(
                "{} [{}]: no function symbol `{}`",
                row.shape, row.object, row.function
            ));
            continue;
        };
        let subject = Subject::new(obj, f);
        match (row.matcher)(&subject) {
            Some(evidence) => eprintln!(
                "ok   {:<60} {}::{}  {evidence}",
                row.shape, row.object, row.function
            ),
            None => missing.push(format!(
                "{} [{}::{}]: pattern not found",
                row.shape, row.object, row.function
            )),
        }
    }
    assert!(
        missing.is_empty(),
        "shapes missing from the committed fixtures:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn matchers_reject_near_misses() {
    let mut wrong = Vec::new();
    for a in ABSENT {
        let obj = ObjFile::open(&fixtures().join(a.object));
        let f = obj
            .func(a.function)
            .unwrap_or_else(|| panic!("{}: no function {}", a.object, a.function));
        if let Some(ev) = (a.matcher)(&Subject::new(&obj, f)) {
            wrong.push(format!("{}::{} ({}): {ev}", a.object, a.function, a.why));
        }
    }
    assert!(
        wrong.is_empty(),
        "matchers fired on near misses:\n  {}",
        wrong.join("\n  ")
    );
}

/// Reference builds of `fixtures/<stem>.o`: `fixtures/ref/<stem>.op<K>.o`, with K.
fn ref_builds(stem: &str) -> Vec<(u32, PathBuf)> {
    let Ok(dir) = std::fs::read_dir(fixtures().join("ref")) else {
        return Vec::new();
    };
    let mut v: Vec<(u32, PathBuf)> = dir
        .filter_map(|e| {
            let p = e.ok()?.path();
            let name = p.file_name()?.to_str()?.to_string();
            let rest = name
                .strip_prefix(stem)?
                .strip_prefix(".op")?
                .strip_suffix(".o")?;
            Some((rest.parse().ok()?, p))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn op_based_matchers_find_nothing_in_reference_builds() {
    let mut checked = 0;
    let mut wrong = Vec::new();
    for row in SHAPES.iter().filter(|r| r.op_based) {
        let stem = row
            .object
            .split('.')
            .next()
            .expect("object name has a stem");
        for (k, path) in ref_builds(stem) {
            let obj = ObjFile::open(&path);
            let Some(f) = obj.func(row.function) else {
                continue;
            };
            checked += 1;
            if let Some(ev) = (row.matcher)(&Subject::new(&obj, f)) {
                wrong.push(format!(
                    "{}: matched in ref op{k} ({}): {ev}",
                    row.shape,
                    path.display()
                ));
            }
        }
    }
    assert!(
        checked > 0,
        "no reference build was checked: fixtures/ref is empty?"
    );
    assert!(
        wrong.is_empty(),
        "op-based matchers fired where the op is a constant:\n  {}",
        wrong.join("\n  ")
    );
}

#[test]
fn reference_builds_never_load_the_op() {
    let dir = fixtures().join("ref");
    let mut objs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "o"))
        .collect();
    objs.sort();
    assert!(
        !objs.is_empty(),
        "no reference builds under {}",
        dir.display()
    );

    let mut failures = Vec::new();
    for path in &objs {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let (stem, _) = name
            .split_once(".op")
            .unwrap_or_else(|| panic!("{name}: not <name>.op<K>.o"));
        let obj = ObjFile::open(path);
        let progs: Vec<&Func> = obj
            .programs()
            .filter(|f| f.section.starts_with("sockops"))
            .collect();
        assert!(!progs.is_empty(), "{name}: no sockops program");
        for f in progs {
            let loads = op_loads(&Subject::new(&obj, f));
            if !loads.is_empty() {
                failures.push(format!(
                    "{name}::{}: loads ctx->op at slots {loads:?}",
                    f.name
                ));
            }
        }
        // Positive control: the same program in the default build does load the op, so the
        // oracle above can see an op load when there is one.
        let base = ObjFile::open(&fixtures().join(format!("{stem}.o")));
        let loads: usize = base
            .programs()
            .filter(|f| f.section.starts_with("sockops"))
            .map(|f| op_loads(&Subject::new(&base, f)).len())
            .sum();
        assert!(
            loads > 0,
            "{stem}.o never loads ctx->op, so its reference builds prove nothing"
        );
    }
    assert!(
        failures.is_empty(),
        "reference builds still read the op:\n  {}",
        failures.join("\n  ")
    );
}

/// Slots loading offset 0 of the context.
fn op_loads(s: &Subject) -> Vec<usize> {
    (0..s.insns.len())
        .filter(|&i| {
            let n = s.insns[i];
            n.code & 0x07 == BPF_LDX && n.off == 0 && s.reg(i, n.src) == Some(Val::Ctx)
        })
        .collect()
}

// ================================================================================================
// Data flow: what each register and stack slot holds, on every path (a "must" analysis)
// ================================================================================================

/// What the analysis knows a register (or stack slot) holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Val {
    /// The program context (`struct bpf_sock_ops *`).
    Ctx,
    /// The op, loaded from ctx offset 0, possibly narrowed/copied.
    Op,
    /// r10 + offset.
    Fp(i32),
    /// A map value pointer returned by bpf_map_lookup_elem.
    MapPtr,
    /// A value loaded through a map value pointer.
    MapLoaded,
    /// skb_data (ctx offset 192) or a pointer derived from it.
    Pkt,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct State {
    regs: [Option<Val>; 11],
    /// Stack slots by frame offset.
    slots: BTreeMap<i32, Val>,
    /// Registers that may hold the constant 0 set by a `mov rX, 0` (a "may" bit, joined by union).
    maybe_zero: u16,
}

impl State {
    fn entry(args: &[(u8, Val)]) -> State {
        let mut regs = [None; 11];
        regs[10] = Some(Val::Fp(0));
        for &(r, v) in args {
            regs[r as usize] = Some(v);
        }
        State {
            regs,
            slots: BTreeMap::new(),
            maybe_zero: 0,
        }
    }

    fn join(&self, other: &State) -> State {
        let mut regs = [None; 11];
        for (i, r) in regs.iter_mut().enumerate() {
            if self.regs[i] == other.regs[i] {
                *r = self.regs[i];
            }
        }
        let slots = self
            .slots
            .iter()
            .filter(|(k, v)| other.slots.get(k) == Some(v))
            .map(|(k, v)| (*k, *v))
            .collect();
        State {
            regs,
            slots,
            maybe_zero: self.maybe_zero | other.maybe_zero,
        }
    }

    fn set(&mut self, r: u8, v: Option<Val>, zero: bool) {
        if let Some(slot) = self.regs.get_mut(r as usize) {
            *slot = v;
        }
        if zero {
            self.maybe_zero |= 1 << r;
        } else {
            self.maybe_zero &= !(1 << r);
        }
    }
}

fn class(n: RawInsn) -> u8 {
    n.code & 0x07
}

fn is_jmp_class(n: RawInsn) -> bool {
    matches!(class(n), BPF_JMP | BPF_JMP32)
}

fn jmp_op(n: RawInsn) -> u8 {
    n.code & 0xf0
}

fn is_call(n: RawInsn) -> bool {
    n.code == BPF_JMP | BPF_CALL
}

fn is_helper_call(n: RawInsn, id: i32) -> bool {
    is_call(n) && n.src == 0 && n.imm == id
}

fn is_cond_jump(n: RawInsn) -> bool {
    is_jmp_class(n) && !matches!(jmp_op(n), BPF_JA | BPF_CALL | BPF_EXIT)
}

fn is_imm_jump(n: RawInsn) -> bool {
    is_cond_jump(n) && n.code & BPF_X == 0
}

fn is_eq_test(n: RawInsn) -> bool {
    is_imm_jump(n) && matches!(jmp_op(n), BPF_JEQ | BPF_JNE)
}

fn is_ordered_test(n: RawInsn) -> bool {
    is_cond_jump(n)
        && matches!(
            jmp_op(n),
            BPF_JGT | BPF_JGE | BPF_JLT | BPF_JLE | BPF_JSGT | BPF_JSGE | BPF_JSLT | BPF_JSLE
        )
}

fn is_unsigned_ordered(n: RawInsn) -> bool {
    is_cond_jump(n) && matches!(jmp_op(n), BPF_JGT | BPF_JGE | BPF_JLT | BPF_JLE)
}

fn is_alu(n: RawInsn) -> bool {
    matches!(class(n), BPF_ALU | BPF_ALU64)
}

/// Slot indices control can go to after slot `i`.
fn successors(insns: &[RawInsn], i: usize) -> Vec<usize> {
    let n = insns[i];
    let rel = |d: i64| -> Option<usize> {
        let t = i as i64 + 1 + d;
        (0..insns.len() as i64).contains(&t).then_some(t as usize)
    };
    if n.code == LD_IMM64 {
        return rel(1).into_iter().collect();
    }
    if !is_jmp_class(n) {
        return rel(0).into_iter().collect();
    }
    match jmp_op(n) {
        BPF_EXIT => vec![],
        BPF_CALL => rel(0).into_iter().collect(),
        BPF_JA if class(n) == BPF_JMP32 => rel(n.imm as i64).into_iter().collect(), // gotol
        BPF_JA => rel(n.off as i64).into_iter().collect(),
        _ => rel(0).into_iter().chain(rel(n.off as i64)).collect(),
    }
}

fn transfer(st: &State, n: RawInsn) -> State {
    let mut s = st.clone();
    let reg = |r: u8| st.regs.get(r as usize).copied().flatten();
    match class(n) {
        BPF_LD => s.set(n.dst, None, false),
        BPF_LDX => {
            let v = match reg(n.src) {
                Some(Val::Ctx) if n.off == 0 => Some(Val::Op),
                Some(Val::Ctx) if n.off == 192 && n.code & 0x18 == BPF_DW => Some(Val::Pkt),
                Some(Val::Fp(base)) => st.slots.get(&(base + n.off as i32)).copied(),
                Some(Val::MapPtr) => Some(Val::MapLoaded),
                _ => None,
            };
            s.set(n.dst, v, false);
        }
        BPF_ST => {
            if let Some(Val::Fp(base)) = reg(n.dst) {
                s.slots.remove(&(base + n.off as i32));
            }
        }
        BPF_STX => {
            if let Some(Val::Fp(base)) = reg(n.dst) {
                let full = matches!(n.code & 0x18, BPF_W | BPF_DW) && n.code & 0xe0 == BPF_MEM;
                match reg(n.src).filter(|_| full) {
                    Some(v) => s.slots.insert(base + n.off as i32, v),
                    None => s.slots.remove(&(base + n.off as i32)),
                };
            }
            if n.code & 0xe0 == BPF_ATOMIC && n.imm & 1 != 0 {
                s.set(n.src, None, false); // BPF_FETCH writes the old value back
            }
        }
        BPF_ALU | BPF_ALU64 => {
            let wide = class(n) == BPF_ALU64;
            let op = n.code & 0xf0;
            let x = n.code & BPF_X != 0;
            match op {
                BPF_MOV if x && n.off == 0 => {
                    // A 32-bit move keeps the op (a u32) but not a pointer.
                    let v = reg(n.src).filter(|v| wide || matches!(v, Val::Op | Val::MapLoaded));
                    let zero = st.maybe_zero & (1 << n.src) != 0;
                    s.set(n.dst, v, zero);
                }
                BPF_MOV if !x => s.set(n.dst, None, n.imm == 0),
                BPF_ADD if wide => {
                    let v = match (reg(n.dst), x) {
                        (Some(Val::Fp(o)), false) => Some(Val::Fp(o + n.imm)),
                        (Some(Val::Pkt), _) => Some(Val::Pkt),
                        _ => None,
                    };
                    s.set(n.dst, v, false);
                }
                _ => s.set(n.dst, None, false),
            }
        }
        BPF_JMP | BPF_JMP32 if is_call(n) => {
            for r in 0..=5 {
                s.set(r, None, false);
            }
            if n.src == 0 && n.imm == 1 {
                s.set(0, Some(Val::MapPtr), false);
            }
        }
        _ => {}
    }
    s
}

/// The state before each slot of one function (None: unreachable, or the second half of an
/// ld_imm64).
struct Flow {
    before: Vec<Option<State>>,
}

impl Flow {
    fn run(insns: &[RawInsn], entry: State) -> Flow {
        let mut before: Vec<Option<State>> = vec![None; insns.len()];
        if insns.is_empty() {
            return Flow { before };
        }
        before[0] = Some(entry);
        let mut work = vec![0usize];
        while let Some(i) = work.pop() {
            let out = transfer(
                before[i].as_ref().expect("queued slots have a state"),
                insns[i],
            );
            for t in successors(insns, i) {
                let merged = match &before[t] {
                    None => out.clone(),
                    Some(old) => old.join(&out),
                };
                if before[t].as_ref() != Some(&merged) {
                    before[t] = Some(merged);
                    work.push(t);
                }
            }
        }
        Flow { before }
    }
}

/// A function under test, with its data flow computed from the standard entry state (r1 = ctx
/// for programs; for subprograms the caller decides, see [`Subject::callee`]).
struct Subject<'a> {
    obj: &'a ObjFile,
    func: &'a Func,
    insns: &'a [RawInsn],
    flow: Flow,
}

impl<'a> Subject<'a> {
    fn new(obj: &'a ObjFile, func: &'a Func) -> Subject<'a> {
        Subject::with_entry(obj, func, State::entry(&[(1, Val::Ctx)]))
    }

    fn with_entry(obj: &'a ObjFile, func: &'a Func, entry: State) -> Subject<'a> {
        let flow = Flow::run(&func.insns, entry);
        Subject {
            obj,
            func,
            insns: &func.insns,
            flow,
        }
    }

    fn state(&self, i: usize) -> Option<&State> {
        self.flow.before.get(i)?.as_ref()
    }

    /// What register `r` holds just before slot `i`.
    fn reg(&self, i: usize, r: u8) -> Option<Val> {
        self.state(i)?.regs.get(r as usize).copied().flatten()
    }

    fn is_op(&self, i: usize, r: u8) -> bool {
        self.reg(i, r) == Some(Val::Op)
    }

    /// Conditional jump at `i` comparing the op with an immediate.
    fn op_imm_test(&self, i: usize) -> bool {
        is_imm_jump(self.insns[i]) && self.is_op(i, self.insns[i].dst)
    }

    fn op_eq_test(&self, i: usize) -> bool {
        is_eq_test(self.insns[i]) && self.is_op(i, self.insns[i].dst)
    }

    fn slots(&self) -> std::ops::Range<usize> {
        0..self.insns.len()
    }

    /// BPF-to-BPF calls with the op in an argument register: (slot, callee, argument register).
    fn calls_with_op(&self) -> Vec<(usize, &'a Func, u8)> {
        let mut v = Vec::new();
        for i in self.slots() {
            let Some(callee) = self.obj.call_target(self.func, i) else {
                continue;
            };
            for r in 1..=5 {
                if self.is_op(i, r) {
                    v.push((i, callee, r));
                }
            }
        }
        v
    }

    /// The callee of a call at `slot`, analysed with what the caller passes in r1..r5.
    fn callee(&self, slot: usize, callee: &'a Func) -> Subject<'a> {
        let args: Vec<(u8, Val)> = (1..=5)
            .filter_map(|r| match self.reg(slot, r) {
                Some(v @ (Val::Ctx | Val::Op)) => Some((r, v)),
                _ => None,
            })
            .collect();
        Subject::with_entry(self.obj, callee, State::entry(&args))
    }

    /// The relocation target of the ld_imm64 at `i`, if any.
    fn reloc(&self, i: usize) -> Option<&objsyms::RelocTarget> {
        self.func.relocs.get(&i)
    }
}

// ================================================================================================
// Matchers
// ================================================================================================

/// ≥3 consecutive `jeq`/`jne` of the op against distinct immediates, and no ordered compare of
/// the op anywhere (the leaves of a binary tree are short chains too; this is the whole dispatch).
fn jump_chain(s: &Subject) -> Option<String> {
    if s.slots()
        .any(|i| is_ordered_test(s.insns[i]) && s.is_op(i, s.insns[i].dst))
    {
        return None;
    }
    let mut i = 0;
    while i < s.insns.len() {
        let mut j = i;
        let mut imms = Vec::new();
        while j < s.insns.len() && s.op_eq_test(j) && !imms.contains(&s.insns[j].imm) {
            imms.push(s.insns[j].imm);
            j += 1;
        }
        if imms.len() >= 3 {
            return Some(format!("slots {i}..{j} test op against {imms:?}"));
        }
        i = j.max(i + 1);
    }
    None
}

/// Roots of binary search trees: an ordered compare of the op whose fall-through and target both
/// go on to test the op for equality.
fn tree_roots(s: &Subject) -> Vec<usize> {
    s.slots()
        .filter(|&i| {
            let n = s.insns[i];
            if !(is_ordered_test(n) && n.code & BPF_X == 0 && s.is_op(i, n.dst)) {
                return false;
            }
            let t = i as i64 + 1 + n.off as i64;
            let sides = [i + 1, t as usize];
            t >= 0
                && sides
                    .iter()
                    .all(|&k| k < s.insns.len() && (s.op_eq_test(k) || s.op_imm_test(k)))
        })
        .collect()
}

fn binary_tree(s: &Subject) -> Option<String> {
    let roots = tree_roots(s);
    let i = *roots.first()?;
    Some(format!(
        "root at slot {i}: op {} {}",
        jmp_name(s.insns[i]),
        s.insns[i].imm
    ))
}

/// Two tree roots, both after a conditional jump on a value loaded from a map value.
fn two_trees_by_map_value(s: &Subject) -> Option<String> {
    let roots = tree_roots(s);
    if roots.len() < 2 {
        return None;
    }
    let sel = s
        .slots()
        .take_while(|&i| i < roots[0])
        .find(|&i| is_cond_jump(s.insns[i]) && s.reg(i, s.insns[i].dst) == Some(Val::MapLoaded))?;
    Some(format!(
        "map-loaded selector at slot {sel}, tree roots at {roots:?}"
    ))
}

/// `rX = op; rX += -K; if rX <(=) N` (unsigned), or the register form of the compare.
fn range_check(s: &Subject) -> Option<String> {
    s.slots().find_map(|i| {
        let n = s.insns[i];
        let add = is_alu(n) && n.code & 0xf0 == BPF_ADD && n.code & BPF_X == 0 && n.imm < 0;
        if !add || !s.is_op(i, n.dst) {
            return None;
        }
        let (j, m) = (i + 1, *s.insns.get(i + 1)?);
        let on_it = if m.code & BPF_X == 0 {
            m.dst == n.dst
        } else {
            m.dst == n.dst || m.src == n.dst
        };
        (is_unsigned_ordered(m) && on_it).then(|| {
            format!(
                "slot {i}: op += {}; slot {j}: unsigned {} ",
                n.imm,
                jmp_name(m)
            )
        })
    })
}

/// `rX = op; rX &= -2; if rX ==/!= K` with K even.
fn and_merge(s: &Subject) -> Option<String> {
    s.slots().find_map(|i| {
        let n = s.insns[i];
        let and = is_alu(n) && n.code & 0xf0 == BPF_AND && n.code & BPF_X == 0 && n.imm == -2;
        if !and || !s.is_op(i, n.dst) {
            return None;
        }
        let m = *s.insns.get(i + 1)?;
        (is_eq_test(m) && m.dst == n.dst && m.imm % 2 == 0)
            .then(|| format!("slot {i}: op & ~1; slot {}: == {}", i + 1, m.imm))
    })
}

/// `if op > B` (B < 64) ... `rY = 1; rY <<= op; rY &= mask` (or `jset`).
fn bit_test(s: &Subject) -> Option<String> {
    s.slots().find_map(|i| {
        let n = s.insns[i];
        let shl = is_alu(n) && n.code & 0xf0 == BPF_LSH && n.code & BPF_X != 0 && s.is_op(i, n.src);
        if !shl || i == 0 {
            return None;
        }
        let one = s.insns[i - 1];
        if !(is_alu(one)
            && one.code & 0xf0 == BPF_MOV
            && one.code & BPF_X == 0
            && one.imm == 1
            && one.dst == n.dst)
        {
            return None;
        }
        let m = *s.insns.get(i + 1)?;
        let masked =
            (is_alu(m) && m.code & 0xf0 == BPF_AND && m.code & BPF_X == 0 && m.dst == n.dst)
                || (is_imm_jump(m) && jmp_op(m) == BPF_JSET && m.dst == n.dst);
        if !masked {
            return None;
        }
        let bound = (0..i).find(|&b| {
            let c = s.insns[b];
            is_ordered_test(c)
                && c.code & BPF_X == 0
                && (0..64).contains(&c.imm)
                && s.is_op(b, c.dst)
        })?;
        Some(format!(
            "bound at slot {bound} (op {} {}), 1 << op at {i}, mask {:#x}",
            jmp_name(s.insns[bound]),
            s.insns[bound].imm,
            m.imm
        ))
    })
}

/// Op compared against ≥3 distinct values, and at least one new value is tested only after an
/// unrelated condition or a call following the previous op test (an if/else chain, not a switch).
fn if_else_chain(s: &Subject) -> Option<String> {
    let tests: Vec<usize> = s.slots().filter(|&i| s.op_imm_test(i)).collect();
    let mut seen: Vec<i32> = Vec::new();
    let mut interleaved = None;
    for (k, &i) in tests.iter().enumerate() {
        let imm = s.insns[i].imm;
        if k > 0 && !seen.contains(&imm) {
            let prev = tests[k - 1];
            let between = (prev + 1..i).find(|&j| {
                let n = s.insns[j];
                is_call(n) || (is_cond_jump(n) && !s.is_op(j, n.dst))
            });
            if let (Some(b), None) = (between, interleaved) {
                interleaved = Some((prev, b, i));
            }
        }
        if !seen.contains(&imm) {
            seen.push(imm);
        }
    }
    let (prev, b, i) = interleaved?;
    (seen.len() >= 3).then(|| {
        format!("op values {seen:?}; op test at {prev}, other condition at {b}, op test at {i}")
    })
}

/// A test of the op in r6..r9 after a helper call during which that register already held it.
fn callee_saved_across_call(s: &Subject) -> Option<String> {
    s.slots().find_map(|j| {
        let r = s.insns[j].dst;
        if !(s.op_imm_test(j) && (6..=9).contains(&r)) {
            return None;
        }
        let c = (0..j)
            .rev()
            .find(|&c| is_call(s.insns[c]) && s.is_op(c, r))?;
        let redefined = (c + 1..j).any(|k| writes_reg(s.insns[k], r));
        (!redefined).then(|| format!("r{r} holds op across the call at {c}, tested at {j}"))
    })
}

fn writes_reg(n: RawInsn, r: u8) -> bool {
    match class(n) {
        BPF_LD | BPF_LDX | BPF_ALU | BPF_ALU64 => n.dst == r,
        BPF_STX => n.code & 0xe0 == BPF_ATOMIC && n.imm & 1 != 0 && n.src == r,
        BPF_JMP | BPF_JMP32 => is_call(n) && r <= 5,
        _ => false,
    }
}

/// `*(r10 - N) = op` ... `rY = *(r10 - N)` while the slot still holds the op, then rY is tested.
fn spill_reload(s: &Subject) -> Option<String> {
    s.slots().find_map(|j| {
        let n = s.insns[j];
        if class(n) != BPF_LDX {
            return None;
        }
        let Some(Val::Fp(base)) = s.reg(j, n.src) else {
            return None;
        };
        let off = base + n.off as i32;
        if s.state(j)?.slots.get(&off) != Some(&Val::Op) {
            return None;
        }
        let store = (0..j).find(|&i| {
            let m = s.insns[i];
            class(m) == BPF_STX
                && s.reg(i, m.dst)
                    .is_some_and(|v| matches!(v, Val::Fp(b) if b + m.off as i32 == off))
                && s.is_op(i, m.src)
        })?;
        let test = (j + 1..(j + 4).min(s.insns.len()))
            .find(|&k| s.op_imm_test(k) && s.insns[k].dst == n.dst)?;
        Some(format!(
            "op stored to fp{off} at {store}, reloaded at {j}, tested at {test}"
        ))
    })
}

/// A map helper (lookup/update/delete) whose key argument points at a stack slot holding the op.
fn op_as_map_key(s: &Subject) -> Option<String> {
    s.slots().find_map(|i| {
        let n = s.insns[i];
        if !(is_call(n) && n.src == 0 && matches!(n.imm, 1..=3)) {
            return None;
        }
        let Some(Val::Fp(off)) = s.reg(i, 2) else {
            return None;
        };
        (s.state(i)?.slots.get(&off) == Some(&Val::Op))
            .then(|| format!("helper {} at {i} keyed by op at fp{off}", n.imm))
    })
}

fn op_to_subprog(s: &Subject, global: bool) -> Option<String> {
    s.calls_with_op()
        .into_iter()
        .find(|(_, callee, _)| callee.global == global && callee.section == ".text")
        .map(|(i, callee, r)| format!("call {} at {i} with op in r{r}", callee.name))
}

fn op_to_static_subprog(s: &Subject) -> Option<String> {
    op_to_subprog(s, false)
}

fn op_to_global_func(s: &Subject) -> Option<String> {
    op_to_subprog(s, true)
}

fn op_retested_in_callee(s: &Subject) -> Option<String> {
    s.calls_with_op().into_iter().find_map(|(i, callee, r)| {
        let c = s.callee(i, callee);
        let t = c.slots().find(|&k| c.op_imm_test(k))?;
        Some(format!(
            "{} (called at {i}, op in r{r}) tests op at its slot {t}: {} {}",
            callee.name,
            jmp_name(c.insns[t]),
            c.insns[t].imm
        ))
    })
}

/// One subprogram called from ≥2 call sites of the function.
fn shared_subprog(s: &Subject) -> Option<String> {
    let mut sites: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for i in s.slots() {
        if let Some(callee) = s.obj.call_target(s.func, i) {
            sites.entry(callee.name.as_str()).or_default().push(i);
        }
    }
    sites
        .into_iter()
        .find(|(_, v)| v.len() >= 2)
        .map(|(name, v)| format!("{name} called at {v:?}"))
}

/// An `exit` reached with r0 possibly set by `mov r0, 0` (directly or through a copy).
fn returns_zero(s: &Subject) -> Option<String> {
    s.slots()
        .find(|&i| {
            s.insns[i].code == BPF_JMP | BPF_EXIT
                && s.state(i).is_some_and(|st| st.maybe_zero & 1 != 0)
        })
        .map(|i| format!("exit at {i} may return 0"))
}

/// Stores to ctx->reply (offset 4) at ≥2 places.
fn reply_written_several(s: &Subject) -> Option<String> {
    let sites: Vec<usize> = s
        .slots()
        .filter(|&i| {
            let n = s.insns[i];
            matches!(class(n), BPF_ST | BPF_STX)
                && n.code & 0x18 == BPF_W
                && n.off == 4
                && s.reg(i, n.dst) == Some(Val::Ctx)
        })
        .collect();
    (sites.len() >= 2).then(|| format!("reply stored at {sites:?}"))
}

/// A conditional back edge that closes a cycle (its target reaches it again): a loop the verifier
/// has to bound. Clang also jumps backwards to shared tails; those are not cycles.
fn bounded_loop(s: &Subject) -> Option<String> {
    s.slots().find_map(|i| {
        let n = s.insns[i];
        if !is_cond_jump(n) || n.off >= 0 {
            return None;
        }
        let head = (i as i64 + 1 + n.off as i64) as usize;
        reaches(s.insns, head, i).then(|| format!("loop {head}..={i}"))
    })
}

fn reaches(insns: &[RawInsn], from: usize, to: usize) -> bool {
    let mut seen = vec![false; insns.len()];
    let mut work = vec![from];
    while let Some(i) = work.pop() {
        if i == to {
            return true;
        }
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        work.extend(successors(insns, i));
    }
    false
}

/// An ld_imm64 relocated against a symbol in `section`, then a memory access through it.
fn global_in(s: &Subject, section: &str, name: Option<&str>) -> Option<String> {
    s.slots().find_map(|i| {
        let n = s.insns[i];
        if n.code != LD_IMM64 {
            return None;
        }
        let r = s.reloc(i)?;
        let section_ok = match section {
            "" => r.is_undefined(),
            sec => r.section.as_deref() == Some(sec),
        };
        if !section_ok || name.is_some_and(|want| r.symbol != want) {
            return None;
        }
        let used = (i + 2..(i + 6).min(s.insns.len())).find(|&k| {
            let m = s.insns[k];
            (class(m) == BPF_LDX && m.src == n.dst)
                || (matches!(class(m), BPF_ST | BPF_STX) && m.dst == n.dst)
        })?;
        Some(format!(
            "{} ({}) at {i}, accessed at {used}",
            r.symbol,
            r.section.as_deref().unwrap_or("extern")
        ))
    })
}

fn global_bss(s: &Subject) -> Option<String> {
    global_in(s, ".bss", None)
}

fn global_data(s: &Subject) -> Option<String> {
    global_in(s, ".data", None)
}

fn global_rodata(s: &Subject) -> Option<String> {
    global_in(s, ".rodata", Some("default_rto_ms"))
}

fn kconfig_hz(s: &Subject) -> Option<String> {
    global_in(s, "", Some("CONFIG_HZ"))
}

fn helper_with_ctx(s: &Subject, id: i32) -> Option<usize> {
    s.slots()
        .find(|&i| is_helper_call(s.insns[i], id) && s.reg(i, 1) == Some(Val::Ctx))
}

fn cb_flags_set_helper(s: &Subject) -> Option<String> {
    helper_with_ctx(s, 59).map(|i| format!("bpf_sock_ops_cb_flags_set at {i}"))
}

fn hdr_opt_helpers(s: &Subject) -> Option<String> {
    let load = helper_with_ctx(s, 142)?;
    let store = helper_with_ctx(s, 143)?;
    let reserve = helper_with_ctx(s, 144)?;
    let pkt = s
        .slots()
        .find(|&i| class(s.insns[i]) == BPF_LDX && s.reg(i, s.insns[i].src) == Some(Val::Pkt))?;
    Some(format!(
        "load_hdr_opt at {load}, store_hdr_opt at {store}, reserve_hdr_opt at {reserve}, packet read at {pkt}"
    ))
}

fn sock_hash_update(s: &Subject) -> Option<String> {
    helper_with_ctx(s, 70).map(|i| format!("bpf_sock_hash_update at {i}"))
}

fn sk_msg_redirect(s: &Subject) -> Option<String> {
    (s.func.section == "sk_msg").then_some(())?;
    s.slots()
        .find(|&i| is_helper_call(s.insns[i], 71))
        .map(|i| format!("bpf_msg_redirect_hash at {i} in section sk_msg"))
}

fn isa_ldsx(s: &Subject) -> Option<String> {
    s.slots()
        .find(|&i| class(s.insns[i]) == BPF_LDX && s.insns[i].code & 0xe0 == BPF_MEMSX)
        .map(|i| format!("ldsx at {i}"))
}

fn isa_movsx(s: &Subject) -> Option<String> {
    s.slots()
        .find(|&i| {
            let n = s.insns[i];
            is_alu(n)
                && n.code & 0xf0 == BPF_MOV
                && n.code & BPF_X != 0
                && matches!(n.off, 8 | 16 | 32)
        })
        .map(|i| format!("movsx at {i} (from s{})", s.insns[i].off))
}

fn isa_bswap(s: &Subject) -> Option<String> {
    s.slots()
        .find(|&i| s.insns[i].code == BPF_ALU64 | BPF_END)
        .map(|i| format!("bswap{} at {i}", s.insns[i].imm))
}

fn isa_sdiv_smod(s: &Subject) -> Option<String> {
    let signed = |op: u8| {
        s.slots()
            .find(|&i| is_alu(s.insns[i]) && s.insns[i].code & 0xf0 == op && s.insns[i].off == 1)
    };
    Some(format!(
        "sdiv at {}, smod at {}",
        signed(BPF_DIV)?,
        signed(BPF_MOD)?
    ))
}

fn isa_gotol(s: &Subject) -> Option<String> {
    s.slots()
        .find(|&i| {
            s.insns[i].code == BPF_JMP32 | BPF_JA && !(-32768..32768).contains(&s.insns[i].imm)
        })
        .map(|i| format!("gotol {:+} at {i}", s.insns[i].imm))
}

// ------------------------------------------------------------------------------------------------
// Matchers for fixtures 10-18
// ------------------------------------------------------------------------------------------------

/// Loads reachable from slot `from` through a pointer that was in `reg` there, following moves
/// and stopping where every copy is overwritten: (slot, offset) of each load.
fn loads_through(s: &Subject, from: usize, reg: u8) -> Vec<(usize, i16)> {
    let mut found = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut work = vec![(from, 1u16 << reg)];
    while let Some((k, mut held)) = work.pop() {
        if held == 0 || k >= s.insns.len() || !seen.insert((k, held)) {
            continue;
        }
        let n = s.insns[k];
        if class(n) == BPF_LDX && held & (1 << n.src) != 0 && !found.iter().any(|&(f, _)| f == k) {
            found.push((k, n.off));
        }
        let copy = class(n) == BPF_ALU64
            && n.code & 0xf0 == BPF_MOV
            && n.code & BPF_X != 0
            && n.off == 0
            && held & (1 << n.src) != 0;
        for r in 0..=10u8 {
            if writes_reg(n, r) {
                held &= !(1 << r);
            }
        }
        if copy {
            held |= 1 << n.dst;
        }
        for t in successors(s.insns, k) {
            work.push((t, held));
        }
    }
    found.sort();
    found
}

/// `bpf_skc_to_tcp_sock` (helper 137), then ≥2 field loads through the pointer it returns. With
/// vmlinux.h these are CO-RE accesses (`preserve_access_index`): libbpf relocates their offsets.
fn core_reads_via_skc_to_tcp_sock(s: &Subject) -> Option<String> {
    s.slots().find_map(|i| {
        if !is_helper_call(s.insns[i], 137) {
            return None;
        }
        let loads = loads_through(s, i + 1, 0);
        (loads.len() >= 2).then(|| format!("skc_to_tcp_sock at {i}, loads through it at {loads:?}"))
    })
}

/// A 4-byte store to ctx offset 164 (`sk_txhash`, the only writable ctx word besides `reply`).
fn sk_txhash_written(s: &Subject) -> Option<String> {
    s.slots()
        .find(|&i| {
            let n = s.insns[i];
            matches!(class(n), BPF_ST | BPF_STX)
                && n.code & 0xe0 == BPF_MEM
                && n.code & 0x18 == BPF_W
                && n.off == 164
                && s.reg(i, n.dst) == Some(Val::Ctx)
        })
        .map(|i| format!("ctx->sk_txhash stored at {i}"))
}

fn sk_storage_get_delete(s: &Subject) -> Option<String> {
    let get = s.slots().find(|&i| is_helper_call(s.insns[i], 107))?;
    let del = s.slots().find(|&i| is_helper_call(s.insns[i], 108))?;
    Some(format!(
        "sk_storage_get at {get}, sk_storage_delete at {del}"
    ))
}

/// A kfunc call as clang writes it: `call -1` (src_reg 1) relocated against an undefined symbol;
/// libbpf resolves it in vmlinux BTF and turns it into src_reg 2 (BPF_PSEUDO_KFUNC_CALL).
fn kfunc_call(s: &Subject, name: &str) -> Vec<usize> {
    s.slots()
        .filter(|&i| {
            let n = s.insns[i];
            is_call(n)
                && n.src == objsyms::BPF_PSEUDO_CALL
                && s.reloc(i)
                    .is_some_and(|r| r.is_undefined() && r.symbol == name)
        })
        .collect()
}

fn tx_tstamp_kfuncs(s: &Subject) -> Option<String> {
    let cast = kfunc_call(s, "bpf_cast_to_kern_ctx");
    let on_ctx = *cast.iter().find(|&&i| s.reg(i, 1) == Some(Val::Ctx))?;
    let enable = *kfunc_call(s, "bpf_sock_ops_enable_tx_tstamp").first()?;
    Some(format!(
        "bpf_cast_to_kern_ctx(ctx) at {on_ctx} ({} calls), bpf_sock_ops_enable_tx_tstamp at {enable}",
        cast.len()
    ))
}

/// The immediate last moved into `r` in the straight-line code just before slot `i`.
fn imm_before(s: &Subject, i: usize, r: u8) -> Option<i32> {
    for k in (i.saturating_sub(12)..i).rev() {
        let n = s.insns[k];
        if is_jmp_class(n) {
            return None;
        }
        if writes_reg(n, r) {
            return (is_alu(n) && n.code & 0xf0 == BPF_MOV && n.code & BPF_X == 0).then_some(n.imm);
        }
    }
    None
}

/// `bpf_setsockopt(ctx, level, optname, ...)` with both set by immediates.
fn setsockopt_with(s: &Subject, level: i32, optname: i32) -> Option<usize> {
    s.slots().find(|&i| {
        is_helper_call(s.insns[i], 49)
            && s.reg(i, 1) == Some(Val::Ctx)
            && imm_before(s, i, 2) == Some(level)
            && imm_before(s, i, 3) == Some(optname)
    })
}

fn setsockopt_sk_bpf_cb_flags(s: &Subject) -> Option<String> {
    // SOL_SOCKET = 1, SK_BPF_CB_FLAGS = 1009
    setsockopt_with(s, 1, 1009).map(|i| format!("setsockopt(SOL_SOCKET, SK_BPF_CB_FLAGS) at {i}"))
}

fn cb_flags_both_ways(s: &Subject) -> Option<String> {
    let helper = helper_with_ctx(s, 59)?;
    // SOL_TCP = 6, TCP_BPF_SOCK_OPS_CB_FLAGS = 1008
    let sockopt = setsockopt_with(s, 6, 1008)?;
    Some(format!(
        "bpf_sock_ops_cb_flags_set at {helper}, setsockopt(SOL_TCP, TCP_BPF_SOCK_OPS_CB_FLAGS) at {sockopt}"
    ))
}

/// The function an ld_imm64 at `i` points at (a callback: relocation against a code section).
fn func_pointer<'a>(s: &Subject<'a>, i: usize) -> Option<&'a Func> {
    let r = s.reloc(i)?;
    let sec = r.section_index?;
    let at = r.value + s.insns[i].imm as u32 as u64;
    s.obj
        .funcs
        .iter()
        .find(|g| g.section_index == sec && (g.start * 8) as u64 == at)
}

/// `bpf_loop(n, cb, &st, 0)` where the stack struct `st` holds the ctx pointer, and `cb` loads the
/// pointer back out of its ctx argument and reads ctx fields through it.
fn loop_callback_reads_ctx(s: &Subject) -> Option<String> {
    s.slots().find_map(|i| {
        if !is_helper_call(s.insns[i], 181) {
            return None;
        }
        let Some(Val::Fp(base)) = s.reg(i, 3) else {
            return None;
        };
        let st = s.state(i)?;
        let (&ctx_at, _) = st
            .slots
            .range(base..base + 64)
            .find(|(_, v)| **v == Val::Ctx)?;
        let set_cb = (i.saturating_sub(12)..i)
            .rev()
            .find(|&k| s.insns[k].code == LD_IMM64 && s.insns[k].dst == 2)?;
        let cb = func_pointer(s, set_cb)?;
        // The callback runs with r2 = &st in the caller's frame; its own r10 is another frame.
        let mut entry = State::entry(&[(2, Val::Fp(base))]);
        entry.regs[10] = None;
        entry.slots = st.slots.clone();
        let c = Subject::with_entry(s.obj, cb, entry);
        let read = c
            .slots()
            .find(|&k| class(c.insns[k]) == BPF_LDX && c.reg(k, c.insns[k].src) == Some(Val::Ctx))?;
        Some(format!(
            "bpf_loop at {i} with &fp{base}, ctx stored at fp{ctx_at}; callback {} reads ctx+{} at its slot {read}",
            cb.name, c.insns[read].off
        ))
    })
}

fn is_sockops_section(sec: &str) -> bool {
    sec == "sockops" || sec.starts_with("sockops/")
}

fn sockops_in_two_sections(s: &Subject) -> Option<String> {
    if !(s.func.is_program() && is_sockops_section(&s.func.section)) {
        return None;
    }
    let mut secs: Vec<&str> = s
        .obj
        .programs()
        .map(|f| f.section.as_str())
        .filter(|sec| is_sockops_section(sec))
        .collect();
    secs.sort();
    secs.dedup();
    (secs.len() >= 2).then(|| format!("sockops programs in sections {secs:?}"))
}

fn several_programs_in_section(s: &Subject) -> Option<String> {
    let same: Vec<&str> = s
        .obj
        .programs()
        .filter(|f| f.section_index == s.func.section_index)
        .map(|f| f.name.as_str())
        .collect();
    (same.len() >= 2).then(|| format!("programs {same:?} in section {}", s.func.section))
}

fn direct_callees<'a>(obj: &'a ObjFile, f: &'a Func) -> Vec<&'a str> {
    let mut v: Vec<&str> = (0..f.insns.len())
        .filter_map(|i| obj.call_target(f, i).map(|c| c.name.as_str()))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// A subprogram this program calls that another program of the object calls too.
fn subprog_shared_by_programs(s: &Subject) -> Option<String> {
    let mine = direct_callees(s.obj, s.func);
    s.obj
        .programs()
        .filter(|p| p.name != s.func.name)
        .find_map(|p| {
            let shared = direct_callees(s.obj, p)
                .into_iter()
                .find(|c| mine.contains(c))?;
            Some(format!(
                "{shared} called from {} and {}",
                s.func.name, p.name
            ))
        })
}

fn global_rodata_hz(s: &Subject) -> Option<String> {
    global_in(s, ".rodata", Some("hz"))
}

/// Reads the object's ELF again for facts outside any function (sections, data relocations).
fn with_elf<T>(s: &Subject, f: impl FnOnce(&object::File<'_>) -> T) -> T {
    let bytes = std::fs::read(&s.obj.path).unwrap_or_else(|e| panic!("{}: {e}", s.obj.path));
    let file = object::File::parse(&*bytes).unwrap_or_else(|e| panic!("{}: {e}", s.obj.path));
    f(&file)
}

fn section_sizes(s: &Subject) -> Vec<(String, u64)> {
    use object::{Object, ObjectSection};
    with_elf(s, |file| {
        file.sections()
            .map(|sec| (sec.name().unwrap_or("?").to_string(), sec.size()))
            .collect()
    })
}

/// Programs a map's static initialiser points at: relocations inside the map's bytes in `.maps`
/// against function symbols (libbpf fills PROG_ARRAY slots from these).
fn map_initialiser_programs(s: &Subject, map: &str) -> Vec<String> {
    use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget, SymbolKind};
    with_elf(s, |file| {
        let Some(sym) = file.symbols().find(|x| x.name() == Ok(map)) else {
            return Vec::new();
        };
        let Some(sec) = file.section_by_name(".maps") else {
            return Vec::new();
        };
        let (lo, hi) = (sym.address(), sym.address() + sym.size());
        sec.relocations()
            .filter(|(off, _)| (lo..hi).contains(off))
            .filter_map(|(_, rel)| match rel.target() {
                RelocationTarget::Symbol(i) => {
                    let t = file.symbol_by_index(i).ok()?;
                    (t.kind() == SymbolKind::Text).then(|| t.name().unwrap_or("?").to_string())
                }
                _ => None,
            })
            .collect()
    })
}

/// `bpf_tail_call(ctx, &map, ...)` (helper 12) where the map's initialiser names ≥2 programs.
fn tail_call_static_prog_array(s: &Subject) -> Option<String> {
    let call = helper_with_ctx(s, 12)?;
    let set_map = (call.saturating_sub(12)..call)
        .rev()
        .find(|&k| s.insns[k].code == LD_IMM64 && s.insns[k].dst == 2)?;
    let map = &s.reloc(set_map)?.symbol;
    let progs = map_initialiser_programs(s, map);
    (progs.len() >= 2)
        .then(|| format!("tail call at {call} through {map}, initialised with {progs:?}"))
}

fn no_btf(s: &Subject) -> Option<String> {
    let secs = section_sizes(s);
    let has = |name: &str| secs.iter().any(|(n, _)| n == name);
    (!has(".BTF") && !has(".BTF.ext") && has(&s.func.section))
        .then(|| format!("{} sections, none of them .BTF or .BTF.ext", secs.len()))
}

/// A `maps` section of 20-byte `struct bpf_map_def`s that the program references, and a 4-byte
/// `version` section.
fn legacy_maps_and_version(s: &Subject) -> Option<String> {
    let secs = section_sizes(s);
    let size = |name: &str| secs.iter().find(|(n, _)| n == name).map(|(_, z)| *z);
    let maps = size("maps").filter(|z| *z > 0 && z % 20 == 0)?;
    size("version").filter(|z| *z == 4)?;
    let used = s.slots().find(|&i| {
        s.insns[i].code == LD_IMM64
            && s.reloc(i)
                .is_some_and(|r| r.section.as_deref() == Some("maps"))
    })?;
    Some(format!(
        "maps: {} bpf_map_def, first used at {used} ({}); version: 4 bytes",
        maps / 20,
        s.reloc(used)?.symbol
    ))
}

/// `rX = *(u64 *)(ctx + 184)` (`ctx->sk`), then ≥3 loads through it.
fn bpf_sock_reads(s: &Subject) -> Option<String> {
    s.slots().find_map(|i| {
        let n = s.insns[i];
        if !(class(n) == BPF_LDX
            && n.code & 0x18 == BPF_DW
            && n.off == 184
            && s.reg(i, n.src) == Some(Val::Ctx))
        {
            return None;
        }
        let loads = loads_through(s, i + 1, n.dst);
        (loads.len() >= 3).then(|| format!("ctx->sk at {i}, bpf_sock loads {loads:?}"))
    })
}

fn jmp_name(n: RawInsn) -> &'static str {
    match jmp_op(n) {
        BPF_JEQ => "==",
        BPF_JNE => "!=",
        BPF_JGT => ">",
        BPF_JGE => ">=",
        BPF_JLT => "<",
        BPF_JLE => "<=",
        BPF_JSGT => "s>",
        BPF_JSGE => "s>=",
        BPF_JSLT => "s<",
        BPF_JSLE => "s<=",
        BPF_JSET => "&",
        _ => "?",
    }
}
