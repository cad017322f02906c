package idempotency

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateKey(t *testing.T) {
	tests := []struct {
		name string
		key  string
		ok   bool
	}{
		{"uuid", "8e03978e-40d5-43e8-bc93-6894a57f9324", true},
		{"one byte", "a", true},
		{"max length", strings.Repeat("k", MaxKeyLen), true},
		{"punctuation", "order:42/charge#1~!", true},
		{"empty", "", false},
		{"too long", strings.Repeat("k", MaxKeyLen+1), false},
		{"space", "a b", false},
		{"tab", "a\tb", false},
		{"newline", "a\nb", false},
		{"nul", "a\x00b", false},
		{"quote", `a"b`, false},
		{"backslash", `a\b`, false},
		{"del", "a\x7fb", false},
		{"non-ascii", "clé", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateKey(tt.key)
			if got := err == nil; got != tt.ok {
				t.Fatalf("ValidateKey(%.20q) = %v; want ok=%v", tt.key, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidKey) {
				t.Errorf("ValidateKey(%.20q) = %v; want an error wrapping ErrInvalidKey", tt.key, err)
			}
		})
	}
}

func TestValidateKeyErrorIsReadable(t *testing.T) {
	err := ValidateKey(strings.Repeat("x", 1000))
	var ke *KeyError
	if !errors.As(err, &ke) {
		t.Fatalf("ValidateKey(long) = %v; want a *KeyError", err)
	}
	if len(err.Error()) > 200 {
		t.Errorf("error message is %d bytes; want it short: %s", len(err.Error()), err)
	}
	if !strings.HasPrefix(err.Error(), "idempotency: ") {
		t.Errorf("error %q lacks the package prefix", err)
	}
}

func TestRandomKeys(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		for _, gen := range []func() (string, error){RandomKey, TimeOrderedKey} {
			k, err := gen()
			if err != nil {
				t.Fatalf("key generator: %v", err)
			}
			if err := ValidateKey(k); err != nil {
				t.Fatalf("generated key %q is invalid: %v", k, err)
			}
			if seen[k] {
				t.Fatalf("key %q generated twice", k)
			}
			seen[k] = true
		}
	}
	k, _ := RandomKey()
	if k[14] != '4' {
		t.Errorf("RandomKey() = %q; want a version 4 UUID", k)
	}
	k, _ = TimeOrderedKey()
	if k[14] != '7' {
		t.Errorf("TimeOrderedKey() = %q; want a version 7 UUID", k)
	}
}

func TestDeriveKey(t *testing.T) {
	type charge struct {
		Amount   int    `json:"amount"`
		Currency string `json:"currency"`
	}
	base, err := DeriveKey("client-1", "charge", map[string]any{"amount": 100, "currency": "EUR"})
	if err != nil {
		t.Fatalf("DeriveKey: %v", err)
	}
	if err := ValidateKey(base); err != nil {
		t.Fatalf("DeriveKey gave invalid key %q: %v", base, err)
	}
	tests := []struct {
		name      string
		client    string
		operation string
		params    any
		same      bool
	}{
		{"struct instead of map", "client-1", "charge", charge{100, "EUR"}, true},
		{"keys in another order", "client-1", "charge", map[string]any{"currency": "EUR", "amount": 100}, true},
		{"raw JSON with spaces", "client-1", "charge", rawJSON(`{ "currency" : "EUR", "amount" : 100 }`), true},
		{"other amount", "client-1", "charge", charge{101, "EUR"}, false},
		{"other client", "client-2", "charge", charge{100, "EUR"}, false},
		{"other operation", "client-1", "refund", charge{100, "EUR"}, false},
		{"shifted boundary", "client-1c", "harge", charge{100, "EUR"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DeriveKey(tt.client, tt.operation, tt.params)
			if err != nil {
				t.Fatalf("DeriveKey: %v", err)
			}
			if (got == base) != tt.same {
				t.Errorf("DeriveKey(%q, %q, %v) = %s; base %s; want same=%v", tt.client, tt.operation, tt.params, got, base, tt.same)
			}
		})
	}
}

// TestDeriveKeyKeepsLargeNumbersExact: parameters that differ only in a
// digit a float64 cannot hold give different keys.
func TestDeriveKeyKeepsLargeNumbersExact(t *testing.T) {
	a, errA := DeriveKey("client-1", "transfer", map[string]any{"id": uint64(12345678901234567890)})
	b, errB := DeriveKey("client-1", "transfer", map[string]any{"id": uint64(12345678901234567891)})
	if errA != nil || errB != nil {
		t.Fatalf("DeriveKey = %v, %v", errA, errB)
	}
	if a == b {
		t.Errorf("DeriveKey gave %s for ids 12345678901234567890 and 12345678901234567891; want different keys", a)
	}
}

type rawJSON string

func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }

func TestDeriveKeyBadInput(t *testing.T) {
	tests := []struct {
		name              string
		client, operation string
		params            any
	}{
		{"empty client", "", "op", nil},
		{"empty operation", "c", "", nil},
		{"unencodable params", "c", "op", func() {}},
		{"channel params", "c", "op", make(chan int)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if k, err := DeriveKey(tt.client, tt.operation, tt.params); err == nil {
				t.Errorf("DeriveKey(%q, %q, %T) = %q, nil; want an error", tt.client, tt.operation, tt.params, k)
			}
		})
	}
}

func TestParseKeyHeader(t *testing.T) {
	tests := []struct {
		name, value, want string
		ok                bool
	}{
		{"sf-string", `"8e03978e-40d5-43e8-bc93-6894a57f9324"`, "8e03978e-40d5-43e8-bc93-6894a57f9324", true},
		{"bare token", "abc-123", "abc-123", true},
		{"surrounding space", `  "k1"  `, "k1", true},
		{"escaped quote is rejected by key rules", `"a\"b"`, "", false},
		{"empty quoted", `""`, "", false},
		{"unterminated", `"abc`, "", false},
		{"text after quote", `"abc"x`, "", false},
		{"bad escape", `"a\nb"`, "", false},
		{"space inside", `"a b"`, "", false},
		{"empty", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseKeyHeader(tt.value)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("ParseKeyHeader(%q) = %q, %v; want %q, ok=%v", tt.value, got, err, tt.want, tt.ok)
			}
		})
	}
}
