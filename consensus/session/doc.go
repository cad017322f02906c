// Package session is the replicated client-session table that makes
// commands take effect exactly once (Raft thesis §6.3): a pure,
// deterministic data structure, with no goroutines and no clock reads,
// used by consensus.WithSessions and by the consensus/raft simulations.
//
// # The protocol
//
// A client opens a session by proposing a register envelope
// (AppendRegister); the log index of that entry becomes the session's ID.
// It then stamps every command with (session, seq), seq counting from 1
// (AppendCommand), and retries a command whose outcome is unknown (a
// timeout, a leader crash) with the same stamp. Every envelope also
// carries the lowest seq whose answer the client still waits for
// ("acked"), so the table can drop the results of lower ones. The leader
// writes its clock into each envelope as it proposes it (Stamp).
//
// Each replica applies the committed envelopes, in log order, to its
// Table:
//
//	e, err := session.Parse(entry.Data)     // after session.IsEnvelope
//	switch e.Kind {
//	case session.KindRegister:
//		id := table.Register(entry.Index, &e) // answer id to the client
//	case session.KindCommand:
//		cached, dup, err := table.Begin(&e)
//		switch {
//		case err != nil: // refused, not applied: answer err
//		case dup:        // applied before: answer cached
//		default:
//			result := apply(e.Payload)
//			table.Finish(&e, result)     // answer result
//		}
//	case session.KindClose:
//		err := table.Close(&e)
//	}
//
// Replicas on a hot path first offer the raw command to BeginCommand,
// which decides the common case (a new command of the session last used)
// without decoding an Envelope, and leaves everything else to the code
// above:
//
//	if payload, seq, ok := table.BeginCommand(entry.Data); ok {
//		result := apply(payload)
//		table.FinishLast(seq, result) // answer result
//	}
//
// # The guarantee
//
// A command stamped (session, seq) changes the state machine at most once,
// however often it is proposed and committed: the first copy applied is
// executed and its result cached; a later copy is answered with the cached
// result, which is the same before and after a snapshot is taken and
// restored (the table is part of the snapshot: MarshalBinary,
// UnmarshalBinary). With a client that retries until it gets an answer,
// the command takes effect exactly once.
//
// # The limits
//
//   - Expiry. A session idle for longer than Config.TTL expires, and so
//     does the least recently active one when Config.MaxSessions are open
//     and another registers. A command for an expired (or unknown, or
//     closed) session is refused with ErrSessionExpired and not applied.
//     If an earlier copy of it was applied before the expiry, its result is
//     gone with the session: the client cannot learn it, so it must report
//     the command's outcome as unknown, not propose it again under a new
//     session (which could apply it twice).
//   - Time. Expiry is measured in leader-stamped time: the largest Unix
//     time any leader stamped into an applied envelope. No replica reads
//     its own clock, so all decide alike; time never goes back, even if a
//     new leader's clock is behind. A leader whose clock runs far ahead
//     expires sessions early; one far behind delays expiry. Keep clocks
//     roughly synchronized and the TTL much longer than any retry.
//   - Acknowledgement. A command with a seq below the client's "acked" is
//     refused with ErrResultDiscarded: the client stopped waiting for it
//     (it has the answer, or gave up), and neither its result nor the
//     right to apply it is kept. Clients must not send acked past a
//     command whose answer they still wait for.
//   - Cache size. A session keeps at most Config.MaxPending unacknowledged
//     results; a command beyond them is refused with ErrTooManyPending (not
//     applied; the client may retry it later with the same stamp), except
//     the oldest command the client waits for (seq == acked), which is
//     always admitted: one slow command must not block its session forever.
//     The "acked" mark cannot pass a command still in flight, so the
//     results of newer commands accumulate behind a slow one.
//   - Results are bytes: the table caches exactly the bytes Finish is
//     given, so whatever the state machine returns must be encoded (and a
//     duplicate's answer decoded) by the caller.
//
// # Concurrency
//
// A Table is not safe for concurrent use: its owner (a state machine)
// calls it from one goroutine. The envelope functions are safe anywhere.
//
// # Fault model
//
// Replicas apply the same envelopes in the same order (Raft's guarantee)
// and restore tables only from encodings made by this package; a corrupt
// encoding is refused with ErrMalformed, never half-loaded. A plain command
// that happens to begin with Magic's three marker bytes is taken for an
// envelope (and refused if it does not parse as one): callers that mix
// plain commands with sessions must not let a plain one begin with them.
// Envelopes of format 1 (uvarint fields, written by earlier versions) are
// still read, so a log written with them replays as before; an unknown
// format is refused, never applied as a plain command.
//
// The reverse does not hold: a version that reads format 1 only (before
// December 7, 2026) takes a format-2 envelope for a plain command. Every
// replica of a cluster must run a version that reads format 2 before any
// Client of this version proposes; the README's upgrade note (a new
// cluster) covers it. A plain command in an old log that begins with the
// marker and another version byte, which such a version applied, is
// refused on replay.
package session
