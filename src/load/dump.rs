//! Reading every map of a loaded object into plain data, for the kernel differential tests and
//! for users comparing an original with its split form.
//!
//! Per map type:
//! - hash/array/LRU/LPM maps: every key and value, sorted by key (hash iteration order is not
//!   meaningful);
//! - per-CPU maps: one value per key, the lane-wise wrapping sum over CPUs of little-endian u64
//!   words (u32 words when the value size is not a multiple of 8). Which CPU ran a callback is
//!   scheduling, not behaviour; the sum of counters is behaviour;
//! - ring buffers: drained, one entry per record in order, keyed by its sequence number;
//! - PROG_ARRAY, maps of maps, sockmap/sockhash: keys only — their values are kernel object ids
//!   (or socket cookies), which differ between any two loads;
//! - maps user space cannot iterate (sk_storage, queues, stacks, bloom filters, perf event
//!   arrays): listed with a note and no entries.

use std::time::Duration;

use libbpf_rs::{MapCore, MapFlags, MapType};

/// One map's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapDump {
    /// libbpf's name (global data maps are `<object prefix>.bss` and the like).
    pub name: String,
    pub map_type: String,
    pub key_size: u32,
    pub value_size: u32,
    pub entries: Vec<Entry>,
    /// Why entries are missing or partial, if they are.
    pub note: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// Dumps every map of `obj`, in libbpf's map order.
pub fn dump_maps(obj: &libbpf_rs::Object) -> Result<Vec<MapDump>, crate::Error> {
    let mut out = Vec::new();
    for map in obj.maps() {
        let name = map.name().to_string_lossy().into_owned();
        let err = |what: &str, e: libbpf_rs::Error| crate::Error::Map {
            map: name.clone(),
            message: format!("{what}: {e}"),
        };
        let ty = map.map_type();
        let mut d = MapDump {
            name: name.clone(),
            map_type: format!("{ty:?}"),
            key_size: map.key_size(),
            value_size: map.value_size(),
            entries: Vec::new(),
            note: None,
        };
        match ty {
            MapType::RingBuf => {
                let records = std::cell::RefCell::new(Vec::new());
                let mut b = libbpf_rs::RingBufferBuilder::new();
                b.add(&map, |data: &[u8]| {
                    records.borrow_mut().push(data.to_vec());
                    0
                })
                .map_err(|e| err("ring buffer", e))?;
                let rb = b.build().map_err(|e| err("ring buffer", e))?;
                rb.poll(Duration::ZERO).map_err(|e| err("ring buffer", e))?;
                drop(rb);
                d.entries = records
                    .into_inner()
                    .into_iter()
                    .enumerate()
                    .map(|(i, value)| Entry {
                        key: (i as u32).to_le_bytes().to_vec(),
                        value,
                    })
                    .collect();
            }
            MapType::ProgArray
            | MapType::ArrayOfMaps
            | MapType::HashOfMaps
            | MapType::Sockmap
            | MapType::Sockhash => {
                d.note = Some("keys only: values are kernel ids or socket cookies");
                for key in map.keys() {
                    let present = map
                        .lookup(&key, MapFlags::ANY)
                        .map(|v| v.is_some())
                        .unwrap_or(true);
                    if present {
                        d.entries.push(Entry {
                            key,
                            value: Vec::new(),
                        });
                    }
                }
                d.entries.sort();
            }
            MapType::Hash
            | MapType::Array
            | MapType::LruHash
            | MapType::LpmTrie
            | MapType::PercpuHash
            | MapType::PercpuArray
            | MapType::LruPercpuHash => {
                let percpu = ty.is_percpu();
                for key in map.keys() {
                    let value = if percpu {
                        map.lookup_percpu(&key, MapFlags::ANY)
                            .map_err(|e| err("lookup", e))?
                            .map(|v| fold_percpu(&v))
                    } else {
                        map.lookup(&key, MapFlags::ANY)
                            .map_err(|e| err("lookup", e))?
                    };
                    // A key deleted between iteration and lookup is simply not there.
                    if let Some(value) = value {
                        d.entries.push(Entry { key, value });
                    }
                }
                d.entries.sort();
            }
            _ => d.note = Some("not iterable from user space"),
        }
        out.push(d);
    }
    Ok(out)
}

/// Lane-wise wrapping sum of per-CPU values (see the module documentation).
pub fn fold_percpu(values: &[Vec<u8>]) -> Vec<u8> {
    let size = values.first().map_or(0, Vec::len);
    let mut out = vec![0u8; size];
    let lane = if size.is_multiple_of(8) { 8 } else { 4 };
    if !size.is_multiple_of(lane) {
        // Odd sizes have no counter interpretation; keep the first CPU's bytes would be arbitrary,
        // so sum bytes instead (still CPU-placement independent).
        for v in values {
            for (o, b) in out.iter_mut().zip(v) {
                *o = o.wrapping_add(*b);
            }
        }
        return out;
    }
    for v in values {
        for (o, c) in out.chunks_exact_mut(lane).zip(v.chunks_exact(lane)) {
            if lane == 8 {
                let s = u64::from_le_bytes(o.try_into().expect("8"))
                    .wrapping_add(u64::from_le_bytes(c.try_into().expect("8")));
                o.copy_from_slice(&s.to_le_bytes());
            } else {
                let s = u32::from_le_bytes(o.try_into().expect("4"))
                    .wrapping_add(u32::from_le_bytes(c.try_into().expect("4")));
                o.copy_from_slice(&s.to_le_bytes());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percpu_values_fold_to_lane_sums() {
        let a = [1u64.to_le_bytes(), 5u64.to_le_bytes()].concat();
        let b = [2u64.to_le_bytes(), u64::MAX.to_le_bytes()].concat();
        let f = fold_percpu(&[a, b]);
        assert_eq!(&f[..8], &3u64.to_le_bytes());
        assert_eq!(&f[8..], &4u64.to_le_bytes());
        let f = fold_percpu(&[7u32.to_le_bytes().to_vec(), 8u32.to_le_bytes().to_vec()]);
        assert_eq!(f, 15u32.to_le_bytes());
    }
}
