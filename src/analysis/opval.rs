//! Abstract values of the op analysis.
//!
//! The op is one byte (the kernel zero-extends its u8 `op`), so every op-derived scalar is kept as
//! a vector of its concrete values for each of the 256 op bytes ([`OpVec`]), and every abstract
//! state carries the set of op bytes that can reach it ([`OpSet`]). Evaluating the program "once
//! per op value" then costs one pass: ALU operations apply element-wise with the kernel's exact
//! 32/64-bit semantics, and a conditional jump on an op-derived value splits the op set by
//! evaluating the condition for each op. Everything not derived from the op is either a known
//! constant or unknown; pointers are tracked by kind (ctx, stack frame + offset, map, ...).

use std::rc::Rc;

use crate::insn::{AluOp, ByteOrder, JmpCond, NarrowSize, SwapBits, Width};

/// A set of op bytes (0..=255).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct OpSet(pub [u64; 4]);

impl OpSet {
    pub const EMPTY: OpSet = OpSet([0; 4]);
    pub const ALL: OpSet = OpSet([u64::MAX; 4]);

    pub fn single(op: u8) -> OpSet {
        let mut s = OpSet::EMPTY;
        s.insert(op);
        s
    }

    /// Ops `lo..=hi`.
    pub fn range(lo: u8, hi: u8) -> OpSet {
        let mut s = OpSet::EMPTY;
        for o in lo..=hi {
            s.insert(o);
        }
        s
    }

    pub fn insert(&mut self, op: u8) {
        self.0[(op >> 6) as usize] |= 1 << (op & 63);
    }

    pub fn contains(&self, op: u8) -> bool {
        self.0[(op >> 6) as usize] & (1 << (op & 63)) != 0
    }

    pub fn union(self, o: OpSet) -> OpSet {
        OpSet(std::array::from_fn(|i| self.0[i] | o.0[i]))
    }

    pub fn inter(self, o: OpSet) -> OpSet {
        OpSet(std::array::from_fn(|i| self.0[i] & o.0[i]))
    }

    pub fn minus(self, o: OpSet) -> OpSet {
        OpSet(std::array::from_fn(|i| self.0[i] & !o.0[i]))
    }

    pub fn is_empty(&self) -> bool {
        self.0 == [0; 4]
    }

    pub fn len(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }

    pub fn iter(self) -> impl Iterator<Item = u8> {
        (0..=255u8).filter(move |&o| self.contains(o))
    }
}

impl std::fmt::Debug for OpSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v: Vec<u8> = self.iter().collect();
        write!(f, "{v:?}")
    }
}

/// A scalar that depends on the op: its value for each op byte in `known`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct OpVec {
    pub known: OpSet,
    pub vals: [u64; 256],
}

impl OpVec {
    /// The op itself: `op` for every op byte.
    pub fn identity() -> OpVec {
        OpVec {
            known: OpSet::ALL,
            vals: std::array::from_fn(|i| i as u64),
        }
    }

    pub fn get(&self, op: u8) -> Option<u64> {
        self.known.contains(op).then(|| self.vals[op as usize])
    }
}

impl std::fmt::Debug for OpVec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v: Vec<(u8, u64)> = self
            .known
            .iter()
            .map(|o| (o, self.vals[o as usize]))
            .take(8)
            .collect();
        write!(f, "PerOp{v:?}..")
    }
}

/// An offset into a map value that is not a constant.
pub const ANY_OFF: i64 = i64::MIN;

/// Whether two offsets into a map value may name the same field.
pub fn may_alias(a: i64, b: i64) -> bool {
    a == b || a == ANY_OFF || b == ANY_OFF
}

/// Memory the analysis does not follow.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Mem {
    /// A value of the given map ([`super::Module::maps`]), at a byte offset into it
    /// ([`ANY_OFF`] when not constant).
    MapValue(u32, i64),
    /// Global data (`.data`, `.bss`, `.rodata`): `.rodata` is never folded, its `const volatile`
    /// values are set at load time.
    Data,
    /// Anything else (ring buffer records, helper results, kernel memory).
    Other,
}

/// An abstract value.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Val {
    /// Nothing known (any scalar, or a pointer the analysis does not follow).
    Unknown,
    Const(u64),
    /// A scalar derived from the op (or from the path, which depends on the op).
    PerOp(Rc<OpVec>),
    /// The ctx pointer plus a constant offset.
    Ctx(i64),
    /// What `bpf_cast_to_kern_ctx` returns: `struct bpf_sock_ops_kern *`.
    KernCtx,
    /// A pointer into stack frame `frame` (0 = the program's) at `off` from its frame pointer,
    /// `None` when the offset is not constant.
    Stack {
        frame: u16,
        off: Option<i64>,
    },
    /// A map (`ld_imm64` of a map).
    Map(u32),
    Mem(Mem),
    /// A scalar read from a value of map `.0` at offset `.1` (unknown, but where it comes from
    /// is kept to tell when the op round-trips through a map).
    MapLoad(u32, i64),
    /// `skops->sk` (a `struct bpf_sock *`) plus an offset.
    Sock(i64),
    /// `skops->skb_data` / `skb_data_end`.
    Packet,
    /// The address of a function (a callback).
    Func(u32),
}

impl Val {
    /// The concrete value for `op`, when known.
    pub fn at(&self, op: u8) -> Option<u64> {
        match self {
            Val::Const(c) => Some(*c),
            Val::PerOp(v) => v.get(op),
            _ => None,
        }
    }

    pub fn is_scalarish(&self) -> bool {
        matches!(
            self,
            Val::Unknown | Val::Const(_) | Val::PerOp(_) | Val::MapLoad(..)
        )
    }

    pub fn is_op_derived(&self) -> bool {
        matches!(self, Val::PerOp(_))
    }

    /// Element-wise map over a scalar.
    pub fn map(&self, f: impl Fn(u64) -> u64) -> Val {
        match self {
            Val::Const(c) => Val::Const(f(*c)),
            Val::PerOp(v) => {
                let mut out = OpVec {
                    known: v.known,
                    vals: [0; 256],
                };
                for o in v.known.iter() {
                    out.vals[o as usize] = f(v.vals[o as usize]);
                }
                Val::PerOp(Rc::new(out))
            }
            Val::MapLoad(m, o) => Val::MapLoad(*m, *o),
            _ => Val::Unknown,
        }
    }

    /// Element-wise combination of two scalars; `Unknown` if either is not a known scalar.
    pub fn zip(&self, other: &Val, f: impl Fn(u64, u64) -> u64) -> Val {
        match (self, other) {
            (Val::Const(a), Val::Const(b)) => Val::Const(f(*a, *b)),
            (Val::Const(_) | Val::PerOp(_), Val::Const(_) | Val::PerOp(_)) => {
                let known = known_of(self).inter(known_of(other));
                let mut out = OpVec {
                    known,
                    vals: [0; 256],
                };
                for o in known.iter() {
                    out.vals[o as usize] = f(
                        self.at(o).unwrap_or_default(),
                        other.at(o).unwrap_or_default(),
                    );
                }
                Val::PerOp(Rc::new(out))
            }
            // Arithmetic on a map value keeps its origin.
            (Val::MapLoad(m, f), o) | (o, Val::MapLoad(m, f)) if o.is_scalarish() => match o {
                Val::MapLoad(n, g) if (n, g) != (m, f) => Val::Unknown,
                _ => Val::MapLoad(*m, *f),
            },
            _ => Val::Unknown,
        }
    }

    /// Keeps the low `bytes` bytes of a scalar (a narrow store or load); pointers survive only
    /// 8-byte accesses.
    pub fn truncate(&self, bytes: u32) -> Val {
        if bytes >= 8 {
            return self.clone();
        }
        let mask = (1u64 << (bytes * 8)) - 1;
        if self.is_scalarish() {
            self.map(|v| v & mask)
        } else {
            Val::Unknown
        }
    }
}

fn known_of(v: &Val) -> OpSet {
    match v {
        Val::Const(_) => OpSet::ALL,
        Val::PerOp(p) => p.known,
        _ => OpSet::EMPTY,
    }
}

/// Joins `a` (valid on the ops `sa`) with `b` (valid on `sb`): per op, the value of the side
/// that can carry that op, or unknown where both can and they differ.
pub fn join(a: &Val, sa: OpSet, b: &Val, sb: OpSet) -> Val {
    if a == b {
        return a.clone();
    }
    match (a, b) {
        (
            Val::Unknown | Val::Const(_) | Val::PerOp(_) | Val::MapLoad(..),
            Val::Unknown | Val::Const(_) | Val::PerOp(_) | Val::MapLoad(..),
        ) => {
            let mut out = OpVec {
                known: OpSet::EMPTY,
                vals: [0; 256],
            };
            for o in sa.union(sb).iter() {
                let v = match (sa.contains(o), sb.contains(o)) {
                    (true, false) => a.at(o),
                    (false, true) => b.at(o),
                    _ => match (a.at(o), b.at(o)) {
                        (Some(x), Some(y)) if x == y => Some(x),
                        _ => None,
                    },
                };
                if let Some(v) = v {
                    out.known.insert(o);
                    out.vals[o as usize] = v;
                }
            }
            if out.known.is_empty() {
                Val::Unknown
            } else {
                Val::PerOp(Rc::new(out))
            }
        }
        (Val::Stack { frame: f1, .. }, Val::Stack { frame: f2, .. }) if f1 == f2 => Val::Stack {
            frame: *f1,
            off: None,
        },
        (Val::Mem(Mem::MapValue(x, _)), Val::Mem(Mem::MapValue(y, _))) if x == y => {
            Val::Mem(Mem::MapValue(*x, ANY_OFF))
        }
        (Val::Mem(_), Val::Mem(_)) => Val::Mem(Mem::Other),
        (Val::Sock(_), Val::Sock(_)) => Val::Sock(-1),
        _ => Val::Unknown,
    }
}

fn sext(v: u64, bits: u32) -> u64 {
    let s = 64 - bits;
    (((v << s) as i64) >> s) as u64
}

/// The kernel's ALU semantics on concrete values (division by 0 gives 0, modulo by 0 keeps the
/// dividend, shift counts are masked as the JITs do). 32-bit results are zero-extended.
pub fn eval_alu(width: Width, op: AluOp, a: u64, b: u64) -> u64 {
    match width {
        Width::W64 => match op {
            AluOp::Add => a.wrapping_add(b),
            AluOp::Sub => a.wrapping_sub(b),
            AluOp::Mul => a.wrapping_mul(b),
            AluOp::Div => a.checked_div(b).unwrap_or(0),
            AluOp::SDiv => {
                if b == 0 {
                    0
                } else {
                    (a as i64).wrapping_div(b as i64) as u64
                }
            }
            AluOp::Mod => a.checked_rem(b).unwrap_or(a),
            AluOp::SMod => {
                if b == 0 {
                    a
                } else {
                    (a as i64).wrapping_rem(b as i64) as u64
                }
            }
            AluOp::Or => a | b,
            AluOp::And => a & b,
            AluOp::Xor => a ^ b,
            AluOp::Lsh => a << (b & 63),
            AluOp::Rsh => a >> (b & 63),
            AluOp::Arsh => ((a as i64) >> (b & 63)) as u64,
            AluOp::Mov => b,
        },
        Width::W32 => {
            let (x, y) = (a as u32, b as u32);
            (match op {
                AluOp::Add => x.wrapping_add(y),
                AluOp::Sub => x.wrapping_sub(y),
                AluOp::Mul => x.wrapping_mul(y),
                AluOp::Div => x.checked_div(y).unwrap_or(0),
                AluOp::SDiv => {
                    if y == 0 {
                        0
                    } else {
                        (x as i32).wrapping_div(y as i32) as u32
                    }
                }
                AluOp::Mod => x.checked_rem(y).unwrap_or(x),
                AluOp::SMod => {
                    if y == 0 {
                        x
                    } else {
                        (x as i32).wrapping_rem(y as i32) as u32
                    }
                }
                AluOp::Or => x | y,
                AluOp::And => x & y,
                AluOp::Xor => x ^ y,
                AluOp::Lsh => x << (y & 31),
                AluOp::Rsh => x >> (y & 31),
                AluOp::Arsh => ((x as i32) >> (y & 31)) as u32,
                AluOp::Mov => y,
            }) as u64
        }
    }
}

pub fn eval_neg(width: Width, a: u64) -> u64 {
    match width {
        Width::W64 => a.wrapping_neg(),
        Width::W32 => (a as u32).wrapping_neg() as u64,
    }
}

pub fn eval_end(order: ByteOrder, bits: SwapBits, a: u64) -> u64 {
    let n = bits.bits();
    let low = if n == 64 { a } else { a & ((1u64 << n) - 1) };
    match order {
        ByteOrder::Le => low,
        ByteOrder::Be | ByteOrder::Swap => match bits {
            SwapBits::B16 => (low as u16).swap_bytes() as u64,
            SwapBits::B32 => (low as u32).swap_bytes() as u64,
            SwapBits::B64 => low.swap_bytes(),
        },
    }
}

pub fn eval_movsx(width: Width, from: NarrowSize, a: u64) -> u64 {
    let v = sext(a, from.bits());
    match width {
        Width::W64 => v,
        Width::W32 => v as u32 as u64,
    }
}

/// Sign-extends a loaded narrow value (v4 `ldsx`).
pub fn eval_loadsx(size: NarrowSize, a: u64) -> u64 {
    sext(a, size.bits())
}

/// Whether `a cond b` holds, with jmp32 comparing the low 32 bits.
pub fn eval_cond(width: Width, cond: JmpCond, a: u64, b: u64) -> bool {
    let (ua, ub, sa, sb) = match width {
        Width::W64 => (a, b, a as i64, b as i64),
        Width::W32 => (
            a as u32 as u64,
            b as u32 as u64,
            a as u32 as i32 as i64,
            b as u32 as i32 as i64,
        ),
    };
    match cond {
        JmpCond::Eq => ua == ub,
        JmpCond::Ne => ua != ub,
        JmpCond::Gt => ua > ub,
        JmpCond::Ge => ua >= ub,
        JmpCond::Lt => ua < ub,
        JmpCond::Le => ua <= ub,
        JmpCond::Sgt => sa > sb,
        JmpCond::Sge => sa >= sb,
        JmpCond::Slt => sa < sb,
        JmpCond::Sle => sa <= sb,
        JmpCond::Set => ua & ub != 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opset_ops() {
        let a = OpSet::range(2, 5);
        assert_eq!(a.len(), 4);
        assert!(a.contains(2) && a.contains(5) && !a.contains(6));
        assert_eq!(a.minus(OpSet::single(3)).len(), 3);
        assert_eq!(OpSet::ALL.len(), 256);
        assert!(OpSet::single(200).contains(200));
    }

    #[test]
    fn alu_semantics() {
        assert_eq!(eval_alu(Width::W32, AluOp::Add, 0xffff_ffff, 2), 1);
        assert_eq!(eval_alu(Width::W64, AluOp::Div, 7, 0), 0);
        assert_eq!(eval_alu(Width::W64, AluOp::Mod, 7, 0), 7);
        assert_eq!(
            eval_alu(Width::W32, AluOp::Arsh, 0x8000_0000, 31),
            0xffff_ffff
        );
        assert_eq!(eval_end(ByteOrder::Be, SwapBits::B16, 0x1234), 0x3412);
        assert_eq!(eval_movsx(Width::W64, NarrowSize::B, 0xff), u64::MAX);
        assert!(eval_cond(Width::W32, JmpCond::Slt, 0xffff_ffff, 0));
        assert!(!eval_cond(Width::W64, JmpCond::Slt, 0xffff_ffff, 0));
    }

    #[test]
    fn join_keeps_per_op_values_on_disjoint_paths() {
        let j = join(
            &Val::Const(1),
            OpSet::single(4),
            &Val::Const(0),
            OpSet::single(8),
        );
        assert_eq!((j.at(4), j.at(8), j.at(5)), (Some(1), Some(0), None));
        let k = join(&Val::Const(1), OpSet::ALL, &Val::Const(0), OpSet::ALL);
        assert_eq!(k, Val::Unknown);
    }
}
