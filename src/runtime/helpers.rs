//! Helper and kfunc dispatch, and the generic helpers every program type has.
//!
//! A [`HelperTable`] maps helper ids and kfunc names to Rust functions. The loader resolves every
//! call against it once; a call the table does not have is a load error, as the kernel refuses a
//! helper the program type does not offer. A program type's model (sock_ops) starts from
//! [`HelperTable::generic`] and inserts its own entries.

use std::collections::BTreeMap;
use std::fmt;

use super::maps::{MapError, Storage, map_type};
use super::memory::{AccessFault, RegionKind, pointer, split_pointer};
use super::{BPF_MAX_LOOPS, Fault, FaultKind, FuncIndex, MAX_TAIL_CALL_CNT, Machine, MapIndex};

/// Why a helper stopped the program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelperError {
    /// Located at the calling instruction.
    Fault(FaultKind),
    /// Already located (a fault inside a callback).
    Located(Box<Fault>),
}

impl From<FaultKind> for HelperError {
    fn from(k: FaultKind) -> Self {
        HelperError::Fault(k)
    }
}

impl From<AccessFault> for HelperError {
    fn from(a: AccessFault) -> Self {
        HelperError::Fault(FaultKind::Memory(a))
    }
}

/// A helper implementation: `r1..r5` in, `r0` out.
pub type HelperFn = fn(&mut Machine, [u64; 5]) -> Result<u64, HelperError>;

#[derive(Clone)]
pub struct Helper {
    pub name: String,
    /// Number of arguments (`r1..`), for call traces.
    pub args: u8,
    pub f: HelperFn,
}

impl fmt::Debug for Helper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Helper({})", self.name)
    }
}

/// What programs emitted, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// `bpf_trace_printk`, formatted.
    TracePrintk { text: String },
    /// `bpf_ringbuf_output`.
    Ringbuf { map: MapIndex, data: Vec<u8> },
    /// `bpf_perf_event_output`: the raw sample as a reader gets it (zero-padded so that it
    /// and its 4-byte size end on 8 bytes).
    PerfEvent {
        map: MapIndex,
        cpu: u32,
        data: Vec<u8>,
    },
    /// A helper or kfunc call, when [`Machine::trace_calls`] is on: its arguments and result.
    /// Recorded before the records the call itself produces.
    Call {
        name: String,
        args: Vec<CallArg>,
        /// The result; a pointer as (region kind, offset), like the arguments.
        ret: CallArg,
        /// Where the call is: program, function, slot and source line.
        at: Option<Box<CallSite>>,
        /// The bytes the helper reads through its pointer arguments, by argument number
        /// (`optable::helper::MEMORY_ARGS`: keys, values, option buffers, records), as they
        /// were when it was called.
        inputs: Vec<(u8, Vec<u8>)>,
    },
}

/// The instruction of a traced call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSite {
    pub program: String,
    pub function: String,
    pub slot: usize,
    /// `file:line: text` when the object has line info.
    pub line: Option<String>,
}

impl fmt::Display for CallSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "program `{}`, function `{}`, slot {}",
            self.program, self.function, self.slot
        )?;
        if let Some(l) = &self.line {
            write!(f, " ({l})")?;
        }
        Ok(())
    }
}

/// A call argument in a trace: pointers as (region kind, offset), which two machines running
/// different code on the same state can compare; raw pointer values could not be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallArg {
    Scalar(u64),
    Pointer { kind: RegionKind, offset: i64 },
}

/// Helpers by id and kfuncs by name.
#[derive(Debug, Clone, Default)]
pub struct HelperTable {
    helpers: BTreeMap<i32, Helper>,
    kfuncs: BTreeMap<String, Helper>,
}

/// Helper id of a `bpf_*` name in the UAPI table.
pub fn helper_id(name: &str) -> Option<i32> {
    crate::uapi::HELPERS
        .iter()
        .position(|n| *n == name)
        .map(|i| i as i32)
}

const ENOENT: i64 = 2;
const E2BIG: i64 = 7;
const EAGAIN: i64 = 11;
const EINVAL: i64 = 22;

fn neg(errno: i64) -> u64 {
    (-errno) as u64
}

impl HelperTable {
    pub fn empty() -> HelperTable {
        HelperTable::default()
    }

    /// The helpers of `bpf_base_func_proto` the runtime models: map operations, virtual time
    /// and randomness, `trace_printk`, ring buffer and perf event output, `bpf_loop`.
    /// (`bpf_tail_call` is built into the interpreter.)
    pub fn generic() -> HelperTable {
        let mut t = HelperTable::empty();
        let entries: [(&str, u8, HelperFn); 15] = [
            ("bpf_map_lookup_elem", 2, map_lookup_elem),
            ("bpf_map_update_elem", 4, map_update_elem),
            ("bpf_map_delete_elem", 2, map_delete_elem),
            ("bpf_ktime_get_ns", 0, ktime_get_ns),
            ("bpf_ktime_get_boot_ns", 0, ktime_get_ns),
            ("bpf_get_prandom_u32", 0, get_prandom_u32),
            ("bpf_get_smp_processor_id", 0, get_smp_processor_id),
            ("bpf_jiffies64", 0, jiffies64),
            // Up to three values follow the format; unused ones are not compared.
            ("bpf_trace_printk", 2, trace_printk),
            ("bpf_ringbuf_output", 4, ringbuf_output),
            ("bpf_ringbuf_reserve", 3, ringbuf_reserve),
            ("bpf_ringbuf_submit", 2, ringbuf_submit),
            ("bpf_ringbuf_discard", 2, ringbuf_discard),
            ("bpf_perf_event_output", 5, perf_event_output),
            ("bpf_loop", 4, bpf_loop),
        ];
        for (name, args, f) in entries {
            let id = helper_id(name).expect("helper names come from the UAPI table");
            t.insert_helper(id, name, args, f);
        }
        t
    }

    /// Adds helper `id` taking `args` arguments.
    pub fn insert_helper(&mut self, id: i32, name: &str, args: u8, f: HelperFn) {
        self.helpers.insert(
            id,
            Helper {
                name: name.to_string(),
                args,
                f,
            },
        );
    }

    /// Adds kfunc `name` taking `args` arguments.
    pub fn insert_kfunc(&mut self, name: &str, args: u8, f: HelperFn) {
        self.kfuncs.insert(
            name.to_string(),
            Helper {
                name: name.to_string(),
                args,
                f,
            },
        );
    }

    /// Removes a helper (a program type or op where the kernel does not offer it).
    pub fn remove_helper(&mut self, id: i32) {
        self.helpers.remove(&id);
    }

    pub fn helper(&self, id: i32) -> Option<&Helper> {
        self.helpers.get(&id)
    }

    pub fn kfunc(&self, name: &str) -> Option<&Helper> {
        self.kfuncs.get(name)
    }
}

fn fault(name: &str, message: impl Into<String>) -> HelperError {
    HelperError::Fault(FaultKind::Helper {
        name: name.to_string(),
        message: message.into(),
    })
}

/// The map a `struct bpf_map *` argument points to.
pub fn map_arg(m: &Machine, helper: &str, arg: u64) -> Result<MapIndex, HelperError> {
    let (_, off) = split_pointer(arg);
    match m.memory.kind_of(arg) {
        Some(RegionKind::MapObject { map }) if off == 0 => Ok(map as MapIndex),
        _ => Err(fault(helper, format!("{arg:#x} is not a map pointer"))),
    }
}

fn map_lookup_elem(m: &mut Machine, a: [u64; 5]) -> Result<u64, HelperError> {
    const NAME: &str = "bpf_map_lookup_elem";
    let map = map_arg(m, NAME, a[0])?;
    let key = m
        .memory
        .read_bytes(a[1], m.maps[map].key_size.into())?
        .to_vec();
    let st = &mut m.maps[map];
    if let Storage::MapOfMaps { .. } = st.storage {
        return Ok(match st.lookup_map(&key) {
            Some(inner) => pointer(m.maps[inner].object, 0),
            None => 0,
        });
    }
    if let Storage::Sock { .. } = st.storage {
        return Err(HelperError::Fault(FaultKind::Unsupported(format!(
            "lookup in `{}`, which returns a socket",
            st.name
        ))));
    }
    match st.lookup(&mut m.memory, &key) {
        Ok(Some(region)) => Ok(pointer(region, 0)),
        Ok(None) => Ok(0),
        Err(_) => Err(not_for_type(NAME, st.map_type, &st.name)),
    }
}

fn not_for_type(helper: &str, t: u32, name: &str) -> HelperError {
    fault(
        helper,
        format!(
            "not allowed on map `{name}` of type {} (the verifier rejects it)",
            crate::uapi::map_type_name(t).unwrap_or("unknown")
        ),
    )
}

fn is_data_map(st: &super::MapState) -> bool {
    matches!(
        st.storage,
        Storage::Array { .. } | Storage::Hash { .. } | Storage::Lpm { .. }
    )
}

fn map_update_elem(m: &mut Machine, a: [u64; 5]) -> Result<u64, HelperError> {
    const NAME: &str = "bpf_map_update_elem";
    let map = map_arg(m, NAME, a[0])?;
    let st = &m.maps[map];
    if !is_data_map(st) || st.read_only {
        return Err(not_for_type(NAME, st.map_type, &st.name));
    }
    let key = m.memory.read_bytes(a[1], st.key_size.into())?.to_vec();
    let value = m.memory.read_bytes(a[2], st.value_size.into())?.to_vec();
    Ok(
        match m.maps[map].update(&mut m.memory, &key, &value, a[3]) {
            Ok(()) => 0,
            Err(e) => e.errno() as u64,
        },
    )
}

fn map_delete_elem(m: &mut Machine, a: [u64; 5]) -> Result<u64, HelperError> {
    const NAME: &str = "bpf_map_delete_elem";
    let map = map_arg(m, NAME, a[0])?;
    let st = &m.maps[map];
    // The verifier lets programs delete from sockmaps and sockhashes (not update them).
    let sock = matches!(st.storage, Storage::Sock { .. });
    if !(is_data_map(st) || sock) || st.read_only {
        return Err(not_for_type(NAME, st.map_type, &st.name));
    }
    let key = m.memory.read_bytes(a[1], st.key_size.into())?.to_vec();
    Ok(match m.maps[map].delete(&mut m.memory, &key) {
        Ok(()) => 0,
        Err(e) => e.errno() as u64,
    })
}

fn ktime_get_ns(m: &mut Machine, _: [u64; 5]) -> Result<u64, HelperError> {
    Ok(m.now_ns)
}

fn jiffies64(m: &mut Machine, _: [u64; 5]) -> Result<u64, HelperError> {
    let ticks = (u128::from(m.now_ns) * u128::from(m.config.hz) / 1_000_000_000) as u64;
    Ok(m.config.jiffies_at_zero.wrapping_add(ticks))
}

fn get_smp_processor_id(_: &mut Machine, _: [u64; 5]) -> Result<u64, HelperError> {
    Ok(0)
}

/// splitmix64: a tiny, well-mixed generator, so the same seed gives the same sequence.
fn get_prandom_u32(m: &mut Machine, _: [u64; 5]) -> Result<u64, HelperError> {
    m.rng = m.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = m.rng;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    Ok((z ^ (z >> 31)) as u32 as u64)
}

/// `bpf_trace_printk(fmt, fmt_size, a1, a2, a3)`: formats like the kernel's `bstr_printf` for
/// the conversions BPF programs use and returns the formatted length.
fn trace_printk(m: &mut Machine, a: [u64; 5]) -> Result<u64, HelperError> {
    const NAME: &str = "bpf_trace_printk";
    let raw = m.memory.read_bytes(a[0], a[1])?;
    // The format must be NUL-terminated inside fmt_size.
    let Some(end) = raw.iter().position(|&b| b == 0) else {
        return Ok(neg(EINVAL));
    };
    let fmt = raw[..end].to_vec();
    match format_printk(m, &fmt, &a[2..5]) {
        Ok(text) => {
            let n = text.len() as u64;
            m.records.push(Record::TracePrintk { text });
            Ok(n)
        }
        Err(Some(msg)) => Err(fault(NAME, msg)),
        Err(None) => Ok(neg(EINVAL)),
    }
}

/// `Err(None)`: a format the kernel refuses (-EINVAL); `Err(Some)`: one it accepts but the
/// runtime does not format.
fn format_printk(m: &Machine, fmt: &[u8], args: &[u64]) -> Result<String, Option<String>> {
    let mut out = String::new();
    let mut i = 0;
    let mut next = 0;
    while i < fmt.len() {
        let c = fmt[i];
        i += 1;
        if c != b'%' {
            out.push(c as char);
            continue;
        }
        if fmt.get(i) == Some(&b'%') {
            out.push('%');
            i += 1;
            continue;
        }
        let (mut left, mut zero, mut plus, mut space) = (false, false, false, false);
        while let Some(&f) = fmt.get(i) {
            match f {
                b'-' => left = true,
                b'0' => zero = true,
                b'+' => plus = true,
                b' ' => space = true,
                _ => break,
            }
            i += 1;
        }
        let mut width = 0usize;
        while let Some(d) = fmt.get(i).filter(|d| d.is_ascii_digit()) {
            // The kernel formats into a 512-byte buffer; wider fields cannot matter.
            width = (width * 10 + usize::from(d - b'0')).min(4096);
            i += 1;
        }
        let mut long = 0;
        while fmt.get(i) == Some(&b'l') {
            long += 1;
            i += 1;
        }
        if long > 2 {
            return Err(None);
        }
        let Some(&conv) = fmt.get(i) else {
            return Err(None);
        };
        i += 1;
        let Some(&arg) = args.get(next) else {
            return Err(None);
        };
        next += 1;
        let mut s = match conv {
            b'd' | b'i' => {
                let v = if long == 0 {
                    arg as i32 as i64
                } else {
                    arg as i64
                };
                match (v >= 0, plus, space) {
                    (true, true, _) => format!("+{v}"),
                    (true, false, true) => format!(" {v}"),
                    _ => v.to_string(),
                }
            }
            b'u' | b'x' | b'X' | b'o' => {
                let v = if long == 0 { arg as u32 as u64 } else { arg };
                match conv {
                    b'u' => v.to_string(),
                    b'x' => format!("{v:x}"),
                    b'X' => format!("{v:X}"),
                    _ => format!("{v:o}"),
                }
            }
            b'c' => (arg as u8 as char).to_string(),
            b's' => {
                // An unreadable string prints as empty, as the kernel's nofault copy does.
                let (id, off) = split_pointer(arg);
                m.memory
                    .region(id)
                    .filter(|_| id != 0 && off >= 0)
                    .and_then(|r| r.data.get(off as usize..))
                    .map(|b| {
                        let n = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                        String::from_utf8_lossy(&b[..n]).into_owned()
                    })
                    .unwrap_or_default()
            }
            b'p' => return Err(Some("%p conversions are not modelled".into())),
            _ => return Err(None),
        };
        if s.len() < width {
            let pad = width - s.len();
            if left {
                s.push_str(&" ".repeat(pad));
            } else if zero && conv != b's' && conv != b'c' {
                let sign = s.starts_with(['-', '+', ' ']) as usize;
                s.insert_str(sign, &"0".repeat(pad));
            } else {
                s.insert_str(0, &" ".repeat(pad));
            }
        }
        out.push_str(&s);
    }
    Ok(out)
}

fn ringbuf_output(m: &mut Machine, a: [u64; 5]) -> Result<u64, HelperError> {
    const NAME: &str = "bpf_ringbuf_output";
    const BPF_RB_NO_WAKEUP: u64 = 1;
    const BPF_RB_FORCE_WAKEUP: u64 = 2;
    let map = map_arg(m, NAME, a[0])?;
    let st = &m.maps[map];
    if st.map_type != map_type::RINGBUF {
        return Err(not_for_type(NAME, st.map_type, &st.name));
    }
    let data = m.memory.read_bytes(a[1], a[2])?.to_vec();
    if a[3] & !(BPF_RB_NO_WAKEUP | BPF_RB_FORCE_WAKEUP) != 0 {
        return Ok(neg(EINVAL));
    }
    let capacity = u64::from(st.max_entries);
    let need = ringbuf_need(data.len() as u64);
    let Storage::RingBuf { pending, .. } = &mut m.maps[map].storage else {
        return Err(not_for_type(NAME, map_type::RINGBUF, ""));
    };
    if pending.saturating_add(need) > capacity {
        return Ok(neg(EAGAIN));
    }
    *pending += need;
    m.records.push(Record::Ringbuf { map, data });
    Ok(0)
}

/// Each record takes an 8-byte header and is padded to 8 bytes.
fn ringbuf_need(len: u64) -> u64 {
    len.saturating_add(8).div_ceil(8).saturating_mul(8)
}

/// What a fresh reservation holds before the program writes it. `__bpf_ringbuf_reserve`
/// (kernel/bpf/ringbuf.c) hands out the ring's memory as it is: whatever an earlier record that
/// was consumed left there, never zeroes. A fixed, position-dependent pattern stands for those
/// stale bytes, so a field the program leaves unwritten shows in the submitted record (and in a
/// `verify` comparison, where both sides see the same pattern) instead of reading as a
/// plausible 0.
pub fn ringbuf_stale_bytes(len: usize) -> Vec<u8> {
    // High bit set: never 0; an odd step: neighbours always differ.
    (0..len)
        .map(|i| 0x80 | (0x1e_u8.wrapping_add((i as u8).wrapping_mul(0x3b)) & 0x7f))
        .collect()
}

/// `bpf_ringbuf_reserve(ringbuf, size, flags)`: a writable record holding stale bytes
/// ([`ringbuf_stale_bytes`]), or NULL when flags are not 0 or the buffer has no room.
fn ringbuf_reserve(m: &mut Machine, a: [u64; 5]) -> Result<u64, HelperError> {
    const NAME: &str = "bpf_ringbuf_reserve";
    let map = map_arg(m, NAME, a[0])?;
    let st = &m.maps[map];
    if st.map_type != map_type::RINGBUF {
        return Err(not_for_type(NAME, st.map_type, &st.name));
    }
    let capacity = u64::from(st.max_entries);
    let need = ringbuf_need(a[1]);
    let Storage::RingBuf { pending, .. } = &st.storage else {
        return Err(not_for_type(NAME, st.map_type, &st.name));
    };
    if a[2] != 0 || pending.saturating_add(need) > capacity {
        return Ok(0);
    }
    let region = m.memory.alloc(
        RegionKind::RingbufRecord { map: map as u32 },
        ringbuf_stale_bytes(a[1] as usize),
        true,
    );
    if let Storage::RingBuf { pending, reserved } = &mut m.maps[map].storage {
        *pending += need;
        reserved.push((region, need));
    }
    Ok(pointer(region, 0))
}

/// Closes a reservation: the record's map and bytes, and the region released.
fn ringbuf_close(
    m: &mut Machine,
    name: &str,
    record: u64,
    submit: bool,
) -> Result<u64, HelperError> {
    let (region, off) = split_pointer(record);
    let Some(RegionKind::RingbufRecord { map }) = m.memory.kind_of(record) else {
        return Err(fault(
            name,
            format!("{record:#x} is not a reserved ring buffer record"),
        ));
    };
    if off != 0 {
        return Err(fault(name, "pointer is not at the start of the record"));
    }
    let map = map as MapIndex;
    let data = m
        .memory
        .region(region)
        .map(|r| r.data.clone())
        .unwrap_or_default();
    // A discarded record keeps its space like a submitted one: the kernel only sets the
    // discard bit in its header (bpf_ringbuf_commit), and the space comes back when a consumer
    // reads past it (`Machine::consume_ringbuf`).
    if let Storage::RingBuf { reserved, .. } = &mut m.maps[map].storage
        && let Some(i) = reserved.iter().position(|&(r, _)| r == region)
    {
        reserved.remove(i);
    }
    m.memory.release(region);
    if submit {
        m.records.push(Record::Ringbuf { map, data });
    }
    Ok(0)
}

fn ringbuf_submit(m: &mut Machine, a: [u64; 5]) -> Result<u64, HelperError> {
    ringbuf_close(m, "bpf_ringbuf_submit", a[0], true)
}

fn ringbuf_discard(m: &mut Machine, a: [u64; 5]) -> Result<u64, HelperError> {
    ringbuf_close(m, "bpf_ringbuf_discard", a[0], false)
}

fn perf_event_output(m: &mut Machine, a: [u64; 5]) -> Result<u64, HelperError> {
    const NAME: &str = "bpf_perf_event_output";
    const BPF_F_INDEX_MASK: u64 = 0xffff_ffff;
    let map = map_arg(m, NAME, a[1])?;
    let st = &m.maps[map];
    if st.map_type != map_type::PERF_EVENT_ARRAY {
        return Err(not_for_type(NAME, st.map_type, &st.name));
    }
    let data = m.memory.read_bytes(a[3], a[4])?.to_vec();
    if a[2] & !BPF_F_INDEX_MASK != 0 {
        return Ok(neg(EINVAL));
    }
    let index = a[2] & BPF_F_INDEX_MASK;
    // BPF_F_CURRENT_CPU is the whole index mask; the one simulated CPU is 0. libbpf sizes an
    // array declared without max_entries to the CPU count, here 1.
    let cpu = if index == BPF_F_INDEX_MASK { 0 } else { index };
    if cpu >= u64::from(st.max_entries.max(1)) {
        return Ok(neg(E2BIG));
    }
    if !m.config.perf_readers {
        return Ok(neg(ENOENT));
    }
    // perf_prepare_sample pads a raw sample with zeroes so that it and its 4-byte size end on
    // 8 bytes; the reader gets the padded size and bytes (libbpf's perf_buffer callback).
    let mut data = data;
    data.resize((data.len() + 4).div_ceil(8) * 8 - 4, 0);
    m.records.push(Record::PerfEvent {
        map,
        cpu: cpu as u32,
        data,
    });
    Ok(0)
}

/// `bpf_loop(nr_loops, callback, ctx, flags)`: calls `callback(i, ctx)` until it returns
/// nonzero; returns the number of calls made.
fn bpf_loop(m: &mut Machine, a: [u64; 5]) -> Result<u64, HelperError> {
    const NAME: &str = "bpf_loop";
    let Some(func) = super::interp::function_of(m, a[1]) else {
        return Err(fault(
            NAME,
            format!("{:#x} is not a function address", a[1]),
        ));
    };
    if a[3] != 0 {
        return Ok(neg(EINVAL));
    }
    if a[0] > u64::from(BPF_MAX_LOOPS) {
        return Ok(neg(E2BIG));
    }
    for i in 0..a[0] {
        if super::interp::call_callback(m, func, [i, a[2], 0, 0, 0])? != 0 {
            return Ok(i + 1);
        }
    }
    Ok(a[0])
}

/// `bpf_loop` at a call site the verifier does not inline (its flags argument is not a known
/// 0): the helper itself runs, whose `nr_loops` parameter is a `u32`, so a count of 2^32 or
/// more is truncated before the limit check. Inlined, the count is compared whole.
pub(crate) fn bpf_loop_not_inlined(m: &mut Machine, a: [u64; 5]) -> Result<u64, HelperError> {
    let mut a = a;
    a[0] &= u64::from(u32::MAX);
    bpf_loop(m, a)
}

/// The program a `bpf_tail_call(ctx, map, index)` jumps to, counting the jump as the kernel
/// does; `None` falls through.
pub(crate) fn tail_call_target(
    m: &mut Machine,
    map: u64,
    index: u64,
) -> Result<Option<FuncIndex>, FaultKind> {
    const NAME: &str = "bpf_tail_call";
    let map = map_arg(m, NAME, map).map_err(|e| match e {
        HelperError::Fault(k) => k,
        HelperError::Located(f) => f.kind,
    })?;
    let st = &m.maps[map];
    let Storage::ProgArray { slots } = &st.storage else {
        return Err(FaultKind::Helper {
            name: NAME.into(),
            message: format!("map `{}` is not a PROG_ARRAY", st.name),
        });
    };
    let index = index as u32;
    if index >= st.max_entries {
        return Ok(None);
    }
    if m.run.tail_calls >= MAX_TAIL_CALL_CNT {
        return Ok(None);
    }
    // Only a jump counts: on 6.18 an attempt on an empty slot (direct or through a run-time
    // index) leaves the count alone (tests/kernel_probe_generic.rs).
    let target = slots.get(index as usize).copied().flatten();
    if target.is_some() {
        m.run.tail_calls += 1;
    }
    Ok(target)
}

impl Machine {
    /// Marks every record of ring buffer `map` consumed, as a user-space reader would.
    pub fn consume_ringbuf(&mut self, map: MapIndex) {
        if let Some(Storage::RingBuf { pending, reserved }) =
            self.maps.get_mut(map).map(|m| &mut m.storage)
        {
            *pending = reserved.iter().map(|&(_, n)| n).sum();
        }
    }

    /// Sets a PROG_ARRAY slot (user space's `bpf_map_update_elem`), `None` to clear it.
    pub fn set_prog_array_slot(
        &mut self,
        map: MapIndex,
        index: u32,
        function: Option<FuncIndex>,
    ) -> Result<(), MapError> {
        match self.maps.get_mut(map).map(|m| &mut m.storage) {
            Some(Storage::ProgArray { slots }) => {
                let s = slots.get_mut(index as usize).ok_or(MapError::TooBig)?;
                let loaded = |f: FuncIndex| {
                    self.image
                        .funcs
                        .get(f)
                        .is_some_and(|i| i.entry != super::interp::NOT_LOADED)
                };
                if function.is_some_and(|f| !loaded(f)) {
                    return Err(MapError::Invalid);
                }
                *s = function;
                Ok(())
            }
            _ => Err(MapError::Invalid),
        }
    }
}

/// Calls a helper, recording the call when [`Machine::trace_calls`] is on.
pub(crate) fn call_helper(m: &mut Machine, h: &Helper, args: [u64; 5]) -> Result<u64, HelperError> {
    if !m.trace_calls {
        return (h.f)(m, args);
    }
    let as_arg = |m: &Machine, v: u64| match m.memory.kind_of(v) {
        Some(kind) => CallArg::Pointer {
            kind,
            offset: split_pointer(v).1,
        },
        None => CallArg::Scalar(v),
    };
    let traced = args[..usize::from(h.args.min(5))]
        .iter()
        .map(|&v| as_arg(m, v))
        .collect();
    let at = m.records.len();
    let site = super::interp::current_site(m);
    let inputs = read_inputs(m, &h.name, &args);
    m.records.push(Record::Call {
        name: h.name.clone(),
        args: traced,
        ret: CallArg::Scalar(0),
        at: Some(Box::new(site)),
        inputs,
    });
    let r = (h.f)(m, args);
    if let Ok(v) = &r {
        let arg = as_arg(m, *v);
        if let Some(Record::Call { ret, .. }) = m.records.get_mut(at) {
            *ret = arg;
        }
    }
    r
}

/// The memory a helper call reads through its pointer arguments, per the helper's prototype.
/// Arguments whose extent is unknown here (a size that is not a small scalar, a map argument
/// that is not a map) or that do not point to readable memory are left out: the call itself
/// reports those.
fn read_inputs(m: &Machine, name: &str, args: &[u64; 5]) -> Vec<(u8, Vec<u8>)> {
    use crate::optable::helper::{Access, Extent, memory_args};
    let Some(mem) = helper_id(name).and_then(memory_args) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for a in mem.iter().filter(|a| a.access != Access::Write) {
        let Some(&ptr) = args.get(usize::from(a.arg) - 1) else {
            continue;
        };
        let len = match a.extent {
            Extent::SizeArg(k) => args.get(usize::from(k) - 1).copied(),
            Extent::MapKey(k) | Extent::MapValue(k) => {
                let map = args
                    .get(usize::from(k) - 1)
                    .and_then(|&p| m.memory.kind_of(p));
                match map {
                    Some(RegionKind::MapObject { map }) => m.maps.get(map as usize).map(|s| {
                        u64::from(if matches!(a.extent, Extent::MapKey(_)) {
                            s.key_size
                        } else {
                            s.value_size
                        })
                    }),
                    _ => None,
                }
            }
        };
        if let Some(bytes) = len
            .filter(|&l| l <= 4096)
            .and_then(|l| m.memory.read_bytes(ptr, l).ok())
        {
            out.push((a.arg, bytes.to_vec()));
        }
    }
    out
}
