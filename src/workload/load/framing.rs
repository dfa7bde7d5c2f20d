//! Stage: timed loop (open-loop load). How requests and responses are
//! framed on a connection (bytes counted on a stream; one message each,
//! numbered, on the others), and the books that match each response to its
//! request. Knows no sockets.

use crate::transport::{Cause, Fault};
use crate::workload::{DATA, END};

/// How requests and responses are framed on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// A byte stream: requests and responses are counted in bytes and
    /// answered in order, so the oldest request is the one answered.
    Stream,
    /// One message per request and per response (udp4, uds-dgram,
    /// uds-seqpacket): each carries its request's sequence number after the
    /// marker byte, so a response finds its request whatever was lost or
    /// reordered, and a request never answered is counted lost.
    Messages,
}

impl Framing {
    /// How `kind` frames requests: messages where it keeps boundaries.
    pub fn of(kind: crate::spec::TransportKind) -> Self {
        if kind.is_stream() {
            Framing::Stream
        } else {
            Framing::Messages
        }
    }
}

/// Bytes at the front of a message: the marker ([`DATA`] or [`END`]) and
/// the request's sequence number (little-endian `u64`).
pub use crate::spec::LOAD_HEADER as HEADER;

/// Requests on one connection, by sequence number: their intended and
/// actual send times, in a table of `cap` slots (sequence modulo `cap`).
/// Sequence numbers go on rising across trials, so a late answer to a
/// request of an earlier trial never matches one of this trial.
#[derive(Debug)]
pub(super) struct Books {
    intended: Box<[u64]>,
    sent: Box<[u64]>,
    /// Messages: the sequence number + 1 of the request in each slot while
    /// it is unanswered, 0 once answered or counted lost.
    open: Box<[u64]>,
    /// The next request's sequence number.
    pub(super) next: u64,
    /// Streams: the oldest unanswered request (answers come in order).
    pub(super) oldest: u64,
}

impl Books {
    pub(super) fn new(cap: usize) -> Self {
        Self {
            intended: vec![0; cap].into_boxed_slice(),
            sent: vec![0; cap].into_boxed_slice(),
            open: vec![0; cap].into_boxed_slice(),
            next: 0,
            oldest: 0,
        }
    }

    #[inline]
    fn slot(&self, seq: u64) -> usize {
        (seq % self.intended.len() as u64) as usize
    }

    /// Book the next request of a stream; false when `cap` are unanswered.
    #[inline]
    pub(super) fn push_stream(&mut self, intended: u64, sent: u64) -> bool {
        if self.next - self.oldest == self.intended.len() as u64 {
            return false;
        }
        let at = self.slot(self.next);
        (self.intended[at], self.sent[at]) = (intended, sent);
        self.next += 1;
        true
    }

    /// The oldest unanswered request of a stream: (intended, sent).
    #[inline]
    pub(super) fn pop_stream(&mut self) -> (u64, u64) {
        let at = self.slot(self.oldest);
        self.oldest += 1;
        (self.intended[at], self.sent[at])
    }

    /// Book the next message request, returning its sequence number and
    /// whether it displaced a request `cap` older that was never answered
    /// (that one is lost).
    #[inline]
    pub(super) fn push_message(&mut self, intended: u64, sent: u64) -> (u64, bool) {
        let seq = self.next;
        let at = self.slot(seq);
        let displaced = self.open[at] != 0;
        (self.intended[at], self.sent[at], self.open[at]) = (intended, sent, seq + 1);
        self.next += 1;
        (seq, displaced)
    }

    /// The request a message response names, if it is still unanswered.
    #[inline]
    pub(super) fn answer(&mut self, seq: u64) -> Option<(u64, u64)> {
        let at = self.slot(seq);
        if self.open[at] != seq.wrapping_add(1) {
            return None; // answered, counted lost, or of an earlier trial
        }
        self.open[at] = 0;
        Some((self.intended[at], self.sent[at]))
    }

    /// Forget every request (between trials: nothing is in flight, or what
    /// is was counted lost).
    pub(super) fn clear(&mut self) {
        self.open.fill(0);
        self.oldest = self.next;
    }
}

/// Write a message's header: `marker` and the sequence number `seq`.
#[inline]
pub(super) fn header(msg: &mut [u8], marker: u8, seq: u64) {
    msg[0] = marker;
    msg[1..HEADER].copy_from_slice(&seq.to_le_bytes());
}

/// A message's sequence number.
#[inline]
pub(super) fn seq_of(msg: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&msg[1..HEADER]);
    u64::from_le_bytes(b)
}

/// The marker and sequence number of the `n`-byte message at the front of
/// `msg`, which must be [`HEADER`] bytes for an end marker and `data`
/// bytes otherwise.
#[inline]
pub(super) fn message(msg: &[u8], n: usize, data: usize) -> Result<(u8, u64), Fault> {
    let (marker, want) = match msg.first() {
        Some(&END) => (END, HEADER),
        _ => (DATA, data),
    };
    if n != want {
        return Err(Fault {
            call: "recv",
            cause: Cause::Length { got: n, want },
        });
    }
    Ok((marker, seq_of(msg)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_stream_book_refuses_and_pops_in_order() {
        let mut b = Books::new(2);
        assert!(b.push_stream(1, 10) && b.push_stream(2, 20));
        assert!(!b.push_stream(3, 30));
        assert_eq!(b.pop_stream(), (1, 10));
        assert!(b.push_stream(3, 30));
        assert_eq!((b.pop_stream(), b.pop_stream()), ((2, 20), (3, 30)));
    }

    #[test]
    fn a_message_answer_finds_its_request_once_and_a_displaced_one_is_lost() {
        let mut b = Books::new(2);
        let (s0, lost0) = b.push_message(1, 10);
        let (s1, _) = b.push_message(2, 20);
        assert!(!lost0);
        // Out of order, and a repeat of an answer matches nothing.
        assert_eq!(b.answer(s1), Some((2, 20)));
        assert_eq!(b.answer(s1), None);
        // s0 is never answered: the request two later takes its slot.
        let (_, lost) = b.push_message(3, 30);
        assert!(lost, "s0 was unanswered when its slot was reused");
        let (s3, lost) = b.push_message(4, 40);
        assert!(!lost, "s1 was answered");
        assert_eq!(b.answer(s0), None, "a late answer to a lost request");
        assert_eq!(b.answer(s3), Some((4, 40)));
        // Between trials every booking is forgotten; numbers go on rising.
        b.clear();
        assert_eq!(b.answer(s3 - 1), None);
        assert_eq!(b.push_message(5, 50).0, s3 + 1);
    }
}
