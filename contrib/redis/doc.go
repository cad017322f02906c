// Package dkredis is an idempotency.Store on Redis, for teams that already
// run Redis and want distkit's Runner and HTTP middleware to share their
// records across processes. Import it under its package name:
//
//	import dkredis "github.com/distkit/distkit/contrib/redis"
//
//	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
//	store, err := dkredis.New(client, dkredis.DefaultConfig())
//	runner, err := idempotency.NewRunner[Receipt](store, idempotency.JSONCodec[Receipt]{}, idempotency.DefaultConfig())
//
// # Layout and cost
//
// Each key is one Redis hash, Config.Prefix + key, with the status,
// token, fingerprint, result, flags and the Created and Expires times in
// microseconds. Begin, Complete and Abort are each one Lua script: the
// check (is a live record there? does the token match?) and the write are
// atomic and take one round trip (EVALSHA; the script is loaded on first
// use). Get is one HMGET. Each script touches a single key, so the store
// works unchanged on Redis Cluster.
//
// # Which guarantees carry over
//
//   - Everything the idempotency.Store contract says (idempotency/storetest
//     runs against a real redis-server in this module's tests): one
//     creator per key among concurrent Begin calls, token-checked Complete
//     and Abort (a caller whose record expired and was taken over gets
//     idempotency.ErrNotOwner and cannot clobber the new owner), expired
//     records replaced, results replayed byte for byte.
//   - Expiry is decided, as in every distkit store, by the times the
//     caller passes (Record.Created and Expires from the Runner's clock),
//     never by the Redis server's clock.
//
// # Which change
//
//   - Durability is Redis's, not FileStore's fsync-before-acknowledge. With
//     the default configuration (RDB snapshots, or appendonly with
//     appendfsync everysec) a Redis crash can lose the last second or more
//     of acknowledged records; a lost in-progress or completed record lets
//     a retry run the operation again. Use appendonly yes with appendfsync
//     always if that matters, and remember that replication is
//     asynchronous: a failover can lose acknowledged writes too.
//   - Redis also deletes records by its own clock: every write sets a TTL
//     of Expires − Created (the record's whole life, which is at least its
//     remaining life when written), so storage does not grow without bound.
//     If the application's and Redis's clocks run at very different rates,
//     a record may outlive its Expires (harmless: Begin replaces it) but
//     not vanish early.
//   - Times are kept to the microsecond.
//   - Records cannot share a transaction with your business data: a crash
//     between the effect and Complete leaves the key in progress until
//     InProgressTimeout (see the idempotency package's "Failure cases").
//     When the effect is in PostgreSQL, use contrib/postgres instead.
//
// # Concurrency
//
// A Store is safe for concurrent use and starts no goroutines. It holds no
// state besides the client, so any number of processes may use stores
// with the same prefix on the same Redis.
//
// # Tests
//
// The tests need a redis-server: set DISTKIT_REDIS_ADDR=host:port (for
// example after `redis-server --port 6379 --save ”`), or run
// `bash .ci/contrib/redis.sh` from the repository root, which starts one
// on a free port. Without it the tests skip on a developer machine and fail
// under CI=true.
package dkredis
