//! Jump re-encoding. Targets are instruction indices until here; offsets are computed from the
//! final layout. A conditional jump whose offset does not fit 16 bits becomes the inverted jump
//! over a `gotol` (ISA v4, Linux 6.6), a `goto` becomes a `gotol`.

use super::code::CInsn;
use crate::insn::{Insn, JmpCond};

/// A function's encoded instructions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub insns: Vec<Insn>,
    /// First slot of each input instruction.
    pub slot_of: Vec<usize>,
    /// Index in `insns` of each input instruction's first output instruction.
    pub index_of: Vec<usize>,
    pub slots: usize,
    /// Whether a `gotol` was needed.
    pub uses_gotol: bool,
}

fn invert(c: JmpCond) -> Option<JmpCond> {
    use JmpCond::*;
    Some(match c {
        Eq => Ne,
        Ne => Eq,
        Gt => Le,
        Le => Gt,
        Ge => Lt,
        Lt => Ge,
        Sgt => Sle,
        Sle => Sgt,
        Sge => Slt,
        Slt => Sge,
        Set => return None,
    })
}

/// Slots taken by instruction `c` in its long form.
fn long_slots(c: &CInsn) -> usize {
    match c.insn {
        Insn::Jmp { cond, .. } if invert(cond).is_some() => 2,
        // `if a & b goto +1; goto +1; gotol target`
        Insn::Jmp { .. } => 3,
        _ => 1,
    }
}

fn fits16(off: i64) -> bool {
    off >= i64::from(i16::MIN) && off <= i64::from(i16::MAX)
}

/// Lays out and encodes `code`. Errors name the instruction that cannot be encoded.
pub fn encode(code: &[CInsn]) -> Result<Encoded, String> {
    let n = code.len();
    let mut long = vec![false; n];
    for c in code {
        if c.insn.is_jump() && c.target.is_none_or(|t| t >= n) {
            return Err(format!(
                "jump without a target in a function of {n} instructions"
            ));
        }
    }
    loop {
        let mut slot_of = Vec::with_capacity(n + 1);
        let mut s = 0usize;
        for (i, c) in code.iter().enumerate() {
            slot_of.push(s);
            s += if long[i] {
                long_slots(c)
            } else {
                c.insn.slots()
            };
        }
        slot_of.push(s);
        let mut changed = false;
        for (i, c) in code.iter().enumerate() {
            let Some(t) = c.target else { continue };
            if long[i] {
                continue;
            }
            let off = slot_of[t] as i64 - slot_of[i] as i64 - 1;
            if !fits16(off) {
                if matches!(c.insn, Insn::MayGoto { .. }) {
                    return Err(format!(
                        "may_goto at instruction {i} needs an offset of {off} slots, beyond 16 bits"
                    ));
                }
                long[i] = true;
                changed = true;
            }
        }
        if changed {
            continue;
        }
        let mut out = Vec::with_capacity(s);
        let mut uses_gotol = false;
        let mut index_of = Vec::with_capacity(n);
        for (i, c) in code.iter().enumerate() {
            index_of.push(out.len());
            let Some(t) = c.target else {
                out.push(c.insn);
                continue;
            };
            let here = slot_of[i] as i64;
            let to = slot_of[t] as i64;
            if !long[i] {
                let off = (to - here - 1) as i16;
                out.push(match c.insn {
                    Insn::Ja { .. } | Insn::Gotol { .. } => Insn::Ja { off },
                    Insn::Jmp {
                        width,
                        cond,
                        dst,
                        src,
                        ..
                    } => Insn::Jmp {
                        width,
                        cond,
                        dst,
                        src,
                        off,
                    },
                    Insn::MayGoto { .. } => Insn::MayGoto { off },
                    other => other,
                });
                continue;
            }
            uses_gotol = true;
            match c.insn {
                Insn::Jmp {
                    width,
                    cond,
                    dst,
                    src,
                    ..
                } => match invert(cond) {
                    Some(inv) => {
                        out.push(Insn::Jmp {
                            width,
                            cond: inv,
                            dst,
                            src,
                            off: 1,
                        });
                        out.push(Insn::Gotol {
                            off: (to - here - 2) as i32,
                        });
                    }
                    None => {
                        out.push(Insn::Jmp {
                            width,
                            cond,
                            dst,
                            src,
                            off: 1,
                        });
                        out.push(Insn::Ja { off: 1 });
                        out.push(Insn::Gotol {
                            off: (to - here - 3) as i32,
                        });
                    }
                },
                _ => out.push(Insn::Gotol {
                    off: (to - here - 1) as i32,
                }),
            }
        }
        return Ok(Encoded {
            insns: out,
            slots: s,
            slot_of,
            index_of,
            uses_gotol,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::{AluOp, Reg, Src, Width};

    fn mov(k: i32) -> CInsn {
        CInsn::new(Insn::Alu {
            width: Width::W64,
            op: AluOp::Mov,
            dst: Reg::R0,
            src: Src::Imm(k),
        })
    }

    #[test]
    fn far_conditional_jump_becomes_inverted_jump_over_gotol() {
        let mut code = vec![CInsn::jump(
            Insn::Jmp {
                width: Width::W64,
                cond: JmpCond::Gt,
                dst: Reg::R1,
                src: Src::Imm(3),
                off: 0,
            },
            40_001,
        )];
        code.extend((0..40_000).map(mov));
        code.push(CInsn::new(Insn::EXIT));
        let e = encode(&code).unwrap();
        assert!(e.uses_gotol);
        assert_eq!(
            e.insns[0],
            Insn::Jmp {
                width: Width::W64,
                cond: JmpCond::Le,
                dst: Reg::R1,
                src: Src::Imm(3),
                off: 1
            }
        );
        // The gotol lands on the exit: slot 2 + 40_000 movs.
        assert_eq!(e.insns[1], Insn::Gotol { off: 40_000 });
        assert_eq!(e.slot_of[40_001], 40_002);
    }

    #[test]
    fn near_jumps_stay_short() {
        let code = vec![
            CInsn::jump(Insn::Ja { off: 0 }, 2),
            mov(1),
            CInsn::new(Insn::EXIT),
        ];
        let e = encode(&code).unwrap();
        assert!(!e.uses_gotol);
        assert_eq!(e.insns[0], Insn::Ja { off: 1 });
    }
}
