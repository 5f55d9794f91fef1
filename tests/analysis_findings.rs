//! Migration findings from the op table, on hand-assembled programs: each construct is placed
//! behind its own op, and must be reported for that op (and only where the table says so).

use opsplit::analysis::facts::{Env, ProgramFacts, analyze_program};
use opsplit::analysis::{FindingKind as K, Func, MapInfo, Module, Ref, Severity};
use opsplit::insn::{AluOp, Call, Insn, JmpCond, LdImm64, Reg, Size, SlotInsn, Src, Width};

/// One case: the op it runs for and its body (without the final `exit`).
struct Case {
    op: i32,
    body: Vec<Insn>,
}

const R0: Reg = Reg::R0;
const R1: Reg = Reg::R1;
const R2: Reg = Reg::R2;
const R3: Reg = Reg::R3;
const R4: Reg = Reg::R4;
const R6: Reg = Reg::R6;
const FP: Reg = Reg::R10;

fn mov(dst: Reg, k: i32) -> Insn {
    Insn::Alu {
        width: Width::W64,
        op: AluOp::Mov,
        dst,
        src: Src::Imm(k),
    }
}
fn movr(dst: Reg, src: Reg) -> Insn {
    Insn::Alu {
        width: Width::W64,
        op: AluOp::Mov,
        dst,
        src: Src::Reg(src),
    }
}
fn call(id: i32) -> Insn {
    Insn::Call(Call::Helper(id))
}
fn ld(size: Size, dst: Reg, src: Reg, off: i16) -> Insn {
    Insn::Load {
        size,
        dst,
        src,
        off,
    }
}

/// `r6 = ctx; r2 = op; if r2 == case.op goto case; ...; r0 = 1; exit; case: body; r0 = ret; exit`.
/// Returns the module and, per case, the slot of its first instruction.
fn program(cases: &[Case], ret: i32, extra: Vec<Func>) -> (Module, Vec<usize>) {
    let mut head = vec![movr(R6, R1), ld(Size::W, R2, R1, 0)];
    let n = cases.len();
    // Jumps first, then `r0 = 1; exit`, then the bodies.
    let mut bodies: Vec<Vec<Insn>> = Vec::new();
    for c in cases {
        let mut b = c.body.clone();
        b.extend([mov(R0, ret), Insn::EXIT]);
        bodies.push(b);
    }
    let jumps_end = head.len() + n;
    let mut starts = Vec::new();
    let mut at = jumps_end + 2;
    for b in &bodies {
        starts.push(at);
        at += b.iter().map(|i| i.slots()).sum::<usize>();
    }
    for (k, c) in cases.iter().enumerate() {
        let slot = head.len();
        head.push(Insn::Jmp {
            width: Width::W64,
            cond: JmpCond::Eq,
            dst: R2,
            src: Src::Imm(c.op),
            off: (starts[k] - slot - 1) as i16,
        });
    }
    head.extend([mov(R0, 1), Insn::EXIT]);
    for b in bodies {
        head.extend(b);
    }
    let mut slot = 0;
    let insns: Vec<SlotInsn> = head
        .into_iter()
        .map(|insn| {
            let s = SlotInsn { slot, insn };
            slot += insn.slots();
            s
        })
        .collect();
    let mut funcs = vec![Func::new("prog", insns).expect("valid CFG")];
    funcs.extend(extra);
    let maps = vec![MapInfo {
        name: "m".into(),
        map_type: 1,
        programs: vec![],
    }];
    (Module { funcs, maps }, starts)
}

fn analyze(m: &Module, license: &str) -> ProgramFacts {
    let env = Env {
        license: Some(license.into()),
        ..Env::default()
    };
    analyze_program(m, 0, &env).expect("analysis")
}

fn has(p: &ProgramFacts, op: usize, kind: K, sev: Severity) -> bool {
    p.ops[op]
        .findings
        .iter()
        .any(|f| f.kind == kind && f.severity == sev)
}

#[test]
fn helper_findings_land_on_their_ops() {
    let setsockopt = |level: i32, name: i32| {
        vec![
            movr(R1, R6),
            mov(R2, level),
            mov(R3, name),
            movr(R4, FP),
            Insn::Alu {
                width: Width::W64,
                op: AluOp::Add,
                dst: R4,
                src: Src::Imm(-8),
            },
            mov(Reg::R5, 4),
        ]
    };
    let mut getsyn = setsockopt(6, 1006);
    getsyn.push(call(57));
    let mut cbflags = setsockopt(6, 1008);
    cbflags.push(call(49));
    let mut in_timeout_init = setsockopt(6, 1); // TCP_NODELAY
    in_timeout_init.push(call(49));
    let cases = vec![
        Case {
            op: 4,
            body: vec![movr(R1, R6), call(70)],
        },
        Case {
            op: 5,
            body: getsyn,
        },
        Case {
            op: 3,
            body: vec![movr(R1, R6), call(25), call(81)],
        },
        Case {
            op: 11,
            body: cbflags,
        },
        Case {
            op: 1,
            body: in_timeout_init,
        },
        Case {
            op: 13,
            body: vec![movr(R1, R6), mov(R4, 1), call(142)],
        },
        Case {
            op: 6,
            body: vec![movr(R1, R6), call(46)],
        },
    ];
    let (m, _) = program(&cases, 1, vec![]);
    let p = analyze(&m, "GPL");
    use Severity::*;
    assert!(has(&p, 4, K::SockmapUpdate, Error));
    assert!(has(&p, 5, K::GetsockoptSyn, Error));
    assert!(!has(&p, 4, K::GetsockoptSyn, Error));
    assert!(has(&p, 3, K::PerfOutput, Error));
    assert!(has(&p, 3, K::CgroupLocalStorage, Error));
    assert!(has(&p, 11, K::CbFlagsSet, Warning));
    // bpf_setsockopt is not offered in timeout_init (an unlocked listener or a request sock).
    assert!(has(&p, 1, K::HelperUnavailable, Error));
    assert!(!has(&p, 11, K::HelperUnavailable, Error));
    assert!(has(&p, 13, K::LoadHdrOptSyn, Error));
    // NEEDS_ECN stays residual: no migration finding, one residual_op.
    assert!(!has(&p, 6, K::SocketCookie, Error));
    assert!(has(&p, 6, K::ResidualOp, Info));
    assert!(p.findings.is_empty(), "GPL: {:?}", p.findings);
}

#[test]
fn ctx_findings_and_vetoes() {
    let cases = vec![
        // op 2: reads skops->sk->family on a path that also runs for request socks.
        Case {
            op: 2,
            body: vec![ld(Size::DW, R1, R6, 184), ld(Size::W, R1, R1, 4)],
        },
        // op 13: direct packet read.
        Case {
            op: 13,
            body: vec![ld(Size::DW, R1, R6, 192), ld(Size::B, R1, R1, 0)],
        },
        // op 15: the program returns 0 (every case returns `ret`).
        Case {
            op: 15,
            body: vec![],
        },
        // op 4: the ctx pointer goes into a map value.
        Case {
            op: 4,
            body: vec![
                mov(R1, 0),
                Insn::Store {
                    size: Size::W,
                    dst: FP,
                    off: -4,
                    src: Src::Reg(R1),
                },
                movr(R2, FP),
                Insn::Alu {
                    width: Width::W64,
                    op: AluOp::Add,
                    dst: R2,
                    src: Src::Imm(-4),
                },
                Insn::LdImm64 {
                    dst: R1,
                    value: LdImm64::Imm(0),
                },
                call(1),
                Insn::Jmp {
                    width: Width::W64,
                    cond: JmpCond::Eq,
                    dst: R0,
                    src: Src::Imm(0),
                    off: 1,
                },
                Insn::Store {
                    size: Size::DW,
                    dst: R0,
                    off: 0,
                    src: Src::Reg(R6),
                },
            ],
        },
    ];
    let (mut m, starts) = program(&cases, 0, vec![]);
    // The map reference of op 4's lookup: fifth instruction of its body.
    m.funcs[0].refs.insert(starts[3] + 4, Ref::Map(0));
    let p = analyze(&m, "Dual BSD/GPL");
    use Severity::*;
    assert!(has(&p, 2, K::RequestSock, Warning));
    assert_eq!(p.ops[2].fields_read, ["op", "sk", "sk->family"]);
    assert!(has(&p, 13, K::PacketAccess, Warning));
    assert!(p.ops[13].fields_read.contains(&"skb_data[]".to_string()));
    assert!(has(&p, 15, K::ReturnZeroVeto, Error));
    assert!(has(&p, 2, K::ReturnZeroVeto, Warning));
    // Ops whose result the kernel ignores have no veto finding.
    assert!(!has(&p, 4, K::ReturnZeroVeto, Warning));
    assert!(has(&p, 4, K::CtxEscape, Warning));
    assert!(p.findings.is_empty(), "Dual BSD/GPL is GPL-compatible");
}

#[test]
fn kern_ctx_async_callback_and_license() {
    let mut timer_cb = Func::new(
        "cb",
        vec![
            SlotInsn {
                slot: 0,
                insn: mov(R0, 0),
            },
            SlotInsn {
                slot: 1,
                insn: Insn::EXIT,
            },
        ],
    )
    .unwrap();
    timer_cb.global = false;
    let cases = vec![
        Case {
            op: 3,
            // A relocatable object's kfunc call: `call -1` relocated against the extern.
            body: vec![movr(R1, R6), Insn::Call(Call::Local(-1))],
        },
        Case {
            op: 4,
            body: vec![
                Insn::LdImm64 {
                    dst: R2,
                    value: LdImm64::Imm(0),
                },
                call(170),
            ],
        },
    ];
    let (mut m, starts) = program(&cases, 1, vec![timer_cb]);
    m.funcs[0]
        .refs
        .insert(starts[0] + 1, Ref::Kfunc("bpf_cast_to_kern_ctx".into()));
    m.funcs[0].refs.insert(starts[1], Ref::FuncAddr(1));
    let p = analyze(&m, "Proprietary");
    use Severity::*;
    assert!(has(&p, 3, K::KernCtx, Warning));
    assert!(!has(&p, 3, K::Malformed, Error));
    assert_eq!(p.ops[3].kfuncs, ["bpf_cast_to_kern_ctx"]);
    assert!(has(&p, 4, K::AsyncCallback, Warning));
    assert_eq!(p.functions, ["prog", "cb"]);
    assert!(
        p.findings
            .iter()
            .any(|f| f.kind == K::NonGplLicense && f.severity == Error)
    );
}
