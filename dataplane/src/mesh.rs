//! A full mesh of bounded lock-free queues between workers, one per (from, to) pair, so
//! each queue has a single producer and a single consumer and the data path never blocks.
//!
//! Used to move packets to the worker that owns their flow (DESIGN.md: "a worker that
//! receives a packet it does not own moves it to the owner through a single-producer
//! ring") and to share learned neighbours. A full queue refuses the item and gives it
//! back; the sender counts it.

use std::sync::Arc;

use arrayvec::ArrayVec;
use crossbeam_queue::ArrayQueue;

/// One worker's ends of a mesh ([`MeshLinks::mesh`]): an outbox to every other worker, indexed by the
/// destination worker, and an inbox from every other worker.
#[derive(Debug)]
pub struct MeshLinks<T> {
    me: usize,
    /// `outboxes[w]` goes to worker `w`; `None` at our own index.
    outboxes: Vec<Option<Arc<ArrayQueue<T>>>>,
    inboxes: Vec<Arc<ArrayQueue<T>>>,
}

impl<T> MeshLinks<T> {
    /// The mesh for `workers` workers, `capacity` items per (from, to) queue; element `i`
    /// of the result belongs to worker `i`.
    pub fn mesh(workers: usize, capacity: usize) -> Vec<MeshLinks<T>> {
        let mut all: Vec<MeshLinks<T>> = (0..workers)
            .map(|me| MeshLinks { me, outboxes: (0..workers).map(|_| None).collect(), inboxes: Vec::new() })
            .collect();
        for from in 0..workers {
            for to in 0..workers {
                if from != to {
                    let q = Arc::new(ArrayQueue::new(capacity.max(1)));
                    all[from].outboxes[to] = Some(Arc::clone(&q));
                    all[to].inboxes.push(q);
                }
            }
        }
        all
    }

    /// Number of other workers this one sends to.
    pub fn peers(&self) -> usize {
        self.outboxes.iter().flatten().count()
    }

    /// Links for a lone worker (no peers).
    pub fn none() -> Self {
        MeshLinks { me: 0, outboxes: vec![None], inboxes: Vec::new() }
    }

    /// The worker these links belong to.
    pub fn me(&self) -> usize {
        self.me
    }

    /// Number of workers in the mesh (this one included).
    pub fn workers(&self) -> usize {
        self.outboxes.len()
    }

    /// Sends `item` to worker `to`; gives it back when that queue is full or `to` is this
    /// worker or out of range.
    #[inline]
    pub fn send(&self, to: usize, item: T) -> Result<(), T> {
        match self.outboxes.get(to) {
            Some(Some(q)) => q.push(item),
            _ => Err(item),
        }
    }

    /// Sends a copy of `item` to every peer; returns how many peers' queues were full.
    #[inline]
    pub fn broadcast(&self, item: T) -> u64
    where
        T: Clone,
    {
        self.outboxes.iter().flatten().map(|q| u64::from(q.push(item.clone()).is_err())).sum()
    }

    /// Moves waiting items into `out` until it is full or every inbox is empty, taking
    /// from each peer in turn so no peer starves the others. What does not fit waits.
    #[inline]
    pub fn recv<const N: usize>(&self, out: &mut ArrayVec<T, N>) {
        loop {
            let before = out.len();
            for q in &self.inboxes {
                if out.is_full() {
                    return;
                }
                if let Some(u) = q.pop() {
                    out.push(u);
                }
            }
            if out.len() == before {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_reach_the_addressed_worker_only() {
        let links = MeshLinks::<u32>::mesh(3, 2);
        assert!(links[0].send(2, 7).is_ok());
        assert!(links[1].send(2, 8).is_ok());
        assert_eq!(links[0].send(0, 1), Err(1), "no queue to oneself");
        assert_eq!(links[0].send(9, 1), Err(1), "no such worker");
        let mut got = ArrayVec::<u32, 8>::new();
        links[1].recv(&mut got);
        assert!(got.is_empty());
        links[2].recv(&mut got);
        got.sort_unstable();
        assert_eq!(got.as_slice(), &[7, 8]);
        assert!(links[0].send(1, 1).is_ok() && links[0].send(1, 2).is_ok());
        assert_eq!(links[0].send(1, 3), Err(3), "a full queue gives the item back");
        assert_eq!(links[2].broadcast(5), 0);
        assert_eq!(links[2].broadcast(6), 0);
        assert_eq!(links[2].broadcast(7), 2, "both peers' queues from 2 hold two items");
        let mut small = ArrayVec::<u32, 1>::new();
        links[0].recv(&mut small);
        assert_eq!(small.len(), 1, "recv stops when the output is full");
        assert_eq!(MeshLinks::<u32>::none().workers(), 1);
        assert_eq!((MeshLinks::<u32>::none().peers(), links[0].peers()), (0, 2));
    }
}
