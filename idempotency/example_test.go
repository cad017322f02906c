package idempotency_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/distkit/distkit/idempotency"
)

type receipt struct {
	Charge string
	Amount int
}

func ExampleRunner_Do() {
	store, _ := idempotency.NewMemoryStore(idempotency.DefaultMemoryConfig())
	runner, _ := idempotency.NewRunner[receipt](store, idempotency.JSONCodec[receipt]{}, idempotency.DefaultConfig())
	defer runner.Close()

	charges := 0
	charge := func(ctx context.Context) (receipt, error) {
		charges++ // the effect: must happen once
		return receipt{Charge: fmt.Sprint("ch_", charges), Amount: 1000}, nil
	}
	ctx := context.Background()
	fp := idempotency.Fingerprint([]byte(`{"amount":1000}`))
	for attempt := 1; attempt <= 3; attempt++ { // the client retries
		r, outcome, err := runner.DoOutcome(ctx, "order-42", fp, charge)
		fmt.Println(attempt, r.Charge, outcome, err)
	}
	_, err := runner.Do(ctx, "order-42", idempotency.Fingerprint([]byte(`{"amount":5}`)), charge)
	fmt.Println(errors.Is(err, idempotency.ErrKeyReuse))
	fmt.Println("charges:", charges)
	// Output:
	// 1 ch_1 executed <nil>
	// 2 ch_1 replayed <nil>
	// 3 ch_1 replayed <nil>
	// true
	// charges: 1
}

func ExampleDeriveKey() {
	a, _ := idempotency.DeriveKey("shop-7", "refund", map[string]any{"order": 42, "amount": 500})
	b, _ := idempotency.DeriveKey("shop-7", "refund", map[string]any{"amount": 500, "order": 42})
	fmt.Println(a == b, len(a))
	_, err := idempotency.DeriveKey("", "refund", nil)
	fmt.Println(err)
	// Output:
	// true 64
	// idempotency: invalid key: DeriveKey needs a non-empty client and operation
}

func ExampleValidateKey() {
	fmt.Println(idempotency.ValidateKey("8e03978e-40d5-43e8-bc93-6894a57f9324"))
	fmt.Println(idempotency.ValidateKey("has space"))
	fmt.Println(errors.Is(idempotency.ValidateKey(strings.Repeat("k", 300)), idempotency.ErrInvalidKey))
	// Output:
	// <nil>
	// idempotency: invalid key "has space": byte 0x20 at offset 3 is not allowed (use visible ASCII except '"' and '\\')
	// true
}

func ExampleMiddleware() {
	store, _ := idempotency.NewMemoryStore(idempotency.DefaultMemoryConfig())
	mw, _ := idempotency.NewMiddleware(store, idempotency.DefaultHTTPConfig())
	defer mw.Close()
	charges := 0
	api := mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		charges++
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "charge %d\n", charges)
	}))

	post := func(key, body string) {
		req := httptest.NewRequest(http.MethodPost, "/payments", strings.NewReader(body))
		if key != "" {
			req.Header.Set(idempotency.KeyHeader, key)
		}
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		b, _ := io.ReadAll(rec.Body)
		fmt.Printf("%d replayed=%q %s\n", rec.Code, rec.Header().Get(idempotency.ReplayedHeader), strings.SplitN(string(b), "\n", 2)[0])
	}
	post(`"pay-1"`, `{"amount":10}`)
	post(`"pay-1"`, `{"amount":10}`) // a retry
	post(`"pay-1"`, `{"amount":99}`) // the key reused for another payment
	post("", `{"amount":10}`)        // no key
	// Output:
	// 201 replayed="" charge 1
	// 201 replayed="true" charge 1
	// 422 replayed="" {"type":"about:blank","title":"Idempotency-Key reused","status":422,"detail":"This Idempotency-Key was already used for a different request."}
	// 400 replayed="" {"type":"about:blank","title":"Idempotency-Key is missing","status":400,"detail":"This operation is idempotent and requires an Idempotency-Key request header."}
}
