package main

import (
	"context"
	"fmt"
	"io"
)

// runPolicy is replaced by the issue that builds the 'policy' command.
func runPolicy(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "pipgate policy: not built yet")
	return 2
}
