package proxy

import (
	"github.com/pipgate/pipgate/internal/statusline"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// A refusal's reason goes in the HTTP/1.1 status line ("HTTP/1.1 403
// pipgate: demo: ..."), because that line is what pip prints
// ("403 Client Error: <reason phrase> for url: ..."). net/http always writes
// the standard reason phrase, so an HTTP/1.x response with a reason is
// written here on the hijacked connection, and the egress tunnel's writer
// takes the phrase through [reasonWriter]. HTTP/2 has no reason phrase: there
// the reason is in the body and the X-Pipgate-Reason header only.

// reasonInStatusLine reports whether a response with code carries its
// message as the reason phrase: a refusal (403) and an upstream failure
// (502, 504), whose messages say why ("pipgate: upstream pypi
// (https://pypi.org/) unreachable: ..."), the line pip prints.
func reasonInStatusLine(code int) bool {
	return code == http.StatusForbidden || code == http.StatusBadGateway || code == http.StatusGatewayTimeout
}

// reasonWriter is implemented by response writers that can send a status
// line with a custom reason phrase (the egress tunnel's writer, whose
// response is an *http.Response with a Status string). It is matched by
// method set, so the egress package need not import proxy.
type reasonWriter interface {
	// WriteHeaderReason is WriteHeader with reason as the status line's
	// reason phrase; reason is already one printable line.
	WriteHeaderReason(code int, reason string)
}

// reasonLingerTimeout bounds how long a refused connection waits for the
// client to close its side after the response (net/http waits a fixed
// 500 ms in the same place, to avoid a reset that could discard the
// response before the client reads it).
const reasonLingerTimeout = 500 * time.Millisecond

// reasonWriteTimeout bounds writing a refusal to a client that does not read.
const reasonWriteTimeout = 10 * time.Second

// writeWithReason writes a complete response (code, the headers already set
// on w, body) whose status line carries reason, and reports whether it could:
// false leaves w untouched, for the caller to write the usual way. The
// response closes the connection on HTTP/1.x (a hijacked connection cannot
// go back to net/http).
func writeWithReason(w *statusWriter, r *http.Request, code int, reason, body string) bool {
	reason = statusline.Reason(code, reason)
	if rw, ok := w.ResponseWriter.(reasonWriter); ok {
		w.start(code)
		rw.WriteHeaderReason(code, reason)
		n, _ := io.WriteString(w.ResponseWriter, body)
		w.bytes += int64(n)
		return true
	}
	if r.ProtoMajor != 1 {
		return false
	}
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return false // not hijackable (HTTP/2, a test recorder): the usual way
	}
	w.start(code)
	h := w.Header().Clone()
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Connection", "close")
	h.Del("Transfer-Encoding")
	_ = conn.SetWriteDeadline(time.Now().Add(reasonWriteTimeout))
	bw := brw.Writer
	_, _ = bw.WriteString("HTTP/1.1 " + strconv.Itoa(code) + " " + reason + "\r\n")
	_ = h.Write(bw) // one line a value: Header.Write replaces CR and LF
	_, _ = bw.WriteString("\r\n")
	if r.Method != http.MethodHead {
		_, _ = bw.WriteString(body)
		w.bytes += int64(len(body))
	}
	if err := bw.Flush(); err != nil {
		_ = conn.Close() // the client went away; nothing else to send it
		return true
	}
	go lingerClose(conn) // bounded by reasonLingerTimeout
	return true
}

// lingerClose half-closes conn and waits (briefly) for the client to close
// its side, so that unread input does not turn the close into a reset that
// could destroy the response in flight.
// Input net/http had already buffered is not read again: it has left the
// socket, so it cannot cause a reset. lingerClose closes conn.
func lingerClose(conn net.Conn) {
	defer conn.Close()
	cw, ok := conn.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	_ = conn.SetReadDeadline(time.Now().Add(reasonLingerTimeout))
	// EOF (the client closed), the deadline or an error all end the wait.
	_, _ = io.Copy(io.Discard, io.LimitReader(conn, 256<<10))
}

// pip fetches a project page (/simple/<project>/) and, when the answer is
// not a 2xx, logs why only at -vv ("Could not fetch URL ...") and then says
// "from versions: none": an unreachable upstream looks like a package that
// does not exist. What pip does print (a WARNING, at the default verbosity)
// is a page whose Content-Type it does not read: "Skipping page URL because
// the GET request got Content-Type: CT". So a project or root page that
// failed (502, 503, 504) is answered to pip's User-Agent as 200 with
// `Content-Type: text/plain; error="<the status line: 502 reason>"` and
// Cache-Control: no-store, which pip treats exactly as it treats the 502
// (it skips the page and goes on with its other indexes) but prints. The TLS listener
// answers an http:// index URL the same way (cmd/pipgate/tls.go). The
// metrics and the access log keep the failure's own status (the log line
// adds sent_status 200); any other client, uv included, gets the status
// with the reason in its status line.

// writePipPageFailure writes that answer when r is pip's request for an
// index page and code an upstream failure, and reports whether it did.
func writePipPageFailure(w *statusWriter, r *http.Request, code int, msg string) bool {
	if w.ri.route != routeSimple && w.ri.route != routeSimpleRoot {
		return false
	}
	if code != http.StatusBadGateway && code != http.StatusServiceUnavailable && code != http.StatusGatewayTimeout {
		return false
	}
	if !strings.HasPrefix(r.UserAgent(), "pip/") {
		return false
	}
	// A quoted-string parameter: one printable line without '"' or '\'.
	reason := strings.NewReplacer(`"`, "'", `\`, "/").Replace(statusline.Reason(code, msg))
	h := w.Header()
	h.Set("Content-Type", `text/plain; error="`+strconv.Itoa(code)+" "+reason+`"`) // the status line
	h.Set("Cache-Control", "no-store")
	h.Set(headerReason, reason)
	w.start(code) // the failure it is, for the metrics and the log
	w.ri.sentStatus = http.StatusOK
	w.ResponseWriter.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		n, _ := io.WriteString(w.ResponseWriter, msg+"\n")
		w.bytes += int64(n)
	}
	return true
}
