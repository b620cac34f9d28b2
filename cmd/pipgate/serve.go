package main

import (
	"context"
	"fmt"
	"io"
)

// runServe is replaced by the issue that builds the 'serve' command.
func runServe(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "pipgate serve: not built yet")
	return 2
}
