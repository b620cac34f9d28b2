package cache_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/pypi"
)

func TestFactsRoundTrip(t *testing.T) {
	s := openStore(t, "")
	id := &pypi.Identity{Kind: pypi.KindGitHub, Issuer: "https://token.actions.githubusercontent.com", Repository: "o/r", Workflow: "release.yml"}
	rec := &pypi.Publisher{Kind: pypi.KindGitHub, Repository: "o/r", Workflow: "release.yml"}
	cases := []struct {
		name string
		key  cache.FactKey
		f    pypi.Facts
	}{
		{"verified", cache.FactKey{Filename: "demo-1.0.tar.gz", FileSHA256: sumA, ProvenanceSHA256: sumB, TrustRootSHA256: sumC}, pypi.Facts{Verdict: pypi.VerdictVerified, Identity: id, Recorded: rec}},
		{"unattested", cache.FactKey{Filename: "demo-1.0.tar.gz", FileSHA256: sumA, TrustRootSHA256: sumC}, pypi.Facts{Verdict: pypi.VerdictUnattested}},
		{"invalid, other root", cache.FactKey{Filename: "demo-1.0.tar.gz", FileSHA256: sumA, ProvenanceSHA256: sumB, TrustRootSHA256: sumA}, pypi.Facts{Verdict: pypi.VerdictInvalid, Reason: "certificate", Detail: "chain"}},
		{"unsupported, no root", cache.FactKey{Filename: "demo-1.0.tar.gz", FileSHA256: sumB, ProvenanceSHA256: sumC}, pypi.Facts{Verdict: pypi.VerdictUnsupported, Reason: "rekor-v2"}},
	}
	before := time.Now().Add(-time.Second)
	for _, tc := range cases {
		if err := s.PutFacts(tc.key, tc.f); err != nil {
			t.Fatalf("%s: PutFacts: %v", tc.name, err)
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, at, err := s.Facts(tc.key)
			if err != nil {
				t.Fatalf("Facts: %v", err)
			}
			if !reflect.DeepEqual(got, tc.f) {
				t.Errorf("Facts: got %+v; want %+v", got, tc.f)
			}
			if at.Before(before) || at.After(time.Now()) {
				t.Errorf("recorded at %v: not now", at)
			}
		})
	}
	// Keys differ in each part: the same digests under another filename
	// (the PEP 740 name check is part of the verdict) are another key.
	for _, k := range []cache.FactKey{
		{Filename: "demo-1.0.tar.gz", FileSHA256: sumA, ProvenanceSHA256: sumB},
		{Filename: "evil-1.0.tar.gz", FileSHA256: sumA, ProvenanceSHA256: sumB, TrustRootSHA256: sumC},
		{Filename: "Demo-1.0.tar.gz", FileSHA256: sumA, ProvenanceSHA256: sumB, TrustRootSHA256: sumC},
	} {
		if _, _, err := s.Facts(k); !errors.Is(err, cache.ErrNotFound) {
			t.Errorf("Facts(%+v) of an unknown key: got %v; want ErrNotFound", k, err)
		}
	}
}

func TestPutFactsRefuses(t *testing.T) {
	s := openStore(t, "")
	good := cache.FactKey{Filename: "demo-1.0.tar.gz", FileSHA256: sumA}
	cases := []struct {
		name string
		key  cache.FactKey
		f    pypi.Facts
		want error
	}{
		{"error verdict", good, pypi.Facts{Verdict: pypi.VerdictError, Detail: "timeout"}, cache.ErrNotCacheable},
		{"policy verdict", good, pypi.Facts{Verdict: pypi.VerdictUntrustedPublisher}, cache.ErrNotCacheable},
		{"empty verdict", good, pypi.Facts{}, cache.ErrNotCacheable},
		{"no file digest", cache.FactKey{}, pypi.Facts{Verdict: pypi.VerdictVerified}, cache.ErrInvalidKey},
		{"upper-case digest", cache.FactKey{Filename: "demo-1.0.tar.gz", FileSHA256: strings.ToUpper(sumA)}, pypi.Facts{Verdict: pypi.VerdictVerified}, cache.ErrInvalidKey},
		{"short provenance digest", cache.FactKey{Filename: "demo-1.0.tar.gz", FileSHA256: sumA, ProvenanceSHA256: "abc"}, pypi.Facts{Verdict: pypi.VerdictVerified}, cache.ErrInvalidKey},
		{"no filename", cache.FactKey{FileSHA256: sumA}, pypi.Facts{Verdict: pypi.VerdictVerified}, cache.ErrInvalidKey},
		{"slash in filename", cache.FactKey{Filename: "a/demo-1.0.tar.gz", FileSHA256: sumA}, pypi.Facts{Verdict: pypi.VerdictVerified}, cache.ErrInvalidKey},
		{"newline in filename", cache.FactKey{Filename: "demo-1.0.tar.gz\n", FileSHA256: sumA}, pypi.Facts{Verdict: pypi.VerdictVerified}, cache.ErrInvalidKey},
		{"slash in root digest", cache.FactKey{Filename: "demo-1.0.tar.gz", FileSHA256: sumA, TrustRootSHA256: sumA[:63] + "/"}, pypi.Facts{Verdict: pypi.VerdictVerified}, cache.ErrInvalidKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.PutFacts(tc.key, tc.f); !errors.Is(err, tc.want) {
				t.Errorf("PutFacts: got %v; want %v", err, tc.want)
			}
		})
	}
	if _, _, err := s.Facts(good); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("refused facts were stored: Facts got %v; want ErrNotFound", err)
	}
}

func TestProvenance(t *testing.T) {
	s := openStore(t, "")
	body := []byte(`{"version":1,"attestation_bundles":[]}`)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const u = "https://pypi.org/integrity/x/1.0/x-1.0.tar.gz/provenance"
	if _, err := s.Provenance("default", u); !errors.Is(err, cache.ErrNotFound) {
		t.Fatalf("Provenance before Put: got %v; want ErrNotFound", err)
	}
	if err := s.PutProvenance("default", u, cache.ProvenanceEntry{Body: body, FetchedAt: at}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Provenance("default", u)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Body) != string(body) || got.SHA256 != sha(body) || !got.FetchedAt.Equal(at) || got.Absent {
		t.Errorf("Provenance: got %+v; want body %q, sha256 %s, fetched %v", got, body, sha(body), at)
	}

	const u2 = "https://pypi.org/integrity/x/1.0/x-1.0-py3-none-any.whl/provenance"
	if err := s.PutProvenance("default", u2, cache.ProvenanceEntry{Absent: true, FetchedAt: at}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Provenance("default", u2); err != nil || !got.Absent || got.Body != nil {
		t.Errorf("absent Provenance: got %+v, %v; want Absent and no body", got, err)
	}

	cases := []struct {
		name string
		url  string
		e    cache.ProvenanceEntry
	}{
		{"digest mismatch", u, cache.ProvenanceEntry{Body: body, SHA256: sumA}},
		{"absent with body", u, cache.ProvenanceEntry{Absent: true, Body: body}},
		{"empty url", "", cache.ProvenanceEntry{Body: body}},
		{"huge url", strings.Repeat("x", 9000), cache.ProvenanceEntry{Body: body}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.PutProvenance("default", tc.url, tc.e); err == nil {
				t.Error("PutProvenance: got nil error")
			}
		})
	}
	var de *cache.DigestError
	if err := s.PutProvenance("default", u, cache.ProvenanceEntry{Body: body, SHA256: sumA}); !errors.As(err, &de) || de.Want != sumA || de.Got != sha(body) {
		t.Errorf("mismatch: got %v; want DigestError{%s, %s}", err, sumA, sha(body))
	}
	if got, _ := s.Provenance("default", u); string(got.Body) != string(body) {
		t.Errorf("a refused Put changed the entry: got %q", got.Body)
	}
}

// fill sets every field reachable from v to a distinct non-zero value, so a
// round trip that drops or mangles any field of pypi.ProjectPage shows.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(int64(*n))
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fill(v.Index(i), n)
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, n)
		fill(e, n)
		v.SetMapIndex(k, e)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), n)
			}
		}
	default:
		panic("fill: unhandled kind " + v.Kind().String())
	}
}

func TestPageAndListRoundTrip(t *testing.T) {
	s := openStore(t, "")
	var page pypi.ProjectPage
	var list pypi.ProjectList
	n := 0
	fill(reflect.ValueOf(&page).Elem(), &n)
	fill(reflect.ValueOf(&list).Elem(), &n)
	page.Dropped, page.DroppedCount = nil, 0 // a parse-time report for the caller, never stored
	for i := range page.Files {              // Hashes has no exported field for fill to set
		page.Files[i].Hashes = pypi.MakeHashes(map[string]string{"sha256": strings.Repeat("ab", 32), "md5": "00"})
		page.Files[i].CoreMetadataHashes = pypi.MakeHashes(map[string]string{"sha256": strings.Repeat("cd", 32)})
	}
	at := time.Date(2026, 11, 22, 1, 2, 3, 4, time.UTC)

	if _, _, err := s.Page("default", "demo"); !errors.Is(err, cache.ErrNotFound) {
		t.Fatalf("Page before Put: got %v; want ErrNotFound", err)
	}
	if _, _, err := s.ProjectList(); !errors.Is(err, cache.ErrNotFound) {
		t.Fatalf("ProjectList before Put: got %v; want ErrNotFound", err)
	}
	if err := s.PutPage("default", "demo", &page, at); err != nil {
		t.Fatal(err)
	}
	if err := s.PutProjectList(&list, at); err != nil {
		t.Fatal(err)
	}
	gotPage, gotAt, err := s.Page("default", "demo")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*gotPage, page) || !gotAt.Equal(at) {
		t.Errorf("Page: got %+v at %v; want %+v at %v", *gotPage, gotAt, page, at)
	}
	gotList, gotAt, err := s.ProjectList()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*gotList, list) || !gotAt.Equal(at) {
		t.Errorf("ProjectList: got %+v at %v; want %+v at %v", *gotList, gotAt, list, at)
	}

	for _, name := range []string{"", "Demo", "demo_x", "demo.x", "-demo", "demo-", "de--mo", "../etc", "demo/x"} {
		if err := s.PutPage("default", name, &page, at); !errors.Is(err, cache.ErrInvalidKey) {
			t.Errorf("PutPage(%q): got %v; want ErrInvalidKey", name, err)
		}
	}
	if err := s.PutPage("default", "demo", nil, at); err == nil {
		t.Error("PutPage(nil): got nil error")
	}
	if err := s.PutProjectList(nil, at); err == nil {
		t.Error("PutProjectList(nil): got nil error")
	}
}

func TestRefs(t *testing.T) {
	s := openStore(t, "")
	name := "metadata:" + sumA
	if _, err := s.Ref(name); !errors.Is(err, cache.ErrNotFound) {
		t.Fatalf("Ref before Put: got %v; want ErrNotFound", err)
	}
	for _, want := range []string{sumB, sumC} {
		if err := s.PutRef(name, want); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Ref(name); err != nil || got != want {
			t.Errorf("Ref: got %q, %v; want %q", got, err, want)
		}
	}
	cases := []struct{ name, sum string }{
		{"", sumA},
		{strings.Repeat("n", 2000), sumA},
		{"ok", "not-hex"},
		{"ok", strings.ToUpper(sumA)},
	}
	for _, tc := range cases {
		if err := s.PutRef(tc.name, tc.sum); !errors.Is(err, cache.ErrInvalidKey) {
			t.Errorf("PutRef(%.10q, %.10q): got %v; want ErrInvalidKey", tc.name, tc.sum, err)
		}
	}
}

func TestHistory(t *testing.T) {
	s := openStore(t, "")
	if _, err := s.History("demo"); !errors.Is(err, cache.ErrNotFound) {
		t.Fatalf("History before update: got %v; want ErrNotFound", err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		identity, version string
		at                time.Time
		changed           bool
	}{
		{"github:o/r@release.yml", "1.0", t0, false},
		{"github:o/r@release.yml", "1.1", t0.Add(time.Hour), false},
		{"github:o/r@release.yml", "1.1", t0.Add(2 * time.Hour), false},
		{"github:evil/r@release.yml", "1.2", t0.Add(3 * time.Hour), true},
		{"github:o/r@release.yml", "1.3", t0.Add(4 * time.Hour), false},
	}
	for i, st := range steps {
		var changed bool
		err := s.UpdateHistory("demo", func(h *cache.History) { changed = h.ObserveVerified(st.identity, st.version, st.at) })
		if err != nil {
			t.Fatal(err)
		}
		if changed != st.changed {
			t.Errorf("step %d: changed got %v; want %v", i, changed, st.changed)
		}
	}
	h, err := s.History("demo")
	if err != nil {
		t.Fatal(err)
	}
	want := cache.History{
		FirstSeen: t0,
		Publishers: []cache.HistoryPublisher{
			{Identity: "github:o/r@release.yml", FirstSeen: t0, LastSeen: t0.Add(4 * time.Hour), Versions: []string{"1.0", "1.1", "1.3"}},
			{Identity: "github:evil/r@release.yml", FirstSeen: t0.Add(3 * time.Hour), LastSeen: t0.Add(3 * time.Hour), Versions: []string{"1.2"}},
		},
		LastAttestedVersion: "1.3",
		LastAttestedAt:      t0.Add(4 * time.Hour),
	}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("History:\ngot  %+v\nwant %+v", h, want)
	}

	// An update that sets nothing still records when the project was first seen.
	if err := s.UpdateHistory("other", func(*cache.History) {}); err != nil {
		t.Fatal(err)
	}
	if h, err := s.History("other"); err != nil || h.FirstSeen.IsZero() {
		t.Errorf("History(other): got %+v, %v; want FirstSeen set", h, err)
	}
	if err := s.UpdateHistory("Not_Normal", func(*cache.History) {}); !errors.Is(err, cache.ErrInvalidKey) {
		t.Errorf("UpdateHistory of a raw name: got %v; want ErrInvalidKey", err)
	}
}
