//go:build race

package testbin

// raceEnabled reports whether the test binary is built with -race.
const raceEnabled = true
