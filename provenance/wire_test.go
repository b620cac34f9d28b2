package provenance_test

import (
	"strings"
	"testing"

	"github.com/pipgate/pipgate/provenance"
	"github.com/pipgate/pipgate/pypi"
)

const minimalAtt = `{"version":1,"verification_material":{"certificate":"Zm9v","transparency_entries":[{}]},"envelope":{"statement":"e30=","signature":"Zm9v"}}`

func provWith(publisher string, atts ...string) string {
	if len(atts) == 0 {
		atts = []string{minimalAtt}
	}
	return `{"version":1,"attestation_bundles":[{"publisher":` + publisher + `,"attestations":[` + strings.Join(atts, ",") + `]}]}`
}

func TestParseProvenance(t *testing.T) {
	gh := `{"kind":"GitHub","repository":"o/r","workflow":"release.yml"}`
	cases := []struct {
		name string
		in   string
		want pypi.Publisher // when err is ""
		err  string
	}{
		{"github", provWith(gh), pypi.Publisher{Kind: pypi.KindGitHub, Repository: "o/r", Workflow: "release.yml"}, ""},
		{"github env empty claims null", provWith(`{"kind":"GitHub","repository":"o/r","workflow":"w.yml","environment":"","claims":null}`), pypi.Publisher{Kind: pypi.KindGitHub, Repository: "o/r", Workflow: "w.yml"}, ""},
		{"github env null claims object", provWith(`{"kind":"GitHub","repository":"o/r","workflow":"w.yml","environment":null,"claims":{"sha":"x"},"extra":1}`), pypi.Publisher{Kind: pypi.KindGitHub, Repository: "o/r", Workflow: "w.yml"}, ""},
		{"gitlab subgroup", provWith(`{"kind":"GitLab","repository":"foo/bar/baz","workflow_filepath":"ci/.gitlab-ci.yml","environment":"pypi"}`), pypi.Publisher{Kind: pypi.KindGitLab, Repository: "foo/bar/baz", Workflow: "ci/.gitlab-ci.yml"}, ""},
		{"google", provWith(`{"kind":"Google","email":"a@b.iam.gserviceaccount.com"}`), pypi.Publisher{Kind: pypi.KindGoogle, Email: "a@b.iam.gserviceaccount.com"}, ""},
		{"int as number in entry", provWith(gh, `{"version":1,"verification_material":{"certificate":"Zm9v","transparency_entries":[{"logIndex":12}]},"envelope":{"statement":"e30=","signature":"Zm9v"}}`), pypi.Publisher{Kind: pypi.KindGitHub, Repository: "o/r", Workflow: "release.yml"}, ""},

		{"not json", `nope`, pypi.Publisher{}, "invalid provenance"},
		{"trailing data", provWith(gh) + `{}`, pypi.Publisher{}, "trailing data"},
		{"missing version", `{"attestation_bundles":[]}`, pypi.Publisher{}, "missing version"},
		{"version 2", `{"version":2,"attestation_bundles":[]}`, pypi.Publisher{}, "unsupported version 2"},
		{"version string", `{"version":"1","attestation_bundles":[]}`, pypi.Publisher{}, "invalid provenance"},
		{"no bundles", `{"version":1,"attestation_bundles":[]}`, pypi.Publisher{}, "no attestation bundles"},
		{"too many bundles", `{"version":1,"attestation_bundles":[` + strings.Repeat(`{},`, provenance.MaxBundles) + `{}]}`, pypi.Publisher{}, "more than"},
		{"no publisher", `{"version":1,"attestation_bundles":[{"attestations":[` + minimalAtt + `]}]}`, pypi.Publisher{}, "publisher: missing"},
		{"null publisher", provWith(`null`), pypi.Publisher{}, "publisher: missing"},
		{"unknown kind", provWith(`{"kind":"ActiveState"}`), pypi.Publisher{}, `unknown kind "ActiveState"`},
		{"kind case", provWith(`{"kind":"github","repository":"o/r","workflow":"w"}`), pypi.Publisher{}, `unknown kind "github"`},
		{"missing kind", provWith(`{"repository":"o/r"}`), pypi.Publisher{}, "missing kind"},
		{"github without workflow", provWith(`{"kind":"GitHub","repository":"o/r"}`), pypi.Publisher{}, "missing workflow"},
		{"gitlab without path", provWith(`{"kind":"GitLab","repository":"o/r","workflow":"x"}`), pypi.Publisher{}, "missing workflow_filepath"},
		{"google without email", provWith(`{"kind":"Google"}`), pypi.Publisher{}, "missing email"},
		{"environment number", provWith(`{"kind":"GitHub","repository":"o/r","workflow":"w","environment":3}`), pypi.Publisher{}, "environment is not a string"},
		{"no attestations", provWith(gh, ``), pypi.Publisher{}, "invalid"},
		{"too many attestations", provWith(gh, strings.Repeat(minimalAtt+",", provenance.MaxAttestations)+minimalAtt), pypi.Publisher{}, "more than"},
		{"attestation version 2", provWith(gh, strings.Replace(minimalAtt, `"version":1`, `"version":2`, 1)), pypi.Publisher{}, "unsupported version 2"},
		{"missing certificate", provWith(gh, strings.Replace(minimalAtt, `"certificate":"Zm9v",`, ``, 1)), pypi.Publisher{}, "missing verification_material.certificate"},
		{"missing statement", provWith(gh, strings.Replace(minimalAtt, `"statement":"e30=",`, ``, 1)), pypi.Publisher{}, "missing envelope.statement"},
		{"missing signature", provWith(gh, strings.Replace(minimalAtt, `,"signature":"Zm9v"`, ``, 1)), pypi.Publisher{}, "missing envelope.signature"},
		{"empty signature", provWith(gh, strings.Replace(minimalAtt, `"signature":"Zm9v"`, `"signature":""`, 1)), pypi.Publisher{}, "invalid signature: empty"},
		{"unpadded base64", provWith(gh, strings.Replace(minimalAtt, `"statement":"e30="`, `"statement":"e30"`, 1)), pypi.Publisher{}, "invalid statement"},
		{"base64 newline", provWith(gh, strings.Replace(minimalAtt, `"statement":"e30="`, `"statement":"e3\n0="`, 1)), pypi.Publisher{}, "line break"},
		{"url-safe base64", provWith(gh, strings.Replace(minimalAtt, `"signature":"Zm9v"`, `"signature":"-_-_"`, 1)), pypi.Publisher{}, "invalid signature"},
		{"entry not object", provWith(gh, strings.Replace(minimalAtt, `[{}]`, `["x"]`, 1)), pypi.Publisher{}, "not a JSON object"},
		{"too many entries", provWith(gh, strings.Replace(minimalAtt, `[{}]`, `[`+strings.Repeat(`{},`, provenance.MaxTransparencyEntries)+`{}]`, 1)), pypi.Publisher{}, "more than"},
		{"deep nesting", `{"version":1,"attestation_bundles":` + strings.Repeat("[", provenance.MaxDepth+1) + strings.Repeat("]", provenance.MaxDepth+1) + `}`, pypi.Publisher{}, "nests deeper"},
		{"brackets in strings do not count", provWith(`{"kind":"GitHub","repository":"` + strings.Repeat("[", 100) + `","workflow":"w\"{{{"}`), pypi.Publisher{Kind: pypi.KindGitHub, Repository: strings.Repeat("[", 100), Workflow: `w"{{{`}, ""},
		{"too large", `{"version":1,"x":"` + strings.Repeat("a", provenance.MaxProvenanceSize) + `"}`, pypi.Publisher{}, "more than the limit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := provenance.ParseProvenance([]byte(c.in))
			if c.err == "" {
				if err != nil {
					t.Fatalf("got %v; want success", err)
				}
				if got := p.Bundles[0].Publisher; got != c.want {
					t.Errorf("got publisher %+v; want %+v", got, c.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("got success; want an error containing %q", c.err)
			}
			if !strings.Contains(err.Error(), c.err) {
				t.Errorf("got %q; want it to contain %q", err, c.err)
			}
			if provenance.ReasonOf(err) != provenance.ReasonFormat {
				t.Errorf("got reason %q; want format", provenance.ReasonOf(err))
			}
		})
	}
}

func TestPublisherJSONRoundTrip(t *testing.T) {
	for _, p := range []pypi.Publisher{
		{Kind: pypi.KindGitHub, Repository: "o/r", Workflow: "release.yml"},
		{Kind: pypi.KindGitLab, Repository: "g/s/p", Workflow: ".gitlab-ci.yml"},
		{Kind: pypi.KindGoogle, Email: "x@y.iam.gserviceaccount.com"},
	} {
		b, err := provenance.PublisherJSON(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := provenance.ParsePublisher(b)
		if err != nil || got != p {
			t.Errorf("round trip of %+v: got %+v, %v", p, got, err)
		}
	}
	if _, err := provenance.PublisherJSON(pypi.Publisher{Kind: pypi.KindIdentity, Issuer: "i", Subject: "s"}); err == nil {
		t.Error("PublisherJSON(identity): got nil; want an error")
	}
}
