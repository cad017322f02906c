package idempotency

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
)

// MaxKeyLen is the longest key accepted, in bytes.
const MaxKeyLen = 255

// ValidateKey reports whether key may be used as an idempotency key. A key is
// 1 to MaxKeyLen bytes of visible ASCII (0x21–0x7E) other than the double
// quote and the backslash, so it can travel unescaped in an HTTP header
// (the Idempotency-Key field is a Structured Field string) and a log line.
// The error is a *KeyError wrapping ErrInvalidKey.
func ValidateKey(key string) error {
	if key == "" {
		return &KeyError{Key: key, Reason: "empty"}
	}
	if len(key) > MaxKeyLen {
		return &KeyError{Key: key[:64] + "…", Reason: fmt.Sprintf("%d bytes, longer than %d", len(key), MaxKeyLen)}
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return &KeyError{Key: key, Reason: fmt.Sprintf("byte %#02x at offset %d is not allowed (use visible ASCII except '\"' and '\\\\')", c, i)}
		}
	}
	return nil
}

// RandomKey returns a new random key: a version 4 UUID in its canonical
// 36-character form. Clients create one per logical operation and reuse it
// for every retry of that operation.
func RandomKey() (string, error) {
	u, err := uuid.NewRandom()
	if err != nil {
		return "", fmt.Errorf("idempotency: random key: %w", err)
	}
	return u.String(), nil
}

// TimeOrderedKey returns a new version 7 UUID: random like RandomKey but
// prefixed by the current Unix time in milliseconds, so keys sort by
// creation time, which keeps B-tree indexes of stored keys compact.
func TimeOrderedKey() (string, error) {
	u, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("idempotency: time-ordered key: %w", err)
	}
	return u.String(), nil
}

// DeriveKey returns a deterministic key for the operation named operation
// performed on behalf of client with parameters params: the same three
// inputs always give the same key, any difference gives another. Use it when
// the request itself identifies the operation (e.g. "pay invoice 42") so
// that retries need no stored key.
//
// params is canonicalized before hashing: it is encoded as JSON, decoded and
// encoded again, so map key order, struct versus map representation and
// insignificant whitespace do not matter (numbers keep their literal text).
// params may be nil. client and operation must be non-empty. The key is 64
// lowercase hex digits (SHA-256 over length-prefixed fields, so
// ("ab","c") and ("a","bc") differ).
func DeriveKey(client, operation string, params any) (string, error) {
	if client == "" || operation == "" {
		return "", fmt.Errorf("%w: DeriveKey needs a non-empty client and operation", ErrInvalidKey)
	}
	canon, err := CanonicalJSON(params)
	if err != nil {
		return "", err
	}
	// The same length-prefixed SHA-256 as a request fingerprint.
	return Fingerprint([]byte(client), []byte(operation), canon), nil
}

// CanonicalJSON encodes v as JSON with object keys sorted and no
// insignificant whitespace; numbers keep the text they were encoded with.
// Two values that encode to the same JSON document modulo key order and
// spacing give the same bytes.
func CanonicalJSON(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("idempotency: canonicalize parameters: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // keep 12345678901234567890 exact instead of a float64
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return nil, fmt.Errorf("idempotency: canonicalize parameters: %w", err)
	}
	// encoding/json writes map keys in sorted order, which is the canonical form.
	out, err := json.Marshal(generic)
	if err != nil {
		return nil, fmt.Errorf("idempotency: canonicalize parameters: %w", err)
	}
	return out, nil
}

// Fingerprint returns a compact fingerprint of a request made of parts
// (typically method, path and body): SHA-256 over the length-prefixed parts,
// hex encoded. Pass it to Runner.Do so that a key reused for a different
// request is detected.
func Fingerprint(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}
