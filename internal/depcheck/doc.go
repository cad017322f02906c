// Package depcheck holds one test: the README's promise that the packages
// a service imports depend only on the standard library, xxhash, uuid and
// x/sync, and that only the named test helpers import "testing".
package depcheck
