package gate

import (
	"bytes"
	"testing"

	"github.com/pipgate/pipgate/pypi"
)

func TestByteLRU(t *testing.T) {
	c := newByteLRU[string, int](100)
	c.add("a", 1, 40)
	c.add("b", 2, 40)
	if _, ok := c.get("a"); !ok { // a is now the most recent
		t.Fatal("a missing")
	}
	c.add("c", 3, 40) // evicts b, the least recently used
	if _, ok := c.get("b"); ok {
		t.Error("b kept; want it evicted")
	}
	if _, ok := c.get("a"); !ok {
		t.Error("a evicted; want b evicted")
	}
	if c.size != 80 || c.len() != 2 {
		t.Errorf("size %d, %d entries; want 80, 2", c.size, c.len())
	}
	if c.add("huge", 4, 101) {
		t.Error("an entry over the bound was stored")
	}
	c.add("a", 5, 10) // replacing an entry replaces its size
	if v, _ := c.get("a"); v != 5 || c.size != 50 {
		t.Errorf("a = %d, size %d; want 5, 50", v, c.size)
	}
	c.remove("a")
	c.remove("c")
	if c.size != 0 || c.len() != 0 || c.ll.Len() != 0 {
		t.Errorf("after removing all: size %d, %d entries", c.size, c.len())
	}
}

func TestRenderedOriginEscaping(t *testing.T) {
	rp := &RenderedPage{}
	rp.body, rp.holes = cutHoles([]byte(`<a data-provenance="PH/integrity/x">PH</a>`), "PH")
	var b bytes.Buffer
	origin := `http://a&b'c.example`
	if err := rp.WriteTo(&b, pypi.ContentTypeHTML, origin); err != nil {
		t.Fatal(err)
	}
	want := `<a data-provenance="http://a&amp;b&#39;c.example/integrity/x">http://a&amp;b&#39;c.example</a>`
	if b.String() != want || rp.Size(pypi.ContentTypeHTML, origin) != len(want) {
		t.Errorf("HTML: %q (size %d); want %q", b.String(), rp.Size(pypi.ContentTypeHTML, origin), want)
	}
	b.Reset()
	if err := rp.WriteTo(&b, pypi.ContentTypeV1JSON, `http://x"\`); err != nil {
		t.Fatal(err)
	}
	if want := `<a data-provenance="http://x\"\\/integrity/x">http://x\"\\</a>`; b.String() != want {
		t.Errorf("JSON: %q; want %q", b.String(), want)
	}
}
