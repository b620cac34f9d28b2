package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/pipgate/pipgate/gate"
	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/pypi"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/pipgate/pipgate/audit"
	"github.com/pipgate/pipgate/internal/logbuf"
)

// Route names: a fixed set, used as the metrics label and in the access log.
const (
	routeSimpleRoot  = "simple_root"
	routeSimple      = "simple_project"
	routeFile        = "file"
	routeMetadata    = "metadata"
	routeProvenance  = "provenance"
	routeHealthz     = "healthz"
	routeReadyz      = "readyz"
	routeStatus      = "status"
	routeMetrics     = "metrics"
	routeEgressFile  = "egress_file"
	routeOther       = "other"
	headerVerdict    = "X-Pipgate-Verdict"
	headerCache      = "X-Pipgate-Cache"
	headerRequestID  = "X-Request-Id"
	headerReason     = "X-Pipgate-Reason"
	maxRequestIDSize = 64
)

// reqInfo carries request-scoped facts that handlers fill in and the access
// log reads: it travels in the context.
type reqInfo struct {
	id      string
	route   string
	cache   gate.CacheState
	verdict pypi.Verdict
	action  policy.Action // a download's policy decision, with its rule
	rule    string
	project string
	file    string
	// audit follows the request's download record: the response waits
	// for it before its status line (statusWriter).
	audit audit.Ticket
	// sentStatus is the status that went out when it is not the one
	// recorded (a failed page answered to pip as 200: writePipPageFailure).
	sentStatus int
}

type reqInfoKey struct{}

// info returns the request's *reqInfo; a throwaway one outside the middleware.
func info(ctx context.Context) *reqInfo {
	if ri, ok := ctx.Value(reqInfoKey{}).(*reqInfo); ok {
		return ri
	}
	return &reqInfo{}
}

// handlerFunc is a handler that returns its error instead of writing it: one
// middleware writes the status and logs, once (Caddy, tsweb).
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// statusWriter records the status and the bytes written. Before the status
// line goes out it waits for the request's audit record to be written (at
// most audit.WriteWait): a client never has a download, or its refusal, whose
// record a crash of pipgate could still lose.
type statusWriter struct {
	http.ResponseWriter
	ri    *reqInfo
	code  int
	bytes int64
}

// start records code as the status unless one is recorded already, and
// waits for the audit record the first time.
func (w *statusWriter) start(code int) {
	if w.code == 0 {
		w.code = code
		w.ri.audit.Wait()
	}
}

func (w *statusWriter) WriteHeader(code int) {
	w.start(code)
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	w.start(http.StatusOK)
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// ReadFrom keeps the underlying writer's sendfile path for file bodies.
func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	w.start(http.StatusOK)
	n, err := io.Copy(w.ResponseWriter, r)
	w.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// handle wraps h with the request ID, metrics, error writing and the access
// log line. Order (outermost first): request info → in-flight gauge →
// handler → error writer → metrics + access log.
func (s *Server) handle(route string, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get(headerRequestID)
		if id == "" || len(id) > maxRequestIDSize {
			id = newRequestID()
		}
		ri := &reqInfo{id: id, route: route}
		r = r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, ri))
		w.Header().Set(headerRequestID, id)
		sw := &statusWriter{ResponseWriter: w, ri: ri}
		s.metrics.inFlight.Inc()
		defer s.metrics.inFlight.Dec()

		var err error
		defer func() {
			p := recover()
			if p != nil {
				// A panic with http.ErrAbortHandler ends a response whose
				// body failed after the headers went out; log it, then let
				// net/http abort the connection.
				err = fmt.Errorf("response aborted: %v", p)
				if sw.code == 0 {
					sw.code = http.StatusInternalServerError
				}
			}
			s.logRequest(r, ri, sw, start, err)
			if p != nil {
				panic(p)
			}
		}()
		err = h(sw, r)
		if err != nil && sw.code == 0 {
			code := statusFor(err)
			if code == statusClientClosed {
				sw.code = code // nobody is listening: record, write nothing
			} else {
				h := sw.Header()
				h.Del("Content-Length")
				h.Del("ETag")
				h.Set("Content-Type", "text/plain; charset=utf-8")
				h.Set("X-Content-Type-Options", "nosniff")
				msg := clientMessage(err, code)
				// A refusal or an upstream failure says why in the status
				// line too: pip prints it.
				// A page pip asked for gets the reason where pip prints it
				// (writePipPageFailure).
				if !writePipPageFailure(sw, r, code, msg) &&
					(!reasonInStatusLine(code) || !writeWithReason(sw, r, code, msg, msg+"\n")) {
					sw.WriteHeader(code)
					_, _ = sw.Write([]byte(msg + "\n"))
				}
			}
		}
	})
}

// logRequest writes the access-log line and the HTTP metrics, once a request.
func (s *Server) logRequest(r *http.Request, ri *reqInfo, sw *statusWriter, start time.Time, err error) {
	if sw.code == 0 {
		sw.code = http.StatusOK
	}
	route := ri.route
	d := time.Since(start)
	s.metrics.observeHTTP(route, r.Method, sw.code, d)

	level := slog.LevelInfo
	switch {
	case sw.code >= 500:
		level = slog.LevelError
	case route == routeHealthz || route == routeReadyz || route == routeMetrics:
		level = slog.LevelDebug
	}
	// The handler directly, with no caller PC: Logger.LogAttrs walks the
	// stack for one (runtime.Callers) that no handler here prints.
	h := s.log.Handler()
	if !h.Enabled(r.Context(), level) {
		return
	}
	id := ri.id
	attrs := make([]slog.Attr, 0, 14)
	attrs = append(attrs,
		slog.String("request_id", id),
		slog.String("method", r.Method),
		slog.String("route", route),
		slog.String("path", r.URL.Path),
		slog.Int("status", sw.code),
	)
	if ri.sentStatus != 0 {
		attrs = append(attrs, slog.Int("sent_status", ri.sentStatus))
	}
	attrs = append(attrs,
		slog.Int64("bytes", sw.bytes),
		slog.Float64("duration_seconds", d.Seconds()),
		slog.String("client", r.RemoteAddr),
	)
	if ri.cache != "" {
		attrs = append(attrs, slog.String("cache", string(ri.cache)))
	}
	if ri.verdict != "" {
		attrs = append(attrs, slog.String("verify", string(ri.verdict)))
	}
	if ri.action != "" {
		attrs = append(attrs, slog.String("action", string(ri.action)))
		if ri.rule != "" {
			attrs = append(attrs, slog.String("rule", ri.rule))
		}
	}
	if ri.project != "" {
		attrs = append(attrs, slog.String("project", ri.project))
	}
	if ri.file != "" {
		attrs = append(attrs, slog.String("filename", ri.file))
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		attrs = append(attrs, slog.String("err", err.Error()))
	}
	// The server's log encodes these lines by hand (logbuf.HandleAttrs,
	// byte for byte slog's JSON).
	if lh, ok := h.(*logbuf.Handler); ok {
		_ = lh.HandleAttrs(r.Context(), time.Now(), level, "request", attrs...)
		return
	}
	rec := slog.NewRecord(time.Now(), level, "request", 0)
	rec.AddAttrs(attrs...)
	_ = h.Handle(r.Context(), rec)
}
