module github.com/distkit/distkit/contrib/redis

go 1.26.0

require (
	github.com/distkit/distkit v0.0.0-00010101000000-000000000000
	github.com/redis/go-redis/v9 v9.24.0
	go.uber.org/goleak v1.3.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/google/uuid v1.6.0 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	golang.org/x/sync v0.25.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)

replace github.com/distkit/distkit => ../..
