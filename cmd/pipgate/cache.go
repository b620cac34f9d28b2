package main

import (
	"context"
	"fmt"
	"io"
)

// runCache is replaced by the issue that builds the 'cache' command.
func runCache(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "pipgate cache: not built yet")
	return 2
}
