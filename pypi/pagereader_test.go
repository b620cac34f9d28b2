package pypi

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// zeros reads n zero bytes.
type zeros struct{ n int64 }

func (z *zeros) Read(b []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(b)), z.n))
	clear(b[:n])
	z.n -= int64(n)
	return n, nil
}

// TestPageReaderLimit: the streaming parsers' reader gives exactly
// MaxPageBytes and refuses the byte after, with an error naming the limit.
func TestPageReaderLimit(t *testing.T) {
	n, err := io.Copy(io.Discard, &pageReader{r: &zeros{MaxPageBytes}})
	if n != MaxPageBytes || err != nil {
		t.Errorf("exactly the limit: %d bytes, %v", n, err)
	}
	n, err = io.Copy(io.Discard, &pageReader{r: &zeros{MaxPageBytes + 1}})
	if !errors.Is(err, ErrPageTooLarge) || !strings.Contains(err.Error(), "64 MiB") || n > MaxPageBytes+1 {
		t.Errorf("one byte over: %d bytes, %v; want ErrPageTooLarge naming the limit", n, err)
	}
}

// overLimit reads body, then fails as pageReader does past the limit.
type overLimit struct{ r io.Reader }

func (o overLimit) Read(b []byte) (int, error) {
	n, err := o.r.Read(b)
	if errors.Is(err, io.EOF) {
		return n, errPageBytes
	}
	return n, err
}

// TestParsersStopAtTheLimit: both streaming parsers stop at the reader's
// limit error and return it as it is, whatever they were reading then.
func TestParsersStopAtTheLimit(t *testing.T) {
	for _, body := range []string{``, `{"name":"a","files":[{"filename":"a-1.zip"`, `{"name":"a","files":[],"x":"abc`} {
		_, err := parseProjectJSON(overLimit{strings.NewReader(body)}, nil, defaultPageLimits)
		if !errors.Is(err, errPageBytes) {
			t.Errorf("JSON %q then the limit: %v; want the limit's error", body, err)
		}
	}
	for _, body := range []string{``, `<a href="a-1.zip">`, `<!-- a comment`, `<a href="a-1`} {
		_, err := ParseProjectHTMLFrom(overLimit{strings.NewReader(body)}, nil)
		if !errors.Is(err, ErrPageTooLarge) || !strings.Contains(err.Error(), "64 MiB") {
			t.Errorf("HTML %q then the limit: %v; want the limit's error", body, err)
		}
	}
}
