package perf

import (
	"testing"

	"go.uber.org/goleak"
)

// Every run starts a kgo client and most tests a kfake cluster; both must be
// gone when their test ends, or a long bench would pile up goroutines.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
