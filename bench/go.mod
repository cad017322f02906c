module github.com/distkit/distkit/bench

go 1.26.0

replace github.com/distkit/distkit => ../

require (
	github.com/buraksezer/consistent v0.10.0
	github.com/cespare/xxhash/v2 v2.3.0
	github.com/distkit/distkit v0.0.0-00010101000000-000000000000
	github.com/golang/groupcache v0.0.0-20210331224755-41bb18bfe9da
	stathat.com/c/consistent v1.0.0
)
