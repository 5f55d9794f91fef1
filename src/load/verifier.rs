//! Turning a failed load into a report a user can act on: which program the kernel refused, the
//! instruction the verifier stopped at and the source line that instruction came from.

use crate::Error;

/// Why an object did not load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub object: String,
    /// The program libbpf was loading when it failed (`None` when the failure came earlier, e.g.
    /// the object could not be opened or a map could not be created).
    pub program: Option<String>,
    /// libbpf's error.
    pub message: String,
    /// The last instruction index the verifier printed (its index in the loaded program).
    pub insn: Option<usize>,
    /// `file:line: text` of that instruction.
    pub source: Option<String>,
    /// The ops that run that instruction, from the op analysis (`RTT_CB, STATE_CB`).
    pub ops: Option<String>,
    /// The last lines of the libbpf/verifier log.
    pub log_tail: String,
}

/// How many log lines a rejection keeps: the verifier's reason is in the last few lines, the
/// instructions leading up to it just before.
const TAIL_LINES: usize = 40;

impl Rejection {
    /// Builds the report from libbpf's log of the failed load. `bytes` is the object, read again
    /// with opsplit's codec to map the instruction back to BTF line info.
    pub fn from_log(object: &str, bytes: &[u8], message: String, log: &str) -> Rejection {
        let program = failed_program(log);
        let prog_log = program
            .as_deref()
            .map(|p| program_log(log, p))
            .unwrap_or_default();
        let insn = last_insn(&prog_log);
        let source = match (&program, insn) {
            (Some(p), Some(i)) => {
                source_from_object(bytes, p, i).or_else(|| source_from_log(&prog_log, i))
            }
            _ => None,
        };
        let ops = match (&program, insn) {
            (Some(p), Some(i)) => ops_at(bytes, p, i),
            _ => None,
        };
        Rejection {
            object: object.to_string(),
            program,
            message,
            insn,
            source,
            ops,
            log_tail: super::tail(log, TAIL_LINES),
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "kernel load of {} failed", self.object)?;
        if let Some(p) = &self.program {
            write!(f, ": program `{p}` rejected")?;
        }
        if let Some(i) = self.insn {
            write!(f, " at instruction {i}")?;
        }
        if let Some(s) = &self.source {
            write!(f, " ({s})")?;
        }
        if let Some(o) = &self.ops {
            write!(f, " [ops: {o}]")?;
        }
        write!(f, ": {}", self.message)?;
        if !self.log_tail.is_empty() {
            write!(f, "\n--- libbpf/verifier log (tail) ---\n{}", self.log_tail)?;
        }
        Ok(())
    }
}

impl From<Rejection> for Error {
    fn from(r: Rejection) -> Error {
        let mut message = String::new();
        if let Some(p) = &r.program {
            message.push_str(&format!("program `{p}` rejected"));
            if let Some(i) = r.insn {
                message.push_str(&format!(" at instruction {i}"));
            }
            if let Some(s) = &r.source {
                message.push_str(&format!(" ({s})"));
            }
            if let Some(o) = &r.ops {
                message.push_str(&format!(" [ops: {o}]"));
            }
            message.push_str(": ");
        }
        message.push_str(&r.message);
        Error::Kernel {
            object: r.object,
            message,
            log_tail: r.log_tail,
        }
    }
}

/// libbpf names the program whose load failed: `libbpf: prog 'NAME': BPF program load failed: …`.
fn failed_program(log: &str) -> Option<String> {
    log.lines().find_map(|l| {
        let rest = l.split("prog '").nth(1)?;
        let (name, after) = rest.split_once("': ")?;
        (after.starts_with("BPF program load failed") || after.starts_with("failed to load"))
            .then(|| name.to_string())
    })
}

/// The verifier log libbpf printed for `prog` (between its BEGIN/END PROG LOAD LOG markers), or the
/// whole log if the markers are missing.
fn program_log(log: &str, prog: &str) -> String {
    let begin = format!("prog '{prog}': -- BEGIN PROG LOAD LOG --");
    let Some(start) = log.find(&begin) else {
        return log.to_string();
    };
    let body = &log[start + begin.len()..];
    let end = body.find("-- END PROG LOAD LOG --").unwrap_or(body.len());
    body[..end].to_string()
}

/// The verifier prints each instruction it walks as `N: (op) …`; the last one is where it stopped.
fn last_insn(prog_log: &str) -> Option<usize> {
    prog_log.lines().rev().find_map(|l| {
        let (idx, rest) = l.split_once(": (")?;
        let idx = idx.trim();
        if idx.is_empty() || !idx.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        rest.get(..2)?
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
            .then(|| idx.parse().ok())?
    })
}

/// libbpf puts the program's own function first, so indices inside it are the function's slots;
/// its line info then gives the source line. Instructions of appended subprograms are not mapped
/// here (their placement is libbpf's choice) and fall back to the log's own annotations.
fn source_from_object(bytes: &[u8], prog: &str, insn: usize) -> Option<String> {
    let obj = crate::obj::Object::parse(bytes).ok()?;
    let fid = obj.functions.iter().position(|f| f.name == prog)?;
    if insn >= obj.functions[fid].slot_count() {
        return None;
    }
    let line = obj
        .function_lines(fid)
        .into_iter()
        .take_while(|l| l.slot <= insn)
        .last()?;
    Some(format!("{}:{}: {}", line.file, line.line, line.text.trim()))
}

/// The ops whose path runs instruction `insn` of program `prog`'s own function, from the op
/// analysis; `None` when the program cannot be analysed or the index is outside the function.
fn ops_at(bytes: &[u8], prog: &str, insn: usize) -> Option<String> {
    use crate::analysis::Module;
    use crate::analysis::facts::{Env, analyze_program, other_ops};
    let obj = crate::obj::Object::parse(bytes).ok()?;
    let p = obj
        .programs
        .iter()
        .find(|p| obj.functions[p.function].name == prog)?;
    let module = Module::from_object(&obj).ok()?;
    let env = Env::from_object(&obj);
    let facts = analyze_program(&module, p.function, &env).ok()?;
    let idx = module
        .funcs
        .get(p.function)?
        .insns
        .iter()
        .position(|si| si.slot == insn)?;
    let set = *facts.reach.get(p.function)?.get(idx)?;
    let mut names: Vec<String> = (0..crate::optable::OP_COUNT)
        .filter(|&o| set.contains(o))
        .map(|o| crate::optable::OPS[o as usize].short_name().to_string())
        .collect();
    if !set.inter(other_ops()).is_empty() {
        names.push("other ops (21..=255)".into());
    }
    if names.is_empty() {
        names.push("none (unreachable for every op)".into());
    }
    Some(names.join(", "))
}

/// The verifier echoes BTF line info as `; text @ file:line` before the instructions of that line.
fn source_from_log(prog_log: &str, insn: usize) -> Option<String> {
    let mut current = None;
    for l in prog_log.lines() {
        if let Some(rest) = l.strip_prefix("; ") {
            if let Some((text, at)) = rest.rsplit_once(" @ ") {
                current = Some(format!("{}: {}", at.trim(), text.trim()));
            }
        } else if let Some((idx, _)) = l.split_once(": (")
            && idx.trim().parse::<usize>().ok() == Some(insn)
        {
            return current;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "libbpf: prog 'bad': BPF program load failed: -EINVAL\n\
libbpf: prog 'bad': -- BEGIN PROG LOAD LOG --\n\
0: R1=ctx() R10=fp0\n\
; return 7; @ bad.c:12\n\
0: (b7) r0 = 7                        ; R0_w=7\n\
1: (95) exit\n\
At program exit the register R0 has smin=7 smax=7 should have been in [0, 1]\n\
processed 2 insns (limit 1000000)\n\
-- END PROG LOAD LOG --\n\
libbpf: prog 'bad': failed to load: -EINVAL\n";

    #[test]
    fn names_program_and_last_instruction() {
        assert_eq!(failed_program(LOG).as_deref(), Some("bad"));
        let p = program_log(LOG, "bad");
        assert_eq!(last_insn(&p), Some(1));
        assert_eq!(
            source_from_log(&p, 1).as_deref(),
            Some("bad.c:12: return 7;")
        );
    }

    #[test]
    fn no_program_when_open_failed() {
        let r = Rejection::from_log("x.o", b"junk", "open failed".into(), "libbpf: elf: bad\n");
        assert_eq!(r.program, None);
        assert_eq!(r.insn, None);
        assert!(r.to_string().contains("x.o"));
    }
}
