// Package s3test runs a real S3-compatible server for tests: versitygw
// (github.com/versity/versitygw, v1.8.0, installed by .ci/run) on a free
// port over a temporary folder, one per test, killed when the test ends.
//
// The binary is found on PATH or in $(go env GOPATH)/bin. Without it a test
// skips, saying how to install it; under CI (CI=true) it fails instead.
package s3test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pipgate/pipgate/internal/fixtures"
	"github.com/pipgate/pipgate/internal/testbin"
)

// Version is the versitygw release the tests run against.
const Version = "v1.8.0"

// Install is the command that installs it.
const Install = "go install github.com/versity/versitygw/cmd/versitygw@" + Version

// Server is a running versitygw with one bucket.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	Bucket    string
	AccessKey string
	SecretKey string
	Dir       string // the posix backend's root: Dir/<bucket>/<key>

	t    testing.TB
	bin  string
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

// Binary returns the versitygw binary, or skips the test (fails it under
// CI) when it is not installed.
func Binary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	var tried []string
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		for i, l := range lines {
			l = strings.TrimSpace(l)
			if l == "" {
				continue
			}
			dir := l
			if i == 1 {
				dir = filepath.Join(strings.Split(l, string(os.PathListSeparator))[0], "bin")
			}
			p := filepath.Join(dir, "versitygw")
			tried = append(tried, p)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				return p
			}
		}
	}
	msg := fmt.Sprintf("versitygw not found on PATH nor at %v; install it with: %s", tried, Install)
	if fixtures.CI() {
		t.Fatalf("real S3 server missing under CI=true: %s", msg)
	}
	t.Skipf("skipping: %s (outside CI a missing S3 server skips; CI=true fails)", msg)
	return ""
}

// Start runs versitygw on a free port over a new temporary folder with a
// bucket named "pipgate", and kills it (its whole process group) when the
// test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{ //nolint:gosec // G101: the throwaway root key of a test server on loopback
		Bucket: "pipgate", AccessKey: "pipgate-test", SecretKey: "pipgate-test-secret-key",
		Dir: t.TempDir(), t: t, bin: Binary(t),
	}
	var err error
	for range 3 { // a free port can be taken between the probe and the start
		s.addr = freeAddr(t)
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	s.Endpoint = "http://" + s.addr
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.Bucket)}); err != nil {
		t.Fatalf("versitygw: creating bucket: %v", err)
	}
	return s
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// start starts the process and waits until it answers HTTP on its port.
func (s *Server) start() error {
	cmd := testbin.Command(context.Background(), s.t, s.bin, "--port", s.addr, "posix", s.Dir)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+s.AccessKey, "ROOT_SECRET_ACCESS_KEY="+s.SecretKey)
	log, err := os.Create(filepath.Join(s.t.TempDir(), "versitygw.log"))
	if err != nil {
		return err
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting versitygw: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			b, _ := os.ReadFile(log.Name())
			return fmt.Errorf("versitygw exited at start: %s", strings.TrimSpace(string(b)))
		default:
		}
		resp, err := http.Get("http://" + s.addr + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Kill()
	return errors.New("versitygw did not answer within a minute")
}

// Kill stops the server at once (SIGKILL to its process group) and waits
// for it to exit; its data stays for Restart.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	_ = testbin.KillGroup(s.cmd)
	<-s.done
	s.cmd = nil
}

// Restart starts the server again on the same port and folder.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	if err := s.start(); err != nil {
		s.t.Fatal(err)
	}
}

// Env is the environment a pipgate process needs to reach the server
// through the standard AWS chain.
func (s *Server) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + s.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true"}
}

// Credentials are the server's root credentials.
func (s *Server) Credentials() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, "")
}

// Client is an S3 client of the server, for tests to look at or tamper
// with the bucket.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String("http://" + s.addr), UsePathStyle: true,
		Credentials:                s.Credentials(),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}
