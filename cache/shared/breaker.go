package shared

import (
	"sync"
	"time"
)

// breaker skips the bucket after Failures failed requests in a row: while
// it is open, lookups are misses and uploads are dropped without asking the
// bucket, so a bucket that is down or slow costs a client nothing but the
// requests that opened it. A background probe (every Cooldown) closes it
// once the bucket answers.
type breaker struct {
	threshold int
	cooldown  time.Duration
	onOpen    func()          // starts the prober
	setGauge  func(open bool) // pipgate_shared_breaker_open

	mu      sync.Mutex
	fails   int
	open    bool
	since   time.Time
	lastErr string
}

type breakerState struct {
	open    bool
	since   time.Time
	lastErr string
}

func newBreaker(threshold int, cooldown time.Duration, onOpen func(), setGauge func(bool)) *breaker {
	return &breaker{threshold: threshold, cooldown: cooldown, onOpen: onOpen, setGauge: setGauge}
}

// allow reports whether the bucket may be asked.
func (b *breaker) allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.open
}

// success resets the count of failures in a row and closes the breaker.
func (b *breaker) success() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fails = 0
	if b.open {
		b.open = false
		b.setGauge(false)
	}
}

// failure counts one failed request; the threshold-th in a row opens the
// breaker and starts the prober.
func (b *breaker) failure(err error) {
	b.mu.Lock()
	b.fails++
	b.lastErr = errText(err)
	start := !b.open && b.fails >= b.threshold
	if start {
		b.open, b.since = true, time.Now()
		b.setGauge(true)
	}
	b.mu.Unlock()
	if start {
		b.onOpen()
	}
}

// probeFailed keeps the breaker open with the probe's error.
func (b *breaker) probeFailed(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lastErr = errText(err)
}

func (b *breaker) state() breakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return breakerState{open: b.open, since: b.since, lastErr: b.lastErr}
}

// errText bounds an error for the status page and /readyz.
func errText(err error) string {
	s := err.Error()
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
