package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/pipgate/pipgate/cache"
)

// adminSocket is the Unix socket in the data directory on which a running
// 'pipgate serve' answers the commands that cannot open the database while
// it holds the lock ('pipgate cache stats'). The data directory is 0700, so
// only its owner reaches it.
const adminSocket = "pipgate.sock"

// maxSocketPath is the longest path a Unix socket address takes (sun_path).
const maxSocketPath = 107

// decisionSource reads the decision history of a project ("" for all),
// including what the server has not written yet: proxy.Server.DecisionHistory.
type decisionSource func(project string) ([]cache.Decision, error)

// adminHandler serves GET /cache/stats, GET /decisions?project=NAME (the
// decision history; without project, every project's) and GET /records
// (the continuity records kept, by project).
func adminHandler(store *cache.Store, maxBlobBytes int64, decisions decisionSource) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /decisions", func(w http.ResponseWriter, r *http.Request) {
		rows, err := decisions(r.URL.Query().Get("project"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(rows)
	})
	mux.HandleFunc("GET /records", func(w http.ResponseWriter, _ *http.Request) {
		recs, err := store.Records()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(recs)
	})
	mux.HandleFunc("GET /cache/stats", func(w http.ResponseWriter, _ *http.Request) {
		st, err := storeStats(store)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		st.Source, st.MaxBlobBytes = "server", maxBlobBytes
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	})
	return mux
}

// listenAdmin listens on DIR/pipgate.sock, replacing a stale socket left by
// a crash (the database lock says no other server runs here). It returns
// nil, nil (and logs why) when the socket cannot be bound for its path's
// length (see [adminAddr]).
func listenAdmin(dir string, logger *slog.Logger) (net.Listener, error) {
	p := filepath.Join(dir, adminSocket)
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	addr, done, err := adminAddr(dir)
	if err != nil {
		logger.Warn("no admin socket: 'pipgate cache stats', 'status', 'report' and 'policy suggest|test' need the server stopped (or a shorter data_dir)",
			"path", p, "err", err)
		return nil, nil
	}
	ln, err := net.Listen("unix", addr)
	done()
	if err != nil {
		if addr != p {
			logger.Warn("no admin socket: 'pipgate cache stats', 'status', 'report' and 'policy suggest|test' need the server stopped (or a shorter data_dir)",
				"path", p, "bytes", len(p), "max", maxSocketPath, "err", err)
			return nil, nil
		}
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	// net.UnixListener would unlink the address it was bound with on
	// Close: for /proc/self/fd/N/... that is whatever N is by then.
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	if err := os.Chmod(p, 0o600); err != nil {
		_ = ln.Close()
		_ = os.Remove(p)
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	return &adminListener{UnixListener: ul, path: p}, nil
}

// adminListener is the admin socket's listener, named by its path in the
// data directory (whatever address it was bound with), and removed from
// there once closed.
type adminListener struct {
	*net.UnixListener
	path string
}

func (l *adminListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

func (l *adminListener) Close() error {
	err := l.UnixListener.Close()
	if rerr := os.Remove(l.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
		err = rerr
	}
	return err
}

// adminAddr is the address that binds or reaches DIR/pipgate.sock: the path
// itself when it fits a Unix socket address (sun_path, 107 bytes). A longer
// one is reached through a descriptor of the directory,
// /proc/self/fd/N/pipgate.sock (Linux): the same socket file in the same
// directory, under the same 0700, for a data_dir of any length, with nothing
// placed elsewhere (a socket under /tmp or $XDG_RUNTIME_DIR keyed by a hash
// of the path would need its own directory, ownership checks and cleanup,
// and the same hash from every spelling of the path). done closes the
// descriptor: call it once bind or connect returned.
func adminAddr(dir string) (addr string, done func(), err error) {
	p := filepath.Join(dir, adminSocket)
	if len(p) <= maxSocketPath {
		return p, func() {}, nil
	}
	if runtime.GOOS != "linux" {
		return "", nil, fmt.Errorf("%s is %d bytes, longer than a Unix socket path may be (%d)", p, len(p), maxSocketPath)
	}
	d, err := os.Open(dir)
	if err != nil {
		return "", nil, err
	}
	return "/proc/self/fd/" + strconv.Itoa(int(d.Fd())) + "/" + adminSocket, func() { _ = d.Close() }, nil
}

// openForCommand opens the database in opts.Dir for a command ('pipgate
// status', 'cache', 'policy suggest|test', 'report'). A running server
// holds the database's lock for as long as it runs and answers on the admin
// socket, and the command then asks it: so when the lock is taken at the
// first try and a server accepts a connection on the socket, cache.ErrLocked
// is returned at once, not after the second of lock retries (bbolt's
// Timeout) it would have waited for nothing. With no server listening, the
// holder may be a command that is about to finish: the open waits for the
// lock as before.
func openForCommand(opts cache.Options) (*cache.Store, error) {
	once := opts
	once.Timeout = time.Nanosecond // bbolt tries the lock once, then gives up
	s, err := cache.Open(once)
	if !errors.Is(err, cache.ErrLocked) || serverListening(opts.Dir) {
		return s, err
	}
	return cache.Open(opts)
}

// serverListening reports whether a server accepts connections on dir's
// admin socket.
func serverListening(dir string) bool {
	addr, done, err := adminAddr(dir)
	if err != nil {
		return false
	}
	defer done()
	c, err := net.DialTimeout("unix", addr, time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// statsFromServer asks the server running on dir for its cache stats.
func statsFromServer(dir string) (dirStats, error) {
	var st dirStats
	if err := adminGet(dir, "/cache/stats", 1<<20, &st); err != nil {
		return dirStats{}, err
	}
	return st, nil
}

// decisionsFromServer asks the server running on dir for the decision
// history of project ("" for all).
func decisionsFromServer(dir, project string) ([]cache.Decision, error) {
	var rows []cache.Decision
	if err := adminGet(dir, "/decisions?project="+url.QueryEscape(project), 256<<20, &rows); err != nil {
		return nil, err
	}
	return rows, nil
}

// adminGet gets path from the admin socket in dir and decodes the JSON
// answer (at most limit bytes) into v.
func adminGet(dir, path string, limit int64, v any) error {
	p := filepath.Join(dir, adminSocket)
	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			addr, done, err := adminAddr(dir)
			if err != nil {
				return nil, fmt.Errorf("the running server has no admin socket: %w; stop the server to read its database, or give it a shorter data_dir", err)
			}
			defer done()
			var d net.Dialer
			return d.DialContext(ctx, "unix", addr)
		}},
	}
	resp, err := client.Get("http://pipgate" + path) //nolint:gosec // G704: the host is our own Unix socket (the dialer ignores it); path is one of our routes
	if err != nil {
		return fmt.Errorf("no server answers on %s: %w", p, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return err
	}
	if int64(len(body)) > limit {
		return fmt.Errorf("the server's answer exceeds %d bytes", limit)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("reading the server's answer: %w", err)
	}
	return nil
}

// recordsFromServer asks the server running on dir for the continuity
// records it kept.
func recordsFromServer(dir string) (map[string]cache.HistoryRecord, error) {
	var recs map[string]cache.HistoryRecord
	if err := adminGet(dir, "/records", 64<<20, &recs); err != nil {
		return nil, err
	}
	return recs, nil
}
