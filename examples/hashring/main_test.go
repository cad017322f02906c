package main

import (
	"bytes"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRunPrintsEverySection(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out, 20000, 1); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"mod-N hashing moves", "100% of them to the new server",
		"the least any scheme can move: 9.1% (1/11, the new server's fair share)",
		"gives a key to the NEAREST point", "1 virtual node(s)", "160 virtual node(s)", "plain ring", "bounded loads"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRunRejectsBadKeys(t *testing.T) {
	if err := run(&bytes.Buffer{}, 0, 1); err == nil {
		t.Fatal("run with 0 keys succeeded; want an error")
	}
}
