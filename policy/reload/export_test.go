package reload

import (
	"context"
	"time"
)

// WatchTicks is Watch polling on every value of ticks instead of a timer's,
// sending on polled once each poll is done.
func (r *Reloader) WatchTicks(ctx context.Context, ticks <-chan time.Time, polled chan<- struct{}) error {
	return r.watch(ctx, ticks, func() { polled <- struct{}{} })
}
