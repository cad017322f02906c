package lock

// SetOnQueued installs a hook called when an acquire starts waiting.
func (l *Local) SetOnQueued(f func(Request)) {
	l.mu.Lock()
	l.onQueued = f
	l.mu.Unlock()
}
