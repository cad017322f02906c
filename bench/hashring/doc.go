// Package hashring compares distkit's hashring.Ring with other Go
// consistent-hashing libraries on the same workload: Locate over a fixed set
// of short string keys with 10, 100 and 1000 equal nodes, and the balance of
// 1M keys (std-dev and maximum of keys per node, as % of the mean).
//
//	cd bench && go test -run '^$' -bench . -benchmem -count 6 ./hashring/ | tee new.txt
//	cd bench && go test -run TestBalanceTable -v ./hashring/
//
// Configurations: distkit and the two classic rings (groupcache's
// consistenthash, stathat.com/c/consistent) get 160 virtual nodes per node;
// github.com/buraksezer/consistent uses the configuration of its README
// (7919 partitions, replication factor 20, load 1.25, xxhash).
package hashring
