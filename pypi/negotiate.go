package pypi

import "strings"

// negotiateOffers are PyPI's offers, in its order of preference for ties.
var negotiateOffers = [...]string{ContentTypeHTML, ContentTypeV1HTML, ContentTypeV1JSON}

// mediaRange is one parsed element of an Accept header.
type mediaRange struct {
	typ, sub  string // lower-cased
	hasParams bool   // media-type parameters before the weight
	q         int    // quality in thousandths, 0..1000
}

// Negotiate picks the response type for an Accept header value exactly as
// PyPI does (WebOb's acceptable_offers over [text/html, v1+html, v1+json]):
// each offer takes the q of its most specific matching range (type/subtype
// over type/* over */*; the first of equals), offers at q=0 are dropped, and
// the highest q wins with ties going to the earlier offer. A missing, empty
// or syntactically invalid header, or one that accepts no offer, gives
// text/html; PyPI never answers 406. As PEP 691 asks of servers that support
// it, application/vnd.pypi.simple.latest+json (+html) counts as the v1 type.
// Several Accept header lines should be joined with ", " first.
func Negotiate(accept string) string {
	ranges, ok := parseAccept(accept)
	if !ok {
		return ContentTypeHTML
	}
	best, bestQ := ContentTypeHTML, 0
	for _, offer := range negotiateOffers {
		otyp, osub, _ := strings.Cut(offer, "/")
		q, spec := 0, 0
		for _, r := range ranges {
			s := 0
			switch {
			case r.typ == otyp && r.sub == osub:
				if r.hasParams {
					continue // our offers carry no parameters
				}
				s = 3
			case r.sub == "*" && r.typ == otyp:
				s = 2
			case r.typ == "*" && r.sub == "*":
				s = 1
			default:
				continue
			}
			if s > spec {
				q, spec = r.q, s
			}
		}
		if q > bestQ {
			best, bestQ = offer, q
		}
	}
	return best
}

// parseAccept parses an Accept header with WebOb's grammar (RFC 7231):
// media-range *( OWS ";" OWS param ) [ weight *( accept-ext ) ], elements
// separated by commas, empty elements allowed. It reports false for an
// invalid header and for one without any media range.
func parseAccept(s string) ([]mediaRange, bool) {
	var out []mediaRange
	p := acceptParser{s: s}
	for {
		p.ows()
		if p.eof() {
			break
		}
		if p.peek() == ',' {
			p.i++
			continue
		}
		r, ok := p.mediaRange()
		if !ok {
			return nil, false
		}
		out = append(out, r)
		p.ows()
		if p.eof() {
			break
		}
		if p.peek() != ',' {
			return nil, false
		}
	}
	return out, len(out) > 0
}

type acceptParser struct {
	s string
	i int
}

func (p *acceptParser) eof() bool  { return p.i >= len(p.s) }
func (p *acceptParser) peek() byte { return p.s[p.i] }

func (p *acceptParser) ows() {
	for !p.eof() && (p.peek() == ' ' || p.peek() == '\t') {
		p.i++
	}
}

func isTokenChar(c byte) bool {
	return isASCIIAlnum(c) || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func (p *acceptParser) token() (string, bool) {
	start := p.i
	for !p.eof() && isTokenChar(p.peek()) {
		p.i++
	}
	return p.s[start:p.i], p.i > start
}

// quoted consumes a quoted-string.
func (p *acceptParser) quoted() bool {
	if p.eof() || p.peek() != '"' {
		return false
	}
	p.i++
	for !p.eof() {
		c := p.peek()
		switch {
		case c == '"':
			p.i++
			return true
		case c == '\\':
			p.i++
			if p.eof() {
				return false
			}
			if d := p.peek(); d != '\t' && (d < 0x20 || d == 0x7f) {
				return false
			}
			p.i++
		case c == '\t' || c == ' ' || c == 0x21 || c >= 0x23 && c <= 0x5b || c >= 0x5d && c <= 0x7e || c >= 0x80:
			p.i++
		default:
			return false
		}
	}
	return false
}

// value consumes a token or a quoted-string.
func (p *acceptParser) value() bool {
	if !p.eof() && p.peek() == '"' {
		return p.quoted()
	}
	_, ok := p.token()
	return ok
}

func (p *acceptParser) mediaRange() (mediaRange, bool) {
	var r mediaRange
	typ, ok := p.token()
	if !ok || p.eof() || p.peek() != '/' {
		return r, false
	}
	p.i++
	sub, ok := p.token()
	if !ok {
		return r, false
	}
	r.typ, r.sub, r.q = strings.ToLower(typ), strings.ToLower(sub), 1000
	// PEP 691: a server that answers "latest" uses the concrete v1 type.
	if r.typ == "application" {
		switch r.sub {
		case "vnd.pypi.simple.latest+json":
			r.sub = "vnd.pypi.simple.v1+json"
		case "vnd.pypi.simple.latest+html":
			r.sub = "vnd.pypi.simple.v1+html"
		}
	}
	weighted := false
	for {
		save := p.i
		p.ows()
		if p.eof() || p.peek() != ';' {
			p.i = save
			return r, true
		}
		p.i++
		p.ows()
		name, ok := p.token()
		if !ok {
			return r, false
		}
		hasValue := !p.eof() && p.peek() == '='
		if hasValue {
			p.i++
		}
		switch {
		case !weighted && hasValue && (name == "q" || name == "Q"):
			q, ok := p.qvalue()
			if !ok {
				return r, false
			}
			r.q, weighted = q, true
		case weighted:
			// accept-ext: token [ "=" value ]
			if hasValue && !p.value() {
				return r, false
			}
		default:
			// media-type parameter: token "=" value
			if !hasValue || !p.value() {
				return r, false
			}
			r.hasParams = true
		}
	}
}

// qvalue parses ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ) into thousandths.
func (p *acceptParser) qvalue() (int, bool) {
	if p.eof() {
		return 0, false
	}
	lead := p.peek()
	if lead != '0' && lead != '1' {
		return 0, false
	}
	p.i++
	q := int(lead-'0') * 1000
	if p.eof() || p.peek() != '.' {
		return q, true
	}
	p.i++
	scale := 100
	for n := 0; n < 3 && !p.eof() && p.peek() >= '0' && p.peek() <= '9'; n++ {
		if lead == '1' && p.peek() != '0' {
			return 0, false
		}
		q += int(p.peek()-'0') * scale
		scale /= 10
		p.i++
	}
	// A fourth digit is not a valid qvalue (and not a valid token boundary).
	if !p.eof() && p.peek() >= '0' && p.peek() <= '9' {
		return 0, false
	}
	return q, true
}
