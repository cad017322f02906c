// Package election elects a leader among a group of nodes, with one
// interface, Elector, over three algorithms: Bully, Ring, and Raft.
package election
