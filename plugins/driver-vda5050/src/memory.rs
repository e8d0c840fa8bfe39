//! What the driver remembers about a vehicle between calls, in the bytes
//! the host threads through them: the next `headerId` of each topic it
//! publishes on, and the job it is driving.
//!
//! The bytes are a version byte, then LEB128 integers (zigzag for signed
//! ones) and length-prefixed UTF-8 strings, fields in a fixed order:
//!
//! ```text
//! 01                        format version
//! order_header_id           unsigned
//! instant_actions_header_id unsigned
//! 00 | 01                   no job | a job follows:
//!   order_id                string
//!   order_update_id         unsigned
//!   last node: id string, x_mm signed, y_mm signed, map_id string,
//!              sequence_id unsigned, action count unsigned, then per action
//!              kind (0 pick, 1 drop, 2 charge), action_id, load_id, station
//! ```
//!
//! A vehicle without a job costs 4 bytes; one with a job, its identifiers
//! plus a few dozen. The host copies the memory in and out of every call,
//! inbound state messages included, so it is kept this small.

use bazaar_sdk::device::{ActionKind, MapNode, StopAction};

use crate::ID_BYTES_MAX;

/// The format written; a memory of another version is not read.
const FORMAT_VERSION: u8 = 1;

/// The most actions one node carries (consecutive stops at one node are
/// one node with each stop's action). A stop is one pick, drop or charge;
/// eight at one node already means a vehicle serving eight order lines
/// without moving.
pub const ACTIONS_PER_NODE_MAX: usize = 8;

/// The largest memory the driver writes: the fixed fields, four
/// identifiers of the job and last node, and each action's three.
pub const MEMORY_BYTES_MAX: usize =
    64 + (4 + ACTIONS_PER_NODE_MAX * 3) * (ID_BYTES_MAX + LENGTH_PREFIX_BYTES_MAX);

/// The longest LEB128 prefix of a string of at most [`ID_BYTES_MAX`] bytes.
const LENGTH_PREFIX_BYTES_MAX: usize = 2;

const _: () = assert!(ID_BYTES_MAX < 1 << 14, "a string length must fit two LEB128 bytes");

/// The driver's memory of one vehicle.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    /// The `headerId` of the next `order` message.
    pub order_header_id: u32,
    /// The `headerId` of the next `instantActions` message.
    pub instant_actions_header_id: u32,
    /// The job the vehicle was last given, until it is cancelled.
    pub job: Option<JobMemory>,
}

/// The job the vehicle is driving, as far as an order update needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobMemory {
    /// The VDA `orderId`: the job's id.
    pub order_id: String,
    /// The `orderUpdateId` of the last order message.
    pub order_update_id: u32,
    /// The last node released, which an order update starts from.
    pub last_node: LastNode,
}

/// The last released node of a job: an order update sends it again,
/// unchanged, as its first node (the standard's stitching node).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastNode {
    /// The map node.
    pub node: MapNode,
    /// Its `sequenceId`.
    pub sequence_id: u32,
    /// The actions it carries, at most [`ACTIONS_PER_NODE_MAX`].
    pub actions: Vec<StopAction>,
}

impl Memory {
    /// The memory in `bytes`; empty bytes are a vehicle the driver has not
    /// spoken to yet. An error says why the bytes cannot be read.
    pub fn read(bytes: &[u8]) -> Result<Memory, &'static str> {
        if bytes.is_empty() {
            return Ok(Memory::default());
        }
        if bytes.len() > MEMORY_BYTES_MAX {
            return Err("longer than the driver ever writes");
        }
        let mut reader = Reader { bytes };
        if reader.byte()? != FORMAT_VERSION {
            return Err("written in another format");
        }
        let order_header_id = reader.u32()?;
        let instant_actions_header_id = reader.u32()?;
        let job = match reader.byte()? {
            0 => None,
            1 => Some(reader.job()?),
            _ => return Err("a damaged job marker"),
        };
        if !reader.bytes.is_empty() {
            return Err("bytes after the end");
        }
        Ok(Memory { order_header_id, instant_actions_header_id, job })
    }

    /// The memory as bytes, at most [`MEMORY_BYTES_MAX`] given identifiers
    /// of at most [`ID_BYTES_MAX`] bytes and nodes of at most
    /// [`ACTIONS_PER_NODE_MAX`] actions, which the encoder checks first.
    pub fn write(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(16);
        bytes.push(FORMAT_VERSION);
        write_unsigned(&mut bytes, u64::from(self.order_header_id));
        write_unsigned(&mut bytes, u64::from(self.instant_actions_header_id));
        match &self.job {
            None => bytes.push(0),
            Some(job) => {
                bytes.push(1);
                write_string(&mut bytes, &job.order_id);
                write_unsigned(&mut bytes, u64::from(job.order_update_id));
                let last = &job.last_node;
                write_string(&mut bytes, &last.node.id);
                write_signed(&mut bytes, last.node.x_mm);
                write_signed(&mut bytes, last.node.y_mm);
                write_string(&mut bytes, &last.node.map_id);
                write_unsigned(&mut bytes, u64::from(last.sequence_id));
                write_unsigned(&mut bytes, last.actions.len() as u64);
                for action in &last.actions {
                    bytes.push(match action.kind {
                        ActionKind::Pick => 0,
                        ActionKind::Drop => 1,
                        ActionKind::Charge => 2,
                    });
                    write_string(&mut bytes, &action.action_id);
                    write_string(&mut bytes, &action.load_id);
                    write_string(&mut bytes, &action.station);
                }
            }
        }
        bytes
    }
}

fn write_unsigned(bytes: &mut Vec<u8>, mut value: u64) {
    loop {
        let low = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            bytes.push(low);
            return;
        }
        bytes.push(low | 0x80);
    }
}

fn write_signed(bytes: &mut Vec<u8>, value: i64) {
    // Zigzag: small magnitudes of either sign take few bytes.
    write_unsigned(bytes, ((value << 1) ^ (value >> 63)) as u64);
}

fn write_string(bytes: &mut Vec<u8>, text: &str) {
    write_unsigned(bytes, text.len() as u64);
    bytes.extend_from_slice(text.as_bytes());
}

/// Reads the fields of a memory in order, failing on anything it would not
/// have written.
struct Reader<'a> {
    /// What is left to read.
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, &'static str> {
        let (&first, rest) = self.bytes.split_first().ok_or("cut short")?;
        self.bytes = rest;
        Ok(first)
    }

    fn unsigned(&mut self) -> Result<u64, &'static str> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err("an integer out of range");
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("an integer out of range")
    }

    fn u32(&mut self) -> Result<u32, &'static str> {
        u32::try_from(self.unsigned()?).map_err(|_| "an integer out of range")
    }

    fn signed(&mut self) -> Result<i64, &'static str> {
        let zigzag = self.unsigned()?;
        Ok((zigzag >> 1) as i64 ^ -((zigzag & 1) as i64))
    }

    fn string(&mut self) -> Result<String, &'static str> {
        let length = self.unsigned()?;
        let length = usize::try_from(length)
            .ok()
            .filter(|&length| length <= ID_BYTES_MAX && length <= self.bytes.len())
            .ok_or("a damaged string")?;
        let (text, rest) = self.bytes.split_at(length);
        self.bytes = rest;
        String::from_utf8(text.to_vec()).map_err(|_| "a string that is not UTF-8")
    }

    fn job(&mut self) -> Result<JobMemory, &'static str> {
        let order_id = self.string()?;
        let order_update_id = self.u32()?;
        let node = MapNode {
            id: self.string()?,
            x_mm: self.signed()?,
            y_mm: self.signed()?,
            map_id: self.string()?,
        };
        let sequence_id = self.u32()?;
        let count = self.unsigned()?;
        if count > ACTIONS_PER_NODE_MAX as u64 {
            return Err("too many actions");
        }
        let mut actions = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let kind = match self.byte()? {
                0 => ActionKind::Pick,
                1 => ActionKind::Drop,
                2 => ActionKind::Charge,
                _ => return Err("an unknown action kind"),
            };
            actions.push(StopAction {
                kind,
                action_id: self.string()?,
                load_id: self.string()?,
                station: self.string()?,
            });
        }
        Ok(JobMemory {
            order_id,
            order_update_id,
            last_node: LastNode { node, sequence_id, actions },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn driving() -> Memory {
        Memory {
            order_header_id: 300,
            instant_actions_header_id: u32::MAX,
            job: Some(JobMemory {
                order_id: "job-7".to_owned(),
                order_update_id: 2,
                last_node: LastNode {
                    node: MapNode::new("dock-3", -12_345, i64::MAX, "hall-α"),
                    sequence_id: 8,
                    actions: vec![StopAction {
                        kind: ActionKind::Drop,
                        action_id: "drop-1".to_owned(),
                        load_id: "SKU-1".to_owned(),
                        station: "dock".to_owned(),
                    }],
                },
            }),
        }
    }

    #[test]
    fn memory_round_trips_with_and_without_a_job() {
        let idle = Memory { order_header_id: 1, instant_actions_header_id: 0, job: None };
        assert_eq!(idle.write().len(), 4);
        assert_eq!(Memory::read(&idle.write()), Ok(idle));
        let driving = driving();
        assert_eq!(Memory::read(&driving.write()), Ok(driving));
        assert_eq!(Memory::read(&[]), Ok(Memory::default()));
    }

    #[test]
    fn the_largest_memory_fits_the_bound() {
        let long = "x".repeat(ID_BYTES_MAX);
        let action = StopAction {
            kind: ActionKind::Pick,
            action_id: long.clone(),
            load_id: long.clone(),
            station: long.clone(),
        };
        let memory = Memory {
            order_header_id: u32::MAX,
            instant_actions_header_id: u32::MAX,
            job: Some(JobMemory {
                order_id: long.clone(),
                order_update_id: u32::MAX,
                last_node: LastNode {
                    node: MapNode::new(&long, i64::MIN, i64::MAX, &long),
                    sequence_id: u32::MAX,
                    actions: vec![action; ACTIONS_PER_NODE_MAX],
                },
            }),
        };
        let bytes = memory.write();
        assert!(bytes.len() <= MEMORY_BYTES_MAX, "{} bytes", bytes.len());
        assert_eq!(Memory::read(&bytes), Ok(memory));
    }

    #[test]
    fn damaged_memory_is_refused_not_misread() {
        let bytes = driving().write();
        for cut in 1..bytes.len() {
            assert!(Memory::read(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(Memory::read(&trailing).is_err());
        let mut other_version = bytes.clone();
        other_version[0] = 2;
        assert!(Memory::read(&other_version).is_err());
        assert!(Memory::read(&[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0]).is_err());
        assert!(Memory::read(&[1, 0, 0, 7]).is_err());
        assert!(Memory::read(&vec![0; MEMORY_BYTES_MAX + 1]).is_err());
    }
}
