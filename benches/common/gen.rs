//! Generated sock_ops objects of any size, shaped like compiled ones: an op dispatch re-read from
//! ctx, spills, map/global-data accesses through `ld_imm64` relocations, helper calls and
//! BPF-to-BPF calls into `.text`. For benchmarks only (the fixtures are the test corpus).
#![allow(dead_code)]

use object::write::{Object as WObject, Relocation, Symbol, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, RelocationFlags, SectionKind, SymbolFlags, SymbolKind,
    SymbolScope,
};
use opsplit::insn::{AluOp, Call, Insn, JmpCond, LdImm64, Reg, Size, Src, Width};

const R_BPF_64_64: u32 = 1;
const R_BPF_64_32: u32 = 10;

/// A relocatable BPF object with one `sockops` program of about `n_insns` slots.
pub fn sockops_object(n_insns: usize) -> Vec<u8> {
    let mut o = WObject::new(BinaryFormat::Elf, Architecture::Bpf, Endianness::Little);
    let text = o.add_section(Vec::new(), b".text".to_vec(), SectionKind::Text);
    let prog = o.add_section(Vec::new(), b"sockops".to_vec(), SectionKind::Text);
    let bss = o.add_section(Vec::new(), b".bss".to_vec(), SectionKind::UninitializedData);
    let license = o.add_section(Vec::new(), b"license".to_vec(), SectionKind::Data);
    o.append_section_data(license, b"GPL\0", 1);
    o.append_section_bss(bss, 64 * 8, 8);
    let bss_sym = o.section_symbol(bss);

    // .text: a subprogram `count(r1)` returning r1 + 1.
    let sub = [
        Insn::Alu {
            width: Width::W64,
            op: AluOp::Mov,
            dst: Reg::R0,
            src: Src::Reg(Reg::R1),
        },
        Insn::Alu {
            width: Width::W64,
            op: AluOp::Add,
            dst: Reg::R0,
            src: Src::Imm(1),
        },
        Insn::EXIT,
    ];
    let sub_bytes = opsplit::insn::encode(sub.iter());
    o.append_section_data(text, &sub_bytes, 8);
    let sub_sym = o.add_symbol(Symbol {
        name: b"count".to_vec(),
        value: 0,
        size: sub_bytes.len() as u64,
        kind: SymbolKind::Text,
        scope: SymbolScope::Compilation,
        weak: false,
        section: SymbolSection::Section(text),
        flags: SymbolFlags::None,
    });

    let mut insns: Vec<Insn> = vec![Insn::Alu {
        width: Width::W64,
        op: AluOp::Mov,
        dst: Reg::R6,
        src: Src::Reg(Reg::R1),
    }];
    let mut relocs: Vec<(usize, u32, object::write::SymbolId)> = Vec::new();
    let mut k = 0u32;
    let mov = |dst, src| Insn::Alu {
        width: Width::W64,
        op: AluOp::Mov,
        dst,
        src,
    };
    while insns.len() < n_insns.saturating_sub(3) {
        // One case block: 20 slots after the guard.
        let block: Vec<Insn> = vec![
            mov(Reg::R1, Src::Reg(Reg::R10)),
            Insn::Store {
                size: Size::DW,
                dst: Reg::R10,
                off: -8,
                src: Src::Reg(Reg::R7),
            },
            Insn::LdImm64 {
                dst: Reg::R2,
                value: LdImm64::Imm(i64::from(k % 64) * 8),
            },
            Insn::Load {
                size: Size::DW,
                dst: Reg::R3,
                src: Reg::R2,
                off: 0,
            },
            Insn::Alu {
                width: Width::W64,
                op: AluOp::Add,
                dst: Reg::R3,
                src: Src::Imm(1),
            },
            Insn::Store {
                size: Size::DW,
                dst: Reg::R2,
                off: 0,
                src: Src::Reg(Reg::R3),
            },
            mov(Reg::R1, Src::Reg(Reg::R6)),
            mov(Reg::R2, Src::Imm(6)),
            mov(Reg::R3, Src::Imm(1)),
            mov(Reg::R4, Src::Reg(Reg::R10)),
            Insn::Alu {
                width: Width::W64,
                op: AluOp::Add,
                dst: Reg::R4,
                src: Src::Imm(-8),
            },
            mov(Reg::R5, Src::Imm(4)),
            Insn::Call(Call::Helper(49)),
            Insn::Jmp {
                width: Width::W64,
                cond: JmpCond::Slt,
                dst: Reg::R0,
                src: Src::Imm(0),
                off: 3,
            },
            mov(Reg::R1, Src::Reg(Reg::R0)),
            Insn::Call(Call::Local(-1)),
            Insn::Alu {
                width: Width::W64,
                op: AluOp::Add,
                dst: Reg::R7,
                src: Src::Reg(Reg::R0),
            },
            Insn::Load {
                size: Size::DW,
                dst: Reg::R7,
                src: Reg::R10,
                off: -8,
            },
        ];
        let block_slots: usize = block.iter().map(|i| i.slots()).sum();
        insns.push(Insn::Load {
            size: Size::W,
            dst: Reg::R1,
            src: Reg::R6,
            off: 0,
        });
        insns.push(Insn::Jmp {
            width: Width::W32,
            cond: JmpCond::Ne,
            dst: Reg::R1,
            src: Src::Imm((k % 21) as i32),
            off: block_slots as i16,
        });
        for i in block {
            let slot: usize = insns.iter().map(|i| i.slots()).sum();
            match i {
                Insn::LdImm64 { .. } => relocs.push((slot, R_BPF_64_64, bss_sym)),
                Insn::Call(Call::Local(_)) => relocs.push((slot, R_BPF_64_32, sub_sym)),
                _ => {}
            }
            insns.push(i);
        }
        k += 1;
    }
    insns.push(mov(Reg::R0, Src::Imm(1)));
    insns.push(Insn::EXIT);
    let bytes = opsplit::insn::encode(insns.iter());
    o.append_section_data(prog, &bytes, 8);
    o.add_symbol(Symbol {
        name: b"generated".to_vec(),
        value: 0,
        size: bytes.len() as u64,
        kind: SymbolKind::Text,
        scope: SymbolScope::Linkage,
        weak: false,
        section: SymbolSection::Section(prog),
        flags: SymbolFlags::None,
    });
    for (slot, r_type, sym) in relocs {
        o.add_relocation(
            prog,
            Relocation {
                offset: slot as u64 * 8,
                symbol: sym,
                addend: 0,
                flags: RelocationFlags::Elf {
                    r_type: object::elf::RelocationType(r_type),
                },
            },
        )
        .expect("valid relocation");
    }
    o.write().expect("ELF written")
}
