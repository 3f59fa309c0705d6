package picture

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mustPanic checks that f panics with a "picture: " message containing
// substr.
func mustPanic(t *testing.T, substr string, f func()) {
	t.Helper()
	defer func() {
		r := recover()
		require.NotNil(t, r, "no panic, want one mentioning %q", substr)
		msg := fmt.Sprint(r)
		assert.Truef(t, strings.HasPrefix(msg, "picture: "), "panic %q, want a \"picture: \" message", msg)
		assert.Contains(t, msg, substr)
	}()
	f()
}
