// Package lock provides lease-based distributed locks with fencing tokens.
package lock
