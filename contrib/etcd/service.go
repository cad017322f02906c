package dketcd

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/distkit/distkit/lock"
)

// ErrInvalidConfig reports a Config that fails Validate, a nil client, or
// a Service used without New.
var ErrInvalidConfig = errors.New("dketcd: invalid config")

// Config configures a Service.
type Config struct {
	// Prefix starts every key the service writes (default
	// "distkit/lock/"). Services with different prefixes on one etcd are
	// independent.
	Prefix string
	// Logger receives watch restarts. nil is silent.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults described on Config.
func DefaultConfig() Config { return Config{Prefix: "distkit/lock/"} }

// Validate reports whether c is usable.
func (c Config) Validate() error {
	if c.Prefix == "" || len(c.Prefix) > 256 {
		return fmt.Errorf("%w: Prefix of %d bytes; want 1..256", ErrInvalidConfig, len(c.Prefix))
	}
	return nil
}

// Service is a lock.Service on etcd. Sessions are etcd leases (the lease
// ID is the session ID without its top bit), keepalives are lease
// keepalives, and a lock is a key prefix where each session that wants the
// lock puts one key under its lease: the key with the lowest create
// revision holds the lock, the others wait in create-revision (FIFO)
// order, and the holder's create revision is its fencing token.
//
// Keys, under Config.Prefix:
//
//	o/<session>             the session's owner label (lease-bound)
//	l/<name>/<session>      the session's place in lock name's queue (lease-bound)
//	s/<session>/<name>      an index of the session's places, for KeepAlive's Held
//
// with <name> base64url-encoded and <session> 16 hex digits.
//
// A Service is safe for concurrent use. It starts no goroutines of its own
// (a waiting Acquire uses an etcd watch of the calling goroutine's).
type Service struct {
	client *clientv3.Client
	leases pb.LeaseClient
	cfg    Config
	log    *slog.Logger
}

var _ lock.Service = (*Service)(nil)

// New returns a Service on client. Closing the client is the caller's
// business, after the sessions are closed.
func New(client *clientv3.Client, cfg Config) (*Service, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil client", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Service{client: client, leases: clientv3.RetryLeaseClient(client), cfg: cfg, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

func sessionHex(id lock.SessionID) string { return fmt.Sprintf("%016x", uint64(id)) }

func encName(name string) string { return base64.RawURLEncoding.EncodeToString([]byte(name)) }

func (s *Service) ownerKey(id lock.SessionID) string { return s.cfg.Prefix + "o/" + sessionHex(id) }
func (s *Service) lockPrefix(name string) string     { return s.cfg.Prefix + "l/" + encName(name) + "/" }
func (s *Service) waitKey(name string, id lock.SessionID) string {
	return s.lockPrefix(name) + sessionHex(id)
}
func (s *Service) indexPrefix(id lock.SessionID) string {
	return s.cfg.Prefix + "s/" + sessionHex(id) + "/"
}
func (s *Service) indexKey(id lock.SessionID, name string) string {
	return s.indexPrefix(id) + encName(name)
}

// leaseID maps a session to its etcd lease: etcd lease IDs are positive
// int64s, so the top bit is dropped.
func leaseID(id lock.SessionID) clientv3.LeaseID {
	return clientv3.LeaseID(int64(uint64(id) &^ (1 << 63)))
}

// ttlSeconds rounds a TTL up to etcd's whole seconds: the server's lease is
// never shorter than the client's bound assumes.
func ttlSeconds(ttl time.Duration) int64 { return int64((ttl + time.Second - 1) / time.Second) }

// Do implements lock.Service.
func (s *Service) Do(ctx context.Context, req lock.Request) (lock.Response, error) {
	if s == nil || s.client == nil {
		return lock.Response{}, fmt.Errorf("%w: Service used without New", ErrInvalidConfig)
	}
	switch req.Op {
	case lock.OpOpen:
		return lock.Response{}, s.open(ctx, req)
	case lock.OpKeepAlive:
		return s.keepAlive(ctx, req.Session)
	case lock.OpEnd:
		return lock.Response{}, s.end(ctx, req.Session)
	case lock.OpAcquire, lock.OpTryAcquire:
		if err := checkName(req.Name); err != nil {
			return lock.Response{}, err
		}
		g, err := s.acquire(ctx, req.Session, req.Name, req.Op == lock.OpAcquire)
		if err != nil {
			return lock.Response{}, err
		}
		return lock.Response{Granted: true, Grant: g}, nil
	case lock.OpRelease:
		if err := checkName(req.Name); err != nil {
			return lock.Response{}, err
		}
		return lock.Response{}, s.release(ctx, req.Session, req.Name, req.Token)
	case lock.OpCancel:
		if err := checkName(req.Name); err != nil {
			return lock.Response{}, err
		}
		_, err := s.client.Txn(ctx).Then(
			clientv3.OpDelete(s.waitKey(req.Name, req.Session)),
			clientv3.OpDelete(s.indexKey(req.Session, req.Name)),
		).Commit()
		return lock.Response{}, wrap("cancel", err)
	case lock.OpHolder:
		if err := checkName(req.Name); err != nil {
			return lock.Response{}, err
		}
		g, ok, err := s.holder(ctx, req.Name)
		return lock.Response{Granted: ok, Grant: g}, err
	}
	return lock.Response{}, fmt.Errorf("%w: unknown operation %d", lock.ErrInvalidArgument, uint8(req.Op))
}

func checkName(name string) error {
	if name == "" || len(name) > lock.MaxNameLen {
		return fmt.Errorf("%w: lock name of %d bytes; want 1..%d", lock.ErrInvalidArgument, len(name), lock.MaxNameLen)
	}
	return nil
}

// wrap maps etcd's lease errors to lock's sentinels.
func wrap(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, rpctypes.ErrLeaseNotFound) || isLeaseNotFound(err):
		return fmt.Errorf("%w: %s: %v", lock.ErrNoSession, what, err)
	}
	return fmt.Errorf("dketcd: %s: %w", what, err)
}

// isLeaseNotFound recognizes the error however the client surfaced it (a
// gRPC status or the typed error).
func isLeaseNotFound(err error) bool {
	return rpctypes.ErrorDesc(err) == rpctypes.ErrorDesc(rpctypes.ErrGRPCLeaseNotFound)
}

func (s *Service) open(ctx context.Context, req lock.Request) error {
	switch {
	case req.Session == 0 || leaseID(req.Session) == 0:
		return fmt.Errorf("%w: session ID %d", lock.ErrInvalidArgument, req.Session)
	case req.TTL <= 0:
		return fmt.Errorf("%w: TTL %v; want > 0", lock.ErrInvalidArgument, req.TTL)
	case len(req.Owner) > lock.MaxOwnerLen:
		return fmt.Errorf("%w: owner of %d bytes; limit %d", lock.ErrInvalidArgument, len(req.Owner), lock.MaxOwnerLen)
	}
	lid := leaseID(req.Session)
	_, err := s.leases.LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: int64(lid), TTL: ttlSeconds(req.TTL)})
	if err != nil && rpctypes.ErrorDesc(err) == rpctypes.ErrorDesc(rpctypes.ErrGRPCLeaseExist) {
		// A retried Open: renew.
		_, err = s.client.KeepAliveOnce(ctx, lid)
	}
	if err != nil {
		return wrap("open session", err)
	}
	_, err = s.client.Put(ctx, s.ownerKey(req.Session), req.Owner, clientv3.WithLease(lid))
	return wrap("open session", err)
}

func (s *Service) keepAlive(ctx context.Context, id lock.SessionID) (lock.Response, error) {
	if _, err := s.client.KeepAliveOnce(ctx, leaseID(id)); err != nil {
		return lock.Response{}, wrap("keepalive", err)
	}
	idx, err := s.client.Get(ctx, s.indexPrefix(id), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return lock.Response{}, wrap("keepalive", err)
	}
	var held []lock.Grant
	for _, kv := range idx.Kvs {
		enc := strings.TrimPrefix(string(kv.Key), s.indexPrefix(id))
		raw, err := base64.RawURLEncoding.DecodeString(enc)
		if err != nil {
			continue // not a key this package wrote
		}
		g, ok, err := s.holder(ctx, string(raw))
		if err != nil {
			return lock.Response{}, err
		}
		if ok && g.Session == id {
			held = append(held, lock.Grant{Name: g.Name, Token: g.Token})
		}
	}
	return lock.Response{Held: held}, nil
}

func (s *Service) end(ctx context.Context, id lock.SessionID) error {
	_, err := s.client.Revoke(ctx, leaseID(id))
	if err != nil && (errors.Is(err, rpctypes.ErrLeaseNotFound) || isLeaseNotFound(err)) {
		return nil // already gone: End is idempotent
	}
	return wrap("end session", err)
}

// holder returns the grant of the first key (lowest create revision)
// under name's prefix.
func (s *Service) holder(ctx context.Context, name string) (lock.Grant, bool, error) {
	resp, err := s.client.Get(ctx, s.lockPrefix(name), clientv3.WithFirstCreate()...)
	if err != nil {
		return lock.Grant{}, false, wrap("holder", err)
	}
	if len(resp.Kvs) == 0 {
		return lock.Grant{}, false, nil
	}
	return s.grantOf(ctx, name, resp.Kvs[0])
}

// grantOf turns a queue key into the grant it stands for.
func (s *Service) grantOf(ctx context.Context, name string, kv *mvccpb.KeyValue) (lock.Grant, bool, error) {
	hex := strings.TrimPrefix(string(kv.Key), s.lockPrefix(name))
	id, err := strconv.ParseUint(hex, 16, 64)
	if err != nil {
		return lock.Grant{}, false, fmt.Errorf("dketcd: lock %q: foreign key %q under the lock's prefix", name, kv.Key)
	}
	g := lock.Grant{Name: name, Session: lock.SessionID(id), Token: lock.Token(kv.CreateRevision)}
	owner, err := s.client.Get(ctx, s.ownerKey(g.Session))
	if err != nil {
		return lock.Grant{}, false, wrap("holder", err)
	}
	if len(owner.Kvs) > 0 {
		g.Owner = string(owner.Kvs[0].Value)
	}
	return g, true, nil
}

// acquire queues session id for name (once: a repeated acquire keeps the
// place, and a holder gets its grant back) and, if wait, blocks until the
// place is first.
func (s *Service) acquire(ctx context.Context, id lock.SessionID, name string, wait bool) (lock.Grant, error) {
	wk, ik := s.waitKey(name, id), s.indexKey(id, name)
	lid := leaseID(id)
	first := clientv3.OpGet(s.lockPrefix(name), clientv3.WithFirstCreate()...)
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(wk), "=", 0)).
		Then(clientv3.OpPut(wk, "", clientv3.WithLease(lid)), clientv3.OpPut(ik, "", clientv3.WithLease(lid)), first, clientv3.OpGet(s.ownerKey(id))).
		Else(clientv3.OpGet(wk), first, clientv3.OpGet(s.ownerKey(id))).
		Commit()
	if err != nil {
		return lock.Grant{}, wrap(fmt.Sprintf("acquire %q", name), err)
	}
	created := resp.Succeeded
	var mine int64
	rs := resp.Responses
	if created {
		mine = resp.Header.Revision
		rs = rs[2:]
	} else {
		kvs := rs[0].GetResponseRange().Kvs
		if len(kvs) == 0 { // cannot happen: the compare saw the key in the same step
			return lock.Grant{}, fmt.Errorf("dketcd: acquire %q: queue key vanished", name)
		}
		mine = kvs[0].CreateRevision
		rs = rs[1:]
	}
	var owner string
	if o := rs[1].GetResponseRange().Kvs; len(o) > 0 {
		owner = string(o[0].Value)
	}
	grant := lock.Grant{Name: name, Session: id, Owner: owner, Token: lock.Token(mine)}
	if f := rs[0].GetResponseRange().Kvs; len(f) > 0 && f[0].CreateRevision == mine {
		return grant, nil
	}
	if !wait {
		if created { // leave no place behind
			_, _ = s.client.Txn(context.WithoutCancel(ctx)).
				If(clientv3.Compare(clientv3.CreateRevision(wk), "=", mine)).
				Then(clientv3.OpDelete(wk), clientv3.OpDelete(ik)).Commit()
		}
		return lock.Grant{}, fmt.Errorf("%w: %q", lock.ErrLocked, name)
	}
	return s.wait(ctx, id, name, grant, resp.Header.Revision)
}

// wait blocks until the session's queue key is the first under name's
// prefix (granted), or is deleted (the session expired or ended, or the
// place was cancelled: the wait ends at once instead of blocking until the
// lock is free, etcd-io/etcd#19597), or ctx ends. It watches the prefix
// for deletions from rev on and checks again after each.
func (s *Service) wait(ctx context.Context, id lock.SessionID, name string, grant lock.Grant, rev int64) (lock.Grant, error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wk := s.waitKey(name, id)
	for {
		// Every deletion after rev, the revision the queue was last read
		// at, is seen: none can slip between the read and the watch.
		wch := s.client.Watch(wctx, s.lockPrefix(name), clientv3.WithPrefix(), clientv3.WithFilterPut(), clientv3.WithRev(rev+1))
		for wr := range wch {
			if err := wr.Err(); err != nil {
				s.log.Debug("dketcd: watch failed; reading the queue again", "lock", name, "err", err)
				break
			}
			if len(wr.Events) == 0 {
				continue
			}
			if done, g, _, err := s.check(ctx, id, name, wk, grant); done {
				return g, err
			}
		}
		if err := ctx.Err(); err != nil {
			return lock.Grant{}, fmt.Errorf("dketcd: acquire %q: %w", name, err)
		}
		// The watch ended (compaction, leader loss): read, then watch again
		// from the revision read at.
		for {
			done, g, at, err := s.check(ctx, id, name, wk, grant)
			if done {
				return g, err
			}
			if err == nil {
				rev = at
				break
			}
			select {
			case <-ctx.Done():
				return lock.Grant{}, fmt.Errorf("dketcd: acquire %q: %w", name, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// check decides a waiting acquire after a deletion under the lock. It
// returns done with the outcome, or the revision it read the queue at (or
// a transient error: try again).
func (s *Service) check(ctx context.Context, id lock.SessionID, name, wk string, grant lock.Grant) (bool, lock.Grant, int64, error) {
	resp, err := s.client.Txn(ctx).Then(clientv3.OpGet(wk), clientv3.OpGet(s.lockPrefix(name), clientv3.WithFirstCreate()...)).Commit()
	if err != nil {
		if ctx.Err() != nil {
			return true, lock.Grant{}, 0, fmt.Errorf("dketcd: acquire %q: %w", name, ctx.Err())
		}
		return false, lock.Grant{}, 0, err
	}
	mine := resp.Responses[0].GetResponseRange().Kvs
	if len(mine) == 0 || mine[0].CreateRevision != int64(grant.Token) {
		// Our place is gone: the lease expired or was revoked, or the
		// place was cancelled.
		ttl, err := s.client.TimeToLive(ctx, leaseID(id))
		if err == nil && ttl.TTL > 0 {
			return true, lock.Grant{}, 0, fmt.Errorf("%w: acquire %q withdrawn while waiting", lock.ErrNotHolder, name)
		}
		return true, lock.Grant{}, 0, fmt.Errorf("%w: session %d ended while waiting for %q", lock.ErrNoSession, id, name)
	}
	if f := resp.Responses[1].GetResponseRange().Kvs; len(f) > 0 && f[0].CreateRevision == mine[0].CreateRevision {
		return true, grant, 0, nil
	}
	return false, lock.Grant{}, resp.Header.Revision, nil
}

// release deletes the session's queue key only if it is the grant with
// token: a late retry of an earlier grant's release cannot delete a newer
// grant of the same session (etcd-io/etcd#22082), whose key has a newer
// create revision.
func (s *Service) release(ctx context.Context, id lock.SessionID, name string, token lock.Token) error {
	wk := s.waitKey(name, id)
	if token == 0 || token > 1<<63-1 {
		return fmt.Errorf("%w: %q token %d", lock.ErrNotHolder, name, token)
	}
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(wk), "=", int64(token))).
		Then(clientv3.OpDelete(wk), clientv3.OpDelete(s.indexKey(id, name))).
		Commit()
	if err != nil {
		return wrap(fmt.Sprintf("release %q", name), err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("%w: %q token %d", lock.ErrNotHolder, name, token)
	}
	return nil
}

// Waiters returns how many sessions wait for lock name (its queue length
// minus the holder), or -1 if etcd cannot be read. For tests and metrics.
func (s *Service) Waiters(ctx context.Context, name string) int {
	resp, err := s.client.Get(ctx, s.lockPrefix(name), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return -1
	}
	return max(int(resp.Count)-1, 0)
}
