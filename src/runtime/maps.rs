//! Maps with the kernel's semantics for what programs do with them: lookup, update with
//! `BPF_ANY`/`BPF_NOEXIST`/`BPF_EXIST`, delete, and the errors each map type returns.
//!
//! Every element value lives in its own [`Memory`] region, so a pointer returned by a lookup is
//! bounds-checked against exactly `value_size` bytes and stays valid while the element exists.
//! There is one simulated CPU: per-CPU maps hold one value per element, as programs see them.

use std::collections::{BTreeMap, HashMap};

use super::memory::{Memory, RegionId, RegionKind};
use super::{FuncIndex, MapIndex, MapInit, Module, ModuleMap};
use crate::Error;

/// `BPF_MAP_TYPE_*` values the runtime knows.
pub mod map_type {
    pub const HASH: u32 = 1;
    pub const ARRAY: u32 = 2;
    pub const PROG_ARRAY: u32 = 3;
    pub const PERF_EVENT_ARRAY: u32 = 4;
    pub const PERCPU_HASH: u32 = 5;
    pub const PERCPU_ARRAY: u32 = 6;
    pub const LRU_HASH: u32 = 9;
    pub const LRU_PERCPU_HASH: u32 = 10;
    pub const LPM_TRIE: u32 = 11;
    pub const ARRAY_OF_MAPS: u32 = 12;
    pub const HASH_OF_MAPS: u32 = 13;
    pub const SOCKMAP: u32 = 15;
    pub const SOCKHASH: u32 = 18;
    pub const CGROUP_STORAGE: u32 = 19;
    pub const PERCPU_CGROUP_STORAGE: u32 = 21;
    pub const SK_STORAGE: u32 = 24;
    pub const RINGBUF: u32 = 27;
}

/// Largest array the runtime creates (slots are a table).
pub const MAX_RUNTIME_ENTRIES: u32 = 1 << 24;
/// Largest value the runtime allocates (64 MiB, above the kernel's per-element limits).
pub const MAX_RUNTIME_VALUE: u32 = 64 << 20;

/// Update flags.
pub const BPF_ANY: u64 = 0;
pub const BPF_NOEXIST: u64 = 1;
pub const BPF_EXIST: u64 = 2;
pub const BPF_F_LOCK: u64 = 4;

/// Errors of map operations, as the kernel returns them (negated errno).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// `-ENOENT`: no such element (delete, `BPF_EXIST` update).
    NoEntry,
    /// `-EEXIST`: `BPF_NOEXIST` on an existing element.
    Exists,
    /// `-E2BIG`: array index out of range, or a full hash map.
    TooBig,
    /// `-ENOSPC`: a full LPM trie.
    NoSpace,
    /// `-EINVAL`: bad flags, or an operation the map type does not have (array delete).
    Invalid,
}

impl MapError {
    /// The helper return value: `-errno`.
    pub fn errno(self) -> i64 {
        -match self {
            MapError::NoEntry => 2,
            MapError::Exists => 17,
            MapError::TooBig => 7,
            MapError::NoSpace => 28,
            MapError::Invalid => 22,
        }
    }
}

/// Element storage per map family.
#[derive(Debug, Clone)]
pub enum Storage {
    /// Array, per-CPU array, global data: value regions allocated on first touch (0 = none yet).
    Array {
        values: Vec<RegionId>,
    },
    /// Hash, per-CPU hash, (per-CPU) LRU hash. `tick` orders uses for LRU eviction.
    Hash {
        entries: HashMap<Vec<u8>, HashEntry>,
        lru: bool,
        tick: u64,
    },
    /// LPM trie: (prefix length, data) → value region.
    Lpm {
        entries: BTreeMap<(u32, Vec<u8>), RegionId>,
    },
    /// PROG_ARRAY: slot → program entry function.
    ProgArray {
        slots: Vec<Option<FuncIndex>>,
    },
    /// Map-in-map: key → inner map.
    MapOfMaps {
        slots: BTreeMap<Vec<u8>, MapIndex>,
    },
    /// sk_storage: simulated socket id → value region.
    SkStorage {
        values: BTreeMap<u64, RegionId>,
    },
    /// sockmap/sockhash: key → simulated socket id; `inserts` records every insertion.
    Sock {
        entries: BTreeMap<Vec<u8>, u64>,
        inserts: Vec<(Vec<u8>, u64)>,
    },
    /// Ring buffer: bytes of records reserved or not yet consumed, and the open reservations
    /// (record region, bytes it takes).
    RingBuf {
        pending: u64,
        reserved: Vec<(RegionId, u64)>,
    },
    PerfEventArray,
    /// Cgroup storage of the (single) attached cgroup.
    CgroupStorage {
        value: RegionId,
    },
}

#[derive(Debug, Clone, Copy)]
pub struct HashEntry {
    pub value: RegionId,
    last_use: u64,
}

/// A map as the machine holds it.
#[derive(Debug, Clone)]
pub struct MapState {
    pub name: String,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub read_only: bool,
    /// Global data map (`.data`/`.rodata`/`.bss`).
    pub global: bool,
    /// The region standing for the map object (`ld_imm64` of the map points here).
    pub object: RegionId,
    pub storage: Storage,
}

impl MapState {
    pub(crate) fn create(
        index: MapIndex,
        def: &ModuleMap,
        module: &Module,
        memory: &mut Memory,
    ) -> Result<MapState, Error> {
        use map_type::*;
        let err = |message: String| Error::Map {
            map: def.name.clone(),
            message,
        };
        // Arrays and PROG_ARRAYs index a table of max_entries slots, and values are allocated
        // whole: refuse sizes that would exhaust memory instead of aborting.
        if def.max_entries > MAX_RUNTIME_ENTRIES
            && matches!(
                def.map_type,
                ARRAY | PERCPU_ARRAY | PROG_ARRAY | ARRAY_OF_MAPS
            )
        {
            return Err(err(format!(
                "max_entries {} is more than the runtime models ({MAX_RUNTIME_ENTRIES})",
                def.max_entries
            )));
        }
        if def.value_size > MAX_RUNTIME_VALUE {
            return Err(err(format!(
                "value_size {} is more than the runtime models ({MAX_RUNTIME_VALUE})",
                def.value_size
            )));
        }
        let object = memory.alloc(
            RegionKind::MapObject { map: index as u32 },
            Vec::new(),
            false,
        );
        let mut global = false;
        let storage = match def.map_type {
            ARRAY | PERCPU_ARRAY => {
                let mut values = vec![0; def.max_entries as usize];
                if let MapInit::Data(data) = &def.init {
                    if def.max_entries != 1 {
                        return Err(err("global data map with more than one entry".into()));
                    }
                    let mut bytes = data.clone();
                    bytes.resize(def.value_size as usize, 0);
                    values[0] = memory.alloc(
                        RegionKind::MapValue { map: index as u32 },
                        bytes,
                        !def.read_only,
                    );
                    global = true;
                }
                Storage::Array { values }
            }
            HASH | PERCPU_HASH | LRU_HASH | LRU_PERCPU_HASH => Storage::Hash {
                entries: HashMap::new(),
                lru: matches!(def.map_type, LRU_HASH | LRU_PERCPU_HASH),
                tick: 0,
            },
            LPM_TRIE => {
                if def.key_size <= 4 {
                    return Err(err(format!(
                        "LPM trie key of {} bytes: it needs a 4-byte prefix length and data",
                        def.key_size
                    )));
                }
                Storage::Lpm {
                    entries: BTreeMap::new(),
                }
            }
            PROG_ARRAY => {
                let mut slots = vec![None; def.max_entries as usize];
                if let MapInit::Programs(p) = &def.init {
                    for &(i, f) in p {
                        if f >= module.functions.len() {
                            return Err(err(format!(
                                "slot {i} names function #{f}, which does not exist"
                            )));
                        }
                        *slots.get_mut(i as usize).ok_or_else(|| {
                            err(format!(
                                "initial slot {i} is past max_entries {}",
                                def.max_entries
                            ))
                        })? = Some(f);
                    }
                }
                Storage::ProgArray { slots }
            }
            ARRAY_OF_MAPS | HASH_OF_MAPS => {
                let mut slots = BTreeMap::new();
                if let MapInit::Maps(v) = &def.init {
                    for &(i, inner) in v {
                        if inner >= module.maps.len() {
                            return Err(err(format!(
                                "slot {i} names map #{inner}, which does not exist"
                            )));
                        }
                        let key = i.to_le_bytes()[..def.key_size.min(4) as usize].to_vec();
                        slots.insert(key, inner);
                    }
                }
                Storage::MapOfMaps { slots }
            }
            SK_STORAGE => Storage::SkStorage {
                values: BTreeMap::new(),
            },
            SOCKMAP | SOCKHASH => Storage::Sock {
                entries: BTreeMap::new(),
                inserts: Vec::new(),
            },
            RINGBUF => {
                if !def.max_entries.is_power_of_two() || !def.max_entries.is_multiple_of(4096) {
                    return Err(err(format!(
                        "ring buffer size {} is not a power-of-2 multiple of the page size",
                        def.max_entries
                    )));
                }
                Storage::RingBuf {
                    pending: 0,
                    reserved: Vec::new(),
                }
            }
            PERF_EVENT_ARRAY => Storage::PerfEventArray,
            CGROUP_STORAGE | PERCPU_CGROUP_STORAGE => Storage::CgroupStorage {
                value: memory.alloc(
                    RegionKind::MapValue { map: index as u32 },
                    vec![0; def.value_size as usize],
                    true,
                ),
            },
            t => {
                return Err(err(format!(
                    "map type {} ({t}) is not supported by the runtime",
                    crate::uapi::map_type_name(t).unwrap_or("unknown")
                )));
            }
        };
        Ok(MapState {
            name: def.name.clone(),
            map_type: def.map_type,
            key_size: def.key_size,
            value_size: def.value_size,
            max_entries: def.max_entries,
            map_flags: def.map_flags,
            read_only: def.read_only,
            global,
            object,
            storage,
        })
    }

    /// The value region of a global data map.
    pub fn global_region(&self) -> Option<RegionId> {
        match (&self.storage, self.global) {
            (Storage::Array { values }, true) => values.first().copied(),
            _ => None,
        }
    }

    fn map_index(&self, memory: &Memory) -> u32 {
        match memory.region(self.object).map(|r| r.kind) {
            Some(RegionKind::MapObject { map }) => map,
            _ => 0,
        }
    }

    /// `bpf_map_lookup_elem` for data maps: the element's value region, or `None` (NULL).
    /// [`MapError::Invalid`] for map types whose lookup returns something else (see
    /// [`MapState::lookup_map`]) or that programs cannot look up.
    pub fn lookup(
        &mut self,
        memory: &mut Memory,
        key: &[u8],
    ) -> Result<Option<RegionId>, MapError> {
        let index = self.map_index(memory);
        let value_size = self.value_size as usize;
        let read_only = self.read_only;
        match &mut self.storage {
            Storage::Array { values } => {
                let Some(i) = array_index(key) else {
                    return Ok(None);
                };
                let Some(slot) = values.get_mut(i) else {
                    return Ok(None);
                };
                if *slot == 0 {
                    *slot = memory.alloc(
                        RegionKind::MapValue { map: index },
                        vec![0; value_size],
                        !read_only,
                    );
                }
                Ok(Some(*slot))
            }
            Storage::Hash { entries, tick, .. } => {
                *tick += 1;
                Ok(entries.get_mut(key).map(|e| {
                    e.last_use = *tick;
                    e.value
                }))
            }
            Storage::Lpm { entries } => Ok(lpm_match(entries, key)),
            _ => Err(MapError::Invalid),
        }
    }

    /// Lookup in a map-in-map: the inner map index.
    pub fn lookup_map(&self, key: &[u8]) -> Option<MapIndex> {
        match &self.storage {
            Storage::MapOfMaps { slots } => slots.get(key).copied(),
            _ => None,
        }
    }

    /// `bpf_map_update_elem` for data maps.
    pub fn update(
        &mut self,
        memory: &mut Memory,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), MapError> {
        if flags & !BPF_F_LOCK > BPF_EXIST {
            return Err(MapError::Invalid);
        }
        // No map here has a `bpf_spin_lock` in its value, which BPF_F_LOCK requires. A plain
        // array checks the index and BPF_NOEXIST first (array_map_update_elem); the others
        // refuse the flag at once.
        let lock = flags & BPF_F_LOCK != 0;
        if lock && self.map_type != map_type::ARRAY {
            return Err(MapError::Invalid);
        }
        let flags = flags & !BPF_F_LOCK;
        let index = self.map_index(memory);
        let max = self.max_entries as usize;
        match &mut self.storage {
            Storage::Array { values } => {
                let i = array_index(key).ok_or(MapError::TooBig)?;
                if i >= values.len() {
                    return Err(MapError::TooBig);
                }
                if flags == BPF_NOEXIST {
                    return Err(MapError::Exists);
                }
                if lock {
                    return Err(MapError::Invalid);
                }
                if values[i] == 0 {
                    values[i] =
                        memory.alloc(RegionKind::MapValue { map: index }, value.to_vec(), true);
                } else {
                    write_value(memory, values[i], value);
                }
                Ok(())
            }
            Storage::Hash { entries, lru, tick } => {
                *tick += 1;
                let now = *tick;
                if let Some(e) = entries.get_mut(key) {
                    if flags == BPF_NOEXIST {
                        return Err(MapError::Exists);
                    }
                    e.last_use = now;
                    let v = e.value;
                    write_value(memory, v, value);
                    return Ok(());
                }
                if flags == BPF_EXIST {
                    return Err(MapError::NoEntry);
                }
                if entries.len() >= max {
                    if !*lru {
                        return Err(MapError::TooBig);
                    }
                    // Exact LRU: the kernel's per-CPU free lists approximate this; with one
                    // CPU and no concurrent users the least recently used element goes.
                    let victim = entries
                        .iter()
                        .min_by_key(|(k, e)| (e.last_use, (*k).clone()))
                        .map(|(k, _)| k.clone());
                    if let Some(v) = victim
                        && let Some(e) = entries.remove(&v)
                    {
                        memory.release(e.value);
                    }
                }
                let region =
                    memory.alloc(RegionKind::MapValue { map: index }, value.to_vec(), true);
                entries.insert(
                    key.to_vec(),
                    HashEntry {
                        value: region,
                        last_use: now,
                    },
                );
                Ok(())
            }
            Storage::Lpm { entries } => {
                let k = lpm_key(key).ok_or(MapError::Invalid)?;
                let exists = entries.contains_key(&k);
                if exists && flags == BPF_NOEXIST {
                    return Err(MapError::Exists);
                }
                if !exists && flags == BPF_EXIST {
                    return Err(MapError::NoEntry);
                }
                if let Some(&r) = entries.get(&k) {
                    write_value(memory, r, value);
                    return Ok(());
                }
                if entries.len() >= max {
                    return Err(MapError::NoSpace);
                }
                let region =
                    memory.alloc(RegionKind::MapValue { map: index }, value.to_vec(), true);
                entries.insert(k, region);
                Ok(())
            }
            _ => Err(MapError::Invalid),
        }
    }

    /// `bpf_map_delete_elem` for data maps.
    pub fn delete(&mut self, memory: &mut Memory, key: &[u8]) -> Result<(), MapError> {
        let sockmap = self.map_type == map_type::SOCKMAP;
        let max = self.max_entries as usize;
        match &mut self.storage {
            // sock_map_delete_elem: an index out of range or an empty slot is -EINVAL;
            // sock_hash_delete_elem: a missing key is -ENOENT.
            Storage::Sock { entries, .. } => {
                if sockmap && array_index(key).is_none_or(|i| i >= max) {
                    return Err(MapError::Invalid);
                }
                match entries.remove(key) {
                    Some(_) => Ok(()),
                    None if sockmap => Err(MapError::Invalid),
                    None => Err(MapError::NoEntry),
                }
            }
            Storage::Array { .. } => Err(MapError::Invalid),
            Storage::Hash { entries, .. } => {
                let e = entries.remove(key).ok_or(MapError::NoEntry)?;
                memory.release(e.value);
                Ok(())
            }
            Storage::Lpm { entries } => {
                let k = lpm_key(key).ok_or(MapError::Invalid)?;
                let r = entries.remove(&k).ok_or(MapError::NoEntry)?;
                memory.release(r);
                Ok(())
            }
            _ => Err(MapError::Invalid),
        }
    }

    /// Every element as (key, value) bytes, in key order: what a comparison of final map contents
    /// looks at. Array elements never touched read as zeros and are included.
    pub fn entries(&self, memory: &Memory) -> Vec<(Vec<u8>, Vec<u8>)> {
        let value = |r: RegionId| memory.region(r).map(|r| r.data.clone()).unwrap_or_default();
        let zero = vec![0u8; self.value_size as usize];
        match &self.storage {
            Storage::Array { values } => values
                .iter()
                .enumerate()
                .map(|(i, &r)| {
                    let v = if r == 0 { zero.clone() } else { value(r) };
                    ((i as u32).to_le_bytes().to_vec(), v)
                })
                .collect(),
            Storage::Hash { entries, .. } => {
                let mut v: Vec<_> = entries
                    .iter()
                    .map(|(k, e)| (k.clone(), value(e.value)))
                    .collect();
                v.sort();
                v
            }
            Storage::Lpm { entries } => entries
                .iter()
                .map(|((plen, data), &r)| {
                    let mut k = plen.to_le_bytes().to_vec();
                    k.extend_from_slice(data);
                    (k, value(r))
                })
                .collect(),
            Storage::SkStorage { values } => values
                .iter()
                .map(|(sk, &r)| (sk.to_le_bytes().to_vec(), value(r)))
                .collect(),
            Storage::Sock { entries, .. } => entries
                .iter()
                .map(|(k, sk)| (k.clone(), sk.to_le_bytes().to_vec()))
                .collect(),
            Storage::CgroupStorage { value: r } => vec![(Vec::new(), value(*r))],
            _ => Vec::new(),
        }
    }
}

fn array_index(key: &[u8]) -> Option<usize> {
    let b: [u8; 4] = key.get(..4)?.try_into().ok()?;
    Some(u32::from_le_bytes(b) as usize)
}

fn write_value(memory: &mut Memory, region: RegionId, value: &[u8]) {
    if let Some(r) = memory.region_mut(region) {
        let n = r.data.len().min(value.len());
        r.data[..n].copy_from_slice(&value[..n]);
    }
}

/// Splits an LPM key into (prefix length, data), rejecting prefixes longer than the data.
fn lpm_key(key: &[u8]) -> Option<(u32, Vec<u8>)> {
    let plen = u32::from_le_bytes(key.get(..4)?.try_into().ok()?);
    let data = &key[4..];
    if plen as usize > data.len() * 8 {
        return None;
    }
    // Bits past the prefix do not belong to the entry: normalise them away.
    let mut d = data.to_vec();
    for (i, b) in d.iter_mut().enumerate() {
        let bit = i as u32 * 8;
        if bit >= plen {
            *b = 0;
        } else if plen - bit < 8 {
            *b &= 0xffu8 << (8 - (plen - bit));
        }
    }
    Some((plen, d))
}

fn prefix_matches(a: &[u8], b: &[u8], bits: u32) -> bool {
    let full = (bits / 8) as usize;
    if a[..full] != b[..full] {
        return false;
    }
    let rest = bits % 8;
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[full] & mask == b[full] & mask
    }
}

/// Longest-prefix match among entries whose prefix is no longer than the key's.
fn lpm_match(entries: &BTreeMap<(u32, Vec<u8>), RegionId>, key: &[u8]) -> Option<RegionId> {
    let plen = u32::from_le_bytes(key.get(..4)?.try_into().ok()?);
    let data = &key[4..];
    // trie_lookup_elem finds nothing for a key longer than the trie's prefixes.
    if plen > data.len() as u32 * 8 {
        return None;
    }
    entries
        .iter()
        .filter(|((p, d), _)| *p <= plen && prefix_matches(d, data, *p))
        .max_by_key(|((p, _), _)| *p)
        .map(|(_, &r)| r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(map_type: u32, max_entries: u32, key_size: u32) -> (MapState, Memory) {
        let mut memory = Memory::new();
        let def = ModuleMap {
            name: "m".into(),
            map_type,
            key_size,
            value_size: 4,
            max_entries,
            map_flags: 0,
            read_only: false,
            init: MapInit::Empty,
        };
        let m = MapState::create(0, &def, &Module::default(), &mut memory).unwrap();
        (m, memory)
    }

    fn value(memory: &Memory, r: RegionId) -> u32 {
        u32::from_le_bytes(memory.region(r).unwrap().data[..4].try_into().unwrap())
    }

    #[test]
    fn hash_flags_and_capacity() {
        let (mut m, mut mem) = map(map_type::HASH, 2, 4);
        let k = |i: u32| i.to_le_bytes();
        assert_eq!(
            m.update(&mut mem, &k(1), &[1, 0, 0, 0], BPF_EXIST),
            Err(MapError::NoEntry)
        );
        m.update(&mut mem, &k(1), &[1, 0, 0, 0], BPF_NOEXIST)
            .unwrap();
        assert_eq!(
            m.update(&mut mem, &k(1), &[2, 0, 0, 0], BPF_NOEXIST),
            Err(MapError::Exists)
        );
        m.update(&mut mem, &k(1), &[3, 0, 0, 0], BPF_EXIST).unwrap();
        let r = m.lookup(&mut mem, &k(1)).unwrap().unwrap();
        assert_eq!(value(&mem, r), 3);
        m.update(&mut mem, &k(2), &[0; 4], BPF_ANY).unwrap();
        assert_eq!(
            m.update(&mut mem, &k(3), &[0; 4], BPF_ANY),
            Err(MapError::TooBig)
        );
        assert_eq!(
            m.update(&mut mem, &k(3), &[0; 4], 3),
            Err(MapError::Invalid)
        );
        m.delete(&mut mem, &k(2)).unwrap();
        assert_eq!(m.delete(&mut mem, &k(2)), Err(MapError::NoEntry));
        assert_eq!(m.lookup(&mut mem, &k(2)).unwrap(), None);
        assert_eq!(MapError::TooBig.errno(), -7);
    }

    #[test]
    fn lru_evicts_least_recently_used() {
        let (mut m, mut mem) = map(map_type::LRU_HASH, 2, 4);
        let k = |i: u32| i.to_le_bytes();
        m.update(&mut mem, &k(1), &[1, 0, 0, 0], BPF_ANY).unwrap();
        m.update(&mut mem, &k(2), &[2, 0, 0, 0], BPF_ANY).unwrap();
        m.lookup(&mut mem, &k(1)).unwrap();
        m.update(&mut mem, &k(3), &[3, 0, 0, 0], BPF_ANY).unwrap();
        assert!(
            m.lookup(&mut mem, &k(2)).unwrap().is_none(),
            "2 was least recently used"
        );
        assert!(m.lookup(&mut mem, &k(1)).unwrap().is_some());
    }

    #[test]
    fn array_semantics() {
        let (mut m, mut mem) = map(map_type::ARRAY, 4, 4);
        let k = |i: u32| i.to_le_bytes();
        let r = m.lookup(&mut mem, &k(3)).unwrap().unwrap();
        assert_eq!(value(&mem, r), 0);
        assert_eq!(m.lookup(&mut mem, &k(4)).unwrap(), None);
        assert_eq!(
            m.update(&mut mem, &k(4), &[0; 4], BPF_ANY),
            Err(MapError::TooBig)
        );
        assert_eq!(
            m.update(&mut mem, &k(0), &[0; 4], BPF_NOEXIST),
            Err(MapError::Exists)
        );
        m.update(&mut mem, &k(3), &[7, 0, 0, 0], BPF_EXIST).unwrap();
        assert_eq!(value(&mem, r), 7, "update writes in place");
        assert_eq!(m.delete(&mut mem, &k(0)), Err(MapError::Invalid));
    }

    #[test]
    fn lpm_longest_prefix() {
        let (mut m, mut mem) = map(map_type::LPM_TRIE, 8, 8);
        let key = |plen: u32, ip: [u8; 4]| {
            let mut k = plen.to_le_bytes().to_vec();
            k.extend_from_slice(&ip);
            k
        };
        m.update(&mut mem, &key(8, [10, 0, 0, 0]), &[8, 0, 0, 0], BPF_ANY)
            .unwrap();
        m.update(&mut mem, &key(24, [10, 1, 2, 99]), &[24, 0, 0, 0], BPF_ANY)
            .unwrap();
        let hit = |m: &mut MapState, mem: &mut Memory, ip| {
            m.lookup(mem, &key(32, ip)).unwrap().map(|r| value(mem, r))
        };
        assert_eq!(hit(&mut m, &mut mem, [10, 1, 2, 3]), Some(24));
        assert_eq!(hit(&mut m, &mut mem, [10, 9, 2, 3]), Some(8));
        assert_eq!(hit(&mut m, &mut mem, [11, 1, 2, 3]), None);
        assert_eq!(
            m.update(&mut mem, &key(33, [0; 4]), &[0; 4], BPF_ANY),
            Err(MapError::Invalid)
        );
        assert_eq!(
            m.update(&mut mem, &key(24, [10, 1, 2, 0]), &[0; 4], BPF_NOEXIST),
            Err(MapError::Exists),
            "host bits past the prefix are not part of the key"
        );
    }

    #[test]
    fn oversized_maps_are_load_errors() {
        let mut memory = Memory::new();
        let mut def = ModuleMap {
            name: "huge".into(),
            map_type: map_type::ARRAY,
            key_size: 4,
            value_size: 4,
            max_entries: u32::MAX,
            map_flags: 0,
            read_only: false,
            init: MapInit::Empty,
        };
        let e = MapState::create(0, &def, &Module::default(), &mut memory).unwrap_err();
        assert!(e.to_string().contains("map `huge`: max_entries"), "{e}");
        def.max_entries = 1;
        def.value_size = u32::MAX;
        let e = MapState::create(0, &def, &Module::default(), &mut memory).unwrap_err();
        assert!(e.to_string().contains("value_size"), "{e}");
    }

    #[test]
    fn unsupported_type_names_the_map() {
        let mut memory = Memory::new();
        let def = ModuleMap {
            name: "q".into(),
            map_type: 22,
            key_size: 0,
            value_size: 4,
            max_entries: 4,
            map_flags: 0,
            read_only: false,
            init: MapInit::Empty,
        };
        let e = MapState::create(0, &def, &Module::default(), &mut memory).unwrap_err();
        assert!(e.to_string().contains("map `q`"), "{e}");
        assert!(e.to_string().contains("queue"), "{e}");
    }
}
