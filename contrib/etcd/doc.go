// Package dketcd puts distkit's lock.Service, and the election.Elector
// built on it, on etcd, for teams that already run an etcd cluster:
//
//	import dketcd "github.com/distkit/distkit/contrib/etcd"
//
//	client, _ := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:2379"}})
//	svc, _ := dketcd.New(client, dketcd.DefaultConfig())
//	session, _ := lock.NewSession(ctx, svc, lock.DefaultSessionConfig())
//	grant, _ := session.Lock(ctx, "reports")
//	// ... pass grant.Token to every resource the lock guards ...
//	_ = session.Unlock(ctx, grant)
//
//	elector, _ := dketcd.NewElector(svc, lock.ElectorConfig{ID: "node-1", Name: "leader", Session: lock.DefaultSessionConfig()})
//
// Everything above the Service (lock.Session with its keepalives,
// watchdog and lease bound, lock.Elector, lock.Fence) is distkit's own;
// etcd keeps the sessions and the queues.
//
// # How it maps
//
//   - A session is an etcd lease whose ID is the session ID (top bit
//     dropped); Open grants it, KeepAlive is a lease keepalive, End revokes.
//   - A lock is a key prefix. Each session that wants the lock puts one key
//     there under its lease; the key with the lowest create revision holds
//     the lock and the others wait in create-revision order (FIFO). A
//     waiter watches the prefix for deletions.
//   - The fencing token is the holder's key's create revision: it grows
//     with every grant of a lock (and across locks, like distkit's own
//     counter), and it survives etcd restarts and leader changes.
//
// # Which guarantees carry over (locktest runs against a real etcd)
//
//   - Mutual exclusion, FIFO grants, increasing fencing tokens, idempotent
//     operations, and all of lock.Session's client-side rules.
//   - Release deletes the queue key only if its create revision equals the
//     released token, in one transaction: a late retry of an earlier
//     grant's Unlock cannot delete a newer grant of the same session
//     (etcd-io/etcd#22082).
//   - A waiter whose lease expires (or is revoked) sees its own key
//     deleted and stops waiting with lock.ErrNoSession (etcd-io/etcd#19597).
//   - Lock loss is noticed within the lease bound: lock.Session trusts its
//     lease only until the send time of the last acknowledged keepalive +
//     TTL − SafetyMargin by its own clock, so it closes Done before etcd
//     can expire the lease and grant the lock to someone else (the Jepsen
//     analysis of etcd 3.4.3 found etcd's own lock recipe lets a client
//     act after losing its lease). Fencing tokens remain the defence
//     against process pauses.
//
// # Which change
//
//   - TTLs are whole seconds in etcd: a session's TTL is rounded up, and
//     etcd raises it further to its minimum lease TTL (1.5 × the election
//     timeout, rounded up: 2s with etcd's defaults). The client's bound
//     still uses the TTL you asked for, so the rule above holds; but
//     after a holder crashes, the lock is free only after etcd's longer
//     TTL, plus up to about half a second until etcd's lessor revokes the
//     expired lease. Choose TTLs of seconds, not the milliseconds the
//     Local service accepts.
//   - etcd extends every lease when its leader changes (the new leader
//     restarts the TTLs), so a holder's lock can outlive its TTL across a
//     failover; the client's bound is unaffected (it is conservative).
//   - There is no lock-delay (lock.TableConfig.LockDelay): the next
//     waiter is granted as soon as the lease is revoked.
//   - KeepAlive's Held list costs a range read per lock the session has
//     touched, and a release wakes every waiter of the lock to re-check
//     (one range read each); keep queues short.
//   - Durability and availability are etcd's: a majority of its members.
//
// # Concurrency
//
// A Service is safe for concurrent use and starts no goroutines; a
// waiting Acquire runs an etcd watch until it returns.
//
// # Tests
//
// The tests need an etcd: run `bash .ci/contrib/etcd.sh` from the
// repository root (it starts the Debian etcd-server package's etcd on free
// ports), or start `etcd` yourself and set
// DISTKIT_ETCD_ENDPOINTS=127.0.0.1:2379. Without it the tests skip on a
// developer machine and fail under CI=true.
package dketcd
