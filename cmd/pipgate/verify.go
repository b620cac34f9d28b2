package main

import (
	"context"
	"fmt"
	"io"
)

// runVerify is replaced by the issue that builds the 'verify' command.
func runVerify(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "pipgate verify: not built yet")
	return 2
}
