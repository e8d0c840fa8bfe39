//! A store's orders, numbered densely from 1, in fixed-size chunks.
//!
//! A flat `Vec<Order>` doubles its buffer as it grows: at a quarter of a
//! million orders that is a copy of well over 100 MB on the shard writer,
//! a pause every request queued behind it would feel. Chunks are allocated
//! once at their full size and never move, so appending is always cheap.
//! Chunks are shared (`Arc`), so cloning the log for a background snapshot
//! costs a pointer per chunk; a chunk changed while a snapshot holds it is
//! copied then, once. Each order is shared too, so the answer to a request
//! can carry the order off the writer thread without copying it, and a
//! chunk's copy is a copy of pointers.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::{Order, OrderNumber};

/// Orders per chunk: 4,096 pointers are a 32 KiB allocation, large enough
/// to be rare and small enough to copy in an instant.
const ORDERS_PER_CHUNK: usize = 4_096;

/// The orders of one store; order `n` is the `n`-th pushed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderLog {
    /// Full chunks, then the one being filled.
    chunks: Vec<Arc<Vec<Arc<Order>>>>,
    /// Orders in all chunks.
    len: usize,
}

impl OrderLog {
    /// How many orders there are.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The number the next order gets.
    pub fn next_number(&self) -> OrderNumber {
        self.len as OrderNumber + 1
    }

    fn position(&self, number: OrderNumber) -> Option<(usize, usize)> {
        let index = usize::try_from(number.checked_sub(1)?).ok()?;
        (index < self.len).then_some((index / ORDERS_PER_CHUNK, index % ORDERS_PER_CHUNK))
    }

    /// Order `number`, if it exists.
    pub fn get(&self, number: OrderNumber) -> Option<&Order> {
        self.shared(number).map(|order| &**order)
    }

    /// Order `number` as shared with the log: a copy of a pointer. A later
    /// change to the order copies it in the log, so this stays as it was.
    pub fn shared(&self, number: OrderNumber) -> Option<&Arc<Order>> {
        let (chunk, offset) = self.position(number)?;
        self.chunks.get(chunk)?.get(offset)
    }

    /// Order `number`, to change it.
    pub(crate) fn get_mut(&mut self, number: OrderNumber) -> Option<&mut Order> {
        let (chunk, offset) = self.position(number)?;
        Arc::make_mut(self.chunks.get_mut(chunk)?).get_mut(offset).map(Arc::make_mut)
    }

    /// Appends an order; it must carry the next number.
    pub(crate) fn push(&mut self, order: Order) {
        debug_assert_eq!(order.number, self.next_number());
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < ORDERS_PER_CHUNK => {
                // A copy made while a snapshot shares the chunk keeps the
                // full capacity, so the chunk still never grows.
                let chunk = Arc::make_mut(chunk);
                chunk.reserve_exact(ORDERS_PER_CHUNK - chunk.len());
                chunk.push(Arc::new(order));
            }
            _ => {
                let mut chunk = Vec::with_capacity(ORDERS_PER_CHUNK);
                chunk.push(Arc::new(order));
                self.chunks.push(Arc::new(chunk));
            }
        }
        self.len += 1;
    }

    /// Every order, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Order> {
        self.chunks.iter().flat_map(|chunk| chunk.iter().map(|order| &**order))
    }

    /// The orders numbered after `after`, oldest first (for pagination),
    /// shared: a page is taken on the shard writer, and sharing its orders
    /// costs the writer a reference count each, not a copy.
    pub fn after(&self, after: OrderNumber) -> impl Iterator<Item = &Arc<Order>> {
        let skip = usize::try_from(after).unwrap_or(usize::MAX).min(self.len);
        let (first_chunk, offset) = (skip / ORDERS_PER_CHUNK, skip % ORDERS_PER_CHUNK);
        let orders = self.chunks.iter().skip(first_chunk).flat_map(|chunk| chunk.iter());
        orders.skip(offset)
    }
}

/// Encoded as the plain sequence of orders, so chunking is invisible in
/// snapshots.
impl Serialize for OrderLog {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq as _;
        // The length up front: compact formats such as postcard need it.
        let mut sequence = serializer.serialize_seq(Some(self.len))?;
        for order in self.iter() {
            sequence.serialize_element(order)?;
        }
        sequence.end()
    }
}

impl<'de> Deserialize<'de> for OrderLog {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let orders = Vec::<Order>::deserialize(deserializer)?;
        let mut log = OrderLog::default();
        for order in orders {
            if order.number != log.next_number() {
                return Err(serde::de::Error::custom(format!(
                    "order {} found where order {} belongs",
                    order.number,
                    log.next_number()
                )));
            }
            log.push(order);
        }
        Ok(log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        Address, Customer, CustomerId, CustomerSegment, OrderRequest, OrderStatus, Router,
        ShipmentPlan, Totals,
    };
    use crate::money::Currency;

    fn order(number: OrderNumber) -> Order {
        Order {
            number,
            request: OrderRequest {
                idempotency_key: None,
                customer: Customer {
                    id: CustomerId::new("c").unwrap(),
                    segment: CustomerSegment::Regular,
                },
                lines: Vec::new(),
                coupon_codes: Vec::new(),
                shipping_address: Address::default(),
            },
            request_fingerprint: [0; 32],
            lines: Vec::new(),
            adjustments: Box::default(),
            pricing_failures: Box::default(),
            risk_checks: Box::default(),
            shipment_plan: ShipmentPlan {
                shipments: Vec::new(),
                routed_by: Router::BuiltIn,
                fallback_reason: None,
            },
            totals: Totals::default(),
            limited_units: Box::default(),
            currency: Currency::parse("CNY").unwrap(),
            status: OrderStatus::Reserved,
            placed_at_ms: number,
            updated_at_ms: number,
        }
    }

    #[test]
    fn orders_are_found_by_number_across_chunk_boundaries() {
        let mut log = OrderLog::default();
        let count = ORDERS_PER_CHUNK as u64 * 2 + 7;
        for number in 1..=count {
            log.push(order(number));
        }
        assert_eq!(log.len() as u64, count);
        for number in [1, 4_096, 4_097, 8_192, 8_193, count] {
            assert_eq!(log.get(number).unwrap().number, number);
        }
        assert!(log.get(0).is_none() && log.get(count + 1).is_none());
        let page: Vec<_> = log.after(4_095).take(3).map(|o| o.number).collect();
        assert_eq!(page, [4_096, 4_097, 4_098]);
        assert_eq!(log.after(count).count(), 0);
        assert_eq!(
            log.iter().map(|o| o.number).collect::<Vec<_>>(),
            (1..=count).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_log_encodes_as_a_plain_sequence_and_refuses_gaps() {
        let mut log = OrderLog::default();
        for number in 1..=3 {
            log.push(order(number));
        }
        let bytes = postcard::to_allocvec(&log).unwrap();
        let plain = postcard::to_allocvec(&log.iter().cloned().collect::<Vec<_>>()).unwrap();
        assert_eq!(bytes, plain);
        assert_eq!(postcard::from_bytes::<OrderLog>(&bytes).unwrap(), log);
        let gap = postcard::to_allocvec(&vec![order(1), order(3)]).unwrap();
        assert!(postcard::from_bytes::<OrderLog>(&gap).is_err());
    }
}
