package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path"
	"strings"
	"time"

	"github.com/pipgate/pipgate/audit"
	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/gate"
	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/pypi"
)

const metadataSuffix = ".metadata"

// serveFileRoute serves /files/<project>/<filename> and its .metadata.
func (s *Server) serveFileRoute(w http.ResponseWriter, r *http.Request) error {
	project := r.PathValue("project")
	if !pypi.ValidProjectName(project) || pypi.NormalizeName(project) != project {
		return errorf(http.StatusBadRequest, "pipgate: invalid project name %q", project)
	}
	return s.serveFile(w, r, project, r.PathValue("filename"))
}

// serveTunnelOther answers every other path inside the egress tunnel: a file
// URL on an intercepted host that pipgate did not write (pip's cache, a
// pinned URL on files.pythonhosted.org) is still served, and verified: the
// project comes from the filename and the file from its index page.
func (s *Server) serveTunnelOther(w http.ResponseWriter, r *http.Request) error {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		name := path.Base(r.URL.Path)
		if fn, err := pypi.ParsePipFilename(strings.TrimSuffix(name, metadataSuffix)); err == nil {
			info(r.Context()).route = routeEgressFile
			return s.serveFile(w, r, fn.Name, name)
		}
	}
	return s.serveNotFound(w, r)
}

func validFilename(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.HasPrefix(name, ".") &&
		!strings.ContainsAny(name, "/\\\x00")
}

// serveFile is one download, top to bottom: parse the request, ask the
// gate for the file and its decision, record the decision, then refuse or
// serve. The decision comes first, so a blocked file is never even
// downloaded, and its .metadata is refused like the file; every answer
// carries the file's verdict.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, project, name string) error {
	ctx := r.Context()
	ri := info(ctx)

	// Parse: <filename> or <filename>.metadata (PEP 658).
	metadata := strings.HasSuffix(name, metadataSuffix)
	filename := strings.TrimSuffix(name, metadataSuffix)
	if !validFilename(filename) {
		return errorf(http.StatusBadRequest, "pipgate: invalid filename %q", name)
	}
	ri.project, ri.file = project, filename
	if metadata {
		ri.route = routeMetadata
	}

	// Look up and decide (gate): the file on its project's page (404 when
	// the page does not list it), its verified facts, the policy's decision.
	dl, err := s.gate.Decide(ctx, project, filename)
	if err != nil {
		return err
	}
	d := dl.Decision
	ri.verdict = d.Verdict
	if dl.Cache != "" {
		ri.cache = dl.Cache
	}
	w.Header()[headerVerdict] = verdictHeader(d.Verdict)
	if d.Action != policy.ActionAllow {
		w.Header().Set(headerReason, headerSafe(d.Reason))
	}

	// Record: a download is audited once, at the file; a refused .metadata
	// is audited too, since pip stops there and never asks for the file.
	if r.Method == http.MethodGet && (!metadata || d.Blocks()) {
		s.recordDecision(ctx, r.RemoteAddr, dl)
	}

	// Refuse (403 with the rule's reason), before any byte is fetched.
	if err := d.Err(); err != nil {
		w.Header().Set("Cache-Control", "no-store")
		return fmt.Errorf("%s: %w", describe(dl.Facts), err)
	}

	// Serve: the metadata, or the file's bytes, from the cache or filled
	// from the upstream and checked against the index's sha256.
	if metadata {
		return s.serveMetadata(w, r, dl)
	}
	return s.serveBlob(w, r, filename, blobFile, s.gate.Fill(dl))
}

// recordDecision counts a download decision and writes its audit record and
// status entry. A plainly allowed download is logged by its access-log line
// (which carries the verdict, action and rule); anything else also gets a
// "decision" line (a warning unless allowed).
func (s *Server) recordDecision(ctx context.Context, client string, dl gate.Download) {
	project, f, facts, d := dl.Project, dl.File, dl.Facts, dl.Decision
	s.metrics.policyDecision(d.Action, d.Rule)
	s.metrics.download(d.Verdict, d.Action, d.Rule != policy.DefaultsRule)
	s.metrics.finding(d)
	version, sha, now := dl.Version, dl.SHA256, s.now()
	identity := dl.Identity
	reason := d.Reason
	if reason == "" && facts.Detail != "" {
		reason = facts.Detail
	}
	up, _ := s.up.Owner(project)
	// A refusal's status line waits for its record to be written (the
	// statusWriter waits on the ticket); a served download's record is
	// written within audit.FlushEvery, without holding the response.
	var ticket *audit.Ticket
	if d.Blocks() {
		ticket = &info(ctx).audit
	}
	s.audit.AddTracked(audit.Record{
		Upstream:  up,
		Time:      now,
		Event:     "download",
		RequestID: info(ctx).id,
		Client:    client,
		Project:   project,
		Version:   version,
		Filename:  f.Filename,
		SHA256:    sha,
		Verdict:   d.Verdict,
		Reason:    reason,
		Identity:  identity,
		Rule:      d.Rule,
		Action:    d.Action,
		Finding:   d.Finding,
	}, ticket)
	s.decisions.add(statusDecision{
		Upstream: up,
		Time:     now,
		Project:  project,
		Version:  version,
		Filename: f.Filename,
		SHA256:   sha,
		Verdict:  d.Verdict,
		Action:   d.Action,
		Rule:     d.Rule,
		RuleLine: s.policy.Current().Lookup(project).Line,
		Reason:   reason,
		Identity: identity,
		Finding:  d.Finding,
	})
	s.history.Add(cache.Decision{Project: project, Version: version, Filename: f.Filename, SHA256: sha,
		Upstream: up, Verdict: d.Verdict, Action: d.Action, Rule: d.Rule, Finding: d.Finding,
		Identity: identity, Signer: historySigner(facts.Identity), UploadTime: dl.UploadTime.UTC(), Reason: reason, LastSeen: now.UTC()})
	ri := info(ctx)
	ri.action, ri.rule = d.Action, d.Rule
	if d.Action != policy.ActionAllow || d.Finding != "" {
		level := slog.LevelWarn
		if d.Action == policy.ActionAllow {
			level = slog.LevelInfo
		}
		s.log.LogAttrs(ctx, level, "decision", slog.String("request_id", ri.id), slog.String("project", project),
			slog.String("upstream", up), slog.String("filename", f.Filename), slog.String("sha256", sha),
			slog.String("verdict", string(d.Verdict)), slog.String("action", string(d.Action)), slog.String("rule", d.Rule),
			slog.String("finding", string(d.Finding)), slog.String("reason", reason))
	}
}

// describe is a one-line summary of facts for logs and errors.
func describe(f pypi.Facts) string {
	if f.Identity != nil {
		return fmt.Sprintf("%s by %s", f.Verdict, f.Identity)
	}
	if f.Detail != "" {
		return fmt.Sprintf("%s: %s", f.Verdict, f.Detail)
	}
	return string(f.Verdict)
}

// serveBlob serves the blob req.SHA: from the store, or filled from the
// upstream. What a client receives with a success status is always bytes
// that matched req.SHA:
//   - a hit is the committed blob (cache.Store.OpenBlob checks it is still
//     the file that was committed; a changed one is quarantined and filled
//     again), served with sendfile;
//   - a miss up to Options.CheckFirstMax is downloaded and checked before
//     the status line (a mismatch is a 403, verdict invalid, reason
//     digest-mismatch), as is every HEAD, Range and HTTP/1.0 request;
//   - a larger miss, or one whose check takes longer than Options.CheckWait,
//     streams: the status line goes out at once, chunked, with no ETag and
//     the verdict announced as a trailer; the reader stays tailHoldback
//     bytes behind the download until the digest matched, and the
//     verdict trailer is sent after it; on a mismatch the connection is
//     aborted, so the body is never complete.
func (s *Server) serveBlob(w http.ResponseWriter, r *http.Request, name string, kind blobKind, req gate.FillRequest) error {
	// A second round only when the first found the blob gone after all:
	// committed by a fill that ended between the miss and the join, or
	// (with cache.max_size) evicted despite the fill's pin.
	for round := 1; ; round++ {
		err := s.serveBlobOnce(w, r, name, kind, req)
		if !errors.Is(err, errBlobGone) || round == 2 {
			return err
		}
		s.log.Warn("committed file not found in the cache; fetching it again", "request_id", info(r.Context()).id,
			"filename", name, "sha256", req.SHA, "err", err)
	}
}

// errBlobGone reports a blob that a fill committed, or that the store said
// it had, but that could not be opened. It is never a 404: the file exists.
var errBlobGone = errors.New("the cached file disappeared before it could be served")

func (s *Server) serveBlobOnce(w http.ResponseWriter, r *http.Request, name string, kind blobKind, req gate.FillRequest) error {
	ctx := r.Context()
	ri := info(ctx)
	f, err := s.store.OpenBlob(req.SHA)
	switch {
	case err == nil:
		defer f.Close()
		ri.cache = gate.CacheHit
		s.gate.CountLookup(gate.LookupFile, gate.CacheHit)
		setBlobHeaders(w, req.SHA, kind)
		s.gate.CountServed(s.sendBlob(w, r, name, f.File))
		return nil
	case errors.Is(err, cache.ErrBlobChanged):
		s.log.Error("cached file changed on disk: quarantined, fetching it again", "request_id", ri.id,
			"filename", name, "sha256", req.SHA, "err", err)
	case !errors.Is(err, cache.ErrNotFound):
		s.log.Warn("opening cached file", "filename", name, "sha256", req.SHA, "err", err)
	}
	fl := s.gate.JoinFill(req)
	if fl == nil {
		return fmt.Errorf("%w: %s", errBlobGone, req.SHA)
	}
	defer fl.Leave()
	ri.cache = gate.CacheMiss
	s.gate.CountLookup(gate.LookupFile, gate.CacheMiss)
	if r.Method == http.MethodGet && r.Header.Get("Range") == "" && r.ProtoAtLeast(1, 1) {
		stream, err := s.mustStream(ctx, fl)
		if err != nil {
			return err
		}
		if stream {
			return s.streamFill(w, r, fl, name, kind)
		}
	}
	return s.serveFilled(w, r, fl, name, kind)
}

// mustStream waits for a small fill to end; it reports true when the fill is
// too large to check first, or its check takes longer than CheckWait.
func (s *Server) mustStream(ctx context.Context, fl *gate.Fill) (bool, error) {
	timer := time.NewTimer(s.opts.CheckWait)
	defer timer.Stop()
	for {
		done, size, ch := fl.State()
		switch {
		case done:
			return false, nil
		case size > s.opts.CheckFirstMax:
			return true, nil
		}
		select {
		case <-ch:
		case <-timer.C:
			return true, nil
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// serveFilled waits for the fill to end and serves the committed blob, or
// refuses the request.
func (s *Server) serveFilled(w http.ResponseWriter, r *http.Request, fl *gate.Fill, name string, kind blobKind) error {
	got, err := fl.Wait(r.Context())
	if err != nil {
		return s.fillFailed(w, r, err)
	}
	f, err := s.store.OpenBlob(got)
	if errors.Is(err, cache.ErrNotFound) {
		return fmt.Errorf("%w: %w", errBlobGone, err)
	}
	if err != nil {
		return fmt.Errorf("opening committed blob: %w", err)
	}
	defer f.Close()
	setBlobHeaders(w, got, kind)
	s.sendBlob(w, r, name, f.File)
	return nil
}

// fillFailed sets the verdict headers for a fill that failed before the
// status line and returns the error the middleware writes.
func (s *Server) fillFailed(w http.ResponseWriter, r *http.Request, err error) error {
	if r.Context().Err() != nil {
		return err
	}
	h := w.Header()
	if errors.Is(err, gate.ErrDigestMismatch) {
		s.metrics.digestMismatch("refused")
		h.Set(headerVerdict, string(pypi.VerdictInvalid))
		h.Set(headerReason, string(pypi.ReasonDigestMismatch))
		h.Set("Cache-Control", "no-store")
		return &httpError{Code: http.StatusForbidden,
			Msg: string(pypi.ReasonDigestMismatch) + ": the upstream served bytes that do not match the index sha256 or size",
			Err: err}
	}
	// The bytes could not be checked: no verdict about them holds.
	h.Set(headerVerdict, string(pypi.VerdictError))
	h.Set(headerReason, string(pypi.ReasonFetch))
	return err
}

// streamFill streams a fill in progress (see serveBlob).
func (s *Server) streamFill(w http.ResponseWriter, r *http.Request, fl *gate.Fill, name string, kind blobKind) error {
	ctx := r.Context()
	rd, ok, err := fl.Attach(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return s.serveFilled(w, r, fl, name, kind)
	}
	defer rd.Close()
	h := w.Header()
	verdict := h.Get(headerVerdict)
	h.Del(headerVerdict)
	h.Set("Trailer", headerVerdict)
	setBlobHeaders(w, "", kind)
	h.Del("Content-Length")
	w.WriteHeader(http.StatusOK)
	bw := newBodyWriter(w, s.opts.WriteIdleTimeout)
	defer bw.done()
	bw.flush() // the status line now: pip's read timeout runs
	// 64 KiB per streaming client: memory stays small with many of them.
	buf := make([]byte, 64<<10)
	for {
		n, rerr := rd.Read(ctx, buf)
		if n > 0 {
			if _, err := bw.Write(buf[:n]); err != nil {
				s.log.Info("client stopped reading; dropping it", "request_id", info(ctx).id, "filename", name, "err", err)
				panic(http.ErrAbortHandler)
			}
			bw.flush()
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(rerr, gate.ErrDigestMismatch) {
				s.metrics.digestMismatch("aborted")
			}
			s.log.Error("file fill failed while streaming; aborting the response before its last bytes", "filename", name,
				"request_id", info(ctx).id, "err", rerr)
			panic(http.ErrAbortHandler)
		}
	}
	h.Set(headerVerdict, verdict) // the trailer: the digest matched
	return nil
}

// sendBlob serves a committed blob with http.ServeContent (HEAD, Range,
// conditional requests) and returns the body bytes written.
func (s *Server) sendBlob(w http.ResponseWriter, r *http.Request, name string, f *os.File) int64 {
	bw := newBodyWriter(w, s.opts.WriteIdleTimeout)
	defer bw.done()
	http.ServeContent(bw, r, name, time.Time{}, f)
	return bw.n
}

// sendChunk is how much of a file one write deadline covers: a client must
// take sendChunk bytes per WriteIdleTimeout (4 KiB/s at the defaults).
const sendChunk = 256 << 10

// bodyWriter writes a response body with a write deadline pushed forward
// before every chunk, so a client that stops reading is dropped after the
// idle timeout; ReadFrom keeps the sendfile path, one chunk at a time.
type bodyWriter struct {
	http.ResponseWriter
	rc   http.ResponseController
	idle time.Duration
	n    int64
}

func newBodyWriter(w http.ResponseWriter, idle time.Duration) *bodyWriter {
	return &bodyWriter{ResponseWriter: w, rc: *http.NewResponseController(w), idle: idle}
}

// arm sets the deadline for the next chunk (writers without deadlines, such
// as the egress tunnel's, which has its own, ignore it).
func (w *bodyWriter) arm() { _ = w.rc.SetWriteDeadline(time.Now().Add(w.idle)) }

// done clears the deadline for the connection's next request.
func (w *bodyWriter) done() { _ = w.rc.SetWriteDeadline(time.Time{}) }

func (w *bodyWriter) flush() { _ = w.rc.Flush() }

func (w *bodyWriter) Write(p []byte) (int, error) {
	w.arm()
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

// ReadFrom copies r (http.ServeContent passes an *io.LimitedReader of the
// *os.File) in sendChunk pieces, each its own sendfile under a fresh
// deadline.
func (w *bodyWriter) ReadFrom(r io.Reader) (int64, error) {
	lr, ok := r.(*io.LimitedReader)
	if !ok {
		lr = &io.LimitedReader{R: r, N: math.MaxInt64}
	}
	var total int64
	for lr.N > 0 {
		w.arm()
		chunk := min(lr.N, sendChunk)
		n, err := io.Copy(w.ResponseWriter, &io.LimitedReader{R: lr.R, N: chunk})
		lr.N -= n
		total += n
		w.n += n
		if err != nil || n < chunk {
			return total, err
		}
	}
	return total, nil
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *bodyWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func setBlobHeaders(w http.ResponseWriter, sha string, kind blobKind) {
	h := w.Header()
	if kind == blobMetadata {
		h["Content-Type"] = hvTextPlain
	} else {
		h["Content-Type"] = hvOctetStream
	}
	if sha != "" {
		h.Set("ETag", `"`+sha+`"`)
	}
	h["X-Content-Type-Options"] = hvNosniff
}

// Header values shared by every response that sets them, so a download
// does not allocate a one-value slice for each: the keys are canonical,
// and nothing writes into a header's value slice (Set and Del replace it,
// Add appends to a full slice, which copies).
var (
	hvTextPlain   = []string{"text/plain; charset=utf-8"}
	hvOctetStream = []string{"application/octet-stream"}
	hvNosniff     = []string{"nosniff"}
	hvVerdicts    = func() map[pypi.Verdict][]string {
		m := make(map[pypi.Verdict][]string, len(metricsVerdicts))
		for _, v := range metricsVerdicts {
			m[v] = []string{string(v)}
		}
		return m
	}()
)

// verdictHeader is the X-Pipgate-Verdict value of v.
func verdictHeader(v pypi.Verdict) []string {
	if hv, ok := hvVerdicts[v]; ok {
		return hv
	}
	return []string{string(v)}
}

// headerSafe makes s a single-line header value of bounded length.
func headerSafe(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 512 {
		s = s[:512]
	}
	return s
}

// blobKind is what a served blob is: its Content-Type follows.
type blobKind int

const (
	blobFile     blobKind = iota // a distribution file: application/octet-stream
	blobMetadata                 // PEP 658 metadata: text/plain
)

// Defaults of the delivery limits (see Options).
const (
	checkFirstMaxDefault = 8 << 20
	checkWaitDefault     = 5 * time.Second
	writeIdleDefault     = time.Minute
)

// historySigner is the verified signer as the decision history keeps it:
// what a replay of the policy matches publishers on (kind, issuer,
// subject, repository, workflow, e-mail) and the ref; nil when none.
func historySigner(id *pypi.Identity) *pypi.Identity {
	if id == nil {
		return nil
	}
	return &pypi.Identity{Kind: id.Kind, Issuer: id.Issuer, Subject: id.Subject, Repository: id.Repository,
		Workflow: id.Workflow, Ref: id.Ref, Email: id.Email}
}
