// Command benchupstream is the fake upstream index of scripts/bench-serve.sh:
// one project, "bench", with a 100 KB and an 8 MB wheel, each attested by a
// fresh fake Sigstore (provenance/provenancetest), served on loopback only.
//
// It writes trusted_root.json (for pipgate's trust.trusted_root) and
// upstream.addr (host:port, written last: its presence means ready) into
// -dir, then serves until SIGINT or SIGTERM. File URLs are
// /files/bench/<filename>, the same path pipgate serves them under, so an
// nginx proxy_cache in front of this server can be asked for the same path.
//
// It also runs the floor of the comparison on a second listener (its
// address in floor.addr): a bare net/http server that opens the file from
// disk (-dir/floor/<filename>) and serves it with http.ServeContent
// (sendfile) at the same path, with no duty at all. What pipgate costs
// beyond it is pipgate's own; what it costs beyond nginx is Go's net/http.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/pipgate/pipgate/provenance/provenancetest"
	"github.com/pipgate/pipgate/pypi"
)

// Files are the bench files: name → size in bytes.
var files = []struct {
	name string
	size int
}{
	{"bench-1.0-py3-none-any.whl", 100 << 10},
	{"bench-2.0-py3-none-any.whl", 8 << 20},
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "benchupstream:", err)
		os.Exit(1)
	}
}

type file struct {
	content []byte
	prov    []byte
}

func run() error {
	dir := flag.String("dir", "", "folder for trusted_root.json and upstream.addr (required)")
	flag.Parse()
	if *dir == "" {
		return errors.New("-dir is required")
	}
	ss, err := provenancetest.NewSigstore()
	if err != nil {
		return err
	}
	ss.WriteTrustedRoot(*dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()

	rng := rand.New(rand.NewPCG(1, 2)) // the same bytes every run
	gh := provenancetest.GitHub("bench/bench", "release.yml")
	byName := map[string]file{}
	type jsonFile struct {
		Filename   string            `json:"filename"`
		URL        string            `json:"url"`
		Hashes     map[string]string `json:"hashes"`
		Size       int               `json:"size"`
		Provenance string            `json:"provenance"`
	}
	page := struct {
		Meta     map[string]string `json:"meta"`
		Name     string            `json:"name"`
		Files    []jsonFile        `json:"files"`
		Versions []string          `json:"versions"`
	}{Meta: map[string]string{"api-version": "1.1"}, Name: "bench", Versions: []string{"1.0", "2.0"}}
	for _, f := range files {
		content := make([]byte, f.size)
		for i := range content {
			content[i] = byte(rng.Uint32())
		}
		att, err := ss.Sign(f.name, content, gh)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(content)
		byName[f.name] = file{content: content, prov: ss.Provenance(gh.Recorded, att)}
		if err := os.MkdirAll(filepath.Join(*dir, "floor"), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(*dir, "floor", f.name), content, 0o644); err != nil {
			return err
		}
		page.Files = append(page.Files, jsonFile{
			Filename: f.name, URL: base + "/files/bench/" + f.name, Size: f.size,
			Hashes:     map[string]string{"sha256": hex.EncodeToString(sum[:])},
			Provenance: base + "/integrity/bench/" + f.name + "/provenance",
		})
	}
	pageJSON, err := json.Marshal(page)
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /simple/bench/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", pypi.ContentTypeV1JSON)
		_, _ = w.Write(pageJSON)
	})
	mux.HandleFunc("GET /files/bench/{name}", func(w http.ResponseWriter, r *http.Request) {
		f, ok := byName[r.PathValue("name")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.content))
	})
	mux.HandleFunc("GET /integrity/bench/{name}/provenance", func(w http.ResponseWriter, r *http.Request) {
		f, ok := byName[r.PathValue("name")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", pypi.ContentTypeIntegrity)
		_, _ = w.Write(f.prov)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	floorDir := filepath.Join(*dir, "floor")
	floorMux := http.NewServeMux()
	floorMux.HandleFunc("GET /files/bench/{name}", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := byName[r.PathValue("name")]; !ok {
			http.NotFound(w, r)
			return
		}
		f, err := os.Open(filepath.Join(floorDir, r.PathValue("name")))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", time.Time{}, f)
	})
	floorLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	floor := &http.Server{Handler: floorMux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = floor.Serve(floorLn) }()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
		_ = floor.Close()
	}()
	if err := os.WriteFile(filepath.Join(*dir, "floor.addr"), []byte(floorLn.Addr().String()), 0o644); err != nil {
		return err
	}
	// Written last, with a rename: its presence means everything is ready.
	tmp := filepath.Join(*dir, "upstream.addr.tmp")
	if err := os.WriteFile(tmp, []byte(ln.Addr().String()), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(*dir, "upstream.addr")); err != nil {
		return err
	}
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
