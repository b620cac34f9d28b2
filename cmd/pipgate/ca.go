package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pipgate/pipgate/egress"
)

const caUsage = `usage: pipgate ca init --cert FILE --key FILE [--force] [--common-name NAME] [--days N]

Creates the ECDSA P-256 CA that egress mode signs per-host certificates with.
The certificate is written 0644, the private key 0600; neither is replaced
without --force.

flags:
`

// runCA runs 'pipgate ca': only 'init' for now.
func runCA(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		_, _ = fmt.Fprint(stderr, caUsage)
		printCAFlags(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, caUsage)
		printCAFlags(stdout)
		return 0
	case "init":
		return runCAInit(args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "pipgate ca: unknown subcommand %q (want init)\n", args[0])
		return 2
	}
}

// caInitFlags are the flags of 'pipgate ca init'.
type caInitFlags struct {
	cert, key, commonName string
	days                  int
	force                 bool
}

func caFlags(output io.Writer) (*flag.FlagSet, *caInitFlags) {
	f := &caInitFlags{}
	set := flag.NewFlagSet("pipgate ca init", flag.ContinueOnError)
	set.SetOutput(output)
	set.StringVar(&f.cert, "cert", "", "path of the CA certificate to write (PEM, mode 0644)")
	set.StringVar(&f.key, "key", "", "path of the CA private key to write (PEM PKCS#8, mode 0600)")
	set.StringVar(&f.commonName, "common-name", "pipgate egress CA", "subject common name of the CA")
	set.IntVar(&f.days, "days", 825, "validity of the CA in days")
	set.BoolVar(&f.force, "force", false, "replace existing files")
	return set, f
}

func printCAFlags(w io.Writer) {
	set, _ := caFlags(w)
	set.PrintDefaults()
}

func runCAInit(args []string, stdout, stderr io.Writer) int {
	set, f := caFlags(io.Discard)
	if err := set.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, caUsage)
			printCAFlags(stdout)
			return 0
		}
		fmt.Fprintf(stderr, "pipgate ca init: %v\n", err)
		fmt.Fprintln(stderr, "run 'pipgate ca init --help' for usage")
		return 2
	}
	var problems []string
	if set.NArg() > 0 {
		problems = append(problems, fmt.Sprintf("unexpected argument %q", set.Arg(0)))
	}
	if f.cert == "" {
		problems = append(problems, "--cert is required")
	}
	if f.key == "" {
		problems = append(problems, "--key is required")
	}
	if f.days <= 0 {
		problems = append(problems, "--days must be positive")
	}
	if strings.TrimSpace(f.commonName) == "" {
		problems = append(problems, "--common-name must not be empty")
	}
	if f.cert != "" && f.key != "" && filepath.Clean(f.cert) == filepath.Clean(f.key) {
		problems = append(problems, "--cert and --key must be different files")
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(stderr, "pipgate ca init: %s\n", p)
		}
		fmt.Fprintln(stderr, "run 'pipgate ca init --help' for usage")
		return 2
	}

	if !f.force {
		for _, p := range []string{f.cert, f.key} {
			if _, err := os.Lstat(p); err == nil {
				fmt.Fprintf(stderr, "pipgate ca init: %s already exists (use --force to replace it)\n", p)
				return 1
			}
		}
	}
	certPEM, keyPEM, err := egress.GenerateCA(f.commonName, time.Duration(f.days)*24*time.Hour)
	if err != nil {
		fmt.Fprintf(stderr, "pipgate ca init: %v\n", err)
		return 1
	}
	if err := writeCAPair(f.cert, certPEM, f.key, keyPEM, f.force); err != nil {
		fmt.Fprintf(stderr, "pipgate ca init: %v\n", err)
		return 1
	}
	ca, err := egress.LoadCA(f.cert, f.key)
	if err != nil {
		fmt.Fprintf(stderr, "pipgate ca init: reading back what was written: %v\n", err)
		return 1
	}
	certAbs, keyAbs := caAbs(f.cert), caAbs(f.key)
	sum := sha256.Sum256(ca.Leaf.Raw)
	fmt.Fprintf(stdout, "wrote CA certificate %s (mode 0644)\n", certAbs)
	fmt.Fprintf(stdout, "wrote CA private key %s (mode 0600): keep it secret, never copy it to clients\n", keyAbs)
	fmt.Fprintf(stdout, "subject %q, valid until %s, sha256 fingerprint %X\n\n",
		ca.Leaf.Subject.CommonName, ca.Leaf.NotAfter.UTC().Format(time.RFC3339), sum[:])
	fmt.Fprintf(stdout, `Configure pipgate:
  egress:
    listen: 127.0.0.1:3128
    ca_cert: %[1]s
    ca_key: %[2]s

Trust the certificate on clients (the key stays on the pipgate host):
  pip:  pip install --proxy http://PIPGATE:3128 --cert %[1]s PACKAGE
        or PIP_CERT=%[1]s with HTTPS_PROXY=http://PIPGATE:3128
        (or add it to the system store and use pip --use-feature=truststore)
  uv:   SSL_CERT_FILE=%[1]s with HTTPS_PROXY=http://PIPGATE:3128
        (or add it to the system store and set UV_NATIVE_TLS=1)
PIP_CERT, --cert and SSL_CERT_FILE replace the default roots: through the
egress proxy every package host is served under this CA, so that is enough.
Unset REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE for pip: they override --cert.
`, certAbs, keyAbs)
	return 0
}

func caAbs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// writeCAPair writes the key (0600) and then the certificate (0644), each to
// a temporary file in its target folder that is renamed into place (without
// force, hard-linked so an existing file is never replaced). If the
// certificate cannot be placed, a key written by this call without force is
// removed again.
func writeCAPair(certPath string, certPEM []byte, keyPath string, keyPEM []byte, force bool) error {
	if err := caWriteFile(keyPath, keyPEM, 0o600, force); err != nil {
		return fmt.Errorf("writing key: %w", err)
	}
	if err := caWriteFile(certPath, certPEM, 0o644, force); err != nil {
		if !force {
			_ = os.Remove(keyPath)
		}
		return fmt.Errorf("writing certificate: %w", err)
	}
	return nil
}

func caWriteFile(path string, data []byte, mode os.FileMode, force bool) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	defer func() {
		if tmp != nil {
			_ = tmp.Close()
		}
		_ = os.Remove(tmpName) // after a rename or link this removes only the temporary name
	}()
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		tmp = nil
		return err
	}
	tmp = nil
	if force {
		return os.Rename(tmpName, path)
	}
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists (use --force to replace it)", path)
		}
		return err
	}
	return nil
}
