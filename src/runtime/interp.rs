//! The interpreter: a one-time compilation of a [`Module`] into a flat array of pre-resolved
//! [`Op`]s, and the loop that executes it.
//!
//! Compilation does every lookup once: jump offsets become absolute op indices, `ld_imm64` of maps,
//! global data and callbacks becomes a constant pointer, calls name their callee's entry, helpers
//! are resolved to function pointers. The loop then only dispatches on a flat `Code` (one variant
//! per operation *and* operand form, so no second-level match on the hot path), with registers in
//! a local array and the budget in a local counter.

use std::collections::HashMap;
use std::sync::Arc;

use super::helpers::{Helper, HelperError, HelperTable};
use super::maps::MapState;
use super::memory::{
    Access, AccessRule, MAX_BPF_STACK, Memory, RegionId, RegionKind, Writer, pointer,
};
use super::{
    BPF_MAX_LOOPS, Config, Fault, FaultKind, FuncIndex, MAX_CALL_FRAMES, Machine, Module,
    ModuleProgram, Stats, Target,
};
use crate::Error;
use crate::insn::{
    AluOp, AtomicOp, ByteOrder, Call, Insn, JmpCond, LdImm64, NarrowSize, Reg, Size, Src, SwapBits,
    Width,
};
use crate::obj::disasm::FunctionLine;

/// One flat operation per operand form; `K` = immediate operand, `X` = register operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Code {
    Add64K,
    Add64X,
    Sub64K,
    Sub64X,
    Mul64K,
    Mul64X,
    Div64K,
    Div64X,
    SDiv64K,
    SDiv64X,
    Mod64K,
    Mod64X,
    SMod64K,
    SMod64X,
    Or64K,
    Or64X,
    And64K,
    And64X,
    Xor64K,
    Xor64X,
    Lsh64K,
    Lsh64X,
    Rsh64K,
    Rsh64X,
    Arsh64K,
    Arsh64X,
    Mov64K,
    Mov64X,
    Add32K,
    Add32X,
    Sub32K,
    Sub32X,
    Mul32K,
    Mul32X,
    Div32K,
    Div32X,
    SDiv32K,
    SDiv32X,
    Mod32K,
    Mod32X,
    SMod32K,
    SMod32X,
    Or32K,
    Or32X,
    And32K,
    And32X,
    Xor32K,
    Xor32X,
    Lsh32K,
    Lsh32X,
    Rsh32K,
    Rsh32X,
    Arsh32K,
    Arsh32X,
    Mov32K,
    Mov32X,
    Neg64,
    Neg32,
    /// `imm` = source bits (8, 16, 32).
    MovSx64,
    MovSx32,
    /// `le16`/`le32` on a little-endian machine: truncation.
    Trunc16,
    Trunc32,
    Swap16,
    Swap32,
    Swap64,
    Nop,
    /// `dst = imm` (every resolved `ld_imm64`).
    LdImm,
    LdxB,
    LdxH,
    LdxW,
    LdxDW,
    LdxsB,
    LdxsH,
    LdxsW,
    StB,
    StH,
    StW,
    StDW,
    StxB,
    StxH,
    StxW,
    StxDW,
    /// `target` = access bytes | atomic op index << 8.
    Atomic,
    /// Legacy packet load; `src` = 0xff for `LD_ABS`; `target` = access bytes.
    LdPkt,
    Ja,
    MayGoto,
    Jeq64K,
    Jeq64X,
    Jne64K,
    Jne64X,
    Jgt64K,
    Jgt64X,
    Jge64K,
    Jge64X,
    Jlt64K,
    Jlt64X,
    Jle64K,
    Jle64X,
    Jsgt64K,
    Jsgt64X,
    Jsge64K,
    Jsge64X,
    Jslt64K,
    Jslt64X,
    Jsle64K,
    Jsle64X,
    Jset64K,
    Jset64X,
    Jeq32K,
    Jeq32X,
    Jne32K,
    Jne32X,
    Jgt32K,
    Jgt32X,
    Jge32K,
    Jge32X,
    Jlt32K,
    Jlt32X,
    Jle32K,
    Jle32X,
    Jsgt32K,
    Jsgt32X,
    Jsge32K,
    Jsge32X,
    Jslt32K,
    Jslt32X,
    Jsle32K,
    Jsle32X,
    Jset32K,
    Jset32X,
    /// BPF-to-BPF call; `target` = callee function index.
    Call,
    /// `target` = index into [`Image::helpers`].
    CallHelper,
    TailCall,
    Exit,
}

/// A pre-resolved instruction. `target` is a jump target op index, a callee or a helper index.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Op {
    pub code: Code,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub target: u32,
    /// Immediates are sign-extended to 64 bits; 32-bit operations use the low half.
    pub imm: i64,
}

#[derive(Debug)]
pub(crate) struct FuncInfo {
    pub name: String,
    pub entry: u32,
    /// Stack depth as the verifier accounts it: rounded up to 32, at least 32.
    pub stack: u32,
    pub has_tail_call: bool,
    pub lines: Vec<FunctionLine>,
}

/// The compiled module.
#[derive(Debug)]
pub(crate) struct Image {
    pub ops: Vec<Op>,
    pub funcs: Vec<FuncInfo>,
    /// (function, slot) of every op.
    pub loc: Vec<(u32, u32)>,
    /// The instruction each op was compiled from (to describe a located write).
    pub insns: Vec<Insn>,
    pub helpers: Vec<Helper>,
    pub programs: Vec<ModuleProgram>,
    /// Pointer value of each function's address (`ld_imm64` of a callback).
    pub func_regions: Vec<RegionId>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame {
    func: u32,
    ret_pc: u32,
    saved: [u64; 4],
    stack: u32,
    may_goto: u32,
}

/// Per-run state, kept in the machine so helpers (callbacks, tail calls) see it.
#[derive(Debug)]
pub(crate) struct RunState {
    frames: Vec<Frame>,
    stack_regions: [RegionId; MAX_CALL_FRAMES],
    stack_used: u32,
    pub budget_left: u64,
    pub tail_calls: u32,
    /// Program index for fault reports (changes on tail calls).
    program: usize,
    /// The op executing a helper call, to locate helper faults.
    cur_pc: usize,
    /// Executed flag per op, when coverage is on (empty when off).
    pub coverage: Vec<bool>,
    /// The context region and its field rules (the verifier's context checks), if any.
    pub ctx_rule: Option<(RegionId, AccessRule, u64)>,
}

pub(crate) fn build(
    mut module: Module,
    config: Config,
    table: &HelperTable,
) -> Result<Machine, Error> {
    for name in &config.empty_prog_arrays {
        let err = |message: &str| Error::Map {
            map: name.clone(),
            message: format!("Config::empty_prog_arrays names it, but {message}"),
        };
        let m = module
            .maps
            .iter_mut()
            .find(|m| &m.name == name)
            .ok_or_else(|| err("the module has no such map"))?;
        if m.map_type != super::maps::map_type::PROG_ARRAY {
            return Err(err("it is not a PROG_ARRAY"));
        }
        m.init = super::MapInit::Empty;
    }
    let mut memory = Memory::new();
    let stack_regions = std::array::from_fn(|i| {
        memory.alloc(
            RegionKind::Stack { frame: i as u8 },
            vec![0; MAX_BPF_STACK as usize],
            true,
        )
    });
    let mut maps = Vec::with_capacity(module.maps.len());
    for (i, m) in module.maps.iter().enumerate() {
        maps.push(MapState::create(i, m, &module, &mut memory)?);
    }
    let func_regions: Vec<RegionId> = (0..module.functions.len())
        .map(|i| {
            memory.alloc(
                RegionKind::Function { function: i as u32 },
                Vec::new(),
                false,
            )
        })
        .collect();
    let image = compile(&module, table, &maps, func_regions)?;
    let now_ns = config.start_ns;
    let rng = config.seed;
    Ok(Machine {
        image: Arc::new(image),
        memory,
        maps,
        config,
        now_ns,
        rng,
        records: Vec::new(),
        stats: Stats::default(),
        packet: None,
        trace_calls: false,
        site_log: None,
        hook: None,
        hook_call: None,
        run: RunState {
            frames: Vec::with_capacity(MAX_CALL_FRAMES),
            stack_regions,
            stack_used: 0,
            budget_left: 0,
            tail_calls: 0,
            program: 0,
            cur_pc: 0,
            coverage: Vec::new(),
            ctx_rule: None,
        },
    })
}

fn alu_codes(width: Width, op: AluOp) -> (Code, Code) {
    use Code::*;
    match (width, op) {
        (Width::W64, AluOp::Add) => (Add64K, Add64X),
        (Width::W64, AluOp::Sub) => (Sub64K, Sub64X),
        (Width::W64, AluOp::Mul) => (Mul64K, Mul64X),
        (Width::W64, AluOp::Div) => (Div64K, Div64X),
        (Width::W64, AluOp::SDiv) => (SDiv64K, SDiv64X),
        (Width::W64, AluOp::Mod) => (Mod64K, Mod64X),
        (Width::W64, AluOp::SMod) => (SMod64K, SMod64X),
        (Width::W64, AluOp::Or) => (Or64K, Or64X),
        (Width::W64, AluOp::And) => (And64K, And64X),
        (Width::W64, AluOp::Xor) => (Xor64K, Xor64X),
        (Width::W64, AluOp::Lsh) => (Lsh64K, Lsh64X),
        (Width::W64, AluOp::Rsh) => (Rsh64K, Rsh64X),
        (Width::W64, AluOp::Arsh) => (Arsh64K, Arsh64X),
        (Width::W64, AluOp::Mov) => (Mov64K, Mov64X),
        (Width::W32, AluOp::Add) => (Add32K, Add32X),
        (Width::W32, AluOp::Sub) => (Sub32K, Sub32X),
        (Width::W32, AluOp::Mul) => (Mul32K, Mul32X),
        (Width::W32, AluOp::Div) => (Div32K, Div32X),
        (Width::W32, AluOp::SDiv) => (SDiv32K, SDiv32X),
        (Width::W32, AluOp::Mod) => (Mod32K, Mod32X),
        (Width::W32, AluOp::SMod) => (SMod32K, SMod32X),
        (Width::W32, AluOp::Or) => (Or32K, Or32X),
        (Width::W32, AluOp::And) => (And32K, And32X),
        (Width::W32, AluOp::Xor) => (Xor32K, Xor32X),
        (Width::W32, AluOp::Lsh) => (Lsh32K, Lsh32X),
        (Width::W32, AluOp::Rsh) => (Rsh32K, Rsh32X),
        (Width::W32, AluOp::Arsh) => (Arsh32K, Arsh32X),
        (Width::W32, AluOp::Mov) => (Mov32K, Mov32X),
    }
}

fn jmp_codes(width: Width, cond: JmpCond) -> (Code, Code) {
    use Code::*;
    match (width, cond) {
        (Width::W64, JmpCond::Eq) => (Jeq64K, Jeq64X),
        (Width::W64, JmpCond::Ne) => (Jne64K, Jne64X),
        (Width::W64, JmpCond::Gt) => (Jgt64K, Jgt64X),
        (Width::W64, JmpCond::Ge) => (Jge64K, Jge64X),
        (Width::W64, JmpCond::Lt) => (Jlt64K, Jlt64X),
        (Width::W64, JmpCond::Le) => (Jle64K, Jle64X),
        (Width::W64, JmpCond::Sgt) => (Jsgt64K, Jsgt64X),
        (Width::W64, JmpCond::Sge) => (Jsge64K, Jsge64X),
        (Width::W64, JmpCond::Slt) => (Jslt64K, Jslt64X),
        (Width::W64, JmpCond::Sle) => (Jsle64K, Jsle64X),
        (Width::W64, JmpCond::Set) => (Jset64K, Jset64X),
        (Width::W32, JmpCond::Eq) => (Jeq32K, Jeq32X),
        (Width::W32, JmpCond::Ne) => (Jne32K, Jne32X),
        (Width::W32, JmpCond::Gt) => (Jgt32K, Jgt32X),
        (Width::W32, JmpCond::Ge) => (Jge32K, Jge32X),
        (Width::W32, JmpCond::Lt) => (Jlt32K, Jlt32X),
        (Width::W32, JmpCond::Le) => (Jle32K, Jle32X),
        (Width::W32, JmpCond::Sgt) => (Jsgt32K, Jsgt32X),
        (Width::W32, JmpCond::Sge) => (Jsge32K, Jsge32X),
        (Width::W32, JmpCond::Slt) => (Jslt32K, Jslt32X),
        (Width::W32, JmpCond::Sle) => (Jsle32K, Jsle32X),
        (Width::W32, JmpCond::Set) => (Jset32K, Jset32X),
    }
}

const ATOMIC_OPS: [AtomicOp; 10] = [
    AtomicOp::Add,
    AtomicOp::Or,
    AtomicOp::And,
    AtomicOp::Xor,
    AtomicOp::FetchAdd,
    AtomicOp::FetchOr,
    AtomicOp::FetchAnd,
    AtomicOp::FetchXor,
    AtomicOp::Xchg,
    AtomicOp::CmpXchg,
];

/// The stack depth a function uses: the deepest `r10`-relative access or `r10`-derived pointer.
/// Registers are followed through `mov`/`add`/`sub` with constants in straight-line order, which
/// is how compilers form stack pointers; anything else forgets the register.
fn stack_depth(insns: &[crate::insn::SlotInsn]) -> u32 {
    let mut fp: [Option<i64>; 11] = [None; 11];
    let mut deepest: i64 = 0;
    let reg = |r: Reg| r.index() as usize;
    for si in insns {
        fp[10] = Some(0);
        // Offsets outside the frame are left to the access check, which reports the slot.
        let mut note = |v: i64| {
            if v >= -i64::from(MAX_BPF_STACK) {
                deepest = deepest.max(-v)
            }
        };
        match si.insn {
            Insn::Load { src, off, .. }
            | Insn::LoadSx { src, off, .. }
            | Insn::LoadAcquire { src, off, .. } => {
                if let Some(b) = fp[reg(src)] {
                    note(b + i64::from(off));
                }
            }
            Insn::Store { dst, off, .. }
            | Insn::Atomic { dst, off, .. }
            | Insn::StoreRelease { dst, off, .. } => {
                if let Some(b) = fp[reg(dst)] {
                    note(b + i64::from(off));
                }
            }
            _ => {}
        }
        let tracked = match si.insn {
            Insn::Alu {
                width: Width::W64,
                op: AluOp::Mov,
                dst,
                src: Src::Reg(s),
            } => Some((dst, fp[reg(s)])),
            Insn::Alu {
                width: Width::W64,
                op: AluOp::Add,
                dst,
                src: Src::Imm(k),
            } => Some((dst, fp[reg(dst)].map(|b| b + i64::from(k)))),
            Insn::Alu {
                width: Width::W64,
                op: AluOp::Sub,
                dst,
                src: Src::Imm(k),
            } => Some((dst, fp[reg(dst)].map(|b| b - i64::from(k)))),
            _ => None,
        };
        for r in si.insn.regs_written().iter() {
            if r.index() < 10 {
                fp[reg(r)] = None;
            }
        }
        if let Some((dst, v)) = tracked
            && dst.index() < 10
        {
            fp[reg(dst)] = v;
            if let Some(v) = v {
                note(v);
            }
        }
    }
    let depth = deepest.clamp(1, i64::from(MAX_BPF_STACK)) as u32;
    depth.div_ceil(32) * 32
}

/// Entry of a function no program reaches: it is not compiled.
pub(crate) const NOT_LOADED: u32 = u32::MAX;

/// Functions reachable from the programs (and from PROG_ARRAY slots, which tail calls enter):
/// like the kernel, which loads each program with only its own subprograms, a function no
/// program reaches is not compiled, so its unsupported helpers do not stop the others.
fn reachable(module: &Module) -> Vec<bool> {
    let n = module.functions.len();
    let mut seen = vec![false; n];
    let mut todo: Vec<FuncIndex> = module.programs.iter().map(|p| p.function).collect();
    for m in &module.maps {
        if let super::MapInit::Programs(slots) = &m.init {
            todo.extend(slots.iter().map(|&(_, f)| f));
        }
    }
    while let Some(f) = todo.pop() {
        if f >= n || seen[f] {
            continue;
        }
        seen[f] = true;
        for (_, t) in &module.functions[f].relocations {
            if let Target::Call(t) | Target::FuncAddr(t) = t {
                todo.push(*t);
            }
        }
    }
    seen
}

fn compile(
    module: &Module,
    table: &HelperTable,
    maps: &[MapState],
    func_regions: Vec<RegionId>,
) -> Result<Image, Error> {
    let reach = reachable(module);
    let mut entries = Vec::with_capacity(module.functions.len());
    let mut n = 0u32;
    for (f, &live) in module.functions.iter().zip(&reach) {
        entries.push(if live { n } else { NOT_LOADED });
        if live {
            n += f.insns.len() as u32;
        }
    }
    let mut ops = Vec::with_capacity(n as usize);
    let mut loc = Vec::with_capacity(n as usize);
    let mut insns = Vec::with_capacity(n as usize);
    let mut funcs = Vec::with_capacity(module.functions.len());
    let mut helpers: Vec<Helper> = Vec::new();
    let mut helper_index: HashMap<String, u32> = HashMap::new();

    for (fi, f) in module.functions.iter().enumerate() {
        if !reach[fi] {
            funcs.push(FuncInfo {
                name: f.name.clone(),
                entry: NOT_LOADED,
                stack: 0,
                has_tail_call: false,
                lines: Vec::new(),
            });
            continue;
        }
        let err = |slot: usize, message: String| Error::Instruction {
            section: f.section.clone(),
            function: f.name.clone(),
            slot,
            message,
        };
        let Some(last) = f.insns.last() else {
            return Err(err(0, "function has no instructions".into()));
        };
        if last.insn.falls_through() {
            return Err(err(
                last.slot,
                "last instruction is not an exit or jump: execution would fall off the function"
                    .into(),
            ));
        }
        let slot_count = last.slot + last.insn.slots();
        let mut slot_pc = vec![u32::MAX; slot_count];
        for (i, si) in f.insns.iter().enumerate() {
            if si.slot >= slot_count {
                return Err(err(si.slot, "slots out of order".into()));
            }
            slot_pc[si.slot] = entries[fi] + i as u32;
        }
        let relocs: HashMap<usize, &Target> = f.relocations.iter().map(|(s, t)| (*s, t)).collect();
        let mut has_tail_call = false;
        // Only bpf_loop call sites need it (see below); most functions have none.
        let calls_loop = f
            .insns
            .iter()
            .any(|si| si.insn == Insn::Call(Call::Helper(crate::optable::helper::LOOP)));
        let known_r4 = if calls_loop {
            known_constants_at_calls(&f.insns, Reg::R4)
        } else {
            HashMap::new()
        };
        for si in &f.insns {
            let slot = si.slot;
            let jump = |off: i64| -> Result<u32, Error> {
                let t = slot as i64 + 1 + off;
                usize::try_from(t)
                    .ok()
                    .and_then(|t| slot_pc.get(t).copied())
                    .filter(|&pc| pc != u32::MAX)
                    .ok_or_else(|| {
                        err(
                            slot,
                            format!("jump to slot {t}, outside the function or inside an ld_imm64"),
                        )
                    })
            };
            if si.insn.regs_written().contains(Reg::R10) {
                return Err(err(slot, "writes r10, the read-only frame pointer".into()));
            }
            let mut op = Op {
                code: Code::Nop,
                dst: 0,
                src: 0,
                off: 0,
                target: 0,
                imm: 0,
            };
            let r = |r: Reg| r.index();
            match si.insn {
                Insn::Alu {
                    width,
                    op: aop,
                    dst,
                    src,
                } => {
                    let (k, x) = alu_codes(width, aop);
                    op.dst = r(dst);
                    match src {
                        Src::Imm(i) => {
                            op.code = k;
                            op.imm = i64::from(i);
                        }
                        Src::Reg(s) => {
                            op.code = x;
                            op.src = r(s);
                        }
                    }
                }
                Insn::Neg { width, dst } => {
                    op.code = if width == Width::W64 {
                        Code::Neg64
                    } else {
                        Code::Neg32
                    };
                    op.dst = r(dst);
                }
                Insn::MovSx {
                    width,
                    from,
                    dst,
                    src,
                } => {
                    op.code = if width == Width::W64 {
                        Code::MovSx64
                    } else {
                        Code::MovSx32
                    };
                    op.dst = r(dst);
                    op.src = r(src);
                    op.imm = i64::from(from.bits());
                }
                Insn::End { order, bits, dst } => {
                    op.dst = r(dst);
                    op.code = match (order, bits) {
                        (ByteOrder::Le, SwapBits::B16) => Code::Trunc16,
                        (ByteOrder::Le, SwapBits::B32) => Code::Trunc32,
                        (ByteOrder::Le, SwapBits::B64) => Code::Nop,
                        (_, SwapBits::B16) => Code::Swap16,
                        (_, SwapBits::B32) => Code::Swap32,
                        (_, SwapBits::B64) => Code::Swap64,
                    };
                }
                Insn::AddrSpaceCast { .. } => {
                    return Err(err(
                        slot,
                        "addr_space_cast needs an arena map, which the runtime does not model"
                            .into(),
                    ));
                }
                Insn::LdImm64 { dst, value } => {
                    op.code = Code::LdImm;
                    op.dst = r(dst);
                    op.imm = match (relocs.get(&slot), value) {
                        (Some(Target::Map(m)), _) => {
                            let st = maps.get(*m).ok_or_else(|| {
                                err(slot, format!("reference to map #{m}, which does not exist"))
                            })?;
                            pointer(st.object, 0) as i64
                        }
                        (Some(Target::GlobalData { map, offset }), _) => {
                            let st = maps.get(*map).ok_or_else(|| {
                                err(
                                    slot,
                                    format!("reference to map #{map}, which does not exist"),
                                )
                            })?;
                            let Some(region) = st.global_region() else {
                                return Err(err(
                                    slot,
                                    format!(
                                        "global data reference to `{}`, which is not a global data map",
                                        st.name
                                    ),
                                ));
                            };
                            if u64::from(*offset) > u64::from(st.value_size) {
                                return Err(err(
                                    slot,
                                    format!(
                                        "global data offset {offset} is past the end of `{}` ({} bytes)",
                                        st.name, st.value_size
                                    ),
                                ));
                            }
                            pointer(region, *offset) as i64
                        }
                        (Some(Target::FuncAddr(t)), _) => {
                            let region = func_regions.get(*t).ok_or_else(|| {
                                err(
                                    slot,
                                    format!("address of function #{t}, which does not exist"),
                                )
                            })?;
                            pointer(*region, 0) as i64
                        }
                        (Some(t), _) => {
                            return Err(err(slot, format!("ld_imm64 with a {t:?} relocation")));
                        }
                        (None, LdImm64::Imm(v)) => v,
                        (None, v) => {
                            return Err(err(
                                slot,
                                format!(
                                    "ld_imm64 {v:?} without a relocation: no fd table to resolve it"
                                ),
                            ));
                        }
                    };
                }
                Insn::Load {
                    size,
                    dst,
                    src,
                    off,
                }
                | Insn::LoadAcquire {
                    size,
                    dst,
                    src,
                    off,
                } => {
                    op.code = match size {
                        Size::B => Code::LdxB,
                        Size::H => Code::LdxH,
                        Size::W => Code::LdxW,
                        Size::DW => Code::LdxDW,
                    };
                    op.dst = r(dst);
                    op.src = r(src);
                    op.off = off;
                }
                Insn::LoadSx {
                    size,
                    dst,
                    src,
                    off,
                } => {
                    op.code = match size {
                        NarrowSize::B => Code::LdxsB,
                        NarrowSize::H => Code::LdxsH,
                        NarrowSize::W => Code::LdxsW,
                    };
                    op.dst = r(dst);
                    op.src = r(src);
                    op.off = off;
                }
                Insn::Store {
                    size,
                    dst,
                    off,
                    src,
                } => {
                    op.dst = r(dst);
                    op.off = off;
                    let (k, x) = match size {
                        Size::B => (Code::StB, Code::StxB),
                        Size::H => (Code::StH, Code::StxH),
                        Size::W => (Code::StW, Code::StxW),
                        Size::DW => (Code::StDW, Code::StxDW),
                    };
                    match src {
                        Src::Imm(i) => {
                            op.code = k;
                            op.imm = i64::from(i);
                        }
                        Src::Reg(s) => {
                            op.code = x;
                            op.src = r(s);
                        }
                    }
                }
                Insn::StoreRelease {
                    size,
                    dst,
                    src,
                    off,
                } => {
                    op.code = match size {
                        Size::B => Code::StxB,
                        Size::H => Code::StxH,
                        Size::W => Code::StxW,
                        Size::DW => Code::StxDW,
                    };
                    op.dst = r(dst);
                    op.src = r(src);
                    op.off = off;
                }
                Insn::Atomic {
                    width,
                    op: aop,
                    dst,
                    src,
                    off,
                } => {
                    op.code = Code::Atomic;
                    op.dst = r(dst);
                    op.src = r(src);
                    op.off = off;
                    let bytes = if width == Width::W64 { 8 } else { 4 };
                    let idx = ATOMIC_OPS.iter().position(|&a| a == aop).unwrap_or(0) as u32;
                    op.target = bytes | idx << 8;
                }
                Insn::LdAbs { size, imm } => {
                    op.code = Code::LdPkt;
                    op.src = 0xff;
                    op.imm = i64::from(imm);
                    op.target = size.size().bytes();
                }
                Insn::LdInd { size, src, imm } => {
                    op.code = Code::LdPkt;
                    op.src = r(src);
                    op.imm = i64::from(imm);
                    op.target = size.size().bytes();
                }
                Insn::Ja { off } => {
                    op.code = Code::Ja;
                    op.target = jump(off.into())?;
                }
                Insn::Gotol { off } => {
                    op.code = Code::Ja;
                    op.target = jump(off.into())?;
                }
                Insn::MayGoto { off } => {
                    op.code = Code::MayGoto;
                    op.target = jump(off.into())?;
                }
                Insn::Jmp {
                    width,
                    cond,
                    dst,
                    src,
                    off,
                } => {
                    let (k, x) = jmp_codes(width, cond);
                    op.dst = r(dst);
                    op.target = jump(off.into())?;
                    match src {
                        Src::Imm(i) => {
                            op.code = k;
                            op.imm = i64::from(i);
                        }
                        Src::Reg(s) => {
                            op.code = x;
                            op.src = r(s);
                        }
                    }
                }
                Insn::Call(call) => match (call, relocs.get(&slot)) {
                    (Call::Helper(12), _) => {
                        op.code = Code::TailCall;
                        has_tail_call = true;
                    }
                    (Call::Helper(id), _) => {
                        let Some(h) = table.helper(id) else {
                            return Err(err(
                                slot,
                                format!(
                                    "helper {id} ({}) is not available in the runtime",
                                    crate::uapi::helper_name(id).unwrap_or("unknown")
                                ),
                            ));
                        };
                        // The verifier inlines bpf_loop only where its flags are a known 0;
                        // elsewhere the helper runs, with its u32 count.
                        let inlined = known_r4.get(&slot) == Some(&Some(0));
                        let (key, h) = if id == crate::optable::helper::LOOP && !inlined {
                            let mut h = h.clone();
                            h.f = super::helpers::bpf_loop_not_inlined;
                            (format!("helper:{id}:not inlined"), h)
                        } else {
                            (format!("helper:{id}"), h.clone())
                        };
                        op.code = Code::CallHelper;
                        op.target = *helper_index.entry(key).or_insert_with(|| {
                            helpers.push(h);
                            (helpers.len() - 1) as u32
                        });
                    }
                    (Call::Local(_), Some(Target::Call(t))) => {
                        if *t >= module.functions.len() {
                            return Err(err(
                                slot,
                                format!("call of function #{t}, which does not exist"),
                            ));
                        }
                        op.code = Code::Call;
                        op.target = *t as u32;
                    }
                    (Call::Local(imm), None) => {
                        // Without a relocation only a call to this function's own start
                        // can be resolved; the kernel rejects recursion, the runtime
                        // bounds it by the frame limit.
                        if slot as i64 + 1 + i64::from(imm) != 0 {
                            return Err(err(slot, "BPF-to-BPF call without a relocation".into()));
                        }
                        op.code = Code::Call;
                        op.target = fi as u32;
                    }
                    // Clang encodes an extern kfunc call as a pseudo call with a relocation;
                    // libbpf turns it into a kfunc call at load time.
                    (Call::Kfunc { .. } | Call::Local(_), Some(Target::Kfunc(name))) => {
                        let Some(h) = table.kfunc(name) else {
                            return Err(err(
                                slot,
                                format!("kfunc `{name}` is not available in the runtime"),
                            ));
                        };
                        op.code = Code::CallHelper;
                        op.target =
                            *helper_index
                                .entry(format!("kfunc:{name}"))
                                .or_insert_with(|| {
                                    helpers.push(h.clone());
                                    (helpers.len() - 1) as u32
                                });
                    }
                    (c, t) => {
                        return Err(err(slot, format!("call {c:?} with relocation {t:?}")));
                    }
                },
                Insn::Exit { .. } => op.code = Code::Exit,
            }
            ops.push(op);
            loc.push((fi as u32, slot as u32));
            insns.push(si.insn);
        }
        funcs.push(FuncInfo {
            name: f.name.clone(),
            entry: entries[fi],
            stack: stack_depth(&f.insns),
            has_tail_call,
            lines: f.lines.clone(),
        });
    }
    for p in &module.programs {
        if p.function >= funcs.len() {
            return Err(Error::Unsupported(format!(
                "program `{}` names function #{}, which does not exist",
                p.name, p.function
            )));
        }
    }
    Ok(Image {
        ops,
        funcs,
        loc,
        insns,
        helpers,
        programs: module.programs.clone(),
        func_regions,
    })
}

/// The instruction a helper is being called from.
pub(crate) fn current_site(m: &Machine) -> super::helpers::CallSite {
    let f = locate(
        m,
        &m.image,
        m.run.cur_pc,
        FaultKind::Unsupported(String::new()),
    );
    super::helpers::CallSite {
        program: f.program,
        function: f.function,
        slot: f.slot,
        line: f
            .line
            .map(|l| format!("{}:{}: {}", l.file, l.line, l.text.trim())),
    }
}

impl Machine {
    /// Where `w` is: program, function, slot and source line; `None` for [`Writer::NONE`].
    pub fn site(&self, w: Writer) -> Option<super::helpers::CallSite> {
        let (pc, program) = w.parts()?;
        let &(fi, slot) = self.image.loc.get(pc)?;
        let f = &self.image.funcs[fi as usize];
        let slot = slot as usize;
        let at = f.lines.partition_point(|l| l.slot <= slot);
        Some(super::helpers::CallSite {
            program: self
                .image
                .programs
                .get(program)
                .map(|p| p.name.clone())
                .unwrap_or_default(),
            function: f.name.clone(),
            slot,
            line: at
                .checked_sub(1)
                .map(|i| &f.lines[i])
                .map(|l| format!("{}:{}: {}", l.file, l.line, l.text.trim())),
        })
    }

    /// The instruction at `w` as text: the helper or kfunc's name for a call, else its
    /// disassembly.
    pub fn site_insn(&self, w: Writer) -> Option<String> {
        let (pc, _) = w.parts()?;
        let op = self.image.ops.get(pc)?;
        Some(match op.code {
            Code::CallHelper => format!("call {}", self.image.helpers[op.target as usize].name),
            _ => self.image.insns[pc].to_string(),
        })
    }
}

fn locate(m: &Machine, image: &Image, pc: usize, kind: FaultKind) -> Fault {
    let (fi, slot) = image.loc.get(pc).copied().unwrap_or((0, 0));
    let f = &image.funcs[fi as usize];
    let slot = slot as usize;
    let at = f.lines.partition_point(|l| l.slot <= slot);
    Fault {
        program: image
            .programs
            .get(m.run.program)
            .map(|p| p.name.clone())
            .unwrap_or_default(),
        function: f.name.clone(),
        slot,
        line: at.checked_sub(1).map(|i| Box::new(f.lines[i].clone())),
        kind,
    }
}

/// Pushes a frame for `func`, with the verifier's limits on frames and stack.
fn push_frame(
    m: &mut Machine,
    image: &Image,
    func: u32,
    ret_pc: u32,
    saved: [u64; 4],
) -> Result<u64, FaultKind> {
    let depth = m.run.frames.len();
    if depth >= MAX_CALL_FRAMES {
        return Err(FaultKind::CallDepth { frames: depth + 1 });
    }
    let f = &image.funcs[func as usize];
    if depth > 0 && f.has_tail_call && m.run.stack_used >= 256 {
        return Err(FaultKind::TailCallStack {
            bytes: m.run.stack_used,
        });
    }
    let total = m.run.stack_used + f.stack;
    if total > MAX_BPF_STACK {
        return Err(FaultKind::StackSize {
            frames: depth + 1,
            bytes: total,
        });
    }
    let region = m.run.stack_regions[depth];
    clear_stack(&mut m.memory, region, f.stack, m.config.stack_fill);
    m.run.frames.push(Frame {
        func,
        ret_pc,
        saved,
        stack: f.stack,
        may_goto: BPF_MAX_LOOPS,
    });
    m.run.stack_used = total;
    Ok(pointer(region, MAX_BPF_STACK))
}

/// Fills the used top of a frame so runs do not depend on what earlier frames left there.
fn clear_stack(memory: &mut Memory, region: RegionId, bytes: u32, fill: u8) {
    if let Some(r) = memory.region_mut(region) {
        let len = r.data.len();
        let from = len.saturating_sub(bytes as usize);
        r.data[from..].fill(fill);
    }
}

pub(crate) fn run(m: &mut Machine, prog: usize, args: [u64; 5]) -> Result<u64, Fault> {
    let image = Arc::clone(&m.image);
    let Some(p) = image.programs.get(prog) else {
        return Err(Fault {
            program: format!("#{prog}"),
            function: String::new(),
            slot: 0,
            line: None,
            kind: FaultKind::Unsupported(format!("no program #{prog}")),
        });
    };
    m.run.frames.clear();
    m.run.stack_used = 0;
    m.run.tail_calls = 0;
    m.run.program = prog;
    m.run.budget_left = m.config.insn_budget;
    m.run.cur_pc = image.funcs[p.function].entry as usize;
    let r = dispatch(m, &image, p.function as u32, args);
    let used = m.config.insn_budget - m.run.budget_left;
    m.stats.last_run_insns = used;
    m.stats.total_insns += used;
    m.stats.runs += 1;
    r
}

/// Runs `func` as a callback from a helper (`bpf_loop`), in a new frame.
pub(crate) fn call_callback(
    m: &mut Machine,
    func: FuncIndex,
    args: [u64; 5],
) -> Result<u64, HelperError> {
    let image = Arc::clone(&m.image);
    let saved_pc = m.run.cur_pc;
    let r = dispatch(m, &image, func as u32, args).map_err(|f| HelperError::Located(Box::new(f)));
    m.run.cur_pc = saved_pc;
    r
}

/// Function index of a function address value (callback argument).
pub(crate) fn function_of(m: &Machine, addr: u64) -> Option<FuncIndex> {
    match m.memory.kind_of(addr)? {
        RegionKind::Function { function }
            if addr == pointer(m.image.func_regions[function as usize], 0) =>
        {
            Some(function as usize)
        }
        _ => None,
    }
}

/// Runs with or without coverage recording: two instances of the loop, so the common case pays
/// nothing for it.
fn dispatch(m: &mut Machine, image: &Image, func: u32, args: [u64; 5]) -> Result<u64, Fault> {
    match (m.run.coverage.is_empty(), m.run.ctx_rule.is_none()) {
        (true, true) => exec::<false, false>(m, image, func, args),
        (false, true) => exec::<true, false>(m, image, func, args),
        (true, false) => exec::<false, true>(m, image, func, args),
        (false, false) => exec::<true, true>(m, image, func, args),
    }
}

/// Logs the end of a program run (not of a callback) when [`Machine::site_log`] is on.
#[inline]
fn note_exit(m: &mut Machine, pc: usize, r0: u64) {
    let w = Writer::new(pc, m.run.program);
    if let Some(log) = &mut m.site_log {
        log.exits.push((w, r0));
    }
}

/// Logs a store into the ruled context (`CHECK` runs with [`Machine::site_log`] on).
#[inline(never)]
fn note_ctx_store(m: &mut Machine, a: u64, size: u64, w: Writer) {
    let (id, off) = super::split_pointer(a);
    if m.run.ctx_rule.is_some_and(|(r, ..)| r == id)
        && let Some(log) = &mut m.site_log
    {
        log.ctx_stores.push((off, size, w));
    }
}

/// The context rule's verdict on an access at `a` (Allow for anything but the ruled context).
#[inline(never)]
fn ctx_access(m: &Machine, a: u64, size: u64, write: bool) -> Access {
    let Some((region, rule, tag)) = m.run.ctx_rule else {
        return Access::Allow;
    };
    let (id, off) = super::split_pointer(a);
    if id != region || off < 0 || off > i64::from(u32::MAX) {
        // Not the context, or out of it: the memory check reports it.
        return Access::Allow;
    }
    rule(off as u32, size as u32, write, tag)
}

fn ctx_denied(a: u64, size: u64, write: bool, reason: &'static str) -> FaultKind {
    FaultKind::Context {
        offset: super::split_pointer(a).1,
        size,
        write,
        reason,
    }
}

/// `CHECK`: apply [`RunState::ctx_rule`] to every access (a separate instance, so runs without
/// a ruled context pay nothing for it).
fn exec<const COVER: bool, const CHECK: bool>(
    m: &mut Machine,
    image: &Image,
    func: u32,
    args: [u64; 5],
) -> Result<u64, Fault> {
    let base = m.run.frames.len();
    let mut regs = [0u64; 16];
    regs[1..6].copy_from_slice(&args);
    match push_frame(m, image, func, u32::MAX, [0; 4]) {
        Ok(fp) => regs[10] = fp,
        Err(k) => return Err(locate(m, image, m.run.cur_pc, k)),
    }
    let ops = &image.ops[..];
    let mut pc = image.funcs[func as usize].entry as usize;
    let mut left = m.run.budget_left;
    // The running program's part of every store's [`Writer`], kept in a local so that a store
    // pays two ALU operations for it; it changes with tail calls.
    let mut program = Writer::program_bits(m.run.program);

    macro_rules! fail {
        ($at:expr, $kind:expr) => {{
            m.run.budget_left = left;
            let kind = $kind;
            m.run.frames.truncate(base);
            m.run.stack_used = m.run.frames.iter().map(|f| f.stack).sum();
            return Err(locate(m, image, $at, kind));
        }};
    }
    macro_rules! mem {
        ($at:expr, $e:expr) => {
            match $e {
                Ok(v) => v,
                Err(e) => fail!($at, FaultKind::Memory(e)),
            }
        };
    }
    loop {
        let cur = pc;
        if left == 0 {
            fail!(
                cur,
                FaultKind::Budget {
                    budget: m.config.insn_budget
                }
            );
        }
        left -= 1;
        let op = ops[cur];
        pc = cur + 1;
        if COVER {
            m.run.coverage[cur] = true;
        }
        let d = (op.dst & 15) as usize;
        let s = (op.src & 15) as usize;
        let k = op.imm as u64;
        macro_rules! ld {
            ($a:expr, $n:expr) => {{
                let a = $a;
                if CHECK && let Access::Deny(reason) = ctx_access(m, a, $n, false) {
                    fail!(cur, ctx_denied(a, $n, false, reason));
                }
                mem!(cur, m.memory.load(a, $n))
            }};
        }
        macro_rules! st {
            ($a:expr, $n:expr, $v:expr) => {{
                let a = $a;
                let go = !CHECK
                    || match ctx_access(m, a, $n, true) {
                        Access::Allow => true,
                        Access::Skip => false,
                        Access::Deny(reason) => fail!(cur, ctx_denied(a, $n, true, reason)),
                    };
                if go {
                    let w = Writer::at(program, cur);
                    mem!(cur, m.memory.store_by(a, $n, $v, w));
                    if CHECK && m.site_log.is_some() {
                        note_ctx_store(m, a, $n, w);
                    }
                }
            }};
        }
        macro_rules! jmp {
            ($c:expr) => {
                if $c {
                    pc = op.target as usize;
                }
            };
        }
        match op.code {
            Code::Add64K => regs[d] = regs[d].wrapping_add(k),
            Code::Add64X => regs[d] = regs[d].wrapping_add(regs[s]),
            Code::Sub64K => regs[d] = regs[d].wrapping_sub(k),
            Code::Sub64X => regs[d] = regs[d].wrapping_sub(regs[s]),
            Code::Mul64K => regs[d] = regs[d].wrapping_mul(k),
            Code::Mul64X => regs[d] = regs[d].wrapping_mul(regs[s]),
            Code::Div64K => regs[d] = regs[d].checked_div(k).unwrap_or(0),
            Code::Div64X => regs[d] = regs[d].checked_div(regs[s]).unwrap_or(0),
            Code::SDiv64K => regs[d] = sdiv64(regs[d], k),
            Code::SDiv64X => regs[d] = sdiv64(regs[d], regs[s]),
            Code::Mod64K => regs[d] = regs[d].checked_rem(k).unwrap_or(regs[d]),
            Code::Mod64X => regs[d] = regs[d].checked_rem(regs[s]).unwrap_or(regs[d]),
            Code::SMod64K => regs[d] = smod64(regs[d], k),
            Code::SMod64X => regs[d] = smod64(regs[d], regs[s]),
            Code::Or64K => regs[d] |= k,
            Code::Or64X => regs[d] |= regs[s],
            Code::And64K => regs[d] &= k,
            Code::And64X => regs[d] &= regs[s],
            Code::Xor64K => regs[d] ^= k,
            Code::Xor64X => regs[d] ^= regs[s],
            Code::Lsh64K => regs[d] = regs[d].wrapping_shl(k as u32),
            Code::Lsh64X => regs[d] = regs[d].wrapping_shl(regs[s] as u32),
            Code::Rsh64K => regs[d] = regs[d].wrapping_shr(k as u32),
            Code::Rsh64X => regs[d] = regs[d].wrapping_shr(regs[s] as u32),
            Code::Arsh64K => regs[d] = (regs[d] as i64).wrapping_shr(k as u32) as u64,
            Code::Arsh64X => regs[d] = (regs[d] as i64).wrapping_shr(regs[s] as u32) as u64,
            Code::Mov64K => regs[d] = k,
            Code::Mov64X => regs[d] = regs[s],
            Code::Add32K => regs[d] = (regs[d] as u32).wrapping_add(k as u32) as u64,
            Code::Add32X => regs[d] = (regs[d] as u32).wrapping_add(regs[s] as u32) as u64,
            Code::Sub32K => regs[d] = (regs[d] as u32).wrapping_sub(k as u32) as u64,
            Code::Sub32X => regs[d] = (regs[d] as u32).wrapping_sub(regs[s] as u32) as u64,
            Code::Mul32K => regs[d] = (regs[d] as u32).wrapping_mul(k as u32) as u64,
            Code::Mul32X => regs[d] = (regs[d] as u32).wrapping_mul(regs[s] as u32) as u64,
            Code::Div32K => regs[d] = (regs[d] as u32).checked_div(k as u32).unwrap_or(0) as u64,
            Code::Div32X => {
                regs[d] = (regs[d] as u32).checked_div(regs[s] as u32).unwrap_or(0) as u64
            }
            Code::SDiv32K => regs[d] = sdiv32(regs[d], k),
            Code::SDiv32X => regs[d] = sdiv32(regs[d], regs[s]),
            // A 32-bit modulo by zero leaves the low half and, like every ALU32 result,
            // clears the high half (the verifier patches in a `w = w` move).
            Code::Mod32K => {
                let a = regs[d] as u32;
                regs[d] = a.checked_rem(k as u32).unwrap_or(a) as u64
            }
            Code::Mod32X => {
                let a = regs[d] as u32;
                regs[d] = a.checked_rem(regs[s] as u32).unwrap_or(a) as u64
            }
            Code::SMod32K => regs[d] = smod32(regs[d], k),
            Code::SMod32X => regs[d] = smod32(regs[d], regs[s]),
            Code::Or32K => regs[d] = (regs[d] as u32 | k as u32) as u64,
            Code::Or32X => regs[d] = (regs[d] as u32 | regs[s] as u32) as u64,
            Code::And32K => regs[d] = (regs[d] as u32 & k as u32) as u64,
            Code::And32X => regs[d] = (regs[d] as u32 & regs[s] as u32) as u64,
            Code::Xor32K => regs[d] = (regs[d] as u32 ^ k as u32) as u64,
            Code::Xor32X => regs[d] = (regs[d] as u32 ^ regs[s] as u32) as u64,
            Code::Lsh32K => regs[d] = (regs[d] as u32).wrapping_shl(k as u32) as u64,
            Code::Lsh32X => regs[d] = (regs[d] as u32).wrapping_shl(regs[s] as u32) as u64,
            Code::Rsh32K => regs[d] = (regs[d] as u32).wrapping_shr(k as u32) as u64,
            Code::Rsh32X => regs[d] = (regs[d] as u32).wrapping_shr(regs[s] as u32) as u64,
            Code::Arsh32K => regs[d] = (regs[d] as i32).wrapping_shr(k as u32) as u32 as u64,
            Code::Arsh32X => regs[d] = (regs[d] as i32).wrapping_shr(regs[s] as u32) as u32 as u64,
            Code::Mov32K => regs[d] = k as u32 as u64,
            Code::Mov32X => regs[d] = regs[s] as u32 as u64,
            Code::Neg64 => regs[d] = regs[d].wrapping_neg(),
            Code::Neg32 => regs[d] = (regs[d] as u32).wrapping_neg() as u64,
            Code::MovSx64 => {
                regs[d] = match op.imm {
                    8 => regs[s] as i8 as i64 as u64,
                    16 => regs[s] as i16 as i64 as u64,
                    _ => regs[s] as i32 as i64 as u64,
                }
            }
            Code::MovSx32 => {
                regs[d] = match op.imm {
                    8 => regs[s] as i8 as i32 as u32 as u64,
                    _ => regs[s] as i16 as i32 as u32 as u64,
                }
            }
            Code::Trunc16 => regs[d] = regs[d] as u16 as u64,
            Code::Trunc32 => regs[d] = regs[d] as u32 as u64,
            Code::Swap16 => regs[d] = (regs[d] as u16).swap_bytes() as u64,
            Code::Swap32 => regs[d] = (regs[d] as u32).swap_bytes() as u64,
            Code::Swap64 => regs[d] = regs[d].swap_bytes(),
            Code::Nop => {}
            Code::LdImm => regs[d] = k,
            Code::LdxB => {
                regs[d] = ld!(addr(regs[s], op.off), 1);
            }
            Code::LdxH => {
                regs[d] = ld!(addr(regs[s], op.off), 2);
            }
            Code::LdxW => {
                regs[d] = ld!(addr(regs[s], op.off), 4);
            }
            Code::LdxDW => {
                regs[d] = ld!(addr(regs[s], op.off), 8);
            }
            Code::LdxsB => {
                regs[d] = ld!(addr(regs[s], op.off), 1) as i8 as i64 as u64;
            }
            Code::LdxsH => {
                regs[d] = ld!(addr(regs[s], op.off), 2) as i16 as i64 as u64;
            }
            Code::LdxsW => {
                regs[d] = ld!(addr(regs[s], op.off), 4) as i32 as i64 as u64;
            }
            Code::StB => st!(addr(regs[d], op.off), 1, k),
            Code::StH => st!(addr(regs[d], op.off), 2, k),
            Code::StW => st!(addr(regs[d], op.off), 4, k),
            Code::StDW => st!(addr(regs[d], op.off), 8, k),
            Code::StxB => st!(addr(regs[d], op.off), 1, regs[s]),
            Code::StxH => st!(addr(regs[d], op.off), 2, regs[s]),
            Code::StxW => st!(addr(regs[d], op.off), 4, regs[s]),
            Code::StxDW => st!(addr(regs[d], op.off), 8, regs[s]),
            Code::Atomic => {
                let bytes = u64::from(op.target & 0xff);
                let aop = ATOMIC_OPS[(op.target >> 8) as usize];
                let a = addr(regs[d], op.off);
                // The verifier refuses atomics on the context whatever the field.
                if CHECK
                    && m.run
                        .ctx_rule
                        .is_some_and(|(r, ..)| super::split_pointer(a).0 == r)
                {
                    fail!(
                        cur,
                        ctx_denied(a, bytes, true, "atomic operations on the context")
                    );
                }
                let old = mem!(cur, m.memory.load(a, bytes));
                if a & (bytes - 1) != 0 {
                    fail!(
                        cur,
                        FaultKind::Memory(super::AccessFault::Misaligned {
                            kind: m.memory.kind_of(a).unwrap_or(RegionKind::Null),
                            offset: super::split_pointer(a).1,
                            size: bytes,
                        })
                    );
                }
                let mask = if bytes == 8 {
                    u64::MAX
                } else {
                    u32::MAX as u64
                };
                let v = regs[s] & mask;
                let new = match aop {
                    AtomicOp::Add | AtomicOp::FetchAdd => Some(old.wrapping_add(v) & mask),
                    AtomicOp::Or | AtomicOp::FetchOr => Some(old | v),
                    AtomicOp::And | AtomicOp::FetchAnd => Some(old & v),
                    AtomicOp::Xor | AtomicOp::FetchXor => Some(old ^ v),
                    AtomicOp::Xchg => Some(v),
                    AtomicOp::CmpXchg => (regs[0] & mask == old).then_some(v),
                };
                if let Some(new) = new {
                    let w = Writer::at(program, cur);
                    mem!(cur, m.memory.store_by(a, bytes, new, w));
                }
                match aop {
                    AtomicOp::CmpXchg => regs[0] = old,
                    a if a.fetches() => regs[s] = old,
                    _ => {}
                }
            }
            Code::LdPkt => {
                let bytes = u64::from(op.target);
                let mut off = op.imm;
                if op.src != 0xff {
                    off = off.wrapping_add(regs[s] as u32 as i32 as i64);
                }
                // `LD_ABS`/`LD_IND` read the packet in network byte order; out of bounds the
                // kernel ends the program with r0 = 0.
                let v = m
                    .packet()
                    .filter(|_| off >= 0)
                    .and_then(|p| m.memory.read_bytes(p.wrapping_add(off as u64), bytes).ok())
                    .map(|b| b.iter().fold(0u64, |acc, &x| acc << 8 | u64::from(x)));
                match v {
                    Some(v) => regs[0] = v,
                    None => {
                        m.run.budget_left = left;
                        m.run.frames.truncate(base);
                        m.run.stack_used = m.run.frames.iter().map(|f| f.stack).sum();
                        if base == 0 {
                            note_exit(m, cur, 0);
                        }
                        return Ok(0);
                    }
                }
            }
            Code::Ja => pc = op.target as usize,
            Code::MayGoto => {
                let f = m.run.frames.last_mut().expect("a frame is always active");
                if f.may_goto == 0 {
                    pc = op.target as usize;
                } else {
                    f.may_goto -= 1;
                }
            }
            Code::Jeq64K => jmp!(regs[d] == k),
            Code::Jeq64X => jmp!(regs[d] == regs[s]),
            Code::Jne64K => jmp!(regs[d] != k),
            Code::Jne64X => jmp!(regs[d] != regs[s]),
            Code::Jgt64K => jmp!(regs[d] > k),
            Code::Jgt64X => jmp!(regs[d] > regs[s]),
            Code::Jge64K => jmp!(regs[d] >= k),
            Code::Jge64X => jmp!(regs[d] >= regs[s]),
            Code::Jlt64K => jmp!(regs[d] < k),
            Code::Jlt64X => jmp!(regs[d] < regs[s]),
            Code::Jle64K => jmp!(regs[d] <= k),
            Code::Jle64X => jmp!(regs[d] <= regs[s]),
            Code::Jsgt64K => jmp!((regs[d] as i64) > k as i64),
            Code::Jsgt64X => jmp!((regs[d] as i64) > regs[s] as i64),
            Code::Jsge64K => jmp!((regs[d] as i64) >= k as i64),
            Code::Jsge64X => jmp!((regs[d] as i64) >= regs[s] as i64),
            Code::Jslt64K => jmp!((regs[d] as i64) < k as i64),
            Code::Jslt64X => jmp!((regs[d] as i64) < regs[s] as i64),
            Code::Jsle64K => jmp!((regs[d] as i64) <= k as i64),
            Code::Jsle64X => jmp!((regs[d] as i64) <= regs[s] as i64),
            Code::Jset64K => jmp!(regs[d] & k != 0),
            Code::Jset64X => jmp!(regs[d] & regs[s] != 0),
            Code::Jeq32K => jmp!(regs[d] as u32 == k as u32),
            Code::Jeq32X => jmp!(regs[d] as u32 == regs[s] as u32),
            Code::Jne32K => jmp!(regs[d] as u32 != k as u32),
            Code::Jne32X => jmp!(regs[d] as u32 != regs[s] as u32),
            Code::Jgt32K => jmp!(regs[d] as u32 > k as u32),
            Code::Jgt32X => jmp!(regs[d] as u32 > regs[s] as u32),
            Code::Jge32K => jmp!(regs[d] as u32 >= k as u32),
            Code::Jge32X => jmp!(regs[d] as u32 >= regs[s] as u32),
            Code::Jlt32K => jmp!((regs[d] as u32) < k as u32),
            Code::Jlt32X => jmp!((regs[d] as u32) < regs[s] as u32),
            Code::Jle32K => jmp!(regs[d] as u32 <= k as u32),
            Code::Jle32X => jmp!(regs[d] as u32 <= regs[s] as u32),
            Code::Jsgt32K => jmp!(regs[d] as i32 > k as i32),
            Code::Jsgt32X => jmp!(regs[d] as i32 > regs[s] as i32),
            Code::Jsge32K => jmp!(regs[d] as i32 >= k as i32),
            Code::Jsge32X => jmp!(regs[d] as i32 >= regs[s] as i32),
            Code::Jslt32K => jmp!((regs[d] as i32) < k as i32),
            Code::Jslt32X => jmp!((regs[d] as i32) < regs[s] as i32),
            Code::Jsle32K => jmp!(regs[d] as i32 <= k as i32),
            Code::Jsle32X => jmp!(regs[d] as i32 <= regs[s] as i32),
            Code::Jset32K => jmp!(regs[d] as u32 & k as u32 != 0),
            Code::Jset32X => jmp!(regs[d] as u32 & regs[s] as u32 != 0),
            Code::Call => {
                let saved = [regs[6], regs[7], regs[8], regs[9]];
                match push_frame(m, image, op.target, pc as u32, saved) {
                    Ok(fp) => regs[10] = fp,
                    Err(k) => fail!(cur, k),
                }
                pc = image.funcs[op.target as usize].entry as usize;
            }
            Code::CallHelper => {
                m.run.budget_left = left;
                m.run.cur_pc = cur;
                let h = &image.helpers[op.target as usize];
                // What the helper writes into map values is the call's doing.
                let outer = m.memory.set_writer(Writer::at(program, cur));
                let r = super::helpers::call_helper(
                    m,
                    h,
                    [regs[1], regs[2], regs[3], regs[4], regs[5]],
                );
                m.memory.set_writer(outer);
                // A callback the helper ran may have tail-called.
                program = Writer::program_bits(m.run.program);
                left = m.run.budget_left;
                match r {
                    Ok(v) => regs[0] = v,
                    Err(HelperError::Fault(k)) => fail!(cur, k),
                    Err(HelperError::Located(f)) => {
                        m.run.frames.truncate(base);
                        m.run.stack_used = m.run.frames.iter().map(|f| f.stack).sum();
                        return Err(*f);
                    }
                }
            }
            Code::TailCall => {
                m.run.cur_pc = cur;
                let target = match super::helpers::tail_call_target(m, regs[2], regs[3]) {
                    Ok(t) => t,
                    Err(k) => fail!(cur, k),
                };
                if let Some(target) = target {
                    let depth = m.run.frames.len() - 1;
                    let old = m.run.frames[depth].stack;
                    let new = image.funcs[target].stack;
                    let total = m.run.stack_used - old + new;
                    if total > MAX_BPF_STACK {
                        fail!(
                            cur,
                            FaultKind::StackSize {
                                frames: depth + 1,
                                bytes: total
                            }
                        );
                    }
                    m.run.stack_used = total;
                    let f = &mut m.run.frames[depth];
                    f.func = target as u32;
                    f.stack = new;
                    f.may_goto = BPF_MAX_LOOPS;
                    let region = m.run.stack_regions[depth];
                    clear_stack(&mut m.memory, region, new, m.config.stack_fill);
                    if let Some(p) = image.programs.iter().position(|p| p.function == target) {
                        m.run.program = p;
                        program = Writer::program_bits(p);
                    }
                    pc = image.funcs[target].entry as usize;
                }
            }
            Code::Exit => {
                let f = m.run.frames.pop().expect("a frame is always active");
                m.run.stack_used -= f.stack;
                if m.run.frames.len() == base {
                    m.run.budget_left = left;
                    if base == 0 {
                        note_exit(m, cur, regs[0]);
                    }
                    return Ok(regs[0]);
                }
                regs[6..10].copy_from_slice(&f.saved);
                regs[10] = pointer(m.run.stack_regions[m.run.frames.len() - 1], MAX_BPF_STACK);
                pc = f.ret_pc as usize;
            }
        }
    }
}

#[inline(always)]
fn addr(base: u64, off: i16) -> u64 {
    base.wrapping_add(off as i64 as u64)
}

#[inline]
fn sdiv64(a: u64, b: u64) -> u64 {
    if b == 0 {
        0
    } else {
        (a as i64).wrapping_div(b as i64) as u64
    }
}

#[inline]
fn smod64(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        (a as i64).wrapping_rem(b as i64) as u64
    }
}

#[inline]
fn sdiv32(a: u64, b: u64) -> u64 {
    let (a, b) = (a as i32, b as i32);
    if b == 0 {
        0
    } else {
        a.wrapping_div(b) as u32 as u64
    }
}

#[inline]
fn smod32(a: u64, b: u64) -> u64 {
    let (a, b) = (a as i32, b as i32);
    if b == 0 {
        a as u32 as u64
    } else {
        a.wrapping_rem(b) as u32 as u64
    }
}

impl Machine {
    /// Turns recording of executed instructions on (cleared) or off. Recording accumulates over
    /// runs until turned off.
    pub fn set_coverage(&mut self, on: bool) {
        self.run.coverage = if on {
            vec![false; self.image.ops.len()]
        } else {
            Vec::new()
        };
    }

    /// The (function, slot) of every instruction executed since coverage was turned on, in
    /// function and slot order. Function indices are [`Module::functions`]'.
    pub fn coverage(&self) -> Vec<(FuncIndex, usize)> {
        self.run
            .coverage
            .iter()
            .zip(&self.image.loc)
            .filter(|(hit, _)| **hit)
            .map(|(_, &(f, slot))| (f as usize, slot as usize))
            .collect()
    }
}

/// For every call in `insns` (by slot): the value register `reg` holds there if it is the same
/// constant on every path from the function's entry (moves of immediates and between
/// registers; anything else, and calls for r0-r5, make it unknown), as far as the verifier's
/// "known constant" goes for the simple cases clang emits.
fn known_constants_at_calls(
    insns: &[crate::insn::SlotInsn],
    reg: Reg,
) -> HashMap<usize, Option<i64>> {
    type Regs = [Option<i64>; 11];
    let mut out = HashMap::new();
    let Ok(cfg) = crate::analysis::cfg::Cfg::build(insns) else {
        return out;
    };
    let nb = cfg.blocks.len();
    let mut entry: Vec<Option<Regs>> = vec![None; nb];
    if nb == 0 {
        return out;
    }
    entry[0] = Some([None; 11]);
    let step = |r: &mut Regs, insn: &Insn| match *insn {
        Insn::Alu {
            width,
            op: AluOp::Mov,
            dst,
            src,
        } => {
            let v = match src {
                Src::Imm(k) => Some(i64::from(k)),
                Src::Reg(x) => r[x.index() as usize],
            };
            r[dst.index() as usize] = match width {
                Width::W64 => v,
                Width::W32 => v.map(|v| i64::from(v as u32)),
            };
        }
        _ => {
            for w in insn.regs_written().iter() {
                r[w.index() as usize] = None;
            }
        }
    };
    let mut work: std::collections::BTreeSet<usize> = [0].into();
    while let Some(b) = work.pop_first() {
        let Some(mut r) = entry[b] else { continue };
        let blk = &cfg.blocks[b];
        for si in &insns[blk.start..blk.end] {
            step(&mut r, &si.insn);
        }
        for &s in &blk.succs {
            let new = match entry[s] {
                None => r,
                Some(old) => std::array::from_fn(|k| if old[k] == r[k] { old[k] } else { None }),
            };
            if entry[s] != Some(new) {
                entry[s] = Some(new);
                work.insert(s);
            }
        }
    }
    for (b, blk) in cfg.blocks.iter().enumerate() {
        let Some(mut r) = entry[b] else { continue };
        for si in &insns[blk.start..blk.end] {
            if matches!(si.insn, Insn::Call(_)) {
                out.insert(si.slot, r[reg.index() as usize]);
            }
            step(&mut r, &si.insn);
        }
    }
    out
}
