package idempotency

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Codec turns results into bytes for the store and back. Encode may return a
// slice it keeps no reference to; Decode must not keep data beyond the call
// (stores share their bytes with every reader).
type Codec[T any] interface {
	Encode(v T) ([]byte, error)
	Decode(data []byte) (T, error)
}

// JSONCodec encodes results with encoding/json.
type JSONCodec[T any] struct{}

// Encode returns the JSON encoding of v.
func (JSONCodec[T]) Encode(v T) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("idempotency: json encode: %w", err)
	}
	return b, nil
}

// Decode parses JSON into a new T.
func (JSONCodec[T]) Decode(data []byte) (T, error) {
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		return v, fmt.Errorf("idempotency: json decode: %w", err)
	}
	return v, nil
}

// BytesCodec stores []byte results as they are. Decode returns a copy, so a
// caller may modify its result without touching the stored one.
type BytesCodec struct{}

// Encode returns a copy of v.
func (BytesCodec) Encode(v []byte) ([]byte, error) { return bytes.Clone(v), nil }

// Decode returns a copy of data.
func (BytesCodec) Decode(data []byte) ([]byte, error) {
	out := make([]byte, len(data))
	copy(out, data)
	return out, nil
}

// StringCodec stores string results as their bytes.
type StringCodec struct{}

// Encode returns the bytes of v.
func (StringCodec) Encode(v string) ([]byte, error) { return []byte(v), nil }

// Decode returns data as a string.
func (StringCodec) Decode(data []byte) (string, error) { return string(data), nil }

var (
	_ Codec[int]    = JSONCodec[int]{}
	_ Codec[[]byte] = BytesCodec{}
	_ Codec[string] = StringCodec{}
)
