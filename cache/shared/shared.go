// Package shared is the blob store several pipgate replicas share: an
// S3-compatible bucket holding the same content-addressed blobs as each
// replica's local store (cache), under <prefix>blobs/sha256/ab/<sha256>.
//
// The bucket is a second-level cache and nothing more. Each replica keeps its
// own bbolt database and its local blob directory; verdicts, provenance and
// pages are never read from or written to the bucket, so whoever can write
// the bucket cannot plant a verdict. Bytes read from the bucket are not
// trusted either: [Store.Get] only opens an object; the caller hashes it as
// it streams and commits it to the local store only when the sha256 matches
// (as an upstream fill), and reports a mismatch with [Store.Rejected], which
// counts it and has the next [Store.Upload] replace the object.
//
// An S3 error never fails a client's request: a lookup that fails is a miss
// (the caller goes to the upstream), an upload runs in the background and is
// dropped when it fails. After a few failures in a row a breaker skips the
// bucket altogether until a background probe finds it answering again.
//
// pipgate never deletes from the bucket: expiry is the bucket's lifecycle
// rules' job (README "Several replicas").
package shared

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/prometheus/client_golang/prometheus"
)

// Errors of [Store.Get].
var (
	// ErrNotFound: the bucket does not hold the blob.
	ErrNotFound = errors.New("shared store: blob not in the bucket")
	// ErrSkipped: the breaker is open (the bucket failed recently); the
	// bucket was not asked.
	ErrSkipped = errors.New("shared store: skipped while down")
)

// Options configures [New].
type Options struct {
	// Bucket is the bucket's name (required).
	Bucket string
	// Prefix is put before every key ("pipgate/" gives
	// pipgate/blobs/sha256/...); a missing trailing "/" is added.
	Prefix string
	// Endpoint is the S3 API's base URL for an S3-compatible server
	// (http://minio:9000); empty: AWS.
	Endpoint string
	// Region is the bucket's region; empty: the AWS chain's (AWS_REGION,
	// profile), else us-east-1.
	Region string
	// PathStyle addresses the bucket as <endpoint>/<bucket>/<key> instead of
	// <bucket>.<endpoint>/<key> (most S3-compatible servers need it).
	PathStyle bool
	// Credentials overrides the standard AWS chain (environment, shared
	// profile, web identity, container and instance roles); tests set it.
	Credentials aws.CredentialsProvider

	// Open opens a committed local blob for upload and returns it with its
	// size; close releases it (cache.Store.OpenBlob pins it meanwhile).
	// Required.
	Open func(sha256 string) (f io.ReaderAt, size int64, closeFn func(), err error)

	// Timeout bounds the wait for a response's headers, and any stall in a
	// body read; past it the request fails (and counts towards the
	// breaker). Zero: 5 s.
	Timeout time.Duration
	// Failures is how many failed requests in a row open the breaker.
	// Zero: 3.
	Failures int
	// Cooldown is how long the breaker stays open before a probe asks the
	// bucket again (and again after each failed probe). Zero: 30 s.
	Cooldown time.Duration
	// MultipartAbove is the size from which uploads are multipart; PartSize
	// the size of each part (S3's minimum is 5 MiB). Zero: 64 MiB and
	// 16 MiB.
	MultipartAbove int64
	PartSize       int64
	// Queue bounds the uploads waiting for an uploader (more are dropped
	// and counted); Uploaders is how many run at once. Zero: 1024 and 4.
	Queue     int
	Uploaders int
	// Wait is how long a lookup of a blob that another replica is filling
	// (it claimed the fill) waits for that replica's upload before this
	// replica fetches the blob from the upstream too. Zero: 5 s; negative:
	// never wait (and claim nothing).
	Wait time.Duration
	// Drain is how long Close lets the uploaders work through the queue
	// (a replica stopped right after a fill still shares it); past it the
	// rest is dropped. Zero: 10 s.
	Drain time.Duration

	// Logger gets the component's lines; nil discards.
	Logger *slog.Logger
	// Registerer receives the pipgate_shared_* metrics; nil registers
	// nothing.
	Registerer prometheus.Registerer
}

func (o Options) withDefaults() Options {
	if o.Prefix != "" && !strings.HasSuffix(o.Prefix, "/") {
		o.Prefix += "/"
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Failures <= 0 {
		o.Failures = 3
	}
	if o.Cooldown <= 0 {
		o.Cooldown = 30 * time.Second
	}
	if o.MultipartAbove <= 0 {
		o.MultipartAbove = 64 << 20
	}
	if o.PartSize <= 0 {
		o.PartSize = 16 << 20
	}
	if o.Queue <= 0 {
		o.Queue = 1024
	}
	if o.Uploaders <= 0 {
		o.Uploaders = 4
	}
	if o.Drain <= 0 {
		o.Drain = 10 * time.Second
	}
	if o.Wait == 0 {
		o.Wait = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Store is the shared bucket. It is safe for concurrent use.
type Store struct {
	opts    Options
	client  *s3.Client
	log     *slog.Logger
	m       *metrics
	breaker *breaker

	base      context.Context // canceled by Close
	cancel    context.CancelFunc
	queue     chan string    // closed by Close
	uploaders sync.WaitGroup // the uploaders, done when the queue is drained
	wg        sync.WaitGroup // the prober

	noConditional atomic.Bool // the server answered If-None-Match with 501 Not Implemented

	mu       sync.Mutex
	pending  map[string]bool      // queued or uploading
	rejected map[string]bool      // objects that did not match: the next upload replaces them
	claims   map[string]time.Time // fills this replica claimed, and when
	closed   bool
}

// New builds the S3 client (credentials from opts.Credentials or the
// standard AWS chain) and starts the uploaders. It does not contact the
// bucket: a bucket that is down at start is a breaker opening on first
// use, never a failed start ([Store.Probe] checks it for a log line).
func New(ctx context.Context, opts Options) (*Store, error) {
	if opts.Bucket == "" {
		return nil, errors.New("shared store: Options.Bucket is required")
	}
	if opts.Open == nil {
		return nil, errors.New("shared store: Options.Open is required")
	}
	opts = opts.withDefaults()
	load := []func(*awsconfig.LoadOptions) error{
		// The breaker decides when to ask again: no SDK retries with
		// backoff on a read a client waits for (uploads get their own).
		awsconfig.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
		awsconfig.WithHTTPClient(newHTTPClient(opts.Timeout)),
	}
	if opts.Region != "" {
		load = append(load, awsconfig.WithRegion(opts.Region))
	}
	if opts.Credentials != nil {
		load = append(load, awsconfig.WithCredentialsProvider(opts.Credentials))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("shared store: AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.UsePathStyle = opts.PathStyle
		// pipgate checks every byte against its sha256 itself; the SDK's
		// default CRC trailers are not understood by every S3-compatible
		// server.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	base, cancel := context.WithCancel(context.Background())
	s := &Store{
		opts: opts, client: client, log: opts.Logger, m: m,
		base: base, cancel: cancel,
		queue:    make(chan string, opts.Queue),
		pending:  map[string]bool{},
		rejected: map[string]bool{},
		claims:   map[string]time.Time{},
	}
	s.breaker = newBreaker(opts.Failures, opts.Cooldown, s.probeLoop, m.setOpen)
	m.queued = func() float64 { return float64(len(s.queue)) }
	for range opts.Uploaders {
		s.uploaders.Add(1)
		go s.uploader()
	}
	return s, nil
}

// newHTTPClient bounds the wait for a connection, a TLS handshake and
// response headers by timeout; a stalled body is bounded by idleReader.
// (The SDK's buildable client, so that AWS_CA_BUNDLE still applies.)
func newHTTPClient(timeout time.Duration) *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().WithDialerOptions(func(d *net.Dialer) {
		d.Timeout = timeout // a blackholed endpoint: not the default 30 s
	}).WithTransportOptions(func(t *http.Transport) {
		t.ResponseHeaderTimeout = timeout
		t.TLSHandshakeTimeout = timeout
		t.MaxIdleConnsPerHost = 16
	})
}

// Describe names the bucket and prefix: s3://bucket/prefix (endpoint).
func (s *Store) Describe() string {
	d := "s3://" + s.opts.Bucket + "/" + s.opts.Prefix
	if s.opts.Endpoint != "" {
		d += " at " + s.opts.Endpoint
	}
	return d
}

// Key is the object key of a blob.
func (s *Store) Key(sha string) string {
	return s.opts.Prefix + "blobs/sha256/" + sha[:2] + "/" + sha
}

// Get opens the blob's object and returns its body and size. The body is
// not checked: the caller hashes it and reports a mismatch with Rejected.
// A body read that stalls for Options.Timeout fails. When the bucket does
// not hold the blob, Get claims its fill for this replica (a small lease
// object written with If-None-Match: *): the caller fills it from the
// upstream and uploads it. When another replica holds a fresh claim, Get
// waits up to Options.Wait for that replica's upload before it gives up, so
// that replicas missing the same file at the same moment fetch it from the
// upstream once. Errors: [ErrNotFound], [ErrSkipped] (breaker open), or the
// request's failure; each is counted.
func (s *Store) Get(ctx context.Context, sha string) (io.ReadCloser, int64, error) {
	if !validSHA(sha) {
		return nil, 0, fmt.Errorf("shared store: invalid sha256 %q", sha)
	}
	if !s.breaker.allow() {
		s.m.lookup("skipped")
		return nil, 0, ErrSkipped
	}
	body, size, err := s.getObject(ctx, sha)
	switch {
	case err == nil:
		s.m.lookup("hit")
		return body, size, nil
	case !errors.Is(err, ErrNotFound):
		s.m.lookup("error")
		return nil, 0, err
	}
	if body, size, ok := s.awaitOtherFill(ctx, sha); ok {
		s.m.lookup("waited")
		return body, size, nil
	}
	s.m.lookup("miss")
	return nil, 0, ErrNotFound
}

// getObject GETs the blob's object: [ErrNotFound], a counted failure, or
// its body (behind an idleReader) and size (-1 unknown).
func (s *Store) getObject(parent context.Context, sha string) (io.ReadCloser, int64, error) {
	ctx, cancel := context.WithCancel(parent)
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.opts.Bucket, Key: aws.String(s.Key(sha))})
	if err != nil {
		cancel()
		if isNotFound(err) {
			s.breaker.success()
			return nil, 0, ErrNotFound
		}
		s.failed(parent, "get", err)
		return nil, 0, fmt.Errorf("shared store: GET %s: %w", s.Key(sha), err)
	}
	s.breaker.success()
	size := aws.ToInt64(out.ContentLength)
	if out.ContentLength == nil {
		size = -1
	}
	return newIdleReader(parent, out.Body, cancel, s.opts.Timeout, s.bodyFailed, func(n int) { s.m.readBytes.Add(float64(n)) }), size, nil
}

// claimKey is the lease of a blob's fill: <prefix>fills/ab/<sha256>.
func (s *Store) claimKey(sha string) string {
	return s.opts.Prefix + "fills/" + sha[:2] + "/" + sha
}

// staleClaim is the age past which another replica's claim is taken over
// (it stopped, or its fill failed, without uploading).
const staleClaim = time.Minute

// awaitOtherFill claims the fill of a blob the bucket lacks; when another
// replica holds a fresh claim it polls for that replica's upload for up to
// Options.Wait and returns the object once it is there. ok is false when
// this replica is to fill it (claimed, timed out, or the bucket failed).
func (s *Store) awaitOtherFill(ctx context.Context, sha string) (io.ReadCloser, int64, bool) {
	if s.opts.Wait <= 0 || s.noConditional.Load() {
		return nil, 0, false
	}
	if s.claim(ctx, sha) {
		// The claim may be ours only because another replica finished its
		// fill (upload, then claim deleted) between our miss and our claim:
		// look once more before this replica fetches the blob too.
		body, size, err := s.getObject(ctx, sha)
		if err != nil {
			return nil, 0, false
		}
		s.releaseClaim(ctx, sha)
		return body, size, true
	}
	s.m.waits.Inc()
	deadline := time.Now().Add(s.opts.Wait)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return nil, 0, false
		case <-time.After(claimPoll):
		}
		body, size, err := s.getObject(ctx, sha)
		switch {
		case err == nil:
			return body, size, true
		case !errors.Is(err, ErrNotFound):
			return nil, 0, false
		}
	}
	s.log.Info("another replica's fill did not reach the shared store in time; fetching from the upstream too",
		"sha256", sha, "waited", s.opts.Wait)
	return nil, 0, false
}

// claimPoll is how often a waiting lookup asks for the other replica's
// upload.
const claimPoll = 100 * time.Millisecond

// claim writes the blob's lease with If-None-Match: *; true when this
// replica holds it (written, taken over from a stale claim, or the bucket
// failed: then nobody coordinates and this replica fills).
func (s *Store) claim(ctx context.Context, sha string) bool {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	key := aws.String(s.claimKey(sha))
	put := func(cond bool) error {
		in := &s3.PutObjectInput{Bucket: &s.opts.Bucket, Key: key, Body: strings.NewReader(""), ContentLength: aws.Int64(0)}
		if cond {
			in.IfNoneMatch = aws.String("*")
		}
		_, err := s.client.PutObject(ctx, in)
		return err
	}
	if s.ownClaim(sha) {
		return true // a fill of ours that did not reach the bucket: no one to wait for
	}
	err := put(true)
	if err == nil {
		s.noteClaim(sha)
		return true
	}
	if isNotImplemented(err) {
		if !s.noConditional.Swap(true) {
			s.log.Warn("the shared store does not implement conditional writes (If-None-Match); fills are not coordinated", "store", s.Describe(), "err", err)
		}
		return true
	}
	if !isConflict(err) {
		s.failed(ctx, "put", err)
		return true
	}
	head, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.opts.Bucket, Key: key})
	if err != nil || head.LastModified == nil || time.Since(*head.LastModified) > staleClaim {
		// Gone in between, or stale: take it over.
		if err := put(false); err != nil {
			s.failed(ctx, "put", err)
		}
		s.noteClaim(sha)
		return true
	}
	return false
}

// releaseClaim deletes this replica's claim of sha's fill once the blob is
// in the bucket, so that the prefix holds blobs alone. It needs
// s3:DeleteObject; without it (or on any error) the claim stays, harmless
// (a later miss finds it stale), and lifecycle rules remove it.
func (s *Store) releaseClaim(ctx context.Context, sha string) {
	s.mu.Lock()
	_, ours := s.claims[sha]
	delete(s.claims, sha)
	s.mu.Unlock()
	if !ours {
		return
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.opts.Bucket, Key: aws.String(s.claimKey(sha))}); err != nil {
		s.log.Debug("shared store: removing a fill claim failed (lifecycle rules remove it)", "key", s.claimKey(sha), "err", err)
	}
}

// ownClaim reports whether this replica claimed sha's fill less than
// staleClaim ago.
func (s *Store) ownClaim(sha string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.claims[sha]
	return ok && time.Since(at) < staleClaim
}

// noteClaim remembers a claim of this replica; the memory is bounded (the
// stale ones go first, then all).
func (s *Store) noteClaim(sha string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.claims) >= 4096 {
		for k, at := range s.claims {
			if time.Since(at) >= staleClaim {
				delete(s.claims, k)
			}
		}
		if len(s.claims) >= 4096 {
			clear(s.claims)
		}
	}
	s.claims[sha] = time.Now()
}

// bodyFailed counts a body read that broke off (not one the caller ended).
func (s *Store) bodyFailed(err error) {
	s.m.errors.WithLabelValues("get").Inc()
	s.breaker.failure(err)
	s.log.Warn("reading a blob from the shared store failed", "err", err)
}

// Rejected records that the object of sha did not match its digest or
// size (reason "digest" or "size"): it is counted, and the next Upload of
// sha replaces it.
func (s *Store) Rejected(sha, reason, detail string) {
	s.m.rejected.WithLabelValues(reason).Inc()
	s.log.Error("shared store object does not match its sha256: not served, fetched from the upstream and replaced",
		"key", s.Key(sha), "reason", reason, "detail", detail)
	s.mu.Lock()
	if len(s.rejected) < 4096 {
		s.rejected[sha] = true
	}
	s.mu.Unlock()
}

// Upload queues a committed local blob for upload and returns at once.
// An upload already queued is not queued twice; with the queue full it is
// dropped (and counted): the next fill of the blob on any replica stores it.
func (s *Store) Upload(sha string) {
	if !validSHA(sha) {
		return
	}
	s.mu.Lock()
	if s.closed || s.pending[sha] {
		s.mu.Unlock()
		return
	}
	select {
	case s.queue <- sha:
		s.pending[sha] = true
	default:
		s.m.upload("dropped")
	}
	s.mu.Unlock()
}

func (s *Store) uploader() {
	defer s.uploaders.Done()
	for sha := range s.queue {
		if s.base.Err() != nil {
			s.m.upload("dropped") // closing, past the drain time
		} else {
			s.upload(sha)
		}
		s.mu.Lock()
		delete(s.pending, sha)
		s.mu.Unlock()
	}
}

// upload stores one blob: skipped while the breaker is open, left alone
// when the object exists (unless it was rejected), else written with
// If-None-Match: * so that of several replicas exactly one stores it.
func (s *Store) upload(sha string) {
	if !s.breaker.allow() {
		s.m.upload("skipped")
		return
	}
	f, size, closeFn, err := s.opts.Open(sha)
	if err != nil {
		// Evicted locally before its turn: another fill uploads it.
		s.log.Info("shared store upload: the local blob is gone", "sha256", sha, "err", err)
		s.m.upload("gone")
		return
	}
	defer closeFn()
	s.mu.Lock()
	replace := s.rejected[sha]
	s.mu.Unlock()
	// Bounded by the bytes at 1 MiB/s at least, the timeout at most.
	ctx, cancel := context.WithTimeout(s.base, s.opts.Timeout+time.Duration(size>>20)*time.Second)
	defer cancel()
	if !replace {
		switch exists, err := s.exists(ctx, sha); {
		case err != nil:
			s.failed(ctx, "head", err)
			s.m.upload("error")
			return
		case exists:
			s.breaker.success()
			s.m.upload("exists")
			s.releaseClaim(ctx, sha)
			return
		}
	}
	write := func(unconditional bool) error {
		if size >= s.opts.MultipartAbove {
			return s.putMultipart(ctx, sha, f, size, unconditional)
		}
		return s.put(ctx, sha, f, size, unconditional)
	}
	err = write(replace || s.noConditional.Load())
	if err != nil && !replace && isNotImplemented(err) {
		// A server without conditional writes: the HEAD above is all
		// the coordination left (two replicas may both write the same
		// bytes), and fills are not claimed.
		if !s.noConditional.Swap(true) {
			s.log.Warn("the shared store does not implement conditional writes (If-None-Match); writing unconditionally", "store", s.Describe(), "err", err)
		}
		err = write(true)
	}
	switch {
	case err == nil:
		s.breaker.success()
		s.m.uploadedBytes.Add(float64(size))
		if replace {
			s.mu.Lock()
			delete(s.rejected, sha)
			s.mu.Unlock()
			s.m.upload("replaced")
			s.log.Info("shared store object replaced with the verified blob", "key", s.Key(sha))
		} else {
			s.m.upload("stored")
		}
		s.releaseClaim(ctx, sha)
	case isConflict(err):
		// Another replica stored it between our HEAD and our write.
		s.breaker.success()
		s.m.upload("conflict")
		s.releaseClaim(ctx, sha)
	default:
		s.failed(ctx, "put", err)
		s.m.upload("error")
	}
}

// exists reports whether the bucket holds the blob's object.
func (s *Store) exists(ctx context.Context, sha string) (bool, error) {
	_, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.opts.Bucket, Key: aws.String(s.Key(sha))})
	if err == nil {
		return true, nil
	}
	if isNotFound(err) {
		return false, nil
	}
	return false, err
}

// uploadRetries: an upload is background work; the SDK's standard retries
// (with backoff) are fine there.
func uploadRetries(o *s3.Options) { o.Retryer = retry.NewStandard() }

func (s *Store) put(ctx context.Context, sha string, f io.ReaderAt, size int64, replace bool) error {
	in := &s3.PutObjectInput{
		Bucket: &s.opts.Bucket, Key: aws.String(s.Key(sha)),
		Body: io.NewSectionReader(f, 0, size), ContentLength: aws.Int64(size),
		ContentType: aws.String("application/octet-stream"),
	}
	if !replace {
		in.IfNoneMatch = aws.String("*")
	}
	_, err := s.client.PutObject(ctx, in, uploadRetries)
	return err
}

// putMultipart uploads in parts; the condition is on the complete, so
// parts uploaded by two replicas at once end in one object. A failed
// upload is aborted (lifecycle rules clean up what an abort misses).
func (s *Store) putMultipart(ctx context.Context, sha string, f io.ReaderAt, size int64, replace bool) error {
	key := aws.String(s.Key(sha))
	cr, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: &s.opts.Bucket, Key: key, ContentType: aws.String("application/octet-stream"),
	}, uploadRetries)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if ok {
			return
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.Timeout)
		defer cancel()
		if _, err := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: &s.opts.Bucket, Key: key, UploadId: cr.UploadId,
		}); err != nil {
			s.log.Warn("aborting a multipart upload failed (a lifecycle rule removes it)", "key", *key, "err", err)
		}
	}()
	var parts []types.CompletedPart
	for off, n := int64(0), int32(1); off < size; off, n = off+s.opts.PartSize, n+1 {
		l := min(s.opts.PartSize, size-off)
		up, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket: &s.opts.Bucket, Key: key, UploadId: cr.UploadId, PartNumber: aws.Int32(n),
			Body: io.NewSectionReader(f, off, l), ContentLength: aws.Int64(l),
		}, uploadRetries)
		if err != nil {
			return err
		}
		parts = append(parts, types.CompletedPart{ETag: up.ETag, PartNumber: aws.Int32(n)})
	}
	in := &s3.CompleteMultipartUploadInput{
		Bucket: &s.opts.Bucket, Key: key, UploadId: cr.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}
	if !replace {
		in.IfNoneMatch = aws.String("*")
	}
	if _, err := s.client.CompleteMultipartUpload(ctx, in, uploadRetries); err != nil {
		return err
	}
	ok = true
	return nil
}

// failed counts a failed request towards the breaker, unless it failed
// because its caller's context ended (a client that left says nothing about
// the bucket).
func (s *Store) failed(ctx context.Context, op string, err error) {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return
	}
	s.m.errors.WithLabelValues(op).Inc()
	s.breaker.failure(err)
	s.log.Warn("shared store request failed", "op", op, "err", err)
}

// probeKey is asked for while the breaker is open: a 404 (or the object)
// shows the bucket answers.
func (s *Store) probeKey() string { return s.opts.Prefix + "blobs/sha256/probe" }

// Probe asks the bucket for a key that does not exist; nil when it
// answers (404). serve logs the result at start.
func (s *Store) Probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	_, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.opts.Bucket, Key: aws.String(s.probeKey())})
	if err == nil || isNotFound(err) {
		return nil
	}
	return err
}

// probeLoop runs while the breaker is open: every cooldown it probes the
// bucket, and closes the breaker once it answers.
func (s *Store) probeLoop() {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			select {
			case <-s.base.Done():
				return
			case <-time.After(s.breaker.cooldown):
			}
			err := s.Probe(s.base)
			if s.base.Err() != nil {
				return
			}
			if err == nil {
				s.breaker.success()
				s.log.Info("shared store answers again", "store", s.Describe())
				return
			}
			s.m.errors.WithLabelValues("probe").Inc()
			s.breaker.probeFailed(err)
		}
	}()
}

// Health reports whether the bucket is in use, and when it is not, why
// (for /readyz and the status page): the replica serves on without it.
func (s *Store) Health() (up bool, detail string) {
	st := s.breaker.state()
	if !st.open {
		return true, "shared store " + s.Describe() + ": up"
	}
	return false, fmt.Sprintf("shared store %s: down since %s (%s), skipped; serving from local disk and the upstream",
		s.Describe(), st.since.UTC().Format(time.RFC3339), st.lastErr)
}

// Close lets the uploaders finish the queue for up to Options.Drain, then
// cancels what is left (dropped, counted), stops the prober and waits for
// both.
func (s *Store) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.queue) // under mu: Upload never sends after this
	s.mu.Unlock()
	drained := make(chan struct{})
	go func() { s.uploaders.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(s.opts.Drain):
		s.log.Warn("shared store: uploads still queued at shutdown are dropped", "queued", len(s.queue))
	}
	s.cancel()
	<-drained
	s.wg.Wait()
}

func isNotFound(err error) bool {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound {
		return true
	}
	var nk *types.NoSuchKey
	var nf *types.NotFound
	return errors.As(err, &nk) || errors.As(err, &nf)
}

// isConflict: the write's If-None-Match failed (412), or a concurrent
// conditional write to the same key won (409).
func isConflict(err error) bool {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		if c := re.HTTPStatusCode(); c == http.StatusPreconditionFailed || c == http.StatusConflict {
			return true
		}
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "PreconditionFailed", "ConditionalRequestConflict":
			return true
		}
	}
	return false
}

// isNotImplemented: the server does not implement a header of the request
// (501, or the NotImplemented code).
func isNotImplemented(err error) bool {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotImplemented {
		return true
	}
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "NotImplemented"
}

func validSHA(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
