//! The split form of every fixture: structure, op reads, instruction counts, clones, unsplit
//! inputs, load-time constants, and (kernel-gated) verification and vtable filling.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use opsplit::analysis::Module;
use opsplit::analysis::findings::FindingKind;
use opsplit::analysis::interp::{self, Event};
use opsplit::obj::{MapValue, Object, ProgramType, RelocKind};
use opsplit::split::{self, Report};

/// Main builds and variants (not the per-op reference builds).
fn inputs() -> Vec<PathBuf> {
    common::fixture_objects()
        .into_iter()
        .filter(|p| !common::fixture_name(p).starts_with("ref/"))
        .collect()
}

fn convert(p: &PathBuf) -> (Vec<u8>, Report, Object) {
    let bytes = std::fs::read(p).unwrap();
    let (out, rep) =
        split::convert(&bytes).unwrap_or_else(|e| panic!("{}: {e}", common::fixture_name(p)));
    let obj = Object::parse(&out).unwrap_or_else(|e| {
        panic!(
            "{}: output does not read back: {e}",
            common::fixture_name(p)
        )
    });
    (out, rep, obj)
}

#[test]
fn every_output_has_dispatcher_per_op_programs_and_vtable() {
    let mut split_programs = 0;
    for p in inputs() {
        let name = common::fixture_name(&p);
        let input = Object::parse(&std::fs::read(&p).unwrap()).unwrap();
        let (_, rep, out) = convert(&p);
        // Every input program is still there, with its section and type.
        for ip in &input.programs {
            let f = &input.functions[ip.function];
            let op = out
                .program_by_name(&f.name)
                .unwrap_or_else(|| panic!("{name}: program `{}` is gone", f.name));
            assert_eq!(op.section_name, ip.section_name, "{name}: {}", f.name);
            assert_eq!(op.prog_type, ip.prog_type, "{name}: {}", f.name);
        }
        for pr in rep.programs.iter().filter(|p| p.status == "split") {
            split_programs += 1;
            let vt = out
                .map_by_name(pr.vtable.as_deref().unwrap())
                .unwrap_or_else(|| panic!("{name}: no vtable for {}", pr.name));
            assert_eq!(vt.def.map_type, 3, "{name}: vtable is a PROG_ARRAY");
            let own: BTreeSet<u8> = pr.ops.iter().map(|o| o.op).collect();
            let slots: BTreeSet<u8> = vt
                .values
                .iter()
                .map(|v| match v {
                    MapValue::Program { index, function } => {
                        let o = pr.ops.iter().find(|o| u32::from(o.op) == *index).unwrap();
                        assert_eq!(&o.program, function, "{name}: slot {index}");
                        *index as u8
                    }
                    MapValue::Map { .. } => panic!("{name}: map in a PROG_ARRAY"),
                })
                .collect();
            assert_eq!(
                slots, own,
                "{name}: vtable slots are the ops with their own program"
            );
            assert!(
                own.iter().all(|o| !pr.default_ops.contains(o)),
                "{name}: an op is both split and default"
            );
            for o in &pr.ops {
                let prog = out
                    .program_by_name(&o.program)
                    .unwrap_or_else(|| panic!("{name}: no program {}", o.program));
                assert_eq!(prog.prog_type, ProgramType::SockOps);
                assert_eq!(prog.section_name, pr.section);
            }
            // The dispatcher tail-calls through the vtable in its main function.
            let d = out.function_by_name(&pr.name).unwrap();
            assert!(
                d.relocations.iter().any(|r| r.kind
                    == RelocKind::Map {
                        map: vt.name.clone()
                    }),
                "{name}: dispatcher does not load its vtable"
            );
            assert!(
                d.insns.iter().any(|i| i.insn.helper_id() == Some(12)),
                "{name}: no tail call in the dispatcher's main function"
            );
        }
    }
    assert!(split_programs >= 20, "only {split_programs} programs split");
}

/// Independently of the pass: the op analysis run on the output finds no read of `ctx->op` in a
/// per-op program except the guard's (slot 0 of its main function), unless the op report has a
/// finding about a lost op.
#[test]
fn per_op_programs_read_the_op_only_in_their_guard() {
    let mut checked = 0;
    for p in inputs() {
        let name = common::fixture_name(&p);
        let (_, rep, out) = convert(&p);
        let m = Module::from_object(&out).unwrap();
        for pr in rep.programs.iter().filter(|p| p.status == "split") {
            let progs: BTreeSet<&str> = pr.ops.iter().map(|o| o.program.as_str()).collect();
            for prog in progs {
                let fid = out.functions.iter().position(|f| f.name == prog).unwrap();
                let it = interp::run(&m, fid).unwrap();
                let reads: Vec<_> = it
                    .events
                    .keys()
                    .filter_map(|e| match e {
                        Event::CtxRead { field: "op", loc } => Some(*loc),
                        _ => None,
                    })
                    .filter(|l| !(l.func == fid && l.slot == 0))
                    .collect();
                let explained = pr.ops.iter().filter(|o| o.program == prog).any(|o| {
                    o.findings.iter().any(|f| {
                        matches!(
                            f.kind,
                            FindingKind::OpLost | FindingKind::CtxEscape | FindingKind::KernCtx
                        )
                    })
                });
                assert!(
                    reads.is_empty() || explained,
                    "{name}: {prog} reads ctx->op at {reads:?} without a finding"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 50, "only {checked} per-op programs checked");
}

/// The report's count is recomputed from the output object (the per-op program without its
/// guard, plus every subprogram it calls), and is within the analysis' reachable count.
#[test]
fn per_op_counts_are_within_the_analysis_reachable_count() {
    for p in inputs() {
        let name = common::fixture_name(&p);
        let (_, rep, out) = convert(&p);
        let m = Module::from_object(&out).unwrap();
        for pr in rep.programs.iter().filter(|p| p.status == "split") {
            for o in &pr.ops {
                let fid = out
                    .functions
                    .iter()
                    .position(|f| f.name == o.program)
                    .unwrap();
                let total: usize = opsplit::split::clone::call_order(&m, fid)
                    .iter()
                    .map(|&f| m.funcs[f].insns.len())
                    .sum();
                assert_eq!(
                    total - o.guard_insns,
                    o.insns_after,
                    "{name}: {} count in the report",
                    o.program
                );
                assert!(
                    o.insns_after <= o.insns_reachable,
                    "{name}: op {} has {} instructions, the analysis reaches {}",
                    o.op,
                    o.insns_after,
                    o.insns_reachable
                );
            }
        }
    }
}

#[test]
fn op_dependent_subprograms_are_cloned_and_others_shared() {
    let (_, rep, out) = convert(&common::fixtures_dir().join("rto_retrans.o"));
    let pr = rep
        .programs
        .iter()
        .find(|p| p.name == "rto_retrans")
        .unwrap();
    let op = |k: u8| pr.ops.iter().find(|o| o.op == k).unwrap();
    // `account` is passed the op and re-tests it: one clone per op, different code.
    assert!(op(8).cloned.contains(&"account__op8".to_string()));
    assert!(op(9).cloned.contains(&"account__op9".to_string()));
    let code = |n: &str| out.function_by_name(n).unwrap().insns.clone();
    assert_ne!(code("account__op8"), code("account__op9"));
    assert!(code("account__op8").len() < code("account").len());
    // `emit_event` does not depend on the op: the per-op programs call the original.
    assert!(op(8).shared.contains(&"emit_event".to_string()));
    assert!(
        !rep.programs[0]
            .ops
            .iter()
            .any(|o| o.cloned.iter().any(|c| c.starts_with("emit_event")))
    );
    let prog8 = out.function_by_name(&op(8).program).unwrap();
    let callees: BTreeSet<String> = std::iter::once(prog8)
        .chain(
            ["account__op8", "acct_get__op8"]
                .iter()
                .map(|n| out.function_by_name(n).unwrap()),
        )
        .flat_map(|f| f.relocations.iter())
        .filter_map(|r| match r.kind {
            RelocKind::Call { target } => Some(out.functions[target].name.clone()),
            _ => None,
        })
        .collect();
    assert!(
        callees.contains("emit_event"),
        "callees of op 8: {callees:?}"
    );
    assert!(
        !callees.contains("account"),
        "op 8 calls the unspecialized account"
    );
    // Ops 4 and 5 specialize to the same code: one program serves both.
    assert_eq!(op(4).program, op(5).program);
}

#[test]
fn tail_calling_programs_stay_unsplit_with_a_finding() {
    let p = common::fixtures_dir().join("tail_call.o");
    let input = Object::parse(&std::fs::read(&p).unwrap()).unwrap();
    let (_, rep, out) = convert(&p);
    let d = rep.programs.iter().find(|p| p.name == "dispatch").unwrap();
    assert_eq!(d.status, "unsplit");
    assert!(d.findings.iter().any(|f| f.kind == FindingKind::TailCall));
    assert_eq!(
        out.function_by_name("dispatch").unwrap().insns,
        input.function_by_name("dispatch").unwrap().insns
    );
    assert!(out.map_by_name("op_handlers").is_some());
}

#[test]
fn other_program_types_are_carried_through() {
    let p = common::fixtures_dir().join("sockmap_est.o");
    let input = Object::parse(&std::fs::read(&p).unwrap()).unwrap();
    let (_, rep, out) = convert(&p);
    let r = rep
        .programs
        .iter()
        .find(|p| p.name == "sockmap_redir")
        .unwrap();
    assert_eq!(r.status, "other");
    let a = input.function_by_name("sockmap_redir").unwrap();
    let b = out.function_by_name("sockmap_redir").unwrap();
    assert_eq!(a.insns, b.insns);
    // Maps keep their names, definitions and pinning.
    for m in &input.maps {
        let o = out.map_by_name(&m.name).unwrap();
        assert_eq!(o.def, m.def, "{}", m.name);
    }
}

/// `.rodata` knobs (`const volatile`) and `.kconfig` values are read at run time in every per-op
/// program that uses them: they are set at load time, never folded.
#[test]
fn load_time_constants_are_not_folded() {
    let (_, rep, out) = convert(&common::fixtures_dir().join("syn_rto_rwnd.o"));
    let pr = rep
        .programs
        .iter()
        .find(|p| p.name == "syn_rto_rwnd")
        .unwrap();
    let timeout = pr.ops.iter().find(|o| o.op == 1).unwrap();
    let f = out.function_by_name(&timeout.program).unwrap();
    let rodata = out.section_by_name(".rodata").unwrap().0;
    assert!(
        f.relocations
            .iter()
            .any(|r| matches!(r.kind, RelocKind::GlobalData { section, .. } if section == rodata)),
        "TIMEOUT_INIT lost its .rodata reads"
    );
    assert!(
        f.relocations
            .iter()
            .any(|r| matches!(&r.kind, RelocKind::Extern { name, .. } if name == "CONFIG_HZ")),
        "TIMEOUT_INIT lost its CONFIG_HZ read"
    );
}

#[test]
fn guards_name_their_ops_and_fail_neutral() {
    use opsplit::insn::{Insn, JmpCond, Reg, Size, Src, Width};
    let (_, rep, out) = convert(&common::fixtures_dir().join("tcp_iw.o"));
    let pr = &rep.programs[0];
    for o in &pr.ops {
        let f = out.function_by_name(&o.program).unwrap();
        assert_eq!(
            f.insns[0].insn,
            Insn::Load {
                size: Size::W,
                dst: Reg::R2,
                src: Reg::R1,
                off: 0
            }
        );
        let Insn::Jmp {
            width: Width::W32,
            cond: JmpCond::Ne,
            dst: Reg::R2,
            src: Src::Imm(k),
            off,
        } = f.insns[1].insn
        else {
            panic!("{}: guard is not one compare: {:?}", o.program, f.insns[1]);
        };
        assert_eq!(k, i32::from(o.op));
        // The failure path: r0 = 1; exit.
        let fail = f
            .insns
            .iter()
            .position(|i| i.slot as i64 == 2 + i64::from(off))
            .unwrap();
        assert_eq!(f.insns[fail].insn.to_string(), "r0 = 0x1");
        assert_eq!(f.insns[fail + 1].insn, Insn::EXIT);
    }
}

#[test]
fn kernel_verifies_every_split_output_and_libbpf_fills_the_vtable() {
    if !common::kernel_test_gate("kernel_verifies_every_split_output_and_libbpf_fills_the_vtable") {
        return;
    }
    for p in inputs() {
        let name = common::fixture_name(&p);
        let (bytes, rep, _) = convert(&p);
        let loaded = opsplit::load::load_object(&bytes, &name)
            .unwrap_or_else(|e| panic!("{name}: the kernel refused the split output: {e}"));
        for pr in rep.programs.iter().filter(|p| p.status == "split") {
            assert!(
                loaded.program(&pr.name).is_some(),
                "{name}: {} not loaded",
                pr.name
            );
        }
        vtables_filled(&bytes, &name, &rep);
    }
}

/// Loads with plain libbpf-rs and reads every vtable slot back.
fn vtables_filled(bytes: &[u8], name: &str, rep: &Report) {
    use libbpf_rs::MapCore;
    let mut open = libbpf_rs::ObjectBuilder::default()
        .open_memory(bytes)
        .unwrap_or_else(|e| panic!("{name}: libbpf cannot open the output: {e}"));
    for mut prog in open.progs_mut() {
        if prog.section().to_string_lossy().starts_with("sockops/") {
            prog.set_prog_type(libbpf_rs::ProgramType::SockOps);
            prog.set_attach_type(libbpf_rs::ProgramAttachType::CgroupSockOps);
        }
    }
    let obj = open.load().unwrap_or_else(|e| panic!("{name}: {e}"));
    for pr in rep.programs.iter().filter(|p| p.status == "split") {
        let vt = pr.vtable.as_deref().unwrap();
        let map = obj
            .maps()
            .find(|m| {
                let n = m.name().to_string_lossy();
                n == vt || n == vt[..vt.len().min(15)]
            })
            .unwrap_or_else(|| panic!("{name}: map {vt} not created"));
        for slot in 0..21u32 {
            let v = map
                .lookup(&slot.to_ne_bytes(), libbpf_rs::MapFlags::ANY)
                .unwrap_or_else(|e| panic!("{name}: lookup {vt}[{slot}]: {e}"));
            let own = pr.ops.iter().any(|o| u32::from(o.op) == slot);
            assert_eq!(
                v.is_some(),
                own,
                "{name}: {vt}[{slot}] filled = {}",
                v.is_some()
            );
        }
    }
}

/// Functions reachable from `f` through calls and callback references.
fn reachable(obj: &Object, f: usize) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![f];
    while let Some(g) = todo.pop() {
        if !seen.insert(g) {
            continue;
        }
        for r in &obj.functions[g].relocations {
            if let RelocKind::Call { target } | RelocKind::FuncAddr { target } = r.kind {
                todo.push(target);
            }
        }
    }
    seen
}

fn maps_used(obj: &Object, f: usize) -> BTreeSet<String> {
    reachable(obj, f)
        .into_iter()
        .flat_map(|g| obj.functions[g].relocations.iter())
        .filter_map(|r| match &r.kind {
            RelocKind::Map { map } => Some(map.clone()),
            _ => None,
        })
        .collect()
}

/// The kernel lets a program tail-call only into programs with the same cgroup storage: the
/// dispatcher references every map its per-op programs reference.
#[test]
fn dispatcher_references_every_map_of_its_targets() {
    for p in inputs() {
        let name = common::fixture_name(&p);
        let (_, rep, out) = convert(&p);
        for pr in rep.programs.iter().filter(|p| p.status == "split") {
            let d = out
                .functions
                .iter()
                .position(|f| f.name == pr.name)
                .unwrap();
            let dm = maps_used(&out, d);
            for o in &pr.ops {
                let f = out
                    .functions
                    .iter()
                    .position(|f| f.name == o.program)
                    .unwrap();
                let missing: Vec<String> = maps_used(&out, f).difference(&dm).cloned().collect();
                assert!(
                    missing.is_empty(),
                    "{name}: {} uses {missing:?}, {} does not",
                    o.program,
                    pr.name
                );
            }
        }
    }
}

/// Line info follows the instructions: every function of the output that has source lines has
/// one at its first instruction (the kernel requires it), and every per-op program's lines come
/// from the original program's source.
#[test]
fn line_info_follows_the_instructions() {
    let mut checked = 0;
    for p in inputs() {
        let name = common::fixture_name(&p);
        let input = Object::parse(&std::fs::read(&p).unwrap()).unwrap();
        let (_, rep, out) = convert(&p);
        if out.btf_ext.is_none() {
            continue;
        }
        for (fid, f) in out.functions.iter().enumerate() {
            let lines = out.function_lines(fid);
            if let Some(first) = lines.first() {
                assert_eq!(first.slot, 0, "{name}: {} has no line at its start", f.name);
            }
        }
        for pr in rep.programs.iter().filter(|p| p.status == "split") {
            let orig = input
                .functions
                .iter()
                .position(|f| f.name == pr.name)
                .unwrap();
            let src: BTreeSet<(u32, String)> = reachable(&input, orig)
                .into_iter()
                .flat_map(|g| input.function_lines(g))
                .map(|l| (l.line, l.text))
                .collect();
            for o in &pr.ops {
                let f = out
                    .functions
                    .iter()
                    .position(|f| f.name == o.program)
                    .unwrap();
                let lines = out.function_lines(f);
                assert!(lines.len() > 1, "{name}: {} lost its line info", o.program);
                for l in lines {
                    assert!(
                        src.contains(&(l.line, l.text.clone())),
                        "{name}: {} line {} `{}`",
                        o.program,
                        l.line,
                        l.text
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 50);
}

/// Every function the split creates has a BTF FUNC with its full name, and its func_info record
/// names that FUNC (what bpftool shows when the kernel cut the name at 15 characters).
#[test]
fn new_functions_have_btf_funcs_with_full_names() {
    use opsplit::btf::Kind;
    let mut checked = 0;
    for p in inputs() {
        let name = common::fixture_name(&p);
        let input = Object::parse(&std::fs::read(&p).unwrap()).unwrap();
        let (_, _, out) = convert(&p);
        let (Some(btf), Some(ext)) = (&out.btf, &out.btf_ext) else {
            continue;
        };
        for f in &out.functions {
            if input.function_by_name(&f.name).is_some() {
                continue;
            }
            let id = btf
                .find_by_name(&f.name, Kind::Func)
                .unwrap_or_else(|| panic!("{name}: no BTF FUNC `{}`", f.name));
            let sec = &out.sections[f.section].name;
            let rec = ext
                .func_info
                .sections
                .iter()
                .filter(|s| btf.strings.get(s.sec_name_off) == Some(sec.as_str()))
                .flat_map(|s| s.records.iter())
                .find(|r| r.insn_slot() as usize == f.first_slot())
                .unwrap_or_else(|| panic!("{name}: no func_info for `{}`", f.name));
            assert_eq!(rec.type_id, id, "{name}: func_info of `{}`", f.name);
            checked += 1;
        }
    }
    assert!(checked > 50, "{checked}");
}

/// Maps and global data keep their names, definitions (pinning included) and initial contents.
#[test]
fn maps_and_global_data_are_kept() {
    for p in inputs() {
        let name = common::fixture_name(&p);
        let input = split::normalize(&std::fs::read(&p).unwrap()).unwrap();
        let (_, _, out) = convert(&p);
        for m in &input.maps {
            let o = out
                .map_by_name(&m.name)
                .unwrap_or_else(|| panic!("{name}: map `{}` is gone", m.name));
            assert_eq!(o.def, m.def, "{name}: {}", m.name);
            assert_eq!(o.size, m.size, "{name}: {}", m.name);
            assert_eq!(o.values, m.values, "{name}: {}", m.name);
            if let (Some(a), Some(b)) = (m.section, o.section)
                && m.kind == opsplit::obj::MapKind::GlobalData
            {
                assert_eq!(
                    input.sections[a].data, out.sections[b].data,
                    "{name}: contents of {}",
                    m.name
                );
            }
        }
    }
}

#[test]
fn conversion_is_deterministic() {
    for name in [
        "rto_retrans.o",
        "multi_prog.o",
        "tos_reflect.o",
        "nobtf_basic.o",
        "legacy_maps.o",
    ] {
        let bytes = std::fs::read(common::fixtures_dir().join(name)).unwrap();
        let a = split::convert(&bytes).unwrap().0;
        let b = split::convert(&bytes).unwrap().0;
        assert!(a == b, "{name}: two conversions differ");
    }
}
