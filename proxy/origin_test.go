package proxy

import (
	"crypto/tls"
	"net/http/httptest"
	"testing"
)

func TestOrigin(t *testing.T) {
	for _, c := range []struct {
		name    string
		tls     bool
		headers map[string]string
		want    string
	}{
		{"plain", false, nil, "http://pipgate.example:8080"},
		{"own TLS", true, nil, "https://pipgate.example:8080"},
		{"terminator says https", false, map[string]string{"X-Forwarded-Proto": "https"}, "https://pipgate.example:8080"},
		{"first of a list", false, map[string]string{"X-Forwarded-Proto": "HTTPS, http"}, "https://pipgate.example:8080"},
		{"http never downgrades TLS", true, map[string]string{"X-Forwarded-Proto": "http"}, "https://pipgate.example:8080"},
		{"other host headers ignored", false, map[string]string{"X-Forwarded-Host": "evil.example", "Forwarded": "host=evil.example;proto=https"},
			"http://pipgate.example:8080"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://pipgate.example:8080/simple/x/", nil)
			if c.tls {
				r.TLS = &tls.ConnectionState{}
			}
			for k, v := range c.headers {
				r.Header.Set(k, v)
			}
			if got := origin(r); got != c.want {
				t.Errorf("origin = %q; want %q", got, c.want)
			}
		})
	}
}
