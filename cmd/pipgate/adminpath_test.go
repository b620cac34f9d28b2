package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAdminSocketLongDataDir: a data directory whose DIR/pipgate.sock is
// longer than a Unix socket address may be still gets its admin socket
// there (0600, named by that path), and the reading commands reach the
// running server through it; closing the listener removes that socket and
// nothing else.
func TestAdminSocketLongDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", maxSocketPath))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, adminSocket)
	if len(sock) <= maxSocketPath {
		t.Fatalf("%s: %d bytes; the test wants more than %d", sock, len(sock), maxSocketPath)
	}
	// No server yet: the reading command says none answers on that path.
	var v any
	if err := adminGet(dir, "/cache/stats", 1<<10, &v); err == nil || !strings.Contains(err.Error(), "no server answers on "+sock) {
		t.Errorf("adminGet with no server: %v; want 'no server answers on %s'", err, sock)
	}

	ln, stop := serveAdminSeeded(t, dir) // the running server: its store locked
	defer stop()
	if ln.Addr().String() != sock {
		t.Errorf("listener address %q; want %q (what the log prints)", ln.Addr(), sock)
	}
	if fi, err := os.Lstat(sock); err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, %v; want a socket, mode 0600", sock, fi, err)
	}
	// The adversary's second step: a directory opened after the bind takes
	// the descriptor number the bind used; its pipgate.sock must survive
	// the listener's Close.
	decoy := t.TempDir()
	decoySock := filepath.Join(decoy, adminSocket)
	if err := os.WriteFile(decoySock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := os.Open(decoy)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	code, out, errOut := runStatusCmd(t, "demo", "--json", "--data-dir", dir)
	var rep statusReport
	if err := json.Unmarshal([]byte(out), &rep); code != 0 || err != nil || rep.Source != "server" || len(rep.Decisions) != 2 {
		t.Errorf("pipgate status with a long data_dir: exit %d, %v: %s%s; want the server's two rows", code, err, out, errOut)
	}
	code, out, errOut = runCacheCmd(t, "stats", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "read from              server") {
		t.Errorf("pipgate cache stats with a long data_dir: exit %d: %s%s; want it read from the server", code, out, errOut)
	}

	stop()
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("%s after Close: %v; want it removed", sock, err)
	}
	if _, err := os.Stat(decoySock); err != nil {
		t.Errorf("a pipgate.sock in another directory was removed by the admin listener's Close: %v", err)
	}
}
