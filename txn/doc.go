// Package txn is two-phase commit that survives crashes: deterministic
// coordinator and participant cores, their durable logs, and runtime
// drivers over a transport.Transport.
package txn
