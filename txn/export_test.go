package txn

// SetStepHook makes c call f at each step of its leader's work (tests:
// "takeover", "propose BEGIN", "applied COMMIT", "send-commit", ...). f
// runs on c's goroutines, some with c's lock held: it must not call c.
func SetStepHook(c *ReplicatedCoordinator, f func(step string)) {
	c.hook.Store(&f)
}
