//! The embedded runtime: runs BPF programs with a faithful model of the kernel's instruction
//! semantics, memory safety rules, maps and helpers, so that programs can be executed where the
//! kernel cannot run them (sock_ops has no `BPF_PROG_TEST_RUN`).
//!
//! The pieces, in the order they are used:
//!
//! * a [`Module`] is the runnable input as plain data: functions with decoded instructions and
//!   their relocations already tied to functions and maps, map definitions, entry points.
//!   [`Module::from_object`] builds one from an [`Object`](crate::obj::Object); tests build them
//!   by hand;
//! * [`Machine::new`] creates the maps and the [`memory`] regions, then compiles every function
//!   into one flat instruction array with jump targets, calls, map and global-data addresses and
//!   helpers resolved, so that the interpreter never allocates or looks anything up per
//!   instruction. Anything the runtime cannot run faithfully is a load error here, naming the
//!   function, slot and map;
//! * [`Machine::run`] executes a program; a [`Fault`] names program, function, slot and source
//!   line;
//! * [`sockops`] builds the sock_ops context of one hook call (with the kernel's per-call field
//!   guards and the verifier's access rules) and runs a cgroup's programs on it
//!   ([`Machine::run_hook`]).
//!
//! ```
//! use opsplit::insn::{Insn, Reg, Src, AluOp, Width};
//! use opsplit::runtime::{Config, Machine, Module};
//!
//! // r0 = 6; r0 *= 7; exit
//! let module = Module::single("answer", &[
//!     Insn::Alu { width: Width::W64, op: AluOp::Mov, dst: Reg::R0, src: Src::Imm(6) },
//!     Insn::Alu { width: Width::W64, op: AluOp::Mul, dst: Reg::R0, src: Src::Imm(7) },
//!     Insn::EXIT,
//! ]);
//! let mut m = Machine::new(module, Config::default()).unwrap();
//! assert_eq!(m.run("answer", 0).unwrap(), 42);
//! ```

pub mod builtin;
pub mod helpers;
mod interp;
pub mod kernel;
mod loader;
pub mod maps;
pub mod memory;
pub mod scenario;
pub mod sockhelpers;
pub mod sockops;
pub mod verify;

use std::fmt;
use std::sync::Arc;

pub use helpers::{CallArg, CallSite, Helper, HelperError, HelperFn, HelperTable, Record};
pub use maps::{MapError, MapState};
pub use memory::{
    Access, AccessFault, AccessRule, Memory, Region, RegionId, RegionKind, Writer, pointer,
    split_pointer,
};

use crate::insn::{Insn, SlotInsn};
use crate::obj::disasm::FunctionLine;

/// Index into [`Module::functions`].
pub type FuncIndex = usize;
/// Index into [`Module::maps`] (and [`Machine::maps`]).
pub type MapIndex = usize;

/// `MAX_CALL_FRAMES`: frames a call chain may hold, callbacks included.
pub const MAX_CALL_FRAMES: usize = 8;
/// `MAX_TAIL_CALL_CNT`.
pub const MAX_TAIL_CALL_CNT: u32 = 33;
/// `BPF_MAX_LOOPS`: the `may_goto` budget of one frame, and `bpf_loop`'s iteration limit.
pub const BPF_MAX_LOOPS: u32 = 1 << 23;

/// What a relocated instruction refers to, resolved to module indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `ld_imm64` of a map: the map handle.
    Map(MapIndex),
    /// `ld_imm64` of an address inside a global data map's value.
    GlobalData { map: MapIndex, offset: u32 },
    /// BPF-to-BPF call.
    Call(FuncIndex),
    /// `ld_imm64` of a function address (a callback).
    FuncAddr(FuncIndex),
    /// Call of a kfunc by name.
    Kfunc(String),
}

/// One function to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleFunction {
    pub name: String,
    /// The code section it came from (for error messages).
    pub section: String,
    /// Decoded instructions; slots count from the function start.
    pub insns: Vec<SlotInsn>,
    /// Relocations by slot.
    pub relocations: Vec<(usize, Target)>,
    /// Source lines by slot (from BTF line info), for fault reports; may be empty.
    pub lines: Vec<FunctionLine>,
}

/// Initial contents of a map.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MapInit {
    #[default]
    Empty,
    /// The single value of a global data map (`.data`, `.rodata`, `.bss`).
    Data(Vec<u8>),
    /// PROG_ARRAY slots: (index, program function).
    Programs(Vec<(u32, FuncIndex)>),
    /// Map-in-map slots: (index, inner map).
    Maps(Vec<(u32, MapIndex)>),
}

/// A map definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleMap {
    pub name: String,
    /// `BPF_MAP_TYPE_*`.
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    /// Read-only for programs (`.rodata`, `BPF_F_RDONLY_PROG`).
    pub read_only: bool,
    pub init: MapInit,
}

/// An entry point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleProgram {
    pub name: String,
    pub function: FuncIndex,
}

/// Everything a [`Machine`] runs, as plain data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Module {
    pub functions: Vec<ModuleFunction>,
    pub maps: Vec<ModuleMap>,
    pub programs: Vec<ModuleProgram>,
}

impl Module {
    /// A module with one program made of `insns` (slots assigned in order), no maps.
    pub fn single(name: &str, insns: &[Insn]) -> Module {
        Module {
            functions: vec![ModuleFunction {
                name: name.to_string(),
                section: ".text".to_string(),
                insns: assign_slots(insns),
                relocations: Vec::new(),
                lines: Vec::new(),
            }],
            maps: Vec::new(),
            programs: vec![ModuleProgram {
                name: name.to_string(),
                function: 0,
            }],
        }
    }
}

/// Gives consecutive instructions their slots (`ld_imm64` takes two).
pub fn assign_slots(insns: &[Insn]) -> Vec<SlotInsn> {
    let mut slot = 0;
    insns
        .iter()
        .map(|&insn| {
            let s = SlotInsn { slot, insn };
            slot += insn.slots();
            s
        })
        .collect()
}

/// Run-time settings. Everything nondeterministic in the kernel is virtual and set here, so two
/// machines with the same config see the same clock and random numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Instructions one [`Machine::run`] may execute (callbacks and tail calls included).
    pub insn_budget: u64,
    /// Seed of `bpf_get_prandom_u32`.
    pub seed: u64,
    /// `CONFIG_HZ` for `bpf_jiffies64` (250 on the target kernel).
    pub hz: u64,
    /// Virtual `CLOCK_MONOTONIC` at machine creation, ns.
    pub start_ns: u64,
    /// `jiffies_64` at virtual time 0.
    pub jiffies_at_zero: u64,
    /// `LINUX_KERNEL_VERSION` for `.kconfig` externs (`KERNEL_VERSION(6, 18, 44)`).
    pub kernel_version: u32,
    /// Other `.kconfig` extern values by name (`CONFIG_HZ` comes from `hz`).
    pub kconfig: std::collections::BTreeMap<String, u64>,
    /// The byte a frame's stack holds before the program writes it. The kernel's stack is not
    /// initialised (root may read it: `allow_uninit_stack`); 0 makes runs reproducible, a
    /// poison byte makes a read of never-written stack visible (`verify` uses 0xa5).
    pub stack_fill: u8,
    /// PROG_ARRAY maps (by name) whose statically initialised slots are left empty, as when a
    /// loader does not fill them (a staged cutover, a tail-call target that failed to load):
    /// every tail call through them fails and falls through. `verify` runs the split form's
    /// dispatchers alone this way. Naming a map that is not a PROG_ARRAY is a load error.
    pub empty_prog_arrays: std::collections::BTreeSet<String>,
    /// Whether user space has a perf event open in every PERF_EVENT_ARRAY slot (the agent that
    /// reads the samples). Without one the kernel's `bpf_perf_event_output` finds no event in
    /// the slot and returns -ENOENT (`__bpf_perf_event_output`), which the kernel probe sees.
    pub perf_readers: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            insn_budget: 1_000_000,
            seed: 0x0b5e_55ed,
            hz: 250,
            start_ns: 1_000_000_000,
            // The kernel starts jiffies 5 minutes before wrap-around (`INITIAL_JIFFIES`) to
            // shake out wrap bugs; programs comparing jiffies see the same.
            jiffies_at_zero: (-300i64 * 250) as u32 as u64,
            kernel_version: (6 << 16) | (18 << 8) | 44,
            kconfig: std::collections::BTreeMap::new(),
            stack_fill: 0,
            empty_prog_arrays: std::collections::BTreeSet::new(),
            perf_readers: true,
        }
    }
}

/// Why a run stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    Memory(AccessFault),
    /// The instruction budget ran out.
    Budget {
        budget: u64,
    },
    /// A call would need more than [`MAX_CALL_FRAMES`] frames.
    CallDepth {
        frames: usize,
    },
    /// The call chain's combined stack would exceed 512 bytes.
    StackSize {
        frames: usize,
        bytes: u32,
    },
    /// A function that tail-calls was called with more than 256 bytes of stack below it.
    TailCallStack {
        bytes: u32,
    },
    /// A helper or kfunc refused its arguments in a way the verifier would have rejected.
    Helper {
        name: String,
        message: String,
    },
    /// Something the runtime does not model (yet).
    Unsupported(String),
    /// A context access the verifier would refuse (wrong size, write to a read-only field).
    Context {
        offset: i64,
        size: u64,
        write: bool,
        reason: &'static str,
    },
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultKind::Memory(a) => write!(f, "{a}"),
            FaultKind::Budget { budget } => {
                write!(f, "instruction budget of {budget} exhausted")
            }
            FaultKind::CallDepth { frames } => {
                write!(f, "the call stack of {frames} frames is too deep")
            }
            FaultKind::StackSize { frames, bytes } => write!(
                f,
                "combined stack size of {frames} calls is {bytes} bytes, over {}",
                memory::MAX_BPF_STACK
            ),
            FaultKind::TailCallStack { bytes } => write!(
                f,
                "tail calls are not allowed when the call stack of previous frames is {bytes} bytes"
            ),
            FaultKind::Helper { name, message } => write!(f, "{name}: {message}"),
            FaultKind::Unsupported(m) => write!(f, "not supported by the runtime: {m}"),
            FaultKind::Context {
                offset,
                size,
                write,
                reason,
            } => write!(
                f,
                "invalid {size}-byte context {} at offset {offset}: {reason}",
                if *write { "write" } else { "read" }
            ),
        }
    }
}

/// A run-time error, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The program being run (after tail calls: the program tail-called last).
    pub program: String,
    pub function: String,
    /// Slot from the function start.
    pub slot: usize,
    /// The source line, when the module has line info.
    pub line: Option<Box<FunctionLine>>,
    pub kind: FaultKind,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "program `{}`, function `{}`, slot {}",
            self.program, self.function, self.slot
        )?;
        if let Some(l) = &self.line {
            write!(f, " ({}:{}: {})", l.file, l.line, l.text.trim())?;
        }
        write!(f, ": {}", self.kind)
    }
}

impl std::error::Error for Fault {}

/// Where the values one hook call produced came from (`verify` locates differences with it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteLog {
    /// Each program run's end (a callback's does not count): the exit and its `r0`.
    pub exits: Vec<(Writer, u64)>,
    /// Stores into the context (the region the context rule guards): offset, bytes, where.
    pub ctx_stores: Vec<(i64, u64, Writer)>,
}

/// Counters of the last and all runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Instructions executed by the last run.
    pub last_run_insns: u64,
    /// Instructions executed since the machine was created.
    pub total_insns: u64,
    pub runs: u64,
}

/// A loaded module with its state: memory, maps, virtual clock, records.
pub struct Machine {
    pub(crate) image: Arc<interp::Image>,
    pub memory: Memory,
    pub maps: Vec<MapState>,
    pub config: Config,
    /// Virtual `CLOCK_MONOTONIC`, ns. Scenarios advance it; helpers read it.
    pub now_ns: u64,
    pub(crate) rng: u64,
    /// What programs emitted (trace_printk, ringbuf, perf events), in order.
    pub records: Vec<Record>,
    pub stats: Stats,
    /// Start of the packet window (`LD_ABS`/`LD_IND` read from it), set by the context model.
    pub packet: Option<u64>,
    /// Record every helper and kfunc call in [`Machine::records`] ([`Record::Call`]).
    pub trace_calls: bool,
    /// When `Some`, where each program run ended and where it stored into the context, until
    /// taken ([`SiteLog`]); [`Machine::site`] locates the entries.
    pub site_log: Option<SiteLog>,
    /// Kernel-side state of the sock_ops hook call being run (helpers read and change it).
    pub hook: Option<sockhelpers::HookState>,
    /// The hook call being run.
    pub hook_call: Option<sockops::HookCall>,
    pub(crate) run: interp::RunState,
}

impl Machine {
    /// Creates the maps and compiles the module with the generic helper table.
    pub fn new(module: Module, config: Config) -> Result<Machine, crate::Error> {
        Self::with_helpers(module, config, &HelperTable::generic())
    }

    /// Same with a given helper and kfunc table (a program type adds its own helpers to
    /// [`HelperTable::generic`]).
    pub fn with_helpers(
        module: Module,
        config: Config,
        helpers: &HelperTable,
    ) -> Result<Machine, crate::Error> {
        interp::build(module, config, helpers)
    }

    /// Names of the entry points, in module order.
    pub fn program_names(&self) -> impl Iterator<Item = &str> {
        self.image.programs.iter().map(|p| p.name.as_str())
    }

    /// Runs program `name` with `r1 = ctx`, returning `r0`.
    pub fn run(&mut self, name: &str, ctx: u64) -> Result<u64, Fault> {
        let Some(p) = self.image.programs.iter().position(|p| p.name == name) else {
            return Err(Fault {
                program: name.to_string(),
                function: name.to_string(),
                slot: 0,
                line: None,
                kind: FaultKind::Unsupported(format!("no program named `{name}`")),
            });
        };
        self.run_program(p, [ctx, 0, 0, 0, 0])
    }

    /// Runs the `index`th program with `r1..r5 = args`.
    pub fn run_program(&mut self, index: usize, args: [u64; 5]) -> Result<u64, Fault> {
        interp::run(self, index, args)
    }

    pub fn packet(&self) -> Option<u64> {
        self.packet
    }

    /// Index of the map named `name`.
    pub fn map_index(&self, name: &str) -> Option<MapIndex> {
        self.maps.iter().position(|m| m.name == name)
    }

    /// Allocates a region (a context, a packet, a kernel object) and returns a pointer to it.
    pub fn alloc(&mut self, kind: RegionKind, data: Vec<u8>, writable: bool) -> u64 {
        pointer(self.memory.alloc(kind, data, writable), 0)
    }
}

impl fmt::Debug for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Machine")
            .field("programs", &self.image.programs)
            .field("maps", &self.maps.len())
            .field("stats", &self.stats)
            .finish()
    }
}
