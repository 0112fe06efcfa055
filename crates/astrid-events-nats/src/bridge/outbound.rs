//! The outbound buffer: encoded exports waiting for NATS, bounded in bytes.
//!
//! A message's bytes are charged from the moment it is queued until the
//! exporter [releases](Outbound::release) them (after the send, or after the
//! publish ack of a durable export), so the bound covers messages in flight.

use std::collections::VecDeque;

use async_nats::HeaderMap;
use bytes::Bytes;

use super::lock;

pub(super) struct Outgoing {
    pub(super) subject: async_nats::Subject,
    pub(super) headers: HeaderMap,
    pub(super) payload: Bytes,
    /// Goes through JetStream (topic matches a durable pattern).
    pub(super) durable: bool,
    /// Bytes charged to the buffer for this message, from the push until
    /// [`Outbound::release`].
    pub(super) size: usize,
}

pub(super) struct Outbound {
    /// Waiting messages, and the bytes charged: those of the waiting messages
    /// plus those of popped messages not yet released (durable exports
    /// waiting for their ack). Never more than `max_bytes`.
    pub(super) queue: std::sync::Mutex<(VecDeque<Outgoing>, usize)>,
    pub(super) max_bytes: usize,
}

impl Outbound {
    /// Queues `msgs` (emptying it) under one lock; returns how many did not
    /// fit and were dropped.
    pub(super) fn push_all(&self, msgs: &mut Vec<Outgoing>) -> u64 {
        if msgs.is_empty() {
            return 0;
        }
        for msg in msgs.iter_mut() {
            msg.size = msg.subject.len() + msg.payload.len() + header_size(&msg.headers);
        }
        let mut dropped = 0;
        let mut q = lock(&self.queue);
        for msg in msgs.drain(..) {
            if q.1 + msg.size > self.max_bytes {
                dropped += 1;
                continue;
            }
            q.1 += msg.size;
            q.0.push_back(msg);
        }
        drop(q);
        dropped
    }

    /// Takes the oldest message; its bytes stay charged until
    /// [`release`](Self::release).
    pub(super) fn pop(&self) -> Option<Outgoing> {
        lock(&self.queue).0.pop_front()
    }

    /// Moves up to `max` messages from the front into `out` under one lock,
    /// stopping at the first one `take` refuses; their bytes stay charged
    /// until [`release`](Self::release).
    pub(super) fn pop_while(
        &self,
        out: &mut VecDeque<Outgoing>,
        max: usize,
        take: impl Fn(&Outgoing) -> bool,
    ) {
        let mut q = lock(&self.queue);
        while out.len() < max {
            match q.0.front() {
                Some(m) if take(m) => out.extend(q.0.pop_front()),
                _ => break,
            }
        }
    }

    /// Un-charges the bytes of a popped message that is done with.
    pub(super) fn release(&self, size: usize) {
        let mut q = lock(&self.queue);
        q.1 = q.1.saturating_sub(size);
    }

    /// Puts popped (still charged) messages back at the front, in order.
    pub(super) fn requeue_front(&self, msgs: Vec<Outgoing>) {
        let mut q = lock(&self.queue);
        for m in msgs.into_iter().rev() {
            q.0.push_front(m);
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        lock(&self.queue).0.is_empty()
    }
}

pub(super) fn header_size(h: &HeaderMap) -> usize {
    h.iter()
        .map(|(k, vs)| {
            let k: &str = k.as_ref();
            vs.iter()
                .map(|v| k.len() + v.as_str().len() + 4)
                .sum::<usize>()
        })
        .sum()
}
